// Symbolizing return addresses with addr2line through a profile's mapped objects: this program's
// own calls (position-independent), a fixed-address executable built on the spot, inlined frames,
// batches large enough to fill a pipe, the per-object cache, objects that cannot be read, and the
// live reference service.
#include "harness/profile/symbolizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/profile/heap_profile.h"
#include "harness/profile/preload.h"
#include "harness/profiled_server.h"

namespace leakgate::harness {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

volatile uint64_t g_sink = 0;

// The return address of its call: an address in the caller, just after the call instruction.
__attribute__((noinline)) uint64_t ReturnAddress() {
  return reinterpret_cast<uint64_t>(__builtin_extract_return_addr(__builtin_return_address(0)));
}

__attribute__((noinline)) uint64_t CallSite(int* line) {
  *line = __LINE__ + 1;
  const uint64_t address = ReturnAddress();
  g_sink = g_sink + address;  // keeps the call a call, not a jump
  return address;
}

__attribute__((always_inline)) inline uint64_t InlinedCallSite(int* line) {
  *line = __LINE__ + 1;
  const uint64_t address = ReturnAddress();
  g_sink = g_sink + address;
  return address;
}

// Inlined code of a function with internal linkage: its debug information has no linkage name,
// and addr2line names the inlined frame after the function it was inlined into.
__attribute__((noinline)) uint64_t OuterOfInlined(int* inner_line, int* outer_line) {
  *outer_line = __LINE__ + 1;
  const uint64_t address = InlinedCallSite(inner_line);
  g_sink = g_sink + address;
  return address;
}

}  // namespace

// The same with external linkage: every frame is named.
namespace symbolizer_test {

__attribute__((always_inline)) inline uint64_t NamedInlinedCallSite(int* line) {
  *line = __LINE__ + 1;
  const uint64_t address = ReturnAddress();
  g_sink = g_sink + address;
  return address;
}

__attribute__((noinline)) uint64_t NamedOuterOfInlined(int* inner_line, int* outer_line) {
  *outer_line = __LINE__ + 1;
  const uint64_t address = NamedInlinedCallSite(inner_line);
  g_sink = g_sink + address;
  return address;
}

}  // namespace symbolizer_test

namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Mappings as a profile lists them, from a /proc/PID/maps text.
std::vector<MappedRegion> MappingsOf(const std::string& maps) {
  auto profile = ParseHeapProfile("heap profile: 0: 0 [0: 0] @ heapprofile\nMAPPED_LIBRARIES:\n" +
                                      maps,
                                  "maps");
  EXPECT_TRUE(profile) << profile.error().message;
  return profile ? profile->mappings : std::vector<MappedRegion>{};
}

std::vector<MappedRegion> OwnMappings() { return MappingsOf(ReadText("/proc/self/maps")); }

std::string OwnExecutable() { return fs::read_symlink("/proc/self/exe").string(); }

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

TEST(Addr2lineSymbolizerTest, NamesTheCallerOfAReturnAddressWithFileAndLine) {
  int line = 0;
  const uint64_t address = CallSite(&line);
  Addr2lineSymbolizer symbolizer;
  const std::vector<uint64_t> addresses = {address};
  auto frames = symbolizer.Symbolize(addresses, OwnMappings());
  ASSERT_TRUE(frames) << frames.error().message;
  ASSERT_EQ(frames->size(), 1u);
  ASSERT_FALSE((*frames)[0].empty());
  const SourceFrame& frame = (*frames)[0].back();
  EXPECT_EQ(frame.function, "leakgate::harness::(anonymous namespace)::CallSite(int*)");
  EXPECT_THAT(frame.file, EndsWith("tests/harness/profile/symbolizer_test.cc"));
  EXPECT_EQ(frame.line, line);  // the call, not the line after it
  EXPECT_EQ(frame.module, OwnExecutable());
  EXPECT_EQ(frame.address, address);
  EXPECT_FALSE(frame.inlined);
  EXPECT_TRUE(symbolizer.warnings().empty()) << symbolizer.warnings().front();
}

