#include "harness/profile/symbolizer.h"

#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cxxabi.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>

#include "base/subprocess.h"

namespace leakgate::harness {
namespace {

// A batch that takes longer than this is abandoned (addr2line is killed) and its frames stay
// unknown, so a broken object cannot hang a report.
constexpr std::chrono::seconds kBatchTimeout(120);

// Where an object's bytes land in its own address space: its PT_LOAD segments.
struct ObjectLayout {
  bool fixed = false;  // ET_EXEC: addresses in the process are the object's own
  struct Segment {
    uint64_t file_offset = 0;
    uint64_t vaddr = 0;
    uint64_t size = 0;
  };
  std::vector<Segment> loads;

  // The object's own address of a byte at `file_offset`.
  uint64_t AddressOf(uint64_t file_offset) const {
    for (const Segment& segment : loads) {
      if (file_offset >= segment.file_offset && file_offset < segment.file_offset + segment.size) {
        return segment.vaddr + (file_offset - segment.file_offset);
      }
    }
    return file_offset;
  }
};

template <class Ehdr, class Phdr>
std::optional<ObjectLayout> ReadLayout(int fd, std::string& error) {
  Ehdr header;
  if (::pread(fd, &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header)) {
    error = "too short for an ELF header";
    return std::nullopt;
  }
  ObjectLayout layout;
  layout.fixed = header.e_type == ET_EXEC;
  if (header.e_phentsize != sizeof(Phdr)) return layout;
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Phdr program;
    const off_t at = static_cast<off_t>(header.e_phoff + i * sizeof(Phdr));
    if (::pread(fd, &program, sizeof program, at) != static_cast<ssize_t>(sizeof program)) break;
    if (program.p_type != PT_LOAD) continue;
    layout.loads.push_back({program.p_offset, program.p_vaddr, program.p_filesz});
  }
  return layout;
}

// The layout of an ELF object, or nullopt with `error` saying why it cannot be read.
std::optional<ObjectLayout> ReadObjectLayout(const std::string& path, std::string& error) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    error = SystemErrorText(errno);
    return std::nullopt;
  }
  unsigned char ident[EI_NIDENT];
  if (::pread(fd.get(), ident, sizeof ident, 0) != static_cast<ssize_t>(sizeof ident) ||
      std::memcmp(ident, ELFMAG, SELFMAG) != 0) {
    error = "not an ELF object";
    return std::nullopt;
  }
  if (ident[EI_CLASS] == ELFCLASS64) return ReadLayout<Elf64_Ehdr, Elf64_Phdr>(fd.get(), error);
  if (ident[EI_CLASS] == ELFCLASS32) return ReadLayout<Elf32_Ehdr, Elf32_Phdr>(fd.get(), error);
  error = "an ELF object of an unknown class";
  return std::nullopt;
}

// The function symbols of an object's .symtab (absent from stripped objects), by address.
struct FunctionSymbol {
  uint64_t start = 0;
  uint64_t size = 0;
  std::string name;  // mangled
};

template <class Ehdr, class Shdr, class Sym>
std::vector<FunctionSymbol> ReadSymbols(int fd) {
  std::vector<FunctionSymbol> symbols;
  Ehdr header;
  if (::pread(fd, &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) ||
      header.e_shentsize != sizeof(Shdr) || header.e_shnum == 0) {
    return symbols;
  }
  std::vector<Shdr> sections(header.e_shnum);
  const size_t table_size = sections.size() * sizeof(Shdr);
  if (::pread(fd, sections.data(), table_size, static_cast<off_t>(header.e_shoff)) !=
      static_cast<ssize_t>(table_size)) {
    return symbols;
  }
  for (const Shdr& section : sections) {
    if (section.sh_type != SHT_SYMTAB || section.sh_link >= sections.size()) continue;
    const Shdr& strings = sections[section.sh_link];
    std::vector<Sym> entries(section.sh_size / sizeof(Sym));
    std::string names(strings.sh_size, '\0');
    const size_t entries_size = entries.size() * sizeof(Sym);
    if (::pread(fd, entries.data(), entries_size, static_cast<off_t>(section.sh_offset)) !=
            static_cast<ssize_t>(entries_size) ||
        ::pread(fd, names.data(), names.size(), static_cast<off_t>(strings.sh_offset)) !=
            static_cast<ssize_t>(names.size())) {
      continue;
    }
    for (const Sym& entry : entries) {
      const unsigned type = entry.st_info & 0xf;
      if (type != STT_FUNC || entry.st_size == 0 || entry.st_name >= names.size()) continue;
      symbols.push_back({entry.st_value, entry.st_size, std::string(names.c_str() + entry.st_name)});
    }
  }
  std::sort(symbols.begin(), symbols.end(),
            [](const FunctionSymbol& a, const FunctionSymbol& b) { return a.start < b.start; });
  return symbols;
}

