// Prints each argument (a number of bytes, or a size such as "2 MiB") as leakgate formats sizes:
// "1536 -> 1.5 KiB". Exits 1 on a size leakgate does not accept.
#include <base/units.h>

#include <iostream>

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const auto bytes = leakgate::ParseSize(argv[i]);
    if (!bytes) {
      std::cerr << bytes.error().message << "\n";
      return 1;
    }
    std::cout << argv[i] << " -> " << leakgate::FormatSize(*bytes) << "\n";
  }
  return 0;
}
