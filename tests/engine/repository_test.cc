#include "engine/repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace leakgate::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kFirstTs = 1'700'000'000'000;  // 2023-11-14T22:13:20Z
constexpr int64_t kMinute = 60'000;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

#define ASSERT_OK(expr)                                                           \
  do {                                                                            \
    const auto& result_ = (expr);                                                 \
    ASSERT_TRUE(result_.has_value()) << #expr << ": " << result_.error().message; \
  } while (false)

KlineSeries MakeKlines(size_t count, int64_t first_ts = kFirstTs) {
  KlineSeries klines;
  klines.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const double base = 100.0 + static_cast<double>(i % 997) * 0.25;
    klines.push_back(Kline{.ts_ms = first_ts + static_cast<int64_t>(i) * kMinute,
                           .open = base,
                           .high = base + 1.5,
                           .low = base - 1.25,
                           .close = base + 0.5,
                           .volume = 10.0 + static_cast<double>(i % 13),
                           .quote_volume = (10.0 + static_cast<double>(i % 13)) * base});
  }
  return klines;
}

// A second, independent connection to the same file, for checking what was really committed.
class RawDatabase {
 public:
  explicit RawDatabase(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDatabase() { sqlite3_close(db_); }

  int64_t QueryInt(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    int64_t value = -1;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW) {
      value = sqlite3_column_int64(statement, 0);
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(statement);
    return value;
  }

  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    std::string value;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(statement, 0);
      if (text != nullptr) value = reinterpret_cast<const char*>(text);
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(statement);
    return value;
  }

  void Exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (message ? message : "?");
    }
    sqlite3_free(message);
  }

 private:
  sqlite3* db_ = nullptr;
};

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "repository_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "backtest.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<BacktestRepository> OpenOrDie(RepositoryOptions options = {}) {
    auto repository = BacktestRepository::Open(path_, std::move(options));
    EXPECT_TRUE(repository.has_value()) << repository.error().message;
    return repository ? std::move(*repository) : nullptr;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(RepositoryTest, CreatesSchemaInWalModeAndKeepsDataAcrossReopen) {
  {
    auto repository = OpenOrDie();
    ASSERT_NE(repository, nullptr);
    ASSERT_OK(repository->CreateSession("s1", R"({"symbol":"BTCUSDT"})"));
    RawDatabase raw(path_);
    EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), BacktestRepository::kSchemaVersion);
    for (const char* table : {"sessions", "klines", "trades", "results"}) {
      EXPECT_EQ(
          raw.QueryInt(std::string("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                   "name = '") +
                       table + "'"),
          1)
          << table;
    }
    EXPECT_EQ(raw.QueryInt("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND "
                           "tbl_name = 'sessions' AND sql LIKE '%created_ms%'"),
              2);
    ASSERT_OK(repository->Close());
  }
  auto reopened = OpenOrDie();
  ASSERT_NE(reopened, nullptr);
  auto session = reopened->GetSession("s1");
  ASSERT_OK(session);
  ASSERT_TRUE(session->has_value());
  EXPECT_EQ((*session)->params_json, R"({"symbol":"BTCUSDT"})");
  EXPECT_EQ((*session)->status, SessionStatus::kQueued);
}

TEST_F(RepositoryTest, RefusesADatabaseWithANewerSchemaVersion) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 7", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto repository = BacktestRepository::Open(path_);
  ASSERT_FALSE(repository.has_value());
  EXPECT_EQ(repository.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(repository.error().message, HasSubstr(path_));
  EXPECT_THAT(repository.error().message, HasSubstr("schema version 7"));
}

TEST_F(RepositoryTest, RefusesAFileThatIsNotADatabase) {
  std::ofstream(path_) << "ts,open,high,low,close\n" << std::string(4096, 'x') << "\n";
  auto repository = BacktestRepository::Open(path_);
  ASSERT_FALSE(repository.has_value());
  EXPECT_EQ(repository.error().code, ErrorCode::kIo);
  EXPECT_THAT(repository.error().message, HasSubstr(path_));
  EXPECT_THAT(repository.error().message, HasSubstr("not a database"));
}

