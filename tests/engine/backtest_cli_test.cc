// The real `backtest` program, run as a child process: JSON on stdout for good arguments, exit
// status 2 and a message on stderr for bad ones.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backtest_engine.h"
#include "engine/synthetic_market.h"

extern char** environ;

namespace leakgate::engine {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

struct ProgramRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class BacktestCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    program_ = std::string(LEAKGATE_BINARY_DIR) + "/bin/backtest";
    ASSERT_TRUE(std::filesystem::exists(program_)) << program_ << " has not been built";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // A parameterised test's name holds a '/': one folder per test, removed whole afterwards.
    std::string name = info->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = std::filesystem::temp_directory_path() /
           ("backtest_cli_test_" + std::to_string(getpid()) + "_" + name);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs the program with `args`, stdout and stderr captured in files.
  ProgramRun Run(const std::vector<std::string>& args) {
    const std::string out_path = (dir_ / "stdout").string();
    const std::string err_path = (dir_ / "stderr").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> argv_storage = {program_};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int spawned =
        posix_spawn(&pid, program_.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ProgramRun run;
    if (spawned != 0) {
      ADD_FAILURE() << "posix_spawn " << program_ << ": " << spawned;
      return run;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.out = ReadFile(out_path);
    run.err = ReadFile(err_path);
    return run;
  }

  json RunJson(const std::vector<std::string>& args) {
    ProgramRun run = Run(args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    try {
      return json::parse(run.out);
    } catch (const json::exception& e) {
      ADD_FAILURE() << "stdout is not JSON (" << e.what() << "): " << run.out;
      return json::object();
    }
  }

  std::string program_;
  std::filesystem::path dir_;
};

std::string GoogPath() {
  const char* env = std::getenv("LEAKGATE_SHARED_DATA");
  return std::string(env != nullptr && *env != '\0' ? env : LEAKGATE_SHARED_DATA_DIR) + "/GOOG.csv";
}

TEST_F(BacktestCliTest, GoogSmaCrossPrintsThePublishedStatistics) {
  const std::string goog = GoogPath();
  if (!std::filesystem::exists(goog)) GTEST_SKIP() << goog << " is absent";
  ProgramRun run = Run({"--csv", goog, "--strategy", "sma_cross", "--param", "fast=10", "--param",
                        "slow=30", "--sides", "both", "--warmup", "30", "--window", "31"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // Full precision: the figures appear with every digit.
  EXPECT_THAT(run.out, HasSubstr("414.2298999999996"));
  EXPECT_THAT(run.out, HasSubstr("51422.98999999996"));
  const json stats = json::parse(run.out);
  EXPECT_EQ(stats["trades"], 66);
  EXPECT_EQ(stats["bars"], 2148);
  EXPECT_NEAR(stats["return_pct"].get<double>(), 414.2298999999996, 1e-8 * 414.23);
  EXPECT_NEAR(stats["final_equity"].get<double>(), 51422.98999999996, 1e-8 * 51423);
  EXPECT_NEAR(stats["peak_equity"].get<double>(), 75787.44, 1e-8 * 75787.44);
  EXPECT_NEAR(stats["max_drawdown_pct"].get<double>(), -47.98012705007589, 1e-8 * 47.98);
  EXPECT_NEAR(stats["win_rate_pct"].get<double>(), 46.96969696969697, 1e-8 * 46.97);
  EXPECT_NEAR(stats["profit_factor"].get<double>(), 2.167945974262033, 1e-8 * 2.17);
  EXPECT_NEAR(stats["exposure_pct"].get<double>(), 96.74115456238361, 1e-8 * 96.74);
  EXPECT_NEAR(stats["buy_hold_return_pct"].get<double>(), 522.0601851851852, 1e-8 * 522.06);
  EXPECT_TRUE(stats["sharpe"].is_number());
  EXPECT_EQ(stats["strategy"], "sma_cross");
  EXPECT_EQ(stats["params"], (json{{"fast", 10.0}, {"slow", 30.0}}));
  EXPECT_EQ(stats["source"]["type"], "csv");
  EXPECT_EQ(stats["source"]["path"], goog);
  EXPECT_FALSE(stats.contains("trade_list"));
}

TEST_F(BacktestCliTest, SyntheticMarketMatchesTheLibrary) {
  const json stats =
      RunJson({"--symbol", "ETHUSDT", "--timeframe", "1H", "--start", "2024-01-01", "--end",
               "2024-02-01", "--seed", "7", "--strategy", "bollinger", "--param", "period=10",
               "--sides", "both", "--fee", "0.001", "--trades"});
  // The same backtest in-process.
  SyntheticMarketOptions market_options;
  market_options.seed = 7;
  Result<KlineSeries> bars =
      SyntheticMarket(market_options)
          .Generate("ETHUSDT", *ParseTimeframe("1H"), *ParseTimestamp("2024-01-01"),
                    *ParseTimestamp("2024-02-01"));
  ASSERT_TRUE(bars.has_value()) << bars.error().ToString();
  BacktestConfig config;
  config.strategy = "bollinger";
  config.params = {{"period", 10}};
  config.sides = PositionSides::kBoth;
  config.fee_rate = 0.001;
  Result<BacktestResult> expected = BacktestEngine().Run(*bars, config);
  ASSERT_TRUE(expected.has_value()) << expected.error().ToString();

  EXPECT_EQ(stats["bars"], 31 * 24);
  EXPECT_EQ(stats["trades"], expected->stats.trades);
  EXPECT_GT(expected->stats.trades, 0) << "the range should trade, or this test shows little";
  EXPECT_DOUBLE_EQ(stats["final_equity"].get<double>(), expected->stats.final_equity);
  EXPECT_DOUBLE_EQ(stats["total_fees"].get<double>(), expected->stats.total_fees);
  EXPECT_GT(stats["total_fees"].get<double>(), 0);
  EXPECT_EQ(stats["params"], (json{{"k", 2.0}, {"period", 10.0}}));
  EXPECT_EQ(stats["source"]["type"], "synthetic");
  EXPECT_EQ(stats["source"]["symbol"], "ETHUSDT");
  EXPECT_EQ(stats["source"]["seed"], 7);
  ASSERT_TRUE(stats["trade_list"].is_array());
  ASSERT_EQ(stats["trade_list"].size(), expected->trades.size());
  EXPECT_EQ(stats["trade_list"][0]["entry_index"], expected->trades[0].entry_index);
  EXPECT_DOUBLE_EQ(stats["trade_list"][0]["pnl"].get<double>(), expected->trades[0].pnl);
  for (const char* key :
       {"trades", "return_pct", "final_equity", "peak_equity", "max_drawdown_pct", "win_rate_pct",
        "profit_factor", "sharpe", "exposure_pct", "bars", "buy_hold_return_pct", "best_trade_pct",
        "worst_trade_pct", "avg_trade_pct", "total_fees", "strategy", "params", "source"}) {
    EXPECT_TRUE(stats.contains(key)) << key;
  }
}

TEST_F(BacktestCliTest, UndefinedStatisticsAreNull) {
  // RSI never goes below 0 or above 100: no trade, so the per-trade statistics are undefined.
  const json stats = RunJson({"--symbol", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-05",
                              "--strategy", "rsi", "--param", "lower=0", "--param", "upper=100"});
  EXPECT_EQ(stats["trades"], 0);
  EXPECT_TRUE(stats["win_rate_pct"].is_null());
  EXPECT_TRUE(stats["profit_factor"].is_null());
  EXPECT_TRUE(stats["best_trade_pct"].is_null());
  EXPECT_TRUE(stats["sharpe"].is_null());
  EXPECT_EQ(stats["final_equity"], 10000.0);
}

struct BadArgsCase {
  const char* name;
  std::vector<std::string> args;
  const char* message;  // part of stderr

  friend void PrintTo(const BadArgsCase& c, std::ostream* os) { *os << c.name; }
};

class BacktestCliBadArgsTest : public BacktestCliTest,
                               public ::testing::WithParamInterface<BadArgsCase> {};

TEST_P(BacktestCliBadArgsTest, ExitsWithStatusTwoAndAMessage) {
  ProgramRun run = Run(GetParam().args);
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_THAT(run.err, HasSubstr(GetParam().message));
  EXPECT_TRUE(run.out.empty()) << run.out;
}

const std::vector<std::string> kSynthetic = {"--symbol",   "BTCUSDT", "--start",
                                             "2024-01-01", "--end",   "2024-01-10"};

std::vector<std::string> Synthetic(std::vector<std::string> extra) {
  std::vector<std::string> args = kSynthetic;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BacktestCliBadArgsTest,
    ::testing::Values(
        BadArgsCase{"UnknownOption", Synthetic({"--frobnicate"}), "--frobnicate"},
        BadArgsCase{"MalformedParam", Synthetic({"--param", "fast"}),
                    "--param 'fast' is malformed"},
        BadArgsCase{"ParamNotANumber", Synthetic({"--param", "fast=ten"}), "KEY=VALUE"},
        BadArgsCase{"CsvAndSymbol", {"--csv", "x.csv", "--symbol", "BTCUSDT"}, "not both"},
        BadArgsCase{"NoData", {"--strategy", "rsi"}, "no data"},
        BadArgsCase{"SymbolWithoutEnd", {"--symbol", "BTCUSDT", "--start", "2024-01-01"}, "--end"},
        BadArgsCase{"UnknownStrategy", Synthetic({"--strategy", "macd"}),
                    "known strategies: bollinger, rsi, sma_cross"},
        BadArgsCase{"BadParamRange", Synthetic({"--param", "fast=40"}), "'fast' (40) must be less"},
        BadArgsCase{"BadTimestamp",
                    {"--symbol", "BTCUSDT", "--start", "2024-13-01", "--end", "2024-02-01"},
                    "--start"},
        BadArgsCase{"BadTimeframe", Synthetic({"--timeframe", "7m"}), "--timeframe"},
        BadArgsCase{"BadSides", Synthetic({"--sides", "short"}), "'long' or 'both'"},
        BadArgsCase{"BadFee", Synthetic({"--fee", "0.9"}), "fee_rate"},
        BadArgsCase{"WarmupTooLong", Synthetic({"--warmup", "100000"}), "number of bars"},
        BadArgsCase{"MissingCsv", {"--csv", "/nonexistent/klines.csv"}, "/nonexistent/klines.csv"}),
    [](const ::testing::TestParamInfo<BadArgsCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace leakgate::engine
