#include "harness/attribution.h"

#include "harness/heap_profile_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "harness/analysis.h"
#include "harness/process_sampler.h"

namespace leakgate::harness {
namespace {

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = text.find_first_not_of(' ', pos);
    if (start == std::string_view::npos) break;
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    words.push_back(text.substr(start, end - start));
    pos = end;
  }
  return words;
}

bool InetProtocol(std::string_view word) {
  return word == "tcp" || word == "tcp6" || word == "udp" || word == "udp6";
}

// "127.0.0.1:8080" -> ("127.0.0.1", "8080"); "[::1]:8080" -> ("[::1]", "8080").
std::pair<std::string_view, std::string_view> SplitEnd(std::string_view end) {
  const size_t colon = end.rfind(':');
  if (colon == std::string_view::npos) return {end, {}};
  return {end.substr(0, colon), end.substr(colon + 1)};
}

bool Wildcard(std::string_view address) { return address == "0.0.0.0" || address == "[::]"; }

// "6.4"
std::string Percent(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, value >= 10 || value == 0 ? "%.0f" : "%.1f", value);
  std::string text = buffer;
  if (text.size() > 2 && text.ends_with(".0")) text.resize(text.size() - 2);
  return text;
}

}  // namespace

SocketSites::SocketSites(std::span<const std::string> descriptions) {
  for (const std::string& description : descriptions) {
    const std::vector<std::string_view> words = Words(description);
    if (words.size() == 3 && InetProtocol(words[0]) && words[2] == "LISTEN") {
      const auto [address, port] = SplitEnd(words[1]);
      listeners_.push_back({std::string(words[0]), std::string(address), std::string(port)});
    }
  }
}

SocketSites::SocketSites(const SocketTable& table)
    : SocketSites([&] {
        std::vector<std::string> descriptions;
        descriptions.reserve(table.size());
        for (const auto& [inode, description] : table) descriptions.push_back(description);
        return descriptions;
      }()) {}

bool SocketSites::Accepted(std::string_view protocol, std::string_view local_end) const {
  const auto [address, port] = SplitEnd(local_end);
  return std::any_of(listeners_.begin(), listeners_.end(), [&](const Listener& l) {
    return l.protocol == protocol && l.port == port && (l.address == address || Wildcard(l.address));
  });
}

std::string SocketSites::SiteOf(std::string_view description) const {
  const std::vector<std::string_view> words = Words(description);
  if (words.empty()) return "socket";
  const std::string protocol(words[0]);
  if (InetProtocol(words[0])) {
    if (words.size() == 5 && words[2] == "->") {
      if (Accepted(words[0], words[1])) return protocol + " accepted on " + std::string(words[1]);
      return protocol + " -> " + std::string(words[3]);
    }
    if (words.size() == 3) {
      if (words[2] == "LISTEN") return protocol + " listening on " + std::string(words[1]);
      if (words[0].starts_with("udp")) return protocol + " on " + std::string(words[1]);
      return protocol + " unconnected";
    }
  } else if (words[0] == "unix" && words.size() >= 3) {
    // "unix TYPE STATE [PATH]": the path may hold spaces, so it is the rest after the state.
    std::string site = "unix " + std::string(words[1]);
    const size_t state_end = words[2].data() + words[2].size() - description.data();
    const size_t path = description.find_first_not_of(' ', state_end);
    if (path != std::string_view::npos) site += " " + std::string(description.substr(path));
    return site;
  }
  return std::string(description);
}

std::vector<ResolvedFd> ResolveFds(std::span<const std::string> fd_targets,
                                   const SocketTable& sockets) {
  const SocketSites sites(sockets);
  std::vector<ResolvedFd> resolved;
  resolved.reserve(fd_targets.size());
  for (const std::string& target : fd_targets) {
    ResolvedFd fd;
    if (target.starts_with("socket:[") && target.ends_with("]")) {
      fd.socket = true;
      const std::string_view digits = std::string_view(target).substr(8, target.size() - 9);
      uint64_t inode = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
      const auto it = ec == std::errc() && end == digits.data() + digits.size()
                          ? sockets.find(inode)
                          : sockets.end();
      if (it != sockets.end()) {
        fd.description = it->second;
        fd.site = sites.SiteOf(it->second);
      } else {
        fd.description = target;
        fd.site = "socket";
      }
    } else {
      fd.description = target.empty() ? "(unreadable)" : target;
      fd.site = FdSite(target);
    }
    resolved.push_back(std::move(fd));
  }
  return resolved;
}

namespace {

// The groups, busiest first (ties in name order).
std::vector<ThreadGroupCpu> BusiestFirst(std::map<std::string, ThreadGroupCpu>&& by_name) {
  std::vector<ThreadGroupCpu> groups;
  groups.reserve(by_name.size());
  for (auto& [name, group] : by_name) groups.push_back(std::move(group));
  std::stable_sort(groups.begin(), groups.end(), [](const ThreadGroupCpu& a, const ThreadGroupCpu& b) {
    return a.cpu_pct > b.cpu_pct;
  });
  return groups;
}

}  // namespace