TEST(Addr2lineSymbolizerTest, InlinedCallsComeInnermostFirst) {
  int inner_line = 0, outer_line = 0;
  const uint64_t address = symbolizer_test::NamedOuterOfInlined(&inner_line, &outer_line);
  Addr2lineSymbolizer symbolizer;
  const std::vector<uint64_t> addresses = {address};
  auto frames = symbolizer.Symbolize(addresses, OwnMappings());
  ASSERT_TRUE(frames) << frames.error().message;
  const std::vector<SourceFrame>& stack = (*frames)[0];
  ASSERT_EQ(stack.size(), 2u);
  EXPECT_EQ(stack[0].function, "leakgate::harness::symbolizer_test::NamedInlinedCallSite(int*)");
  EXPECT_EQ(stack[0].line, inner_line);
  EXPECT_TRUE(stack[0].inlined);
  EXPECT_EQ(stack[1].function,
            "leakgate::harness::symbolizer_test::NamedOuterOfInlined(int*, int*)");
  EXPECT_EQ(stack[1].line, outer_line);
  EXPECT_FALSE(stack[1].inlined);
  EXPECT_EQ(stack[0].address, address);
  EXPECT_EQ(stack[1].address, address);
}

// addr2line answers "(anonymous namespace)::OuterOfInlined(int*, int*)" at the inlined line, then
// "OuterOfInlined" at the call: the name belongs to the real frame, the inlined one has none.
TEST(Addr2lineSymbolizerTest, AnInlinedFrameNamedAfterItsCallerLosesThatName) {
  int inner_line = 0, outer_line = 0;
  const uint64_t address = OuterOfInlined(&inner_line, &outer_line);
  Addr2lineSymbolizer symbolizer;
  const std::vector<uint64_t> addresses = {address};
  auto frames = symbolizer.Symbolize(addresses, OwnMappings());
  ASSERT_TRUE(frames) << frames.error().message;
  const std::vector<SourceFrame>& stack = (*frames)[0];
  ASSERT_EQ(stack.size(), 2u);
  EXPECT_EQ(stack[0].function, "");
  EXPECT_THAT(stack[0].file, EndsWith("symbolizer_test.cc"));
  EXPECT_EQ(stack[0].line, inner_line);
  EXPECT_TRUE(stack[0].inlined);
  EXPECT_EQ(stack[1].function,
            "leakgate::harness::(anonymous namespace)::OuterOfInlined(int*, int*)");
  EXPECT_EQ(stack[1].line, outer_line);
}

TEST(Addr2lineSymbolizerTest, FixedAndPositionIndependentExecutablesBothResolve) {
  if (RunCommand("command -v cc >/dev/null 2>&1").second != 0) {
    GTEST_SKIP() << "no C compiler (cc) to build a fixed-address executable";
  }
  testing::ScratchDir dir;
  const std::string source = dir.path() + "/where.c";
  std::ofstream(source) << "#include <stdio.h>\n"
                           "__attribute__((noinline)) void* Here(void) {\n"
                           "  return __builtin_return_address(0);\n"
                           "}\n"
                           "int main(void) {\n"
                           "  void* volatile address = Here();\n"  // line 6
                           "  FILE* maps = fopen(\"/proc/self/maps\", \"r\");\n"
                           "  char buffer[4096];\n"
                           "  size_t n;\n"
                           "  printf(\"%p\\n\", address);\n"
                           "  while ((n = fread(buffer, 1, sizeof buffer, maps)) > 0)\n"
                           "    fwrite(buffer, 1, n, stdout);\n"
                           "  return 0;\n"
                           "}\n";
  for (const std::string& kind : {std::string("-no-pie -fno-pie"), std::string("-pie -fpie")}) {
    SCOPED_TRACE(kind);
    const std::string program = dir.path() + "/where" + (kind[1] == 'n' ? "-fixed" : "-pie");
    auto [compiler, built] =
        RunCommand("cc -g -O0 " + kind + " -o '" + program + "' '" + source + "' 2>&1");
    ASSERT_EQ(built, 0) << compiler;
    // The ELF type is what the symbolizer relies on: ET_EXEC (2) or ET_DYN (3).
    std::ifstream elf(program, std::ios::binary);
    char header[18] = {};
    elf.read(header, sizeof header);
    EXPECT_EQ(header[16], kind[1] == 'n' ? 2 : 3);

    auto [output, ran] = RunCommand("'" + program + "'");
    ASSERT_EQ(ran, 0);
    const size_t newline = output.find('\n');
    const uint64_t address = std::stoull(output.substr(0, newline), nullptr, 16);
    const std::vector<MappedRegion> mappings = MappingsOf(output.substr(newline + 1));
    Addr2lineSymbolizer symbolizer;
    const std::vector<uint64_t> addresses = {address};
    auto frames = symbolizer.Symbolize(addresses, mappings);
    ASSERT_TRUE(frames) << frames.error().message;
    const SourceFrame& frame = (*frames)[0].back();
    EXPECT_EQ(frame.function, "main");
    EXPECT_THAT(frame.file, EndsWith("where.c"));
    EXPECT_EQ(frame.line, 6);
    EXPECT_EQ(frame.module, program);
  }
}

