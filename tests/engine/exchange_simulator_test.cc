#include "engine/exchange_simulator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/csv_loader.h"
#include "engine/kline.h"
#include "engine/synthetic_market.h"

namespace leakgate::engine {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kT0 = 1'704'067'200'000;  // 2024-01-01T00:00:00Z

struct Reply {
  int status = 0;
  nlohmann::json body;
};

Reply Fetch(const ExchangeSimulator& simulator, const std::string& path) {
  httplib::Client client("127.0.0.1", simulator.port());
  client.set_read_timeout(std::chrono::seconds(5));
  httplib::Result result = client.Get(path);
  if (!result) {
    ADD_FAILURE() << "GET " << path << " failed: " << httplib::to_string(result.error());
    return {};
  }
  Reply reply{result->status, nlohmann::json::parse(result->body, nullptr, false)};
  EXPECT_FALSE(reply.body.is_discarded()) << "not JSON: " << result->body;
  return reply;
}

std::string CandlesPath(const std::string& symbol, const std::string& granularity, int64_t start,
                        int64_t end, int limit = 0) {
  std::string path = "/api/v2/mix/market/candles?symbol=" + symbol + "&granularity=" + granularity +
                     "&startTime=" + std::to_string(start) + "&endTime=" + std::to_string(end) +
                     "&productType=USDT-FUTURES";
  if (limit > 0) path += "&limit=" + std::to_string(limit);
  return path;
}

KlineSeries RowsToKlines(const nlohmann::json& data) {
  KlineSeries bars;
  for (const auto& row : data) {
    Kline k;
    k.ts_ms = std::stoll(row[0].get<std::string>());
    k.open = std::stod(row[1].get<std::string>());
    k.high = std::stod(row[2].get<std::string>());
    k.low = std::stod(row[3].get<std::string>());
    k.close = std::stod(row[4].get<std::string>());
    k.volume = std::stod(row[5].get<std::string>());
    k.quote_volume = std::stod(row[6].get<std::string>());
    bars.push_back(k);
  }
  return bars;
}

KlineSeries Expected(const std::string& symbol, int64_t start, int64_t end_exclusive,
                     const SyntheticMarketOptions& options = {}) {
  Result<Timeframe> minute = ParseTimeframe("1m");
  Result<KlineSeries> bars =
      SyntheticMarket(options).Generate(symbol, *minute, start, end_exclusive);
  EXPECT_TRUE(bars.has_value());
  return bars.value_or(KlineSeries{});
}

std::vector<int64_t> Timestamps(const KlineSeries& bars) {
  std::vector<int64_t> ts;
  for (const Kline& k : bars) ts.push_back(k.ts_ms);
  return ts;
}

class SimulatorTest : public ::testing::Test {
 protected:
  void StartWith(ExchangeSimulatorOptions options) {
    simulator_ = std::make_unique<ExchangeSimulator>(std::move(options));
    Result<void> started = simulator_->Start();
    ASSERT_TRUE(started.has_value()) << started.error().ToString();
    ASSERT_GT(simulator_->port(), 0);
  }
  std::unique_ptr<ExchangeSimulator> simulator_;
};

TEST_F(SimulatorTest, CandlesHaveBitgetShapeAndTheMarketsBars) {
  StartWith({});
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  Reply reply = Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, kT0 + 9 * kMinute));
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body["code"], "00000");
  EXPECT_EQ(reply.body["msg"], "success");
  ASSERT_TRUE(reply.body["requestTime"].is_number_integer());
  EXPECT_GE(reply.body["requestTime"].get<int64_t>(), before);
  EXPECT_LT(reply.body["requestTime"].get<int64_t>(), before + 60'000);
  const nlohmann::json& data = reply.body["data"];
  ASSERT_TRUE(data.is_array());
  ASSERT_EQ(data.size(), 10u);
  for (const auto& row : data) {
    ASSERT_TRUE(row.is_array());
    ASSERT_EQ(row.size(), 7u);
    for (const auto& cell : row) EXPECT_TRUE(cell.is_string()) << row.dump();
  }
  EXPECT_EQ(RowsToKlines(data), Expected("BTCUSDT", kT0, kT0 + 10 * kMinute));
  EXPECT_EQ(simulator_->candle_requests(), 1u);
}

