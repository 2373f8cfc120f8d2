// Exact heap figures of this process from tcmalloc, when tcmalloc is the allocator.
//
// `ReadHeapStats` looks up gperftools' C entry point `MallocExtension_GetNumericProperty` at run
// time (dlsym in the global scope), so the figures are there whenever tcmalloc is linked into the
// program or preloaded with LD_PRELOAD, and absent (every field empty) under glibc malloc or a
// sanitizer, without any compile-time dependency on gperftools. Reading costs a few microseconds
// and allocates nothing. Thread-safe.
#ifndef LEAKGATE_ENGINE_HEAP_STATS_H_
#define LEAKGATE_ENGINE_HEAP_STATS_H_

#include <cstdint>
#include <optional>

namespace leakgate::engine {

struct HeapStats {
  // Bytes the program has allocated and not yet freed (tcmalloc "generic.current_allocated_bytes").
  std::optional<uint64_t> allocated_bytes;
  // Bytes reserved by the allocator from the system, in use or cached ("generic.heap_size").
  std::optional<uint64_t> heap_size_bytes;
  // Free pages held by the page heap and still mapped ("tcmalloc.pageheap_free_bytes").
  std::optional<uint64_t> pageheap_free_bytes;
  // Free pages returned to the system ("tcmalloc.pageheap_unmapped_bytes").
  std::optional<uint64_t> pageheap_unmapped_bytes;

  bool available() const { return allocated_bytes.has_value(); }
};

// True when tcmalloc's statistics can be read in this process.
bool HeapStatsAvailable();

// Returns the allocator's free pages to the system (tcmalloc MallocExtension::ReleaseFreeMemory),
// so that memory a finished task freed stops counting in RSS. Returns false, doing nothing, without
// tcmalloc.
bool ReleaseFreeHeapMemory();

// Hands the calling thread's allocator cache back to the shared free lists (tcmalloc
// MallocExtension::MarkThreadIdle). A pool thread that calls this when it goes idle keeps no cache
// of its own between jobs, so a pool whose jobs rotate over many threads does not grow RSS by one
// cache per thread. Returns false, doing nothing, without tcmalloc.
bool ReleaseThreadHeapCache();

// The current figures; every field empty when HeapStatsAvailable() is false, a single field empty
// when tcmalloc does not know that property.
HeapStats ReadHeapStats();

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_HEAP_STATS_H_
