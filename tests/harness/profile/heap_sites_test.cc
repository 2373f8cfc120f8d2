// Allocation sites: the allocator and standard-library frames a site skips, signatures, diffs by
// stack, grouping, the growing rule (with frames given directly to a fake symbolizer), and, live,
// the sites the reference service's faults grow.
#include "harness/profile/heap_sites.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "harness/profiled_server.h"

namespace leakgate::harness {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

SourceFrame Frame(std::string function, std::string file = "", int line = 0,
                  std::string module = "/srv/app/bin/server", bool inlined = false,
                  uint64_t address = 0) {
  SourceFrame frame;
  frame.function = std::move(function);
  frame.file = std::move(file);
  frame.line = line;
  frame.module = std::move(module);
  frame.inlined = inlined;
  frame.address = address;
  return frame;
}

// Frames per address, given directly; an address it does not know is in no mapping.
class FakeSymbolizer : public Symbolizer {
 public:
  std::map<uint64_t, std::vector<SourceFrame>> frames;
  int calls = 0;

  Result<std::vector<std::vector<SourceFrame>>> Symbolize(
      std::span<const uint64_t> addresses, std::span<const MappedRegion>) override {
    ++calls;
    std::vector<std::vector<SourceFrame>> result;
    for (uint64_t address : addresses) {
      auto it = frames.find(address);
      std::vector<SourceFrame> stack =
          it == frames.end() ? std::vector<SourceFrame>{SourceFrame{}} : it->second;
      for (SourceFrame& frame : stack) frame.address = address;
      result.push_back(std::move(stack));
    }
    return result;
  }
  const std::vector<std::string>& warnings() const override { return warnings_; }

 private:
  std::vector<std::string> warnings_;
};

// FNV-1a 64 as published (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
std::string Fnv12(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  char digits[24];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(hash));
  return std::string(digits, 12);
}

// ---- Frames and sites ---------------------------------------------------------------------------

TEST(IsAllocatorOrStandardFrameTest, SkipsTheAllocatorAndTheStandardLibraryOnly) {
  const std::string libstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30";
  const std::vector<std::pair<SourceFrame, bool>> cases = {
      {Frame("operator new(unsigned long)", "", 0, libstdcxx), true},
      {Frame("operator new(unsigned long)"), true},  // linked statically: by name
      {Frame("operator new[](unsigned long, std::align_val_t)"), true},
      {Frame("malloc"), true},
      {Frame("realloc"), true},
      {Frame("posix_memalign"), true},
      {Frame("tc_malloc"), true},
      {Frame("tcmalloc::ThreadCache::FetchFromCentralCache(unsigned int, int, void* (*)(unsigned "
             "long))"),
       true},
      {Frame("", "", 0, "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4.5.10"), true},
      {Frame("", "", 0, "/usr/local/lib/libleakgate_agent.so"), true},
      {Frame("__libc_start_call_main", "", 0, "/usr/lib/x86_64-linux-gnu/libc.so.6"), true},
      {Frame("void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>("
             "__gnu_cxx::__normal_iterator<int*, std::vector<int, std::allocator<int> > >, int "
             "const&)",
             "/usr/include/c++/12/bits/vector.tcc", 453),
       true},
      {Frame("std::shared_ptr<app::Window> std::make_shared<app::Window>()"), true},
      {Frame("__gnu_cxx::new_allocator<int>::allocate(unsigned long, void const*)"), true},
      {Frame("std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> "
             ">::_M_create(unsigned long&, unsigned long)"),
       true},
      // Inlined library code named without its namespace, or not at all: told by its header.
      {Frame("emplace_back", "/usr/include/c++/12/bits/stl_vector.h", 1287), true},
      {Frame("__allocate_guarded<std::allocator<app::Window> >",
             "/usr/include/c++/12/bits/allocated_ptr.h", 98),
       true},
      {Frame("", "/usr/include/c++/12/bits/new_allocator.h", 137), true},
      // The program's own code, whatever it returns or calls its functions.
      {Frame("emplace_back", "/srv/app/src/queue.h", 40), false},
      {Frame("", "/srv/app/src/engine.cc", 60), false},
      {Frame("std::vector<int, std::allocator<int> > app::MakeList<int>(int)"), false},
      {Frame("leakgate::engine::BacktestEngine::Run(std::span<leakgate::engine::Kline const, "
             "18446744073709551615ul>, leakgate::engine::BacktestConfig const&) const",
             "/src/engine/backtest_engine.cc", 322),
       false},
      {Frame("leakgate::engine::(anonymous namespace)::WorkerPool::WorkerLoop()",
             "/usr/include/c++/12/bits/std_function.h", 591),
       false},
      {Frame("app::std_compat::Allocate(unsigned long)"), false},
      {Frame("stdx::Arena::New(unsigned long)"), false},
      {Frame("", "", 0, "/srv/app/bin/server"), false},
  };
  for (const auto& [frame, expected] : cases) {
    EXPECT_EQ(IsAllocatorOrStandardFrame(frame), expected)
        << "'" << frame.function << "' in " << frame.module << " at " << frame.file;
  }
}

