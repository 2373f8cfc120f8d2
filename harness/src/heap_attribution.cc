#include "harness/heap_attribution.h"

#include <dlfcn.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

#include "harness/heap_profile.h"

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
                                      std::strerror(rc < 0 ? -rc : rc));
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
      return Fail(ErrorCode::kIo, "cannot write " + tmp + ": " + std::strerror(errno));
    }
    const size_t length = std::strlen(text);
    const bool written = std::fwrite(text, 1, length, f) == length;
    std::free(text);
    if (std::fclose(f) != 0 || !written) {
      return Fail(ErrorCode::kIo, "cannot write " + tmp + ": " + std::strerror(errno));
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