TEST_F(RepositoryTest, OpenOnAnUnwritablePathNamesThePath) {
  const std::string regular_file = (dir_ / "plain_file").string();
  std::ofstream(regular_file) << "not a directory";
  for (const std::string& bad :
       {regular_file + "/backtest.db", (dir_ / "missing/dir/backtest.db").string()}) {
    auto repository = BacktestRepository::Open(bad);
    ASSERT_FALSE(repository.has_value()) << bad;
    EXPECT_EQ(repository.error().code, ErrorCode::kIo);
    EXPECT_THAT(repository.error().message, HasSubstr(bad));
    EXPECT_THAT(repository.error().message, HasSubstr("unable to open database file"));
  }
  auto empty = BacktestRepository::Open("");
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(RepositoryTest, SessionLifecycle) {
  std::atomic<int64_t> now{kFirstTs};
  auto repository = OpenOrDie({.now_ms = [&] { return now.load(); }});
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("s1", R"({"strategy":"sma"})"));
  auto created = repository->GetSession("s1");
  ASSERT_OK(created);
  ASSERT_TRUE(created->has_value());
  EXPECT_EQ(**created, (SessionRecord{.id = "s1",
                                      .params_json = R"({"strategy":"sma"})",
                                      .status = SessionStatus::kQueued,
                                      .created_ms = kFirstTs,
                                      .updated_ms = kFirstTs,
                                      .error = "",
                                      .progress = 0}));

  now += 1000;
  ASSERT_OK(repository->UpdateStatus("s1", SessionStatus::kRunning));
  ASSERT_OK(repository->UpdateProgress("s1", 0.25));
  auto running = repository->GetSession("s1");
  ASSERT_OK(running);
  EXPECT_EQ((*running)->status, SessionStatus::kRunning);
  EXPECT_EQ((*running)->progress, 0.25);
  EXPECT_EQ((*running)->created_ms, kFirstTs);
  EXPECT_EQ((*running)->updated_ms, kFirstTs + 1000);

  for (double bad : {-0.1, 1.5, kNaN}) {
    auto rejected = repository->UpdateProgress("s1", bad);
    ASSERT_FALSE(rejected.has_value()) << bad;
    EXPECT_EQ(rejected.error().code, ErrorCode::kInvalidArgument);
  }

  ASSERT_OK(repository->UpdateStatus("s1", SessionStatus::kFailed, "exchange unreachable"));
  auto failed = repository->GetSession("s1");
  ASSERT_OK(failed);
  EXPECT_EQ((*failed)->status, SessionStatus::kFailed);
  EXPECT_EQ((*failed)->error, "exchange unreachable");

  ASSERT_OK(repository->UpdateStatus("s1", SessionStatus::kDone));
  auto done = repository->GetSession("s1");
  ASSERT_OK(done);
  EXPECT_EQ((*done)->status, SessionStatus::kDone);
  EXPECT_EQ((*done)->error, "");
  EXPECT_EQ((*done)->progress, 1.0);

  auto missing = repository->GetSession("nope");
  ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());
  auto update_missing = repository->UpdateStatus("nope", SessionStatus::kRunning);
  ASSERT_FALSE(update_missing.has_value());
  EXPECT_EQ(update_missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(update_missing.error().message, HasSubstr("'nope'"));
  EXPECT_EQ(repository->UpdateProgress("nope", 0.5).error().code, ErrorCode::kNotFound);
}

TEST_F(RepositoryTest, SessionStatusNamesRoundTrip) {
  for (SessionStatus status : {SessionStatus::kQueued, SessionStatus::kRunning,
                               SessionStatus::kDone, SessionStatus::kFailed}) {
    auto parsed = ParseSessionStatus(SessionStatusName(status));
    ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, status);
  }
  auto unknown = ParseSessionStatus("paused");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_THAT(unknown.error().message, HasSubstr("queued, running, done or failed"));
}

TEST_F(RepositoryTest, RejectsDuplicateSessionIdAndInvalidParams) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("dup", "{}"));
  auto duplicate = repository->CreateSession("dup", R"({"other":true})");
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(duplicate.error().message, HasSubstr("'dup' already exists"));
  auto kept = repository->GetSession("dup");
  ASSERT_OK(kept);
  EXPECT_EQ((*kept)->params_json, "{}");

  auto bad_json = repository->CreateSession("j", "{\"symbol\": ");
  ASSERT_FALSE(bad_json.has_value());
  EXPECT_EQ(bad_json.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad_json.error().message, HasSubstr("not valid JSON"));
  EXPECT_EQ(repository->CreateSession("", "{}").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(*repository->CountSessions(), 1);
}

