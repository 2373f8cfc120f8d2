#include "reports/console.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "base/result_names.h"
#include "base/thread_cpu.h"
#include "base/units.h"
#include "result_format.h"

namespace leakgate::reports {
namespace {

using nlohmann::json;

// A field of `parent` when it is an array (else an empty one), so that loops need no checks.
const json& ArrayAt(const json& parent, const char* key) {
  static const json kEmpty = json::array();
  if (!parent.is_object()) return kEmpty;
  auto it = parent.find(key);
  return it != parent.end() && it->is_array() ? *it : kEmpty;
}

const json& ObjectAt(const json& parent, const char* key) {
  static const json kNone = json::object();
  if (!parent.is_object()) return kNone;
  auto it = parent.find(key);
  return it != parent.end() && it->is_object() ? *it : kNone;
}

double NumberOr(const json& parent, const char* key, double fallback = 0) {
  if (!parent.is_object()) return fallback;
  return NumberAt(parent, key).value_or(fallback);
}

std::string Whole(const json& parent, const char* key) {
  return std::to_string(static_cast<int64_t>(std::llround(NumberOr(parent, key))));
}

bool BoolAt(const json& parent, const char* key) {
  if (!parent.is_object()) return false;
  auto it = parent.find(key);
  return it != parent.end() && it->is_boolean() && it->get<bool>();
}

std::string HumanBytes(double bytes) { return FormatSize(std::llround(bytes)); }

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

std::string HeapText(const std::optional<double>& heap) { return heap ? HumanBytes(*heap) : "n/a"; }

std::string Signed(double value) { return (value > 0 ? "+" : "") + HumanBytes(value); }

std::vector<std::string> Strings(const json& parent, const char* key) {
  std::vector<std::string> out;
  for (const json& item : ArrayAt(parent, key)) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

// "what grew": one line per growth item, kind and site in columns, then how much, one example and
// a suppression. An fd item whose site is also a socket item's is the same growth seen twice and is
// left to the socket line.
std::string GrowthText(const json& r) {
  std::set<std::string> socket_sites;
  for (const json& g : ArrayAt(r, "growth")) {
    if (StringAt(g, "kind") == "socket") socket_sites.insert(StringAt(g, "site"));
  }
  std::vector<const json*> shown;
  size_t kind_width = 0, site_width = 0;
  for (const json& g : ArrayAt(r, "growth")) {
    const std::string kind = StringAt(g, "kind");
    const std::string site = StringAt(g, "site");
    if (kind == "fd" && socket_sites.contains(site)) continue;
    shown.push_back(&g);
    kind_width = std::max(kind_width, kind.size());
    site_width = std::max(site_width, site.size());
  }
  if (shown.empty()) return "";
  std::ostringstream out;
  out << "\nwhat grew:\n";
  for (const json* g : shown) {
    const std::string kind = StringAt(*g, "kind");
    const std::string site = StringAt(*g, "site");
    const double total = NumberOr(*g, "total");
    const double per_run = NumberOr(*g, "per_run");
    const bool bytes = kind == "heap";
    out << "  " << kind << std::string(kind_width - kind.size(), ' ') << "  " << site
        << std::string(site_width - site.size(), ' ') << "  "
        << (bytes ? Signed(total) : (total > 0 ? "+" : "") + Fixed(total, 0)) << " ("
        << (bytes ? HumanBytes(per_run) : Fixed(per_run, 2)) << " per run)";
    if (const std::string location = StringAt(*g, "location"); !location.empty()) {
      out << " at " << location;
    }
    const std::vector<std::string> examples = Strings(*g, "examples");
    if (!examples.empty()) {
      out << ", e.g. " << examples.front();
      const long more = std::max(static_cast<long>(examples.size()), std::lround(total)) - 1;
      if (more > 0) out << " (+" << more << " more)";
    }
    if (const std::string suppressed = StringAt(*g, "suppressed"); !suppressed.empty()) {
      out << " [suppressed: " << suppressed << "]";
    }
    out << "\n";
    // Where it comes from: the frames after the site (heap), or where the thread or socket was
    // created; three are enough to recognise the code path.
    const std::vector<std::string> stack = Strings(*g, "stack");
    const size_t first = bytes ? 1 : 0;
    for (size_t i = first; i < stack.size() && i < first + 3; ++i) {
      out << "      " << (i == first ? (bytes ? "called from " : "created at  ") : "            ")
          << stack[i] << "\n";
    }
  }
  return out.str();
}

// The sites holding the heap at the highest peak of a judged run (the agent's peak snapshot).
std::string PeakSitesText(const json& r) {
  const json& h = ObjectAt(r, "heap_profiles");
  const json& sites = ArrayAt(h, "peak_sites");
  if (sites.empty()) return "";
  std::ostringstream out;
  out << "\nheap at the peak of run " << Whole(h, "peak_run") << " ("
      << HumanBytes(NumberOr(h, "peak_bytes")) << " in use, estimated), by allocation site:\n";
  for (size_t i = 0; i < sites.size() && i < 3; ++i) {
    out << "  " << HumanBytes(NumberOr(sites[i], "bytes")) << "  " << StringAt(sites[i], "site");
    if (const std::string location = StringAt(sites[i], "location"); !location.empty()) {
      out << " at " << location;
    }
    out << "\n";
  }
  return out.str();
}

std::vector<ThreadGroupCpu> ThreadGroups(const json& groups) {
  std::vector<ThreadGroupCpu> out;
  if (!groups.is_array()) return out;
  for (const json& g : groups) {
    out.push_back({.name = StringAt(g, "name"),
                   .threads = static_cast<int>(NumberOr(g, "threads")),
                   .cpu_pct = NumberOr(g, "cpu_pct")});
  }
  return out;
}

// The thread names behind idle CPU that did not return to the baseline: their mean CPU over the
// judged runs above the threshold, as in the check's detail.
std::string IdleThreadsText(const json& r) {
  const json* check = FindCheck(r, check_id::kIdleCpuReturns);
  if (check == nullptr || StringAt(*check, "verdict") == VerdictName(Verdict::kPass)) return "";
  const std::optional<double> threshold = NumberAt(*check, "threshold");
  if (!threshold) return "";
  const json& baseline = ObjectAt(r, "baseline");
  const double baseline_cpu = NumberOr(baseline, "cpu_pct");
  std::vector<std::vector<ThreadGroupCpu>> windows;
  for (const json& run : ArrayAt(r, "runs")) {
    if (!BoolAt(run, "warmup") && NumberOr(ObjectAt(run, "after"), "cpu_pct") - baseline_cpu > *threshold) {
      windows.push_back(ThreadGroups(run.is_object() && run.contains("idle_threads")
                                         ? run["idle_threads"]
                                         : json::array()));
    }
  }
  if (windows.empty()) return "";
  const std::string by_thread = ExplainCpuExcess(
      ThreadGroups(baseline.contains("idle_threads") ? baseline["idle_threads"] : json::array()),
      MeanThreadCpu(windows));
  if (by_thread.empty()) return "";
  return "\nidle CPU above the baseline, by thread (mean of " + std::to_string(windows.size()) +
         " run" + (windows.size() == 1 ? "" : "s") + " above it): " + by_thread + "\n";
}

// A check's observed value or threshold as the console writes it; "-" when absent.
std::string CheckNumber(const json& check, const char* key) {
  const std::optional<double> value = NumberAt(check, key);
  if (!value) return "-";
  const std::string unit = StringAt(check, "unit");
  if (unit == "B" || unit == "B/run") return HumanBytes(*value) + (unit == "B/run" ? "/run" : "");
  return Fixed(*value, unit == "%" ? 2 : 0) + " " + unit;
}

// Whether the gate came to a decision (result.json carries the analysis' fields).
bool Analysed(const json& r) { return r.is_object() && r.contains("judged_runs"); }

}  // namespace

std::string VerdictLine(const json& r) {
  const std::string verdict = StringAt(r, "verdict");
  std::string line = "verdict: " + Upper(verdict) + " (exit " + Whole(r, "exit_code") + ")";
  if (const std::string error = StringAt(r, "error"); !error.empty()) return line + ": " + error;
  if (!Analysed(r)) return line;
  std::vector<std::string> failing;
  const json& checks = ArrayAt(r, "checks");
  for (const json& c : checks) {
    const std::string v = StringAt(c, "verdict");
    if (v == VerdictName(Verdict::kFail) ||
        (verdict == VerdictName(Verdict::kInconclusive) && v == VerdictName(Verdict::kInconclusive))) {
      failing.push_back(StringAt(c, "name"));
    }
  }
  if (failing.empty()) {
    return line + ": " + std::to_string(checks.size()) + " checks passed over " +
           Whole(r, "judged_runs") + " judged runs";
  }
  line += ": ";
  for (size_t i = 0; i < failing.size(); ++i) line += (i ? ", " : "") + failing[i];
  return line;
}

std::string RenderConsoleReport(const json& r) {
  std::ostringstream out;
  const json& b = ObjectAt(r, "baseline");
  if (r.is_object() && r.contains("baseline") && r["baseline"].is_object()) {
    Table table({"phase", "CPU", "RSS", "heap", "fds", "threads", "sockets", "state"});
    const std::optional<double> base_heap = NumberAt(b, "heap_bytes");
    table.Add({"baseline (idle)", Pct(NumberOr(b, "cpu_pct")), HumanBytes(NumberOr(b, "rss_bytes")),
               HeapText(base_heap), Whole(b, "fds"), Whole(b, "threads"), Whole(b, "sockets"),
               "reference"});
    // The document's criterion: CPU back at the baseline (within the default idle_cpu_pct).
    const double tolerance_pct = 2.0;
    for (const json& run : ArrayAt(r, "runs")) {
      const std::string name =
          "run " + Whole(run, "index") + (BoolAt(run, "warmup") ? " (warm-up)" : "");
      table.Add({name + ", during", Pct(NumberOr(run, "peak_cpu_pct")) + " peak",
                 HumanBytes(NumberOr(run, "peak_rss_bytes")) + " peak", "", "", "", "",
                 Fixed(NumberOr(run, "duration_s"), 2) + " s"});
      const json& a = ObjectAt(run, "after");
      const bool cpu_back = NumberOr(a, "cpu_pct") <= NumberOr(b, "cpu_pct") + tolerance_pct;
      const std::optional<double> heap = NumberAt(a, "heap_bytes");
      table.Add({name + ", after " + Fixed(NumberOr(run, "cooldown_s"), 1) + " s" +
                     (BoolAt(run, "cooldown_settled") ? "" : " (max)"),
                 Pct(NumberOr(a, "cpu_pct")),
                 HumanBytes(NumberOr(a, "rss_bytes")) + " (" +
                     Signed(NumberOr(a, "rss_bytes") - NumberOr(b, "rss_bytes")) + ")",
                 heap && base_heap ? HeapText(heap) + " (" + Signed(*heap - *base_heap) + ")"
                                   : HeapText(heap),
                 Whole(a, "fds"), Whole(a, "threads"), Whole(a, "sockets"),
                 cpu_back ? "settled" : "CPU above baseline"});
    }
    out << table.Render();
  }
  if (Analysed(r)) {
    out << "\n";
    Table checks({"check", "verdict", "observed", "threshold", "detail"});
    for (const json& c : ArrayAt(r, "checks")) {
      checks.Add({StringAt(c, "name"), StringAt(c, "verdict"), CheckNumber(c, "observed"),
                  CheckNumber(c, "threshold"), StringAt(c, "detail")});
    }
    out << checks.Render();
    out << GrowthText(r);
    out << PeakSitesText(r);
    out << IdleThreadsText(r);
    for (const std::string& note : Strings(r, "notes")) out << "note: " << note << "\n";
    // Objects without debug information are common (system libraries) and named in result.json;
    // the console keeps the notes that change what a reader should trust.
    for (const std::string& note : Strings(ObjectAt(r, "heap_profiles"), "notes")) {
      if (note.find("no debug information") == std::string::npos) out << "note: " << note << "\n";
    }
  }
  for (const std::string& warning : Strings(r, "warnings")) out << "warning: " << warning << "\n";
  out << VerdictLine(r) << "\n";
  return out.str();
}

}  // namespace leakgate::reports
