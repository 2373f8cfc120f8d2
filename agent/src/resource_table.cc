#include "resource_table.h"

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include <atomic>

#include "mapped_memory.h"

namespace leakgate::agent {
namespace {

struct ThreadList {
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  ThreadCreation* entries = nullptr;
  size_t count = 0;
  size_t capacity = 0;
};
ThreadList g_threads;

constexpr int kMaxTrackedFd = 1 << 16;

struct SocketSlot {
  std::atomic<uint32_t> stack_plus_one;  // 0: nothing recorded
  std::atomic<uint64_t> inode;
};
std::atomic<SocketSlot*> g_sockets{nullptr};
std::atomic<int> g_highest_fd{-1};

SocketSlot* Sockets() {
  SocketSlot* slots = g_sockets.load(std::memory_order_acquire);
  if (slots != nullptr) return slots;
  auto* mapped = static_cast<SocketSlot*>(MapPages(sizeof(SocketSlot) * kMaxTrackedFd));
  if (mapped == nullptr) return nullptr;
  if (!g_sockets.compare_exchange_strong(slots, mapped, std::memory_order_acq_rel)) {
    UnmapPages(mapped, sizeof(SocketSlot) * kMaxTrackedFd);
    return slots;
  }
  return mapped;
}

}  // namespace

void RecordThreadStart(pid_t tid, uint32_t stack_id) {
  pthread_mutex_lock(&g_threads.lock);
  for (size_t i = 0; i < g_threads.count; ++i) {
    if (g_threads.entries[i].tid == tid) {  // a reused id whose thread ended unseen
      g_threads.entries[i].stack_id = stack_id;
      pthread_mutex_unlock(&g_threads.lock);
      return;
    }
  }
  if (g_threads.count == g_threads.capacity) {
    const size_t capacity = g_threads.capacity == 0 ? 1024 : g_threads.capacity * 2;
    auto* entries = static_cast<ThreadCreation*>(MapPages(capacity * sizeof(ThreadCreation)));
    if (entries == nullptr) {
      pthread_mutex_unlock(&g_threads.lock);
      return;
    }
    if (g_threads.count > 0) {
      memcpy(entries, g_threads.entries, g_threads.count * sizeof(ThreadCreation));
    }
    UnmapPages(g_threads.entries, g_threads.capacity * sizeof(ThreadCreation));
    g_threads.entries = entries;
    g_threads.capacity = capacity;
  }
  g_threads.entries[g_threads.count++] = ThreadCreation{tid, stack_id};
  pthread_mutex_unlock(&g_threads.lock);
}

void ForgetThread(pid_t tid) {
  pthread_mutex_lock(&g_threads.lock);
  for (size_t i = 0; i < g_threads.count; ++i) {
    if (g_threads.entries[i].tid == tid) {
      g_threads.entries[i] = g_threads.entries[--g_threads.count];
      break;
    }
  }
  pthread_mutex_unlock(&g_threads.lock);
}

size_t CopyThreadCreations(ThreadCreation* out, size_t capacity) {
  pthread_mutex_lock(&g_threads.lock);
  const size_t count = g_threads.count < capacity ? g_threads.count : capacity;
  if (count > 0) memcpy(out, g_threads.entries, count * sizeof(ThreadCreation));
  pthread_mutex_unlock(&g_threads.lock);
  return count;
}

size_t ThreadCreationCount() {
  pthread_mutex_lock(&g_threads.lock);
  const size_t count = g_threads.count;
  pthread_mutex_unlock(&g_threads.lock);
  return count;
}

void RecordSocket(int fd, uint32_t stack_id) {
  if (fd < 0 || fd >= kMaxTrackedFd) return;
  SocketSlot* slots = Sockets();
  if (slots == nullptr) return;
  struct stat status;
  if (fstat(fd, &status) != 0) return;
  slots[fd].stack_plus_one.store(0, std::memory_order_relaxed);
  slots[fd].inode.store(status.st_ino, std::memory_order_relaxed);
  slots[fd].stack_plus_one.store(stack_id + 1, std::memory_order_release);
  int highest = g_highest_fd.load(std::memory_order_relaxed);
  while (fd > highest &&
         !g_highest_fd.compare_exchange_weak(highest, fd, std::memory_order_relaxed)) {
  }
}

void ForgetDescriptor(int fd) {
  if (fd < 0 || fd >= kMaxTrackedFd) return;
  SocketSlot* slots = g_sockets.load(std::memory_order_acquire);
  if (slots == nullptr) return;
  if (slots[fd].stack_plus_one.load(std::memory_order_relaxed) != 0) {
    slots[fd].stack_plus_one.store(0, std::memory_order_relaxed);
  }
}

void ForEachSocketCreation(void (*visit)(const SocketCreation&, void*), void* context) {
  SocketSlot* slots = g_sockets.load(std::memory_order_acquire);
  if (slots == nullptr) return;
  const int highest = g_highest_fd.load(std::memory_order_relaxed);
  for (int fd = 0; fd <= highest; ++fd) {
    const uint32_t stack = slots[fd].stack_plus_one.load(std::memory_order_acquire);
    if (stack == 0) continue;
    visit(SocketCreation{fd, stack - 1, slots[fd].inode.load(std::memory_order_relaxed)},
          context);
  }
}

void LockResourceTable() { pthread_mutex_lock(&g_threads.lock); }
void UnlockResourceTable() { pthread_mutex_unlock(&g_threads.lock); }

}  // namespace leakgate::agent
