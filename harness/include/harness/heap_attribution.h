// Names what grew on the heap during a gate: the profiles a target dumped (one at the reference
// point after the warm-up, one after each judged run) diffed by allocation site, as growth items
// for result.json and the console; and, for a gate on the calling process itself, a heap source
// that dumps this process's own profiles.
//
// AttributeHeapGrowth reads the files, symbolizes every stack once (Addr2lineSymbolizer caches by
// object and offset) and applies the suppressions. A profile that cannot be read is named in the
// notes and skipped (a gate never fails because attribution failed); fewer than two readable
// profiles give no growth and a note saying why.
//
// Thread-safety: the function is thread-safe when its Symbolizer is; InProcessHeapProfiles is used
// by one thread at a time.
#ifndef LEAKGATE_HARNESS_HEAP_ATTRIBUTION_H_
#define LEAKGATE_HARNESS_HEAP_ATTRIBUTION_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "harness/analysis.h"
#include "harness/heap_sites.h"
#include "harness/heap_source.h"
#include "harness/suppressions.h"
#include "harness/symbolizer.h"

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

#endif  // LEAKGATE_HARNESS_HEAP_ATTRIBUTION_H_
