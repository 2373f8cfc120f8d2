#include "engine/kline.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace leakgate::engine {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kHourMs = 60 * kMinuteMs;
constexpr int64_t kDayMs = 24 * kHourMs;

struct TimeframeEntry {
  std::string_view name;
  std::string_view alias;  // empty when the name has no lower-case spelling
  int64_t ms;
};

constexpr std::array<TimeframeEntry, 12> kTimeframes = {{
    {"1m", "", kMinuteMs},
    {"3m", "", 3 * kMinuteMs},
    {"5m", "", 5 * kMinuteMs},
    {"15m", "", 15 * kMinuteMs},
    {"30m", "", 30 * kMinuteMs},
    {"1H", "1h", kHourMs},
    {"4H", "4h", 4 * kHourMs},
    {"6H", "6h", 6 * kHourMs},
    {"12H", "12h", 12 * kHourMs},
    {"1D", "1d", kDayMs},
    {"3D", "3d", 3 * kDayMs},
    {"1W", "1w", 7 * kDayMs},
}};

constexpr std::array<std::string_view, 12> kTimeframeNames = {
    "1m", "3m", "5m", "15m", "30m", "1H", "4H", "6H", "12H", "1D", "3D", "1W"};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct CivilDate {
  int64_t year;
  unsigned month;
  unsigned day;
};

CivilDate CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool IsLeapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `width` digits at `pos`; false when they are not all digits.
bool ReadDigits(std::string_view text, size_t pos, size_t width, int& out) {
  if (pos + width > text.size()) return false;
  int value = 0;
  for (size_t i = pos; i < pos + width; ++i) {
    if (!IsDigit(text[i])) return false;
    value = value * 10 + (text[i] - '0');
  }
  out = value;
  return true;
}

std::string Quoted(std::string_view text) {
  std::string out = "'";
  out += text;
  out += "'";
  return out;
}

std::unexpected<Error> TimestampError(std::string_view text, std::string_view what) {
  std::string message = "invalid timestamp " + Quoted(text) + ": ";
  message += what;
  message +=
      " (expected milliseconds since the epoch, YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fff]][Z])";
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

// Shortest text that reads back as the same double ("nan", "-0", "101.25").
std::string FormatNumber(double value) {
  char buf[32];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return ec == std::errc() ? std::string(buf, ptr) : std::string("?");
}

std::string FormatBar(size_t index, const Kline& bar) {
  return "bar " + std::to_string(index) + " (" + FormatTimestamp(bar.ts_ms) + ")";
}

}  // namespace

Result<Timeframe> ParseTimeframe(std::string_view name) {
  for (const TimeframeEntry& entry : kTimeframes) {
    if (name == entry.name || (!entry.alias.empty() && name == entry.alias)) {
      return Timeframe{std::string(entry.name), entry.ms};
    }
  }
  std::string message = "unknown timeframe " + Quoted(name) + "; known timeframes are";
  for (std::string_view known : kTimeframeNames) {
    message += ' ';
    message += known;
  }
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

std::span<const std::string_view> KnownTimeframeNames() { return kTimeframeNames; }

Result<int64_t> ParseTimestamp(std::string_view text) {
  if (text.empty()) return TimestampError(text, "empty text");

  // Integer milliseconds: only digits (a date always contains '-' after four digits).
  bool all_digits = true;
  for (char c : text) all_digits = all_digits && IsDigit(c);
  if (all_digits) {
    int64_t ms = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (ec != std::errc() || ptr != text.data() + text.size()) {
      return TimestampError(text, "integer milliseconds out of range");
    }
    return ms;
  }
  if (text.front() == '-' && text.size() > 1 && IsDigit(text[1])) {
    return TimestampError(text, "negative milliseconds are not supported");
  }

  int year = 0, month = 0, day = 0;
  if (!ReadDigits(text, 0, 4, year) || text.size() < 10 || text[4] != '-' ||
      !ReadDigits(text, 5, 2, month) || text[7] != '-' || !ReadDigits(text, 8, 2, day)) {
    return TimestampError(text, "the date part is not YYYY-MM-DD");
  }
  if (month < 1 || month > 12) {
    return TimestampError(text, "month " + std::to_string(month) + " is not in 1..12");
  }
  const unsigned month_days = DaysInMonth(year, static_cast<unsigned>(month));
  if (day < 1 || static_cast<unsigned>(day) > month_days) {
    return TimestampError(text, "day " + std::to_string(day) + " is not in 1.." +
                                    std::to_string(month_days) + " for " +
                                    std::string(text.substr(0, 7)));
  }

  int hour = 0, minute = 0, second = 0, millis = 0;
  size_t pos = 10;
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    if (!ReadDigits(text, pos + 1, 2, hour) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
        !ReadDigits(text, pos + 4, 2, minute)) {
      return TimestampError(text, "the time part is not HH:MM");
    }
    pos += 6;
    if (pos < text.size() && text[pos] == ':') {
      if (!ReadDigits(text, pos + 1, 2, second)) {
        return TimestampError(text, "the seconds are not two digits");
      }
      pos += 3;
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        const size_t digits_start = pos;
        int scale = 100;
        while (pos < text.size() && IsDigit(text[pos])) {
          millis += (text[pos] - '0') * scale;  // digits beyond milliseconds are truncated
          scale /= 10;
          ++pos;
        }
        if (pos == digits_start) return TimestampError(text, "no digits after '.'");
      }
    }
    if (hour > 23) return TimestampError(text, "hour " + std::to_string(hour) + " is not in 0..23");
    if (minute > 59) {
      return TimestampError(text, "minute " + std::to_string(minute) + " is not in 0..59");
    }
    if (second > 59) {
      return TimestampError(text, "second " + std::to_string(second) + " is not in 0..59");
    }
  }
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos > 10 && text.substr(pos) == "+00:00") {
    pos = text.size();  // pandas writes UTC-aware times with this offset
  } else if (pos > 10 && pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    return TimestampError(text, "offset " + Quoted(text.substr(pos)) +
                                    " is not UTC; only 'Z' or '+00:00' are accepted");
  }
  if (pos != text.size()) {
    return TimestampError(text, "unexpected text " + Quoted(text.substr(pos)) + " after the date");
  }
  const int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return days * kDayMs + hour * kHourMs + minute * kMinuteMs + second * int64_t{1000} + millis;
}

