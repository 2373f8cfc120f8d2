#include "harness/profile/heap_profile.h"

#include "base/units.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace leakgate::harness {
namespace {

// pprof's sample period for a `heap_v2` profile that names none (ReadHeapProfile in pprof).
constexpr int64_t kPprofDefaultSamplePeriod = 128 * 1024;

constexpr std::string_view kHeaderMagic = "heap profile:";
constexpr std::string_view kAgentLine = "# leakgate-agent";

// A cursor over one line, for the small grammar of heap profile lines.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : line_(line) {}

  void SkipSpaces() {
    while (pos_ < line_.size() && (line_[pos_] == ' ' || line_[pos_] == '\t')) ++pos_;
  }
  bool AtEnd() {
    SkipSpaces();
    return pos_ >= line_.size();
  }
  bool Consume(char c) {
    SkipSpaces();
    if (pos_ < line_.size() && line_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Integer(int64_t& out) {
    SkipSpaces();
    const char* begin = line_.data() + pos_;
    auto [end, ec] = std::from_chars(begin, line_.data() + line_.size(), out);
    if (ec != std::errc() || out < 0) return false;
    pos_ += static_cast<size_t>(end - begin);
    return true;
  }
  // "N: B"
  bool Pair(int64_t& count, int64_t& bytes) {
    return Integer(count) && Consume(':') && Integer(bytes);
  }
  // A hexadecimal address, with or without 0x.
  bool Address(uint64_t& out) {
    SkipSpaces();
    if (line_.substr(pos_, 2) == "0x" || line_.substr(pos_, 2) == "0X") pos_ += 2;
    const char* begin = line_.data() + pos_;
    auto [end, ec] = std::from_chars(begin, line_.data() + line_.size(), out, 16);
    if (ec != std::errc()) return false;
    pos_ += static_cast<size_t>(end - begin);
    return pos_ >= line_.size() || line_[pos_] == ' ' || line_[pos_] == '\t';
  }
  std::string_view Rest() {
    SkipSpaces();
    return line_.substr(pos_);
  }

 private:
  std::string_view line_;
  size_t pos_ = 0;
};

std::string Where(std::string_view source, size_t line_number) {
  return std::string(source) + ":" + std::to_string(line_number);
}

// "N: B [N: B]" (the bracket is optional, as in pprof's oldest profiles).
bool ReadFigures(LineReader& reader, HeapProfileTotals& figures) {
  if (!reader.Pair(figures.inuse_objects, figures.inuse_bytes)) return false;
  if (reader.Consume('[')) {
    if (!reader.Pair(figures.alloc_objects, figures.alloc_bytes)) return false;
    if (!reader.Consume(']')) return false;
  }
  return true;
}

Result<void> ParseHeader(std::string_view line, std::string_view source, HeapProfile& profile) {
  auto bad = [&](const std::string& what) {
    return Fail(ErrorCode::kParse,
                Where(source, 1) + ": not a heap profile: " + what +
                    "; expected a first line like 'heap profile: N: BYTES [N: BYTES] @ "
                    "heapprofile' or '... @ heap_v2/PERIOD', got '" +
                    Excerpt(line) + "'");
  };
  if (line.substr(0, kHeaderMagic.size()) != kHeaderMagic) return bad("no 'heap profile:'");
  LineReader reader(line.substr(kHeaderMagic.size()));
  if (!ReadFigures(reader, profile.header)) return bad("the totals cannot be read");
  if (reader.AtEnd()) {
    profile.kind = HeapProfileKind::kExact;
    return {};
  }
  if (!reader.Consume('@')) return bad("no '@' after the totals");
  const std::string_view type = reader.Rest();
  if (type == "heapprofile") {
    profile.kind = HeapProfileKind::kExact;
    return {};
  }
  const size_t slash = type.find('/');
  const std::string_view name = type.substr(0, slash);
  if (name.ends_with("heap_v2")) {
    profile.kind = HeapProfileKind::kSampled;
    profile.sample_period = kPprofDefaultSamplePeriod;
    if (slash != std::string_view::npos) {
      const std::string_view period = type.substr(slash + 1);
      int64_t value = 0;
      auto [end, ec] = std::from_chars(period.data(), period.data() + period.size(), value);
      if (ec != std::errc() || end != period.data() + period.size() || value <= 0) {
        return bad("the sample period '" + std::string(period) + "' is not a positive number");
      }
      profile.sample_period = value;
    }
    return {};
  }
  return bad("profile type '" + std::string(type) +
             "' is not supported (only 'heapprofile' and 'heap_v2/PERIOD' are)");
}

// True when the first word after "# leakgate-agent" is a key=value pair.
bool IsAgentTotalsLine(std::string_view line) {
  std::string_view rest = line.substr(kAgentLine.size());
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const std::string_view word = rest.substr(0, rest.find(' '));
  return word.find('=') != std::string_view::npos;
}

Result<void> ParseAgentLine(std::string_view line, std::string_view source, size_t number,
                            HeapProfile& profile) {
  std::istringstream fields{std::string(line.substr(kAgentLine.size()))};
  HeapProfileTotals totals;
  int seen = 0;
  std::string field;
  while (fields >> field) {
    const size_t equals = field.find('=');
    if (equals == std::string::npos) continue;
    const std::string key = field.substr(0, equals);
    const std::string text = field.substr(equals + 1);
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    const bool numeric = ec == std::errc() && end == text.data() + text.size();
    int64_t* target = nullptr;
    if (key == "exact_inuse_objects") target = &totals.inuse_objects;
    if (key == "exact_inuse_bytes") target = &totals.inuse_bytes;
    if (key == "exact_alloc_objects") target = &totals.alloc_objects;
    if (key == "exact_alloc_bytes") target = &totals.alloc_bytes;
    if (target == nullptr) continue;  // sample_period, pid and fields added later
    if (!numeric) {
      return Fail(ErrorCode::kParse, Where(source, number) + ": '" + key + "=" + text +
                                         "' in the leakgate-agent line is not a whole number");
    }
    *target = value;
    ++seen;
  }
  if (seen < 4) {
    return Fail(ErrorCode::kParse,
                Where(source, number) +
                    ": the leakgate-agent line lacks exact totals; expected '# leakgate-agent "
                    "exact_inuse_objects=N exact_inuse_bytes=N exact_alloc_objects=N "
                    "exact_alloc_bytes=N ...', got '" +
                    Excerpt(line) + "'");
  }
  profile.exact_totals = totals;
  return {};
}

Result<HeapProfileEntry> ParseStackLine(std::string_view line, std::string_view source,
                                        size_t number) {
  auto bad = [&](const std::string& what) {
    return Fail(ErrorCode::kParse,
                Where(source, number) + ": " + what +
                    "; expected a stack line 'LIVE_N: LIVE_BYTES [ALLOC_N: ALLOC_BYTES] @ 0xADDR "
                    "...' or 'MAPPED_LIBRARIES:', got '" +
                    Excerpt(line) + "'");
  };
  HeapProfileEntry entry;
  LineReader reader(line);
  if (!ReadFigures(reader, entry.figures)) return bad("the figures cannot be read");
  if (!reader.Consume('@')) return bad("no '@' before the addresses");
  while (!reader.AtEnd()) {
    uint64_t address = 0;
    if (!reader.Address(address)) return bad("a return address is not hexadecimal");
    entry.frames.push_back(address);
  }
  return entry;
}

// One /proc/PID/maps line: "START-END PERMS OFFSET DEV INODE [PATH]"; nullopt for other text.
std::optional<MappedRegion> ParseMapsLine(std::string_view line) {
  MappedRegion region;
  auto hex = [](std::string_view text, uint64_t& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
    return ec == std::errc() && end == text.data() + text.size();
  };
  auto next_field = [&line]() {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    const size_t end = line.find_first_of(" \t");
    std::string_view field = line.substr(0, end);
    line.remove_prefix(end == std::string_view::npos ? line.size() : end);
    return field;
  };
  const std::string_view range = next_field();
  const size_t dash = range.find('-');
  if (dash == std::string_view::npos || !hex(range.substr(0, dash), region.start) ||
      !hex(range.substr(dash + 1), region.end) || region.end < region.start) {
    return std::nullopt;
  }
  const std::string_view perms = next_field();
  if (perms.size() != 4) return std::nullopt;
  region.perms = std::string(perms);
  if (!hex(next_field(), region.offset)) return std::nullopt;
  if (next_field().empty()) return std::nullopt;  // device
  if (next_field().empty()) return std::nullopt;  // inode
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  region.path = std::string(line);
  return region;
}

std::string Figures(int64_t bytes, int64_t objects) {
  return std::to_string(bytes) + " bytes in " + std::to_string(objects) + " objects";
}

// Marks the profile truncated when its stacks cannot be all there is (see the header).
void CheckComplete(HeapProfile& profile, bool mappings_seen) {
  HeapProfileTotals sum;
  for (const HeapProfileEntry& entry : profile.entries) {
    sum.inuse_objects += entry.figures.inuse_objects;
    sum.inuse_bytes += entry.figures.inuse_bytes;
    sum.alloc_objects += entry.figures.alloc_objects;
    sum.alloc_bytes += entry.figures.alloc_bytes;
  }
  std::vector<std::string> reasons;
  if (!mappings_seen) {
    reasons.push_back("it has no MAPPED_LIBRARIES section (the file ends after " +
                      std::to_string(profile.entries.size()) + " stack lines)");
  }
  // Equal sums are a complete dump; gperftools drops the smallest stacks past its 1 MiB buffer,
  // which leaves the sum below the header.
  if (sum.inuse_bytes < profile.header.inuse_bytes ||
      sum.inuse_objects < profile.header.inuse_objects) {
    reasons.push_back("its stack lines hold " + Figures(sum.inuse_bytes, sum.inuse_objects) +
                      " in use, its header says " +
                      Figures(profile.header.inuse_bytes, profile.header.inuse_objects));
  } else if (!profile.exact_totals && profile.kind == HeapProfileKind::kExact &&
             (sum.alloc_bytes < profile.header.alloc_bytes ||
              sum.alloc_objects < profile.header.alloc_objects)) {
    // gperftools writes every stack, live or not: allocations missing from the lines are stacks
    // dropped past the cap (with nothing live, so the in-use figures are still whole).
    reasons.push_back("its stack lines hold " + Figures(sum.alloc_bytes, sum.alloc_objects) +
                      " allocated since the start, its header says " +
                      Figures(profile.header.alloc_bytes, profile.header.alloc_objects) +
                      " (the in-use figures are complete)");
  }
  if (reasons.empty()) return;
  profile.truncated = true;
  std::string text = profile.source + " is truncated: ";
  for (size_t i = 0; i < reasons.size(); ++i) {
    if (i > 0) text += "; ";
    text += reasons[i];
  }
  text += ". gperftools writes at most 1 MiB per dump and drops the stacks beyond it";
  profile.truncation = std::move(text);
}

}  // namespace

InuseEstimate EstimateInuse(const HeapProfile& profile, const HeapProfileEntry& entry) {
  InuseEstimate estimate{static_cast<double>(entry.figures.inuse_objects),
                         static_cast<double>(entry.figures.inuse_bytes)};
  if (profile.kind != HeapProfileKind::kSampled || profile.sample_period <= 0 ||
      entry.figures.inuse_objects <= 0 || entry.figures.inuse_bytes <= 0) {
    return estimate;
  }
  // pprof (ReadHeapProfile, heap_v2): an allocation of X bytes is sampled with probability
  // 1 - exp(-X / period).
  const double mean_size = estimate.bytes / estimate.objects;
  const double scale =
      1.0 / (1.0 - std::exp(-mean_size / static_cast<double>(profile.sample_period)));
  estimate.objects *= scale;
  estimate.bytes *= scale;
  return estimate;
}

double ProfileInuseBytes(const HeapProfile& profile) {
  if (profile.exact_totals) return static_cast<double>(profile.exact_totals->inuse_bytes);
  if (profile.kind == HeapProfileKind::kExact) {
    return static_cast<double>(profile.header.inuse_bytes);
  }
  double bytes = 0;
  for (const HeapProfileEntry& entry : profile.entries) bytes += EstimateInuse(profile, entry).bytes;
  return bytes;
}

// "thread TID NAME @ 0x...", "fd FD @ 0x...", "peak N: B [N: B] @ 0x..." after "# leakgate-agent";
// other words (added by later agents) are skipped.
Result<void> ParseAgentResourceLine(std::string_view rest, std::string_view source, size_t number,
                                    HeapProfile& profile) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const size_t space = rest.find(' ');
  const std::string_view word = rest.substr(0, space);
  const std::string_view after = space == std::string_view::npos ? "" : rest.substr(space + 1);
  auto bad = [&](const std::string& expected) {
    return Fail(ErrorCode::kParse, Where(source, number) + ": malformed leakgate-agent " +
                                       std::string(word) + " line; expected '# leakgate-agent " +
                                       expected + "', got '" + Excerpt(rest) + "'");
  };
  if (word == "peak") {
    auto entry = ParseStackLine(after, source, number);
    if (!entry) return std::unexpected(entry.error());
    profile.peak_entries.push_back(*std::move(entry));
    return {};
  }
  if (word != "thread" && word != "fd") return {};
  const std::string expected = word == "thread" ? "thread TID NAME @ 0xADDR ..." : "fd FD @ 0xADDR ...";
  const size_t at = after.find('@');
  if (at == std::string_view::npos) return bad(expected);
  std::istringstream head{std::string(after.substr(0, at))};
  CreationStack stack;
  if (!(head >> stack.id)) return bad(expected);
  if (word == "thread" && !(head >> stack.name)) return bad(expected);
  LineReader reader(after.substr(at + 1));
  while (!reader.AtEnd()) {
    uint64_t address = 0;
    if (!reader.Address(address)) return bad(expected);
    stack.frames.push_back(address);
  }
  (word == "thread" ? profile.threads : profile.sockets).push_back(std::move(stack));
  return {};
}

