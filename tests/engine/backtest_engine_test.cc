// The engine on micro-series typed in by hand. Most tests use sma_cross with fast=1, slow=2, window
// 3, warmup 2: the close crossing its 2-bar average means
//   Buy at bar i  <=>  close[i-2] > close[i-1] < close[i]   (the close turns up) Sell at bar i <=>
//   close[i-2] < close[i-1] > close[i]   (the close turns down)
// so every signal, fill, size and equity value below can be followed with pencil and paper.
#include "engine/backtest_engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <ostream>
#include <vector>

// Counts every allocation made through the global operator new, so that a test can pin how many the
// engine makes per window.
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

// GCC 12 reports free() in a replaced operator delete as mismatched with operator new; here both
// are replaced and operator new allocates with malloc, so the pairing is right.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace leakgate::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;

// Bars one minute apart with the given opens and closes; high and low span both.
KlineSeries Bars(const std::vector<double>& opens, const std::vector<double>& closes) {
  KlineSeries bars;
  for (size_t i = 0; i < closes.size(); ++i) {
    const double open = opens[i];
    const double close = closes[i];
    bars.push_back(Kline{static_cast<int64_t>(i) * kMinute, open, std::max(open, close),
                         std::min(open, close), close, 100, 0});
  }
  return bars;
}

BacktestConfig TurnConfig(PositionSides sides = PositionSides::kLongOnly) {
  BacktestConfig config;
  config.strategy = "sma_cross";
  config.params = {{"fast", 1}, {"slow", 2}};
  config.cash = 10000;
  config.sides = sides;
  config.warmup = 2;
  config.window = 3;
  return config;
}

BacktestResult RunOk(std::span<const Kline> bars, const BacktestConfig& config,
                     EngineOptions options = {}) {
  Result<BacktestResult> result = BacktestEngine(std::move(options)).Run(bars, config);
  EXPECT_TRUE(result.has_value()) << result.error().ToString();
  return result.value_or(BacktestResult{});
}

// i:       0   1   2   3   4     5   6   7
// close:  10   9  11  12  10     9  11  11
// open:   10  10   9  11  12.5  10   9   8.5
// signals: bar 2 Buy (10 > 9 < 11), bar 4 Sell (11 < 12 > 10), bar 6 Buy (10 > 9 < 11);
// fills at the next open: bar 3 @ 11, bar 5 @ 10, bar 7 @ 8.5 (the last bar).
KlineSeries TwoTurns() {
  return Bars({10, 10, 9, 11, 12.5, 10, 9, 8.5}, {10, 9, 11, 12, 10, 9, 11, 11});
}

