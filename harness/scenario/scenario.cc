#include "harness/scenario/scenario.h"

#include "harness/scenario/json_messages.h"

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <utility>

namespace leakgate::harness {

std::string_view ProfilerName(HeapProfileConfig::Profiler profiler) {
  return profiler == HeapProfileConfig::Profiler::kAgent ? "agent" : "tcmalloc";
}

namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 15> kTopKeys = {
    "schema",       "name",        "description", "target",     "workload",
    "runs",         "warmup_runs", "max_runs",    "baseline_s", "sample_hz",
    "cooldown",     "heap_profile", "cpu_profile", "suppressions", "thresholds"};

// What each load-time name means, for the message when it has no value here.
constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kKnownNames = {{
    {"PORT", "the free port chosen for the scenario"},
    {"OUT", "the output folder, given with --out"},
    {"BIN", "the folder of the leakgate program"},
    {"SCENARIO_DIR", "the folder of the scenario file"},
    {"RUN", "the run index, known only to the workload"},
}};

bool IsIdentifier(std::string_view name) {
  if (name.empty()) return false;
  const auto head = static_cast<unsigned char>(name[0]);
  if (!(std::isalpha(head) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string Child(const std::string& path, std::string_view key) {
  return path + "/" + PointerToken(key);
}

std::string Child(const std::string& path, size_t index) {
  return path + "/" + std::to_string(index);
}


size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The nearest of `candidates` to `word` when it is near enough to be a typo.
std::optional<std::string> NearestName(std::string_view word,
                                       const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& candidate : candidates) {
    const size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (!best) return std::nullopt;
  const size_t allowed = std::max<size_t>(2, std::min(word.size(), best->size()) / 3);
  const bool prefix = word.size() >= 3 && (best->rfind(std::string(word), 0) == 0 ||
                                           std::string(word).rfind(*best, 0) == 0);
  if (best_distance <= allowed || prefix) return best;
  return std::nullopt;
}

std::string UnknownNameHint(std::string_view word, const std::vector<std::string>& candidates) {
  if (auto near = NearestName(word, candidates)) return "; did you mean " + Quote(*near) + "?";
  std::string list;
  for (const auto& candidate : candidates) {
    if (!list.empty()) list += ", ";
    list += candidate;
  }
  return "; expected one of: " + list;
}

// -------------------------------------------------------------------------------------------------

// Reads the fields of one JSON object, reporting problems under its path. Every getter returns the
// default (or nothing) after reporting, so that validation goes on and reports all problems at
// once.
class ObjectReader {
 public:
  ObjectReader(JsonProblems& validation, const json& object, std::string path,
               std::vector<std::string> allowed)
      : v_(validation), object_(object), path_(std::move(path)) {
    for (const auto& [key, value] : object_.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        v_.Add(Child(path_, key), "unknown key " + Quote(key) + UnknownNameHint(key, allowed));
      }
    }
  }

  const std::string& path() const { return path_; }
  std::string PathOf(std::string_view key) const { return Child(path_, key); }
  bool Has(std::string_view key) const { return object_.contains(std::string(key)); }
  const json* Find(std::string_view key) const {
    const auto it = object_.find(std::string(key));
    return it == object_.end() ? nullptr : &*it;
  }
  void Error(std::string_view key, const std::string& what) { v_.Add(PathOf(key), what); }

  std::optional<std::string> String(std::string_view key, bool required, std::string_view what,
                                    bool allow_empty = false) {
    const json* value = Find(key);
    if (value == nullptr) {
      if (required) Error(key, "required: " + std::string(what));
      return std::nullopt;
    }
    if (!value->is_string()) {
      Error(key, "expected " + std::string(what) + ", got " + Describe(*value));
      return std::nullopt;
    }
    std::string text = value->get<std::string>();
    if (text.empty() && !allow_empty) {
      Error(key, "expected " + std::string(what) + ", got an empty string");
      return std::nullopt;
    }
    return text;
  }

  // A number; `low`/`high` bound it, `low_open`/`high_open` exclude the bound itself.
  double Number(std::string_view key, double fallback, double low, bool low_open,
                std::optional<double> high = std::nullopt, bool high_open = false) {
    const json* value = Find(key);
    if (value == nullptr) return fallback;
    const std::string range = std::string(low_open ? "(" : "[") + FormatNumber(low) + ", " +
                              (high ? FormatNumber(*high) + (high_open ? ")" : "]") : "inf)");
    if (!value->is_number()) {
      Error(key, "expected a number in " + range + ", got " + Describe(*value));
      return fallback;
    }
    const double number = value->get<double>();
    const bool below = low_open ? number <= low : number < low;
    const bool above = high && (high_open ? number >= *high : number > *high);
    if (below || above || !std::isfinite(number)) {
      Error(key, "expected a number in " + range + ", got " + value->dump());
      return fallback;
    }
    return number;
  }

  int Integer(std::string_view key, int fallback, int low, std::optional<int> high,
              std::string_view what) {
    const json* value = Find(key);
    if (value == nullptr) return fallback;
    const std::string expected = "expected " + std::string(what) +
                                 " (a whole number >= " + std::to_string(low) +
                                 (high ? " and <= " + std::to_string(*high) : std::string()) + ")";
    const auto number = WholeNumber(*value);
    if (!number || *number < low || (high && *number > *high)) {
      Error(key, expected + ", got " + Describe(*value));
      return fallback;
    }
    return static_cast<int>(*number);
  }

  bool Bool(std::string_view key, bool fallback) {
    const json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) {
      Error(key, "expected true or false, got " + Describe(*value));
      return fallback;
    }
    return value->get<bool>();
  }

  std::vector<std::string> StringArray(std::string_view key, bool required, std::string_view what) {
    std::vector<std::string> out;
    const json* value = Find(key);
    if (value == nullptr) {
      if (required) Error(key, "required: " + std::string(what));
      return out;
    }
    if (!value->is_array() || value->empty()) {
      Error(key, "expected " + std::string(what) + ", got " + Describe(*value));
      return out;
    }
    for (size_t i = 0; i < value->size(); ++i) {
      const json& item = (*value)[i];
      if (!item.is_string()) {
        v_.Add(Child(PathOf(key), i), "expected a string, got " + Describe(item));
        continue;
      }
      out.push_back(item.get<std::string>());
    }
    if (!out.empty() && out.front().empty()) {
      v_.Add(Child(PathOf(key), 0), "expected a program name or path, got an empty string");
    }
    return out;
  }

  std::map<std::string, std::string> StringMap(std::string_view key, std::string_view what) {
    std::map<std::string, std::string> out;
    const json* value = Find(key);
    if (value == nullptr) return out;
    if (!value->is_object()) {
      Error(key, "expected " + std::string(what) + ", got " + Describe(*value));
      return out;
    }
    for (const auto& [name, item] : value->items()) {
      if (!item.is_string()) {
        v_.Add(Child(PathOf(key), name), "expected a string, got " + Describe(item));
        continue;
      }
      out[name] = item.get<std::string>();
    }
    return out;
  }

  // Integers (or one integer) in [low, high].
  std::vector<int> IntegerList(std::string_view key, int low, int high, std::string_view what) {
    std::vector<int> out;
    const json* value = Find(key);
    if (value == nullptr) return out;
    const std::string expected = "expected " + std::string(what) + " (whole numbers in [" +
                                 std::to_string(low) + ", " + std::to_string(high) + "])";
    if (!value->is_array()) {
      const auto number = WholeNumber(*value);
      if (!number || *number < low || *number > high) {
        Error(key, expected + ", got " + Describe(*value));
      } else {
        out.push_back(static_cast<int>(*number));
      }
      return out;
    }
    if (value->empty()) Error(key, expected + ", got an empty array");
    for (size_t i = 0; i < value->size(); ++i) {
      const auto number = WholeNumber((*value)[i]);
      if (!number || *number < low || *number > high) {
        v_.Add(Child(PathOf(key), i), expected + ", got " + Describe((*value)[i]));
        continue;
      }
      out.push_back(static_cast<int>(*number));
    }
    return out;
  }

  // Absent: `fallback`; null: off; else a size.
  std::optional<int64_t> Size(std::string_view key, std::optional<int64_t> fallback) {
    const json* value = Find(key);
    if (value == nullptr) return fallback;
    if (value->is_null()) return std::nullopt;
    const std::string expected =
        "expected a size: a number of bytes or a string such as \"256KiB\" (units B, KiB, MiB, "
        "GiB), or null to turn the check off";
    if (value->is_string()) {
      auto size = ParseSize(value->get<std::string>());
      if (!size) {
        Error(key, expected + "; " + size.error().message);
        return fallback;
      }
      return *size;
    }
    const auto number = WholeNumber(*value);
    if (!number || *number < 0) {
      Error(key, expected + ", got " + Describe(*value));
      return fallback;
    }
    return *number;
  }

  // Absent: `fallback`; null: off; else a count of new resources allowed.
  std::optional<int64_t> Count(std::string_view key, std::optional<int64_t> fallback) {
    const json* value = Find(key);
    if (value == nullptr) return fallback;
    if (value->is_null()) return std::nullopt;
    const auto number = WholeNumber(*value);
    if (!number || *number < 0) {
      Error(key,
            "expected a whole number >= 0 (how many more than at the baseline are allowed), "
            "or null to turn the check off, got " +
                Describe(*value));
      return fallback;
    }
    return *number;
  }

  std::optional<std::string> Pointer(std::string_view key, bool required) {
    auto text = String(key, required, "a JSON Pointer (RFC 6901) such as \"/status\"",
                       /*allow_empty=*/true);
    if (!text) return std::nullopt;
    try {
      json::json_pointer pointer(*text);
      (void)pointer;
    } catch (const json::exception&) {
      Error(key,
            "expected a JSON Pointer (RFC 6901) such as \"/status\" (\"/\" before every "
            "token, \"~0\" for '~', \"~1\" for '/'), got " +
                Quote(*text));
      return std::nullopt;
    }
    return text;
  }

  static std::optional<int64_t> WholeNumber(const json& value) {
    if (value.is_number_integer()) return value.get<int64_t>();
    if (value.is_number_float()) {
      const double number = value.get<double>();
      if (std::isfinite(number) && number == std::floor(number) && std::fabs(number) < 9e15) {
        return static_cast<int64_t>(number);
      }
    }
    return std::nullopt;
  }

  static std::string FormatNumber(double number) {
    std::ostringstream out;
    out << number;
    return out.str();
  }

 private:
  JsonProblems& v_;
  const json& object_;
  std::string path_;
};

// `value` at `path` must be an object; reports otherwise.
bool ExpectObject(JsonProblems& v, const json* value, const std::string& path, std::string_view what,
                  bool required) {
  if (value == nullptr) {
    if (required) v.Add(path, "required: " + std::string(what));
    return false;
  }
  if (!value->is_object()) {
    v.Add(path, "expected " + std::string(what) + ", got " + Describe(*value));
    return false;
  }
  return true;
}

std::optional<std::string> UrlProblem(const std::string& url) {
  const bool http = url.rfind("http://", 0) == 0;
  const bool https = url.rfind("https://", 0) == 0;
  if (!http && !https) return "expected an http:// or https:// URL, got " + Quote(url);
  const std::string rest = url.substr(http ? 7 : 8);
  const std::string authority = rest.substr(0, rest.find('/'));
  if (authority.empty() || authority.front() == ':') {
    return "expected a URL with a host (http://HOST[:PORT]/...), got " + Quote(url);
  }
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    const std::string port = authority.substr(colon + 1);
    int number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || number < 1 ||
        number > 65535) {
      return "expected a port in 1..65535 in " + Quote(url);
    }
  }
  return std::nullopt;
}

