#include "engine/heap_stats.h"

#include <dlfcn.h>

#include <cstddef>

namespace leakgate::engine {
namespace {

// gperftools' extern "C" wrapper of MallocExtension::GetNumericProperty (malloc_extension_c.h).
using GetNumericPropertyFn = int (*)(const char* property, size_t* value);

GetNumericPropertyFn LookUpGetNumericProperty() {
  // Resolved once: the allocator of a running process does not change.
  static const GetNumericPropertyFn fn = reinterpret_cast<GetNumericPropertyFn>(
      ::dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty"));
  return fn;
}

std::optional<uint64_t> Property(GetNumericPropertyFn fn, const char* name) {
  size_t value = 0;
  if (fn == nullptr || fn(name, &value) == 0) return std::nullopt;
  return static_cast<uint64_t>(value);
}

}  // namespace

bool HeapStatsAvailable() { return LookUpGetNumericProperty() != nullptr; }

HeapStats ReadHeapStats() {
  const GetNumericPropertyFn fn = LookUpGetNumericProperty();
  HeapStats stats;
  if (fn == nullptr) return stats;
  stats.allocated_bytes = Property(fn, "generic.current_allocated_bytes");
  stats.heap_size_bytes = Property(fn, "generic.heap_size");
  stats.pageheap_free_bytes = Property(fn, "tcmalloc.pageheap_free_bytes");
  stats.pageheap_unmapped_bytes = Property(fn, "tcmalloc.pageheap_unmapped_bytes");
  return stats;
}

}  // namespace leakgate::engine
