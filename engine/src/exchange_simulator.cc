#include "engine/exchange_simulator.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <utility>

#include "engine/csv_loader.h"

namespace leakgate::engine {
namespace {

constexpr std::string_view kCodeOk = "00000";
constexpr std::string_view kCodeMissingParameter = "40019";
constexpr std::string_view kCodeBadParameter = "40020";
constexpr std::string_view kCodeUnknownSymbol = "40034";
constexpr std::string_view kCodeTransient = "50001";
constexpr std::string_view kProductTypes[] = {"USDT-FUTURES", "COIN-FUTURES", "USDC-FUTURES"};
constexpr std::string_view kJson = "application/json";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void SendJson(httplib::Response& response, int status, const nlohmann::json& body) {
  response.status = status;
  response.set_content(body.dump(), std::string(kJson));
}

void SendError(httplib::Response& response, int status, std::string_view code, std::string msg) {
  SendJson(response, status,
           {{"code", code}, {"msg", std::move(msg)}, {"requestTime", NowMs()}, {"data", nullptr}});
}

bool IsSyntheticSymbolName(std::string_view symbol) {
  if (symbol.size() < 2 || symbol.size() > 20) return false;
  return std::all_of(symbol.begin(), symbol.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string JoinNames(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// Parses a non-negative integer query parameter; on failure fills `response` and returns nullopt.
std::optional<int64_t> RequiredMillis(const httplib::Request& request, const std::string& name,
                                      httplib::Response& response) {
  if (!request.has_param(name)) {
    SendError(response, 400, kCodeMissingParameter,
              "Parameter " + name + " cannot be empty: pass milliseconds since the epoch");
    return std::nullopt;
  }
  const std::string text = request.get_param_value(name);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || value < 0) {
    SendError(response, 400, kCodeBadParameter,
              "Parameter " + name + " error: '" + text +
                  "' is not a non-negative integer number of milliseconds since the epoch");
    return std::nullopt;
  }
  return value;
}

void AppendNumber(std::string& out, double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  out += '"';
  out.append(buffer, ec == std::errc() ? end : buffer);
  out += '"';
}

void AppendNumber(std::string& out, int64_t value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  out += '"';
  out.append(buffer, ec == std::errc() ? end : buffer);
  out += '"';
}

// The smallest positive gap between consecutive bars, matched to a known timeframe.
Result<Timeframe> InferTimeframe(const KlineSeries& bars, const std::string& path) {
  int64_t gap = std::numeric_limits<int64_t>::max();
  for (size_t i = 1; i < bars.size(); ++i) {
    if (bars[i].ts_ms > bars[i - 1].ts_ms) gap = std::min(gap, bars[i].ts_ms - bars[i - 1].ts_ms);
  }
  if (gap == std::numeric_limits<int64_t>::max()) {
    return Fail(ErrorCode::kInvalidArgument,
                "CSV source " + path +
                    " has fewer than two bars, so its granularity cannot be inferred: set "
                    "CsvSymbolSource::granularity");
  }
  for (std::string_view name : KnownTimeframeNames()) {
    Result<Timeframe> timeframe = ParseTimeframe(name);
    if (timeframe && timeframe->ms == gap) return *timeframe;
  }
  return Fail(ErrorCode::kInvalidArgument,
              "CSV source " + path + ": the smallest gap between bars is " + std::to_string(gap) +
                  " ms, which is no known granularity (" + JoinNames(KnownTimeframeNames()) +
                  "); set CsvSymbolSource::granularity");
}

}  // namespace

ExchangeSimulator::ExchangeSimulator(ExchangeSimulatorOptions options)
    : options_(std::move(options)), market_(options_.market) {}

ExchangeSimulator::~ExchangeSimulator() { Stop(); }

Result<void> ExchangeSimulator::Start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (server_ != nullptr) return {};

  std::map<std::string, CsvSeries, std::less<>> csv_series;
  for (const CsvSymbolSource& source : options_.csv_sources) {
    Result<KlineSeries> bars = LoadKlinesCsv(source.path);
    if (!bars) return std::unexpected(bars.error());
    Result<Timeframe> timeframe = source.granularity.empty() ? InferTimeframe(*bars, source.path)
                                                             : ParseTimeframe(source.granularity);
    if (!timeframe) {
      return Fail(timeframe.error().code,
                  "CSV source for symbol " + source.symbol + ": " + timeframe.error().message);
    }
    csv_series[source.symbol] = CsvSeries{*std::move(timeframe), *std::move(bars)};
  }
  csv_series_ = std::move(csv_series);

  auto server = std::make_unique<httplib::Server>();
  const size_t workers = static_cast<size_t>(std::max(1, options_.worker_threads));
  server->new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  // Without TCP_NODELAY each keep-alive response waits for the peer's delayed ACK (about 40 ms).
  server->set_tcp_nodelay(true);
  // httplib's default socket options set SO_REUSEPORT, which lets a second server bind a port that
  // is in use and take a share of its connections; a busy port must be an error instead.
  server->set_socket_options([](socket_t socket) {
    int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // The default keep-alive timeout (5 s) is also how long stop() waits for an idle connection, and
  // the default limit of 5 requests per connection would make clients reconnect all the time.
  server->set_keep_alive_timeout(std::max<time_t>(1, options_.keep_alive_timeout.count()));
  server->set_keep_alive_max_count(std::numeric_limits<int>::max());
  server->Get(std::string(kCandlesPath),
              [this](const httplib::Request& request, httplib::Response& response) {
                HandleCandles(request, response);
              });
  server->Get(std::string(kServerTimePath),
              [this](const httplib::Request& request, httplib::Response& response) {
                HandleServerTime(request, response);
              });
  server->set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (response.status == 404) {
      SendError(response, 404, "40404",
                "no endpoint " + request.path + "; this exchange serves " +
                    std::string(kCandlesPath) + " and " + std::string(kServerTimePath));
    }
  });
  server->set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(response, 500, "50000", "internal error: " + what);
      });

