#include "harness/drive/workload.h"

#include <utility>

namespace leakgate::harness {

CallbackWorkload::CallbackWorkload(Callback callback, std::string description, Clock& clock)
    : callback_(std::move(callback)), description_(std::move(description)), clock_(clock) {}

Result<WorkloadRunInfo> CallbackWorkload::Run(int run_index, const std::atomic<bool>& cancel) {
  if (cancel.load()) {
    return Fail(ErrorCode::kFailedPrecondition,
                "run " + std::to_string(run_index) + " cancelled before it started");
  }
  if (!callback_) {
    return Fail(ErrorCode::kInvalidArgument, "the in-process workload has no callback");
  }
  const double start = clock_.NowSeconds();
  auto info = callback_(run_index, cancel);
  if (!info) return info;
  if (info->duration_s == 0) {
    info->duration_s = clock_.NowSeconds() - start;
  }
  if (info->description.empty()) info->description = description_;
  return info;
}

std::string CallbackWorkload::Describe() const { return description_; }

Result<std::unique_ptr<Workload>> MakeWorkload(const WorkloadConfig& config,
                                               const PlaceholderValues& values,
                                               const std::string& output_dir, Clock& clock) {
  if (config.http && config.command) {
    return Fail(ErrorCode::kInvalidArgument,
                "the workload has both \"http\" and \"command\": expected exactly one");
  }
  if (config.http) {
    return std::make_unique<HttpWorkload>(*config.http, values, clock);
  }
  if (config.command) {
    return std::make_unique<CommandWorkload>(*config.command, values, output_dir,
                                             /*kill_grace_s=*/1.0, clock);
  }
  return Fail(ErrorCode::kInvalidArgument,
              "the workload has neither \"http\" nor \"command\": expected exactly one");
}

}  // namespace leakgate::harness
