#include "engine/repository.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>
#include <utility>

namespace leakgate::engine {
namespace {

constexpr std::array<std::string_view, 4> kStatusNames = {"queued", "running", "done", "failed"};

struct DatabaseCloser {
  // close_v2 never leaves the handle open: with statements still alive it defers the close until
  // the last one is finalized.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DatabaseHandle = std::unique_ptr<sqlite3, DatabaseCloser>;

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using StatementHandle = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS sessions (
  id          TEXT PRIMARY KEY NOT NULL,
  params_json TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
  created_ms  INTEGER NOT NULL,
  updated_ms  INTEGER NOT NULL,
  error       TEXT,
  progress    REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1)
);
CREATE INDEX IF NOT EXISTS sessions_by_created ON sessions (created_ms);
CREATE INDEX IF NOT EXISTS sessions_by_status_created ON sessions (status, created_ms);
CREATE TABLE IF NOT EXISTS klines (
  session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  ts_ms        INTEGER NOT NULL,
  open         REAL NOT NULL,
  high         REAL NOT NULL,
  low          REAL NOT NULL,
  close        REAL NOT NULL,
  volume       REAL NOT NULL,
  quote_volume REAL NOT NULL,
  PRIMARY KEY (session_id, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trades (
  session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  seq         INTEGER NOT NULL,
  side        TEXT NOT NULL CHECK (side IN ('long', 'short')),
  size        REAL,
  entry_index INTEGER NOT NULL,
  exit_index  INTEGER NOT NULL,
  entry_ts_ms INTEGER NOT NULL,
  exit_ts_ms  INTEGER NOT NULL,
  entry_price REAL,
  exit_price  REAL,
  fees        REAL,
  pnl         REAL,
  return_pct  REAL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
  session_id          TEXT PRIMARY KEY NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  bars                INTEGER NOT NULL,
  trades              INTEGER NOT NULL,
  start_equity        REAL,
  final_equity        REAL,
  peak_equity         REAL,
  return_pct          REAL,
  buy_hold_return_pct REAL,
  max_drawdown_pct    REAL,
  win_rate_pct        REAL,
  profit_factor       REAL,
  best_trade_pct      REAL,
  worst_trade_pct     REAL,
  avg_trade_pct       REAL,
  sharpe              REAL,
  exposure_pct        REAL,
  total_fees          REAL
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

// Every statement the repository runs, prepared once at Open (which also checks that an existing
// database has the columns this program expects) and finalized at Close.
enum Sql : int {
  kBegin,
  kCommit,
  kRollback,
  kInsertSession,
  kUpdateStatus,
  kUpdateProgress,
  kGetSession,
  kListSessions,
  kListSessionsWithStatus,
  kCountSessions,
  kCountSessionsWithStatus,
  kMarkInterrupted,
  kDeleteSession,
  kSessionExists,
  kInsertKline,
  kLoadKlines,
  kCountKlines,
  kDeleteTrades,
  kInsertTrade,
  kLoadTrades,
  kUpsertResult,
  kLoadResult,
  kFinishStatus,
  kSqlCount,
};

#define LEAKGATE_SESSION_COLUMNS "id, params_json, status, created_ms, updated_ms, error, progress"
#define LEAKGATE_TRADE_COLUMNS                                                                    \
  "side, size, entry_index, exit_index, entry_ts_ms, exit_ts_ms, entry_price, exit_price, fees, " \
  "pnl, return_pct"
#define LEAKGATE_RESULT_COLUMNS                                                              \
  "bars, trades, start_equity, final_equity, peak_equity, return_pct, buy_hold_return_pct, " \
  "max_drawdown_pct, win_rate_pct, profit_factor, best_trade_pct, worst_trade_pct, "         \
  "avg_trade_pct, sharpe, exposure_pct, total_fees"

struct SqlText {
  Sql id;
  const char* text;
};

constexpr SqlText kSqlTexts[] = {
    {kBegin, "BEGIN IMMEDIATE"},
    {kCommit, "COMMIT"},
    {kRollback, "ROLLBACK"},
    {kInsertSession, "INSERT INTO sessions (" LEAKGATE_SESSION_COLUMNS
                     ") VALUES (?1, ?2, 'queued', ?3, ?3, NULL, 0)"},
    {kUpdateStatus,
     "UPDATE sessions SET status = ?2, error = ?3, updated_ms = ?4, "
     "progress = CASE WHEN ?2 = 'done' THEN 1.0 ELSE progress END WHERE id = ?1"},
    {kUpdateProgress, "UPDATE sessions SET progress = ?2, updated_ms = ?3 WHERE id = ?1"},
    {kGetSession, "SELECT " LEAKGATE_SESSION_COLUMNS " FROM sessions WHERE id = ?1"},
    {kListSessions, "SELECT " LEAKGATE_SESSION_COLUMNS
                    " FROM sessions ORDER BY created_ms DESC, rowid DESC LIMIT ?1 OFFSET ?2"},
    {kListSessionsWithStatus,
     "SELECT " LEAKGATE_SESSION_COLUMNS
     " FROM sessions WHERE status = ?3 ORDER BY created_ms DESC, rowid DESC LIMIT ?1 OFFSET ?2"},
    {kCountSessions, "SELECT count(*) FROM sessions"},
    {kCountSessionsWithStatus, "SELECT count(*) FROM sessions WHERE status = ?1"},
    {kMarkInterrupted,
     "UPDATE sessions SET status = 'failed', error = 'interrupted', updated_ms = ?1 "
     "WHERE status IN ('queued', 'running')"},
    {kDeleteSession, "DELETE FROM sessions WHERE id = ?1"},
    {kSessionExists, "SELECT 1 FROM sessions WHERE id = ?1"},
    {kInsertKline,
     "INSERT INTO klines (session_id, ts_ms, open, high, low, close, volume, quote_volume) "
     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
    {kLoadKlines,
     "SELECT ts_ms, open, high, low, close, volume, quote_volume FROM klines "
     "WHERE session_id = ?1 ORDER BY ts_ms"},
    {kCountKlines, "SELECT count(*) FROM klines WHERE session_id = ?1"},
    {kDeleteTrades, "DELETE FROM trades WHERE session_id = ?1"},
    {kInsertTrade, "INSERT INTO trades (session_id, seq, " LEAKGATE_TRADE_COLUMNS
                   ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"},
    {kLoadTrades,
     "SELECT " LEAKGATE_TRADE_COLUMNS " FROM trades WHERE session_id = ?1 ORDER BY seq"},
    {kUpsertResult,
     "INSERT OR REPLACE INTO results (session_id, " LEAKGATE_RESULT_COLUMNS
     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"},
    {kLoadResult, "SELECT " LEAKGATE_RESULT_COLUMNS " FROM results WHERE session_id = ?1"},
    {kFinishStatus,
     "UPDATE sessions SET status = 'done', error = NULL, progress = 1.0, updated_ms = ?2 "
     "WHERE id = ?1"},
};

#undef LEAKGATE_SESSION_COLUMNS
#undef LEAKGATE_TRADE_COLUMNS
#undef LEAKGATE_RESULT_COLUMNS

static_assert(std::size(kSqlTexts) == kSqlCount);
static_assert([] {
  for (int i = 0; i < kSqlCount; ++i) {
    if (kSqlTexts[i].id != i) return false;
  }
  return true;
}());

// The real-valued statistics in the order of LEAKGATE_RESULT_COLUMNS after bars and trades.
constexpr double Statistics::*kStatisticsReals[] = {
    &Statistics::start_equity,    &Statistics::final_equity,        &Statistics::peak_equity,
    &Statistics::return_pct,      &Statistics::buy_hold_return_pct, &Statistics::max_drawdown_pct,
    &Statistics::win_rate_pct,    &Statistics::profit_factor,       &Statistics::best_trade_pct,
    &Statistics::worst_trade_pct, &Statistics::avg_trade_pct,       &Statistics::sharpe,
    &Statistics::exposure_pct,    &Statistics::total_fees,
};

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Quoted(std::string_view text) {
  std::string out = "'";
  out.append(text);
  out += '\'';
  return out;
}

// Resets a statement and drops its bindings when the scope ends, so the next use starts clean and
// no binding points at a buffer that is gone.
class StatementScope {
 public:
  explicit StatementScope(sqlite3_stmt* statement) : statement_(statement) {}
  StatementScope(const StatementScope&) = delete;
  StatementScope& operator=(const StatementScope&) = delete;
  ~StatementScope() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  sqlite3_stmt* get() const { return statement_; }

 private:
  sqlite3_stmt* statement_;
};

// The bound buffer must outlive the statement's use; StatementScope clears the binding in time.
void BindText(sqlite3_stmt* statement, int index, std::string_view text) {
  // A null data pointer would bind SQL NULL instead of an empty string.
  const char* data = text.data() != nullptr ? text.data() : "";
  sqlite3_bind_text(statement, index, data, static_cast<int>(text.size()), SQLITE_STATIC);
}

void BindTextOrNull(sqlite3_stmt* statement, int index, std::string_view text) {
  if (text.empty()) {
    sqlite3_bind_null(statement, index);
  } else {
    BindText(statement, index, text);
  }
}

// NaN is stored as NULL (SQLite has no NaN); infinities are stored as IEEE values.
void BindReal(sqlite3_stmt* statement, int index, double value) {
  if (std::isnan(value)) {
    sqlite3_bind_null(statement, index);
  } else {
    sqlite3_bind_double(statement, index, value);
  }
}

double ColumnReal(sqlite3_stmt* statement, int column) {
  if (sqlite3_column_type(statement, column) == SQLITE_NULL) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return sqlite3_column_double(statement, column);
}

std::string ColumnText(sqlite3_stmt* statement, int column) {
  const unsigned char* text = sqlite3_column_text(statement, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(statement, column)));
}

std::string_view SideName(Side side) { return side == Side::kShort ? "short" : "long"; }

ErrorCode CodeForSqlite(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ErrorCode::kUnavailable;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
      return ErrorCode::kInvalidArgument;
    case SQLITE_MISUSE:
    case SQLITE_INTERNAL:
      return ErrorCode::kInternal;
    default:
      return ErrorCode::kIo;
  }
}

}  // namespace

std::string_view SessionStatusName(SessionStatus status) {
  return kStatusNames[static_cast<size_t>(status)];
}

Result<SessionStatus> ParseSessionStatus(std::string_view name) {
  for (size_t i = 0; i < kStatusNames.size(); ++i) {
    if (kStatusNames[i] == name) return static_cast<SessionStatus>(i);
  }
  return Fail(ErrorCode::kInvalidArgument, "unknown session status " + Quoted(name) +
                                               "; expected queued, running, done or failed");
}

struct BacktestRepository::State {
  std::string path;
  RepositoryOptions options;
  std::mutex mu;
  DatabaseHandle db;
  std::array<StatementHandle, kSqlCount> statements;
  std::function<void()> commit_hook;

  int64_t NowMs() const { return options.now_ms ? options.now_ms() : SystemNowMs(); }

  sqlite3_stmt* statement(Sql id) const { return statements[id].get(); }

  // An error for a failed SQLite call; read right after the call, before anything else touches the
  // connection (sqlite3_errmsg reports the most recent call).
  Error SqlError(int rc, std::string_view what) const {
    std::string message(what);
    message += ": ";
    message += db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc);
    if ((rc & 0xff) == SQLITE_BUSY) {
      message +=
          " (another connection kept the database locked for longer than the busy timeout of " +
          std::to_string(options.busy_timeout_ms) + " ms)";
    }
    message += " [database " + Quoted(path) + "]";
    return Error{CodeForSqlite(rc), std::move(message)};
  }

  Result<void> CheckOpen() const {
    if (db) return {};
    return Fail(ErrorCode::kFailedPrecondition,
                "the repository of " + Quoted(path) +
                    " is closed; open the database again with BacktestRepository::Open");
  }

  // Runs a statement that returns no rows.
  Result<void> Run(sqlite3_stmt* statement, std::string_view what) const {
    const int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      Error error = SqlError(rc, what);
      sqlite3_reset(statement);
      return std::unexpected(std::move(error));
    }
    sqlite3_reset(statement);
    return {};
  }

  // Runs a single-row query whose first column is an integer.
  Result<int64_t> QueryInt(sqlite3_stmt* statement, std::string_view what) const {
    const int rc = sqlite3_step(statement);
    if (rc != SQLITE_ROW) {
      Error error = rc == SQLITE_DONE ? Error{ErrorCode::kInternal, std::string(what) + ": no row"}
                                      : SqlError(rc, what);
      sqlite3_reset(statement);
      return std::unexpected(std::move(error));
    }
    const int64_t value = sqlite3_column_int64(statement, 0);
    sqlite3_reset(statement);
    return value;
  }

  Result<void> Begin(std::string_view what) {
    return Run(statement(kBegin),
               std::string("cannot start a transaction to ") + std::string(what));
  }

  Result<void> Commit(std::string_view what) {
    auto committed = Run(statement(kCommit),
                         std::string("cannot commit the transaction to ") + std::string(what));
    if (!committed) RollbackIfActive();
    return committed;
  }

  // SQLite rolls back by itself after some errors (SQLITE_FULL, SQLITE_IOERR, ...); ROLLBACK
  // outside a transaction would fail, so ask first.
  void RollbackIfActive() {
    if (db && sqlite3_get_autocommit(db.get()) == 0) {
      sqlite3_step(statement(kRollback));
      sqlite3_reset(statement(kRollback));
    }
  }

  // Rolls back on destruction unless committed; the caller holds the repository's lock throughout.
  class Transaction {
   public:
    explicit Transaction(State& state) : state_(state) {}
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
      if (active_) state_.RollbackIfActive();
    }

    Result<void> Begin(std::string_view what) {
      auto begun = state_.Begin(what);
      active_ = begun.has_value();
      return begun;
    }

    Result<void> Commit(std::string_view what) {
      active_ = false;
      return state_.Commit(what);
    }

   private:
    State& state_;
    bool active_ = false;
  };

  Result<bool> SessionExists(std::string_view id) {
    StatementScope query(statement(kSessionExists));
    BindText(query.get(), 1, id);
    const int rc = sqlite3_step(query.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return std::unexpected(SqlError(rc, "cannot look up session " + Quoted(id)));
  }

  Result<void> RequireSession(std::string_view id, std::string_view action) {
    auto exists = SessionExists(id);
    if (!exists) return std::unexpected(exists.error());
    if (*exists) return {};
    return Fail(ErrorCode::kNotFound, "cannot " + std::string(action) + ": no session " +
                                          Quoted(id) + " in database " + Quoted(path));
  }

  Result<void> SetStatus(std::string_view id, SessionStatus status, std::string_view error) {
    StatementScope update(statement(kUpdateStatus));
    BindText(update.get(), 1, id);
    BindText(update.get(), 2, SessionStatusName(status));
    BindTextOrNull(update.get(), 3, error);
    sqlite3_bind_int64(update.get(), 4, NowMs());
    auto ran = Run(update.get(), "cannot set the status of session " + Quoted(id));
    if (!ran) return ran;
    if (sqlite3_changes(db.get()) == 0) {
      return Fail(ErrorCode::kNotFound, "cannot set the status of session " + Quoted(id) +
                                            ": no such session in database " + Quoted(path));
    }
    return {};
  }

  static int OnCommit(void* state) {
    auto* repository_state = static_cast<State*>(state);
    if (repository_state->commit_hook) repository_state->commit_hook();
    return 0;  // let the commit proceed
  }

  Result<void> WriteTrades(std::string_view session_id, std::span<const Trade> trades) {
    {
      StatementScope remove(statement(kDeleteTrades));
      BindText(remove.get(), 1, session_id);
      auto removed =
          Run(remove.get(), "cannot replace the trades of session " + Quoted(session_id));
      if (!removed) return removed;
    }
    StatementScope insert(statement(kInsertTrade));
    BindText(insert.get(), 1, session_id);
    for (size_t i = 0; i < trades.size(); ++i) {
      const Trade& trade = trades[i];
      sqlite3_stmt* s = insert.get();
      sqlite3_bind_int64(s, 2, static_cast<int64_t>(i));
      BindText(s, 3, SideName(trade.side));
      BindReal(s, 4, trade.size);
      sqlite3_bind_int64(s, 5, trade.entry_index);
      sqlite3_bind_int64(s, 6, trade.exit_index);
      sqlite3_bind_int64(s, 7, trade.entry_ts_ms);
      sqlite3_bind_int64(s, 8, trade.exit_ts_ms);
      BindReal(s, 9, trade.entry_price);
      BindReal(s, 10, trade.exit_price);
      BindReal(s, 11, trade.fees);
      BindReal(s, 12, trade.pnl);
      BindReal(s, 13, trade.return_pct);
      auto ran =
          Run(s, "cannot save trade #" + std::to_string(i) + " of session " + Quoted(session_id));
      if (!ran) return ran;
    }
    return {};
  }

  Result<void> WriteResult(std::string_view session_id, const Statistics& stats) {
    StatementScope upsert(statement(kUpsertResult));
    sqlite3_stmt* s = upsert.get();
    BindText(s, 1, session_id);
    sqlite3_bind_int64(s, 2, stats.bars);
    sqlite3_bind_int64(s, 3, stats.trades);
    int index = 4;
    for (double Statistics::*field : kStatisticsReals) BindReal(s, index++, stats.*field);
    return Run(s, "cannot save the statistics of session " + Quoted(session_id));
  }
};

namespace {

SessionRecord ReadSession(sqlite3_stmt* s) {
  SessionRecord record;
  record.id = ColumnText(s, 0);
  record.params_json = ColumnText(s, 1);
  // The CHECK constraint on sessions.status admits only the four names.
  record.status = ParseSessionStatus(ColumnText(s, 2)).value_or(SessionStatus::kFailed);
  record.created_ms = sqlite3_column_int64(s, 3);
  record.updated_ms = sqlite3_column_int64(s, 4);
  record.error = ColumnText(s, 5);
  record.progress = sqlite3_column_double(s, 6);
  return record;
}

// Runs a single-row pragma and returns its first column as text.
Result<std::string> PragmaText(sqlite3* db, const std::string& path, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  StatementHandle statement(raw);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(statement.get());
    if (rc == SQLITE_ROW) return ColumnText(statement.get(), 0);
    if (rc == SQLITE_DONE) return std::string();
  }
  return Fail(CodeForSqlite(rc), "cannot use " + Quoted(path) + " as a SQLite database (" + sql +
                                     "): " + sqlite3_errmsg(db));
}

Result<void> ExecScript(sqlite3* db, const std::string& path, const char* sql,
                        std::string_view what) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return {};
  std::string text = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  return Fail(CodeForSqlite(rc),
              "cannot " + std::string(what) + " in database " + Quoted(path) + ": " + text);
}

Result<int> SchemaVersion(sqlite3* db, const std::string& path) {
  auto version = PragmaText(db, path, "PRAGMA user_version");
  if (!version) return std::unexpected(version.error());
  const int value = std::atoi(version->c_str());
  if (value > BacktestRepository::kSchemaVersion || value < 0) {
    return Fail(ErrorCode::kFailedPrecondition,
                "database " + Quoted(path) + " has schema version " + std::to_string(value) +
                    " but this program understands only version " +
                    std::to_string(BacktestRepository::kSchemaVersion) +
                    "; use a newer program or another database file");
  }
  return value;
}

}  // namespace

BacktestRepository::BacktestRepository(std::unique_ptr<State> state) : state_(std::move(state)) {}

BacktestRepository::~BacktestRepository() {
  if (state_) (void)Close();
}

Result<std::unique_ptr<BacktestRepository>> BacktestRepository::Open(const std::string& path,
                                                                     RepositoryOptions options) {
  if (path.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "the database path is empty; give a file name");
  }
  if (options.busy_timeout_ms < 0) {
    return Fail(ErrorCode::kInvalidArgument, "busy timeout for " + Quoted(path) + " is negative (" +
                                                 std::to_string(options.busy_timeout_ms) +
                                                 " ms); use 0 or more");
  }
  auto state = std::make_unique<State>();
  state->path = path;
  state->options = std::move(options);

