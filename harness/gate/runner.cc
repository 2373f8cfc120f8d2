#include "harness/gate/runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include "base/units.h"
#include "harness/profile/heap_attribution.h"
#include "harness/profile/symbolizer.h"
#include "harness/sample/process_sampler.h"

namespace leakgate::harness {
namespace {

// The ephemeral port range of the machine (which names sockets bound to port 0 without their
// port); the kernel's default when it cannot be read.
EphemeralPorts ReadEphemeralPorts(ProcReader& reader) {
  const Result<std::string> text = reader.ReadFile("/proc/sys/net/ipv4/ip_local_port_range");
  if (!text) return {};
  const Result<EphemeralPorts> ports = ParseEphemeralPorts(*text);
  return ports ? *ports : EphemeralPorts{};
}

// One gate in progress: the sampling loop, the phases and the records.
class Gate {
 public:
  Gate(const GateConfig& config, Target& target, Workload& workload, HeapSource* heap, Clock& clock,
       ProcReader& reader, const ProgressFn& progress)
      : config_(config),
        target_(target),
        workload_(workload),
        heap_(heap),
        clock_(clock),
        reader_(reader),
        ephemeral_(ReadEphemeralPorts(reader)),
        sampler_(target.pid(), reader, clock, SamplerOptions{.include_children = config.include_children}),
        progress_(progress) {}

  GateResult Run() {
    start_t_ = clock_.NowSeconds();
    result_.target_description = target_.Describe();
    result_.workload_description = workload_.Describe();
    result_.heap_source = heap_ ? std::string(heap_->name()) : "none";
    auto status = RunAll();
    if (const int sig = TerminationSignal(); sig != 0) {
      // Whatever failed after the signal (the handler killed the target) is its consequence.
      MarkInterrupted(result_, sig, PhaseText(phase_, phase_run_));
      Say("error: " + result_.error);
    } else if (!status) {
      result_.verdict = Verdict::kError;
      result_.exit_code = kExitTargetFailed;
      result_.error = status.error().message;
      Say("error: " + result_.error);
    } else {
      AttributeHeap();
    }
    for (const auto& w : sampler_.warnings()) AddWarning(w);
    if (heap_) {
      for (const auto& w : heap_->warnings()) AddWarning(w);
    }
    result_.peak_reset_supported = sampler_.peak_reset_supported();
    result_.wall_s = clock_.NowSeconds() - start_t_;
    return std::move(result_);
  }

 private:
  Result<void> RunAll() {
    if (config_.sample_hz <= 0) return Fail(ErrorCode::kInvalidArgument, "sample_hz must be > 0");
    period_ = 1.0 / config_.sample_hz;
    if (auto baseline = TakeBaseline(); !baseline) return baseline;
    return RunUntilDecided();
  }

  // The baseline: an idle window, once the target's start-up has settled.
  Result<void> TakeBaseline() {
    Say("baseline: " + Fixed(config_.baseline_s, 1) + " s idle");
    auto first = TakeSample("baseline", 0);
    if (!first) return std::unexpected(first.error());
    auto settled = SettleBeforeBaseline(*first);
    if (!settled) return std::unexpected(settled.error());
    const double baseline_end = settled->t + config_.baseline_s;
    Sample last = *settled;
    while (clock_.NowSeconds() < baseline_end) {
      clock_.SleepFor(std::min(period_, baseline_end - clock_.NowSeconds()));
      auto s = TakeSample("baseline", 0);
      if (!s) return std::unexpected(s.error());
      last = *s;
    }
    result_.baseline = MakeSnapshot(*settled, last);
    ReadHeapInto(result_.baseline);
    result_.baseline_taken = true;
    Say("baseline: CPU " + Fixed(result_.baseline.cpu_pct, 2) + " %, RSS " +
        FormatSize(result_.baseline.rss_bytes) + ", fds " + std::to_string(result_.baseline.fds) +
        ", threads " + std::to_string(result_.baseline.threads));
    return {};
  }

