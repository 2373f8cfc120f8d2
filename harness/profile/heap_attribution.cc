#include "harness/profile/heap_attribution.h"

#include <dlfcn.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <cctype>
#include <map>
#include <utility>

#include "base/result_names.h"
#include "base/units.h"
#include "harness/analyze/growth_order.h"
#include "harness/profile/heap_profile.h"

namespace leakgate::harness {

GrowthItem GrowthItemOfSite(const SiteGrowth& site) {
  GrowthItem item;
  item.kind = "heap";
  item.site = site.site.signature;
  item.per_run = site.per_run;
  item.total = site.total;
  item.id = site.site.id;
  if (!site.site.file.empty()) {
    item.location = site.site.file + (site.site.line > 0 ? ":" + std::to_string(site.site.line) : "");
  }
  item.stack = site.site.stack;
  // A site inside a library (sqlite's page cache, say) is reached from the program: that call is
  // what a reader can act on, so it leads the frames after the site.
  if (!site.site.called_from.empty()) {
    if (item.stack.empty()) item.stack.push_back(site.site.signature);
    item.stack.insert(item.stack.begin() + 1, site.site.called_from);
  }
  item.suppressed = site.suppressed;
  return item;
}

HeapAttribution AttributeHeapGrowth(std::span<const std::string> profile_paths,
                                    const Suppressions& suppressions, Symbolizer& symbolizer,
                                    const SiteGrowthOptions& options) {
  HeapAttribution out;
  std::vector<HeapProfile> profiles;
  for (const std::string& path : profile_paths) {
    auto profile = ReadHeapProfile(path);
    if (!profile) {
      out.notes.push_back("heap profile skipped: " + profile.error().message);
      continue;
    }
    out.profiles.push_back(path);
    profiles.push_back(std::move(*profile));
  }
  if (profiles.size() < 2) {
    out.notes.push_back("allocation sites not named: " + std::to_string(profiles.size()) +
                        " readable heap profile(s), at least two are needed (the reference after "
                        "the warm-up and one after a judged run)");
    return out;
  }
  auto report = SiteGrowthAcross(profiles, symbolizer, suppressions, options);
  if (!report) {
    out.notes.push_back("allocation sites not named: " + report.error().message);
    return out;
  }
  out.sampled = report->sampled;
  out.sample_period = report->sample_period;
  for (const std::string& note : report->notes) out.notes.push_back(note);
  for (const std::string& warning : symbolizer.warnings()) out.notes.push_back(warning);
  // Growing sites first (largest total first, as SiteGrowthAcross orders them), then suppressed.
  for (const SiteGrowth& site : report->sites) {
    if (site.growing && site.suppressed.empty()) out.growth.push_back(GrowthItemOfSite(site));
  }
  for (const SiteGrowth& site : report->sites) {
    if (!site.suppressed.empty()) out.growth.push_back(GrowthItemOfSite(site));
  }
  return out;
}

InProcessHeapProfiles::InProcessHeapProfiles(std::string directory)
    : directory_(std::move(directory)) {
  agent_dump_ = reinterpret_cast<AgentDumpFn>(dlsym(RTLD_DEFAULT, "leakgate_agent_dump"));
  gperftools_dump_ = reinterpret_cast<GperftoolsDumpFn>(dlsym(RTLD_DEFAULT, "HeapProfilerDump"));
  gperftools_running_ =
      reinterpret_cast<GperftoolsRunningFn>(dlsym(RTLD_DEFAULT, "IsHeapProfilerRunning"));
  gperftools_profile_ =
      reinterpret_cast<GperftoolsProfileFn>(dlsym(RTLD_DEFAULT, "GetHeapProfile"));
}

std::string_view InProcessHeapProfiles::name() const {
  if (agent_dump_ != nullptr) return "agent";
  if (gperftools_dump_ != nullptr) return "heap-profile";
  return "none";
}

Result<std::optional<HeapSample>> InProcessHeapProfiles::Read() {
  std::error_code ec;
  std::filesystem::create_directories(directory_, ec);
  char file_name[32];
  std::snprintf(file_name, sizeof(file_name), "self.%04d.heap", ++sequence_);
  const std::string path = (std::filesystem::path(directory_) / file_name).string();
  if (agent_dump_ != nullptr) {
    if (int rc = agent_dump_(path.c_str()); rc != 0) {
      return Fail(ErrorCode::kIo, "leakgate_agent_dump(" + path + ") failed: " +
                                      SystemErrorText(rc < 0 ? -rc : rc));
    }
  } else if (gperftools_profile_ != nullptr && gperftools_running_ != nullptr &&
             gperftools_running_() != 0) {
    // GetHeapProfile returns the profile as text (malloc'ed): written here so the file lands
    // where this source says, whatever HEAPPROFILE prefix the profiler was started with.
    char* text = gperftools_profile_();
    if (text == nullptr) return Fail(ErrorCode::kUnavailable, "GetHeapProfile() returned nothing");
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      std::free(text);
      return Fail(ErrorCode::kIo, "cannot write " + tmp + ": " + SystemErrorText(errno));
    }
    const size_t length = std::strlen(text);
    const bool written = std::fwrite(text, 1, length, f) == length;
    std::free(text);
    if (std::fclose(f) != 0 || !written) {
      return Fail(ErrorCode::kIo, "cannot write " + tmp + ": " + SystemErrorText(errno));
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) return Fail(ErrorCode::kIo, "cannot rename " + tmp + ": " + ec.message());
  } else {
    Warn("no heap profiler in this process: link or preload libleakgate_agent.so, or start "
         "gperftools' heap profiler (HeapProfilerStart) with tcmalloc linked");
    return std::optional<HeapSample>();
  }
  auto profile = ReadHeapProfile(path);
  if (!profile) return std::unexpected(profile.error());
  last_profile_ = path;
  HeapSample sample;
  sample.allocated_bytes = static_cast<int64_t>(ProfileInuseBytes(*profile));
  sample.source = std::string(name());
  return std::optional<HeapSample>(sample);
}

}  // namespace leakgate::harness

