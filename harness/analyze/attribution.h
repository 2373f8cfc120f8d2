// Attribution of what a target holds and where its idle CPU goes: each open fd resolved to what it
// points at and grouped under a site a person recognises, and the CPU of the target's threads
// grouped by thread name.
//
// Socket sites group the sockets that name the same peer or service:
//  * a connection by protocol and remote end, "tcp -> 127.0.0.1:8080" (the local ephemeral port
//    changes with every connection; the remote end names the peer);
//  * a connection accepted by a listener of the same network namespace by that listener's end,
//    "tcp accepted on 127.0.0.1:8080" (the server side of a connection);
//  * a listener by its local end, "tcp listening on 0.0.0.0:8080", with its port also when the
//    port is ephemeral: a listener stays for the gate, and its port names the connections it
//    accepts ("tcp accepted on ...");
//  * an unconnected datagram socket by its local end, "udp on 0.0.0.0:5353"; when its local port
//    is in the kernel's ephemeral range (`EphemeralPorts`: bound to port 0, or unbound and picked
//    by the kernel on the first send) the port is a different one each time and not part of what
//    the socket is, so the site is the address with "*" for the port, "udp on 127.0.0.1:*" (the
//    spelling the comparison of two results already uses for a port);
//  * a TCP socket that is neither connected nor listening as "tcp unconnected" (any port);
//  * a unix socket by its type and bound path, "unix stream /run/x.sock" ("unix stream" unnamed);
//  * a socket missing from the tables (another namespace, netlink, closed meanwhile) as "socket".
// Descriptions are those of ProcessSampler::DescribeSockets ("tcp 127.0.0.1:41234 ->
// 127.0.0.1:8080 ESTABLISHED", "tcp 0.0.0.0:8080 LISTEN", "unix stream connected /run/x.sock").
//
// Everything here is a pure function of its arguments, returns values owned by the caller and is
// thread-safe.
#ifndef LEAKGATE_HARNESS_ANALYZE_ATTRIBUTION_H_
#define LEAKGATE_HARNESS_ANALYZE_ATTRIBUTION_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/thread_cpu.h"

namespace leakgate::harness {

struct ThreadCpu;  // sample.h

// One open fd resolved to what it points at.
struct ResolvedFd {
  std::string site;         // its group: "tcp -> 127.0.0.1:8080", "pipe", "/tmp/x.db-wal"
  std::string description;  // the item itself: "tcp 127.0.0.1:41234 -> 127.0.0.1:8080
                            // ESTABLISHED", "socket:[123]" when unresolved, the path of a file
  bool socket = false;      // its link target is "socket:[INODE]"

  friend bool operator==(const ResolvedFd&, const ResolvedFd&) = default;
};

// Socket descriptions by inode, as ProcessSampler::DescribeSockets returns them.
using SocketTable = std::map<uint64_t, std::string>;

// The local ports the kernel picks from for a socket bound to port 0 (and for the local end of a
// connection): /proc/sys/net/ipv4/ip_local_port_range, "32768\t60999" by default.
struct EphemeralPorts {
  int first = 32768;
  int last = 60999;

  bool Contains(int port) const { return port >= first && port <= last; }
  friend bool operator==(const EphemeralPorts&, const EphemeralPorts&) = default;
};

// The range in the text of ip_local_port_range ("32768\t60999\n"); kInvalidArgument unless it is
// two ports 1..65535, the first not above the second.
Result<EphemeralPorts> ParseEphemeralPorts(std::string_view text);

// The sites of the sockets of one network namespace: knows its listeners, so that the server end
// of a connection is told from a client end.
class SocketSites {
 public:
  // `descriptions`: every socket of the namespace (listeners included), in any order;
  // `ephemeral`: the namespace's ephemeral port range.
  explicit SocketSites(std::span<const std::string> descriptions, EphemeralPorts ephemeral = {});
  explicit SocketSites(const SocketTable& table, EphemeralPorts ephemeral = {});

  // The site of one socket's description (see the header comment); a description that is not one
  // of the known forms is its own site.
  std::string SiteOf(std::string_view description) const;

 private:
  struct Listener {
    std::string protocol;
    std::string address;  // "0.0.0.0", "[::]", "127.0.0.1"
    std::string port;
  };
  bool Accepted(std::string_view protocol, std::string_view local_end) const;

  std::vector<Listener> listeners_;
  EphemeralPorts ephemeral_;
};

// Each fd link target ("socket:[123]", "pipe:[9]", "/tmp/x.db", "anon_inode:[eventfd]", "" when
// unreadable) resolved through the namespace's socket table (and its ephemeral port range); in the
// order given.
std::vector<ResolvedFd> ResolveFds(std::span<const std::string> fd_targets, const SocketTable& sockets,
                                   EphemeralPorts ephemeral = {});

// The CPU of `threads` (one entry per thread, as ThreadCpuPercent returns them) summed by name;
// groups using CPU first, busiest first, then by name.
std::vector<ThreadGroupCpu> GroupThreadCpu(std::span<const ThreadCpu> threads);


}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_ANALYZE_ATTRIBUTION_H_
