// The agent's process-wide settings and start-up: the sample period and its generation (bumped on
// every change so that each thread redraws its countdown), whether sampling may begin, and the
// profile writer behind leakgate_agent_dump. Settings are atomics, read with relaxed loads on the
// allocation path.
#ifndef LEAKGATE_AGENT_SRC_AGENT_RUNTIME_H_
#define LEAKGATE_AGENT_SRC_AGENT_RUNTIME_H_

#include <stdint.h>

#include <atomic>

namespace leakgate::agent {

constexpr int64_t kDefaultSamplePeriod = 512 * 1024;

extern std::atomic<int64_t> g_sample_period;  // bytes; 0 = every allocation
extern std::atomic<uint64_t> g_sample_generation;
// Set once the stack walker is ready; allocations before it are counted but not sampled.
extern std::atomic<bool> g_sampling_ready;

// Writes a profile to `path` (NULL: the next PREFIX.NNNN.heap). 0 or -errno.
int WriteProfile(const char* path);

// Looks up the functions behind the interposed pthread_create, socket, accept, accept4 and close
// (at load: a lookup in a forked child could wait for a loader lock held by a parent's thread).
void ResolveResourceFunctions();

}  // namespace leakgate::agent

#endif  // LEAKGATE_AGENT_SRC_AGENT_RUNTIME_H_