  // The repository serialises its own calls, so SQLite's per-connection mutex is not needed.
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  state->db.reset(raw);
  if (rc != SQLITE_OK) {
    std::string message = "cannot open SQLite database " + Quoted(path) + ": ";
    message += raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    const int system_errno = raw != nullptr ? sqlite3_system_errno(raw) : 0;
    if (system_errno != 0) message += std::string(" (") + std::strerror(system_errno) + ")";
    message += "; the directory must exist and be writable";
    return Fail(ErrorCode::kIo, std::move(message));
  }
  sqlite3* db = state->db.get();
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, state->options.busy_timeout_ms);

  // The first statement reads the file: a file that is not a database fails here. Two connections
  // opening a new file at once both want the exclusive lock that turning on WAL takes, and SQLite
  // answers SQLITE_BUSY at once, without its busy handler, where waiting could deadlock: retry
  // within the busy timeout.
  auto journal_mode = PragmaText(db, path, "PRAGMA journal_mode = WAL");
  const auto busy_deadline = std::chrono::steady_clock::now() +
                             std::chrono::milliseconds(state->options.busy_timeout_ms);
  while (!journal_mode && journal_mode.error().code == ErrorCode::kUnavailable &&
         std::chrono::steady_clock::now() < busy_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    journal_mode = PragmaText(db, path, "PRAGMA journal_mode = WAL");
  }
  if (!journal_mode) return std::unexpected(journal_mode.error());
  if (sqlite3_db_readonly(db, "main") == 1) {
    return Fail(ErrorCode::kIo,
                "SQLite database " + Quoted(path) +
                    " can only be opened read-only; the file and its directory must "
                    "be writable");
  }
  std::transform(journal_mode->begin(), journal_mode->end(), journal_mode->begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // An in-memory database reports "memory" and cannot use WAL; that is fine for it.
  if (*journal_mode != "wal" && *journal_mode != "memory") {
    return Fail(ErrorCode::kIo,
                "cannot put SQLite database " + Quoted(path) +
                    " in WAL journal mode (it stays in '" + *journal_mode +
                    "' mode); the file system must support shared memory and locks");
  }
  if (auto set = ExecScript(db, path, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
                            "set synchronous=NORMAL and foreign_keys=ON");
      !set) {
    return std::unexpected(set.error());
  }
  auto foreign_keys = PragmaText(db, path, "PRAGMA foreign_keys");
  if (!foreign_keys) return std::unexpected(foreign_keys.error());
  if (*foreign_keys != "1") {
    return Fail(ErrorCode::kInternal, "SQLite refused to enable foreign keys on " + Quoted(path) +
                                          "; the library was built without foreign key support");
  }

  auto version = SchemaVersion(db, path);
  if (!version) return std::unexpected(version.error());
  if (*version == 0) {
    // Two processes may create the schema at once: decide again inside a write transaction.
    if (auto begun = ExecScript(db, path, "BEGIN IMMEDIATE", "start creating the schema"); !begun) {
      return std::unexpected(begun.error());
    }
    version = SchemaVersion(db, path);
    Result<void> created;
    if (!version) {
      created = std::unexpected(version.error());
    } else if (*version == 0) {
      created = ExecScript(db, path, kSchemaSql, "create the schema");
    }
    if (created) created = ExecScript(db, path, "COMMIT", "commit the schema");
    if (!created) {
      if (sqlite3_get_autocommit(db) == 0) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return std::unexpected(created.error());
    }
  }

  for (const SqlText& sql : kSqlTexts) {
    sqlite3_stmt* statement = nullptr;
    const int prepared =
        sqlite3_prepare_v3(db, sql.text, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
    state->statements[sql.id].reset(statement);
    if (prepared != SQLITE_OK) {
      return Fail(ErrorCode::kFailedPrecondition,
                  "database " + Quoted(path) + " does not have the tables this program expects (" +
                      sqlite3_errmsg(db) + "); use another database file");
    }
  }
  sqlite3_commit_hook(db, &State::OnCommit, state.get());
  return std::unique_ptr<BacktestRepository>(new BacktestRepository(std::move(state)));
}

Result<void> BacktestRepository::Close() {
  std::lock_guard lock(state_->mu);
  if (!state_->db) return {};
  for (StatementHandle& statement : state_->statements) statement.reset();
  sqlite3* db = state_->db.release();
  sqlite3_commit_hook(db, nullptr, nullptr);
  const int rc = sqlite3_close(db);
  if (rc == SQLITE_OK) return {};
  std::string message =
      "cannot close SQLite database " + Quoted(state_->path) + ": " + sqlite3_errmsg(db);
  sqlite3_close_v2(db);
  return Fail(ErrorCode::kIo, std::move(message));
}

bool BacktestRepository::is_open() const {
  std::lock_guard lock(state_->mu);
  return state_->db != nullptr;
}

const std::string& BacktestRepository::path() const { return state_->path; }

void BacktestRepository::TEST_SetCommitHook(std::function<void()> hook) {
  std::lock_guard lock(state_->mu);
  state_->commit_hook = std::move(hook);
}

Result<void> BacktestRepository::CreateSession(std::string_view id, std::string_view params_json) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return open;
  if (id.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "cannot create a session with an empty id");
  }
  try {
    [[maybe_unused]] const nlohmann::json parsed = nlohmann::json::parse(params_json);
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kInvalidArgument,
                "the params of session " + Quoted(id) + " are not valid JSON: " + e.what());
  }
  StatementScope insert(state_->statement(kInsertSession));
  BindText(insert.get(), 1, id);
  BindText(insert.get(), 2, params_json);
  sqlite3_bind_int64(insert.get(), 3, state_->NowMs());
  const int rc = sqlite3_step(insert.get());
  if (rc == SQLITE_DONE) return {};
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Fail(ErrorCode::kInvalidArgument,
                "session " + Quoted(id) + " already exists in database " + Quoted(state_->path) +
                    "; session ids must be unique");
  }
  return std::unexpected(state_->SqlError(rc, "cannot create session " + Quoted(id)));
}

