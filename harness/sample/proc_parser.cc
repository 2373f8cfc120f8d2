#include "harness/sample/proc_parser.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>

#include "base/units.h"

namespace leakgate::harness {
namespace {

// The first 80 characters of `text` quoted for an error message, with newlines made visible.
std::string Quoted(std::string_view text) {
  return "'" + leakgate::Excerpt(text, 80 + 3, ControlChars::kEscape) + "'";
}

std::unexpected<Error> ParseError(std::string_view source, std::string message) {
  return Fail(ErrorCode::kParse, std::string(source) + ": " + std::move(message));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitWhitespace(std::string_view s) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    const size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '\n') ++i;
    if (i > start) fields.push_back(s.substr(start, i - start));
  }
  return fields;
}

// Calls `fn(line)` for every line, the last one with or without a trailing newline.
template <class Fn>
void ForEachLine(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    fn(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

template <class Int>
std::optional<Int> ToInt(std::string_view s, int base = 10) {
  Int value{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

// "   1748 kB" -> 1748 * 1024.
std::optional<int64_t> KilobytesToBytes(std::string_view value) {
  value = Trim(value);
  if (value.size() < 3 || value.substr(value.size() - 2) != "kB") return std::nullopt;
  auto kb = ToInt<int64_t>(Trim(value.substr(0, value.size() - 2)));
  if (!kb || *kb < 0) return std::nullopt;
  return *kb * 1024;
}

// Reads "Key:   N kB" lines: for each line whose key is in `fields`, stores the bytes, or fails
// naming the line.
struct KilobyteField {
  std::string_view key;
  std::optional<int64_t>* out;
};

Result<void> ParseKilobyteLine(std::string_view source, std::string_view key,
                               std::string_view value, const KilobyteField* fields, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (fields[i].key != key) continue;
    auto bytes = KilobytesToBytes(value);
    if (!bytes) {
      return ParseError(source, "field " + std::string(key) + " is " + Quoted(Trim(value)) +
                                    ", expected a non-negative number followed by \"kB\"");
    }
    *fields[i].out = *bytes;
    return {};
  }
  return {};
}

std::string PortSuffix(uint16_t port) { return ":" + std::to_string(port); }

// The kernel prints each 32-bit word of an address as the hex of the word in host byte order.
std::optional<std::string> DecodeInetAddress(std::string_view hex_address, bool ipv6) {
  const size_t colon = hex_address.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view hex = hex_address.substr(0, colon);
  auto port = ToInt<uint16_t>(hex_address.substr(colon + 1), 16);
  if (!port) return std::nullopt;
  const size_t words = ipv6 ? 4 : 1;
  if (hex.size() != words * 8) return std::nullopt;
  std::array<uint32_t, 4> raw{};
  for (size_t w = 0; w < words; ++w) {
    auto word = ToInt<uint32_t>(hex.substr(w * 8, 8), 16);
    if (!word) return std::nullopt;
    raw[w] = *word;  // already the in-memory (network order) bytes once stored on this host
  }
  char buffer[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(ipv6 ? AF_INET6 : AF_INET, raw.data(), buffer, sizeof(buffer)) == nullptr) {
    return std::nullopt;
  }
  if (ipv6) return "[" + std::string(buffer) + "]" + PortSuffix(*port);
  return std::string(buffer) + PortSuffix(*port);
}

std::string_view InetStateName(unsigned state, bool udp) {
  if (udp) {
    if (state == 0x01) return "ESTABLISHED";
    if (state == 0x07) return "UNCONN";
  }
  static constexpr std::array<std::string_view, 13> kTcpStates = {
      "UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT",
      "CLOSE",   "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV"};
  return state < kTcpStates.size() ? kTcpStates[state] : "UNKNOWN";
}

}  // namespace

Result<ProcStat> ParseStat(std::string_view text, std::string_view source) {
  const size_t open = text.find('(');
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return ParseError(source,
                      "expected \"PID (COMM) STATE PPID ...\" as in proc(5), got " + Quoted(text));
  }
  ProcStat stat;
  auto pid = ToInt<int64_t>(Trim(text.substr(0, open)));
  if (!pid) {
    return ParseError(source, "field 1 (pid) is " + Quoted(Trim(text.substr(0, open))) +
                                  ", expected a decimal process id");
  }
  stat.pid = *pid;
  stat.comm = std::string(text.substr(open + 1, close - open - 1));
  const std::vector<std::string_view> rest = SplitWhitespace(text.substr(close + 1));
  // rest[0] is field 3 (state); field N of proc(5) is rest[N - 3].
  constexpr size_t kNeeded = 24 - 3 + 1;
  if (rest.size() < kNeeded) {
    return ParseError(source, "has " + std::to_string(rest.size() + 2) +
                                  " fields, expected at least 24 (up to rss) in " + Quoted(text));
  }
  if (rest[0].size() != 1) {
    return ParseError(source, "field 3 (state) is " + Quoted(rest[0]) +
                                  ", expected one letter such as R, S, D or Z");
  }
  stat.state = rest[0][0];
  struct NumericField {
    int number;
    std::string_view name;
    int64_t* out;
  };
  const NumericField fields[] = {
      {4, "ppid", &stat.ppid},
      {5, "pgrp", &stat.pgrp},
      {6, "session", &stat.session},
      {14, "utime", &stat.utime_ticks},
      {15, "stime", &stat.stime_ticks},
      {16, "cutime", &stat.cutime_ticks},
      {17, "cstime", &stat.cstime_ticks},
      {20, "num_threads", &stat.num_threads},
      {22, "starttime", &stat.starttime_ticks},
      {23, "vsize", &stat.vsize_bytes},
      {24, "rss", &stat.rss_pages},
  };
  for (const NumericField& field : fields) {
    std::string_view value = rest[static_cast<size_t>(field.number - 3)];
    auto number = ToInt<int64_t>(value);
    if (!number) {
      return ParseError(source, "field " + std::to_string(field.number) + " (" +
                                    std::string(field.name) + ") is " + Quoted(value) +
                                    ", expected a decimal integer");
    }
    *field.out = *number;
  }
  return stat;
}

Result<ProcStatus> ParseStatus(std::string_view text, std::string_view source) {
  ProcStatus status;
  bool has_name = false;
  const KilobyteField kb_fields[] = {
      {"VmPeak", &status.vm_peak_bytes},     {"VmSize", &status.vm_size_bytes},
      {"VmHWM", &status.vm_hwm_bytes},       {"VmRSS", &status.vm_rss_bytes},
      {"RssAnon", &status.rss_anon_bytes},   {"RssFile", &status.rss_file_bytes},
      {"RssShmem", &status.rss_shmem_bytes}, {"VmSwap", &status.vm_swap_bytes},
  };
  std::optional<Error> error;
  int line_number = 0;
  ForEachLine(text, [&](std::string_view line) {
    ++line_number;
    if (error || line.empty()) return;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      error =
          Error{ErrorCode::kParse, std::string(source) + ": line " + std::to_string(line_number) +
                                       " is " + Quoted(line) + ", expected \"Key:\\tValue\""};
      return;
    }
    const std::string_view key = line.substr(0, colon);
    const std::string_view value = line.substr(colon + 1);
    auto integer_field = [&](std::optional<int64_t>& out) {
      auto number = ToInt<int64_t>(Trim(value));
      if (!number) {
        error =
            Error{ErrorCode::kParse, std::string(source) + ": field " + std::string(key) + " is " +
                                         Quoted(Trim(value)) + ", expected a decimal integer"};
        return;
      }
      out = *number;
    };
    if (key == "Name") {
      has_name = true;
      // The name is the rest of the line after the tab (it may contain spaces).
      std::string_view name = value;
      if (!name.empty() && name.front() == '\t') name.remove_prefix(1);
      status.name = std::string(name);
    } else if (key == "State") {
      std::string_view state = Trim(value);
      if (state.empty()) {
        error =
            Error{ErrorCode::kParse,
                  std::string(source) + ": field State is empty, expected e.g. \"S (sleeping)\""};
        return;
      }
      status.state = state.front();
    } else if (key == "Tgid") {
      integer_field(status.tgid);
    } else if (key == "PPid") {
      integer_field(status.ppid);
    } else if (key == "Threads") {
      integer_field(status.threads);
    } else if (key == "FDSize") {
      integer_field(status.fd_size);
    } else {
      auto parsed = ParseKilobyteLine(source, key, value, kb_fields, std::size(kb_fields));
      if (!parsed) error = parsed.error();
    }
  });
  if (error) return std::unexpected(*error);
  if (!has_name) {
    return ParseError(
        source, "no \"Name:\" line, expected the text of /proc/PID/status, got " + Quoted(text));
  }
  return status;
}