// The frames of a vector grown by BacktestEngine::Run, as addr2line gives them (inlined frames
// innermost first, each address's real frame last).
std::vector<SourceFrame> VectorGrowthStack() {
  return {
      Frame("operator new(unsigned long)", "", 0, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            false, 0x10),
      Frame("std::__new_allocator<app::Trade>::allocate(unsigned long, void const*)",
            "/usr/include/c++/12/bits/new_allocator.h", 137, "/srv/app/bin/server", true, 0x20),
      Frame("allocate", "/usr/include/c++/12/bits/allocator.h", 188, "/srv/app/bin/server", true,
            0x20),
      Frame("void std::vector<app::Trade, std::allocator<app::Trade> >::_M_realloc_insert<app::"
            "Trade const&>(__gnu_cxx::__normal_iterator<app::Trade*, std::vector<app::Trade, "
            "std::allocator<app::Trade> > >, app::Trade const&)",
            "/usr/include/c++/12/bits/vector.tcc", 453, "/srv/app/bin/server", false, 0x20),
      Frame("push_back", "/usr/include/c++/12/bits/stl_vector.h", 1287, "/srv/app/bin/server", true,
            0x30),
      Frame("leakgate::engine::BacktestEngine::Run(std::span<leakgate::engine::Kline const, "
            "18446744073709551615ul>, leakgate::engine::BacktestConfig const&) const",
            "/src/engine/backtest_engine.cc", 158, "/srv/app/bin/server", false, 0x30),
      Frame("main", "/src/engine/main.cc", 10, "/srv/app/bin/server", false, 0x40),
  };
}

TEST(SiteOfStackTest, ChargesTheFirstFrameOutsideTheAllocatorAndTheLibrary) {
  const AllocationSite site = SiteOfStack(VectorGrowthStack());
  EXPECT_EQ(site.signature, "leakgate::engine::BacktestEngine::Run (backtest_engine.cc)");
  EXPECT_EQ(site.id, Fnv12(site.signature));
  EXPECT_EQ(site.function,
            "leakgate::engine::BacktestEngine::Run(std::span<leakgate::engine::Kline const, "
            "18446744073709551615ul>, leakgate::engine::BacktestConfig const&) const");
  EXPECT_EQ(site.file, "/src/engine/backtest_engine.cc");
  EXPECT_EQ(site.line, 158);
  EXPECT_EQ(site.module, "/srv/app/bin/server");
  EXPECT_EQ(site.stack,
            (std::vector<std::string>{
                "leakgate::engine::BacktestEngine::Run /src/engine/backtest_engine.cc:158",
                "main /src/engine/main.cc:10"}));
}

