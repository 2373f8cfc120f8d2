// The body of `POST /api/backtest`: parsing, defaults and validation of one backtest request.
//
// A request is a JSON object with the fields below; every field but `symbol` has a default, chosen
// so that a request naming only a symbol runs in well under a second and still moves enough data to
// leave a visible trace per run (about 20 pages of 1000 bars from the exchange, 20,000 windows):
//   symbol    string, required: 1-32 characters from [A-Za-z0-9_-] ("BTCUSDT")
//   timeframe string, default "15m": a granularity ParseTimeframe accepts
//   start     string (see ParseTimestamp) or integer ms, default 2024-01-01T00:00:00Z, or end minus
//             kDefaultBars bars when only `end` is given
//   end       string or integer ms, exclusive, default start plus kDefaultBars bars
//             (2024-07-27T08:00:00Z for the default start and timeframe)
//   strategy  string, default "sma_cross": a name KnownStrategies() lists
//   params    object of numbers, default {}: the strategy's parameters (missing ones defaulted)
//   cash      number > 0, default 10000
//   fee_rate  number in [0, 0.5), default 0.001
// The range must hold between kMinBars and `max_bars` bars of the timeframe. Anything else
// (malformed JSON, a body that is not an object, an unknown or wrongly typed field, a value out of
// range) is a `RequestError` naming the offending field ("params.fast" for a strategy parameter,
// "body" for the body as a whole) with a message that says what would be right. Pure functions;
// thread-safe.
#ifndef LEAKGATE_ENGINE_BACKTEST_REQUEST_H_
#define LEAKGATE_ENGINE_BACKTEST_REQUEST_H_

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "engine/backtest_engine.h"
#include "engine/kline.h"
#include "engine/strategy.h"

namespace leakgate::engine {

struct BacktestRequest {
  static constexpr std::string_view kDefaultTimeframe = "15m";
  static constexpr int64_t kDefaultStartMs = 1'704'067'200'000;  // 2024-01-01T00:00:00Z
  static constexpr int64_t kDefaultBars = 20'000;
  static constexpr int64_t kDefaultMaxBars = 500'000;
  static constexpr double kDefaultCash = 10'000;
  static constexpr double kDefaultFeeRate = 0.001;

  std::string symbol;
  Timeframe timeframe;
  int64_t start_ms = 0;
  int64_t end_ms = 0;  // exclusive
  std::string strategy = "sma_cross";
  StrategyParams params;  // complete: defaults filled in
  double cash = kDefaultCash;
  double fee_rate = kDefaultFeeRate;
  int64_t bars = 0;  // bars of the timeframe in [start_ms, end_ms)

  // The request with every default filled in, as a JSON object with the fields above (times as
  // ISO 8601 strings): stored with the session, shown by the API, and valid to POST again.
  std::string ToJson() const;

  // The engine configuration for this request (window 51, warmup 50, long only, no equity curve).
  BacktestConfig ToConfig() const;
};

// The engine's default window: the first bar decided on and the smallest range a request may hold.
inline constexpr int64_t kMinBars = 52;

struct RequestError {
  std::string field;    // "symbol", "params.fast", "body", ...
  std::string message;  // what was wrong and what would be right
};

// Parses and validates a request body. `max_bars` bounds the range (kDefaultMaxBars by default).
std::expected<BacktestRequest, RequestError> ParseBacktestRequest(
    std::string_view body, int64_t max_bars = BacktestRequest::kDefaultMaxBars);

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_BACKTEST_REQUEST_H_
