#include "engine/synthetic_market.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "engine/kline.h"

namespace leakgate::engine {
namespace {

using ::testing::HasSubstr;

Timeframe Tf(std::string_view name) { return ParseTimeframe(name).value(); }

int64_t Ts(std::string_view text) { return ParseTimestamp(text).value(); }

KlineSeries Bars(const SyntheticMarket& market, std::string_view symbol, std::string_view tf,
                 int64_t start, int64_t end) {
  Result<KlineSeries> bars = market.Generate(symbol, Tf(tf), start, end);
  EXPECT_TRUE(bars.has_value()) << bars.error().ToString();
  return bars.value_or(KlineSeries{});
}

TEST(SyntheticMarketTest, SameSeedGivesSameBarsAndOtherSeedOrSymbolDiffers) {
  const int64_t start = Ts("2024-01-01");
  const int64_t end = Ts("2024-01-02");
  SyntheticMarket a(SyntheticMarketOptions{.seed = 7});
  SyntheticMarket a_again(SyntheticMarketOptions{.seed = 7});
  SyntheticMarket b(SyntheticMarketOptions{.seed = 8});
  const KlineSeries first = Bars(a, "BTCUSDT", "1m", start, end);
  ASSERT_EQ(first.size(), 1440u);
  EXPECT_EQ(first, Bars(a, "BTCUSDT", "1m", start, end));
  EXPECT_EQ(first, Bars(a_again, "BTCUSDT", "1m", start, end));

  const KlineSeries other_seed = Bars(b, "BTCUSDT", "1m", start, end);
  const KlineSeries other_symbol = Bars(a, "ETHUSDT", "1m", start, end);
  ASSERT_EQ(other_seed.size(), first.size());
  ASSERT_EQ(other_symbol.size(), first.size());
  int same_close_seed = 0;
  int same_close_symbol = 0;
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(other_seed[i].ts_ms, first[i].ts_ms);
    same_close_seed += other_seed[i].close == first[i].close;
    same_close_symbol += other_symbol[i].close == first[i].close;
  }
  EXPECT_EQ(same_close_seed, 0);
  EXPECT_EQ(same_close_symbol, 0);
}

TEST(SyntheticMarketTest, SymbolsStartAtDifferentPriceLevels) {
  SyntheticMarket market;
  const int64_t start = Ts("2024-01-01");
  const double btc = Bars(market, "BTCUSDT", "1D", start, start + 86'400'000)[0].open;
  const double eth = Bars(market, "ETHUSDT", "1D", start, start + 86'400'000)[0].open;
  EXPECT_GT(std::abs(std::log(btc / eth)), 0.05) << btc << " vs " << eth;
}

TEST(SyntheticMarketTest, BasePriceSetsTheLevelAtTheAnchorTime) {
  const int64_t anchor = Ts("2020-01-01");
  for (const char* symbol : {"BTCUSDT", "ETHUSDT", "X"}) {
    for (const char* tf : {"1m", "1H", "1D"}) {
      const double at_100 = Bars(SyntheticMarket(), symbol, tf, anchor, anchor + 1)[0].open;
      const double at_250 = Bars(SyntheticMarket(SyntheticMarketOptions{.base_price = 250}), symbol,
                                 tf, anchor, anchor + 1)[0]
                                .open;
      // The per-symbol scale lies in [e^-2, e^2] and is the same for every timeframe.
      EXPECT_GE(at_100, 100 * std::exp(-2.0)) << symbol << " " << tf;
      EXPECT_LE(at_100, 100 * std::exp(2.0)) << symbol << " " << tf;
      EXPECT_NEAR(at_250 / at_100, 2.5, 1e-9) << symbol << " " << tf;
      EXPECT_NEAR(at_100, Bars(SyntheticMarket(), symbol, "1m", anchor, anchor + 1)[0].open, 1e-9)
          << symbol << " " << tf;
    }
  }
}

TEST(SyntheticMarketTest, AdjacentRangesConcatenateToTheWholeRange) {
  SyntheticMarket market;
  struct Case {
    std::string tf;
    int64_t a, b, c;
  };
  const std::vector<Case> cases = {
      // Split points fall inside blocks and on odd minutes, not on block boundaries.
      {"1m", Ts("2024-03-01T00:00"), Ts("2024-03-01T17:23"), Ts("2024-03-03T05:00")},
      {"1D", Ts("2019-01-01"), Ts("2021-07-14"), Ts("2024-01-01")},
      {"1H", Ts("1969-12-01"), Ts("1970-01-01T05:00"), Ts("1970-03-01")},  // across the anchor
  };
  for (const Case& c : cases) {
    const KlineSeries whole = Bars(market, "BTCUSDT", c.tf, c.a, c.c);
    KlineSeries joined = Bars(market, "BTCUSDT", c.tf, c.a, c.b);
    const KlineSeries tail = Bars(market, "BTCUSDT", c.tf, c.b, c.c);
    ASSERT_FALSE(joined.empty());
    ASSERT_FALSE(tail.empty());
    joined.insert(joined.end(), tail.begin(), tail.end());
    EXPECT_EQ(joined, whole) << c.tf;
    // One continuous walk: each bar opens where the previous one closed.
    for (size_t i = 1; i < whole.size(); ++i) {
      ASSERT_EQ(whole[i].open, whole[i - 1].close) << c.tf << " bar " << i;
    }
  }
}

TEST(SyntheticMarketTest, SubRangeOfBigRangeEqualsTheSameBarsRequestedAlone) {
  SyntheticMarket market;
  struct Case {
    std::string tf;
    int64_t big_start, big_end, sub_start, sub_end;
  };
  const std::vector<Case> cases = {
      {"1m", Ts("2024-01-01"), Ts("2024-02-01"), Ts("2024-01-17T08:09"), Ts("2024-01-17T08:30")},
      {"1m", Ts("2024-01-01"), Ts("2024-02-01"), Ts("2024-01-31T23:59"), Ts("2024-02-01")},
      {"1D", Ts("2015-01-01"), Ts("2025-01-01"), Ts("2020-02-29"), Ts("2020-03-02")},
  };
  for (const Case& c : cases) {
    const KlineSeries big = Bars(market, "SOLUSDT", c.tf, c.big_start, c.big_end);
    const KlineSeries sub = Bars(market, "SOLUSDT", c.tf, c.sub_start, c.sub_end);
    ASSERT_FALSE(sub.empty()) << c.tf;
    const int64_t offset = (sub.front().ts_ms - big.front().ts_ms) / Tf(c.tf).ms;
    ASSERT_LE(offset + sub.size(), big.size());
    const KlineSeries slice(big.begin() + offset, big.begin() + offset + sub.size());
    EXPECT_EQ(slice, sub) << c.tf << " " << FormatTimestamp(c.sub_start);
  }
}

TEST(SyntheticMarketTest, BarsAreAlignedToTheTimeframeAndCountMatches) {
  SyntheticMarket market;
  const std::vector<std::string> names = {"1m", "15m", "4H", "1D", "1W"};
  const int64_t start = Ts("2024-01-03T10:17:30.5");
  const int64_t end = Ts("2024-03-09T01:02");
  for (const std::string& name : names) {
    const Timeframe tf = Tf(name);
    const KlineSeries bars = Bars(market, "BTCUSDT", name, start, end);
    EXPECT_EQ(static_cast<int64_t>(bars.size()), SyntheticMarket::CountBars(tf, start, end))
        << name;
    ASSERT_FALSE(bars.empty()) << name;
    EXPECT_GE(bars.front().ts_ms, start) << name;
    EXPECT_LT(bars.front().ts_ms - tf.ms, start) << name << ": the first aligned bar was skipped";
    EXPECT_LT(bars.back().ts_ms, end) << name;
    EXPECT_GE(bars.back().ts_ms + tf.ms, end) << name << ": the last bar before end is missing";
    for (size_t i = 0; i < bars.size(); ++i) {
      ASSERT_EQ(bars[i].ts_ms % tf.ms, 0) << name;
      if (i > 0) {
        ASSERT_EQ(bars[i].ts_ms - bars[i - 1].ts_ms, tf.ms) << name;
      }
    }
  }
}

TEST(SyntheticMarketTest, CountBarsHandlesEdges) {
  const Timeframe hour = Tf("1H");
  const int64_t h = hour.ms;
  EXPECT_EQ(SyntheticMarket::CountBars(hour, 0, 0), 0);
  EXPECT_EQ(SyntheticMarket::CountBars(hour, 0, 1), 1);
  EXPECT_EQ(SyntheticMarket::CountBars(hour, 1, h), 0);
  EXPECT_EQ(SyntheticMarket::CountBars(hour, 1, h + 1), 1);
  EXPECT_EQ(SyntheticMarket::CountBars(hour, 0, 24 * h), 24);
  EXPECT_EQ(SyntheticMarket::CountBars(hour, -h, h), 2);
  EXPECT_EQ(SyntheticMarket::CountBars(hour, 5 * h, h), 0);
}

TEST(SyntheticMarketTest, EveryBarPassesValidation) {
  SyntheticMarket market(SyntheticMarketOptions{.seed = 3, .annual_volatility = 1.5});
  struct Case {
    const char* tf;
    const char* start;
  };
  for (const Case& c : {Case{"1m", "2023-11-01"}, Case{"1H", "2020-01-01"},
                        Case{"1D", "1960-01-01"}, Case{"1W", "1960-01-01"}}) {
    const char* tf = c.tf;
    const KlineSeries bars = Bars(market, "DOGEUSDT", tf, Ts(c.start), Ts("2024-01-01"));
    ASSERT_FALSE(bars.empty());
    Result<void> valid = ValidateSeries(bars);
    EXPECT_TRUE(valid.has_value()) << tf << ": " << valid.error().ToString();
    for (const Kline& bar : bars) {
      ASSERT_GT(bar.volume, 0) << tf;
      ASSERT_TRUE(std::isfinite(bar.quote_volume) && bar.quote_volume > 0) << tf;
    }
  }
}

TEST(SyntheticMarketTest, EmptyRangeGivesNoBars) {
  SyntheticMarket market;
  Result<KlineSeries> bars = market.Generate("BTCUSDT", Tf("1H"), 1000, 1000);
  ASSERT_TRUE(bars.has_value()) << bars.error().ToString();
  EXPECT_TRUE(bars->empty());
}

TEST(SyntheticMarketTest, RejectsInvertedRangeEmptySymbolAndTooManyBars) {
  SyntheticMarket market;
  const int64_t start = Ts("2024-01-02");
  const int64_t end = Ts("2024-01-01");
  Result<KlineSeries> inverted = market.Generate("BTCUSDT", Tf("1H"), start, end);
  ASSERT_FALSE(inverted.has_value());
  EXPECT_EQ(inverted.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(inverted.error().message, HasSubstr("2024-01-01T00:00:00Z"));
  EXPECT_THAT(inverted.error().message, HasSubstr("2024-01-02T00:00:00Z"));

  Result<KlineSeries> no_symbol = market.Generate("", Tf("1H"), end, start);
  ASSERT_FALSE(no_symbol.has_value());
  EXPECT_THAT(no_symbol.error().message, HasSubstr("symbol"));

  // One day of 1m bars is 1440 bars.
  Result<KlineSeries> too_many = market.Generate("BTCUSDT", Tf("1m"), end, start, 1439);
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(too_many.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(too_many.error().message, HasSubstr("1440"));
  EXPECT_THAT(too_many.error().message, HasSubstr("1439"));
  Result<KlineSeries> at_limit = market.Generate("BTCUSDT", Tf("1m"), end, start, 1440);
  ASSERT_TRUE(at_limit.has_value()) << at_limit.error().ToString();
  EXPECT_EQ(at_limit->size(), 1440u);
}

TEST(SyntheticMarketTest, RejectsOptionsThatCannotMakeValidBars) {
  const int64_t start = Ts("2024-01-01");
  struct Case {
    std::string what;
    SyntheticMarketOptions options;
    std::string named;
  };
  const std::vector<Case> cases = {
      {"zero base price", {.base_price = 0}, "base_price"},
      {"negative volatility", {.annual_volatility = -0.1}, "annual_volatility"},
      {"infinite drift", {.annual_drift = std::numeric_limits<double>::infinity()}, "annual_drift"},
      {"nan base price", {.base_price = std::numeric_limits<double>::quiet_NaN()}, "base_price"},
  };
  for (const Case& c : cases) {
    Result<KlineSeries> bars =
        SyntheticMarket(c.options).Generate("BTCUSDT", Tf("1H"), start, start + 86'400'000);
    ASSERT_FALSE(bars.has_value()) << c.what;
    EXPECT_EQ(bars.error().code, ErrorCode::kInvalidArgument) << c.what;
    EXPECT_THAT(bars.error().message, HasSubstr(c.named)) << c.what;
  }
  // Zero volatility is a valid, deterministic drift.
  Result<KlineSeries> flat = SyntheticMarket(SyntheticMarketOptions{.annual_volatility = 0})
                                 .Generate("BTCUSDT", Tf("1D"), start, start + 10 * 86'400'000);
  ASSERT_TRUE(flat.has_value()) << flat.error().ToString();
  EXPECT_TRUE(ValidateSeries(*flat).has_value());
}

TEST(SyntheticMarketTest, RejectsRangesOutsideTheSupportedYears) {
  SyntheticMarket market;
  for (const auto& [start, end] :
       {std::pair{Ts("1899-12-31"), Ts("1900-01-02")},
        std::pair{Ts("2199-12-31"), Ts("2200-01-02")},
        std::pair{int64_t{100'000'000'000'000'000}, int64_t{100'000'000'000'060'000}}}) {
    Result<KlineSeries> bars = market.Generate("BTCUSDT", Tf("1m"), start, end);
    ASSERT_FALSE(bars.has_value()) << FormatTimestamp(start);
    EXPECT_EQ(bars.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(bars.error().message, HasSubstr("1900-01-01T00:00:00Z .. 2200-01-01T00:00:00Z"));
  }
  // The edges themselves are inside.
  Result<KlineSeries> early =
      market.Generate("BTCUSDT", Tf("1m"), Ts("1900-01-01"), Ts("1900-01-01T00:10"));
  ASSERT_TRUE(early.has_value()) << early.error().ToString();
  EXPECT_EQ(early->size(), 10u);
  EXPECT_TRUE(ValidateSeries(*early).has_value());
}

// Annualised standard deviation of close-to-close log returns.
double AnnualisedVolatility(const KlineSeries& bars, int64_t tf_ms) {
  std::vector<double> returns;
  for (size_t i = 1; i < bars.size(); ++i)
    returns.push_back(std::log(bars[i].close / bars[i - 1].close));
  double mean = 0;
  for (double r : returns) mean += r;
  mean /= static_cast<double>(returns.size());
  double var = 0;
  for (double r : returns) var += (r - mean) * (r - mean);
  var /= static_cast<double>(returns.size() - 1);
  const double bars_per_year = 365.0 * 86'400'000.0 / static_cast<double>(tf_ms);
  return std::sqrt(var * bars_per_year);
}

TEST(SyntheticMarketTest, RealisedVolatilityMatchesTheOption) {
  for (double sigma : {0.2, 0.6, 1.2}) {
    SyntheticMarket market(SyntheticMarketOptions{.seed = 11, .annual_volatility = sigma});
    for (const char* tf : {"5m", "1H", "1D"}) {
      // At least 20,000 returns for each timeframe.
      const Timeframe timeframe = Tf(tf);
      const int64_t start = Ts("2000-01-01");
      const KlineSeries bars = Bars(market, "BTCUSDT", tf, start, start + 20'001 * timeframe.ms);
      const double realised = AnnualisedVolatility(bars, timeframe.ms);
      EXPECT_NEAR(realised, sigma, 0.2 * sigma) << tf << " sigma " << sigma;
    }
  }
}

TEST(SyntheticMarketTest, GeneratesOneMillionBarsQuickly) {
  SyntheticMarket market;
  const int64_t start = Ts("2022-01-01");
  const auto t0 = std::chrono::steady_clock::now();
  Result<KlineSeries> bars =
      market.Generate("BTCUSDT", Tf("1m"), start, start + int64_t{1'000'000} * 60'000);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(bars.has_value()) << bars.error().ToString();
  EXPECT_EQ(bars->size(), 1'000'000u);
  RecordProperty("seconds_for_1m_bars", std::to_string(seconds));
  std::printf("generated 1,000,000 1m bars in %.3f s\n", seconds);
  // Generous for a loaded or instrumented build; the optimised build takes a fraction of this.
  EXPECT_LT(seconds, 2.0);
}

}  // namespace
}  // namespace leakgate::engine
