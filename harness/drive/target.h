// The process leakgate measures: one it starts (`SpawnTarget`) or one that already runs (`AttachTarget`),
// behind the `Target` interface; and the process hygiene that makes sure nothing leakgate started
// outlives it (`ChildProcessRegistry`, `InstallTerminationHandlers`, `BecomeChildSubreaper`).
//
// A spawned target runs in its own process group, with stdin from /dev/null and its stdout and stderr
// kept in `<output_dir>/stdout.log` and `<output_dir>/stderr.log`. Stopping it signals the whole group,
// so children the target started go with it. An attached target is only observed: leakgate never
// signals a process it did not start.
//
// Ownership: the caller owns the `Target`; destroying a spawned target stops it (and its group). The
// `Clock` passed to `SpawnTarget` must outlive the target. Every started process group is recorded in the
// process-wide `ChildProcessRegistry` until it has been stopped, so that the termination handlers and the
// exit path can kill it.
//
// Thread-safety: `Start` and `Stop` are called by the owner, not concurrently with each other;
// `pid`, `Alive`, `ExitStatus` and `CheckAlive` may be called from any thread at any time (a sampler
// thread may poll them while the runner drives the workload). The registry is lock-free and
// async-signal-safe.
//
// Why not PR_SET_PDEATHSIG: it fires when the *thread* that created the child exits, not the process (a
// runner thread that spawns and then finishes would kill the target), it covers only the direct child
// and not what the target starts, it cannot be set through posix_spawn, and it is cleared when the child
// execs a set-user-ID program. Killing the registered process groups from the termination handlers and
// the exit path covers the whole group instead; `BecomeChildSubreaper` keeps the grandchildren of a
// target that died parented to leakgate, so they stay visible and are reaped.
#ifndef LEAKGATE_HARNESS_DRIVE_TARGET_H_
#define LEAKGATE_HARNESS_DRIVE_TARGET_H_

#include <sys/types.h>

#include <atomic>
#include <csignal>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"

namespace leakgate::harness {

// How a process ended, or why leakgate cannot say.
struct ExitInfo {
  bool exited = false;       // ended through exit(); `code` holds the status
  int code = 0;
  int signal = 0;            // ended by this signal (0: not by a signal)
  bool core_dumped = false;
  bool exited_before_stop = false;  // it had already ended when Stop() was called (a crash or an exit)
  bool killed_after_timeout = false;  // it outlived stop_timeout_s and received SIGKILL
  // For a person: "exited with status 1", "killed by SIGSEGV (Segmentation fault)", "left running
  // (attached: leakgate does not stop a process it did not start)", "ended (status unknown: ...)".
  std::string description;
};

// When a spawned target counts as ready for measurement.
struct ReadyCheck {
  enum class Kind {
    kImmediate,   // as soon as it has been started
    kHttpGet,     // a GET of `url` answers 2xx
    kStdoutLine,  // a line of its stdout contains `pattern` (or matches it, as an ECMAScript regex)
    kDelay,       // it is still alive `delay_s` after the start
  };
  Kind kind = Kind::kImmediate;
  std::string url;
  std::string pattern;
  bool pattern_is_regex = false;
  double delay_s = 0;

  static ReadyCheck Immediate() { return {}; }
  static ReadyCheck HttpGet(std::string url);
  static ReadyCheck StdoutLine(std::string pattern, bool is_regex = false);
  static ReadyCheck Delay(double seconds);
  // "GET http://127.0.0.1:8080/healthz answers 2xx", "a stdout line containing 'listening on'", ...
  std::string Describe() const;
};

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] without a '/' is searched in PATH (of the target's environment)
  std::map<std::string, std::string> env;  // added to leakgate's own environment, replacing equal names
  std::string cwd;                // empty: leakgate's working directory
  std::string output_dir;         // required; created if missing; stdout.log and stderr.log go here
  ReadyCheck ready;
  double ready_timeout_s = 10;    // for kHttpGet and kStdoutLine
  int stop_signal = SIGTERM;
  double stop_timeout_s = 5;      // then SIGKILL to the group
};

class Target {
 public:
  virtual ~Target() = default;

  // Spawned: starts the process and waits until it is ready. Success: the process runs and is ready.
  // Failure (kTargetFailed), with nothing left running: it did not start (exec failed: the program and
  // the errno text), it exited before it was ready (exit status or signal, and the last lines of its
  // stderr), or it was not ready within ready_timeout_s (what was polled and the last error seen).
  // kFailedPrecondition when called twice.
  // Attached: success when the process still exists; kTargetFailed when it is gone.
  virtual Result<void> Start() = 0;

  // The process id (for a spawned target also its process group id); -1 before Start().
  virtual pid_t pid() const = 0;
  // The process group leakgate signals on Stop(); -1 for an attached target or before Start().
  virtual pid_t process_group() const = 0;
  // "backtest_server (pid 1234)": for messages.
  virtual std::string Describe() const = 0;