TEST(SiteOfStackTest, SignatureIgnoresLinesParametersAndAddresses) {
  std::vector<SourceFrame> other = VectorGrowthStack();
  other[5].function = "leakgate::engine::BacktestEngine::Run(std::span<leakgate::engine::Kline "
                      "const, 18446744073709551615ul>, leakgate::engine::RunOptions const&) const";
  other[5].line = 171;
  for (SourceFrame& frame : other) frame.address += 0x1000;
  EXPECT_EQ(SiteOfStack(other).signature, SiteOfStack(VectorGrowthStack()).signature);
  EXPECT_EQ(SiteOfStack(other).id, SiteOfStack(VectorGrowthStack()).id);
  EXPECT_EQ(Fnv12("a"), "af63dc4c8601");  // the published FNV-1a 64 of "a": af63dc4c8601ec8c
}

TEST(SiteOfStackTest, StacksWithoutAProgramFrameOrNamesStillHaveASite) {
  const std::vector<SourceFrame> allocator_only = {
      Frame("operator new(unsigned long)", "", 0, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
      Frame("std::thread::_State_impl<int>::_M_run()", "", 0,
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6")};
  EXPECT_EQ(SiteOfStack(allocator_only).signature, "operator new (libstdc++.so.6)");

  EXPECT_EQ(SiteOfStack({}).signature, "(no stack)");

  SourceFrame unknown = Frame("", "", 0, "/srv/app/lib/libplugin.so");
  unknown.offset = 0x1234;
  EXPECT_EQ(SiteOfStack(std::vector<SourceFrame>{unknown}).signature, "libplugin.so+0x1234");
  EXPECT_EQ(SiteOfStack(std::vector<SourceFrame>{unknown}).stack,
            (std::vector<std::string>{"libplugin.so+0x1234"}));

  SourceFrame unmapped = Frame("", "", 0, "");
  unmapped.address = 0xdead0;
  EXPECT_EQ(SiteOfStack(std::vector<SourceFrame>{unmapped}).signature, "0xdead0");

  // Unnamed inlined program code is charged to the function it was inlined into.
  const std::vector<SourceFrame> unnamed = {
      Frame("", "/usr/include/c++/12/bits/new_allocator.h", 137, "/srv/app/bin/server", true, 0x50),
      Frame("", "/src/engine/backtest_engine.cc", 60, "/srv/app/bin/server", true, 0x50),
      Frame("leakgate::engine::BacktestEngine::Run() const", "/src/engine/backtest_engine.cc", 311,
            "/srv/app/bin/server", false, 0x50)};
  const AllocationSite site = SiteOfStack(unnamed);
  EXPECT_EQ(site.signature, "leakgate::engine::BacktestEngine::Run (backtest_engine.cc)");
  EXPECT_EQ(site.line, 311);
}

TEST(SiteOfStackTest, ASiteInASharedLibraryNamesTheProgramCallIntoIt) {
  const std::string sqlite = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6";
  const std::vector<SourceFrame> frames = {
      Frame("malloc", "", 0, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
      Frame("sqlite3Malloc", "", 0, sqlite),
      Frame("sqlite3PagerGet", "", 0, sqlite),
      Frame("std::function<void ()>::operator()() const", "", 0, "/srv/app/bin/server"),
      Frame("app::Repository::SaveRows(long)", "/src/repository.cc", 80),
      Frame("main", "/src/main.cc", 3)};
  const AllocationSite site = SiteOfStack(frames);
  EXPECT_EQ(site.signature, "sqlite3Malloc (libsqlite3.so.0.8.6)");
  EXPECT_EQ(site.called_from, "app::Repository::SaveRows /src/repository.cc:80");
  EXPECT_EQ(SiteOfStack(VectorGrowthStack()).called_from, "");
}

// ---- Profiles built in the test -----------------------------------------------------------------

HeapProfileEntry Entry(int64_t objects, int64_t bytes, std::vector<uint64_t> frames) {
  HeapProfileEntry entry;
  entry.figures = {objects, bytes, objects, bytes};
  entry.frames = std::move(frames);
  return entry;
}

HeapProfile Profile(std::vector<HeapProfileEntry> entries, int64_t sample_period = 0,
                    std::string source = "p.heap") {
  HeapProfile profile;
  profile.source = std::move(source);
  profile.kind = sample_period > 0 ? HeapProfileKind::kSampled : HeapProfileKind::kExact;
  profile.sample_period = sample_period;
  for (const HeapProfileEntry& entry : entries) {
    profile.header.inuse_objects += entry.figures.inuse_objects;
    profile.header.inuse_bytes += entry.figures.inuse_bytes;
  }
  profile.entries = std::move(entries);
  profile.mappings = {{0x1000, 0x9000, "r-xp", 0, "/srv/app/bin/server"}};
  return profile;
}

// 0x100 operator new; 0x200 Cache::Fill; 0x210 Cache::Fill through an inlined std::vector;
// 0x300 Loader::Load; 0x400 Index::Add; 0x500 Journal::Append; 0x900 main.
FakeSymbolizer AppSymbolizer() {
  FakeSymbolizer symbolizer;
  symbolizer.frames[0x100] = {Frame("operator new(unsigned long)")};
  symbolizer.frames[0x200] = {Frame("app::Cache::Fill(int)", "/src/cache.cc", 20)};
  symbolizer.frames[0x210] = {
      Frame("push_back", "/usr/include/c++/12/bits/stl_vector.h", 1287, "/srv/app/bin/server", true),
      Frame("app::Cache::Fill(int)", "/src/cache.cc", 31)};
  symbolizer.frames[0x300] = {Frame("app::Loader::Load()", "/src/loader.cc", 7)};
  symbolizer.frames[0x400] = {Frame("app::Index::Add(long)", "/src/index.cc", 12)};
  symbolizer.frames[0x500] = {Frame("app::Journal::Append()", "/src/journal.cc", 9)};
  symbolizer.frames[0x900] = {Frame("main", "/src/main.cc", 3)};
  return symbolizer;
}

TEST(DiffByStackTest, ChangesLargestFirstWithSampledFiguresUnsampled) {
  const int64_t period = 524288;
  const HeapProfile base = Profile(
      {Entry(1, 1 << 20, {0x100, 0x200}), Entry(2, 64, {0x100, 0x300}), Entry(0, 0, {0x999})},
      period);
  const HeapProfile later = Profile(
      {Entry(3, 3 << 20, {0x100, 0x200}), Entry(1, 32, {0x100, 0x300}), Entry(1, 4096, {0x400})},
      period);
  const std::vector<StackDelta> deltas = DiffByStack(base, later);
  ASSERT_EQ(deltas.size(), 3u);  // the stack with nothing live in either is left out
  EXPECT_EQ(deltas[0].frames, (std::vector<uint64_t>{0x100, 0x200}));
  auto unsampled = [&](double objects, double bytes) {
    return bytes / (1 - std::exp(-(bytes / objects) / static_cast<double>(period)));
  };
  EXPECT_NEAR(deltas[0].base_bytes, unsampled(1, 1 << 20), 1e-6);
  EXPECT_NEAR(deltas[0].later_bytes, unsampled(3, 3 << 20), 1e-6);
  EXPECT_EQ(deltas[1].frames, (std::vector<uint64_t>{0x400}));
  EXPECT_EQ(deltas[1].base_bytes, 0);
  EXPECT_NEAR(deltas[1].later_bytes, unsampled(1, 4096), 1e-6);
  EXPECT_EQ(deltas[2].frames, (std::vector<uint64_t>{0x100, 0x300}));
  EXPECT_LT(deltas[2].later_bytes, deltas[2].base_bytes);
}

TEST(GroupBySiteTest, StacksOfOneFunctionAddUpInOneSite) {
  FakeSymbolizer symbolizer = AppSymbolizer();
  const HeapProfile profile = Profile({Entry(4, 4000, {0x100, 0x200, 0x900}),
                                       Entry(2, 3000, {0x100, 0x210, 0x900}),
                                       Entry(1, 5000, {0x100, 0x300, 0x900}),
                                       Entry(0, 0, {0x100, 0x400, 0x900})});
  auto sites = GroupBySite(profile, symbolizer);
  ASSERT_TRUE(sites) << sites.error().message;
  EXPECT_EQ(symbolizer.calls, 1);  // one batch for the whole profile
  ASSERT_EQ(sites->size(), 2u);
  EXPECT_EQ((*sites)[0].site.signature, "app::Cache::Fill (cache.cc)");
  EXPECT_EQ((*sites)[0].inuse_bytes, 7000);
  EXPECT_EQ((*sites)[0].inuse_objects, 6);
  EXPECT_EQ((*sites)[0].stacks, 2);
  EXPECT_EQ((*sites)[0].site.line, 20);  // from the larger of its stacks
  EXPECT_EQ((*sites)[1].site.signature, "app::Loader::Load (loader.cc)");
  EXPECT_EQ((*sites)[1].inuse_bytes, 5000);
  EXPECT_EQ((*sites)[1].site.stack,
            (std::vector<std::string>{"app::Loader::Load /src/loader.cc:7", "main /src/main.cc:3"}));
}

// One profile per run: the reference, then one per judged run. Per site, bytes per profile.
std::vector<HeapProfile> Series(const std::map<uint64_t, std::vector<int64_t>>& bytes_by_frame,
                                int64_t sample_period = 0) {
  size_t runs = bytes_by_frame.begin()->second.size();
  std::vector<HeapProfile> profiles;
  for (size_t k = 0; k < runs; ++k) {
    std::vector<HeapProfileEntry> entries;
    for (const auto& [frame, bytes] : bytes_by_frame) {
      if (bytes[k] > 0) entries.push_back(Entry(1, bytes[k], {0x100, frame, 0x900}));
    }
    profiles.push_back(Profile(entries, sample_period, "run" + std::to_string(k) + ".heap"));
  }
  return profiles;
}

const SiteGrowth* FindSite(const SiteGrowthReport& report, const std::string& signature) {
  for (const SiteGrowth& site : report.sites) {
    if (site.site.signature == signature) return &site;
  }
  return nullptr;
}

TEST(SiteGrowthAcrossTest, OnlyPersistentGrowthAboveTheFloorIsGrowing) {
  FakeSymbolizer symbolizer = AppSymbolizer();
  const auto profiles = Series({
      {0x200, {0, 100000, 200000, 300000, 400000}},  // a steady leak
      {0x300, {10, 200000, 200000, 200000, 200000}},  // filled once, then flat
      {0x400, {10, 60000, 10, 60000, 30000}},         // comes and goes
      {0x500, {100, 1100, 2100, 3100, 4100}},         // steady, under the floor
  });
  auto report = SiteGrowthAcross(profiles, symbolizer);
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->sites.size(), 1u) << report->sites[1].site.signature;
  const SiteGrowth& leak = report->sites[0];
  EXPECT_EQ(leak.site.signature, "app::Cache::Fill (cache.cc)");
  EXPECT_TRUE(leak.growing);
  EXPECT_EQ(leak.per_run, 100000);
  EXPECT_EQ(leak.total, 400000);
  EXPECT_EQ(leak.bytes, (std::vector<double>{0, 100000, 200000, 300000, 400000}));
  EXPECT_EQ(leak.objects, (std::vector<double>{0, 1, 1, 1, 1}));
  EXPECT_EQ(leak.suppressed, "");
  EXPECT_FALSE(report->sampled);
  EXPECT_TRUE(report->notes.empty()) << report->notes.front();
  // The floor is an option: lowered, the small steady rise counts too.
  auto low = SiteGrowthAcross(profiles, symbolizer, {}, SiteGrowthOptions{.floor_bytes = 2048});
  ASSERT_TRUE(low);
  ASSERT_NE(FindSite(*low, "app::Journal::Append (journal.cc)"), nullptr);
  EXPECT_TRUE(FindSite(*low, "app::Journal::Append (journal.cc)")->growing);
  EXPECT_EQ(FindSite(*low, "app::Index::Add (index.cc)"), nullptr);
  EXPECT_EQ(FindSite(*low, "app::Loader::Load (loader.cc)"), nullptr);
}

TEST(SiteGrowthAcrossTest, SampledProfilesNeedTwoSamplePeriodsOfGrowth) {
  FakeSymbolizer symbolizer = AppSymbolizer();
  const int64_t period = 524288;
  // Objects of 8 MiB are sampled with certainty (scale 1.0000...), so the estimates are the bytes.
  const int64_t step = 8 << 20;
  const auto small = Series({{0x200, {step, step, step, step, step + period}}}, period);
  auto flat = SiteGrowthAcross(small, symbolizer);
  ASSERT_TRUE(flat);
  EXPECT_TRUE(flat->sampled);
  EXPECT_EQ(flat->sample_period, period);
  EXPECT_TRUE(flat->sites.empty()) << "one sample period more is noise";

  const auto big = Series({{0x200, {step, 2 * step, 3 * step, 4 * step, 5 * step}}}, period);
  auto growing = SiteGrowthAcross(big, symbolizer);
  ASSERT_TRUE(growing);
  ASSERT_EQ(growing->sites.size(), 1u);
  EXPECT_TRUE(growing->sites[0].growing);
  EXPECT_NEAR(growing->sites[0].per_run, static_cast<double>(step), 1.0);
}

TEST(SiteGrowthAcrossTest, SuppressedSitesStayListedButNeverGrow) {
  FakeSymbolizer symbolizer = AppSymbolizer();
  const auto profiles = Series({{0x200, {0, 100000, 200000, 300000}},
                                {0x300, {0, 50000, 100000, 150000}}});
  auto suppressions = ParseSuppressions(
      R"({"schema": "leakgate.suppressions/1", "suppressions": [
          {"kind": "heap", "site": "*/loader.cc:*", "reason": "loaded once per table"}]})",
      "known.json");
  ASSERT_TRUE(suppressions) << suppressions.error().message;
  auto report = SiteGrowthAcross(profiles, symbolizer, *suppressions);
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->sites.size(), 2u);
  const SiteGrowth* loader = FindSite(*report, "app::Loader::Load (loader.cc)");
  ASSERT_NE(loader, nullptr);
  EXPECT_FALSE(loader->growing);
  EXPECT_EQ(loader->suppressed, "loaded once per table");
  EXPECT_TRUE(FindSite(*report, "app::Cache::Fill (cache.cc)")->growing);
}

