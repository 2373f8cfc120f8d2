#include "engine/backtest_service.h"

#include <httplib.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/backtest_task.h"
#include "engine/exchange_simulator.h"
#include "engine/heap_stats.h"
#include "engine/repository.h"
#include "engine/result_json.h"
#include "engine/service_metrics.h"

namespace leakgate::engine {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kJson = "application/json";
constexpr size_t kMaxRequestBodyBytes = 1 << 20;
constexpr int64_t kDefaultListLimit = 20;
constexpr int64_t kMaxListLimit = 500;
constexpr char kSessionIdPattern[] = "([0-9A-Za-z_-]{1,64})";

void SendJson(httplib::Response& response, int status, const json& body) {
  response.status = status;
  // Messages may quote what a client sent, which need not be valid UTF-8.
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                       std::string(kJson));
}

void SendError(httplib::Response& response, int status, std::string message,
               std::optional<std::string> field = std::nullopt) {
  json error = {{"message", std::move(message)}};
  if (field) error["field"] = *field;
  SendJson(response, status, {{"error", std::move(error)}});
}

json SessionSummaryJson(const SessionRecord& record) {
  json out = {{"session_id", record.id},
              {"status", SessionStatusName(record.status)},
              {"progress", JsonNumber(record.progress)},
              {"created_at", FormatTimestamp(record.created_ms)},
              {"updated_at", FormatTimestamp(record.updated_ms)},
              {"request", nullptr}};
  json request = json::parse(record.params_json, nullptr, /*allow_exceptions=*/false);
  if (!request.is_discarded()) out["request"] = std::move(request);
  if (record.status == SessionStatus::kFailed) out["error"] = record.error;
  return out;
}

// A non-negative integer query parameter; `fallback` when absent.
std::expected<int64_t, std::string> QueryInteger(const httplib::Request& request,
                                                 const std::string& name, int64_t fallback,
                                                 int64_t max) {
  if (!request.has_param(name)) return fallback;
  const std::string text = request.get_param_value(name);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0 ||
      value > max) {
    return std::unexpected(name + " must be an integer from 0 to " + std::to_string(max) +
                           ", got '" + text + "'");
  }
  return value;
}

// --- The worker pool -----------------------------------------------------------------------------

struct QueuedTask {
  std::string session_id;
  BacktestRequest request;
};

// A fixed number of worker threads taking tasks from a bounded queue. Admission has two steps,
// Reserve() then Commit() or Cancel(), so that a request refused for a full queue writes nothing.
class WorkerPool {
 public:
  enum class Admission { kReserved, kFull, kClosed };
  using RunTask = std::function<void(QueuedTask&)>;

