// Reading heap profiles: golden files captured from the reference service, a truncated dump, the
// sampled heap_v2 format and leakgate's agent line, malformed input, and compatibility with pprof.
//
// Golden files (tests/harness/testdata):
//  * singleton.000{1,2,3}.heap.gz: real dumps of backtest_server --faults singleton run with
//    tcmalloc's heap profiler (the environment HeapProfileEnvironment builds), taken with SIGUSR2
//    after one backtest (the warm-up) and after each of two more (POST /api/backtest
//    {"symbol":"BTCUSDT"}). Kept compressed (gzip -9 -n; about 33 KB each, 615 KB as text), read
//    through `gzip -dc`.
//  * singleton.0003.cut64k.heap: singleton.0003.heap cut the way gperftools' 1 MiB cap cuts, with a
//    64 KiB buffer instead: HeapProfileTable::FillOrderedProfile keeps the maps whole at the end of
//    the buffer, writes the header, then the stack lines in their order (largest in-use first),
//    each piece (figures, each " 0xADDR", the newline) only when it still fits, so the last line
//    kept may be cut short and the smallest stacks are dropped. CutLikeGperftools below is that
//    procedure; a test checks that it still makes this file from singleton.0003.heap.
//  * sampled_v2.heap, agent_sampled.heap: written by hand in tcmalloc's heap_v2 layout, the second
//    with leakgate's agent line.
//  * expected/*.txt: what the reader and DiffByStack make of them, rendered below. Regenerate with
//    LEAKGATE_UPDATE_GOLDEN=1 after a deliberate change, and review the diff.
#include "harness/profile/heap_profile.h"
#include "harness/profile/preload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "harness/profile/heap_sites.h"
#include "harness/profiled_server.h"