TEST(SiteGrowthAcrossTest, KeepsTheLargestSitesAndNamesProblemsInNotes) {
  FakeSymbolizer symbolizer = AppSymbolizer();
  auto profiles = Series({{0x200, {0, 100000, 200000}},
                          {0x300, {0, 300000, 600000}},
                          {0x400, {0, 50000, 100000}}});
  profiles[1].truncated = true;
  profiles[1].truncation = "run1.heap is truncated: its stack lines hold less";
  profiles[2].mappings.clear();
  auto report = SiteGrowthAcross(profiles, symbolizer, {}, SiteGrowthOptions{.max_sites = 2});
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->sites.size(), 2u);
  EXPECT_EQ(report->sites[0].site.signature, "app::Loader::Load (loader.cc)");
  EXPECT_EQ(report->sites[1].site.signature, "app::Cache::Fill (cache.cc)");
  ASSERT_EQ(report->notes.size(), 2u);
  EXPECT_THAT(report->notes[0], HasSubstr("profile 1 (run1.heap)"));
  EXPECT_THAT(report->notes[0], HasSubstr("truncated"));
  EXPECT_THAT(report->notes[1], HasSubstr("profile 2 (run2.heap)"));
  EXPECT_THAT(report->notes[1], HasSubstr("MAPPED_LIBRARIES"));
}