Result<SmapsRollup> ParseSmapsRollup(std::string_view text, std::string_view source) {
  SmapsRollup rollup;
  std::optional<int64_t> pss;
  const KilobyteField kb_fields[] = {
      {"Rss", &rollup.rss_bytes},
      {"Pss", &pss},
      {"Pss_Anon", &rollup.pss_anon_bytes},
      {"Pss_File", &rollup.pss_file_bytes},
      {"Pss_Shmem", &rollup.pss_shmem_bytes},
      {"Swap", &rollup.swap_bytes},
      {"SwapPss", &rollup.swap_pss_bytes},
  };
  std::optional<Error> error;
  ForEachLine(text, [&](std::string_view line) {
    if (error) return;
    const size_t colon = line.find(':');
    // The first line is the address range of the rollup ("55e1...-7fff... ---p ... [rollup]").
    if (colon == std::string_view::npos || line.find(' ') < colon) return;
    auto parsed = ParseKilobyteLine(source, line.substr(0, colon), line.substr(colon + 1),
                                    kb_fields, std::size(kb_fields));
    if (!parsed) error = parsed.error();
  });
  if (error) return std::unexpected(*error);
  if (!pss) {
    return ParseError(
        source,
        "no \"Pss:\" line, expected the text of /proc/PID/smaps_rollup, got " + Quoted(text));
  }
  rollup.pss_bytes = *pss;
  return rollup;
}