  // The runs, warm-up first; after the planned runs the analysis decides, and runs are added while
  // it asks for more (up to max_runs).
  Result<void> RunUntilDecided() {
    const int planned = config_.warmup_runs + config_.runs;
    const int max_runs = std::max(config_.max_runs, planned);
    for (int index = 1; index <= max_runs; ++index) {
      if (auto status = OneRun(index, index <= config_.warmup_runs, planned); !status) {
        return status;
      }
      if (index < planned) continue;
      Analysis analysis = Analyze(MakeAnalysisInput(max_runs));
      const bool more = analysis.needs_more_runs && index < max_runs;
      result_.analysis = std::move(analysis);
      if (!more) break;
      Say("verdict not yet clear after " + std::to_string(index) + " runs: adding a run");
    }
    result_.verdict = result_.analysis->verdict;
    result_.exit_code = ExitCodeOf(result_.verdict);
    return {};
  }

  // One run: the workload while sampling, the cooldown, the measurement after it.
  Result<void> OneRun(int index, bool warmup, int planned) {
    RunRecord run;
    run.index = index;
    run.warmup = warmup;
    run.start_t = clock_.NowSeconds() - start_t_;
    (void)sampler_.ResetPeak();  // a refusal is remembered and reported through warnings()
    auto before = TakeSample("run", index);
    if (!before) return std::unexpected(before.error());
    int64_t max_rss = before->rss_bytes;
    auto last = RunWorkload(run, *before, max_rss);
    if (!last) return std::unexpected(last.error());
    auto window = Cooldown(run, *last, max_rss);
    if (!window) return std::unexpected(window.error());
    MeasureAfterRun(run, *window, max_rss);
    SayRun(run, planned);
    result_.runs.push_back(std::move(run));
    return {};
  }

  // Runs the workload on a worker thread while this thread samples until it is done; the run's
  // peak CPU and highest RSS are kept. Returns the last sample of the run.
  Result<Sample> RunWorkload(RunRecord& run, const Sample& before, int64_t& max_rss) {
    std::atomic<bool> cancel{false};
    std::promise<Result<WorkloadRunInfo>> promise;
    auto future = promise.get_future();
    std::thread worker([&] {
      try {
        promise.set_value(workload_.Run(run.index, cancel));
      } catch (const std::exception& e) {
        promise.set_value(Fail(ErrorCode::kInternal, std::string("workload threw: ") + e.what()));
      }
    });
    const double run_start = clock_.NowSeconds();
    Sample previous = before;
    Result<void> sampling_status;
    while (future.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
      clock_.SleepFor(period_);
      // A fake clock returns at once: give the worker real time too (a no-op wait when it is done).
      future.wait_for(std::chrono::milliseconds(1));
      auto s = TakeSample("run", run.index);
      if (!s) {
        sampling_status = std::unexpected(s.error());
        cancel = true;
        break;
      }
      run.peak_cpu_pct = std::max(run.peak_cpu_pct, CpuPercent(previous, *s));
      max_rss = std::max(max_rss, s->rss_bytes);
      previous = *s;
    }
    worker.join();
    Result<WorkloadRunInfo> info = future.get();
    run.duration_s = clock_.NowSeconds() - run_start;
    if (!sampling_status) return std::unexpected(sampling_status.error());
    if (!info) {
      if (auto alive = target_.CheckAlive("during run " + std::to_string(run.index)); !alive) {
        return std::unexpected(alive.error());
      }
      return Fail(ErrorCode::kTargetFailed, "run " + std::to_string(run.index) +
                                                ": the workload failed: " + info.error().message);
    }
    run.requests = info->requests;
    run.workload_description = info->description;
    return previous;
  }

  // The window a post-run measurement is taken over.
  struct MeasuringWindow {
    Sample start;
    Sample end;
  };

