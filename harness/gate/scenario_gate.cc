#include "harness/gate/scenario_gate.h"

#include <filesystem>
#include <memory>
#include <optional>
#include <utility>

#include "harness/profile/cpu_profile.h"
#include "harness/profile/preload.h"

namespace leakgate::harness {
namespace {

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

// Each run's cooldown profile summarised (profile/cpu_profile.h); a run whose profile was not
// written loses its file name and gets a warning.
void AddCpuProfileSummaries(const std::string& binary, Clock& clock, const ProgressFn& progress,
                            GateResult& r) {
  std::vector<RunRecord*> profiled;
  std::vector<std::string> files;
  for (RunRecord& run : r.runs) {
    if (run.cooldown_profile.empty()) continue;
    profiled.push_back(&run);
    files.push_back(run.cooldown_profile);
  }
  if (files.empty()) return;
  if (progress && !binary.empty()) {
    progress("symbolizing " + std::to_string(files.size()) + " CPU profiles of the cooldowns");
  }
  std::vector<std::string> warnings;
  const std::vector<CpuProfileSummary> summaries = SummarizeCpuProfiles(binary, files, clock, warnings);
  for (size_t i = 0; i < summaries.size(); ++i) {
    RunRecord& run = *profiled[i];
    if (!summaries[i].read) {
      r.warnings.push_back("no CPU profile of run " + std::to_string(run.index) + "'s cooldown (" +
                           run.cooldown_profile + "): " + summaries[i].problem);
      run.cooldown_profile.clear();
      continue;
    }
    run.cooldown_profile_samples = summaries[i].samples;
    run.cooldown_top_functions = summaries[i].top_functions;
  }
  for (std::string& w : warnings) r.warnings.push_back(std::move(w));
}

}  // namespace

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
    r.verdict = Verdict::kError;
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
  std::unique_ptr<HeapProfiler> heap_profiler;
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
      heap_profiler = hp.profiler == HeapProfileConfig::Profiler::kAgent
                          ? MakeAgentHeapProfiler(hp.signal, hp.sample_bytes)
                          : MakeGperftoolsHeapProfiler(hp.signal);
      auto env = heap_profiler->Environment(heap_profile_prefix, so.env);
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
      if (stopped->exited_before_stop && r.verdict != Verdict::kError) {
        r.verdict = Verdict::kError;
        r.exit_code = kExitTargetFailed;
        r.error = "the target ended before the gate finished: " + stopped->description;
      }
    } else {
      r.warnings.push_back("stopping the target: " + stopped.error().message);
    }
    // A termination signal outside the run loop (RunGate marks its own): while the target was
    // starting, or after the runs.
    if (const int sig = TerminationSignal(); sig != 0 && r.interrupted.empty()) {
      MarkInterrupted(r, sig,
                      r.baseline_taken || !r.runs.empty()
                          ? "after run " + std::to_string(r.runs.size())
                          : std::string("while the target was starting"));
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
    target_binary = reader.ReadLink("/proc/" + std::to_string(target->pid()) + "/exe").value_or("");
  }

  std::unique_ptr<HeapSource> heap;
  if (!heap_profile_prefix.empty()) {
    heap = heap_profiler->Attach(target->pid(), heap_profile_prefix, clock);
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

  auto workload = MakeWorkload(scenario.workload, scenario.placeholders, options.out_dir, clock);
  if (!workload) return finish(error_result(kExitUsage, workload.error().message));

  GateResult r = RunGate(config, *target, **workload, heap.get(), clock, reader, options.progress);
  if (!profiler_warning.empty()) r.warnings.push_back(profiler_warning);
  if (config.cpu_profile_signal > 0) AddCpuProfileSummaries(target_binary, clock, options.progress, r);
  return finish(std::move(r));
}

}  // namespace leakgate::harness
