#include "engine/data_provider.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace leakgate::engine {
namespace {

constexpr std::string_view kCandlesPath = "/api/v2/mix/market/candles";
constexpr std::string_view kCodeOk = "00000";
constexpr std::string_view kCodeUnknownSymbol = "40034";
constexpr int kMaxPageLimit = 1000;

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Bars aligned to the timeframe with start <= t < end.
int64_t CountAlignedBars(int64_t timeframe_ms, int64_t start_ms, int64_t end_ms) {
  if (start_ms >= end_ms) return 0;
  const int64_t first_index = -FloorDiv(-start_ms, timeframe_ms);  // ceil
  const int64_t end_index = -FloorDiv(-end_ms, timeframe_ms);
  return std::max<int64_t>(0, end_index - first_index);
}

std::string Excerpt(std::string_view body) {
  constexpr size_t kMax = 200;
  return body.size() <= kMax ? std::string(body) : std::string(body.substr(0, kMax)) + "...";
}

bool IsTransientStatus(int status) { return status >= 500 || status == 429 || status == 408; }

Error RejectionError(int status, const std::string& code, const std::string& msg,
                     std::string_view body, const std::string& url) {
  std::string message = "exchange rejected GET " + url + ": HTTP " + std::to_string(status);
  if (!code.empty()) message += ", code " + code;
  message += ": " + (msg.empty() ? Excerpt(body) : msg);
  return Error{code == kCodeUnknownSymbol ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument,
               std::move(message)};
}

// The error for a response the exchange meant as a refusal (an HTTP 4xx), using the body's code and
// msg when it has them.
Error Rejection(int status, std::string_view body, const std::string& url) {
  std::string code;
  std::string msg;
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object()) {
    if (auto it = doc.find("code"); it != doc.end()) {
      code = it->is_string() ? it->get<std::string>() : it->dump();
    }
    if (auto it = doc.find("msg"); it != doc.end() && it->is_string()) msg = it->get<std::string>();
  }
  return RejectionError(status, code, msg, body, url);
}

constexpr std::string_view kColumnNames[] = {"ts",    "open",       "high",       "low",
                                             "close", "baseVolume", "quoteVolume"};

