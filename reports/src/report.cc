#include "reports/report.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/result_names.h"
#include "base/units.h"
#include "markdown_format.h"
#include "result_format.h"

namespace leakgate::reports {
namespace {


using nlohmann::json;

constexpr size_t kMaxGrowthItems = 10;
constexpr size_t kMaxPeakSites = 10;

// ---- validation: every field the renderers read, with its JSON path ----

enum class Kind { kString, kNumber, kNumberOrNull, kBool, kObject, kObjectOrNull, kArray };

std::string_view KindText(Kind kind) {
  switch (kind) {
    case Kind::kString: return "a string";
    case Kind::kNumber: return "a number";
    case Kind::kNumberOrNull: return "a number or null";
    case Kind::kBool: return "true or false";
    case Kind::kObject: return "an object";
    case Kind::kObjectOrNull: return "an object or null";
    case Kind::kArray: return "an array";
  }
  return "a value";
}

bool IsKind(const json& value, Kind kind) {
  switch (kind) {
    case Kind::kString: return value.is_string();
    case Kind::kNumber: return value.is_number();
    case Kind::kNumberOrNull: return value.is_number() || value.is_null();
    case Kind::kBool: return value.is_boolean();
    case Kind::kObject: return value.is_object();
    case Kind::kObjectOrNull: return value.is_object() || value.is_null();
    case Kind::kArray: return value.is_array();
  }
  return false;
}

std::string TypeText(const json& value) {
  return value.is_null() ? "null" : std::string(value.type_name());
}

// Checks `parent[key]`; an absent optional field passes.
Result<void> Expect(const json& parent, const std::string& path, const std::string& key, Kind kind,
                    bool required = true) {
  const std::string at = path + "/" + key;
  auto it = parent.find(key);
  if (it == parent.end()) {
    if (!required) return {};
    return Fail(ErrorCode::kInvalidArgument, "result: " + at + " is missing; expected " +
                                                 std::string(KindText(kind)));
  }
  if (!IsKind(*it, kind)) {
    return Fail(ErrorCode::kInvalidArgument, "result: " + at + " is " + TypeText(*it) +
                                                 "; expected " + std::string(KindText(kind)));
  }
  return {};
}

Result<void> ValidateSnapshot(const json& s, const std::string& path) {
  for (const char* key : {"cpu_pct", "heap_bytes"}) {
    if (auto ok = Expect(s, path, key, Kind::kNumberOrNull, key[0] == 'c'); !ok) return ok;
  }
  for (const char* key : {"rss_bytes", "fds", "threads"}) {
    if (auto ok = Expect(s, path, key, Kind::kNumber); !ok) return ok;
  }
  return {};
}

Result<void> Validate(const json& r) {
  if (!r.is_object()) {
    return Fail(ErrorCode::kInvalidArgument,
                "result: the document is " + TypeText(r) + "; expected an object");
  }
  if (auto ok = Expect(r, "", "schema", Kind::kString); !ok) return ok;
  if (r["schema"] != kResultSchema) {
    return Fail(ErrorCode::kInvalidArgument, "result: /schema is \"" +
                                                 r["schema"].get<std::string>() + "\"; expected \"" +
                                                 std::string(kResultSchema) + "\"");
  }
  if (auto ok = Expect(r, "", "scenario", Kind::kObject); !ok) return ok;
  if (auto ok = Expect(r["scenario"], "/scenario", "name", Kind::kString); !ok) return ok;
  if (auto ok = Expect(r, "", "verdict", Kind::kString); !ok) return ok;
  if (auto ok = Expect(r, "", "exit_code", Kind::kNumber, false); !ok) return ok;
  if (auto ok = Expect(r, "", "error", Kind::kString, false); !ok) return ok;
  if (auto ok = Expect(r, "", "summary", Kind::kString, false); !ok) return ok;
  if (auto ok = Expect(r, "", "wall_s", Kind::kNumberOrNull, false); !ok) return ok;
  if (auto ok = Expect(r, "", "baseline", Kind::kObjectOrNull, false); !ok) return ok;
  if (r.contains("baseline") && r["baseline"].is_object()) {
    if (auto ok = ValidateSnapshot(r["baseline"], "/baseline"); !ok) return ok;
  }
  if (auto ok = Expect(r, "", "runs", Kind::kArray); !ok) return ok;
  for (size_t i = 0; i < r["runs"].size(); ++i) {
    const json& run = r["runs"][i];
    const std::string path = "/runs/" + std::to_string(i);
    if (!run.is_object()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "result: " + path + " is " + TypeText(run) + "; expected an object");
    }
    if (auto ok = Expect(run, path, "index", Kind::kNumber); !ok) return ok;
    if (auto ok = Expect(run, path, "warmup", Kind::kBool, false); !ok) return ok;
    for (const char* key : {"peak_cpu_pct", "duration_s", "cooldown_s"}) {
      if (auto ok = Expect(run, path, key, Kind::kNumberOrNull, false); !ok) return ok;
    }
    if (auto ok = Expect(run, path, "peak_rss_bytes", Kind::kNumber); !ok) return ok;
    if (auto ok = Expect(run, path, "after", Kind::kObject); !ok) return ok;
    if (auto ok = ValidateSnapshot(run["after"], path + "/after"); !ok) return ok;
  }
  if (auto ok = Expect(r, "", "checks", Kind::kArray); !ok) return ok;
  for (size_t i = 0; i < r["checks"].size(); ++i) {
    const json& check = r["checks"][i];
    const std::string path = "/checks/" + std::to_string(i);
    if (!check.is_object()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "result: " + path + " is " + TypeText(check) + "; expected an object");
    }
    if (auto ok = Expect(check, path, "name", Kind::kString); !ok) return ok;
    if (auto ok = Expect(check, path, "verdict", Kind::kString); !ok) return ok;
    for (const char* key : {"observed", "threshold"}) {
      if (auto ok = Expect(check, path, key, Kind::kNumberOrNull, false); !ok) return ok;
    }
    for (const char* key : {"unit", "detail"}) {
      if (auto ok = Expect(check, path, key, Kind::kString, false); !ok) return ok;
    }
  }
  if (auto ok = Expect(r, "", "growth", Kind::kArray, false); !ok) return ok;
  if (r.contains("growth")) {
    for (size_t i = 0; i < r["growth"].size(); ++i) {
      const json& item = r["growth"][i];
      const std::string path = "/growth/" + std::to_string(i);
      if (!item.is_object()) {
        return Fail(ErrorCode::kInvalidArgument,
                    "result: " + path + " is " + TypeText(item) + "; expected an object");
      }
      for (const char* key : {"kind", "site"}) {
        if (auto ok = Expect(item, path, key, Kind::kString); !ok) return ok;
      }
      for (const char* key : {"per_run", "total"}) {
        if (auto ok = Expect(item, path, key, Kind::kNumberOrNull); !ok) return ok;
      }
    }
  }
  if (r.contains("heap_profiles") && r["heap_profiles"].is_object() &&
      r["heap_profiles"].contains("peak_sites")) {
    const json& hp = r["heap_profiles"];
    if (auto ok = Expect(hp, "/heap_profiles", "peak_sites", Kind::kArray); !ok) return ok;
    for (size_t i = 0; i < hp["peak_sites"].size(); ++i) {
      const json& site = hp["peak_sites"][i];
      const std::string path = "/heap_profiles/peak_sites/" + std::to_string(i);
      if (!site.is_object()) {
        return Fail(ErrorCode::kInvalidArgument,
                    "result: " + path + " is " + TypeText(site) + "; expected an object");
      }
      if (auto ok = Expect(site, path, "site", Kind::kString); !ok) return ok;
      if (auto ok = Expect(site, path, "bytes", Kind::kNumberOrNull); !ok) return ok;
    }
  }
  return {};
}

