// CPU profiles of the cooldowns (gperftools), read and summarised.
//
// A spawned native target runs with gperftools' CPU profiler preloaded (preload.h) and switched by a
// signal (CPUPROFILESIGNAL: the first signal starts a profile, the next one stops it and writes
// PREFIX.0, then PREFIX.1, ...). The gate switches it on for each cooldown; the profiles are then
// symbolized together by one `google-pprof --raw` (a call costs seconds, mostly reading the
// binaries' symbols) and each is summarised as its busiest functions.
//
// The parsers are pure functions; SymbolizeCpuProfiles and SummarizeCpuProfiles read files and run
// google-pprof. All are thread-safe (they share nothing).
#ifndef LEAKGATE_HARNESS_PROFILE_CPU_PROFILE_H_
#define LEAKGATE_HARNESS_PROFILE_CPU_PROFILE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/error.h"

namespace leakgate::harness {

// A legacy gperftools CPU profile: the sampling period and the stacks with their counts.
struct CpuProfileData {
  int64_t period_us = 0;
  struct Stack {
    int64_t count = 0;
    std::vector<uint64_t> pcs;  // leaf first
  };
  std::vector<Stack> stacks;
  int64_t total_samples = 0;
};

// Parses the binary format (64-bit words: header 0, 3, 0, period, 0; records count, depth, pcs;
// trailer 0, 1, 0; then the memory map as text). kParse naming `source` when it is not one.
Result<CpuProfileData> ParseCpuProfile(std::string_view bytes, std::string_view source);

// Address -> function from the "--- symbol" section of `google-pprof --raw` output.
std::map<uint64_t, std::string> ParsePprofSymbols(std::string_view raw);

// A function name without argument lists, template arguments or return type, as google-pprof
// --text prints it: "std::vector<int>::push_back(int const&)" -> "std::vector::push_back".
std::string ShortFunctionName(std::string_view name);

struct ProfileFunction {
  std::string function;
  int64_t self_samples = 0;   // samples whose leaf frame is in it
  int64_t total_samples = 0;  // samples with it anywhere on the stack
  double self_pct = 0;        // of the profile's samples
  double total_pct = 0;
};

// The `top` functions with the most self samples (then total samples, then name), self > 0.
// Frames missing from `symbols` are named by their address ("0x7f...").
std::vector<ProfileFunction> TopFunctions(const CpuProfileData& profile,
                                          const std::map<uint64_t, std::string>& symbols,
                                          size_t top = 10);

// Runs `google-pprof --raw BINARY PROFILES...` and returns its symbol table. kNotFound when
// google-pprof is not installed; kInternal with its error output when it fails.
Result<std::map<uint64_t, std::string>> SymbolizeCpuProfiles(const std::string& binary,
                                                             const std::vector<std::string>& profiles);

// What one cooldown's profile showed.
struct CpuProfileSummary {
  std::string file;
  bool read = false;           // false: `problem` says why there is nothing
  std::string problem;
  int64_t samples = 0;
  std::vector<ProfileFunction> top_functions;  // empty when not symbolized
};

// Reads each of `files` (waiting briefly for one still being written: the last is written as the
// gate ends), symbolizes them all with one google-pprof call against `binary` and keeps each one's
// busiest functions; one summary per file, in order. Problems that concern every file (no binary,
// google-pprof missing or failing) go to `warnings`: the verdict never depends on a profile.
std::vector<CpuProfileSummary> SummarizeCpuProfiles(const std::string& binary,
                                                    const std::vector<std::string>& files,
                                                    Clock& clock, std::vector<std::string>& warnings);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_PROFILE_CPU_PROFILE_H_
