// The backtest HTTP service's API, exercised on a real backtest_server process over loopback with a
// real SQLite file: round trips, pagination, every kind of bad request, 404s, a full queue and
// parallel sessions checked in the database afterwards.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "server_process.h"

namespace leakgate::engine::testing {
namespace {

using nlohmann::json;

class BacktestServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string error;
    server_ =
        ServerProcess::Start({"--db", dir_->File("backtest.db")}, dir_->File("stderr.log"), &error)
            .release();
    if (server_ == nullptr) start_error_ = new std::string(error);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << (start_error_ ? *start_error_ : "");
    port_ = server_->port();
  }

  int SessionsInDatabase() const {
    Database db(dir_->File("backtest.db"));
    return std::stoi(db.Scalar("SELECT COUNT(*) FROM sessions"));
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static std::string* start_error_;
  int port_ = 0;
};

TempDir* BacktestServiceTest::dir_ = nullptr;
ServerProcess* BacktestServiceTest::server_ = nullptr;
std::string* BacktestServiceTest::start_error_ = nullptr;

TEST_F(BacktestServiceTest, FirstLineNamesTheAddressItListensOn) {
  EXPECT_EQ(server_->first_line(), "listening on http://127.0.0.1:" + std::to_string(port_));
  const HttpReply health = HttpGet(port_, "/healthz");
  ASSERT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(health.json["status"], "ok");
  EXPECT_EQ(health.json["faults"], "none");
}

TEST_F(BacktestServiceTest, RequestWithOnlyASymbolRunsWithDefaultsAndReadsBack) {
  const HttpReply accepted = HttpPost(port_, "/api/backtest", R"({"symbol":"BTCUSDT"})");
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  EXPECT_EQ(accepted.json["status"], "queued");
  const std::string id = accepted.json["session_id"].get<std::string>();
  EXPECT_EQ(id.size(), 32u);

  const json session = WaitForStatus(port_, id);
  ASSERT_EQ(session["status"], "done") << session.dump();
  EXPECT_EQ(session["session_id"], id);
  EXPECT_DOUBLE_EQ(session["progress"].get<double>(), 1.0);
  const json& request = session["request"];
  EXPECT_EQ(request["symbol"], "BTCUSDT");
  EXPECT_EQ(request["timeframe"], "15m");
  EXPECT_EQ(request["start"], "2024-01-01T00:00:00Z");
  EXPECT_EQ(request["end"], "2024-07-27T08:00:00Z");
  EXPECT_EQ(request["strategy"], "sma_cross");
  EXPECT_EQ(request["params"], json({{"fast", 10.0}, {"slow", 30.0}}));
  EXPECT_EQ(request["cash"], 10000.0);
  EXPECT_EQ(request["fee_rate"], 0.001);

  const json& stats = session["statistics"];
  ASSERT_TRUE(stats.is_object()) << session.dump();
  EXPECT_EQ(stats["bars"], 20000);
  EXPECT_EQ(stats["start_equity"], 10000.0);
  EXPECT_GT(stats["trades"].get<int>(), 0);
  EXPECT_LE(stats["max_drawdown_pct"].get<double>(), 0.0);
  EXPECT_GT(stats["total_fees"].get<double>(), 0.0);

  const HttpReply all = HttpGet(port_, "/api/backtest/" + id + "/trades");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.json["total"], stats["trades"]);
  ASSERT_EQ(all.json["trades"].size(), stats["trades"].get<size_t>());
  double pnl = 0;
  for (const json& trade : all.json["trades"]) {
    EXPECT_LT(trade["entry_time"].get<std::string>(), trade["exit_time"].get<std::string>());
    EXPECT_EQ(trade["side"], "long");
    pnl += trade["pnl"].get<double>();
  }
  EXPECT_NEAR(10000.0 + pnl, stats["final_equity"].get<double>(), 1e-6);

  // The echoed request, defaults filled in, is itself a valid request.
  const HttpReply again = HttpPost(port_, "/api/backtest", request.dump());
  EXPECT_EQ(again.status, 202) << again.body;