// ---- formatting ----

struct Words {
  std::string_view title_prefix, verdict_label, pass, fail, inconclusive, error;
  std::string_view verification, phase, cpu, rss, heap, fds, threads, status;
  std::string_view baseline, peak, back, above;
  std::string_view checks, check, verdict_col, observed, threshold, detail, no_checks;
  std::string_view what_grew, per_run, at, nothing_grew, peak_heading, in_use;
  std::string_view note;
};

constexpr Words kEnglish{
    .title_prefix = "leakgate: ",
    .verdict_label = "Verdict",
    .pass = "pass",
    .fail = "fail",
    .inconclusive = "inconclusive",
    .error = "error",
    .verification = "Verification",
    .phase = "phase",
    .cpu = "CPU",
    .rss = "RSS",
    .heap = "heap",
    .fds = "fds",
    .threads = "threads",
    .status = "status",
    .baseline = "baseline (idle)",
    .peak = "peak",
    .back = "CPU back to baseline",
    .above = "CPU above baseline",
    .checks = "Checks",
    .check = "check",
    .verdict_col = "verdict",
    .observed = "observed",
    .threshold = "threshold",
    .detail = "detail",
    .no_checks = "No check was judged.",
    .what_grew = "What grew",
    .per_run = "per run",
    .at = "at",
    .nothing_grew = "Nothing grew.",
    .peak_heading = "Heap at the peak of run",
    .in_use = "in use",
    .note = "",
};

