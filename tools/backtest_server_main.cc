// backtest_server: the backtest HTTP service (see engine/backtest_service.h).
//
// Prints "listening on http://HOST:PORT" as its first line on stdout once it accepts connections,
// logs to stderr, and on SIGTERM or SIGINT shuts down (running tasks get --shutdown-grace-ms to
// finish) and exits 0. Exit status 2 for a bad argument, 1 when the service cannot start.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "engine/backtest_service.h"
#include "engine/faults.h"

int main(int argc, char** argv) {
  using leakgate::engine::BacktestService;
  using leakgate::engine::BacktestServiceOptions;
  using leakgate::engine::FaultSet;

  // Blocked before any thread exists, so every thread inherits the mask and the signals are only
  // ever taken by sigwait below: no work happens in a signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  BacktestServiceOptions options;
  std::string faults = "none";
  int heartbeat_ms = static_cast<int>(options.heartbeat_interval.count());
  int latency_ms = 0;
  int grace_ms = static_cast<int>(options.shutdown_grace.count());

  CLI::App app{"backtest_server: the reference backtest HTTP service"};
  app.add_option("--host", options.host, "address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "port to listen on; 0 picks a free port")
      ->capture_default_str();
  app.add_option("--db", options.db_path, "SQLite database file")->capture_default_str();
  app.add_option("--workers", options.workers, "backtests running at once")->capture_default_str();
  app.add_option("--queue", options.queue_capacity, "backtests waiting before 429")
      ->capture_default_str();
  app.add_option(
      "--exchange-url", options.exchange_url,
      "http://HOST:PORT of the exchange; without it an exchange simulator runs in-process");
  app.add_option("--faults", faults,
                 "none | all | comma-separated list of singleton, no-cleanup, unbatched-klines, "
                 "unclosed-connection, loop-retain")
      ->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "exchange heartbeat interval (0: no heartbeat)")
      ->capture_default_str();
  app.add_option("--max-bars", options.max_bars, "largest range a request may ask for, in bars")
      ->capture_default_str();
  app.add_option("--http-threads", options.http_threads, "HTTP connections served at once")
      ->capture_default_str();
  app.add_option("--simulator-threads", options.simulator_threads,
                 "threads of the in-process exchange simulator, one per open connection (0: "
                 "workers + 2, plus 64 when faults let connections outlive their tasks)")
      ->capture_default_str();
  app.add_option("--simulator-latency-ms", latency_ms,
                 "latency added to every answer of the in-process simulator")
      ->capture_default_str();
  app.add_option("--shutdown-grace-ms", grace_ms, "how long shutdown waits for running backtests")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  auto fault_set = FaultSet::Parse(faults);
  if (!fault_set) {
    std::cerr << "backtest_server: --faults: " << fault_set.error().message << "\n";
    return 2;
  }
  options.faults = *fault_set;
  if (heartbeat_ms < 0 || latency_ms < 0 || grace_ms < 0) {
    std::cerr << "backtest_server: --heartbeat-ms, --simulator-latency-ms and --shutdown-grace-ms "
                 "must not be negative\n";
    return 2;
  }
  options.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  options.simulator_latency = std::chrono::milliseconds(latency_ms);
  options.shutdown_grace = std::chrono::milliseconds(grace_ms);

  auto service = BacktestService::Start(options);
  if (!service) {
    std::cerr << "backtest_server: cannot start: " << service.error().message << "\n";
    return service.error().code == leakgate::engine::ErrorCode::kInvalidArgument ? 2 : 1;
  }
  std::printf("listening on http://%s:%d\n", (*service)->host().c_str(), (*service)->port());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::fprintf(stderr, "backtest_server: %s received, shutting down\n",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  const leakgate::engine::ShutdownReport report = (*service)->Shutdown();
  if (report.abandoned > 0) {
    // Abandoned tasks still run on their threads; their sessions are already marked failed and the
    // database closed, so the process ends here without unwinding what those threads use.
    std::fflush(nullptr);
    std::_Exit(0);
  }
  service->reset();
  return 0;
}