// Reads a candles page {"code":..,"msg":..,"data":[[ts,open,high,low,close,baseVolume,
// quoteVolume],...]} as a stream of SAX events, appending each row to `out` as it completes, so no
// document tree of the page is ever built. Cells may be strings (as the exchange sends them) or
// numbers; a seventh cell (quoteVolume) is optional and further cells are ignored. The first
// problem stops the parse and is kept in error().
class CandlePageReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  CandlePageReader(const std::string& url, KlineSeries& out) : url_(url), out_(out) {}

  bool null() override { return Scalar("null", nullptr); }
  bool boolean(bool value) override { return Scalar(value ? "true" : "false", nullptr); }
  bool number_integer(number_integer_t value) override {
    return Number(static_cast<double>(value), value, true);
  }
  bool number_unsigned(number_unsigned_t value) override {
    return Number(static_cast<double>(value), static_cast<int64_t>(value),
                  value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  }
  bool number_float(number_float_t value, const string_t&) override {
    return Number(value, 0, false);
  }
  bool string(string_t& value) override { return Scalar(value, &value); }
  bool binary(binary_t&) override { return Scalar("binary", nullptr); }

  bool start_object(std::size_t) override { return Open(/*is_array=*/false); }
  bool start_array(std::size_t) override { return Open(/*is_array=*/true); }
  bool key(string_t& name) override {
    if (frames_.size() == 1) key_ = name;
    return true;
  }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& error) override {
    return Stop("body of " + url_ + " is not valid JSON at byte " + std::to_string(position) +
                ": " + error.what());
  }

  const std::string& error() const { return error_; }
  bool has_code() const { return has_code_; }
  const std::string& code() const { return code_; }
  const std::string& msg() const { return msg_; }
  bool has_data() const { return has_data_; }
  int64_t rows() const { return rows_; }

 private:
  enum class Frame { kTop, kData, kRow, kIgnored };

  bool Stop(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  bool RowError(std::string what) {
    return Stop("row " + std::to_string(rows_) + " of " + url_ + ": " + what);
  }

  bool Open(bool is_array) {
    if (frames_.empty()) {
      if (is_array) return Stop("body of " + url_ + " is a JSON array, expected an object");
      frames_.push_back(Frame::kTop);
      return true;
    }
    switch (frames_.back()) {
      case Frame::kTop:
        if (is_array && key_ == "data") {
          has_data_ = true;
          frames_.push_back(Frame::kData);
        } else {
          frames_.push_back(Frame::kIgnored);
        }
        return true;
      case Frame::kData:
        if (!is_array) {
          return RowError(
              "is an object; expected an array [ts, open, high, low, close, "
              "baseVolume, quoteVolume]");
        }
        row_ = Kline{};
        cells_ = 0;
        frames_.push_back(Frame::kRow);
        return true;
      case Frame::kRow:
        return RowError(std::string(CellName()) +
                        " is a nested array or object, expected a number");
      case Frame::kIgnored:
        frames_.push_back(Frame::kIgnored);
        return true;
    }
    return true;
  }

  bool Close() {
    if (frames_.back() == Frame::kRow) {
      if (cells_ < 6) {
        return RowError("has " + std::to_string(cells_) +
                        " cells; expected [ts, open, high, low, close, baseVolume, quoteVolume]");
      }
      out_.push_back(row_);
      ++rows_;
    }
    frames_.pop_back();
    return true;
  }

  std::string_view CellName() const { return cells_ < 7 ? kColumnNames[cells_] : "extra cell"; }

  // A string or a non-numeric scalar.
  bool Scalar(std::string_view text, const std::string* string_value) {
    if (frames_.empty()) return Stop("body of " + url_ + " is not a JSON object");
    switch (frames_.back()) {
      case Frame::kTop:
        if (key_ == "code" && string_value != nullptr) {
          has_code_ = true;
          code_ = *string_value;
        } else if (key_ == "msg" && string_value != nullptr) {
          msg_ = *string_value;
        }
        return true;
      case Frame::kData:
        return RowError(
            "is " + Quote(text, string_value) +
            ", expected an array [ts, open, high, low, close, baseVolume, quoteVolume]");
      case Frame::kRow: {
        if (cells_ >= 7) {
          ++cells_;
          return true;
        }
        bool ok = false;
        if (string_value != nullptr) {
          const char* first = text.data();
          const char* last = first + text.size();
          if (cells_ == 0) {
            auto [end, ec] = std::from_chars(first, last, row_.ts_ms);
            ok = ec == std::errc() && end == last && first != last;
          } else {
            auto [end, ec] = std::from_chars(first, last, *Field(cells_));
            ok = ec == std::errc() && end == last && first != last;
          }
        }
        if (!ok) {
          return RowError(std::string(CellName()) + " is " + Quote(text, string_value) +
                          ", expected " +
                          (cells_ == 0 ? "an integer number of milliseconds" : "a number"));
        }
        ++cells_;
        return true;
      }
      case Frame::kIgnored:
        return true;
    }
    return true;
  }

  bool Number(double value, int64_t integer, bool is_integer) {
    if (frames_.empty()) return Stop("body of " + url_ + " is not a JSON object");
    switch (frames_.back()) {
      case Frame::kTop:
        if (key_ == "code") {
          has_code_ = true;
          code_ = is_integer ? std::to_string(integer) : std::to_string(value);
        }
        return true;
      case Frame::kData:
        return RowError("is a number, expected an array");
      case Frame::kRow:
        if (cells_ == 0) {
          if (!is_integer) {
            return RowError("ts is " + std::to_string(value) +
                            ", expected an integer number of milliseconds");
          }
          row_.ts_ms = integer;
        } else if (cells_ < 7) {
          *Field(cells_) = value;
        }
        ++cells_;
        return true;
      case Frame::kIgnored:
        return true;
    }
    return true;
  }

  double* Field(int column) {
    double* fields[] = {&row_.open,  &row_.high,   &row_.low,
                        &row_.close, &row_.volume, &row_.quote_volume};
    return fields[column - 1];
  }

  static std::string Quote(std::string_view text, const std::string* string_value) {
    std::string shown(text.substr(0, 40));
    return string_value != nullptr ? "\"" + shown + "\"" : shown;
  }

  const std::string& url_;
  KlineSeries& out_;
  std::vector<Frame> frames_;
  std::string key_;
  Kline row_;
  int cells_ = 0;
  int64_t rows_ = 0;
  bool has_code_ = false;
  bool has_data_ = false;
  std::string code_;
  std::string msg_;
  std::string error_;
};

}  // namespace

