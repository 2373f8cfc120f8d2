#include "engine/backtest_request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/synthetic_market.h"

namespace leakgate::engine {
namespace {

using nlohmann::json;

constexpr std::string_view kFields[] = {"symbol",   "timeframe", "start", "end",
                                        "strategy", "params",    "cash",  "fee_rate"};
constexpr size_t kMaxSymbolLength = 32;
// 10000-01-01T00:00:00Z: later times are refused, which also keeps start + span far from overflow.
constexpr int64_t kEndOfTimeMs = 253'402'300'800'000;

std::unexpected<RequestError> Reject(std::string field, std::string message) {
  return std::unexpected(RequestError{std::move(field), std::move(message)});
}

std::string JsonTypeName(const json& value) {
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_null()) return "null";
  if (value.is_array()) return "an array";
  return "an object";
}

std::string AcceptedFields() {
  std::string out;
  for (std::string_view field : kFields) {
    if (!out.empty()) out += ", ";
    out += field;
  }
  return out;
}

bool IsSymbolChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// A number field; `fallback` when absent.
std::expected<double, RequestError> NumberField(const json& body, std::string_view name,
                                                double fallback) {
  const auto it = body.find(name);
  if (it == body.end()) return fallback;
  if (!it->is_number()) {
    return Reject(std::string(name),
                  std::string(name) + " must be a number, not " + JsonTypeName(*it));
  }
  const double value = it->get<double>();
  if (!std::isfinite(value)) {
    return Reject(std::string(name), std::string(name) + " must be a finite number");
  }
  return value;
}

// A time field: a string ParseTimestamp accepts or an integer number of ms since the epoch.
std::expected<std::optional<int64_t>, RequestError> TimeField(const json& body,
                                                              std::string_view name) {
  const auto it = body.find(name);
  if (it == body.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (!it->is_string()) {
    return Reject(std::string(name), std::string(name) +
                                         " must be a date string such as \"2024-01-01\" or "
                                         "\"2024-01-01T12:00:00Z\", or an integer of ms since the "
                                         "epoch, not " +
                                         JsonTypeName(*it));
  }
  Result<int64_t> parsed = ParseTimestamp(it->get_ref<const std::string&>());
  if (!parsed) return Reject(std::string(name), std::string(name) + ": " + parsed.error().message);
  return *parsed;
}

std::expected<std::optional<int64_t>, RequestError> BoundedTimeField(const json& body,
                                                                     std::string_view name) {
  auto value = TimeField(body, name);
  if (value && value->has_value() && (**value < 0 || **value >= kEndOfTimeMs)) {
    return Reject(std::string(name), std::string(name) + " " + std::to_string(**value) +
                                         " ms is outside 1970-01-01 .. 9999-12-31");
  }
  return value;
}

}  // namespace

std::string BacktestRequest::ToJson() const {
  json params_json = json::object();
  for (const auto& [name, value] : params) params_json[name] = value;
  json out = {{"symbol", symbol},
              {"timeframe", timeframe.name},
              {"start", FormatTimestamp(start_ms)},
              {"end", FormatTimestamp(end_ms)},
              {"strategy", strategy},
              {"params", std::move(params_json)},
              {"cash", cash},
              {"fee_rate", fee_rate}};
  return out.dump();
}

BacktestConfig BacktestRequest::ToConfig() const {
  BacktestConfig config;
  config.strategy = strategy;
  config.params = params;
  config.cash = cash;
  config.fee_rate = fee_rate;
  config.bar_ms = timeframe.ms;
  config.record_equity_curve = false;  // the service stores and serves statistics and trades only
  return config;
}

std::expected<BacktestRequest, RequestError> ParseBacktestRequest(std::string_view text,
                                                                  int64_t max_bars) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::parse_error& e) {
    return Reject("body", std::string("the body is not valid JSON (") + e.what() +
                              "); send a JSON object such as {\"symbol\":\"BTCUSDT\"}");
  }
  if (!body.is_object()) {
    return Reject("body", "the body must be a JSON object such as {\"symbol\":\"BTCUSDT\"}, not " +
                              JsonTypeName(body));
  }
  for (const auto& [key, value] : body.items()) {
    if (std::find(std::begin(kFields), std::end(kFields), key) == std::end(kFields)) {
      return Reject(key, "unknown field '" + key + "'; accepted fields: " + AcceptedFields());
    }
  }

  BacktestRequest request;

  const auto symbol = body.find("symbol");
  if (symbol == body.end()) {
    return Reject("symbol", "symbol is required: the exchange symbol to test, e.g. \"BTCUSDT\"");
  }
  if (!symbol->is_string()) {
    return Reject("symbol",
                  "symbol must be a string such as \"BTCUSDT\", not " + JsonTypeName(*symbol));
  }
  request.symbol = symbol->get<std::string>();
  if (request.symbol.empty() || request.symbol.size() > kMaxSymbolLength ||
      !std::all_of(request.symbol.begin(), request.symbol.end(), IsSymbolChar)) {
    return Reject("symbol", "symbol '" + request.symbol +
                                "' is not an exchange symbol: use 1 to 32 letters, digits, '_' or "
                                "'-', e.g. \"BTCUSDT\"");
  }

  std::string timeframe_name(BacktestRequest::kDefaultTimeframe);
  if (const auto it = body.find("timeframe"); it != body.end()) {
    if (!it->is_string()) {
      return Reject("timeframe", "timeframe must be a string such as \"15m\" or \"1H\", not " +
                                     JsonTypeName(*it));
    }
    timeframe_name = it->get<std::string>();
  }
  Result<Timeframe> timeframe = ParseTimeframe(timeframe_name);
  if (!timeframe) return Reject("timeframe", timeframe.error().message);
  request.timeframe = *timeframe;

  auto start = BoundedTimeField(body, "start");
  if (!start) return std::unexpected(start.error());
  auto end = BoundedTimeField(body, "end");
  if (!end) return std::unexpected(end.error());
  const int64_t span_ms = request.timeframe.ms * BacktestRequest::kDefaultBars;
  if (start->has_value()) {
    request.start_ms = **start;
    request.end_ms = end->has_value() ? **end : request.start_ms + span_ms;
  } else if (end->has_value()) {
    request.end_ms = **end;
    request.start_ms = request.end_ms - span_ms;
  } else {
    request.start_ms = BacktestRequest::kDefaultStartMs;
    request.end_ms = request.start_ms + span_ms;
  }
  if (request.start_ms < 0) {
    return Reject("start", "start " + std::to_string(request.start_ms) +
                               " is before 1970-01-01; give a start on or after the epoch");
  }
  if (request.start_ms >= request.end_ms) {
    return Reject("end", "the range is inverted or empty: end " + FormatTimestamp(request.end_ms) +
                             " is not after start " + FormatTimestamp(request.start_ms) +
                             "; the range is [start, end)");
  }
  request.bars = SyntheticMarket::CountBars(request.timeframe, request.start_ms, request.end_ms);
  if (request.bars > max_bars) {
    return Reject("end", "the range " + FormatTimestamp(request.start_ms) + " .. " +
                             FormatTimestamp(request.end_ms) + " holds " +
                             std::to_string(request.bars) + " " + request.timeframe.name +
                             " bars, more than the limit of " + std::to_string(max_bars) +
                             "; shorten the range or use a longer timeframe");
  }
  if (request.bars < kMinBars) {
    return Reject("end", "the range " + FormatTimestamp(request.start_ms) + " .. " +
                             FormatTimestamp(request.end_ms) + " holds " +
                             std::to_string(request.bars) + " " + request.timeframe.name +
                             " bars; a backtest needs at least " + std::to_string(kMinBars) +
                             " (the strategy window plus one bar to trade on)");
  }

  if (const auto it = body.find("strategy"); it != body.end()) {
    if (!it->is_string()) {
      return Reject("strategy",
                    "strategy must be a string such as \"sma_cross\", not " + JsonTypeName(*it));
    }
    request.strategy = it->get<std::string>();
  }
  Result<StrategyInfo> info = DescribeStrategy(request.strategy);
  if (!info) return Reject("strategy", info.error().message);

  StrategyParams params;
  if (const auto it = body.find("params"); it != body.end()) {
    if (!it->is_object()) {
      return Reject("params",
                    "params must be an object of numbers such as {\"fast\":10,\"slow\":30}, "
                    "not " +
                        JsonTypeName(*it));
    }
    for (const auto& [name, value] : it->items()) {
      const bool known = std::any_of(info->params.begin(), info->params.end(),
                                     [&](const StrategyParamInfo& p) { return p.name == name; });
      if (!known) {
        std::string names;
        for (const StrategyParamInfo& p : info->params)
          names += (names.empty() ? "" : ", ") + p.name;
        return Reject("params." + name, "strategy " + request.strategy + " has no parameter '" +
                                            name + "'; its parameters are: " + names);
      }
      if (!value.is_number()) {
        return Reject("params." + name,
                      "parameter " + name + " must be a number, not " + JsonTypeName(value));
      }
      params[name] = value.get<double>();
    }
  }
  const BacktestConfig defaults;
  Result<StrategyParams> complete = ValidateStrategy(request.strategy, params, defaults.window);
  if (!complete) return Reject("params", complete.error().message);
  request.params = *std::move(complete);

  auto cash = NumberField(body, "cash", BacktestRequest::kDefaultCash);
  if (!cash) return std::unexpected(cash.error());
  if (*cash <= 0) {
    return Reject("cash",
                  "cash must be greater than 0 (the starting capital), got " + json(*cash).dump());
  }
  request.cash = *cash;

  auto fee_rate = NumberField(body, "fee_rate", BacktestRequest::kDefaultFeeRate);
  if (!fee_rate) return std::unexpected(fee_rate.error());
  if (*fee_rate < 0 || *fee_rate >= 0.5) {
    return Reject("fee_rate",
                  "fee_rate must be a fraction of the notional in [0, 0.5), e.g. 0.001 "
                  "for 0.1 %, got " +
                      json(*fee_rate).dump());
  }
  request.fee_rate = *fee_rate;

  // The engine's own checks, so that a request accepted here cannot fail them later.
  Result<StrategyParams> config_check = ValidateBacktestConfig(request.ToConfig(), request.bars);
  if (!config_check) return Reject("body", config_check.error().message);
  return request;
}

}  // namespace leakgate::engine
