#include "harness/scenario/suppressions.h"

#include "harness/scenario/json_messages.h"

#include <fnmatch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

namespace leakgate::harness {
namespace {

using nlohmann::json;

constexpr std::string_view kSchema = "leakgate.suppressions/1";
const std::vector<std::string> kTopKeys = {"schema", "suppressions"};
const std::vector<std::string> kEntryKeys = {"kind", "site", "reason"};
const std::vector<std::string> kKinds = {"heap", "fd", "socket", "thread", "*"};


std::string OneOf(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}


void CheckKeys(JsonProblems& problems, const json& object, const std::string& path,
               const std::vector<std::string>& allowed) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      problems.Add(path + "/" + PointerToken(key),
                   "unknown key " + Quote(key) + "; expected one of: " + OneOf(allowed));
    }
  }
}

// A required, non-blank string member.
std::optional<std::string> RequiredString(JsonProblems& problems, const json& object,
                                          const std::string& path, const std::string& key,
                                          const std::string& what) {
  const std::string here = path + "/" + key;
  const auto it = object.find(key);
  if (it == object.end()) {
    problems.Add(here, "required: " + what);
    return std::nullopt;
  }
  if (!it->is_string()) {
    problems.Add(here, "expected " + what + ", got " + Describe(*it));
    return std::nullopt;
  }
  std::string text = it->get<std::string>();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    problems.Add(here, "expected " + what + ", got an empty string");
    return std::nullopt;
  }
  return text;
}

}  // namespace

const Suppression* Suppressions::Match(std::string_view kind,
                                       const std::vector<std::string>& names) const {
  const std::string kind_text(kind);
  for (const Suppression& entry : entries) {
    if (entry.kind != "*" && entry.kind != kind_text) continue;
    for (const std::string& name : names) {
      if (!name.empty() && ::fnmatch(entry.pattern.c_str(), name.c_str(), 0) == 0) return &entry;
    }
  }
  return nullptr;
}

Result<Suppressions> ParseSuppressions(std::string_view text, const std::filesystem::path& path) {
  const std::string file = path.string();
  auto parsed = ParseJsonFile(text, file);
  if (!parsed) return std::unexpected(parsed.error());
  json document = std::move(*parsed);
  const std::string shape = "{\"schema\": \"" + std::string(kSchema) +
                            "\", \"suppressions\": [{\"kind\": ..., \"site\": ..., \"reason\": "
                            "...}]}";
  if (!document.is_object()) {
    return Fail(ErrorCode::kInvalidArgument,
                file + ": /: expected a suppressions object " + shape + ", got " +
                    Describe(document));
  }
  JsonProblems problems(file);
  CheckKeys(problems, document, "", kTopKeys);
  const std::string schema_what = "\"" + std::string(kSchema) + "\"";
  if (auto schema = RequiredString(problems, document, "", "schema", schema_what)) {
    if (*schema != kSchema) {
      problems.Add("/schema", "expected " + schema_what + " (the format this leakgate reads), got " +
                                  Quote(*schema));
    }
  }
  Suppressions suppressions;
  suppressions.source = file;
  const auto list = document.find("suppressions");
  if (list == document.end()) {
    problems.Add("/suppressions", "required: an array of {\"kind\", \"site\", \"reason\"} objects");
  } else if (!list->is_array()) {
    problems.Add("/suppressions",
                 "expected an array of {\"kind\", \"site\", \"reason\"} objects, got " +
                     Describe(*list));
  } else {
    for (size_t i = 0; i < list->size(); ++i) {
      const json& item = (*list)[i];
      const std::string here = "/suppressions/" + std::to_string(i);
      if (!item.is_object()) {
        problems.Add(here, "expected an object {\"kind\": ..., \"site\": ..., \"reason\": ...}, "
                           "got " + Describe(item));
        continue;
      }
      CheckKeys(problems, item, here, kEntryKeys);
      Suppression entry;
      const std::string kind_what = "one of " + OneOf(kKinds);
      auto kind = RequiredString(problems, item, here, "kind", kind_what);
      if (kind && std::find(kKinds.begin(), kKinds.end(), *kind) == kKinds.end()) {
        problems.Add(here + "/kind", "unknown kind " + Quote(*kind) + "; expected " + kind_what);
        kind.reset();
      }
      auto site = RequiredString(
          problems, item, here, "site",
          "a wildcard pattern for the site (\"*\", \"?\" and \"[...]\" as in a shell)");
      auto reason = RequiredString(problems, item, here, "reason",
                                   "a reason: why this growth is known and accepted");
      if (!kind || !site || !reason) continue;
      entry.kind = *kind;
      entry.pattern = *site;
      entry.reason = *reason;
      suppressions.entries.push_back(std::move(entry));
    }
  }
  if (!problems.ok()) return Fail(ErrorCode::kInvalidArgument, problems.Message());
  return suppressions;
}

Result<Suppressions> LoadSuppressions(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return Fail(ErrorCode::kNotFound, "suppressions file " + path.string() + " does not exist");
    }
    return Fail(ErrorCode::kIo, "cannot read suppressions file " + path.string() + ": " +
                                    SystemErrorText(error));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Fail(ErrorCode::kIo, "cannot read suppressions file " + path.string());
  return ParseSuppressions(text.str(), path);
}

}  // namespace leakgate::harness
