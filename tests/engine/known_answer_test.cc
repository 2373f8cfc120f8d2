// The engine against published figures: the SMA(10)/SMA(30) crossover on GOOG daily bars, whose
// statistics the backtesting.py project asserts in its own test suite (see the data folder's
// README).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/backtest_engine.h"
#include "engine/csv_loader.h"

namespace leakgate::engine {
namespace {

std::string SharedDataDir() {
  if (const char* env = std::getenv("LEAKGATE_SHARED_DATA"); env != nullptr && *env != '\0') {
    return env;
  }
  return LEAKGATE_SHARED_DATA_DIR;
}

// Relative tolerance of the published figures' own test.
constexpr double kRelative = 1e-8;

void ExpectNear(double actual, double expected, const char* what) {
  EXPECT_NEAR(actual, expected, std::fabs(expected) * kRelative) << what;
}

class GoogKnownAnswerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = SharedDataDir() + "/GOOG.csv";
    if (!std::filesystem::exists(path)) {
      GTEST_SKIP() << path << " is absent; set LEAKGATE_SHARED_DATA to the folder holding GOOG.csv";
    }
    Result<KlineSeries> loaded = LoadKlinesCsv(path);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
    bars_ = std::move(*loaded);
  }

  static BacktestConfig SmaCrossConfig() {
    BacktestConfig config;
    config.strategy = "sma_cross";
    config.params = {{"fast", 10}, {"slow", 30}};
    config.cash = 10000;
    config.sides = PositionSides::kBoth;
    config.warmup = 30;
    config.window = 31;
    config.fee_rate = 0;
    return config;
  }

  KlineSeries bars_;
};

TEST_F(GoogKnownAnswerTest, SmaCrossMatchesPublishedStatistics) {
  ASSERT_EQ(bars_.size(), 2148u);
  Result<BacktestResult> result = BacktestEngine().Run(bars_, SmaCrossConfig());
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  const Statistics& s = result->stats;
  EXPECT_EQ(s.trades, 66);
  EXPECT_EQ(result->trades.size(), 66u);
  ExpectNear(s.return_pct, 414.2298999999996, "return");
  ExpectNear(s.final_equity, 51422.98999999996, "final equity");
  ExpectNear(s.peak_equity, 75787.44, "peak equity");
  ExpectNear(s.max_drawdown_pct, -47.98012705007589, "max drawdown");
  ExpectNear(s.win_rate_pct, 46.96969696969697, "win rate");
  ExpectNear(s.profit_factor, 2.167945974262033, "profit factor");
  ExpectNear(s.best_trade_pct, 53.59595229490424, "best trade");
  ExpectNear(s.worst_trade_pct, -18.39887353835481, "worst trade");
  ExpectNear(s.buy_hold_return_pct, 522.0601851851852, "buy & hold");
  ExpectNear(s.exposure_pct, 96.74115456238361, "exposure");
  EXPECT_EQ(s.total_fees, 0);
  EXPECT_TRUE(std::isfinite(s.sharpe));
}

TEST_F(GoogKnownAnswerTest, TradesAlternateAndTheLastClosesOnTheLastBar) {
  Result<BacktestResult> result = BacktestEngine().Run(bars_, SmaCrossConfig());
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  const auto& trades = result->trades;
  ASSERT_FALSE(trades.empty());
  for (size_t t = 1; t < trades.size(); ++t) {
    EXPECT_NE(trades[t].side, trades[t - 1].side) << "trade " << t;
    EXPECT_EQ(trades[t].entry_index, trades[t - 1].exit_index)
        << "reversal on one fill, trade " << t;
  }
  // The first decision is on bar 30, so the first fill is no earlier than bar 31.
  EXPECT_GE(trades.front().entry_index, 31);
  EXPECT_EQ(trades.back().exit_index, static_cast<int64_t>(bars_.size()) - 1);
  EXPECT_EQ(trades.back().exit_price, bars_.back().open);
  ASSERT_EQ(result->equity_curve.size(), bars_.size());
  EXPECT_EQ(result->equity_curve.back(), result->stats.final_equity);
}

// The published figures close the last open trade at the last bar's open (the order placed after
// the last decision fills there, like every order). Marking it out at the last close instead gives
// different figures, which shows that the known answer pins the end-of-data rule.
TEST_F(GoogKnownAnswerTest, ExitAtLastCloseDiffersFromPublishedFigures) {
  BacktestConfig config = SmaCrossConfig();
  config.end_of_data_exit = EndOfDataExit::kLastBarClose;
  Result<BacktestResult> result = BacktestEngine().Run(bars_, config);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->stats.trades, 66);
  EXPECT_EQ(result->trades.back().exit_price, bars_.back().close);
  EXPECT_GT(std::fabs(result->stats.final_equity - 51422.98999999996), 1.0);
  // Exposure does not depend on the exit price.
  ExpectNear(result->stats.exposure_pct, 96.74115456238361, "exposure");
}

}  // namespace
}  // namespace leakgate::engine
