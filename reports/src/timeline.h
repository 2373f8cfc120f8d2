// A result's timeline as the HTML pages read it (internal to leakgate::reports): its validation and
// its phase bands. Shared by the single-gate report and the comparison page. Pure; thread-safe.
#ifndef LEAKGATE_REPORTS_SRC_TIMELINE_H_
#define LEAKGATE_REPORTS_SRC_TIMELINE_H_

#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "html_parts.h"
#include "reports/report.h"

namespace leakgate::reports {

// Each timeline point needs t (a number), phase (a string) and run (a number) to be drawn; a result
// without a timeline (absent or null) is valid. kInvalidArgument naming the JSON path, prefixed
// "result: ", or "<role> result: " when `role` is given ("before", "after").
Result<void> ValidateTimeline(const nlohmann::json& result, std::string_view role = "");

// The phase bands of a validated result's timeline: consecutive points of one (phase, run) make a
// band reaching to the next band's first point; warm-up runs (runs[].warmup) are marked. Labels:
// "baseline", "run K" or "warm-up K"; short labels "K" or "wK" for runs. Empty without a timeline.
std::vector<html::PhaseBand> TimelineBands(const nlohmann::json& result);

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_SRC_TIMELINE_H_