namespace leakgate::harness {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kTestData = std::string(LEAKGATE_SOURCE_DIR) + "/tests/harness/testdata";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The output of a shell command (stdout), and its exit status.
std::pair<std::string, int> RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {"", -1};
  char buffer[65536];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  const int status = ::pclose(pipe);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// A golden profile's text (decompressed when it is a .gz).
std::string GoldenText(const std::string& name) {
  const std::string path = kTestData + "/" + name;
  if (!name.ends_with(".gz")) return ReadText(path);
  return RunCommand("gzip -dc '" + path + "'").first;
}

std::string StripGz(std::string name) {
  if (name.ends_with(".gz")) name.resize(name.size() - 3);
  return name;
}

HeapProfile ParseGolden(const std::string& name) {
  const std::string text = GoldenText(name);
  EXPECT_FALSE(text.empty()) << name << " could not be read";
  auto profile = ParseHeapProfile(text, StripGz(name));
  EXPECT_TRUE(profile) << profile.error().message;
  return profile ? *profile : HeapProfile{};
}

std::string Hex(uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

std::string Frames(const std::vector<uint64_t>& frames) {
  std::string text;
  for (uint64_t frame : frames) text += " " + Hex(frame);
  return text;
}

std::string Totals(const HeapProfileTotals& t) {
  return "in use " + std::to_string(t.inuse_objects) + " objects " +
         std::to_string(t.inuse_bytes) + " bytes; allocated " + std::to_string(t.alloc_objects) +
         " objects " + std::to_string(t.alloc_bytes) + " bytes";
}

std::string Number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

std::string RenderProfile(const HeapProfile& profile) {
  std::ostringstream out;
  out << "source: " << profile.source << "\n";
  out << "kind: " << (profile.kind == HeapProfileKind::kExact ? "exact" : "sampled")
      << ", sample period " << profile.sample_period << "\n";
  out << "header: " << Totals(profile.header) << "\n";
  out << "exact totals: " << (profile.exact_totals ? Totals(*profile.exact_totals) : "none")
      << "\n";
  HeapProfileTotals sum;
  int live = 0;
  for (const HeapProfileEntry& entry : profile.entries) {
    sum.inuse_objects += entry.figures.inuse_objects;
    sum.inuse_bytes += entry.figures.inuse_bytes;
    sum.alloc_objects += entry.figures.alloc_objects;
    sum.alloc_bytes += entry.figures.alloc_bytes;
    if (entry.figures.inuse_objects > 0) ++live;
  }
  out << "stack lines: " << profile.entries.size() << " (" << live << " with live objects)\n";
  out << "stack sum: " << Totals(sum) << "\n";
  out << "in-use bytes: " << Number(ProfileInuseBytes(profile)) << "\n";
  out << "truncated: " << (profile.truncated ? "yes: " + profile.truncation : "no") << "\n";
  std::set<std::string> objects;
  for (const MappedRegion& region : profile.mappings) {
    if (!region.path.empty()) objects.insert(region.path);
  }
  out << "mapped regions: " << profile.mappings.size() << ", of " << objects.size()
      << " named objects:\n";
  for (const std::string& object : objects) out << "  " << object << "\n";
  out << "first stack lines (figures as written; estimated objects, bytes):\n";
  for (size_t i = 0; i < profile.entries.size() && i < 12; ++i) {
    const HeapProfileEntry& entry = profile.entries[i];
    const InuseEstimate estimate = EstimateInuse(profile, entry);
    out << "  " << entry.figures.inuse_objects << ": " << entry.figures.inuse_bytes << " ["
        << entry.figures.alloc_objects << ": " << entry.figures.alloc_bytes << "] est "
        << Number(estimate.objects) << ", " << Number(estimate.bytes) << " @"
        << Frames(entry.frames) << "\n";
  }
  return out.str();
}

std::string RenderDiff(const std::string& base_name, const std::string& later_name,
                       const std::vector<StackDelta>& deltas) {
  std::ostringstream out;
  double bytes = 0;
  double objects = 0;
  int changed = 0;
  for (const StackDelta& delta : deltas) {
    bytes += delta.later_bytes - delta.base_bytes;
    objects += delta.later_objects - delta.base_objects;
    if (delta.later_bytes != delta.base_bytes || delta.later_objects != delta.base_objects) {
      ++changed;
    }
  }
  out << "diff " << base_name << " -> " << later_name << "\n";
  out << "stacks with live objects in either: " << deltas.size() << ", changed: " << changed
      << "\n";
  out << "change: " << Number(bytes) << " bytes, " << Number(objects) << " objects\n";
  for (const StackDelta& delta : deltas) {
    if (delta.later_bytes == delta.base_bytes && delta.later_objects == delta.base_objects) {
      continue;
    }
    out << "  " << Number(delta.later_bytes - delta.base_bytes) << " bytes ("
        << Number(delta.base_bytes) << " -> " << Number(delta.later_bytes) << "), "
        << Number(delta.later_objects - delta.base_objects) << " objects @"
        << Frames(delta.frames) << "\n";
  }
  return out.str();
}

// Compares `actual` with testdata/expected/`name`, or rewrites it under LEAKGATE_UPDATE_GOLDEN=1.
void ExpectGolden(const std::string& name, const std::string& actual) {
  const std::string path = kTestData + "/expected/" + name;
  const char* update = std::getenv("LEAKGATE_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    fs::create_directories(kTestData + "/expected");
    std::ofstream(path, std::ios::binary) << actual;
    std::printf("rewrote %s\n", path.c_str());
    return;
  }
  ASSERT_TRUE(fs::exists(path)) << path << " is missing; run with LEAKGATE_UPDATE_GOLDEN=1";
  EXPECT_EQ(actual, ReadText(path)) << "differs from " << path
                                    << " (LEAKGATE_UPDATE_GOLDEN=1 rewrites it)";
}

// gperftools' dump of a `cap`-byte buffer (HeapProfileTable::FillOrderedProfile, UnparseBucket)
// applied to a complete dump whose stack lines are in gperftools' order.
std::string CutLikeGperftools(const std::string& text, size_t cap) {
  const std::string marker = "\nMAPPED_LIBRARIES:\n";
  const size_t maps_at = text.find(marker);
  const std::string maps = text.substr(maps_at);  // written first, kept whole at the end
  const size_t size = cap - 1 - maps.size();      // the dump is given the buffer less one byte
  std::istringstream lines(text.substr(0, maps_at));
  std::string line;
  std::getline(lines, line);
  std::string out = line + "\n";
  // snprintf into what is left: a piece is written only when it and its NUL fit.
  auto fits = [&](const std::string& piece) { return piece.size() < size - out.size(); };
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const size_t at = line.find('@');
    std::vector<std::string> pieces = {line.substr(0, at + 1)};
    std::istringstream addresses(line.substr(at + 1));
    for (std::string address; addresses >> address;) pieces.push_back(" " + address);
    pieces.push_back("\n");
    for (const std::string& piece : pieces) {
      if (!fits(piece)) break;  // the rest of this stack is lost; the next stack is tried
      out += piece;
    }
  }
  return out + maps;
}

// ---- Golden files ---------------------------------------------------------------------------------

TEST(HeapProfileGoldenTest, RealDumpsReadAsRecorded) {
  for (const char* name :
       {"singleton.0001.heap.gz", "singleton.0002.heap.gz", "singleton.0003.heap.gz"}) {
    SCOPED_TRACE(name);
    const HeapProfile profile = ParseGolden(name);
    ExpectGolden(StripGz(name) + ".txt", RenderProfile(profile));
  }
}

// A complete dump of gperftools' heap profiler: its header is exactly the sum of its stack lines,
// for the in-use and the allocated figures alike (every bucket is written, live or not). Checked
// here on the real dumps, since the truncation check relies on it.
TEST(HeapProfileGoldenTest, CompleteDumpsHeaderEqualsTheSumOfTheirStacks) {
  for (const char* name :
       {"singleton.0001.heap.gz", "singleton.0002.heap.gz", "singleton.0003.heap.gz"}) {
    SCOPED_TRACE(name);
    const std::string text = GoldenText(name);
    // Sums taken from the text with a regular expression, independently of the reader.
    const std::regex line(R"(^\s*(\d+):\s+(\d+)\s+\[\s*(\d+):\s+(\d+)\]\s+@)");
    int64_t inuse = 0, alloc = 0;
    std::istringstream lines(text);
    std::string current;
    std::getline(lines, current);
    std::smatch header;
    ASSERT_TRUE(std::regex_search(current, header,
                                  std::regex(R"(heap profile:\s*(\d+):\s+(\d+)\s+\[\s*(\d+):\s+(\d+)\])")));
    while (std::getline(lines, current) && current.rfind("MAPPED_LIBRARIES:", 0) != 0) {
      std::smatch match;
      if (std::regex_search(current, match, line)) {
        inuse += std::stoll(match[2]);
        alloc += std::stoll(match[4]);
      }
    }
    EXPECT_EQ(inuse, std::stoll(header[2]));
    EXPECT_EQ(alloc, std::stoll(header[4]));

    const HeapProfile profile = ParseGolden(name);
    EXPECT_FALSE(profile.truncated) << profile.truncation;
    EXPECT_EQ(profile.header.inuse_bytes, inuse);
    EXPECT_EQ(profile.kind, HeapProfileKind::kExact);
    EXPECT_EQ(ProfileInuseBytes(profile), static_cast<double>(inuse));
    bool server_mapped = false;
    for (const MappedRegion& region : profile.mappings) {
      if (region.path.ends_with("/backtest_server") && region.perms == "r-xp") server_mapped = true;
    }
    EXPECT_TRUE(server_mapped) << "the executable's code mapping was not read";
  }
}

TEST(HeapProfileGoldenTest, DiffByStackBetweenWarmupAndLaterDump) {
  const HeapProfile base = ParseGolden("singleton.0001.heap.gz");
  const HeapProfile later = ParseGolden("singleton.0003.heap.gz");
  const std::vector<StackDelta> deltas = DiffByStack(base, later);
  ExpectGolden("singleton.diff.0001-0003.txt",
               RenderDiff("singleton.0001.heap", "singleton.0003.heap", deltas));
  // Exact profiles: the stack changes add up to the change of the header's in-use total, and the
  // largest growth comes first.
  double change = 0;
  for (const StackDelta& delta : deltas) change += delta.later_bytes - delta.base_bytes;
  EXPECT_EQ(change, static_cast<double>(later.header.inuse_bytes - base.header.inuse_bytes));
  ASSERT_FALSE(deltas.empty());
  for (size_t i = 1; i < deltas.size(); ++i) {
    EXPECT_GE(deltas[i - 1].later_bytes - deltas[i - 1].base_bytes,
              deltas[i].later_bytes - deltas[i].base_bytes);
  }
  EXPECT_GT(deltas.front().later_bytes, deltas.front().base_bytes);
}

TEST(HeapProfileGoldenTest, TheCutDumpIsTheCapAppliedToTheRealOne) {
  const std::string cut = CutLikeGperftools(GoldenText("singleton.0003.heap.gz"), 64 * 1024);
  EXPECT_LE(cut.size(), 64u * 1024);
  EXPECT_EQ(cut, GoldenText("singleton.0003.cut64k.heap"));
}

TEST(HeapProfileGoldenTest, DumpCutByTheCapIsMarkedTruncatedWithItsFigures) {
  const HeapProfile whole = ParseGolden("singleton.0003.heap.gz");
  const HeapProfile cut = ParseGolden("singleton.0003.cut64k.heap");
  ExpectGolden("singleton.0003.cut64k.heap.txt", RenderProfile(cut));
  EXPECT_TRUE(cut.truncated);
  EXPECT_LT(cut.entries.size(), whole.entries.size());
  EXPECT_EQ(cut.header.inuse_bytes, whole.header.inuse_bytes);  // the header is kept whole
  EXPECT_EQ(cut.mappings.size(), whole.mappings.size());        // and so are the maps
  int64_t kept = 0;
  for (const HeapProfileEntry& entry : cut.entries) kept += entry.figures.inuse_bytes;
  EXPECT_LT(kept, cut.header.inuse_bytes);
  EXPECT_THAT(cut.truncation, HasSubstr(std::to_string(kept) + " bytes"));
  EXPECT_THAT(cut.truncation, HasSubstr(std::to_string(cut.header.inuse_bytes) + " bytes"));
  EXPECT_THAT(cut.truncation, HasSubstr("1 MiB"));
  // The in-use total of an exact profile still comes from its header.
  EXPECT_EQ(ProfileInuseBytes(cut), static_cast<double>(whole.header.inuse_bytes));
}

TEST(HeapProfileGoldenTest, HandWrittenSampledProfilesReadAsRecorded) {
  ExpectGolden("sampled_v2.heap.txt", RenderProfile(ParseGolden("sampled_v2.heap")));
  ExpectGolden("agent_sampled.heap.txt", RenderProfile(ParseGolden("agent_sampled.heap")));
}

// ---- Formats ------------------------------------------------------------------------------------

TEST(HeapProfileTest, SampledEntriesAreUnsampledLikePprof) {
  const HeapProfile profile = ParseGolden("sampled_v2.heap");
  EXPECT_EQ(profile.kind, HeapProfileKind::kSampled);
  EXPECT_EQ(profile.sample_period, 524288);
  ASSERT_EQ(profile.entries.size(), 3u);
  EXPECT_FALSE(profile.truncated) << profile.truncation;
  double total = 0;
  for (const HeapProfileEntry& entry : profile.entries) {
    const double mean = static_cast<double>(entry.figures.inuse_bytes) /
                        static_cast<double>(entry.figures.inuse_objects);
    const double probability = 1 - std::exp(-mean / 524288.0);
    const InuseEstimate estimate = EstimateInuse(profile, entry);
    EXPECT_NEAR(estimate.bytes, static_cast<double>(entry.figures.inuse_bytes) / probability, 1e-6);
    EXPECT_NEAR(estimate.objects, static_cast<double>(entry.figures.inuse_objects) / probability,
                1e-9);
    total += estimate.bytes;
  }
  // Two sampled 224-byte objects stand for about 4682 of them (1 MiB); a sampled 1 MiB object for
  // 1.16 of them.
  EXPECT_NEAR(EstimateInuse(profile, profile.entries[1]).objects, 4682, 1);
  EXPECT_NEAR(EstimateInuse(profile, profile.entries[0]).objects, 1.1565, 1e-3);
  EXPECT_NEAR(ProfileInuseBytes(profile), total, 1e-6);
}

TEST(HeapProfileTest, AgentLineGivesTheExactTotals) {
  const HeapProfile profile = ParseGolden("agent_sampled.heap");
  ASSERT_TRUE(profile.exact_totals);
  EXPECT_EQ(profile.exact_totals->inuse_objects, 120);
  EXPECT_EQ(profile.exact_totals->inuse_bytes, 2000000);
  EXPECT_EQ(profile.exact_totals->alloc_objects, 5000);
  EXPECT_EQ(profile.exact_totals->alloc_bytes, 90000000);
  EXPECT_EQ(ProfileInuseBytes(profile), 2000000.0);
  EXPECT_EQ(profile.entries.size(), 2u);  // the agent line is not a stack
  EXPECT_FALSE(profile.truncated) << profile.truncation;
}

TEST(HeapProfileTest, AnExactAgentProfileWithoutDeadStacksIsComplete) {
  // The agent writes only stacks with live allocations: fewer allocations in the lines than in the
  // header is expected there, not a sign of truncation.
  auto profile = ParseHeapProfile(
      "heap profile: 2: 300 [ 9: 900] @ heapprofile\n"
      "# leakgate-agent exact_inuse_objects=2 exact_inuse_bytes=300 exact_alloc_objects=9 "
      "exact_alloc_bytes=900 sample_period=0 pid=7\n"
      "     2:      300 [     3:      400] @ 0x1000 0x2000\n"
      "MAPPED_LIBRARIES:\n",
      "agent.0001.heap");
  ASSERT_TRUE(profile) << profile.error().message;
  EXPECT_FALSE(profile->truncated) << profile->truncation;
  EXPECT_EQ(profile->kind, HeapProfileKind::kExact);
}

TEST(HeapProfileTest, SumEqualToTheHeaderIsComplete) {
  auto profile = ParseHeapProfile(
      "heap profile:    3:      96 [   5:     160] @ heapprofile\n"
      "     2:       64 [     3:       96] @ 0x10 0x20\n"
      "     1:       32 [     2:       64] @ 0x30\n"
      "\n"
      "MAPPED_LIBRARIES:\n"
      "00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon\n",
      "x.heap");
  ASSERT_TRUE(profile) << profile.error().message;
  EXPECT_FALSE(profile->truncated) << profile->truncation;
  ASSERT_EQ(profile->mappings.size(), 1u);
  EXPECT_EQ(profile->mappings[0].start, 0x400000u);
  EXPECT_EQ(profile->mappings[0].end, 0x452000u);
  EXPECT_EQ(profile->mappings[0].perms, "r-xp");
  EXPECT_EQ(profile->mappings[0].offset, 0u);
  EXPECT_EQ(profile->mappings[0].path, "/usr/bin/dbus-daemon");
  ASSERT_EQ(profile->entries.size(), 2u);
  EXPECT_EQ(profile->entries[0].frames, (std::vector<uint64_t>{0x10, 0x20}));
}

TEST(HeapProfileTest, MissingMappedLibrariesIsTruncation) {
  const std::string text = GoldenText("singleton.0002.heap.gz");
  const std::string cut = text.substr(0, text.find("\nMAPPED_LIBRARIES:"));
  auto profile = ParseHeapProfile(cut, "cut.heap");
  ASSERT_TRUE(profile) << profile.error().message;
  EXPECT_TRUE(profile->truncated);
  EXPECT_THAT(profile->truncation, HasSubstr("cut.heap"));
  EXPECT_THAT(profile->truncation, HasSubstr("no MAPPED_LIBRARIES"));
  EXPECT_TRUE(profile->mappings.empty());
}

TEST(HeapProfileTest, DroppedDeadStacksOfGperftoolsAreTruncation) {
  // Only stacks with nothing live were dropped: the in-use figures are whole, the allocated ones
  // are not.
  auto profile = ParseHeapProfile(
      "heap profile:    1:      64 [   4:     256] @ heapprofile\n"
      "     1:       64 [     1:       64] @ 0x10\n"
      "\nMAPPED_LIBRARIES:\n",
      "y.heap");
  ASSERT_TRUE(profile) << profile.error().message;
  EXPECT_TRUE(profile->truncated);
  EXPECT_THAT(profile->truncation, HasSubstr("64 bytes in 1 objects allocated"));
  EXPECT_THAT(profile->truncation, HasSubstr("256 bytes in 4 objects"));
  EXPECT_THAT(profile->truncation, HasSubstr("in-use figures are complete"));
}

TEST(HeapProfileTest, ReadsCarriageReturnsAndAddressesWithoutPrefix) {
  auto profile = ParseHeapProfile(
      "heap profile: 1: 8 [1: 8] @ heapprofile\r\n1: 8 [1: 8] @ 7f00 0x7f10\r\n"
      "MAPPED_LIBRARIES:\r\n",
      "z.heap");
  ASSERT_TRUE(profile) << profile.error().message;
  ASSERT_EQ(profile->entries.size(), 1u);
  EXPECT_EQ(profile->entries[0].frames, (std::vector<uint64_t>{0x7f00, 0x7f10}));
  EXPECT_FALSE(profile->truncated);
}

TEST(HeapProfileTest, MalformedInputNamesTheLineAndWhatWasExpected) {
  struct Case {
    std::string text;
    std::string where;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", "bad.heap", "heap profile: N: BYTES"},
      {"--- heapz 1 ---\n", "bad.heap:1", "heap profile: N: BYTES"},
      {"heap profile: 1: 8 [1: 8] @ heap/524288\n", "bad.heap:1", "not supported"},
      {"heap profile: 1: 8 [1: 8] @ heap_v2/abc\n", "bad.heap:1", "sample period 'abc'"},
      {"heap profile: 1: 8 [1: 8] @ heapprofile\n1: 8 [1: 8] 0x10\n", "bad.heap:2",
       "LIVE_N: LIVE_BYTES"},
      {"heap profile: 1: 8 [1: 8] @ heapprofile\n\n  1: 8 [1: 8] @ 0x10 zz\n", "bad.heap:3",
       "not hexadecimal"},
      {"heap profile: 1: 8 [1: 8] @ heapprofile\n# leakgate-agent exact_inuse_bytes=1\n",
       "bad.heap:2", "exact_inuse_objects=N"},
      {"heap profile: 1: 8 [1: 8] @ heapprofile\n# leakgate-agent exact_inuse_objects=x "
       "exact_inuse_bytes=1 exact_alloc_objects=1 exact_alloc_bytes=1\n",
       "bad.heap:2", "not a whole number"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto profile = ParseHeapProfile(c.text, "bad.heap");
    ASSERT_FALSE(profile);
    EXPECT_EQ(profile.error().code, ErrorCode::kParse);
    EXPECT_THAT(profile.error().message, HasSubstr(c.where));
    EXPECT_THAT(profile.error().message, HasSubstr(c.expected));
  }
}

TEST(HeapProfileTest, ReadingAMissingOrUnreadableFileNamesIt) {
  auto missing = ReadHeapProfile("/nonexistent/dir/target.0001.heap");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("/nonexistent/dir/target.0001.heap"));

  testing::ScratchDir dir;
  auto directory = ReadHeapProfile(dir.path());
  ASSERT_FALSE(directory);
  EXPECT_THAT(directory.error().message, HasSubstr(dir.path()));

  const std::string path = dir.path() + "/target.0001.heap";
  std::ofstream(path) << GoldenText("singleton.0001.heap.gz");
  auto read = ReadHeapProfile(path);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->source, path);
  EXPECT_EQ(read->header.inuse_bytes, ParseGolden("singleton.0001.heap.gz").header.inuse_bytes);
}

