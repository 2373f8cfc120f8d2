// Units and numbers as leakgate writes and reads them, the same in every message and report: sizes
// with binary units ("256 KiB"), fixed decimals, seconds, and excerpts of text quoted in an error.
// Pure functions; thread-safe.
#ifndef LEAKGATE_BASE_UNITS_H_
#define LEAKGATE_BASE_UNITS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace leakgate {

// "256KiB", "2 MiB", "1.5GiB", "4096B" or "4096" -> bytes. Units are B, KiB, MiB and GiB (powers of
// 1024); a fraction is allowed with a unit and rounded to a whole byte. Negative sizes are errors
// (kInvalidArgument, saying what a size looks like).
Result<int64_t> ParseSize(std::string_view text);

// Bytes as a person reads them: "256 KiB", "1.5 MiB", "512 B" (at most one decimal).
std::string FormatSize(int64_t bytes);

// `value` with exactly `digits` decimals: Fixed(0.456, 2) == "0.46".
std::string Fixed(double value, int digits);

// Seconds with two decimals and the unit: "0.50 s", "12.25 s".
std::string FormatSeconds(double seconds);

// Seconds in the shortest form with at most `significant_digits` digits and the unit: "0.3 s",
// "1.25 s", "120 s" (printf's %g), for a duration that was given (a timeout) rather than measured.
std::string FormatSecondsShort(double seconds, int significant_digits = 6);

// What an excerpt does with control characters (bytes below 0x20).
enum class ControlChars {
  kKeep,     // as they are
  kSpace,    // each one a space, so the excerpt stays on one line
  kEscape,   // made visible: "\n", "\t", "\r", others "\xNN"
};

// `text` as quoted in a message: itself when at most `max_chars` long, else its first
// `max_chars - 3` characters and "..."; control characters treated as `control` says (the limit
// counts the characters of `text`, before any escape).
std::string Excerpt(std::string_view text, size_t max_chars = 120,
                    ControlChars control = ControlChars::kKeep);

}  // namespace leakgate

#endif  // LEAKGATE_BASE_UNITS_H_
