// Parsers for the text of /proc and cgroup files: /proc/PID/stat (and task/TID/stat), status,
// smaps_rollup, cgroup, task/TID/children, net/tcp|tcp6|udp|udp6|unix, cgroup v2 memory.current,
// and the targets of the links in /proc/PID/fd.
//
// Every parser is a pure function of the text it is given, so it is tested on text captured from a
// real machine; none touches the file system. `source` names where the text came from (normally the
// path, e.g. "/proc/42/stat") and every error message starts with it, says which line or field was
// wrong, and what was expected (kParse; kNotFound only where documented). Sizes that the kernel
// prints in kB are returned in bytes (kB * 1024). Stateless and thread-safe.
#ifndef LEAKGATE_HARNESS_SAMPLE_PROC_PARSER_H_
#define LEAKGATE_HARNESS_SAMPLE_PROC_PARSER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace leakgate::harness {

// /proc/PID/stat or /proc/PID/task/TID/stat (see proc(5)). Times are in clock ticks
// (sysconf(_SC_CLK_TCK) per second).
struct ProcStat {
  int64_t pid = 0;
  std::string comm;  // the command or thread name; may itself contain spaces and parentheses
  char state = '?';  // R running, S sleeping, D disk sleep, Z zombie, T stopped, I idle, ...
  int64_t ppid = 0;
  int64_t pgrp = 0;
  int64_t session = 0;
  int64_t utime_ticks = 0;
  int64_t stime_ticks = 0;
  int64_t cutime_ticks = 0;  // user time of children that were waited for
  int64_t cstime_ticks = 0;  // system time of children that were waited for
  int64_t num_threads = 0;
  int64_t starttime_ticks = 0;  // since boot; with the pid it identifies a process across pid reuse
  int64_t vsize_bytes = 0;
  int64_t rss_pages = 0;
};

// The command name is everything between the first '(' and the LAST ')', since a name may contain
// ") (" itself; the numeric fields are read after that last ')'.
Result<ProcStat> ParseStat(std::string_view text, std::string_view source);

// /proc/PID/status. A field the kernel did not print (a kernel thread has no VmRSS; old kernels
// lack RssAnon) is std::nullopt. Fails when there is no "Name:" line or a known field is malformed.
struct ProcStatus {
  std::string name;
  std::optional<char> state;
  std::optional<int64_t> tgid;
  std::optional<int64_t> ppid;
  std::optional<int64_t> vm_peak_bytes;
  std::optional<int64_t> vm_size_bytes;
  std::optional<int64_t> vm_hwm_bytes;  // peak RSS since start or the last clear_refs "5"
  std::optional<int64_t> vm_rss_bytes;
  std::optional<int64_t> rss_anon_bytes;
  std::optional<int64_t> rss_file_bytes;
  std::optional<int64_t> rss_shmem_bytes;
  std::optional<int64_t> vm_swap_bytes;
  std::optional<int64_t> threads;
  std::optional<int64_t> fd_size;  // size of the fd table, not the number of open fds
};
Result<ProcStatus> ParseStatus(std::string_view text, std::string_view source);

// /proc/PID/smaps_rollup. Fails when there is no "Pss:" line.
struct SmapsRollup {
  int64_t pss_bytes = 0;
  std::optional<int64_t> rss_bytes;
  std::optional<int64_t> pss_anon_bytes;
  std::optional<int64_t> pss_file_bytes;
  std::optional<int64_t> pss_shmem_bytes;
  std::optional<int64_t> swap_bytes;
  std::optional<int64_t> swap_pss_bytes;
};
Result<SmapsRollup> ParseSmapsRollup(std::string_view text, std::string_view source);

// /proc/PID/cgroup: the path of the cgroup v2 entry, the line "0::/PATH" (e.g.
// "/user.slice/x.scope";
// "/" for the root). kNotFound when the process is only in cgroup v1 hierarchies.
Result<std::string> ParseCgroupV2Path(std::string_view text, std::string_view source);

// A cgroup v2 memory.current file: bytes charged to the whole cgroup (not only one process).
Result<int64_t> ParseMemoryCurrent(std::string_view text, std::string_view source);

// /proc/PID/task/TID/children: the pids of that thread's child processes.
Result<std::vector<int64_t>> ParseChildren(std::string_view text, std::string_view source);

// What an entry of /proc/PID/fd points at.
enum class FdKind {
  kFile,       // a path in the file system ("/var/db/x.sqlite", possibly "(deleted)")
  kDevice,     // a path under /dev/ ("/dev/null", "/dev/pts/0")
  kSocket,     // "socket:[INODE]"
  kPipe,       // "pipe:[INODE]"
  kAnonInode,  // "anon_inode:[eventfd]", "anon_inode:[eventpoll]", "anon_inode:inotify", ...
  kMemfd,      // "/memfd:NAME (deleted)"
  kOther,      // anything else ("net:[4026531840]", "mnt:[...]", unknown forms)
};
std::string_view FdKindName(FdKind kind);  // "file", "device", "socket", "pipe", "anon_inode", ...

struct FdTarget {
  FdKind kind = FdKind::kOther;
  // kFile, kDevice: the path without " (deleted)"; kMemfd: the name after "/memfd:";
  // kAnonInode: the inode type ("eventfd"); kOther: the whole link; kSocket, kPipe: empty.
  std::string name;
  std::optional<uint64_t> inode;  // kSocket and kPipe
  bool deleted = false;           // the link ended in " (deleted)"
};

// Total: every link target maps to some kind (unknown or malformed forms to kOther with the text).
FdTarget ClassifyFdTarget(std::string_view link);

// One row of /proc/PID/net/tcp, tcp6, udp or udp6 (the sockets of the process's network namespace).
struct InetSocket {
  std::string protocol;        // as given to ParseNetInet: "tcp", "tcp6", "udp", "udp6"
  std::string local_address;   // "127.0.0.1:8080", "[::1]:8080"
  std::string remote_address;  // "0.0.0.0:0" when not connected
  std::string state;  // "LISTEN", "ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT", ... ("UNCONN" for udp)
  int64_t uid = 0;
  uint64_t inode = 0;  // matches "socket:[INODE]" in /proc/PID/fd; 0 for TIME_WAIT rows
};
Result<std::vector<InetSocket>> ParseNetInet(std::string_view text, std::string_view protocol,
                                             std::string_view source);

// One row of /proc/PID/net/unix.
struct UnixSocket {
  uint64_t inode = 0;
  std::string type;   // "stream", "dgram", "seqpacket"
  std::string state;  // "unconnected", "connecting", "connected", "disconnecting"
  std::string path;   // bound path, "@name" for the abstract namespace, empty when unbound
};
Result<std::vector<UnixSocket>> ParseNetUnix(std::string_view text, std::string_view source);

// "tcp 127.0.0.1:41234 -> 127.0.0.1:8080 ESTABLISHED"; a listener reads "tcp 0.0.0.0:8080 LISTEN".
std::string DescribeSocket(const InetSocket& socket);
// "unix stream connected /run/x.sock"
std::string DescribeSocket(const UnixSocket& socket);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SAMPLE_PROC_PARSER_H_