TEST(HeapProfileTest, ParsesAOneMebibyteProfileQuickly) {
  // A dump at gperftools' cap: the real stack lines repeated up to 1 MiB.
  const std::string text = GoldenText("singleton.0003.heap.gz");
  const size_t maps = text.find("\nMAPPED_LIBRARIES:");
  const size_t first_stack = text.find('\n') + 1;
  const std::string stacks = text.substr(first_stack, maps - first_stack + 1);
  std::string big = text.substr(0, first_stack);
  const size_t tail = text.size() - maps;
  for (size_t at = 0; big.size() + tail < (1u << 20);) {
    const size_t end = stacks.find('\n', at) + 1;
    big += stacks.substr(at, end - at);
    at = end < stacks.size() ? end : 0;
  }
  big += text.substr(maps);
  const auto started = std::chrono::steady_clock::now();
  auto profile = ParseHeapProfile(big, "big.heap");
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  ASSERT_TRUE(profile) << profile.error().message;
  EXPECT_GT(profile->entries.size(), 3000u);
  std::printf("parsed %zu bytes (%zu stack lines) in %.1f ms\n", big.size(),
              profile->entries.size(), ms);
  ::testing::Test::RecordProperty("parse_1mib_ms", static_cast<int>(std::lround(ms)));
  EXPECT_LT(ms, 2000) << "parsing a 1 MiB profile should take milliseconds";
}

