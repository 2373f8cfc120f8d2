// Test helper: the reference backtest_server run under gperftools' heap profiler, the way leakgate
// runs a target with `heap_profile: true` (HeapProfileEnvironment), or with leakgate's allocation
// agent preloaded (AgentProfileEnvironment), driven over HTTP on loopback, with heap profiles
// dumped on demand through HeapProfileSource. The server runs in its own process group, killed and
// reaped when the helper goes.
#ifndef LEAKGATE_TESTS_HARNESS_PROFILED_SERVER_H_
#define LEAKGATE_TESTS_HARNESS_PROFILED_SERVER_H_

#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "harness/profile/heap_profile.h"
#include "harness/profile/heap_profile_source.h"
#include "harness/profile/preload.h"

extern char** environ;

namespace leakgate::harness::testing {

inline std::string BacktestServerBinary() {
  return std::string(LEAKGATE_BINARY_DIR) + "/bin/backtest_server";
}

// A backtest of 4992 bars (2024-01-01 to 2024-02-22 at 15m): a quarter of the default, so that a
// run under the exact heap profiler takes about 0.3 s and still leaves 4992 klines per run.
inline constexpr const char* kShortBacktest =
    R"({"symbol":"BTCUSDT","start":"2024-01-01T00:00:00Z","end":"2024-02-22T00:00:00Z"})";
inline constexpr int64_t kShortBacktestBars = 4992;

// A fresh directory, removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "leakgate-profiles-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class ProfiledServer {
 public:
  // Starts backtest_server --faults `faults` with heap profiles going to `dir`/target.NNNN.heap:
  // gperftools' exact profiles, or with `agent_sample_period` the agent's sampled ones (0: exact).
  // nullptr with `error` set when it does not come up.
  static std::unique_ptr<ProfiledServer> Start(
      const std::string& faults, const std::string& dir, std::string* error,
      std::optional<int64_t> agent_sample_period = std::nullopt) {
    const std::string prefix = dir + "/target";
    auto profile_env = agent_sample_period
                           ? AgentProfileEnvironment(prefix, SIGUSR2, *agent_sample_period)
                           : HeapProfileEnvironment(prefix, SIGUSR2);
    if (!profile_env) {
      *error = profile_env.error().message;
      return nullptr;
    }
    std::map<std::string, std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string text = *entry;
      const size_t equals = text.find('=');
      if (equals != std::string::npos) env[text.substr(0, equals)] = text.substr(equals + 1);
    }
    for (const auto& [key, value] : *profile_env) env[key] = value;
    std::vector<std::string> env_strings;
    for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (std::string& text : env_strings) envp.push_back(text.data());
    envp.push_back(nullptr);

    std::vector<std::string> arg_strings = {BacktestServerBinary(), "--host", "127.0.0.1",
                                            "--port", "0", "--db", dir + "/backtests.db",
                                            "--faults", faults};
    std::vector<char*> argv;
    for (std::string& arg : arg_strings) argv.push_back(arg.data());
    argv.push_back(nullptr);

    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      *error = "pipe failed";
      return nullptr;
    }
    const std::string stderr_path = dir + "/server.stderr";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    pid_t pid = 0;
    const int spawned = ::posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(),
                                      envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(out[1]);
    if (spawned != 0) {
      ::close(out[0]);
      *error = "cannot start " + arg_strings[0] + ": " + std::strerror(spawned);
      return nullptr;
    }
    std::unique_ptr<ProfiledServer> server(new ProfiledServer(pid, prefix, stderr_path));
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (line.empty() || line.back() != '\n') {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd readable{out[0], POLLIN, 0};
      char c = 0;
      if (left.count() <= 0 || ::poll(&readable, 1, static_cast<int>(left.count())) <= 0 ||
          ::read(out[0], &c, 1) != 1) {
        ::close(out[0]);
        *error = "backtest_server did not print its address; stderr: " + server->StderrText();
        return nullptr;
      }
      line += c;
    }
    ::close(out[0]);
    const size_t colon = line.rfind(':');
    server->port_ = std::atoi(line.c_str() + colon + 1);
    if (line.rfind("listening on http://", 0) != 0 || server->port_ <= 0) {
      *error = "unexpected first line: " + line;
      return nullptr;
    }
    return server;
  }

  ~ProfiledServer() {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  ProfiledServer(const ProfiledServer&) = delete;
  ProfiledServer& operator=(const ProfiledServer&) = delete;

  pid_t pid() const { return pid_; }
  int port() const { return port_; }

  // Runs one backtest to its end; returns its final status ("done", "failed"), or a description
  // of what went wrong.
  std::string RunBacktest(const std::string& body = kShortBacktest) {
    httplib::Client client("127.0.0.1", port_);
    client.set_tcp_nodelay(true);
    client.set_keep_alive(false);
    client.set_read_timeout(std::chrono::seconds(30));
    const httplib::Headers headers = {{"Connection", "close"}};
    auto posted = client.Post("/api/backtest", headers, body, "application/json");
    if (!posted || posted->status != 202) return "POST /api/backtest failed";
    const auto answer = nlohmann::json::parse(posted->body, nullptr, false);
    if (!answer.is_object() || !answer.contains("session_id")) return "no session_id";
    const std::string path = "/api/backtest/" + answer["session_id"].get<std::string>();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      auto polled = client.Get(path.c_str(), headers);
      if (polled && polled->status == 200) {
        const auto state = nlohmann::json::parse(polled->body, nullptr, false);
        const std::string status =
            state.is_object() && state.contains("status") ? state["status"].get<std::string>() : "";
        if (status == "done" || status == "failed") return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return "timed out";
  }

  // Signals the server for a profile and reads it back (HeapProfileSource retries a skipped dump).
  Result<HeapProfile> Dump() {
    auto sample = source_.Read();
    if (!sample) return std::unexpected(sample.error());
    if (!source_.last_parsed()) return Fail(ErrorCode::kInternal, "no profile was parsed");
    return *source_.last_parsed();
  }
  const std::string& last_profile() const { return source_.last_profile(); }

  std::string StderrText() const {
    std::ifstream in(stderr_path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  ProfiledServer(pid_t pid, const std::string& prefix, std::string stderr_path)
      : pid_(pid),
        stderr_path_(std::move(stderr_path)),
        source_(pid, prefix, SIGUSR2, Clock::Real(), /*timeout_s=*/6.0, /*attempts=*/3) {}

  pid_t pid_;
  int port_ = 0;
  std::string stderr_path_;
  HeapProfileSource source_;
};

}  // namespace leakgate::harness::testing

#endif  // LEAKGATE_TESTS_HARNESS_PROFILED_SERVER_H_
