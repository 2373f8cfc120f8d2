// Throughput of the backtest engine's per-window loop (a window and a strategy built, used and
// released for every bar) on a million synthetic one-minute bars, and of generating those bars.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/backtest_engine.h"
#include "engine/synthetic_market.h"

namespace leakgate::engine {
namespace {

constexpr int64_t kMinute = 60'000;
constexpr int64_t kT0 = 1'704'067'200'000;  // 2024-01-01T00:00:00Z
constexpr int64_t kMillionBars = 1'000'000;

Result<KlineSeries> GenerateMinuteBars(int64_t count) {
  return SyntheticMarket().Generate("BTCUSDT", Timeframe{"1m", kMinute}, kT0,
                                    kT0 + count * kMinute);
}

// Generated once per program, outside every timed region.
const KlineSeries& MillionMinuteBars() {
  static const KlineSeries bars = [] {
    Result<KlineSeries> generated = GenerateMinuteBars(kMillionBars);
    if (!generated) {
      fprintf(stderr, "cannot generate the benchmark bars: %s\n",
              generated.error().ToString().c_str());
      std::abort();
    }
    return *std::move(generated);
  }();
  return bars;
}

// One full backtest per iteration: default parameters, window 51, warmup 50, equity curve recorded.
void BM_EngineRun(benchmark::State& state, const std::string& strategy) {
  const KlineSeries& bars = MillionMinuteBars();
  BacktestConfig config;
  config.strategy = strategy;
  BacktestEngine engine;
  int64_t trades = 0;
  for (auto _ : state) {
    Result<BacktestResult> result = engine.Run(bars, config);
    if (!result) {
      state.SkipWithError(result.error().ToString().c_str());
      return;
    }
    trades = result->stats.trades;
    benchmark::DoNotOptimize(result->stats.final_equity);
  }
  state.counters["bars_per_second"] =
      benchmark::Counter(static_cast<double>(bars.size()) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
  state.counters["trades"] = static_cast<double>(trades);
}
BENCHMARK_CAPTURE(BM_EngineRun, sma_cross, std::string("sma_cross"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EngineRun, rsi, std::string("rsi"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EngineRun, bollinger, std::string("bollinger"))->Unit(benchmark::kMillisecond);

// The per-window path alone: window, factory, Decide, release. No account, no statistics.
void BM_WindowAndStrategy(benchmark::State& state, const std::string& strategy) {
  const KlineSeries& bars = MillionMinuteBars();
  const std::span<const Kline> all(bars);
  Result<StrategyParams> params = ValidateStrategy(strategy, {}, 51);
  if (!params) {
    state.SkipWithError(params.error().ToString().c_str());
    return;
  }
  size_t i = 50;
  int64_t buys = 0;
  for (auto _ : state) {
    auto window = std::make_shared<KlineWindow>(KlineWindow{all.subspan(i - 50, 51), nullptr});
    Result<std::shared_ptr<Strategy>> built = GetStrategy(strategy, window, *params);
    buys += (*built)->Decide() == Signal::kBuy;
    if (++i == all.size()) i = 50;
  }
  benchmark::DoNotOptimize(buys);
  state.counters["windows_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_WindowAndStrategy, sma_cross, std::string("sma_cross"));
BENCHMARK_CAPTURE(BM_WindowAndStrategy, rsi, std::string("rsi"));
BENCHMARK_CAPTURE(BM_WindowAndStrategy, bollinger, std::string("bollinger"));

// Generating state.range(0) one-minute bars of the synthetic market.
void BM_SyntheticMinuteBars(benchmark::State& state) {
  const int64_t count = state.range(0);
  for (auto _ : state) {
    Result<KlineSeries> bars = GenerateMinuteBars(count);
    if (!bars) {
      state.SkipWithError(bars.error().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(bars->back().close);
  }
  state.counters["bars_per_second"] =
      benchmark::Counter(static_cast<double>(count) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SyntheticMinuteBars)->Arg(kMillionBars)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace leakgate::engine