  const HttpReply page = HttpGet(port_, "/api/backtest/" + id + "/trades?limit=5&offset=2");
  ASSERT_EQ(page.status, 200) << page.body;
  ASSERT_EQ(page.json["trades"].size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(page.json["trades"][i], all.json["trades"][i + 2]);
}

TEST_F(BacktestServiceTest, SameRequestGivesSameStatistics) {
  const json request = {{"symbol", "ETHUSDT"}, {"timeframe", "1H"}, {"start", "2023-01-01"},
                        {"end", "2023-04-01"}, {"strategy", "rsi"}, {"params", {{"period", 10}}},
                        {"cash", 5000},        {"fee_rate", 0}};
  const json first = RunBacktest(port_, request);
  const json second = RunBacktest(port_, request);
  ASSERT_EQ(first["status"], "done") << first.dump();
  ASSERT_EQ(second["status"], "done") << second.dump();
  EXPECT_NE(first["session_id"], second["session_id"]);
  EXPECT_EQ(first["statistics"], second["statistics"]);
  EXPECT_EQ(first["statistics"]["bars"], 90 * 24);
  EXPECT_EQ(first["statistics"]["start_equity"], 5000.0);
}

TEST_F(BacktestServiceTest, ListsSessionsNewestFirstInPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    const json session = RunBacktest(port_, {{"symbol", "LIST" + std::to_string(i)},
                                             {"timeframe", "1D"},
                                             {"start", "2020-01-01"},
                                             {"end", "2020-06-01"}});
    ASSERT_EQ(session["status"], "done") << session.dump();
    ids.push_back(session["session_id"]);
  }
  const HttpReply first_page = HttpGet(port_, "/api/backtest?limit=2");
  ASSERT_EQ(first_page.status, 200) << first_page.body;
  const int total = first_page.json["total"].get<int>();
  EXPECT_EQ(total, SessionsInDatabase());
  ASSERT_EQ(first_page.json["sessions"].size(), 2u);
  EXPECT_EQ(first_page.json["sessions"][0]["session_id"], ids[2]);
  EXPECT_EQ(first_page.json["sessions"][1]["session_id"], ids[1]);
  EXPECT_EQ(first_page.json["sessions"][0]["request"]["symbol"], "LIST2");

  const HttpReply second_page = HttpGet(port_, "/api/backtest?limit=1&offset=2");
  ASSERT_EQ(second_page.status, 200) << second_page.body;
  ASSERT_EQ(second_page.json["sessions"].size(), 1u);
  EXPECT_EQ(second_page.json["sessions"][0]["session_id"], ids[0]);

  const HttpReply done = HttpGet(port_, "/api/backtest?status=done&limit=500");
  ASSERT_EQ(done.status, 200);
  for (const json& session : done.json["sessions"]) EXPECT_EQ(session["status"], "done");

  const HttpReply beyond = HttpGet(port_, "/api/backtest?offset=100000");
  ASSERT_EQ(beyond.status, 200);
  EXPECT_TRUE(beyond.json["sessions"].empty());

  for (const auto& [query, field] :
       std::vector<std::pair<std::string, std::string>>{{"limit=abc", "limit"},
                                                        {"limit=501", "limit"},
                                                        {"offset=-1", "offset"},
                                                        {"status=finished", "status"}}) {
    const HttpReply bad = HttpGet(port_, "/api/backtest?" + query);
    EXPECT_EQ(bad.status, 400) << query << ": " << bad.body;
    EXPECT_EQ(bad.json["error"]["field"], field) << query << ": " << bad.body;
  }
}

