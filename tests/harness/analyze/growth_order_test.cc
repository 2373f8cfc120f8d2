// Defect: "what grew" came in the order the list was built (heap sites, then by kind in the order
// the checks run, largest total first within a kind), so the unclosed-connection gate showed
// "heap in use +1984 B/run" first and the exch-heartbeat thread, the actual cause, sixth. Growth
// items are now ordered by what makes a check fail first, then by their normalised size per run
// (growth_order.h); these cases are the rule, key by key.
#include "harness/analyze/growth_order.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace leakgate::harness {
namespace {

using ::testing::ElementsAreArray;

GrowthItem Item(std::string kind, std::string site, double per_run, double total,
                std::string suppressed = "") {
  GrowthItem item;
  item.kind = std::move(kind);
  item.site = std::move(site);
  item.per_run = per_run;
  item.total = total;
  item.suppressed = std::move(suppressed);
  return item;
}

CheckResult Check(std::string name, Verdict verdict) {
  CheckResult check;
  check.name = std::move(name);
  check.verdict = verdict;
  return check;
}

struct OrderCase {
  std::string name;
  std::vector<GrowthItem> growth;  // in the order the analysis built them
  std::vector<CheckResult> checks;
  std::vector<std::string> expected;  // "kind site", in order
};

std::vector<std::string> Names(const std::vector<GrowthItem>& growth) {
  std::vector<std::string> names;
  for (const GrowthItem& item : growth) names.push_back(item.kind + " " + item.site);
  return names;
}

constexpr Verdict kFail = Verdict::kFail;
constexpr Verdict kPass = Verdict::kPass;
constexpr Verdict kUndecided = Verdict::kInconclusive;

const OrderCase kCases[] = {
    {"UnclosedConnectionGate: the heartbeat thread and the connection before the heap bytes",
     {Item("heap", "heap in use", 1984, 9920), Item("heap", "httplib::ClientImpl::Send", 1500, 7500),
      Item("fd", "tcp -> 127.0.0.1:38685", 1, 5),
      Item("fd", "tcp accepted on 127.0.0.1:38685", 1, 5),
      Item("socket", "tcp -> 127.0.0.1:38685", 1, 5),
      Item("socket", "tcp accepted on 127.0.0.1:38685", 1, 5),
      Item("thread", "exch-heartbeat", 1, 5)},
     {Check("heap_growth_per_run", kFail), Check("fds_stable", kFail),
      Check("sockets_stable", kFail), Check("threads_stable", kFail)},
     {"thread exch-heartbeat", "socket tcp -> 127.0.0.1:38685",
      "socket tcp accepted on 127.0.0.1:38685", "fd tcp -> 127.0.0.1:38685",
      "fd tcp accepted on 127.0.0.1:38685", "heap heap in use",
      "heap httplib::ClientImpl::Send"}},
    {"AFailingCheckBeforeAnUndecidedOneBeforeAPassingOne",
     {Item("heap", "heap in use", 500000, 2500000), Item("fd", "/tmp/x.db-wal", 1, 1),
      Item("thread", "worker", 2, 2)},
     {Check("heap_growth_per_run", kPass), Check("fds_stable", kFail),
      Check("threads_stable", kUndecided)},
     {"fd /tmp/x.db-wal", "thread worker", "heap heap in use"}},
    {"SuppressedLastWhateverTheirCheck",
     {Item("thread", "grpc_timer_0", 3, 15, "known: gRPC timer pool"),
      Item("thread", "exch-heartbeat", 1, 5), Item("socket", "socket", 0.5, 2)},
     {Check("threads_stable", kFail), Check("sockets_stable", kPass)},
     {"thread exch-heartbeat", "socket socket", "thread grpc_timer_0"}},
    {"WithinAVerdictLargerShareOfItsKindFirst",
     // Heap 900/1000 = 0.9 of the largest heap item, above a thread at 1/2 of the largest thread.
     {Item("thread", "a", 2, 10), Item("thread", "b", 1, 5), Item("heap", "big", 1000, 5000),
      Item("heap", "smaller", 900, 4500)},
     {Check("heap_growth_per_run", kFail), Check("threads_stable", kFail)},
     {"thread a", "heap big", "heap smaller", "thread b"}},
    {"BytesAreNeverComparedWithCounts: the largest of each kind ties, then thread socket fd heap",
     {Item("heap", "h", 10 * 1024 * 1024, 5e7), Item("fd", "pipe", 1, 5), Item("socket", "s", 3, 15),
      Item("thread", "t", 0.25, 1)},
     {Check("heap_growth_per_run", kFail), Check("fds_stable", kFail),
      Check("sockets_stable", kFail), Check("threads_stable", kFail)},
     {"thread t", "socket s", "fd pipe", "heap h"}},
    {"ASiteThatGrewOnceLateCountsAsNoRateThenLargerTotalThenName",
     {Item("fd", "b", 0, 1), Item("fd", "a", 0, 1), Item("fd", "c", -0.5, 2), Item("fd", "d", 1, 3)},
     {Check("fds_stable", kFail)},
     {"fd d", "fd c", "fd a", "fd b"}},
    {"HeapWithoutAHeapCheckIsJudgedByTheWorseRssCheck",
     {Item("thread", "t", 1, 5), Item("heap", "Cache::Put", 300000, 1.5e6)},
     {Check("rss_growth_per_run", kPass), Check("rss_growth_total", kFail),
      Check("threads_stable", kPass)},
     {"heap Cache::Put", "thread t"}},
    {"KindsWithoutACheckAreJudgedAsPassing",
     {Item("heap", "h", 100, 500), Item("thread", "t", 1, 5)},
     {Check("threads_stable", kUndecided)},
     {"thread t", "heap h"}},
    {"Empty", {}, {Check("threads_stable", kFail)}, {}},
};

class OrderGrowthTest : public ::testing::TestWithParam<OrderCase> {};

TEST_P(OrderGrowthTest, OrdersByFailingCheckThenNormalisedSize) {
  const OrderCase& c = GetParam();
  const std::vector<GrowthItem> ordered = OrderGrowth(c.growth, c.checks);
  EXPECT_THAT(Names(ordered), ElementsAreArray(c.expected));
  // Ordering an ordered list changes nothing, and neither does the order it came in.
  EXPECT_EQ(Names(OrderGrowth(ordered, c.checks)), Names(ordered));
  std::vector<GrowthItem> reversed(c.growth.rbegin(), c.growth.rend());
  EXPECT_EQ(Names(OrderGrowth(reversed, c.checks)), Names(ordered));
}

INSTANTIATE_TEST_SUITE_P(Cases, OrderGrowthTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<OrderCase>& info) {
                           const std::string& name = info.param.name;
                           return name.substr(0, name.find(':'));
                         });

