#include "engine/csv_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/kline.h"

namespace leakgate::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kDay = 86'400'000;

int64_t Ts(std::string_view text) { return ParseTimestamp(text).value(); }

KlineSeries ParseOk(std::string_view text) {
  Result<KlineSeries> bars = ParseKlinesCsv(text, "test.csv");
  EXPECT_TRUE(bars.has_value()) << bars.error().ToString();
  return bars.value_or(KlineSeries{});
}

Error ParseError(std::string_view text) {
  Result<KlineSeries> bars = ParseKlinesCsv(text, "test.csv");
  EXPECT_FALSE(bars.has_value()) << "parsed " << (bars ? bars->size() : 0) << " bars";
  return bars ? Error{} : bars.error();
}

TEST(ParseKlinesCsvTest, ReadsPandasShapeWithEmptyIndexHeader) {
  const KlineSeries bars = ParseOk(
      ",Open,High,Low,Close,Volume\n"
      "2004-08-19,100,104.06,95.96,100.34,22351900\n"
      "2004-08-20,101.01,109.08,100.5,108.31,11428600\n");
  ASSERT_EQ(bars.size(), 2u);
  EXPECT_EQ(bars[0], (Kline{Ts("2004-08-19"), 100, 104.06, 95.96, 100.34, 22351900, 0}));
  EXPECT_EQ(bars[1], (Kline{Ts("2004-08-20"), 101.01, 109.08, 100.5, 108.31, 11428600, 0}));
}

TEST(ParseKlinesCsvTest, HeaderNamesAreCaseInsensitiveInAnyOrderWithExtraColumns) {
  const KlineSeries bars = ParseOk(
      "close,DATE,Adj Close,low,HIGH,open\n"
      "11,2024-01-31 13:05,10.9,9,12,10\n");
  ASSERT_EQ(bars.size(), 1u);
  EXPECT_EQ(bars[0], (Kline{Ts("2024-01-31T13:05"), 10, 12, 9, 11, 0, 0}));
}

TEST(ParseKlinesCsvTest, ReadsBitgetShapeWithAndWithoutHeader) {
  const std::string rows =
      "1706659200000,42000.5,42100,41900.25,42050,12.5,525625\n"
      "1706659260000,42050,42060,42000,42010,3,126030\n";
  const KlineSeries with_header = ParseOk("ts,open,high,low,close,baseVolume,quoteVolume\n" + rows);
  const KlineSeries without_header = ParseOk(rows);
  ASSERT_EQ(with_header.size(), 2u);
  EXPECT_EQ(with_header[0], (Kline{1706659200000, 42000.5, 42100, 41900.25, 42050, 12.5, 525625}));
  EXPECT_EQ(with_header[1], (Kline{1706659260000, 42050, 42060, 42000, 42010, 3, 126030}));
  EXPECT_EQ(without_header, with_header);
}

TEST(ParseKlinesCsvTest, ToleratesCrlfBlankLinesQuotesAndSpaces) {
  const KlineSeries bars = ParseOk(
      "\xEF\xBB\xBF\"Date\",\"Open\",High,Low,Close,Volume\r\n"
      "2024-01-01, 10 ,\"12\",9,11,+100\r\n"
      "\r\n"
      "\"2024-01-02\",11,13,10,12,0\r\n"
      "\r\n");
  ASSERT_EQ(bars.size(), 2u);
  EXPECT_EQ(bars[0], (Kline{Ts("2024-01-01"), 10, 12, 9, 11, 100, 0}));
  EXPECT_EQ(bars[1], (Kline{Ts("2024-01-02"), 11, 13, 10, 12, 0, 0}));
}

TEST(ParseKlinesCsvTest, QuotedCommaDoesNotSplitAndDoesNotCrash) {
  // The quoted comma keeps the column count right; the cell itself is not a number.
  const Error e = ParseError("Date,Open,High,Low,Close\n2024-01-01,\"1,5\",2,1,1\n");
  EXPECT_THAT(e.message, HasSubstr("test.csv:2: column 2 (Open)"));
  EXPECT_THAT(e.message, HasSubstr("'1,5'"));
  // An unterminated quote runs to the end of the line.
  const Error unterminated = ParseError("Date,Open,High,Low,Close\n2024-01-01,\"5,2,1,1\n");
  EXPECT_THAT(unterminated.message, HasSubstr("test.csv:2:"));
}