TEST(Addr2lineSymbolizerTest, LargeBatchesDoNotBlockOnFullPipes) {
  // Every 16th byte of this program's code: far more output than a pipe holds, so addr2line's
  // answers must be read while the addresses are still being written.
  const std::vector<MappedRegion> mappings = OwnMappings();
  const std::string self = OwnExecutable();
  std::vector<uint64_t> addresses;
  for (const MappedRegion& region : mappings) {
    if (region.path != self || region.perms != "r-xp") continue;
    for (uint64_t at = region.start + 1; at < region.end && addresses.size() < 12000; at += 16) {
      addresses.push_back(at);
    }
  }
  ASSERT_GE(addresses.size(), 10000u);
  Addr2lineSymbolizer symbolizer;
  const auto started = std::chrono::steady_clock::now();
  auto frames = symbolizer.Symbolize(addresses, mappings);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_TRUE(frames) << frames.error().message;
  ASSERT_EQ(frames->size(), addresses.size());
  size_t named = 0;
  for (size_t i = 0; i < frames->size(); ++i) {
    ASSERT_FALSE((*frames)[i].empty());
    EXPECT_EQ((*frames)[i].back().address, addresses[i]);
    if (!(*frames)[i].back().function.empty()) ++named;
  }
  EXPECT_GT(named, addresses.size() * 9 / 10);
  std::printf("symbolized %zu addresses of %s in %.2f s\n", addresses.size(), self.c_str(),
              seconds);
}

// A stand-in addr2line that counts its runs and then runs the real one (or fails, when asked).
std::string CountingAddr2line(const std::string& dir, bool fail) {
  const std::string path = dir + "/addr2line";
  std::ofstream script(path);
  script << "#!/bin/sh\necho run >> '" << dir << "/runs'\n";
  if (fail) {
    script << "echo 'addr2line: simulated failure' >&2\nexit 3\n";
  } else {
    script << "exec addr2line \"$@\"\n";
  }
  script.close();
  ::chmod(path.c_str(), 0755);
  return path;
}

int Runs(const std::string& dir) {
  std::ifstream in(dir + "/runs");
  int runs = 0;
  for (std::string line; std::getline(in, line);) ++runs;
  return runs;
}

TEST(Addr2lineSymbolizerTest, CachesPerObjectAndOffset) {
  testing::ScratchDir dir;
  Addr2lineSymbolizer symbolizer(CountingAddr2line(dir.path(), /*fail=*/false));
  int line = 0, inner = 0, outer = 0;
  const std::vector<uint64_t> first = {CallSite(&line)};
  const std::vector<MappedRegion> mappings = OwnMappings();
  auto once = symbolizer.Symbolize(first, mappings);
  ASSERT_TRUE(once) << once.error().message;
  EXPECT_EQ(Runs(dir.path()), 1);
  auto again = symbolizer.Symbolize(first, mappings);
  ASSERT_TRUE(again);
  EXPECT_EQ(Runs(dir.path()), 1) << "a cached address ran addr2line again";
  EXPECT_EQ((*again)[0].back().function, (*once)[0].back().function);
  EXPECT_EQ((*again)[0].back().line, line);
  const std::vector<uint64_t> both = {first[0], OuterOfInlined(&inner, &outer)};
  auto more = symbolizer.Symbolize(both, mappings);
  ASSERT_TRUE(more);
  EXPECT_EQ(Runs(dir.path()), 2);
  EXPECT_EQ((*more)[1].back().line, outer);
}