namespace leakgate::harness {
namespace {

// Symbolized frames of a creation stack, from the first frame outside the allocator, the
// standard library and the agent outwards.
std::vector<std::string> CreationFrames(const std::vector<uint64_t>& frames,
                                        const HeapProfile& profile, Symbolizer& symbolizer) {
  auto symbolized = symbolizer.Symbolize(frames, profile.mappings);
  if (!symbolized) return {};
  std::vector<SourceFrame> flat;
  for (const auto& per_address : *symbolized) {
    flat.insert(flat.end(), per_address.begin(), per_address.end());
  }
  return SiteOfStack(flat).stack;
}

// Attaches to each thread growth item the creation stack of a thread of that name, and to each
// socket growth item the creation stack of a socket of that site, when the agent recorded them.
void NameCreationStacks(const HeapProfile& profile, const SocketSiteOfFd& socket_site,
                        Symbolizer& symbolizer, std::vector<GrowthItem>& growth) {
  std::map<std::string, const CreationStack*> thread_by_name;  // the newest of each name
  for (const CreationStack& thread : profile.threads) {
    auto& slot = thread_by_name[thread.name];
    if (slot == nullptr || thread.id > slot->id) slot = &thread;
  }
  std::map<std::string, const CreationStack*> socket_by_site;
  if (socket_site) {
    for (const CreationStack& socket : profile.sockets) {
      const std::optional<std::string> site = socket_site(static_cast<int>(socket.id));
      if (!site) continue;
      auto& slot = socket_by_site[*site];
      if (slot == nullptr || socket.id > slot->id) slot = &socket;
    }
  }
  for (GrowthItem& item : growth) {
    if (!item.stack.empty()) continue;
    const CreationStack* creation = nullptr;
    if (item.kind == "thread") {
      std::string name = item.site;
      std::replace_if(
          name.begin(), name.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); },
          '_');
      if (auto it = thread_by_name.find(name); it != thread_by_name.end()) creation = it->second;
    } else if (item.kind == "socket" || item.kind == "fd") {
      if (auto it = socket_by_site.find(item.site); it != socket_by_site.end()) creation = it->second;
    }
    if (creation != nullptr) item.stack = CreationFrames(creation->frames, profile, symbolizer);
  }
}

void AddToCheckDetail(Analysis& analysis, std::string_view name, bool failing_only,
                      const std::string& sentence) {
  for (CheckResult& check : analysis.checks) {
    if (check.name != name || (failing_only && check.verdict == Verdict::kPass)) continue;
    check.detail += sentence;
  }
}

}  // namespace

