// Wording shared by the readers of leakgate's JSON files (scenarios, suppressions): how a value, a
// JSON Pointer token and a syntax error are written in messages a person reads. Pure functions;
// thread-safe.
#ifndef LEAKGATE_HARNESS_JSON_MESSAGES_H_
#define LEAKGATE_HARNESS_JSON_MESSAGES_H_

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

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

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_JSON_MESSAGES_H_
