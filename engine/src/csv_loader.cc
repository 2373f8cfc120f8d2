#include "engine/csv_loader.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace leakgate::engine {
namespace {

// Kline fields a CSV column can feed, in Kline order.
enum Field { kTime = 0, kOpen, kHigh, kLow, kClose, kVolume, kQuoteVolume, kFieldCount };

constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
    "time", "open", "high", "low", "close", "volume", "quote volume"};

// Lower-case header spellings accepted for each field.
struct FieldAlias {
  std::string_view header;
  Field field;
};
constexpr std::array<FieldAlias, 17> kFieldAliases = {{
    {"ts", kTime},
    {"timestamp", kTime},
    {"date", kTime},
    {"datetime", kTime},
    {"time", kTime},
    {"open_time", kTime},
    {"open", kOpen},
    {"high", kHigh},
    {"low", kLow},
    {"close", kClose},
    {"volume", kVolume},
    {"basevolume", kVolume},
    {"base_volume", kVolume},
    {"vol", kVolume},
    {"quotevolume", kQuoteVolume},
    {"quote_volume", kQuoteVolume},
    {"usdtvolume", kQuoteVolume},
}};

constexpr size_t kMaxColumns = 64;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Splits one line (without its line break) into trimmed fields. A field that starts with '"' runs
// to the matching closing quote, so quoted commas do not split it; the quotes are removed and
// doubled quotes inside are left as they are. Returns the number of fields, which may exceed
// `fields.size()` (the extra fields are counted but not stored).
size_t SplitFields(std::string_view line, std::array<std::string_view, kMaxColumns>& fields) {
  size_t count = 0;
  size_t pos = 0;
  while (true) {
    while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
    std::string_view field;
    if (pos < line.size() && line[pos] == '"') {
      size_t close = pos + 1;
      while (close < line.size()) {
        if (line[close] == '"') {
          if (close + 1 < line.size() && line[close + 1] == '"') {
            close += 2;
            continue;
          }
          break;
        }
        ++close;
      }
      field = line.substr(pos + 1, close - pos - 1);
      pos = close < line.size() ? close + 1 : close;
      const size_t comma = line.find(',', pos);
      pos = comma == std::string_view::npos ? line.size() : comma;
    } else {
      const size_t comma = line.find(',', pos);
      const size_t end = comma == std::string_view::npos ? line.size() : comma;
      field = Trim(line.substr(pos, end - pos));
      pos = end;
    }
    if (count < fields.size()) fields[count] = field;
    ++count;
    if (pos >= line.size()) break;
    ++pos;  // skip the comma
  }
  return count;
}

bool IsInteger(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), IsDigit);
}

// Iterates over the lines of a text, yielding each line without its "\n" or "\r\n".
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}

  // False at the end of the text.
  bool Next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    line = text_.substr(pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = end + 1;
    ++line_number_;
    return true;
  }

  int64_t line_number() const { return line_number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int64_t line_number_ = 0;
};

bool IsBlank(std::string_view line) { return Trim(line).empty(); }

struct ColumnLayout {
  std::array<int, kFieldCount> column{};             // column index per field, -1 when absent
  size_t column_count = 0;                           // columns every data row must have
  std::array<std::string, kFieldCount> header_name;  // for messages
};

class CsvParser {
 public:
  explicit CsvParser(std::string_view source) : source_(source) {}

  std::string Where(int64_t line) const {
    return std::string(source_) + ":" + std::to_string(line) + ": ";
  }

  std::string ColumnLabel(const ColumnLayout& layout, Field field) const {
    return "column " + std::to_string(layout.column[field] + 1) + " (" + layout.header_name[field] +
           ")";
  }