std::optional<HeapProfileSummary> AttributeGateHeap(const GateHeapProfiles& profiles,
                                                    const Suppressions& suppressions,
                                                    const SocketSiteOfFd& socket_site,
                                                    Symbolizer& symbolizer, Analysis& analysis) {
  std::vector<std::string> paths;
  if (!profiles.reference.empty()) paths.push_back(profiles.reference);
  for (const auto& run : profiles.judged) {
    if (!run.profile.empty()) paths.push_back(run.profile);
  }
  if (paths.empty()) return std::nullopt;  // the heap source writes no profiles

  HeapProfileSummary summary;
  summary.profiler = profiles.profiler;
  HeapAttribution attribution = AttributeHeapGrowth(paths, suppressions, symbolizer);
  summary.sampled = attribution.sampled;
  summary.sample_period = attribution.sample_period;
  summary.profiles = attribution.profiles;
  summary.notes = attribution.notes;

  const std::vector<GrowthItem>& heap_items = attribution.growth;
  // The heap sites join the list, which is ordered again as a whole (growth_order.h).
  analysis.growth.insert(analysis.growth.begin(), heap_items.begin(), heap_items.end());
  analysis.growth = OrderGrowth(std::move(analysis.growth), analysis.checks);
  const auto top = std::find_if(heap_items.begin(), heap_items.end(),
                                [](const GrowthItem& item) { return item.suppressed.empty(); });
  if (top != heap_items.end()) {
    AddToCheckDetail(analysis, check_id::kHeapGrowthPerRun, /*failing_only=*/true,
                     " Largest growing site: " + top->site + " (" +
                         FormatSize(static_cast<int64_t>(top->per_run)) + "/run" +
                         (top->location.empty() ? "" : ", " + top->location) + ").");
  }

  // The peak run is often the last one: each profile is read once for both uses below.
  std::map<std::string, std::optional<HeapProfile>> read;
  auto profile_at = [&read](const std::string& path) -> const std::optional<HeapProfile>& {
    auto it = read.find(path);
    if (it == read.end()) {
      auto profile = ReadHeapProfile(path);
      it = read.emplace(path, profile ? std::optional<HeapProfile>(*std::move(profile))
                                      : std::nullopt).first;
    }
    return it->second;
  };

  // The sites at the highest peak of a judged run.
  const GateHeapProfiles::Judged* peak_run = nullptr;
  for (const auto& run : profiles.judged) {
    if (run.profile.empty()) continue;
    if (peak_run == nullptr || run.peak_rss_bytes > peak_run->peak_rss_bytes) peak_run = &run;
  }
  if (peak_run != nullptr) {
    if (const auto& profile = profile_at(peak_run->profile); profile && !profile->peak_entries.empty()) {
      HeapProfile at_peak = *profile;
      at_peak.entries = profile->peak_entries;
      at_peak.truncated = false;
      if (auto sites = GroupBySite(at_peak, symbolizer); sites) {
        summary.peak_run = peak_run->run;
        for (const SiteUsage& site : *sites) summary.peak_bytes += site.inuse_bytes;
        for (const SiteUsage& site : *sites) {
          if (summary.peak_sites.size() >= 10) break;
          summary.peak_sites.push_back(site);
        }
      } else {
        summary.notes.push_back("sites at the peak not named: " + sites.error().message);
      }
    }
  }
  if (!summary.peak_sites.empty()) {
    const SiteUsage& first = summary.peak_sites.front();
    AddToCheckDetail(analysis, check_id::kPeakRss, /*failing_only=*/false,
                     " At the peak of run " + std::to_string(summary.peak_run) + " the heap held " +
                         FormatSize(static_cast<int64_t>(summary.peak_bytes)) + ", most of it from " +
                         first.site.signature + " (" +
                         FormatSize(static_cast<int64_t>(first.inuse_bytes)) + ").");
  }

  // Creation stacks of new threads and sockets, from the agent's lines in the last profile.
  if (!profiles.judged.empty() && !profiles.judged.back().profile.empty()) {
    if (const auto& profile = profile_at(profiles.judged.back().profile); profile) {
      NameCreationStacks(*profile, socket_site, symbolizer, analysis.growth);
    }
  }
  for (const std::string& w : symbolizer.warnings()) summary.notes.push_back(w);
  std::vector<std::string> distinct;
  for (std::string& note : summary.notes) {
    if (std::find(distinct.begin(), distinct.end(), note) == distinct.end()) {
      distinct.push_back(std::move(note));
    }
  }
  summary.notes = std::move(distinct);
  return summary;
}

}  // namespace leakgate::harness
