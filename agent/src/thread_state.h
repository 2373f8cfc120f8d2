// Per-thread state of the agent: the reentrancy guard, the sampling countdown and the thread's
// exact allocation counters.
//
// The state lives in initial-exec TLS (no allocation, one instruction to reach). The counters live
// in slots of mmap'd memory registered in a global list, so that a reader can sum them while their
// threads run; a thread's slot is folded into the retired totals and reused when the thread exits.
// Each counter is written only by its thread (a relaxed load and store, no read-modify-write) and
// read by anyone with relaxed loads. Allocations made where no slot can be taken (while the thread
// registers, inside the agent, after the thread's slot was retired) go to shared atomic counters.
#ifndef LEAKGATE_AGENT_SRC_THREAD_STATE_H_
#define LEAKGATE_AGENT_SRC_THREAD_STATE_H_

#include <stdint.h>

#include <atomic>

namespace leakgate::agent {

struct alignas(64) ThreadCounters {
  std::atomic<int64_t> alloc_objects;
  std::atomic<int64_t> alloc_bytes;
  std::atomic<int64_t> free_objects;
  std::atomic<int64_t> free_bytes;
  ThreadCounters* next_free;  // in the free list while no thread owns the slot
};

struct ThreadState {
  int64_t bytes_until_sample;  // sampling countdown; < 0 sends the next allocation to the slow path
  uint64_t generation;         // the sampling generation the countdown was drawn for
  uint64_t random;             // xorshift state; 0 until seeded
  ThreadCounters* counters;    // nullptr until registered, and again once retired
  bool in_agent;               // set while the agent itself runs on this thread
  bool in_usable_size;         // set while the next allocator's malloc_usable_size runs
  bool retired;                // the thread is exiting: its counters were folded
};

extern __thread ThreadState t_state __attribute__((tls_model("initial-exec")));

inline void AddRelaxed(std::atomic<int64_t>& counter, int64_t amount) {
  counter.store(counter.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
}

// The slow paths: register the thread when possible, else count in the shared fallback counters.
void CountAllocationWithoutSlot(int64_t bytes);
void CountFreeWithoutSlot(int64_t bytes);

inline void CountAllocation(int64_t bytes) {
  ThreadCounters* counters = t_state.counters;
  if (__builtin_expect(counters == nullptr, 0)) return CountAllocationWithoutSlot(bytes);
  AddRelaxed(counters->alloc_objects, 1);
  AddRelaxed(counters->alloc_bytes, bytes);
}

inline void CountFree(int64_t bytes) {
  ThreadCounters* counters = t_state.counters;
  if (__builtin_expect(counters == nullptr, 0)) return CountFreeWithoutSlot(bytes);
  AddRelaxed(counters->free_objects, 1);
  AddRelaxed(counters->free_bytes, bytes);
}

struct ExactTotals {
  int64_t alloc_objects = 0;
  int64_t alloc_bytes = 0;
  int64_t free_objects = 0;
  int64_t free_bytes = 0;
};

// The sum over every thread, live and exited. Takes the registry lock.
ExactTotals SumExactTotals();

// Creates the thread-exit key. Called once at load.
void InitThreadRegistry();

// Fork handling: the registry lock is held across fork() and released on both sides.
void LockThreadRegistry();
void UnlockThreadRegistry();

// RAII guard marking the calling thread as inside the agent.
class InAgentScope {
 public:
  InAgentScope() : previous_(t_state.in_agent) { t_state.in_agent = true; }
  ~InAgentScope() { t_state.in_agent = previous_; }
  InAgentScope(const InAgentScope&) = delete;
  InAgentScope& operator=(const InAgentScope&) = delete;

 private:
  bool previous_;
};

}  // namespace leakgate::agent

#endif  // LEAKGATE_AGENT_SRC_THREAD_STATE_H_
