#include "engine/kline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/error.h"

namespace leakgate::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

struct TimeframeCase {
  std::string input;
  std::string canonical;
  int64_t ms;
};

TEST(ParseTimeframeTest, AcceptsCanonicalNamesAndLowerCaseAliases) {
  const std::vector<TimeframeCase> cases = {
      {"1m", "1m", kMinute},        {"3m", "3m", 3 * kMinute},    {"5m", "5m", 5 * kMinute},
      {"15m", "15m", 15 * kMinute}, {"30m", "30m", 30 * kMinute}, {"1H", "1H", kHour},
      {"4H", "4H", 4 * kHour},      {"6H", "6H", 6 * kHour},      {"12H", "12H", 12 * kHour},
      {"1D", "1D", kDay},           {"3D", "3D", 3 * kDay},       {"1W", "1W", 7 * kDay},
      {"1h", "1H", kHour},          {"4h", "4H", 4 * kHour},      {"12h", "12H", 12 * kHour},
      {"1d", "1D", kDay},           {"3d", "3D", 3 * kDay},       {"1w", "1W", 7 * kDay},
  };
  for (const TimeframeCase& c : cases) {
    Result<Timeframe> tf = ParseTimeframe(c.input);
    ASSERT_TRUE(tf.has_value()) << c.input << ": " << tf.error().ToString();
    EXPECT_EQ(tf->name, c.canonical) << c.input;
    EXPECT_EQ(tf->ms, c.ms) << c.input;
  }
}

TEST(ParseTimeframeTest, UnknownNameListsTheKnownOnes) {
  for (const char* bad : {"", "2m", "1M", "1 m", "60", "1Hour", "1mm"}) {
    Result<Timeframe> tf = ParseTimeframe(bad);
    ASSERT_FALSE(tf.has_value()) << bad;
    EXPECT_EQ(tf.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(tf.error().message, HasSubstr("'" + std::string(bad) + "'"));
    for (std::string_view known : KnownTimeframeNames()) {
      EXPECT_THAT(tf.error().message, HasSubstr(std::string(known)));
    }
  }
}

TEST(ParseTimeframeTest, KnownNamesAreShortestFirstAndAllParse) {
  std::span<const std::string_view> names = KnownTimeframeNames();
  ASSERT_EQ(names.size(), 12u);
  int64_t previous = 0;
  for (std::string_view name : names) {
    Result<Timeframe> tf = ParseTimeframe(name);
    ASSERT_TRUE(tf.has_value()) << name;
    EXPECT_EQ(tf->name, name);
    EXPECT_GT(tf->ms, previous) << name;
    previous = tf->ms;
  }
}

struct TimestampCase {
  std::string text;
  int64_t ms;
};

TEST(ParseTimestampTest, AcceptsEveryDocumentedForm) {
  // 2024-01-31 is day 19753 since the epoch.
  const int64_t jan31 = 19753 * kDay;
  const std::vector<TimestampCase> cases = {
      {"0", 0},
      {"1706659200000", jan31},
      {"1970-01-01", 0},
      {"2024-01-31", jan31},
      {"2024-01-31Z", jan31},
      {"2024-01-31T13:05", jan31 + 13 * kHour + 5 * kMinute},
      {"2024-01-31 13:05", jan31 + 13 * kHour + 5 * kMinute},
      {"2024-01-31T13:05:07", jan31 + 13 * kHour + 5 * kMinute + 7000},
      {"2024-01-31T13:05:07Z", jan31 + 13 * kHour + 5 * kMinute + 7000},
      {"2024-01-31 13:05:07.250Z", jan31 + 13 * kHour + 5 * kMinute + 7250},
      {"2024-01-31T23:59:59.999", jan31 + kDay - 1},
      {"2024-01-31 13:05:07.250000+00:00", jan31 + 13 * kHour + 5 * kMinute + 7250},  // pandas UTC
      {"2024-02-29", jan31 + 29 * kDay},                                              // leap day
      {"2000-02-29", 11016 * kDay},  // divisible by 400: leap
      {"1969-12-31", -kDay},
      {"2004-08-19", 12649 * kDay},
  };
  for (const TimestampCase& c : cases) {
    Result<int64_t> ts = ParseTimestamp(c.text);
    ASSERT_TRUE(ts.has_value()) << c.text << ": " << ts.error().ToString();
    EXPECT_EQ(*ts, c.ms) << c.text;
  }
}

struct BadTimestampCase {
  std::string text;
  std::string named;  // what the message must mention
};

TEST(ParseTimestampTest, RejectsInvalidDatesAndNamesTheProblem) {
  const std::vector<BadTimestampCase> cases = {
      {"", "empty"},
      {"-5", "negative"},
      {"2023-02-29", "day 29"},  // not a leap year
      {"1900-02-29", "day 29"},  // divisible by 100 but not 400
      {"2024-04-31", "day 31"},
      {"2024-00-10", "month 0"},
      {"2024-13-01", "month 13"},
      {"2024-01-00", "day 0"},
      {"2024-01-31T24:00", "hour 24"},
      {"2024-01-31T12:60", "minute 60"},
      {"2024-01-31T12:00:61", "second 61"},
      {"2024/01/31", "YYYY-MM-DD"},
      {"24-01-31", "YYYY-MM-DD"},
      {"2024-01-31T1:00", "HH:MM"},
      {"2024-01-31T10:00:00+02:00", "offset '+02:00' is not UTC"},
      {"2024-01-31+00:00", "'+00:00' after the date"},
      {"2024-01-31x", "'x'"},
      {"yesterday", "YYYY-MM-DD"},
      {"99999999999999999999999", "out of range"},
  };
  for (const BadTimestampCase& c : cases) {
    Result<int64_t> ts = ParseTimestamp(c.text);
    ASSERT_FALSE(ts.has_value()) << c.text << " parsed as " << *ts;
    EXPECT_EQ(ts.error().code, ErrorCode::kInvalidArgument) << c.text;
    EXPECT_THAT(ts.error().message, HasSubstr(c.named)) << c.text;
    EXPECT_THAT(ts.error().message, HasSubstr("'" + c.text + "'"));
  }
}

TEST(FormatTimestampTest, ShowsSecondsAlwaysAndMillisecondsWhenPresent) {
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(19753 * kDay + 13 * kHour + 5 * kMinute), "2024-01-31T13:05:00Z");
  EXPECT_EQ(FormatTimestamp(19753 * kDay + 7250), "2024-01-31T00:00:07.250Z");
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatTimestamp(11016 * kDay), "2000-02-29T00:00:00Z");
}

