// Persistence of backtest sessions in a SQLite file: sessions and their status, the klines a
// session ran on, its trades and its statistics.
//
// `BacktestRepository` owns one SQLite connection to one file, opened in WAL journal mode with
// synchronous=NORMAL, foreign keys on and a busy timeout, and every prepared statement it uses; all
// of them are released by `Close()` or the destructor. The schema is created when absent and its
// version is kept in `PRAGMA user_version`. Klines are written in batches, each batch one
// transaction
// (`SaveKlines`, `KlineBatchWriter`), so that a writer never holds more than one batch of rows and
// a failed batch leaves no partial rows behind.
//
// Thread-safety: a `BacktestRepository` is safe to use from several threads at once; calls are
// serialised on an internal mutex. Several repositories (in one process or several) may use the
// same file at once: readers never block, writers wait up to the busy timeout for each other. A
// `KlineBatchWriter` is thread-compatible (one thread at a time) and must not outlive its
// repository.
#ifndef LEAKGATE_ENGINE_REPOSITORY_H_
#define LEAKGATE_ENGINE_REPOSITORY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backtest_result.h"
#include "engine/error.h"
#include "engine/kline.h"

namespace leakgate::engine {

enum class SessionStatus { kQueued, kRunning, kDone, kFailed };

// "queued", "running", "done", "failed": the spelling stored in the database and used by the API.
std::string_view SessionStatusName(SessionStatus status);

// The inverse of SessionStatusName; an unknown name gets an error listing the known ones.
Result<SessionStatus> ParseSessionStatus(std::string_view name);

struct SessionRecord {
  std::string id;
  std::string params_json;  // the request that started the session, as given to CreateSession
  SessionStatus status = SessionStatus::kQueued;
  int64_t created_ms = 0;  // ms since epoch (UTC)
  int64_t updated_ms = 0;  // last change of status or progress
  std::string error;       // why the session failed; empty unless the status is kFailed
  double progress = 0;     // 0..1

  friend bool operator==(const SessionRecord&, const SessionRecord&) = default;
};

struct RepositoryOptions {
  // How long a writer waits for another connection's write transaction before giving up.
  int busy_timeout_ms = 5000;
  // Source of created_ms / updated_ms (ms since epoch); the system clock when empty.
  std::function<int64_t()> now_ms;
};

// What SaveKlines wrote: rows committed and the number of transactions that committed them.
struct SaveStats {
  int64_t rows = 0;
  int64_t transactions = 0;

  friend bool operator==(const SaveStats&, const SaveStats&) = default;
};

class BacktestRepository {
 public:
  // Schema version this program writes and understands.
  static constexpr int kSchemaVersion = 1;
  static constexpr size_t kDefaultKlineBatchSize = 1000;

  // Opens (creating when absent) the database file at `path` and creates the schema if the file has
  // none. Errors name the path and SQLite's message: a directory that does not exist or cannot be
  // written (kIo), a file that is not a SQLite database (kIo), a database that cannot be written or
  // put in WAL mode (kIo), a schema version newer than kSchemaVersion (kFailedPrecondition).
  static Result<std::unique_ptr<BacktestRepository>> Open(const std::string& path,
                                                          RepositoryOptions options = {});

  BacktestRepository(const BacktestRepository&) = delete;
  BacktestRepository& operator=(const BacktestRepository&) = delete;
  ~BacktestRepository();  // Close(), ignoring its error

  // Finalizes every statement and closes the connection. Calling it again does nothing and
  // succeeds. After Close every other call fails with kFailedPrecondition. Fails (kIo) only if
  // SQLite refuses to close; the repository counts as closed anyway.
  Result<void> Close();
  bool is_open() const;
  const std::string& path() const;

  // --- Sessions
  // -----------------------------------------------------------------------------------

  // Inserts a session with status kQueued and progress 0. Errors: an empty id or params that are
  // not valid JSON (kInvalidArgument), an id that already exists (kInvalidArgument, naming the id).
  Result<void> CreateSession(std::string_view id, std::string_view params_json);

  // Sets the status; `error` is stored for kFailed and should be empty otherwise (an empty error is
  // stored as none). Setting kDone also sets progress to 1. Errors: unknown id (kNotFound).
  Result<void> UpdateStatus(std::string_view id, SessionStatus status, std::string_view error = {});

  // Sets progress to `fraction`. Errors: a fraction outside [0, 1] (kInvalidArgument), unknown id
  // (kNotFound).
  Result<void> UpdateProgress(std::string_view id, double fraction);

  // The session, or nullopt when no session has that id.
  Result<std::optional<SessionRecord>> GetSession(std::string_view id);

  // Sessions newest first (by created_ms, then by insertion order), optionally only those with
  // `status`, skipping `offset` and returning at most `limit`. Errors: a negative limit or offset
  // (kInvalidArgument).
  Result<std::vector<SessionRecord>> ListSessions(
      int64_t limit, int64_t offset = 0, std::optional<SessionStatus> status = std::nullopt);
  Result<int64_t> CountSessions(std::optional<SessionStatus> status = std::nullopt);