  // Interprets the first non-blank line as a header, or as a header-less Bitget data row.
  Result<ColumnLayout> ReadLayout(std::string_view line, int64_t line_number, bool& is_data) {
    ColumnLayout layout;
    layout.column.fill(-1);
    std::array<std::string_view, kMaxColumns> cells;
    const size_t count = SplitFields(line, cells);
    if (count > kMaxColumns) {
      return Fail(ErrorCode::kParse, Where(line_number) + "the first row has " +
                                         std::to_string(count) + " columns; at most " +
                                         std::to_string(kMaxColumns) + " are supported");
    }
    layout.column_count = count;
    if (IsInteger(cells[0])) {
      // Bitget rows without a header: ts,open,high,low,close[,baseVolume[,quoteVolume]].
      if (count < 5 || count > 7) {
        return Fail(ErrorCode::kParse, Where(line_number) +
                                           "a header-less row must have 5 to 7 columns "
                                           "(ts,open,high,low,close,baseVolume,quoteVolume), got " +
                                           std::to_string(count));
      }
      static constexpr std::array<std::string_view, kFieldCount> kBitgetNames = {
          "ts", "open", "high", "low", "close", "baseVolume", "quoteVolume"};
      for (size_t i = 0; i < count; ++i) {
        layout.column[i] = static_cast<int>(i);
        layout.header_name[i] = kBitgetNames[i];
      }
      is_data = true;
      return layout;
    }
    is_data = false;
    for (size_t i = 0; i < count; ++i) {
      std::string name = Lower(cells[i]);
      std::optional<Field> field;
      if (name.empty() && i == 0) {
        field = kTime;  // pandas writes the index column with an empty name
      } else {
        for (const FieldAlias& alias : kFieldAliases) {
          if (name == alias.header) field = alias.field;
        }
      }
      if (!field) continue;
      if (layout.column[*field] != -1) {
        return Fail(ErrorCode::kParse, Where(line_number) + "columns " +
                                           std::to_string(layout.column[*field] + 1) + " and " +
                                           std::to_string(i + 1) + " both give the " +
                                           std::string(kFieldNames[*field]) +
                                           " of a bar; header was '" + std::string(line) + "'");
      }
      layout.column[*field] = static_cast<int>(i);
      layout.header_name[*field] = cells[i].empty() ? std::string("index") : std::string(cells[i]);
    }
    std::string missing;
    for (Field f : {kTime, kOpen, kHigh, kLow, kClose}) {
      if (layout.column[f] == -1) {
        if (!missing.empty()) missing += ", ";
        missing += kFieldNames[f];
      }
    }
    if (!missing.empty()) {
      return Fail(ErrorCode::kParse, Where(line_number) + "the header lacks a column for: " +
                                         missing + "; header was '" + std::string(line) +
                                         "' (expected e.g. 'Date,Open,High,Low,Close,Volume' or "
                                         "'ts,open,high,low,close,baseVolume,quoteVolume')");
    }
    return layout;
  }

  Result<void> ParseRow(std::string_view line, int64_t line_number, const ColumnLayout& layout,
                        Kline& bar) {
    std::array<std::string_view, kMaxColumns> cells;
    const size_t count = SplitFields(line, cells);
    if (count != layout.column_count) {
      return Fail(ErrorCode::kParse, Where(line_number) + "expected " +
                                         std::to_string(layout.column_count) + " columns, got " +
                                         std::to_string(count));
    }
    std::string_view time_cell = cells[layout.column[kTime]];
    if (IsInteger(time_cell)) {
      const auto [ptr, ec] =
          std::from_chars(time_cell.data(), time_cell.data() + time_cell.size(), bar.ts_ms);
      if (ec != std::errc() || ptr != time_cell.data() + time_cell.size()) {
        return Fail(ErrorCode::kParse, Where(line_number) + ColumnLabel(layout, kTime) +
                                           ": timestamp '" + std::string(time_cell) +
                                           "' is out of range");
      }
    } else {
      Result<int64_t> ts = ParseTimestamp(time_cell);
      if (!ts) {
        return Fail(ErrorCode::kParse,
                    Where(line_number) + ColumnLabel(layout, kTime) + ": " + ts.error().message);
      }
      bar.ts_ms = *ts;
    }
    double* const targets[kFieldCount] = {nullptr,    &bar.open,   &bar.high,        &bar.low,
                                          &bar.close, &bar.volume, &bar.quote_volume};
    for (int f = kOpen; f < kFieldCount; ++f) {
      if (layout.column[f] == -1) {
        *targets[f] = 0;
        continue;
      }
      std::string_view cell = cells[layout.column[f]];
      const char* begin = cell.data();
      const char* end = cell.data() + cell.size();
      if (begin != end && *begin == '+') ++begin;
      const auto [ptr, ec] = std::from_chars(begin, end, *targets[f]);
      if (ec != std::errc() || ptr != end || begin == end || !std::isfinite(*targets[f])) {
        return Fail(ErrorCode::kParse,
                    Where(line_number) + ColumnLabel(layout, static_cast<Field>(f)) +
                        ": expected a finite number, got '" + std::string(cell) + "'");
      }
    }
    return {};
  }

