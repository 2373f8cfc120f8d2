// Start-up, settings, the profile writer, the dump thread and fork handling; the public API of
// include/leakgate/agent.h.
#include "agent_runtime.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "leakgate/agent.h"
#include "mapped_memory.h"
#include "next_allocator.h"
#include "resource_table.h"
#include "sample_table.h"
#include "stack_walker.h"
#include "thread_state.h"

#define LEAKGATE_EXPORT __attribute__((visibility("default")))

namespace leakgate::agent {

std::atomic<int64_t> g_sample_period{kDefaultSamplePeriod};
std::atomic<uint64_t> g_sample_generation{1};
std::atomic<bool> g_sampling_ready{false};

namespace {

constexpr size_t kPathCapacity = PATH_MAX;
constexpr int kDefaultDumpSignal = SIGUSR2;

struct Settings {
  char base_prefix[kPathCapacity] = {};  // LEAKGATE_AGENT_PREFIX as given
  char prefix[kPathCapacity] = {};       // with _PID appended in a descendant process
  int dump_signal = 0;
  bool dump_at_exit = false;
};
Settings g_settings;

pthread_mutex_t g_dump_lock = PTHREAD_MUTEX_INITIALIZER;
int g_sequence = 0;  // under g_dump_lock
// Posted by the signal handler (sem_post is async-signal-safe), one post per requested profile. Not
// a pipe: a program that closes every descriptor it did not open would close it, and the handler
// would then write into whatever reused the number.
sem_t g_wake;
using CreateThreadFunction = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
CreateThreadFunction g_create_thread = nullptr;  // the next pthread_create, found at load
bool g_fork_saved_in_agent = false;

void WriteStderr(const char* a, const char* b = "", const char* c = "", const char* d = "") {
  const char* parts[] = {"leakgate-agent: ", a, b, c, d, "\n"};
  for (const char* part : parts) {
    const size_t length = strlen(part);
    if (length > 0 && write(STDERR_FILENO, part, length) < 0) return;
  }
}

// "524288", "512KiB", "512K", "512KB", "1MiB", "1G": the units are binary, the trailing B optional.
bool ParseSize(const char* text, int64_t* bytes) {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  int64_t value = 0;
  const char* cursor = text;
  while (*cursor >= '0' && *cursor <= '9') {
    if (value > (INT64_MAX - 9) / 10) return false;
    value = value * 10 + (*cursor++ - '0');
  }
  int shift = 0;
  switch (*cursor) {
    case 'k': case 'K': shift = 10; ++cursor; break;
    case 'm': case 'M': shift = 20; ++cursor; break;
    case 'g': case 'G': shift = 30; ++cursor; break;
    default: break;
  }
  if (shift != 0 && (*cursor == 'i' || *cursor == 'I')) ++cursor;
  if (*cursor == 'b' || *cursor == 'B') ++cursor;
  if (*cursor != '\0') return false;
  if (shift != 0 && value > (INT64_MAX >> shift)) return false;
  *bytes = value << shift;
  return true;
}

bool ParseInteger(const char* text, long* value) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  *value = strtol(text, &end, 10);
  return errno == 0 && end != text && *end == '\0';
}

// Writes the decimal digits of `value` (> 0) and a terminating NUL; returns the digit count.
int FormatDecimal(long value, char* text) {
  char reversed[24];
  int count = 0;
  for (; value > 0; value /= 10) reversed[count++] = static_cast<char>('0' + value % 10);
  for (int i = 0; i < count; ++i) text[i] = reversed[count - 1 - i];
  text[count] = '\0';
  return count;
}

// The prefix of this process's profiles: the base prefix, with "_PID" in a descendant.
void UsePrefixForThisProcess(bool descendant) {
  const size_t length = strlen(g_settings.base_prefix);  // at most kPathCapacity - 32
  memcpy(g_settings.prefix, g_settings.base_prefix, length + 1);
  if (!descendant) return;
  g_settings.prefix[length] = '_';
  FormatDecimal(getpid(), g_settings.prefix + length + 1);
}

void ReadSettings() {
  const char* sample = getenv("LEAKGATE_AGENT_SAMPLE");
  if (sample != nullptr && *sample != '\0') {
    int64_t period = 0;
    if (ParseSize(sample, &period)) {
      g_sample_period.store(period, std::memory_order_relaxed);
    } else {
      WriteStderr("LEAKGATE_AGENT_SAMPLE='", sample,
                  "' is not a size (bytes, or with a unit such as 512KiB; 0 = exact); "
                  "using 524288");
    }
  }
  const char* prefix = getenv("LEAKGATE_AGENT_PREFIX");
  if (prefix == nullptr || *prefix == '\0') return;
  if (strlen(prefix) + 32 >= kPathCapacity) {
    WriteStderr("LEAKGATE_AGENT_PREFIX is too long; no profiles will be written");
    return;
  }
  strcpy(g_settings.base_prefix, prefix);
  // A process started by one that already had the agent (fork, or exec from a child) writes to
  // PREFIX_PID.NNNN.heap so that it never overwrites the first process's profiles.
  const char* root = getenv("LEAKGATE_AGENT_ROOT_PID");
  long root_pid = 0;
  const bool descendant = ParseInteger(root, &root_pid) && root_pid != getpid();
  if (root == nullptr) {
    char pid_text[24];
    FormatDecimal(getpid(), pid_text);
    setenv("LEAKGATE_AGENT_ROOT_PID", pid_text, 0);
  }
  UsePrefixForThisProcess(descendant);
  g_settings.dump_signal = kDefaultDumpSignal;
  const char* signal_text = getenv("LEAKGATE_AGENT_SIGNAL");
  if (signal_text != nullptr && *signal_text != '\0') {
    long number = 0;
    if (ParseInteger(signal_text, &number) && number >= 0 && number < NSIG) {
      g_settings.dump_signal = static_cast<int>(number);
    } else {
      WriteStderr("LEAKGATE_AGENT_SIGNAL='", signal_text,
                  "' is not a signal number; using 12 (SIGUSR2)");
    }
  }
  const char* at_exit = getenv("LEAKGATE_AGENT_DUMP_AT_EXIT");
  g_settings.dump_at_exit = at_exit != nullptr && strcmp(at_exit, "1") == 0;
}

// Buffered output to a file descriptor, without allocation.
class ProfileOutput {
 public:
  explicit ProfileOutput(int fd) : fd_(fd) {}