TEST(SiteGrowthAcrossTest, NeedsAReferenceAndOneMoreProfile) {
  FakeSymbolizer symbolizer = AppSymbolizer();
  const std::vector<HeapProfile> one = {Profile({})};
  auto report = SiteGrowthAcross(one, symbolizer);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(report.error().message, HasSubstr("got 1"));
}

// ---- The reference service, live ----------------------------------------------------------------

// The sites grown by `faults`: a dump after a warm-up backtest, then after each of four more;
// gperftools' exact profiles, or the agent's sampled ones with `agent_sample_period`.
Result<SiteGrowthReport> LiveGrowth(const std::string& faults, Symbolizer& symbolizer,
                                    std::string* skip,
                                    std::optional<int64_t> agent_sample_period = std::nullopt) {
  if (!agent_sample_period && FindTcmallocLibrary().empty()) {
    *skip = "libtcmalloc.so.4 is not installed";
    return SiteGrowthReport{};
  }
  if (agent_sample_period && FindAgentLibrary().empty()) {
    *skip = "libleakgate_agent.so is not built";
    return SiteGrowthReport{};
  }
  if (!std::filesystem::exists(testing::BacktestServerBinary())) {
    *skip = testing::BacktestServerBinary() + " is not built";
    return SiteGrowthReport{};
  }
  testing::ScratchDir dir;
  std::string error;
  auto server = testing::ProfiledServer::Start(faults, dir.path(), &error, agent_sample_period);
  if (server == nullptr) return Fail(ErrorCode::kTargetFailed, error);
  std::vector<HeapProfile> profiles;
  for (int run = 0; run < 5; ++run) {
    const std::string status = server->RunBacktest();
    if (status != "done") {
      return Fail(ErrorCode::kTargetFailed,
                  "backtest " + std::to_string(run) + ": " + status + "; " + server->StderrText());
    }
    auto profile = server->Dump();
    if (!profile) return std::unexpected(profile.error());
    profiles.push_back(*std::move(profile));
  }
  auto report = SiteGrowthAcross(profiles, symbolizer);
  if (report) {
    std::printf("--faults %s%s:\n", faults.c_str(), agent_sample_period ? " (agent)" : "");
    for (const SiteGrowth& site : report->sites) {
      std::printf("  %s [%s] %+.0f bytes per run, %+.0f in all%s\n", site.site.signature.c_str(),
                  site.site.id.c_str(), site.per_run, site.total, site.growing ? "" : " (not growing)");
    }
    for (const std::string& note : report->notes) std::printf("  note: %s\n", note.c_str());
  }
  return report;
}

