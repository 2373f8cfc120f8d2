#include "thread_state.h"

#include <pthread.h>
#include <string.h>

#include "mapped_memory.h"

namespace leakgate::agent {

__thread ThreadState t_state __attribute__((tls_model("initial-exec")));

namespace {

constexpr int kSlotsPerChunk = 64;
constexpr int kMaxChunks = 4096;  // 262144 threads alive at once

struct Registry {
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  ThreadCounters* chunks[kMaxChunks] = {};
  int chunk_count = 0;
  int used_in_last_chunk = kSlotsPerChunk;
  ThreadCounters* free_list = nullptr;
  ExactTotals retired;  // folded from exited threads
  pthread_key_t exit_key = 0;
  std::atomic<bool> key_ready{false};
};

Registry g_registry;
ThreadCounters g_fallback;  // read-modify-write only: shared by threads without a slot

void RetireThread(void* slot_pointer) {
  auto* slot = static_cast<ThreadCounters*>(slot_pointer);
  pthread_mutex_lock(&g_registry.lock);
  g_registry.retired.alloc_objects += slot->alloc_objects.load(std::memory_order_relaxed);
  g_registry.retired.alloc_bytes += slot->alloc_bytes.load(std::memory_order_relaxed);
  g_registry.retired.free_objects += slot->free_objects.load(std::memory_order_relaxed);
  g_registry.retired.free_bytes += slot->free_bytes.load(std::memory_order_relaxed);
  slot->alloc_objects.store(0, std::memory_order_relaxed);
  slot->alloc_bytes.store(0, std::memory_order_relaxed);
  slot->free_objects.store(0, std::memory_order_relaxed);
  slot->free_bytes.store(0, std::memory_order_relaxed);
  slot->next_free = g_registry.free_list;
  g_registry.free_list = slot;
  pthread_mutex_unlock(&g_registry.lock);
  t_state.counters = nullptr;
  t_state.retired = true;
}

ThreadCounters* TakeSlot() {
  ThreadCounters* slot = nullptr;
  pthread_mutex_lock(&g_registry.lock);
  if (g_registry.free_list != nullptr) {
    slot = g_registry.free_list;
    g_registry.free_list = slot->next_free;
    slot->next_free = nullptr;
  } else {
    if (g_registry.used_in_last_chunk == kSlotsPerChunk && g_registry.chunk_count < kMaxChunks) {
      auto* chunk =
          static_cast<ThreadCounters*>(MapPages(sizeof(ThreadCounters) * kSlotsPerChunk));
      if (chunk != nullptr) {
        g_registry.chunks[g_registry.chunk_count++] = chunk;
        g_registry.used_in_last_chunk = 0;
      }
    }
    if (g_registry.used_in_last_chunk < kSlotsPerChunk) {
      slot = &g_registry.chunks[g_registry.chunk_count - 1][g_registry.used_in_last_chunk++];
    }
  }
  pthread_mutex_unlock(&g_registry.lock);
  return slot;
}

ThreadCounters* TryRegister() {
  ThreadState& state = t_state;
  if (state.in_agent || state.retired || !g_registry.key_ready.load(std::memory_order_acquire)) {
    return nullptr;
  }
  InAgentScope in_agent;
  ThreadCounters* slot = TakeSlot();
  if (slot == nullptr) return nullptr;
  // The key's destructor folds the slot when the thread exits; setspecific may allocate (keys past
  // the first 32), which is counted through the fallback while the guard is set.
  pthread_setspecific(g_registry.exit_key, slot);
  state.counters = slot;
  return slot;
}

}  // namespace

void CountAllocationWithoutSlot(int64_t bytes) {
  if (ThreadCounters* slot = TryRegister()) {
    AddRelaxed(slot->alloc_objects, 1);
    AddRelaxed(slot->alloc_bytes, bytes);
    return;
  }
  g_fallback.alloc_objects.fetch_add(1, std::memory_order_relaxed);
  g_fallback.alloc_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void CountFreeWithoutSlot(int64_t bytes) {
  if (ThreadCounters* slot = TryRegister()) {
    AddRelaxed(slot->free_objects, 1);
    AddRelaxed(slot->free_bytes, bytes);
    return;
  }
  g_fallback.free_objects.fetch_add(1, std::memory_order_relaxed);
  g_fallback.free_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

ExactTotals SumExactTotals() {
  pthread_mutex_lock(&g_registry.lock);
  ExactTotals totals = g_registry.retired;
  for (int c = 0; c < g_registry.chunk_count; ++c) {
    const int used = c == g_registry.chunk_count - 1 ? g_registry.used_in_last_chunk
                                                      : kSlotsPerChunk;
    for (int i = 0; i < used; ++i) {
      const ThreadCounters& slot = g_registry.chunks[c][i];
      totals.alloc_objects += slot.alloc_objects.load(std::memory_order_relaxed);
      totals.alloc_bytes += slot.alloc_bytes.load(std::memory_order_relaxed);
      totals.free_objects += slot.free_objects.load(std::memory_order_relaxed);
      totals.free_bytes += slot.free_bytes.load(std::memory_order_relaxed);
    }
  }
  pthread_mutex_unlock(&g_registry.lock);
  totals.alloc_objects += g_fallback.alloc_objects.load(std::memory_order_relaxed);
  totals.alloc_bytes += g_fallback.alloc_bytes.load(std::memory_order_relaxed);
  totals.free_objects += g_fallback.free_objects.load(std::memory_order_relaxed);
  totals.free_bytes += g_fallback.free_bytes.load(std::memory_order_relaxed);
  return totals;
}

void InitThreadRegistry() {
  if (g_registry.key_ready.load(std::memory_order_acquire)) return;
  if (pthread_key_create(&g_registry.exit_key, RetireThread) == 0) {
    g_registry.key_ready.store(true, std::memory_order_release);
  }
}

void LockThreadRegistry() { pthread_mutex_lock(&g_registry.lock); }
void UnlockThreadRegistry() { pthread_mutex_unlock(&g_registry.lock); }

}  // namespace leakgate::agent