  WorkerPool(int workers, int capacity, RunTask run) : capacity_(capacity), run_(std::move(run)) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  }

  ~WorkerPool() {
    Close();
    Join();
  }

  Admission Reserve() {
    std::lock_guard lock(mutex_);
    if (closed_) return Admission::kClosed;
    if (static_cast<int>(queue_.size()) + reserved_ >= capacity_) return Admission::kFull;
    ++reserved_;
    return Admission::kReserved;
  }

  // False when the pool closed since Reserve(): the task will not run.
  bool Commit(QueuedTask task) {
    {
      std::lock_guard lock(mutex_);
      --reserved_;
      if (closed_) return false;
      queue_.push_back(std::move(task));
    }
    work_.notify_one();
    return true;
  }

  void Cancel() {
    std::lock_guard lock(mutex_);
    --reserved_;
  }

  // Stops admitting tasks and returns those still queued; workers exit once their task is done.
  std::vector<QueuedTask> Close() {
    std::vector<QueuedTask> never_started;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      for (QueuedTask& task : queue_) never_started.push_back(std::move(task));
      queue_.clear();
    }
    work_.notify_all();
    return never_started;
  }

  // True when no task is running (after Close(), none will start again) before `deadline`.
  bool WaitUntilIdle(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return idle_.wait_until(lock, deadline, [this] { return running_.empty(); });
  }

  std::vector<std::string> RunningSessions() const {
    std::lock_guard lock(mutex_);
    return {running_.begin(), running_.end()};
  }

  void Join() {
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

  // Releases the threads without joining them (they still run abandoned tasks).
  void Detach() {
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.detach();
    }
  }

  size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }
  size_t running() const {
    std::lock_guard lock(mutex_);
    return running_.size();
  }
  int capacity() const { return capacity_; }
  size_t workers() const { return threads_.size(); }

 private:
  void WorkerLoop() {
    pthread_setname_np(pthread_self(), "bt-worker");
    std::unique_lock lock(mutex_);
    while (true) {
      work_.wait(lock, [this] { return closed_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closed and drained
      QueuedTask task = std::move(queue_.front());
      queue_.pop_front();
      running_.insert(task.session_id);
      lock.unlock();
      run_(task);
      lock.lock();
      running_.erase(task.session_id);
      if (running_.empty()) idle_.notify_all();
    }
  }

  const int capacity_;
  const RunTask run_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable idle_;
  std::deque<QueuedTask> queue_;
  std::multiset<std::string> running_;
  int reserved_ = 0;
  bool closed_ = false;
  std::vector<std::thread> threads_;
};

std::string NewSessionId() {
  static std::mutex mutex;
  static std::mt19937_64 generator = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  std::lock_guard lock(mutex);
  for (size_t i = 0; i < id.size(); i += 16) {
    uint64_t bits = generator();
    for (size_t j = 0; j < 16; ++j, bits >>= 4) id[i + j] = kHex[bits & 15];
  }
  return id;
}

// The simulator serves each open connection on a thread of its own. Tasks that close their
// connection need one thread per worker (and a spare for a connect racing a close); when
// connections outlive their tasks, enough for dozens of them, so that leaked connections cost CPU
// but never starve later runs. A pool no larger than needed also keeps RSS flat sooner: every pool
// thread that ever served a request keeps its stack pages and allocator state.
int AutomaticSimulatorThreads(const BacktestServiceOptions& options) {
  constexpr int kLeakedConnectionHeadroom = 64;
  return options.workers + 2 +
         (TaskSeams::ConnectionsOutliveTasks(options.faults) ? kLeakedConnectionHeadroom : 0);
}

void Log(const std::string& line) {
  // One write per line, so that lines of concurrent tasks do not interleave.
  const std::string text = "backtest_server: " + line + "\n";
  (void)!::write(STDERR_FILENO, text.data(), text.size());
}

}  // namespace

// --- State ---------------------------------------------------------------------------------------

struct BacktestService::State {
  BacktestServiceOptions options;
  std::unique_ptr<BacktestRepository> api_repository;
  std::unique_ptr<ExchangeSimulator> simulator;
  std::string exchange_url;
  TaskSeams seams;
  std::unique_ptr<WorkerPool> pool;
  httplib::Server server;
  std::thread listener;
  int port = 0;

  std::atomic<int64_t> tasks_done{0};
  std::atomic<int64_t> tasks_failed{0};
  std::atomic<int64_t> rejected_bad_request{0};
  std::atomic<int64_t> rejected_queue_full{0};

  std::mutex shutdown_mutex;
  std::optional<ShutdownReport> shutdown_report;
  bool abandoned = false;

  void RunTask(QueuedTask& task);
  void InstallRoutes();
  void HandleSubmit(const httplib::Request& request, httplib::Response& response);
  void HandleGet(const httplib::Request& request, httplib::Response& response);
  void HandleTrades(const httplib::Request& request, httplib::Response& response);
  void HandleList(const httplib::Request& request, httplib::Response& response);
  void HandleHealth(const httplib::Request& request, httplib::Response& response);
  void HandleMetrics(const httplib::Request& request, httplib::Response& response);
};

