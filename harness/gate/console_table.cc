#include "harness/gate/console_table.h"

#include "base/units.h"
#include "harness/scenario/scenario.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <vector>

namespace leakgate::harness {
namespace {

std::string Pct(double value) { return Fixed(value, 1) + " %"; }

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// A Markdown table whose columns are padded so that it also reads well as plain text.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  std::string Render() const {
    std::vector<size_t> width(rows_.front().size(), 0);
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], Length(row[i]));
    }
    std::ostringstream out;
    for (size_t r = 0; r < rows_.size(); ++r) {
      out << "|";
      for (size_t i = 0; i < rows_[r].size(); ++i) {
        out << " " << rows_[r][i] << std::string(width[i] - Length(rows_[r][i]), ' ') << " |";
      }
      out << "\n";
      if (r == 0) {
        out << "|";
        for (size_t w : width) out << std::string(w + 2, '-') << "|";
        out << "\n";
      }
    }
    return out.str();
  }

 private:
  // Display width: counts UTF-8 code points, not bytes.
  static size_t Length(const std::string& text) {
    size_t n = 0;
    for (unsigned char c : text) n += (c & 0xC0) != 0x80;
    return n;
  }
  std::vector<std::vector<std::string>> rows_;
};

std::string HeapText(const std::optional<int64_t>& heap) {
  return heap ? HumanBytes(static_cast<double>(*heap)) : "n/a";
}

std::string Signed(double value) { return (value > 0 ? "+" : "") + HumanBytes(value); }

// "what grew": one line per growth item, kind and site in columns, then how much, one example and
// a suppression. An fd item whose site is also a socket item's is the same growth seen twice and is
// left to the socket line.
std::string GrowthText(const Analysis& analysis) {
  std::set<std::string> socket_sites;
  for (const GrowthItem& g : analysis.growth) {
    if (g.kind == "socket") socket_sites.insert(g.site);
  }
  std::vector<const GrowthItem*> shown;
  size_t kind_width = 0, site_width = 0;
  for (const GrowthItem& g : analysis.growth) {
    if (g.kind == "fd" && socket_sites.contains(g.site)) continue;
    shown.push_back(&g);
    kind_width = std::max(kind_width, g.kind.size());
    site_width = std::max(site_width, g.site.size());
  }
  if (shown.empty()) return "";
  std::ostringstream out;
  out << "\nwhat grew:\n";
  for (const GrowthItem* g : shown) {
    const bool bytes = g->kind == "heap";
    out << "  " << g->kind << std::string(kind_width - g->kind.size(), ' ') << "  " << g->site
        << std::string(site_width - g->site.size(), ' ') << "  "
        << (bytes ? Signed(g->total) : (g->total > 0 ? "+" : "") + Fixed(g->total, 0)) << " ("
        << (bytes ? HumanBytes(g->per_run) : Fixed(g->per_run, 2)) << " per run)";
    if (!g->location.empty()) out << " at " << g->location;
    if (!g->examples.empty()) {
      out << ", e.g. " << g->examples.front();
      const long more =
          std::max(static_cast<long>(g->examples.size()), std::lround(g->total)) - 1;
      if (more > 0) out << " (+" << more << " more)";
    }
    if (!g->suppressed.empty()) out << " [suppressed: " << g->suppressed << "]";
    out << "\n";
    // Where it comes from: the frames after the site (heap), or where the thread or socket was
    // created; three are enough to recognise the code path.
    const size_t first = g->kind == "heap" ? 1 : 0;
    for (size_t i = first; i < g->stack.size() && i < first + 3; ++i) {
      out << "      " << (i == first ? (g->kind == "heap" ? "called from " : "created at  ")
                                     : "            ")
          << g->stack[i] << "\n";
    }
  }
  return out.str();
}

// The sites holding the heap at the highest peak of a judged run (the agent's peak snapshot).
std::string PeakSitesText(const GateResult& r) {
  if (!r.heap_profiles || r.heap_profiles->peak_sites.empty()) return "";
  const HeapProfileSummary& h = *r.heap_profiles;
  std::ostringstream out;
  out << "\nheap at the peak of run " << h.peak_run << " (" << HumanBytes(h.peak_bytes)
      << " in use, estimated), by allocation site:\n";
  for (size_t i = 0; i < h.peak_sites.size() && i < 3; ++i) {
    const SiteUsage& site = h.peak_sites[i];
    out << "  " << HumanBytes(site.inuse_bytes) << "  " << site.site.signature;
    if (!site.site.file.empty()) {
      out << " at " << site.site.file;
      if (site.site.line > 0) out << ":" << site.site.line;
    }
    out << "\n";
  }
  return out.str();
}

