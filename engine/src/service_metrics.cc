#include "engine/service_metrics.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace leakgate::engine {
namespace {

// "VmRSS:     1234 kB" -> bytes.
std::optional<uint64_t> StatusKilobytes(const std::string& line, std::string_view key) {
  if (line.rfind(key, 0) != 0 || line.size() <= key.size() || line[key.size()] != ':') {
    return std::nullopt;
  }
  std::istringstream fields(line.substr(key.size() + 1));
  uint64_t value = 0;
  if (!(fields >> value)) return std::nullopt;
  std::string unit;
  fields >> unit;
  return unit == "kB" ? value * 1024 : value;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  std::to_chars_result result;
  if (value == std::floor(value) && std::fabs(value) < 9e15) {
    result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<int64_t>(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof buffer, value);
  }
  return std::string(buffer, result.ptr);
}

}  // namespace

ProcessSelf ReadProcessSelf() {
  ProcessSelf self;
  {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (auto v = StatusKilobytes(line, "VmRSS")) self.resident_bytes = v;
      if (auto v = StatusKilobytes(line, "VmHWM")) self.peak_resident_bytes = v;
      if (line.rfind("Threads:", 0) == 0) {
        std::istringstream fields(line.substr(8));
        uint64_t threads = 0;
        if (fields >> threads) self.threads = threads;
      }
    }
  }
  {
    std::ifstream stat("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    const size_t paren = text.rfind(')');
    if (paren != std::string::npos) {
      std::istringstream fields(text.substr(paren + 2));
      std::string field;
      uint64_t utime = 0;
      uint64_t stime = 0;
      // Field 3 (state) is the first after ')'; utime and stime are fields 14 and 15.
      for (int index = 3; index <= 15 && fields >> field; ++index) {
        if (index == 14) utime = std::stoull(field);
        if (index == 15) stime = std::stoull(field);
      }
      const long ticks = ::sysconf(_SC_CLK_TCK);
      if (ticks > 0)
        self.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(ticks);
    }
  }
  {
    std::error_code ec;
    uint64_t fds = 0;
    uint64_t sockets = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
      ++fds;
      char target[64];
      const ssize_t n = ::readlink(entry.path().c_str(), target, sizeof target);
      if (n > 7 && std::string_view(target, 7) == "socket:") ++sockets;
    }
    if (!ec) {
      // The directory iterator holds one descriptor of its own while it reads.
      self.open_fds = fds > 0 ? fds - 1 : 0;
      self.socket_fds = sockets;
    }
  }
  return self;
}

void PrometheusText::Family(std::string_view name, std::string_view type, std::string_view help) {
  family_ = std::string(name);
  out_ += "# HELP " + family_ + " " + std::string(help) + "\n";
  out_ += "# TYPE " + family_ + " " + std::string(type) + "\n";
}

void PrometheusText::Sample(double value, const MetricLabels& labels) {
  out_ += family_;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out_ += ',';
      out_ += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
    }
    out_ += '}';
  }
  out_ += ' ' + FormatValue(value) + '\n';
}

void PrometheusText::Gauge(std::string_view name, std::string_view help, double value) {
  Family(name, "gauge", help);
  Sample(value);
}

void PrometheusText::Comment(std::string_view text) { out_ += "# " + std::string(text) + "\n"; }

}  // namespace leakgate::engine