Result<void> BacktestRepository::UpdateStatus(std::string_view id, SessionStatus status,
                                              std::string_view error) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return open;
  return state_->SetStatus(id, status, error);
}

Result<void> BacktestRepository::UpdateProgress(std::string_view id, double fraction) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return open;
  if (!(fraction >= 0.0 && fraction <= 1.0)) {
    return Fail(ErrorCode::kInvalidArgument, "progress of session " + Quoted(id) +
                                                 " must be in [0, 1], got " +
                                                 std::to_string(fraction));
  }
  StatementScope update(state_->statement(kUpdateProgress));
  BindText(update.get(), 1, id);
  sqlite3_bind_double(update.get(), 2, fraction);
  sqlite3_bind_int64(update.get(), 3, state_->NowMs());
  auto ran = state_->Run(update.get(), "cannot set the progress of session " + Quoted(id));
  if (!ran) return ran;
  if (sqlite3_changes(state_->db.get()) == 0) {
    return Fail(ErrorCode::kNotFound, "cannot set the progress of session " + Quoted(id) +
                                          ": no such session in database " + Quoted(state_->path));
  }
  return {};
}

Result<std::optional<SessionRecord>> BacktestRepository::GetSession(std::string_view id) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  StatementScope query(state_->statement(kGetSession));
  BindText(query.get(), 1, id);
  const int rc = sqlite3_step(query.get());
  if (rc == SQLITE_ROW) return ReadSession(query.get());
  if (rc == SQLITE_DONE) return std::nullopt;
  return std::unexpected(state_->SqlError(rc, "cannot read session " + Quoted(id)));
}

