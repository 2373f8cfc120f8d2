// What the backtest service reports about itself in `GET /metrics`: this process as /proc sees it,
// and a small writer of the Prometheus text exposition format (version 0.0.4).
//
// `ReadProcessSelf` reads /proc/self/status, /proc/self/stat and /proc/self/fd; a figure that
// cannot be read is left empty rather than failing the scrape. `PrometheusText` accumulates
// families in the order they are added, each with its HELP and TYPE lines; label values are
// escaped. Both are plain values; ReadProcessSelf is thread-safe.
#ifndef LEAKGATE_ENGINE_SERVICE_METRICS_H_
#define LEAKGATE_ENGINE_SERVICE_METRICS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace leakgate::engine {

struct ProcessSelf {
  std::optional<uint64_t> resident_bytes;       // VmRSS
  std::optional<uint64_t> peak_resident_bytes;  // VmHWM
  std::optional<uint64_t> threads;              // Threads
  std::optional<uint64_t> open_fds;             // entries of /proc/self/fd
  std::optional<uint64_t> socket_fds;           // of those, the ones pointing at socket:[inode]
  std::optional<double> cpu_seconds;            // utime + stime of all threads
};

ProcessSelf ReadProcessSelf();

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class PrometheusText {
 public:
  // Starts a family: "# HELP name help" and "# TYPE name type" (type "gauge" or "counter").
  void Family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of the current family (integers print without a fraction; NaN and infinities as
  // Prometheus spells them).
  void Sample(double value, const MetricLabels& labels = {});
  // A family with a single unlabelled sample.
  void Gauge(std::string_view name, std::string_view help, double value);
  // "# text" on a line of its own.
  void Comment(std::string_view text);

  const std::string& str() const { return out_; }

 private:
  std::string out_;
  std::string family_;
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_SERVICE_METRICS_H_
