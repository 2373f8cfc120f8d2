// The CPU of a target's threads grouped by thread name, as the analysis judges idle CPU and every
// report explains it ("exch-heartbeat ×3: 6.4 %"): means over several measuring windows and the
// names whose CPU rose above the baseline. Used by the analysis (harness/analyze) and by the
// reports, which recompute the explanation from result.json. Pure functions; thread-safe.
#ifndef LEAKGATE_BASE_THREAD_CPU_H_
#define LEAKGATE_BASE_THREAD_CPU_H_

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace leakgate {

// The CPU of the threads sharing one name over a measuring window.
struct ThreadGroupCpu {
  std::string name;
  int threads = 0;       // threads with this name at the end of the window
  double cpu_pct = 0;    // their CPU together, % of one core

  friend bool operator==(const ThreadGroupCpu&, const ThreadGroupCpu&) = default;
};

// The groups of `by_name`, busiest first (a stable order: equal CPU keeps the map's order, by name).
std::vector<ThreadGroupCpu> ThreadGroupsBusiestFirst(std::map<std::string, ThreadGroupCpu>&& by_name);

// The mean CPU of each thread name over several windows (a name missing from a window counted as
// 0 there), with its thread count from the last window that has it; busiest first.
// A single window's CPU moves in whole clock ticks (1 % of a core over a second), so naming what
// keeps the CPU up is steadier over every window that was above the baseline than over one.
std::vector<ThreadGroupCpu> MeanThreadCpu(std::span<const std::vector<ThreadGroupCpu>> windows);

// "exch-heartbeat ×3: 6.4 %"
std::string DescribeThreadGroup(const ThreadGroupCpu& group);

// The thread names whose CPU rose from `baseline` to `after`, largest rise first (at most
// `max_names`), each "exch-heartbeat ×3: 6.4 % (baseline 0 %)"; joined by ", "; "" when none rose.
std::string ExplainCpuExcess(std::span<const ThreadGroupCpu> baseline,
                             std::span<const ThreadGroupCpu> after, size_t max_names = 3);

// Names with their CPU rise, as ExplainCpuExcess chooses them: (group after, rise in points).
std::vector<std::pair<ThreadGroupCpu, double>> CpuExcessByName(
    std::span<const ThreadGroupCpu> baseline, std::span<const ThreadGroupCpu> after);

}  // namespace leakgate

#endif  // LEAKGATE_BASE_THREAD_CPU_H_