Result<std::vector<SessionRecord>> BacktestRepository::ListSessions(
    int64_t limit, int64_t offset, std::optional<SessionStatus> status) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  if (limit < 0 || offset < 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "cannot list sessions with limit " + std::to_string(limit) + " and offset " +
                    std::to_string(offset) + "; both must be 0 or more");
  }
  StatementScope query(state_->statement(status ? kListSessionsWithStatus : kListSessions));
  sqlite3_bind_int64(query.get(), 1, limit);
  sqlite3_bind_int64(query.get(), 2, offset);
  if (status) BindText(query.get(), 3, SessionStatusName(*status));
  std::vector<SessionRecord> sessions;
  int rc;
  while ((rc = sqlite3_step(query.get())) == SQLITE_ROW)
    sessions.push_back(ReadSession(query.get()));
  if (rc != SQLITE_DONE) return std::unexpected(state_->SqlError(rc, "cannot list sessions"));
  return sessions;
}

Result<int64_t> BacktestRepository::CountSessions(std::optional<SessionStatus> status) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  StatementScope query(state_->statement(status ? kCountSessionsWithStatus : kCountSessions));
  if (status) BindText(query.get(), 1, SessionStatusName(*status));
  return state_->QueryInt(query.get(), "cannot count sessions");
}