TEST_F(SimulatorTest, RangeIsInclusiveAndTheEarliestLimitRowsComeFirst) {
  StartWith({});
  // Both ends inclusive: 0..10 minutes is 11 bars.
  Reply all = Fetch(*simulator_, CandlesPath("ETHUSDT", "1m", kT0, kT0 + 10 * kMinute));
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(Timestamps(RowsToKlines(all.body["data"])),
            Timestamps(Expected("ETHUSDT", kT0, kT0 + 11 * kMinute)));

  // A limit keeps the earliest rows, ascending.
  Reply first5 = Fetch(*simulator_, CandlesPath("ETHUSDT", "1m", kT0, kT0 + 10 * kMinute, 5));
  ASSERT_EQ(first5.status, 200);
  EXPECT_EQ(RowsToKlines(first5.body["data"]), Expected("ETHUSDT", kT0, kT0 + 5 * kMinute));

  // An unaligned start begins at the next bar; an empty range gives no rows.
  Reply unaligned = Fetch(*simulator_, CandlesPath("ETHUSDT", "1m", kT0 + 1, kT0 + 3 * kMinute));
  ASSERT_EQ(unaligned.status, 200);
  EXPECT_EQ(Timestamps(RowsToKlines(unaligned.body["data"])),
            (std::vector<int64_t>{kT0 + kMinute, kT0 + 2 * kMinute, kT0 + 3 * kMinute}));
  Reply empty = Fetch(*simulator_, CandlesPath("ETHUSDT", "1m", kT0 + 1, kT0 + kMinute - 1));
  ASSERT_EQ(empty.status, 200);
  EXPECT_TRUE(empty.body["data"].empty());
}

TEST_F(SimulatorTest, LimitDefaultsTo100AndIsCappedAt1000) {
  StartWith({});
  const int64_t end = kT0 + 5000 * kMinute;
  EXPECT_EQ(Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, end)).body["data"].size(), 100u);
  EXPECT_EQ(Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, end, 1000)).body["data"].size(),
            1000u);
  for (int limit : {1001, 5000}) {
    Reply reply = Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, end, limit));
    EXPECT_EQ(reply.status, 400);
    EXPECT_NE(reply.body["code"], "00000");
    EXPECT_THAT(reply.body["msg"].get<std::string>(), HasSubstr("limit"));
  }
}

TEST_F(SimulatorTest, EachBadParameterIsRejectedWithAMessageNamingIt) {
  StartWith({});
  const std::string base = "/api/v2/mix/market/candles?";
  struct Case {
    std::string query;
    std::string named;
  };
  const std::vector<Case> cases = {
      {"granularity=1m&startTime=0&endTime=60000", "symbol"},
      {"symbol=BTCUSDT&startTime=0&endTime=60000", "granularity"},
      {"symbol=BTCUSDT&granularity=7m&startTime=0&endTime=60000", "granularity"},
      {"symbol=BTCUSDT&granularity=1m&endTime=60000", "startTime"},
      {"symbol=BTCUSDT&granularity=1m&startTime=abc&endTime=60000", "startTime"},
      {"symbol=BTCUSDT&granularity=1m&startTime=12.5&endTime=60000", "startTime"},
      {"symbol=BTCUSDT&granularity=1m&startTime=0", "endTime"},
      {"symbol=BTCUSDT&granularity=1m&startTime=0&endTime=soon", "endTime"},
      {"symbol=BTCUSDT&granularity=1m&startTime=120000&endTime=60000", "endTime"},
      {"symbol=BTCUSDT&granularity=1m&startTime=0&endTime=60000&limit=0", "limit"},
      {"symbol=BTCUSDT&granularity=1m&startTime=0&endTime=60000&limit=ten", "limit"},
      {"symbol=BTCUSDT&granularity=1m&startTime=0&endTime=60000&productType=SPOT", "productType"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.query);
    Reply reply = Fetch(*simulator_, base + c.query);
    EXPECT_EQ(reply.status, 400);
    ASSERT_TRUE(reply.body["code"].is_string());
    EXPECT_NE(reply.body["code"], "00000");
    EXPECT_THAT(reply.body["msg"].get<std::string>(), HasSubstr(c.named));
  }
  EXPECT_EQ(simulator_->bad_requests(), cases.size());

  // The unknown-granularity message lists what is known.
  Reply reply = Fetch(*simulator_, base + "symbol=BTCUSDT&granularity=7m&startTime=0&endTime=1");
  EXPECT_THAT(reply.body["msg"].get<std::string>(), HasSubstr("1m"));
  EXPECT_THAT(reply.body["msg"].get<std::string>(), HasSubstr("1D"));
}