void BacktestService::State::RunTask(QueuedTask& task) {
  const TaskOutcome outcome =
      RunBacktestTask(task.session_id, task.request, seams, *api_repository);
  // What the task freed is handed back: the worker's allocator cache and the allocator's free
  // pages, so that RSS after a run reflects what is still in use.
  ReleaseThreadHeapCache();
  ReleaseFreeHeapMemory();
  if (outcome.status == SessionStatus::kDone) {
    tasks_done.fetch_add(1);
    Log("session " + task.session_id + " done in " + std::to_string(outcome.duration.count()) +
        " ms: " + std::to_string(outcome.bars) + " bars, " + std::to_string(outcome.trades) +
        " trades");
  } else {
    tasks_failed.fetch_add(1);
    Log("session " + task.session_id + " failed after " + std::to_string(outcome.duration.count()) +
        " ms: " + outcome.error);
  }
}

void BacktestService::State::InstallRoutes() {
  server.Post("/api/backtest",
              [this](const httplib::Request& request, httplib::Response& response) {
                HandleSubmit(request, response);
              });
  server.Get("/api/backtest", [this](const httplib::Request& request, httplib::Response& response) {
    HandleList(request, response);
  });
  server.Get(std::string("/api/backtest/") + kSessionIdPattern,
             [this](const httplib::Request& request, httplib::Response& response) {
               HandleGet(request, response);
             });
  server.Get(std::string("/api/backtest/") + kSessionIdPattern + "/trades",
             [this](const httplib::Request& request, httplib::Response& response) {
               HandleTrades(request, response);
             });
  server.Get("/healthz", [this](const httplib::Request& request, httplib::Response& response) {
    HandleHealth(request, response);
  });
  server.Get("/metrics", [this](const httplib::Request& request, httplib::Response& response) {
    HandleMetrics(request, response);
  });
  // httplib calls this for every response of status 400 or more; only those without a body of their
  // own (no route, payload too large, ...) get one here.
  server.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return;
    if (response.status == 404) {
      SendError(response, 404,
                "no endpoint " + request.method + " " + request.path +
                    "; this service serves POST /api/backtest, GET /api/backtest[/{id}[/trades]], "
                    "GET /healthz and GET /metrics");
    } else {
      SendError(response, response.status,
                "HTTP " + std::to_string(response.status) + " for " + request.method + " " +
                    request.path);
    }
  });
  // Requests rotate over the pool's threads; without this each of them would keep an allocator
  // cache of its own and RSS would climb for as many requests as there are threads.
  server.set_post_routing_handler(
      [](const httplib::Request&, httplib::Response&) { ReleaseThreadHeapCache(); });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(response, 500, "internal error: " + what);
      });
}

void BacktestService::State::HandleSubmit(const httplib::Request& request,
                                          httplib::Response& response) {
  std::expected<BacktestRequest, RequestError> parsed =
      ParseBacktestRequest(request.body, options.max_bars);
  if (!parsed) {
    rejected_bad_request.fetch_add(1);
    SendError(response, 400, parsed.error().message, parsed.error().field);
    return;
  }
  switch (pool->Reserve()) {
    case WorkerPool::Admission::kClosed:
      SendError(response, 503, "the service is shutting down and accepts no new backtests");
      return;
    case WorkerPool::Admission::kFull:
      rejected_queue_full.fetch_add(1);
      response.set_header("Retry-After", "1");
      SendError(response, 429,
                "the backtest queue is full (" + std::to_string(pool->capacity()) + " waiting, " +
                    std::to_string(pool->workers()) +
                    " running); retry when a session has finished");
      return;
    case WorkerPool::Admission::kReserved:
      break;
  }
  const std::string id = NewSessionId();
  if (Result<void> created = api_repository->CreateSession(id, parsed->ToJson()); !created) {
    pool->Cancel();
    SendError(response, 500, "the session could not be stored: " + created.error().message);
    return;
  }
  if (!pool->Commit(QueuedTask{id, *std::move(parsed)})) {
    (void)api_repository->UpdateStatus(id, SessionStatus::kFailed,
                                       "the server shut down before the task started");
    SendError(response, 503, "the service is shutting down and accepts no new backtests");
    return;
  }
  response.set_header("Location", "/api/backtest/" + id);
  SendJson(response, 202, {{"session_id", id}, {"status", "queued"}});
}

