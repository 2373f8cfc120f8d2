#include "engine/exchange_adapter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/exchange_simulator.h"
#include "proc_probe.h"

namespace leakgate::engine {
namespace {

using ::leakgate::engine::testing::ClientSocketsTo;
using ::leakgate::engine::testing::ThreadsNamed;
using ::leakgate::engine::testing::WaitUntil;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

class AdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<void> started = simulator_.Start();
    ASSERT_TRUE(started.has_value()) << started.error().ToString();
  }

  ExchangeAdapterOptions Options(const std::string& thread_name = "exch-heartbeat",
                                 milliseconds interval = milliseconds(250)) const {
    ExchangeAdapterOptions options;
    options.base_url = simulator_.base_url();
    options.heartbeat_thread_name = thread_name;
    options.heartbeat_interval = interval;
    return options;
  }

  // Declared first, destroyed last: adapters close their connections before the server stops.
  ExchangeSimulator simulator_;
};

TEST_F(AdapterTest, ConnectHoldsOneSocketAndANamedHeartbeatThread) {
  const int port = simulator_.port();
  ASSERT_EQ(ClientSocketsTo(port), 0);
  ASSERT_EQ(ThreadsNamed("exch-heartbeat"), 0);

  ExchangeAdapter adapter(Options());
  EXPECT_FALSE(adapter.IsConnected());
  Result<void> connected = adapter.Connect();
  ASSERT_TRUE(connected.has_value()) << connected.error().ToString();
  EXPECT_TRUE(adapter.IsConnected());
  EXPECT_EQ(ClientSocketsTo(port), 1);
  EXPECT_EQ(ThreadsNamed("exch-heartbeat"), 1);
  EXPECT_GE(simulator_.pings(), 1u);  // the eager ping that opened the socket

  // A second Connect is a no-op: still one socket, one thread.
  ASSERT_TRUE(adapter.Connect().has_value());
  EXPECT_EQ(ClientSocketsTo(port), 1);
  EXPECT_EQ(ThreadsNamed("exch-heartbeat"), 1);
}

TEST_F(AdapterTest, HeartbeatsKeepTheSessionOnOneConnection) {
  ExchangeAdapter adapter(Options("hb-fast", milliseconds(20)));
  ASSERT_TRUE(adapter.Connect().has_value());
  const uint64_t pings_after_connect = simulator_.pings();
  std::this_thread::sleep_for(milliseconds(300));
  const uint64_t sent = adapter.heartbeats_sent();
  EXPECT_GE(sent, 5u);   // about 15 expected; generous for a loaded machine
  EXPECT_LE(sent, 16u);  // never faster than the interval
  EXPECT_EQ(adapter.heartbeats_failed(), 0u);
  EXPECT_GE(simulator_.pings(), pings_after_connect + sent - 1);
  EXPECT_EQ(ClientSocketsTo(simulator_.port()), 1);
}