TEST_F(SimulatorTest, UnknownSymbolsGetCode40034) {
  ExchangeSimulatorOptions options;
  options.symbol_allow_list = {"BTCUSDT"};
  StartWith(options);
  for (const std::string symbol : {"ETHUSDT", "btcusdt"}) {
    Reply reply = Fetch(*simulator_, CandlesPath(symbol, "1m", kT0, kT0 + kMinute));
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(reply.body["code"], "40034");
    EXPECT_THAT(reply.body["msg"].get<std::string>(), HasSubstr(symbol));
  }
  EXPECT_EQ(Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, kT0 + kMinute)).status, 200);
}

TEST_F(SimulatorTest, WithoutAllowListOnlyExchangeShapedSymbolsExist) {
  StartWith({});
  EXPECT_EQ(Fetch(*simulator_, CandlesPath("X", "1m", kT0, kT0)).body["code"], "40034");
  EXPECT_EQ(Fetch(*simulator_, CandlesPath("btc_usdt", "1m", kT0, kT0)).body["code"], "40034");
  EXPECT_EQ(Fetch(*simulator_, CandlesPath("ANYCOIN2USDT", "1m", kT0, kT0)).status, 200);
}

TEST_F(SimulatorTest, ServerTimeAnswersPings) {
  StartWith({});
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  Reply reply = Fetch(*simulator_, "/api/v2/public/time");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body["code"], "00000");
  EXPECT_EQ(reply.body["msg"], "success");
  ASSERT_TRUE(reply.body["data"]["serverTime"].is_string());
  const int64_t server_time = std::stoll(reply.body["data"]["serverTime"].get<std::string>());
  EXPECT_GE(server_time, before);
  EXPECT_LT(server_time, before + 60'000);
  Fetch(*simulator_, "/api/v2/public/time");
  EXPECT_EQ(simulator_->pings(), 2u);
  EXPECT_EQ(simulator_->candle_requests(), 0u);
}

TEST_F(SimulatorTest, UnknownPathIs404WithJson) {
  StartWith({});
  Reply reply = Fetch(*simulator_, "/api/v2/spot/market/candles");
  EXPECT_EQ(reply.status, 404);
  EXPECT_NE(reply.body["code"], "00000");
}

TEST_F(SimulatorTest, DuplicateAndShuffledRowsKeepTheSameBars) {
  ExchangeSimulatorOptions options;
  options.duplicate_rows = true;
  options.shuffle_rows = true;
  StartWith(options);
  Reply reply = Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, kT0 + 999 * kMinute, 1000));
  ASSERT_EQ(reply.status, 200);
  KlineSeries rows = RowsToKlines(reply.body["data"]);
  ASSERT_EQ(rows.size(), 2000u);
  EXPECT_FALSE(std::is_sorted(rows.begin(), rows.end(),
                              [](const Kline& a, const Kline& b) { return a.ts_ms < b.ts_ms; }));
  std::sort(rows.begin(), rows.end(),
            [](const Kline& a, const Kline& b) { return a.ts_ms < b.ts_ms; });
  const KlineSeries expected = Expected("BTCUSDT", kT0, kT0 + 1000 * kMinute);
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(rows[2 * i], expected[i]);
    ASSERT_EQ(rows[2 * i + 1], expected[i]);
  }

  // The order is a function of the seed and the request number.
  ExchangeSimulator twin(options);
  ASSERT_TRUE(twin.Start().has_value());
  Reply again = Fetch(twin, CandlesPath("BTCUSDT", "1m", kT0, kT0 + 999 * kMinute, 1000));
  EXPECT_EQ(again.body["data"], reply.body["data"]);
}