void BacktestService::State::HandleGet(const httplib::Request& request,
                                       httplib::Response& response) {
  const std::string id = request.matches[1];
  Result<std::optional<SessionRecord>> record = api_repository->GetSession(id);
  if (!record) {
    SendError(response, 500, record.error().message);
    return;
  }
  if (!record->has_value()) {
    SendError(response, 404, "no backtest session '" + id + "'");
    return;
  }
  json out = SessionSummaryJson(**record);
  if ((*record)->status == SessionStatus::kDone) {
    Result<std::optional<Statistics>> stats = api_repository->LoadResult(id);
    if (stats && stats->has_value()) out["statistics"] = StatisticsToJson(**stats);
  }
  SendJson(response, 200, out);
}

void BacktestService::State::HandleTrades(const httplib::Request& request,
                                          httplib::Response& response) {
  const std::string id = request.matches[1];
  auto limit = QueryInteger(request, "limit", INT64_MAX, INT64_MAX);
  auto offset = QueryInteger(request, "offset", 0, INT64_MAX);
  if (!limit || !offset) {
    SendError(response, 400, !limit ? limit.error() : offset.error(), !limit ? "limit" : "offset");
    return;
  }
  Result<std::optional<SessionRecord>> record = api_repository->GetSession(id);
  if (record && !record->has_value()) {
    SendError(response, 404, "no backtest session '" + id + "'");
    return;
  }
  Result<std::vector<Trade>> trades = api_repository->LoadTrades(id);
  if (!record || !trades) {
    SendError(response, 500, !record ? record.error().message : trades.error().message);
    return;
  }
  json list = json::array();
  const int64_t total = static_cast<int64_t>(trades->size());
  for (int64_t i = std::min(*offset, total); i < total && i - *offset < *limit; ++i) {
    list.push_back(TradeToJson((*trades)[static_cast<size_t>(i)]));
  }
  SendJson(response, 200,
           {{"session_id", id},
            {"status", SessionStatusName((*record)->status)},
            {"total", total},
            {"offset", *offset},
            {"trades", std::move(list)}});
}

void BacktestService::State::HandleList(const httplib::Request& request,
                                        httplib::Response& response) {
  auto limit = QueryInteger(request, "limit", kDefaultListLimit, kMaxListLimit);
  auto offset = QueryInteger(request, "offset", 0, INT64_MAX);
  if (!limit || !offset) {
    SendError(response, 400, !limit ? limit.error() : offset.error(), !limit ? "limit" : "offset");
    return;
  }
  std::optional<SessionStatus> status;
  if (request.has_param("status")) {
    Result<SessionStatus> parsed = ParseSessionStatus(request.get_param_value("status"));
    if (!parsed) {
      SendError(response, 400, parsed.error().message, "status");
      return;
    }
    status = *parsed;
  }
  Result<std::vector<SessionRecord>> sessions =
      api_repository->ListSessions(*limit, *offset, status);
  Result<int64_t> total = api_repository->CountSessions(status);
  if (!sessions || !total) {
    SendError(response, 500, !sessions ? sessions.error().message : total.error().message);
    return;
  }
  json list = json::array();
  for (const SessionRecord& record : *sessions) list.push_back(SessionSummaryJson(record));
  SendJson(
      response, 200,
      {{"total", *total}, {"limit", *limit}, {"offset", *offset}, {"sessions", std::move(list)}});
}

void BacktestService::State::HandleHealth(const httplib::Request&, httplib::Response& response) {
  SendJson(response, 200,
           {{"status", "ok"},
            {"pid", ::getpid()},
            {"faults", seams.faults.ToString()},
            {"exchange_url", exchange_url},
            {"exchange_simulated", simulator != nullptr},
            {"workers", pool->workers()},
            {"queue_capacity", pool->capacity()},
            {"heartbeat_ms", options.heartbeat_interval.count()},
            {"heap_stats", HeapStatsAvailable()}});
}