std::optional<std::string> Url(ObjectReader& reader, std::string_view key, bool required) {
  auto url = reader.String(key, required, "an http:// URL");
  if (!url) return std::nullopt;
  if (auto problem = UrlProblem(*url)) {
    reader.Error(key, *problem);
    return std::nullopt;
  }
  return url;
}

std::optional<int> SignalNumber(const json& value) {
  if (auto number = ObjectReader::WholeNumber(value)) {
    if (*number >= 1 && *number <= 64) return static_cast<int>(*number);
    return std::nullopt;
  }
  if (!value.is_string()) return std::nullopt;
  std::string name = value.get<std::string>();
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  static const std::map<std::string, int> kSignals = {
      {"TERM", SIGTERM}, {"INT", SIGINT},   {"KILL", SIGKILL}, {"HUP", SIGHUP},
      {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
  const auto it = kSignals.find(name);
  if (it == kSignals.end()) return std::nullopt;
  return it->second;
}

std::optional<HeapMetricsSource> ParseHeap(JsonProblems& v, const json* value,
                                           const std::string& path) {
  if (value != nullptr && value->is_null()) return std::nullopt;  // null: no heap statistics
  if (!ExpectObject(v, value, path,
                    "an object {\"metrics_url\": URL, \"metric\": NAME} naming the Prometheus "
                    "sample with the target's exact heap bytes",
                    false)) {
    return std::nullopt;
  }
  ObjectReader reader(v, *value, path, {"metrics_url", "metric", "cached_metric"});
  HeapMetricsSource heap;
  heap.metrics_url = Url(reader, "metrics_url", true).value_or("");
  heap.metric = reader.String("metric", true, "the name of a Prometheus sample").value_or("");
  heap.cached_metric =
      reader.String("cached_metric", false, "the name of a Prometheus sample").value_or("");
  return heap;
}

ReadyProbe ParseReady(JsonProblems& v, const json* value, const std::string& path) {
  ReadyProbe ready;
  const std::string expected =
      "an object with one of \"http_get\": URL, \"stdout_line\": TEXT, \"stdout_regex\": REGEX or "
      "\"delay_s\": SECONDS (and \"timeout_s\")";
  if (!ExpectObject(v, value, path, expected, true)) return ready;
  ObjectReader reader(v, *value, path,
                      {"http_get", "stdout_line", "stdout_regex", "delay_s", "timeout_s"});
  int ways = 0;
  for (std::string_view key : {"http_get", "stdout_line", "stdout_regex", "delay_s"}) {
    if (reader.Has(key)) ++ways;
  }
  if (ways != 1) {
    v.Add(path,
          "expected exactly one of \"http_get\", \"stdout_line\", \"stdout_regex\", "
          "\"delay_s\", got " +
              std::to_string(ways));
  }
  if (reader.Has("http_get")) {
    ready.kind = ReadyProbe::Kind::kHttpGet;
    ready.http_get = Url(reader, "http_get", true).value_or("");
  } else if (reader.Has("stdout_line")) {
    ready.kind = ReadyProbe::Kind::kStdoutLine;
    ready.stdout_line =
        reader.String("stdout_line", true, "the text of a stdout line").value_or("");
  } else if (reader.Has("stdout_regex")) {
    ready.kind = ReadyProbe::Kind::kStdoutRegex;
    ready.stdout_regex =
        reader.String("stdout_regex", true, "an ECMAScript regular expression").value_or("");
    try {
      std::regex compiled(ready.stdout_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      reader.Error("stdout_regex", "expected an ECMAScript regular expression, got " +
                                       Quote(ready.stdout_regex) + " (" + e.what() + ")");
    }
  } else {
    ready.kind = ReadyProbe::Kind::kDelay;
    ready.delay_s = reader.Number("delay_s", 1, 0, false);
  }
  ready.timeout_s = reader.Number("timeout_s", ready.timeout_s, 0, true);
  return ready;
}

TargetConfig ParseTarget(JsonProblems& v, const json* value, const std::string& path) {
  TargetConfig target;
  const std::string expected =
      "an object with \"spawn\": {\"argv\": [...], \"ready\": {...}} or \"attach\": {\"pid\": N}";
  if (!ExpectObject(v, value, path, expected, true)) return target;
  ObjectReader reader(v, *value, path, {"spawn", "attach"});
  const json* spawn = reader.Find("spawn");
  const json* attach = reader.Find("attach");
  if ((spawn == nullptr) == (attach == nullptr)) {
    v.Add(path, spawn ? "expected exactly one of \"spawn\" and \"attach\", got both"
                      : "expected exactly one of \"spawn\" and \"attach\", got neither");
  }
  if (spawn != nullptr &&
      ExpectObject(v, spawn, reader.PathOf("spawn"), "an object {\"argv\": [...], ...}", true)) {
    ObjectReader spawn_reader(v, *spawn, reader.PathOf("spawn"),
                              {"argv", "env", "cwd", "ready", "stop_signal", "stop_timeout_s",
                               "heap", "include_children"});
    SpawnTargetConfig out;
    out.argv = spawn_reader.StringArray(
        "argv", true, "a non-empty array of strings (the program and its arguments)");
    out.env =
        spawn_reader.StringMap("env", "an object of environment variables {\"NAME\": \"value\"}");
    out.cwd = spawn_reader.String("cwd", false, "a folder").value_or("");
    out.ready = ParseReady(v, spawn_reader.Find("ready"), spawn_reader.PathOf("ready"));
    if (const json* signal = spawn_reader.Find("stop_signal")) {
      if (auto number = SignalNumber(*signal)) {
        out.stop_signal = *number;
      } else {
        spawn_reader.Error(
            "stop_signal",
            "expected a signal name (\"SIGTERM\", \"SIGINT\", \"SIGKILL\", \"SIGHUP\", "
            "\"SIGQUIT\", \"SIGUSR1\", \"SIGUSR2\") or a number in 1..64, got " +
                Describe(*signal));
      }
    }
    out.stop_timeout_s = spawn_reader.Number("stop_timeout_s", out.stop_timeout_s, 0, true);
    out.heap = ParseHeap(v, spawn_reader.Find("heap"), spawn_reader.PathOf("heap"));
    out.include_children = spawn_reader.Bool("include_children", false);
    target.spawn = std::move(out);
  }
  if (attach != nullptr &&
      ExpectObject(v, attach, reader.PathOf("attach"), "an object {\"pid\": N}", true)) {
    ObjectReader attach_reader(v, *attach, reader.PathOf("attach"),
                               {"pid", "heap", "include_children"});
    AttachTargetConfig out;
    const json* pid = attach_reader.Find("pid");
    std::optional<int64_t> number;
    if (pid != nullptr) {
      number = ObjectReader::WholeNumber(*pid);
      if (!number && pid->is_string()) {
        const std::string text = pid->get<std::string>();
        int64_t parsed = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
        if (ec == std::errc() && end == text.data() + text.size()) number = parsed;
      }
    }
    if (pid == nullptr) {
      attach_reader.Error("pid", "required: the process id to attach to (a whole number > 0)");
    } else if (!number || *number <= 0 || *number > std::numeric_limits<int>::max()) {
      attach_reader.Error("pid",
                          "expected a process id (a whole number > 0), got " + Describe(*pid));
    } else {
      out.pid = static_cast<int>(*number);
    }
    out.heap = ParseHeap(v, attach_reader.Find("heap"), attach_reader.PathOf("heap"));
    out.include_children = attach_reader.Bool("include_children", false);
    target.attach = std::move(out);
  }
  return target;
}

std::optional<JsonValueMatch> ParseMatch(JsonProblems& v, const json* value,
                                         const std::string& path) {
  if (!ExpectObject(v, value, path, "an object {\"pointer\": \"/status\", \"in\": [\"done\", ...]}",
                    false)) {
    return std::nullopt;
  }
  ObjectReader reader(v, *value, path, {"pointer", "in"});
  JsonValueMatch match;
  match.pointer = reader.Pointer("pointer", true).value_or("");
  const json* in = reader.Find("in");
  const std::string expected = "a non-empty array of strings or numbers";
  if (in == nullptr) {
    reader.Error("in", "required: " + expected);
  } else if (!in->is_array() || in->empty()) {
    reader.Error("in", "expected " + expected + ", got " + Describe(*in));
  } else {
    for (size_t i = 0; i < in->size(); ++i) {
      const json& item = (*in)[i];
      if (item.is_object() || item.is_array()) {
        v.Add(Child(reader.PathOf("in"), i),
              "expected a string, number, true, false or null, got " + Describe(item));
        continue;
      }
      match.in.push_back(JsonValueText(item));
    }
  }
  return match;
}

HttpStep ParseStep(JsonProblems& v, const json& value, const std::string& path) {
  HttpStep step;
  if (!ExpectObject(v, &value, path, "a step object {\"method\": .., \"path\": ..}", true)) {
    return step;
  }
  ObjectReader reader(v, value, path,
                      {"name", "method", "path", "json", "body", "headers", "expect_status",
                       "capture", "until", "expect", "poll_interval_s", "timeout_s"});
  step.name = reader.String("name", false, "a label for the step").value_or("");
  if (auto method = reader.String("method", false, "an HTTP method")) {
    std::string upper = *method;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    static const std::vector<std::string> kMethods = {"GET",    "POST", "PUT",    "PATCH",
                                                      "DELETE", "HEAD", "OPTIONS"};
    if (std::find(kMethods.begin(), kMethods.end(), upper) == kMethods.end()) {
      reader.Error("method", "expected one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, got " +
                                 Quote(*method));
    } else {
      step.method = upper;
    }
  }
  if (auto target = reader.String("path", true, "a request path starting with \"/\"")) {
    if (target->front() != '/') {
      reader.Error("path", "expected a request path starting with \"/\", got " + Quote(*target));
    }
    step.path = *target;
  }
  if (const json* body = reader.Find("json")) step.json = *body;
  if (reader.Has("body")) {
    step.body = reader.String("body", false, "a string (the raw request body)", true);
  }
  if (reader.Has("json") && reader.Has("body")) {
    v.Add(path, "expected at most one of \"json\" and \"body\", got both");
  }
  step.headers = reader.StringMap("headers", "an object of headers {\"Name\": \"value\"}");
  step.expect_status = reader.IntegerList("expect_status", 100, 599, "HTTP status codes");
  if (const json* capture = reader.Find("capture")) {
    const std::string capture_path = reader.PathOf("capture");
    if (ExpectObject(v, capture, capture_path,
                     "an object {\"name\": \"/json/pointer\"} of values to capture", true)) {
      for (const auto& [name, pointer] : capture->items()) {
        const std::string item_path = Child(capture_path, name);
        if (!IsIdentifier(name)) {
          v.Add(item_path,
                "expected a capture name made of letters, digits and '_' (not starting "
                "with a digit), got " +
                    Quote(name));
          continue;
        }
        if (name == "PORT" || name == "OUT" || name == "BIN" || name == "SCENARIO_DIR" ||
            name == "RUN") {
          v.Add(item_path, "the capture name " + Quote(name) + " is reserved for ${" + name +
                               "}; choose another name");
          continue;
        }
        bool valid = pointer.is_string();
        if (valid) {
          try {
            json::json_pointer parsed(pointer.get<std::string>());
            (void)parsed;
          } catch (const json::exception&) {
            valid = false;
          }
        }
        if (!valid) {
          v.Add(item_path, "expected a JSON Pointer (RFC 6901) such as \"/session_id\", got " +
                               Describe(pointer));
          continue;
        }
        step.capture[name] = pointer.get<std::string>();
      }
    }
  }
  step.until = ParseMatch(v, reader.Find("until"), reader.PathOf("until"));
  step.expect = ParseMatch(v, reader.Find("expect"), reader.PathOf("expect"));
  step.poll_interval_s = reader.Number("poll_interval_s", step.poll_interval_s, 0, true);
  step.timeout_s = reader.Number("timeout_s", step.timeout_s, 0, true);
  if (reader.Has("poll_interval_s") && !reader.Has("until")) {
    reader.Error("poll_interval_s",
                 "only meaningful with \"until\" (polling); remove it or add "
                 "\"until\": {\"pointer\": .., \"in\": [..]}");
  }
  return step;
}

WorkloadConfig ParseWorkload(JsonProblems& v, const json* value, const std::string& path) {
  WorkloadConfig workload;
  const std::string expected =
      "an object with \"http\": {\"base_url\": .., \"steps\": [..]} or \"command\": {\"argv\": "
      "[..]}";
  if (!ExpectObject(v, value, path, expected, true)) return workload;
  ObjectReader reader(v, *value, path, {"http", "command"});
  const json* http = reader.Find("http");
  const json* command = reader.Find("command");
  if ((http == nullptr) == (command == nullptr)) {
    v.Add(path, http ? "expected exactly one of \"http\" and \"command\", got both"
                     : "expected exactly one of \"http\" and \"command\", got neither");
  }
  if (http != nullptr && ExpectObject(v, http, reader.PathOf("http"),
                                      "an object {\"base_url\": .., \"steps\": [..]}", true)) {
    ObjectReader http_reader(v, *http, reader.PathOf("http"), {"base_url", "headers", "steps"});
    HttpWorkloadConfig out;
    out.base_url = Url(http_reader, "base_url", true).value_or("");
    out.headers = http_reader.StringMap("headers", "an object of headers {\"Name\": \"value\"}");
    const json* steps = http_reader.Find("steps");
    const std::string steps_path = http_reader.PathOf("steps");
    if (steps == nullptr) {
      v.Add(steps_path, "required: a non-empty array of steps");
    } else if (!steps->is_array() || steps->empty()) {
      v.Add(steps_path, "expected a non-empty array of steps, got " + Describe(*steps));
    } else {
      for (size_t i = 0; i < steps->size(); ++i) {
        out.steps.push_back(ParseStep(v, (*steps)[i], Child(steps_path, i)));
      }
    }
    workload.http = std::move(out);
  }
  if (command != nullptr &&
      ExpectObject(v, command, reader.PathOf("command"), "an object {\"argv\": [..]}", true)) {
    ObjectReader command_reader(v, *command, reader.PathOf("command"),
                                {"argv", "timeout_s", "env", "cwd", "expect_exit"});
    CommandWorkloadConfig out;
    out.argv = command_reader.StringArray(
        "argv", true, "a non-empty array of strings (the program and its arguments)");
    out.timeout_s = command_reader.Number("timeout_s", out.timeout_s, 0, true);
    out.env =
        command_reader.StringMap("env", "an object of environment variables {\"NAME\": \"value\"}");
    out.cwd = command_reader.String("cwd", false, "a folder").value_or("");
    if (command_reader.Has("expect_exit")) {
      out.expect_exit = command_reader.IntegerList("expect_exit", 0, 255, "exit statuses");
    }
    workload.command = std::move(out);
  }
  return workload;
}

std::optional<HeapProfileConfig> ParseHeapProfile(JsonProblems& v, const json* value,
                                                  const std::string& path) {
  const std::string expected =
      "expected false, true (the agent), \"agent\", \"tcmalloc\", or an object {\"profiler\": "
      "\"agent\"|\"tcmalloc\", \"sample\": SIZE, \"signal\": N}";
  if (value == nullptr || (value->is_boolean() && !value->get<bool>()) || value->is_null()) {
    return std::nullopt;
  }
  HeapProfileConfig config;
  auto profiler_from = [&](const std::string& name, const std::string& where) {
    if (name == "agent") return true;
    if (name == "tcmalloc") {
      config.profiler = HeapProfileConfig::Profiler::kTcmalloc;
      return true;
    }
    v.Add(where, "unknown profiler " + Quote(name) + UnknownNameHint(name, {"agent", "tcmalloc"}) +
                     "; expected \"agent\" (sampled, cheap) or \"tcmalloc\" (exact, slow)");
    return false;
  };
  if (value->is_boolean()) return config;
  if (value->is_string()) {
    if (!profiler_from(value->get<std::string>(), path)) return std::nullopt;
    return config;
  }
  if (!value->is_object()) {
    v.Add(path, expected + ", got " + Describe(*value));
    return std::nullopt;
  }
  ObjectReader r(v, *value, path, {"profiler", "sample", "signal"});
  if (auto name = r.String("profiler", false, "\"agent\" or \"tcmalloc\"")) {
    profiler_from(*name, r.PathOf("profiler"));
  }
  if (r.Has("sample")) {
    if (config.profiler == HeapProfileConfig::Profiler::kTcmalloc) {
      r.Error("sample", "the tcmalloc heap profiler records every allocation and takes no sample "
                        "period; remove \"sample\" or use \"profiler\": \"agent\"");
    } else if (r.Find("sample")->is_null()) {
      r.Error("sample", "expected a size (one sample per SIZE allocated, e.g. \"512KiB\"; 0 "
                        "records every allocation), got null");
    } else {
      config.sample_bytes = r.Size("sample", config.sample_bytes).value_or(config.sample_bytes);
    }
  }
  config.signal = r.Integer("signal", config.signal, 1, 64, "a signal number");
  if (config.signal == SIGKILL || config.signal == SIGSTOP || config.signal == SIGTERM ||
      config.signal == SIGINT) {
    r.Error("signal", "signal " + std::to_string(config.signal) +
                          " stops the target; use a signal the target does not otherwise use, "
                          "such as 12 (SIGUSR2) or 10 (SIGUSR1)");
  }
  return config;
}

CooldownConfig ParseCooldown(JsonProblems& v, const json* value, const std::string& path) {
  CooldownConfig cooldown;
  if (!ExpectObject(
          v, value, path,
          "an object {\"max_s\": .., \"settle_window_s\": .., \"settle_tolerance_pct\": ..}",
          false)) {
    return cooldown;
  }
  ObjectReader reader(v, *value, path, {"max_s", "settle_window_s", "settle_tolerance_pct"});
  cooldown.max_s = reader.Number("max_s", cooldown.max_s, 0, false);
  cooldown.settle_window_s = reader.Number("settle_window_s", cooldown.settle_window_s, 0, true);
  cooldown.settle_tolerance_pct =
      reader.Number("settle_tolerance_pct", cooldown.settle_tolerance_pct, 0, false);
  if (cooldown.max_s > 0 && cooldown.settle_window_s > cooldown.max_s) {
    reader.Error("settle_window_s", "expected at most max_s (" +
                                        ObjectReader::FormatNumber(cooldown.max_s) +
                                        " s): the CPU cannot settle over a longer window");
  }
  return cooldown;
}

Thresholds ParseThresholds(JsonProblems& v, const json* value, const std::string& path) {
  Thresholds thresholds;
  if (!ExpectObject(v, value, path, "an object of thresholds", false)) return thresholds;
  ObjectReader reader(v, *value, path,
                      {"idle_cpu_pct", "rss_per_run", "rss_total", "heap_per_run", "fds", "sockets",
                       "threads", "peak_rss"});
  if (const json* cpu = reader.Find("idle_cpu_pct")) {
    if (cpu->is_null()) {
      thresholds.idle_cpu_pct.reset();
    } else if (!cpu->is_number() || cpu->get<double>() < 0) {
      reader.Error("idle_cpu_pct",
                   "expected a number >= 0 (percentage points of one core above "
                   "the baseline), or null to turn the check off, got " +
                       Describe(*cpu));
    } else {
      thresholds.idle_cpu_pct = cpu->get<double>();
    }
  }
  thresholds.rss_per_run = reader.Size("rss_per_run", thresholds.rss_per_run);
  thresholds.rss_total = reader.Size("rss_total", thresholds.rss_total);
  thresholds.heap_per_run = reader.Size("heap_per_run", thresholds.heap_per_run);
  thresholds.fds = reader.Count("fds", thresholds.fds);
  thresholds.sockets = reader.Count("sockets", thresholds.sockets);
  thresholds.threads = reader.Count("threads", thresholds.threads);
  thresholds.peak_rss = reader.Size("peak_rss", thresholds.peak_rss);
  return thresholds;
}

// -------------------------------------------------------------------------------------------------
// Placeholder expansion over the document, before typed parsing.

void ExpandTree(JsonProblems& v, json& node, const std::string& path,
                const PlaceholderValues& values) {
  if (node.is_string()) {
    auto expanded = ExpandPlaceholders(node.get<std::string>(), values);
    if (!expanded) {
      v.Add(path, expanded.error().message);
    } else {
      node = std::move(*expanded);
    }
  } else if (node.is_object()) {
    for (auto& [key, item] : node.items()) ExpandTree(v, item, Child(path, key), values);
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) ExpandTree(v, node[i], Child(path, i), values);
  }
}

void ExpandDocument(JsonProblems& v, json& document, const PlaceholderValues& load_values) {
  if (json* target = document.contains("target") ? &document["target"] : nullptr) {
    ExpandTree(v, *target, "/target", load_values);
  }
  if (!document.contains("workload") || !document["workload"].is_object()) return;
  json& workload = document["workload"];
  PlaceholderValues run_values = load_values;
  run_values.for_later_pass = true;
  run_values.deferred.insert("RUN");
  for (auto& [key, item] : workload.items()) {
    const std::string path = Child("/workload", key);
    if (key != "http" || !item.is_object()) {
      ExpandTree(v, item, path, run_values);
      continue;
    }
    for (auto& [http_key, http_item] : item.items()) {
      const std::string http_path = Child(path, http_key);
      if (http_key != "steps" || !http_item.is_array()) {
        ExpandTree(v, http_item, http_path, run_values);
        continue;
      }
      PlaceholderValues step_values = run_values;
      for (size_t i = 0; i < http_item.size(); ++i) {
        ExpandTree(v, http_item[i], Child(http_path, i), step_values);
        const json& step = http_item[i];
        if (step.is_object() && step.contains("capture") && step["capture"].is_object()) {
          for (const auto& [name, pointer] : step["capture"].items()) {
            if (IsIdentifier(name)) step_values.deferred.insert(name);
          }
        }
      }
    }
  }
}

std::string ReadEnvironment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value == nullptr ? std::string() : std::string(value);
}

Result<std::string> ReadFileText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return Fail(ErrorCode::kNotFound, "scenario file " + path.string() + " does not exist");
    }
    return Fail(ErrorCode::kIo,
                "cannot read scenario file " + path.string() + ": " + SystemErrorText(error));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return Fail(ErrorCode::kIo, "cannot read scenario file " + path.string());
  }
  return text.str();
}

}  // namespace