  int port = 0;
  if (options_.port == 0) {
    port = server->bind_to_any_port(options_.host);
  } else if (server->bind_to_port(options_.host, options_.port)) {
    port = options_.port;
  } else {
    port = -1;
  }
  if (port <= 0) {
    return Fail(ErrorCode::kUnavailable,
                "exchange simulator cannot bind " + options_.host + ":" +
                    std::to_string(options_.port) +
                    " (address in use or not local?); use port 0 for any free port");
  }

  httplib::Server* raw = server.get();
  auto listener_done = std::make_shared<std::atomic<bool>>(false);
  std::thread listener([raw, listener_done] {
    raw->listen_after_bind();
    listener_done->store(true);
  });
  // httplib 0.11 has no "wait until ready"; is_running() turns true as soon as the accept loop
  // starts.
  while (!raw->is_running() && !listener_done->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!raw->is_running()) {
    listener.join();
    return Fail(ErrorCode::kInternal, "exchange simulator could not listen on " + options_.host +
                                          ":" + std::to_string(port));
  }
  server_ = std::move(server);
  listener_ = std::move(listener);
  port_.store(port);
  return {};
}

void ExchangeSimulator::Stop() {
  std::lock_guard lock(lifecycle_mutex_);
  if (server_ == nullptr) return;
  server_->stop();
  if (listener_.joinable()) listener_.join();
  server_.reset();
  port_.store(0);
}

bool ExchangeSimulator::IsRunning() const {
  std::lock_guard lock(lifecycle_mutex_);
  return server_ != nullptr && server_->is_running();
}

std::string ExchangeSimulator::base_url() const {
  return "http://" + options_.host + ":" + std::to_string(port_.load());
}

void ExchangeSimulator::HandleServerTime(const httplib::Request&, httplib::Response& response) {
  pings_.fetch_add(1);
  if (options_.latency.count() > 0) std::this_thread::sleep_for(options_.latency);
  const int64_t now = NowMs();
  SendJson(response, 200,
           {{"code", kCodeOk},
            {"msg", "success"},
            {"requestTime", now},
            {"data", {{"serverTime", std::to_string(now)}}}});
}

bool ExchangeSimulator::InjectFailure(uint64_t number, httplib::Response& response) {
  if (options_.permanent_failure_status != 0) {
    failures_injected_.fetch_add(1);
    SendError(response, options_.permanent_failure_status, options_.permanent_failure_code,
              options_.permanent_failure_msg);
    return true;
  }
  bool fail =
      number <= static_cast<uint64_t>(std::max<int64_t>(0, options_.fail_first_n_candle_requests));
  if (options_.fail_every_nth > 0 && number % static_cast<uint64_t>(options_.fail_every_nth) == 0) {
    fail = true;
  }
  if (options_.failure_probability > 0) {
    const double draw =
        static_cast<double>(SplitMix64(options_.seed ^ SplitMix64(number)) >> 11) * 0x1.0p-53;
    if (draw < options_.failure_probability) fail = true;
  }
  if (!fail) return false;
  failures_injected_.fetch_add(1);
  SendError(
      response, options_.transient_failure_status, kCodeTransient,
      "service temporarily unavailable (request " + std::to_string(number) + "), retry later");
  return true;
}