TEST_F(SimulatorTest, InjectedTransientFailuresAreCountedAndSpareOtherRequests) {
  ExchangeSimulatorOptions options;
  options.fail_first_n_candle_requests = 2;
  options.fail_every_nth = 5;
  options.transient_failure_status = 502;
  StartWith(options);
  std::vector<int> statuses;
  for (int i = 0; i < 10; ++i) {
    Reply reply = Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, kT0));
    statuses.push_back(reply.status);
    if (reply.status != 200) {
      EXPECT_NE(reply.body["code"], "00000");
      EXPECT_TRUE(reply.body["msg"].is_string());
    }
  }
  EXPECT_EQ(statuses, (std::vector<int>{502, 502, 200, 200, 502, 200, 200, 200, 200, 502}));
  EXPECT_EQ(simulator_->failures_injected(), 4u);
  EXPECT_EQ(simulator_->candle_requests(), 10u);
  EXPECT_EQ(Fetch(*simulator_, "/api/v2/public/time").status, 200);
}

TEST_F(SimulatorTest, SeededFailureProbabilityIsReproducible) {
  ExchangeSimulatorOptions options;
  options.failure_probability = 0.5;
  options.seed = 1234;
  auto run = [&] {
    ExchangeSimulator simulator(options);
    EXPECT_TRUE(simulator.Start().has_value());
    std::vector<int> statuses;
    for (int i = 0; i < 40; ++i) {
      statuses.push_back(Fetch(simulator, CandlesPath("BTCUSDT", "1m", kT0, kT0)).status);
    }
    EXPECT_EQ(simulator.failures_injected(),
              static_cast<uint64_t>(std::count(statuses.begin(), statuses.end(), 503)));
    return statuses;
  };
  const std::vector<int> first = run();
  EXPECT_EQ(run(), first);
  const auto failures = std::count(first.begin(), first.end(), 503);
  EXPECT_GT(failures, 5);
  EXPECT_LT(failures, 35);
}

TEST_F(SimulatorTest, PermanentFailureAnswersEveryCandleRequest) {
  ExchangeSimulatorOptions options;
  options.permanent_failure_status = 500;
  options.permanent_failure_code = "45001";
  options.permanent_failure_msg = "maintenance";
  StartWith(options);
  for (int i = 0; i < 3; ++i) {
    Reply reply = Fetch(*simulator_, CandlesPath("BTCUSDT", "1m", kT0, kT0));
    EXPECT_EQ(reply.status, 500);
    EXPECT_EQ(reply.body["code"], "45001");
    EXPECT_EQ(reply.body["msg"], "maintenance");
  }
  EXPECT_EQ(simulator_->failures_injected(), 3u);
  EXPECT_EQ(Fetch(*simulator_, "/api/v2/public/time").status, 200);
}

TEST_F(SimulatorTest, LatencyDelaysEveryRequest) {
  ExchangeSimulatorOptions options;
  options.latency = std::chrono::milliseconds(40);
  StartWith(options);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Fetch(*simulator_, "/api/v2/public/time").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(40));
}

class TempDir {
 public:
  TempDir() {
    path_ =
        std::filesystem::temp_directory_path() /
        ("exchange_simulator_test_" + std::to_string(::getpid()) + "_" + std::to_string(++count_));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::ofstream(file) << text;
    return file.string();
  }

 private:
  static inline int count_ = 0;
  std::filesystem::path path_;
};

