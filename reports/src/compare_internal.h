// Pieces of the before/after comparison shared by its Markdown and HTML renderings (internal to
// leakgate::reports): input checks that name "before" or "after", the text a site is matched by,
// and the wording of values and of the headline, so both renderings agree to the character.
// Pure functions; thread-safe.
#ifndef LEAKGATE_REPORTS_SRC_COMPARE_INTERNAL_H_
#define LEAKGATE_REPORTS_SRC_COMPARE_INTERNAL_H_

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "reports/compare.h"

namespace leakgate::reports::compare_internal {

// ValidateResult plus the string ids of growth items and peak sites; the message starts with
// "`role` result: " and names the JSON path.
Result<void> ValidateSide(const nlohmann::json& result, std::string_view role);

// result["heap_profiles"]["peak_sites"] when it is an array; nullptr otherwise.
const nlohmann::json* PeakSites(const nlohmann::json& result);

// The text a site without an id is matched by: fd and socket sites lose the port of each
// "HOST:PORT" ("tcp -> 127.0.0.1:42605" -> "tcp -> 127.0.0.1:*"); other kinds keep their text.
std::string SiteMatchText(std::string_view kind, std::string_view site);

// A value in a check's unit ("%", "B", "B/run", a count's noun), as the single-gate report writes
// it; "—" when absent.
std::string InUnit(std::optional<double> value, const std::string& unit);

// A check's threshold in its unit; "BEFORE → AFTER" when the two results differ.
std::string ThresholdText(const CheckComparison& check);

// A growth figure with its sign in `unit` ("B", "%", "" for a count): "+4.6 MiB", "-0.50 %",
// "+5"; "—" when absent.
std::string Signed(std::optional<double> value, std::string_view unit);

// The headline's sentence (why the fix is or is not shown), in "en" or "zh", without the mark.
std::string Summary(const Comparison& comparison, bool zh);

}  // namespace leakgate::reports::compare_internal

#endif  // LEAKGATE_REPORTS_SRC_COMPARE_INTERNAL_H_
