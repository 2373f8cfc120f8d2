/* leakgate's allocation agent: sampled heap profiles cheap enough to leave on.
 *
 * libleakgate_agent.so is preloaded into a target (LD_PRELOAD) or linked into a program. It
 * interposes malloc, free, calloc, realloc, memalign, posix_memalign, aligned_alloc, valloc,
 * pvalloc and malloc_usable_size, forwarding each to the allocator that follows it in the lookup
 * order (glibc's, or tcmalloc when the program links it), so the program's allocator is unchanged.
 *
 * Sampling is tcmalloc's: bytes allocated by each thread are counted down from a draw of an
 * exponential distribution with a mean of the sample period; the allocation that crosses zero is
 * sampled (its stack taken with libunwind's unw_backtrace and kept with its size until it is
 * freed). With a period of 0 every allocation is recorded (exact). Besides the samples, the agent
 * counts every allocation and free (usable sizes), so the exact bytes in use are known in both
 * modes.
 *
 * A profile (gperftools' text format, readable by `google-pprof --base`): the header
 * `heap profile: N: B [N: B] @ heap_v2/PERIOD` (sampled) or `@ heapprofile` (exact), a line
 * `# leakgate-agent exact_inuse_objects=N exact_inuse_bytes=N exact_alloc_objects=N
 * exact_alloc_bytes=N sample_period=N pid=N`, one line per stack with live samples, then
 * `MAPPED_LIBRARIES:` and /proc/self/maps. Profiles are written to PREFIX.NNNN.heap (NNNN from 0001,
 * like gperftools) through a temporary file and a rename, so a reader never sees half a profile.
 *
 * Environment (read once, at load):
 *   LEAKGATE_AGENT_PREFIX   where profiles go; without it the agent only counts and samples.
 *   LEAKGATE_AGENT_SIGNAL   a signal number that requests a profile (default 12, SIGUSR2, when a
 *                           prefix is set; 0: none). The handler only wakes the agent's thread
 *                           ("leakgate-agent"), which writes the profile.
 *   LEAKGATE_AGENT_SAMPLE   the sample period in bytes, or with a unit (512KiB); 0 = exact.
 *                           Default 524288.
 *   LEAKGATE_AGENT_DUMP_AT_EXIT  1: also write a profile when the process exits.
 */
#ifndef LEAKGATE_AGENT_H_
#define LEAKGATE_AGENT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct leakgate_agent_totals {
  int64_t inuse_objects;
  int64_t inuse_bytes;
  int64_t alloc_objects;
  int64_t alloc_bytes;
  int64_t sampled_live;   /* sampled allocations not yet freed */
  int64_t sample_period;  /* bytes; 0 = exact */
};

/* Writes a profile to `path` (through `path`.tmp and a rename); with NULL, to the next
 * PREFIX.NNNN.heap. Returns 0, or -errno (-EINVAL when NULL is given and no prefix is set). */
int leakgate_agent_dump(const char* path);

/* The exact totals now. */
struct leakgate_agent_totals leakgate_agent_get_totals(void);

/* Changes the sample period (bytes; 0 = exact) for allocations from now on. */
void leakgate_agent_set_sample_period(int64_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* LEAKGATE_AGENT_H_ */
