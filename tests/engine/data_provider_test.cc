#include "engine/data_provider.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/csv_loader.h"
#include "engine/exchange_adapter.h"
#include "engine/exchange_simulator.h"
#include "engine/kline.h"
#include "engine/synthetic_market.h"
#include "proc_probe.h"

namespace leakgate::engine {
namespace {

using ::leakgate::engine::testing::ClientSocketsTo;
using ::leakgate::engine::testing::ThreadsNamed;
using ::leakgate::engine::testing::WaitUntil;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kT0 = 1'704'067'200'000;  // 2024-01-01T00:00:00Z

KlineSeries MarketBars(const SyntheticMarketOptions& options, const std::string& symbol,
                       const std::string& timeframe, int64_t start, int64_t end) {
  Result<Timeframe> tf = ParseTimeframe(timeframe);
  EXPECT_TRUE(tf.has_value());
  Result<KlineSeries> bars = SyntheticMarket(options).Generate(symbol, *tf, start, end);
  EXPECT_TRUE(bars.has_value()) << bars.error().ToString();
  return bars.value_or(KlineSeries{});
}

class ProviderTest : public ::testing::Test {
 protected:
  void StartSimulator(ExchangeSimulatorOptions options = {}) {
    simulator_ = std::make_unique<ExchangeSimulator>(std::move(options));
    Result<void> started = simulator_->Start();
    ASSERT_TRUE(started.has_value()) << started.error().ToString();
  }

  HistoricalDataProviderOptions Options(const std::string& thread_name = "exch-heartbeat") const {
    HistoricalDataProviderOptions options;
    options.adapter.base_url = simulator_->base_url();
    options.adapter.heartbeat_thread_name = thread_name;
    options.initial_backoff = milliseconds(1);
    return options;
  }

