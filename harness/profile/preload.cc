#include "harness/profile/preload.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <utility>

#include "base/subprocess.h"
#include "harness/profile/heap_profile_source.h"

namespace leakgate::harness {
namespace {

namespace fs = std::filesystem;

// A preloaded profiler that dumps its profiles on a signal, read by a HeapProfileSource.
class SignalledHeapProfiler : public HeapProfiler {
 public:
  using EnvironmentFn = std::function<Result<std::map<std::string, std::string>>(
      const std::string& prefix, const std::map<std::string, std::string>& base)>;
  SignalledHeapProfiler(std::string name, int signal, EnvironmentFn environment)
      : name_(std::move(name)), signal_(signal), environment_(std::move(environment)) {}
  std::string_view name() const override { return name_; }
  Result<std::map<std::string, std::string>> Environment(
      const std::string& prefix, const std::map<std::string, std::string>& base) const override {
    return environment_(prefix, base);
  }
  std::unique_ptr<HeapSource> Attach(pid_t pid, const std::string& prefix,
                                     Clock& clock) const override {
    auto source = std::make_unique<HeapProfileSource>(pid, prefix, signal_, clock);
    source->set_name(name_);
    return source;
  }

 private:
  std::string name_;
  int signal_;
  EnvironmentFn environment_;
};

}  // namespace

std::map<std::string, std::string> WithPreloadedLibrary(std::map<std::string, std::string> base,
                                                        const std::string& library) {
  auto preload = base.find("LD_PRELOAD");
  if (preload == base.end()) {
    const char* inherited = std::getenv("LD_PRELOAD");
    base["LD_PRELOAD"] = inherited && *inherited ? std::string(inherited) + ":" + library : library;
  } else {
    preload->second += preload->second.empty() ? library : ":" + library;
  }
  return base;
}

std::string FirstExistingFile(std::initializer_list<const char*> candidates) {
  for (const char* candidate : candidates) {
    std::error_code ec;
    if (fs::exists(candidate, ec)) return candidate;
  }
  return "";
}

std::string FindTcmallocLibrary() {
  return FirstExistingFile({"/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
                            "/usr/lib/aarch64-linux-gnu/libtcmalloc.so.4",
                            "/usr/lib64/libtcmalloc.so.4", "/usr/lib/libtcmalloc.so.4"});
}

Result<std::map<std::string, std::string>> HeapProfileEnvironment(
    const std::string& prefix, int signal, const std::map<std::string, std::string>& base) {
  const std::string library = FindTcmallocLibrary();
  if (library.empty()) {
    return Fail(ErrorCode::kNotFound,
                "heap_profile needs gperftools' tcmalloc (libtcmalloc.so.4), which is not installed: "
                "install libgoogle-perftools-dev (scripts/setup.sh does)");
  }
  std::map<std::string, std::string> env = WithPreloadedLibrary(base, library);
  env["HEAPPROFILE"] = prefix;
  env["HEAPPROFILESIGNAL"] = std::to_string(signal);
  // 2-4x cheaper than the default libunwind walker, with the same stacks (PLATFORM.md).
  env["TCMALLOC_STACKTRACE_METHOD"] = "libgcc";
  // Only the signal dumps: no dumps every 1 GiB allocated or 100 MiB grown.
  env["HEAP_PROFILE_ALLOCATION_INTERVAL"] = "4611686018427387904";
  env["HEAP_PROFILE_INUSE_INTERVAL"] = "4611686018427387904";
  return env;
}

std::string FindAgentLibrary() {
  constexpr const char* kName = "libleakgate_agent.so";
  std::error_code ec;
  if (const char* named = std::getenv("LEAKGATE_AGENT_LIBRARY"); named != nullptr && *named) {
    if (fs::is_regular_file(named, ec)) return named;
  }
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty()) {
    const fs::path beside = (exe.parent_path() / ".." / "lib" / kName).lexically_normal();
    if (fs::is_regular_file(beside, ec)) return beside.string();
  }
  for (const char* folder : {"/usr/local/lib/", "/usr/lib/"}) {
    const std::string candidate = std::string(folder) + kName;
    if (fs::is_regular_file(candidate, ec)) return candidate;
  }
  return "";
}

