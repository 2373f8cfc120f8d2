#include "harness/analyze/attribution.h"


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
#include <optional>
#include <set>

#include "harness/analyze/analysis.h"
#include "harness/sample/process_sampler.h"

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
}  // namespace

Result<EphemeralPorts> ParseEphemeralPorts(std::string_view text) {
  std::string spaced(text);
  std::replace_if(spaced.begin(), spaced.end(), [](char c) { return c == '\t' || c == '\n'; }, ' ');
  const std::vector<std::string_view> words = Words(spaced);
  std::optional<int> ports[2];
  if (words.size() == 2) {
    for (size_t i = 0; i < 2; ++i) {
      int port = 0;
      const auto [end, ec] = std::from_chars(words[i].data(), words[i].data() + words[i].size(), port);
      if (ec == std::errc() && end == words[i].data() + words[i].size() && port >= 1 &&
          port <= 65535) {
        ports[i] = port;
      }
    }
  }
  if (!ports[0] || !ports[1] || *ports[0] > *ports[1]) {
    return Fail(ErrorCode::kInvalidArgument,
                "ephemeral port range: expected two ports, the first not above the second, got \"" +
                    std::string(text) + "\"");
  }
  return EphemeralPorts{.first = *ports[0], .last = *ports[1]};
}

SocketSites::SocketSites(std::span<const std::string> descriptions, EphemeralPorts ephemeral)
    : ephemeral_(ephemeral) {
  for (const std::string& description : descriptions) {
    const std::vector<std::string_view> words = Words(description);
    if (words.size() == 3 && InetProtocol(words[0]) && words[2] == "LISTEN") {
      const auto [address, port] = SplitEnd(words[1]);
      listeners_.push_back({std::string(words[0]), std::string(address), std::string(port)});
    }
  }
}

SocketSites::SocketSites(const SocketTable& table, EphemeralPorts ephemeral)
    : SocketSites(
          [&] {
            std::vector<std::string> descriptions;
            descriptions.reserve(table.size());
            for (const auto& [inode, description] : table) descriptions.push_back(description);
            return descriptions;
          }(),
          ephemeral) {}

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
      if (words[0].starts_with("udp")) {
        // A port the kernel picked differs with every socket: the site is the address alone.
        const auto [address, port] = SplitEnd(words[1]);
        int number = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
        if (ec == std::errc() && end == port.data() + port.size() && ephemeral_.Contains(number)) {
          return protocol + " on " + std::string(address) + ":*";
        }
        return protocol + " on " + std::string(words[1]);
      }
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
                                   const SocketTable& sockets, EphemeralPorts ephemeral) {
  const SocketSites sites(sockets, ephemeral);
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

std::vector<ThreadGroupCpu> GroupThreadCpu(std::span<const ThreadCpu> threads) {
  std::map<std::string, ThreadGroupCpu> by_name;
  for (const ThreadCpu& thread : threads) {
    ThreadGroupCpu& group = by_name[thread.name];
    group.name = thread.name;
    ++group.threads;
    group.cpu_pct += thread.cpu_percent;
  }
  return ThreadGroupsBusiestFirst(std::move(by_name));
}

}  // namespace leakgate::harness