TEST(BacktestEngineTest, LongAndShortRoundTrips) {
  const KlineSeries bars = TwoTurns();
  BacktestResult r = RunOk(bars, TurnConfig(PositionSides::kBoth));
  // Long floor(10000 / 11) = 909 @ 11 (bar 3) -> sold @ 10 (bar 5): pnl -909, cash 9091. Short
  // floor(9091 / 10) = 909 @ 10 (bar 5) -> covered @ 8.5 (bar 7): pnl +1363.5, cash 10454.5. The
  // Buy filling on the last bar's open would open a long that the end-of-data exit closes at the
  // same open: netted away, no third trade.
  ASSERT_EQ(r.trades.size(), 2u);
  const Trade& t1 = r.trades[0];
  EXPECT_EQ(t1.side, Side::kLong);
  EXPECT_EQ(t1.size, 909);
  EXPECT_EQ(t1.entry_index, 3);
  EXPECT_EQ(t1.exit_index, 5);
  EXPECT_EQ(t1.entry_ts_ms, 3 * kMinute);
  EXPECT_EQ(t1.exit_ts_ms, 5 * kMinute);
  EXPECT_EQ(t1.entry_price, 11);
  EXPECT_EQ(t1.exit_price, 10);
  EXPECT_DOUBLE_EQ(t1.pnl, -909);
  EXPECT_DOUBLE_EQ(t1.return_pct, (10.0 / 11.0 - 1) * 100);
  const Trade& t2 = r.trades[1];
  EXPECT_EQ(t2.side, Side::kShort);
  EXPECT_EQ(t2.size, 909);
  EXPECT_EQ(t2.entry_index, 5);
  EXPECT_EQ(t2.exit_index, 7);
  EXPECT_EQ(t2.entry_price, 10);
  EXPECT_EQ(t2.exit_price, 8.5);
  EXPECT_DOUBLE_EQ(t2.pnl, 1363.5);
  EXPECT_DOUBLE_EQ(t2.return_pct, 15);

  // Equity at each close: cash + position marked at the close.
  //   bars 0-2: 10000; bar 3: 10000 + 909*(12-11) = 10909; bar 4: 10000 + 909*(10-11) = 9091;
  //   bar 5: 9091 - 909*(9-10) = 10000; bar 6: 9091 - 909*(11-10) = 8182; bar 7: flat, 10454.5.
  EXPECT_THAT(
      r.equity_curve,
      ::testing::Pointwise(::testing::DoubleEq(), std::vector<double>{10000, 10000, 10000, 10909,
                                                                      9091, 10000, 8182, 10454.5}));
  const Statistics& s = r.stats;
  EXPECT_EQ(s.bars, 8);
  EXPECT_EQ(s.trades, 2);
  EXPECT_EQ(s.start_equity, 10000);
  EXPECT_DOUBLE_EQ(s.final_equity, 10454.5);
  EXPECT_DOUBLE_EQ(s.peak_equity, 10909);
  EXPECT_DOUBLE_EQ(s.return_pct, 4.545);
  // Deepest fall below the running peak 10909: bar 6 at 8182.
  EXPECT_DOUBLE_EQ(s.max_drawdown_pct, -(1 - 8182.0 / 10909.0) * 100);
  EXPECT_DOUBLE_EQ(s.win_rate_pct, 50);
  EXPECT_DOUBLE_EQ(s.profit_factor, 15 / ((1 - 10.0 / 11.0) * 100));
  EXPECT_DOUBLE_EQ(s.best_trade_pct, 15);
  EXPECT_DOUBLE_EQ(s.worst_trade_pct, (10.0 / 11.0 - 1) * 100);
  EXPECT_DOUBLE_EQ(s.avg_trade_pct, (15 + (10.0 / 11.0 - 1) * 100) / 2);
  // Bars 3..5 and 5..7 are covered: 5 of 8.
  EXPECT_DOUBLE_EQ(s.exposure_pct, 62.5);
  // From the close of the last warm-up bar (bar 1, 9) to the last close (11).
  EXPECT_DOUBLE_EQ(s.buy_hold_return_pct, (11.0 / 9.0 - 1) * 100);
  EXPECT_EQ(s.total_fees, 0);
}

TEST(BacktestEngineTest, SharpeIsMeanOverSampleStdevOfBarReturnsAnnualised) {
  const KlineSeries bars = TwoTurns();
  BacktestResult r = RunOk(bars, TurnConfig(PositionSides::kBoth));
  const std::vector<double> equity = {10000, 10000, 10000, 10909, 9091, 10000, 8182, 10454.5};
  std::vector<double> returns;
  for (size_t i = 1; i < equity.size(); ++i) returns.push_back(equity[i] / equity[i - 1] - 1);
  const double mean = std::accumulate(returns.begin(), returns.end(), 0.0) / returns.size();
  double squares = 0;
  for (double x : returns) squares += (x - mean) * (x - mean);
  const double sample_sd = std::sqrt(squares / (returns.size() - 1));
  // One-minute bars: 365 * 1440 bars a year.
  EXPECT_NEAR(r.stats.sharpe, mean / sample_sd * std::sqrt(365.0 * 1440), 1e-9);

  BacktestConfig daily = TurnConfig(PositionSides::kBoth);
  daily.bar_ms = 86'400'000;  // overrides the inferred one-minute spacing
  EXPECT_NEAR(RunOk(bars, daily).stats.sharpe, mean / sample_sd * std::sqrt(365.0), 1e-9);
}

