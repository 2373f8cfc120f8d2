// Suppression files: strict validation with messages naming the file and JSON path, and matching of
// growth items by kind and wildcard.
#include "harness/scenario/suppressions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace leakgate::harness {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kValid = R"({
  "schema": "leakgate.suppressions/1",
  "suppressions": [
    {"kind": "heap", "site": "*SymbolCache::Load*", "reason": "filled once on first use"},
    {"kind": "thread", "site": "grpc_global_timer*", "reason": "started lazily, one per process"},
    {"kind": "*", "site": "*/third_party/*.cc:*", "reason": "vendored code, tracked upstream"},
    {"kind": "socket", "site": "127.0.0.1:[0-9]*", "reason": "local metrics exporter"}
  ]
})";

Suppressions ParseValid() {
  auto parsed = ParseSuppressions(kValid, "known.json");
  EXPECT_TRUE(parsed) << parsed.error().message;
  return parsed ? *parsed : Suppressions{};
}

TEST(SuppressionsTest, ReadsEveryEntry) {
  const Suppressions suppressions = ParseValid();
  ASSERT_EQ(suppressions.entries.size(), 4u);
  EXPECT_EQ(suppressions.source, "known.json");
  EXPECT_EQ(suppressions.entries[0].kind, "heap");
  EXPECT_EQ(suppressions.entries[0].pattern, "*SymbolCache::Load*");
  EXPECT_EQ(suppressions.entries[0].reason, "filled once on first use");
  EXPECT_EQ(suppressions.entries[2].kind, "*");
}

TEST(SuppressionsTest, MatchesByKindAndWildcardOnAnyName) {
  const Suppressions suppressions = ParseValid();
  // A heap site is matched through its signature, its function or its file:line.
  const Suppression* cache = suppressions.Match(
      "heap", {"app::SymbolCache::Load (symbols.cc)", "app::SymbolCache::Load(int)",
               "/src/symbols.cc:40"});
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->reason, "filled once on first use");
  EXPECT_NE(suppressions.Match("heap", {"", "x", "app::SymbolCache::Load(int)"}), nullptr);
  // The kind must agree, unless the suppression's kind is "*".
  EXPECT_EQ(suppressions.Match("thread", {"app::SymbolCache::Load (symbols.cc)"}), nullptr);
  EXPECT_NE(suppressions.Match("thread", {"grpc_global_timer_3"}), nullptr);
  EXPECT_EQ(suppressions.Match("heap", {"grpc_global_timer_3"}), nullptr);
  const Suppression* vendored = suppressions.Match("fd", {"/work/third_party/zlib/inflate.cc:12"});
  ASSERT_NE(vendored, nullptr);
  EXPECT_EQ(vendored->kind, "*");
  // `*` crosses '/', `?` is one character, `[...]` a set.
  EXPECT_NE(suppressions.Match("socket", {"127.0.0.1:9100"}), nullptr);
  EXPECT_EQ(suppressions.Match("socket", {"127.0.0.1:x9100"}), nullptr);
  EXPECT_EQ(suppressions.Match("heap", {"app::Other::Load (other.cc)"}), nullptr);
  EXPECT_EQ(suppressions.Match("heap", {}), nullptr);
  // An empty name never matches, even a pattern of "*".
  Suppressions everything;
  everything.entries.push_back({"*", "*", "all of it"});
  EXPECT_EQ(everything.Match("heap", {""}), nullptr);
  EXPECT_NE(everything.Match("heap", {"a"}), nullptr);
}

TEST(SuppressionsTest, TheFirstMatchingEntryWins) {
  auto parsed = ParseSuppressions(R"({"schema": "leakgate.suppressions/1", "suppressions": [
      {"kind": "heap", "site": "app::*", "reason": "first"},
      {"kind": "heap", "site": "app::Cache*", "reason": "second"}]})",
                                  "order.json");
  ASSERT_TRUE(parsed) << parsed.error().message;
  const Suppression* match = parsed->Match("heap", {"app::Cache::Fill (cache.cc)"});
  ASSERT_NE(match, nullptr);
  EXPECT_EQ(match->reason, "first");
}

TEST(SuppressionsTest, AnEmptyListIsValid) {
  auto parsed =
      ParseSuppressions(R"({"schema": "leakgate.suppressions/1", "suppressions": []})", "e.json");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->entries.empty());
  EXPECT_EQ(parsed->Match("heap", {"anything"}), nullptr);
}