Result<int64_t> BacktestRepository::MarkInterrupted() {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  StatementScope update(state_->statement(kMarkInterrupted));
  sqlite3_bind_int64(update.get(), 1, state_->NowMs());
  auto ran = state_->Run(update.get(), "cannot mark interrupted sessions as failed");
  if (!ran) return std::unexpected(ran.error());
  return static_cast<int64_t>(sqlite3_changes(state_->db.get()));
}

Result<void> BacktestRepository::DeleteSession(std::string_view id) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return open;
  StatementScope remove(state_->statement(kDeleteSession));
  BindText(remove.get(), 1, id);
  auto ran = state_->Run(remove.get(), "cannot delete session " + Quoted(id));
  if (!ran) return ran;
  if (sqlite3_changes(state_->db.get()) == 0) {
    return Fail(ErrorCode::kNotFound, "cannot delete session " + Quoted(id) +
                                          ": no such session in database " + Quoted(state_->path));
  }
  return {};
}

Result<SaveStats> BacktestRepository::SaveKlines(std::string_view session_id,
                                                 std::span<const Kline> klines, size_t batch_size) {
  return SaveKlineBatches(session_id, klines, batch_size, /*first_batch_number=*/1,
                          /*first_row_index=*/0);
}

Result<SaveStats> BacktestRepository::SaveKlineBatches(std::string_view session_id,
                                                       std::span<const Kline> klines,
                                                       size_t batch_size,
                                                       int64_t first_batch_number,
                                                       int64_t first_row_index) {
  std::lock_guard lock(state_->mu);
  State& state = *state_;
  if (auto open = state.CheckOpen(); !open) return std::unexpected(open.error());
  if (batch_size == 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "cannot save klines of session " + Quoted(session_id) + " in batches of 0 rows");
  }
  if (auto exists = state.RequireSession(session_id, "save klines"); !exists) {
    return std::unexpected(exists.error());
  }

  SaveStats stats;
  int64_t batch_number = first_batch_number;
  for (size_t start = 0; start < klines.size(); start += batch_size, ++batch_number) {
    const size_t end = std::min(klines.size(), start + batch_size);

    // Rolls the batch back, marks the session failed and explains where the batch stopped.
    auto fail_batch = [&](size_t row, Error cause) -> Error {
      state.RollbackIfActive();
      const Kline& kline = klines[row];
      std::string message = "saving klines of session " + Quoted(session_id) + " failed in batch " +
                            std::to_string(batch_number) + " (rows " +
                            std::to_string(first_row_index + static_cast<int64_t>(start)) + ".." +
                            std::to_string(first_row_index + static_cast<int64_t>(end) - 1) +
                            ") at row " +
                            std::to_string(first_row_index + static_cast<int64_t>(row)) +
                            " (ts_ms " + std::to_string(kline.ts_ms) + " = " +
                            FormatTimestamp(kline.ts_ms) + "): " + cause.message;
      message += "; batch " + std::to_string(batch_number) + " was rolled back";
      if (batch_number == 2) message += ", batch 1 stays committed";
      if (batch_number > 2) {
        message += ", batches 1.." + std::to_string(batch_number - 1) + " stay committed";
      }
      auto marked = state.SetStatus(session_id, SessionStatus::kFailed, message);
      if (!marked) message += "; marking the session failed also failed: " + marked.error().message;
      return Error{cause.code, std::move(message)};
    };

    if (auto begun = state.Begin("save klines"); !begun) {
      return std::unexpected(fail_batch(start, begun.error()));
    }
    StatementScope insert(state.statement(kInsertKline));
    sqlite3_stmt* s = insert.get();
    BindText(s, 1, session_id);
    for (size_t row = start; row < end; ++row) {
      const Kline& kline = klines[row];
      sqlite3_bind_int64(s, 2, kline.ts_ms);
      BindReal(s, 3, kline.open);
      BindReal(s, 4, kline.high);
      BindReal(s, 5, kline.low);
      BindReal(s, 6, kline.close);
      BindReal(s, 7, kline.volume);
      BindReal(s, 8, kline.quote_volume);
      const int rc = sqlite3_step(s);
      if (rc != SQLITE_DONE) {
        Error cause = state.SqlError(rc, "SQLite rejected the row");
        sqlite3_reset(s);
        if (rc == SQLITE_CONSTRAINT_NOTNULL) {
          const std::pair<const char*, double> fields[] = {
              {"open", kline.open},     {"high", kline.high},
              {"low", kline.low},       {"close", kline.close},
              {"volume", kline.volume}, {"quote_volume", kline.quote_volume}};
          std::string nan_fields;
          for (const auto& [name, value] : fields) {
            if (std::isnan(value)) nan_fields += std::string(nan_fields.empty() ? "" : ", ") + name;
          }
          if (!nan_fields.empty()) {
            cause.message = nan_fields +
                            " is NaN, which SQLite stores as NULL; prices and volumes must "
                            "be numbers (" +
                            cause.message + ")";
          }
        } else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
          cause.message =
              "a kline with this timestamp is already stored for the session or appears "
              "twice in the input (" +
              cause.message + ")";
        }
        return std::unexpected(fail_batch(row, std::move(cause)));
      }
      sqlite3_reset(s);
    }
    if (auto committed = state.Commit("save klines"); !committed) {
      return std::unexpected(fail_batch(start, committed.error()));
    }
    stats.rows += static_cast<int64_t>(end - start);
    ++stats.transactions;
  }
  return stats;
}

