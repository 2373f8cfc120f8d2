// The interposed allocation functions: the malloc family and C++ operator new and delete.
//
// Each forwards to the next allocator, counts the block's usable size in the thread's exact
// counters, and on the sampling countdown crossing zero records the block's stack. operator new and
// delete are interposed too, not left to libstdc++: a program linked with tcmalloc gets tcmalloc's
// operator new, which never calls malloc. They are built on the same entry points, with
// libstdc++'s semantics (new_handler loop, std::bad_alloc, nothrow variants).
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <new>

#include "agent_runtime.h"
#include "next_allocator.h"
#include "sample_table.h"
#include "stack_walker.h"
#include "thread_state.h"

#define LEAKGATE_EXPORT __attribute__((visibility("default")))
#define LEAKGATE_LIKELY(x) __builtin_expect(!!(x), 1)
#define LEAKGATE_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace leakgate::agent {
namespace {

// tcmalloc's malloc_usable_size allocates on its first call (MallocExtension::instance() with
// operator new), which comes back here: the nested block is counted with 0 bytes rather than
// recursing forever. It is tcmalloc's singleton, never freed.
inline int64_t UsableSize(void* block) {
  ThreadState& state = t_state;
  if (g_next.malloc_usable_size == nullptr || state.in_usable_size) return 0;
  state.in_usable_size = true;
  const size_t usable = g_next.malloc_usable_size(block);
  state.in_usable_size = false;
  return static_cast<int64_t>(usable);
}

uint64_t NextRandom(ThreadState& state) {
  // xorshift64*
  uint64_t x = state.random;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  state.random = x;
  return x * 0x2545F4914F6CDD1DULL;
}

void SeedRandom(ThreadState& state) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t seed = static_cast<uint64_t>(now.tv_nsec) ^ (static_cast<uint64_t>(now.tv_sec) << 32) ^
                  (static_cast<uint64_t>(gettid()) << 17) ^ reinterpret_cast<uintptr_t>(&state);
  seed ^= seed >> 31;
  seed *= 0x9E3779B97F4A7C15ULL;
  state.random = seed != 0 ? seed : 0x9E3779B97F4A7C15ULL;
}

// Bytes until the next sample: an exponential draw with mean `period`.
int64_t DrawCountdown(ThreadState& state, int64_t period) {
  const uint64_t bits = (NextRandom(state) >> 11) + 1;  // 1 .. 2^53
  const double uniform = static_cast<double>(bits) * (1.0 / 9007199254740992.0);  // (0, 1]
  const double draw = -log(uniform) * static_cast<double>(period);
  return draw < 4.0e18 ? static_cast<int64_t>(draw) : INT64_C(4000000000000000000);
}

void RecordStack(void* block, size_t size) {
  InAgentScope in_agent;
  uintptr_t frames[kMaxFrames];
  const int depth = CaptureStack(frames, kMaxFrames);
  if (depth > 0) RecordSample(block, size, frames, depth);
}

// Reached when the countdown went negative or the sampling settings changed.
__attribute__((noinline)) void SampleSlowPath(void* block, size_t size) {
  ThreadState& state = t_state;
  const uint64_t generation = g_sample_generation.load(std::memory_order_acquire);
  if (!g_sampling_ready.load(std::memory_order_acquire)) {
    // Start-up: the ready flag bumps the generation and brings every thread back here.
    state.generation = generation;
    state.bytes_until_sample = INT64_MAX;
    return;
  }
  const int64_t period = g_sample_period.load(std::memory_order_relaxed);
  if (state.generation != generation) {
    state.generation = generation;
    if (state.random == 0) SeedRandom(state);
    if (period > 0) {
      state.bytes_until_sample = DrawCountdown(state, period) - static_cast<int64_t>(size);
      if (state.bytes_until_sample >= 0) return;
    }
  }
  state.bytes_until_sample = period > 0 ? DrawCountdown(state, period) : -1;
  RecordStack(block, size);
}

inline void OnAllocated(void* block, size_t size) {
  CountAllocation(UsableSize(block));
  ThreadState& state = t_state;
  if (LEAKGATE_UNLIKELY(state.in_agent)) return;
  state.bytes_until_sample -= static_cast<int64_t>(size);
  if (LEAKGATE_UNLIKELY(state.bytes_until_sample < 0 ||
                        state.generation !=
                            g_sample_generation.load(std::memory_order_relaxed))) {
    SampleSlowPath(block, size);
  }
}

