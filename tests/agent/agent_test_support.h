// Helpers for the agent's tests, independent of the harness: running a program with an environment
// and a deadline, reading the agent's profiles (a small reader of its text format), and naming the
// functions of a program's frames through `nm` and the profile's own MAPPED_LIBRARIES.
#ifndef LEAKGATE_TESTS_AGENT_AGENT_TEST_SUPPORT_H_
#define LEAKGATE_TESTS_AGENT_AGENT_TEST_SUPPORT_H_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace leakgate::agent_test {

inline std::string AgentLibrary() {
  return std::string(LEAKGATE_BINARY_DIR) + "/lib/libleakgate_agent.so";
}

inline std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct ProgramRun {
  int exit_code = -1;  // -1: killed at the deadline or by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs `argv` with the current environment plus `env`, stdout and stderr into files under `dir`;
// kills it after `timeout_s`.
inline ProgramRun RunProgram(const std::vector<std::string>& argv,
                             const std::map<std::string, std::string>& env,
                             const std::filesystem::path& dir, double timeout_s = 30) {
  const std::string out_path = (dir / "stdout").string();
  const std::string err_path = (dir / "stderr").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> env_storage;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::string name = text.substr(0, text.find('='));
    if (env.count(name) == 0 && name.rfind("LEAKGATE_AGENT_", 0) != 0) env_storage.push_back(text);
  }
  for (const auto& [name, value] : env) env_storage.push_back(name + "=" + value);
  std::vector<char*> env_pointers;
  for (std::string& entry : env_storage) env_pointers.push_back(entry.data());
  env_pointers.push_back(nullptr);
  std::vector<std::string> argv_storage = argv;
  std::vector<char*> argv_pointers;
  for (std::string& arg : argv_storage) argv_pointers.push_back(arg.data());
  argv_pointers.push_back(nullptr);
  pid_t pid = 0;
  ProgramRun run;
  const int spawned = posix_spawn(&pid, argv_storage[0].c_str(), &actions, nullptr,
                                  argv_pointers.data(), env_pointers.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    run.err = "posix_spawn " + argv_storage[0] + " failed: " + std::to_string(spawned);
    return run;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      run.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!run.timed_out && WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  run.out = ReadText(out_path);
  run.err = ReadText(err_path);
  return run;
}

// The value of a `key value` line of a program's output.
inline std::optional<double> OutputValue(const std::string& output, const std::string& key) {
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(key + " ", 0) == 0) return std::stod(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

struct ProfileFigures {
  int64_t live_objects = 0;
  int64_t live_bytes = 0;
  int64_t alloc_objects = 0;
  int64_t alloc_bytes = 0;
};

struct ProfileStack {
  ProfileFigures figures;
  std::vector<uint64_t> frames;
};

struct ResourceLine {
  int64_t id = 0;    // tid or fd
  std::string name;  // thread name ("" for fds)
  std::vector<uint64_t> frames;
};

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t offset = 0;
  std::string path;
};

struct Profile {
  bool valid = false;
  std::string error;
  ProfileFigures header;
  std::string kind;  // "heapprofile" or "heap_v2"
  int64_t period = 0;
  std::map<std::string, int64_t> exact;  // from the `# leakgate-agent exact_...` line
  std::vector<ResourceLine> threads;
  std::vector<ResourceLine> fds;
  bool has_peak_total = false;
  ProfileFigures peak_total;  // from `# leakgate-agent peak_total` (live figures only)
  std::vector<ProfileStack> peak_stacks;  // from `# leakgate-agent peak ...` lines
  std::vector<ProfileStack> stacks;
  std::vector<Mapping> mappings;
  bool has_mapped_libraries = false;
};

inline std::vector<uint64_t> ParseFrames(std::istringstream& in) {
  std::vector<uint64_t> frames;
  std::string token;
  while (in >> token) frames.push_back(std::stoull(token, nullptr, 16));
  return frames;
}

// `N: B [N: B] @ 0x... 0x...`, the figures of a stack line; false when `text` is not one.
inline bool ParseStackFigures(const std::string& text, ProfileStack* stack) {
  long long a, b, c, d;
  int consumed = 0;
  if (sscanf(text.c_str(), " %lld: %lld [ %lld: %lld] @%n", &a, &b, &c, &d, &consumed) != 4 ||
      consumed == 0) {
    return false;
  }
  stack->figures = ProfileFigures{a, b, c, d};
  std::istringstream in(text.substr(static_cast<size_t>(consumed)));
  stack->frames = ParseFrames(in);
  return true;
}

inline Profile ParseProfile(const std::string& text) {
  Profile profile;
  std::istringstream lines(text);
  std::string line;
  if (!std::getline(lines, line)) {
    profile.error = "empty";
    return profile;
  }
  long long n1, b1, n2, b2;
  char kind[64] = {};
  if (sscanf(line.c_str(), "heap profile: %lld: %lld [ %lld: %lld] @ %63s", &n1, &b1, &n2, &b2,
             kind) != 5) {
    profile.error = "bad header: " + line;
    return profile;
  }
  profile.header = ProfileFigures{n1, b1, n2, b2};
  const std::string kind_text = kind;
  const size_t slash = kind_text.find('/');
  profile.kind = kind_text.substr(0, slash);
  if (slash != std::string::npos) profile.period = std::stoll(kind_text.substr(slash + 1));
  while (std::getline(lines, line)) {
    if (line.rfind("MAPPED_LIBRARIES:", 0) == 0) {
      profile.has_mapped_libraries = true;
      break;
    }
    if (line.empty()) continue;
    if (line.rfind("# leakgate-agent ", 0) == 0) {
      std::istringstream in(line.substr(17));
      std::string first;
      in >> first;
      if (first == "thread" || first == "fd") {
        ResourceLine resource;
        in >> resource.id;
        if (first == "thread") in >> resource.name;
        std::string at;
        in >> at;
        resource.frames = ParseFrames(in);
        (first == "thread" ? profile.threads : profile.fds).push_back(resource);
      } else if (first == "peak") {
        ProfileStack stack;
        if (!ParseStackFigures(line.substr(17 + 4), &stack)) {
          profile.error = "bad peak line: " + line;
          return profile;
        }
        profile.peak_stacks.push_back(stack);
      } else if (first == "peak_total") {
        long long objects, bytes;
        if (sscanf(line.c_str(), "# leakgate-agent peak_total inuse_objects=%lld inuse_bytes=%lld",
                   &objects, &bytes) != 2) {
          profile.error = "bad peak_total line: " + line;
          return profile;
        }
        profile.has_peak_total = true;
        profile.peak_total = ProfileFigures{objects, bytes, objects, bytes};
      } else {
        std::istringstream pairs(line.substr(17));
        std::string pair;
        while (pairs >> pair) {
          const size_t equals = pair.find('=');
          if (equals == std::string::npos) continue;
          const std::string value = pair.substr(equals + 1);
          if (!value.empty() && (isdigit(value[0]) || value[0] == '-')) {
            profile.exact[pair.substr(0, equals)] = std::stoll(value);
          }
        }
      }
      continue;
    }
    ProfileStack stack;
    if (!ParseStackFigures(line, &stack)) {
      profile.error = "bad stack line: " + line;
      return profile;
    }
    profile.stacks.push_back(stack);
  }
  while (std::getline(lines, line)) {
    Mapping mapping;
    char perms[8] = {};
    char path[4096] = {};
    unsigned long long start, end, offset;
    const int fields =
        sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s %4095s", &start, &end, perms, &offset, path);
    if (fields < 4) continue;
    mapping.start = start;
    mapping.end = end;
    mapping.offset = offset;
    mapping.path = fields == 5 ? path : "";
    profile.mappings.push_back(mapping);
  }
  profile.valid = true;
  return profile;
}

inline Profile ReadProfile(const std::filesystem::path& path) {
  Profile profile = ParseProfile(ReadText(path));
  if (!profile.valid) profile.error = path.string() + ": " + profile.error;
  return profile;
}

// Function names of one program's code, from `nm`, placed where the profile says the program was
// loaded.
class ProgramSymbols {
 public:
  ProgramSymbols(const std::string& program, const Profile& profile) {
    for (const Mapping& mapping : profile.mappings) {
      if (mapping.path == std::filesystem::canonical(program).string() && mapping.offset == 0) {
        base_ = mapping.start;
        break;
      }
    }
    const std::string command = "nm -C --defined-only -S '" + program + "' 2>/dev/null";
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return;
    char line[4096];
    while (fgets(line, sizeof(line), pipe) != nullptr) {
      unsigned long long address, size;
      char type;
      int consumed = 0;
      if (sscanf(line, "%llx %llx %c %n", &address, &size, &type, &consumed) != 3) continue;
      if (type != 't' && type != 'T') continue;
      std::string name = line + consumed;
      while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
      symbols_.push_back({address, address + size, name});
    }
    pclose(pipe);
  }

  bool loaded() const { return base_ != 0 && !symbols_.empty(); }

  // The function containing return address `frame` (looked up at frame - 1), or "".
  std::string FunctionAt(uint64_t frame) const {
    if (frame <= base_) return "";
    const uint64_t offset = frame - 1 - base_;
    for (const Symbol& symbol : symbols_) {
      if (offset >= symbol.start && offset < symbol.end) return symbol.name;
    }
    return "";
  }

  // True when any frame of `frames` lies in a function whose name contains `function`.
  bool StackHas(const std::vector<uint64_t>& frames, const std::string& function) const {
    for (uint64_t frame : frames) {
      if (FunctionAt(frame).find(function) != std::string::npos) return true;
    }
    return false;
  }

 private:
  struct Symbol {
    uint64_t start;
    uint64_t end;
    std::string name;
  };
  uint64_t base_ = 0;
  std::vector<Symbol> symbols_;
};

// pprof's estimate of the live bytes behind a stack line of a heap_v2 profile.
inline double UnsampledBytes(const ProfileFigures& figures, int64_t period) {
  if (period <= 0 || figures.live_objects == 0) return static_cast<double>(figures.live_bytes);
  const double average = static_cast<double>(figures.live_bytes) / figures.live_objects;
  return figures.live_bytes / (1 - std::exp(-average / static_cast<double>(period)));
}

}  // namespace leakgate::agent_test

#endif  // LEAKGATE_TESTS_AGENT_AGENT_TEST_SUPPORT_H_