// ---- Compatibility with pprof -------------------------------------------------------------------

bool HavePprof() { return RunCommand("command -v google-pprof >/dev/null 2>&1").second == 0; }

// pprof's unsampling of heap_v2 (the reader's reference): its share of each address in the text
// report matches the reader's estimates.
TEST(HeapProfilePprofTest, PprofUnsamplesTheSampledProfileLikeTheReader) {
  if (!HavePprof()) GTEST_SKIP() << "google-pprof is not installed (package google-perftools)";
  const HeapProfile profile = ParseGolden("sampled_v2.heap");
  auto [out, status] = RunCommand("google-pprof --text /bin/true '" + kTestData +
                                  "/sampled_v2.heap' 2>/dev/null");
  ASSERT_EQ(status, 0) << out;
  // "Total: 2.9 MB", then "   2.2  73.2%  73.2%      2.2  73.2% 0x0000555555556a10".
  std::smatch total;
  ASSERT_TRUE(std::regex_search(out, total, std::regex(R"(Total: ([0-9.]+) MB)"))) << out;
  EXPECT_NEAR(std::stod(total[1]), ProfileInuseBytes(profile) / 1048576.0, 0.051);
  std::smatch row;
  ASSERT_TRUE(std::regex_search(out, row,
                                std::regex(R"(\s([0-9.]+)%\s+[0-9.]+%\s+[0-9.]+\s+[0-9.]+% 0x0*555555556a10)")))
      << out;
  const double share = (EstimateInuse(profile, profile.entries[0]).bytes +
                        EstimateInuse(profile, profile.entries[1]).bytes) /
                       ProfileInuseBytes(profile);
  EXPECT_NEAR(std::stod(row[1]), 100 * share, 0.051);
}