Result<std::string> ParseCgroupV2Path(std::string_view text, std::string_view source) {
  std::optional<std::string> path;
  std::optional<Error> error;
  int line_number = 0;
  ForEachLine(text, [&](std::string_view line) {
    ++line_number;
    if (error || path || line.empty()) return;
    // "HIERARCHY-ID:CONTROLLERS:PATH"; the path itself may contain ':'.
    const size_t first = line.find(':');
    const size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) {
      error = Error{ErrorCode::kParse, std::string(source) + ": line " +
                                           std::to_string(line_number) + " is " + Quoted(line) +
                                           ", expected \"ID:CONTROLLERS:PATH\" such as \"0::/\""};
      return;
    }
    if (line.substr(0, second + 1) != "0::") return;
    const std::string_view cgroup = line.substr(second + 1);
    if (cgroup.empty() || cgroup.front() != '/') {
      error = Error{ErrorCode::kParse, std::string(source) + ": cgroup v2 path is " +
                                           Quoted(cgroup) + ", expected an absolute path"};
      return;
    }
    path = std::string(cgroup);
  });
  if (error) return std::unexpected(*error);
  if (!path) {
    return Fail(ErrorCode::kNotFound, std::string(source) +
                                          ": no cgroup v2 entry (a line \"0::/PATH\"); the process "
                                          "is only in cgroup v1 hierarchies");
  }
  return *path;
}

Result<int64_t> ParseMemoryCurrent(std::string_view text, std::string_view source) {
  auto bytes = ToInt<int64_t>(Trim(text));
  if (!bytes || *bytes < 0) {
    return ParseError(source, "is " + Quoted(text) + ", expected a number of bytes");
  }
  return *bytes;
}

Result<std::vector<int64_t>> ParseChildren(std::string_view text, std::string_view source) {
  std::vector<int64_t> pids;
  for (std::string_view field : SplitWhitespace(text)) {
    auto pid = ToInt<int64_t>(field);
    if (!pid || *pid <= 0) {
      return ParseError(source, "entry " + Quoted(field) +
                                    " is not a process id, expected space-separated pids");
    }
    pids.push_back(*pid);
  }
  return pids;
}

std::string_view FdKindName(FdKind kind) {
  switch (kind) {
    case FdKind::kFile:
      return "file";
    case FdKind::kDevice:
      return "device";
    case FdKind::kSocket:
      return "socket";
    case FdKind::kPipe:
      return "pipe";
    case FdKind::kAnonInode:
      return "anon_inode";
    case FdKind::kMemfd:
      return "memfd";
    case FdKind::kOther:
      return "other";
  }
  return "other";
}

FdTarget ClassifyFdTarget(std::string_view link) {
  FdTarget target;
  constexpr std::string_view kDeleted = " (deleted)";
  auto bracketed_inode = [&](std::string_view prefix) -> std::optional<uint64_t> {
    if (!link.starts_with(prefix) || !link.ends_with("]")) return std::nullopt;
    return ToInt<uint64_t>(link.substr(prefix.size(), link.size() - prefix.size() - 1));
  };
  if (auto inode = bracketed_inode("socket:[")) {
    target.kind = FdKind::kSocket;
    target.inode = inode;
    return target;
  }
  if (auto inode = bracketed_inode("pipe:[")) {
    target.kind = FdKind::kPipe;
    target.inode = inode;
    return target;
  }
  if (link.starts_with("anon_inode:")) {
    std::string_view type = link.substr(std::strlen("anon_inode:"));
    if (type.starts_with("[") && type.ends_with("]")) type = type.substr(1, type.size() - 2);
    target.kind = FdKind::kAnonInode;
    target.name = std::string(type);
    return target;
  }
  if (link.starts_with("/")) {
    std::string_view path = link;
    if (path.ends_with(kDeleted)) {
      target.deleted = true;
      path.remove_suffix(kDeleted.size());
    }
    if (path.starts_with("/memfd:")) {
      target.kind = FdKind::kMemfd;
      target.name = std::string(path.substr(std::strlen("/memfd:")));
    } else {
      target.kind = path.starts_with("/dev/") ? FdKind::kDevice : FdKind::kFile;
      target.name = std::string(path);
    }
    return target;
  }
  target.kind = FdKind::kOther;
  target.name = std::string(link);
  return target;
}

