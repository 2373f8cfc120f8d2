#include "harness/profile/heap_sites.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <utility>

#include "harness/analyze/analysis.h"

namespace leakgate::harness {
namespace {

// Allocation entry points, by their name without parameters.
constexpr std::string_view kAllocatorFunctions[] = {
    "malloc",         "calloc",         "realloc",        "reallocarray",   "free",
    "aligned_alloc",  "posix_memalign", "memalign",       "valloc",         "pvalloc",
    "__libc_malloc",  "__libc_calloc",  "__libc_realloc", "__libc_memalign", "strdup",
    "strndup",        "operator new",   "operator new[]", "__cxa_allocate_exception",
    "tc_malloc",      "tc_new",         "tc_newarray",    "tc_calloc",      "tc_realloc",
    "tc_memalign",    "tc_posix_memalign"};

// Namespaces and name prefixes of the standard library, the allocators and leakgate's agent.
constexpr std::string_view kAllocatorPrefixes[] = {
    "std::",          "__gnu_cxx::",      "__cxxabiv1::", "tcmalloc::",
    "MallocHook::",   "HeapProfileTable", "(anonymous namespace)::do_malloc",
    "leakgate_agent", "leakgate::agent::", "__libc_",     "__GI_"};

// Objects whose code is the allocator, the C and C++ runtime or leakgate's agent.
constexpr std::string_view kAllocatorModules[] = {
    "libtcmalloc", "libleakgate_agent", "libc.so",  "libc-",     "libstdc++",
    "libgcc_s",    "ld-linux",          "libunwind", "libprofiler"};

std::string_view BaseName(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// "libsqlite3.so.0.8.6", "libfoo.so": a shared library rather than the program.
bool IsSharedLibrary(std::string_view module) {
  const std::string_view name = BaseName(module);
  return name.find(".so") != std::string_view::npos && name.starts_with("lib");
}

// True when the name has a scope ("ns::f", "C::f"); template arguments do not count.
bool HasScope(std::string_view name) {
  int depth = 0;
  for (size_t i = 0; i + 1 < name.size(); ++i) {
    if (name[i] == '<' || name[i] == '(') ++depth;
    if (name[i] == '>' || name[i] == ')') --depth;
    if (depth == 0 && name[i] == ':' && name[i + 1] == ':') return true;
  }
  return false;
}

std::string Hex(uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

// "module+0xOFFSET", or the bare address when it lies in no mapping.
std::string OffsetName(const SourceFrame& frame) {
  if (frame.module.empty()) return Hex(frame.address);
  return std::string(BaseName(frame.module)) + "+" + Hex(frame.offset);
}

std::string FrameText(const SourceFrame& frame) {
  if (frame.function.empty() && frame.file.empty()) return OffsetName(frame);
  std::string text = frame.function.empty() ? std::string("??")
                                            : FunctionNameWithoutParameters(frame.function);
  if (!frame.file.empty()) {
    text += " " + frame.file;
    if (frame.line > 0) text += ":" + std::to_string(frame.line);
  }
  return text;
}

std::string FnvId(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  char digits[24];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(hash));
  return std::string(digits, 12);
}

struct SiteSum {
  AllocationSite site;
  double bytes = 0;
  double objects = 0;
  double best_stack_bytes = -1;  // the bytes of the stack `site` was taken from
  int stacks = 0;
};

// The sites of one profile's live stacks, by signature. Symbolizes every live address in one call.
Result<std::map<std::string, SiteSum>> SitesOf(const HeapProfile& profile, Symbolizer& symbolizer) {
  std::vector<uint64_t> addresses;
  for (const HeapProfileEntry& entry : profile.entries) {
    if (entry.figures.inuse_objects <= 0 && entry.figures.inuse_bytes <= 0) continue;
    addresses.insert(addresses.end(), entry.frames.begin(), entry.frames.end());
  }
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  auto symbolized = symbolizer.Symbolize(addresses, profile.mappings);
  if (!symbolized) return std::unexpected(symbolized.error());
  std::unordered_map<uint64_t, const std::vector<SourceFrame>*> frames_of;
  for (size_t i = 0; i < addresses.size() && i < symbolized->size(); ++i) {
    frames_of[addresses[i]] = &(*symbolized)[i];
  }

  std::map<std::string, SiteSum> sites;
  std::vector<SourceFrame> frames;
  for (const HeapProfileEntry& entry : profile.entries) {
    if (entry.figures.inuse_objects <= 0 && entry.figures.inuse_bytes <= 0) continue;
    frames.clear();
    for (uint64_t address : entry.frames) {
      if (auto it = frames_of.find(address); it != frames_of.end()) {
        frames.insert(frames.end(), it->second->begin(), it->second->end());
      }
    }
    const InuseEstimate estimate = EstimateInuse(profile, entry);
    AllocationSite site = SiteOfStack(frames);
    SiteSum& sum = sites[site.signature];
    sum.bytes += estimate.bytes;
    sum.objects += estimate.objects;
    ++sum.stacks;
    if (estimate.bytes > sum.best_stack_bytes) {
      sum.best_stack_bytes = estimate.bytes;
      sum.site = std::move(site);
    }
  }
  return sites;
}

}  // namespace

bool IsAllocatorOrStandardFrame(const SourceFrame& frame) {
  if (!frame.module.empty()) {
    const std::string_view module = BaseName(frame.module);
    for (std::string_view prefix : kAllocatorModules) {
      if (module.starts_with(prefix)) return true;
    }
  }
  // Inlined library code is sometimes named without its namespace ("emplace_back") or not at
  // all: its file, a libstdc++ header, tells.
  const bool in_library_header = frame.file.find("/include/c++/") != std::string::npos;
  // Header-only libraries installed on the system (nlohmann/json, cpp-httplib, ...) are library
  // code too, inlined into the program: a row built with json's operator[] is charged to the
  // program function that builds it.
  if (!in_library_header &&
      (frame.file.starts_with("/usr/include/") || frame.file.starts_with("/usr/local/include/"))) {
    return true;
  }
  if (frame.function.empty()) return in_library_header;
  const std::string name = FunctionNameWithoutParameters(frame.function);
  for (std::string_view function : kAllocatorFunctions) {
    if (name == function) return true;
  }
  for (std::string_view prefix : kAllocatorPrefixes) {
    if (name.starts_with(prefix)) return true;
  }
  return in_library_header && !HasScope(name);
}

AllocationSite SiteOfStack(std::span<const SourceFrame> frames) {
  AllocationSite site;
  if (frames.empty()) {
    site.signature = "(no stack)";
    site.id = FnvId(site.signature);
    return site;
  }
  size_t at = 0;
  while (at < frames.size() && IsAllocatorOrStandardFrame(frames[at])) ++at;
  if (at == frames.size()) at = 0;
  // Unnamed inlined code outside the library is charged to the function it was inlined into: the
  // real frame of the same return address.
  if (frames[at].function.empty() && !frames[at].file.empty()) {
    for (size_t i = at + 1; i < frames.size() && frames[i].address == frames[at].address; ++i) {
      if (!frames[i].inlined && !frames[i].function.empty()) at = i;
    }
  }
  const SourceFrame& frame = frames[at];
  site.function = frame.function;
  site.file = frame.file;
  site.line = frame.line;
  site.module = frame.module;
  if (frame.function.empty()) {
    site.signature = OffsetName(frame);
  } else {
    const std::string_view where = !frame.file.empty() ? BaseName(frame.file)
                                                       : BaseName(frame.module);
    site.signature = FunctionNameWithoutParameters(frame.function);
    if (!where.empty()) site.signature += " (" + std::string(where) + ")";
  }
  site.id = FnvId(site.signature);
  for (size_t i = at; i < frames.size() && site.stack.size() < 8; ++i) {
    site.stack.push_back(FrameText(frames[i]));
  }
  if (IsSharedLibrary(frame.module)) {
    for (size_t i = at + 1; i < frames.size(); ++i) {
      if (frames[i].module != frame.module && !IsAllocatorOrStandardFrame(frames[i])) {
        site.called_from = FrameText(frames[i]);
        break;
      }
    }
  }
  return site;
}

std::vector<StackDelta> DiffByStack(const HeapProfile& base, const HeapProfile& later) {
  std::map<std::vector<uint64_t>, StackDelta> by_stack;
  auto add = [&](const HeapProfile& profile, bool is_later) {
    for (const HeapProfileEntry& entry : profile.entries) {
      if (entry.figures.inuse_objects <= 0 && entry.figures.inuse_bytes <= 0) continue;
      const InuseEstimate estimate = EstimateInuse(profile, entry);
      StackDelta& delta = by_stack[entry.frames];
      (is_later ? delta.later_bytes : delta.base_bytes) += estimate.bytes;
      (is_later ? delta.later_objects : delta.base_objects) += estimate.objects;
    }
  };
  add(base, false);
  add(later, true);
  std::vector<StackDelta> deltas;
  deltas.reserve(by_stack.size());
  for (auto& [frames, delta] : by_stack) {
    delta.frames = frames;
    deltas.push_back(std::move(delta));
  }
  std::stable_sort(deltas.begin(), deltas.end(), [](const StackDelta& a, const StackDelta& b) {
    return a.later_bytes - a.base_bytes > b.later_bytes - b.base_bytes;
  });
  return deltas;
}

Result<std::vector<SiteUsage>> GroupBySite(const HeapProfile& profile, Symbolizer& symbolizer) {
  auto sites = SitesOf(profile, symbolizer);
  if (!sites) return std::unexpected(sites.error());
  std::vector<SiteUsage> usage;
  for (auto& [signature, sum] : *sites) {
    usage.push_back(SiteUsage{std::move(sum.site), sum.bytes, sum.objects, sum.stacks});
  }
  std::stable_sort(usage.begin(), usage.end(), [](const SiteUsage& a, const SiteUsage& b) {
    return a.inuse_bytes > b.inuse_bytes;
  });
  return usage;
}

Result<SiteGrowthReport> SiteGrowthAcross(std::span<const HeapProfile> profiles,
                                          Symbolizer& symbolizer,
                                          const Suppressions& suppressions,
                                          const SiteGrowthOptions& options) {
  if (profiles.size() < 2) {
    return Fail(ErrorCode::kInvalidArgument,
                "site growth needs the reference profile and at least one later profile, got " +
                    std::to_string(profiles.size()));
  }
  SiteGrowthReport report;
  const size_t warnings_before = symbolizer.warnings().size();
  struct Series {
    AllocationSite site;
    std::vector<double> bytes;
    std::vector<double> objects;
  };
  std::map<std::string, Series> series;
  for (size_t k = 0; k < profiles.size(); ++k) {
    const HeapProfile& profile = profiles[k];
    if (profile.kind == HeapProfileKind::kSampled) {
      report.sampled = true;
      report.sample_period = std::max(report.sample_period, profile.sample_period);
    }
    const std::string name = "profile " + std::to_string(k) + " (" + profile.source + ")";
    if (profile.truncated) {
      report.notes.push_back(name + ": " + profile.truncation +
                             "; the sites of the missing stacks are undercounted");
    }
    if (profile.mappings.empty()) {
      report.notes.push_back(name +
                             " lists no mapped objects (no MAPPED_LIBRARIES): its stacks cannot "
                             "be symbolized and are grouped by address");
    }
    auto sites = SitesOf(profile, symbolizer);
    if (!sites) return std::unexpected(sites.error());
    for (auto& [signature, sum] : *sites) {
      Series& entry = series[signature];
      if (entry.bytes.empty()) {
        entry.bytes.assign(profiles.size(), 0.0);
        entry.objects.assign(profiles.size(), 0.0);
      }
      entry.bytes[k] = sum.bytes;
      entry.objects[k] = sum.objects;
      entry.site = std::move(sum.site);  // the latest profile's description wins
    }
  }
  const auto& warnings = symbolizer.warnings();
  for (size_t i = warnings_before; i < warnings.size(); ++i) report.notes.push_back(warnings[i]);

  double floor = options.floor_bytes;
  if (report.sampled) floor = std::max(floor, 2.0 * static_cast<double>(report.sample_period));
  std::vector<double> x(profiles.size());
  for (size_t k = 0; k < x.size(); ++k) x[k] = static_cast<double>(k);

  for (auto& [signature, entry] : series) {
    SiteGrowth growth;
    growth.total = entry.bytes.back() - entry.bytes.front();
    if (growth.total <= 0) continue;  // a site that did not grow is neither growing nor kept
    if (auto slope = TheilSenSlope(x, entry.bytes)) {
      growth.per_run = slope->slope;
      const bool persistent = slope->pairs > 0 && 4 * slope->positive_pairs >= 3 * slope->pairs;
      growth.growing = growth.total >= floor && slope->slope > 0 && persistent;
    }
    if (!growth.growing) continue;
    const AllocationSite& site = entry.site;
    std::vector<std::string> names = {site.signature};
    if (!site.function.empty()) {
      names.push_back(site.function);
      names.push_back(FunctionNameWithoutParameters(site.function));
    }
    if (!site.file.empty()) names.push_back(site.file + ":" + std::to_string(site.line));
    if (const Suppression* match = suppressions.Match("heap", names)) {
      growth.growing = false;
      growth.suppressed = match->reason;
    }
    growth.site = entry.site;
    growth.bytes = std::move(entry.bytes);
    growth.objects = std::move(entry.objects);
    report.sites.push_back(std::move(growth));
  }
  std::stable_sort(report.sites.begin(), report.sites.end(),
                   [](const SiteGrowth& a, const SiteGrowth& b) { return a.total > b.total; });
  if (report.sites.size() > static_cast<size_t>(std::max(0, options.max_sites))) {
    report.sites.resize(static_cast<size_t>(std::max(0, options.max_sites)));
  }
  return report;
}

}  // namespace leakgate::harness
