#include "engine/synthetic_market.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

namespace leakgate::engine {
namespace {

// Bars per block of the log-price walk. Each block's total increment is drawn directly, so reaching
// bar n costs n / kBlockBars draws plus one block of steps.
constexpr int64_t kBlockBars = 1024;
constexpr double kYearMs = 365.0 * 24 * 3600 * 1000;
// The walk is anchored at 2020-01-01T00:00:00Z, where a symbol's price is its base price. An anchor
// near the ranges people request keeps prices near the base price; at the Unix epoch, fifty years
// of drift and diffusion would leave them many orders of magnitude away.
constexpr int64_t kAnchorMs = 1'577'836'800'000;
// Requests must lie within [1900-01-01, 2200-01-01): reaching a bar costs one draw per block
// between it and the anchor, and this bounds that to about 100,000 draws for 1m bars.
constexpr int64_t kEarliestMs = -2'208'988'800'000;
constexpr int64_t kLatestMs = 7'258'118'400'000;

// Independent random streams of one (seed, symbol, timeframe) series.
enum Stream : uint64_t {
  kStepA = 0,  // step normal (Box-Muller, first uniform); its partner is the volume normal
  kStepB = 1,
  kWickA = 2,  // high and low wick normals
  kWickB = 3,
  kBlockA = 4,  // block increments
  kBlockB = 5,
  kStreamCount = 8,
};

// splitmix64's finaliser: a bijective 64-bit mix with good avalanche.
constexpr uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// A uniform double in (0, 1) from the counter (key, stream, index).
double Uniform(uint64_t key, uint64_t stream, int64_t index) {
  const uint64_t counter = static_cast<uint64_t>(index) * kStreamCount + stream;
  const uint64_t bits = Mix(key ^ Mix(counter));
  return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53;
}

struct NormalPair {
  double first;
  double second;
};

// Two independent standard normals (Box-Muller) from the uniforms of streams `a` and `a + 1`.
NormalPair Normals(uint64_t key, uint64_t a, int64_t index) {
  const double radius = std::sqrt(-2.0 * std::log(Uniform(key, a, index)));
  const double angle = 2.0 * std::numbers::pi * Uniform(key, a + 1, index);
  return {radius * std::cos(angle), radius * std::sin(angle)};
}

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t CeilDiv(int64_t a, int64_t b) { return -FloorDiv(-a, b); }

}  // namespace

SyntheticMarket::SyntheticMarket(SyntheticMarketOptions options) : options_(options) {}

int64_t SyntheticMarket::CountBars(const Timeframe& timeframe, int64_t start_ms, int64_t end_ms) {
  if (timeframe.ms <= 0 || end_ms <= start_ms) return 0;
  return CeilDiv(end_ms, timeframe.ms) - CeilDiv(start_ms, timeframe.ms);
}

Result<KlineSeries> SyntheticMarket::Generate(std::string_view symbol, const Timeframe& timeframe,
                                              int64_t start_ms, int64_t end_ms,
                                              int64_t max_bars) const {
  if (symbol.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "synthetic market: the symbol is empty");
  }
  if (timeframe.ms <= 0) {
    return Fail(ErrorCode::kInvalidArgument, "synthetic market: timeframe '" + timeframe.name +
                                                 "' has a non-positive duration " +
                                                 std::to_string(timeframe.ms) +
                                                 " ms; use ParseTimeframe");
  }
  const SyntheticMarketOptions& o = options_;
  if (!(std::isfinite(o.base_price) && o.base_price > 0) ||
      !(std::isfinite(o.annual_volatility) && o.annual_volatility >= 0) ||
      !std::isfinite(o.annual_drift)) {
    return Fail(ErrorCode::kInvalidArgument,
                "synthetic market: options need a finite positive base_price (got " +
                    std::to_string(o.base_price) +
                    "), a finite non-negative annual_volatility (got " +
                    std::to_string(o.annual_volatility) + ") and a finite annual_drift (got " +
                    std::to_string(o.annual_drift) + ")");
  }
  if (end_ms < start_ms) {
    return Fail(ErrorCode::kInvalidArgument, "synthetic market: the range ends (" +
                                                 FormatTimestamp(end_ms) + ") before it starts (" +
                                                 FormatTimestamp(start_ms) + ")");
  }
  if (start_ms < kEarliestMs || end_ms > kLatestMs) {
    return Fail(ErrorCode::kInvalidArgument,
                "synthetic market: the range " + FormatTimestamp(start_ms) + " .. " +
                    FormatTimestamp(end_ms) + " is outside the supported " +
                    FormatTimestamp(kEarliestMs) + " .. " + FormatTimestamp(kLatestMs));
  }
  const int64_t count = CountBars(timeframe, start_ms, end_ms);
  if (count > max_bars) {
    return Fail(ErrorCode::kInvalidArgument,
                "synthetic market: " + FormatTimestamp(start_ms) + " .. " +
                    FormatTimestamp(end_ms) + " holds " + std::to_string(count) + " " +
                    timeframe.name + " bars, more than the " + std::to_string(max_bars) +
                    " allowed; request a shorter range");
  }
  KlineSeries series;
  if (count == 0) return series;