std::string FormatTimestamp(int64_t ts_ms) {
  int64_t days = ts_ms / kDayMs;
  int64_t rem = ts_ms % kDayMs;
  if (rem < 0) {
    rem += kDayMs;
    --days;
  }
  const CivilDate date = CivilFromDays(days);
  const int hour = static_cast<int>(rem / kHourMs);
  const int minute = static_cast<int>(rem % kHourMs / kMinuteMs);
  const int second = static_cast<int>(rem % kMinuteMs / 1000);
  const int millis = static_cast<int>(rem % 1000);
  char buf[64];
  int n =
      std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02d:%02d:%02d",
                    static_cast<long long>(date.year), date.month, date.day, hour, minute, second);
  if (millis != 0) n += std::snprintf(buf + n, sizeof(buf) - n, ".%03d", millis);
  std::snprintf(buf + n, sizeof(buf) - n, "Z");
  return buf;
}

Result<void> ValidateSeries(std::span<const Kline> series) {
  for (size_t i = 0; i < series.size(); ++i) {
    const Kline& bar = series[i];
    if (i > 0 && bar.ts_ms <= series[i - 1].ts_ms) {
      return Fail(ErrorCode::kInvalidArgument, FormatBar(i, bar) +
                                                   ": timestamp is not after the previous bar's (" +
                                                   FormatTimestamp(series[i - 1].ts_ms) +
                                                   "); timestamps must strictly increase");
    }
    const std::array<std::pair<std::string_view, double>, 4> prices = {
        {{"open", bar.open}, {"high", bar.high}, {"low", bar.low}, {"close", bar.close}}};
    for (const auto& [name, value] : prices) {
      if (!std::isfinite(value) || value <= 0) {
        return Fail(ErrorCode::kInvalidArgument, FormatBar(i, bar) + ": " + std::string(name) +
                                                     " is " + FormatNumber(value) +
                                                     "; prices must be finite and positive");
      }
    }
    const double body_low = std::min(bar.open, bar.close);
    const double body_high = std::max(bar.open, bar.close);
    if (bar.low > body_low) {
      return Fail(ErrorCode::kInvalidArgument,
                  FormatBar(i, bar) + ": low " + FormatNumber(bar.low) +
                      " is above min(open, close) " + FormatNumber(body_low));
    }
    if (bar.high < body_high) {
      return Fail(ErrorCode::kInvalidArgument,
                  FormatBar(i, bar) + ": high " + FormatNumber(bar.high) +
                      " is below max(open, close) " + FormatNumber(body_high));
    }
    if (!std::isfinite(bar.volume) || bar.volume < 0) {
      return Fail(ErrorCode::kInvalidArgument, FormatBar(i, bar) + ": volume is " +
                                                   FormatNumber(bar.volume) +
                                                   "; it must be finite and not negative");
    }
  }
  return {};
}

}  // namespace leakgate::engine
