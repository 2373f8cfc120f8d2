// How a profiler joins a spawned target: the environment that preloads it (gperftools' heap profiler
// with tcmalloc, leakgate's allocation agent, gperftools' CPU profiler), the check that a program
// cannot take one (AddressSanitizer owns malloc), and the heap profilers behind one small interface,
// in the spirit of Google Benchmark's MemoryManager: a HeapProfiler says how it is loaded and how a
// profile is asked for; the native agent and gperftools are two of them, and a managed runtime's
// agent plugs in beside them.
//
// Finding a library reads the file system; everything else is a pure function of its arguments.
// Thread-safe.
#ifndef LEAKGATE_HARNESS_PROFILE_PRELOAD_H_
#define LEAKGATE_HARNESS_PROFILE_PRELOAD_H_

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "harness/sample/heap_source.h"

namespace leakgate::harness {

// `base` with `library` appended to its LD_PRELOAD, or to the inherited LD_PRELOAD when `base` has
// none: how every preloaded profiler (tcmalloc, the agent, the CPU profiler) joins a target.
std::map<std::string, std::string> WithPreloadedLibrary(std::map<std::string, std::string> base,
                                                        const std::string& library);

// The first of `candidates` that exists; "" when none does.
std::string FirstExistingFile(std::initializer_list<const char*> candidates);

// Where tcmalloc (with the heap profiler) lives on this machine; empty when it is not installed.
std::string FindTcmallocLibrary();

// The environment that makes a spawned target dump heap profiles to `prefix`.NNNN.heap on `signal`:
// LD_PRELOAD (appended to any existing value in `base`), HEAPPROFILE, HEAPPROFILESIGNAL, the cheaper
// libgcc stack walker, and dump intervals large enough that only the signal dumps.
// kNotFound when tcmalloc is not installed.
Result<std::map<std::string, std::string>> HeapProfileEnvironment(
    const std::string& prefix, int signal, const std::map<std::string, std::string>& base = {});

// Where leakgate's allocation agent (libleakgate_agent.so) lives: $LEAKGATE_AGENT_LIBRARY when it
// names an existing file, else <folder of this program>/../lib/libleakgate_agent.so, else
// /usr/local/lib or /usr/lib; "" when none exists.
std::string FindAgentLibrary();

// The environment that makes a spawned target write the agent's profiles to `prefix`.NNNN.heap on
// `signal`, taking one sample per `sample_period_bytes` allocated on average (0: every allocation):
// LD_PRELOAD (appended to any existing value in `base`), LEAKGATE_AGENT_PREFIX,
// LEAKGATE_AGENT_SIGNAL, LEAKGATE_AGENT_SAMPLE. kNotFound when the agent library is not found;
// kInvalidArgument for a negative period.
Result<std::map<std::string, std::string>> AgentProfileEnvironment(
    const std::string& prefix, int signal, int64_t sample_period_bytes,
    const std::map<std::string, std::string>& base = {});

// Where gperftools' CPU profiler library is on this machine; empty when it is not installed.
std::string FindCpuProfilerLibrary();

// The environment that makes a spawned target write a CPU profile to PREFIX.N between two
// `signal`s: LD_PRELOAD (appended to `base`'s value, else to the inherited one), CPUPROFILE,
// CPUPROFILESIGNAL, and 1000 samples per CPU second unless `base` sets CPUPROFILE_FREQUENCY (an
// idle window uses little CPU; 100 per second would leave a handful of samples). kNotFound when
// the library is not installed.
Result<std::map<std::string, std::string>> CpuProfileEnvironment(
    const std::string& prefix, int signal, const std::map<std::string, std::string>& base);

// The signal that switches a spawned target's CPU profiler: a real-time signal, queued rather than
// merged, that programs rarely use (SIGUSR2 asks for heap profiles).
int CpuProfileSignal();

// True when `program` is built with AddressSanitizer: a library it needs (its .dynstr section, a
// few KiB read through the section headers rather than the whole file) is libasan. A preloaded
// heap profiler replaces malloc, which ASan must own (it refuses to start otherwise). False for a
// file that cannot be read (a name looked up in PATH is not ours to inspect).
bool UsesAddressSanitizer(const std::string& program);

// A heap profiler a gate gives a spawned target. Implementations: the native agent
// (libleakgate_agent.so) and gperftools' heap profiler (tcmalloc).
class HeapProfiler {
 public:
  virtual ~HeapProfiler() = default;
  // The name reports give the heap source: "agent", "tcmalloc-profiler".
  virtual std::string_view name() const = 0;
  // The environment that loads the profiler into a target which writes its profiles to
  // `prefix`.NNNN.heap: `base` with the profiler's variables added. Failure: kNotFound (what is
  // missing and how to install it) or kInvalidArgument (a bad setting), naming no path: the caller
  // adds where the setting came from.
  virtual Result<std::map<std::string, std::string>> Environment(
      const std::string& prefix, const std::map<std::string, std::string>& base) const = 0;
  // Once the target runs: the heap source that asks it for a profile at each measuring point.
  // Never fails; a target that does not answer makes the source's Read() fail.
  virtual std::unique_ptr<HeapSource> Attach(pid_t pid, const std::string& prefix,
                                             Clock& clock) const = 0;
};

// The agent, dumping on `signal` with one sample per `sample_period_bytes` (0: every allocation).
std::unique_ptr<HeapProfiler> MakeAgentHeapProfiler(int signal, int64_t sample_period_bytes);
// gperftools' heap profiler in a preloaded tcmalloc, dumping on `signal`.
std::unique_ptr<HeapProfiler> MakeGperftoolsHeapProfiler(int signal);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_PROFILE_PRELOAD_H_
