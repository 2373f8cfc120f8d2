// Test helpers that look at this process through /proc: open TCP connections to a port (resolved
// from /proc/self/fd "socket:[inode]" links and /proc/self/net/tcp), threads by name
// (/proc/self/task/*/comm), and a bounded wait for a condition.
#ifndef LEAKGATE_TESTS_ENGINE_PROC_PROBE_H_
#define LEAKGATE_TESTS_ENGINE_PROC_PROBE_H_

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace leakgate::engine::testing {

// Inodes of the sockets among this process's open file descriptors.
inline std::set<unsigned long> OpenSocketInodes() {
  std::set<unsigned long> inodes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    char target[256];
    const ssize_t n = ::readlink(entry.path().c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    const std::string link(target, static_cast<size_t>(n));
    if (link.rfind("socket:[", 0) == 0) inodes.insert(std::stoul(link.substr(8)));
  }
  return inodes;
}

// Of the sockets `inodes`, those whose remote port is `port`, from the TCP tables (IPv4 and IPv6) of
// the process at `proc_dir` ("/proc/self", "/proc/1234").
inline int SocketsWithRemotePort(const std::string& proc_dir, const std::set<unsigned long>& inodes,
                                 int port) {
  int count = 0;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc_dir + table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
      unsigned long inode = 0;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      const size_t colon = remote.rfind(':');
      if (colon == std::string::npos || inode == 0) continue;
      if (std::stoi(remote.substr(colon + 1), nullptr, 16) == port && inodes.count(inode) > 0)
        ++count;
    }
  }
  return count;
}

// Open sockets of this process whose REMOTE port is `port` (client ends of connections to it), in
// any TCP state that still has an inode. Covers IPv4 and IPv6 tables.
inline int ClientSocketsTo(int port) {
  return SocketsWithRemotePort("/proc/self", OpenSocketInodes(), port);
}

inline int ThreadsNamed(const std::string& name) {
  int count = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(entry.path() / "comm");
    std::string value;
    if (std::getline(comm, value) && value == name) ++count;
  }
  return count;
}

// Polls `condition` every 5 ms until it holds or `timeout` passes; returns its last value.
inline bool WaitUntil(const std::function<bool()>& condition,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace leakgate::engine::testing

#endif  // LEAKGATE_TESTS_ENGINE_PROC_PROBE_H_
