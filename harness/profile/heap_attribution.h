// Names what grew on the heap during a gate: the profiles a target dumped (one at the reference
// point after the warm-up, one after each judged run) diffed by allocation site, as growth items
// for result.json and the console, the sites at the peak and the creation stacks of threads and
// sockets (AttributeGateHeap); and, for a gate on the calling process itself, a heap source that
// dumps this process's own profiles.
//
// AttributeHeapGrowth reads the files, symbolizes every stack once (Addr2lineSymbolizer caches by
// object and offset) and applies the suppressions. A profile that cannot be read is named in the
// notes and skipped (a gate never fails because attribution failed); fewer than two readable
// profiles give no growth and a note saying why.
//
// Thread-safety: the function is thread-safe when its Symbolizer is; InProcessHeapProfiles is used
// by one thread at a time.
#ifndef LEAKGATE_HARNESS_PROFILE_HEAP_ATTRIBUTION_H_
#define LEAKGATE_HARNESS_PROFILE_HEAP_ATTRIBUTION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "harness/analyze/analysis.h"
#include "harness/profile/heap_sites.h"
#include "harness/sample/heap_source.h"
#include "harness/scenario/suppressions.h"
#include "harness/profile/symbolizer.h"

namespace leakgate::harness {

struct HeapAttribution {
  std::vector<GrowthItem> growth;     // kind "heap": growing sites, then suppressed ones
  std::vector<std::string> notes;     // unreadable or truncated profiles, symbolizer problems
  std::vector<std::string> profiles;  // the profiles used, reference first
  bool sampled = false;
  int64_t sample_period = 0;
  int sites_seen = 0;  // sites in the last profile
};

// `profile_paths`: the reference first, then one per judged run, in order.
HeapAttribution AttributeHeapGrowth(std::span<const std::string> profile_paths,
                                    const Suppressions& suppressions, Symbolizer& symbolizer,
                                    const SiteGrowthOptions& options = {});

// One growth item for a site.
GrowthItem GrowthItemOfSite(const SiteGrowth& site);

// What the heap profiles of a gate showed beyond the growth items (which go to Analysis::growth).
struct HeapProfileSummary {
  std::string profiler;        // the heap source's name: "agent", "heap-profile", ...
  bool sampled = false;
  int64_t sample_period = 0;   // bytes per sample when sampled
  std::vector<std::string> profiles;  // diffed: the reference (after the warm-up), then judged runs
  std::vector<std::string> notes;     // unreadable or truncated profiles, symbolizer problems
  // The sites holding the most memory at the peak of the judged run with the highest peak RSS
  // (from the agent's peak snapshot), largest first; empty when the profiles have no peak.
  int peak_run = 0;
  double peak_bytes = 0;  // estimated heap in use at that peak
  std::vector<SiteUsage> peak_sites;
};

// The heap profiles of one gate: the reference (taken after the last warm-up run, else at the
// baseline) and one per judged run, with each judged run's peak RSS.
struct GateHeapProfiles {
  std::string profiler;   // the heap source's name
  std::string reference;  // "" without one
  struct Judged {
    int run = 0;
    int64_t peak_rss_bytes = 0;
    std::string profile;  // "" when none was written after that run
  };
  std::vector<Judged> judged;
};

// Resolves a socket fd of the target (the agent records sockets by fd) to its site
// ("tcp -> 127.0.0.1:8080"); nullopt when the fd is gone or not a socket.
using SocketSiteOfFd = std::function<std::optional<std::string>(int fd)>;

// Names what the heap profiles show, while the target still runs (its sockets are resolved for the
// creation stacks): the allocation sites that grew between the reference and each judged run
// (added to `analysis.growth`, which is then ordered again as a whole by OrderGrowth), the sites
// at the highest peak of a judged run, and where new threads and sockets were created (the
// agent's lines in the last profile, attached to the thread and socket growth items). The failing heap and peak-RSS checks get a sentence naming
// the largest site. The verdict is never changed: attribution only adds names and notes. nullopt
// when the gate has no profiles.
std::optional<HeapProfileSummary> AttributeGateHeap(const GateHeapProfiles& profiles,
                                                    const Suppressions& suppressions,
                                                    const SocketSiteOfFd& socket_site,
                                                    Symbolizer& symbolizer, Analysis& analysis);

// Heap statistics and profiles of the calling process: each Read() writes a profile into
// `directory` (self.NNNN.heap) through leakgate's agent when it is linked or preloaded
// (leakgate_agent_dump), else through gperftools' heap profiler when it is running in this process
// (HeapProfilerDump; start it with HeapProfilerStart), both found with dlsym; the in-use bytes come
// from the profile. Neither present: available() is false and Read() answers nullopt with a warning.
class InProcessHeapProfiles : public HeapSource {
 public:
  explicit InProcessHeapProfiles(std::string directory);
  bool available() const { return agent_dump_ != nullptr || gperftools_dump_ != nullptr; }
  Result<std::optional<HeapSample>> Read() override;
  std::string_view name() const override;
  std::string LastProfile() const override { return last_profile_; }

 private:
  using AgentDumpFn = int (*)(const char* path);
  using GperftoolsDumpFn = void (*)(const char* reason);
  using GperftoolsRunningFn = int (*)();
  using GperftoolsProfileFn = char* (*)();

  std::string directory_;
  AgentDumpFn agent_dump_ = nullptr;
  GperftoolsDumpFn gperftools_dump_ = nullptr;
  GperftoolsRunningFn gperftools_running_ = nullptr;
  GperftoolsProfileFn gperftools_profile_ = nullptr;
  int sequence_ = 0;
  std::string last_profile_;
};

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_PROFILE_HEAP_ATTRIBUTION_H_
