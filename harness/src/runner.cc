#include "harness/runner.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <tuple>
#include <utility>

#include "harness/heap_attribution.h"
#include "harness/heap_profile.h"
#include "harness/heap_profile_source.h"
#include "harness/symbolizer.h"

namespace leakgate::harness {
namespace {

std::string Fixed(double value, int digits) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(digits);
  out << value;
  return out.str();
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
        sampler_(target.pid(), reader, clock, SamplerOptions{.include_children = config.include_children}),
        progress_(progress) {}

  GateResult Run() {
    start_t_ = clock_.NowSeconds();
    result_.target_description = target_.Describe();
    result_.workload_description = workload_.Describe();
    result_.heap_source = heap_ ? std::string(heap_->name()) : "none";
    if (auto status = RunAll(); !status) {
      result_.verdict = "error";
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

    // Baseline: an idle window, once the target's start-up has settled.
    Say("baseline: " + Fixed(config_.baseline_s, 1) + " s idle");
    auto first = TakeSample("baseline", 0);
    if (!first) return std::unexpected(first.error());
    auto settled = SettleBeforeBaseline(*first);
    if (!settled) return std::unexpected(settled.error());
    Sample window_start = *settled;
    const double baseline_end = settled->t + config_.baseline_s;
    Sample last = *settled;
    while (clock_.NowSeconds() < baseline_end) {
      clock_.SleepFor(std::min(period_, baseline_end - clock_.NowSeconds()));
      auto s = TakeSample("baseline", 0);
      if (!s) return std::unexpected(s.error());
      last = *s;
    }
    result_.baseline = MakeSnapshot(window_start, last);
    ReadHeapInto(result_.baseline);
    result_.baseline_taken = true;
    Say("baseline: CPU " + Fixed(result_.baseline.cpu_pct, 2) + " %, RSS " +
        FormatSize(result_.baseline.rss_bytes) + ", fds " + std::to_string(result_.baseline.fds) +
        ", threads " + std::to_string(result_.baseline.threads));

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
    const Analysis& analysis = *result_.analysis;
    result_.verdict = std::string(VerdictName(analysis.verdict));
    result_.exit_code = analysis.verdict == Verdict::kPass   ? kExitPass
                        : analysis.verdict == Verdict::kFail ? kExitDrift
                                                             : kExitInconclusive;
    return {};
  }

  Result<void> OneRun(int index, bool warmup, int planned) {
    RunRecord run;
    run.index = index;
    run.warmup = warmup;
    run.start_t = clock_.NowSeconds() - start_t_;

    (void)sampler_.ResetPeak();  // a refusal is remembered and reported through warnings()
    auto before = TakeSample("run", index);
    if (!before) return std::unexpected(before.error());
    int64_t max_rss = before->rss_bytes;

    // The workload runs on a worker thread; this thread samples until it is done.
    std::atomic<bool> cancel{false};
    std::promise<Result<WorkloadRunInfo>> promise;
    auto future = promise.get_future();
    std::thread worker([&] {
      try {
        promise.set_value(workload_.Run(index, cancel));
      } catch (const std::exception& e) {
        promise.set_value(Fail(ErrorCode::kInternal, std::string("workload threw: ") + e.what()));
      }
    });
    const double run_start = clock_.NowSeconds();
    Sample previous = *before;
    Result<void> sampling_status;
    while (future.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
      clock_.SleepFor(period_);
      // A fake clock returns at once: give the worker real time too (a no-op wait when it is done).
      future.wait_for(std::chrono::milliseconds(1));
      auto s = TakeSample("run", index);
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
    if (!sampling_status) {
      return Fail(ErrorCode::kTargetFailed,
                  DescribeTargetLoss(index, sampling_status.error().message));
    }
    if (!info) {
      if (auto alive = target_.CheckAlive("during run " + std::to_string(index)); !alive) {
        return std::unexpected(alive.error());
      }
      return Fail(ErrorCode::kTargetFailed, "run " + std::to_string(index) +
                                                ": the workload failed: " + info.error().message);
    }
    run.requests = info->requests;
    run.workload_description = info->description;

    // Cooldown: until the CPU has settled near the baseline or on a plateau, or max_s.
    SwitchCpuProfiler();
    const double cooldown_start = clock_.NowSeconds();
    std::vector<Sample> cooldown{previous};
    const double window = std::max(config_.cooldown.settle_window_s, period_);
    const double tolerance = config_.cooldown.settle_tolerance_pct;
    Sample window_start = previous;
    while (true) {
      const double elapsed = clock_.NowSeconds() - cooldown_start;
      if (elapsed >= config_.cooldown.max_s) break;
      clock_.SleepFor(std::min(period_, config_.cooldown.max_s - elapsed));
      auto s = TakeSample("cooldown", index);
      if (!s) return Fail(ErrorCode::kTargetFailed, DescribeTargetLoss(index, s.error().message));
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
      auto s = TakeSample("cooldown", index);
      if (!s) return Fail(ErrorCode::kTargetFailed, DescribeTargetLoss(index, s.error().message));
      cooldown.push_back(*s);
      window_start = cooldown.front();
    }
    const Sample& end = cooldown.back();
    if (SwitchCpuProfiler()) {
      run.cooldown_profile = config_.cpu_profile_prefix + "." + std::to_string(cpu_profiles_++);
    }
    run.after = MakeSnapshot(window_start, end);
    ReadHeapInto(run.after);
    run.peak_rss_bytes = sampler_.peak_reset_supported() ? std::max(end.hwm_bytes, max_rss) : max_rss;
    if (!result_.timeline.empty()) result_.timeline.back().heap_bytes = run.after.heap_bytes;

    Say("run " + std::to_string(index) + "/" + std::to_string(planned) +
        (warmup ? " (warm-up)" : "") + ": " + Fixed(run.duration_s, 2) + " s, cooldown " +
        Fixed(run.cooldown_s, 1) + " s" + (run.cooldown_settled ? "" : " (not settled)") +
        "; idle CPU " + Fixed(run.after.cpu_pct, 2) + " %, RSS " + FormatSize(run.after.rss_bytes) +
        (run.after.heap_bytes ? ", heap " + FormatSize(*run.after.heap_bytes) : "") + ", fds " +
        std::to_string(run.after.fds) + ", threads " + std::to_string(run.after.threads));
    result_.runs.push_back(std::move(run));
    return {};
  }

  // Names what the heap profiles show, while the target still runs (its /proc/PID/fd is read for
  // the sockets' creation stacks): the allocation sites that grew between the reference (the last
  // warm-up run, or the baseline) and each judged run, the sites at the highest peak, and where
  // new threads and sockets were created. The verdict is already decided: attribution only adds
  // names and notes, never changes it.
  void AttributeHeap() {
    if (!result_.analysis) return;
    std::string reference = result_.baseline.heap_profile;
    std::vector<const RunRecord*> judged;
    for (const RunRecord& run : result_.runs) {
      if (run.warmup) {
        if (!run.after.heap_profile.empty()) reference = run.after.heap_profile;
      } else {
        judged.push_back(&run);
      }
    }
    std::vector<std::string> paths;
    if (!reference.empty()) paths.push_back(reference);
    for (const RunRecord* run : judged) {
      if (!run->after.heap_profile.empty()) paths.push_back(run->after.heap_profile);
    }
    if (paths.empty()) return;  // the heap source writes no profiles

    Say("naming allocation sites from " + std::to_string(paths.size()) + " heap profiles");
    Analysis& analysis = *result_.analysis;
    HeapProfileSummary summary;
    summary.profiler = heap_ ? std::string(heap_->name()) : "";
    Addr2lineSymbolizer symbolizer;
    const Suppressions none;
    HeapAttribution attribution = AttributeHeapGrowth(
        paths, config_.suppressions ? *config_.suppressions : none, symbolizer);
    summary.sampled = attribution.sampled;
    summary.sample_period = attribution.sample_period;
    summary.profiles = attribution.profiles;
    summary.notes = attribution.notes;

    std::vector<GrowthItem> heap_items = attribution.growth;
    // Heap sites first, as the kind the heap check is about; the others keep their order.
    analysis.growth.insert(analysis.growth.begin(), heap_items.begin(), heap_items.end());
    const GrowthItem* top = nullptr;
    for (const GrowthItem& item : heap_items) {
      if (item.suppressed.empty()) {
        top = &item;
        break;
      }
    }
    for (CheckResult& check : analysis.checks) {
      if (check.name != "heap_growth_per_run" || check.verdict == Verdict::kPass) continue;
      if (top != nullptr) {
        check.detail += " Largest growing site: " + top->site + " (" +
                        FormatSize(static_cast<int64_t>(top->per_run)) + "/run" +
                        (top->location.empty() ? "" : ", " + top->location) + ").";
      }
    }

    // The sites at the highest peak of a judged run.
    const RunRecord* peak_run = nullptr;
    for (const RunRecord* run : judged) {
      if (run->after.heap_profile.empty()) continue;
      if (peak_run == nullptr || run->peak_rss_bytes > peak_run->peak_rss_bytes) peak_run = run;
    }
    // The peak run is often the last one: each profile is read once for both uses below.
    std::map<std::string, std::optional<HeapProfile>> read;
    auto profile_at = [&read](const std::string& path) -> const std::optional<HeapProfile>& {
      auto it = read.find(path);
      if (it == read.end()) {
        auto profile = ReadHeapProfile(path);
        it = read.emplace(path, profile ? std::optional<HeapProfile>(*std::move(profile))
                                        : std::nullopt).first;
      }
      return it->second;
    };
    if (peak_run != nullptr) {
      if (const auto& profile = profile_at(peak_run->after.heap_profile); profile) {
        if (!profile->peak_entries.empty()) {
          HeapProfile at_peak = *profile;
          at_peak.entries = profile->peak_entries;
          at_peak.truncated = false;
          if (auto sites = GroupBySite(at_peak, symbolizer); sites) {
            summary.peak_run = peak_run->index;
            for (const SiteUsage& site : *sites) summary.peak_bytes += site.inuse_bytes;
            for (const SiteUsage& site : *sites) {
              if (summary.peak_sites.size() >= 10) break;
              summary.peak_sites.push_back(site);
            }
          } else {
            summary.notes.push_back("sites at the peak not named: " + sites.error().message);
          }
        }
      }
    }
    if (!summary.peak_sites.empty()) {
      for (CheckResult& check : analysis.checks) {
        if (check.name != "peak_rss") continue;
        const SiteUsage& first = summary.peak_sites.front();
        check.detail += " At the peak of run " + std::to_string(summary.peak_run) + " the heap held " +
                        FormatSize(static_cast<int64_t>(summary.peak_bytes)) + ", most of it from " +
                        first.site.signature + " (" +
                        FormatSize(static_cast<int64_t>(first.inuse_bytes)) + ").";
      }
    }

    // Creation stacks of new threads and sockets, from the agent's lines in the last profile.
    if (!judged.empty() && !judged.back()->after.heap_profile.empty()) {
      if (const auto& profile = profile_at(judged.back()->after.heap_profile); profile) {
        NameCreationStacks(*profile, symbolizer, analysis.growth);
      }
    }
    for (const std::string& w : symbolizer.warnings()) summary.notes.push_back(w);
    std::vector<std::string> distinct;
    for (std::string& note : summary.notes) {
      if (std::find(distinct.begin(), distinct.end(), note) == distinct.end()) {
        distinct.push_back(std::move(note));
      }
    }
    summary.notes = std::move(distinct);
    result_.heap_profiles = std::move(summary);
  }

  // Symbolized frames of a creation stack, from the first frame outside the allocator, the
  // standard library and the agent outwards.
  static std::vector<std::string> CreationFrames(const std::vector<uint64_t>& frames,
                                                 const HeapProfile& profile, Symbolizer& symbolizer) {
    auto symbolized = symbolizer.Symbolize(frames, profile.mappings);
    if (!symbolized) return {};
    std::vector<SourceFrame> flat;
    for (const auto& per_address : *symbolized) {
      flat.insert(flat.end(), per_address.begin(), per_address.end());
    }
    return SiteOfStack(flat).stack;
  }

  // Attaches to each thread growth item the creation stack of a thread of that name, and to each
  // socket growth item the creation stack of a socket of that site, when the agent recorded them.
  void NameCreationStacks(const HeapProfile& profile, Symbolizer& symbolizer,
                          std::vector<GrowthItem>& growth) {
    std::map<std::string, const CreationStack*> thread_by_name;  // the newest of each name
    for (const CreationStack& thread : profile.threads) {
      auto& slot = thread_by_name[thread.name];
      if (slot == nullptr || thread.id > slot->id) slot = &thread;
    }
    std::map<std::string, const CreationStack*> socket_by_site;
    if (!profile.sockets.empty()) {
      const SocketTable table = DescribeSockets();
      const SocketSites sites(table);
      for (const CreationStack& socket : profile.sockets) {
        std::error_code ec;
        const std::string link =
            std::filesystem::read_symlink("/proc/" + std::to_string(target_.pid()) + "/fd/" +
                                              std::to_string(socket.id),
                                          ec)
                .string();
        if (ec) continue;
        const std::vector<std::string> one = {link};
        const std::vector<ResolvedFd> resolved = ResolveFds(one, table);
        if (resolved.empty()) continue;
        auto& slot = socket_by_site[resolved.front().site];
        if (slot == nullptr || socket.id > slot->id) slot = &socket;
      }
    }
    for (GrowthItem& item : growth) {
      if (!item.stack.empty()) continue;
      const CreationStack* creation = nullptr;
      if (item.kind == "thread") {
        std::string name = item.site;
        std::replace_if(name.begin(), name.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }, '_');
        if (auto it = thread_by_name.find(name); it != thread_by_name.end()) creation = it->second;
      } else if (item.kind == "socket" || item.kind == "fd") {
        if (auto it = socket_by_site.find(item.site); it != socket_by_site.end()) creation = it->second;
      }
      if (creation != nullptr) item.stack = CreationFrames(creation->frames, profile, symbolizer);
    }
  }

  // Sends the CPU profiler's switch signal (when profiling); false when not sent.
  bool SwitchCpuProfiler() {
    if (config_.cpu_profile_signal <= 0) return false;
    if (::kill(target_.pid(), config_.cpu_profile_signal) != 0) {
      AddWarning("the CPU profiler of the target could not be switched: " +
                 std::string(std::strerror(errno)));
      return false;
    }
    return true;
  }

  std::string DescribeTargetLoss(int index, const std::string& sampling_error) {
    if (auto alive = target_.CheckAlive("during run " + std::to_string(index)); !alive) {
      return alive.error().message;
    }
    return "run " + std::to_string(index) + ": the target could not be sampled: " + sampling_error;
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

  Result<Sample> TakeSample(const char* phase, int run) {
    auto s = sampler_.Take();
    if (!s) return s;
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
    snap.resolved_fds = ResolveFds(snap.fd_targets, DescribeSockets());
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
  ProcessSampler sampler_;
  const ProgressFn& progress_;
  GateResult result_;
  double start_t_ = 0;
  double period_ = 0.1;
  int cpu_profiles_ = 0;  // profiles the target has written (it numbers them from 0)
  Sample last_sample_;
  bool has_last_ = false;
};

// True when `program` is built with AddressSanitizer: a library it needs (its .dynstr section, a
// few KiB read through the section headers rather than the whole file) is libasan. A preloaded
// heap profiler replaces malloc, which ASan must own (it refuses to start otherwise).
bool UsesAddressSanitizer(const std::string& program) {
  const int fd = ::open(program.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // a name looked up in PATH: not ours to inspect
  auto read_at = [fd](void* buffer, size_t size, off_t offset) {
    return ::pread(fd, buffer, size, offset) == static_cast<ssize_t>(size);
  };
  bool asan = false;
  Elf64_Ehdr header{};
  if (read_at(&header, sizeof header, 0) && std::memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 &&
      header.e_ident[EI_CLASS] == ELFCLASS64 && header.e_shentsize == sizeof(Elf64_Shdr)) {
    for (int i = 0; i < header.e_shnum && !asan; ++i) {
      Elf64_Shdr section{};
      if (!read_at(&section, sizeof section, static_cast<off_t>(header.e_shoff + i * sizeof section))) break;
      if (section.sh_type != SHT_DYNAMIC) continue;
      // The dynamic section's sh_link is its string table: the names of the needed libraries.
      Elf64_Shdr strings{};
      if (!read_at(&strings, sizeof strings,
                   static_cast<off_t>(header.e_shoff + section.sh_link * sizeof strings)) ||
          strings.sh_size > (1u << 24)) {
        break;
      }
      std::string table(strings.sh_size, '\0');
      if (read_at(table.data(), table.size(), static_cast<off_t>(strings.sh_offset))) {
        asan = table.find("libasan.so") != std::string::npos;
      }
    }
  }
  ::close(fd);
  return asan;
}

// Removes the files named `stem`* in `folder` (profiles an earlier gate left in the same output
// folder). Best effort: a file that cannot be removed is left.
void RemoveProfilesOfEarlierGates(const std::filesystem::path& folder, const std::string& stem) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (entry.path().filename().string().starts_with(stem)) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

// The signal that switches a spawned target's CPU profiler: a real-time signal, queued rather than
// merged, that programs rarely use (SIGUSR2 asks for heap profiles).
int CpuProfileSignal() { return SIGRTMIN + 6; }

// Reads each run's cooldown profile (waiting briefly for the last one, written as the gate ended),
// symbolizes them all with one google-pprof call and keeps each one's busiest functions. Problems
// become warnings: the verdict never depends on a profile.
void SummarizeCpuProfiles(const std::string& binary, Clock& clock, const ProgressFn& progress,
                          GateResult& r) {
  std::vector<RunRecord*> profiled;
  std::vector<CpuProfileData> data;
  std::vector<std::string> files;
  for (RunRecord& run : r.runs) {
    if (run.cooldown_profile.empty()) continue;
    std::optional<CpuProfileData> parsed;
    std::string problem;
    for (int attempt = 0; attempt < 40 && !parsed; ++attempt) {
      if (attempt > 0) clock.SleepFor(0.05);
      std::ifstream in(run.cooldown_profile, std::ios::binary);
      if (!in) {
        problem = "it was not written";
        continue;
      }
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto profile = ParseCpuProfile(bytes, run.cooldown_profile);
      if (profile) {
        parsed = std::move(*profile);
      } else {
        problem = profile.error().message;
      }
    }
    if (!parsed) {
      r.warnings.push_back("no CPU profile of run " + std::to_string(run.index) +
                           "'s cooldown (" + run.cooldown_profile + "): " + problem);
      run.cooldown_profile.clear();
      continue;
    }
    run.cooldown_profile_samples = parsed->total_samples;
    profiled.push_back(&run);
    data.push_back(std::move(*parsed));
    files.push_back(run.cooldown_profile);
  }
  if (files.empty()) return;
  if (binary.empty()) {
    r.warnings.push_back("the CPU profiles are not summarised: the target's program file is unknown");
    return;
  }
  if (progress) progress("symbolizing " + std::to_string(files.size()) + " CPU profiles of the cooldowns");
  auto symbols = SymbolizeCpuProfiles(binary, files);
  if (!symbols) {
    r.warnings.push_back("the CPU profiles are not summarised: " + symbols.error().message);
    return;
  }
  for (size_t i = 0; i < profiled.size(); ++i) {
    profiled[i]->cooldown_top_functions = TopFunctions(data[i], *symbols);
  }
}

}  // namespace

GateResult RunGate(const GateConfig& config, Target& target, Workload& workload, HeapSource* heap,
                   Clock& clock, ProcReader& reader, const ProgressFn& progress) {
  Gate gate(config, target, workload, heap, clock, reader, progress);
  return gate.Run();
}

GateConfig GateConfigFromScenario(const Scenario& scenario) {
  GateConfig config;
  config.runs = scenario.runs;
  config.warmup_runs = scenario.warmup_runs;
  config.max_runs = scenario.max_runs;
  config.baseline_s = scenario.baseline_s;
  config.sample_hz = scenario.sample_hz;
  config.cooldown = scenario.cooldown;
  config.thresholds = scenario.thresholds;
  if (scenario.target.spawn) config.include_children = scenario.target.spawn->include_children;
  if (scenario.target.attach) config.include_children = scenario.target.attach->include_children;
  return config;
}

GateResult RunScenario(const Scenario& scenario, const ScenarioRunOptions& options, Clock& clock,
                       ProcReader& reader) {
  auto error_result = [&](int exit_code, std::string message) {
    GateResult r;
    r.verdict = "error";
    r.exit_code = exit_code;
    r.error = std::move(message);
    if (options.progress) options.progress("error: " + r.error);
    return r;
  };

  // Known growth, read before anything is started so that a bad file costs nothing.
  GateConfig config = GateConfigFromScenario(scenario);
  std::optional<Suppressions> suppressions;
  if (!scenario.suppressions_file.empty()) {
    auto loaded = LoadSuppressions(scenario.suppressions_file);
    if (!loaded) return error_result(kExitUsage, loaded.error().message);
    suppressions = std::move(*loaded);
    config.suppressions = &*suppressions;
  }

  // The target.
  std::unique_ptr<Target> target;
  std::optional<HeapMetricsSource> heap_config;
  std::string heap_profile_prefix;  // set when the target dumps heap profiles
  std::string profiler_warning;     // why a profiler the scenario asks for is off
  if (scenario.target.spawn) {
    const SpawnTargetConfig& spawn = *scenario.target.spawn;
    SpawnOptions so;
    so.argv = spawn.argv;
    so.env = spawn.env;
    so.cwd = spawn.cwd;
    so.output_dir = options.out_dir;
    switch (spawn.ready.kind) {
      case ReadyProbe::Kind::kHttpGet: so.ready = ReadyCheck::HttpGet(spawn.ready.http_get); break;
      case ReadyProbe::Kind::kStdoutLine:
        so.ready = ReadyCheck::StdoutLine(spawn.ready.stdout_line);
        break;
      case ReadyProbe::Kind::kStdoutRegex:
        so.ready = ReadyCheck::StdoutLine(spawn.ready.stdout_regex, /*is_regex=*/true);
        break;
      case ReadyProbe::Kind::kDelay: so.ready = ReadyCheck::Delay(spawn.ready.delay_s); break;
    }
    so.ready_timeout_s = spawn.ready.timeout_s;
    if (scenario.heap_profile && !spawn.argv.empty() && UsesAddressSanitizer(spawn.argv.front())) {
      profiler_warning = "heap_profile is off: " + spawn.argv.front() +
                         " is built with AddressSanitizer, which must own malloc, so no heap "
                         "profiler can be preloaded into it";
    } else if (scenario.heap_profile) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(options.out_dir) / "heap", ec);
      // Profiles of an earlier gate in the same folder would look newer than this target's first
      // ones (the names are numbered per process): they go.
      RemoveProfilesOfEarlierGates(std::filesystem::path(options.out_dir) / "heap", "target.");
      heap_profile_prefix = (std::filesystem::path(options.out_dir) / "heap" / "target").string();
      const HeapProfileConfig& hp = *scenario.heap_profile;
      auto env = hp.profiler == HeapProfileConfig::Profiler::kAgent
                     ? AgentProfileEnvironment(heap_profile_prefix, hp.signal, hp.sample_bytes, so.env)
                     : HeapProfileEnvironment(heap_profile_prefix, hp.signal, so.env);
      if (!env) {
        return error_result(kExitUsage,
                            scenario.file.string() + ": /heap_profile: " + env.error().message);
      }
      so.env = std::move(*env);
    }
    if (scenario.cpu_profile) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(options.out_dir) / "cpu", ec);
      RemoveProfilesOfEarlierGates(std::filesystem::path(options.out_dir) / "cpu", "target.");
      config.cpu_profile_prefix = (std::filesystem::path(options.out_dir) / "cpu" / "target").string();
      config.cpu_profile_signal = CpuProfileSignal();
      auto env = CpuProfileEnvironment(config.cpu_profile_prefix, config.cpu_profile_signal, so.env);
      if (!env) return error_result(kExitUsage, scenario.file.string() + ": /cpu_profile: " + env.error().message);
      so.env = std::move(*env);
    }
    so.stop_signal = spawn.stop_signal;
    so.stop_timeout_s = spawn.stop_timeout_s;
    if (options.progress) {
      options.progress("starting " + (spawn.argv.empty() ? std::string("?") : spawn.argv.front()));
    }
    auto spawned = SpawnTarget(std::move(so), clock);
    if (!spawned) return error_result(kExitTargetFailed, spawned.error().message);
    target = std::move(*spawned);
    heap_config = spawn.heap;
  } else if (scenario.target.attach) {
    if (scenario.cpu_profile) {
      return error_result(kExitUsage,
                          scenario.file.string() + ": /cpu_profile: needs a spawned target (an "
                          "attached process cannot be given the CPU profiler); set it to false or "
                          "use target.spawn");
    }
    if (scenario.heap_profile) {
      return error_result(kExitUsage,
                          scenario.file.string() + ": /heap_profile: needs a spawned target (an "
                          "attached process cannot be given a preloaded profiler); set it to false "
                          "or use target.spawn");
    }
    auto attached = AttachTarget(scenario.target.attach->pid);
    if (!attached) return error_result(kExitTargetFailed, attached.error().message);
    target = std::move(*attached);
    heap_config = scenario.target.attach->heap;
  } else {
    return error_result(kExitUsage, "the scenario has no target");
  }