std::vector<ThreadGroupCpu> GroupThreadCpu(std::span<const ThreadCpu> threads) {
  std::map<std::string, ThreadGroupCpu> by_name;
  for (const ThreadCpu& thread : threads) {
    ThreadGroupCpu& group = by_name[thread.name];
    group.name = thread.name;
    ++group.threads;
    group.cpu_pct += thread.cpu_percent;
  }
  return BusiestFirst(std::move(by_name));
}

std::vector<ThreadGroupCpu> MeanThreadCpu(std::span<const std::vector<ThreadGroupCpu>> windows) {
  std::map<std::string, ThreadGroupCpu> by_name;
  for (const std::vector<ThreadGroupCpu>& window : windows) {
    for (const ThreadGroupCpu& group : window) {
      ThreadGroupCpu& mean = by_name[group.name];
      mean.name = group.name;
      mean.threads = group.threads;
      mean.cpu_pct += group.cpu_pct / static_cast<double>(windows.size());
    }
  }
  return BusiestFirst(std::move(by_name));
}

std::string DescribeThreadGroup(const ThreadGroupCpu& group) {
  return group.name + " \u00d7" + std::to_string(group.threads) + ": " + Percent(group.cpu_pct) +
         " %";
}

std::vector<std::pair<ThreadGroupCpu, double>> CpuExcessByName(
    std::span<const ThreadGroupCpu> baseline, std::span<const ThreadGroupCpu> after) {
  std::map<std::string, double> before;
  for (const ThreadGroupCpu& group : baseline) before[group.name] += group.cpu_pct;
  std::vector<std::pair<ThreadGroupCpu, double>> rises;
  for (const ThreadGroupCpu& group : after) {
    const auto it = before.find(group.name);
    const double rise = group.cpu_pct - (it == before.end() ? 0.0 : it->second);
    if (rise > 0) rises.emplace_back(group, rise);
  }
  std::stable_sort(rises.begin(), rises.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return rises;
}

std::string ExplainCpuExcess(std::span<const ThreadGroupCpu> baseline,
                             std::span<const ThreadGroupCpu> after, size_t max_names) {
  std::map<std::string, double> before;
  for (const ThreadGroupCpu& group : baseline) before[group.name] += group.cpu_pct;
  std::string text;
  size_t listed = 0;
  for (const auto& [group, rise] : CpuExcessByName(baseline, after)) {
    if (listed == max_names) break;
    ++listed;
    text += (text.empty() ? "" : ", ") + DescribeThreadGroup(group) + " (baseline " +
            Percent(before.contains(group.name) ? before[group.name] : 0.0) + " %)";
  }
  return text;
}

namespace {

struct CommandOutput {
  int status = -1;  // exit status; -1 when killed or not started
  std::string out;
  std::string err;
};

// Runs argv (searched on PATH) with stdin from /dev/null, collecting stdout and stderr, killing it
// after `timeout_s`. kNotFound when the program cannot be started.
Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, double timeout_s) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, std::strerror(errno));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return Fail(ErrorCode::kIo, std::strerror(errno));
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Fail(ErrorCode::kIo, std::string("fork: ") + std::strerror(errno));
  }
  CommandOutput output;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&output.out, &output.err};
  int open_pipes = 2;
  bool timed_out = false;
  char buffer[65536];
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) output.status = WEXITSTATUS(status);
  if (output.status == 127 && output.out.empty()) {
    return Fail(ErrorCode::kNotFound, argv.front() + " could not be started");
  }
  if (timed_out) {
    return Fail(ErrorCode::kInternal, argv.front() + " did not finish within " +
                                          std::to_string(static_cast<int>(timeout_s)) + " s");
  }
  return output;
}

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

std::string FindCpuProfilerLibrary() {
  return FirstExistingFile({"/usr/lib/x86_64-linux-gnu/libprofiler.so.0",
                            "/usr/lib/aarch64-linux-gnu/libprofiler.so.0",
                            "/usr/lib64/libprofiler.so.0", "/usr/lib/libprofiler.so.0",
                            "/usr/local/lib/libprofiler.so.0"});
}

Result<std::map<std::string, std::string>> CpuProfileEnvironment(
    const std::string& prefix, int signal, const std::map<std::string, std::string>& base) {
  const std::string library = FindCpuProfilerLibrary();
  if (library.empty()) {
    return Fail(ErrorCode::kNotFound,
                "cpu_profile needs gperftools' CPU profiler (libprofiler.so.0), which is not "
                "installed: install libgoogle-perftools-dev (scripts/setup.sh does)");
  }
  std::map<std::string, std::string> env = WithPreloadedLibrary(base, library);
  env["CPUPROFILE"] = prefix;
  env["CPUPROFILESIGNAL"] = std::to_string(signal);
  if (!env.contains("CPUPROFILE_FREQUENCY")) env["CPUPROFILE_FREQUENCY"] = "1000";
  return env;
}

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

}  // namespace leakgate::harness