 private:
  std::string_view source_;
};

}  // namespace

Result<KlineSeries> ParseKlinesCsv(std::string_view text, std::string_view source_name) {
  CsvParser parser(source_name);
  LineReader reader(text);
  std::string_view line;
  bool found_first = false;
  while (reader.Next(line)) {
    if (!IsBlank(line)) {
      found_first = true;
      break;
    }
  }
  if (!found_first) {
    return Fail(ErrorCode::kParse,
                std::string(source_name) +
                    ": the CSV text is empty; expected a header such as "
                    "'Date,Open,High,Low,Close,Volume' or rows 'ts,open,high,low,close,...'");
  }
  // A UTF-8 byte order mark would otherwise become part of the first header name.
  if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);

  bool first_is_data = false;
  Result<ColumnLayout> layout = parser.ReadLayout(line, reader.line_number(), first_is_data);
  if (!layout) return std::unexpected(layout.error());

  KlineSeries series;
  std::vector<int64_t> line_numbers;
  // One row per line is an upper bound that avoids repeated growth on large files.
  const size_t estimated_rows = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  series.reserve(estimated_rows);
  line_numbers.reserve(estimated_rows);

  auto add_row = [&](std::string_view row, int64_t number) -> Result<void> {
    Kline bar;
    Result<void> parsed = parser.ParseRow(row, number, *layout, bar);
    if (!parsed) return parsed;
    series.push_back(bar);
    line_numbers.push_back(number);
    return {};
  };
  if (first_is_data) {
    if (Result<void> r = add_row(line, reader.line_number()); !r) return std::unexpected(r.error());
  }
  while (reader.Next(line)) {
    if (IsBlank(line)) continue;
    if (Result<void> r = add_row(line, reader.line_number()); !r) return std::unexpected(r.error());
  }
  if (series.empty()) {
    return Fail(ErrorCode::kParse,
                std::string(source_name) + ": the CSV has a header but no data rows");
  }

  const bool sorted =
      std::is_sorted(series.begin(), series.end(),
                     [](const Kline& a, const Kline& b) { return a.ts_ms < b.ts_ms; });
  if (!sorted) {
    std::vector<size_t> order(series.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return series[a].ts_ms < series[b].ts_ms; });
    KlineSeries sorted_series;
    std::vector<int64_t> sorted_lines;
    sorted_series.reserve(series.size());
    sorted_lines.reserve(series.size());
    for (size_t i : order) {
      sorted_series.push_back(series[i]);
      sorted_lines.push_back(line_numbers[i]);
    }
    series = std::move(sorted_series);
    line_numbers = std::move(sorted_lines);
  }
  for (size_t i = 1; i < series.size(); ++i) {
    if (series[i].ts_ms == series[i - 1].ts_ms) {
      return Fail(ErrorCode::kParse,
                  std::string(source_name) + ": lines " + std::to_string(line_numbers[i - 1]) +
                      " and " + std::to_string(line_numbers[i]) + " have the same timestamp " +
                      FormatTimestamp(series[i].ts_ms) + "; each bar must appear once");
    }
  }
  return series;
}

Result<KlineSeries> LoadKlinesCsv(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Fail(ErrorCode::kNotFound, "CSV file '" + path + "' does not exist");
  }
  if (std::filesystem::is_directory(path, ec)) {
    return Fail(ErrorCode::kIo, "'" + path + "' is a directory, not a CSV file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Fail(ErrorCode::kIo, "cannot open CSV file '" + path + "' for reading");
  }
  std::string text;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return Fail(ErrorCode::kIo, "cannot determine the size of CSV file '" + path + "'");
  text.resize(static_cast<size_t>(size));
  in.seekg(0, std::ios::beg);
  if (!in.read(text.data(), size)) {
    return Fail(ErrorCode::kIo, "reading CSV file '" + path + "' failed");
  }
  return ParseKlinesCsv(text, path);
}

}  // namespace leakgate::engine