std::vector<FunctionSymbol> ReadFunctionSymbols(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  unsigned char ident[EI_NIDENT];
  if (fd.get() < 0 ||
      ::pread(fd.get(), ident, sizeof ident, 0) != static_cast<ssize_t>(sizeof ident)) {
    return {};
  }
  if (ident[EI_CLASS] == ELFCLASS64) return ReadSymbols<Elf64_Ehdr, Elf64_Shdr, Elf64_Sym>(fd.get());
  if (ident[EI_CLASS] == ELFCLASS32) return ReadSymbols<Elf32_Ehdr, Elf32_Shdr, Elf32_Sym>(fd.get());
  return {};
}

// The demangled name of the function symbol around `address`; "" when none.
std::string FunctionAt(const std::vector<FunctionSymbol>& symbols, uint64_t address) {
  auto after = std::upper_bound(
      symbols.begin(), symbols.end(), address,
      [](uint64_t value, const FunctionSymbol& symbol) { return value < symbol.start; });
  if (after == symbols.begin()) return "";
  const FunctionSymbol& symbol = *(after - 1);
  if (address >= symbol.start + symbol.size) return "";
  int status = 0;
  char* demangled = abi::__cxa_demangle(symbol.name.c_str(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled != nullptr ? demangled : symbol.name;
  std::free(demangled);
  return name;
}

struct ProcessOutput {
  std::string out;
  std::string err;
  int status = 0;  // exit code, 128 + signal, or -1 when killed for taking too long
};

// Runs `argv` with `input` on its stdin, reading its stdout and stderr while writing (so neither
// side blocks on a full pipe). kNotFound when the program cannot be started at all.
Result<ProcessOutput> RunWithInput(const std::vector<std::string>& argv, const std::string& input) {
  int in_pair[2];
  // A socket rather than a pipe for stdin: send(MSG_NOSIGNAL) reports a reader that died with
  // EPIPE instead of raising SIGPIPE in this process.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return Fail(ErrorCode::kIo, std::string("socketpair for addr2line: ") + SystemErrorText(errno));
  }
  UniqueFd in_parent(in_pair[0]), in_child(in_pair[1]);
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Fail(ErrorCode::kIo, std::string("pipe for addr2line: ") + SystemErrorText(errno));
  }
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Fail(ErrorCode::kIo, std::string("pipe for addr2line: ") + SystemErrorText(errno));
  }
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);

  ChildOptions options;
  options.argv = argv;
  options.stdin_fd = in_child.get();
  options.stdout_fd = out_write.get();
  options.stderr_fd = err_write.get();
  auto child = Spawn(options);
  in_child.Reset();
  out_write.Reset();
  err_write.Reset();
  if (!child) {
    if (child.error().code == ErrorCode::kNotFound) {
      return Fail(ErrorCode::kNotFound,
                  "cannot symbolize heap profiles: '" + argv[0] +
                      "' was not found on PATH; install binutils (apt-get install binutils)");
    }
    return Fail(ErrorCode::kNotFound, "cannot start '" + argv[0] +
                                          "' to symbolize heap profiles: " + child.error().message);
  }
  ::fcntl(in_parent.get(), F_SETFL, ::fcntl(in_parent.get(), F_GETFL) | O_NONBLOCK);

  ProcessOutput output;
  size_t written = 0;
  if (input.empty()) in_parent.Reset();
  const auto deadline = std::chrono::steady_clock::now() + kBatchTimeout;
  bool killed = false;
  while (out_read.get() >= 0 || err_read.get() >= 0) {
    std::vector<pollfd> fds;
    if (in_parent.get() >= 0) fds.push_back({in_parent.get(), POLLOUT, 0});
    if (out_read.get() >= 0) fds.push_back({out_read.get(), POLLIN, 0});
    if (err_read.get() >= 0) fds.push_back({err_read.get(), POLLIN, 0});
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      child->Signal(SIGKILL);
      killed = true;
      break;
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    for (const pollfd& entry : fds) {
      if (entry.revents == 0) continue;
      if (entry.fd == in_parent.get()) {
        const ssize_t n = ::send(entry.fd, input.data() + written, input.size() - written,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) written += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
          in_parent.Reset();  // end of input: addr2line finishes and exits
        }
        continue;
      }
      char buffer[65536];
      const ssize_t n = ::read(entry.fd, buffer, sizeof buffer);
      if (n > 0) {
        (entry.fd == out_read.get() ? output.out : output.err).append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (entry.fd == out_read.get()) {
          out_read.Reset();
        } else {
          err_read.Reset();
        }
      }
    }
  }
  in_parent.Reset();
  const int status = child->Wait().value_or(0);
  output.status = killed ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return output;
}

