// Trading strategies: one object per kline window, built through a registry by name.
//
// A `KlineWindow` is a view of the last `window` bars of a series (never a copy): its `bars` span
// points into storage owned by the caller, which must outlive the window. `attachment` is an
// extension slot that the engine's per-window hook may fill; the window owns whatever it points at.
// A `Strategy` is built for exactly one window, shares ownership of it (std::shared_ptr) and
// decides on the window's last bar. `GetStrategy` is the per-window factory and stays cheap: a
// registry lookup, a few parameter reads and one allocation; parameters are checked once per
// backtest with `ValidateStrategy`. The built-in strategies are:
//  * sma_cross(fast=10, slow=30): Buy when SMA(fast) crosses above SMA(slow) on the window's last
//    two bars (fast[-2] < slow[-2] and fast[-1] > slow[-1]); Sell on the mirror. Needs slow + 1
//    bars.
//  * rsi(period=14, lower=30, upper=70): Wilder's RSI over the whole window (seed: simple mean of
//    the first `period` gains and losses; then avg = (avg * (period - 1) + x) / period). Buy when
//    RSI < lower (oversold), Sell when RSI > upper (overbought). Needs period + 1 bars.
//  * bollinger(period=20, k=2): mean and population standard deviation of the last `period` closes;
//    Buy when close < mean - k * sd, Sell when close > mean + k * sd. Needs `period` bars.
// The registry is immutable; all functions here are thread-safe, and a Strategy is safe to use from
// several threads once built (Decide is const and touches no shared mutable state).
#ifndef LEAKGATE_ENGINE_STRATEGY_H_
#define LEAKGATE_ENGINE_STRATEGY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/error.h"
#include "engine/kline.h"

namespace leakgate::engine {

enum class Signal { kHold, kBuy, kSell };

// "hold", "buy", "sell".
std::string_view SignalName(Signal signal);

// The last bars a strategy may look at; bars.back() is the bar being decided on.
struct KlineWindow {
  std::span<const Kline> bars;
  std::shared_ptr<const void> attachment;
};

// Parameter name -> value. Whole-number parameters (periods) are stored as doubles too.
using StrategyParams = std::map<std::string, double, std::less<>>;

class Strategy {
 public:
  virtual ~Strategy();

  // The signal for the window's last bar, from the window's bars alone. Never fails: the factory
  // only builds a strategy for a window that holds the bars it needs.
  virtual Signal Decide() const = 0;

  // The registry name ("sma_cross", ...).
  virtual std::string_view name() const = 0;
};

struct StrategyParamInfo {
  std::string name;
  double default_value = 0;
  bool whole_number = false;
  std::string description;  // meaning and allowed range
};

struct StrategyInfo {
  std::string name;
  std::string description;
  std::vector<StrategyParamInfo> params;  // sorted by name
};

// Registry names, sorted.
std::vector<std::string> KnownStrategies();

// Description and parameters of a strategy. An unknown name is kInvalidArgument listing the known
// ones.
Result<StrategyInfo> DescribeStrategy(std::string_view name);

// Checks `params` once for a whole backtest: every name is a parameter of the strategy, every value
// is finite, whole where a period is meant, and in range (sma_cross: 1 <= fast < slow; rsi: period
// >= 2, 0 <= lower < upper <= 100; bollinger: period >= 2, k > 0); and a window of `window_size`
// bars holds the bars the strategy needs (the error says how many). On success returns the complete
// parameter set, missing parameters filled with their defaults. Errors are kInvalidArgument naming
// the strategy, the parameter and the allowed range.
Result<StrategyParams> ValidateStrategy(std::string_view name, const StrategyParams& params,
                                        int64_t window_size);

// Bars a window must hold for the strategy with these parameters (defaults filled for missing
// ones). Same errors as ValidateStrategy, without the window check.
Result<int64_t> StrategyBarsNeeded(std::string_view name, const StrategyParams& params);

// Builds the strategy `name` for one window. Parameters are read as given, missing ones defaulted,
// and not range-checked (call ValidateStrategy once beforehand). Errors (kInvalidArgument): unknown
// name (the message lists the known ones), a null window, a period below 1, or a window with fewer
// bars than the strategy needs.
Result<std::shared_ptr<Strategy>> GetStrategy(std::string_view name,
                                              std::shared_ptr<const KlineWindow> window,
                                              const StrategyParams& params);

// Indicators behind the built-in strategies, over the closes of `bars`. Pure functions; the caller
// guarantees the sizes noted (they are not checked).

// Mean of the closes of bars[end - period, end), summed in index order. Requires period <= end <=
// size.
double SimpleMovingAverage(std::span<const Kline> bars, int64_t end, int64_t period);

// Wilder's RSI over all of `bars` (see the header comment); 100 when the average loss is 0 and the
// average gain is not, 50 when both are 0. Requires bars.size() >= period + 1 and period >= 1.
double WilderRsi(std::span<const Kline> bars, int64_t period);

struct BollingerBand {
  double mean = 0;
  double stddev = 0;  // population standard deviation
};

// Over the closes of the last `period` bars. Requires 1 <= period <= bars.size().
BollingerBand ComputeBollingerBand(std::span<const Kline> bars, int64_t period);

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_STRATEGY_H_
