// result.json: the machine-readable form of a gate's outcome (schema "leakgate.result/1", fields as in
// DESIGN.md; fields are added freely and never renamed), and writing files without leaving anything
// half-written behind (a temporary file in the same folder, then rename).
// Pure functions apart from WriteFileAtomically; thread-safe.
#ifndef LEAKGATE_HARNESS_RESULT_WRITER_H_
#define LEAKGATE_HARNESS_RESULT_WRITER_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "harness/error.h"
#include "harness/runner.h"

namespace leakgate::harness {

inline constexpr std::string_view kResultSchema = "leakgate.result/1";

// The result document. `scenario` is the scenario's JSON (after overrides), `environment` facts about
// the machine and the run (see EnvironmentJson).
nlohmann::json GateResultToJson(const GateResult& result, const nlohmann::json& scenario,
                                const nlohmann::json& environment);

// Host name, kernel, CPUs, memory, clock ticks, leakgate's version, the time the gate started (UTC),
// and whether CI was set.
nlohmann::json EnvironmentJson();

// Writes `content` to `path` through a temporary file in the same folder and rename(2); on failure
// the temporary file is removed and `path` is untouched. kIo names the path and the errno text.
Result<void> WriteFileAtomically(const std::string& path, std::string_view content);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_RESULT_WRITER_H_