std::string Hex(uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

std::optional<uint64_t> ParseHex(std::string_view text) {
  if (!text.starts_with("0x")) return std::nullopt;
  text.remove_prefix(2);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// "file:line", "file:line (discriminator N)", "??:0", "??:?".
void ParseLocation(std::string_view text, SourceFrame& frame) {
  if (const size_t note = text.find(" ("); note != std::string_view::npos) {
    text = text.substr(0, note);
  }
  const size_t colon = text.rfind(':');
  std::string_view file = text.substr(0, colon);
  if (colon != std::string_view::npos) {
    const std::string_view number = text.substr(colon + 1);
    int line = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), line);
    if (ec == std::errc() && end == number.data() + number.size()) frame.line = line;
  }
  frame.file = file == "??" ? "" : std::string(file);
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const size_t newline = text.find('\n');
  if (newline != std::string::npos) text = text.substr(0, newline) + " ...";
  return text;
}

bool IsIdentifierChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
}

// Length of the operator name that starts at `at` ("operator<<", "operator new[]", "operator()"),
// or 0 when no operator name starts there.
size_t OperatorLength(std::string_view name, size_t at) {
  constexpr std::string_view kOperator = "operator";
  if (name.substr(at, kOperator.size()) != kOperator) return 0;
  if (at > 0 && IsIdentifierChar(name[at - 1])) return 0;
  size_t end = at + kOperator.size();
  if (end < name.size() && IsIdentifierChar(name[end])) return 0;  // "operatorFoo"
  if (end < name.size() && name[end] == ' ') {
    // "operator new", "operator delete[]", a conversion "operator bool".
    ++end;
    while (end < name.size() && (IsIdentifierChar(name[end]) || name[end] == ':')) ++end;
    if (name.substr(end, 2) == "[]") end += 2;
    return end - at;
  }
  if (name.substr(end, 2) == "()" || name.substr(end, 2) == "[]") return end + 2 - at;
  constexpr std::string_view kSymbols = "<>=!+-*/%^&|~,";
  while (end < name.size() && kSymbols.find(name[end]) != std::string_view::npos) ++end;
  // "operator< <int>": the space before template arguments belongs to the name.
  if (name.substr(end, 2) == " <") ++end;
  return end - at;
}

}  // namespace

std::string FunctionNameWithoutParameters(std::string_view name) {
  for (size_t clone; (clone = name.rfind(" [clone ")) != std::string_view::npos &&
                     name.ends_with("]");) {
    name = name.substr(0, clone);
  }
  for (bool stripped = true; stripped;) {
    stripped = false;
    for (std::string_view suffix : {" const", " volatile", " &&", " &", " noexcept"}) {
      if (name.ends_with(suffix)) {
        name.remove_suffix(suffix.size());
        stripped = true;
      }
    }
  }
  // The parameter list: the parentheses that close the name, unless they are "operator()".
  if (name.ends_with(")")) {
    int depth = 0;
    size_t open = std::string_view::npos;
    for (size_t i = name.size(); i-- > 0;) {
      if (name[i] == ')') ++depth;
      if (name[i] == '(' && --depth == 0) {
        open = i;
        break;
      }
    }
    if (open != std::string_view::npos && open > 0 && !name.substr(0, open).ends_with("operator")) {
      name = name.substr(0, open);
    }
  }
  // The return type ends at the last space outside brackets (operator names skipped).
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    if (const size_t length = OperatorLength(name, i); length > 0) {
      i += length - 1;
      continue;
    }
    const char c = name[i];
    if (c == '<' || c == '(' || c == '[' || c == '{') ++depth;
    if (c == '>' || c == ')' || c == ']' || c == '}') --depth;
    if (c == ' ' && depth == 0) start = i + 1;
  }
  return std::string(name.substr(start));
}