TEST(ParseKlinesCsvTest, SortsOutOfOrderRowsByTime) {
  const KlineSeries bars = ParseOk(
      "Date,Open,High,Low,Close,Volume\n"
      "2024-01-03,3,3,3,3,3\n"
      "2024-01-01,1,1,1,1,1\n"
      "2024-01-04,4,4,4,4,4\n"
      "2024-01-02,2,2,2,2,2\n");
  ASSERT_EQ(bars.size(), 4u);
  for (size_t i = 0; i < bars.size(); ++i) {
    EXPECT_EQ(bars[i].ts_ms, Ts("2024-01-01") + static_cast<int64_t>(i) * kDay);
    EXPECT_EQ(bars[i].open, static_cast<double>(i + 1));
  }
}

struct BadCsvCase {
  std::string what;
  std::string text;
  std::vector<std::string> named;  // substrings the message must contain
};

TEST(ParseKlinesCsvTest, ErrorsNameSourceLineColumnAndWhatWasExpected) {
  const std::string header = "Date,Open,High,Low,Close,Volume\n";
  const std::vector<BadCsvCase> cases = {
      {"malformed number",
       header + "2024-01-01,1,2,1,1,5\n2024-01-02,1,abc,1,1,5\n",
       {"test.csv:3:", "column 3 (High)", "expected a finite number", "'abc'"}},
      {"number with trailing text",
       header + "2024-01-01,1,2,1,1.5x,5\n",
       {"test.csv:2:", "column 5 (Close)", "'1.5x'"}},
      {"empty cell", header + "2024-01-01,1,2,1,1,\n", {"test.csv:2:", "column 6 (Volume)", "''"}},
      {"not finite", header + "2024-01-01,1,inf,1,1,1\n", {"column 3 (High)", "'inf'"}},
      {"bad date", header + "2024-02-30,1,2,1,1,5\n", {"test.csv:2:", "column 1 (Date)", "day 30"}},
      {"too few columns",
       header + "2024-01-01,1,2,1\n",
       {"test.csv:2:", "expected 6 columns, got 4"}},
      {"too many columns",
       header + "2024-01-01,1,2,1,1,5,7\n",
       {"test.csv:2:", "expected 6 columns, got 7"}},
      {"missing column",
       "Date,Open,High,Close,Volume\n2024-01-01,1,2,1,5\n",
       {"test.csv:1:", "low", "'Date,Open,High,Close,Volume'"}},
      {"missing time column",
       "Open,High,Low,Close\n1,2,1,1\n",
       {"test.csv:1:", "time", "'Open,High,Low,Close'"}},
      {"duplicated timestamp",
       header + "2024-01-01,1,2,1,1,5\n2024-01-02,1,2,1,1,5\n2024-01-01,1,2,1,1,5\n",
       {"test.csv", "lines 2 and 4", "2024-01-01T00:00:00Z"}},
      {"bitget row with bad count",
       "1706659200000,1,2,1\n",
       {"test.csv:1:", "5 to 7 columns", "got 4"}},
      {"bitget row with bad price",
       "1706659200000,1,2,1,1,5,5\n1706659260000,1,x,1,1,5,5\n",
       {"test.csv:2:", "column 3 (high)", "'x'"}},
      {"empty text", "", {"test.csv", "empty"}},
      {"only blank lines", "\n\r\n  \n", {"test.csv", "empty"}},
      {"header only", header, {"test.csv", "no data rows"}},
  };
  for (const BadCsvCase& c : cases) {
    SCOPED_TRACE(c.what);
    const Error e = ParseError(c.text);
    EXPECT_EQ(e.code, ErrorCode::kParse);
    for (const std::string& s : c.named) EXPECT_THAT(e.message, HasSubstr(s));
  }
}

class LoadKlinesCsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("csv_loader_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(LoadKlinesCsvTest, ReadsAFile) {
  const std::string path = (dir_ / "bars.csv").string();
  std::ofstream(path) << "ts,open,high,low,close,baseVolume,quoteVolume\n"
                         "60000,1,2,0.5,1.5,10,15\n";
  Result<KlineSeries> bars = LoadKlinesCsv(path);
  ASSERT_TRUE(bars.has_value()) << bars.error().ToString();
  ASSERT_EQ(bars->size(), 1u);
  EXPECT_EQ((*bars)[0], (Kline{60000, 1, 2, 0.5, 1.5, 10, 15}));
}

TEST_F(LoadKlinesCsvTest, ErrorsNameThePath) {
  const std::string missing = (dir_ / "missing.csv").string();
  Result<KlineSeries> not_found = LoadKlinesCsv(missing);
  ASSERT_FALSE(not_found.has_value());
  EXPECT_EQ(not_found.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(not_found.error().message, HasSubstr(missing));

  Result<KlineSeries> directory = LoadKlinesCsv(dir_.string());
  ASSERT_FALSE(directory.has_value());
  EXPECT_EQ(directory.error().code, ErrorCode::kIo);
  EXPECT_THAT(directory.error().message, HasSubstr(dir_.string()));

  const std::string bad = (dir_ / "bad.csv").string();
  std::ofstream(bad) << "Date,Open,High,Low,Close\n2024-01-01,1,2,1,oops\n";
  Result<KlineSeries> parse = LoadKlinesCsv(bad);
  ASSERT_FALSE(parse.has_value());
  EXPECT_EQ(parse.error().code, ErrorCode::kParse);
  EXPECT_THAT(parse.error().message, HasSubstr(bad + ":2: column 5 (Close)"));
}

std::string SharedDataDir() {
  if (const char* env = std::getenv("LEAKGATE_SHARED_DATA")) return env;
#ifdef LEAKGATE_SHARED_DATA_DIR
  return LEAKGATE_SHARED_DATA_DIR;
#else
  return "";
#endif
}

TEST(GoogCsvTest, LoadsTheSharedDailyFile) {
  const std::filesystem::path path = std::filesystem::path(SharedDataDir()) / "GOOG.csv";
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "no " << path << " (set LEAKGATE_SHARED_DATA to the shared data directory)";
  }
  Result<KlineSeries> bars = LoadKlinesCsv(path.string());
  ASSERT_TRUE(bars.has_value()) << bars.error().ToString();
  ASSERT_EQ(bars->size(), 2148u);
  EXPECT_EQ(FormatTimestamp(bars->front().ts_ms), "2004-08-19T00:00:00Z");
  EXPECT_EQ(bars->front().open, 100.0);
  EXPECT_EQ(bars->front().volume, 22351900.0);
  EXPECT_EQ(FormatTimestamp(bars->back().ts_ms), "2013-03-01T00:00:00Z");
  EXPECT_EQ(bars->back().close, 806.19);
  Result<void> valid = ValidateSeries(*bars);
  EXPECT_TRUE(valid.has_value()) << valid.error().ToString();
}

TEST(ParseKlinesCsvTest, ParsesManyRowsInFileOrder) {
  // 100,000 rows of 1m bars, written as Bitget rows.
  std::string text = "ts,open,high,low,close,baseVolume,quoteVolume\n";
  const int rows = 100'000;
  for (int i = 0; i < rows; ++i) {
    const double p = 100 + (i % 1000) * 0.01;
    text += std::to_string(int64_t{60'000} * i) + "," + std::to_string(p) + "," +
            std::to_string(p + 1) + "," + std::to_string(p - 1) + "," + std::to_string(p + 0.5) +
            ",12.25,1234.5\n";
  }
  Result<KlineSeries> bars = ParseKlinesCsv(text, "big.csv");
  ASSERT_TRUE(bars.has_value()) << bars.error().ToString();
  ASSERT_EQ(bars->size(), static_cast<size_t>(rows));
  EXPECT_EQ(bars->back().ts_ms, int64_t{60'000} * (rows - 1));
  EXPECT_EQ(bars->back().open, 100 + ((rows - 1) % 1000) * 0.01);
}

}  // namespace
}  // namespace leakgate::engine
