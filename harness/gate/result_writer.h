// result.json: the machine-readable form of a gate's outcome (schema "leakgate.result/1", fields as in
// DESIGN.md; fields are added freely and never renamed; the names are in base/result_names.h).
// Files are written with WriteFileAtomically (base/atomic_file.h). Pure functions; thread-safe.
#ifndef LEAKGATE_HARNESS_GATE_RESULT_WRITER_H_
#define LEAKGATE_HARNESS_GATE_RESULT_WRITER_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/result_names.h"
#include "harness/gate/result.h"

namespace leakgate::harness {

// The result document. `scenario` is the scenario's JSON (after overrides), `environment` facts about
// the machine and the run (see EnvironmentJson).
nlohmann::json GateResultToJson(const GateResult& result, const nlohmann::json& scenario,
                                const nlohmann::json& environment);

// Host name, kernel, CPUs, memory, clock ticks, leakgate's version, the time the gate started (UTC),
// and whether CI was set.
nlohmann::json EnvironmentJson();

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_GATE_RESULT_WRITER_H_
