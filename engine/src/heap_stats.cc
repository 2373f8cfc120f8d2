#include "engine/heap_stats.h"

#include <dlfcn.h>

#include <cstddef>

namespace leakgate::engine {
namespace {

// gperftools' extern "C" wrappers (malloc_extension_c.h), resolved once: the allocator of a running
// process does not change.
using GetNumericPropertyFn = int (*)(const char* property, size_t* value);
using VoidFn = void (*)();

template <class Fn>
Fn LookUp(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, name));
}

GetNumericPropertyFn GetNumericProperty() {
  static const auto fn = LookUp<GetNumericPropertyFn>("MallocExtension_GetNumericProperty");
  return fn;
}

std::optional<uint64_t> Property(GetNumericPropertyFn fn, const char* name) {
  size_t value = 0;
  if (fn == nullptr || fn(name, &value) == 0) return std::nullopt;
  return static_cast<uint64_t>(value);
}

}  // namespace

bool HeapStatsAvailable() { return GetNumericProperty() != nullptr; }

bool ReleaseFreeHeapMemory() {
  static const auto fn = LookUp<VoidFn>("MallocExtension_ReleaseFreeMemory");
  if (fn == nullptr) return false;
  fn();
  return true;
}

bool ReleaseThreadHeapCache() {
  static const auto fn = LookUp<VoidFn>("MallocExtension_MarkThreadIdle");
  if (fn == nullptr) return false;
  fn();
  return true;
}

HeapStats ReadHeapStats() {
  const GetNumericPropertyFn fn = GetNumericProperty();
  HeapStats stats;
  if (fn == nullptr) return stats;
  stats.allocated_bytes = Property(fn, "generic.current_allocated_bytes");
  stats.heap_size_bytes = Property(fn, "generic.heap_size");
  stats.pageheap_free_bytes = Property(fn, "tcmalloc.pageheap_free_bytes");
  stats.pageheap_unmapped_bytes = Property(fn, "tcmalloc.pageheap_unmapped_bytes");
  return stats;
}

}  // namespace leakgate::engine
