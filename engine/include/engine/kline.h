// Klines (candlesticks), timeframes and timestamps: the vocabulary shared by every engine component.
//
// A `Kline` is a plain value. Timestamps are milliseconds since the Unix epoch (UTC) and mark the
// opening of the bar. A `KlineSeries` is ordered by strictly increasing `ts_ms`. All functions here are
// pure and thread-safe.
#ifndef LEAKGATE_ENGINE_KLINE_H_
#define LEAKGATE_ENGINE_KLINE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/error.h"

namespace leakgate::engine {

struct Kline {
  int64_t ts_ms = 0;  // bar open time, ms since epoch (UTC)
  double open = 0;
  double high = 0;
  double low = 0;
  double close = 0;
  double volume = 0;        // base volume
  double quote_volume = 0;  // quote volume (0 when the source has none)

  friend bool operator==(const Kline&, const Kline&) = default;
};

using KlineSeries = std::vector<Kline>;

// A fixed-duration bar period, named as Bitget's v2 API names granularities ("1m", "1H", "1D", ...).
struct Timeframe {
  std::string name;  // canonical name, e.g. "1H"
  int64_t ms = 0;    // duration of one bar

  friend bool operator==(const Timeframe&, const Timeframe&) = default;
};

// Parses a granularity name. Accepts the canonical names (1m 3m 5m 15m 30m 1H 4H 6H 12H 1D 3D 1W) and
// the lower-case hour/day/week spellings (1h, 1d, 1w). An unknown name gets an error listing the known ones.
Result<Timeframe> ParseTimeframe(std::string_view name);

// The canonical names, shortest first.
std::span<const std::string_view> KnownTimeframeNames();

// Parses a point in time: an integer (milliseconds since epoch), "YYYY-MM-DD",
// "YYYY-MM-DDTHH:MM[:SS[.fff]]" or "YYYY-MM-DD HH:MM[:SS[.fff]]", optionally followed by "Z" (or
// "+00:00" after a time). Always UTC: other offsets are rejected.
Result<int64_t> ParseTimestamp(std::string_view text);

// "2024-01-31T13:05:00Z" (seconds always shown; milliseconds appended when non-zero).
std::string FormatTimestamp(int64_t ts_ms);

// Checks the invariants a series must satisfy before a backtest: strictly increasing timestamps,
// finite positive prices, low <= min(open, close) <= max(open, close) <= high, volume >= 0.
// The error names the index and timestamp of the first bad bar.
Result<void> ValidateSeries(std::span<const Kline> series);

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_KLINE_H_