Result<std::vector<InetSocket>> ParseNetInet(std::string_view text, std::string_view protocol,
                                             std::string_view source) {
  const bool ipv6 = protocol.ends_with("6");
  const bool udp = protocol.starts_with("udp");
  std::vector<InetSocket> sockets;
  std::optional<Error> error;
  int line_number = 0;
  ForEachLine(text, [&](std::string_view line) {
    ++line_number;
    if (error) return;
    const std::vector<std::string_view> f = SplitWhitespace(line);
    if (f.empty() || f[0] == "sl") return;  // the header line
    auto fail = [&](std::string what) {
      error =
          Error{ErrorCode::kParse, std::string(source) + ": line " + std::to_string(line_number) +
                                       " " + what + " in " + Quoted(Trim(line))};
    };
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    if (f.size() < 10) {
      fail("has " + std::to_string(f.size()) +
           " fields, expected at least 10 (sl local_address rem_address st ... uid timeout inode)");
      return;
    }
    InetSocket socket;
    socket.protocol = std::string(protocol);
    auto local = DecodeInetAddress(f[1], ipv6);
    auto remote = DecodeInetAddress(f[2], ipv6);
    if (!local || !remote) {
      fail(std::string("has address ") + Quoted(local ? f[2] : f[1]) + ", expected " +
           (ipv6 ? "32" : "8") + " hex digits, ':' and a hex port");
      return;
    }
    auto state = ToInt<unsigned>(f[3], 16);
    auto uid = ToInt<int64_t>(f[7]);
    auto inode = ToInt<uint64_t>(f[9]);
    if (!state || !uid || !inode) {
      fail("has state " + Quoted(f[3]) + ", uid " + Quoted(f[7]) + ", inode " + Quoted(f[9]) +
           ", expected hex, decimal, decimal");
      return;
    }
    socket.local_address = std::move(*local);
    socket.remote_address = std::move(*remote);
    socket.state = std::string(InetStateName(*state, udp));
    socket.uid = *uid;
    socket.inode = *inode;
    sockets.push_back(std::move(socket));
  });
  if (error) return std::unexpected(*error);
  return sockets;
}

Result<std::vector<UnixSocket>> ParseNetUnix(std::string_view text, std::string_view source) {
  std::vector<UnixSocket> sockets;
  std::optional<Error> error;
  int line_number = 0;
  ForEachLine(text, [&](std::string_view line) {
    ++line_number;
    if (error) return;
    const std::vector<std::string_view> f = SplitWhitespace(line);
    if (f.empty() || f[0] == "Num") return;  // the header line
    // Num RefCount Protocol Flags Type St Inode [Path]
    auto type = f.size() >= 7 ? ToInt<unsigned>(f[4], 16) : std::nullopt;
    auto state = f.size() >= 7 ? ToInt<unsigned>(f[5], 16) : std::nullopt;
    auto inode = f.size() >= 7 ? ToInt<uint64_t>(f[6]) : std::nullopt;
    if (!type || !state || !inode) {
      error = Error{ErrorCode::kParse,
                    std::string(source) + ": line " + std::to_string(line_number) + " is " +
                        Quoted(Trim(line)) +
                        ", expected \"Num RefCount Protocol Flags Type St Inode [Path]\""};
      return;
    }
    UnixSocket socket;
    socket.inode = *inode;
    socket.type = *type == 1   ? "stream"
                  : *type == 2 ? "dgram"
                  : *type == 5 ? "seqpacket"
                               : "unknown";
    static constexpr std::array<std::string_view, 5> kStates = {"free", "unconnected", "connecting",
                                                                "connected", "disconnecting"};
    socket.state = std::string(*state < kStates.size() ? kStates[*state] : "unknown");
    if (f.size() >= 8) {
      // The path is the rest of the line (it may contain spaces).
      const size_t path_start = static_cast<size_t>(f[7].data() - line.data());
      socket.path = std::string(Trim(line.substr(path_start)));
    }
    sockets.push_back(std::move(socket));
  });
  if (error) return std::unexpected(*error);
  return sockets;
}

std::string DescribeSocket(const InetSocket& socket) {
  std::string out = socket.protocol + " " + socket.local_address;
  const bool unconnected =
      socket.remote_address == "0.0.0.0:0" || socket.remote_address == "[::]:0";
  if (!unconnected) out += " -> " + socket.remote_address;
  return out + " " + socket.state;
}

std::string DescribeSocket(const UnixSocket& socket) {
  std::string out = "unix " + socket.type + " " + socket.state;
  if (!socket.path.empty()) out += " " + socket.path;
  return out;
}

}  // namespace leakgate::harness