  // Moves every session still 'queued' or 'running' to 'failed' with the error "interrupted" and
  // returns how many moved. Meant for start-up, when no task of this database can still be running
  // (after a crash nothing else would ever finish them).
  Result<int64_t> MarkInterrupted();

  // Deletes the session with its klines, trades and result. Errors: unknown id (kNotFound).
  Result<void> DeleteSession(std::string_view id);

  // --- Klines
  // -------------------------------------------------------------------------------------

  // Appends `klines` to the session in batches of `batch_size` rows, each batch one transaction
  // (BEGIN IMMEDIATE ... COMMIT) through one reused prepared statement. On success returns the rows
  // and transactions committed. If a row is rejected (a NaN price violates NOT NULL, a timestamp
  // already stored violates the primary key, ...) or the transaction cannot start or commit, that
  // whole batch is rolled back, earlier batches stay committed, the session is marked kFailed with
  // the error, and the error names the session, the batch number and the row's index and timestamp.
  // Errors: batch_size 0 (kInvalidArgument), unknown session (kNotFound), a rejected row
  // (kInvalidArgument), SQLite failures (kIo, or kUnavailable when another writer held the database
  // past the busy timeout).
  Result<SaveStats> SaveKlines(std::string_view session_id, std::span<const Kline> klines,
                               size_t batch_size = kDefaultKlineBatchSize);

  // The session's klines ordered by time. Errors: unknown session (kNotFound).
  Result<KlineSeries> LoadKlines(std::string_view session_id);
  Result<int64_t> CountKlines(std::string_view session_id);

  // --- Trades and results
  // -------------------------------------------------------------------------

  // Replaces the session's trades with `trades` (kept in order) in one transaction. NaN values are
  // stored as NULL and read back as NaN; infinities are stored as such. Errors: unknown session
  // (kNotFound).
  Result<void> SaveTrades(std::string_view session_id, std::span<const Trade> trades);
  Result<std::vector<Trade>> LoadTrades(std::string_view session_id);

  // Replaces the session's statistics (NaN and infinities survive as in SaveTrades). Errors:
  // unknown session (kNotFound).
  Result<void> SaveResult(std::string_view session_id, const Statistics& stats);
  // The statistics, or nullopt when none were saved. Errors: unknown session (kNotFound).
  Result<std::optional<Statistics>> LoadResult(std::string_view session_id);

  // In one transaction: replaces trades and statistics, sets status kDone, progress 1 and clears
  // the error. Nothing is written when any part fails. Errors: unknown session (kNotFound).
  Result<void> FinishSession(std::string_view session_id, const Statistics& stats,
                             std::span<const Trade> trades);

  // Calls `hook` whenever this repository's connection commits a transaction (nullptr removes it).
  // The hook runs under the repository's lock and must not call back into the repository.
  void TEST_SetCommitHook(std::function<void()> hook);

 private:
  friend class KlineBatchWriter;
  struct State;

  explicit BacktestRepository(std::unique_ptr<State> state);

  // SaveKlines with batches numbered from `first_batch_number` and rows from `first_row_index` in
  // errors, for a writer that continues an earlier stream.
  Result<SaveStats> SaveKlineBatches(std::string_view session_id, std::span<const Kline> klines,
                                     size_t batch_size, int64_t first_batch_number,
                                     int64_t first_row_index);

  std::unique_ptr<State> state_;
};

// Writes a session's klines as they arrive, one transaction per `batch_size` rows, holding at most
// one batch in memory: the buffer is reserved once and cleared after each flush.
//
// Add() flushes by itself when the buffer reaches `batch_size` rows; call Flush() after the last
// row to write the remainder. Rows still buffered when the writer is destroyed are discarded, as an
// uncommitted transaction would be. After a failed flush (the batch is rolled back and the session
// marked failed, see SaveKlines) every further call fails with kFailedPrecondition quoting the
// error.
class KlineBatchWriter {
 public:
  KlineBatchWriter(BacktestRepository& repository, std::string session_id,
                   size_t batch_size = BacktestRepository::kDefaultKlineBatchSize);

  KlineBatchWriter(const KlineBatchWriter&) = delete;
  KlineBatchWriter& operator=(const KlineBatchWriter&) = delete;

  // Buffers the kline and flushes when the buffer is full. Errors: those of Flush, and
  // kInvalidArgument for a batch size of 0.
  Result<void> Add(const Kline& kline);
  // Writes the buffered rows (if any) in one transaction. Errors: as SaveKlines.
  Result<void> Flush();

  int64_t rows_written() const { return rows_written_; }
  int64_t transactions() const { return transactions_; }
  size_t buffered() const { return buffer_.size(); }
  size_t batch_size() const { return batch_size_; }
  size_t TEST_buffer_capacity() const { return buffer_.capacity(); }

 private:
  BacktestRepository& repository_;
  std::string session_id_;
  size_t batch_size_;
  std::vector<Kline> buffer_;
  int64_t rows_written_ = 0;
  int64_t transactions_ = 0;
  std::optional<Error> failure_;
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_REPOSITORY_H_