Result<HeapProfile> ParseHeapProfile(std::string_view text, std::string_view source) {
  HeapProfile profile;
  profile.source = std::string(source);
  size_t number = 0;
  bool mappings_seen = false;
  bool in_mappings = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (number == 1) {
      if (auto header = ParseHeader(line, source, profile); !header) {
        return std::unexpected(header.error());
      }
      continue;
    }
    if (in_mappings) {
      if (auto region = ParseMapsLine(line)) profile.mappings.push_back(std::move(*region));
      continue;
    }
    std::string_view trimmed = line;
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) {
      trimmed.remove_prefix(1);
    }
    if (trimmed.empty()) continue;
    // pprof reads the maps after either marker.
    if (trimmed.starts_with("MAPPED_LIBRARIES:") || trimmed.starts_with("--- Memory map:")) {
      in_mappings = true;
      mappings_seen = true;
      continue;
    }
    // The agent's totals line ("# leakgate-agent exact_...=N ..."); its other lines ("# leakgate-agent
    // thread ...", "... fd ...") describe resources and are not read here.
    if (trimmed.starts_with(kAgentLine) && IsAgentTotalsLine(trimmed)) {
      if (auto agent = ParseAgentLine(trimmed, source, number, profile); !agent) {
        return std::unexpected(agent.error());
      }
      continue;
    }
    if (trimmed.starts_with(kAgentLine)) {
      if (auto parsed = ParseAgentResourceLine(trimmed.substr(kAgentLine.size()), source, number,
                                               profile);
          !parsed) {
        return std::unexpected(parsed.error());
      }
      continue;
    }
    if (trimmed.front() == '#') continue;
    auto entry = ParseStackLine(trimmed, source, number);
    if (!entry) return std::unexpected(entry.error());
    profile.entries.push_back(*std::move(entry));
  }
  if (number == 0) {
    return Fail(ErrorCode::kParse,
                std::string(source) +
                    ": not a heap profile: the text is empty; expected a first line like "
                    "'heap profile: N: BYTES [N: BYTES] @ heapprofile'");
  }
  CheckComplete(profile, mappings_seen);
  return profile;
}

Result<HeapProfile> ReadHeapProfile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return Fail(ErrorCode::kNotFound, "heap profile " + path + " does not exist");
    }
    return Fail(ErrorCode::kIo, "cannot read heap profile " + path + ": " + SystemErrorText(error));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Fail(ErrorCode::kIo, "cannot read heap profile " + path);
  return ParseHeapProfile(text.str(), path);
}

}  // namespace leakgate::harness