Result<std::map<std::string, std::string>> AgentProfileEnvironment(
    const std::string& prefix, int signal, int64_t sample_period_bytes,
    const std::map<std::string, std::string>& base) {
  const std::string library = FindAgentLibrary();
  if (library.empty()) {
    const char* named = std::getenv("LEAKGATE_AGENT_LIBRARY");
    return Fail(ErrorCode::kNotFound,
                std::string("leakgate's allocation agent (libleakgate_agent.so) was not found") +
                    (named != nullptr && *named
                         ? ": LEAKGATE_AGENT_LIBRARY=" + std::string(named) + " is not a file"
                         : std::string()) +
                    "; looked in ../lib beside the leakgate program, /usr/local/lib and /usr/lib: "
                    "build the leakgate_agent target or set LEAKGATE_AGENT_LIBRARY to its path");
  }
  if (sample_period_bytes < 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "the agent's sample period must be 0 (every allocation) or a positive number of "
                "bytes, got " + std::to_string(sample_period_bytes));
  }
  std::map<std::string, std::string> env = WithPreloadedLibrary(base, library);
  env["LEAKGATE_AGENT_PREFIX"] = prefix;
  env["LEAKGATE_AGENT_SIGNAL"] = std::to_string(signal);
  env["LEAKGATE_AGENT_SAMPLE"] = std::to_string(sample_period_bytes);
  return env;
}

std::string FindCpuProfilerLibrary() {
  return FirstExistingFile({"/usr/lib/x86_64-linux-gnu/libprofiler.so.0",
                            "/usr/lib/aarch64-linux-gnu/libprofiler.so.0",
                            "/usr/lib64/libprofiler.so.0", "/usr/lib/libprofiler.so.0",
                            "/usr/local/lib/libprofiler.so.0"});
}

Result<std::map<std::string, std::string>> CpuProfileEnvironment(
    const std::string& prefix, int signal, const std::map<std::string, std::string>& base) {
  const std::string library = FindCpuProfilerLibrary();
  if (library.empty()) {
    return Fail(ErrorCode::kNotFound,
                "cpu_profile needs gperftools' CPU profiler (libprofiler.so.0), which is not "
                "installed: install libgoogle-perftools-dev (scripts/setup.sh does)");
  }
  std::map<std::string, std::string> env = WithPreloadedLibrary(base, library);
  env["CPUPROFILE"] = prefix;
  env["CPUPROFILESIGNAL"] = std::to_string(signal);
  if (!env.contains("CPUPROFILE_FREQUENCY")) env["CPUPROFILE_FREQUENCY"] = "1000";
  return env;
}

int CpuProfileSignal() { return SIGRTMIN + 6; }

bool UsesAddressSanitizer(const std::string& program) {
  UniqueFd fd(::open(program.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  auto read_at = [&fd](void* buffer, size_t size, off_t offset) {
    return ::pread(fd.get(), buffer, size, offset) == static_cast<ssize_t>(size);
  };
  Elf64_Ehdr header{};
  if (!read_at(&header, sizeof header, 0) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_shentsize != sizeof(Elf64_Shdr)) {
    return false;
  }
  for (int i = 0; i < header.e_shnum; ++i) {
    Elf64_Shdr section{};
    if (!read_at(&section, sizeof section, static_cast<off_t>(header.e_shoff + i * sizeof section))) {
      return false;
    }
    if (section.sh_type != SHT_DYNAMIC) continue;
    // The dynamic section's sh_link is its string table: the names of the needed libraries.
    Elf64_Shdr strings{};
    if (!read_at(&strings, sizeof strings,
                 static_cast<off_t>(header.e_shoff + section.sh_link * sizeof strings)) ||
        strings.sh_size > (1u << 24)) {
      return false;
    }
    std::string table(strings.sh_size, '\0');
    return read_at(table.data(), table.size(), static_cast<off_t>(strings.sh_offset)) &&
           table.find("libasan.so") != std::string::npos;
  }
  return false;
}

std::unique_ptr<HeapProfiler> MakeAgentHeapProfiler(int signal, int64_t sample_period_bytes) {
  return std::make_unique<SignalledHeapProfiler>(
      "agent", signal, [signal, sample_period_bytes](const std::string& prefix, const auto& base) {
        return AgentProfileEnvironment(prefix, signal, sample_period_bytes, base);
      });
}

std::unique_ptr<HeapProfiler> MakeGperftoolsHeapProfiler(int signal) {
  return std::make_unique<SignalledHeapProfiler>(
      "tcmalloc-profiler", signal, [signal](const std::string& prefix, const auto& base) {
        return HeapProfileEnvironment(prefix, signal, base);
      });
}

}  // namespace leakgate::harness
