#include "engine/strategy.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

namespace leakgate::engine {
namespace {

struct ParamSpec {
  std::string_view name;
  double default_value;
  bool whole_number;
  std::string_view description;
};

// Range checks that need more than one parameter or a bound; `p` is complete (defaults filled).
using RangeCheck = Result<void> (*)(const StrategyParams& p);
using BarsNeededFn = int64_t (*)(const StrategyParams& p);
using MakeFn = Result<std::shared_ptr<Strategy>> (*)(std::shared_ptr<const KlineWindow> window,
                                                     const StrategyParams& p);

struct StrategyEntry {
  std::string_view name;
  std::string_view description;
  std::span<const ParamSpec> params;  // sorted by name
  RangeCheck check;
  BarsNeededFn bars_needed;
  MakeFn make;
};

// Reads a parameter the cheap way (one map lookup); the default when absent.
double ParamOr(const StrategyParams& params, std::string_view name, double fallback) {
  auto it = params.find(name);
  return it == params.end() ? fallback : it->second;
}

// Period parameters as integers for the per-window path; NaN and out-of-range values become 0 so
// the factory's "period below 1" guard rejects them instead of invoking undefined conversions.
int64_t PeriodOr(const StrategyParams& params, std::string_view name, double fallback) {
  double value = ParamOr(params, name, fallback);
  if (!(value >= 1.0 && value <= 1e9)) return 0;
  return static_cast<int64_t>(value);
}

std::string FormatNumber(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

Result<std::shared_ptr<Strategy>> WindowTooShort(std::string_view name, size_t have, int64_t need) {
  return Fail(ErrorCode::kInvalidArgument, std::string(name) + " needs a window of at least " +
                                               std::to_string(need) + " bars, got " +
                                               std::to_string(have));
}

// ---- sma_cross ----

constexpr ParamSpec kSmaCrossParams[] = {
    {"fast", 10, true, "bars of the fast simple moving average; whole number, 1 <= fast < slow"},
    {"slow", 30, true, "bars of the slow simple moving average; whole number, > fast"},
};

class SmaCrossStrategy final : public Strategy {
 public:
  SmaCrossStrategy(std::shared_ptr<const KlineWindow> window, int64_t fast, int64_t slow)
      : window_(std::move(window)), fast_(fast), slow_(slow) {}

  Signal Decide() const override {
    std::span<const Kline> bars = window_->bars;
    const int64_t end = static_cast<int64_t>(bars.size());
    const double fast_now = SimpleMovingAverage(bars, end, fast_);
    const double slow_now = SimpleMovingAverage(bars, end, slow_);
    const double fast_prev = SimpleMovingAverage(bars, end - 1, fast_);
    const double slow_prev = SimpleMovingAverage(bars, end - 1, slow_);
    if (fast_prev < slow_prev && fast_now > slow_now) return Signal::kBuy;
    if (fast_prev > slow_prev && fast_now < slow_now) return Signal::kSell;
    return Signal::kHold;
  }

  std::string_view name() const override { return "sma_cross"; }

 private:
  std::shared_ptr<const KlineWindow> window_;
  int64_t fast_;
  int64_t slow_;
};

Result<void> CheckSmaCross(const StrategyParams& p) {
  const double fast = p.at("fast");
  const double slow = p.at("slow");
  if (fast < 1) {
    return Fail(ErrorCode::kInvalidArgument,
                "sma_cross: parameter 'fast' must be >= 1, got " + FormatNumber(fast));
  }
  if (fast >= slow) {
    return Fail(ErrorCode::kInvalidArgument, "sma_cross: parameter 'fast' (" + FormatNumber(fast) +
                                                 ") must be less than 'slow' (" +
                                                 FormatNumber(slow) + ")");
  }
  return {};
}

int64_t SmaCrossBarsNeeded(const StrategyParams& p) {
  return static_cast<int64_t>(std::max(p.at("fast"), p.at("slow"))) + 1;
}

Result<std::shared_ptr<Strategy>> MakeSmaCross(std::shared_ptr<const KlineWindow> window,
                                               const StrategyParams& p) {
  const int64_t fast = PeriodOr(p, "fast", 10);
  const int64_t slow = PeriodOr(p, "slow", 30);
  if (fast < 1 || slow < 1) {
    return Fail(ErrorCode::kInvalidArgument, "sma_cross: 'fast' and 'slow' must be >= 1");
  }
  const int64_t need = std::max(fast, slow) + 1;
  if (static_cast<int64_t>(window->bars.size()) < need) {
    return WindowTooShort("sma_cross", window->bars.size(), need);
  }
  return std::make_shared<SmaCrossStrategy>(std::move(window), fast, slow);
}

// ---- rsi ----

constexpr ParamSpec kRsiParams[] = {
    {"lower", 30, false, "Buy when RSI < lower; 0 <= lower < upper"},
    {"period", 14, true, "Wilder smoothing period; whole number, >= 2"},
    {"upper", 70, false, "Sell when RSI > upper; lower < upper <= 100"},
};

class RsiStrategy final : public Strategy {
 public:
  RsiStrategy(std::shared_ptr<const KlineWindow> window, int64_t period, double lower, double upper)
      : window_(std::move(window)), period_(period), lower_(lower), upper_(upper) {}

  Signal Decide() const override {
    const double rsi = WilderRsi(window_->bars, period_);
    if (rsi < lower_) return Signal::kBuy;
    if (rsi > upper_) return Signal::kSell;
    return Signal::kHold;
  }

  std::string_view name() const override { return "rsi"; }

 private:
  std::shared_ptr<const KlineWindow> window_;
  int64_t period_;
  double lower_;
  double upper_;
};

Result<void> CheckRsi(const StrategyParams& p) {
  const double period = p.at("period");
  const double lower = p.at("lower");
  const double upper = p.at("upper");
  if (period < 2) {
    return Fail(ErrorCode::kInvalidArgument,
                "rsi: parameter 'period' must be >= 2, got " + FormatNumber(period));
  }
  if (lower < 0 || upper > 100) {
    return Fail(ErrorCode::kInvalidArgument,
                "rsi: parameters 'lower' and 'upper' must lie in [0, 100], got lower=" +
                    FormatNumber(lower) + " upper=" + FormatNumber(upper));
  }
  if (lower >= upper) {
    return Fail(ErrorCode::kInvalidArgument, "rsi: parameter 'lower' (" + FormatNumber(lower) +
                                                 ") must be less than 'upper' (" +
                                                 FormatNumber(upper) + ")");
  }
  return {};
}

int64_t RsiBarsNeeded(const StrategyParams& p) { return static_cast<int64_t>(p.at("period")) + 1; }

Result<std::shared_ptr<Strategy>> MakeRsi(std::shared_ptr<const KlineWindow> window,
                                          const StrategyParams& p) {
  const int64_t period = PeriodOr(p, "period", 14);
  if (period < 1) return Fail(ErrorCode::kInvalidArgument, "rsi: 'period' must be >= 1");
  if (static_cast<int64_t>(window->bars.size()) < period + 1) {
    return WindowTooShort("rsi", window->bars.size(), period + 1);
  }
  return std::make_shared<RsiStrategy>(std::move(window), period, ParamOr(p, "lower", 30),
                                       ParamOr(p, "upper", 70));
}

// ---- bollinger ----

constexpr ParamSpec kBollingerParams[] = {
    {"k", 2, false, "band half-width in population standard deviations; > 0"},
    {"period", 20, true, "bars of the mean and standard deviation; whole number, >= 2"},
};

class BollingerStrategy final : public Strategy {
 public:
  BollingerStrategy(std::shared_ptr<const KlineWindow> window, int64_t period, double k)
      : window_(std::move(window)), period_(period), k_(k) {}

  Signal Decide() const override {
    const BollingerBand band = ComputeBollingerBand(window_->bars, period_);
    const double close = window_->bars.back().close;
    if (close < band.mean - k_ * band.stddev) return Signal::kBuy;
    if (close > band.mean + k_ * band.stddev) return Signal::kSell;
    return Signal::kHold;
  }

  std::string_view name() const override { return "bollinger"; }

 private:
  std::shared_ptr<const KlineWindow> window_;
  int64_t period_;
  double k_;
};

Result<void> CheckBollinger(const StrategyParams& p) {
  const double period = p.at("period");
  const double k = p.at("k");
  if (period < 2) {
    return Fail(ErrorCode::kInvalidArgument,
                "bollinger: parameter 'period' must be >= 2, got " + FormatNumber(period));
  }
  if (!(k > 0)) {
    return Fail(ErrorCode::kInvalidArgument,
                "bollinger: parameter 'k' must be > 0, got " + FormatNumber(k));
  }
  return {};
}

int64_t BollingerBarsNeeded(const StrategyParams& p) {
  return static_cast<int64_t>(p.at("period"));
}

Result<std::shared_ptr<Strategy>> MakeBollinger(std::shared_ptr<const KlineWindow> window,
                                                const StrategyParams& p) {
  const int64_t period = PeriodOr(p, "period", 20);
  if (period < 1) return Fail(ErrorCode::kInvalidArgument, "bollinger: 'period' must be >= 1");
  if (static_cast<int64_t>(window->bars.size()) < period) {
    return WindowTooShort("bollinger", window->bars.size(), period);
  }
  return std::make_shared<BollingerStrategy>(std::move(window), period, ParamOr(p, "k", 2));
}

// Sorted by name.
constexpr StrategyEntry kRegistry[] = {
    {"bollinger",
     "mean reversion on Bollinger bands: buy below the lower band, sell above the upper",
     kBollingerParams, CheckBollinger, BollingerBarsNeeded, MakeBollinger},
    {"rsi", "mean reversion on Wilder's RSI: buy when oversold, sell when overbought", kRsiParams,
     CheckRsi, RsiBarsNeeded, MakeRsi},
    {"sma_cross", "trend following on a crossover of two simple moving averages of the close",
     kSmaCrossParams, CheckSmaCross, SmaCrossBarsNeeded, MakeSmaCross},
};

std::string KnownStrategyList() {
  std::string out;
  for (const StrategyEntry& entry : kRegistry) {
    if (!out.empty()) out += ", ";
    out += entry.name;
  }
  return out;
}

const StrategyEntry* FindEntry(std::string_view name) {
  for (const StrategyEntry& entry : kRegistry) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

Error UnknownStrategy(std::string_view name) {
  return Error{ErrorCode::kInvalidArgument, "unknown strategy '" + std::string(name) +
                                                "'; known strategies: " + KnownStrategyList()};
}

// Checks names, finiteness and whole numbers, fills defaults, then the entry's range checks.
Result<StrategyParams> ResolveParams(const StrategyEntry& entry, const StrategyParams& params) {
  for (const auto& [name, value] : params) {
    auto spec = std::find_if(entry.params.begin(), entry.params.end(),
                             [&](const ParamSpec& s) { return s.name == name; });
    if (spec == entry.params.end()) {
      std::string known;
      for (const ParamSpec& s : entry.params) {
        if (!known.empty()) known += ", ";
        known += s.name;
      }
      return Fail(ErrorCode::kInvalidArgument, std::string(entry.name) + ": unknown parameter '" +
                                                   name + "'; known parameters: " + known);
    }
    if (!std::isfinite(value)) {
      return Fail(ErrorCode::kInvalidArgument, std::string(entry.name) + ": parameter '" + name +
                                                   "' must be a finite number, got " +
                                                   FormatNumber(value));
    }
    if (spec->whole_number && (value != std::floor(value) || std::fabs(value) > 1e9)) {
      return Fail(ErrorCode::kInvalidArgument, std::string(entry.name) + ": parameter '" + name +
                                                   "' must be a whole number, got " +
                                                   FormatNumber(value));
    }
  }
  StrategyParams resolved = params;
  for (const ParamSpec& spec : entry.params)
    resolved.try_emplace(std::string(spec.name), spec.default_value);
  if (Result<void> ok = entry.check(resolved); !ok) return std::unexpected(ok.error());
  return resolved;
}

}  // namespace

Strategy::~Strategy() = default;

std::string_view SignalName(Signal signal) {
  switch (signal) {
    case Signal::kHold:
      return "hold";
    case Signal::kBuy:
      return "buy";
    case Signal::kSell:
      return "sell";
  }
  return "unknown";
}

std::vector<std::string> KnownStrategies() {
  std::vector<std::string> names;
  for (const StrategyEntry& entry : kRegistry) names.emplace_back(entry.name);
  return names;
}

Result<StrategyInfo> DescribeStrategy(std::string_view name) {
  const StrategyEntry* entry = FindEntry(name);
  if (entry == nullptr) return std::unexpected(UnknownStrategy(name));
  StrategyInfo info{std::string(entry->name), std::string(entry->description), {}};
  for (const ParamSpec& spec : entry->params) {
    info.params.push_back(StrategyParamInfo{std::string(spec.name), spec.default_value,
                                            spec.whole_number, std::string(spec.description)});
  }
  return info;
}

Result<int64_t> StrategyBarsNeeded(std::string_view name, const StrategyParams& params) {
  const StrategyEntry* entry = FindEntry(name);
  if (entry == nullptr) return std::unexpected(UnknownStrategy(name));
  Result<StrategyParams> resolved = ResolveParams(*entry, params);
  if (!resolved) return std::unexpected(resolved.error());
  return entry->bars_needed(*resolved);
}

Result<StrategyParams> ValidateStrategy(std::string_view name, const StrategyParams& params,
                                        int64_t window_size) {
  const StrategyEntry* entry = FindEntry(name);
  if (entry == nullptr) return std::unexpected(UnknownStrategy(name));
  Result<StrategyParams> resolved = ResolveParams(*entry, params);
  if (!resolved) return resolved;
  const int64_t need = entry->bars_needed(*resolved);
  if (window_size < need) {
    return Fail(ErrorCode::kInvalidArgument,
                std::string(entry->name) + " with these parameters needs a window of at least " +
                    std::to_string(need) + " bars, but the window is " +
                    std::to_string(window_size) + " bars");
  }
  return resolved;
}

Result<std::shared_ptr<Strategy>> GetStrategy(std::string_view name,
                                              std::shared_ptr<const KlineWindow> window,
                                              const StrategyParams& params) {
  const StrategyEntry* entry = FindEntry(name);
  if (entry == nullptr) return std::unexpected(UnknownStrategy(name));
  if (window == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, std::string(name) + ": the window is null");
  }
  return entry->make(std::move(window), params);
}

double SimpleMovingAverage(std::span<const Kline> bars, int64_t end, int64_t period) {
  double sum = 0;
  for (int64_t j = end - period; j < end; ++j) sum += bars[j].close;
  return sum / static_cast<double>(period);
}

double WilderRsi(std::span<const Kline> bars, int64_t period) {
  const double n = static_cast<double>(period);
  double avg_gain = 0;
  double avg_loss = 0;
  for (int64_t j = 1; j <= period; ++j) {
    const double change = bars[j].close - bars[j - 1].close;
    if (change > 0)
      avg_gain += change;
    else
      avg_loss -= change;
  }
  avg_gain /= n;
  avg_loss /= n;
  const int64_t size = static_cast<int64_t>(bars.size());
  for (int64_t j = period + 1; j < size; ++j) {
    const double change = bars[j].close - bars[j - 1].close;
    avg_gain = (avg_gain * (n - 1) + (change > 0 ? change : 0.0)) / n;
    avg_loss = (avg_loss * (n - 1) + (change < 0 ? -change : 0.0)) / n;
  }
  if (avg_loss == 0) return avg_gain > 0 ? 100.0 : 50.0;
  return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss);
}

BollingerBand ComputeBollingerBand(std::span<const Kline> bars, int64_t period) {
  const int64_t end = static_cast<int64_t>(bars.size());
  const double mean = SimpleMovingAverage(bars, end, period);
  double squares = 0;
  for (int64_t j = end - period; j < end; ++j) {
    const double deviation = bars[j].close - mean;
    squares += deviation * deviation;
  }
  return BollingerBand{mean, std::sqrt(squares / static_cast<double>(period))};
}

}  // namespace leakgate::engine
