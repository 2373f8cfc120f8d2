// backtest: runs one backtest offline, on a CSV file or on the deterministic synthetic market, and
// prints its statistics as one JSON object on stdout. Exit status 0 on success, 2 for a bad
// argument or input (the message on stderr says what was wrong), 1 for an unexpected failure.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/backtest_engine.h"
#include "engine/csv_loader.h"
#include "engine/kline.h"
#include "engine/result_json.h"
#include "engine/strategy.h"
#include "engine/synthetic_market.h"

namespace leakgate::engine {
namespace {

constexpr int kUsageError = 2;

using nlohmann::json;


struct Arguments {
  std::string csv;
  std::string symbol;
  std::string timeframe = "1H";
  std::string start;
  std::string end;
  uint64_t seed = SyntheticMarketOptions{}.seed;
  std::string strategy = "sma_cross";
  std::vector<std::string> params;
  double cash = 10000;
  double fee = 0;
  double slippage = 0;
  std::string sides = "long";
  int64_t warmup = 50;
  int64_t window = 51;
  int64_t bar_ms = 0;
  std::string end_exit = "open";
  bool print_trades = false;
};

// "KEY=VALUE" with a number VALUE.
Result<StrategyParams> ParseParams(const std::vector<std::string>& items) {
  StrategyParams params;
  for (const std::string& item : items) {
    const size_t equals = item.find('=');
    const std::string key = equals == std::string::npos ? "" : item.substr(0, equals);
    const std::string text = equals == std::string::npos ? "" : item.substr(equals + 1);
    char* end = nullptr;
    errno = 0;
    const double value = text.empty() ? 0 : std::strtod(text.c_str(), &end);
    if (key.empty() || text.empty() || end != text.c_str() + text.size() || errno == ERANGE) {
      return Fail(ErrorCode::kInvalidArgument,
                  "--param '" + item +
                      "' is malformed: expected KEY=VALUE with a number VALUE, "
                      "e.g. --param fast=10");
    }
    if (!params.emplace(key, value).second) {
      return Fail(ErrorCode::kInvalidArgument, "--param " + key + " is given more than once");
    }
  }
  return params;
}

struct LoadedBars {
  KlineSeries bars;
  json source;
};

Result<LoadedBars> LoadBars(const Arguments& args) {
  if (!args.csv.empty()) {
    Result<KlineSeries> bars = LoadKlinesCsv(args.csv);
    if (!bars) return std::unexpected(bars.error());
    return LoadedBars{std::move(*bars), json{{"type", "csv"}, {"path", args.csv}}};
  }
  Result<Timeframe> timeframe = ParseTimeframe(args.timeframe);
  if (!timeframe) {
    return Fail(ErrorCode::kInvalidArgument, "--timeframe: " + timeframe.error().message);
  }
  Result<int64_t> start = ParseTimestamp(args.start);
  if (!start) return Fail(ErrorCode::kInvalidArgument, "--start: " + start.error().message);
  Result<int64_t> end = ParseTimestamp(args.end);
  if (!end) return Fail(ErrorCode::kInvalidArgument, "--end: " + end.error().message);
  SyntheticMarketOptions options;
  options.seed = args.seed;
  Result<KlineSeries> bars =
      SyntheticMarket(options).Generate(args.symbol, *timeframe, *start, *end);
  if (!bars) return std::unexpected(bars.error());
  json source = {{"type", "synthetic"},          {"symbol", args.symbol},
                 {"timeframe", timeframe->name}, {"start", FormatTimestamp(*start)},
                 {"end", FormatTimestamp(*end)}, {"seed", args.seed}};
  return LoadedBars{std::move(*bars), std::move(source)};
}

json ReportToJson(const Arguments& args, const BacktestConfig& config, const StrategyParams& params,
                  const LoadedBars& loaded, const BacktestResult& result) {
  json params_json = json::object();
  for (const auto& [name, value] : params) params_json[name] = JsonNumber(value);
  json out = {
      {"strategy", config.strategy},
      {"params", std::move(params_json)},
      {"source", loaded.source},
      {"first_bar", FormatTimestamp(loaded.bars.front().ts_ms)},
      {"last_bar", FormatTimestamp(loaded.bars.back().ts_ms)},
      {"sides", PositionSidesName(config.sides)},
      {"warmup", config.warmup},
      {"window", config.window},
      {"fee_rate", JsonNumber(config.fee_rate)},
      {"slippage", JsonNumber(config.slippage)},
      {"end_exit", EndOfDataExitName(config.end_of_data_exit)},
  };
  out.update(StatisticsToJson(result.stats));
  if (args.print_trades) {
    json trades = json::array();
    for (const Trade& trade : result.trades) trades.push_back(TradeToJson(trade));
    out["trade_list"] = std::move(trades);
  }
  return out;
}

int UsageError(const std::string& message) {
  std::cerr << "backtest: " << message << "\n";
  return kUsageError;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "Runs one backtest offline on a CSV file or on the synthetic market and prints its "
      "statistics as JSON.",
      "backtest"};
  Arguments args;
  app.add_option("--csv", args.csv, "klines CSV file (pandas Date,Open,... or Bitget ts,open,...)");
  app.add_option("--symbol", args.symbol, "synthetic market symbol, e.g. BTCUSDT");
  app.add_option("--timeframe", args.timeframe, "synthetic bar period (1m ... 1W)")
      ->capture_default_str();
  app.add_option("--start", args.start,
                 "synthetic range start: ms since epoch or YYYY-MM-DD[THH:MM[:SS]]");
  app.add_option("--end", args.end, "synthetic range end (exclusive), same forms as --start");
  app.add_option("--seed", args.seed, "synthetic market seed")->capture_default_str();
  app.add_option("--strategy", args.strategy, "strategy: bollinger, rsi or sma_cross")
      ->capture_default_str();
  app.add_option("--param", args.params, "strategy parameter KEY=VALUE (repeatable)");
  app.add_option("--cash", args.cash, "starting cash")->capture_default_str();
  app.add_option("--fee", args.fee, "fee as a fraction of notional per fill")
      ->capture_default_str();
  app.add_option("--slippage", args.slippage, "slippage as a fraction of the price")
      ->capture_default_str();
  app.add_option("--sides", args.sides, "long (sell only closes) or both (sell goes short)")
      ->capture_default_str();
  app.add_option("--warmup", args.warmup, "first bar decided on")->capture_default_str();
  app.add_option("--window", args.window, "bars in each strategy window")->capture_default_str();
  app.add_option("--bar-ms", args.bar_ms, "bar period for Sharpe in ms (0 = median spacing)")
      ->capture_default_str();
  app.add_option("--end-exit", args.end_exit,
                 "where a position open at the end is closed: open or close of the last bar")
      ->capture_default_str();
  app.add_flag("--trades", args.print_trades, "also print the trade list");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the error and a hint, as CLI11 formats them
    return code == 0 ? 0 : kUsageError;
  }

