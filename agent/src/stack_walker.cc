#include "stack_walker.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>

namespace leakgate::agent {
namespace {

using UnwBacktrace = int (*)(void**, int);

UnwBacktrace g_unw_backtrace = nullptr;
// Writer-preferring, so that a fork is not starved by threads sampling every allocation.
pthread_rwlock_t g_walk_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
uintptr_t g_agent_code_begin = 0;
uintptr_t g_agent_code_end = 0;

// Extra frames asked of the walker to cover the agent's own (the allocation entry point, the
// sampler, operator new).
constexpr int kAgentFrameAllowance = 8;

int FindAgentCode(struct dl_phdr_info* info, size_t, void* data) {
  const auto base = reinterpret_cast<uintptr_t>(data);
  if (info->dlpi_addr != base) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& header = info->dlpi_phdr[i];
    if (header.p_type == PT_LOAD && (header.p_flags & PF_X) != 0) {
      g_agent_code_begin = info->dlpi_addr + header.p_vaddr;
      g_agent_code_end = g_agent_code_begin + header.p_memsz;
      return 1;
    }
  }
  return 0;
}

}  // namespace

bool InitStackWalker() {
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&CaptureStack), &self) != 0) {
    dl_iterate_phdr(FindAgentCode, self.dli_fbase);
  }
  // RTLD_LOCAL keeps libunwind's _Unwind_* out of the global scope (see the header).
  void* libunwind = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (libunwind != nullptr) {
    g_unw_backtrace = reinterpret_cast<UnwBacktrace>(dlsym(libunwind, "unw_backtrace"));
  }
  // The first walk initialises the walker (libgcc_s is opened by backtrace(), libunwind fills its
  // caches): do it here rather than inside the first sampled allocation.
  uintptr_t frames[kMaxFrames];
  CaptureStack(frames, kMaxFrames);
  return g_unw_backtrace != nullptr;
}

int CaptureStack(uintptr_t* frames, int max_frames) {
  void* raw[kMaxFrames + kAgentFrameAllowance];
  const int wanted = max_frames + kAgentFrameAllowance;
  pthread_rwlock_rdlock(&g_walk_lock);
  const int count = g_unw_backtrace != nullptr ? g_unw_backtrace(raw, wanted) : backtrace(raw, wanted);
  pthread_rwlock_unlock(&g_walk_lock);
  int first = 0;
  while (first < count) {
    const auto address = reinterpret_cast<uintptr_t>(raw[first]);
    if (address < g_agent_code_begin || address >= g_agent_code_end) break;
    ++first;
  }
  int written = 0;
  for (int i = first; i < count && written < max_frames; ++i) {
    frames[written++] = reinterpret_cast<uintptr_t>(raw[i]);
  }
  return written;
}

void LockStackWalker() { pthread_rwlock_wrlock(&g_walk_lock); }
void UnlockStackWalker() { pthread_rwlock_unlock(&g_walk_lock); }
void ResetStackWalkerLock() {
  pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  g_walk_lock = fresh;
}

}  // namespace leakgate::agent
