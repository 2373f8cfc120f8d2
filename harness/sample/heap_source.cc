#include "harness/sample/heap_source.h"

#include <dlfcn.h>
#include <httplib.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <exception>

namespace leakgate::harness {
namespace {

constexpr const char* kAllocatedProperty = "generic.current_allocated_bytes";
constexpr const char* kCachedProperties[] = {
    "tcmalloc.pageheap_free_bytes",
    "tcmalloc.central_cache_free_bytes",
    "tcmalloc.transfer_cache_free_bytes",
    "tcmalloc.thread_cache_free_bytes",
};

InProcessTcmallocHeap::NumericPropertyFn FindTcmalloc() {
  void* symbol = ::dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty");
  return reinterpret_cast<InProcessTcmallocHeap::NumericPropertyFn>(symbol);
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Index just past the closing '}' of a label set starting at `open`, honouring quoted values
// (which may contain '}' and escaped quotes); npos when unterminated.
size_t SkipLabels(std::string_view line, size_t open) {
  bool quoted = false;
  for (size_t i = open + 1; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == '}') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::vector<std::string> HeapSource::warnings() const {
  std::lock_guard<std::mutex> lock(warnings_mutex_);
  return warnings_;
}

void HeapSource::Warn(std::string message) {
  std::lock_guard<std::mutex> lock(warnings_mutex_);
  if (seen_warnings_.insert(message).second) warnings_.push_back(std::move(message));
}

InProcessTcmallocHeap::InProcessTcmallocHeap() : get_property_(FindTcmalloc()) {}

InProcessTcmallocHeap::InProcessTcmallocHeap(NumericPropertyFn get_property)
    : get_property_(get_property) {}

Result<std::optional<HeapSample>> InProcessTcmallocHeap::Read() {
  if (get_property_ == nullptr) {
    Warn(
        "heap statistics unavailable: tcmalloc is not this process's allocator "
        "(MallocExtension_GetNumericProperty not found; link or LD_PRELOAD libtcmalloc)");
    return std::nullopt;
  }
  size_t allocated = 0;
  if (get_property_(kAllocatedProperty, &allocated) == 0) {
    Warn(std::string("heap statistics unavailable: tcmalloc does not know ") + kAllocatedProperty);
    return std::nullopt;
  }
  HeapSample sample;
  sample.source = "tcmalloc";
  sample.allocated_bytes = static_cast<int64_t>(allocated);
  int64_t cached = 0;
  for (const char* property : kCachedProperties) {
    size_t value = 0;
    if (get_property_(property, &value) == 0) {
      Warn(std::string("allocator-cached bytes unavailable: tcmalloc does not know ") + property);
      return sample;
    }
    cached += static_cast<int64_t>(value);
  }
  sample.cached_bytes = cached;
  return sample;
}

Result<std::optional<double>> FindPrometheusValue(std::string_view text, std::string_view metric) {
  size_t line_number = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = TrimSpaces(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    if (!line.starts_with(metric)) continue;
    size_t pos = metric.size();
    if (pos < line.size() && line[pos] != '{' && line[pos] != ' ' && line[pos] != '\t') {
      continue;  // a longer name that starts with `metric`
    }
    if (pos < line.size() && line[pos] == '{') {
      pos = SkipLabels(line, pos);
      if (pos == std::string_view::npos) {
        return Fail(ErrorCode::kParse,
                    "metric " + std::string(metric) + " on line " + std::to_string(line_number) +
                        " has an unterminated label set: '" + std::string(line) + "'");
      }
    }
    std::string_view rest = TrimSpaces(line.substr(pos));
    const std::string value(
        rest.substr(0, rest.find_first_of(" \t")));  // an optional timestamp follows
    char* parse_end = nullptr;
    const double number = std::strtod(value.c_str(), &parse_end);
    if (value.empty() || parse_end != value.c_str() + value.size() || !std::isfinite(number)) {
      return Fail(ErrorCode::kParse, "metric " + std::string(metric) + " on line " +
                                         std::to_string(line_number) + " has value '" + value +
                                         "', expected a finite number");
    }
    return number;
  }
  return std::nullopt;
}

Result<std::unique_ptr<PrometheusMetricsHeap>> PrometheusMetricsHeap::Create(
    PrometheusHeapOptions options) {
  constexpr std::string_view kScheme = "http://";
  std::string_view url = options.url;
  if (!url.starts_with(kScheme)) {
    return Fail(ErrorCode::kInvalidArgument,
                "heap metrics URL '" + options.url +
                    "' is not supported: expected http://HOST[:PORT]/PATH (plain http)");
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "heap metrics URL '" + options.url +
                                                 "' has no host: expected http://HOST[:PORT]/PATH");
  }
  if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    int port = 0;
    const std::string_view digits = authority.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || port <= 0 || port > 65535) {
      return Fail(ErrorCode::kInvalidArgument, "heap metrics URL '" + options.url + "' has port '" +
                                                   std::string(digits) +
                                                   "', expected a number from 1 to 65535");
    }
  }
  if (options.allocated_metric.empty()) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "heap metrics: the allocated-bytes metric name is empty; expected a gauge name such "
        "as backtest_heap_allocated_bytes");
  }
  std::string origin = "http://" + std::string(authority);
  return std::unique_ptr<PrometheusMetricsHeap>(
      new PrometheusMetricsHeap(std::move(options), std::move(origin), path));
}

