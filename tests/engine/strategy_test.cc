// Strategies on typed-in windows whose indicators are worked out by hand in the comments.
#include "engine/strategy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <ostream>
#include <vector>

namespace leakgate::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

KlineSeries BarsFromCloses(const std::vector<double>& closes) {
  KlineSeries bars;
  for (size_t i = 0; i < closes.size(); ++i) {
    const double close = closes[i];
    bars.push_back(Kline{static_cast<int64_t>(i) * 60'000, close, close, close, close, 1, 0});
  }
  return bars;
}

// Builds `name` on a window viewing all of `bars` and returns its signal.
Signal DecideOn(std::string_view name, const KlineSeries& bars, const StrategyParams& params) {
  auto window = std::make_shared<KlineWindow>(KlineWindow{bars, nullptr});
  Result<std::shared_ptr<Strategy>> strategy = GetStrategy(name, window, params);
  EXPECT_TRUE(strategy.has_value()) << strategy.error().ToString();
  if (!strategy) return Signal::kHold;
  EXPECT_EQ((*strategy)->name(), name);
  return (*strategy)->Decide();
}

// ---- sma_cross ----

TEST(SmaCrossTest, BuysWhenFastCrossesAboveSlowOnTheLastTwoBars) {
  // fast=2, slow=3 on closes 10 9 8 12:
  //   previous bar: fast (9+8)/2 = 8.5  < slow (10+9+8)/3 = 9
  //   last bar:     fast (8+12)/2 = 10  > slow (9+8+12)/3 = 9.67
  EXPECT_EQ(DecideOn("sma_cross", BarsFromCloses({10, 9, 8, 12}), {{"fast", 2}, {"slow", 3}}),
            Signal::kBuy);
}

TEST(SmaCrossTest, SellsWhenFastCrossesBelowSlow) {
  // previous: fast (9+10)/2 = 9.5 > slow 27/3 = 9; last: fast (10+6)/2 = 8 < slow 25/3 = 8.33
  EXPECT_EQ(DecideOn("sma_cross", BarsFromCloses({8, 9, 10, 6}), {{"fast", 2}, {"slow", 3}}),
            Signal::kSell);
}

TEST(SmaCrossTest, HoldsWithoutACross) {
  // Falling closes: fast stays below slow on both bars.
  EXPECT_EQ(DecideOn("sma_cross", BarsFromCloses({10, 9, 8, 7}), {{"fast", 2}, {"slow", 3}}),
            Signal::kHold);
}

TEST(SmaCrossTest, EqualAveragesOnThePreviousBarAreNoCross) {
  // previous: fast (9+9)/2 = 9 == slow 9: crossover needs fast[-2] < slow[-2] strictly.
  EXPECT_EQ(DecideOn("sma_cross", BarsFromCloses({9, 9, 9, 12}), {{"fast", 2}, {"slow", 3}}),
            Signal::kHold);
}

TEST(SmaCrossTest, LooksOnlyAtTheLastBarsOfALongerWindow) {
  // Leading bars outside slow + 1 do not matter.
  EXPECT_EQ(DecideOn("sma_cross", BarsFromCloses({1000, 1, 500, 10, 9, 8, 12}),
                     {{"fast", 2}, {"slow", 3}}),
            Signal::kBuy);
}

TEST(SmaCrossTest, DefaultsAreTenAndThirty) {
  // 30 falling closes then a jump: with fast=10, slow=30 the fast average crosses above on the last
  // bar only if the defaults are used (a shorter slow average would have crossed already or not at
  // all).
  std::vector<double> closes;
  for (int i = 0; i < 30; ++i) closes.push_back(100 - i);  // 100 .. 71
  // previous bar: fast = mean(80..71) = 75.5 < slow = mean(100..71) = 85.5
  // last bar with close x: fast = (75.5*10 - 80 + x)/10, slow = (85.5*30 - 100 + x)/30
  // fast > slow  <=>  (675 + x)/10 > (2465 + x)/30  <=>  2025 + 3x > 2465 + x  <=>  x > 220
  closes.push_back(221);
  EXPECT_EQ(DecideOn("sma_cross", BarsFromCloses(closes), {}), Signal::kBuy);
  closes.back() = 219;
  EXPECT_EQ(DecideOn("sma_cross", BarsFromCloses(closes), {}), Signal::kHold);
}

TEST(SimpleMovingAverageTest, AveragesTheClosesBeforeEnd) {
  const KlineSeries bars = BarsFromCloses({1, 2, 3, 4, 10});
  EXPECT_DOUBLE_EQ(SimpleMovingAverage(bars, 4, 2), 3.5);
  EXPECT_DOUBLE_EQ(SimpleMovingAverage(bars, 5, 5), 4.0);
}

// ---- rsi ----

TEST(WilderRsiTest, MatchesAHandComputedValue) {
  // period 3, closes 10 11 10.5 11.5 11 12 -> changes +1 -0.5 +1 -0.5 +1
  // seed over the first 3 changes: gain 2/3, loss 0.5/3 = 1/6
  // change -0.5: gain (2/3*2 + 0)/3 = 4/9,   loss (1/6*2 + 0.5)/3 = 5/18
  // change +1:   gain (4/9*2 + 1)/3 = 17/27, loss (5/18*2 + 0)/3 = 5/27
  // RS = 17/5, RSI = 100 - 100/4.4 = 850/11 = 77.2727...
  // (a simple average of the last 3 changes would give RS = 4, RSI = 80.)
  EXPECT_NEAR(WilderRsi(BarsFromCloses({10, 11, 10.5, 11.5, 11, 12}), 3), 850.0 / 11.0, 1e-12);
}

TEST(WilderRsiTest, HandlesOneSidedAndFlatWindows) {
  EXPECT_EQ(WilderRsi(BarsFromCloses({1, 2, 3, 4}), 2), 100.0);  // no loss
  EXPECT_EQ(WilderRsi(BarsFromCloses({4, 3, 2, 1}), 2), 0.0);    // no gain
  EXPECT_EQ(WilderRsi(BarsFromCloses({5, 5, 5, 5}), 2), 50.0);   // neither
}

TEST(RsiStrategyTest, SignalsAgainstItsThresholds) {
  const KlineSeries bars = BarsFromCloses({10, 11, 10.5, 11.5, 11, 12});  // RSI(3) = 77.27
  EXPECT_EQ(DecideOn("rsi", bars, {{"period", 3}}), Signal::kSell);       // > upper 70
  EXPECT_EQ(DecideOn("rsi", bars, {{"period", 3}, {"lower", 77.3}, {"upper", 90}}), Signal::kBuy);
  EXPECT_EQ(DecideOn("rsi", bars, {{"period", 3}, {"lower", 77.2}, {"upper", 77.3}}),
            Signal::kHold);
  // RSI(3) of a straight fall is 0 < 30: oversold.
  EXPECT_EQ(DecideOn("rsi", BarsFromCloses({9, 8, 7, 6}), {{"period", 3}}), Signal::kBuy);
}

// ---- bollinger ----

TEST(BollingerTest, UsesThePopulationStandardDeviation) {
  // closes 2 4 4 4 5 5 7 9: mean 5, squared deviations 9+1+1+1+0+0+4+16 = 32,
  // population sd sqrt(32/8) = 2 (the sample sd would be sqrt(32/7) = 2.14).
  const KlineSeries bars = BarsFromCloses({2, 4, 4, 4, 5, 5, 7, 9});
  const BollingerBand band = ComputeBollingerBand(bars, 8);
  EXPECT_DOUBLE_EQ(band.mean, 5.0);
  EXPECT_DOUBLE_EQ(band.stddev, 2.0);
  // Upper band with k=1.9: 5 + 3.8 = 8.8 < 9 -> Sell (with the sample sd: 9.06 > 9 -> Hold).
  EXPECT_EQ(DecideOn("bollinger", bars, {{"period", 8}, {"k", 1.9}}), Signal::kSell);
  // k=2: upper band 9 == close: not above.
  EXPECT_EQ(DecideOn("bollinger", bars, {{"period", 8}, {"k", 2}}), Signal::kHold);
}

TEST(BollingerTest, BuysBelowTheLowerBand) {
  // Mirror image: closes 8 6 6 6 5 5 3 1, mean 5, sd 2, lower band with k=1.9 is 1.2 > 1.
  EXPECT_EQ(
      DecideOn("bollinger", BarsFromCloses({8, 6, 6, 6, 5, 5, 3, 1}), {{"period", 8}, {"k", 1.9}}),
      Signal::kBuy);
}

TEST(BollingerTest, UsesOnlyTheLastPeriodBars) {
  const KlineSeries bars = BarsFromCloses({1000, 2, 4, 4, 4, 5, 5, 7, 9});
  const BollingerBand band = ComputeBollingerBand(bars, 8);
  EXPECT_DOUBLE_EQ(band.mean, 5.0);
  EXPECT_DOUBLE_EQ(band.stddev, 2.0);
}

// ---- registry and validation ----

TEST(StrategyRegistryTest, KnowsItsStrategies) {
  EXPECT_THAT(KnownStrategies(), ElementsAre("bollinger", "rsi", "sma_cross"));
}

TEST(StrategyRegistryTest, UnknownNameListsTheKnownOnes) {
  auto window = std::make_shared<KlineWindow>(KlineWindow{});
  Result<std::shared_ptr<Strategy>> strategy = GetStrategy("macd", window, {});
  ASSERT_FALSE(strategy.has_value());
  EXPECT_EQ(strategy.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(strategy.error().message, HasSubstr("'macd'"));
  EXPECT_THAT(strategy.error().message, HasSubstr("bollinger, rsi, sma_cross"));
  Result<StrategyInfo> info = DescribeStrategy("macd");
  ASSERT_FALSE(info.has_value());
  EXPECT_THAT(info.error().message, HasSubstr("bollinger, rsi, sma_cross"));
  EXPECT_FALSE(ValidateStrategy("macd", {}, 100).has_value());
}

TEST(StrategyRegistryTest, DescribesParametersAndDefaults) {
  Result<StrategyInfo> info = DescribeStrategy("rsi");
  ASSERT_TRUE(info.has_value());
  ASSERT_EQ(info->params.size(), 3u);
  EXPECT_EQ(info->params[0].name, "lower");
  EXPECT_EQ(info->params[0].default_value, 30);
  EXPECT_EQ(info->params[1].name, "period");
  EXPECT_EQ(info->params[1].default_value, 14);
  EXPECT_TRUE(info->params[1].whole_number);
  EXPECT_EQ(info->params[2].name, "upper");
  EXPECT_EQ(info->params[2].default_value, 70);
}

TEST(ValidateStrategyTest, FillsDefaults) {
  Result<StrategyParams> rsi = ValidateStrategy("rsi", {{"upper", 80}}, 51);
  ASSERT_TRUE(rsi.has_value()) << rsi.error().ToString();
  EXPECT_EQ(*rsi, (StrategyParams{{"lower", 30}, {"period", 14}, {"upper", 80}}));
  Result<StrategyParams> sma = ValidateStrategy("sma_cross", {}, 51);
  ASSERT_TRUE(sma.has_value());
  EXPECT_EQ(*sma, (StrategyParams{{"fast", 10}, {"slow", 30}}));
}

TEST(ValidateStrategyTest, ReportsTheBarsTheWindowNeeds) {
  EXPECT_EQ(StrategyBarsNeeded("sma_cross", {}), 31);
  EXPECT_EQ(StrategyBarsNeeded("rsi", {}), 15);
  EXPECT_EQ(StrategyBarsNeeded("bollinger", {}), 20);
  EXPECT_TRUE(ValidateStrategy("sma_cross", {}, 31).has_value());
  Result<StrategyParams> short_window = ValidateStrategy("sma_cross", {}, 30);
  ASSERT_FALSE(short_window.has_value());
  EXPECT_THAT(short_window.error().message, HasSubstr("at least 31 bars"));
  EXPECT_THAT(short_window.error().message, HasSubstr("window is 30"));
}

struct BadParamsCase {
  const char* strategy;
  StrategyParams params;
  const char* expected;  // part of the message

  friend void PrintTo(const BadParamsCase& c, std::ostream* os) {
    *os << c.strategy << ": " << c.expected;
  }
};

class BadParamsTest : public ::testing::TestWithParam<BadParamsCase> {};

TEST_P(BadParamsTest, RejectedWithAMessageNamingTheParameter) {
  const BadParamsCase& c = GetParam();
  Result<StrategyParams> result = ValidateStrategy(c.strategy, c.params, 1000);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(result.error().message, HasSubstr(c.expected));
  EXPECT_THAT(result.error().message, HasSubstr(c.strategy));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadParamsTest,
    ::testing::Values(
        BadParamsCase{
            "sma_cross", {{"fast", 30}, {"slow", 10}}, "'fast' (30) must be less than 'slow' (10)"},
        BadParamsCase{"sma_cross", {{"fast", 20}, {"slow", 20}}, "must be less than 'slow'"},
        BadParamsCase{"sma_cross", {{"fast", 0}}, "'fast' must be >= 1"},
        BadParamsCase{"sma_cross", {{"fast", 2.5}}, "'fast' must be a whole number"},
        BadParamsCase{"sma_cross",
                      {{"period", 3}},
                      "unknown parameter 'period'; known parameters: fast, slow"},
        BadParamsCase{"rsi", {{"period", 1}}, "'period' must be >= 2"},
        BadParamsCase{
            "rsi", {{"lower", 70}, {"upper", 30}}, "'lower' (70) must be less than 'upper' (30)"},
        BadParamsCase{"rsi", {{"upper", 120}}, "[0, 100]"},
        BadParamsCase{"rsi", {{"lower", std::numeric_limits<double>::quiet_NaN()}}, "finite"},
        BadParamsCase{"bollinger", {{"k", 0}}, "'k' must be > 0"},
        BadParamsCase{"bollinger", {{"k", -1}}, "'k' must be > 0"},
        BadParamsCase{"bollinger", {{"period", 1}}, "'period' must be >= 2"}));

// ---- the per-window factory ----

TEST(GetStrategyTest, TheStrategySharesOwnershipOfItsWindow) {
  const KlineSeries bars = BarsFromCloses({10, 9, 8, 12});
  auto window = std::make_shared<KlineWindow>(KlineWindow{bars, nullptr});
  std::weak_ptr<KlineWindow> watch = window;
  Result<std::shared_ptr<Strategy>> strategy =
      GetStrategy("sma_cross", window, {{"fast", 2}, {"slow", 3}});
  ASSERT_TRUE(strategy.has_value());
  EXPECT_EQ(window.use_count(), 2);
  window.reset();
  EXPECT_FALSE(watch.expired()) << "the strategy keeps its window alive";
  EXPECT_EQ((*strategy)->Decide(), Signal::kBuy);
  strategy->reset();
  EXPECT_TRUE(watch.expired()) << "releasing the strategy releases the window";
}

TEST(GetStrategyTest, RefusesAWindowTooShortOrNull) {
  const KlineSeries bars = BarsFromCloses({10, 9, 8});
  auto window = std::make_shared<KlineWindow>(KlineWindow{bars, nullptr});
  Result<std::shared_ptr<Strategy>> sma =
      GetStrategy("sma_cross", window, {{"fast", 2}, {"slow", 3}});
  ASSERT_FALSE(sma.has_value());
  EXPECT_THAT(sma.error().message, HasSubstr("at least 4 bars, got 3"));
  EXPECT_FALSE(GetStrategy("rsi", window, {{"period", 3}}).has_value());
  EXPECT_FALSE(GetStrategy("bollinger", window, {{"period", 4}}).has_value());
  EXPECT_TRUE(GetStrategy("bollinger", window, {{"period", 3}}).has_value());
  EXPECT_FALSE(GetStrategy("rsi", nullptr, {}).has_value());
  EXPECT_FALSE(GetStrategy("rsi", window, {{"period", 0}}).has_value());
}

TEST(SignalNameTest, NamesEachSignal) {
  EXPECT_EQ(SignalName(Signal::kHold), "hold");
  EXPECT_EQ(SignalName(Signal::kBuy), "buy");
  EXPECT_EQ(SignalName(Signal::kSell), "sell");
}

}  // namespace
}  // namespace leakgate::engine