// The guard is set while the table's lock is held, so that a signal handler that frees on this
// thread does not wait for the lock its own thread holds. A block freed inside the agent stays in
// the table; the table replaces the entry when the address comes back.
__attribute__((noinline)) bool ForgetSample(void* block, LiveSample* removed) {
  if (t_state.in_agent) return false;
  InAgentScope in_agent;
  return RemoveSample(block, removed);
}

inline void OnFreeing(void* block) {
  CountFree(UsableSize(block));
  if (LEAKGATE_UNLIKELY(MaybeSampled(block))) ForgetSample(block, nullptr);
}

inline void* Allocate(size_t size) {
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) return BootstrapAllocate(size, 16);
  void* block = g_next.malloc(size);
  if (LEAKGATE_LIKELY(block != nullptr)) OnAllocated(block, size);
  return block;
}

inline void* AllocateAligned(size_t alignment, size_t size) {
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) return BootstrapAllocate(size, alignment);
  void* block = g_next.memalign(alignment, size);
  if (LEAKGATE_LIKELY(block != nullptr)) OnAllocated(block, size);
  return block;
}

inline void Free(void* block) {
  if (block == nullptr || LEAKGATE_UNLIKELY(IsBootstrap(block))) return;
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) return;  // cannot be the next allocator's block
  OnFreeing(block);
  g_next.free(block);
}

void* Reallocate(void* block, size_t size) {
  if (block == nullptr) return Allocate(size);
  if (LEAKGATE_UNLIKELY(IsBootstrap(block) || !EnsureNextAllocator())) {
    void* moved = Allocate(size);
    if (moved != nullptr && IsBootstrap(block)) {
      const size_t old_size = BootstrapSize(block);
      memcpy(moved, block, old_size < size ? old_size : size);
    }
    return moved;
  }
  const int64_t old_usable = UsableSize(block);
  LiveSample sample{};
  bool was_sampled = false;
  // Taken out before the call: once realloc returns, the old address may already belong to
  // another thread's new block.
  if (LEAKGATE_UNLIKELY(MaybeSampled(block))) was_sampled = ForgetSample(block, &sample);
  void* moved = g_next.realloc(block, size);
  if (moved == nullptr) {
    if (size == 0) {
      CountFree(old_usable);  // realloc(p, 0) freed p
    } else if (was_sampled) {
      InAgentScope in_agent;
      RestoreSample(block, sample);
    }
    return nullptr;
  }
  CountFree(old_usable);
  OnAllocated(moved, size);
  return moved;
}

void* NewOrThrow(size_t size) {
  if (size == 0) size = 1;
  for (;;) {
    void* block = Allocate(size);
    if (LEAKGATE_LIKELY(block != nullptr)) return block;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* NewAlignedOrThrow(size_t size, std::align_val_t alignment) {
  size_t align = static_cast<size_t>(alignment);
  if (align < sizeof(void*)) align = sizeof(void*);
  if (size == 0) size = 1;
  for (;;) {
    void* block = AllocateAligned(align, size);
    if (LEAKGATE_LIKELY(block != nullptr)) return block;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

}  // namespace
}  // namespace leakgate::agent

using leakgate::agent::Allocate;
using leakgate::agent::AllocateAligned;
using leakgate::agent::Free;

extern "C" {

LEAKGATE_EXPORT void* malloc(size_t size) noexcept { return Allocate(size); }

LEAKGATE_EXPORT void free(void* block) noexcept { Free(block); }

LEAKGATE_EXPORT void* calloc(size_t count, size_t size) noexcept {
  using namespace leakgate::agent;
  size_t bytes = 0;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) return BootstrapAllocate(bytes, 16);
  void* block = g_next.calloc(count, size);
  if (LEAKGATE_LIKELY(block != nullptr)) OnAllocated(block, bytes);
  return block;
}

LEAKGATE_EXPORT void* realloc(void* block, size_t size) noexcept {
  return leakgate::agent::Reallocate(block, size);
}

LEAKGATE_EXPORT void* reallocarray(void* block, size_t count, size_t size) noexcept {
  size_t bytes = 0;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return leakgate::agent::Reallocate(block, bytes);
}

LEAKGATE_EXPORT void* memalign(size_t alignment, size_t size) noexcept {
  return AllocateAligned(alignment, size);
}

LEAKGATE_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  using namespace leakgate::agent;
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) {
    void* block = BootstrapAllocate(size, alignment);
    if (block == nullptr) return ENOMEM;
    *out = block;
    return 0;
  }
  const int result = g_next.posix_memalign(out, alignment, size);
  if (result == 0 && *out != nullptr) OnAllocated(*out, size);
  return result;
}

