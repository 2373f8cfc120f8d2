#include "engine/backtest_task.h"

#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

namespace leakgate::engine {
namespace {

using Clock = std::chrono::steady_clock;

// --- Exchange connectors -------------------------------------------------------------------------

// Adapters owned by their providers alone: Disconnect() closes the socket and joins the heartbeat.
class ClosingExchangeConnector final : public ExchangeConnector {
 public:
  explicit ClosingExchangeConnector(ExchangeAdapterOptions options)
      : options_(std::move(options)) {}
  std::shared_ptr<ExchangeAdapter> NewAdapter() override {
    return std::make_shared<ExchangeAdapter>(options_);
  }
  size_t cached_clients() const override { return 0; }

 private:
  const ExchangeAdapterOptions options_;
};

// Fault unclosed-connection: an adapter whose Disconnect() leaves the connection as it is, so its
// socket and heartbeat thread live on after the provider "closed" it.
class UnclosedExchangeAdapter final : public ExchangeAdapter {
 public:
  using ExchangeAdapter::ExchangeAdapter;
  void Disconnect() override {}
};

// Fault unclosed-connection: every adapter made is also kept in a client cache for the life of the
// server, as an exchange SDK's client registry would, so dropping the provider's reference does not
// run the adapter's destructor either.
class CachingExchangeConnector final : public ExchangeConnector {
 public:
  explicit CachingExchangeConnector(ExchangeAdapterOptions options)
      : options_(std::move(options)) {}
  std::shared_ptr<ExchangeAdapter> NewAdapter() override {
    auto adapter = std::make_shared<UnclosedExchangeAdapter>(options_);
    std::lock_guard lock(mutex_);
    client_cache_.push_back(adapter);
    return adapter;
  }
  size_t cached_clients() const override {
    std::lock_guard lock(mutex_);
    return client_cache_.size();
  }

 private:
  const ExchangeAdapterOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<ExchangeAdapter>> client_cache_;
};

// The adapter of the server-wide provider (fault singleton): one provider serves every task, and,
// as the provider of the service this reproduces did, each fetch opens a connection of its own. The
// adapter reports itself disconnected so that the provider connects at the start of every fetch; a
// connect first lets go of the previous fetch's connection (Disconnect(): closed, unless the
// connector's adapters ignore that) and takes a new adapter from the connector. Requests after a
// Disconnect() from another task's cleanup reconnect transparently.
class ConnectionPerFetchAdapter final : public ExchangeAdapter {
 public:
  ConnectionPerFetchAdapter(ExchangeConnector& connector, ExchangeAdapterOptions options)
      : ExchangeAdapter(std::move(options)), connector_(connector) {}

  Result<void> Connect() override {
    std::lock_guard lock(mutex_);
    if (current_ != nullptr) current_->Disconnect();
    current_.reset();
    return ConnectLocked();
  }

  void Disconnect() override {
    std::lock_guard lock(mutex_);
    if (current_ != nullptr) current_->Disconnect();
    current_.reset();
  }

  bool IsConnected() const override { return false; }

  Result<HttpResponse> Get(std::string_view path_and_query) override {
    std::lock_guard lock(mutex_);
    if (current_ == nullptr) {
      if (Result<void> connected = ConnectLocked(); !connected)
        return std::unexpected(connected.error());
    }
    return current_->Get(path_and_query);
  }

 private:
  Result<void> ConnectLocked() {
    std::shared_ptr<ExchangeAdapter> adapter = connector_.NewAdapter();
    Result<void> connected = adapter->Connect();
    if (!connected) return connected;
    current_ = std::move(adapter);
    return {};
  }

  ExchangeConnector& connector_;
  std::mutex mutex_;
  std::shared_ptr<ExchangeAdapter> current_;
};

// --- Component factories -------------------------------------------------------------------------

HistoricalDataProviderOptions ProviderOptions(const ComponentOptions& options,
                                              const ExchangeAdapterOptions& adapter) {
  HistoricalDataProviderOptions provider = options.provider;
  provider.adapter = adapter;
  return provider;
}

// The fix: every task gets its own repository connection, engine and provider, released with it.
class FreshComponentFactory final : public ComponentFactory {
 public:
  FreshComponentFactory(ComponentOptions options, ExchangeAdapterOptions adapter,
                        ExchangeConnector& connector, WindowHook hook)
      : options_(std::move(options)),
        provider_options_(ProviderOptions(options_, adapter)),
        connector_(connector),
        hook_(std::move(hook)) {}

