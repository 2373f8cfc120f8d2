#include "base/thread_cpu.h"

#include <algorithm>
#include <cstdio>

namespace leakgate {
namespace {

std::string Percent(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, value >= 10 || value == 0 ? "%.0f" : "%.1f", value);
  std::string text = buffer;
  if (text.size() > 2 && text.ends_with(".0")) text.resize(text.size() - 2);
  return text;
}

}  // namespace

std::vector<ThreadGroupCpu> ThreadGroupsBusiestFirst(std::map<std::string, ThreadGroupCpu>&& by_name) {
  std::vector<ThreadGroupCpu> groups;
  groups.reserve(by_name.size());
  for (auto& [name, group] : by_name) groups.push_back(std::move(group));
  std::stable_sort(groups.begin(), groups.end(), [](const ThreadGroupCpu& a, const ThreadGroupCpu& b) {
    return a.cpu_pct > b.cpu_pct;
  });
  return groups;
}


std::vector<ThreadGroupCpu> MeanThreadCpu(std::span<const std::vector<ThreadGroupCpu>> windows) {
  std::map<std::string, ThreadGroupCpu> by_name;
  for (const std::vector<ThreadGroupCpu>& window : windows) {
    for (const ThreadGroupCpu& group : window) {
      ThreadGroupCpu& mean = by_name[group.name];
      mean.name = group.name;
      mean.threads = group.threads;
      mean.cpu_pct += group.cpu_pct / static_cast<double>(windows.size());
    }
  }
  return ThreadGroupsBusiestFirst(std::move(by_name));
}


std::string DescribeThreadGroup(const ThreadGroupCpu& group) {
  return group.name + " \u00d7" + std::to_string(group.threads) + ": " + Percent(group.cpu_pct) +
         " %";
}


std::vector<std::pair<ThreadGroupCpu, double>> CpuExcessByName(
    std::span<const ThreadGroupCpu> baseline, std::span<const ThreadGroupCpu> after) {
  std::map<std::string, double> before;
  for (const ThreadGroupCpu& group : baseline) before[group.name] += group.cpu_pct;
  std::vector<std::pair<ThreadGroupCpu, double>> rises;
  for (const ThreadGroupCpu& group : after) {
    const auto it = before.find(group.name);
    const double rise = group.cpu_pct - (it == before.end() ? 0.0 : it->second);
    if (rise > 0) rises.emplace_back(group, rise);
  }
  std::stable_sort(rises.begin(), rises.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return rises;
}


std::string ExplainCpuExcess(std::span<const ThreadGroupCpu> baseline,
                             std::span<const ThreadGroupCpu> after, size_t max_names) {
  std::map<std::string, double> before;
  for (const ThreadGroupCpu& group : baseline) before[group.name] += group.cpu_pct;
  std::string text;
  size_t listed = 0;
  for (const auto& [group, rise] : CpuExcessByName(baseline, after)) {
    if (listed == max_names) break;
    ++listed;
    text += (text.empty() ? "" : ", ") + DescribeThreadGroup(group) + " (baseline " +
            Percent(before.contains(group.name) ? before[group.name] : 0.0) + " %)";
  }
  return text;
}

}  // namespace leakgate