// One symbolizer for the live tests: the server binary's addresses are looked up once.
Addr2lineSymbolizer& SharedSymbolizer() {
  static Addr2lineSymbolizer* symbolizer = new Addr2lineSymbolizer();
  return *symbolizer;
}

bool StackMentions(const SiteGrowth& site, const std::string& function) {
  for (const std::string& frame : site.site.stack) {
    if (frame.find(function) != std::string::npos) return true;
  }
  return false;
}

TEST(SiteGrowthLiveTest, SingletonGrowsTheKlinesTheServerLifetimeEngineKeeps) {
  std::string skip;
  auto report = LiveGrowth("singleton", SharedSymbolizer(), &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_FALSE(report->sites.empty());
  // The engine built once keeps every session it ran in its per-session cache
  // (SessionEngine::Run copies each session's klines next to its result).
  const SiteGrowth& top = report->sites[0];
  EXPECT_TRUE(top.growing);
  EXPECT_THAT(top.site.function, StartsWith("leakgate::engine::SessionEngine::Run("));
  EXPECT_THAT(top.site.file, ::testing::EndsWith("engine/src/backtest_task.cc"));
  EXPECT_EQ(top.site.signature, "leakgate::engine::SessionEngine::Run (backtest_task.cc)");
  EXPECT_TRUE(StackMentions(top, "leakgate::engine::RunBacktestTask"));
  // The provider's own copy dies with the task: the fetch is not a growing site.
  const SiteGrowth* fetched =
      FindSite(*report, "leakgate::engine::HistoricalDataProvider::FetchKlines (data_provider.cc)");
  EXPECT_TRUE(fetched == nullptr || !fetched->growing);
  // A kline is a handful of 8-byte figures; the series is reserved for its bars.
  EXPECT_GT(top.per_run, 40.0 * testing::kShortBacktestBars);
  EXPECT_LT(top.per_run, 80.0 * testing::kShortBacktestBars);
  // The same every run, but for the cache's own list of sessions, which grows by doubling.
  EXPECT_NEAR(top.total, 4 * top.per_run, 0.01 * top.total);
  // The kept results' trades, recorded as each trade closes.
  const SiteGrowth* trades =
      FindSite(*report, "leakgate::engine::(anonymous namespace)::Account::Close (backtest_engine.cc)");
  ASSERT_NE(trades, nullptr);
  EXPECT_TRUE(trades->growing);
  EXPECT_TRUE(StackMentions(*trades, "leakgate::engine::SessionEngine::Run"));
  // No growth is charged to the allocator or the standard library.
  for (const SiteGrowth& site : report->sites) {
    EXPECT_FALSE(site.site.signature.starts_with("std::") ||
                 site.site.signature.starts_with("operator new") ||
                 site.site.signature.starts_with("malloc"))
        << site.site.signature;
  }
}

TEST(SiteGrowthLiveTest, LoopRetainGrowsTheStrategyFactoryAndTheWindows) {
  std::string skip;
  auto report = LiveGrowth("loop-retain", SharedSymbolizer(), &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_GE(report->sites.size(), 2u);
  // Every window's strategy, made by the strategy factory (GetStrategy -> MakeSmaCross), holds
  // its window, which holds it: both stay, one of each per bar after the warm-up bars.
  const SiteGrowth& strategies = report->sites[0];
  EXPECT_TRUE(strategies.growing);
  EXPECT_EQ(strategies.site.signature,
            "leakgate::engine::(anonymous namespace)::MakeSmaCross (strategy.cc)");
  EXPECT_TRUE(StackMentions(strategies, "leakgate::engine::GetStrategy"));
  EXPECT_TRUE(StackMentions(strategies, "leakgate::engine::BacktestEngine::Run"));
  const SiteGrowth& windows = report->sites[1];
  EXPECT_TRUE(windows.growing);
  EXPECT_EQ(windows.site.signature, "leakgate::engine::BacktestEngine::Run (backtest_engine.cc)");
  // One object of each per bar after the first window.
  for (const SiteGrowth* site : {&strategies, &windows}) {
    const double objects_per_run = (site->objects.back() - site->objects.front()) / 4;
    EXPECT_GT(objects_per_run, 0.9 * testing::kShortBacktestBars) << site->site.signature;
    EXPECT_LE(objects_per_run, testing::kShortBacktestBars) << site->site.signature;
  }
}

TEST(SiteGrowthLiveTest, NoFaultGrowsNoSite) {
  std::string skip;
  auto report = LiveGrowth("none", SharedSymbolizer(), &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(report) << report.error().message;
  for (const SiteGrowth& site : report->sites) {
    ADD_FAILURE() << site.site.signature << " grows by " << site.per_run << " bytes per run";
  }
}

}  // namespace
}  // namespace leakgate::harness

namespace leakgate::harness {
namespace {

// The same sites through leakgate's agent: sampled profiles (one sample per 64 KiB on average, so
// that each run's klines, 273 KiB in one allocation, are sampled almost surely), unsampled by the
// reader, read through the same HeapProfileSource.
TEST(SiteGrowthLiveTest, TheAgentsSampledProfilesNameTheSameSites) {
  constexpr int64_t kPeriod = 64 * 1024;
  std::string skip;
  auto singleton = LiveGrowth("singleton", SharedSymbolizer(), &skip, kPeriod);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(singleton) << singleton.error().message;
  EXPECT_TRUE(singleton->sampled);
  EXPECT_EQ(singleton->sample_period, kPeriod);
  ASSERT_FALSE(singleton->sites.empty());
  EXPECT_EQ(singleton->sites[0].site.signature,
            "leakgate::engine::SessionEngine::Run (backtest_task.cc)");
  EXPECT_TRUE(singleton->sites[0].growing);

  auto loop_retain = LiveGrowth("loop-retain", SharedSymbolizer(), &skip, kPeriod);
  ASSERT_TRUE(loop_retain) << loop_retain.error().message;
  std::vector<std::string> growing;
  for (const SiteGrowth& site : loop_retain->sites) {
    if (site.growing) growing.push_back(site.site.signature);
  }
  EXPECT_THAT(growing, ::testing::Contains(
                           "leakgate::engine::(anonymous namespace)::MakeSmaCross (strategy.cc)"));
}

}  // namespace
}  // namespace leakgate::harness