TEST(Addr2lineSymbolizerTest, AFailingBatchLeavesOffsetsAndAWarning) {
  testing::ScratchDir dir;
  Addr2lineSymbolizer symbolizer(CountingAddr2line(dir.path(), /*fail=*/true));
  int line = 0;
  const std::vector<uint64_t> addresses = {CallSite(&line)};
  auto frames = symbolizer.Symbolize(addresses, OwnMappings());
  ASSERT_TRUE(frames) << frames.error().message;
  ASSERT_EQ((*frames)[0].size(), 1u);
  EXPECT_EQ((*frames)[0][0].function, "");
  EXPECT_EQ((*frames)[0][0].module, OwnExecutable());
  EXPECT_GT((*frames)[0][0].offset, 0u);
  ASSERT_EQ(symbolizer.warnings().size(), 1u);
  EXPECT_THAT(symbolizer.warnings()[0], HasSubstr(OwnExecutable()));
  EXPECT_THAT(symbolizer.warnings()[0], HasSubstr("simulated failure"));
  EXPECT_THAT(symbolizer.warnings()[0], HasSubstr("exit status 3"));
}

TEST(Addr2lineSymbolizerTest, UnreadableDeletedAndUnmappedAddressesAreWarnedNotFatal) {
  const std::vector<MappedRegion> mappings = {
      {0x10000, 0x20000, "r-xp", 0x1000, "/nonexistent/libgone.so"},
      {0x30000, 0x40000, "r-xp", 0, "/opt/app/libold.so (deleted)"},
      {0x50000, 0x60000, "r-xp", 0, "[vdso]"},
  };
  const std::vector<uint64_t> addresses = {0x10010, 0x30020, 0x50030, 0x90000};
  Addr2lineSymbolizer symbolizer;
  auto frames = symbolizer.Symbolize(addresses, mappings);
  ASSERT_TRUE(frames) << frames.error().message;
  ASSERT_EQ(frames->size(), 4u);
  for (const auto& stack : *frames) {
    ASSERT_EQ(stack.size(), 1u);
    EXPECT_EQ(stack[0].function, "");
  }
  EXPECT_EQ((*frames)[0][0].module, "/nonexistent/libgone.so");
  EXPECT_EQ((*frames)[0][0].offset, 0x1000u + 0x10u - 1);  // file offset, the call before it
  EXPECT_EQ((*frames)[2][0].module, "[vdso]");
  EXPECT_EQ((*frames)[3][0].module, "");  // in no mapping
  EXPECT_EQ((*frames)[3][0].address, 0x90000u);
  ASSERT_EQ(symbolizer.warnings().size(), 2u);
  EXPECT_THAT(symbolizer.warnings()[0], HasSubstr("/nonexistent/libgone.so"));
  EXPECT_THAT(symbolizer.warnings()[1], HasSubstr("deleted"));
  // The same problems again are not warned twice.
  ASSERT_TRUE(symbolizer.Symbolize(addresses, mappings));
  EXPECT_EQ(symbolizer.warnings().size(), 2u);
}