HistoricalDataProvider::HistoricalDataProvider(HistoricalDataProviderOptions options,
                                               std::shared_ptr<ExchangeAdapter> adapter)
    : options_(std::move(options)), adapter_(std::move(adapter)) {}

HistoricalDataProvider::~HistoricalDataProvider() { Close(); }

void HistoricalDataProvider::Close() {
  std::lock_guard lock(mutex_);
  if (adapter_ == nullptr) return;
  adapter_->Disconnect();
  adapter_.reset();
}

bool HistoricalDataProvider::IsConnected() const {
  std::lock_guard lock(mutex_);
  return adapter_ != nullptr && adapter_->IsConnected();
}

FetchStats HistoricalDataProvider::last_fetch_stats() const {
  std::lock_guard lock(mutex_);
  return last_stats_;
}

void HistoricalDataProvider::BackoffSleep(int attempt) const {
  auto delay = options_.initial_backoff;
  for (int i = 0; i < attempt && delay < options_.max_backoff; ++i) delay *= 2;
  std::this_thread::sleep_for(std::min(delay, options_.max_backoff));
}

Result<void> HistoricalDataProvider::EnsureConnectedLocked(FetchStats& stats) {
  if (adapter_ == nullptr) adapter_ = std::make_shared<ExchangeAdapter>(options_.adapter);
  if (adapter_->IsConnected()) return {};
  for (int attempt = 0;; ++attempt) {
    Result<void> connected = adapter_->Connect();
    if (connected) return {};
    if (connected.error().code != ErrorCode::kUnavailable || attempt >= options_.max_retries) {
      if (connected.error().code == ErrorCode::kUnavailable) {
        return Fail(ErrorCode::kUnavailable, connected.error().message + " (gave up after " +
                                                 std::to_string(attempt + 1) + " attempts)");
      }
      return connected;
    }
    ++stats.retries;
    BackoffSleep(attempt);
  }
}

Result<std::string> HistoricalDataProvider::GetPageLocked(const std::string& path,
                                                          FetchStats& stats) {
  std::string last_problem;
  for (int attempt = 0;; ++attempt) {
    Result<HttpResponse> response = adapter_->Get(path);
    if (response && response->status == 200) return std::move(response->body);
    if (response && !IsTransientStatus(response->status)) {
      return std::unexpected(Rejection(response->status, response->body, adapter_->Url(path)));
    }
    if (!response) {
      if (response.error().code != ErrorCode::kUnavailable)
        return std::unexpected(response.error());
      last_problem = response.error().message;
    } else {
      last_problem = "HTTP " + std::to_string(response->status) + ": " + Excerpt(response->body);
    }
    if (attempt >= options_.max_retries) {
      return Fail(ErrorCode::kUnavailable,
                  "GET " + adapter_->Url(path) + " kept failing; gave up after " +
                      std::to_string(attempt + 1) + " attempts; last failure: " + last_problem);
    }
    ++stats.retries;
    BackoffSleep(attempt);
  }
}

