#include "next_allocator.h"

#include <dlfcn.h>
#include <sched.h>

namespace leakgate::agent {

NextAllocator g_next;
std::atomic<bool> g_next_ready{false};

// dlsym needs a few hundred bytes (its error buffer); 64 KiB leaves room for a loader that asks
// for more.
alignas(4096) unsigned char g_bootstrap[kBootstrapBytes];

namespace {

constexpr size_t kHeaderBytes = 16;  // each block is preceded by its size

std::atomic<size_t> g_bootstrap_used{0};

std::atomic<int> g_resolve_state{0};  // 0 not started, 1 resolving, 2 done
__thread bool t_resolving __attribute__((tls_model("initial-exec")));

template <typename Function>
void Resolve(Function*& slot, const char* name) {
  slot = reinterpret_cast<Function*>(dlsym(RTLD_NEXT, name));
}

}  // namespace

bool ResolveNextAllocator() {
  if (t_resolving) return false;
  int expected = 0;
  if (g_resolve_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    t_resolving = true;
    Resolve(g_next.malloc, "malloc");
    Resolve(g_next.free, "free");
    Resolve(g_next.calloc, "calloc");
    Resolve(g_next.realloc, "realloc");
    Resolve(g_next.memalign, "memalign");
    Resolve(g_next.posix_memalign, "posix_memalign");
    Resolve(g_next.aligned_alloc, "aligned_alloc");
    Resolve(g_next.valloc, "valloc");
    Resolve(g_next.pvalloc, "pvalloc");
    Resolve(g_next.malloc_usable_size, "malloc_usable_size");
    t_resolving = false;
    g_resolve_state.store(2, std::memory_order_release);
    g_next_ready.store(true, std::memory_order_release);
    return true;
  }
  while (g_resolve_state.load(std::memory_order_acquire) != 2) sched_yield();
  return true;
}

void* BootstrapAllocate(size_t size, size_t alignment) {
  if (alignment < kHeaderBytes) alignment = kHeaderBytes;
  if (alignment > 4096 || size > kBootstrapBytes) return nullptr;
  size_t used = g_bootstrap_used.load(std::memory_order_relaxed);
  for (;;) {
    const size_t start = (used + kHeaderBytes + alignment - 1) & ~(alignment - 1);
    const size_t end = start + ((size + kHeaderBytes - 1) & ~(kHeaderBytes - 1));
    if (end > kBootstrapBytes) return nullptr;
    if (g_bootstrap_used.compare_exchange_weak(used, end, std::memory_order_relaxed)) {
      *reinterpret_cast<size_t*>(g_bootstrap + start - kHeaderBytes) = size;
      return g_bootstrap + start;
    }
  }
}

size_t BootstrapSize(const void* pointer) {
  return *reinterpret_cast<const size_t*>(static_cast<const unsigned char*>(pointer) -
                                          kHeaderBytes);
}

}  // namespace leakgate::agent