constexpr Words kChinese{
    .title_prefix = "leakgate：",
    .verdict_label = "结论",
    .pass = "通过",
    .fail = "失败",
    .inconclusive = "不确定",
    .error = "错误",
    .verification = "验证",
    .phase = "阶段",
    .cpu = "CPU使用率",
    .rss = "内存(RSS)",
    .heap = "堆",
    .fds = "文件描述符",
    .threads = "线程",
    .status = "状态",
    .baseline = "基线(空闲)",
    .peak = "峰值",
    .back = "CPU回落至基线",
    .above = "CPU高于基线",
    .checks = "检查",
    .check = "检查",
    .verdict_col = "结论",
    .observed = "观测值",
    .threshold = "阈值",
    .detail = "说明",
    .no_checks = "没有判定任何检查。",
    .what_grew = "增长来源",
    .per_run = "每次运行",
    .at = "位于",
    .nothing_grew = "没有发现增长。",
    .peak_heading = "堆分配峰值：第",
    .in_use = "在用",
    .note = "注：检查的说明保持英文原文。",
};

std::string_view VerdictWord(const Words& w, std::string_view verdict) {
  if (verdict == "pass") return w.pass;
  if (verdict == "fail") return w.fail;
  if (verdict == "inconclusive") return w.inconclusive;
  if (verdict == "error") return w.error;
  return verdict;
}

void VerificationTable(const json& r, const Words& w, bool zh, std::ostringstream& out) {
  out << "## " << w.verification << "\n\n";
  out << "| " << w.phase << " | " << w.cpu << " | " << w.rss << " | " << w.heap << " | " << w.fds
      << " | " << w.threads << " | " << w.status << " |\n";
  out << "|---|---:|---:|---:|---:|---:|---|\n";
  const json* baseline =
      r.contains("baseline") && r["baseline"].is_object() ? &r["baseline"] : nullptr;
  std::optional<double> base_cpu, base_rss, base_heap;
  if (baseline != nullptr) {
    base_cpu = NumberAt(*baseline, "cpu_pct");
    base_rss = NumberAt(*baseline, "rss_bytes");
    base_heap = NumberAt(*baseline, "heap_bytes");
    out << "| " << w.baseline << " | " << (base_cpu ? Fixed(*base_cpu, 1) + " %" : "—") << " | "
        << Size(*base_rss) << " | " << (base_heap ? Size(*base_heap) : "—") << " | "
        << Count((*baseline)["fds"].get<double>()) << " | "
        << Count((*baseline)["threads"].get<double>()) << " | — |\n";
  }
  const std::optional<double> allowance = IdleCpuAllowance(r);
  for (const json& run : r["runs"]) {
    const std::string label = RunLabel(zh, run);
    const std::optional<double> peak_cpu = NumberAt(run, "peak_cpu_pct");
    const std::optional<double> duration = NumberAt(run, "duration_s");
    out << "| " << label << (zh ? "，运行中" : ", during") << " | "
        << (peak_cpu ? Fixed(*peak_cpu, 1) + " % " + std::string(w.peak) : "—") << " | "
        << Size(run["peak_rss_bytes"].get<double>()) << " " << w.peak << " |  |  |  | "
        << (duration ? Fixed(*duration, 2) + " s" : "") << " |\n";

    const json& after = run["after"];
    const std::optional<double> cooldown = NumberAt(run, "cooldown_s");
    const std::string wait = cooldown ? Fixed(*cooldown, 1) : "?";
    const std::optional<double> cpu = NumberAt(after, "cpu_pct");
    const double rss = after["rss_bytes"].get<double>();
    const std::optional<double> heap = NumberAt(after, "heap_bytes");
    std::string rss_text = Size(rss);
    if (base_rss) rss_text += " (" + SignedSize(rss - *base_rss) + ")";
    std::string heap_text = heap ? Size(*heap) : "—";
    if (heap && base_heap) heap_text += " (" + SignedSize(*heap - *base_heap) + ")";
    std::string status = "—";
    if (cpu && base_cpu && allowance) {
      status = *cpu - *base_cpu <= *allowance ? "✅ " + std::string(w.back)
                                              : "❌ " + std::string(w.above);
    }
    out << "| " << label << (zh ? "，结束后" + wait + "秒" : ", after " + wait + " s") << " | "
        << (cpu ? Fixed(*cpu, 1) + " %" : "—") << " | " << rss_text << " | " << heap_text << " | "
        << Count(after["fds"].get<double>()) << " | " << Count(after["threads"].get<double>())
        << " | " << status << " |\n";
  }
  out << "\n";
}

