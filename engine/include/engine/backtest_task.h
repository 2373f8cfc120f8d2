// One backtest session as a background task, and the component seams the service's faults switch.
//
// A task runs as the incident report's fix prescribes: a factory builds its components (repository,
// engine, data provider), the klines are fetched from the exchange, the engine runs, the klines are
// saved in batches of 1000, then the trades and statistics; whatever happens, a guard hands the
// task's resources back when the task ends. Each of the report's five root causes is one
// replaceable part:
//   ComponentFactory   fresh components per task, or (singleton) one set built for the server,
//                      whose engine keeps every session's klines and results
//   TaskRetention      cleanup (provider closed, everything released), or (no-cleanup) a registry
//                      that keeps every task's components, klines and results and never closes
//   KlineSaver         KlineBatchWriter with batches of 1000, or (unbatched-klines) every kline
//                      turned into a row object first and all rows written in one transaction
//   ExchangeConnector  adapters that really disconnect, or (unclosed-connection) adapters whose
//                      Disconnect() does nothing, kept alive in a server-lifetime client cache
//   window hook        none, or (loop-retain) each window holding its strategy while the strategy
//                      holds the window: a shared_ptr cycle that is never freed
// `TaskSeams::Make` picks each part from a FaultSet; the rest of the service only reports the
// faults and asks ConnectionsOutliveTasks how many exchange connections to provision for.
//
// Ownership: TaskSeams owns the parts; a task borrows them for its duration and they must outlive
// every task. Thread-safety: every part may be used by several tasks at once.
#ifndef LEAKGATE_ENGINE_BACKTEST_TASK_H_
#define LEAKGATE_ENGINE_BACKTEST_TASK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backtest_engine.h"
#include "engine/backtest_request.h"
#include "engine/backtest_result.h"
#include "engine/data_provider.h"
#include "engine/error.h"
#include "engine/exchange_adapter.h"
#include "engine/faults.h"
#include "engine/kline.h"
#include "engine/repository.h"

namespace leakgate::engine {

// --- Exchange connections ------------------------------------------------------------------------

class ExchangeConnector {
 public:
  virtual ~ExchangeConnector();
  // A new adapter, not yet connected, for one provider. Never fails: connection errors surface
  // when the provider connects it.
  virtual std::shared_ptr<ExchangeAdapter> NewAdapter() = 0;
  // Adapters kept alive by the connector itself (its client cache); 0 when it keeps none.
  virtual size_t cached_clients() const = 0;
};

// --- The engine as the service uses it -----------------------------------------------------------

using WindowHook = std::function<void(const std::shared_ptr<KlineWindow>& window,
                                      const std::shared_ptr<Strategy>& strategy)>;

// Runs backtests for sessions and, like the engine object of the service it reproduces, remembers
// every session it ran with its klines and result for as long as it lives. Built per task that is
// released after the task; built once for the server, it grows by each session's data.
class SessionEngine {
 public:
  explicit SessionEngine(WindowHook on_window = nullptr);

  // Runs the backtest; `on_progress` gets the fraction of bars done (about 100 calls). Errors:
  // those of BacktestEngine::Run.
  Result<std::shared_ptr<const BacktestResult>> Run(std::string_view session_id,
                                                    std::shared_ptr<const KlineSeries> klines,
                                                    const BacktestConfig& config,
                                                    const std::function<void(double)>& on_progress);

  size_t sessions_kept() const;
  int64_t klines_kept() const;

 private:
  struct SessionRun {
    std::string session_id;
    std::shared_ptr<const KlineSeries> klines;
    std::shared_ptr<const BacktestResult> result;
  };

  const WindowHook on_window_;
  mutable std::mutex mutex_;
  std::vector<SessionRun> runs_;
};

// --- Components ----------------------------------------------------------------------------------

struct TaskComponents {
  std::shared_ptr<BacktestRepository> repository;
  std::shared_ptr<SessionEngine> engine;
  std::shared_ptr<HistoricalDataProvider> provider;
  // Ends this task's use of the provider and its exchange connection; set by the factory. Calling
  // it twice is harmless.
  std::function<void()> close_provider;
};

struct ComponentOptions {
  std::string db_path;
  RepositoryOptions repository;
  // provider.adapter is ignored: adapters come from the connector.
  HistoricalDataProviderOptions provider;
};

class ComponentFactory {
 public:
  virtual ~ComponentFactory();
  // Components for one task. Errors: the repository's Open errors (naming the database path).
  virtual Result<TaskComponents> Build() = 0;
  // Sessions and klines kept by engines that outlive their task (0 for per-task engines).
  virtual size_t sessions_kept() const = 0;
  virtual int64_t klines_kept() const = 0;
};

// --- Kline persistence ---------------------------------------------------------------------------

class KlineSaver {
 public:
  virtual ~KlineSaver();
  // Appends the session's klines. Success: the rows and transactions committed. Failure: the
  // repository's error (a failed batch is rolled back and the session marked failed).
  virtual Result<SaveStats> Save(BacktestRepository& repository, std::string_view session_id,
                                 std::span<const Kline> klines) = 0;
};

// --- What a task leaves behind -------------------------------------------------------------------

struct TaskResources {
  TaskComponents components;
  std::shared_ptr<const KlineSeries> klines;
  std::shared_ptr<const BacktestResult> result;
};

class TaskRetention {
 public:
  virtual ~TaskRetention();
  // Takes a finished task's resources (on success and on every error path). Never fails.
  virtual void Release(TaskResources resources) = 0;
  // Tasks whose resources are still held.
  virtual size_t tasks_retained() const = 0;
};

// --- All seams together --------------------------------------------------------------------------

struct TaskSeamOptions {
  ComponentOptions components;
  ExchangeAdapterOptions adapter;  // for every adapter the connector makes
};

struct TaskSeams {
  FaultSet faults;
  std::unique_ptr<ExchangeConnector> connector;
  std::unique_ptr<ComponentFactory> factory;  // uses *connector
  std::unique_ptr<KlineSaver> kline_saver;
  std::unique_ptr<TaskRetention> retention;
  std::shared_ptr<std::atomic<int64_t>> windows_retained;  // windows kept by the loop-retain hook

  // The parts for `faults` (see the header comment). Destroying the seams releases everything the
  // faulty parts kept, retention first, then the factory, then the connector's cached clients.
  static TaskSeams Make(const TaskSeamOptions& options, FaultSet faults);

  // True when the parts Make picks for `faults` leave exchange connections open after their task
  // (no-cleanup keeps providers connected, unclosed-connection never disconnects).
  static bool ConnectionsOutliveTasks(FaultSet faults);

  TaskSeams() = default;
  TaskSeams(TaskSeams&&) = default;
  TaskSeams& operator=(TaskSeams&&) = default;
  ~TaskSeams();
};

// --- Running one task ----------------------------------------------------------------------------

struct TaskOutcome {
  SessionStatus status = SessionStatus::kFailed;
  std::string error;  // empty when done
  int64_t bars = 0;
  int64_t trades = 0;
  std::chrono::milliseconds duration{0};
};

// Runs the session's backtest with the given seams and records its status (running, then done or
// failed with the reason) in the task's repository, or in `fallback` when the task's components
// could not be built. Never throws; the outcome says what was recorded.
TaskOutcome RunBacktestTask(std::string_view session_id, const BacktestRequest& request,
                            TaskSeams& seams, BacktestRepository& fallback);

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_BACKTEST_TASK_H_