// -------------------------------------------------------------------------------------------------




Result<std::string> ExpandPlaceholders(std::string_view text, const PlaceholderValues& values) {
  std::string out;
  out.reserve(text.size());
  const auto append_value = [&](const std::string& value) {
    if (!values.for_later_pass) {
      out += value;
      return;
    }
    for (size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '{') out += '$';
      out += value[i];
    }
  };
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '$') {
      out += text[i++];
      continue;
    }
    if (text.substr(i, 3) == "$${") {
      out += values.for_later_pass ? "$${" : "${";
      i += 3;
      continue;
    }
    if (i + 1 >= text.size() || text[i + 1] != '{') {
      out += text[i++];
      continue;
    }
    const size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Fail(ErrorCode::kInvalidArgument,
                  "unterminated placeholder " + Quote(text.substr(i)) +
                      ": expected ${NAME} (write $${ for a literal ${)");
    }
    const std::string name(text.substr(i + 2, close - i - 2));
    i = close + 1;
    if (name.rfind("env:", 0) == 0) {
      const std::string variable = name.substr(4);
      if (!IsIdentifier(variable)) {
        return Fail(ErrorCode::kInvalidArgument,
                    "malformed placeholder ${" + name +
                        "}: expected ${env:NAME} with NAME made of letters, digits and '_'");
      }
      std::optional<std::string> value;
      if (values.env) {
        value = values.env(variable);
      } else if (std::getenv(variable.c_str()) != nullptr) {
        value = ReadEnvironment(variable);
      }
      if (!value) {
        return Fail(ErrorCode::kInvalidArgument, "environment variable " + variable +
                                                     " is not set (used as ${env:" + variable +
                                                     "}); set it or change the scenario");
      }
      append_value(*value);
      continue;
    }
    if (!IsIdentifier(name)) {
      return Fail(
          ErrorCode::kInvalidArgument,
          "malformed placeholder ${" + name +
              "}: expected ${NAME} with NAME made of letters, digits and '_' (write $${ for "
              "a literal ${)");
    }
    if (const auto it = values.values.find(name); it != values.values.end()) {
      append_value(it->second);
      continue;
    }
    if (values.deferred.contains(name)) {
      out += "${" + name + "}";
      continue;
    }
    for (const auto& [known, meaning] : kKnownNames) {
      if (name == known) {
        return Fail(ErrorCode::kInvalidArgument,
                    "placeholder ${" + name + "} (" + std::string(meaning) + ") has no value here");
      }
    }
    std::vector<std::string> candidates;
    for (const auto& [known, value] : values.values) candidates.push_back(known);
    for (const auto& known : values.deferred) candidates.push_back(known);
    std::string known_list;
    for (const auto& candidate : candidates) known_list += "${" + candidate + "}, ";
    known_list += "${env:NAME}";
    std::string message = "unknown placeholder ${" + name + "}";
    if (auto near = NearestName(name, candidates)) message += "; did you mean ${" + *near + "}?";
    message += " (known here: " + known_list;
    if (values.for_later_pass) message += "; a step may use values captured by earlier steps";
    message += ")";
    return Fail(ErrorCode::kInvalidArgument, message);
  }
  return out;
}

