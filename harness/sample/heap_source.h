// Sources of exact heap statistics (bytes in use, bytes the allocator caches) for a target, behind
// one small interface in the manner of Google Benchmark's MemoryManager, so that the sampler and
// the runner do not care where the numbers come from:
//   - InProcessTcmallocHeap: this process's tcmalloc, through MallocExtension_GetNumericProperty;
//   - PrometheusMetricsHeap: gauges a target exports on an HTTP /metrics endpoint (text format);
//   - NoHeap: a target without heap statistics.
// Other sources implement the same interface, e.g. HeapProfileSource (heap_profile_source.h): the
// in-use totals of gperftools heap profiles dumped by a target run with tcmalloc preloaded.
//
// A source never invents a number: when it has none it answers std::nullopt and warnings() says
// why. Each object is used by one thread at a time (warnings() may be called from any thread).
// Sources own no target; PrometheusMetricsHeap opens one short HTTP connection per Read() and keeps
// none.
#ifndef LEAKGATE_HARNESS_SAMPLE_HEAP_SOURCE_H_
#define LEAKGATE_HARNESS_SAMPLE_HEAP_SOURCE_H_

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "harness/sample/sample.h"

namespace leakgate::harness {

class HeapSource {
 public:
  virtual ~HeapSource() = default;

  // Success: the current statistics, or std::nullopt when this source has none to give (tcmalloc is
  // not the allocator, the metric is not exported); warnings() then says why. Failure: the source
  // could not be asked or its answer was not understood (kUnavailable when the target did not
  // answer, kParse for a malformed value); the message names the URL or property.
  virtual Result<std::optional<HeapSample>> Read() = 0;

  // A short name for reports: "tcmalloc", "prometheus", "none".
  virtual std::string_view name() const = 0;

  // The heap profile written by the latest Read(), for sources that dump profiles
  // (heap_profile_source.h, heap_attribution.h); "" for the others or before the first Read().
  virtual std::string LastProfile() const { return {}; }

  // Distinct explanations of missing numbers collected so far, oldest first.
  std::vector<std::string> warnings() const;

 protected:
  void Warn(std::string message);  // records `message` once, however often it recurs

 private:
  mutable std::mutex warnings_mutex_;
  std::vector<std::string> warnings_;
  std::set<std::string> seen_warnings_;
};

// The heap of the calling process when tcmalloc (gperftools) is its allocator:
// allocated = generic.current_allocated_bytes; cached = tcmalloc.pageheap_free_bytes +
// central_cache_free_bytes + transfer_cache_free_bytes + thread_cache_free_bytes (nullopt, with a
// warning, if any of the four is unknown).
class InProcessTcmallocHeap : public HeapSource {
 public:
  // The C entry point of gperftools' MallocExtension: returns non-zero and sets *value when the
  // property is known.
  using NumericPropertyFn = int (*)(const char* property, size_t* value);

  // Finds MallocExtension_GetNumericProperty with dlsym(RTLD_DEFAULT): present when tcmalloc is
  // linked in or LD_PRELOADed.
  InProcessTcmallocHeap();
  // Uses `get_property` (nullptr behaves as if tcmalloc were absent); for tests.
  explicit InProcessTcmallocHeap(NumericPropertyFn get_property);

  bool available() const { return get_property_ != nullptr; }
  // nullopt (with a warning) when tcmalloc is absent or does not know
  // generic.current_allocated_bytes.
  Result<std::optional<HeapSample>> Read() override;
  std::string_view name() const override { return "tcmalloc"; }

 private:
  NumericPropertyFn get_property_;
};

struct PrometheusHeapOptions {
  std::string url;  // "http://127.0.0.1:8080/metrics"; only plain http
  std::string allocated_metric = "backtest_heap_allocated_bytes";
  // Gauges whose sum is the allocator's cached bytes (e.g. {"backtest_heap_pageheap_free_bytes"});
  // empty: cached bytes are not reported.
  std::vector<std::string> cached_metrics;
  double timeout_s = 2.0;
};

// Reads heap gauges from a target's Prometheus text endpoint. Each Read() is one GET on a fresh
// connection that is closed afterwards, so the measured target holds no socket for the harness
// between samples.
class PrometheusMetricsHeap : public HeapSource {
 public:
  // kInvalidArgument when the URL is not "http://HOST[:PORT]/PATH" or the metric name is empty.
  static Result<std::unique_ptr<PrometheusMetricsHeap>> Create(PrometheusHeapOptions options);

  // kUnavailable when the GET fails or answers other than 200; nullopt (with a warning naming the
  // metric and URL) when the allocated gauge is absent; kParse when its value is not a number.
  Result<std::optional<HeapSample>> Read() override;
  std::string_view name() const override { return "prometheus"; }

 private:
  PrometheusMetricsHeap(PrometheusHeapOptions options, std::string origin, std::string path);

  PrometheusHeapOptions options_;
  std::string origin_;  // "http://host:port"
  std::string path_;    // "/metrics"
};

// A target without heap statistics: Read() always answers std::nullopt.
class NoHeap : public HeapSource {
 public:
  Result<std::optional<HeapSample>> Read() override { return std::nullopt; }
  std::string_view name() const override { return "none"; }
};

// The value of the first sample of `metric` (with or without labels) in Prometheus text exposition
// format; nullopt when no sample has that name. kParse (naming the metric and line) when its value
// is not a number.
Result<std::optional<double>> FindPrometheusValue(std::string_view text, std::string_view metric);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SAMPLE_HEAP_SOURCE_H_