namespace {

// True when `bare` (a name as the debug information gives it, perhaps without its scope) names
// the function `full`.
bool NamesSameFunction(std::string_view bare, std::string_view full) {
  const std::string short_name = FunctionNameWithoutParameters(bare);
  const std::string long_name = FunctionNameWithoutParameters(full);
  if (short_name.empty()) return false;
  return short_name == long_name || long_name.ends_with("::" + short_name);
}

// The frames of one address (inlined first, the real frame last) with the names addr2line gets
// wrong put right: a real frame named without its scope takes its symbol's name; an inlined frame
// named after the function around it (binutils does so when the inlined subroutine has no name it
// can find) loses that name.
void CompleteNames(std::vector<SourceFrame>& frames, const std::vector<FunctionSymbol>& symbols,
                   uint64_t offset) {
  std::string full = FunctionAt(symbols, offset);
  if (full.empty() && frames.size() >= 2 &&
      NamesSameFunction(frames.back().function, frames.front().function)) {
    full = frames.front().function;  // stripped of .symtab: the misplaced name is the best known
  }
  if (full.empty()) return;
  if (frames.size() >= 2 && frames.front().function == full) frames.front().function.clear();
  SourceFrame& real = frames.back();
  if (real.function != full && NamesSameFunction(real.function, full)) real.function = full;
}

}  // namespace

Addr2lineSymbolizer::Addr2lineSymbolizer(std::string addr2line) : addr2line_(std::move(addr2line)) {}

