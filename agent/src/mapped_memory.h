// Memory for the agent's own tables, taken straight from the kernel with mmap so that the agent never
// allocates through the allocator it interposes. Pages come back zeroed. Thread-safe (stateless).
#ifndef LEAKGATE_AGENT_SRC_MAPPED_MEMORY_H_
#define LEAKGATE_AGENT_SRC_MAPPED_MEMORY_H_

#include <stddef.h>

namespace leakgate::agent {

// `bytes` rounded up to whole pages, zero-filled; nullptr when the kernel refuses.
void* MapPages(size_t bytes);

// Returns pages obtained from MapPages with the same `bytes`. Null is ignored.
void UnmapPages(void* pages, size_t bytes);

}  // namespace leakgate::agent

#endif  // LEAKGATE_AGENT_SRC_MAPPED_MEMORY_H_