TEST(BacktestEngineTest, LongOnlySellOnlyCloses) {
  const KlineSeries bars = TwoTurns();
  BacktestResult r = RunOk(bars, TurnConfig(PositionSides::kLongOnly));
  // The Sell at bar 4 closes the long at bar 5 and opens nothing; the Buy filling on the last bar
  // is netted against the end-of-data exit.
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_EQ(r.trades[0].side, Side::kLong);
  EXPECT_DOUBLE_EQ(r.stats.final_equity, 9091);
  EXPECT_DOUBLE_EQ(r.stats.win_rate_pct, 0);
  EXPECT_DOUBLE_EQ(r.stats.profit_factor, 0);    // no winning return, one losing
  EXPECT_DOUBLE_EQ(r.stats.exposure_pct, 37.5);  // bars 3..5 of 8
  EXPECT_DOUBLE_EQ(r.equity_curve[5], 9091);
  EXPECT_DOUBLE_EQ(r.equity_curve[6], 9091);
}

TEST(BacktestEngineTest, ExitAtLastCloseLetsTheLastOpenFillAnEntry) {
  const KlineSeries bars = TwoTurns();
  BacktestConfig config = TurnConfig(PositionSides::kBoth);
  config.end_of_data_exit = EndOfDataExit::kLastBarClose;
  BacktestResult r = RunOk(bars, config);
  // As above up to the short's cover @ 8.5 on bar 7 (cash 10454.5); then the Buy opens a long of
  // floor(10454.5 / 8.5) = 1229 @ 8.5, marked out at the last close 11: pnl 1229 * 2.5 = 3072.5.
  ASSERT_EQ(r.trades.size(), 3u);
  EXPECT_EQ(r.trades[2].side, Side::kLong);
  EXPECT_EQ(r.trades[2].size, 1229);
  EXPECT_EQ(r.trades[2].entry_index, 7);
  EXPECT_EQ(r.trades[2].exit_index, 7);
  EXPECT_EQ(r.trades[2].exit_price, 11);
  EXPECT_DOUBLE_EQ(r.stats.final_equity, 10454.5 + 3072.5);
  EXPECT_DOUBLE_EQ(r.equity_curve.back(), 10454.5 + 3072.5);
}

TEST(BacktestEngineTest, PositionOpenAtTheEndIsClosedOnTheLastBar) {
  // close 10 9 11 12 13, open 10 10 9 11.5 12.5: Buy at bar 2 fills @ 11.5 on bar 3,
  // floor(10000 / 11.5) = 869 units; no Sell follows.
  const KlineSeries bars = Bars({10, 10, 9, 11.5, 12.5}, {10, 9, 11, 12, 13});
  BacktestResult at_open = RunOk(bars, TurnConfig());
  ASSERT_EQ(at_open.trades.size(), 1u);
  EXPECT_EQ(at_open.trades[0].size, 869);
  EXPECT_EQ(at_open.trades[0].exit_index, 4);
  EXPECT_EQ(at_open.trades[0].exit_price, 12.5);
  EXPECT_DOUBLE_EQ(at_open.stats.final_equity, 10000 + 869 * 1.0);

  BacktestConfig config = TurnConfig();
  config.end_of_data_exit = EndOfDataExit::kLastBarClose;
  BacktestResult at_close = RunOk(bars, config);
  ASSERT_EQ(at_close.trades.size(), 1u);
  EXPECT_EQ(at_close.trades[0].exit_price, 13);
  EXPECT_DOUBLE_EQ(at_close.stats.final_equity, 10000 + 869 * 1.5);
  EXPECT_DOUBLE_EQ(at_close.stats.exposure_pct, 40);  // bars 3..4 of 5
}

