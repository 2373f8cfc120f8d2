#include "harness/gate/result_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace leakgate::harness {
namespace {

using nlohmann::json;

json Number(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

template <class T>
json Optional(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

json ThreadGroupsJson(const std::vector<ThreadGroupCpu>& groups) {
  json out = json::array();
  for (const ThreadGroupCpu& g : groups) {
    out.push_back({{"name", g.name}, {"threads", g.threads}, {"cpu_pct", Number(g.cpu_pct)}});
  }
  return out;
}

json SnapshotJson(const Snapshot& s) {
  json threads = json::array();
  for (const ThreadCpu& t : s.busiest_threads) {
    threads.push_back({{"tid", t.tid}, {"name", t.name}, {"cpu_pct", Number(t.cpu_percent)}});
  }
  json sockets = json::array();
  for (const ResolvedFd& fd : s.resolved_fds) {
    if (fd.socket) sockets.push_back(fd.description);
  }
  return {{"cpu_pct", Number(s.cpu_pct)},
          {"rss_bytes", s.rss_bytes},
          {"rss_anon_bytes", s.rss_anon_bytes},
          {"hwm_bytes", s.hwm_bytes},
          {"pss_bytes", Optional(s.pss_bytes)},
          {"heap_bytes", Optional(s.heap_bytes)},
          {"heap_cached_bytes", Optional(s.heap_cached_bytes)},
          {"cgroup_memory_bytes", Optional(s.cgroup_memory_bytes)},
          {"fds", s.fds},
          {"threads", s.threads},
          {"sockets", s.sockets},
          {"fd_targets", s.fd_targets},
          {"thread_names", s.thread_names},
          {"busiest_threads", std::move(threads)},
          {"socket_descriptions", std::move(sockets)},
          {"heap_profile", s.heap_profile.empty() ? json(nullptr) : json(s.heap_profile)},
          {"t", Number(s.t)}};
}

std::string UtcNow() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace

json EnvironmentJson() {
  json env = json::object();
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) env["hostname"] = host;
  struct utsname uts {};
  if (uname(&uts) == 0) {
    env["kernel"] = std::string(uts.sysname) + " " + uts.release;
    env["machine"] = uts.machine;
  }
  env["cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
  struct sysinfo si {};
  if (sysinfo(&si) == 0) env["memory_bytes"] = static_cast<int64_t>(si.totalram) * si.mem_unit;
  env["clk_tck"] = sysconf(_SC_CLK_TCK);
  env["leakgate_version"] = LEAKGATE_VERSION;
  env["started_at"] = UtcNow();
  const char* ci = std::getenv("CI");
  env["ci"] = ci != nullptr && *ci != '\0' && std::string(ci) != "false" && std::string(ci) != "0";
  return env;
}

json GateResultToJson(const GateResult& r, const json& scenario, const json& environment) {
  json out;
  out["schema"] = kResultSchema;
  out["scenario"] = scenario;
  out["environment"] = environment;
  out["environment"]["heap_source"] = r.heap_source;
  out["environment"]["peak_reset_supported"] = r.peak_reset_supported;
  out["verdict"] = VerdictName(r.verdict);
  out["exit_code"] = r.exit_code;
  if (!r.error.empty()) out["error"] = r.error;
  if (!r.interrupted.empty()) out["interrupted"] = r.interrupted;
  out["target"] = {{"description", r.target_description}};
  if (r.target_exit) {
    out["target"]["exit"] = {{"description", r.target_exit->description},
                             {"exited_before_stop", r.target_exit->exited_before_stop},
                             {"killed_after_timeout", r.target_exit->killed_after_timeout}};
  }
  out["workload"] = {{"description", r.workload_description}};
  out["baseline"] = r.baseline_taken ? SnapshotJson(r.baseline) : json(nullptr);
  if (r.baseline_taken) out["baseline"]["idle_threads"] = ThreadGroupsJson(r.baseline.idle_threads);

  json runs = json::array();
  for (const RunRecord& run : r.runs) {
    runs.push_back({{"index", run.index},
                    {"warmup", run.warmup},
                    {"start_s", Number(run.start_t)},
                    {"duration_s", Number(run.duration_s)},
                    {"cooldown_s", Number(run.cooldown_s)},
                    {"cooldown_settled", run.cooldown_settled},
                    {"peak_cpu_pct", Number(run.peak_cpu_pct)},
                    {"peak_rss_bytes", run.peak_rss_bytes},
                    {"requests", run.requests},
                    {"workload", run.workload_description},
                    {"idle_threads", ThreadGroupsJson(run.after.idle_threads)},
                    {"after", SnapshotJson(run.after)}});
    if (!run.cooldown_profile.empty()) {
      json functions = json::array();
      for (const ProfileFunction& f : run.cooldown_top_functions) {
        functions.push_back({{"function", f.function},
                             {"self_samples", f.self_samples},
                             {"self_pct", Number(f.self_pct)},
                             {"total_samples", f.total_samples},
                             {"total_pct", Number(f.total_pct)}});
      }
      runs.back()["cooldown_profile"] = run.cooldown_profile;
      runs.back()["cooldown_profile_samples"] = run.cooldown_profile_samples;
      runs.back()["cooldown_top_functions"] = std::move(functions);
    }
  }
  out["runs"] = std::move(runs);

  json checks = json::array();
  json growth = json::array();
  if (r.analysis) {
    for (const CheckResult& c : r.analysis->checks) {
      checks.push_back({{"name", c.name},
                        {"metric", c.metric},
                        {"verdict", VerdictName(c.verdict)},
                        {"observed", c.observed ? Number(*c.observed) : json(nullptr)},
                        {"threshold", c.threshold ? Number(*c.threshold) : json(nullptr)},
                        {"unit", c.unit},
                        {"detail", c.detail}});
    }
    for (const GrowthItem& g : r.analysis->growth) {
      json item = {{"kind", g.kind},
                   {"site", g.site},
                   {"per_run", Number(g.per_run)},
                   {"total", Number(g.total)},
                   {"examples", g.examples},
                   {"suppressed", g.suppressed.empty() ? json(nullptr) : json(g.suppressed)}};
      if (!g.id.empty()) item["id"] = g.id;
      if (!g.location.empty()) item["location"] = g.location;
      if (!g.stack.empty()) item["stack"] = g.stack;
      growth.push_back(std::move(item));
    }
    out["judged_runs"] = r.analysis->judged_runs;
    out["summary"] = r.analysis->summary;
    out["notes"] = r.analysis->notes;
  }
  out["checks"] = std::move(checks);
  out["growth"] = std::move(growth);

  json timeline = json::array();
  for (const TimelinePoint& p : r.timeline) {
    json point = {{"t", Number(p.t)},       {"phase", p.phase},    {"run", p.run},
                  {"cpu_pct", Number(p.cpu_pct)}, {"rss_bytes", p.rss_bytes}, {"fds", p.fds},
                  {"threads", p.threads},   {"sockets", p.sockets}};
    if (p.heap_bytes) point["heap_bytes"] = *p.heap_bytes;
    timeline.push_back(std::move(point));
  }
  out["timeline"] = std::move(timeline);
  if (r.heap_profiles) {
    const HeapProfileSummary& h = *r.heap_profiles;
    json peak_sites = json::array();
    for (const SiteUsage& site : h.peak_sites) {
      json entry = {{"site", site.site.signature},
                    {"id", site.site.id},
                    {"bytes", Number(site.inuse_bytes)},
                    {"objects", Number(site.inuse_objects)},
                    {"stack", site.site.stack}};
      if (!site.site.file.empty()) {
        entry["location"] =
            site.site.file + (site.site.line > 0 ? ":" + std::to_string(site.site.line) : "");
      }
      peak_sites.push_back(std::move(entry));
    }
    out["heap_profiles"] = {{"profiler", h.profiler},
                            {"sampled", h.sampled},
                            {"sample_period", h.sample_period},
                            {"files", h.profiles},
                            {"notes", h.notes},
                            {"peak_run", h.peak_run},
                            {"peak_bytes", Number(h.peak_bytes)},
                            {"peak_sites", std::move(peak_sites)}};
  }
  out["warnings"] = r.warnings;
  out["wall_s"] = Number(r.wall_s);
  out["cooldown_total_s"] = Number(r.cooldown_total_s);
  out["baseline_settle_s"] = Number(r.baseline_settle_s);
  return out;
}


}  // namespace leakgate::harness
