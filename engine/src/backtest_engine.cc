#include "engine/backtest_engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

namespace leakgate::engine {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kMsPerYear = 365.0 * 24 * 60 * 60 * 1000;
// backtesting.py sizes "all-in" orders as 1 - sys.float_info.epsilon of the available cash.
constexpr double kAllIn = 1.0 - 0x1p-52;

std::string FormatNumber(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

double Direction(Side side) { return side == Side::kLong ? 1.0 : -1.0; }

// Median spacing of the timestamps; 0 for fewer than two bars.
int64_t MedianBarSpacing(std::span<const Kline> bars) {
  if (bars.size() < 2) return 0;
  std::vector<int64_t> spacing(bars.size() - 1);
  for (size_t i = 1; i < bars.size(); ++i) spacing[i - 1] = bars[i].ts_ms - bars[i - 1].ts_ms;
  auto middle = spacing.begin() + static_cast<std::ptrdiff_t>(spacing.size() / 2);
  std::nth_element(spacing.begin(), middle, spacing.end());
  return *middle;
}

// The simulated account: at most one open position, trades recorded and summarised as they close.
class Account {
 public:
  Account(std::span<const Kline> bars, const BacktestConfig& config, std::vector<Trade>* trades)
      : bars_(bars), config_(config), trades_(trades), cash_(config.cash) {}

  // Cash plus the open position marked at `price`.
  double Equity(double price) const {
    if (!open_) return cash_;
    return cash_ + Direction(position_.side) * position_.size * (price - position_.entry_price);
  }

  // Executes an order filled at bar `index`'s open. `allow_entry` false keeps only the closing
  // part.
  void Execute(Signal signal, int64_t index, bool allow_entry) {
    const double open = bars_[index].open;
    const double buy_fill = open * (1 + config_.slippage);
    const double sell_fill = open * (1 - config_.slippage);
    if (signal == Signal::kBuy) {
      if (open_ && position_.side == Side::kShort) Close(index, buy_fill);
      if (!open_ && allow_entry) Enter(Side::kLong, index, buy_fill);
    } else if (signal == Signal::kSell) {
      if (open_ && position_.side == Side::kLong) Close(index, sell_fill);
      if (!open_ && allow_entry && config_.sides == PositionSides::kBoth) {
        Enter(Side::kShort, index, sell_fill);
      }
    }
  }

  // Closes the open position at bar `index` at `reference` adjusted for slippage.
  void CloseAt(int64_t index, double reference) {
    if (!open_) return;
    const double fill = position_.side == Side::kLong ? reference * (1 - config_.slippage)
                                                      : reference * (1 + config_.slippage);
    Close(index, fill);
  }

  // Liquidates at bar `index`'s close without slippage and leaves the account with nothing.
  void Liquidate(int64_t index) {
    if (open_) Close(index, bars_[index].close);
    cash_ = 0;
  }

  void FillStatistics(Statistics* stats) const {
    stats->trades = trade_count_;
    stats->total_fees = total_fees_;
    stats->exposure_pct = stats->bars == 0 ? kNaN
                                           : static_cast<double>(covered_bars_) /
                                                 static_cast<double>(stats->bars) * 100.0;
    if (trade_count_ == 0) {
      stats->win_rate_pct = stats->profit_factor = kNaN;
      stats->best_trade_pct = stats->worst_trade_pct = stats->avg_trade_pct = kNaN;
      return;
    }
    const double count = static_cast<double>(trade_count_);
    stats->win_rate_pct = static_cast<double>(winning_trades_) / count * 100.0;
    if (losing_return_sum_ != 0) {
      stats->profit_factor = winning_return_sum_ / std::fabs(losing_return_sum_);
    } else {
      // Without losing trades the ratio is unbounded; without winners either it is 0 / 0.
      stats->profit_factor = winning_return_sum_ > 0 ? kInfinity : kNaN;
    }
    stats->best_trade_pct = best_return_ * 100.0;
    stats->worst_trade_pct = worst_return_ * 100.0;
    stats->avg_trade_pct = return_sum_ / count * 100.0;
  }

 private:
  struct Position {
    Side side = Side::kLong;
    double size = 0;
    int64_t entry_index = 0;
    double entry_price = 0;
    double entry_fee = 0;
  };

  void Enter(Side side, int64_t index, double fill) {
    const double adjusted = fill * (1 + config_.fee_rate);
    const double available = std::max(0.0, cash_);
    const double size = PythonFloorDiv(available * kAllIn, adjusted);
    if (!(size >= 1)) return;
    const double fee = config_.fee_rate * size * fill;
    cash_ -= fee;
    position_ = Position{side, size, index, fill, fee};
    open_ = true;
  }

  void Close(int64_t index, double fill) {
    const double direction = Direction(position_.side);
    const double gross = direction * position_.size * (fill - position_.entry_price);
    const double exit_fee = config_.fee_rate * position_.size * fill;
    cash_ += gross - exit_fee;
    open_ = false;

    Trade trade;
    trade.side = position_.side;
    trade.size = position_.size;
    trade.entry_index = position_.entry_index;
    trade.exit_index = index;
    trade.entry_ts_ms = bars_[position_.entry_index].ts_ms;
    trade.exit_ts_ms = bars_[index].ts_ms;
    trade.entry_price = position_.entry_price;
    trade.exit_price = fill;
    trade.fees = position_.entry_fee + exit_fee;
    trade.pnl = gross - trade.fees;
    const double fraction = direction * (fill / position_.entry_price - 1);
    trade.return_pct = fraction * 100.0;

    ++trade_count_;
    if (trade.pnl > 0) ++winning_trades_;
    if (fraction > 0) winning_return_sum_ += fraction;
    if (fraction < 0) losing_return_sum_ += fraction;
    return_sum_ += fraction;
    best_return_ = trade_count_ == 1 ? fraction : std::max(best_return_, fraction);
    worst_return_ = trade_count_ == 1 ? fraction : std::min(worst_return_, fraction);
    total_fees_ += trade.fees;
    const int64_t first_uncovered = std::max(trade.entry_index, last_covered_bar_ + 1);
    if (trade.exit_index >= first_uncovered)
      covered_bars_ += trade.exit_index - first_uncovered + 1;
    last_covered_bar_ = std::max(last_covered_bar_, trade.exit_index);
    trades_->push_back(trade);
  }

  std::span<const Kline> bars_;
  const BacktestConfig& config_;
  std::vector<Trade>* trades_;
  double cash_;
  bool open_ = false;
  Position position_;

  int64_t trade_count_ = 0;
  int64_t winning_trades_ = 0;
  double winning_return_sum_ = 0;  // fractions, not percent
  double losing_return_sum_ = 0;
  double return_sum_ = 0;
  double best_return_ = 0;
  double worst_return_ = 0;
  double total_fees_ = 0;
  int64_t covered_bars_ = 0;
  int64_t last_covered_bar_ = -1;
};

// Running statistics of the equity curve: peak, drawdown, and Welford's mean and variance of the
// bar returns.
class EquityStatistics {
 public:
  explicit EquityStatistics(double start) : peak_(start), previous_(start) {}

  void Add(double equity, bool first_bar) {
    peak_ = std::max(peak_, equity);
    if (peak_ > 0) max_drawdown_ = std::max(max_drawdown_, 1 - equity / peak_);
    if (!first_bar && previous_ > 0) {
      const double bar_return = equity / previous_ - 1;
      ++return_count_;
      const double delta = bar_return - mean_return_;
      mean_return_ += delta / static_cast<double>(return_count_);
      squared_deviations_ += delta * (bar_return - mean_return_);
    }
    previous_ = equity;
  }

  double peak() const { return peak_; }
  double max_drawdown_pct() const { return -max_drawdown_ * 100.0; }

  double Sharpe(int64_t bar_ms) const {
    if (return_count_ < 2 || bar_ms <= 0) return kNaN;
    const double stddev = std::sqrt(squared_deviations_ / static_cast<double>(return_count_ - 1));
    if (stddev == 0) return kNaN;
    return mean_return_ / stddev * std::sqrt(kMsPerYear / static_cast<double>(bar_ms));
  }

 private:
  double peak_;
  double previous_;
  double max_drawdown_ = 0;
  int64_t return_count_ = 0;
  double mean_return_ = 0;
  double squared_deviations_ = 0;
};

}  // namespace

Result<PositionSides> ParsePositionSides(std::string_view text) {
  if (text == "long") return PositionSides::kLongOnly;
  if (text == "both") return PositionSides::kBoth;
  return Fail(ErrorCode::kInvalidArgument,
              "sides must be 'long' or 'both', got '" + std::string(text) + "'");
}

std::string_view PositionSidesName(PositionSides sides) {
  return sides == PositionSides::kBoth ? "both" : "long";
}

Result<EndOfDataExit> ParseEndOfDataExit(std::string_view text) {
  if (text == "open") return EndOfDataExit::kLastBarOpen;
  if (text == "close") return EndOfDataExit::kLastBarClose;
  return Fail(ErrorCode::kInvalidArgument,
              "end_of_data_exit must be 'open' or 'close', got '" + std::string(text) + "'");
}

std::string_view EndOfDataExitName(EndOfDataExit exit) {
  return exit == EndOfDataExit::kLastBarClose ? "close" : "open";
}

double PythonFloorDiv(double a, double b) {
  // CPython's float_floor_div (Objects/floatobject.c, _float_div_mod).
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0) return std::copysign(0.0, a / b);
  double floor_div = std::floor(div);
  if (div - floor_div > 0.5) floor_div += 1.0;
  return floor_div;
}

