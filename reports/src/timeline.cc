#include "timeline.h"

#include <set>
#include <string>
#include <utility>

namespace leakgate::reports {
namespace {

using nlohmann::json;

std::string TypeText(const json& value) {
  return value.is_null() ? "null" : std::string(value.type_name());
}

}  // namespace

Result<void> ValidateTimeline(const json& r, std::string_view role) {
  const std::string prefix = (role.empty() ? "" : std::string(role) + " ") + "result: ";
  auto it = r.find("timeline");
  if (it == r.end() || it->is_null()) return {};
  if (!it->is_array()) {
    return Fail(ErrorCode::kInvalidArgument,
                prefix + "/timeline is " + TypeText(*it) + "; expected an array of points");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& point = (*it)[i];
    const std::string path = "/timeline/" + std::to_string(i);
    if (!point.is_object()) {
      return Fail(ErrorCode::kInvalidArgument,
                  prefix + path + " is " + TypeText(point) + "; expected an object");
    }
    for (const char* key : {"t", "phase", "run"}) {
      auto field = point.find(key);
      const bool is_phase = key[0] == 'p';
      const char* expected = is_phase ? "a string (baseline, run or cooldown)" : "a number";
      if (field == point.end()) {
        return Fail(ErrorCode::kInvalidArgument,
                    prefix + path + "/" + key + " is missing; expected " + expected);
      }
      if (is_phase ? !field->is_string() : !field->is_number()) {
        return Fail(ErrorCode::kInvalidArgument, prefix + path + "/" + key + " is " +
                                                     TypeText(*field) + "; expected " + expected);
      }
    }
  }
  return {};
}

std::vector<html::PhaseBand> TimelineBands(const json& r) {
  std::vector<html::PhaseBand> bands;
  if (!r.contains("timeline") || !r["timeline"].is_array()) return bands;
  std::set<int> warmups;
  for (const json& run : r["runs"]) {
    if (run.value("warmup", false)) warmups.insert(static_cast<int>(run["index"].get<double>()));
  }
  for (const json& p : r["timeline"]) {
    const double t = p["t"].get<double>();
    const std::string phase = p["phase"].get<std::string>();
    const int run = static_cast<int>(p["run"].get<double>());
    if (!bands.empty() && bands.back().phase == phase && bands.back().run == run) {
      bands.back().end_t = t;
      continue;
    }
    if (!bands.empty()) bands.back().end_t = t;
    html::PhaseBand band{.phase = phase, .run = run, .start_t = t, .end_t = t,
                         .warmup = warmups.contains(run)};
    if (phase == "baseline") {
      band.label = "baseline";
    } else if (phase == "run") {
      band.label = (band.warmup ? "warm-up " : "run ") + std::to_string(run);
      band.short_label = (band.warmup ? "w" : "") + std::to_string(run);
    }
    bands.push_back(std::move(band));
  }
  return bands;
}

}  // namespace leakgate::reports