  const bool synthetic = !args.symbol.empty() || !args.start.empty() || !args.end.empty();
  if (!args.csv.empty() && synthetic) {
    return UsageError(
        "give either --csv PATH or the synthetic market (--symbol --start --end), not both");
  }
  if (args.csv.empty() && !synthetic) {
    return UsageError("no data: give --csv PATH, or --symbol SYMBOL --start TIME --end TIME");
  }
  if (synthetic && (args.symbol.empty() || args.start.empty() || args.end.empty())) {
    return UsageError("the synthetic market needs all of --symbol, --start and --end");
  }

  BacktestConfig config;
  config.strategy = args.strategy;
  config.cash = args.cash;
  config.fee_rate = args.fee;
  config.slippage = args.slippage;
  config.warmup = args.warmup;
  config.window = args.window;
  config.bar_ms = args.bar_ms;
  Result<StrategyParams> params = ParseParams(args.params);
  if (!params) return UsageError(params.error().message);
  config.params = *params;
  Result<PositionSides> sides = ParsePositionSides(args.sides);
  if (!sides) return UsageError("--" + sides.error().message);
  config.sides = *sides;
  Result<EndOfDataExit> end_exit = ParseEndOfDataExit(args.end_exit);
  if (!end_exit) return UsageError("--end-exit: " + end_exit.error().message);
  config.end_of_data_exit = *end_exit;
  // Strategy and parameters first, so that a typo fails before any data is loaded.
  if (Result<StrategyParams> ok = ValidateStrategy(config.strategy, config.params, config.window);
      !ok) {
    return UsageError(ok.error().message);
  }

  Result<LoadedBars> loaded = LoadBars(args);
  if (!loaded) return UsageError(loaded.error().message);
  Result<StrategyParams> resolved =
      ValidateBacktestConfig(config, static_cast<int64_t>(loaded->bars.size()));
  if (!resolved) return UsageError(resolved.error().message);

  config.record_equity_curve = false;
  Result<BacktestResult> result = BacktestEngine().Run(loaded->bars, config);
  if (!result) return UsageError(result.error().message);
  std::cout << ReportToJson(args, config, *resolved, *loaded, *result).dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace leakgate::engine

int main(int argc, char** argv) {
  try {
    return leakgate::engine::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "backtest: unexpected failure: " << e.what() << "\n";
    return 1;
  }
}