TEST(Addr2lineSymbolizerTest, MissingAddr2lineFailsTheRequestSayingWhatToInstall) {
  int line = 0;
  const std::vector<uint64_t> addresses = {CallSite(&line)};
  Addr2lineSymbolizer symbolizer("/nonexistent/bin/addr2line");
  auto frames = symbolizer.Symbolize(addresses, OwnMappings());
  ASSERT_FALSE(frames);
  EXPECT_EQ(frames.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(frames.error().message, HasSubstr("/nonexistent/bin/addr2line"));
  EXPECT_THAT(frames.error().message, HasSubstr("binutils"));
}

TEST(FunctionNameWithoutParametersTest, KeepsTheQualifiedNameOnly) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"leakgate::engine::HistoricalDataProvider::FetchKlines(std::basic_string_view<char, "
       "std::char_traits<char> >, long, long)",
       "leakgate::engine::HistoricalDataProvider::FetchKlines"},
      {"void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>("
       "__gnu_cxx::__normal_iterator<int*, std::vector<int, std::allocator<int> > >, int const&)",
       "std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>"},
      {"std::vector<int, std::allocator<int> > app::MakeList<int>(int) [clone .isra.0]",
       "app::MakeList<int>"},
      {"leakgate::engine::(anonymous namespace)::WorkerPool::WorkerLoop()",
       "leakgate::engine::(anonymous namespace)::WorkerPool::WorkerLoop"},
      {"app::Widget::Size() const &", "app::Widget::Size"},
      {"operator new(unsigned long)", "operator new"},
      {"operator new[](unsigned long, std::align_val_t)", "operator new[]"},
      {"bool app::operator< <int>(app::Box<int> const&, app::Box<int> const&)",
       "app::operator< <int>"},
      {"app::Run()::{lambda(int)#1}::operator()(int) const",
       "app::Run()::{lambda(int)#1}::operator()"},
      {"Close", "Close"},
      {"malloc", "malloc"},
  };
  for (const auto& [full, expected] : cases) {
    EXPECT_EQ(FunctionNameWithoutParameters(full), expected) << full;
  }
}

TEST(Addr2lineSymbolizerLiveTest, ResolvesTheReferenceServiceStacksToItsSources) {
  if (FindTcmallocLibrary().empty()) GTEST_SKIP() << "libtcmalloc.so.4 is not installed";
  if (!fs::exists(testing::BacktestServerBinary())) {
    GTEST_SKIP() << testing::BacktestServerBinary() << " is not built";
  }
  testing::ScratchDir dir;
  std::string error;
  auto server = testing::ProfiledServer::Start("singleton", dir.path(), &error);
  ASSERT_NE(server, nullptr) << error;
  ASSERT_EQ(server->RunBacktest(), "done");
  auto profile = server->Dump();
  ASSERT_TRUE(profile) << profile.error().message;
  std::vector<uint64_t> addresses;
  for (const HeapProfileEntry& entry : profile->entries) {
    if (entry.figures.inuse_bytes > 0) {
      addresses.insert(addresses.end(), entry.frames.begin(), entry.frames.end());
    }
  }
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  Addr2lineSymbolizer symbolizer;
  const auto started = std::chrono::steady_clock::now();
  auto frames = symbolizer.Symbolize(addresses, profile->mappings);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_TRUE(frames) << frames.error().message;
  std::printf("symbolized %zu addresses of a live profile in %.2f s\n", addresses.size(), seconds);
  for (const std::string& warning : symbolizer.warnings()) std::printf("warning: %s\n", warning.c_str());
  bool fetch_klines = false, inlined_std = false;
  for (const auto& stack : *frames) {
    for (const SourceFrame& frame : stack) {
      if (frame.function.starts_with("leakgate::engine::HistoricalDataProvider::FetchKlines(") &&
          frame.file.ends_with("engine/src/data_provider.cc") && frame.line > 0 &&
          frame.module == testing::BacktestServerBinary()) {
        fetch_klines = true;
      }
      if (frame.inlined && frame.function.starts_with("std::") &&
          frame.file.find("/include/c++/") != std::string::npos) {
        inlined_std = true;
      }
    }
  }
  EXPECT_TRUE(fetch_klines) << "the provider's kline allocation was not named";
  EXPECT_TRUE(inlined_std) << "no inlined standard library frame was seen";
  // A second profile of the same process costs only its new addresses.
  const auto again_started = std::chrono::steady_clock::now();
  ASSERT_TRUE(symbolizer.Symbolize(addresses, profile->mappings));
  const double again =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - again_started).count();
  EXPECT_LT(again, seconds / 5 + 0.01);
}

}  // namespace
}  // namespace leakgate::harness