  Result<TaskComponents> Build() override {
    Result<std::unique_ptr<BacktestRepository>> repository =
        BacktestRepository::Open(options_.db_path, options_.repository);
    if (!repository) return std::unexpected(repository.error());
    auto provider =
        std::make_shared<HistoricalDataProvider>(provider_options_, connector_.NewAdapter());
    TaskComponents components;
    components.repository = std::shared_ptr<BacktestRepository>(*std::move(repository));
    components.engine = std::make_shared<SessionEngine>(hook_);
    components.close_provider = [weak = std::weak_ptr<HistoricalDataProvider>(provider)] {
      if (auto held = weak.lock()) held->Close();
    };
    components.provider = std::move(provider);
    return components;
  }

  size_t sessions_kept() const override { return 0; }
  int64_t klines_kept() const override { return 0; }

 private:
  const ComponentOptions options_;
  const HistoricalDataProviderOptions provider_options_;
  ExchangeConnector& connector_;
  const WindowHook hook_;
};

// Fault singleton: the repository, the engine and the provider are built once, on the first task,
// and handed to every task after it, as module-level objects would be. The engine remembers every
// session it ran, so its klines and results stay for the life of the server.
class SingletonComponentFactory final : public ComponentFactory {
 public:
  SingletonComponentFactory(ComponentOptions options, ExchangeAdapterOptions adapter,
                            ExchangeConnector& connector, WindowHook hook)
      : options_(std::move(options)),
        provider_options_(ProviderOptions(options_, adapter)),
        adapter_options_(std::move(adapter)),
        connector_(connector),
        hook_(std::move(hook)) {}

  Result<TaskComponents> Build() override {
    std::lock_guard lock(mutex_);
    if (components_.repository == nullptr) {
      Result<std::unique_ptr<BacktestRepository>> repository =
          BacktestRepository::Open(options_.db_path, options_.repository);
      if (!repository) return std::unexpected(repository.error());
      auto adapter = std::make_shared<ConnectionPerFetchAdapter>(connector_, adapter_options_);
      components_.repository = std::shared_ptr<BacktestRepository>(*std::move(repository));
      components_.engine = std::make_shared<SessionEngine>(hook_);
      components_.provider = std::make_shared<HistoricalDataProvider>(provider_options_, adapter);
      // The shared provider stays open for other tasks; a task ends only its own connection.
      components_.close_provider = [adapter] { adapter->Disconnect(); };
    }
    return components_;
  }

  size_t sessions_kept() const override {
    std::lock_guard lock(mutex_);
    return components_.engine ? components_.engine->sessions_kept() : 0;
  }
  int64_t klines_kept() const override {
    std::lock_guard lock(mutex_);
    return components_.engine ? components_.engine->klines_kept() : 0;
  }