void ExchangeSimulator::HandleCandles(const httplib::Request& request,
                                      httplib::Response& response) {
  const uint64_t number = candle_requests_.fetch_add(1) + 1;
  if (options_.latency.count() > 0) std::this_thread::sleep_for(options_.latency);
  if (InjectFailure(number, response)) return;

  auto reject = [&](std::string_view code, std::string msg) {
    bad_requests_.fetch_add(1);
    SendError(response, 400, code, std::move(msg));
  };

  if (!request.has_param("symbol") || request.get_param_value("symbol").empty()) {
    return reject(kCodeMissingParameter, "Parameter symbol cannot be empty");
  }
  const std::string symbol = request.get_param_value("symbol");
  if (!request.has_param("granularity")) {
    return reject(kCodeMissingParameter, "Parameter granularity cannot be empty: one of " +
                                             JoinNames(KnownTimeframeNames()));
  }
  const std::string granularity = request.get_param_value("granularity");
  Result<Timeframe> timeframe = ParseTimeframe(granularity);
  if (!timeframe) {
    return reject(kCodeBadParameter,
                  "Parameter granularity error: '" + granularity +
                      "' is unknown; known granularities: " + JoinNames(KnownTimeframeNames()));
  }
  std::optional<int64_t> start_time = RequiredMillis(request, "startTime", response);
  if (!start_time) return static_cast<void>(bad_requests_.fetch_add(1));
  std::optional<int64_t> end_time = RequiredMillis(request, "endTime", response);
  if (!end_time) return static_cast<void>(bad_requests_.fetch_add(1));
  if (*end_time < *start_time) {
    return reject(kCodeBadParameter, "Parameter endTime error: endTime " +
                                         std::to_string(*end_time) + " is before startTime " +
                                         std::to_string(*start_time));
  }
  int64_t limit = kDefaultLimit;
  if (request.has_param("limit")) {
    const std::string text = request.get_param_value("limit");
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty() || limit < 1 ||
        limit > kMaxLimit) {
      return reject(kCodeBadParameter, "Parameter limit error: '" + text +
                                           "' must be an integer from 1 to " +
                                           std::to_string(kMaxLimit));
    }
  }
  if (request.has_param("productType")) {
    const std::string product_type = request.get_param_value("productType");
    const bool known =
        std::any_of(std::begin(kProductTypes), std::end(kProductTypes),
                    [&](std::string_view p) { return EqualsIgnoreCase(p, product_type); });
    if (!known) {
      return reject(kCodeBadParameter, "Parameter productType error: '" + product_type +
                                           "' is unknown; known: " + JoinNames(kProductTypes));
    }
  }

  KlineSeries bars;
  if (auto csv = csv_series_.find(symbol); csv != csv_series_.end()) {
    if (csv->second.timeframe.ms != timeframe->ms) {
      return reject(kCodeBadParameter, "Parameter granularity error: symbol " + symbol +
                                           " is only available at granularity " +
                                           csv->second.timeframe.name + ", not " + granularity);
    }
    const KlineSeries& series = csv->second.bars;
    auto first = std::lower_bound(series.begin(), series.end(), *start_time,
                                  [](const Kline& k, int64_t ts) { return k.ts_ms < ts; });
    for (auto it = first;
         it != series.end() && it->ts_ms <= *end_time && static_cast<int64_t>(bars.size()) < limit;
         ++it) {
      bars.push_back(*it);
    }
  } else {
    const bool listed =
        options_.symbol_allow_list.empty()
            ? IsSyntheticSymbolName(symbol)
            : std::find(options_.symbol_allow_list.begin(), options_.symbol_allow_list.end(),
                        symbol) != options_.symbol_allow_list.end();
    if (!options_.serve_synthetic || !listed) {
      return reject(kCodeUnknownSymbol, "Parameter symbol error: symbol '" + symbol +
                                            "' does not exist on this exchange");
    }
    const int64_t tf = timeframe->ms;
    int64_t first_bar = *start_time / tf * tf;
    if (first_bar < *start_time) {
      first_bar = first_bar <= std::numeric_limits<int64_t>::max() - tf
                      ? first_bar + tf
                      : std::numeric_limits<int64_t>::max();
    }
    int64_t end_exclusive =
        *end_time == std::numeric_limits<int64_t>::max() ? *end_time : *end_time + 1;
    if (first_bar <= (std::numeric_limits<int64_t>::max() - tf * limit)) {
      end_exclusive = std::min(end_exclusive, first_bar + tf * limit);
    }
    if (first_bar < end_exclusive) {
      Result<KlineSeries> generated =
          market_.Generate(symbol, *timeframe, first_bar, end_exclusive);
      if (!generated) {
        return reject(kCodeBadParameter, "Parameter error: " + generated.error().message);
      }
      bars = *std::move(generated);
    }
  }

  std::vector<size_t> order(bars.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (options_.duplicate_rows) {
    std::vector<size_t> twice;
    twice.reserve(order.size() * 2);
    for (size_t i : order) twice.insert(twice.end(), {i, i});
    order = std::move(twice);
  }
  if (options_.shuffle_rows) {
    std::mt19937_64 rng(SplitMix64(options_.seed ^ number));
    std::shuffle(order.begin(), order.end(), rng);
  }

  std::string body;
  body.reserve(96 + order.size() * 140);
  body += R"({"code":"00000","msg":"success","requestTime":)";
  body += std::to_string(NowMs());
  body += R"(,"data":[)";
  for (size_t n = 0; n < order.size(); ++n) {
    const Kline& bar = bars[order[n]];
    if (n > 0) body += ',';
    body += '[';
    AppendNumber(body, bar.ts_ms);
    for (double value : {bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume}) {
      body += ',';
      AppendNumber(body, value);
    }
    body += ']';
  }
  body += "]}";
  response.status = 200;
  response.body = std::move(body);
  response.set_header("Content-Type", std::string(kJson));
}

}  // namespace leakgate::engine
