// Exact heap statistics of a spawned target through gperftools' heap profiler, for targets that do
// not export their own: the target runs with tcmalloc preloaded (`LD_PRELOAD`), `HEAPPROFILE=PREFIX`
// and `HEAPPROFILESIGNAL=N`; each Read() sends signal N and reads the in-use totals of the profile
// the target dumps (`heap profile: N: BYTES [N: BYTES] @ heapprofile`, read by heap_profile.h). The
// same source reads the profiles of leakgate's agent (AgentProfileEnvironment, preload.h), which are named and
// laid out the same way and carry the exact totals even when their stacks are sampled.
//
// A dump is occasionally skipped by the target (PLATFORM.md): Read() waits for a new file and signals
// again, a bounded number of times. The profiles stay in the output folder, readable by
// `google-pprof --base`. One HeapProfileSource per target; not thread-safe.
#ifndef LEAKGATE_HARNESS_PROFILE_HEAP_PROFILE_SOURCE_H_
#define LEAKGATE_HARNESS_PROFILE_HEAP_PROFILE_SOURCE_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "harness/profile/heap_profile.h"
#include "harness/sample/heap_source.h"

namespace leakgate::harness {

// Parses the first line of a legacy text heap profile. kParse naming `source` when it is not one.
Result<HeapProfileTotals> ParseHeapProfileHeader(std::string_view text, std::string_view source);

class HeapProfileSource : public HeapSource {
 public:
  // `pid`: the target; `prefix`: its HEAPPROFILE value; `signal`: its HEAPPROFILESIGNAL.
  HeapProfileSource(pid_t pid, std::string prefix, int signal, Clock& clock,
                    double timeout_s = 3.0, int attempts = 3);

  // Success: the totals of a new dump (allocated = in-use bytes: the agent's exact total when the
  // profile has one, else the header's for an exact profile, else the unsampled estimate; cached
  // bytes are not in a profile). A dump still being written is read again until it is complete (or
  // used as it is, with a warning, when it stays cut short). Failure: kUnavailable when no new
  // profile appeared after `attempts` signals, naming the prefix; kParse when the dump cannot be
  // read as a heap profile.
  Result<std::optional<HeapSample>> Read() override;
  std::string_view name() const override { return name_; }
  // The name reports give the source: "agent" or "tcmalloc-profiler" (default "heap-profile").
  void set_name(std::string name) { name_ = std::move(name); }

  // The newest profile read so far ("" before the first Read()).
  const std::string& last_profile() const { return last_profile_; }
  std::string LastProfile() const override { return last_profile_; }
  // The newest profile read so far, parsed (nullopt before the first Read()).
  const std::optional<HeapProfile>& last_parsed() const { return last_parsed_; }

 private:
  std::string NewestProfile() const;

  pid_t pid_;
  std::string prefix_;
  int signal_;
  Clock& clock_;
  double timeout_s_;
  int attempts_;
  std::string last_profile_;
  std::string name_ = "heap-profile";
  std::optional<HeapProfile> last_parsed_;
};

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_PROFILE_HEAP_PROFILE_SOURCE_H_