TEST(VerdictOfKindTest, EachKindByItsCheck) {
  const std::vector<CheckResult> checks = {
      Check("rss_growth_per_run", kUndecided), Check("rss_growth_total", kPass),
      Check("fds_stable", kPass), Check("sockets_stable", kFail), Check("threads_stable", kUndecided)};
  EXPECT_EQ(VerdictOfKind("heap", checks), kUndecided);  // no heap check: the worse RSS check
  EXPECT_EQ(VerdictOfKind("fd", checks), kPass);
  EXPECT_EQ(VerdictOfKind("socket", checks), kFail);
  EXPECT_EQ(VerdictOfKind("thread", checks), kUndecided);
  EXPECT_EQ(VerdictOfKind("other", checks), std::nullopt);
  std::vector<CheckResult> with_heap = checks;
  with_heap.push_back(Check("heap_growth_per_run", kPass));
  EXPECT_EQ(VerdictOfKind("heap", with_heap), kPass);
  EXPECT_EQ(VerdictOfKind("heap", {}), std::nullopt);
}

// The order is the one Analyze returns: a heartbeat thread leaking with a small heap rise comes
// before the heap line.
TEST(OrderGrowthTest, AnalyzeReturnsTheGrowthInThisOrder) {
  Thresholds thresholds;
  thresholds.idle_cpu_pct.reset();
  thresholds.rss_per_run.reset();
  thresholds.rss_total.reset();
  thresholds.fds.reset();
  thresholds.sockets.reset();
  thresholds.peak_rss.reset();
  AnalysisInput input;
  input.thresholds = thresholds;
  input.baseline.rss_bytes = 30 << 20;
  for (int i = 0; i < 6; ++i) {
    RunObservation run;
    run.index = i + 1;
    run.warmup = i == 0;
    run.rss_bytes = 40 << 20;
    run.heap_bytes = 1000000 + 1984 * i;
    run.thread_names = std::vector<std::string>{"main", "server"};
    for (int k = 0; k < i; ++k) run.thread_names->push_back("exch-heartbeat");
    input.runs.push_back(run);
  }
  const Analysis analysis = Analyze(input);
  EXPECT_THAT(Names(analysis.growth),
              ElementsAreArray({"thread exch-heartbeat", "heap heap in use"}));
}

}  // namespace
}  // namespace leakgate::harness
