// The agent linked into this test program (not preloaded): the public API of leakgate/agent.h and
// the exact counting of every interposed allocation function, operator new and delete included.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "agent_test_support.h"
#include "leakgate/agent.h"

namespace leakgate::agent_test {
namespace {

namespace fs = std::filesystem;

constexpr int kBlocks = 50;
constexpr size_t kBlockBytes = 3000;

std::vector<void*> g_blocks;

__attribute__((noinline, noclone)) void AllocateKnownBlocks() {
  for (int i = 0; i < kBlocks; ++i) g_blocks.push_back(malloc(kBlockBytes));
}

struct Allocation {
  std::string name;
  std::function<void*()> allocate;
  std::function<void(void*)> release;
};

std::vector<Allocation> EveryAllocationFunction() {
  auto free_block = [](void* block) { free(block); };
  return {
      {"malloc", [] { return malloc(100); }, free_block},
      {"calloc", [] { return calloc(10, 30); }, free_block},
      {"realloc from null", [] { return realloc(nullptr, 70); }, free_block},
      {"realloc grown", [] { return realloc(malloc(10), 5000); }, free_block},
      {"reallocarray", [] { return reallocarray(nullptr, 4, 25); }, free_block},
      {"memalign", [] { return memalign(64, 200); }, free_block},
      {"posix_memalign",
       [] {
         void* block = nullptr;
         return posix_memalign(&block, 128, 300) == 0 ? block : nullptr;
       },
       free_block},
      {"aligned_alloc", [] { return aligned_alloc(256, 512); }, free_block},
      {"valloc", [] { return valloc(100); }, free_block},
      {"pvalloc", [] { return pvalloc(100); }, free_block},
      {"new", [] { return static_cast<void*>(new char(1)); },
       [](void* p) { delete static_cast<char*>(p); }},
      {"new[]", [] { return static_cast<void*>(new char[400]); },
       [](void* p) { delete[] static_cast<char*>(p); }},
      {"new nothrow", [] { return static_cast<void*>(new (std::nothrow) char[50]); },
       [](void* p) { delete[] static_cast<char*>(p); }},
      {"aligned new",
       [] {
         struct alignas(128) Wide {
           char bytes[300];
         };
         return static_cast<void*>(new Wide);
       },
       [](void* p) { ::operator delete(p, std::align_val_t(128)); }},
  };
}

TEST(AgentInProcessTest, EveryAllocationFunctionIsCountedInUsableBytes) {
  for (const Allocation& allocation : EveryAllocationFunction()) {
    SCOPED_TRACE(allocation.name);
    const leakgate_agent_totals before = leakgate_agent_get_totals();
    void* block = allocation.allocate();
    ASSERT_NE(block, nullptr);
    const leakgate_agent_totals during = leakgate_agent_get_totals();
    const int64_t usable = static_cast<int64_t>(malloc_usable_size(block));
    allocation.release(block);
    const leakgate_agent_totals after = leakgate_agent_get_totals();
    // "realloc grown" also allocates and frees the block it grows.
    const int64_t extra = allocation.name == "realloc grown" ? 1 : 0;
    EXPECT_EQ(during.alloc_objects - before.alloc_objects, 1 + extra);
    EXPECT_EQ(during.inuse_objects - before.inuse_objects, 1);
    EXPECT_EQ(during.inuse_bytes - before.inuse_bytes, usable);
    EXPECT_EQ(after.inuse_objects, before.inuse_objects);
    EXPECT_EQ(after.inuse_bytes, before.inuse_bytes);
  }
}

TEST(AgentInProcessTest, StdContainersGoThroughTheAgent) {
  const leakgate_agent_totals before = leakgate_agent_get_totals();
  {
    std::vector<int> numbers(1000, 7);
    std::string text(5000, 'x');
    const leakgate_agent_totals during = leakgate_agent_get_totals();
    EXPECT_EQ(during.inuse_objects - before.inuse_objects, 2);
    EXPECT_GE(during.inuse_bytes - before.inuse_bytes,
              static_cast<int64_t>(sizeof(int) * 1000 + 5001));
  }
  EXPECT_EQ(leakgate_agent_get_totals().inuse_bytes, before.inuse_bytes);
}

TEST(AgentInProcessTest, SamplePeriodCanBeChanged) {
  const int64_t original = leakgate_agent_get_totals().sample_period;
  EXPECT_EQ(original, 512 * 1024);
  leakgate_agent_set_sample_period(1 << 20);
  EXPECT_EQ(leakgate_agent_get_totals().sample_period, 1 << 20);
  leakgate_agent_set_sample_period(-5);
  EXPECT_EQ(leakgate_agent_get_totals().sample_period, 0);
  leakgate_agent_set_sample_period(original);
}

TEST(AgentInProcessTest, ExactModeDumpListsTheBlocksOfAFunction) {
  const fs::path dir = fs::temp_directory_path() / ("agent_inprocess_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "exact.heap").string();
  const int64_t original = leakgate_agent_get_totals().sample_period;
  leakgate_agent_set_sample_period(0);
  g_blocks.reserve(kBlocks);
  const int64_t sampled_before = leakgate_agent_get_totals().sampled_live;
  AllocateKnownBlocks();
  EXPECT_GE(leakgate_agent_get_totals().sampled_live - sampled_before, kBlocks);
  ASSERT_EQ(leakgate_agent_dump(path.c_str()), 0);
  leakgate_agent_set_sample_period(original);
  for (void* block : g_blocks) free(block);
  g_blocks.clear();

  const Profile profile = ReadProfile(path);
  ASSERT_TRUE(profile.valid) << profile.error;
  EXPECT_EQ(profile.kind, "heapprofile");
  EXPECT_EQ(profile.exact.at("pid"), getpid());
  const ProgramSymbols symbols(fs::read_symlink("/proc/self/exe").string(), profile);
  ASSERT_TRUE(symbols.loaded());
  int64_t objects = 0;
  int64_t bytes = 0;
  for (const ProfileStack& stack : profile.stacks) {
    if (!symbols.StackHas(stack.frames, "AllocateKnownBlocks")) continue;
    objects += stack.figures.live_objects;
    bytes += stack.figures.live_bytes;
    // The innermost frame is the caller of malloc, not the agent.
    EXPECT_THAT(symbols.FunctionAt(stack.frames.front()), ::testing::HasSubstr("AllocateKnownBlocks"));
  }
  EXPECT_EQ(objects, kBlocks);
  EXPECT_EQ(bytes, static_cast<int64_t>(kBlocks * kBlockBytes));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove_all(dir);
}

TEST(AgentInProcessTest, DumpReportsWhyItCannotWrite) {
  EXPECT_EQ(leakgate_agent_dump(nullptr), -EINVAL);  // no LEAKGATE_AGENT_PREFIX here
  EXPECT_EQ(leakgate_agent_dump("/nonexistent-directory/profile.heap"), -ENOENT);
}

TEST(AgentInProcessTest, FreedSamplesLeaveTheLiveCount) {
  const int64_t original = leakgate_agent_get_totals().sample_period;
  leakgate_agent_set_sample_period(0);
  const int64_t before = leakgate_agent_get_totals().sampled_live;
  std::vector<void*> blocks;
  blocks.reserve(1000);
  for (int i = 0; i < 1000; ++i) blocks.push_back(malloc(16 + i));
  EXPECT_GE(leakgate_agent_get_totals().sampled_live - before, 1000);
  for (void* block : blocks) free(block);
  for (int i = 0; i < 1000; ++i) blocks[i] = realloc(malloc(8), 4096);  // sampled, then moved
  for (void* block : blocks) free(block);
  leakgate_agent_set_sample_period(original);
  EXPECT_LE(leakgate_agent_get_totals().sampled_live - before, 2);
}

}  // namespace
}  // namespace leakgate::agent_test
