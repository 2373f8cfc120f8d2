// Exact heap statistics of a spawned target through gperftools' heap profiler, for targets that do
// not export their own: the target runs with tcmalloc preloaded (`LD_PRELOAD`), `HEAPPROFILE=PREFIX`
// and `HEAPPROFILESIGNAL=N`; each Read() sends signal N and reads the in-use totals of the profile
// the target dumps (`heap profile: N: BYTES [N: BYTES] @ heapprofile`, read by heap_profile.h). The
// same source reads the profiles of leakgate's agent (AgentProfileEnvironment), which are named and
// laid out the same way and carry the exact totals even when their stacks are sampled.
//
// A dump is occasionally skipped by the target (PLATFORM.md): Read() waits for a new file and signals
// again, a bounded number of times. The profiles stay in the output folder, readable by
// `google-pprof --base`. One HeapProfileSource per target; not thread-safe.
#ifndef LEAKGATE_HARNESS_HEAP_PROFILE_SOURCE_H_
#define LEAKGATE_HARNESS_HEAP_PROFILE_SOURCE_H_

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "harness/clock.h"
#include "harness/heap_profile.h"
#include "harness/heap_source.h"

namespace leakgate::harness {

// `base` with `library` appended to its LD_PRELOAD, or to the inherited LD_PRELOAD when `base` has
// none: how every preloaded profiler (tcmalloc, the agent, the CPU profiler) joins a target.
std::map<std::string, std::string> WithPreloadedLibrary(std::map<std::string, std::string> base,
                                                        const std::string& library);

// The first of `candidates` that exists; "" when none does.
std::string FirstExistingFile(std::initializer_list<const char*> candidates);

// Where tcmalloc (with the heap profiler) lives on this machine; empty when it is not installed.
std::string FindTcmallocLibrary();

// The environment that makes a spawned target dump heap profiles to `prefix`.NNNN.heap on `signal`:
// LD_PRELOAD (appended to any existing value in `base`), HEAPPROFILE, HEAPPROFILESIGNAL, the cheaper
// libgcc stack walker, and dump intervals large enough that only the signal dumps.
// kNotFound when tcmalloc is not installed.
Result<std::map<std::string, std::string>> HeapProfileEnvironment(
    const std::string& prefix, int signal, const std::map<std::string, std::string>& base = {});

// Where leakgate's allocation agent (libleakgate_agent.so) lives: $LEAKGATE_AGENT_LIBRARY when it
// names an existing file, else <folder of this program>/../lib/libleakgate_agent.so, else
// /usr/local/lib or /usr/lib; "" when none exists.
std::string FindAgentLibrary();

// The environment that makes a spawned target write the agent's profiles to `prefix`.NNNN.heap on
// `signal`, taking one sample per `sample_period_bytes` allocated on average (0: every allocation):
// LD_PRELOAD (appended to any existing value in `base`), LEAKGATE_AGENT_PREFIX,
// LEAKGATE_AGENT_SIGNAL, LEAKGATE_AGENT_SAMPLE. kNotFound when the agent library is not found;
// kInvalidArgument for a negative period.
Result<std::map<std::string, std::string>> AgentProfileEnvironment(
    const std::string& prefix, int signal, int64_t sample_period_bytes,
    const std::map<std::string, std::string>& base = {});

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

#endif  // LEAKGATE_HARNESS_HEAP_PROFILE_SOURCE_H_
