#include "harness/profile/cpu_profile.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "base/subprocess.h"

namespace leakgate::harness {
namespace {

std::string Hex(uint64_t value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

// Removes every innermost `open`...`close` group (with what follows it when `tail` matches)
// until none is left.
void RemoveGroups(std::string& text, char open, char close, std::string_view tail = {}) {
  while (true) {
    bool removed = false;
    for (size_t end = text.find(close); end != std::string::npos; end = text.find(close, end + 1)) {
      const size_t start = text.rfind(open, end);
      if (start == std::string::npos) continue;
      // Innermost: no other opening or closing bracket between them.
      if (text.find_first_of(std::string{open, close}, start + 1) != end) continue;
      size_t stop = end + 1;
      if (!tail.empty()) {
        const size_t after = text.find_first_not_of(' ', stop);
        if (after != std::string::npos && std::string_view(text).substr(after).starts_with(tail)) {
          stop = after + tail.size();
        }
      }
      text.erase(start, stop - start);
      removed = true;
      break;
    }
    if (!removed) return;
  }
}

}  // namespace

Result<CpuProfileData> ParseCpuProfile(std::string_view bytes, std::string_view source) {
  const auto fail = [&](const std::string& what) {
    return Fail(ErrorCode::kParse, std::string(source) + ": " + what +
                                       " (expected a gperftools CPU profile: 64-bit words 0, 3, 0, "
                                       "PERIOD, 0, then records COUNT DEPTH PCS..., then 0, 1, 0)");
  };
  const size_t words = bytes.size() / 8;
  auto word = [&](size_t i) {
    uint64_t value = 0;
    std::memcpy(&value, bytes.data() + i * 8, 8);
    return value;
  };
  if (words < 5 || word(0) != 0 || word(1) != 3 || word(2) != 0) return fail("no profile header");
  CpuProfileData profile;
  profile.period_us = static_cast<int64_t>(word(3));
  size_t i = 2 + word(1);
  while (true) {
    if (i + 2 > words) return fail("truncated after " + std::to_string(profile.stacks.size()) + " records");
    const uint64_t count = word(i);
    const uint64_t depth = word(i + 1);
    if (count == 0 && depth == 1 && i + 2 < words && word(i + 2) == 0) break;  // the trailer
    if (depth > words - i - 2) return fail("truncated: a record's stack runs past the end of the file");
    CpuProfileData::Stack stack;
    stack.count = static_cast<int64_t>(count);
    for (uint64_t d = 0; d < depth; ++d) stack.pcs.push_back(word(i + 2 + d));
    profile.total_samples += stack.count;
    profile.stacks.push_back(std::move(stack));
    i += 2 + depth;
  }
  return profile;
}

std::map<uint64_t, std::string> ParsePprofSymbols(std::string_view raw) {
  std::map<uint64_t, std::string> symbols;
  bool in_symbols = false;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t end = raw.find('\n', pos);
    if (end == std::string_view::npos) end = raw.size();
    const std::string_view line = raw.substr(pos, end - pos);
    pos = end + 1;
    if (line.starts_with("---")) {
      in_symbols = line == "--- symbol";
      continue;
    }
    if (!in_symbols || !line.starts_with("0x")) continue;
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    uint64_t address = 0;
    const auto [ptr, ec] = std::from_chars(line.data() + 2, line.data() + space, address, 16);
    if (ec == std::errc() && ptr == line.data() + space) {
      symbols[address] = std::string(line.substr(space + 1));
    }
  }
  return symbols;
}

std::string ShortFunctionName(std::string_view name) {
  std::string text(name);
  RemoveGroups(text, '(', ')', "const");
  RemoveGroups(text, '<', '>');
  // A leading return type: "void ns::f" -> "ns::f".
  const size_t space = text.rfind(' ');
  if (space != std::string::npos && text.find("::", space) != std::string::npos) {
    text.erase(0, space + 1);
  }
  return text;
}

std::vector<ProfileFunction> TopFunctions(const CpuProfileData& profile,
                                          const std::map<uint64_t, std::string>& symbols,
                                          size_t top) {
  // pprof keys a caller's frame by its return address minus one (inside the call instruction).
  auto name_of = [&](uint64_t pc, bool leaf) {
    for (uint64_t candidate : leaf ? std::vector<uint64_t>{pc, pc - 1} : std::vector<uint64_t>{pc - 1, pc}) {
      if (auto it = symbols.find(candidate); it != symbols.end()) return ShortFunctionName(it->second);
    }
    return Hex(pc);
  };
  std::map<std::string, ProfileFunction> by_name;
  for (const CpuProfileData::Stack& stack : profile.stacks) {
    std::set<std::string> seen;
    for (size_t d = 0; d < stack.pcs.size(); ++d) {
      const std::string name = name_of(stack.pcs[d], d == 0);
      ProfileFunction& f = by_name[name];
      f.function = name;
      if (d == 0) f.self_samples += stack.count;
      if (seen.insert(name).second) f.total_samples += stack.count;
    }
  }
  std::vector<ProfileFunction> functions;
  for (auto& [name, f] : by_name) {
    if (f.self_samples <= 0) continue;
    if (profile.total_samples > 0) {
      f.self_pct = 100.0 * static_cast<double>(f.self_samples) / static_cast<double>(profile.total_samples);
      f.total_pct = 100.0 * static_cast<double>(f.total_samples) / static_cast<double>(profile.total_samples);
    }
    functions.push_back(std::move(f));
  }
  std::sort(functions.begin(), functions.end(), [](const ProfileFunction& a, const ProfileFunction& b) {
    if (a.self_samples != b.self_samples) return a.self_samples > b.self_samples;
    if (a.total_samples != b.total_samples) return a.total_samples > b.total_samples;
    return a.function < b.function;
  });
  if (functions.size() > top) functions.resize(top);
  return functions;
}

Result<std::map<uint64_t, std::string>> SymbolizeCpuProfiles(const std::string& binary,
                                                             const std::vector<std::string>& profiles) {
  std::vector<std::string> argv = {"google-pprof", "--raw", binary};
  argv.insert(argv.end(), profiles.begin(), profiles.end());
  auto output = RunCommand(argv, 120);
  if (!output) {
    if (output.error().code == ErrorCode::kNotFound) {
      return Fail(ErrorCode::kNotFound,
                  "google-pprof is not installed (package google-perftools): the CPU profiles are "
                  "kept but not summarised");
    }
    return std::unexpected(output.error());
  }
  if (output->status != 0) {
    std::string err = output->err.substr(0, 400);
    return Fail(ErrorCode::kInternal,
                "google-pprof --raw " + binary + " failed (exit " + std::to_string(output->status) +
                    "): " + err);
  }
  return ParsePprofSymbols(output->out);
}

std::vector<CpuProfileSummary> SummarizeCpuProfiles(const std::string& binary,
                                                    const std::vector<std::string>& files,
                                                    Clock& clock, std::vector<std::string>& warnings) {
  std::vector<CpuProfileSummary> summaries;
  std::vector<CpuProfileData> data;
  std::vector<size_t> parsed_index;
  std::vector<std::string> parsed_files;
  for (const std::string& file : files) {
    CpuProfileSummary summary;
    summary.file = file;
    std::optional<CpuProfileData> parsed;
    for (int attempt = 0; attempt < 40 && !parsed; ++attempt) {
      if (attempt > 0) clock.SleepFor(0.05);
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        summary.problem = "it was not written";
        continue;
      }
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto profile = ParseCpuProfile(bytes, file);
      if (profile) {
        parsed = std::move(*profile);
      } else {
        summary.problem = profile.error().message;
      }
    }
    if (parsed) {
      summary.read = true;
      summary.problem.clear();
      summary.samples = parsed->total_samples;
      parsed_index.push_back(summaries.size());
      parsed_files.push_back(file);
      data.push_back(std::move(*parsed));
    }
    summaries.push_back(std::move(summary));
  }
  if (parsed_files.empty()) return summaries;
  if (binary.empty()) {
    warnings.push_back("the CPU profiles are not summarised: the target's program file is unknown");
    return summaries;
  }
  auto symbols = SymbolizeCpuProfiles(binary, parsed_files);
  if (!symbols) {
    warnings.push_back("the CPU profiles are not summarised: " + symbols.error().message);
    return summaries;
  }
  for (size_t i = 0; i < parsed_index.size(); ++i) {
    summaries[parsed_index[i]].top_functions = TopFunctions(data[i], *symbols);
  }
  return summaries;
}

}  // namespace leakgate::harness