Result<KlineSeries> BacktestRepository::LoadKlines(std::string_view session_id) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  if (auto exists = state_->RequireSession(session_id, "load klines"); !exists) {
    return std::unexpected(exists.error());
  }
  StatementScope query(state_->statement(kLoadKlines));
  sqlite3_stmt* s = query.get();
  BindText(s, 1, session_id);
  KlineSeries klines;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    klines.push_back(Kline{.ts_ms = sqlite3_column_int64(s, 0),
                           .open = sqlite3_column_double(s, 1),
                           .high = sqlite3_column_double(s, 2),
                           .low = sqlite3_column_double(s, 3),
                           .close = sqlite3_column_double(s, 4),
                           .volume = sqlite3_column_double(s, 5),
                           .quote_volume = sqlite3_column_double(s, 6)});
  }
  if (rc != SQLITE_DONE) {
    return std::unexpected(
        state_->SqlError(rc, "cannot load klines of session " + Quoted(session_id)));
  }
  return klines;
}

Result<int64_t> BacktestRepository::CountKlines(std::string_view session_id) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  if (auto exists = state_->RequireSession(session_id, "count klines"); !exists) {
    return std::unexpected(exists.error());
  }
  StatementScope query(state_->statement(kCountKlines));
  BindText(query.get(), 1, session_id);
  return state_->QueryInt(query.get(), "cannot count klines of session " + Quoted(session_id));
}