 private:
  const ComponentOptions options_;
  const HistoricalDataProviderOptions provider_options_;
  const ExchangeAdapterOptions adapter_options_;
  ExchangeConnector& connector_;
  const WindowHook hook_;
  mutable std::mutex mutex_;
  TaskComponents components_;
};

// --- Kline savers --------------------------------------------------------------------------------

// The fix: rows go through a KlineBatchWriter, one transaction per 1000 rows, never more than one
// batch buffered.
class BatchedKlineSaver final : public KlineSaver {
 public:
  Result<SaveStats> Save(BacktestRepository& repository, std::string_view session_id,
                         std::span<const Kline> klines) override {
    KlineBatchWriter writer(repository, std::string(session_id),
                            BacktestRepository::kDefaultKlineBatchSize);
    for (const Kline& kline : klines) {
      if (Result<void> added = writer.Add(kline); !added) return std::unexpected(added.error());
    }
    if (Result<void> flushed = writer.Flush(); !flushed) return std::unexpected(flushed.error());
    return SaveStats{writer.rows_written(), writer.transactions()};
  }
};

// Fault unbatched-klines: every kline first becomes a row object (a JSON object per row, as the
// service's list of per-row dicts), the whole list is converted for the repository, and all rows
// are written in a single transaction.
class RowObjectKlineSaver final : public KlineSaver {
 public:
  Result<SaveStats> Save(BacktestRepository& repository, std::string_view session_id,
                         std::span<const Kline> klines) override {
    std::vector<nlohmann::json> rows;
    rows.reserve(klines.size());
    for (const Kline& k : klines) {
      nlohmann::json row = nlohmann::json::object();
      row["ts"] = k.ts_ms;
      row["open"] = k.open;
      row["high"] = k.high;
      row["low"] = k.low;
      row["close"] = k.close;
      row["volume"] = k.volume;
      row["quote_volume"] = k.quote_volume;
      rows.push_back(std::move(row));
    }
    KlineSeries all_rows;
    all_rows.reserve(rows.size());
    for (const nlohmann::json& row : rows) {
      all_rows.push_back(Kline{row["ts"].get<int64_t>(), row["open"].get<double>(),
                               row["high"].get<double>(), row["low"].get<double>(),
                               row["close"].get<double>(), row["volume"].get<double>(),
                               row["quote_volume"].get<double>()});
    }
    if (all_rows.empty()) return SaveStats{};
    return repository.SaveKlines(session_id, all_rows, all_rows.size());
  }
};

// --- Retention -----------------------------------------------------------------------------------

// The fix: the provider is closed and every reference the task held is dropped, so the repository
// connection, the engine, the klines and the result are freed with the task.
class CleanupRetention final : public TaskRetention {
 public:
  void Release(TaskResources resources) override {
    if (resources.components.close_provider) resources.components.close_provider();
    resources.result.reset();
    resources.klines.reset();
    resources.components = TaskComponents();
  }
  size_t tasks_retained() const override { return 0; }
};

// Fault no-cleanup: the task has no cleanup path. Its components (the provider still connected, the
// repository still open), klines and result stay in a task registry that is never pruned.
class RegistryRetention final : public TaskRetention {
 public:
  void Release(TaskResources resources) override {
    std::lock_guard lock(mutex_);
    task_registry_.push_back(std::move(resources));
  }
  size_t tasks_retained() const override {
    std::lock_guard lock(mutex_);
    return task_registry_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<TaskResources> task_registry_;
};

// Fault loop-retain: the window holds its strategy while the strategy holds the window, so neither
// reference count ever reaches zero.
WindowHook MakeLoopRetainHook(std::shared_ptr<std::atomic<int64_t>> counter) {
  return [counter = std::move(counter)](const std::shared_ptr<KlineWindow>& window,
                                        const std::shared_ptr<Strategy>& strategy) {
    window->attachment = strategy;
    counter->fetch_add(1, std::memory_order_relaxed);
  };
}

}  // namespace

ExchangeConnector::~ExchangeConnector() = default;
ComponentFactory::~ComponentFactory() = default;
KlineSaver::~KlineSaver() = default;
TaskRetention::~TaskRetention() = default;
TaskSeams::~TaskSeams() = default;

// --- SessionEngine -------------------------------------------------------------------------------

SessionEngine::SessionEngine(WindowHook on_window) : on_window_(std::move(on_window)) {}

Result<std::shared_ptr<const BacktestResult>> SessionEngine::Run(
    std::string_view session_id, std::shared_ptr<const KlineSeries> klines,
    const BacktestConfig& config, const std::function<void(double)>& on_progress) {
  EngineOptions options;
  options.on_window = on_window_;
  if (on_progress) {
    options.on_progress = [&on_progress](int64_t done, int64_t total) {
      if (total > 0) on_progress(static_cast<double>(done) / static_cast<double>(total));
    };
  }
  const BacktestEngine engine(std::move(options));
  Result<BacktestResult> result = engine.Run(*klines, config);
  if (!result) return std::unexpected(result.error());
  auto shared = std::make_shared<const BacktestResult>(*std::move(result));
  // The engine's own per-session cache: a copy of the session's klines next to its result (what a
  // module-level engine keeping `self.klines` does). Only a server-lifetime engine (the singleton
  // fault) lets it grow; a per-task engine dies with its task.
  auto kept = std::make_shared<const KlineSeries>(*klines);
  std::lock_guard lock(mutex_);
  runs_.push_back(SessionRun{std::string(session_id), std::move(kept), shared});
  return shared;
}

size_t SessionEngine::sessions_kept() const {
  std::lock_guard lock(mutex_);
  return runs_.size();
}

int64_t SessionEngine::klines_kept() const {
  std::lock_guard lock(mutex_);
  int64_t total = 0;
  for (const SessionRun& run : runs_) total += static_cast<int64_t>(run.klines->size());
  return total;
}

// --- TaskSeams -----------------------------------------------------------------------------------

TaskSeams TaskSeams::Make(const TaskSeamOptions& options, FaultSet faults) {
  TaskSeams seams;
  seams.faults = faults;
  seams.windows_retained = std::make_shared<std::atomic<int64_t>>(0);
  if (faults.Has(Fault::kUnclosedConnection)) {
    seams.connector = std::make_unique<CachingExchangeConnector>(options.adapter);
  } else {
    seams.connector = std::make_unique<ClosingExchangeConnector>(options.adapter);
  }
  WindowHook hook =
      faults.Has(Fault::kLoopRetain) ? MakeLoopRetainHook(seams.windows_retained) : WindowHook();
  if (faults.Has(Fault::kSingleton)) {
    seams.factory = std::make_unique<SingletonComponentFactory>(options.components, options.adapter,
                                                                *seams.connector, std::move(hook));
  } else {
    seams.factory = std::make_unique<FreshComponentFactory>(options.components, options.adapter,
                                                            *seams.connector, std::move(hook));
  }
  if (faults.Has(Fault::kUnbatchedKlines)) {
    seams.kline_saver = std::make_unique<RowObjectKlineSaver>();
  } else {
    seams.kline_saver = std::make_unique<BatchedKlineSaver>();
  }
  if (faults.Has(Fault::kNoCleanup)) {
    seams.retention = std::make_unique<RegistryRetention>();
  } else {
    seams.retention = std::make_unique<CleanupRetention>();
  }
  return seams;
}

bool TaskSeams::ConnectionsOutliveTasks(FaultSet faults) {
  return faults.Has(Fault::kNoCleanup) || faults.Has(Fault::kUnclosedConnection);
}

// --- RunBacktestTask -----------------------------------------------------------------------------

namespace {

// Progress recorded in the repository: fetching takes the first fifth, the engine the next three,
// saving the rest. Written only when it moved by a tenth, so that a run costs about ten updates.
class ProgressRecorder {
 public:
  ProgressRecorder(BacktestRepository& repository, std::string_view session_id)
      : repository_(repository), session_id_(session_id) {}

