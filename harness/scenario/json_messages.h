// Wording shared by the readers of leakgate's JSON files (scenarios, suppressions): how a value, a
// JSON Pointer token and a syntax error are written in messages a person reads, and the collector
// that reports every problem of a file at once. The functions are pure and thread-safe; a
// JsonProblems is used by one reader at a time.
#ifndef LEAKGATE_HARNESS_SCENARIO_JSON_MESSAGES_H_
#define LEAKGATE_HARNESS_SCENARIO_JSON_MESSAGES_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace leakgate::harness {

// RFC 6901 escaping of one reference token ("a/b" -> "a~1b").
std::string PointerToken(std::string_view key);

// `text` as a JSON string literal, quotes included.
std::string Quote(std::string_view text);

// "a string (\"abc\")", "the number 3", "an object", "null", ... for "got ..." in messages.
std::string Describe(const nlohmann::json& value);

// "FILE:LINE:COLUMN: invalid JSON: <what>" for a parse error at byte `byte` (1-based) of `text`;
// `what` may be nlohmann's exception text, whose prefix is dropped.
std::string SyntaxErrorMessage(const std::string& file, std::string_view text, size_t byte,
                               std::string what);

// Parses a user's JSON file (comments allowed). kParse with SyntaxErrorMessage's "FILE:LINE:COLUMN"
// for a syntax error, or "FILE: invalid JSON: ..." for another parser failure.
Result<nlohmann::json> ParseJsonFile(std::string_view text, const std::string& file);

// Collects every problem of one file, each "FILE: /json/path: what", and reports them together in
// the order of their paths. A problem under a path that an override (--set) assigned is marked
// "(from --set ...)".
class JsonProblems {
 public:
  // `overrides`: (JSON path, the assignment as the user wrote it).
  explicit JsonProblems(std::string file,
                        std::vector<std::pair<std::string, std::string>> overrides = {});

  void Add(const std::string& path, const std::string& what);
  bool ok() const { return errors_.empty(); }
  size_t count() const { return errors_.size(); }
  // One line per problem, in the order of their JSON paths.
  std::string Message() const;

 private:
  std::string file_;
  std::vector<std::pair<std::string, std::string>> overrides_;
  std::vector<std::pair<std::string, std::string>> errors_;  // JSON path, message line
};

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SCENARIO_JSON_MESSAGES_H_