Result<void> BacktestRepository::SaveTrades(std::string_view session_id,
                                            std::span<const Trade> trades) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return open;
  State::Transaction transaction(*state_);
  if (auto begun = transaction.Begin("save trades"); !begun) return begun;
  if (auto exists = state_->RequireSession(session_id, "save trades"); !exists) return exists;
  if (auto written = state_->WriteTrades(session_id, trades); !written) return written;
  return transaction.Commit("save trades");
}

Result<std::vector<Trade>> BacktestRepository::LoadTrades(std::string_view session_id) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  if (auto exists = state_->RequireSession(session_id, "load trades"); !exists) {
    return std::unexpected(exists.error());
  }
  StatementScope query(state_->statement(kLoadTrades));
  sqlite3_stmt* s = query.get();
  BindText(s, 1, session_id);
  std::vector<Trade> trades;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    trades.push_back(Trade{.side = ColumnText(s, 0) == "short" ? Side::kShort : Side::kLong,
                           .size = ColumnReal(s, 1),
                           .entry_index = sqlite3_column_int64(s, 2),
                           .exit_index = sqlite3_column_int64(s, 3),
                           .entry_ts_ms = sqlite3_column_int64(s, 4),
                           .exit_ts_ms = sqlite3_column_int64(s, 5),
                           .entry_price = ColumnReal(s, 6),
                           .exit_price = ColumnReal(s, 7),
                           .fees = ColumnReal(s, 8),
                           .pnl = ColumnReal(s, 9),
                           .return_pct = ColumnReal(s, 10)});
  }
  if (rc != SQLITE_DONE) {
    return std::unexpected(
        state_->SqlError(rc, "cannot load trades of session " + Quoted(session_id)));
  }
  return trades;
}