TEST_F(BacktestServiceTest, BadRequestsAnswer400NamingTheFieldAndStoreNothing) {
  struct Case {
    std::string body;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"this is not json", "body"},
      {"{\"symbol\": \"\xff\xfe\"}", "body"},  // not UTF-8
      {"", "body"},
      {"[1, 2]", "body"},
      {"{}", "symbol"},
      {R"({"symbol": 5})", "symbol"},
      {R"({"symbol": "BTC USDT"})", "symbol"},
      {R"({"symbol": ""})", "symbol"},
      {R"({"symbol": "BTCUSDT", "timeframe": "7m"})", "timeframe"},
      {R"({"symbol": "BTCUSDT", "timeframe": 15})", "timeframe"},
      {R"({"symbol": "BTCUSDT", "strategy": "macd"})", "strategy"},
      {R"({"symbol": "BTCUSDT", "strategy": null})", "strategy"},
      {R"({"symbol": "BTCUSDT", "params": [1]})", "params"},
      {R"({"symbol": "BTCUSDT", "params": {"fast": "ten"}})", "params.fast"},
      {R"({"symbol": "BTCUSDT", "params": {"speed": 3}})", "params.speed"},
      {R"({"symbol": "BTCUSDT", "params": {"fast": 40, "slow": 30}})", "params"},
      {R"({"symbol": "BTCUSDT", "params": {"fast": 2.5}})", "params"},
      {R"({"symbol": "BTCUSDT", "start": "yesterday"})", "start"},
      {R"({"symbol": "BTCUSDT", "start": true})", "start"},
      {R"({"symbol": "BTCUSDT", "start": "2024-03-01", "end": "2024-02-01"})", "end"},
      {R"({"symbol": "BTCUSDT", "start": "2024-01-01", "end": "2024-01-01"})", "end"},
      {R"({"symbol": "BTCUSDT", "timeframe": "1m", "start": "2000-01-01", "end": "2024-01-01"})",
       "end"},
      {R"({"symbol": "BTCUSDT", "timeframe": "1D", "start": "2024-01-01", "end": "2024-01-20"})",
       "end"},
      {R"({"symbol": "BTCUSDT", "cash": -100})", "cash"},
      {R"({"symbol": "BTCUSDT", "cash": 0})", "cash"},
      {R"({"symbol": "BTCUSDT", "cash": "1000"})", "cash"},
      {R"({"symbol": "BTCUSDT", "fee_rate": 0.7})", "fee_rate"},
      {R"({"symbol": "BTCUSDT", "fee_rate": -0.001})", "fee_rate"},
      {R"({"symbol": "BTCUSDT", "leverage": 3})", "leverage"},
  };
  const int sessions_before = SessionsInDatabase();
  const double rejected_before =
      ServerMetric(port_, R"(backtest_requests_rejected_total{reason="bad_request"})").value_or(-1);
  for (const Case& c : cases) {
    const HttpReply reply = HttpPost(port_, "/api/backtest", c.body);
    EXPECT_EQ(reply.status, 400) << c.body << " -> " << reply.body;
    ASSERT_TRUE(reply.json.is_object()) << c.body << " -> " << reply.body;
    EXPECT_EQ(reply.json["error"]["field"], c.field) << c.body << " -> " << reply.body;
    EXPECT_GT(reply.json["error"]["message"].get<std::string>().size(), 10u) << c.body;
  }
  EXPECT_EQ(SessionsInDatabase(), sessions_before);
  EXPECT_EQ(ServerMetric(port_, R"(backtest_requests_rejected_total{reason="bad_request"})"),
            rejected_before + static_cast<double>(cases.size()));
}

TEST_F(BacktestServiceTest, UnknownSessionsAndPathsAre404) {
  for (const std::string& path :
       {std::string("/api/backtest/0123456789abcdef0123456789abcdef"),
        std::string("/api/backtest/0123456789abcdef0123456789abcdef/trades"),
        std::string("/api/nothing-here")}) {
    const HttpReply reply = HttpGet(port_, path);
    EXPECT_EQ(reply.status, 404) << path;
    ASSERT_TRUE(reply.json.is_object()) << path << ": " << reply.body;
    EXPECT_FALSE(reply.json["error"]["message"].get<std::string>().empty()) << path;
  }
}

