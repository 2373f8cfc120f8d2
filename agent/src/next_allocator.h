// The allocator that follows the agent in the symbol lookup order (glibc's, or tcmalloc when the
// program links it), found with dlsym(RTLD_NEXT, ...), and the small static arena that serves the
// allocations dlsym itself makes while it is being looked up.
//
// EnsureNextAllocator() is safe to call from any thread at any time: the first caller resolves the
// functions, its own nested calls are served from the bootstrap arena, and other threads wait.
// Bootstrap blocks are never returned; free() must recognise them with IsBootstrap().
#ifndef LEAKGATE_AGENT_SRC_NEXT_ALLOCATOR_H_
#define LEAKGATE_AGENT_SRC_NEXT_ALLOCATOR_H_

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace leakgate::agent {

struct NextAllocator {
  void* (*malloc)(size_t);
  void (*free)(void*);
  void* (*calloc)(size_t, size_t);
  void* (*realloc)(void*, size_t);
  void* (*memalign)(size_t, size_t);
  int (*posix_memalign)(void**, size_t, size_t);
  void* (*aligned_alloc)(size_t, size_t);
  void* (*valloc)(size_t);
  void* (*pvalloc)(size_t);
  size_t (*malloc_usable_size)(void*);
};

extern NextAllocator g_next;
extern std::atomic<bool> g_next_ready;

// Resolves g_next once. Returns false only on the resolving thread while it resolves (its nested
// allocations must then come from the bootstrap arena).
bool ResolveNextAllocator();

inline bool EnsureNextAllocator() {
  if (__builtin_expect(g_next_ready.load(std::memory_order_acquire), 1)) return true;
  return ResolveNextAllocator();
}

// A zeroed block of `size` bytes aligned to `alignment` (a power of two, at most 4096) from the
// static arena; nullptr when the arena is exhausted.
void* BootstrapAllocate(size_t size, size_t alignment);

constexpr size_t kBootstrapBytes = 64 * 1024;
extern unsigned char g_bootstrap[kBootstrapBytes];

inline bool IsBootstrap(const void* pointer) {
  return reinterpret_cast<uintptr_t>(pointer) - reinterpret_cast<uintptr_t>(g_bootstrap) <
         kBootstrapBytes;
}

// The size asked for when `pointer` (a bootstrap block) was allocated.
size_t BootstrapSize(const void* pointer);

}  // namespace leakgate::agent

#endif  // LEAKGATE_AGENT_SRC_NEXT_ALLOCATOR_H_