Result<KlineSeries> HistoricalDataProvider::FetchKlines(std::string_view symbol,
                                                        std::string_view timeframe_name,
                                                        int64_t start_ms, int64_t end_ms) {
  std::lock_guard lock(mutex_);
  FetchStats stats;
  // Publishes the stats of this fetch on every return path.
  struct StatsPublisher {
    FetchStats& from;
    FetchStats& to;
    ~StatsPublisher() { to = from; }
  } publisher{stats, last_stats_};

  if (symbol.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "symbol is empty: pass an exchange symbol such as BTCUSDT");
  }
  Result<Timeframe> timeframe = ParseTimeframe(timeframe_name);
  if (!timeframe) return std::unexpected(timeframe.error());
  if (start_ms >= end_ms) {
    return Fail(ErrorCode::kInvalidArgument,
                "inverted range: start " + FormatTimestamp(start_ms) + " (" +
                    std::to_string(start_ms) + " ms) is not before end " + FormatTimestamp(end_ms) +
                    " (" + std::to_string(end_ms) + " ms); the range is [start, end)");
  }
  if (options_.page_limit < 1 || options_.page_limit > kMaxPageLimit) {
    return Fail(ErrorCode::kInvalidArgument, "page_limit " + std::to_string(options_.page_limit) +
                                                 " is outside 1.." + std::to_string(kMaxPageLimit));
  }
  const int64_t tf = timeframe->ms;
  const int64_t expected_bars = CountAlignedBars(tf, start_ms, end_ms);
  if (expected_bars > options_.max_bars) {
    return Fail(ErrorCode::kInvalidArgument,
                "range " + FormatTimestamp(start_ms) + " .. " + FormatTimestamp(end_ms) +
                    " holds " + std::to_string(expected_bars) + " " + timeframe->name +
                    " bars, more than max_bars " + std::to_string(options_.max_bars) +
                    "; fetch a shorter range or a longer timeframe");
  }

  if (Result<void> connected = EnsureConnectedLocked(stats); !connected) {
    return std::unexpected(connected.error());
  }

  const std::string path_prefix =
      std::string(kCandlesPath) + "?symbol=" + PercentEncode(symbol) +
      "&granularity=" + PercentEncode(timeframe->name) +
      "&limit=" + std::to_string(options_.page_limit) +
      (options_.product_type.empty() ? std::string()
                                     : "&productType=" + PercentEncode(options_.product_type));
  const int64_t last_ms = end_ms - 1;  // the API's endTime is inclusive

  KlineSeries series;
  series.reserve(static_cast<size_t>(expected_bars));
  int64_t cursor = start_ms;
  while (cursor <= last_ms) {
    const std::string path = path_prefix + "&startTime=" + std::to_string(cursor) +
                             "&endTime=" + std::to_string(last_ms);
    Result<std::string> body = GetPageLocked(path, stats);
    if (!body) return std::unexpected(body.error());

    const std::string url = adapter_->Url(path);
    const size_t page_begin = series.size();
    CandlePageReader reader(url, series);
    nlohmann::json::sax_parse(*body, &reader, nlohmann::json::input_format_t::json,
                              /*strict=*/true);
    if (reader.has_code() && reader.code() != kCodeOk) {
      return std::unexpected(RejectionError(200, reader.code(), reader.msg(), *body, url));
    }
    if (!reader.error().empty()) return Fail(ErrorCode::kParse, reader.error());
    if (!reader.has_code() || !reader.has_data()) {
      return Fail(ErrorCode::kParse, "GET " + url +
                                         " answered 200 without a \"code\" string and a \"data\" "
                                         "array: " +
                                         Excerpt(*body));
    }
    ++stats.pages;
    stats.rows += reader.rows();
    if (reader.rows() == 0) break;

    int64_t latest = std::numeric_limits<int64_t>::min();
    for (size_t i = page_begin; i < series.size(); ++i) latest = std::max(latest, series[i].ts_ms);
    const auto in_range_end = std::remove_if(
        series.begin() + static_cast<std::ptrdiff_t>(page_begin), series.end(),
        [&](const Kline& bar) { return bar.ts_ms < start_ms || bar.ts_ms >= end_ms; });
    stats.out_of_range_dropped += std::distance(in_range_end, series.end());
    series.erase(in_range_end, series.end());
    if (latest < cursor) {
      return Fail(ErrorCode::kParse, "GET " + url + " returned no bar at or after startTime " +
                                         FormatTimestamp(cursor) + " (the latest was " +
                                         FormatTimestamp(latest) + "), so paging cannot advance");
    }
    if (latest > last_ms - tf) break;
    cursor = latest + tf;
  }

  std::stable_sort(series.begin(), series.end(),
                   [](const Kline& a, const Kline& b) { return a.ts_ms < b.ts_ms; });
  const auto unique_end =
      std::unique(series.begin(), series.end(),
                  [](const Kline& a, const Kline& b) { return a.ts_ms == b.ts_ms; });
  stats.duplicates_dropped = std::distance(unique_end, series.end());
  series.erase(unique_end, series.end());
  if (series.capacity() > series.size() + series.size() / 4 + 16) series.shrink_to_fit();
  stats.bars = static_cast<int64_t>(series.size());
  return series;
}

}  // namespace leakgate::engine