TEST_F(BacktestServiceTest, MetricsDescribeTheProcessAndTheSessions) {
  const json session = RunBacktest(
      port_,
      {{"symbol", "METRICS"}, {"timeframe", "1D"}, {"start", "2020-01-01"}, {"end", "2020-06-01"}});
  ASSERT_EQ(session["status"], "done");
  const HttpReply metrics = HttpGet(port_, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const std::string& text = metrics.body;
  EXPECT_NE(text.find("# TYPE backtest_process_resident_bytes gauge"), std::string::npos);
  EXPECT_GT(MetricValue(text, "backtest_process_resident_bytes").value_or(0), 1 << 20);
  EXPECT_GT(MetricValue(text, "backtest_process_open_fds").value_or(0), 3);
  EXPECT_EQ(MetricValue(text, "backtest_process_threads").value_or(0),
            static_cast<double>(ThreadCount(server_->pid())));
  EXPECT_EQ(MetricValue(text, "backtest_queue_depth"), 0.0);
  Database db(dir_->File("backtest.db"));
  EXPECT_EQ(MetricValue(text, R"(backtest_sessions{status="done"})"),
            std::stod(db.Scalar("SELECT COUNT(*) FROM sessions WHERE status = 'done'")));
  EXPECT_EQ(MetricValue(text, R"(backtest_fault_enabled{fault="singleton"})"), 0.0);
  const bool heap = MetricValue(text, "backtest_heap_allocated_bytes").has_value();
  const bool heap_comment = text.find("# backtest_heap_* omitted") != std::string::npos;
  EXPECT_NE(heap, heap_comment)
      << "heap figures or the comment saying why not, exactly one of them";
}

TEST(BacktestServiceQueueTest, FullQueueAnswers429AndStoresNothing) {
  TempDir dir;
  std::string error;
  // One worker, one queue slot and a slow exchange (10 ms an answer, about 20 pages a run).
  auto server = ServerProcess::Start({"--db", dir.File("backtest.db"), "--workers", "1", "--queue",
                                      "1", "--simulator-latency-ms", "10"},
                                     dir.File("stderr.log"), &error);
  ASSERT_NE(server, nullptr) << error;
  const int port = server->port();

  const std::string running = Submit(port, {{"symbol", "BTCUSDT"}});
  ASSERT_FALSE(running.empty());
  ASSERT_EQ(WaitForStatus(port, running, {"running"})["status"], "running");
  const std::string queued = Submit(port, {{"symbol", "ETHUSDT"}});
  ASSERT_FALSE(queued.empty());

  const HttpReply refused = HttpPost(port, "/api/backtest", R"({"symbol":"SOLUSDT"})");
  EXPECT_EQ(refused.status, 429) << refused.body;
  ASSERT_TRUE(refused.json.is_object()) << refused.body;
  EXPECT_NE(refused.json["error"]["message"].get<std::string>().find("queue is full"),
            std::string::npos);
  EXPECT_EQ(ServerMetric(port, R"(backtest_requests_rejected_total{reason="queue_full"})"), 1.0);
  EXPECT_EQ(ServerMetric(port, "backtest_queue_depth"), 1.0);

  EXPECT_EQ(WaitForStatus(port, running)["status"], "done");
  EXPECT_EQ(WaitForStatus(port, queued)["status"], "done");
  Database db(dir.File("backtest.db"));
  EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM sessions"), "2");
  EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM sessions WHERE params_json LIKE '%SOLUSDT%'"), "0");
}

TEST(BacktestServiceParallelTest, EightParallelBacktestsAreConsistentInTheDatabase) {
  TempDir dir;
  std::string error;
  auto server =
      ServerProcess::Start({"--db", dir.File("backtest.db")}, dir.File("stderr.log"), &error);
  ASSERT_NE(server, nullptr) << error;
  const int port = server->port();

  constexpr int kSessions = 8;
  std::vector<json> finished(kSessions);
  std::vector<std::thread> clients;
  for (int i = 0; i < kSessions; ++i) {
    clients.emplace_back([&, i] {
      finished[i] = RunBacktest(port, {{"symbol", "PAR" + std::to_string(i) + "USDT"},
                                       {"strategy", i % 2 == 0 ? "sma_cross" : "bollinger"}});
    });
  }
  for (std::thread& client : clients) client.join();

  Database db(dir.File("backtest.db"));
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM sessions WHERE status = 'done'"),
            std::to_string(kSessions));
  std::set<std::string> ids;
  for (int i = 0; i < kSessions; ++i) {
    const json& session = finished[i];
    ASSERT_EQ(session["status"], "done") << session.dump();
    const std::string id = session["session_id"];
    ids.insert(id);
    const std::string where = " WHERE session_id = '" + id + "'";
    // Every kline of the range, once, in order.
    const auto klines = db.Query(
        "SELECT COUNT(*), COUNT(DISTINCT ts_ms), MIN(ts_ms), MAX(ts_ms) FROM klines" + where);
    ASSERT_EQ(klines.size(), 1u);
    EXPECT_EQ(klines[0][0], "20000") << id;
    EXPECT_EQ(klines[0][1], "20000") << id;
    EXPECT_EQ(klines[0][2], "1704067200000") << id;
    EXPECT_EQ(klines[0][3], std::to_string(1704067200000LL + 19999LL * 15 * 60 * 1000)) << id;
    // Trades and results agree with each other and with the API.
    const std::string trades = db.Scalar("SELECT COUNT(*) FROM trades" + where);
    EXPECT_EQ(db.Scalar("SELECT trades FROM results" + where), trades) << id;
    EXPECT_EQ(db.Scalar("SELECT bars FROM results" + where), "20000") << id;
    EXPECT_EQ(std::to_string(session["statistics"]["trades"].get<int>()), trades) << id;
    EXPECT_EQ(db.Scalar("SELECT progress FROM sessions WHERE id = '" + id + "'"), "1.0");
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kSessions));
  EXPECT_EQ(db.Scalar("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM klines"), std::to_string(kSessions * 20000));
}

}  // namespace
}  // namespace leakgate::engine::testing
