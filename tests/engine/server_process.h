// Test helpers that drive a real `backtest_server` process from outside: spawning it in its own
// process group (killed with the group when the helper goes), HTTP calls on loopback, a view of the
// process through /proc/PID (fds resolved to what they point at, thread names, per-thread CPU, peak
// RSS), the figures of its /metrics page, and a read-only look at its SQLite file.
#ifndef LEAKGATE_TESTS_ENGINE_SERVER_PROCESS_H_
#define LEAKGATE_TESTS_ENGINE_SERVER_PROCESS_H_

#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proc_probe.h"

extern char** environ;

namespace leakgate::engine::testing {

using Millis = std::chrono::milliseconds;

inline std::string ServerBinary() {
  return std::string(LEAKGATE_BINARY_DIR) + "/bin/backtest_server";
}

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "leakgate-service-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A backtest_server child process. Start() runs it with `--port 0` and waits for its first stdout
// line, "listening on http://HOST:PORT". The destructor kills the whole process group and reaps it.
class ServerProcess {
 public:
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& args,
                                              const std::string& stderr_path,
                                              std::string* error = nullptr,
                                              Millis timeout = Millis(10000)) {
    auto fail = [&](std::string what) -> std::unique_ptr<ServerProcess> {
      if (error != nullptr) *error = std::move(what);
      return nullptr;
    };
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return fail("pipe failed");
    std::vector<std::string> argv_strings = {ServerBinary(), "--port", "0"};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_strings) argv.push_back(arg.data());
    argv.push_back(nullptr);

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
    const int spawned = ::posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(out[1]);
    if (spawned != 0) {
      ::close(out[0]);
      return fail("posix_spawn " + argv_strings[0] + " failed: " + std::strerror(spawned));
    }
    std::unique_ptr<ServerProcess> server(new ServerProcess(pid, out[0], stderr_path));

    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (line.empty() || line.back() != '\n') {
      const auto left =
          std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
      pollfd readable{out[0], POLLIN, 0};
      if (left.count() <= 0 || ::poll(&readable, 1, static_cast<int>(left.count())) <= 0) {
        return fail("no 'listening on' line within " + std::to_string(timeout.count()) +
                    " ms; stderr: " + server->StderrText());
      }
      char c = 0;
      if (::read(out[0], &c, 1) != 1) {
        return fail("the server exited before listening; stderr: " + server->StderrText());
      }
      line += c;
    }
    server->first_line_ = line.substr(0, line.size() - 1);
    const std::string prefix = "listening on http://";
    const size_t colon = server->first_line_.rfind(':');
    if (server->first_line_.rfind(prefix, 0) != 0 || colon == std::string::npos) {
      return fail("unexpected first line '" + server->first_line_ + "'");
    }
    server->host_ = server->first_line_.substr(prefix.size(), colon - prefix.size());
    server->port_ = std::stoi(server->first_line_.substr(colon + 1));
    return server;
  }

  ~ServerProcess() {
    if (!reaped_) {
      ::kill(-pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::close(stdout_fd_);
  }

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& host() const { return host_; }
  const std::string& first_line() const { return first_line_; }

  bool Signal(int signal_number) const { return ::kill(pid_, signal_number) == 0; }

  // Kills the process group at once and reaps the server.
  void KillGroup() {
    if (reaped_) return;
    ::kill(-pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
  }

  // The exit code (128 + signal for a signal), or nullopt if the server still runs after `timeout`.
  std::optional<int> WaitExit(Millis timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int status = 0;
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(Millis(10));
    }
  }

  std::string StderrText() const {
    std::ifstream in(stderr_path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  ServerProcess(pid_t pid, int stdout_fd, std::string stderr_path)
      : pid_(pid), stdout_fd_(stdout_fd), stderr_path_(std::move(stderr_path)) {}

  pid_t pid_;
  int stdout_fd_;
  std::string stderr_path_;
  std::string first_line_;
  std::string host_;
  int port_ = 0;
  bool reaped_ = false;
};

// --- HTTP ----------------------------------------------------------------------------------------

struct HttpReply {
  int status = 0;  // 0: no response
  std::string body;
  nlohmann::json json;  // discarded when the body is not JSON
};

inline HttpReply HttpCall(int port, const std::string& method, const std::string& path,
                          const std::string& body = "") {
  httplib::Client client("127.0.0.1", port);
  client.set_tcp_nodelay(true);
  client.set_keep_alive(false);
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(30));
  // One connection per call, closed by the server after its answer, so that the server holds no
  // socket of ours between calls.
  const httplib::Headers headers = {{"Connection", "close"}};
  httplib::Result result = method == "POST"
                               ? client.Post(path.c_str(), headers, body, "application/json")
                               : client.Get(path.c_str(), headers);
  HttpReply reply;
  if (!result) return reply;
  reply.status = result->status;
  reply.body = result->body;
  reply.json = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  return reply;
}

inline HttpReply HttpGet(int port, const std::string& path) { return HttpCall(port, "GET", path); }
inline HttpReply HttpPost(int port, const std::string& path, const std::string& body) {
  return HttpCall(port, "POST", path, body);
}

// POSTs a backtest and returns its session id ("" when the answer was not 202).
inline std::string Submit(int port, const nlohmann::json& request) {
  const HttpReply reply = HttpPost(port, "/api/backtest", request.dump());
  if (reply.status != 202 || !reply.json.is_object() || !reply.json.contains("session_id"))
    return "";
  return reply.json["session_id"].get<std::string>();
}

// Polls the session until its status is one of `statuses`; returns the last answer's JSON.
inline nlohmann::json WaitForStatus(int port, const std::string& id,
                                    const std::set<std::string>& statuses = {"done", "failed"},
                                    Millis timeout = Millis(30000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json last;
  while (std::chrono::steady_clock::now() < deadline) {
    const HttpReply reply = HttpGet(port, "/api/backtest/" + id);
    last = reply.json;
    if (reply.status == 200 && last.contains("status") &&
        statuses.count(last["status"].get<std::string>()) > 0) {
      return last;
    }
    std::this_thread::sleep_for(Millis(10));
  }
  return last;
}

// Runs one backtest to completion; returns the final session JSON.
inline nlohmann::json RunBacktest(int port, const nlohmann::json& request) {
  const std::string id = Submit(port, request);
  if (id.empty()) return nlohmann::json();
  return WaitForStatus(port, id);
}

// A sample value of the /metrics page: the first line "name value" or "name{labels} value" whose
// name and labels match exactly.
inline std::optional<double> MetricValue(const std::string& metrics, const std::string& series) {
  std::istringstream lines(metrics);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

inline std::optional<double> ServerMetric(int port, const std::string& series) {
  return MetricValue(HttpGet(port, "/metrics").body, series);
}

// --- /proc/PID -----------------------------------------------------------------------------------

struct ProcessFds {
  int total = 0;
  int sockets = 0;
  std::multiset<std::string> targets;  // readlink of each fd, "socket:[inode]" for sockets

  friend bool operator==(const ProcessFds&, const ProcessFds&) = default;
};

inline ProcessFds ReadFds(pid_t pid) {
  ProcessFds fds;
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    char target[512];
    const ssize_t n = ::readlink(entry.path().c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    const std::string link(target, static_cast<size_t>(n));
    ++fds.total;
    if (link.rfind("socket:[", 0) == 0) ++fds.sockets;
    fds.targets.insert(link);
  }
  return fds;
}

inline std::set<unsigned long> SocketInodes(const ProcessFds& fds) {
  std::set<unsigned long> inodes;
  for (const std::string& target : fds.targets) {
    if (target.rfind("socket:[", 0) == 0) inodes.insert(std::stoul(target.substr(8)));
  }
  return inodes;
}

// Sockets of the process whose remote port is `port` (its client ends of connections to it).
inline int ClientSocketsTo(pid_t pid, int port) {
  return SocketsWithRemotePort("/proc/" + std::to_string(pid), SocketInodes(ReadFds(pid)), port);
}

struct ThreadCpu {
  std::string name;
  // Time on a CPU: from /proc/PID/task/TID/schedstat (nanoseconds) when the kernel has it, else
  // utime + stime from .../stat, which come in clock ticks (10 ms): summed over many threads that
  // truncation would swamp a few percent of a core measured over two seconds.
  double cpu_seconds = 0;
};

// Every thread of the process by thread id.
inline std::map<int, ThreadCpu> ReadThreads(pid_t pid) {
  std::map<int, ThreadCpu> threads;
  std::error_code ec;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    ThreadCpu thread;
    std::ifstream comm(entry.path() / "comm");
    if (!std::getline(comm, thread.name)) continue;
    std::ifstream stat_file(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int index = 3; index <= 15 && fields >> field; ++index) {
      if (index == 14) utime = std::stoull(field);
      if (index == 15) stime = std::stoull(field);
    }
    thread.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(ticks);
    std::ifstream schedstat(entry.path() / "schedstat");
    unsigned long long on_cpu_ns = 0;
    if (schedstat >> on_cpu_ns) thread.cpu_seconds = static_cast<double>(on_cpu_ns) / 1e9;
    threads[std::stoi(entry.path().filename().string())] = thread;
  }
  return threads;
}

inline std::map<std::string, int> ThreadNames(pid_t pid) {
  std::map<std::string, int> names;
  for (const auto& [tid, thread] : ReadThreads(pid)) ++names[thread.name];
  return names;
}

inline int ThreadCount(pid_t pid) {
  int count = 0;
  for (const auto& [name, n] : ThreadNames(pid)) count += n;
  return count;
}

struct IdleCpu {
  double total_pct = 0;                   // the process's CPU over the window, % of one core
  std::map<std::string, double> by_name;  // per thread name, % of one core
};

// CPU the process uses over `window`, summed over its threads (threads that ended in between count
// for what they used while alive in both readings).
inline IdleCpu MeasureCpu(pid_t pid, Millis window = Millis(2000)) {
  const auto before = ReadThreads(pid);
  const auto started = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(window);
  const auto after = ReadThreads(pid);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  IdleCpu cpu;
  for (const auto& [tid, thread] : after) {
    const auto it = before.find(tid);
    const double used = thread.cpu_seconds - (it == before.end() ? 0.0 : it->second.cpu_seconds);
    cpu.total_pct += 100 * used / seconds;
    cpu.by_name[thread.name] += 100 * used / seconds;
  }
  return cpu;
}

// A "Vm...:" figure of /proc/PID/status in bytes (0 when absent).
inline uint64_t StatusBytes(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

// Resets the process's peak RSS (VmHWM) to its current RSS; false when the kernel refuses.
inline bool ResetPeakRss(pid_t pid) {
  std::ofstream clear("/proc/" + std::to_string(pid) + "/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// Fds, sockets and threads of a process at one moment.
struct ResourceCount {
  int fds = 0;
  int sockets = 0;
  int threads = 0;
  int heartbeat_threads = 0;

  friend bool operator==(const ResourceCount&, const ResourceCount&) = default;
};

inline ResourceCount CountResources(pid_t pid) {
  const ProcessFds fds = ReadFds(pid);
  const auto names = ThreadNames(pid);
  ResourceCount count{fds.total, fds.sockets, 0, 0};
  for (const auto& [name, n] : names) count.threads += n;
  if (auto it = names.find("exch-heartbeat"); it != names.end())
    count.heartbeat_threads = it->second;
  return count;
}

inline std::string Describe(const ResourceCount& c) {
  return "fds=" + std::to_string(c.fds) + " sockets=" + std::to_string(c.sockets) +
         " threads=" + std::to_string(c.threads) +
         " heartbeat_threads=" + std::to_string(c.heartbeat_threads);
}

// The process's counts once they have stopped moving (sockets closed by the peer disappear a moment
// after the answer that ended a run): three equal readings 30 ms apart, or the last reading after
// `timeout`.
inline ResourceCount SettledResources(pid_t pid, Millis timeout = Millis(2000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ResourceCount last = CountResources(pid);
  int equal = 0;
  while (equal < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(Millis(30));
    const ResourceCount now = CountResources(pid);
    equal = now == last ? equal + 1 : 0;
    last = now;
  }
  return last;
}

// --- The database file ---------------------------------------------------------------------------

// A read-only SQLite connection to the server's database file, for checking what was stored.
class Database {
 public:
  explicit Database(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(db_);
      db_ = nullptr;
    } else {
      sqlite3_busy_timeout(db_, 5000);
    }
  }
  ~Database() { sqlite3_close(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  bool ok() const { return db_ != nullptr; }

  // The rows of a query, every column as text ("NULL" for null).
  std::vector<std::vector<std::string>> Query(const std::string& sql) const {
    std::vector<std::vector<std::string>> rows;
    sqlite3_stmt* statement = nullptr;
    if (db_ == nullptr ||
        sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
      return rows;
    }
    while (sqlite3_step(statement) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(statement); ++i) {
        const unsigned char* text = sqlite3_column_text(statement, i);
        row.push_back(text == nullptr ? "NULL" : reinterpret_cast<const char*>(text));
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(statement);
    return rows;
  }

  // The single value of a query ("" when it returned no row).
  std::string Scalar(const std::string& sql) const {
    const auto rows = Query(sql);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace leakgate::engine::testing

#endif  // LEAKGATE_TESTS_ENGINE_SERVER_PROCESS_H_
