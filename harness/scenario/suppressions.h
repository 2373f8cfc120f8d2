// Known, accepted growth: a file of patterns, each with a reason, that keeps a site out of the
// verdict while still showing it (marked suppressed, with the reason) in the result.
//
// File format (JSON, validated strictly like scenarios; errors name the file, the JSON path and what
// was expected):
//   { "schema": "leakgate.suppressions/1",
//     "suppressions": [
//       { "kind": "heap", "site": "*SymbolCache::Load*", "reason": "filled once on first use" },
//       { "kind": "thread", "site": "grpc_global_timer*", "reason": "started lazily, one per process" } ] }
// "kind" is one of heap, fd, socket, thread, or "*" for any; "site" is a shell-style wildcard
// (fnmatch, `*` and `?` and `[...]`) matched against a growth item's site and, for heap sites, also
// against the site's function, its "file:line" and its signature; "reason" is required and not
// empty. Pure values; thread-safe.
#ifndef LEAKGATE_HARNESS_SCENARIO_SUPPRESSIONS_H_
#define LEAKGATE_HARNESS_SCENARIO_SUPPRESSIONS_H_

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace leakgate::harness {

struct Suppression {
  std::string kind;     // "heap", "fd", "socket", "thread" or "*"
  std::string pattern;  // wildcard
  std::string reason;
};

struct Suppressions {
  std::vector<Suppression> entries;
  std::string source;  // the file they came from, "" when built in code

  // The first suppression matching an item of `kind` named by any of `names`, else nullptr.
  const Suppression* Match(std::string_view kind, const std::vector<std::string>& names) const;
};

// Errors: kNotFound / kIo naming the path; kParse "FILE:LINE:COLUMN: ..." for invalid JSON;
// kInvalidArgument "FILE: /suppressions/2/kind: ... expected one of heap, fd, socket, thread, *".
Result<Suppressions> LoadSuppressions(const std::filesystem::path& path);
Result<Suppressions> ParseSuppressions(std::string_view text, const std::filesystem::path& path);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SCENARIO_SUPPRESSIONS_H_