Result<StrategyParams> ValidateBacktestConfig(const BacktestConfig& config, int64_t bar_count) {
  auto invalid = [](std::string message) {
    return Fail(ErrorCode::kInvalidArgument, std::move(message));
  };
  if (!(std::isfinite(config.cash) && config.cash > 0)) {
    return invalid("cash must be a finite number > 0, got " + FormatNumber(config.cash));
  }
  if (!(config.fee_rate >= 0 && config.fee_rate < 0.5)) {
    return invalid("fee_rate must be a fraction of notional in [0, 0.5), got " +
                   FormatNumber(config.fee_rate));
  }
  if (!(config.slippage >= 0 && config.slippage < 0.5)) {
    return invalid("slippage must be a fraction of the price in [0, 0.5), got " +
                   FormatNumber(config.slippage));
  }
  if (config.window < 1) {
    return invalid("window must be at least 1 bar, got " + std::to_string(config.window));
  }
  if (config.bar_ms < 0) {
    return invalid("bar_ms must be >= 0 (0 infers it from the data), got " +
                   std::to_string(config.bar_ms));
  }
  Result<StrategyParams> params = ValidateStrategy(config.strategy, config.params, config.window);
  if (!params) return params;
  if (config.warmup < config.window - 1) {
    return invalid("warmup (" + std::to_string(config.warmup) + ") must be >= window - 1 (" +
                   std::to_string(config.window - 1) + ") so that the first window is full");
  }
  if (config.warmup >= bar_count) {
    return invalid("warmup (" + std::to_string(config.warmup) +
                   ") must be less than the number of bars (" + std::to_string(bar_count) + ")");
  }
  return params;
}

