#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "base/units.h"
#include "harness/drive/workload.h"

namespace leakgate::harness {
namespace {

using nlohmann::json;

constexpr double kCancelCheckSeconds = 0.01;
constexpr size_t kExcerptChars = 200;

// The start of a response body on one line, for a failure message.
std::string BodyExcerpt(std::string_view body) {
  if (body.empty()) return "(empty body)";
  return Excerpt(body, kExcerptChars + 3, ControlChars::kSpace);
}

std::string TransportError(httplib::Error error, double timeout_s) {
  switch (error) {
    case httplib::Error::Connection:
      return "could not connect (connection refused or host unreachable)";
    case httplib::Error::ConnectionTimeout:
      return "could not connect within " + FormatSecondsShort(timeout_s);
    case httplib::Error::Read:
      return "no complete answer (connection closed, or nothing within " +
             FormatSecondsShort(timeout_s) + ")";
    case httplib::Error::Write:
      return "could not send the request (connection closed)";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification:
    case httplib::Error::SSLLoadingCerts:
      return "TLS failed (" + httplib::to_string(error) + ")";
    case httplib::Error::Canceled:
      return "cancelled";
    default:
      return "request failed (" + httplib::to_string(error) + ")";
  }
}

std::string ListText(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& value : values) {
    if (!out.empty()) out += ", ";
    out += json(value).dump();
  }
  return out;
}

// scheme://authority and the path prefix of a base URL ("http://h:1/api/" -> "http://h:1", "/api").
std::pair<std::string, std::string> SplitBaseUrl(const std::string& base_url) {
  const size_t scheme_end = base_url.find("://");
  const size_t authority_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const size_t path_start = base_url.find('/', authority_start);
  if (path_start == std::string::npos) return {base_url, ""};
  std::string prefix = base_url.substr(path_start);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {base_url.substr(0, path_start), prefix};
}

// Stops the client's connection as soon as `cancel` is set, so a request in flight returns at once.
// It waits on real time: it only bounds how late a cancel is noticed during an OS wait.
class CancelWatch {
 public:
  CancelWatch(httplib::Client& client, const std::atomic<bool>& cancel)
      : thread_([this, &client, &cancel] {
          std::unique_lock lock(mutex_);
          while (!done_) {
            if (cancel.load()) {
              client.stop();
              return;
            }
            wake_.wait_for(lock, std::chrono::duration<double>(kCancelCheckSeconds));
          }
        }) {}

