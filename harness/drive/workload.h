// Workloads: what one run of a scenario does to the target. An HTTP sequence (requests with JSON
// bodies, values captured from responses, polling until a field reaches a value), a command run
// once per run, or a C++ callback for programs that link the library.
//
// The runner owns the workload and calls `Run` for run 1, 2, ... from one thread at a time; a
// workload is not safe for concurrent `Run` calls. The `cancel` flag may be set from any thread (a
// signal handler's flag, another thread): `Run` checks it at least every 10 ms and returns soon
// after. Workloads sleep, poll and measure durations and timeouts on the Clock they are given
// (Clock::Real() unless a test passes a FakeClock); only waits the OS itself bounds (a socket read)
// run on real time, with their limits taken from that clock. Nothing a run opens (connections,
// child processes) outlives it, so leakgate's own sockets are never counted as the target's.
#ifndef LEAKGATE_HARNESS_DRIVE_WORKLOAD_H_
#define LEAKGATE_HARNESS_DRIVE_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/error.h"
#include "harness/scenario/scenario.h"

namespace leakgate::harness {

// What one successful run did.
struct WorkloadRunInfo {
  double duration_s = 0;                        // wall time of the run
  int64_t requests = 0;                         // HTTP requests sent (polls included)
  std::map<std::string, std::string> captured;  // values captured by HTTP steps
  std::optional<int> exit_status;               // command workloads: the command's exit status
  std::string description;                      // one line for logs: "POST /api/backtest 202; ..."
};

class Workload {
 public:
  virtual ~Workload() = default;

  // Drives the target once; `run_index` counts from 1 (warm-up runs included) and is ${RUN}.
  //
  // Success: every step answered as expected (status, captures, `until` reached, `expect` met; or
  // the command exited with an expected status within its timeout).
  // Failure means the target answered wrongly or not at all, and the message names the step, the
  // URL or command, the status and an excerpt of the body or of stderr:
  //   kUnavailable: no answer (connection refused or reset, request timed out);
  //   kTargetFailed: a wrong answer (unexpected status, response not JSON, a captured pointer
  //     missing, `until` not reached before its timeout, `expect` not met, unexpected exit status,
  //     command timed out and killed);
  //   kInvalidArgument / kNotFound: the workload itself is wrong (unknown placeholder at run time,
  //     command not found);
  //   kFailedPrecondition: `cancel` was set; the run stopped early, its processes killed.
  virtual Result<WorkloadRunInfo> Run(int run_index, const std::atomic<bool>& cancel) = 0;

  // One line saying what a run does, for the console and result.json ("HTTP: 2 steps against
  // http://127.0.0.1:8080", "command: ./load.sh").
  virtual std::string Describe() const = 0;
};

// Runs the HTTP steps in order against `config.base_url`, with a new connection per run that is
// closed when the run ends. Strings are expanded with `values` plus ${RUN} and the values captured
// by earlier steps of the same run.
class HttpWorkload : public Workload {
 public:
  HttpWorkload(HttpWorkloadConfig config, PlaceholderValues values, Clock& clock = Clock::Real());
  Result<WorkloadRunInfo> Run(int run_index, const std::atomic<bool>& cancel) override;
  std::string Describe() const override;

 private:
  HttpWorkloadConfig config_;
  PlaceholderValues values_;
  Clock& clock_;
};

// Runs `config.argv` once per run as a new process group (posix_spawn, stdin from /dev/null), waits
// for it, and checks its exit status. At the timeout or on cancel the whole group gets SIGTERM,
// then SIGKILL after `kill_grace_s`; when the command exits, what it left running in its group is
// killed too. With an `output_dir`, run k's stdout and stderr go to
// `<output_dir>/workload-run-<k>.stdout|.stderr`; otherwise stdout is discarded and stderr kept in
// memory only for the failure message.
class CommandWorkload : public Workload {
 public:
  CommandWorkload(CommandWorkloadConfig config, PlaceholderValues values,
                  std::string output_dir = "", double kill_grace_s = 1.0,
                  Clock& clock = Clock::Real());
  Result<WorkloadRunInfo> Run(int run_index, const std::atomic<bool>& cancel) override;
  std::string Describe() const override;

 private:
  CommandWorkloadConfig config_;
  PlaceholderValues values_;
  std::string output_dir_;
  double kill_grace_s_;
  Clock& clock_;
};

// A workload in the calling process: `Run` calls `callback`. The callback reports failure through
// its Result with the codes above; `duration_s` is filled in when the callback leaves it at 0.
class CallbackWorkload : public Workload {
 public:
  using Callback =
      std::function<Result<WorkloadRunInfo>(int run_index, const std::atomic<bool>& cancel)>;

  CallbackWorkload(Callback callback, std::string description = "in-process callback",
                   Clock& clock = Clock::Real());
  Result<WorkloadRunInfo> Run(int run_index, const std::atomic<bool>& cancel) override;
  std::string Describe() const override;

 private:
  Callback callback_;
  std::string description_;
  Clock& clock_;
};

// The workload a scenario describes: HttpWorkload or CommandWorkload with the scenario's load-time
// placeholder values, timed on `clock`. `output_dir` is for a command's stdout and stderr (may be
// empty). Fails
// (kInvalidArgument) when the config has neither `http` nor `command`.
Result<std::unique_ptr<Workload>> MakeWorkload(const WorkloadConfig& config,
                                               const PlaceholderValues& values,
                                               const std::string& output_dir = "",
                                               Clock& clock = Clock::Real());

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_DRIVE_WORKLOAD_H_