  const uint64_t seed_key = Mix(options_.seed ^ 0x5eed5eed5eed5eedULL);
  const uint64_t symbol_key = Mix(seed_key ^ Fnv1a(symbol));
  const uint64_t key = Mix(symbol_key ^ static_cast<uint64_t>(timeframe.ms));

  const double dt = static_cast<double>(timeframe.ms) / kYearMs;
  const double sigma = options_.annual_volatility;
  const double step_sd = sigma * std::sqrt(dt);
  const double step_mean = (options_.annual_drift - 0.5 * sigma * sigma) * dt;
  const double block_mean = step_mean * kBlockBars;
  const double block_sd = step_sd * std::sqrt(static_cast<double>(kBlockBars));
  // The symbol's level at the anchor is shared by all its timeframes.
  const double log_base = std::log(options_.base_price) + (4.0 * Uniform(symbol_key, 0, 0) - 2.0);
  auto block_increment = [&](int64_t block) {
    return block_mean + block_sd * Normals(key, kBlockA, block).first;
  };

  // Bar indices count from the anchor bar (index 0); block b holds indices [b * kBlockBars,
  // (b + 1) * kBlockBars).
  const int64_t anchor_bar = FloorDiv(kAnchorMs, timeframe.ms);
  const int64_t first = CeilDiv(start_ms, timeframe.ms) - anchor_bar;
  const int64_t last = first + count;  // one past the last bar; its open is the last bar's close
  const int64_t first_block = FloorDiv(first, kBlockBars);
  const int64_t last_block = FloorDiv(last, kBlockBars);
  // Log price at the start of first_block, summed from the anchor in a fixed order so the result
  // does not depend on the requested range.
  double block_start = 0;
  for (int64_t b = 0; b < first_block; ++b) block_start += block_increment(b);
  for (int64_t b = -1; b >= first_block; --b) block_start -= block_increment(b);

  // Mean base volume per 1m bar, scaled with the bar's duration.
  const double minute_volume = 50.0 * std::exp(2.0 * Uniform(symbol_key, 1, 0));
  const double volume_scale = minute_volume * static_cast<double>(timeframe.ms) / 60'000.0;
  const double wick_scale = 0.5 * step_sd;

  series.reserve(static_cast<size_t>(count));
  std::vector<double> z(kBlockBars);
  std::vector<double> volume_z(kBlockBars);
  double previous_price = 0;     // price at bar n - 1's open
  double previous_volume_z = 0;  // volume normal of bar n - 1
  for (int64_t b = first_block; b <= last_block; ++b) {
    const int64_t base_index = b * kBlockBars;
    double z_sum = 0;
    for (int64_t j = 0; j < kBlockBars; ++j) {
      const NormalPair pair = Normals(key, kStepA, base_index + j);
      z[j] = pair.first;
      volume_z[j] = pair.second;
      z_sum += pair.first;
    }
    const double z_mean = z_sum / kBlockBars;
    const double increment = block_increment(b);
    const double bridge_drift = increment / kBlockBars;
    double level = block_start;
    for (int64_t j = 0; j < kBlockBars; ++j) {
      const int64_t n = base_index + j;
      if (n > last) break;
      if (n >= first) {
        const double price = std::exp(log_base + level);
        if (n > first) {
          // Bar n - 1 closes where bar n opens.
          Kline& bar = series.emplace_back();
          bar.ts_ms = (anchor_bar + n - 1) * timeframe.ms;
          bar.open = previous_price;
          bar.close = price;
          const NormalPair wick = Normals(key, kWickA, n - 1);
          bar.high = std::max(bar.open, bar.close) * std::exp(std::abs(wick.first) * wick_scale);
          bar.low = std::min(bar.open, bar.close) * std::exp(-std::abs(wick.second) * wick_scale);
          bar.volume = volume_scale * std::exp(0.5 * previous_volume_z);
          bar.quote_volume = bar.volume * (bar.high + bar.low + bar.close) / 3.0;
        }
        previous_price = price;
        previous_volume_z = volume_z[j];
      }
      level += step_sd * (z[j] - z_mean) + bridge_drift;
    }
    block_start += increment;
  }
  return series;
}

}  // namespace leakgate::engine