LEAKGATE_EXPORT void* aligned_alloc(size_t alignment, size_t size) noexcept {
  using namespace leakgate::agent;
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) return BootstrapAllocate(size, alignment);
  void* block = g_next.aligned_alloc(alignment, size);
  if (LEAKGATE_LIKELY(block != nullptr)) OnAllocated(block, size);
  return block;
}

LEAKGATE_EXPORT void* valloc(size_t size) noexcept {
  using namespace leakgate::agent;
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) return BootstrapAllocate(size, 4096);
  void* block = g_next.valloc(size);
  if (LEAKGATE_LIKELY(block != nullptr)) OnAllocated(block, size);
  return block;
}

LEAKGATE_EXPORT void* pvalloc(size_t size) noexcept {
  using namespace leakgate::agent;
  if (LEAKGATE_UNLIKELY(!EnsureNextAllocator())) return BootstrapAllocate(size, 4096);
  void* block = g_next.pvalloc(size);
  if (LEAKGATE_LIKELY(block != nullptr)) OnAllocated(block, size);
  return block;
}

LEAKGATE_EXPORT size_t malloc_usable_size(void* block) noexcept {
  using namespace leakgate::agent;
  if (block == nullptr) return 0;
  if (IsBootstrap(block)) return BootstrapSize(block);
  if (!EnsureNextAllocator() || g_next.malloc_usable_size == nullptr) return 0;
  return g_next.malloc_usable_size(block);
}

}  // extern "C"

LEAKGATE_EXPORT void* operator new(size_t size) { return leakgate::agent::NewOrThrow(size); }
LEAKGATE_EXPORT void* operator new[](size_t size) { return leakgate::agent::NewOrThrow(size); }
LEAKGATE_EXPORT void* operator new(size_t size, const std::nothrow_t&) noexcept {
  try {
    return leakgate::agent::NewOrThrow(size);
  } catch (...) {
    return nullptr;
  }
}
LEAKGATE_EXPORT void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  try {
    return leakgate::agent::NewOrThrow(size);
  } catch (...) {
    return nullptr;
  }
}
LEAKGATE_EXPORT void* operator new(size_t size, std::align_val_t alignment) {
  return leakgate::agent::NewAlignedOrThrow(size, alignment);
}
LEAKGATE_EXPORT void* operator new[](size_t size, std::align_val_t alignment) {
  return leakgate::agent::NewAlignedOrThrow(size, alignment);
}
LEAKGATE_EXPORT void* operator new(size_t size, std::align_val_t alignment,
                                   const std::nothrow_t&) noexcept {
  try {
    return leakgate::agent::NewAlignedOrThrow(size, alignment);
  } catch (...) {
    return nullptr;
  }
}
LEAKGATE_EXPORT void* operator new[](size_t size, std::align_val_t alignment,
                                     const std::nothrow_t&) noexcept {
  try {
    return leakgate::agent::NewAlignedOrThrow(size, alignment);
  } catch (...) {
    return nullptr;
  }
}

LEAKGATE_EXPORT void operator delete(void* block) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete[](void* block) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete(void* block, size_t) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete[](void* block, size_t) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete(void* block, const std::nothrow_t&) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete[](void* block, const std::nothrow_t&) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete(void* block, std::align_val_t) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete[](void* block, std::align_val_t) noexcept { Free(block); }
LEAKGATE_EXPORT void operator delete(void* block, size_t, std::align_val_t) noexcept {
  Free(block);
}
LEAKGATE_EXPORT void operator delete[](void* block, size_t, std::align_val_t) noexcept {
  Free(block);
}
LEAKGATE_EXPORT void operator delete(void* block, std::align_val_t,
                                     const std::nothrow_t&) noexcept {
  Free(block);
}
LEAKGATE_EXPORT void operator delete[](void* block, std::align_val_t,
                                       const std::nothrow_t&) noexcept {
  Free(block);
}