TEST_F(RepositoryTest, ListsSessionsNewestFirstWithPaginationAndStatusFilter) {
  std::atomic<int64_t> now{kFirstTs};
  auto repository = OpenOrDie({.now_ms = [&] { return now.load(); }});
  ASSERT_NE(repository, nullptr);
  // s3 and s4 share a creation millisecond: the later insert counts as newer.
  const std::vector<std::pair<std::string, int64_t>> created = {
      {"s0", 0}, {"s1", 10}, {"s2", 20}, {"s3", 30}, {"s4", 30}, {"s5", 40}, {"s6", 50}};
  for (const auto& [id, offset] : created) {
    now = kFirstTs + offset;
    ASSERT_OK(repository->CreateSession(id, "{}"));
  }
  ASSERT_OK(repository->UpdateStatus("s1", SessionStatus::kDone));
  ASSERT_OK(repository->UpdateStatus("s4", SessionStatus::kDone));
  ASSERT_OK(repository->UpdateStatus("s6", SessionStatus::kRunning));

  auto ids = [](const std::vector<SessionRecord>& sessions) {
    std::vector<std::string> out;
    for (const SessionRecord& s : sessions) out.push_back(s.id);
    return out;
  };
  auto page1 = repository->ListSessions(3, 0);
  auto page2 = repository->ListSessions(3, 3);
  auto page3 = repository->ListSessions(3, 6);
  auto page4 = repository->ListSessions(3, 9);
  ASSERT_OK(page1);
  ASSERT_OK(page2);
  ASSERT_OK(page3);
  ASSERT_OK(page4);
  EXPECT_THAT(ids(*page1), ::testing::ElementsAre("s6", "s5", "s4"));
  EXPECT_THAT(ids(*page2), ::testing::ElementsAre("s3", "s2", "s1"));
  EXPECT_THAT(ids(*page3), ::testing::ElementsAre("s0"));
  EXPECT_TRUE(page4->empty());

  auto done = repository->ListSessions(10, 0, SessionStatus::kDone);
  ASSERT_OK(done);
  EXPECT_THAT(ids(*done), ::testing::ElementsAre("s4", "s1"));
  EXPECT_EQ(*repository->CountSessions(), 7);
  EXPECT_EQ(*repository->CountSessions(SessionStatus::kDone), 2);
  EXPECT_EQ(*repository->CountSessions(SessionStatus::kQueued), 4);
  EXPECT_EQ(*repository->CountSessions(SessionStatus::kFailed), 0);
  EXPECT_EQ(repository->ListSessions(-1, 0).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(RepositoryTest, SavesTwentyFiveThousandKlinesInExactlyTwentyFiveTransactions) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("big", "{}"));
  int commits = 0;
  repository->TEST_SetCommitHook([&] { ++commits; });
  const KlineSeries klines = MakeKlines(25'000);

  auto saved = repository->SaveKlines("big", klines);
  ASSERT_OK(saved);
  EXPECT_EQ(*saved, (SaveStats{.rows = 25'000, .transactions = 25}));
  EXPECT_EQ(commits, 25);
  repository->TEST_SetCommitHook(nullptr);

  EXPECT_EQ(*repository->CountKlines("big"), 25'000);
  EXPECT_EQ(RawDatabase(path_).QueryInt("SELECT count(*) FROM klines WHERE session_id = 'big'"),
            25'000);
  auto loaded = repository->LoadKlines("big");
  ASSERT_OK(loaded);
  EXPECT_TRUE(*loaded == klines);
}

TEST_F(RepositoryTest, WritesTheRemainderAsAFinalSmallerBatch) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("s", "{}"));
  int commits = 0;
  repository->TEST_SetCommitHook([&] { ++commits; });
  auto saved = repository->SaveKlines("s", MakeKlines(2'500));
  ASSERT_OK(saved);
  EXPECT_EQ(*saved, (SaveStats{.rows = 2'500, .transactions = 3}));
  EXPECT_EQ(commits, 3);

  auto nothing = repository->SaveKlines("s", {});
  ASSERT_OK(nothing);
  EXPECT_EQ(*nothing, (SaveStats{}));
  auto zero_batch = repository->SaveKlines("s", MakeKlines(3, kFirstTs * 2), 0);
  ASSERT_FALSE(zero_batch.has_value());
  EXPECT_EQ(zero_batch.error().code, ErrorCode::kInvalidArgument);
  auto unknown = repository->SaveKlines("ghost", MakeKlines(3));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(unknown.error().message, HasSubstr("'ghost'"));
  EXPECT_EQ(*repository->CountKlines("s"), 2'500);
}

TEST_F(RepositoryTest, FailureInTheMiddleRollsBackOnlyTheFailingBatch) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("mid", "{}"));
  ASSERT_OK(repository->UpdateStatus("mid", SessionStatus::kRunning));
  KlineSeries klines = MakeKlines(25'000);
  klines[12'345].close = kNaN;
  int commits = 0;
  repository->TEST_SetCommitHook([&] { ++commits; });

  auto saved = repository->SaveKlines("mid", klines);
  ASSERT_FALSE(saved.has_value());
  const std::string& message = saved.error().message;
  EXPECT_EQ(saved.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("'mid'"));
  EXPECT_THAT(message, HasSubstr("batch 13"));
  EXPECT_THAT(message, HasSubstr("row 12345"));
  EXPECT_THAT(message, HasSubstr(std::to_string(klines[12'345].ts_ms)));
  EXPECT_THAT(message, HasSubstr(FormatTimestamp(klines[12'345].ts_ms)));
  EXPECT_THAT(message, HasSubstr("close is NaN"));
  // Twelve batch commits, then the commit of the status change to failed.
  EXPECT_EQ(commits, 13);
  repository->TEST_SetCommitHook(nullptr);

  RawDatabase raw(path_);
  EXPECT_EQ(raw.QueryInt("SELECT count(*) FROM klines WHERE session_id = 'mid'"), 12'000);
  EXPECT_EQ(raw.QueryInt("SELECT max(ts_ms) FROM klines WHERE session_id = 'mid'"),
            klines[11'999].ts_ms);
  EXPECT_EQ(raw.QueryInt("SELECT count(*) FROM klines WHERE ts_ms >= " +
                         std::to_string(klines[12'000].ts_ms)),
            0);
  auto loaded = repository->LoadKlines("mid");
  ASSERT_OK(loaded);
  EXPECT_TRUE(std::equal(loaded->begin(), loaded->end(), klines.begin(), klines.begin() + 12'000));

  auto session = repository->GetSession("mid");
  ASSERT_OK(session);
  EXPECT_EQ((*session)->status, SessionStatus::kFailed);
  EXPECT_EQ((*session)->error, message);
}

TEST_F(RepositoryTest, DuplicateTimestampRollsBackItsBatch) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("dup", "{}"));
  KlineSeries klines = MakeKlines(3'000);
  klines[1'500].ts_ms = klines[1'499].ts_ms;
  auto saved = repository->SaveKlines("dup", klines);
  ASSERT_FALSE(saved.has_value());
  EXPECT_THAT(saved.error().message, HasSubstr("batch 2"));
  EXPECT_THAT(saved.error().message, HasSubstr("row 1500"));
  EXPECT_THAT(saved.error().message, HasSubstr("already stored"));
  EXPECT_EQ(*repository->CountKlines("dup"), 1'000);
  EXPECT_EQ((*repository->GetSession("dup"))->status, SessionStatus::kFailed);
}

TEST_F(RepositoryTest, KlineBatchWriterFlushesEveryBatchAndTheRemainder) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("w", "{}"));
  int commits = 0;
  repository->TEST_SetCommitHook([&] { ++commits; });
  const KlineSeries klines = MakeKlines(2'500);

  KlineBatchWriter writer(*repository, "w");
  EXPECT_EQ(writer.batch_size(), 1'000u);
  const size_t capacity = writer.TEST_buffer_capacity();
  EXPECT_EQ(capacity, 1'000u);
  for (size_t i = 0; i < klines.size(); ++i) {
    ASSERT_OK(writer.Add(klines[i]));
    ASSERT_LE(writer.buffered(), writer.batch_size());
    ASSERT_EQ(writer.TEST_buffer_capacity(), capacity) << "buffer reallocated at row " << i;
    const int64_t full_batches = static_cast<int64_t>((i + 1) / 1'000);
    ASSERT_EQ(writer.transactions(), full_batches) << "after row " << i;
    ASSERT_EQ(writer.rows_written(), full_batches * 1'000) << "after row " << i;
    ASSERT_EQ(commits, full_batches) << "after row " << i;
  }
  EXPECT_EQ(writer.buffered(), 500u);
  EXPECT_EQ(*repository->CountKlines("w"), 2'000);
  ASSERT_OK(writer.Flush());
  EXPECT_EQ(writer.rows_written(), 2'500);
  EXPECT_EQ(writer.transactions(), 3);
  EXPECT_EQ(writer.buffered(), 0u);
  EXPECT_EQ(commits, 3);
  ASSERT_OK(writer.Flush());
  EXPECT_EQ(commits, 3) << "flushing an empty buffer must not open a transaction";
  auto loaded = repository->LoadKlines("w");
  ASSERT_OK(loaded);
  EXPECT_TRUE(*loaded == klines);
}

TEST_F(RepositoryTest, KlineBatchWriterStopsAfterAFailedBatch) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("w", "{}"));
  KlineSeries klines = MakeKlines(3'000);
  klines[1'500].high = kNaN;
  KlineBatchWriter writer(*repository, "w");
  Result<void> added;
  size_t failed_at = 0;
  for (; failed_at < klines.size(); ++failed_at) {
    added = writer.Add(klines[failed_at]);
    if (!added) break;
  }
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(failed_at, 1'999u) << "the second batch is written when its 1000th row arrives";
  EXPECT_THAT(added.error().message, HasSubstr("batch 2"));
  EXPECT_THAT(added.error().message, HasSubstr("row 1500"));
  EXPECT_THAT(added.error().message, HasSubstr("high is NaN"));
  EXPECT_EQ(writer.rows_written(), 1'000);
  EXPECT_EQ(writer.transactions(), 1);
  EXPECT_EQ(writer.buffered(), 0u);
  EXPECT_EQ(*repository->CountKlines("w"), 1'000);
  EXPECT_EQ((*repository->GetSession("w"))->status, SessionStatus::kFailed);

  auto after = writer.Add(klines[2'000]);
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(after.error().message, HasSubstr("batch 2"));
  EXPECT_EQ(writer.Flush().error().code, ErrorCode::kFailedPrecondition);
}

Trade MakeTrade(int i) {
  return Trade{.side = i % 2 == 0 ? Side::kLong : Side::kShort,
               .size = 1.0 + i,
               .entry_index = 10 * i,
               .exit_index = 10 * i + 5,
               .entry_ts_ms = kFirstTs + 10 * i * kMinute,
               .exit_ts_ms = kFirstTs + (10 * i + 5) * kMinute,
               .entry_price = 100.0 + i,
               .exit_price = 101.5 + i,
               .fees = 0.125,
               .pnl = 1.375 * (i + 1),
               .return_pct = 1.5 / (100.0 + i) * 100};
}

// Equality that treats NaN as equal to NaN, for values that went through the database.
bool SameDouble(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void ExpectSameTrade(const Trade& a, const Trade& b) {
  EXPECT_EQ(a.side, b.side);
  EXPECT_EQ(a.entry_index, b.entry_index);
  EXPECT_EQ(a.exit_index, b.exit_index);
  EXPECT_EQ(a.entry_ts_ms, b.entry_ts_ms);
  EXPECT_EQ(a.exit_ts_ms, b.exit_ts_ms);
  const std::pair<const char*, double Trade::*> fields[] = {{"size", &Trade::size},
                                                            {"entry_price", &Trade::entry_price},
                                                            {"exit_price", &Trade::exit_price},
                                                            {"fees", &Trade::fees},
                                                            {"pnl", &Trade::pnl},
                                                            {"return_pct", &Trade::return_pct}};
  for (const auto& [name, field] : fields) {
    EXPECT_TRUE(SameDouble(a.*field, b.*field)) << name << ": " << a.*field << " vs " << b.*field;
  }
}

void ExpectSameStatistics(const Statistics& a, const Statistics& b) {
  EXPECT_EQ(a.bars, b.bars);
  EXPECT_EQ(a.trades, b.trades);
  const std::pair<const char*, double Statistics::*> fields[] = {
      {"start_equity", &Statistics::start_equity},
      {"final_equity", &Statistics::final_equity},
      {"peak_equity", &Statistics::peak_equity},
      {"return_pct", &Statistics::return_pct},
      {"buy_hold_return_pct", &Statistics::buy_hold_return_pct},
      {"max_drawdown_pct", &Statistics::max_drawdown_pct},
      {"win_rate_pct", &Statistics::win_rate_pct},
      {"profit_factor", &Statistics::profit_factor},
      {"best_trade_pct", &Statistics::best_trade_pct},
      {"worst_trade_pct", &Statistics::worst_trade_pct},
      {"avg_trade_pct", &Statistics::avg_trade_pct},
      {"sharpe", &Statistics::sharpe},
      {"exposure_pct", &Statistics::exposure_pct},
      {"total_fees", &Statistics::total_fees}};
  for (const auto& [name, field] : fields) {
    EXPECT_TRUE(SameDouble(a.*field, b.*field)) << name << ": " << a.*field << " vs " << b.*field;
  }
}

Statistics MakeStatistics() {
  return Statistics{.bars = 8'760,
                    .trades = 3,
                    .start_equity = 10'000,
                    .final_equity = 11'234.5,
                    .peak_equity = 12'000.25,
                    .return_pct = 12.345,
                    .buy_hold_return_pct = -3.5,
                    .max_drawdown_pct = -7.125,
                    .win_rate_pct = 66.666,
                    .profit_factor = kInf,
                    .best_trade_pct = 5.5,
                    .worst_trade_pct = -1.25,
                    .avg_trade_pct = 2.0,
                    .sharpe = kNaN,
                    .exposure_pct = 42.0,
                    .total_fees = 0.375};
}

TEST_F(RepositoryTest, TradesAndStatisticsRoundTripIncludingNaNAndInfinity) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("r", "{}"));
  auto none = repository->LoadResult("r");
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());

  std::vector<Trade> trades = {MakeTrade(0), MakeTrade(1), MakeTrade(2)};
  trades[1].pnl = kNaN;
  trades[2].return_pct = -kInf;
  ASSERT_OK(repository->SaveTrades("r", trades));
  auto loaded_trades = repository->LoadTrades("r");
  ASSERT_OK(loaded_trades);
  ASSERT_EQ(loaded_trades->size(), 3u);
  for (size_t i = 0; i < trades.size(); ++i) ExpectSameTrade((*loaded_trades)[i], trades[i]);
  EXPECT_EQ((*loaded_trades)[1].side, Side::kShort);
  EXPECT_TRUE(std::isnan((*loaded_trades)[1].pnl));
  EXPECT_EQ((*loaded_trades)[2].return_pct, -kInf);

  // Saving again replaces the trades.
  ASSERT_OK(repository->SaveTrades("r", std::vector<Trade>{MakeTrade(7)}));
  auto replaced = repository->LoadTrades("r");
  ASSERT_OK(replaced);
  ASSERT_EQ(replaced->size(), 1u);
  ExpectSameTrade(replaced->front(), MakeTrade(7));

  const Statistics stats = MakeStatistics();
  ASSERT_OK(repository->SaveResult("r", stats));
  auto loaded = repository->LoadResult("r");
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  ExpectSameStatistics(**loaded, stats);
  EXPECT_EQ((*loaded)->profit_factor, kInf);
  EXPECT_TRUE(std::isnan((*loaded)->sharpe));
  EXPECT_EQ(
      RawDatabase(path_).QueryInt("SELECT sharpe IS NULL FROM results WHERE session_id = 'r'"), 1);

  EXPECT_EQ(repository->SaveTrades("ghost", trades).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(repository->SaveResult("ghost", stats).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(repository->LoadResult("ghost").error().code, ErrorCode::kNotFound);
}

TEST_F(RepositoryTest, FinishSessionWritesEverythingOrNothing) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("ok", "{}"));
  ASSERT_OK(repository->CreateSession("blocked", "{}"));
  ASSERT_OK(repository->UpdateStatus("ok", SessionStatus::kRunning));
  ASSERT_OK(repository->UpdateStatus("blocked", SessionStatus::kRunning));
  ASSERT_OK(repository->UpdateProgress("ok", 0.5));
  int commits = 0;
  repository->TEST_SetCommitHook([&] { ++commits; });
  const std::vector<Trade> trades = {MakeTrade(0), MakeTrade(1)};
  const Statistics stats = MakeStatistics();

  ASSERT_OK(repository->FinishSession("ok", stats, trades));
  EXPECT_EQ(commits, 1);
  auto session = repository->GetSession("ok");
  ASSERT_OK(session);
  EXPECT_EQ((*session)->status, SessionStatus::kDone);
  EXPECT_EQ((*session)->progress, 1.0);
  EXPECT_EQ(repository->LoadTrades("ok")->size(), 2u);
  ExpectSameStatistics(**repository->LoadResult("ok"), stats);

  // Make the statistics insert fail after the trades were written: nothing may remain.
  RawDatabase(path_).Exec(
      "CREATE TRIGGER reject_results BEFORE INSERT ON results WHEN NEW.session_id = 'blocked' "
      "BEGIN SELECT RAISE(ABORT, 'results rejected'); END");
  auto blocked = repository->FinishSession("blocked", stats, trades);
  ASSERT_FALSE(blocked.has_value());
  EXPECT_THAT(blocked.error().message, HasSubstr("results rejected"));
  EXPECT_EQ((*repository->GetSession("blocked"))->status, SessionStatus::kRunning);
  EXPECT_TRUE(repository->LoadTrades("blocked")->empty());
  EXPECT_FALSE(repository->LoadResult("blocked")->has_value());

  EXPECT_EQ(repository->FinishSession("ghost", stats, trades).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(commits, 1);
}

TEST_F(RepositoryTest, DeleteSessionCascadesToKlinesTradesAndResult) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("gone", "{}"));
  ASSERT_OK(repository->CreateSession("kept", "{}"));
  for (const char* id : {"gone", "kept"}) {
    ASSERT_OK(repository->SaveKlines(id, MakeKlines(1'500)));
    ASSERT_OK(repository->FinishSession(id, MakeStatistics(), std::vector<Trade>{MakeTrade(1)}));
  }
  ASSERT_OK(repository->DeleteSession("gone"));
  RawDatabase raw(path_);
  for (const char* table : {"sessions", "klines", "trades", "results"}) {
    const std::string column = std::string(table) == "sessions" ? "id" : "session_id";
    EXPECT_EQ(raw.QueryInt(std::string("SELECT count(*) FROM ") + table + " WHERE " + column +
                           " = 'gone'"),
              0)
        << table;
    EXPECT_GT(raw.QueryInt(std::string("SELECT count(*) FROM ") + table + " WHERE " + column +
                           " = 'kept'"),
              0)
        << table;
  }
  auto again = repository->DeleteSession("gone");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(repository->LoadKlines("gone").error().code, ErrorCode::kNotFound);
}

TEST_F(RepositoryTest, MarkInterruptedFailsSessionsLeftByACrashedProcess) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The crashing service: leaves sessions queued and running, then dies without closing anything.
    auto repository = BacktestRepository::Open(path_);
    if (!repository) _exit(2);
    bool ok = (*repository)->CreateSession("was-running", "{}").has_value() &&
              (*repository)->CreateSession("was-queued", "{}").has_value() &&
              (*repository)->CreateSession("finished", "{}").has_value() &&
              (*repository)->UpdateStatus("was-running", SessionStatus::kRunning).has_value() &&
              (*repository)->SaveKlines("was-running", MakeKlines(1'200)).has_value() &&
              (*repository)->UpdateStatus("finished", SessionStatus::kDone).has_value();
    if (!ok) _exit(3);
    raise(SIGKILL);
    _exit(4);
  }
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wait_status)) << "child exited with " << WEXITSTATUS(wait_status);
  ASSERT_EQ(WTERMSIG(wait_status), SIGKILL);

  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  EXPECT_EQ(*repository->CountKlines("was-running"), 1'200);
  auto moved = repository->MarkInterrupted();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 2);
  for (const char* id : {"was-running", "was-queued"}) {
    auto session = repository->GetSession(id);
    ASSERT_OK(session);
    EXPECT_EQ((*session)->status, SessionStatus::kFailed) << id;
    EXPECT_EQ((*session)->error, "interrupted") << id;
  }
  EXPECT_EQ((*repository->GetSession("finished"))->status, SessionStatus::kDone);
  EXPECT_EQ(*repository->MarkInterrupted(), 0);
}

TEST_F(RepositoryTest, TwoRepositoriesOnOneFileWriteConcurrently) {
  constexpr int kSessionsPerThread = 4;
  constexpr size_t kKlinesPerSession = 5'000;
  std::atomic<bool> go{false};
  std::vector<std::string> errors(2);
  auto worker = [&](int thread_index) {
    while (!go.load()) std::this_thread::yield();
    // Each task opens its own repository, as a service creating one per task would.
    auto repository = BacktestRepository::Open(path_);
    if (!repository) {
      errors[thread_index] = repository.error().message;
      return;
    }
    for (int i = 0; i < kSessionsPerThread && errors[thread_index].empty(); ++i) {
      const std::string id = "t" + std::to_string(thread_index) + "-" + std::to_string(i);
      Result<void> step = (*repository)->CreateSession(id, "{}");
      if (step) step = (*repository)->UpdateStatus(id, SessionStatus::kRunning);
      if (step) {
        auto saved = (*repository)->SaveKlines(id, MakeKlines(kKlinesPerSession), 500);
        if (!saved) step = std::unexpected(saved.error());
      }
      if (step)
        step = (*repository)->FinishSession(id, MakeStatistics(), std::vector<Trade>{MakeTrade(i)});
      if (!step) errors[thread_index] = step.error().message;
    }
  };
  std::thread first(worker, 0);
  std::thread second(worker, 1);
  go = true;
  first.join();
  second.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");

  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  EXPECT_EQ(*repository->CountSessions(SessionStatus::kDone), 2 * kSessionsPerThread);
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < kSessionsPerThread; ++i) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      EXPECT_EQ(*repository->CountKlines(id), static_cast<int64_t>(kKlinesPerSession)) << id;
      EXPECT_EQ(repository->LoadTrades(id)->size(), 1u) << id;
    }
  }
}

TEST_F(RepositoryTest, OneRepositorySharedByThreads) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  constexpr int kThreads = 4;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = "shared-" + std::to_string(t);
      Result<void> step = repository->CreateSession(id, "{}");
      KlineBatchWriter writer(*repository, id, 250);
      for (const Kline& kline : MakeKlines(2'000)) {
        if (!step) break;
        step = writer.Add(kline);
        if (step && writer.rows_written() % 500 == 0) {
          step = repository->UpdateProgress(id, static_cast<double>(writer.rows_written()) / 2'000);
        }
      }
      if (step) step = writer.Flush();
      if (step) step = repository->UpdateStatus(id, SessionStatus::kDone);
      if (!step) errors[t] = step.error().message;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << t;
    EXPECT_EQ(*repository->CountKlines("shared-" + std::to_string(t)), 2'000);
  }
  EXPECT_EQ(*repository->CountSessions(SessionStatus::kDone), kThreads);
}

TEST_F(RepositoryTest, EveryCallAfterCloseFailsWithFailedPrecondition) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("s", "{}"));
  KlineBatchWriter writer(*repository, "s", 2);
  ASSERT_OK(writer.Add(MakeKlines(1)[0]));
  ASSERT_OK(repository->Close());
  EXPECT_FALSE(repository->is_open());
  ASSERT_OK(repository->Close());

  const KlineSeries klines = MakeKlines(3);
  const std::vector<ErrorCode> codes = {
      repository->CreateSession("t", "{}").error().code,
      repository->UpdateStatus("s", SessionStatus::kRunning).error().code,
      repository->UpdateProgress("s", 0.5).error().code,
      repository->GetSession("s").error().code,
      repository->ListSessions(10).error().code,
      repository->CountSessions().error().code,
      repository->MarkInterrupted().error().code,
      repository->DeleteSession("s").error().code,
      repository->SaveKlines("s", klines).error().code,
      repository->LoadKlines("s").error().code,
      repository->CountKlines("s").error().code,
      repository->SaveTrades("s", std::vector<Trade>{MakeTrade(0)}).error().code,
      repository->LoadTrades("s").error().code,
      repository->SaveResult("s", MakeStatistics()).error().code,
      repository->LoadResult("s").error().code,
      repository->FinishSession("s", MakeStatistics(), {}).error().code,
      writer.Add(klines[1]).error().code,
  };
  for (size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], ErrorCode::kFailedPrecondition) << "call #" << i;
  }
  EXPECT_THAT(repository->GetSession("s").error().message, HasSubstr("closed"));
  // The file is released: a new repository opens it and sees the data.
  auto reopened = OpenOrDie();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(*reopened->CountSessions(), 1);
}

TEST_F(RepositoryTest, TimesTwoHundredThousandKlines) {
  auto repository = OpenOrDie();
  ASSERT_NE(repository, nullptr);
  ASSERT_OK(repository->CreateSession("batched", "{}"));
  ASSERT_OK(repository->CreateSession("one-go", "{}"));
  const KlineSeries klines = MakeKlines(200'000);

  const auto start = std::chrono::steady_clock::now();
  auto batched = repository->SaveKlines("batched", klines);
  const auto middle = std::chrono::steady_clock::now();
  auto one_go = repository->SaveKlines("one-go", klines, klines.size());
  const auto end = std::chrono::steady_clock::now();
  ASSERT_OK(batched);
  ASSERT_OK(one_go);
  EXPECT_EQ(batched->transactions, 200);
  EXPECT_EQ(one_go->transactions, 1);
  using Ms = std::chrono::duration<double, std::milli>;
  std::printf(
      "[ timing   ] 200000 klines: batches of 1000 (200 transactions) %.1f ms; "
      "one transaction %.1f ms\n",
      Ms(middle - start).count(), Ms(end - middle).count());
  EXPECT_EQ(*repository->CountKlines("batched"), 200'000);
}

}  // namespace
}  // namespace leakgate::engine