  void Text(const char* text, size_t length) {
    if (length > sizeof(buffer_) - used_) Flush();
    if (length > sizeof(buffer_)) {
      WriteAll(text, length);
      return;
    }
    memcpy(buffer_ + used_, text, length);
    used_ += length;
  }
  void Text(const char* text) { Text(text, strlen(text)); }

  // Right-aligned in `width` columns.
  void Integer(int64_t value, int width = 0) {
    char digits[24];
    int count = 0;
    const bool negative = value < 0;
    uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
    do {
      digits[count++] = static_cast<char>('0' + magnitude % 10);
      magnitude /= 10;
    } while (magnitude > 0);
    if (negative) digits[count++] = '-';
    for (int pad = count; pad < width; ++pad) Text(" ", 1);
    char text[24];
    for (int i = 0; i < count; ++i) text[i] = digits[count - 1 - i];
    Text(text, count);
  }

  void Address(uint64_t value) {
    char text[20] = {'0', 'x'};
    int count = 0;
    char digits[16];
    do {
      digits[count++] = "0123456789abcdef"[value & 15];
      value >>= 4;
    } while (value > 0);
    for (int i = 0; i < count; ++i) text[2 + i] = digits[count - 1 - i];
    Text(text, 2 + count);
  }

  // "LIVE_N: LIVE_BYTES [ALLOC_N: ALLOC_BYTES]", the figures of a stack line.
  void Figures(int64_t live_objects, int64_t live_bytes, int64_t alloc_objects, int64_t alloc_bytes) {
    Integer(live_objects, 6);
    Text(": ");
    Integer(live_bytes, 8);
    Text(" [");
    Integer(alloc_objects, 6);
    Text(": ");
    Integer(alloc_bytes, 8);
    Text("]");
  }

  void Frames(const StackRecord& record) {
    Text(" @");
    for (uint32_t i = 0; i < record.depth; ++i) {
      Text(" ");
      Address(record.frames[i]);
    }
    Text("\n");
  }

  // Flushes; false when any write failed (errno says why).
  bool Finish() {
    Flush();
    return ok_;
  }
  int error() const { return error_; }

 private:
  void Flush() {
    if (used_ > 0) WriteAll(buffer_, used_);
    used_ = 0;
  }
  void WriteAll(const char* data, size_t length) {
    while (ok_ && length > 0) {
      const ssize_t written = write(fd_, data, length);
      if (written < 0) {
        if (errno == EINTR) continue;
        ok_ = false;
        error_ = errno;
        return;
      }
      data += written;
      length -= static_cast<size_t>(written);
    }
  }