  ~CancelWatch() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;
};

// Sleeps up to `seconds` on `clock`, waking early when `cancel` is set; false when cancelled.
bool SleepUnlessCancelled(Clock& clock, double seconds, const std::atomic<bool>& cancel) {
  const double until = clock.NowSeconds() + seconds;
  while (!cancel.load()) {
    const double now = clock.NowSeconds();
    if (now >= until) return true;
    clock.SleepFor(std::min(until - now, kCancelCheckSeconds));
  }
  return false;
}

// The value at `pointer` in `document`, or nothing when the pointer names no value.
std::optional<json> ValueAt(const json& document, const std::string& pointer) {
  try {
    const json::json_pointer parsed(pointer);
    if (!document.contains(parsed)) return std::nullopt;
    return document.at(parsed);
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

class RunState {
 public:
  RunState(const HttpWorkloadConfig& config, PlaceholderValues values, int run_index,
           const std::atomic<bool>& cancel, httplib::Client& client, std::string prefix,
           Clock& clock)
      : config_(config),
        values_(std::move(values)),
        run_index_(run_index),
        cancel_(cancel),
        client_(client),
        prefix_(std::move(prefix)),
        clock_(clock) {}

  Result<void> RunStep(size_t index);
  WorkloadRunInfo& info() { return info_; }
  void AddSummary(std::string text) {
    if (!summary_.empty()) summary_ += "; ";
    summary_ += std::move(text);
  }
  const std::string& summary() const { return summary_; }

 private:
  std::unexpected<Error> Cancelled() const {
    return Fail(ErrorCode::kFailedPrecondition,
                "run " + std::to_string(run_index_) + " cancelled during " + label_);
  }
  std::unexpected<Error> StepFail(ErrorCode code, const std::string& what) const {
    return Fail(code, "run " + std::to_string(run_index_) + ", " + label_ + ": " + what);
  }

  const HttpWorkloadConfig& config_;
  PlaceholderValues values_;
  int run_index_;
  const std::atomic<bool>& cancel_;
  httplib::Client& client_;
  std::string prefix_;
  Clock& clock_;
  std::string label_;
  WorkloadRunInfo info_;
  std::string summary_;
};

Result<void> RunState::RunStep(size_t index) {
  const HttpStep& step = config_.steps[index];
  const std::string json_path = "/workload/http/steps/" + std::to_string(index);
  label_ = "step " + std::to_string(index + 1) + " of " + std::to_string(config_.steps.size()) +
           " (" + json_path + ", " + step.method + " " + step.path + ")";
  if (!step.name.empty()) label_ += " \"" + step.name + "\"";

  auto path = ExpandPlaceholders(step.path, values_);
  if (!path) return StepFail(ErrorCode::kInvalidArgument, "path: " + path.error().message);
  const std::string url = config_.base_url + *path;
  label_ = "step " + std::to_string(index + 1) + " of " + std::to_string(config_.steps.size()) +
           " (" + json_path + ", " + step.method + " " + url + ")";
  if (!step.name.empty()) label_ += " \"" + step.name + "\"";

  httplib::Request request;
  request.method = step.method;
  request.path = prefix_ + *path;
  std::map<std::string, std::string> headers = config_.headers;
  for (const auto& [name, value] : step.headers) headers[name] = value;
  for (const auto& [name, value] : headers) {
    auto expanded = ExpandPlaceholders(value, values_);
    if (!expanded) {
      return StepFail(ErrorCode::kInvalidArgument,
                      "header " + name + ": " + expanded.error().message);
    }
    request.headers.emplace(name, *expanded);
  }
  if (step.json) {
    auto body = ExpandPlaceholdersInJson(*step.json, values_);
    if (!body) return StepFail(ErrorCode::kInvalidArgument, "json body: " + body.error().message);
    request.body = body->dump();
    if (!request.has_header("Content-Type")) request.set_header("Content-Type", "application/json");
  } else if (step.body) {
    auto body = ExpandPlaceholders(*step.body, values_);
    if (!body) return StepFail(ErrorCode::kInvalidArgument, "body: " + body.error().message);
    request.body = std::move(*body);
    if (!request.has_header("Content-Type")) {
      request.set_header("Content-Type", "text/plain; charset=utf-8");
    }
  }

  const bool wants_json = !step.capture.empty() || step.until || step.expect;
  // The socket timeouts below are real OS waits; their limits come from this deadline.
  const double deadline = clock_.NowSeconds() + step.timeout_s;
  int polls = 0;
  std::optional<std::string> last_value;
  httplib::Response response;
  json document;
  while (true) {
    if (cancel_.load()) return Cancelled();
    const double remaining = std::max(0.001, deadline - clock_.NowSeconds());
    client_.set_read_timeout(std::chrono::duration<double>(remaining));
    client_.set_write_timeout(std::chrono::duration<double>(remaining));
    client_.set_connection_timeout(std::chrono::duration<double>(std::min(remaining, 10.0)));
    httplib::Result result = client_.send(request);
    ++polls;
    ++info_.requests;
    if (!result) {
      if (cancel_.load()) return Cancelled();
      return StepFail(ErrorCode::kUnavailable, TransportError(result.error(), step.timeout_s));
    }
    response = *result;
    const bool status_ok = step.expect_status.empty()
                               ? response.status >= 200 && response.status < 300
                               : std::find(step.expect_status.begin(), step.expect_status.end(),
                                           response.status) != step.expect_status.end();
    if (!status_ok) {
      std::string expected;
      if (step.expect_status.empty()) {
        expected = "a 2xx status";
      } else {
        for (int status : step.expect_status) {
          expected += (expected.empty() ? "" : " or ") + std::to_string(status);
        }
      }
      return StepFail(ErrorCode::kTargetFailed,
                      "status " + std::to_string(response.status) + ", expected " + expected +
                          (polls > 1 ? " (poll " + std::to_string(polls) + ")" : "") +
                          "; body: " + BodyExcerpt(response.body));
    }
    if (wants_json) {
      document = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
      if (document.is_discarded()) {
        return StepFail(ErrorCode::kTargetFailed,
                        "the response (status " + std::to_string(response.status) +
                            ") is not JSON; body: " + BodyExcerpt(response.body));
      }
    }
    if (!step.until) break;
    const auto value = ValueAt(document, step.until->pointer);
    if (!value) {
      return StepFail(ErrorCode::kTargetFailed, "until: the response has no value at " +
                                                    step.until->pointer +
                                                    "; body: " + BodyExcerpt(response.body));
    }
    last_value = JsonValueText(*value);
    if (Contains(step.until->in, *last_value)) break;
    const double left = deadline - clock_.NowSeconds();
    if (left <= 0) {
      return StepFail(ErrorCode::kTargetFailed,
                      "until: " + step.until->pointer + " was still " + json(*last_value).dump() +
                          " after " + FormatSecondsShort(step.timeout_s) + " (" +
                          std::to_string(polls) +
                          " polls); expected one of " + ListText(step.until->in) +
                          "; last body: " + BodyExcerpt(response.body));
    }
    if (!SleepUnlessCancelled(clock_, std::min(step.poll_interval_s, left), cancel_)) {
      return Cancelled();
    }
  }

  if (step.expect) {
    const auto value = ValueAt(document, step.expect->pointer);
    if (!value) {
      return StepFail(ErrorCode::kTargetFailed, "expect: the response has no value at " +
                                                    step.expect->pointer +
                                                    "; body: " + BodyExcerpt(response.body));
    }
    if (!Contains(step.expect->in, JsonValueText(*value))) {
      return StepFail(ErrorCode::kTargetFailed, "expect: " + step.expect->pointer + " is " +
                                                    value->dump() + ", expected one of " +
                                                    ListText(step.expect->in) +
                                                    "; body: " + BodyExcerpt(response.body));
    }
  }
  for (const auto& [name, pointer] : step.capture) {
    const auto value = ValueAt(document, pointer);
    if (!value) {
      return StepFail(ErrorCode::kTargetFailed, "capture " + name +
                                                    ": the response has no value at " + pointer +
                                                    "; body: " + BodyExcerpt(response.body));
    }
    const std::string text = JsonValueText(*value);
    values_.values[name] = text;
    info_.captured[name] = text;
  }

  std::string summary = step.method + " " + *path + " " + std::to_string(response.status);
  if (polls > 1) summary += " x" + std::to_string(polls);
  if (last_value) summary += " -> " + *last_value;
  AddSummary(std::move(summary));
  return {};
}

}  // namespace

HttpWorkload::HttpWorkload(HttpWorkloadConfig config, PlaceholderValues values, Clock& clock)
    : config_(std::move(config)), values_(std::move(values)), clock_(clock) {
  // Strings from a scenario were expanded once at load time; this is the final pass.
  values_.for_later_pass = false;
  values_.deferred.clear();
  while (!config_.base_url.empty() && config_.base_url.back() == '/') config_.base_url.pop_back();
}

Result<WorkloadRunInfo> HttpWorkload::Run(int run_index, const std::atomic<bool>& cancel) {
  const double start = clock_.NowSeconds();
  if (cancel.load()) {
    return Fail(ErrorCode::kFailedPrecondition,
                "run " + std::to_string(run_index) + " cancelled before it started");
  }
  if (config_.steps.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "the HTTP workload has no steps");
  }
  PlaceholderValues values = values_;
  values.values["RUN"] = std::to_string(run_index);
  auto base_url = ExpandPlaceholders(config_.base_url, values);
  if (!base_url) {
    return Fail(ErrorCode::kInvalidArgument, "base_url: " + base_url.error().message);
  }
  auto [scheme_host_port, prefix] = SplitBaseUrl(*base_url);

  Result<WorkloadRunInfo> outcome;
  {
    // One client, hence one keep-alive connection, per run: destroyed (closed) before Run returns.
    httplib::Client client(scheme_host_port);
    if (!client.is_valid()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "base_url " + *base_url + ": not a URL the HTTP client can use");
    }
    client.set_tcp_nodelay(true);
    client.set_keep_alive(true);
    HttpWorkloadConfig expanded = config_;
    expanded.base_url = *base_url;
    RunState state(expanded, values, run_index, cancel, client, prefix, clock_);
    {
      CancelWatch watch(client, cancel);
      for (size_t i = 0; i < config_.steps.size(); ++i) {
        if (auto step = state.RunStep(i); !step) {
          outcome = std::unexpected(step.error());
          break;
        }
      }
    }
    client.stop();
    if (outcome) {
      outcome = std::move(state.info());
      outcome->description = state.summary();
    }
  }
  if (outcome) outcome->duration_s = clock_.NowSeconds() - start;
  return outcome;
}

std::string HttpWorkload::Describe() const {
  return "HTTP: " + std::to_string(config_.steps.size()) +
         (config_.steps.size() == 1 ? " step" : " steps") + " against " + config_.base_url;
}

}  // namespace leakgate::harness