Result<void> BacktestRepository::SaveResult(std::string_view session_id, const Statistics& stats) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return open;
  State::Transaction transaction(*state_);
  if (auto begun = transaction.Begin("save statistics"); !begun) return begun;
  if (auto exists = state_->RequireSession(session_id, "save statistics"); !exists) return exists;
  if (auto written = state_->WriteResult(session_id, stats); !written) return written;
  return transaction.Commit("save statistics");
}

Result<std::optional<Statistics>> BacktestRepository::LoadResult(std::string_view session_id) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return std::unexpected(open.error());
  if (auto exists = state_->RequireSession(session_id, "load statistics"); !exists) {
    return std::unexpected(exists.error());
  }
  StatementScope query(state_->statement(kLoadResult));
  sqlite3_stmt* s = query.get();
  BindText(s, 1, session_id);
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) {
    return std::unexpected(
        state_->SqlError(rc, "cannot load the statistics of session " + Quoted(session_id)));
  }
  Statistics stats;
  stats.bars = sqlite3_column_int64(s, 0);
  stats.trades = sqlite3_column_int64(s, 1);
  int column = 2;
  for (double Statistics::*field : kStatisticsReals) stats.*field = ColumnReal(s, column++);
  return stats;
}

Result<void> BacktestRepository::FinishSession(std::string_view session_id, const Statistics& stats,
                                               std::span<const Trade> trades) {
  std::lock_guard lock(state_->mu);
  if (auto open = state_->CheckOpen(); !open) return open;
  State::Transaction transaction(*state_);
  if (auto begun = transaction.Begin("finish the session"); !begun) return begun;
  if (auto exists = state_->RequireSession(session_id, "finish the session"); !exists)
    return exists;
  if (auto written = state_->WriteTrades(session_id, trades); !written) return written;
  if (auto written = state_->WriteResult(session_id, stats); !written) return written;
  {
    StatementScope update(state_->statement(kFinishStatus));
    BindText(update.get(), 1, session_id);
    sqlite3_bind_int64(update.get(), 2, state_->NowMs());
    auto ran = state_->Run(update.get(), "cannot mark session " + Quoted(session_id) + " done");
    if (!ran) return ran;
  }
  return transaction.Commit("finish the session");
}

KlineBatchWriter::KlineBatchWriter(BacktestRepository& repository, std::string session_id,
                                   size_t batch_size)
    : repository_(repository), session_id_(std::move(session_id)), batch_size_(batch_size) {
  buffer_.reserve(batch_size_);
}

Result<void> KlineBatchWriter::Add(const Kline& kline) {
  if (failure_) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the kline writer of session " + Quoted(session_id_) +
                    " stopped after an earlier error: " + failure_->message);
  }
  if (batch_size_ == 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "the kline writer of session " + Quoted(session_id_) + " has a batch size of 0");
  }
  buffer_.push_back(kline);
  if (buffer_.size() >= batch_size_) return Flush();
  return {};
}

Result<void> KlineBatchWriter::Flush() {
  if (failure_) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the kline writer of session " + Quoted(session_id_) +
                    " stopped after an earlier error: " + failure_->message);
  }
  if (buffer_.empty()) return {};
  auto saved = repository_.SaveKlineBatches(session_id_, buffer_, buffer_.size(), transactions_ + 1,
                                            rows_written_);
  buffer_.clear();  // keeps the capacity reserved at construction
  if (!saved) {
    failure_ = saved.error();
    return std::unexpected(saved.error());
  }
  rows_written_ += saved->rows;
  transactions_ += saved->transactions;
  return {};
}

}  // namespace leakgate::engine