  // True while the process runs (after Start(), before it ended or was stopped).
  virtual bool Alive() = 0;
  // How the process ended, once it has; nullopt while it runs or before Start().
  virtual std::optional<ExitInfo> ExitStatus() = 0;
  // Success while the process runs. Failure kTargetFailed: "target backtest_server (pid 1234) exited with
  // status 1 during run 3; last lines of its stderr: ..." (`context` is appended as given, e.g.
  // "during run 3").
  virtual Result<void> CheckAlive(std::string_view context = {}) = 0;

  // Spawned: sends stop_signal to the process group, waits up to stop_timeout_s for every member to end,
  // then sends SIGKILL to the group; reaps the process. Returns how it ended (see ExitInfo flags: a
  // target that had already crashed reports its crash). Idempotent: later calls return the same value.
  // Failure (kTargetFailed) only when members of the group are still alive after SIGKILL (a process
  // stuck in the kernel); their pids are named.
  // Attached: never signals the process; returns "left running" (or "ended" if it is gone).
  virtual Result<ExitInfo> Stop() = 0;

  // Sends `signal` to the process itself (not its group): how a profiler inside the target is
  // switched. Failure: kFailedPrecondition before Start(); kTargetFailed naming the errno text when
  // the process cannot be signalled (gone, or another user's).
  virtual Result<void> Signal(int signal);

  // Where the target's output is kept; empty for an attached target.
  virtual std::string stdout_path() const = 0;
  virtual std::string stderr_path() const = 0;
  // With ReadyCheck::kStdoutLine: the stdout line that made the target ready (for example
  // "listening on http://127.0.0.1:41234"); empty otherwise.
  virtual std::string ready_line() const = 0;
};

// A target leakgate starts. Failure: kInvalidArgument when argv is empty, output_dir is empty, a
// timeout is negative or the stop signal is not a signal; nothing is started until Start().
Result<std::unique_ptr<Target>> SpawnTarget(SpawnOptions options, Clock& clock);

// A running process leakgate measures but does not own. Failure: kNotFound when /proc/PID/stat does not
// exist; kPermissionDenied when /proc/PID/fd cannot be read (the sampler needs the same user or
// CAP_SYS_PTRACE); kInvalidArgument for a pid <= 0.
Result<std::unique_ptr<Target>> AttachTarget(pid_t pid);

// Pids of the processes in process group `pgid` that are not zombies, read from /proc. Empty when the
// group is gone.
std::vector<pid_t> LiveProcessGroupMembers(pid_t pgid);

// Every process group leakgate started and has not stopped yet, in a fixed-size lock-free table, so
// that a signal handler can kill them with nothing but kill(2). Process-wide.
class ChildProcessRegistry {
 public:
  static constexpr std::size_t kCapacity = 64;

  // Records `pgid`. False when the table is full (kCapacity groups alive at once).
  static bool Add(pid_t pgid);
  // Forgets `pgid` (after its group has been stopped). No-op when absent.
  static void Remove(pid_t pgid);
  // Sends `signal` to every recorded group. Async-signal-safe; does not forget them.
  static void KillAll(int signal);
  // The recorded groups (for tests and diagnostics).
  static std::vector<pid_t> Snapshot();

 private:
  static std::atomic<pid_t> groups_[kCapacity];
};

// Installs, once per process, the paths that kill every registered process group when leakgate ends
// without stopping its targets:
//  - SIGINT, SIGTERM and SIGHUP: SIGKILL to every registered group, then the signal is raised again
//    with its default action, so leakgate ends with the conventional status (130, 143, 129 in a shell).
//    A signal that was ignored when this is called (SIGHUP under nohup) stays ignored.
//  - exit() and returning from main: an atexit handler kills what is still registered (targets whose
//    destructors did not run).
//  - std::terminate (an uncaught exception): the same, then the previous terminate handler.
// Idempotent and thread-safe.
void InstallTerminationHandlers();

// What the SIGINT, SIGTERM and SIGHUP handlers do after killing the registered groups.
enum class TerminationPolicy {
  kExit,    // raise the signal again with its default action (InstallTerminationHandlers())
  kRecord,  // record the signal (TerminationSignal()) and return, so the caller can end its work
            // and keep what it has; a second such signal ends the process at once (kExit)
};

// As InstallTerminationHandlers(), with `policy` for the three signals. The policy of the first
// call stays. With kRecord the caller checks TerminationSignal() and, once done, calls
// RaiseTerminationSignal().
void InstallTerminationHandlers(TerminationPolicy policy);

// The signal that asked leakgate to end under TerminationPolicy::kRecord; 0 when none came.
// Async-signal-safe.
int TerminationSignal();

// Ends the process as the recorded termination signal would have (default action, so a shell sees
// 128 + the signal). Returns only when no signal was recorded or the signal did not end the
// process.
void RaiseTerminationSignal();

// "SIGINT" for SIGINT; "signal N" for a number without a name.
std::string SignalName(int sig);

// Makes leakgate a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a process whose parent dies (the
// grandchildren of a target that died) is reparented to leakgate instead of init, so it stays killable
// through its group and is reaped by Stop(). Failure kFailedPrecondition with the errno text.
Result<void> BecomeChildSubreaper();

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_DRIVE_TARGET_H_
