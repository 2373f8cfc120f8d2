// Micro benchmark of the allocation path: the cost of one malloc/free pair (sizes 16..1024, a few
// blocks kept alive so that the allocator cannot hand back one block), and of one new/delete pair.
// Prints `malloc_free_ns N` and `new_delete_ns N`, the best of five runs.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kOperations = 2000000;
constexpr int kKept = 64;

template <typename Body>
double BestNanosecondsPerOperation(Body body) {
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    const auto start = std::chrono::steady_clock::now();
    body();
    const double ns = std::chrono::duration<double, std::nano>(
                          std::chrono::steady_clock::now() - start).count() / kOperations;
    if (ns < best) best = ns;
  }
  return best;
}

}  // namespace

int main() {
  static void* kept[kKept];
  unsigned checksum = 0;
  const double malloc_ns = BestNanosecondsPerOperation([&] {
    for (int i = 0; i < kOperations; ++i) {
      const int slot = i & (kKept - 1);
      free(kept[slot]);
      kept[slot] = malloc(16 + (i * 37) % 1009);
      static_cast<char*>(kept[slot])[0] = 1;
    }
  });
  const double new_ns = BestNanosecondsPerOperation([&] {
    for (int i = 0; i < kOperations; ++i) {
      char* object = new char[16 + (i * 37) % 1009];
      asm volatile("" : : "r"(object) : "memory");  // keeps the pair from being elided
      object[0] = static_cast<char>(i);
      checksum += static_cast<unsigned>(object[0]);
      delete[] object;
    }
  });
  for (void* block : kept) free(block);
  printf("malloc_free_ns %.1f\nnew_delete_ns %.1f\nchecksum %u\n", malloc_ns, new_ns, checksum);
  return 0;
}