BacktestEngine::BacktestEngine(EngineOptions options) : options_(std::move(options)) {}

Result<BacktestResult> BacktestEngine::Run(std::span<const Kline> bars,
                                           const BacktestConfig& config) const {
  const int64_t n = static_cast<int64_t>(bars.size());
  Result<StrategyParams> params = ValidateBacktestConfig(config, n);
  if (!params) return std::unexpected(params.error());
  if (Result<void> series_ok = ValidateSeries(bars); !series_ok) {
    return std::unexpected(series_ok.error());
  }

  BacktestResult result;
  if (config.record_equity_curve) result.equity_curve.reserve(static_cast<size_t>(n));
  Account account(bars, config, &result.trades);
  EquityStatistics equity_stats(config.cash);
  const int64_t progress_step = std::max<int64_t>(1, (n + 99) / 100);

  Signal pending = Signal::kHold;
  bool bankrupt = false;
  for (int64_t i = 0; i < n; ++i) {
    const bool last_bar = i == n - 1;
    const bool exit_at_open = last_bar && config.end_of_data_exit == EndOfDataExit::kLastBarOpen;
    if (pending != Signal::kHold) {
      account.Execute(pending, i, /*allow_entry=*/!exit_at_open);
      pending = Signal::kHold;
    }
    if (exit_at_open) account.CloseAt(i, bars[i].open);

    if (i >= config.warmup && !bankrupt) {
      Signal signal;
      {
        auto window = std::make_shared<KlineWindow>(
            KlineWindow{bars.subspan(static_cast<size_t>(i - config.window + 1),
                                     static_cast<size_t>(config.window)),
                        nullptr});
        Result<std::shared_ptr<Strategy>> strategy = GetStrategy(config.strategy, window, *params);
        if (!strategy) {
          return Fail(strategy.error().code,
                      "bar " + std::to_string(i) + ": " + strategy.error().message);
        }
        if (options_.on_window) options_.on_window(window, *strategy);
        signal = (*strategy)->Decide();
      }
      if (!last_bar) pending = signal;
    }

    if (last_bar && config.end_of_data_exit == EndOfDataExit::kLastBarClose) {
      account.CloseAt(i, bars[i].close);
    }
    double equity = account.Equity(bars[i].close);
    if (!bankrupt && equity <= 0) {
      account.Liquidate(i);
      bankrupt = true;
      pending = Signal::kHold;
    }
    if (bankrupt) equity = 0;
    equity_stats.Add(equity, i == 0);
    if (config.record_equity_curve) result.equity_curve.push_back(equity);
    if (last_bar) result.stats.final_equity = equity;

    if (options_.on_progress && ((i + 1) % progress_step == 0 || last_bar)) {
      options_.on_progress(i + 1, n);
    }
  }

  Statistics& stats = result.stats;
  stats.bars = n;
  stats.start_equity = config.cash;
  stats.peak_equity = equity_stats.peak();
  stats.return_pct = (stats.final_equity / config.cash - 1) * 100.0;
  const double hold_from = bars[static_cast<size_t>(std::max<int64_t>(config.warmup - 1, 0))].close;
  stats.buy_hold_return_pct = (bars.back().close / hold_from - 1) * 100.0;
  stats.max_drawdown_pct = equity_stats.max_drawdown_pct();
  stats.sharpe = equity_stats.Sharpe(config.bar_ms > 0 ? config.bar_ms : MedianBarSpacing(bars));
  account.FillStatistics(&stats);
  return result;
}

}  // namespace leakgate::engine
