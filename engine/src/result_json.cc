#include "engine/result_json.h"

#include <cmath>

#include "engine/kline.h"

namespace leakgate::engine {

using nlohmann::json;

json JsonNumber(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

json StatisticsToJson(const Statistics& s) {
  return {{"bars", s.bars},
          {"trades", s.trades},
          {"start_equity", JsonNumber(s.start_equity)},
          {"final_equity", JsonNumber(s.final_equity)},
          {"peak_equity", JsonNumber(s.peak_equity)},
          {"return_pct", JsonNumber(s.return_pct)},
          {"buy_hold_return_pct", JsonNumber(s.buy_hold_return_pct)},
          {"max_drawdown_pct", JsonNumber(s.max_drawdown_pct)},
          {"win_rate_pct", JsonNumber(s.win_rate_pct)},
          {"profit_factor", JsonNumber(s.profit_factor)},
          {"best_trade_pct", JsonNumber(s.best_trade_pct)},
          {"worst_trade_pct", JsonNumber(s.worst_trade_pct)},
          {"avg_trade_pct", JsonNumber(s.avg_trade_pct)},
          {"sharpe", JsonNumber(s.sharpe)},
          {"exposure_pct", JsonNumber(s.exposure_pct)},
          {"total_fees", JsonNumber(s.total_fees)}};
}

json TradeToJson(const Trade& t) {
  return {{"side", t.side == Side::kLong ? "long" : "short"},
          {"size", JsonNumber(t.size)},
          {"entry_index", t.entry_index},
          {"exit_index", t.exit_index},
          {"entry_time", FormatTimestamp(t.entry_ts_ms)},
          {"exit_time", FormatTimestamp(t.exit_ts_ms)},
          {"entry_price", JsonNumber(t.entry_price)},
          {"exit_price", JsonNumber(t.exit_price)},
          {"fees", JsonNumber(t.fees)},
          {"pnl", JsonNumber(t.pnl)},
          {"return_pct", JsonNumber(t.return_pct)}};
}

}  // namespace leakgate::engine
