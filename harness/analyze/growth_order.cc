#include "harness/analyze/growth_order.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "base/result_names.h"

namespace leakgate::harness {
namespace {

std::optional<Verdict> VerdictOf(std::string_view name, std::span<const CheckResult> checks) {
  const auto it = std::find_if(checks.begin(), checks.end(),
                               [&](const CheckResult& check) { return check.name == name; });
  if (it == checks.end()) return std::nullopt;
  return it->verdict;
}

// 0 fail, 1 inconclusive, 2 pass (or error, or no check).
int Severity(std::optional<Verdict> verdict) {
  if (!verdict) return 2;
  switch (*verdict) {
    case Verdict::kFail:
      return 0;
    case Verdict::kInconclusive:
      return 1;
    default:
      return 2;
  }
}

int KindRank(std::string_view kind) {
  if (kind == "thread") return 0;
  if (kind == "socket") return 1;
  if (kind == "fd") return 2;
  if (kind == "heap") return 3;
  return 4;
}

}  // namespace

std::optional<Verdict> VerdictOfKind(std::string_view kind, std::span<const CheckResult> checks) {
  if (kind == "heap") {
    if (auto heap = VerdictOf(check_id::kHeapGrowthPerRun, checks)) return heap;
    std::optional<Verdict> worst;
    for (std::string_view name : {check_id::kRssGrowthPerRun, check_id::kRssGrowthTotal}) {
      const std::optional<Verdict> verdict = VerdictOf(name, checks);
      if (verdict && (!worst || Severity(verdict) < Severity(worst))) worst = verdict;
    }
    return worst;
  }
  if (kind == "fd") return VerdictOf(check_id::kFdsStable, checks);
  if (kind == "socket") return VerdictOf(check_id::kSocketsStable, checks);
  if (kind == "thread") return VerdictOf(check_id::kThreadsStable, checks);
  return std::nullopt;
}

std::vector<GrowthItem> OrderGrowth(std::vector<GrowthItem> growth,
                                    std::span<const CheckResult> checks) {
  // (kind, suppressed) -> the largest per_run (0 when none is above 0).
  std::map<std::pair<std::string, bool>, double> largest;
  std::map<std::string, int> severity;  // kind -> rule 1
  for (const GrowthItem& item : growth) {
    double& top = largest[{item.kind, !item.suppressed.empty()}];
    top = std::max(top, item.per_run);
    if (!severity.contains(item.kind)) {
      severity[item.kind] = Severity(VerdictOfKind(item.kind, checks));
    }
  }

  const auto key = [&](const GrowthItem& item) {
    const bool suppressed = !item.suppressed.empty();
    const int tier = suppressed ? 3 : severity.at(item.kind);
    const double top = largest.at({item.kind, suppressed});
    const double size = top > 0 && item.per_run > 0 ? item.per_run / top : 0;
    // Negated where larger comes first.
    return std::make_tuple(tier, -size, KindRank(item.kind), std::string_view(item.kind),
                           -item.total, std::string_view(item.site));
  };
  std::stable_sort(growth.begin(), growth.end(),
                   [&](const GrowthItem& a, const GrowthItem& b) { return key(a) < key(b); });
  return growth;
}

}  // namespace leakgate::harness