void BacktestService::State::HandleMetrics(const httplib::Request&, httplib::Response& response) {
  // Read first, before this handler's own allocations.
  const HeapStats heap = ReadHeapStats();
  const ProcessSelf self = ReadProcessSelf();
  PrometheusText text;
  auto optional_gauge = [&](std::string_view name, std::string_view help, const auto& value) {
    if (value.has_value()) text.Gauge(name, help, static_cast<double>(*value));
  };
  optional_gauge("backtest_process_resident_bytes", "Resident set size (VmRSS).",
                 self.resident_bytes);
  optional_gauge("backtest_process_peak_resident_bytes", "Peak resident set size (VmHWM).",
                 self.peak_resident_bytes);
  optional_gauge("backtest_process_open_fds", "Open file descriptors.", self.open_fds);
  optional_gauge("backtest_process_socket_fds", "Open file descriptors that are sockets.",
                 self.socket_fds);
  optional_gauge("backtest_process_threads", "Threads of the process.", self.threads);
  if (self.cpu_seconds) {
    text.Family("backtest_process_cpu_seconds_total", "counter", "User plus system CPU time.");
    text.Sample(*self.cpu_seconds);
  }

  if (heap.available()) {
    optional_gauge("backtest_heap_allocated_bytes",
                   "Bytes allocated and not freed (tcmalloc generic.current_allocated_bytes).",
                   heap.allocated_bytes);
    optional_gauge("backtest_heap_size_bytes", "Bytes the allocator holds (generic.heap_size).",
                   heap.heap_size_bytes);
    optional_gauge("backtest_heap_pageheap_free_bytes",
                   "Free mapped bytes in the page heap (tcmalloc.pageheap_free_bytes).",
                   heap.pageheap_free_bytes);
    optional_gauge("backtest_heap_pageheap_unmapped_bytes",
                   "Free bytes returned to the system (tcmalloc.pageheap_unmapped_bytes).",
                   heap.pageheap_unmapped_bytes);
  } else {
    text.Comment("backtest_heap_* omitted: tcmalloc is not this process's allocator");
  }

  text.Family("backtest_sessions", "gauge", "Sessions in the database by status.");
  for (SessionStatus status : {SessionStatus::kQueued, SessionStatus::kRunning,
                               SessionStatus::kDone, SessionStatus::kFailed}) {
    Result<int64_t> count = api_repository->CountSessions(status);
    if (count)
      text.Sample(static_cast<double>(*count),
                  {{"status", std::string(SessionStatusName(status))}});
  }
  text.Gauge("backtest_queue_depth", "Tasks waiting for a worker.",
             static_cast<double>(pool->queued()));
  text.Gauge("backtest_queue_capacity", "Tasks that may wait before requests are refused with 429.",
             pool->capacity());
  text.Gauge("backtest_workers", "Worker threads.", static_cast<double>(pool->workers()));
  text.Gauge("backtest_workers_busy", "Workers running a task.",
             static_cast<double>(pool->running()));
  text.Family("backtest_tasks_finished_total", "counter",
              "Tasks finished since start, by outcome.");
  text.Sample(static_cast<double>(tasks_done.load()), {{"outcome", "done"}});
  text.Sample(static_cast<double>(tasks_failed.load()), {{"outcome", "failed"}});
  text.Family("backtest_requests_rejected_total", "counter",
              "Backtest requests refused, by reason.");
  text.Sample(static_cast<double>(rejected_bad_request.load()), {{"reason", "bad_request"}});
  text.Sample(static_cast<double>(rejected_queue_full.load()), {{"reason", "queue_full"}});

  text.Family("backtest_fault_enabled", "gauge", "Seeded faults switched on (1) or off (0).");
  for (Fault fault : kAllFaults) {
    text.Sample(seams.faults.Has(fault) ? 1 : 0, {{"fault", std::string(FaultName(fault))}});
  }
  text.Gauge("backtest_engine_sessions_kept",
             "Sessions whose klines and results a server-lifetime engine keeps (singleton).",
             static_cast<double>(seams.factory->sessions_kept()));
  text.Gauge("backtest_engine_klines_kept", "Klines kept by a server-lifetime engine (singleton).",
             static_cast<double>(seams.factory->klines_kept()));
  text.Gauge("backtest_task_registry_entries",
             "Finished tasks whose components, klines and results are still held (no-cleanup).",
             static_cast<double>(seams.retention->tasks_retained()));
  text.Gauge("backtest_exchange_client_cache_entries",
             "Exchange adapters kept alive by the client cache (unclosed-connection).",
             static_cast<double>(seams.connector->cached_clients()));
  text.Gauge("backtest_windows_retained",
             "Kline windows tied to their strategy in a reference cycle (loop-retain).",
             static_cast<double>(seams.windows_retained->load()));
  if (simulator != nullptr) {
    text.Family("backtest_simulator_candle_requests_total", "counter",
                "Candle pages the in-process exchange served.");
    text.Sample(static_cast<double>(simulator->candle_requests()));
    text.Family("backtest_simulator_pings_total", "counter",
                "Pings (heartbeats) the in-process exchange answered.");
    text.Sample(static_cast<double>(simulator->pings()));
  }
  response.status = 200;
  response.set_content(text.str(), "text/plain; version=0.0.4");
}