  // The cooldown: samples until the CPU over the last settle window is near the baseline or on a
  // plateau, or cooldown.max_s; the CPU profiler (when on) records it. Returns the last window.
  Result<MeasuringWindow> Cooldown(RunRecord& run, const Sample& last_of_run, int64_t& max_rss) {
    SwitchCpuProfiler();
    const double cooldown_start = clock_.NowSeconds();
    std::vector<Sample> cooldown{last_of_run};
    const double window = std::max(config_.cooldown.settle_window_s, period_);
    const double tolerance = config_.cooldown.settle_tolerance_pct;
    Sample window_start = last_of_run;
    while (true) {
      const double elapsed = clock_.NowSeconds() - cooldown_start;
      if (elapsed >= config_.cooldown.max_s) break;
      clock_.SleepFor(std::min(period_, config_.cooldown.max_s - elapsed));
      auto s = TakeSample("cooldown", run.index);
      if (!s) return std::unexpected(s.error());
      max_rss = std::max(max_rss, s->rss_bytes);
      cooldown.push_back(*s);
      const std::optional<WindowCpu> last = LastWindow(cooldown, window, tolerance);
      if (!last) continue;
      window_start = *last->start;
      if (last->cpu_pct <= result_.baseline.cpu_pct + tolerance || last->plateau) {
        run.cooldown_settled = true;
        break;
      }
    }
    run.cooldown_s = clock_.NowSeconds() - cooldown_start;
    result_.cooldown_total_s += run.cooldown_s;
    if (cooldown.size() < 2) {
      // No cooldown configured: measure over one more sampling period.
      clock_.SleepFor(period_);
      auto s = TakeSample("cooldown", run.index);
      if (!s) return std::unexpected(s.error());
      cooldown.push_back(*s);
      window_start = cooldown.front();
    }
    return MeasuringWindow{window_start, cooldown.back()};
  }

  // The state after the run: the CPU profile switched off (it is the gate's file, not the
  // target's), the snapshot over the last window, the heap, and the run's peak RSS.
  void MeasureAfterRun(RunRecord& run, const MeasuringWindow& window, int64_t max_rss) {
    if (SwitchCpuProfiler()) {
      run.cooldown_profile = config_.cpu_profile_prefix + "." + std::to_string(cpu_profiles_++);
    }
    run.after = MakeSnapshot(window.start, window.end);
    ReadHeapInto(run.after);
    run.peak_rss_bytes =
        sampler_.peak_reset_supported() ? std::max(window.end.hwm_bytes, max_rss) : max_rss;
    if (!result_.timeline.empty()) result_.timeline.back().heap_bytes = run.after.heap_bytes;
  }

  void SayRun(const RunRecord& run, int planned) {
    Say("run " + std::to_string(run.index) + "/" + std::to_string(planned) +
        (run.warmup ? " (warm-up)" : "") + ": " + Fixed(run.duration_s, 2) + " s, cooldown " +
        Fixed(run.cooldown_s, 1) + " s" + (run.cooldown_settled ? "" : " (not settled)") +
        "; idle CPU " + Fixed(run.after.cpu_pct, 2) + " %, RSS " + FormatSize(run.after.rss_bytes) +
        (run.after.heap_bytes ? ", heap " + FormatSize(*run.after.heap_bytes) : "") + ", fds " +
        std::to_string(run.after.fds) + ", threads " + std::to_string(run.after.threads));
  }

  // Names what the heap profiles show, while the target still runs (its sockets are resolved
  // for the creation stacks). The verdict is already decided: attribution only adds names.
  void AttributeHeap() {
    if (!result_.analysis) return;
    GateHeapProfiles profiles;
    profiles.profiler = heap_ ? std::string(heap_->name()) : "";
    profiles.reference = result_.baseline.heap_profile;
    for (const RunRecord& run : result_.runs) {
      if (run.warmup) {
        if (!run.after.heap_profile.empty()) profiles.reference = run.after.heap_profile;
      } else {
        profiles.judged.push_back({run.index, run.peak_rss_bytes, run.after.heap_profile});
      }
    }
    const size_t count = (profiles.reference.empty() ? 0 : 1) +
                         std::count_if(profiles.judged.begin(), profiles.judged.end(),
                                       [](const auto& run) { return !run.profile.empty(); });
    if (count == 0) return;  // the heap source writes no profiles
    Say("naming allocation sites from " + std::to_string(count) + " heap profiles");
    Addr2lineSymbolizer symbolizer;
    const Suppressions none;
    std::optional<SocketTable> sockets;  // read once, when the agent recorded a socket
    auto socket_site = [&](int fd) -> std::optional<std::string> {
      auto link = reader_.ReadLink("/proc/" + std::to_string(target_.pid()) + "/fd/" +
                                   std::to_string(fd));
      if (!link) return std::nullopt;
      if (!sockets) sockets = DescribeSockets();
      const std::vector<std::string> one = {*link};
      const std::vector<ResolvedFd> resolved = ResolveFds(one, *sockets, ephemeral_);
      if (resolved.empty()) return std::nullopt;
      return resolved.front().site;
    };
    result_.heap_profiles =
        AttributeGateHeap(profiles, config_.suppressions ? *config_.suppressions : none,
                          socket_site, symbolizer, *result_.analysis);
  }

