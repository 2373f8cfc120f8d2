// Heap profiles in gperftools' text formats, read into plain values.
//
// Two kinds share one layout (first line, one line per stack, then `MAPPED_LIBRARIES:` and a copy of
// /proc/PID/maps):
//  * exact:   `heap profile:    N:  BYTES [   N:  BYTES] @ heapprofile` (gperftools' heap profiler,
//             HEAPPROFILE/HeapProfilerDump, and leakgate's agent with sampling off): every live
//             allocation is counted;
//  * sampled: `heap profile:    N:  BYTES [   N:  BYTES] @ heap_v2/PERIOD` (leakgate's agent, and
//             tcmalloc's sampler): allocations sampled as a Poisson process with a mean of PERIOD
//             bytes; each line's figures are the sampled ones, scaled the way pprof does when read.
// Stack lines: `LIVE_N: LIVE_BYTES [ALLOC_N: ALLOC_BYTES] @ 0xADDR 0xADDR ...`, return addresses,
// innermost first. leakgate's agent adds lines starting with `# leakgate-agent` (ignored by pprof)
// carrying the exact totals of the whole heap, counted on every allocation even when stacks are
// sampled: `# leakgate-agent exact_inuse_objects=N exact_inuse_bytes=N exact_alloc_objects=N
// exact_alloc_bytes=N sample_period=N pid=N`. Its resource lines (`thread TID NAME @ ...`,
// `fd FD @ ...`) and peak lines (`peak N: B [N: B] @ ...`) are read into their own fields; any
// other `#` line is skipped.
//
// gperftools writes at most 1 MiB and silently drops stacks beyond it: a profile whose stack lines
// sum to less than its header says, or whose MAPPED_LIBRARIES section is missing, is marked
// truncated with the figures, and readers say so rather than trust the missing part.
//
// Pure functions on values; thread-safe.
#ifndef LEAKGATE_HARNESS_PROFILE_HEAP_PROFILE_H_
#define LEAKGATE_HARNESS_PROFILE_HEAP_PROFILE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace leakgate::harness {

struct HeapProfileTotals {
  int64_t inuse_objects = 0;
  int64_t inuse_bytes = 0;
  int64_t alloc_objects = 0;  // since the start of profiling
  int64_t alloc_bytes = 0;
};

enum class HeapProfileKind { kExact, kSampled };

struct HeapProfileEntry {
  HeapProfileTotals figures;     // as written on the line (sampled figures for kSampled)
  std::vector<uint64_t> frames;  // return addresses, innermost (nearest the allocator) first
};

// One line of MAPPED_LIBRARIES (a /proc/PID/maps line).
struct MappedRegion {
  uint64_t start = 0;
  uint64_t end = 0;  // exclusive
  std::string perms;  // "r-xp"
  uint64_t offset = 0;  // file offset of `start`
  std::string path;     // "" for anonymous memory; "[heap]", "[vdso]", ... kept as written
};

// Where a resource still alive at the dump was created (the agent's `# leakgate-agent thread TID
// NAME @ ...` and `# leakgate-agent fd FD @ ...` lines).
struct CreationStack {
  int64_t id = 0;                // the thread's kernel id, or the descriptor's number
  std::string name;              // the thread's name (whitespace written as '_'); "" for an fd
  std::vector<uint64_t> frames;  // return addresses, innermost first
};

struct HeapProfile {
  std::string source;  // the file or name it was read from (for messages)
  HeapProfileKind kind = HeapProfileKind::kExact;
  int64_t sample_period = 0;  // bytes per sample for kSampled; 0 for kExact
  HeapProfileTotals header;   // the totals written on the first line
  std::vector<HeapProfileEntry> entries;  // in file order
  std::vector<MappedRegion> mappings;     // empty when the section is missing
  // Exact totals of the whole heap from the agent's `# leakgate-agent` line, when present.
  std::optional<HeapProfileTotals> exact_totals;
  // The agent's resource lines: threads made with pthread_create and sockets still open.
  std::vector<CreationStack> threads;
  std::vector<CreationStack> sockets;
  // The agent's peak snapshot (`# leakgate-agent peak N: B [N: B] @ ...` lines, same figures as
  // stack lines): the stacks holding the heap at its highest point since the previous profile.
  std::vector<HeapProfileEntry> peak_entries;
  bool truncated = false;
  std::string truncation;  // why it is thought truncated, with the figures; "" when complete
};

// Estimated live objects and bytes of an entry: as written for an exact profile; for a sampled one
// scaled by 1 / (1 - exp(-(bytes / objects) / period)), pprof's unsampling of heap_v2.
struct InuseEstimate {
  double objects = 0;
  double bytes = 0;
};
InuseEstimate EstimateInuse(const HeapProfile& profile, const HeapProfileEntry& entry);

// The in-use bytes of the whole heap: the agent's exact total when present, else the header's
// figure for an exact profile, else the sum of the entries' estimates.
double ProfileInuseBytes(const HeapProfile& profile);

// Parses a profile. kParse naming `source`, the line number and what was expected when the first
// line is not a heap profile header or a stack line is malformed. A profile cut short (no
// MAPPED_LIBRARIES, or stacks summing below the header) is not an error: it is returned with
// `truncated` set.
Result<HeapProfile> ParseHeapProfile(std::string_view text, std::string_view source);

// Reads and parses a file. kNotFound / kIo naming the path when it cannot be read.
Result<HeapProfile> ReadHeapProfile(const std::string& path);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_PROFILE_HEAP_PROFILE_H_
