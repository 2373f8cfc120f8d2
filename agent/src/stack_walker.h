// Call stacks of the program at an allocation, without the agent's own frames.
//
// libunwind is opened with dlopen(RTLD_LOCAL) and only unw_backtrace is looked up: linking it, or
// loading it into the global scope, would put its _Unwind_* ahead of libgcc_s's for the whole
// program and make every C++ throw 20-35x slower. Without libunwind, glibc's backtrace() is used.
// Thread-safe once InitStackWalker() has run (at load, single-threaded). Walks hold a shared lock
// that fork() takes exclusively.
#ifndef LEAKGATE_AGENT_SRC_STACK_WALKER_H_
#define LEAKGATE_AGENT_SRC_STACK_WALKER_H_

#include <stdint.h>

namespace leakgate::agent {

constexpr int kMaxFrames = 64;

// Opens libunwind (or prepares the fallback) and finds the agent's code range. Call with the
// in-agent guard set: it allocates. False when libunwind is missing and glibc's backtrace() is used.
bool InitStackWalker();

// Writes up to `max_frames` return addresses, innermost first, starting at the first frame outside
// the agent. Returns how many. Must not be called with an agent lock held (the walker may take
// the loader's lock).
int CaptureStack(uintptr_t* frames, int max_frames);

// Fork handling: fork() waits until no thread is inside the walker, whose own locks (libunwind's,
// libgcc's) are not released in a child, and walks wait until fork() returns.
void LockStackWalker();
void UnlockStackWalker();
// In the child: a fresh lock (an rwlock unlocked by the child's thread, whose id differs from the
// parent thread that locked it, would be taken for a reader's).
void ResetStackWalkerLock();

}  // namespace leakgate::agent

#endif  // LEAKGATE_AGENT_SRC_STACK_WALKER_H_
