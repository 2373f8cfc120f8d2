#include "base/units.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

namespace leakgate {
namespace {

std::string Quote(std::string_view text) { return nlohmann::json(std::string(text)).dump(); }

}  // namespace

Result<int64_t> ParseSize(std::string_view text) {
  const std::string original(text);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  size_t number_end = 0;
  while (number_end < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[number_end])) || text[number_end] == '.')) {
    ++number_end;
  }
  const std::string_view number_text = text.substr(0, number_end);
  std::string_view unit = text.substr(number_end);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  const std::string expected =
      "expected a size such as \"256KiB\", \"2 MiB\" or \"4096\" (units B, KiB, MiB, GiB), got " +
      Quote(original);
  if (number_text.empty() || std::count(number_text.begin(), number_text.end(), '.') > 1 ||
      number_text.front() == '.' || number_text.back() == '.') {
    return Fail(ErrorCode::kInvalidArgument, expected);
  }
  int64_t multiplier = 1;
  if (unit.empty() || unit == "B") {
    multiplier = 1;
  } else if (unit == "KiB") {
    multiplier = int64_t{1} << 10;
  } else if (unit == "MiB") {
    multiplier = int64_t{1} << 20;
  } else if (unit == "GiB") {
    multiplier = int64_t{1} << 30;
  } else {
    std::string hint;
    if (unit == "KB" || unit == "kB" || unit == "K" || unit == "k" || unit == "kiB" ||
        unit == "kib" || unit == "KIB") {
      hint = " (write \"KiB\": sizes are powers of 1024)";
    } else if (unit == "MB" || unit == "M" || unit == "mb" || unit == "MIB" || unit == "mib") {
      hint = " (write \"MiB\": sizes are powers of 1024)";
    } else if (unit == "GB" || unit == "G" || unit == "gb" || unit == "GIB" || unit == "gib") {
      hint = " (write \"GiB\": sizes are powers of 1024)";
    }
    return Fail(ErrorCode::kInvalidArgument,
                "unknown size unit " + Quote(unit) + hint + "; " + expected);
  }
  const bool fraction = number_text.find('.') != std::string_view::npos;
  if (fraction && multiplier == 1) {
    return Fail(ErrorCode::kInvalidArgument, "a size in bytes must be a whole number; " + expected);
  }
  double value = 0;
  const auto [end, ec] =
      std::from_chars(number_text.data(), number_text.data() + number_text.size(), value);
  if (ec != std::errc() || end != number_text.data() + number_text.size()) {
    return Fail(ErrorCode::kInvalidArgument, expected);
  }
  const double bytes = value * static_cast<double>(multiplier);
  if (bytes > 9.0e18) {
    return Fail(ErrorCode::kInvalidArgument, "size " + Quote(original) + " is too large");
  }
  return static_cast<int64_t>(std::llround(bytes));
}

std::string FormatSize(int64_t bytes) {
  const char* sign = bytes < 0 ? "-" : "";
  const double magnitude = std::fabs(static_cast<double>(bytes));
  static constexpr std::array<std::string_view, 4> kUnits = {"B", "KiB", "MiB", "GiB"};
  size_t unit = 0;
  double value = magnitude;
  while (unit + 1 < kUnits.size() && value >= 1024) {
    value /= 1024;
    ++unit;
  }
  std::ostringstream out;
  if (unit == 0 || std::fabs(value - std::round(value)) < 0.05) {
    out << sign << static_cast<int64_t>(std::round(value));
  } else {
    out.setf(std::ios::fixed);
    out.precision(1);
    out << sign << value;
  }
  out << ' ' << kUnits[unit];
  return out.str();
}

std::string Fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

std::string FormatSeconds(double seconds) { return Fixed(seconds, 2) + " s"; }

std::string FormatSecondsShort(double seconds, int significant_digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*g s", significant_digits, seconds);
  return buffer;
}

std::string Excerpt(std::string_view text, size_t max_chars, ControlChars control) {
  const bool cut = text.size() > max_chars;
  if (cut) text = text.substr(0, max_chars > 3 ? max_chars - 3 : 0);
  std::string out;
  out.reserve(text.size() + 3);
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 || control == ControlChars::kKeep) {
      out += c;
    } else if (control == ControlChars::kSpace) {
      out += ' ';
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    }
  }
  if (cut) out += "...";
  return out;
}

}  // namespace leakgate
