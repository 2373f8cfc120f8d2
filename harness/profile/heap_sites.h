// Which allocation sites grew: heap profiles diffed by stack, stacks grouped by site, and the growth
// of each site across the runs of a gate.
//
// A stack's *site* is its first frame (inlined frames counted) outside the allocator and the
// standard library: operator new/malloc/calloc/realloc and their aligned forms, tcmalloc, the
// agent, libc, libstdc++, and functions in namespaces std:: and __gnu_cxx:: (e.g. std::vector's
// _M_realloc_insert, std::make_shared, std::__cxx11::basic_string), and code inlined from
// header-only libraries installed under /usr/include or /usr/local/include (nlohmann/json,
// cpp-httplib). So a vector grown by
// `BacktestEngine::Run` is charged to `BacktestEngine::Run`, whatever container code sits between.
// A stack entirely inside those (or empty) is charged to its innermost frame.
//
// A site's *signature* is stable across commits and builds: the demangled function without its
// parameter list, then the source file's base name ("leakgate::engine::StrategyFactory::Make
// (strategy.cc)"); never an address or a line number. `id` is 12 hex digits of the FNV-1a 64
// hash of the signature, for short references in reports. (A frame that cannot be named at all, in
// an object without symbols, can only be "module+0xOFFSET": stable for one build only.)
//
// Growth across profiles: profile 0 is the reference (after the warm-up), profile k the state after
// judged run k. For each site, its estimated in-use bytes in each profile; `per_run` is the
// Theil-Sen slope over them, `total` the last minus the reference. A site is *growing* when its
// total reaches `floor_bytes`, its slope is positive, and at least 3/4 of the pairwise slopes are
// positive (rises that persist, not a buffer that comes and goes); for a sampled profile the floor
// is at least two sample periods (one sample more is noise). Suppressed sites stay in the list,
// marked with the reason, and never count as growing.
//
// Pure functions except for the Symbolizer they are given; thread-safe when it is.
#ifndef LEAKGATE_HARNESS_PROFILE_HEAP_SITES_H_
#define LEAKGATE_HARNESS_PROFILE_HEAP_SITES_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "harness/profile/heap_profile.h"
#include "harness/scenario/suppressions.h"
#include "harness/profile/symbolizer.h"

namespace leakgate::harness {

struct AllocationSite {
  std::string signature;  // stable: "ns::Class::Function (file.cc)"
  std::string id;         // 12 hex digits of FNV-1a 64 of the signature
  std::string function;   // demangled, parameters kept; "" when unknown (then `module+0xOFFSET`)
  std::string file;       // "" when unknown
  int line = 0;
  std::string module;
  // Up to 8 frames from the site outwards, "function file:line" (or "module+0xOFFSET").
  std::vector<std::string> stack;
  // For a site inside a shared library (sqlite, a driver): the first frame further out that is in
  // another object and outside the allocator and the standard library, "function file:line" (the
  // program's call into the library); "" for a site in the program itself.
  std::string called_from;
};

// True for a frame that belongs to the allocator or the standard library (see above).
bool IsAllocatorOrStandardFrame(const SourceFrame& frame);

// The site of one symbolized stack (frames innermost first, inlined frames expanded).
AllocationSite SiteOfStack(std::span<const SourceFrame> frames);

// The change of one stack between two profiles of the same process (matched by the exact frame
// addresses), estimated bytes and objects (sampled profiles unsampled first).
struct StackDelta {
  std::vector<uint64_t> frames;
  double base_bytes = 0;
  double later_bytes = 0;
  double base_objects = 0;
  double later_objects = 0;
};
// Stacks with live objects in either profile, largest growth first.
std::vector<StackDelta> DiffByStack(const HeapProfile& base, const HeapProfile& later);

struct SiteUsage {
  AllocationSite site;
  double inuse_bytes = 0;    // estimated
  double inuse_objects = 0;  // estimated
  int stacks = 0;            // distinct stacks charged to the site
};
// One profile's in-use memory by site, largest first. Errors only from the symbolizer.
Result<std::vector<SiteUsage>> GroupBySite(const HeapProfile& profile, Symbolizer& symbolizer);

struct SiteGrowthOptions {
  double floor_bytes = 16 * 1024;  // smallest total growth named as growing
  int max_sites = 20;              // growing sites kept, largest total first (suppressed ones too)
};

struct SiteGrowth {
  AllocationSite site;
  std::vector<double> bytes;    // estimated in-use bytes per profile (reference first)
  std::vector<double> objects;  // the same for objects
  double per_run = 0;           // Theil-Sen slope of `bytes` (bytes per judged run)
  double total = 0;             // bytes.back() - bytes.front()
  bool growing = false;
  std::string suppressed;       // the reason of the matching suppression; "" when none
};

struct SiteGrowthReport {
  std::vector<SiteGrowth> sites;  // growing and suppressed sites, largest total first
  std::vector<std::string> notes;  // truncated profiles, missing mappings, symbolizer problems
  bool sampled = false;
  int64_t sample_period = 0;
};

// `profiles`: the reference first, then one per judged run (at least two). kInvalidArgument when
// fewer than two are given; symbolizer failures are returned as errors; truncated profiles are
// used and named in `notes`.
Result<SiteGrowthReport> SiteGrowthAcross(std::span<const HeapProfile> profiles,
                                          Symbolizer& symbolizer,
                                          const Suppressions& suppressions = {},
                                          const SiteGrowthOptions& options = {});

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_PROFILE_HEAP_SITES_H_
