#include "harness/scenario/json_messages.h"

#include <algorithm>

namespace leakgate::harness {

using nlohmann::json;

std::string PointerToken(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Quote(std::string_view text) { return json(std::string(text)).dump(); }

std::string Describe(const json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return text;
    case json::value_t::string:
      return "a string (" + text + ")";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "the number " + text;
    case json::value_t::array:
      return "an array (" + text + ")";
    case json::value_t::object:
      return "an object";
    default:
      return text;
  }
}

std::string SyntaxErrorMessage(const std::string& file, std::string_view text, size_t byte,
                               std::string what) {
  const size_t end = std::min(byte > 0 ? byte - 1 : 0, text.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  const size_t column = end - line_start + 1;
  // nlohmann's text is "[json.exception.parse_error.101] parse error at line L, column C: <what>".
  const size_t colon = what.find(": ");
  if (what.rfind("[json.exception", 0) == 0 && colon != std::string::npos) {
    what = what.substr(colon + 2);
  }
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) +
         ": invalid JSON: " + what;
}

Result<nlohmann::json> ParseJsonFile(std::string_view text, const std::string& file) {
  try {
    return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::parse_error& e) {
    return Fail(ErrorCode::kParse, SyntaxErrorMessage(file, text, e.byte, e.what()));
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kParse, file + ": invalid JSON: " + e.what());
  }
}

JsonProblems::JsonProblems(std::string file,
                           std::vector<std::pair<std::string, std::string>> overrides)
    : file_(std::move(file)), overrides_(std::move(overrides)) {}

void JsonProblems::Add(const std::string& path, const std::string& what) {
  std::string line = file_ + ": " + (path.empty() ? std::string("/") : path) + ": " + what;
  for (const auto& [override_path, assignment] : overrides_) {
    const bool related = path == override_path || path.rfind(override_path + "/", 0) == 0 ||
                         override_path.rfind(path + "/", 0) == 0;
    if (related) {
      line += " (from " + assignment + ")";
      break;
    }
  }
  errors_.emplace_back(path, std::move(line));
}

std::string JsonProblems::Message() const {
  auto sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (const auto& [path, line] : sorted) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

}  // namespace leakgate::harness
