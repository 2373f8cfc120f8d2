// The backtest engine: walks a kline series window by window, builds one strategy per window
// through the strategy registry, and simulates an all-in, one-position-at-a-time account.
//
// Semantics (those of the backtesting.py project, whose published GOOG figures this engine
// reproduces):
//  * For each bar i from `warmup` to the last, a window viewing bars [i - window + 1, i] and a
//    strategy for it are built, the strategy decides on bar i's close, and both are released before
//    bar i + 1.
//  * Orders fill at bar i + 1's open; a signal on the last bar is dropped. Buys fill at open * (1 +
//    slippage), sells at open * (1 - slippage).
//  * Buy: close any short, then go long unless already long. Sell: close any long, then go short
//    when `sides` is kBoth (long-only stays flat); nothing happens when already short.
//  * Position size is whole units, all-in: floor(cash * (1 - 2^-52) / (fill * (1 + fee_rate))) with
//    Python's float floor division, where cash is the cash after closing the previous position. A
//    size of 0 opens nothing.
//  * Cash holds realised profit only: each fill pays fee_rate * notional; closing adds size * (exit
//    - entry) for a long (the mirror for a short). Equity at a bar's close is cash plus the open
//    position's size * (close - entry) (mirrored for a short).
//  * A position still open at the end is closed by `end_of_data_exit`: kLastBarOpen (default)
//    issues a closing market order with the last decision that can still be filled, so it fills at
//    the last bar's open like any order, and an entry due on that same open is netted away against
//    it (a trade opened and closed at one price is no trade); kLastBarClose marks it out at the
//    last bar's close.
//  * If equity falls to 0 or below at a bar's close (possible when short), the position is closed
//    at that close, cash is set to 0, and the simulation stops: no further windows, equity 0 to the
//    end.
//  * Statistics: see Statistics in backtest_result.h. Buy & hold is measured from the close of bar
//    warmup - 1 (the last warm-up bar) to the last close. Sharpe is mean / sample stdev of the bar
//    returns of the equity curve times sqrt(365 days / bar period); bar returns after the equity
//    reached 0 are left out. The average trade is the arithmetic mean of the trade returns.
// A BacktestEngine holds only its options; Run is const and may be called from several threads at
// once provided the hooks tolerate that. The input series is borrowed for the duration of Run.
#ifndef LEAKGATE_ENGINE_BACKTEST_ENGINE_H_
#define LEAKGATE_ENGINE_BACKTEST_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "engine/backtest_result.h"
#include "engine/error.h"
#include "engine/kline.h"
#include "engine/strategy.h"

namespace leakgate::engine {

enum class PositionSides {
  kLongOnly,  // "long": a Sell only closes a long
  kBoth,      // "both": a Sell closes a long and opens a short
};

// "long" -> kLongOnly, "both" -> kBoth; anything else is kInvalidArgument naming the accepted
// values.
Result<PositionSides> ParsePositionSides(std::string_view text);
std::string_view PositionSidesName(PositionSides sides);

enum class EndOfDataExit {
  kLastBarOpen,   // "open": filled at the last bar's open, as any order issued on the bar before
  kLastBarClose,  // "close": marked out at the last bar's close
};

// "open" / "close"; anything else is kInvalidArgument naming the accepted values.
Result<EndOfDataExit> ParseEndOfDataExit(std::string_view text);
std::string_view EndOfDataExitName(EndOfDataExit exit);

struct BacktestConfig {
  std::string strategy = "sma_cross";
  StrategyParams params;  // missing parameters take the strategy's defaults
  double cash = 10000;    // starting cash, > 0
  double fee_rate = 0;    // fraction of notional paid at each fill, in [0, 0.5)
  double slippage = 0;    // fraction added to buys and taken from sells, in [0, 0.5)
  PositionSides sides = PositionSides::kLongOnly;
  int64_t warmup = 50;  // first bar decided on; >= window - 1 and < the number of bars
  int64_t window = 51;  // bars in each window; >= the bars the strategy needs
  int64_t bar_ms = 0;   // bar period for Sharpe; 0 infers the median spacing of the data
  bool record_equity_curve = true;
  EndOfDataExit end_of_data_exit = EndOfDataExit::kLastBarOpen;
};

struct EngineOptions {
  // Called for each window once its strategy is built, before Decide. The window is mutable so the
  // hook may fill `attachment`. Empty by default (no cost).
  std::function<void(const std::shared_ptr<KlineWindow>& window,
                     const std::shared_ptr<Strategy>& strategy)>
      on_window;
  // Called with (bars processed, total bars) about every 1 % of the run and once at the end, so at
  // most about 101 times per run. Empty by default.
  std::function<void(int64_t bars_done, int64_t bars_total)> on_progress;
};

class BacktestEngine {
 public:
  explicit BacktestEngine(EngineOptions options = {});

  // Checks the config (naming the offending field), the series (ValidateSeries) and the strategy
  // parameters (ValidateStrategy) once, then runs the window loop described above. On success
  // returns the trades, statistics and (if asked) the equity curve. Errors: kInvalidArgument for a
  // bad config, series or parameters; the factory's error, with the bar index, if a strategy cannot
  // be built.
  Result<BacktestResult> Run(std::span<const Kline> bars, const BacktestConfig& config) const;

  const EngineOptions& options() const { return options_; }

 private:
  EngineOptions options_;
};

// The config checks Run performs, without the series: field ranges, warmup against `bar_count`,
// and ValidateStrategy against `window`. On success returns the strategy's complete parameters.
Result<StrategyParams> ValidateBacktestConfig(const BacktestConfig& config, int64_t bar_count);

// Python's float floor division a // b (CPython float_floor_div), exact to the last bit, b != 0.
double PythonFloorDiv(double a, double b);

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_BACKTEST_ENGINE_H_