Result<nlohmann::json> ExpandPlaceholdersInJson(const nlohmann::json& value,
                                                const PlaceholderValues& values) {
  if (value.is_string()) {
    auto expanded = ExpandPlaceholders(value.get<std::string>(), values);
    if (!expanded) return std::unexpected(expanded.error());
    return json(std::move(*expanded));
  }
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [key, item] : value.items()) {
      auto expanded = ExpandPlaceholdersInJson(item, values);
      if (!expanded) {
        Error error = expanded.error();
        const std::string token = "/" + PointerToken(key);
        error.message = token + (error.message.front() == '/' ? "" : ": ") + error.message;
        return std::unexpected(std::move(error));
      }
      out[key] = std::move(*expanded);
    }
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (size_t i = 0; i < value.size(); ++i) {
      auto expanded = ExpandPlaceholdersInJson(value[i], values);
      if (!expanded) {
        Error error = expanded.error();
        const std::string token = "/" + std::to_string(i);
        error.message = token + (error.message.front() == '/' ? "" : ": ") + error.message;
        return std::unexpected(std::move(error));
      }
      out.push_back(std::move(*expanded));
    }
    return out;
  }
  return value;
}

std::string JsonValueText(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

Result<void> ApplyOverride(nlohmann::json& document, std::string_view assignment) {
  const std::string quoted = Quote(assignment);
  const size_t equals = assignment.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "--set " + quoted +
                    ": expected KEY=VALUE with KEY a dotted path such as thresholds.rss_per_run");
  }
  const std::string key(assignment.substr(0, equals));
  const std::string value_text(assignment.substr(equals + 1));
  std::vector<std::string> segments;
  for (size_t start = 0;;) {
    const size_t dot = key.find('.', start);
    segments.push_back(
        key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& segment : segments) {
    if (segment.empty()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "--set " + quoted + ": the path " + Quote(key) + " has an empty segment");
    }
  }
  if (!document.is_object()) {
    return Fail(ErrorCode::kInvalidArgument, "--set " + quoted + ": the scenario is not an object");
  }
  const std::vector<std::string> top(kTopKeys.begin(), kTopKeys.end());
  if (std::find(top.begin(), top.end(), segments.front()) == top.end()) {
    return Fail(ErrorCode::kInvalidArgument, "--set " + quoted + ": unknown scenario field " +
                                                 Quote(segments.front()) +
                                                 UnknownNameHint(segments.front(), top));
  }
  json value = json::parse(value_text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = value_text;

  json* node = &document;
  std::string walked;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& segment = segments[i];
    const bool last = i + 1 == segments.size();
    const std::string here = walked.empty() ? "the scenario" : Quote(walked);
    if (node->is_array()) {
      size_t index = 0;
      const auto [end, ec] =
          std::from_chars(segment.data(), segment.data() + segment.size(), index);
      if (ec != std::errc() || end != segment.data() + segment.size() || index >= node->size()) {
        return Fail(ErrorCode::kInvalidArgument,
                    "--set " + quoted + ": " + here + " is an array of " +
                        std::to_string(node->size()) + " elements: expected an index 0.." +
                        std::to_string(node->empty() ? 0 : node->size() - 1) + ", got " +
                        Quote(segment));
      }
      node = &(*node)[index];
    } else if (node->is_object()) {
      if (last) {
        (*node)[segment] = value;
        return {};
      }
      if (!node->contains(segment)) (*node)[segment] = json::object();
      node = &(*node)[segment];
    } else {
      return Fail(ErrorCode::kInvalidArgument, "--set " + quoted + ": " + here + " is " +
                                                   Describe(*node) +
                                                   ", not an object or array, so " +
                                                   Quote(segment) + " cannot be set inside it");
    }
    walked += (walked.empty() ? "" : ".") + segment;
    if (last) *node = value;
  }
  return {};
}

