// Interposed creation of threads and sockets, recording the creating call stack (see
// resource_table.h): pthread_create wraps the start routine so that the new thread records its own
// kernel id, and returns once it has; socket, accept and accept4 record the new descriptor; close forgets it.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "agent_runtime.h"
#include "next_allocator.h"
#include "resource_table.h"
#include "sample_table.h"
#include "stack_walker.h"
#include "thread_state.h"

#define LEAKGATE_EXPORT __attribute__((visibility("default")))

namespace leakgate::agent {
namespace {

using CreateThreadFunction = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
using SocketFunction = int (*)(int, int, int);
using AcceptFunction = int (*)(int, sockaddr*, socklen_t*);
using Accept4Function = int (*)(int, sockaddr*, socklen_t*, int);
using CloseFunction = int (*)(int);

// Looked up on first use: these may be called before the agent's constructor runs.
template <typename Function>
Function Next(std::atomic<Function>& slot, const char* name) {
  Function function = slot.load(std::memory_order_acquire);
  if (__builtin_expect(function == nullptr, 0)) {
    function = reinterpret_cast<Function>(dlsym(RTLD_NEXT, name));
    slot.store(function, std::memory_order_release);
  }
  return function;
}

std::atomic<CreateThreadFunction> g_next_pthread_create{nullptr};
std::atomic<SocketFunction> g_next_socket{nullptr};
std::atomic<AcceptFunction> g_next_accept{nullptr};
std::atomic<Accept4Function> g_next_accept4{nullptr};
std::atomic<CloseFunction> g_next_close{nullptr};

// The creation stack of a resource made by the program now; kNoStack inside the agent or before
// it is ready.
uint32_t CreationStack() {
  if (!g_sampling_ready.load(std::memory_order_acquire) || t_state.in_agent) return kNoStack;
  InAgentScope in_agent;
  uintptr_t frames[kMaxFrames];
  const int depth = CaptureStack(frames, kMaxFrames);
  return depth > 0 ? InternStack(frames, depth) : kNoStack;
}

void RecordNewSocket(int fd) {
  if (fd < 0) return;
  const uint32_t stack = CreationStack();
  if (stack != kNoStack) RecordSocket(fd, stack);
}

struct ThreadStart {
  void* (*routine)(void*);
  void* argument;
  uint32_t stack_id;
  // Set by the new thread once it is recorded: pthread_create returns only then, so a profile
  // written right after it lists the thread.
  std::atomic<bool> recorded{false};
};

class ThreadRecord {
 public:
  explicit ThreadRecord(uint32_t stack_id) : tid_(gettid()) { RecordThreadStart(tid_, stack_id); }
  // Runs on return and on the unwinding of pthread_exit or cancellation.
  ~ThreadRecord() { ForgetThread(tid_); }
  ThreadRecord(const ThreadRecord&) = delete;
  ThreadRecord& operator=(const ThreadRecord&) = delete;

 private:
  pid_t tid_;
};

void* StartRecordedThread(void* raw) {
  auto* start = static_cast<ThreadStart*>(raw);
  void* (*const routine)(void*) = start->routine;
  void* const argument = start->argument;
  ThreadRecord record(start->stack_id);
  start->recorded.store(true, std::memory_order_release);  // the creator frees `start` now
  return routine(argument);
}

}  // namespace

void ResolveResourceFunctions() {
  Next(g_next_pthread_create, "pthread_create");
  Next(g_next_socket, "socket");
  Next(g_next_accept, "accept");
  Next(g_next_accept4, "accept4");
  Next(g_next_close, "close");
}

}  // namespace leakgate::agent

extern "C" {

LEAKGATE_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attributes,
                                   void* (*routine)(void*), void* argument) {
  using namespace leakgate::agent;
  const CreateThreadFunction create = Next(g_next_pthread_create, "pthread_create");
  const uint32_t stack = CreationStack();
  if (stack == kNoStack || !EnsureNextAllocator()) {
    return create(thread, attributes, routine, argument);
  }
  // From the next allocator directly: the agent's bookkeeping is not the program's memory.
  auto* start = static_cast<ThreadStart*>(g_next.malloc(sizeof(ThreadStart)));
  if (start == nullptr) return create(thread, attributes, routine, argument);
  new (start) ThreadStart{routine, argument, stack};
  const int result = create(thread, attributes, StartRecordedThread, start);
  if (result == 0) {
    while (!start->recorded.load(std::memory_order_acquire)) sched_yield();
  }
  start->~ThreadStart();
  g_next.free(start);
  return result;
}

LEAKGATE_EXPORT int socket(int domain, int type, int protocol) noexcept {
  using namespace leakgate::agent;
  const int fd = Next(g_next_socket, "socket")(domain, type, protocol);
  RecordNewSocket(fd);
  return fd;
}

LEAKGATE_EXPORT int accept(int listener, sockaddr* address, socklen_t* length) {
  using namespace leakgate::agent;
  const int fd = Next(g_next_accept, "accept")(listener, address, length);
  RecordNewSocket(fd);
  return fd;
}

LEAKGATE_EXPORT int accept4(int listener, sockaddr* address, socklen_t* length, int flags) {
  using namespace leakgate::agent;
  const int fd = Next(g_next_accept4, "accept4")(listener, address, length, flags);
  RecordNewSocket(fd);
  return fd;
}

LEAKGATE_EXPORT int close(int fd) {
  using namespace leakgate::agent;
  ForgetDescriptor(fd);
  return Next(g_next_close, "close")(fd);
}

}  // extern "C"
