// A local stand-in for an exchange's public market-data REST API: an HTTP server on the loopback
// interface that answers in the shape of Bitget's v2 candles API.
//
// Endpoints:
//   GET /api/v2/mix/market/candles?symbol=S&granularity=G&startTime=T0&endTime=T1[&limit=N]
//                                  [&productType=P]
//     200 {"code":"00000","msg":"success","requestTime":<ms>,"data":[row,...]}
//     where each row is an array of seven strings
//       [ts, open, high, low, close, baseVolume, quoteVolume]
//     The rows are the bars with T0 <= ts <= T1 (both bounds inclusive); of those, the EARLIEST N
//     rows are returned, in ascending time order (N defaults to 100, at most 1000). A client pages
//     forward by asking again from the last timestamp plus one bar. Numbers are written in the
//     shortest form that reads back to the same double, so a client sees exactly the bars the
//     market holds. Errors are HTTP 400 with a JSON body whose "code" is not "00000" and whose
//     "msg" names the offending parameter: "40019" a required parameter is missing, "40020" a
//     parameter has a bad value (non-integer or negative time, endTime < startTime, unknown
//     granularity, limit outside 1..1000, unknown productType, a CSV-backed symbol asked at another
//     granularity), "40034" the symbol does not exist.
//   GET /api/v2/public/time
//     200 {"code":"00000","msg":"success","requestTime":<ms>,"data":{"serverTime":"<ms>"}}
//     The endpoint clients ping to keep a session alive.
//
// Market data comes from CSV files (one symbol each, loaded at Start() with LoadKlinesCsv and
// served only at the granularity matching the file's bar spacing, or the one configured for it)
// and, for any other symbol matching [A-Z0-9]{2,20} (or only those on an allow-list when one is
// configured), from a deterministic SyntheticMarket.
//
// Faults for tests are injected into candle requests only (pings always answer): added latency,
// transient failures (the first N requests, every Nth request, or a seeded probability: HTTP 503 or
// 502 with a JSON body), a permanent failure (every candle request answers with a fixed status and
// code), and duplicated or shuffled rows inside a page.
//
// Ownership and threading: the simulator owns its server, its listener thread and the server's
// worker threads; Stop() (also run by the destructor) joins them all. Start(), Stop() and every
// accessor may be called from any thread; options are fixed at construction.
#ifndef LEAKGATE_ENGINE_EXCHANGE_SIMULATOR_H_
#define LEAKGATE_ENGINE_EXCHANGE_SIMULATOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "engine/kline.h"
#include "engine/synthetic_market.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace leakgate::engine {

// A symbol whose bars come from a CSV file instead of the synthetic market.
struct CsvSymbolSource {
  std::string symbol;  // as clients spell it in ?symbol=, matched exactly
  std::string path;    // file read with LoadKlinesCsv
  // The granularity the file is served at ("1D", ...). Empty: inferred from the smallest gap
  // between consecutive bars, which must equal a known timeframe.
  std::string granularity;
};

struct ExchangeSimulatorOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port, see port() after Start()

  // Synthetic market data. With `serve_synthetic` false only CSV symbols exist.
  bool serve_synthetic = true;
  SyntheticMarketOptions market;
  // When not empty, the only symbols the synthetic market serves.
  std::vector<std::string> symbol_allow_list;
  std::vector<CsvSymbolSource> csv_sources;

  // Added to every request (candles and pings) before it is answered.
  std::chrono::milliseconds latency{0};

  // Transient failures of candle requests, answered with `transient_failure_status` (503 or 502)
  // and a JSON body. Requests are numbered from 1 in arrival order; a request fails when any rule
  // hits.
  int transient_failure_status = 503;
  int64_t fail_first_n_candle_requests = 0;
  int64_t fail_every_nth = 0;      // 0: off; 3 fails requests 3, 6, 9, ...
  double failure_probability = 0;  // 0..1, decided per request from `seed` and the request number
  uint64_t seed = 7;               // for failure_probability and shuffle_rows

  // A permanent failure: when `permanent_failure_status` is not 0, every candle request is answered
  // with that status and a body carrying `permanent_failure_code` and `permanent_failure_msg`.
  int permanent_failure_status = 0;
  std::string permanent_failure_code = "40010";
  std::string permanent_failure_msg = "request rejected by the exchange";

  // Page irregularities a client must cope with: every row sent twice; rows in a seeded random
  // order.
  bool duplicate_rows = false;
  bool shuffle_rows = false;

  // Idle keep-alive connections are closed after this long; also bounds how long Stop() waits for
  // an idle client that keeps its connection open.
  std::chrono::seconds keep_alive_timeout{1};
  // Each open connection occupies one worker for as long as it stays open (a client that keeps its
  // session alive with heartbeats holds one for good); a connection beyond this many waits until
  // another closes. Sized for a few dozen sessions left open at once.
  int worker_threads = 32;
};

class ExchangeSimulator {
 public:
  static constexpr int kDefaultLimit = 100;
  static constexpr int kMaxLimit = 1000;
  static constexpr std::string_view kCandlesPath = "/api/v2/mix/market/candles";
  static constexpr std::string_view kServerTimePath = "/api/v2/public/time";

  explicit ExchangeSimulator(ExchangeSimulatorOptions options = {});
  ~ExchangeSimulator();  // Stop()

  ExchangeSimulator(const ExchangeSimulator&) = delete;
  ExchangeSimulator& operator=(const ExchangeSimulator&) = delete;

  // Loads the CSV sources, binds host:port, starts the listener thread and returns once the server
  // accepts connections. Errors: a CSV file that cannot be loaded or whose spacing matches no
  // timeframe (the loader's error, or kInvalidArgument naming the file), a port that cannot be
  // bound (kUnavailable), a server that fails to listen (kInternal). Calling Start() while running
  // is a no-op; after Stop() it starts again (on a new port when `port` is 0).
  Result<void> Start();

  // Stops accepting, closes connections and joins the server's threads. Idempotent; safe when
  // Start() was never called or failed.
  void Stop();

  bool IsRunning() const;

  // The bound port (0 when not running) and "http://host:port".
  int port() const { return port_.load(); }
  std::string base_url() const;

  const ExchangeSimulatorOptions& options() const { return options_; }

  // Counted since construction.
  uint64_t candle_requests() const { return candle_requests_.load(); }
  uint64_t pings() const { return pings_.load(); }
  uint64_t failures_injected() const { return failures_injected_.load(); }
  uint64_t bad_requests() const { return bad_requests_.load(); }  // answered with 4xx by validation

 private:
  struct CsvSeries {
    Timeframe timeframe;
    KlineSeries bars;
  };

  void HandleCandles(const httplib::Request& request, httplib::Response& response);
  void HandleServerTime(const httplib::Request& request, httplib::Response& response);
  // Returns true (and fills `response`) when a fault is injected into candle request `number`.
  bool InjectFailure(uint64_t number, httplib::Response& response);

  const ExchangeSimulatorOptions options_;
  const SyntheticMarket market_;

  mutable std::mutex lifecycle_mutex_;  // Start / Stop
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  // Written by Start() before the server runs, read by handlers afterwards.
  std::map<std::string, CsvSeries, std::less<>> csv_series_;

  std::atomic<int> port_{0};
  std::atomic<uint64_t> candle_requests_{0};
  std::atomic<uint64_t> pings_{0};
  std::atomic<uint64_t> failures_injected_{0};
  std::atomic<uint64_t> bad_requests_{0};
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_EXCHANGE_SIMULATOR_H_