TEST(SuppressionsTest, EveryProblemIsNamedWithItsPathAndWhatWasExpected) {
  auto parsed = ParseSuppressions(R"({
    "schema": "leakgate.suppressions/1",
    "suppresions": [],
    "suppressions": [
      {"kind": "heap", "site": "a*", "reason": "ok"},
      {"kind": "memory", "site": "b*", "reason": "typo in kind"},
      {"kind": "heap", "site": "c*"},
      {"kind": "heap", "site": "", "reason": "   "},
      {"kind": "fd", "site": 3, "reason": "x", "note": "extra"},
      "not an object"
    ]
  })",
                                  "/etc/leakgate/known.json");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  const std::string& message = parsed.error().message;
  const std::vector<std::string> expected_lines = {
      "/etc/leakgate/known.json: /suppresions: unknown key \"suppresions\"; expected one of: "
      "schema, suppressions",
      "/etc/leakgate/known.json: /suppressions/1/kind: unknown kind \"memory\"; expected one of "
      "heap, fd, socket, thread, *",
      "/etc/leakgate/known.json: /suppressions/2/reason: required: a reason",
      "/etc/leakgate/known.json: /suppressions/3/reason: expected a reason: why this growth is "
      "known and accepted, got an empty string",
      "/etc/leakgate/known.json: /suppressions/3/site: expected a wildcard pattern",
      "/etc/leakgate/known.json: /suppressions/4/note: unknown key \"note\"",
      "/etc/leakgate/known.json: /suppressions/4/site: expected a wildcard pattern for the site "
      "(\"*\", \"?\" and \"[...]\" as in a shell), got the number 3",
      "/etc/leakgate/known.json: /suppressions/5: expected an object",
  };
  for (const std::string& line : expected_lines) EXPECT_THAT(message, HasSubstr(line));
  EXPECT_THAT(message, Not(HasSubstr("/suppressions/0")));
  // One line per problem, in path order.
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n') + 1, 8);
  EXPECT_LT(message.find("/suppressions/1/"), message.find("/suppressions/2/"));
}

TEST(SuppressionsTest, SchemaAndShapeAreChecked) {
  auto wrong_schema = ParseSuppressions(
      R"({"schema": "leakgate.suppressions/2", "suppressions": []})", "s.json");
  ASSERT_FALSE(wrong_schema);
  EXPECT_THAT(wrong_schema.error().message,
              HasSubstr("s.json: /schema: expected \"leakgate.suppressions/1\""));
  EXPECT_THAT(wrong_schema.error().message, HasSubstr("got \"leakgate.suppressions/2\""));

  auto no_schema = ParseSuppressions(R"({"suppressions": []})", "s.json");
  ASSERT_FALSE(no_schema);
  EXPECT_THAT(no_schema.error().message, HasSubstr("s.json: /schema: required"));

  auto no_list = ParseSuppressions(R"({"schema": "leakgate.suppressions/1"})", "s.json");
  ASSERT_FALSE(no_list);
  EXPECT_THAT(no_list.error().message, HasSubstr("s.json: /suppressions: required"));

  auto not_a_list = ParseSuppressions(
      R"({"schema": "leakgate.suppressions/1", "suppressions": {"kind": "heap"}})", "s.json");
  ASSERT_FALSE(not_a_list);
  EXPECT_THAT(not_a_list.error().message,
              HasSubstr("s.json: /suppressions: expected an array of"));

  auto array = ParseSuppressions("[]", "s.json");
  ASSERT_FALSE(array);
  EXPECT_EQ(array.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(array.error().message, HasSubstr("s.json: /: expected a suppressions object"));
}

TEST(SuppressionsTest, InvalidJsonNamesLineAndColumn) {
  auto parsed = ParseSuppressions(
      "{\n  \"schema\": \"leakgate.suppressions/1\",\n  \"suppressions\": [,]\n}", "bad.json");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::kParse);
  EXPECT_THAT(parsed.error().message, HasSubstr("bad.json:3:"));
  EXPECT_THAT(parsed.error().message, HasSubstr("invalid JSON"));
}

TEST(SuppressionsTest, LoadsAFileAndNamesAMissingOne) {
  char pattern[] = "/tmp/leakgate-suppressions-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  const std::filesystem::path file = dir / "known.json";
  std::ofstream(file) << kValid;
  auto loaded = LoadSuppressions(file);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->entries.size(), 4u);
  EXPECT_EQ(loaded->source, file.string());

  auto missing = LoadSuppressions(dir / "absent.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr((dir / "absent.json").string()));

  auto directory = LoadSuppressions(dir);
  ASSERT_FALSE(directory);
  EXPECT_THAT(directory.error().message, HasSubstr(dir.string()));

  std::ofstream(dir / "broken.json") << "{\"schema\": ";
  auto broken = LoadSuppressions(dir / "broken.json");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, ErrorCode::kParse);
  EXPECT_THAT(broken.error().message, HasSubstr((dir / "broken.json").string() + ":1:"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace leakgate::harness