TEST(BacktestEngineTest, NoLosingTradeGivesInfiniteProfitFactor) {
  // close 10 9 11 12 10 11, open 10 10 9 11 12 12.5: Buy at bar 2 -> long 909 @ 11 on bar 3;
  // Sell at bar 4 -> sold @ 12.5 on bar 5: +1363.5. The Buy at bar 5 is on the last bar: dropped.
  const KlineSeries bars = Bars({10, 10, 9, 11, 12, 12.5}, {10, 9, 11, 12, 10, 11});
  BacktestResult r = RunOk(bars, TurnConfig());
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_DOUBLE_EQ(r.trades[0].pnl, 1363.5);
  EXPECT_EQ(r.stats.profit_factor, std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(r.stats.win_rate_pct, 100);
  EXPECT_DOUBLE_EQ(r.stats.best_trade_pct, (12.5 / 11 - 1) * 100);
  EXPECT_DOUBLE_EQ(r.stats.worst_trade_pct, (12.5 / 11 - 1) * 100);
  EXPECT_DOUBLE_EQ(r.stats.final_equity, 11363.5);
  // Bar 4 marks 909 @ 10: 9091, 1 - 9091/10909 below the bar-3 peak.
  EXPECT_DOUBLE_EQ(r.stats.max_drawdown_pct, -(1 - 9091.0 / 10909.0) * 100);
}

TEST(BacktestEngineTest, ZeroPnlTradeIsNotAWin) {
  // close 10 9 11 10 10, open 10 10 9 11 11: Buy at bar 2 -> long @ 11 on bar 3; Sell at bar 3
  // (9 < 11 > 10) -> sold @ 11 on bar 4. PnL 0.
  const KlineSeries bars = Bars({10, 10, 9, 11, 11}, {10, 9, 11, 10, 10});
  BacktestResult r = RunOk(bars, TurnConfig());
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_EQ(r.trades[0].pnl, 0);
  EXPECT_EQ(r.trades[0].return_pct, 0);
  EXPECT_EQ(r.stats.win_rate_pct, 0);
  // Neither winning nor losing returns: the ratio is 0 / 0.
  EXPECT_TRUE(std::isnan(r.stats.profit_factor));
  EXPECT_EQ(r.stats.final_equity, 10000);
  EXPECT_EQ(r.stats.return_pct, 0);
}

TEST(BacktestEngineTest, NoTradeAtAll) {
  // Rising closes never turn: no signal.
  const KlineSeries bars = Bars({1, 2, 3, 4, 5, 6}, {2, 3, 4, 5, 6, 7});
  BacktestResult r = RunOk(bars, TurnConfig(PositionSides::kBoth));
  EXPECT_TRUE(r.trades.empty());
  const Statistics& s = r.stats;
  EXPECT_EQ(s.trades, 0);
  EXPECT_EQ(s.final_equity, 10000);
  EXPECT_EQ(s.peak_equity, 10000);
  EXPECT_EQ(s.return_pct, 0);
  EXPECT_EQ(s.max_drawdown_pct, 0);
  EXPECT_EQ(s.exposure_pct, 0);
  EXPECT_TRUE(std::isnan(s.win_rate_pct));
  EXPECT_TRUE(std::isnan(s.profit_factor));
  EXPECT_TRUE(std::isnan(s.best_trade_pct));
  EXPECT_TRUE(std::isnan(s.worst_trade_pct));
  EXPECT_TRUE(std::isnan(s.avg_trade_pct));
  EXPECT_TRUE(std::isnan(s.sharpe));  // flat equity: stdev 0
  EXPECT_DOUBLE_EQ(s.buy_hold_return_pct, (7.0 / 3.0 - 1) * 100);
  EXPECT_EQ(r.equity_curve, std::vector<double>(6, 10000));
}

TEST(BacktestEngineTest, SignalOnTheLastBarIsDropped) {
  // close 10 11 12 13 11 12: Sell at bar 4 (flat, long-only: nothing), Buy at bar 5, the last bar.
  const KlineSeries bars = Bars({10, 10, 11, 12, 13, 11}, {10, 11, 12, 13, 11, 12});
  int64_t windows = 0;
  EngineOptions options;
  options.on_window = [&](const std::shared_ptr<KlineWindow>&, const std::shared_ptr<Strategy>& s) {
    ++windows;
    if (windows == 4) {
      EXPECT_EQ(s->Decide(), Signal::kBuy) << "the last bar does signal";
    }
  };
  for (EndOfDataExit exit : {EndOfDataExit::kLastBarOpen, EndOfDataExit::kLastBarClose}) {
    windows = 0;
    BacktestConfig config = TurnConfig();
    config.end_of_data_exit = exit;
    BacktestResult r = RunOk(bars, config, options);
    EXPECT_EQ(windows, 4);
    EXPECT_TRUE(r.trades.empty()) << EndOfDataExitName(exit);
    EXPECT_EQ(r.stats.final_equity, 10000);
  }
}

TEST(BacktestEngineTest, FeesAndSlippage) {
  const KlineSeries bars = TwoTurns();
  BacktestConfig config = TurnConfig(PositionSides::kBoth);
  config.fee_rate = 0.001;
  config.slippage = 0.01;
  BacktestResult r = RunOk(bars, config);
  // Long: buy fill 11 * 1.01 = 11.11; size floor(10000 / (11.11 * 1.001)) = floor(899.19) = 899;
  //   entry fee 0.001 * 899 * 11.11 = 9.98789.
  //   Sell fill 10 * 0.99 = 9.9: gross 899 * (9.9 - 11.11) = -1087.79, exit fee 8.9001.
  //   cash 10000 - 9.98789 - 1087.79 - 8.9001 = 8893.32201.
  // Short: sell fill 9.9; size floor(8893.32201 / (9.9 * 1.001)) = floor(897.4) = 897;
  //   entry fee 0.001 * 897 * 9.9 = 8.8803.
  //   Cover at the last open 8.5 * 1.01 = 8.585: gross 897 * (9.9 - 8.585) = 1179.555,
  //   exit fee 0.001 * 897 * 8.585 = 7.700745.
  //   cash 8893.32201 - 8.8803 + 1179.555 - 7.700745 = 10056.295965.
  ASSERT_EQ(r.trades.size(), 2u);
  const Trade& t1 = r.trades[0];
  EXPECT_EQ(t1.size, 899);
  EXPECT_DOUBLE_EQ(t1.entry_price, 11.11);
  EXPECT_DOUBLE_EQ(t1.exit_price, 9.9);
  EXPECT_NEAR(t1.fees, 9.98789 + 8.9001, 1e-9);
  EXPECT_NEAR(t1.pnl, -1087.79 - 9.98789 - 8.9001, 1e-9);
  EXPECT_NEAR(t1.return_pct, (9.9 / 11.11 - 1) * 100, 1e-12);  // before fees
  const Trade& t2 = r.trades[1];
  EXPECT_EQ(t2.side, Side::kShort);
  EXPECT_EQ(t2.size, 897);
  EXPECT_DOUBLE_EQ(t2.entry_price, 9.9);
  EXPECT_DOUBLE_EQ(t2.exit_price, 8.585);
  EXPECT_NEAR(t2.fees, 8.8803 + 7.700745, 1e-9);
  EXPECT_NEAR(t2.pnl, 1179.555 - 8.8803 - 7.700745, 1e-9);
  EXPECT_NEAR(r.stats.total_fees, 9.98789 + 8.9001 + 8.8803 + 7.700745, 1e-9);
  EXPECT_NEAR(r.stats.final_equity, 10056.295965, 1e-8);
  // Bar 3 marks the long at the close 12 after the entry fee: 10000 - 9.98789 + 899 * (12 - 11.11).
  EXPECT_NEAR(r.equity_curve[3], 10000 - 9.98789 + 899 * 0.89, 1e-9);
}

TEST(BacktestEngineTest, BankruptShortIsLiquidatedAndStops) {
  // close 10 11 12 11 30 31: Sell at bar 3 (11 < 12 > 11) -> short floor(10000 / 11) = 909 @ 11 on
  // bar 4; the close 30 marks equity at 10000 - 909 * 19 < 0: liquidated at that close.
  const KlineSeries bars = Bars({10, 10, 11, 12, 11, 30}, {10, 11, 12, 11, 30, 31});
  int64_t windows = 0;
  EngineOptions options;
  options.on_window = [&](const auto&, const auto&) { ++windows; };
  BacktestResult r = RunOk(bars, TurnConfig(PositionSides::kBoth), options);
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_EQ(r.trades[0].exit_index, 4);
  EXPECT_EQ(r.trades[0].exit_price, 30);
  EXPECT_DOUBLE_EQ(r.trades[0].pnl, -909 * 19.0);
  EXPECT_EQ(r.equity_curve, (std::vector<double>{10000, 10000, 10000, 10000, 0, 0}));
  EXPECT_EQ(r.stats.final_equity, 0);
  EXPECT_EQ(r.stats.return_pct, -100);
  EXPECT_EQ(r.stats.max_drawdown_pct, -100);
  EXPECT_EQ(windows, 3) << "no window after the account is wiped out (bars 2, 3, 4 only)";
}

TEST(BacktestEngineTest, SmaCrossTwoThreeOnAFourBarWindow) {
  // fast=2, slow=3, window 4, warmup 3: Buy at bar 3 on closes 10 9 8 12 (see strategy_test),
  // filled at bar 4's open 12 with floor(10000 / 12) = 833 units, marked out at the last bar's open
  // 13.
  const KlineSeries bars = Bars({10, 10, 9, 8, 12, 13}, {10, 9, 8, 12, 13, 14});
  BacktestConfig config = TurnConfig();
  config.params = {{"fast", 2}, {"slow", 3}};
  config.window = 4;
  config.warmup = 3;
  BacktestResult r = RunOk(bars, config);
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_EQ(r.trades[0].entry_index, 4);
  EXPECT_EQ(r.trades[0].size, 833);
  EXPECT_DOUBLE_EQ(r.stats.final_equity, 10000 + 833 * 1.0);
}

TEST(BacktestEngineTest, EquityCurveIsOptional) {
  const KlineSeries bars = TwoTurns();
  BacktestConfig config = TurnConfig(PositionSides::kBoth);
  config.record_equity_curve = false;
  BacktestResult r = RunOk(bars, config);
  EXPECT_TRUE(r.equity_curve.empty());
  EXPECT_DOUBLE_EQ(r.stats.final_equity, 10454.5);
  EXPECT_DOUBLE_EQ(r.stats.peak_equity, 10909);
}

// ---- hooks ----

TEST(BacktestEngineHooksTest, OnWindowSeesEachWindowOnceAsAViewOfTheInput) {
  const KlineSeries bars = TwoTurns();
  BacktestConfig config = TurnConfig();
  std::vector<int64_t> last_bar_of_window;
  EngineOptions options;
  options.on_window = [&](const std::shared_ptr<KlineWindow>& window,
                          const std::shared_ptr<Strategy>& strategy) {
    ASSERT_NE(window, nullptr);
    ASSERT_NE(strategy, nullptr);
    EXPECT_EQ(strategy->name(), "sma_cross");
    EXPECT_EQ(window->bars.size(), 3u);
    EXPECT_EQ(window->attachment, nullptr);
    // The k-th window ends at bar warmup + k and views the input's storage, not a copy.
    const int64_t i = config.warmup + static_cast<int64_t>(last_bar_of_window.size());
    EXPECT_EQ(window->bars.data(), bars.data() + (i - 2));
    last_bar_of_window.push_back(window->bars.back().ts_ms / kMinute);
  };
  RunOk(bars, config, options);
  EXPECT_EQ(last_bar_of_window, (std::vector<int64_t>{2, 3, 4, 5, 6, 7}));
}

TEST(BacktestEngineHooksTest, WindowAndStrategyAreReleasedEachIteration) {
  const KlineSeries bars = TwoTurns();
  std::weak_ptr<KlineWindow> previous_window;
  std::weak_ptr<Strategy> previous_strategy;
  std::weak_ptr<const void> previous_attachment;
  int64_t calls = 0;
  EngineOptions options;
  options.on_window = [&](const std::shared_ptr<KlineWindow>& window,
                          const std::shared_ptr<Strategy>& strategy) {
    if (calls++ > 0) {
      EXPECT_TRUE(previous_window.expired());
      EXPECT_TRUE(previous_strategy.expired());
      EXPECT_TRUE(previous_attachment.expired()) << "the window owns its attachment";
    }
    auto attachment = std::make_shared<int>(42);
    window->attachment = attachment;
    previous_window = window;
    previous_strategy = strategy;
    previous_attachment = attachment;
  };
  RunOk(bars, TurnConfig(), options);
  EXPECT_EQ(calls, 6);
  EXPECT_TRUE(previous_window.expired());
  EXPECT_TRUE(previous_strategy.expired());
  EXPECT_TRUE(previous_attachment.expired());
}

TEST(BacktestEngineHooksTest, ProgressIsReportedAtMostAboutAHundredTimes) {
  KlineSeries bars;
  for (int i = 0; i < 1234; ++i) {
    const double close = 100 + 10 * std::sin(i / 7.0);
    bars.push_back(Kline{i * kMinute, close, close + 1, close - 1, close, 1, 0});
  }
  std::vector<std::pair<int64_t, int64_t>> calls;
  EngineOptions options;
  options.on_progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  BacktestConfig config;
  config.strategy = "rsi";
  RunOk(bars, config, options);
  ASSERT_FALSE(calls.empty());
  EXPECT_LE(calls.size(), 101u);
  EXPECT_GE(calls.size(), 50u);
  EXPECT_EQ(calls.back(), (std::pair<int64_t, int64_t>{1234, 1234}));
  for (size_t k = 1; k < calls.size(); ++k) EXPECT_LT(calls[k - 1].first, calls[k].first);
}

TEST(BacktestEngineHooksTest, OnlyTheWindowAndTheStrategyAreAllocatedPerBar) {
  KlineSeries bars;
  for (int i = 0; i < 5000; ++i) {
    const double close = 100 + 10 * std::sin(i / 5.0);
    bars.push_back(Kline{i * kMinute, close, close + 1, close - 1, close, 1, 0});
  }
  BacktestConfig config;  // sma_cross, window 51, warmup 50
  const int64_t windows = 5000 - 50;
  BacktestEngine engine;
  const int64_t before = g_allocations.load();
  Result<BacktestResult> result = engine.Run(bars, config);
  const int64_t allocations = g_allocations.load() - before;
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  ASSERT_GT(result->stats.trades, 10);
  // One allocation each for the window and the strategy (make_shared), plus a few per run: the
  // resolved parameters, the equity curve, the spacing used for Sharpe, the growing trade list.
  EXPECT_GE(allocations, 2 * windows);
  EXPECT_LE(allocations, 2 * windows + 40) << "per-bar allocations crept into the loop";
}

// ---- errors ----

struct BadConfigCase {
  const char* field;
  void (*mutate)(BacktestConfig&);

  friend void PrintTo(const BadConfigCase& c, std::ostream* os) { *os << c.field; }
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, RejectedWithAMessageNamingTheField) {
  const KlineSeries bars = TwoTurns();
  BacktestConfig config = TurnConfig();
  GetParam().mutate(config);
  Result<BacktestResult> result = BacktestEngine().Run(bars, config);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(result.error().message, HasSubstr(GetParam().field));
}

INSTANTIATE_TEST_SUITE_P(
    Fields, BadConfigTest,
    ::testing::Values(
        BadConfigCase{"cash", [](BacktestConfig& c) { c.cash = 0; }},
        BadConfigCase{"cash",
                      [](BacktestConfig& c) { c.cash = std::numeric_limits<double>::infinity(); }},
        BadConfigCase{"fee_rate", [](BacktestConfig& c) { c.fee_rate = 0.5; }},
        BadConfigCase{"fee_rate", [](BacktestConfig& c) { c.fee_rate = -0.01; }},
        BadConfigCase{"slippage", [](BacktestConfig& c) { c.slippage = -0.1; }},
        BadConfigCase{"slippage", [](BacktestConfig& c) { c.slippage = std::nan(""); }},
        BadConfigCase{"window", [](BacktestConfig& c) { c.window = 2; }},  // sma_cross 1/2 needs 3
        BadConfigCase{"window", [](BacktestConfig& c) { c.window = 0; }},
        BadConfigCase{"warmup (1) must be >= window - 1 (2)",
                      [](BacktestConfig& c) { c.warmup = 1; }},
        BadConfigCase{"number of bars (8)", [](BacktestConfig& c) { c.warmup = 8; }},
        BadConfigCase{"bar_ms", [](BacktestConfig& c) { c.bar_ms = -1; }},
        BadConfigCase{"unknown strategy 'nope'", [](BacktestConfig& c) { c.strategy = "nope"; }},
        BadConfigCase{"'fast' (2) must be less than 'slow' (2)", [](BacktestConfig& c) {
                        c.params = {{"fast", 2}, {"slow", 2}};
                      }}));

TEST(BacktestEngineErrorsTest, InvalidSeriesIsRejectedBeforeAnyWindow) {
  KlineSeries bars = TwoTurns();
  bars[4].ts_ms = bars[3].ts_ms;  // not strictly increasing
  int64_t windows = 0;
  EngineOptions options;
  options.on_window = [&](const auto&, const auto&) { ++windows; };
  Result<BacktestResult> result = BacktestEngine(options).Run(bars, TurnConfig());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(windows, 0);
}

TEST(BacktestEngineErrorsTest, EmptySeriesIsRejected) {
  Result<BacktestResult> result = BacktestEngine().Run({}, TurnConfig());
  ASSERT_FALSE(result.has_value());
  EXPECT_THAT(result.error().message, HasSubstr("warmup"));
}

// ---- parsing and sizing helpers ----

TEST(BacktestEngineParseTest, SidesAndEndExit) {
  EXPECT_EQ(ParsePositionSides("long"), PositionSides::kLongOnly);
  EXPECT_EQ(ParsePositionSides("both"), PositionSides::kBoth);
  Result<PositionSides> bad = ParsePositionSides("short");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message, HasSubstr("'long' or 'both'"));
  EXPECT_EQ(PositionSidesName(PositionSides::kBoth), "both");
  EXPECT_EQ(ParseEndOfDataExit("close"), EndOfDataExit::kLastBarClose);
  EXPECT_EQ(ParseEndOfDataExit("open"), EndOfDataExit::kLastBarOpen);
  EXPECT_FALSE(ParseEndOfDataExit("mid").has_value());
}

TEST(PythonFloorDivTest, MatchesPythonsFloatFloorDivision) {
  // Values as CPython prints them for a // b.
  EXPECT_EQ(PythonFloorDiv(7, 2), 3);
  EXPECT_EQ(PythonFloorDiv(-7, 2), -4);
  EXPECT_EQ(PythonFloorDiv(7, -2), -4);
  // 1 // 0.1 is 9.0 in Python although 1 / 0.1 rounds to exactly 10.0.
  EXPECT_EQ(std::floor(1 / 0.1), 10);
  EXPECT_EQ(PythonFloorDiv(1, 0.1), 9);
  EXPECT_EQ(PythonFloorDiv(0.3, 0.1), 2);
  EXPECT_TRUE(std::signbit(PythonFloorDiv(-0.0, 3)));
  EXPECT_EQ(PythonFloorDiv(10000 * (1 - 0x1p-52), 10), 999);
}

}  // namespace
}  // namespace leakgate::engine