TEST_F(SimulatorTest, CsvSymbolsAreServedAtTheirOwnGranularity) {
  TempDir dir;
  // Daily bars with a weekend gap; the smallest gap is one day.
  const std::string csv = dir.Write("acme.csv",
                                    "Date,Open,High,Low,Close,Volume\n"
                                    "2024-01-04,10.0,11.0,9.5,10.5,1000\n"
                                    "2024-01-05,10.5,12.0,10.25,11.75,1500\n"
                                    "2024-01-08,11.75,11.8,10.0,10.1,900\n");
  ExchangeSimulatorOptions options;
  options.csv_sources = {{"ACME", csv, ""}};
  StartWith(options);
  Result<KlineSeries> file = LoadKlinesCsv(csv);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  ASSERT_EQ(file->size(), 3u);

  Result<int64_t> jan4 = ParseTimestamp("2024-01-04");
  Result<int64_t> jan8 = ParseTimestamp("2024-01-08");
  ASSERT_TRUE(jan4 && jan8);
  Reply reply = Fetch(*simulator_, CandlesPath("ACME", "1D", *jan4, *jan8));
  ASSERT_EQ(reply.status, 200) << reply.body.dump();
  EXPECT_EQ(RowsToKlines(reply.body["data"]), *file);
  EXPECT_EQ(
      RowsToKlines(Fetch(*simulator_, CandlesPath("ACME", "1D", *jan4 + 1, *jan8, 1)).body["data"]),
      KlineSeries{(*file)[1]});

  Reply wrong = Fetch(*simulator_, CandlesPath("ACME", "1m", *jan4, *jan8));
  EXPECT_EQ(wrong.status, 400);
  EXPECT_THAT(wrong.body["msg"].get<std::string>(), HasSubstr("granularity"));
  EXPECT_THAT(wrong.body["msg"].get<std::string>(), HasSubstr("1D"));
}

TEST_F(SimulatorTest, SessionsHeldOpenDoNotStarveNewClients) {
  ExchangeSimulatorOptions options;
  options.keep_alive_timeout = std::chrono::seconds(5);
  StartWith(options);
  // Twelve clients that keep their connection open, as adapters left connected do.
  std::vector<std::unique_ptr<httplib::Client>> sessions;
  for (int i = 0; i < 12; ++i) {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", simulator_->port());
    client->set_keep_alive(true);
    client->set_read_timeout(std::chrono::milliseconds(500));
    ASSERT_TRUE(client->Get("/api/v2/public/time")) << "session " << i << " was not served";
    sessions.push_back(std::move(client));
  }
  httplib::Client newcomer("127.0.0.1", simulator_->port());
  newcomer.set_read_timeout(std::chrono::milliseconds(500));
  httplib::Result result = newcomer.Get("/api/v2/public/time");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  for (auto& client : sessions) client->stop();
}

TEST(SimulatorStartTest, MissingCsvFileFailsStart) {
  ExchangeSimulatorOptions options;
  options.csv_sources = {{"NOPE", "/nonexistent/dir/nope.csv", ""}};
  ExchangeSimulator simulator(options);
  Result<void> started = simulator.Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_THAT(started.error().message, HasSubstr("/nonexistent/dir/nope.csv"));
  EXPECT_FALSE(simulator.IsRunning());
  EXPECT_EQ(simulator.port(), 0);
}

TEST(SimulatorStartTest, StopIsIdempotentAndSafeWithoutStart) {
  {
    ExchangeSimulator never_started;
    never_started.Stop();
    never_started.Stop();
    EXPECT_FALSE(never_started.IsRunning());
  }
  ExchangeSimulator simulator;
  ASSERT_TRUE(simulator.Start().has_value());
  ASSERT_TRUE(simulator.Start().has_value());  // already running: no-op
  const int port = simulator.port();
  EXPECT_TRUE(simulator.IsRunning());
  EXPECT_THAT(simulator.base_url(), HasSubstr(":" + std::to_string(port)));
  simulator.Stop();
  simulator.Stop();
  EXPECT_FALSE(simulator.IsRunning());
  EXPECT_EQ(simulator.port(), 0);
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(std::chrono::seconds(1));
  EXPECT_FALSE(client.Get("/api/v2/public/time")) << "the port still answers after Stop()";

  ASSERT_TRUE(simulator.Start().has_value());  // restart after Stop
  EXPECT_EQ(Fetch(simulator, "/api/v2/public/time").status, 200);
}

TEST(SimulatorStartTest, BusyPortIsUnavailable) {
  ExchangeSimulator first;
  ASSERT_TRUE(first.Start().has_value());
  ExchangeSimulatorOptions options;
  options.port = first.port();
  ExchangeSimulator second(options);
  Result<void> started = second.Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(started.error().message, HasSubstr(std::to_string(first.port())));
}

}  // namespace
}  // namespace leakgate::engine
