#include "harness/profile/heap_profile_source.h"

#include <signal.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace leakgate::harness {
namespace {

namespace fs = std::filesystem;

// Reads "  123:  4567" (spaces, a number, a colon, spaces, a number) from `text` at `pos`.
bool ReadPair(std::string_view text, size_t& pos, int64_t& first, int64_t& second) {
  auto skip = [&] {
    while (pos < text.size() && text[pos] == ' ') ++pos;
  };
  auto number = [&](int64_t& out) {
    skip();
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + text.size(), out);
    if (ec != std::errc()) return false;
    pos = static_cast<size_t>(end - text.data());
    return true;
  };
  if (!number(first)) return false;
  skip();
  if (pos >= text.size() || text[pos] != ':') return false;
  ++pos;
  return number(second);
}

}  // namespace

Result<HeapProfileTotals> ParseHeapProfileHeader(std::string_view text, std::string_view source) {
  constexpr std::string_view kMagic = "heap profile:";
  const std::string_view line = text.substr(0, text.find('\n'));
  auto bad = [&] {
    return Fail(ErrorCode::kParse,
                std::string(source) + ": not a heap profile: expected a first line like "
                "'heap profile: N: BYTES [N: BYTES] @ heapprofile', got '" +
                    std::string(line.substr(0, 120)) + "'");
  };
  if (line.substr(0, kMagic.size()) != kMagic) return bad();
  HeapProfileTotals totals;
  size_t pos = kMagic.size();
  if (!ReadPair(line, pos, totals.inuse_objects, totals.inuse_bytes)) return bad();
  while (pos < line.size() && line[pos] == ' ') ++pos;
  if (pos < line.size() && line[pos] == '[') {
    ++pos;
    if (!ReadPair(line, pos, totals.alloc_objects, totals.alloc_bytes)) return bad();
  }
  return totals;
}

HeapProfileSource::HeapProfileSource(pid_t pid, std::string prefix, int signal, Clock& clock,
                                     double timeout_s, int attempts)
    : pid_(pid),
      prefix_(std::move(prefix)),
      signal_(signal),
      clock_(clock),
      timeout_s_(timeout_s),
      attempts_(attempts) {}

std::string HeapProfileSource::NewestProfile() const {
  const fs::path prefix(prefix_);
  const std::string stem = prefix.filename().string() + ".";
  std::string newest;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(prefix.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(stem, 0) != 0 || !name.ends_with(".heap")) continue;
    // Names are PREFIX.NNNN.heap with a zero-padded counter: the largest name is the newest.
    if (newest.empty() || entry.path().string() > newest) newest = entry.path().string();
  }
  return newest;
}

Result<std::optional<HeapSample>> HeapProfileSource::Read() {
  const std::string before = NewestProfile();
  std::string fresh;
  for (int attempt = 0; attempt < attempts_ && fresh.empty(); ++attempt) {
    if (::kill(pid_, signal_) != 0) {
      return Fail(ErrorCode::kUnavailable, "cannot signal the target (pid " + std::to_string(pid_) +
                                               ") for a heap profile: " + SystemErrorText(errno));
    }
    const double deadline = clock_.NowSeconds() + timeout_s_ / attempts_;
    while (clock_.NowSeconds() < deadline) {
      const std::string newest = NewestProfile();
      if (!newest.empty() && newest != before) {
        fresh = newest;
        break;
      }
      clock_.SleepFor(0.01);
    }
    if (fresh.empty() && attempt + 1 < attempts_) {
      Warn("the target skipped a heap profile dump; signalled it again");
    }
  }
  if (fresh.empty()) {
    return Fail(ErrorCode::kUnavailable,
                "no heap profile appeared at " + prefix_ + ".NNNN.heap after " +
                    std::to_string(attempts_) + " signals " + std::to_string(signal_) +
                    ": is the target running with tcmalloc and HEAPPROFILE (heap_profile: true), or with "
                    "leakgate's agent and LEAKGATE_AGENT_PREFIX?");
  }
  // gperftools creates the file before it writes the dump (the agent renames a finished one): read
  // it again until the dump is whole, that is until its MAPPED_LIBRARIES section has arrived and
  // the file stopped growing.
  Result<HeapProfile> profile = Fail(ErrorCode::kParse, fresh + ": empty");
  uintmax_t previous_size = static_cast<uintmax_t>(-1);
  int unchanged = 0;  // readings in a row with the same size
  for (int tries = 0; tries < 100; ++tries) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(fresh, ec);
    unchanged = !ec && size > 0 && size == previous_size ? unchanged + 1 : 0;
    if (unchanged > 0) {
      profile = ReadHeapProfile(fresh);
      // A dump cut short stays so: after 50 ms without change it is taken as it is.
      if (profile && (!profile->mappings.empty() || unchanged >= 5)) break;
    }
    previous_size = ec ? static_cast<uintmax_t>(-1) : size;
    clock_.SleepFor(0.01);
  }
  if (!profile) profile = ReadHeapProfile(fresh);
  if (!profile) return std::unexpected(profile.error());
  if (profile->truncated) Warn(profile->truncation);
  last_profile_ = fresh;
  HeapSample sample;
  sample.allocated_bytes = static_cast<int64_t>(std::llround(ProfileInuseBytes(*profile)));
  sample.source = "heap-profile";
  last_parsed_ = *std::move(profile);
  return std::optional<HeapSample>(sample);
}

}  // namespace leakgate::harness
