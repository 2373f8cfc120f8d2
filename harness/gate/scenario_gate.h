// A gate set up from a scenario: the target started (or attached) with the profilers the scenario
// asks for preloaded, its workload and heap source built, the run loop (runner.h) driven, the CPU
// profiles summarised and everything started stopped again.
// One call per gate; thread-compatible.
#ifndef LEAKGATE_HARNESS_GATE_SCENARIO_GATE_H_
#define LEAKGATE_HARNESS_GATE_SCENARIO_GATE_H_

#include <string>

#include "base/clock.h"
#include "harness/gate/result.h"
#include "harness/gate/runner.h"
#include "harness/sample/proc_reader.h"
#include "harness/scenario/scenario.h"

namespace leakgate::harness {

struct ScenarioRunOptions {
  std::string out_dir;   // required: target output, heap and CPU profiles
  ProgressFn progress;
};

// The loop's settings from a scenario's fields.
GateConfig GateConfigFromScenario(const Scenario& scenario);

// Starts the scenario's target (or attaches), builds its workload and heap source, runs the gate,
// stops what it started. Never throws. A scenario the gate cannot use (a bad suppressions file, a
// profiler for an attached target, a profiler that is not installed) is verdict "error", exit code
// 2; a target that does not start, dies or is lost is verdict "error", exit code 3.
GateResult RunScenario(const Scenario& scenario, const ScenarioRunOptions& options, Clock& clock,
                       ProcReader& reader);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_GATE_SCENARIO_GATE_H_