void ChecksTable(const json& r, const Words& w, std::ostringstream& out) {
  out << "## " << w.checks << "\n\n";
  if (r["checks"].empty()) {
    out << w.no_checks << "\n\n";
    return;
  }
  out << "| " << w.check << " | " << w.verdict_col << " | " << w.observed << " | " << w.threshold
      << " | " << w.detail << " |\n";
  out << "|---|---|---:|---:|---|\n";
  for (const json& check : r["checks"]) {
    const std::string verdict = check["verdict"].get<std::string>();
    out << "| " << Cell(check["name"].get<std::string>()) << " | " << Mark(verdict) << " "
        << VerdictWord(w, verdict) << " | " << CheckValue(check, "observed") << " | "
        << CheckValue(check, "threshold") << " | " << Cell(StringAt(check, "detail")) << " |\n";
  }
  out << "\n";
}

bool IsBytes(std::string_view kind) { return kind == "heap" || kind == "rss"; }

void WhatGrew(const json& r, const Words& w, bool zh, std::ostringstream& out) {
  out << "## " << w.what_grew << "\n\n";
  const json growth = r.value("growth", json::array());
  if (growth.empty()) {
    out << w.nothing_grew << "\n\n";
  } else {
    size_t shown = 0;
    for (const json& item : growth) {
      if (shown == kMaxGrowthItems) break;
      ++shown;
      const std::string kind = item["kind"].get<std::string>();
      const std::optional<double> per_run = NumberAt(item, "per_run");
      const std::optional<double> total = NumberAt(item, "total");
      out << "- " << kind << " `" << item["site"].get<std::string>() << "`";
      if (total) out << " " << (IsBytes(kind) ? SignedSize(*total) : "+" + Count(*total));
      if (per_run) {
        out << " (" << (IsBytes(kind) ? Size(*per_run) : Fixed(*per_run, 2)) << " " << w.per_run
            << ")";
      }
      const std::string location = StringAt(item, "location");
      if (!location.empty()) out << " " << w.at << " `" << location << "`";
      if (item.contains("suppressed") && item["suppressed"].is_string()) {
        out << " — suppressed: " << item["suppressed"].get<std::string>();
      }
      out << "\n";
    }
    if (growth.size() > kMaxGrowthItems) {
      out << "- … " << (growth.size() - kMaxGrowthItems) << " more\n";
    }
    out << "\n";
  }
  if (!r.contains("heap_profiles") || !r["heap_profiles"].is_object()) return;
  const json& hp = r["heap_profiles"];
  if (!hp.contains("peak_sites") || hp["peak_sites"].empty()) return;
  const std::optional<double> peak_run = NumberAt(hp, "peak_run");
  const std::optional<double> peak_bytes = NumberAt(hp, "peak_bytes");
  out << "### " << w.peak_heading << (zh ? "" : " ") << (peak_run ? Count(*peak_run) : "?")
      << (zh ? "次运行" : "");
  if (peak_bytes) out << " (" << Size(*peak_bytes) << " " << w.in_use << ")";
  out << "\n\n";
  size_t shown = 0;
  for (const json& site : hp["peak_sites"]) {
    if (shown++ == kMaxPeakSites) break;
    const std::optional<double> bytes = NumberAt(site, "bytes");
    out << "- " << (bytes ? Size(*bytes) : "?") << " `" << site["site"].get<std::string>() << "`";
    const std::string location = StringAt(site, "location");
    if (!location.empty()) out << " " << w.at << " `" << location << "`";
    out << "\n";
  }
  out << "\n";
}

// Text for XML content and attribute values; characters XML 1.0 forbids become '?'.
std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace

Result<void> ValidateResult(const nlohmann::json& result) { return Validate(result); }

