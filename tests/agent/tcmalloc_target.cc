// A program linked with tcmalloc, for the agent's tests: allocates a known amount through malloc and
// operator new and prints how much tcmalloc says is in use (MallocExtension) and what the agent
// counted, before and after, as `key value` lines.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr int kBlocks = 160;
constexpr size_t kBlockBytes = 64 * 1024;

size_t TcmallocAllocatedBytes() {
  using GetProperty = int (*)(const char*, size_t*);
  auto get = reinterpret_cast<GetProperty>(
      dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty"));
  size_t value = 0;
  if (get == nullptr || get("generic.current_allocated_bytes", &value) == 0) return 0;
  return value;
}

struct AgentTotals {
  int64_t inuse_objects;
  int64_t inuse_bytes;
  int64_t alloc_objects;
  int64_t alloc_bytes;
  int64_t sampled_live;
  int64_t sample_period;
};

int64_t AgentInuseBytes() {
  using GetTotals = AgentTotals (*)();
  auto get = reinterpret_cast<GetTotals>(dlsym(RTLD_DEFAULT, "leakgate_agent_get_totals"));
  return get != nullptr ? get().inuse_bytes : -1;
}

}  // namespace

int main() {
  std::vector<void*> blocks;
  blocks.reserve(2 * kBlocks);
  const size_t tcmalloc_before = TcmallocAllocatedBytes();
  const int64_t agent_before = AgentInuseBytes();
  for (int i = 0; i < kBlocks; ++i) {
    void* block = malloc(kBlockBytes);
    memset(block, 1, kBlockBytes);
    blocks.push_back(block);
    char* object = new char[kBlockBytes];
    memset(object, 2, kBlockBytes);
    blocks.push_back(object);
  }
  const size_t tcmalloc_after = TcmallocAllocatedBytes();
  const int64_t agent_after = AgentInuseBytes();
  printf("allocated_bytes %zu\n", 2 * kBlocks * kBlockBytes);
  printf("tcmalloc_delta %lld\n",
         static_cast<long long>(tcmalloc_after) - static_cast<long long>(tcmalloc_before));
  printf("agent_delta %lld\n", static_cast<long long>(agent_after - agent_before));
  printf("agent_present %d\n", agent_before >= 0 ? 1 : 0);
  for (size_t i = 0; i < blocks.size(); i += 2) {
    free(blocks[i]);
    delete[] static_cast<char*>(blocks[i + 1]);
  }
  printf("tcmalloc_after_free_delta %lld\n",
         static_cast<long long>(TcmallocAllocatedBytes()) -
             static_cast<long long>(tcmalloc_before));
  return 0;
}
