// Reading and wording a result document's values the same way in every report (internal to
// leakgate::reports): numbers, sizes, check values in their unit, run labels and the idle CPU
// allowance. Used by the Markdown, HTML and comparison renderers so they agree to the character.
// Pure functions; thread-safe.
#ifndef LEAKGATE_REPORTS_SRC_RESULT_FORMAT_H_
#define LEAKGATE_REPORTS_SRC_RESULT_FORMAT_H_

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result_names.h"
#include "base/units.h"

namespace leakgate::reports {


// Bytes as FormatSize writes them ("4.7 MiB").
inline std::string Size(double bytes) {
  return FormatSize(static_cast<int64_t>(std::llround(bytes)));
}

// A byte difference with its sign ("+4.7 MiB", "-12 KiB").
inline std::string SignedSize(double bytes) { return (bytes >= 0 ? "+" : "") + Size(bytes); }

// parent[key] when it is a number; nullopt when absent, null or another type.
inline std::optional<double> NumberAt(const nlohmann::json& parent, const char* key) {
  auto it = parent.find(key);
  if (it == parent.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// parent[key] when it is a string; "" otherwise.
inline std::string StringAt(const nlohmann::json& parent, const char* key) {
  auto it = parent.find(key);
  return it != parent.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A count: whole numbers without decimals, others with two.
inline std::string Count(double value) {
  return std::fabs(value - std::round(value)) < 1e-9 ? std::to_string(std::llround(value))
                                                     : Fixed(value, 2);
}

// A check's observed value or threshold (`key`) in its unit ("%", "B", "B/run" or a count's noun);
// "—" when absent.
inline std::string CheckValue(const nlohmann::json& check, const char* key) {
  const std::optional<double> value = NumberAt(check, key);
  if (!value) return "—";
  const std::string unit = StringAt(check, "unit");
  if (unit == "%") return Fixed(*value, 2) + " %";
  if (unit == "B") return Size(*value);
  if (unit == "B/run") return Size(*value) + "/run";
  return Count(*value) + (unit.empty() ? "" : " " + unit);
}

// "run 3", "run 1 (warm-up)"; in Chinese "第3次运行", "第1次运行（预热）".
inline std::string RunLabel(bool zh, const nlohmann::json& run) {
  const std::string k = Count(run["index"].get<double>());
  const bool warmup = run.value("warmup", false);
  if (zh) return "第" + k + "次运行" + (warmup ? "（预热）" : "");
  return "run " + k + (warmup ? " (warm-up)" : "");
}

// The check of that name in r["checks"]; nullptr when the result has none.
inline const nlohmann::json* FindCheck(const nlohmann::json& r, std::string_view name) {
  for (const nlohmann::json& check : r["checks"]) {
    if (check["name"] == name) return &check;
  }
  return nullptr;
}

// The idle CPU allowance over the baseline: the idle_cpu_returns check's threshold, else the
// scenario's thresholds.idle_cpu_pct; none when neither is there.
inline std::optional<double> IdleCpuAllowance(const nlohmann::json& r) {
  if (const nlohmann::json* check = FindCheck(r, check_id::kIdleCpuReturns)) {
    if (auto t = NumberAt(*check, "threshold")) return t;
  }
  const nlohmann::json& scenario = r["scenario"];
  if (scenario.contains("thresholds") && scenario["thresholds"].is_object()) {
    return NumberAt(scenario["thresholds"], "idle_cpu_pct");
  }
  return std::nullopt;
}

// The idle CPU a run may leave behind: the baseline's CPU plus the allowance; none without either.
inline std::optional<double> IdleCpuLimit(const nlohmann::json& r) {
  if (!r.contains("baseline") || !r["baseline"].is_object()) return std::nullopt;
  const std::optional<double> base = NumberAt(r["baseline"], "cpu_pct");
  const std::optional<double> allowance = IdleCpuAllowance(r);
  if (!base || !allowance) return std::nullopt;
  return *base + *allowance;
}

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_SRC_RESULT_FORMAT_H_