Result<nlohmann::json> ReadResultFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Fail(ErrorCode::kNotFound, "result file " + path + " does not exist");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return Fail(ErrorCode::kIo, "cannot read the result file " + path);
  try {
    return json::parse(text.str());
  } catch (const json::parse_error& e) {
    return Fail(ErrorCode::kParse, "result file " + path + " is not JSON: " + e.what());
  }
}

Result<std::string> RenderMarkdownReport(const nlohmann::json& result, std::string_view lang) {
  if (lang != "en" && lang != "zh") {
    return Fail(ErrorCode::kInvalidArgument,
                "unknown report language \"" + std::string(lang) + "\"; expected en or zh");
  }
  if (auto ok = Validate(result); !ok) return std::unexpected(ok.error());
  const bool zh = lang == "zh";
  const Words& w = zh ? kChinese : kEnglish;
  const std::string verdict = result["verdict"].get<std::string>();
  std::ostringstream out;
  out << "# " << w.title_prefix << Cell(result["scenario"]["name"].get<std::string>()) << " — "
      << Mark(verdict) << " " << VerdictWord(w, verdict) << "\n\n";
  out << "**" << w.verdict_label << (zh ? "：" : ": ") << Mark(verdict) << " "
      << VerdictWord(w, verdict) << "**";
  if (auto code = NumberAt(result, "exit_code")) out << " (exit " << Count(*code) << ")";
  // The summary starts with the verdict the line has just given ("fail: idle_cpu_returns, ...").
  std::string summary = StringAt(result, "summary");
  if (summary.starts_with(verdict + ": ")) summary.erase(0, verdict.size() + 2);
  if (!summary.empty()) out << (zh ? "：" : ": ") << summary;
  out << "\n\n";
  const std::string error = StringAt(result, "error");
  if (!error.empty()) out << "> " << Cell(error) << "\n\n";
  if (zh) out << "> " << w.note << "\n\n";
  VerificationTable(result, w, zh, out);
  ChecksTable(result, w, out);
  WhatGrew(result, w, zh, out);
  std::string text = out.str();
  while (text.size() >= 2 && text.ends_with("\n\n")) text.pop_back();
  return text;
}

Result<std::string> RenderJunitReport(const nlohmann::json& result) {
  if (auto ok = Validate(result); !ok) return std::unexpected(ok.error());
  const std::string scenario = result["scenario"]["name"].get<std::string>();
  const bool error = result["verdict"] == "error";
  int tests = error ? 1 : 0;
  int failures = 0;
  int skipped = 0;
  std::ostringstream cases;
  const std::string classname = XmlEscape("leakgate." + scenario);
  if (error) {
    const std::string message = StringAt(result, "error").empty()
                                    ? std::string("the target or the scenario failed")
                                    : StringAt(result, "error");
    cases << "    <testcase classname=\"" << classname << "\" name=\"target\" time=\"0\">\n"
          << "      <error message=\"" << XmlEscape(message) << "\">" << XmlEscape(message)
          << "</error>\n"
          << "    </testcase>\n";
  }
  for (const json& check : result["checks"]) {
    ++tests;
    const std::string verdict = check["verdict"].get<std::string>();
    const std::string detail = StringAt(check, "detail");
    cases << "    <testcase classname=\"" << classname << "\" name=\""
          << XmlEscape(check["name"].get<std::string>()) << "\" time=\"0\"";
    if (verdict == "fail") {
      ++failures;
      cases << ">\n      <failure message=\""
            << XmlEscape("observed " + CheckValue(check, "observed") + ", threshold " +
                         CheckValue(check, "threshold"))
            << "\">" << XmlEscape(detail) << "</failure>\n    </testcase>\n";
    } else if (verdict != "pass") {
      ++skipped;
      cases << ">\n      <skipped message=\"" << XmlEscape(verdict + ": " + detail)
            << "\"/>\n    </testcase>\n";
    } else {
      cases << "/>\n";
    }
  }
  const std::optional<double> wall = NumberAt(result, "wall_s");
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<testsuites>\n"
      << "  <testsuite name=\"" << XmlEscape("leakgate: " + scenario) << "\" tests=\"" << tests
      << "\" failures=\"" << failures << "\" errors=\"" << (error ? 1 : 0) << "\" skipped=\""
      << skipped << "\" time=\"" << Fixed(wall.value_or(0), 3) << "\">\n"
      << cases.str() << "  </testsuite>\n"
      << "</testsuites>\n";
  return out.str();
}

}  // namespace leakgate::reports