Result<std::vector<std::vector<SourceFrame>>> Addr2lineSymbolizer::Symbolize(
    std::span<const uint64_t> addresses, std::span<const MappedRegion> mappings) {
  auto warn = [this](std::string message) {
    if (std::find(warnings_.begin(), warnings_.end(), message) == warnings_.end()) {
      warnings_.push_back(std::move(message));
    }
  };

  // Mappings backed by a file, by start address, for the lookup of each address.
  std::vector<const MappedRegion*> regions;
  for (const MappedRegion& region : mappings) regions.push_back(&region);
  std::sort(regions.begin(), regions.end(),
            [](const MappedRegion* a, const MappedRegion* b) { return a->start < b->start; });

  struct Lookup {
    std::string object;  // "" when the address is in no symbolizable object
    std::string module;  // the mapping's path as written
    uint64_t offset = 0;
  };
  std::vector<Lookup> lookups(addresses.size());
  std::map<std::string, std::optional<ObjectLayout>> layouts;
  std::map<std::string, std::set<uint64_t>> wanted;  // object -> offsets not yet cached

  for (size_t i = 0; i < addresses.size(); ++i) {
    const uint64_t address = addresses[i];
    auto after = std::upper_bound(
        regions.begin(), regions.end(), address,
        [](uint64_t value, const MappedRegion* region) { return value < region->start; });
    if (after == regions.begin()) continue;
    const MappedRegion& region = **(after - 1);
    if (address >= region.end || address == 0) continue;
    Lookup& lookup = lookups[i];
    lookup.module = region.path;
    const uint64_t file_offset = address - region.start + region.offset;
    lookup.offset = file_offset - 1;
    if (region.path.empty() || region.path.front() == '[') continue;  // [vdso], [heap], anonymous
    if (region.path.ends_with(" (deleted)")) {
      warn(region.path + ": the object was deleted or replaced after the process mapped it; its "
                         "frames are shown as offsets");
      continue;
    }
    auto layout = layouts.find(region.path);
    if (layout == layouts.end()) {
      std::string error;
      layout = layouts.emplace(region.path, ReadObjectLayout(region.path, error)).first;
      if (!layout->second) {
        warn(region.path + ": cannot be read (" + error + "); its frames are shown as offsets");
      }
    }
    if (!layout->second) continue;
    const uint64_t own = layout->second->fixed ? address : layout->second->AddressOf(file_offset);
    lookup.offset = own - 1;  // the call instruction, not the one after it
    lookup.object = region.path;
    if (!cache_.contains({region.path, lookup.offset})) wanted[region.path].insert(lookup.offset);
  }

  std::map<std::string, std::vector<FunctionSymbol>> symbols;
  auto symbols_of = [&symbols](const std::string& object) -> const std::vector<FunctionSymbol>& {
    auto it = symbols.find(object);
    if (it == symbols.end()) it = symbols.emplace(object, ReadFunctionSymbols(object)).first;
    return it->second;
  };

  // One addr2line per object, every new offset of it in one batch on stdin.
  for (const auto& [object, offsets] : wanted) {
    std::string input;
    for (uint64_t offset : offsets) input += Hex(offset) + "\n";
    auto run = RunWithInput({addr2line_, "-a", "-f", "-C", "-i", "-e", object}, input);
    if (!run) return std::unexpected(run.error());
    if (run->status != 0 || run->out.empty()) {
      warn(object + ": " + addr2line_ + " failed (" +
           (run->status < 0 ? std::string("killed after ") +
                                  std::to_string(kBatchTimeout.count()) + " s"
                            : "exit status " + std::to_string(run->status)) +
           (run->err.empty() ? std::string() : ": " + Trimmed(run->err)) +
           "); its frames are shown as offsets");
    }
    // With -a each answer starts with the address asked for, then function and location pairs
    // (inlined calls first). The next expected address marks the start of the next answer.
    std::vector<std::string_view> lines;
    for (size_t pos = 0; pos < run->out.size();) {
      size_t end = run->out.find('\n', pos);
      if (end == std::string::npos) end = run->out.size();
      lines.push_back(std::string_view(run->out).substr(pos, end - pos));
      pos = end + 1;
    }
    auto next = offsets.begin();
    size_t at = 0;
    bool any_location = false;
    while (next != offsets.end() && at < lines.size()) {
      if (ParseHex(lines[at]) != *next) {
        ++at;  // not the answer expected (never seen; skipped rather than misattributed)
        continue;
      }
      ++at;
      auto following = std::next(next);
      std::vector<SourceFrame> frames;
      while (at + 1 < lines.size() &&
             !(following != offsets.end() && ParseHex(lines[at]) == *following)) {
        SourceFrame frame;
        frame.function = lines[at] == "??" ? "" : std::string(lines[at]);
        ParseLocation(lines[at + 1], frame);
        any_location = any_location || !frame.file.empty();
        frame.module = object;
        frame.offset = *next;
        frame.inlined = true;
        frames.push_back(std::move(frame));
        at += 2;
      }
      if (!frames.empty()) {
        frames.back().inlined = false;
        CompleteNames(frames, symbols_of(object), *next);
        cache_[{object, *next}] = std::move(frames);
      }
      next = following;
    }
    if (run->status == 0 && !any_location && !run->out.empty()) {
      warn(object + ": no debug information found for it: its frames are named after the "
                    "nearest symbol it exports, without file and line");
    }
  }

  std::vector<std::vector<SourceFrame>> result;
  result.reserve(addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) {
    const Lookup& lookup = lookups[i];
    std::vector<SourceFrame> frames;
    if (!lookup.object.empty()) {
      if (auto it = cache_.find({lookup.object, lookup.offset}); it != cache_.end()) {
        frames = it->second;
      }
    }
    if (frames.empty()) {
      SourceFrame unknown;
      unknown.module = lookup.module;
      unknown.offset = lookup.module.empty() ? 0 : lookup.offset;
      frames.push_back(std::move(unknown));
    }
    for (SourceFrame& frame : frames) frame.address = addresses[i];
    result.push_back(std::move(frames));
  }
  return result;
}

}  // namespace leakgate::harness
