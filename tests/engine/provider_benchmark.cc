// Throughput of market data over loopback HTTP: the simulator serving candle pages, and the
// provider fetching, parsing and assembling a long 1m series page by page.
#include <benchmark/benchmark.h>
#include <httplib.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "engine/data_provider.h"
#include "engine/exchange_adapter.h"
#include "engine/exchange_simulator.h"

namespace leakgate::engine {
namespace {

constexpr int64_t kMinute = 60'000;
constexpr int64_t kT0 = 1'704'067'200'000;  // 2024-01-01T00:00:00Z

// CPU time of the whole process (all threads: the provider's and the simulator's), in seconds.
double ProcessCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// One simulator for the whole program, started on first use.
ExchangeSimulator& Simulator() {
  static ExchangeSimulator* simulator = [] {
    auto* s = new ExchangeSimulator();
    if (Result<void> started = s->Start(); !started) {
      fprintf(stderr, "cannot start the exchange simulator: %s\n",
              started.error().ToString().c_str());
      std::abort();
    }
    return s;
  }();
  return *simulator;
}

// The provider end to end: FetchKlines of state.range(0) 1m bars, 1000 per page, on one kept-open
// connection (the first iteration also connects).
void BM_ProviderFetch1mBars(benchmark::State& state) {
  const int64_t bars = state.range(0);
  HistoricalDataProviderOptions options;
  options.adapter.base_url = Simulator().base_url();
  HistoricalDataProvider provider(options);
  int64_t fetched = 0;
  int64_t offset = 0;
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    // A different range each time, as consecutive backtests would ask for.
    const int64_t start = kT0 + offset * kMinute;
    Result<KlineSeries> series =
        provider.FetchKlines("BTCUSDT", "1m", start, start + bars * kMinute);
    if (!series) {
      state.SkipWithError(series.error().ToString().c_str());
      break;
    }
    fetched += static_cast<int64_t>(series->size());
    benchmark::DoNotOptimize(series->data());
    offset += bars;
  }
  const double cpu_seconds = ProcessCpuSeconds() - cpu_before;
  state.counters["bars"] =
      benchmark::Counter(static_cast<double>(fetched), benchmark::Counter::kIsRate);
  // Bars per second of CPU spent by both ends together (provider and simulator threads): steadier
  // than the wall-clock rate on a busy machine.
  state.counters["bars_per_cpu_s"] =
      benchmark::Counter(cpu_seconds > 0 ? static_cast<double>(fetched) / cpu_seconds : 0);
  state.counters["pages_per_fetch"] =
      benchmark::Counter(static_cast<double>(provider.last_fetch_stats().pages));
}
BENCHMARK(BM_ProviderFetch1mBars)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The simulator alone: one page of state.range(0) rows over a keep-alive connection, body unparsed.
void BM_SimulatorCandlePage(benchmark::State& state) {
  const int64_t limit = state.range(0);
  httplib::Client client("127.0.0.1", Simulator().port());
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  client.set_default_headers({{"Accept-Encoding", "identity"}});
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t page = 0;
  for (auto _ : state) {
    const int64_t start = kT0 + page * limit * kMinute;
    const std::string path = "/api/v2/mix/market/candles?symbol=BTCUSDT&granularity=1m&startTime=" +
                             std::to_string(start) +
                             "&endTime=" + std::to_string(start + (limit - 1) * kMinute) +
                             "&limit=" + std::to_string(limit);
    httplib::Result result = client.Get(path);
    if (!result || result->status != 200) {
      state.SkipWithError("candle page request failed");
      break;
    }
    rows += limit;
    bytes += static_cast<int64_t>(result->body.size());
    ++page;
  }
  state.counters["rows"] =
      benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_SimulatorCandlePage)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// A ping on the adapter's session: the cost of one keep-alive round trip.
void BM_AdapterPing(benchmark::State& state) {
  ExchangeAdapterOptions options;
  options.base_url = Simulator().base_url();
  options.heartbeat_interval = std::chrono::milliseconds(0);
  ExchangeAdapter adapter(options);
  if (Result<void> connected = adapter.Connect(); !connected) {
    state.SkipWithError(connected.error().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    Result<HttpResponse> response = adapter.Get("/api/v2/public/time");
    if (!response || response->status != 200) {
      state.SkipWithError("ping failed");
      break;
    }
  }
}
BENCHMARK(BM_AdapterPing)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace leakgate::engine