// --- BacktestService -----------------------------------------------------------------------------

BacktestService::BacktestService(std::unique_ptr<State> state) : state_(std::move(state)) {}

BacktestService::~BacktestService() {
  Shutdown();
  // Abandoned tasks still run on detached workers and use the state: it must stay allocated.
  if (state_ != nullptr && state_->abandoned) (void)state_.release();
}

Result<std::unique_ptr<BacktestService>> BacktestService::Start(BacktestServiceOptions options) {
  if (options.workers < 1 || options.workers > 256) {
    return Fail(ErrorCode::kInvalidArgument,
                "--workers " + std::to_string(options.workers) + " is outside 1..256");
  }
  if (options.queue_capacity < 0 || options.queue_capacity > 100000) {
    return Fail(ErrorCode::kInvalidArgument,
                "--queue " + std::to_string(options.queue_capacity) + " is outside 0..100000");
  }
  if (options.max_bars < kMinBars) {
    return Fail(ErrorCode::kInvalidArgument, "--max-bars " + std::to_string(options.max_bars) +
                                                 " is below the smallest backtest (" +
                                                 std::to_string(kMinBars) + " bars)");
  }
  if (options.http_threads < 1 || options.simulator_threads < 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "--http-threads must be at least 1 and --simulator-threads at least 0 (automatic)");
  }
  if (options.port < 0 || options.port > 65535) {
    return Fail(ErrorCode::kInvalidArgument,
                "--port " + std::to_string(options.port) + " is outside 0..65535");
  }

  auto state = std::make_unique<State>();
  state->options = options;

  Result<std::unique_ptr<BacktestRepository>> repository =
      BacktestRepository::Open(options.db_path);
  if (!repository) return std::unexpected(repository.error());
  state->api_repository = *std::move(repository);
  Result<int64_t> interrupted = state->api_repository->MarkInterrupted();
  if (!interrupted) return std::unexpected(interrupted.error());
  if (*interrupted > 0) {
    Log(std::to_string(*interrupted) +
        " session(s) left queued or running by an earlier process marked failed (interrupted)");
  }

  if (options.exchange_url.empty()) {
    ExchangeSimulatorOptions simulator;
    simulator.host = "127.0.0.1";
    simulator.worker_threads = options.simulator_threads > 0 ? options.simulator_threads
                                                             : AutomaticSimulatorThreads(options);
    simulator.latency = options.simulator_latency;
    state->simulator = std::make_unique<ExchangeSimulator>(simulator);
    if (Result<void> started = state->simulator->Start(); !started) {
      return std::unexpected(started.error());
    }
    state->exchange_url = state->simulator->base_url();
  } else {
    Result<HttpBaseUrl> url = ParseHttpBaseUrl(options.exchange_url);
    if (!url) {
      return Fail(ErrorCode::kInvalidArgument, "--exchange-url: " + url.error().message);
    }
    state->exchange_url = url->ToString();
  }

  TaskSeamOptions seam_options;
  seam_options.components.db_path = options.db_path;
  seam_options.components.provider.max_bars = options.max_bars;
  seam_options.adapter.base_url = state->exchange_url;
  seam_options.adapter.heartbeat_interval = options.heartbeat_interval;
  state->seams = TaskSeams::Make(seam_options, options.faults);

  State* raw = state.get();
  state->pool = std::make_unique<WorkerPool>(options.workers, options.queue_capacity,
                                             [raw](QueuedTask& task) { raw->RunTask(task); });

  httplib::Server& server = state->server;
  const int http_threads = options.http_threads;
  server.new_task_queue = [http_threads] { return new httplib::ThreadPool(http_threads); };
  // Without TCP_NODELAY each keep-alive response waits for the client's delayed ACK (about 40 ms).
  server.set_tcp_nodelay(true);
  // stop() waits for idle keep-alive connections to time out: keep that short.
  server.set_keep_alive_timeout(std::max(1, options.keep_alive_timeout_s));
  server.set_payload_max_length(kMaxRequestBodyBytes);
  state->InstallRoutes();

  int port = 0;
  if (options.port == 0) {
    port = server.bind_to_any_port(options.host);
  } else if (server.bind_to_port(options.host, options.port)) {
    port = options.port;
  } else {
    port = -1;
  }
  if (port <= 0) {
    return Fail(
        ErrorCode::kUnavailable,
        "cannot listen on " + options.host + ":" + std::to_string(options.port) +
            " (address in use, or not an address of this machine); --port 0 picks a free port");
  }
  state->port = port;
  auto listener_done = std::make_shared<std::atomic<bool>>(false);
  state->listener = std::thread([&server, listener_done] {
    server.listen_after_bind();
    listener_done->store(true);
  });
  // httplib 0.11 has no "wait until ready": is_running() turns true once the accept loop runs.
  while (!server.is_running() && !listener_done->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running()) {
    state->listener.join();
    return Fail(ErrorCode::kInternal,
                "the HTTP server could not listen on " + options.host + ":" + std::to_string(port));
  }
  Log("serving on http://" + options.host + ":" + std::to_string(port) + " with faults " +
      options.faults.ToString() + ", exchange " + state->exchange_url);
  return std::unique_ptr<BacktestService>(new BacktestService(std::move(state)));
}