  void Set(double fraction) {
    if (fraction < last_ + 0.1 && fraction < 1) return;
    last_ = fraction;
    (void)repository_.UpdateProgress(session_id_, std::min(1.0, std::max(0.0, fraction)));
  }

 private:
  BacktestRepository& repository_;
  std::string session_id_;
  double last_ = 0;
};

}  // namespace

TaskOutcome RunBacktestTask(std::string_view session_id, const BacktestRequest& request,
                            TaskSeams& seams, BacktestRepository& fallback) {
  const Clock::time_point started = Clock::now();
  TaskOutcome outcome;
  auto finish = [&] {
    outcome.duration =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    return outcome;
  };

  Result<TaskComponents> built = [&]() -> Result<TaskComponents> {
    try {
      return seams.factory->Build();
    } catch (const std::exception& e) {
      return Fail(ErrorCode::kInternal, e.what());
    }
  }();
  if (!built) {
    outcome.error = "the task's components could not be built: " + built.error().message;
    (void)fallback.UpdateStatus(session_id, SessionStatus::kFailed, outcome.error);
    return finish();
  }

  // Hands the task's resources to the retention policy on every way out of this function.
  struct ResourceGuard {
    TaskRetention& retention;
    TaskResources resources;
    ~ResourceGuard() { retention.Release(std::move(resources)); }
  } guard{*seams.retention, TaskResources{*std::move(built), nullptr, nullptr}};
  TaskComponents& components = guard.resources.components;
  BacktestRepository& repository = *components.repository;

  auto fail = [&](std::string what) {
    outcome.status = SessionStatus::kFailed;
    outcome.error = std::move(what);
    if (!repository.UpdateStatus(session_id, SessionStatus::kFailed, outcome.error)) {
      (void)fallback.UpdateStatus(session_id, SessionStatus::kFailed, outcome.error);
    }
    return finish();
  };

  try {
    if (Result<void> running = repository.UpdateStatus(session_id, SessionStatus::kRunning);
        !running) {
      return fail("the session could not be marked running: " + running.error().message);
    }
    ProgressRecorder progress(repository, session_id);

    Result<KlineSeries> fetched = components.provider->FetchKlines(
        request.symbol, request.timeframe.name, request.start_ms, request.end_ms);
    if (!fetched) return fail("fetching klines failed: " + fetched.error().message);
    auto klines = std::make_shared<const KlineSeries>(*std::move(fetched));
    guard.resources.klines = klines;
    outcome.bars = static_cast<int64_t>(klines->size());
    progress.Set(0.2);

    Result<std::shared_ptr<const BacktestResult>> result = components.engine->Run(
        session_id, klines, request.ToConfig(),
        [&progress](double fraction) { progress.Set(0.2 + 0.6 * fraction); });
    if (!result) return fail("the backtest failed: " + result.error().message);
    guard.resources.result = *result;
    const BacktestResult& backtest = **result;

    Result<SaveStats> saved = seams.kline_saver->Save(repository, session_id, *klines);
    if (!saved) return fail("saving klines failed: " + saved.error().message);
    progress.Set(0.9);

    if (Result<void> finished =
            repository.FinishSession(session_id, backtest.stats, backtest.trades);
        !finished) {
      return fail("saving the results failed: " + finished.error().message);
    }
    outcome.status = SessionStatus::kDone;
    outcome.trades = static_cast<int64_t>(backtest.trades.size());
    return finish();
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
}

}  // namespace leakgate::engine