  // Sends the CPU profiler's switch signal (when profiling); false when not sent.
  bool SwitchCpuProfiler() {
    if (config_.cpu_profile_signal <= 0) return false;
    if (auto sent = target_.Signal(config_.cpu_profile_signal); !sent) {
      AddWarning("the CPU profiler of the target could not be switched: " + sent.error().message);
      return false;
    }
    return true;
  }

  // Why a sample of the target failed in `phase` of run `run`: how the target ended (its exit
  // status or signal, the phase, the last lines of its stderr), or the sampling error.
  std::string DescribeTargetLoss(const char* phase, int run, const Error& sampling_error) {
    const std::string when = PhaseText(phase, run);
    // The sampler can see the target gone (a zombie, /proc/PID vanishing) a moment before its
    // exit status can be collected: wait a little for it.
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (auto alive = target_.CheckAlive(when); !alive) return alive.error().message;
      if (sampling_error.code != ErrorCode::kNotFound) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::string what = std::string(phase) == "baseline" ? std::string("the baseline")
                                                         : "run " + std::to_string(run);
    return what + ": the target could not be sampled: " + sampling_error.message;
  }

  // Start-up work can outlast readiness (a server answers /healthz while it still warms caches and
  // opens connections; under a busy neighbour it spills further): a baseline window that catches
  // its tail reads a few % of CPU, and every later idle figure then passes against it, the CPU
  // staircase of a leaked heartbeat included. So the baseline window begins once the CPU over one
  // settle window is within the settle tolerance of the window before (as a cooldown ends on a
  // plateau), or after cooldown.max_s. Returns the sample the baseline window starts at.
  Result<Sample> SettleBeforeBaseline(const Sample& first) {
    const double window = std::max(config_.cooldown.settle_window_s, period_);
    const double tolerance = config_.cooldown.settle_tolerance_pct;
    std::vector<Sample> samples{first};
    while (clock_.NowSeconds() - first.t < config_.cooldown.max_s) {
      clock_.SleepFor(period_);
      auto s = TakeSample("baseline", 0);
      if (!s) return std::unexpected(s.error());
      samples.push_back(*s);
      const std::optional<WindowCpu> last = LastWindow(samples, window, tolerance);
      if (last && last->plateau) break;
    }
    result_.baseline_settle_s = samples.back().t - first.t;
    if (result_.baseline_settle_s > 2 * window + period_) {
      Say("baseline: the target's CPU settled " + Fixed(result_.baseline_settle_s, 1) +
          " s after it was ready");
    }
    return samples.back();
  }

  // The CPU over the last `window` seconds of `samples`, and whether it is within `tolerance` of
  // the window before it (a plateau: the CPU has stopped changing). nullopt until the samples
  // cover one window. Ends the settling before the baseline and each cooldown.
  struct WindowCpu {
    const Sample* start = nullptr;
    double cpu_pct = 0;
    bool plateau = false;
  };
  static std::optional<WindowCpu> LastWindow(const std::vector<Sample>& samples, double window,
                                             double tolerance) {
    const Sample& end = samples.back();
    const Sample* w0 = SampleAtOrBefore(samples, end.t - window);
    if (w0 == nullptr) return std::nullopt;
    WindowCpu last{.start = w0, .cpu_pct = CpuPercent(*w0, end)};
    const Sample* w_prev = SampleAtOrBefore(samples, w0->t - window);
    last.plateau =
        w_prev != nullptr && std::abs(CpuPercent(*w_prev, *w0) - last.cpu_pct) <= tolerance;
    return last;
  }