  int fd_;
  bool ok_ = true;
  int error_ = 0;
  size_t used_ = 0;
  char buffer_[8192];
};

void WriteTotalsLine(ProfileOutput& out, const ExactTotals& totals, int64_t period) {
  out.Text("# leakgate-agent exact_inuse_objects=");
  out.Integer(totals.alloc_objects - totals.free_objects);
  out.Text(" exact_inuse_bytes=");
  out.Integer(totals.alloc_bytes - totals.free_bytes);
  out.Text(" exact_alloc_objects=");
  out.Integer(totals.alloc_objects);
  out.Text(" exact_alloc_bytes=");
  out.Integer(totals.alloc_bytes);
  out.Text(" sample_period=");
  out.Integer(period);
  out.Text(" pid=");
  out.Integer(getpid());
  out.Text("\n");
}

// "name" of a thread of this process from /proc, whitespace turned into '_'; false when the
// thread is gone.
bool ReadThreadName(pid_t tid, char* name, size_t capacity) {
  char path[64] = "/proc/self/task/";
  size_t length = strlen(path);
  length += FormatDecimal(tid, path + length);
  memcpy(path + length, "/comm", 6);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t read_bytes = read(fd, name, capacity - 1);
  close(fd);
  if (read_bytes <= 0) return false;
  size_t end = static_cast<size_t>(read_bytes);
  while (end > 0 && (name[end - 1] == '\n' || name[end - 1] == '\0')) --end;
  name[end] = '\0';
  for (size_t i = 0; i < end; ++i) {
    if (name[i] == ' ' || name[i] == '\t') name[i] = '_';
  }
  if (end == 0) strcpy(name, "?");
  return true;
}

void WriteThreadLines(ProfileOutput& out) {
  const size_t capacity = ThreadCreationCount() + 64;
  auto* threads = static_cast<ThreadCreation*>(MapPages(capacity * sizeof(ThreadCreation)));
  if (threads == nullptr) return;
  const size_t count = CopyThreadCreations(threads, capacity);
  for (size_t i = 0; i < count; ++i) {
    char name[64];
    if (!ReadThreadName(threads[i].tid, name, sizeof(name))) continue;
    const StackRecord* record = FindStack(threads[i].stack_id);
    if (record == nullptr) continue;
    out.Text("# leakgate-agent thread ");
    out.Integer(threads[i].tid);
    out.Text(" ");
    out.Text(name);
    out.Frames(*record);
  }
  UnmapPages(threads, capacity * sizeof(ThreadCreation));
}

void WriteSocketLine(const SocketCreation& socket, void* context) {
  struct stat status;
  if (fstat(socket.fd, &status) != 0 || !S_ISSOCK(status.st_mode) ||
      status.st_ino != socket.inode) {
    return;
  }
  const StackRecord* record = FindStack(socket.stack_id);
  if (record == nullptr) return;
  auto& out = *static_cast<ProfileOutput*>(context);
  out.Text("# leakgate-agent fd ");
  out.Integer(socket.fd);
  out.Frames(*record);
}

// Fills `order` with the indices of `rows`, largest live bytes first (as gperftools orders its
// profiles).
template <typename Rows>
void OrderByLiveBytes(const Rows& rows, uint32_t* order) {
  for (size_t i = 0; i < rows.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::sort(order, order + rows.size(), [&rows](uint32_t a, uint32_t b) {
    return rows[a].live_bytes > rows[b].live_bytes;
  });
}

// The peak snapshot: its sums, then its stacks in `order`, figured like stack lines (the bracket
// repeats the live figures).
void WritePeakLines(ProfileOutput& out, const PeakStacksSnapshot& peak, const uint32_t* order) {
  int64_t objects = 0;
  int64_t bytes = 0;
  for (size_t i = 0; i < peak.size(); ++i) {
    objects += peak[i].live_objects;
    bytes += peak[i].live_bytes;
  }
  out.Text("# leakgate-agent peak_total inuse_objects=");
  out.Integer(objects);
  out.Text(" inuse_bytes=");
  out.Integer(bytes);
  out.Text("\n");
  for (size_t i = 0; i < peak.size(); ++i) {
    const PeakFigures& row = peak[order[i]];
    out.Text("# leakgate-agent peak ");
    out.Figures(row.live_objects, row.live_bytes, row.live_objects, row.live_bytes);
    out.Frames(*row.record);
  }
}

void CopyMappings(ProfileOutput& out) {
  out.Text("\nMAPPED_LIBRARIES:\n");
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char chunk[4096];
  for (;;) {
    const ssize_t got = read(fd, chunk, sizeof(chunk));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    out.Text(chunk, static_cast<size_t>(got));
  }
  close(fd);
}

int WriteProfileLocked(const char* path) {
  char temporary[kPathCapacity + 8];
  const size_t length = strlen(path);
  if (length + 5 > kPathCapacity) return -ENAMETOOLONG;
  memcpy(temporary, path, length);
  memcpy(temporary + length, ".tmp", 5);
  const int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;

  LiveStacksSnapshot stacks;
  PeakStacksSnapshot peak;
  if (!TakeProfileFigures(&stacks, &peak)) {
    close(fd);
    unlink(temporary);
    return -ENOMEM;
  }
  const ExactTotals totals = SumExactTotals();
  const int64_t period = g_sample_period.load(std::memory_order_relaxed);

  const size_t order_bytes = (stacks.size() + peak.size() + 1) * sizeof(uint32_t);
  auto* order = static_cast<uint32_t*>(MapPages(order_bytes));
  if (order == nullptr) {
    close(fd);
    unlink(temporary);
    return -ENOMEM;
  }
  uint32_t* peak_order = order + stacks.size();
  OrderByLiveBytes(stacks, order);
  OrderByLiveBytes(peak, peak_order);
  int64_t header[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < stacks.size(); ++i) {
    header[0] += stacks[i].live_objects;
    header[1] += stacks[i].live_bytes;
    header[2] += stacks[i].alloc_objects;
    header[3] += stacks[i].alloc_bytes;
  }

  ProfileOutput out(fd);
  out.Text("heap profile: ");
  out.Figures(header[0], header[1], header[2], header[3]);
  if (period > 0) {
    out.Text(" @ heap_v2/");
    out.Integer(period);
    out.Text("\n");
  } else {
    out.Text(" @ heapprofile\n");
  }
  WriteTotalsLine(out, totals, period);
  WriteThreadLines(out);
  ForEachSocketCreation(WriteSocketLine, &out);
  WritePeakLines(out, peak, peak_order);
  for (size_t i = 0; i < stacks.size(); ++i) {
    const StackFigures& row = stacks[order[i]];
    out.Figures(row.live_objects, row.live_bytes, row.alloc_objects, row.alloc_bytes);
    out.Frames(*row.record);
  }
  UnmapPages(order, order_bytes);
  CopyMappings(out);

  const bool written = out.Finish();
  const int write_error = out.error();
  if (close(fd) != 0 && written) {
    const int error = errno;
    unlink(temporary);
    return -error;
  }
  if (!written) {
    unlink(temporary);
    return -write_error;
  }
  if (rename(temporary, path) != 0) {
    const int error = errno;
    unlink(temporary);
    return -error;
  }
  return 0;
}

void OnDumpSignal(int) {
  const int saved_errno = errno;
  sem_post(&g_wake);
  errno = saved_errno;
}

void* DumpThreadMain(void*) {
  t_state.in_agent = true;
  pthread_setname_np(pthread_self(), "leakgate-agent");
  for (;;) {
    if (sem_wait(&g_wake) != 0) {
      if (errno == EINTR) continue;
      break;
    }
    const int result = WriteProfile(nullptr);
    if (result != 0) {
      const char* reason = strerrordesc_np(-result);
      WriteStderr("could not write a profile under ", g_settings.prefix, ": ",
                  reason != nullptr ? reason : "");
    }
  }
  return nullptr;
}

bool StartDumpThread() {
  if (sem_init(&g_wake, 0, 0) != 0) return false;
  // The interposed pthread_create would record this thread as the program's. Looked up at load:
  // dlsym in a forked child could wait for a loader lock held by a thread of the parent.
  if (g_create_thread == nullptr) {
    g_create_thread = reinterpret_cast<CreateThreadFunction>(dlsym(RTLD_NEXT, "pthread_create"));
  }
  if (g_create_thread == nullptr) return false;
  // The thread blocks every signal, so that the program's signals go to the program's threads.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pthread_t thread;
  const int created = g_create_thread(&thread, nullptr, DumpThreadMain, nullptr);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (created != 0) return false;
  pthread_detach(thread);
  return true;
}

void InstallDumpSignal() {
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = OnDumpSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(g_settings.dump_signal, &action, nullptr);
}

void DumpAtExit() {
  const int result = WriteProfile(nullptr);
  if (result != 0) {
    const char* reason = strerrordesc_np(-result);
    WriteStderr("could not write the exit profile under ", g_settings.prefix, ": ",
                reason != nullptr ? reason : "");
  }
}

// fork(): every agent lock is taken before and released after on both sides, so that the child
// never inherits a lock held by a thread that does not exist there. While the locks are held the
// forking thread counts but does not sample (another prepare handler may allocate).
void BeforeFork() {
  g_fork_saved_in_agent = t_state.in_agent;
  t_state.in_agent = true;
  pthread_mutex_lock(&g_dump_lock);
  LockStackWalker();
  LockResourceTable();
  LockThreadRegistry();
  LockSampleTable();
}

void AfterForkInParent() {
  UnlockSampleTable();
  UnlockThreadRegistry();
  UnlockResourceTable();
  UnlockStackWalker();
  pthread_mutex_unlock(&g_dump_lock);
  t_state.in_agent = g_fork_saved_in_agent;
}

void AfterForkInChild() {
  UnlockSampleTable();
  UnlockThreadRegistry();
  UnlockResourceTable();
  ResetStackWalkerLock();
  pthread_mutex_unlock(&g_dump_lock);
  if (g_settings.base_prefix[0] != '\0') {
    UsePrefixForThisProcess(true);
    g_sequence = 0;
    // The dump thread did not survive the fork.
    if (g_settings.dump_signal > 0 && !StartDumpThread()) {
      WriteStderr("no dump thread in the forked child");
    }
  }
  t_state.in_agent = g_fork_saved_in_agent;
}

__attribute__((constructor)) void StartAgent() {
  EnsureNextAllocator();
  InAgentScope in_agent;
  InitThreadRegistry();
  ResolveResourceFunctions();
  ReadSettings();
  SetEstimatePeriod(g_sample_period.load(std::memory_order_relaxed));
  if (!InitStackWalker()) {
    WriteStderr("libunwind.so.8 not found (Debian package libunwind8); stacks come from glibc's "
                "backtrace(), which is slower");
  }
  pthread_atfork(BeforeFork, AfterForkInParent, AfterForkInChild);
  if (g_settings.prefix[0] != '\0') {
    if (g_settings.dump_signal > 0) {
      if (StartDumpThread()) {
        InstallDumpSignal();
      } else {
        WriteStderr("could not start the dump thread; profiles only through leakgate_agent_dump");
      }
    }
    if (g_settings.dump_at_exit) atexit(DumpAtExit);
  }
  g_sampling_ready.store(true, std::memory_order_release);
  g_sample_generation.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace

int WriteProfile(const char* path) {
  InAgentScope in_agent;
  char numbered[kPathCapacity];
  pthread_mutex_lock(&g_dump_lock);
  if (path == nullptr) {
    if (g_settings.prefix[0] == '\0') {
      pthread_mutex_unlock(&g_dump_lock);
      return -EINVAL;
    }
    const int sequence = ++g_sequence;
    const size_t length = strlen(g_settings.prefix);
    memcpy(numbered, g_settings.prefix, length);
    numbered[length] = '.';
    int digits = 0;
    char reversed[12];
    for (int value = sequence; value > 0 || digits < 4; value /= 10) {
      reversed[digits++] = static_cast<char>('0' + value % 10);
    }
    size_t cursor = length + 1;
    while (digits > 0) numbered[cursor++] = reversed[--digits];
    memcpy(numbered + cursor, ".heap", 6);
    path = numbered;
  }
  const int result = WriteProfileLocked(path);
  pthread_mutex_unlock(&g_dump_lock);
  return result;
}

}  // namespace leakgate::agent

using leakgate::agent::g_sample_generation;
using leakgate::agent::g_sample_period;

extern "C" LEAKGATE_EXPORT int leakgate_agent_dump(const char* path) {
  return leakgate::agent::WriteProfile(path);
}

extern "C" LEAKGATE_EXPORT struct leakgate_agent_totals leakgate_agent_get_totals(void) {
  leakgate::agent::InAgentScope in_agent;
  const leakgate::agent::ExactTotals totals = leakgate::agent::SumExactTotals();
  struct leakgate_agent_totals result;
  result.inuse_objects = totals.alloc_objects - totals.free_objects;
  result.inuse_bytes = totals.alloc_bytes - totals.free_bytes;
  result.alloc_objects = totals.alloc_objects;
  result.alloc_bytes = totals.alloc_bytes;
  result.sampled_live = leakgate::agent::LiveSampleCount();
  result.sample_period = g_sample_period.load(std::memory_order_relaxed);
  return result;
}

extern "C" LEAKGATE_EXPORT void leakgate_agent_set_sample_period(int64_t bytes) {
  leakgate::agent::InAgentScope in_agent;
  const int64_t period = bytes < 0 ? 0 : bytes;
  g_sample_period.store(period, std::memory_order_relaxed);
  leakgate::agent::SetEstimatePeriod(period);
  g_sample_generation.fetch_add(1, std::memory_order_acq_rel);
}
