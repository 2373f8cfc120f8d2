// The console form of a gate's outcome, rendered from its result document (result.json) like the
// other reports: the verification table of the incident document (baseline, during each run, after
// each cooldown), the checks, what grew, the heap at the peak, the threads behind idle CPU that did
// not return, notes, warnings and one verdict line. `leakgate run` prints it; `leakgate report
// --format console` prints it again from a result file.
// Pure functions; thread-safe. A field that is missing or of another type is shown as absent (the
// console never refuses a result: it is what a person reads when everything else went wrong).
#ifndef LEAKGATE_REPORTS_CONSOLE_H_
#define LEAKGATE_REPORTS_CONSOLE_H_

#include <string>

#include <nlohmann/json.hpp>

namespace leakgate::reports {

// The table, a line per check, what grew (sockets by their peer with an example, threads by name;
// an fd that is also a listed socket is not repeated), the thread names behind idle CPU that did
// not return to the baseline, and the verdict line; ends with a newline.
std::string RenderConsoleReport(const nlohmann::json& result);

// "verdict: FAIL (exit 1): ..." alone.
std::string VerdictLine(const nlohmann::json& result);

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_CONSOLE_H_
