#include "mapped_memory.h"

#include <sys/mman.h>
#include <unistd.h>

namespace leakgate::agent {
namespace {

size_t RoundToPages(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

void* MapPages(size_t bytes) {
  void* pages = mmap(nullptr, RoundToPages(bytes), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return pages == MAP_FAILED ? nullptr : pages;
}

void UnmapPages(void* pages, size_t bytes) {
  if (pages != nullptr) munmap(pages, RoundToPages(bytes));
}

}  // namespace leakgate::agent