// The thread names behind idle CPU that did not return to the baseline: their mean CPU over the
// judged runs above the threshold, as in the check's detail.
std::string IdleThreadsText(const GateResult& r) {
  const auto check = std::find_if(r.analysis->checks.begin(), r.analysis->checks.end(),
                                  [](const CheckResult& c) { return c.name == "idle_cpu_returns"; });
  if (check == r.analysis->checks.end() || check->verdict == Verdict::kPass || !check->threshold) {
    return "";
  }
  std::vector<std::vector<ThreadGroupCpu>> windows;
  for (const RunRecord& run : r.runs) {
    if (!run.warmup && run.after.cpu_pct - r.baseline.cpu_pct > *check->threshold) {
      windows.push_back(run.after.idle_threads);
    }
  }
  if (windows.empty()) return "";
  const std::string by_thread = ExplainCpuExcess(r.baseline.idle_threads, MeanThreadCpu(windows));
  if (by_thread.empty()) return "";
  return "\nidle CPU above the baseline, by thread (mean of " + std::to_string(windows.size()) +
         " run" + (windows.size() == 1 ? "" : "s") + " above it): " + by_thread + "\n";
}

}  // namespace

std::string HumanBytes(double bytes) { return FormatSize(std::llround(bytes)); }

std::string VerdictLine(const GateResult& r) {
  std::string line = "verdict: " + Upper(std::string(VerdictName(r.verdict))) + " (exit " + std::to_string(r.exit_code) + ")";
  if (!r.error.empty()) return line + ": " + r.error;
  if (!r.analysis) return line;
  std::vector<std::string> failing;
  for (const CheckResult& c : r.analysis->checks) {
    if (c.verdict == Verdict::kFail ||
        (r.analysis->verdict == Verdict::kInconclusive && c.verdict == Verdict::kInconclusive)) {
      failing.push_back(c.name);
    }
  }
  if (failing.empty()) {
    return line + ": " + std::to_string(r.analysis->checks.size()) + " checks passed over " +
           std::to_string(r.analysis->judged_runs) + " judged runs";
  }
  line += ": ";
  for (size_t i = 0; i < failing.size(); ++i) line += (i ? ", " : "") + failing[i];
  return line;
}

std::string RenderConsoleReport(const GateResult& r) {
  std::ostringstream out;
  if (r.baseline_taken) {
    Table table({"phase", "CPU", "RSS", "heap", "fds", "threads", "sockets", "state"});
    const Snapshot& b = r.baseline;
    table.Add({"baseline (idle)", Pct(b.cpu_pct), HumanBytes(b.rss_bytes), HeapText(b.heap_bytes),
               std::to_string(b.fds), std::to_string(b.threads), std::to_string(b.sockets),
               "reference"});
    // The document's criterion: CPU back at the baseline (within the default idle_cpu_pct).
    const double tolerance_pct = 2.0;
    for (const RunRecord& run : r.runs) {
      const std::string name = "run " + std::to_string(run.index) + (run.warmup ? " (warm-up)" : "");
      table.Add({name + ", during", Pct(run.peak_cpu_pct) + " peak",
                 HumanBytes(static_cast<double>(run.peak_rss_bytes)) + " peak", "", "", "", "",
                 Fixed(run.duration_s, 2) + " s"});
      const Snapshot& a = run.after;
      const bool cpu_back = a.cpu_pct <= b.cpu_pct + tolerance_pct;
      table.Add({name + ", after " + Fixed(run.cooldown_s, 1) + " s" +
                     (run.cooldown_settled ? "" : " (max)"),
                 Pct(a.cpu_pct), HumanBytes(a.rss_bytes) + " (" + Signed(a.rss_bytes - b.rss_bytes) + ")",
                 a.heap_bytes && b.heap_bytes
                     ? HeapText(a.heap_bytes) + " (" + Signed(*a.heap_bytes - *b.heap_bytes) + ")"
                     : HeapText(a.heap_bytes),
                 std::to_string(a.fds), std::to_string(a.threads), std::to_string(a.sockets),
                 cpu_back ? "settled" : "CPU above baseline"});
    }
    out << table.Render();
  }
  if (r.analysis) {
    out << "\n";
    Table checks({"check", "verdict", "observed", "threshold", "detail"});
    for (const CheckResult& c : r.analysis->checks) {
      auto number = [&](const std::optional<double>& v) -> std::string {
        if (!v) return "-";
        if (c.unit == "B" || c.unit == "B/run") {
          return HumanBytes(*v) + (c.unit == "B/run" ? "/run" : "");
        }
        return Fixed(*v, c.unit == "%" ? 2 : 0) + " " + c.unit;
      };
      checks.Add({c.name, std::string(VerdictName(c.verdict)), number(c.observed),
                  number(c.threshold), c.detail});
    }
    out << checks.Render();
    out << GrowthText(*r.analysis);
    out << PeakSitesText(r);
    out << IdleThreadsText(r);
    for (const std::string& note : r.analysis->notes) out << "note: " << note << "\n";
    if (r.heap_profiles) {
      // Objects without debug information are common (system libraries) and named in
      // result.json; the console keeps the notes that change what a reader should trust.
      for (const std::string& note : r.heap_profiles->notes) {
        if (note.find("no debug information") == std::string::npos) out << "note: " << note << "\n";
      }
    }
  }
  for (const std::string& warning : r.warnings) out << "warning: " << warning << "\n";
  out << VerdictLine(r) << "\n";
  return out.str();
}

}  // namespace leakgate::harness