  std::unique_ptr<ExchangeSimulator> simulator_;
};

TEST_F(ProviderTest, PagesThroughALongRangeAndReturnsExactlyTheMarketsBars) {
  StartSimulator();
  const int64_t bars = 12'345;
  HistoricalDataProvider provider(Options());
  Result<KlineSeries> fetched = provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + bars * kMinute);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().ToString();
  EXPECT_EQ(*fetched, MarketBars({}, "BTCUSDT", "1m", kT0, kT0 + bars * kMinute));
  const FetchStats stats = provider.last_fetch_stats();
  EXPECT_EQ(stats.pages, (bars + 999) / 1000);
  EXPECT_EQ(stats.rows, bars);
  EXPECT_EQ(stats.bars, bars);
  EXPECT_EQ(stats.duplicates_dropped, 0);
  EXPECT_EQ(stats.retries, 0);
  EXPECT_EQ(simulator_->candle_requests(), static_cast<uint64_t>(stats.pages));
}

TEST_F(ProviderTest, DuplicatedAndShuffledPagesStillGiveTheExactSeries) {
  ExchangeSimulatorOptions options;
  options.duplicate_rows = true;
  options.shuffle_rows = true;
  options.market.seed = 99;
  StartSimulator(options);
  const int64_t bars = 12'345;
  // An unaligned range: the provider's range is [start, end) like the market's.
  const int64_t start = kT0 + 17'000;
  const int64_t end = kT0 + bars * kMinute + 17'000;
  HistoricalDataProvider provider(Options());
  Result<KlineSeries> fetched = provider.FetchKlines("ETHUSDT", "1m", start, end);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().ToString();
  EXPECT_EQ(*fetched, MarketBars(options.market, "ETHUSDT", "1m", start, end));
  const FetchStats stats = provider.last_fetch_stats();
  EXPECT_EQ(stats.bars, static_cast<int64_t>(fetched->size()));
  EXPECT_EQ(stats.duplicates_dropped, stats.bars);
  EXPECT_EQ(stats.rows, 2 * stats.bars);
}

TEST_F(ProviderTest, OtherTimeframesAndSmallPages) {
  StartSimulator();
  HistoricalDataProviderOptions options = Options();
  options.page_limit = 7;
  HistoricalDataProvider provider(options);
  const int64_t hour = 60 * kMinute;
  Result<KlineSeries> fetched = provider.FetchKlines("SOLUSDT", "1h", kT0, kT0 + 50 * hour);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().ToString();
  EXPECT_EQ(*fetched, MarketBars({}, "SOLUSDT", "1H", kT0, kT0 + 50 * hour));
  EXPECT_EQ(provider.last_fetch_stats().pages, 8);  // 7 full pages and one of 1 row
}

TEST_F(ProviderTest, TransientFailuresAreRetriedAndCounted) {
  ExchangeSimulatorOptions options;
  options.fail_first_n_candle_requests = 3;
  options.fail_every_nth = 4;
  StartSimulator(options);
  HistoricalDataProvider provider(Options());
  Result<KlineSeries> fetched = provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + 5'000 * kMinute);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().ToString();
  EXPECT_EQ(*fetched, MarketBars({}, "BTCUSDT", "1m", kT0, kT0 + 5'000 * kMinute));
  const FetchStats stats = provider.last_fetch_stats();
  EXPECT_EQ(stats.pages, 5);
  EXPECT_GE(stats.retries, 4);
  EXPECT_EQ(static_cast<uint64_t>(stats.retries), simulator_->failures_injected());
  EXPECT_EQ(simulator_->candle_requests(), static_cast<uint64_t>(stats.pages + stats.retries));
}

TEST_F(ProviderTest, PersistentTransientFailureGivesUpAfterMaxRetries) {
  ExchangeSimulatorOptions options;
  options.fail_every_nth = 1;
  StartSimulator(options);
  HistoricalDataProviderOptions provider_options = Options();
  provider_options.max_retries = 2;
  HistoricalDataProvider provider(provider_options);
  Result<KlineSeries> fetched = provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + kMinute);
  ASSERT_FALSE(fetched.has_value());
  EXPECT_EQ(fetched.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(fetched.error().message, HasSubstr("503"));
  EXPECT_THAT(fetched.error().message,
              HasSubstr(simulator_->base_url() + "/api/v2/mix/market/candles"));
  EXPECT_THAT(fetched.error().message, HasSubstr("3 attempts"));
  EXPECT_EQ(simulator_->candle_requests(), 3u);
  EXPECT_EQ(provider.last_fetch_stats().retries, 2);
}

TEST_F(ProviderTest, PermanentErrorIsReportedAtOnceWithTheExchangesMessage) {
  ExchangeSimulatorOptions options;
  options.permanent_failure_status = 400;
  options.permanent_failure_code = "40010";
  options.permanent_failure_msg = "apiKey expired";
  StartSimulator(options);
  HistoricalDataProviderOptions provider_options = Options();
  provider_options.initial_backoff = milliseconds(500);  // a retry would show in the elapsed time
  HistoricalDataProvider provider(provider_options);
  const auto start = std::chrono::steady_clock::now();
  Result<KlineSeries> fetched = provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + kMinute);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(400));
  ASSERT_FALSE(fetched.has_value());
  EXPECT_EQ(fetched.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(fetched.error().message, HasSubstr("40010"));
  EXPECT_THAT(fetched.error().message, HasSubstr("apiKey expired"));
  EXPECT_THAT(fetched.error().message, HasSubstr("/api/v2/mix/market/candles?symbol=BTCUSDT"));
  EXPECT_EQ(simulator_->candle_requests(), 1u);
  EXPECT_EQ(provider.last_fetch_stats().retries, 0);
}

TEST_F(ProviderTest, UnknownSymbolIsNotFound) {
  ExchangeSimulatorOptions options;
  options.symbol_allow_list = {"BTCUSDT"};
  StartSimulator(options);
  HistoricalDataProvider provider(Options());
  Result<KlineSeries> fetched = provider.FetchKlines("DOGEUSDT", "1m", kT0, kT0 + kMinute);
  ASSERT_FALSE(fetched.has_value());
  EXPECT_EQ(fetched.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(fetched.error().message, HasSubstr("40034"));
  EXPECT_THAT(fetched.error().message, HasSubstr("DOGEUSDT"));
  EXPECT_EQ(simulator_->candle_requests(), 1u);
}

TEST_F(ProviderTest, BadRequestsAreRefusedBeforeAnythingIsSent) {
  StartSimulator();
  HistoricalDataProviderOptions options = Options("hb-validate");
  options.max_bars = 1000;
  HistoricalDataProvider provider(options);

  Result<KlineSeries> empty_symbol = provider.FetchKlines("", "1m", kT0, kT0 + kMinute);
  ASSERT_FALSE(empty_symbol.has_value());
  EXPECT_EQ(empty_symbol.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(empty_symbol.error().message, HasSubstr("symbol"));

  Result<KlineSeries> bad_timeframe = provider.FetchKlines("BTCUSDT", "7m", kT0, kT0 + kMinute);
  ASSERT_FALSE(bad_timeframe.has_value());
  EXPECT_EQ(bad_timeframe.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad_timeframe.error().message, HasSubstr("7m"));

  for (int64_t end : {kT0 - kMinute, kT0}) {
    Result<KlineSeries> inverted = provider.FetchKlines("BTCUSDT", "1m", kT0, end);
    ASSERT_FALSE(inverted.has_value());
    EXPECT_EQ(inverted.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(inverted.error().message, HasSubstr("inverted range"));
    EXPECT_THAT(inverted.error().message, HasSubstr(FormatTimestamp(kT0)));
    EXPECT_THAT(inverted.error().message, HasSubstr(FormatTimestamp(end)));
  }

  Result<KlineSeries> too_many = provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + 1001 * kMinute);
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(too_many.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(too_many.error().message, HasSubstr("1001"));
  EXPECT_THAT(too_many.error().message, HasSubstr("max_bars"));
  // Exactly max_bars is fine.
  Result<KlineSeries> at_limit = provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + 1000 * kMinute);
  ASSERT_TRUE(at_limit.has_value()) << at_limit.error().ToString();
  EXPECT_EQ(at_limit->size(), 1000u);
  EXPECT_EQ(simulator_->candle_requests(), 1u);
}

TEST_F(ProviderTest, CloseReleasesTheSocketAndTheHeartbeatThread) {
  StartSimulator();
  const int port = simulator_->port();
  HistoricalDataProvider provider(Options("hb-provider"));
  EXPECT_FALSE(provider.IsConnected());  // connects lazily
  EXPECT_EQ(ClientSocketsTo(port), 0);

  ASSERT_TRUE(provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + 10 * kMinute).has_value());
  EXPECT_TRUE(provider.IsConnected());
  EXPECT_EQ(ClientSocketsTo(port), 1);
  EXPECT_EQ(ThreadsNamed("hb-provider"), 1);

  provider.Close();
  EXPECT_FALSE(provider.IsConnected());
  EXPECT_TRUE(WaitUntil([&] { return ClientSocketsTo(port) == 0; }));
  EXPECT_TRUE(WaitUntil([&] { return ThreadsNamed("hb-provider") == 0; }));
  provider.Close();  // idempotent

  // A later fetch connects again; the destructor closes that connection too.
  {
    HistoricalDataProvider scoped(Options("hb-scoped"));
    ASSERT_TRUE(scoped.FetchKlines("BTCUSDT", "1m", kT0, kT0 + 10 * kMinute).has_value());
    EXPECT_EQ(ThreadsNamed("hb-scoped"), 1);
  }
  EXPECT_TRUE(WaitUntil([&] { return ClientSocketsTo(port) == 0; }));
  EXPECT_TRUE(WaitUntil([&] { return ThreadsNamed("hb-scoped") == 0; }));

  ASSERT_TRUE(provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + 10 * kMinute).has_value());
  EXPECT_TRUE(provider.IsConnected());
  EXPECT_EQ(ThreadsNamed("hb-provider"), 1);
}

TEST_F(ProviderTest, CloseDisconnectsAnInjectedAdapter) {
  StartSimulator();
  ExchangeAdapterOptions adapter_options;
  adapter_options.base_url = simulator_->base_url();
  adapter_options.heartbeat_thread_name = "hb-injected";
  auto adapter = std::make_shared<ExchangeAdapter>(adapter_options);
  HistoricalDataProvider provider(Options(), adapter);
  ASSERT_TRUE(provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + 10 * kMinute).has_value());
  EXPECT_TRUE(adapter->IsConnected());
  EXPECT_EQ(adapter.use_count(), 2);
  EXPECT_EQ(ThreadsNamed("hb-injected"), 1);

  provider.Close();
  EXPECT_FALSE(adapter->IsConnected());
  EXPECT_EQ(adapter.use_count(), 1);  // the provider dropped its reference
  EXPECT_EQ(ThreadsNamed("hb-injected"), 0);
  EXPECT_TRUE(WaitUntil([&] { return ClientSocketsTo(simulator_->port()) == 0; }));
}

TEST_F(ProviderTest, UnreachableExchangeIsUnavailableAndLeavesNothingRunning) {
  StartSimulator();
  HistoricalDataProviderOptions options = Options("hb-unreached");
  simulator_->Stop();
  options.max_retries = 1;
  HistoricalDataProvider provider(options);
  Result<KlineSeries> fetched = provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + kMinute);
  ASSERT_FALSE(fetched.has_value());
  EXPECT_EQ(fetched.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(fetched.error().message, HasSubstr(options.adapter.base_url));
  EXPECT_FALSE(provider.IsConnected());
  EXPECT_EQ(ThreadsNamed("hb-unreached"), 0);
  EXPECT_EQ(provider.last_fetch_stats().retries, 1);
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("data_provider_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

TEST_F(ProviderTest, CsvBackedSymbolThroughTheExchange) {
  TempDir dir;
  const std::string csv = dir.Write("acme.csv",
                                    "ts,open,high,low,close,baseVolume,quoteVolume\n"
                                    "1704067200000,100.5,101.25,99.75,101,12.5,1262.5\n"
                                    "1704070800000,101,103,100.5,102.5,8,820\n"
                                    "1704074400000,102.5,102.75,98,98.5,20.25,2000\n"
                                    "1704085200000,98.5,99,97.5,98.75,3,296.25\n"
                                    "1704088800000,98.75,100,98.5,99.5,4.5,447.75\n");
  ExchangeSimulatorOptions options;
  options.csv_sources = {{"ACMEUSDT", csv, ""}};
  StartSimulator(options);
  Result<KlineSeries> file = LoadKlinesCsv(csv);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  ASSERT_EQ(file->size(), 5u);

  HistoricalDataProviderOptions provider_options = Options();
  provider_options.page_limit = 2;  // pages across the gap in the file
  HistoricalDataProvider provider(provider_options);
  const int64_t hour = 60 * kMinute;
  Result<KlineSeries> fetched = provider.FetchKlines("ACMEUSDT", "1H", kT0, kT0 + 7 * hour);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().ToString();
  EXPECT_EQ(*fetched, *file);
  EXPECT_EQ(fetched->at(2).low, 98);
  EXPECT_EQ(fetched->at(4).quote_volume, 447.75);

  // [start, end): the last bar opens at the end and is left out.
  Result<KlineSeries> head = provider.FetchKlines("ACMEUSDT", "1H", kT0, (*file)[4].ts_ms);
  ASSERT_TRUE(head.has_value()) << head.error().ToString();
  EXPECT_EQ(*head, KlineSeries(file->begin(), file->begin() + 4));

  Result<KlineSeries> wrong = provider.FetchKlines("ACMEUSDT", "1m", kT0, kT0 + hour);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(wrong.error().message, HasSubstr("1H"));
}

// An exchange that answers pings and serves one fixed body for every candles request.
class FixedPageExchange {
 public:
  explicit FixedPageExchange(std::string candles_body) : body_(std::move(candles_body)) {
    server_.set_tcp_nodelay(true);
    server_.set_keep_alive_timeout(1);
    server_.Get("/api/v2/public/time", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(R"({"code":"00000","msg":"success","data":{"serverTime":"1"}})",
                           "application/json");
    });
    server_.Get("/api/v2/mix/market/candles",
                [this](const httplib::Request&, httplib::Response& response) {
                  response.set_content(body_, "application/json");
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    listener_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(milliseconds(1));
  }
  ~FixedPageExchange() {
    server_.stop();
    listener_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string body_;
  httplib::Server server_;
  int port_ = 0;
  std::thread listener_;
};

Result<KlineSeries> FetchFrom(const FixedPageExchange& exchange, int64_t bars = 5) {
  HistoricalDataProviderOptions options;
  options.adapter.base_url = exchange.base_url();
  HistoricalDataProvider provider(options);
  return provider.FetchKlines("BTCUSDT", "1m", kT0, kT0 + bars * kMinute);
}

TEST(ProviderParseTest, MalformedPagesAreParseErrorsNamingThePageAndRow) {
  const std::string head = R"({"code":"00000","msg":"success","requestTime":1,"data":[)";
  const std::string good = R"(["1704067200000","1","2","0.5","1.5","10","15"])";
  struct Case {
    std::string body;
    std::vector<std::string> says;
  };
  const std::vector<Case> cases = {
      {head + good + R"(,["1704067260000","1","two","0.5","1.5","10","15"]]})",
       {"row 1 ", "high", "\"two\""}},
      {head + good + R"(,["1704067260000","1","2","0.5","1.5"]]})", {"row 1 ", "5 cells"}},
      {head + R"([1704067200000.5,1,2,0.5,1.5,10,15]]})", {"row 0 ", "ts"}},
      {head + R"("1704067200000,1,2,0.5,1.5,10,15"]})", {"row 0 ", "expected an array"}},
      {head + good + R"(,{"ts":"1704067260000"}]})", {"row 1 ", "object"}},
      {head + R"(["1704067200000","1",["2"],"0.5","1.5","10","15"]]})",
       {"row 0 ", "high", "nested"}},
      {head + good, {"not valid JSON"}},
      {"<html>gateway</html>", {"not valid JSON"}},
      {R"({"code":"00000","msg":"success","data":null})", {"\"data\" array"}},
      {R"([1,2,3])", {"expected an object"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    FixedPageExchange exchange(c.body);
    Result<KlineSeries> fetched = FetchFrom(exchange);
    ASSERT_FALSE(fetched.has_value());
    EXPECT_EQ(fetched.error().code, ErrorCode::kParse);
    EXPECT_THAT(fetched.error().message,
                HasSubstr(exchange.base_url() + "/api/v2/mix/market/candles?symbol=BTCUSDT"));
    for (const std::string& part : c.says) EXPECT_THAT(fetched.error().message, HasSubstr(part));
  }
}

TEST(ProviderParseTest, NumericCellsAndSixColumnRowsAreAccepted) {
  FixedPageExchange exchange(
      R"({"code":"00000","msg":"success","requestTime":1,"data":[)"
      R"([1704067200000,1.25,2,0.5,1.5,10,15,"extra"],)"
      R"(["1704067260000","1.5","2","1","1.75","3"]]})");
  Result<KlineSeries> fetched = FetchFrom(exchange, 2);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().ToString();
  ASSERT_EQ(fetched->size(), 2u);
  EXPECT_EQ((*fetched)[0], (Kline{kT0, 1.25, 2, 0.5, 1.5, 10, 15}));
  EXPECT_EQ((*fetched)[1], (Kline{kT0 + kMinute, 1.5, 2, 1, 1.75, 3, 0}));
}

TEST(ProviderParseTest, ErrorCodeInA200IsARejection) {
  FixedPageExchange exchange(R"({"code":"40034","msg":"symbol BTCUSDT delisted","data":null})");
  Result<KlineSeries> fetched = FetchFrom(exchange);
  ASSERT_FALSE(fetched.has_value());
  EXPECT_EQ(fetched.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(fetched.error().message, HasSubstr("symbol BTCUSDT delisted"));
  EXPECT_THAT(fetched.error().message, HasSubstr("40034"));
}

TEST(ProviderParseTest, APageThatDoesNotAdvanceStopsPaging) {
  // Always the same bar, before the cursor of the second page.
  FixedPageExchange exchange(R"({"code":"00000","msg":"success","data":[)"
                             R"(["1704067200000","1","2","0.5","1.5","10","15"]]})");
  Result<KlineSeries> fetched = FetchFrom(exchange);
  ASSERT_FALSE(fetched.has_value());
  EXPECT_EQ(fetched.error().code, ErrorCode::kParse);
  EXPECT_THAT(fetched.error().message, HasSubstr("cannot advance"));
}

}  // namespace
}  // namespace leakgate::engine