  static const Sample* SampleAtOrBefore(const std::vector<Sample>& samples, double t) {
    const Sample* found = nullptr;
    for (const Sample& s : samples) {
      if (s.t <= t + 1e-9) found = &s;
    }
    return found;
  }

  // One sample in `phase` of run `run` (0: the baseline). Failure: kTargetFailed saying how the
  // target ended; kFailedPrecondition once a termination signal came (the gate ends there).
  Result<Sample> TakeSample(const char* phase, int run) {
    phase_ = phase;
    phase_run_ = run;
    if (TerminationSignal() != 0) {
      return Fail(ErrorCode::kFailedPrecondition, "the gate was interrupted");
    }
    auto s = sampler_.Take();
    if (!s) {
      if (TerminationSignal() != 0) {
        return Fail(ErrorCode::kFailedPrecondition, "the gate was interrupted");
      }
      return Fail(ErrorCode::kTargetFailed, DescribeTargetLoss(phase, run, s.error()));
    }
    TimelinePoint point;
    point.t = s->t - start_t_;
    point.phase = phase;
    point.run = run;
    point.cpu_pct = has_last_ ? CpuPercent(last_sample_, *s) : 0.0;
    point.rss_bytes = s->rss_bytes;
    point.fds = static_cast<int64_t>(s->fds.size());
    point.threads = static_cast<int64_t>(s->threads.size());
    point.sockets = s->sockets;
    result_.timeline.push_back(std::move(point));
    last_sample_ = *s;
    has_last_ = true;
    return s;
  }

  Snapshot MakeSnapshot(const Sample& window_start, const Sample& end) {
    Snapshot snap;
    snap.t = end.t - start_t_;
    snap.cpu_pct = CpuPercent(window_start, end);
    snap.rss_bytes = end.rss_bytes;
    snap.rss_anon_bytes = end.rss_anon_bytes;
    snap.hwm_bytes = end.hwm_bytes;
    snap.pss_bytes = end.pss_bytes;
    snap.cgroup_memory_bytes = end.cgroup_memory_bytes;
    // The CPU profile being written is open while the cooldown's last sample is taken: it is the
    // gate's own file, not the target's.
    const std::string profile_prefix =
        config_.cpu_profile_prefix.empty() ? "" : config_.cpu_profile_prefix + ".";
    auto keep = [&](const std::string& target) {
      if (profile_prefix.empty() || !target.starts_with(profile_prefix)) {
        snap.fd_targets.push_back(target);
      }
    };
    for (const auto& [fd, target] : end.fds) keep(target);
    for (const auto& [pid, fds] : end.descendant_fds) {
      for (const auto& [fd, target] : fds) keep(target);
    }
    std::sort(snap.fd_targets.begin(), snap.fd_targets.end());
    snap.fds = static_cast<int64_t>(snap.fd_targets.size());
    snap.sockets = end.sockets;
    for (const ThreadSample& t : end.threads) snap.thread_names.push_back(t.name);
    std::sort(snap.thread_names.begin(), snap.thread_names.end());
    snap.threads = static_cast<int64_t>(end.threads.size());
    const std::vector<ThreadCpu> thread_cpu = ThreadCpuPercent(window_start, end);  // busiest first
    for (const ThreadCpu& t : thread_cpu) {
      if (snap.busiest_threads.size() >= 5 || t.cpu_percent <= 0) break;
      snap.busiest_threads.push_back(t);
    }
    for (ThreadGroupCpu& group : GroupThreadCpu(thread_cpu)) {
      if (group.cpu_pct > 0) snap.idle_threads.push_back(std::move(group));
    }
    snap.resolved_fds = ResolveFds(snap.fd_targets, DescribeSockets(), ephemeral_);
    std::sort(snap.resolved_fds.begin(), snap.resolved_fds.end(),
              [](const ResolvedFd& a, const ResolvedFd& b) {
                return std::tie(a.site, a.description) < std::tie(b.site, b.description);
              });
    return snap;
  }

