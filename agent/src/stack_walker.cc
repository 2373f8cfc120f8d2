#include "stack_walker.h"

#include "agent_runtime.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

namespace leakgate::agent {

namespace {

#define LEAKGATE_AGENT_NAME_OF(symbol) LEAKGATE_AGENT_QUOTE(symbol)
#define LEAKGATE_AGENT_QUOTE(symbol) #symbol

using UnwBacktrace = int (*)(void**, int);
using UnwGetContext = int (*)(unw_context_t*);
using UnwInitLocal = int (*)(unw_cursor_t*, unw_context_t*);
using UnwStep = int (*)(unw_cursor_t*);
using UnwGetReg = int (*)(unw_cursor_t*, unw_regnum_t, unw_word_t*);

UnwBacktrace g_unw_backtrace = nullptr;
// The frame-by-frame walk (unw_step), used when sampling: unw_backtrace keeps a frame cache per
// thread (hundreds of KiB once a thread has walked many distinct frames), which in a server with a
// large thread pool grows the target's RSS run after run until every thread has one. Sampled
// walks are rare (one per sample period allocated), so their cost, about 1 us a frame, does not
// matter; exact mode walks on every allocation and keeps the cached walk.
UnwGetContext g_unw_getcontext = nullptr;
UnwInitLocal g_unw_init_local = nullptr;
UnwStep g_unw_step = nullptr;
UnwGetReg g_unw_get_reg = nullptr;
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
    // The names the libunwind.h macros expand to for local unwinding on this architecture.
    g_unw_getcontext = reinterpret_cast<UnwGetContext>(
        dlsym(libunwind, LEAKGATE_AGENT_NAME_OF(unw_tdep_getcontext)));
    g_unw_init_local =
        reinterpret_cast<UnwInitLocal>(dlsym(libunwind, LEAKGATE_AGENT_NAME_OF(unw_init_local)));
    g_unw_step = reinterpret_cast<UnwStep>(dlsym(libunwind, LEAKGATE_AGENT_NAME_OF(unw_step)));
    g_unw_get_reg = reinterpret_cast<UnwGetReg>(dlsym(libunwind, LEAKGATE_AGENT_NAME_OF(unw_get_reg)));
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
  int count = 0;
  const bool step_walk = g_sample_period.load(std::memory_order_relaxed) > 0 &&
                         g_unw_getcontext != nullptr && g_unw_init_local != nullptr &&
                         g_unw_step != nullptr && g_unw_get_reg != nullptr;
  if (step_walk) {
    unw_context_t context;
    unw_cursor_t cursor;
    if (g_unw_getcontext(&context) == 0 && g_unw_init_local(&cursor, &context) == 0) {
      do {
        unw_word_t ip = 0;
        if (g_unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
        raw[count++] = reinterpret_cast<void*>(ip);
      } while (count < wanted && g_unw_step(&cursor) > 0);
    }
  } else if (g_unw_backtrace != nullptr) {
    count = g_unw_backtrace(raw, wanted);
  } else {
    count = backtrace(raw, wanted);
  }
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