// Profiles dumped by the live reference service are read by us and by pprof alike, and both see
// the same growth between them.
TEST(HeapProfilePprofTest, DumpsOfTheLiveServiceStayReadableByPprofBase) {
  if (!HavePprof()) GTEST_SKIP() << "google-pprof is not installed (package google-perftools)";
  if (FindTcmallocLibrary().empty()) GTEST_SKIP() << "libtcmalloc.so.4 is not installed";
  if (!fs::exists(testing::BacktestServerBinary())) {
    GTEST_SKIP() << testing::BacktestServerBinary() << " is not built";
  }
  testing::ScratchDir dir;
  std::string error;
  auto server = testing::ProfiledServer::Start("singleton", dir.path(), &error);
  ASSERT_NE(server, nullptr) << error;
  ASSERT_EQ(server->RunBacktest(), "done");
  auto base = server->Dump();
  ASSERT_TRUE(base) << base.error().message;
  const std::string base_path = server->last_profile();
  ASSERT_EQ(server->RunBacktest(), "done");
  auto later = server->Dump();
  ASSERT_TRUE(later) << later.error().message;
  const std::string later_path = server->last_profile();
  EXPECT_FALSE(base->truncated) << base->truncation;
  EXPECT_FALSE(later->truncated) << later->truncation;

  double growth = 0;
  for (const StackDelta& delta : DiffByStack(*base, *later)) {
    growth += delta.later_bytes - delta.base_bytes;
  }
  EXPECT_GT(growth, 0);
  auto [out, status] = RunCommand("google-pprof --text --base='" + base_path + "' '" +
                                  testing::BacktestServerBinary() + "' '" + later_path +
                                  "' 2>/dev/null");
  ASSERT_EQ(status, 0) << out;
  std::smatch total;
  ASSERT_TRUE(std::regex_search(out, total, std::regex(R"(Total: (-?[0-9.]+) MB)"))) << out;
  EXPECT_NEAR(std::stod(total[1]), growth / 1048576.0, 0.051) << out;
  // The klines kept per run by the server-lifetime engine are pprof's largest growth too.
  EXPECT_THAT(out, HasSubstr("SessionEngine::Run")) << out;
}

}  // namespace
}  // namespace leakgate::harness
