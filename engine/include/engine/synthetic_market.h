// A deterministic synthetic market: seeded geometric Brownian motion for any symbol, timeframe and
// time range.
//
// The bar at a given (symbol, timeframe, timestamp) is always the same for a given seed, whatever
// range it is requested in, so that a client paging through the range sees one continuous series.
// Bars are aligned to multiples of the timeframe since the epoch. This is achieved with a
// counter-based random generator (no state carried between calls): the log-price walk is split into
// blocks whose sums are drawn directly, and the steps inside a block form a discrete Brownian bridge
// between the block's end points. A `SyntheticMarket` is immutable after construction and safe to use
// from several threads at once.
#ifndef LEAKGATE_ENGINE_SYNTHETIC_MARKET_H_
#define LEAKGATE_ENGINE_SYNTHETIC_MARKET_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/error.h"
#include "engine/kline.h"

namespace leakgate::engine {

struct SyntheticMarketOptions {
  uint64_t seed = 42;
  double annual_drift = 0.05;       // mu of the GBM, per 365-day year
  double annual_volatility = 0.60;  // sigma of the GBM, per 365-day year
  double base_price = 100.0;        // price at the anchor, 2020-01-01T00:00Z, scaled per symbol
};

class SyntheticMarket {
 public:
  explicit SyntheticMarket(SyntheticMarketOptions options = {});

  // Bars whose open time t satisfies start_ms <= t < end_ms, aligned to the timeframe.
  // Errors: an empty symbol, end before start, a range outside [1900-01-01, 2200-01-01), options
  // that are not finite (or a base price <= 0, a volatility < 0), or more than `max_bars` bars.
  Result<KlineSeries> Generate(std::string_view symbol, const Timeframe& timeframe, int64_t start_ms,
                               int64_t end_ms, int64_t max_bars = 20'000'000) const;

  // Number of bars Generate would return for the range (no allocation).
  static int64_t CountBars(const Timeframe& timeframe, int64_t start_ms, int64_t end_ms);

  const SyntheticMarketOptions& options() const { return options_; }

 private:
  SyntheticMarketOptions options_;
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_SYNTHETIC_MARKET_H_