PrometheusMetricsHeap::PrometheusMetricsHeap(PrometheusHeapOptions options, std::string origin,
                                             std::string path)
    : options_(std::move(options)), origin_(std::move(origin)), path_(std::move(path)) {}

Result<std::optional<HeapSample>> PrometheusMetricsHeap::Read() {
  std::string body;
  try {
    httplib::Client client(origin_);
    // One connection per read, closed afterwards: a kept-alive socket would sit among the target's
    // fds and sockets that the harness itself measures.
    client.set_keep_alive(false);
    client.set_tcp_nodelay(true);
    const auto timeout = std::chrono::duration<double>(options_.timeout_s);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
    client.set_connection_timeout(micros / 1000000, micros % 1000000);
    client.set_read_timeout(micros / 1000000, micros % 1000000);
    httplib::Result response = client.Get(path_);
    if (!response) {
      return Fail(ErrorCode::kUnavailable, "GET " + options_.url + " for heap metrics failed: " +
                                               httplib::to_string(response.error()));
    }
    if (response->status != 200) {
      return Fail(ErrorCode::kUnavailable, "GET " + options_.url + " for heap metrics answered " +
                                               std::to_string(response->status) + ", expected 200");
    }
    body = std::move(response->body);
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kUnavailable,
                "GET " + options_.url + " for heap metrics failed: " + e.what());
  }

  auto allocated = FindPrometheusValue(body, options_.allocated_metric);
  if (!allocated) {
    return Fail(allocated.error().code, options_.url + ": " + allocated.error().message);
  }
  if (!allocated->has_value()) {
    Warn("heap statistics unavailable: metric " + options_.allocated_metric + " not found at " +
         options_.url);
    return std::nullopt;
  }
  HeapSample sample;
  sample.source = "prometheus";
  sample.allocated_bytes = std::llround(**allocated);
  if (!options_.cached_metrics.empty()) {
    double cached = 0;
    bool complete = true;
    for (const std::string& metric : options_.cached_metrics) {
      auto value = FindPrometheusValue(body, metric);
      if (!value) return Fail(value.error().code, options_.url + ": " + value.error().message);
      if (!value->has_value()) {
        Warn("allocator-cached bytes unavailable: metric " + metric + " not found at " +
             options_.url);
        complete = false;
        break;
      }
      cached += **value;
    }
    if (complete) sample.cached_bytes = std::llround(cached);
  }
  return sample;
}

}  // namespace leakgate::harness