  // The target's sockets by inode; empty (every socket then unresolved, with a warning) when the
  // tables cannot be read.
  SocketTable DescribeSockets() {
    auto sockets = sampler_.DescribeSockets();
    if (!sockets) {
      AddWarning("sockets could not be resolved to their addresses: " + sockets.error().message);
      return {};
    }
    return std::move(*sockets);
  }

  void ReadHeapInto(Snapshot& snap) {
    if (heap_ == nullptr) return;
    auto heap = heap_->Read();
    if (!heap) {
      AddWarning("heap statistics could not be read: " + heap.error().message);
      return;
    }
    snap.heap_profile = heap_->LastProfile();
    if (!*heap) return;
    snap.heap_bytes = (*heap)->allocated_bytes;
    snap.heap_cached_bytes = (*heap)->cached_bytes;
  }

  static BaselineObservation Observe(const Snapshot& snap) {
    BaselineObservation o;
    o.idle_cpu_pct = snap.cpu_pct;
    o.rss_bytes = snap.rss_bytes;
    o.heap_bytes = snap.heap_bytes;
    o.fd_targets = snap.fd_targets;
    o.thread_names = snap.thread_names;
    o.sockets = snap.sockets;
    o.resolved_fds = snap.resolved_fds;
    o.idle_threads = snap.idle_threads;
    return o;
  }

  AnalysisInput MakeAnalysisInput(int max_runs) const {
    AnalysisInput input;
    input.baseline = Observe(result_.baseline);
    for (const RunRecord& run : result_.runs) {
      RunObservation o;
      static_cast<BaselineObservation&>(o) = Observe(run.after);
      o.index = run.index;
      o.warmup = run.warmup;
      o.peak_rss_bytes = run.peak_rss_bytes;
      input.runs.push_back(std::move(o));
    }
    input.thresholds = config_.thresholds;
    input.max_runs = max_runs;
    input.suppressions = config_.suppressions;
    return input;
  }

  void Say(const std::string& line) {
    if (progress_) progress_(line);
  }

  void AddWarning(const std::string& warning) {
    if (std::find(result_.warnings.begin(), result_.warnings.end(), warning) ==
        result_.warnings.end()) {
      result_.warnings.push_back(warning);
    }
  }

  const GateConfig& config_;
  Target& target_;
  Workload& workload_;
  HeapSource* heap_;
  Clock& clock_;
  ProcReader& reader_;
  EphemeralPorts ephemeral_;
  ProcessSampler sampler_;
  const ProgressFn& progress_;
  GateResult result_;
  double start_t_ = 0;
  double period_ = 0.1;
  int cpu_profiles_ = 0;  // profiles the target has written (it numbers them from 0)
  Sample last_sample_;
  bool has_last_ = false;
  // Where the gate is (the last sample's phase), for the message of an interruption.
  const char* phase_ = "baseline";
  int phase_run_ = 0;
};

}  // namespace

std::string PhaseText(std::string_view phase, int run) {
  if (phase == "baseline") return "during the baseline";
  if (phase == "cooldown") return "during the cooldown of run " + std::to_string(run);
  return "during run " + std::to_string(run);
}

void MarkInterrupted(GateResult& result, int sig, std::string_view when) {
  result.interrupted = SignalName(sig);
  result.verdict = Verdict::kError;
  result.exit_code = kExitTargetFailed;
  result.error = "the gate was interrupted by " + result.interrupted + " " + std::string(when) +
                 " (" + std::to_string(result.runs.size()) +
                 (result.runs.size() == 1 ? " run" : " runs") + " measured)";
}

GateResult RunGate(const GateConfig& config, Target& target, Workload& workload, HeapSource* heap,
                   Clock& clock, ProcReader& reader, const ProgressFn& progress) {
  Gate gate(config, target, workload, heap, clock, reader, progress);
  return gate.Run();
}

}  // namespace leakgate::harness

namespace leakgate::harness {

int ExitCodeOf(Verdict verdict) {
  switch (verdict) {
    case Verdict::kPass:
      return kExitPass;
    case Verdict::kFail:
      return kExitDrift;
    case Verdict::kInconclusive:
      return kExitInconclusive;
    case Verdict::kError:
      return kExitTargetFailed;
  }
  return kExitTargetFailed;
}

}  // namespace leakgate::harness