TEST_F(AdapterTest, DisconnectReleasesTheSocketAndTheThreadAtOnce) {
  const int port = simulator_.port();
  // A long interval: Disconnect must wake the thread rather than wait out the interval.
  ExchangeAdapter adapter(Options("hb-disconnect", milliseconds(10'000)));
  ASSERT_TRUE(adapter.Connect().has_value());
  ASSERT_EQ(ClientSocketsTo(port), 1);
  ASSERT_EQ(ThreadsNamed("hb-disconnect"), 1);

  const auto start = std::chrono::steady_clock::now();
  adapter.Disconnect();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  EXPECT_FALSE(adapter.IsConnected());
  EXPECT_TRUE(WaitUntil([&] { return ClientSocketsTo(port) == 0; }))
      << ClientSocketsTo(port) << " sockets to the exchange remain";
  EXPECT_TRUE(WaitUntil([&] { return ThreadsNamed("hb-disconnect") == 0; }));

  adapter.Disconnect();  // twice is fine
  EXPECT_FALSE(adapter.IsConnected());

  // And the adapter can connect again.
  ASSERT_TRUE(adapter.Connect().has_value());
  EXPECT_EQ(ClientSocketsTo(port), 1);
  EXPECT_EQ(ThreadsNamed("hb-disconnect"), 1);
}

TEST_F(AdapterTest, DestructorDisconnects) {
  const int port = simulator_.port();
  {
    auto adapter = std::make_unique<ExchangeAdapter>(Options("hb-destructor"));
    ASSERT_TRUE(adapter->Connect().has_value());
    ASSERT_EQ(ClientSocketsTo(port), 1);
    ASSERT_EQ(ThreadsNamed("hb-destructor"), 1);
  }
  EXPECT_TRUE(WaitUntil([&] { return ClientSocketsTo(port) == 0; }));
  EXPECT_TRUE(WaitUntil([&] { return ThreadsNamed("hb-destructor") == 0; }));
}

TEST_F(AdapterTest, GetReturnsAnyStatusWithItsBody) {
  ExchangeAdapter adapter(Options());
  ASSERT_TRUE(adapter.Connect().has_value());
  Result<HttpResponse> ok = adapter.Get(
      "/api/v2/mix/market/candles?symbol=BTCUSDT&granularity=1m&startTime=0&endTime=120000");
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(nlohmann::json::parse(ok->body)["data"].size(), 3u);

  Result<HttpResponse> rejected =
      adapter.Get("/api/v2/mix/market/candles?symbol=BTCUSDT&granularity=1m&startTime=5");
  ASSERT_TRUE(rejected.has_value()) << rejected.error().ToString();
  EXPECT_EQ(rejected->status, 400);
  EXPECT_THAT(rejected->body, HasSubstr("endTime"));
  EXPECT_EQ(ClientSocketsTo(simulator_.port()), 1);  // the requests reused the session's socket
}

TEST_F(AdapterTest, GetWithoutConnectionIsAFailedPrecondition) {
  ExchangeAdapter adapter(Options());
  Result<HttpResponse> before = adapter.Get("/api/v2/public/time");
  ASSERT_FALSE(before.has_value());
  EXPECT_EQ(before.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(before.error().message, HasSubstr("Connect"));

  ASSERT_TRUE(adapter.Connect().has_value());
  adapter.Disconnect();
  Result<HttpResponse> after = adapter.Get("/api/v2/public/time");
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(AdapterTest, ConnectToAClosedPortIsUnavailableAndLeavesNothingOpen) {
  ExchangeSimulator closed;
  ASSERT_TRUE(closed.Start().has_value());
  const std::string url = closed.base_url();
  const int port = closed.port();
  closed.Stop();

  ExchangeAdapterOptions options = Options("hb-refused");
  options.base_url = url;
  ExchangeAdapter adapter(options);
  Result<void> connected = adapter.Connect();
  ASSERT_FALSE(connected.has_value());
  EXPECT_EQ(connected.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(connected.error().message, HasSubstr(url));
  EXPECT_FALSE(adapter.IsConnected());
  EXPECT_EQ(ThreadsNamed("hb-refused"), 0);
  EXPECT_EQ(ClientSocketsTo(port), 0);
}

TEST_F(AdapterTest, HeartbeatFailuresAreCountedWhenTheExchangeGoesAway) {
  ExchangeAdapter adapter(Options("hb-lost", milliseconds(20)));
  ASSERT_TRUE(adapter.Connect().has_value());
  simulator_.Stop();
  EXPECT_TRUE(WaitUntil([&] { return adapter.heartbeats_failed() >= 2; }, milliseconds(3000)))
      << adapter.heartbeats_failed() << " failed of " << adapter.heartbeats_sent();
  EXPECT_TRUE(adapter.IsConnected());  // the session lives on until Disconnect
  adapter.Disconnect();
  EXPECT_EQ(ThreadsNamed("hb-lost"), 0);
}

TEST_F(AdapterTest, ReconnectsAfterTheExchangeClosedAnIdleConnection) {
  // No heartbeat: the simulator closes the idle connection after its 1 s keep-alive timeout.
  ExchangeAdapter adapter(Options("hb-none", milliseconds(0)));
  ASSERT_TRUE(adapter.Connect().has_value());
  EXPECT_EQ(ThreadsNamed("hb-none"), 0);
  std::this_thread::sleep_for(milliseconds(1200));
  Result<HttpResponse> ping = adapter.Get("/api/v2/public/time");
  ASSERT_TRUE(ping.has_value()) << ping.error().ToString();
  EXPECT_EQ(ping->status, 200);
  EXPECT_EQ(ClientSocketsTo(simulator_.port()), 1);
}

TEST_F(AdapterTest, BadOptionsAreRejectedByConnect) {
  ExchangeAdapterOptions long_name = Options("a-thread-name-of-20c");
  Result<void> connected = ExchangeAdapter(long_name).Connect();
  ASSERT_FALSE(connected.has_value());
  EXPECT_EQ(connected.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(connected.error().message, HasSubstr("15"));

  ExchangeAdapterOptions https = Options();
  https.base_url = "https://api.bitget.com";
  connected = ExchangeAdapter(https).Connect();
  ASSERT_FALSE(connected.has_value());
  EXPECT_EQ(connected.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(connected.error().message, HasSubstr("https"));
}

TEST(ParseHttpBaseUrlTest, AcceptsPlainHttpHostAndPort) {
  Result<HttpBaseUrl> url = ParseHttpBaseUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(url.has_value()) << url.error().ToString();
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->ToString(), "http://127.0.0.1:8080");

  url = ParseHttpBaseUrl("http://localhost/");
  ASSERT_TRUE(url.has_value()) << url.error().ToString();
  EXPECT_EQ(url->host, "localhost");
  EXPECT_EQ(url->port, 80);
}

TEST(ParseHttpBaseUrlTest, RejectsWhatItCannotUse) {
  struct Case {
    std::string url;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{{"https://127.0.0.1:443", "https"},
                                         {"ftp://host", "ftp"},
                                         {"127.0.0.1:8080", "scheme"},
                                         {"garbage", "scheme"},
                                         {"http://", "host"},
                                         {"http://:8080", "host"},
                                         {"http://host:0", "port"},
                                         {"http://host:99999", "port"},
                                         {"http://host:80x", "port"},
                                         {"http://host:8080/api", "path"}}) {
    SCOPED_TRACE(c.url);
    Result<HttpBaseUrl> url = ParseHttpBaseUrl(c.url);
    ASSERT_FALSE(url.has_value());
    EXPECT_EQ(url.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(url.error().message, HasSubstr(c.says));
    EXPECT_THAT(url.error().message, HasSubstr("http://HOST[:PORT]"));
  }
}

}  // namespace
}  // namespace leakgate::engine
