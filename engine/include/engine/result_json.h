// JSON forms of backtest results, shared by the `backtest` program and the HTTP service.
//
// JSON has no NaN or infinity: an undefined statistic (see backtest_result.h) is written as null.
// Times are written as FormatTimestamp strings. Pure functions; thread-safe.
#ifndef LEAKGATE_ENGINE_RESULT_JSON_H_
#define LEAKGATE_ENGINE_RESULT_JSON_H_

#include <nlohmann/json.hpp>

#include "engine/backtest_result.h"

namespace leakgate::engine {

// A finite number as itself, NaN and infinities as null.
nlohmann::json JsonNumber(double value);

// {"bars", "trades", "start_equity", "final_equity", "peak_equity", "return_pct",
//  "buy_hold_return_pct", "max_drawdown_pct", "win_rate_pct", "profit_factor", "best_trade_pct",
//  "worst_trade_pct", "avg_trade_pct", "sharpe", "exposure_pct", "total_fees"}
nlohmann::json StatisticsToJson(const Statistics& stats);

// {"side": "long"|"short", "size", "entry_index", "exit_index", "entry_time", "exit_time",
//  "entry_price", "exit_price", "fees", "pnl", "return_pct"}
nlohmann::json TradeToJson(const Trade& trade);

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_RESULT_JSON_H_
