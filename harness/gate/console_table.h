// The console form of a gate's outcome: the verification table of the incident document (baseline,
// during each run, after each cooldown) followed by the checks and one verdict line.
// Pure functions of a GateResult; thread-safe.
#ifndef LEAKGATE_HARNESS_GATE_CONSOLE_TABLE_H_
#define LEAKGATE_HARNESS_GATE_CONSOLE_TABLE_H_

#include <string>

#include "harness/gate/runner.h"

namespace leakgate::harness {

// FormatSize (scenario.h) of a rounded byte count: "1.5 KiB", "41.2 MiB", "512 B"; negative values
// keep their sign.
std::string HumanBytes(double bytes);

// The table, a line per check, what grew (sockets by their peer with an example, threads by name;
// an fd that is also a listed socket is not repeated), the thread names behind idle CPU that did
// not return to the baseline, and the verdict line; ends with a newline.
std::string RenderConsoleReport(const GateResult& result);

// "verdict: FAIL (exit 1): ..." alone.
std::string VerdictLine(const GateResult& result);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_GATE_CONSOLE_TABLE_H_
