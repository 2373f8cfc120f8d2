// The backtest HTTP service: a JSON API that runs each backtest as a background task on a bounded
// worker pool, stores sessions in SQLite, and can switch on the five seeded faults of the backtest
// CPU-leak incident (see faults.h and backtest_task.h).
//
// API (all bodies JSON unless noted):
//   POST /api/backtest              a BacktestRequest (backtest_request.h) -> 202 {"session_id",
//                                   "status":"queued"}; 400 {"error":{"field","message"}} for a bad
//                                   request (nothing is stored); 429 when the queue is full; 503
//                                   while shutting down
//   GET  /api/backtest/{id}         the session: status queued|running|done|failed, progress 0..1,
//                                   the request, statistics when done, the error when failed; 404
//                                   for an unknown id
//   GET  /api/backtest/{id}/trades  {"session_id","status","total","offset","trades":[...]};
//                                   ?limit= and ?offset= (default: all)
//   GET  /api/backtest              recent sessions, newest first: ?limit= (0..500, default 20),
//                                   ?offset=, ?status= -> {"total","limit","offset","sessions"}
//   GET  /healthz                   {"status":"ok","faults",...}
//   GET  /metrics                   Prometheus text: process RSS, peak RSS, fds, sockets, threads,
//                                   CPU, sessions by status, queue depth, busy workers, tcmalloc
//                                   heap figures when available, and what each fault keeps
// Without an exchange URL the service starts an ExchangeSimulator on a loopback port of its own.
// After each task and each HTTP request the service hands freed memory back to the allocator
// (heap_stats.h), so that RSS between runs reflects what is still in use.
//
// Ownership: the service owns its HTTP server and its threads, the worker pool, the task seams, the
// simulator and one repository connection for the API; every task opens what its factory gives it.
// Thread-safety: Start and Shutdown are called by one controlling thread; the accessors may be
// called from any thread.
#ifndef LEAKGATE_ENGINE_BACKTEST_SERVICE_H_
#define LEAKGATE_ENGINE_BACKTEST_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/backtest_request.h"
#include "engine/error.h"
#include "engine/faults.h"

namespace leakgate::engine {

struct BacktestServiceOptions {
  // A leaked exchange connection must cost a visible share of a core while idle: at this interval
  // its heartbeats (a GET on the loopback, answered by the in-process simulator) cost about 2-3.5 %
  // of a core each on a 2-core x86-64 machine.
  static constexpr int kDefaultHeartbeatMs = 10;

  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (see BacktestService::port())
  std::string db_path = "backtest.db";
  int workers = 2;           // tasks running at once
  int queue_capacity = 16;   // tasks waiting for a worker; one more is answered 429
  std::string exchange_url;  // http://HOST:PORT of the exchange; empty: the in-process simulator
  FaultSet faults;
  std::chrono::milliseconds heartbeat_interval{kDefaultHeartbeatMs};
  int64_t max_bars = BacktestRequest::kDefaultMaxBars;  // largest range a request may ask for
  int http_threads = 8;                                 // HTTP connections served at once
  // Threads of the in-process simulator. It serves each keep-alive connection on one thread for the
  // connection's life, so this bounds the exchange connections open at once (leaked ones included).
  // 0: workers + 2, plus 64 when the faults let connections outlive their tasks.
  int simulator_threads = 0;
  std::chrono::milliseconds simulator_latency{
      0};  // added to every simulator answer (slow exchange)
  std::chrono::milliseconds shutdown_grace{10000};  // how long Shutdown waits for running tasks
  int keep_alive_timeout_s = 1;  // idle HTTP keep-alive connections are closed after this
};

struct ShutdownReport {
  int64_t finished_during_grace = 0;  // running tasks that ended while Shutdown waited
  int64_t queued_failed = 0;          // queued tasks marked failed, never started
  int64_t abandoned = 0;              // still running after the grace period, marked failed
};

class BacktestService {
 public:
  // Opens the database (marking sessions left queued or running by an earlier process as failed,
  // "interrupted"), starts the simulator unless an exchange URL is given, the workers and the HTTP
  // server, and returns once the server accepts connections. Errors: bad options (kInvalidArgument
  // naming the option), the database's Open errors, a port that cannot be bound (kUnavailable), the
  // simulator's Start errors.
  static Result<std::unique_ptr<BacktestService>> Start(BacktestServiceOptions options);

  // Shutdown(); if tasks had to be abandoned, their state is deliberately left allocated because
  // their threads still use it, and the process is expected to exit.
  ~BacktestService();

  BacktestService(const BacktestService&) = delete;
  BacktestService& operator=(const BacktestService&) = delete;

  // Stops accepting connections, marks queued tasks failed, waits up to shutdown_grace for running
  // tasks and marks those still running failed, releases what the faults kept (closing leaked
  // connections), stops the simulator and closes the database. Idempotent: later calls return the
  // first report.
  ShutdownReport Shutdown();

  const std::string& host() const;
  int port() const;
  std::string exchange_url() const;
  const BacktestServiceOptions& options() const;

  struct State;

 private:
  explicit BacktestService(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_BACKTEST_SERVICE_H_
