// Return addresses to functions, files and lines, through the mapped objects a profile lists.
//
// `Addr2lineSymbolizer` finds the mapping of each address, computes its offset in the object (for a
// shared object or a position-independent executable: address - start + file offset, carried
// into the object's own addresses through its PT_LOAD segments; for a fixed executable (ET_EXEC)
// the address itself), looks up address - 1 (the call, not the instruction after it), and runs
// `addr2line -f -C -i -e OBJECT` once per object with every address of that object in one batch
// on its stdin (about 15 ms for a small library; 0.7 s for a 24 MB executable with full debug
// information, most of it loading that information). Inlined calls come back as frames of their
// own, innermost first.
// Where the debug information names a function without its scope (member functions defined in a
// class body: "Close"), the name is completed from the object's symbol table; where addr2line names
// an unnamed inlined frame after the function around it, that frame is left unnamed (its file and
// line kept) and the name goes to the real frame.
// Results are cached per object and offset, so symbolizing many profiles of one process costs one
// batch per new address. An object that cannot be read (deleted, no addr2line) yields frames with
// the object's path and no function, and a warning; never a failure of the whole batch.
//
// A Symbolizer is not thread-safe; use one per thread.
#ifndef LEAKGATE_HARNESS_PROFILE_SYMBOLIZER_H_
#define LEAKGATE_HARNESS_PROFILE_SYMBOLIZER_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "harness/profile/heap_profile.h"

namespace leakgate::harness {

struct SourceFrame {
  uint64_t address = 0;   // the return address as written in the profile
  std::string function;   // demangled, with parameters; "" when unknown
  std::string file;       // source path as recorded in the debug information; "" when unknown
  int line = 0;           // 0 when unknown
  std::string module;     // path of the mapped object; "" when the address is in no mapping
  uint64_t offset = 0;    // the address looked up in `module` (address - 1 in the object's own
                          // addresses, as addr2line takes it); 0 when in no mapping
  bool inlined = false;   // an inlined call within the frame that follows it
};

// A demangled function name without its return type, parameter list, qualifiers and clone
// suffixes: "void std::vector<int>::_M_realloc_insert<int>(...) [clone .isra.0]" ->
// "std::vector<int>::_M_realloc_insert<int>". Pure; thread-safe.
std::string FunctionNameWithoutParameters(std::string_view function);

class Symbolizer {
 public:
  virtual ~Symbolizer() = default;
  // One vector per address, in the order given: the inlined frames innermost first, the real frame
  // last (at least one frame per address). Failure only for a problem with the whole request (for
  // example addr2line cannot be started at all: kNotFound saying which package provides it).
  virtual Result<std::vector<std::vector<SourceFrame>>> Symbolize(
      std::span<const uint64_t> addresses, std::span<const MappedRegion> mappings) = 0;
  // Distinct problems met so far (an unreadable object, a missing debug section), oldest first.
  virtual const std::vector<std::string>& warnings() const = 0;
};

class Addr2lineSymbolizer : public Symbolizer {
 public:
  explicit Addr2lineSymbolizer(std::string addr2line = "addr2line");
  Result<std::vector<std::vector<SourceFrame>>> Symbolize(
      std::span<const uint64_t> addresses, std::span<const MappedRegion> mappings) override;
  const std::vector<std::string>& warnings() const override { return warnings_; }

 private:
  std::string addr2line_;
  std::map<std::pair<std::string, uint64_t>, std::vector<SourceFrame>> cache_;  // (object, offset)
  std::vector<std::string> warnings_;
};

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_PROFILE_SYMBOLIZER_H_