  auto finish = [&](GateResult r) {
    auto stopped = target->Stop();
    if (stopped) {
      r.target_exit = *stopped;
      if (stopped->exited_before_stop && r.verdict != "error") {
        r.verdict = "error";
        r.exit_code = kExitTargetFailed;
        r.error = "the target ended before the gate finished: " + stopped->description;
      }
    } else {
      r.warnings.push_back("stopping the target: " + stopped.error().message);
    }
    return r;
  };

  if (auto started = target->Start(); !started) {
    GateResult r = error_result(kExitTargetFailed, started.error().message);
    r.target_description = target->Describe();
    return finish(std::move(r));
  }
  // The program the profiles are symbolized against (the file may be replaced while it runs).
  std::string target_binary;
  if (config.cpu_profile_signal > 0) {
    std::error_code ec;
    target_binary =
        std::filesystem::read_symlink("/proc/" + std::to_string(target->pid()) + "/exe", ec).string();
  }

  std::unique_ptr<HeapSource> heap;
  if (!heap_profile_prefix.empty()) {
    auto profiles = std::make_unique<HeapProfileSource>(target->pid(), heap_profile_prefix,
                                                        scenario.heap_profile->signal, clock);
    profiles->set_name(scenario.heap_profile->profiler == HeapProfileConfig::Profiler::kAgent
                           ? "agent"
                           : "tcmalloc-profiler");
    heap = std::move(profiles);
  } else if (heap_config) {
    PrometheusHeapOptions ho;
    PlaceholderValues values = scenario.placeholders;
    auto url = ExpandPlaceholders(heap_config->metrics_url, values);
    ho.url = url ? *url : heap_config->metrics_url;
    ho.allocated_metric = heap_config->metric;
    if (!heap_config->cached_metric.empty()) ho.cached_metrics = {heap_config->cached_metric};
    auto created = PrometheusMetricsHeap::Create(std::move(ho));
    if (!created) return finish(error_result(kExitUsage, created.error().message));
    heap = std::move(*created);
  }

  auto workload = MakeWorkload(scenario.workload, scenario.placeholders, options.out_dir);
  if (!workload) return finish(error_result(kExitUsage, workload.error().message));

  GateResult r = RunGate(config, *target, **workload, heap.get(), clock, reader, options.progress);
  if (!profiler_warning.empty()) r.warnings.push_back(profiler_warning);
  if (config.cpu_profile_signal > 0) SummarizeCpuProfiles(target_binary, clock, options.progress, r);
  return finish(std::move(r));
}

}  // namespace leakgate::harness
