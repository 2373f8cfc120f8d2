/* leakgate's allocation agent: sampled heap profiles cheap enough to leave on.
 *
 * libleakgate_agent.so is preloaded into a target (LD_PRELOAD) or linked into a program. It
 * interposes malloc, free, calloc, realloc, memalign, posix_memalign, aligned_alloc, valloc,
 * pvalloc and malloc_usable_size, forwarding each to the allocator that follows it in the lookup
 * order (glibc's, or tcmalloc when the program links it), so the program's allocator is unchanged.
 * It also interposes reallocarray and C++ operator new and delete (every variant; libstdc++'s
 * semantics, on top of the interposed malloc and free): tcmalloc brings its own operator new, which
 * never calls malloc.
 *
 * Sampling is tcmalloc's: bytes allocated by each thread are counted down from a draw of an
 * exponential distribution with a mean of the sample period; the allocation that crosses zero is
 * sampled (its stack taken with libunwind's unw_backtrace and kept with its size until it is
 * freed). With a period of 0 every allocation is recorded (exact). Besides the samples, the agent
 * counts every allocation and free (usable sizes), so the exact bytes in use are known in both
 * modes. Samples carry the size asked for; allocations made before the agent's constructor ran
 * (the C++ runtime's own) are counted but not sampled.
 *
 * A profile (gperftools' text format, readable by `google-pprof --base`): the header
 * `heap profile: N: B [N: B] @ heap_v2/PERIOD` (sampled) or `@ heapprofile` (exact), a line
 * `# leakgate-agent exact_inuse_objects=N exact_inuse_bytes=N exact_alloc_objects=N
 * exact_alloc_bytes=N sample_period=N pid=N`, one line per stack with live samples, largest
 * first, then `MAPPED_LIBRARIES:` and /proc/self/maps. The header's figures are the sums of the
 * stack lines (live samples; in brackets, everything sampled on those stacks since load).
 * Before the stack lines, the creation stacks of the program's resources still alive:
 *   `# leakgate-agent thread TID NAME @ 0x... 0x...` for each thread made with pthread_create and
 *     still running (NAME from /proc/self/task/TID/comm, whitespace turned into '_');
 *   `# leakgate-agent fd FD @ 0x... 0x...` for each socket made with socket, accept or accept4 and
 *     still open (checked by inode, so a reused descriptor is not misnamed).
 * Then the peak since the previous profile (since load for the first), which a transient build-up
 * (built and freed between two profiles) leaves behind although the stack lines no longer show it:
 *   `# leakgate-agent peak_total inuse_objects=N inuse_bytes=N`, the sums of the peak lines;
 *   `# leakgate-agent peak N: B [N: B] @ 0x... 0x...` for each stack with live samples at the
 *     peak, largest first: its live samples and their bytes, figured like a stack line (the bracket
 *     repeats them) and unsampled the same way.
 * The peak is a snapshot of every stack's live samples. The agent estimates the bytes the live
 * samples stand for (each weighed by heap_v2's 1 / (1 - exp(-size / period)); in exact mode its
 * size) and takes a new snapshot whenever a sampled allocation raises that estimate above the
 * snapshot's by more than max(4 sample periods (exact: 1 MiB), 1/8 of the snapshot's): the
 * snapshot falls short of the true peak by at most that step, and the copies (under the lock a
 * sample takes anyway) stay rare. When a profile is taken, the live state replaces the snapshot
 * if its estimate is higher, and the next window starts from the live state; a profile that could
 * not be written still ends its window.
 * Profiles are written to PREFIX.NNNN.heap (NNNN from 0001, like gperftools) through a temporary
 * file and a rename, so a reader never sees half a profile. A process descended from the first one
 * that loaded the agent (forked, or started by it with the environment inherited; the agent marks
 * the environment with LEAKGATE_AGENT_ROOT_PID) writes to PREFIX_PID.NNNN.heap instead, so that it
 * never overwrites the first process's profiles.
 *
 * Environment (read once, at load):
 *   LEAKGATE_AGENT_PREFIX   where profiles go; without it the agent only counts and samples.
 *   LEAKGATE_AGENT_SIGNAL   a signal number that requests a profile (default 12, SIGUSR2, when a
 *                           prefix is set; 0: none). The handler only wakes the agent's thread
 *                           ("leakgate-agent"), which writes the profile; one profile per signal
 *                           delivered. A program that installs its own handler for the signal
 *                           takes it over.
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
 * PREFIX.NNNN.heap. Returns 0, or -errno (-EINVAL when NULL is given and no prefix is set).
 * Thread-safe; profiles are written one at a time while other threads keep allocating. */
int leakgate_agent_dump(const char* path);

/* The exact totals now. */
struct leakgate_agent_totals leakgate_agent_get_totals(void);

/* Changes the sample period (bytes; 0 = exact) for allocations from now on. */
void leakgate_agent_set_sample_period(int64_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* LEAKGATE_AGENT_H_ */
