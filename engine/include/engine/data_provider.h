// Historical klines fetched from an exchange's candles API through an `ExchangeAdapter`.
//
// `HistoricalDataProvider::FetchKlines` validates the request, connects lazily, pages through
// GET /api/v2/mix/market/candles (page_limit rows a page, each page asked from one bar after the
// latest timestamp seen so far), retries transient failures (HTTP 5xx, 408 or 429, refused or
// reset connections, timeouts) with doubling backoff, and reports permanent ones (other 4xx, or a
// body whose "code" is not "00000") at once with the exchange's code and message and the URL. Rows
// are parsed, rows outside [start, end) dropped, and the result sorted and de-duplicated by
// timestamp. Each page's body lives only while that page is read (as a stream of JSON events,
// without building a document tree); the provider keeps nothing of a fetch but its `FetchStats`.
//
// Ownership: the provider holds a shared reference to its adapter, made from `options.adapter` or
// injected by the caller. Close() disconnects that adapter and drops the reference; the destructor
// calls Close(). A caller that keeps its own reference to an injected adapter keeps the adapter
// object alive, but not its connection, after Close(). A FetchKlines after Close() connects again
// with a new adapter made from `options.adapter`.
//
// Thread-safety: all methods may be called from any thread; FetchKlines, Close and the accessors
// are serialized by one mutex, so Close() waits for a fetch in progress.
#ifndef LEAKGATE_ENGINE_DATA_PROVIDER_H_
#define LEAKGATE_ENGINE_DATA_PROVIDER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "engine/error.h"
#include "engine/exchange_adapter.h"
#include "engine/kline.h"

namespace leakgate::engine {

struct HistoricalDataProviderOptions {
  ExchangeAdapterOptions adapter;
  int page_limit = 1000;  // rows asked per page (the API allows 1..1000)
  // Attempts per page beyond the first for transient failures.
  int max_retries = 4;
  std::chrono::milliseconds initial_backoff{20};  // doubled after each retry
  std::chrono::milliseconds max_backoff{1000};
  int64_t max_bars = 5'000'000;  // a range holding more bars is refused before anything is sent
  std::string product_type = "USDT-FUTURES";  // sent as productType; empty: not sent
};

// What the last FetchKlines did (reset at its start, kept after it returns, success or not).
struct FetchStats {
  int64_t pages = 0;               // successful page responses, empty last page included
  int64_t rows = 0;                // rows received, before range filtering and de-duplication
  int64_t duplicates_dropped = 0;  // rows whose timestamp was already present
  int64_t out_of_range_dropped = 0;
  int64_t retries = 0;  // transient failures retried (connects and pages)
  int64_t bars = 0;     // bars returned
};

class HistoricalDataProvider {
 public:
  explicit HistoricalDataProvider(HistoricalDataProviderOptions options,
                                  std::shared_ptr<ExchangeAdapter> adapter = nullptr);
  ~HistoricalDataProvider();  // Close()

  HistoricalDataProvider(const HistoricalDataProvider&) = delete;
  HistoricalDataProvider& operator=(const HistoricalDataProvider&) = delete;

  // Bars of `symbol` at `timeframe_name` (see ParseTimeframe) whose open time t satisfies
  // start_ms <= t < end_ms, strictly increasing by time.
  // Errors: kInvalidArgument for an empty symbol, an unknown timeframe, start_ms >= end_ms (naming
  // both times), a range of more than max_bars bars, a bad page_limit, or a request the exchange
  // rejects; kNotFound for a symbol the exchange does not know (exchange code 40034); kParse for a
  // body or row that cannot be read (naming the page URL and row index); kUnavailable when the
  // exchange cannot be reached or keeps failing after max_retries retries.
  Result<KlineSeries> FetchKlines(std::string_view symbol, std::string_view timeframe_name,
                                  int64_t start_ms, int64_t end_ms);

  // Disconnects the adapter and drops the provider's reference to it. Idempotent.
  void Close();

  // True while the provider holds a connected adapter.
  bool IsConnected() const;

  FetchStats last_fetch_stats() const;
  const HistoricalDataProviderOptions& options() const { return options_; }

 private:
  // Connects the adapter (making one if needed), retrying transient failures.
  Result<void> EnsureConnectedLocked(FetchStats& stats);
  // GET with retries of transient failures; returns the 200 body or the final error.
  Result<std::string> GetPageLocked(const std::string& path, FetchStats& stats);
  void BackoffSleep(int attempt) const;

  const HistoricalDataProviderOptions options_;
  mutable std::mutex mutex_;
  std::shared_ptr<ExchangeAdapter> adapter_;
  FetchStats last_stats_;
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_DATA_PROVIDER_H_