Result<Scenario> LoadScenario(const std::filesystem::path& path, const LoadOptions& options) {
  auto text = ReadFileText(path);
  if (!text) return std::unexpected(text.error());
  return LoadScenarioFromText(*text, path, options);
}

Result<Scenario> LoadScenarioFromText(std::string_view text, const std::filesystem::path& path,
                                      const LoadOptions& options) {
  const std::string file = path.string();
  auto parsed = ParseJsonFile(text, file);
  if (!parsed) return std::unexpected(parsed.error());
  json document = std::move(*parsed);
  if (!document.is_object()) {
    return Fail(ErrorCode::kInvalidArgument,
                file + ": /: expected a scenario object {\"schema\": \"" +
                    std::string(kScenarioSchema) + "\", ...}, got " + Describe(document));
  }

  std::vector<std::pair<std::string, std::string>> override_paths;
  for (const auto& assignment : options.overrides) {
    if (auto applied = ApplyOverride(document, assignment); !applied) {
      return Fail(ErrorCode::kInvalidArgument, file + ": " + applied.error().message);
    }
    std::string pointer;
    const std::string key = assignment.substr(0, assignment.find('='));
    for (size_t start = 0;;) {
      const size_t dot = key.find('.', start);
      pointer += "/" + PointerToken(key.substr(
                           start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    override_paths.emplace_back(pointer, "--set " + assignment);
  }
  if (options.runs) {
    if (*options.runs < 1) {
      return Fail(ErrorCode::kInvalidArgument,
                  "--runs " + std::to_string(*options.runs) + ": expected a whole number >= 1");
    }
    const auto integer_or = [&](const char* key, int64_t fallback) {
      const auto it = document.find(key);
      if (it == document.end()) return fallback;
      return ObjectReader::WholeNumber(*it).value_or(fallback);
    };
    const int64_t old_runs = integer_or("runs", 5);
    const int64_t warmup = integer_or("warmup_runs", 1);
    document["runs"] = *options.runs;
    override_paths.emplace_back("/runs", "--runs " + std::to_string(*options.runs));
    if (document.contains("max_runs")) {
      if (auto old_max = ObjectReader::WholeNumber(document["max_runs"])) {
        // Keep the file's room for extra runs when --runs asks for more than max_runs allows.
        const int64_t headroom = std::max<int64_t>(0, *old_max - old_runs - warmup);
        if (*old_max < *options.runs + warmup) {
          document["max_runs"] = *options.runs + warmup + headroom;
        }
      }
    }
  }

  JsonProblems v(file, override_paths);
  Scenario scenario;
  std::error_code ec;
  scenario.file = std::filesystem::absolute(path, ec).lexically_normal();
  if (ec) scenario.file = path;
  scenario.json = document;

  // Load-time placeholder values.
  PlaceholderValues& values = scenario.placeholders;
  values.env = options.env;
  values.values["SCENARIO_DIR"] = scenario.file.parent_path().string();
  scenario.bin_dir = options.bin_dir;
  if (scenario.bin_dir.empty()) {
    scenario.bin_dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path().string();
  }
  if (!scenario.bin_dir.empty()) values.values["BIN"] = scenario.bin_dir;
  if (!options.out_dir.empty()) {
    scenario.out_dir = std::filesystem::absolute(options.out_dir, ec).lexically_normal().string();
    if (ec) scenario.out_dir = options.out_dir;
    while (scenario.out_dir.size() > 1 && scenario.out_dir.back() == '/')
      scenario.out_dir.pop_back();
    values.values["OUT"] = scenario.out_dir;
  }
  if (options.port) {
    scenario.port = *options.port;
  } else if (document.dump().find("${PORT}") != std::string::npos) {
    auto port = FreePort();
    if (!port) return std::unexpected(port.error());
    scenario.port = *port;
  }
  if (scenario.port > 0) values.values["PORT"] = std::to_string(scenario.port);

  json expanded = document;
  ExpandDocument(v, expanded, values);

  ObjectReader top(v, expanded, "", std::vector<std::string>(kTopKeys.begin(), kTopKeys.end()));
  if (auto schema = top.String("schema", true, "\"" + std::string(kScenarioSchema) + "\"")) {
    if (*schema != kScenarioSchema) {
      top.Error("schema", "expected \"" + std::string(kScenarioSchema) +
                              "\" (the format this "
                              "leakgate reads), got " +
                              Quote(*schema));
    }
  }
  scenario.name =
      top.String("name", false, "a name for the scenario").value_or(scenario.file.stem().string());
  // The result and its reports carry the effective name: a file without "name" gets its default.
  if (scenario.json.is_object() && !scenario.json.contains("name")) {
    scenario.json["name"] = scenario.name;
  }
  scenario.description = top.String("description", false, "a text", true).value_or("");
  scenario.target = ParseTarget(v, top.Find("target"), "/target");
  scenario.workload = ParseWorkload(v, top.Find("workload"), "/workload");
  scenario.runs = top.Integer("runs", scenario.runs, 1, 10000, "the number of judged runs");
  scenario.warmup_runs =
      top.Integer("warmup_runs", scenario.warmup_runs, 0, 10000, "the number of warm-up runs");
  const int least_runs = scenario.runs + scenario.warmup_runs;
  scenario.max_runs = top.Integer("max_runs", 2 * least_runs, 1, 100000, "the most runs");
  if (top.Has("max_runs") && scenario.max_runs < least_runs) {
    top.Error("max_runs", "expected at least runs + warmup_runs = " + std::to_string(least_runs) +
                              ", got " + std::to_string(scenario.max_runs));
  }
  scenario.baseline_s = top.Number("baseline_s", scenario.baseline_s, 0, true);
  scenario.sample_hz = top.Number("sample_hz", scenario.sample_hz, 0, true, 100.0, false);
  scenario.cooldown = ParseCooldown(v, top.Find("cooldown"), "/cooldown");
  scenario.heap_profile = ParseHeapProfile(v, top.Find("heap_profile"), "/heap_profile");
  scenario.cpu_profile = top.Bool("cpu_profile", scenario.cpu_profile);
  if (auto file = top.String("suppressions", false, "the path of a suppressions file")) {
    std::filesystem::path p(*file);
    if (p.is_relative()) p = scenario.file.parent_path() / p;
    scenario.suppressions_file = p.lexically_normal().string();
    if (!std::filesystem::exists(p, ec)) {
      top.Error("suppressions", "no such file: " + scenario.suppressions_file +
                                    " (a relative path is taken from the scenario's folder)");
    }
  }
  scenario.thresholds = ParseThresholds(v, top.Find("thresholds"), "/thresholds");

  if (!v.ok()) {
    std::string message = v.Message();
    if (v.count() > 1)
      message = std::to_string(v.count()) + " problems in the scenario:\n" + message;
    return Fail(ErrorCode::kInvalidArgument, std::move(message));
  }
  return scenario;
}

}  // namespace leakgate::harness
