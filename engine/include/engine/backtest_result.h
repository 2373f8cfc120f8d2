// The outcome of one backtest: trades, statistics and the equity curve.
//
// Plain values produced by BacktestEngine and persisted by BacktestRepository. Percentages are in
// percent (414.2 means +414.2 %). A statistic that is undefined for the data (for example the profit
// factor without a losing trade, or Sharpe with fewer than two bars) is NaN or +infinity as noted, and
// serialisers write it as JSON null. Thread-compatible.
#ifndef LEAKGATE_ENGINE_BACKTEST_RESULT_H_
#define LEAKGATE_ENGINE_BACKTEST_RESULT_H_

#include <cstdint>
#include <vector>

namespace leakgate::engine {

enum class Side { kLong = 1, kShort = -1 };

struct Trade {
  Side side = Side::kLong;
  double size = 0;           // whole units, > 0
  int64_t entry_index = 0;   // bar index of the fill
  int64_t exit_index = 0;    // bar index of the exit fill
  int64_t entry_ts_ms = 0;
  int64_t exit_ts_ms = 0;
  double entry_price = 0;    // fill price including slippage
  double exit_price = 0;     // fill price including slippage
  double fees = 0;           // entry plus exit fees, in cash
  double pnl = 0;            // cash profit after fees
  double return_pct = 0;     // side * (exit / entry - 1) * 100, before fees
};

struct Statistics {
  int64_t bars = 0;
  int64_t trades = 0;
  double start_equity = 0;
  double final_equity = 0;
  double peak_equity = 0;
  double return_pct = 0;
  double buy_hold_return_pct = 0;
  double max_drawdown_pct = 0;  // <= 0: -47.98 means the equity fell 47.98 % below its running peak
  double win_rate_pct = 0;      // NaN without trades
  double profit_factor = 0;     // sum of winning returns / |sum of losing returns|; +inf with winning
                                // trades and no losing one, NaN when neither (no trades, or only
                                // zero-return trades)
  double best_trade_pct = 0;    // NaN without trades
  double worst_trade_pct = 0;   // NaN without trades
  double avg_trade_pct = 0;     // NaN without trades
  double sharpe = 0;            // annualised over a 365-day year by the bar period; NaN if undefined
  double exposure_pct = 0;      // share of bars with an open position (entry to exit bar inclusive)
  double total_fees = 0;
};

struct BacktestResult {
  Statistics stats;
  std::vector<Trade> trades;
  std::vector<double> equity_curve;  // mark-to-market equity at each bar's close (empty if not asked)
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_BACKTEST_RESULT_H_