TEST(FormatTimestampTest, RoundTripsThroughParseTimestamp) {
  // Every 37 hours and 17 ms over several years, across leap days and month ends.
  for (int64_t ts = -400 * kDay; ts < 3000 * kDay; ts += 37 * kHour + 17) {
    const std::string text = FormatTimestamp(ts);
    Result<int64_t> back = ParseTimestamp(text);
    ASSERT_TRUE(back.has_value()) << text << ": " << back.error().ToString();
    ASSERT_EQ(*back, ts) << text;
  }
}

Kline GoodBar(int64_t ts) { return Kline{ts, 10, 12, 9, 11, 100, 1000}; }

TEST(ValidateSeriesTest, AcceptsWellFormedSeriesAndEmpty) {
  EXPECT_TRUE(ValidateSeries({}).has_value());
  std::vector<Kline> series = {GoodBar(0), GoodBar(kMinute), GoodBar(2 * kMinute)};
  series[1].high = series[1].close;  // touching the body is allowed
  series[1].low = series[1].open;
  series[2].volume = 0;
  Result<void> r = ValidateSeries(series);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
}

struct InvariantCase {
  std::string what;
  void (*breaks)(Kline&);
  std::string named;
};

TEST(ValidateSeriesTest, NamesIndexTimestampAndInvariantOfFirstBadBar) {
  const std::vector<InvariantCase> cases = {
      {"same timestamp", [](Kline& k) { k.ts_ms -= kHour; }, "strictly increase"},
      {"earlier timestamp", [](Kline& k) { k.ts_ms -= 2 * kHour; }, "strictly increase"},
      {"zero open", [](Kline& k) { k.open = 0; }, "open"},
      {"negative close", [](Kline& k) { k.close = -1; }, "close is -1"},
      {"nan high", [](Kline& k) { k.high = std::numeric_limits<double>::quiet_NaN(); }, "high"},
      {"infinite low", [](Kline& k) { k.low = std::numeric_limits<double>::infinity(); }, "low"},
      {"low above open", [](Kline& k) { k.low = 10.5; }, "low 10.5"},
      {"low above close",
       [](Kline& k) {
         k.open = 11.5;
         k.low = 11.2;
       },
       "low 11.2"},
      {"high below close", [](Kline& k) { k.high = 10.9; }, "high 10.9"},
      {"high below open", [](Kline& k) { k.open = 12.5; }, "high 12"},
      {"negative volume", [](Kline& k) { k.volume = -1; }, "volume"},
      {"nan volume", [](Kline& k) { k.volume = std::numeric_limits<double>::quiet_NaN(); },
       "volume"},
  };
  for (const InvariantCase& c : cases) {
    std::vector<Kline> series = {GoodBar(0), GoodBar(kHour), GoodBar(2 * kHour),
                                 GoodBar(3 * kHour)};
    c.breaks(series[2]);
    // A later bad bar must not be reported first.
    series[3].open = -7;
    Result<void> r = ValidateSeries(series);
    ASSERT_FALSE(r.has_value()) << c.what;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c.what;
    EXPECT_THAT(r.error().message, HasSubstr("bar 2")) << c.what;
    EXPECT_THAT(r.error().message, HasSubstr(FormatTimestamp(series[2].ts_ms))) << c.what;
    EXPECT_THAT(r.error().message, HasSubstr(c.named)) << c.what << ": " << r.error().message;
  }
}

TEST(ErrorTest, ToStringPrefixesTheCodeName) {
  EXPECT_EQ((Error{ErrorCode::kNotFound, "no file 'x'"}.ToString()), "not_found: no file 'x'");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kParse), "parse");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kIo), "io");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kUnavailable), "unavailable");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kFailedPrecondition), "failed_precondition");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInternal), "internal");
}

}  // namespace
}  // namespace leakgate::engine