ShutdownReport BacktestService::Shutdown() {
  State& s = *state_;
  std::lock_guard lock(s.shutdown_mutex);
  if (s.shutdown_report) return *s.shutdown_report;
  ShutdownReport report;

  // Stop accepting; returns once the listener and every connection thread have finished.
  s.server.stop();
  if (s.listener.joinable()) s.listener.join();

  for (const QueuedTask& task : s.pool->Close()) {
    (void)s.api_repository->UpdateStatus(task.session_id, SessionStatus::kFailed,
                                         "the server shut down before the task started");
    ++report.queued_failed;
  }
  const std::vector<std::string> running = s.pool->RunningSessions();
  if (s.pool->WaitUntilIdle(Clock::now() + s.options.shutdown_grace)) {
    report.finished_during_grace = static_cast<int64_t>(running.size());
    s.pool->Join();
    {
      // Releases what the faults kept (in the order ~TaskSeams documents), closing leaked
      // connections before their exchange goes away.
      TaskSeams released = std::move(s.seams);
    }
    if (s.simulator != nullptr) s.simulator->Stop();
  } else {
    for (const std::string& id : s.pool->RunningSessions()) {
      (void)s.api_repository->UpdateStatus(id, SessionStatus::kFailed,
                                           "interrupted: the server shut down while the task ran");
      ++report.abandoned;
    }
    report.finished_during_grace = static_cast<int64_t>(running.size()) - report.abandoned;
    s.pool->Detach();
    s.abandoned = true;
  }
  (void)s.api_repository->Close();
  Log("shut down: " + std::to_string(report.finished_during_grace) + " task(s) finished, " +
      std::to_string(report.queued_failed) + " queued task(s) failed, " +
      std::to_string(report.abandoned) + " abandoned");
  s.shutdown_report = report;
  return report;
}

const std::string& BacktestService::host() const { return state_->options.host; }
int BacktestService::port() const { return state_->port; }
std::string BacktestService::exchange_url() const { return state_->exchange_url; }
const BacktestServiceOptions& BacktestService::options() const { return state_->options; }

}  // namespace leakgate::engine
