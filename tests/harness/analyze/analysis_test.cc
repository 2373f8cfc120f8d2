// Tests of the gate's decision on typed-in series: the statistics alone, then each check, then the
// verdict over simulated gates with seeded noise.
#include "harness/analyze/analysis.h"
#include "harness/scenario/suppressions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace leakgate::harness {

// Failure messages show the verdict's word.
void PrintTo(Verdict verdict, std::ostream* os) { *os << VerdictName(verdict); }

namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr double kRss = 40 * kMiB;

// A fixed, realistic noise pattern (+-200 KiB) for RSS after a cooldown; index = judged run.
const double kNoise[] = {0,          120 * kKiB,  -180 * kKiB, 60 * kKiB,   -40 * kKiB,
                         190 * kKiB, -150 * kKiB, 30 * kKiB,   -110 * kKiB, 170 * kKiB,
                         -70 * kKiB, 90 * kKiB,   -20 * kKiB};

Thresholds NoChecks() {
  Thresholds t;
  t.idle_cpu_pct.reset();
  t.rss_per_run.reset();
  t.rss_total.reset();
  t.heap_per_run.reset();
  t.fds.reset();
  t.sockets.reset();
  t.threads.reset();
  t.peak_rss.reset();
  return t;
}

Thresholds RssOnly() {
  Thresholds t = NoChecks();
  t.rss_per_run = Thresholds{}.rss_per_run;
  t.rss_total = Thresholds{}.rss_total;
  return t;
}

// An input whose runs are built by `fill(run, k)`, k = 0 for the warm-up, 1.. for judged runs.
template <class Fill>
AnalysisInput MakeInput(int judged, Thresholds thresholds, Fill fill, int warmups = 1,
                        int max_runs = 12) {
  AnalysisInput input;
  input.thresholds = thresholds;
  input.max_runs = max_runs;
  input.baseline.rss_bytes = static_cast<int64_t>(30 * kMiB);
  input.baseline.idle_cpu_pct = 0.3;
  for (int i = 0; i < warmups + judged; ++i) {
    RunObservation run;
    run.index = i + 1;
    run.warmup = i < warmups;
    run.idle_cpu_pct = 0.3;
    run.rss_bytes = static_cast<int64_t>(kRss);
    run.peak_rss_bytes = static_cast<int64_t>(60 * kMiB);
    fill(run, run.warmup ? 0 : i - warmups + 1);
    input.runs.push_back(run);
  }
  return input;
}

// RSS after the warm-up (k = 0) and each judged run.
AnalysisInput RssSeries(std::vector<double> rss, Thresholds thresholds = RssOnly()) {
  return MakeInput(static_cast<int>(rss.size()) - 1, thresholds, [&](RunObservation& run, int k) {
    run.rss_bytes = static_cast<int64_t>(rss[k]);
  });
}

void AddRun(AnalysisInput& input, double rss) {
  RunObservation run = input.runs.back();
  run.index += 1;
  run.warmup = false;
  run.rss_bytes = static_cast<int64_t>(rss);
  input.runs.push_back(run);
}

const CheckResult* FindCheck(const Analysis& analysis, std::string_view name) {
  for (const CheckResult& check : analysis.checks) {
    if (check.name == name) return &check;
  }
  return nullptr;
}

std::vector<std::string> CheckNames(const Analysis& analysis) {
  std::vector<std::string> names;
  for (const CheckResult& check : analysis.checks) names.push_back(check.name);
  return names;
}

Verdict VerdictOf(const Analysis& analysis, std::string_view name) {
  const CheckResult* check = FindCheck(analysis, name);
  EXPECT_NE(check, nullptr) << "no check " << name;
  return check ? check->verdict : Verdict::kInconclusive;
}

// ---------------------------------------------------------------------------------------------
// Robust statistics

TEST(MedianTest, OddEvenAndEmpty) {
  const std::vector<double> odd = {5, 1, 3};
  const std::vector<double> even = {4, 1, 3, 2};
  EXPECT_EQ(Median(odd), 3);
  EXPECT_EQ(Median(even), 2.5);
  EXPECT_EQ(Median(std::vector<double>{}), std::nullopt);
}

TEST(MedianAbsoluteDeviationTest, IgnoresOneWildValue) {
  const std::vector<double> values = {1, 1, 2, 2, 4, 6, 9};
  EXPECT_EQ(MedianAbsoluteDeviation(values), 1);
  const std::vector<double> wild = {1, 1, 2, 2, 4, 6, 9000};
  EXPECT_EQ(MedianAbsoluteDeviation(wild), 1);
  EXPECT_EQ(MedianAbsoluteDeviation(std::vector<double>{}), std::nullopt);
}

TEST(TheilSenSlopeTest, ExactLineHasAZeroWidthRange) {
  const std::vector<double> x = {0, 1, 2, 3, 4};
  const std::vector<double> y = {2, 5, 8, 11, 14};
  const std::optional<SlopeEstimate> fit = TheilSenSlope(x, y);
  ASSERT_TRUE(fit);
  EXPECT_DOUBLE_EQ(fit->slope, 3);
  EXPECT_DOUBLE_EQ(fit->intercept, 2);
  EXPECT_DOUBLE_EQ(fit->low, 3);
  EXPECT_DOUBLE_EQ(fit->high, 3);
  EXPECT_EQ(fit->points, 5);
  EXPECT_EQ(fit->pairs, 10);
  EXPECT_EQ(fit->positive_pairs, 10);
}

TEST(TheilSenSlopeTest, OneWildPointDoesNotMoveTheSlope) {
  const std::vector<double> x = {0, 1, 2, 3, 4, 5, 6};
  const std::vector<double> y = {0, 2, 4, 1000, 8, 10, 12};
  EXPECT_DOUBLE_EQ(TheilSenSlope(x, y)->slope, 2);
}

TEST(TheilSenSlopeTest, WithFivePointsTheRangeIsTheExtremePairwiseSlopes) {
  const std::vector<double> x = {0, 1, 2, 3, 4};
  const std::vector<double> y = {0, 3, 1, 4, 2};  // pairwise slopes from -2 to 3
  const std::optional<SlopeEstimate> fit = TheilSenSlope(x, y);
  ASSERT_TRUE(fit);
  EXPECT_DOUBLE_EQ(fit->low, -2);
  EXPECT_DOUBLE_EQ(fit->high, 3);
}

TEST(TheilSenSlopeTest, RangeNarrowsWithMorePointsAndWidensWithConfidence) {
  std::vector<double> x, y;
  for (int i = 0; i < 13; ++i) {
    x.push_back(i);
    y.push_back(kRss + i * 256 * kKiB + kNoise[i]);
  }
  const SlopeEstimate all = *TheilSenSlope(x, y);
  const SlopeEstimate strict = *TheilSenSlope(x, y, 0.99);
  const SlopeEstimate first6 = *TheilSenSlope(std::span(x).first(6), std::span(y).first(6));
  EXPECT_LT(all.low, 256 * kKiB);
  EXPECT_GT(all.high, 256 * kKiB);
  EXPECT_NEAR(all.slope, 256 * kKiB, 40 * kKiB);
  EXPECT_LE(strict.low, all.low);
  EXPECT_GE(strict.high, all.high);
  EXPECT_LT(all.high - all.low, first6.high - first6.low);
}

TEST(TheilSenSlopeTest, RejectsUnusableInput) {
  const std::vector<double> two = {1, 2};
  const std::vector<double> three = {1, 2, 3};
  const std::vector<double> same_x = {4, 4, 4};
  EXPECT_FALSE(TheilSenSlope(two, three));
  EXPECT_FALSE(TheilSenSlope(std::span(two).first(1), std::span(two).first(1)));
  EXPECT_FALSE(TheilSenSlope(same_x, three));
  EXPECT_FALSE(TheilSenSlope(three, three, 1.5));
}

TEST(FindOutliersTest, FlagsOnlyTheWildValue) {
  const std::vector<double> values = {10, 11, 10, 12, 11, 50};
  EXPECT_THAT(FindOutliers(values), ElementsAre(5));
  const std::vector<double> tame = {10, 11, 10, 12, 11, 13};
  EXPECT_THAT(FindOutliers(tame), IsEmpty());
}

TEST(FindOutliersTest, WithMostValuesEqualAnyDifferentValueIsOdd) {
  const std::vector<double> values = {5, 5, 5, 5, 7};
  EXPECT_THAT(FindOutliers(values), ElementsAre(4));
  EXPECT_THAT(FindOutliers(std::vector<double>{}), IsEmpty());
}

TEST(FdSiteTest, GroupsByWhatTheFdPointsAt) {
  const struct {
    std::string target;
    std::string site;
  } cases[] = {
      {"socket:[123456]", "socket"},
      {"pipe:[98]", "pipe"},
      {"anon_inode:[eventfd]", "anon_inode:[eventfd]"},
      {"/tmp/x.db-wal", "/tmp/x.db-wal"},
      {"/var/log/app.log (deleted)", "/var/log/app.log (deleted)"},
      {"", "(unreadable)"},
  };
  for (const auto& c : cases) EXPECT_EQ(FdSite(c.target), c.site) << c.target;
}

TEST(VerdictNameTest, UsesTheWordsOfResultJson) {
  EXPECT_EQ(VerdictName(Verdict::kPass), "pass");
  EXPECT_EQ(VerdictName(Verdict::kFail), "fail");
  EXPECT_EQ(VerdictName(Verdict::kInconclusive), "inconclusive");
}

// ---------------------------------------------------------------------------------------------
// Memory growth

std::vector<double> Leak(double per_run, int judged) {
  std::vector<double> rss;
  for (int k = 0; k <= judged; ++k) rss.push_back(kRss + k * per_run + kNoise[k]);
  return rss;
}

struct MemoryCase {
  std::string name;
  std::vector<double> rss;  // after the warm-up, then after each judged run
  bool with_floor;
  Verdict expected;
};

void PrintTo(const MemoryCase& c, std::ostream* os) { *os << c.name; }

class MemoryDecisionTest : public ::testing::TestWithParam<MemoryCase> {};

TEST_P(MemoryDecisionTest, DecidesAsExpected) {
  const MemoryCase& c = GetParam();
  Thresholds thresholds = RssOnly();
  if (!c.with_floor) thresholds.rss_total.reset();
  const Analysis analysis = Analyze(RssSeries(c.rss, thresholds));
  const CheckResult* check = FindCheck(analysis, "rss_growth_per_run");
  ASSERT_NE(check, nullptr);
  EXPECT_EQ(check->verdict, c.expected) << check->detail;
  EXPECT_EQ(analysis.verdict, c.expected);
}

std::vector<double> Flat(int judged) { return Leak(0, judged); }

std::vector<double> WithSpike(std::vector<double> rss, size_t at, double spike) {
  rss[at] += spike;
  return rss;
}

INSTANTIATE_TEST_SUITE_P(
    TypedSeries, MemoryDecisionTest,
    ::testing::Values(
        // A steady leak at the budget fails from RSS alone once nothing but the budget is asked.
        MemoryCase{"LeakAtBudgetWithoutFloor", Leak(256 * kKiB, 5), false, Verdict::kFail},
        MemoryCase{"LeakOfTwiceTheBudget", Leak(512 * kKiB, 5), true, Verdict::kFail},
        MemoryCase{"LargeLeak", Leak(4 * kMiB, 4), true, Verdict::kFail},
        MemoryCase{"NoiseOnly", Flat(5), true, Verdict::kPass},
        MemoryCase{"NoiseOnlyWithoutFloor", Flat(5), false, Verdict::kPass},
        MemoryCase{"SmallLeakUnderBudget", Leak(32 * kKiB, 8), true, Verdict::kPass},
        MemoryCase{"Shrinking", Leak(-300 * kKiB, 5), true, Verdict::kPass},
        MemoryCase{"SingleSpikeMidway", WithSpike(Flat(5), 3, 6 * kMiB), true, Verdict::kPass},
        MemoryCase{"SingleDipMidway", WithSpike(Flat(5), 2, -5 * kMiB), true, Verdict::kPass},
        MemoryCase{"SpikeInTheLastRunIsNotPassedYet", WithSpike(Flat(5), 5, 6 * kMiB), true,
                   Verdict::kInconclusive},
        MemoryCase{"TwoJudgedRunsGrowing", Leak(1 * kMiB, 2), true, Verdict::kInconclusive},
        MemoryCase{"TwoJudgedRunsBelowReference",
                   {kRss, kRss - 10 * kKiB, kRss - 4 * kKiB},
                   true,
                   Verdict::kPass},
        MemoryCase{"FourNoisyRunsAreTooFewToPass", Flat(4), true, Verdict::kInconclusive}),
    [](const ::testing::TestParamInfo<MemoryCase>& info) { return info.param.name; });

TEST(MemoryGrowthTest, PlateauAfterWarmupPasses) {
  // Baseline 30 MiB; the warm-up run fills caches up to 48 MiB; judged runs stay there.
  const Analysis analysis = Analyze(MakeInput(5, RssOnly(), [](RunObservation& run, int k) {
    run.rss_bytes = static_cast<int64_t>(48 * kMiB + kNoise[k]);
  }));
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << analysis.checks[0].detail;
  EXPECT_THAT(analysis.checks[0].detail, HasSubstr("from the warm-up"));
}

TEST(MemoryGrowthTest, SteadyLeakAtBudgetAsksForRunsUntilTheFloorThenFails) {
  // 256 KiB per run: after 5 judged runs only 1.25 MiB, under the 2 MiB floor; the gate must not
  // pass it, it must ask for more runs and fail once the floor is reached.
  AnalysisInput input = RssSeries(Leak(256 * kKiB, 5));
  Analysis analysis = Analyze(input);
  EXPECT_EQ(analysis.verdict, Verdict::kInconclusive);
  EXPECT_TRUE(analysis.needs_more_runs);
  EXPECT_THAT(FindCheck(analysis, "rss_growth_total")->detail, HasSubstr("under the floor"));
  while (analysis.needs_more_runs) {
    const int k = static_cast<int>(input.runs.size());
    AddRun(input, kRss + k * 256 * kKiB + kNoise[k]);
    analysis = Analyze(input);
  }
  EXPECT_EQ(analysis.verdict, Verdict::kFail) << analysis.summary;
  EXPECT_LE(input.runs.size(), 12u);
  const CheckResult* per_run = FindCheck(analysis, "rss_growth_per_run");
  const CheckResult* total = FindCheck(analysis, "rss_growth_total");
  EXPECT_EQ(per_run->verdict, Verdict::kFail);
  EXPECT_EQ(total->verdict, Verdict::kFail);
  EXPECT_NEAR(*per_run->observed, 256 * kKiB, 40 * kKiB);
  EXPECT_GE(*total->observed, 2 * kMiB);
  EXPECT_EQ(per_run->unit, "B/run");
  EXPECT_EQ(total->unit, "B");
  EXPECT_EQ(per_run->threshold, 256 * kKiB);
  EXPECT_EQ(total->threshold, 2 * kMiB);
  EXPECT_THAT(per_run->detail,
              AllOf(HasSubstr("RSS grows"), HasSubstr("per run"), HasSubstr("budget 256 KiB")));
  EXPECT_THAT(analysis.summary, HasSubstr("rss_growth_per_run"));
}

TEST(MemoryGrowthTest, SpikeIsSetAsideAndNamed) {
  const Analysis analysis = Analyze(RssSeries(WithSpike(Flat(5), 3, 6 * kMiB)));
  const CheckResult* check = FindCheck(analysis, "rss_growth_per_run");
  EXPECT_EQ(check->verdict, Verdict::kPass);
  EXPECT_THAT(check->detail, HasSubstr("run 4"));  // judged run 3 is run 4 (run 1 is the warm-up)
  EXPECT_THAT(check->detail, HasSubstr("set aside"));
}

TEST(MemoryGrowthTest, SpikeInTheLastRunPassesOnceRssReturns) {
  AnalysisInput input = RssSeries(WithSpike(Flat(5), 5, 6 * kMiB));
  Analysis analysis = Analyze(input);
  ASSERT_TRUE(analysis.needs_more_runs);
  for (int k = 6; analysis.needs_more_runs; ++k) {
    AddRun(input, kRss + kNoise[k]);
    analysis = Analyze(input);
  }
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << FindCheck(analysis, "rss_growth_per_run")->detail;
}

TEST(MemoryGrowthTest, SlowingGrowthAsksForRunsThenPassesWhenFlat) {
  // +2, +1, +0.5, +0.25 MiB: still growing, but slower each run. Not a leak yet, not a plateau yet.
  const double steps[] = {2 * kMiB, 1 * kMiB, 0.5 * kMiB, 0.25 * kMiB};
  std::vector<double> rss = {kRss};
  for (double step : steps) rss.push_back(rss.back() + step);
  AnalysisInput input = RssSeries(rss);
  Analysis analysis = Analyze(input);
  const CheckResult* check = FindCheck(analysis, "rss_growth_per_run");
  EXPECT_EQ(check->verdict, Verdict::kInconclusive) << check->detail;
  EXPECT_THAT(check->detail, HasSubstr("slowing"));
  EXPECT_TRUE(analysis.needs_more_runs);
  EXPECT_THAT(analysis.summary, HasSubstr("one more run needed"));

  const double plateau = rss.back();
  int added = 0;
  while (analysis.needs_more_runs) {
    ASSERT_NE(analysis.verdict, Verdict::kFail) << analysis.summary;
    AddRun(input, plateau + kNoise[++added] / 4);
    analysis = Analyze(input);
  }
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << FindCheck(analysis, "rss_growth_per_run")->detail;
  EXPECT_LE(input.runs.size(), 12u);
}

TEST(MemoryGrowthTest, ClimbForAFewRunsThenFlatPasses) {
  // A service whose RSS climbs 1 MiB per run for the first two judged runs (a cache filling), then
  // stays flat: never a failure; a pass within the maximum number of runs.
  AnalysisInput input = RssSeries({kRss, kRss + 1 * kMiB + kNoise[1], kRss + 2 * kMiB + kNoise[2],
                                   kRss + 2 * kMiB + kNoise[3], kRss + 2 * kMiB + kNoise[4],
                                   kRss + 2 * kMiB + kNoise[5]});
  Analysis analysis = Analyze(input);
  for (int k = 6; analysis.needs_more_runs; ++k) {
    ASSERT_NE(analysis.verdict, Verdict::kFail)
        << FindCheck(analysis, "rss_growth_per_run")->detail;
    AddRun(input, kRss + 2 * kMiB + kNoise[k]);
    analysis = Analyze(input);
  }
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << FindCheck(analysis, "rss_growth_per_run")->detail;
}

TEST(MemoryGrowthTest, LastRunFarBelowTheTrendIsNotCalledALeak) {
  // +1 MiB three times, then nothing: the growth may have stopped.
  const Analysis analysis = Analyze(RssSeries(
      {kRss, kRss + 1 * kMiB, kRss + 2 * kMiB, kRss + 3 * kMiB, kRss + 3 * kMiB + 20 * kKiB}));
  const CheckResult* check = FindCheck(analysis, "rss_growth_per_run");
  EXPECT_EQ(check->verdict, Verdict::kInconclusive) << check->detail;
  EXPECT_TRUE(analysis.needs_more_runs);
}

TEST(MemoryGrowthTest, FloorOnlyDerivesTheRateFromTheMaximumRuns) {
  Thresholds thresholds = RssOnly();
  thresholds.rss_per_run.reset();
  const Analysis leak = Analyze(RssSeries(Leak(600 * kKiB, 5), thresholds));
  EXPECT_THAT(CheckNames(leak), ElementsAre("rss_growth_total"));
  EXPECT_EQ(leak.verdict, Verdict::kFail) << leak.checks[0].detail;
  const Analysis flat = Analyze(RssSeries(Flat(8), thresholds));
  EXPECT_EQ(flat.verdict, Verdict::kPass) << flat.checks[0].detail;
}

TEST(MemoryGrowthTest, WithoutWarmupTheBaselineIsTheReference) {
  AnalysisInput input = MakeInput(
      5, RssOnly(),
      [](RunObservation& run, int k) {
        run.rss_bytes = static_cast<int64_t>(30 * kMiB + k * kMiB);
      },
      /*warmups=*/0);
  const Analysis analysis = Analyze(input);
  EXPECT_EQ(analysis.verdict, Verdict::kFail);
  EXPECT_THAT(FindCheck(analysis, "rss_growth_per_run")->detail, HasSubstr("from the baseline"));
}

// ---------------------------------------------------------------------------------------------
// Exact heap

Thresholds HeapOnly() {
  Thresholds t = NoChecks();
  t.heap_per_run = Thresholds{}.heap_per_run;
  return t;
}

AnalysisInput HeapSeries(std::vector<std::optional<double>> heap,
                         Thresholds thresholds = HeapOnly()) {
  return MakeInput(static_cast<int>(heap.size()) - 1, thresholds, [&](RunObservation& run, int k) {
    if (heap[k]) run.heap_bytes = static_cast<int64_t>(*heap[k]);
  });
}

TEST(HeapGrowthTest, OneObjectPerRunFailsEvenFarUnderTheBudget) {
  // One 96-byte object kept per run: RSS cannot see it through its noise; exact heap must.
  Thresholds thresholds = HeapOnly();
  thresholds.rss_per_run = 256 * kKiB;
  thresholds.rss_total = 2 * kMiB;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [&](RunObservation& run, int k) {
    run.heap_bytes = static_cast<int64_t>(12 * kMiB + 96 * k);
    run.rss_bytes = static_cast<int64_t>(kRss + kNoise[k]);
  }));
  const CheckResult* heap = FindCheck(analysis, "heap_growth_per_run");
  ASSERT_NE(heap, nullptr);
  EXPECT_EQ(heap->verdict, Verdict::kFail) << heap->detail;
  EXPECT_EQ(heap->observed, 96);
  EXPECT_EQ(heap->threshold, 64 * kKiB);
  EXPECT_THAT(heap->detail, HasSubstr("every one of the 5 judged runs"));
  EXPECT_EQ(VerdictOf(analysis, "rss_growth_per_run"), Verdict::kPass);
  EXPECT_EQ(analysis.verdict, Verdict::kFail);
  ASSERT_EQ(analysis.growth.size(), 1u);
  EXPECT_EQ(analysis.growth[0].kind, "heap");
  EXPECT_EQ(analysis.growth[0].per_run, 96);
  EXPECT_EQ(analysis.growth[0].total, 5 * 96);
}

TEST(HeapGrowthTest, LargeHeapLeakFails) {
  const Analysis analysis = Analyze(HeapSeries({5e6, 5.5e6, 5.9e6, 6.6e6, 7.0e6, 7.4e6}));
  EXPECT_EQ(VerdictOf(analysis, "heap_growth_per_run"), Verdict::kFail);
}

TEST(HeapGrowthTest, FewerThanFourRisesAskForMoreRuns) {
  const Analysis analysis = Analyze(HeapSeries({1000, 1096, 1192, 1288}));
  EXPECT_EQ(VerdictOf(analysis, "heap_growth_per_run"), Verdict::kInconclusive);
  EXPECT_TRUE(analysis.needs_more_runs);
}

TEST(HeapGrowthTest, ConstantOrReturningHeapPasses) {
  EXPECT_EQ(Analyze(HeapSeries({5e6, 5e6, 5e6, 5e6, 5e6, 5e6})).verdict, Verdict::kPass);
  // Up and down by an object: not a rise in every run, and far under the budget.
  const Analysis wobble = Analyze(HeapSeries({5e6, 5e6 + 96, 5e6, 5e6 + 96, 5e6 + 192, 5e6 + 96}));
  EXPECT_EQ(wobble.verdict, Verdict::kPass) << wobble.checks[0].detail;
  EXPECT_THAT(wobble.growth, IsEmpty());
}

TEST(HeapGrowthTest, ExactGrowthThatShrinksEachRunIsNotYetALeak) {
  const Analysis analysis =
      Analyze(HeapSeries({1e6, 1e6 + 16384, 1e6 + 24576, 1e6 + 28672, 1e6 + 30720}));
  const CheckResult* heap = FindCheck(analysis, "heap_growth_per_run");
  EXPECT_EQ(heap->verdict, Verdict::kInconclusive) << heap->detail;
  EXPECT_THAT(heap->detail, HasSubstr("by less each time"));
}

TEST(HeapGrowthTest, NoHeapStatisticsMeansNoHeapCheckAndANote) {
  Thresholds thresholds = Thresholds{};
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.rss_bytes = static_cast<int64_t>(kRss + kNoise[k]);
    run.fd_targets = std::vector<std::string>{"/dev/null", "socket:[1]"};
    run.thread_names = std::vector<std::string>{"server"};
    run.sockets = 1;
  }));
  EXPECT_EQ(FindCheck(analysis, "heap_growth_per_run"), nullptr);
  EXPECT_THAT(analysis.notes, ElementsAre(HasSubstr("no heap statistics")));
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << analysis.summary;
}

TEST(HeapGrowthTest, HeapReadOnlyBeforeTheJudgedRunsIsSkippedWithANote) {
  AnalysisInput input = HeapSeries({5e6, std::nullopt, std::nullopt, std::nullopt});
  input.baseline.heap_bytes = 4000000;
  const Analysis analysis = Analyze(input);
  EXPECT_EQ(FindCheck(analysis, "heap_growth_per_run"), nullptr);
  EXPECT_THAT(analysis.notes, ElementsAre(HasSubstr("after none of them")));
}

TEST(HeapGrowthTest, MissingFiguresAreNamedNotInvented) {
  const Analysis analysis = Analyze(HeapSeries({5e6, 5e6, std::nullopt, 5e6, 5e6, 5e6, 5e6}));
  const CheckResult* heap = FindCheck(analysis, "heap_growth_per_run");
  EXPECT_EQ(heap->verdict, Verdict::kPass) << heap->detail;
  EXPECT_THAT(heap->detail, HasSubstr("No figure after run(s) 3"));
}

// ---------------------------------------------------------------------------------------------
// Fds, sockets, threads

std::vector<std::string> Repeat(const std::string& item, int n) {
  return std::vector<std::string>(n, item);
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<std::string> kServerThreads = {"backtest_server", "httplib-1", "httplib-2",
                                                 "sqlite-io"};
const std::vector<std::string> kServerFds = {"/dev/null",        "pipe:[77]",
                                             "pipe:[78]",        "socket:[1001]",
                                             "/tmp/backtest.db", "anon_inode:[eventfd]"};

TEST(ThreadGrowthTest, LeakedHeartbeatThreadIsNamed) {
  Thresholds thresholds = NoChecks();
  thresholds.threads = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.thread_names = Concat(kServerThreads, Repeat("exch-heartbeat", k));
  }));
  const CheckResult* check = FindCheck(analysis, "threads_stable");
  ASSERT_NE(check, nullptr);
  EXPECT_EQ(check->verdict, Verdict::kFail) << check->detail;
  EXPECT_EQ(check->observed, 5);
  EXPECT_EQ(check->threshold, 0);
  EXPECT_EQ(check->unit, "threads");
  EXPECT_THAT(check->detail, HasSubstr("exch-heartbeat x5"));
  ASSERT_EQ(analysis.growth.size(), 1u);
  EXPECT_EQ(analysis.growth[0].kind, "thread");
  EXPECT_EQ(analysis.growth[0].site, "exch-heartbeat");
  EXPECT_EQ(analysis.growth[0].total, 5);
  EXPECT_EQ(analysis.growth[0].per_run, 1);
}

TEST(ThreadGrowthTest, ThreadsAreComparedByNameNotByCount) {
  // A pool shrinks by one worker per run while a heartbeat thread leaks per run: the thread count
  // stays the same, the names show the leak.
  Thresholds thresholds = NoChecks();
  thresholds.threads = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.thread_names =
        Concat(Concat(kServerThreads, Repeat("worker", 5 - k)), Repeat("exch-heartbeat", k));
  }));
  const CheckResult* check = FindCheck(analysis, "threads_stable");
  EXPECT_EQ(check->verdict, Verdict::kFail) << check->detail;
  EXPECT_THAT(check->detail,
              HasSubstr("Threads after the warm-up and each judged run: 9, 9, 9, 9, 9, 9"));
  ASSERT_EQ(analysis.growth.size(), 1u);
  EXPECT_EQ(analysis.growth[0].site, "exch-heartbeat");
}

TEST(ThreadGrowthTest, RenamedThreadThatComesAndGoesPasses) {
  Thresholds thresholds = NoChecks();
  thresholds.threads = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.thread_names = kServerThreads;
    run.thread_names->back() = k % 2 == 0 ? "sqlite-io" : "sqlite-io-2";
  }));
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << analysis.checks[0].detail;
}

TEST(SocketGrowthTest, SocketLeakFails) {
  Thresholds thresholds = NoChecks();
  thresholds.sockets = 0;
  const Analysis analysis =
      Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) { run.sockets = 2 + k; }));
  const CheckResult* check = FindCheck(analysis, "sockets_stable");
  EXPECT_EQ(check->verdict, Verdict::kFail) << check->detail;
  ASSERT_EQ(analysis.growth.size(), 1u);
  EXPECT_EQ(analysis.growth[0].kind, "socket");
  EXPECT_EQ(analysis.growth[0].total, 5);
}

TEST(FdGrowthTest, LeakNamesTheTargets) {
  Thresholds thresholds = NoChecks();
  thresholds.fds = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    std::vector<std::string> fds = kServerFds;
    for (int i = 0; i < k; ++i) {
      fds.push_back("/tmp/backtest.db-wal");
      fds.push_back("socket:[" + std::to_string(5000 + i) + "]");
    }
    run.fd_targets = fds;
  }));
  const CheckResult* check = FindCheck(analysis, "fds_stable");
  EXPECT_EQ(check->verdict, Verdict::kFail) << check->detail;
  EXPECT_EQ(check->observed, 10);
  EXPECT_THAT(check->detail, AllOf(HasSubstr("/tmp/backtest.db-wal x5"), HasSubstr("socket x5")));
  ASSERT_EQ(analysis.growth.size(), 2u);
  std::vector<std::string> sites = {analysis.growth[0].site, analysis.growth[1].site};
  std::sort(sites.begin(), sites.end());
  EXPECT_THAT(sites, ElementsAre("/tmp/backtest.db-wal", "socket"));
  for (const GrowthItem& item : analysis.growth) {
    EXPECT_EQ(item.kind, "fd");
    EXPECT_EQ(item.per_run, 1);
  }
}

struct CountCase {
  std::string name;
  std::vector<int> counts;  // after the warm-up, then after each judged run
  int64_t threshold;
  Verdict expected;
};

void PrintTo(const CountCase& c, std::ostream* os) { *os << c.name; }

class IntegerResourceTest : public ::testing::TestWithParam<CountCase> {};

// The same series judged as threads, as sockets and as fds must get the same verdict.
TEST_P(IntegerResourceTest, DecidesAsExpectedForEveryKind) {
  const CountCase& c = GetParam();
  const int judged = static_cast<int>(c.counts.size()) - 1;
  for (const std::string kind : {"threads", "sockets", "fds"}) {
    Thresholds thresholds = NoChecks();
    if (kind == "threads") thresholds.threads = c.threshold;
    if (kind == "sockets") thresholds.sockets = c.threshold;
    if (kind == "fds") thresholds.fds = c.threshold;
    const Analysis analysis =
        Analyze(MakeInput(judged, thresholds, [&](RunObservation& run, int k) {
          run.thread_names = Concat(kServerThreads, Repeat("worker", c.counts[k]));
          run.sockets = c.counts[k];
          run.fd_targets = Concat(kServerFds, Repeat("socket:[9]", c.counts[k]));
        }));
    ASSERT_EQ(analysis.checks.size(), 1u);
    EXPECT_EQ(analysis.checks[0].verdict, c.expected) << kind << ": " << analysis.checks[0].detail;
  }
}

INSTANTIATE_TEST_SUITE_P(
    TypedSeries, IntegerResourceTest,
    ::testing::Values(
        CountCase{"SteadyClimb", {0, 1, 2, 3, 4, 5}, 0, Verdict::kFail},
        CountCase{"ClimbEveryOtherRun", {0, 0, 1, 1, 2, 2, 3}, 0, Verdict::kFail},
        CountCase{"ThreeRunsAreEnoughForASteadyClimb", {0, 1, 2, 3}, 0, Verdict::kFail},
        CountCase{"ClimbWithATransientPeak", {0, 1, 2, 6, 4, 5}, 0, Verdict::kFail},
        CountCase{"TransientPeakThenOneOffThatStays", {0, 0, 5, 1, 1, 1}, 0, Verdict::kPass},
        CountCase{"RisesAndReturns", {0, 1, 0, 2, 0, 1, 0}, 0, Verdict::kPass},
        CountCase{"Oscillates", {0, 1, 0, 1, 0, 1}, 0, Verdict::kPass},
        CountCase{"OneOffThatStays", {0, 0, 1, 1, 1, 1}, 0, Verdict::kPass},
        CountCase{"PoolFilledLazily", {0, 1, 2, 2, 2, 2}, 0, Verdict::kPass},
        CountCase{"OneOffInTheLastRun", {0, 0, 0, 0, 0, 1}, 0, Verdict::kInconclusive},
        CountCase{"WithinTheThreshold", {0, 1, 2, 2, 2, 2}, 2, Verdict::kPass},
        CountCase{"ClimbPastTheThreshold", {0, 1, 2, 3, 4, 5}, 2, Verdict::kFail},
        CountCase{"TwoJudgedRunsClimbing", {0, 1, 2}, 0, Verdict::kInconclusive},
        CountCase{"Constant", {3, 3, 3, 3, 3, 3}, 0, Verdict::kPass}),
    [](const ::testing::TestParamInfo<CountCase>& info) { return info.param.name; });

TEST(CountGrowthTest, OneOffIsListedAsGrowthButPasses) {
  Thresholds thresholds = NoChecks();
  thresholds.fds = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.fd_targets = k >= 2 ? Concat(kServerFds, {"/tmp/backtest.db-wal"}) : kServerFds;
  }));
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << analysis.checks[0].detail;
  ASSERT_EQ(analysis.growth.size(), 1u);
  EXPECT_EQ(analysis.growth[0].site, "/tmp/backtest.db-wal");
  EXPECT_EQ(analysis.growth[0].total, 1);
  EXPECT_LT(analysis.growth[0].per_run, 1);
}

TEST(CountGrowthTest, OneOffInTheLastRunPassesWhenItStays) {
  Thresholds thresholds = NoChecks();
  thresholds.threads = 0;
  AnalysisInput input = MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.thread_names = k == 5 ? Concat(kServerThreads, {"lazy-flusher"}) : kServerThreads;
  });
  Analysis analysis = Analyze(input);
  ASSERT_TRUE(analysis.needs_more_runs);
  while (analysis.needs_more_runs) {
    input.runs.push_back(input.runs.back());
    input.runs.back().index += 1;
    analysis = Analyze(input);
  }
  EXPECT_EQ(analysis.verdict, Verdict::kPass) << analysis.checks[0].detail;
  EXPECT_EQ(input.runs.size(), 8u);  // two runs without a new high settle it
}

TEST(CountGrowthTest, UnreadableFdsSkipTheCheckWithANote) {
  Thresholds thresholds = NoChecks();
  thresholds.fds = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation&, int) {}));
  EXPECT_THAT(analysis.checks, IsEmpty());
  EXPECT_THAT(analysis.notes, ElementsAre(HasSubstr("fds_stable skipped")));
}

// ---------------------------------------------------------------------------------------------
// Resolved fds, suppressions

// The fds of a service holding a listener on 127.0.0.1:38685 (an in-process exchange) plus `k`
// leaked connections to it: each leaves a client end and a server end.
std::vector<ResolvedFd> ServiceFds(int k, int first_port = 41000) {
  std::vector<ResolvedFd> fds = {{"/dev/null", "/dev/null", false},
                                 {"pipe", "pipe:[77]", false},
                                 {"tcp listening on 127.0.0.1:38685", "tcp 127.0.0.1:38685 LISTEN", true}};
  for (int i = 0; i < k; ++i) {
    const std::string client = "127.0.0.1:" + std::to_string(first_port + i);
    fds.push_back({"tcp -> 127.0.0.1:38685", "tcp " + client + " -> 127.0.0.1:38685 ESTABLISHED", true});
    fds.push_back({"tcp accepted on 127.0.0.1:38685",
                   "tcp 127.0.0.1:38685 -> " + client + " ESTABLISHED", true});
  }
  return fds;
}

const GrowthItem* FindGrowth(const Analysis& analysis, std::string_view kind, std::string_view site) {
  for (const GrowthItem& item : analysis.growth) {
    if (item.kind == kind && item.site == site) return &item;
  }
  return nullptr;
}

TEST(ResolvedFdsTest, LeakedConnectionsAreNamedByTheirPeerWithExamples) {
  Thresholds thresholds = NoChecks();
  thresholds.fds = 0;
  thresholds.sockets = 0;
  // The warm-up already left one connection (port 41000); judged run k adds port 41000 + k.
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.resolved_fds = ServiceFds(k + 1);
    run.sockets = 1 + 2 * (k + 1);
  }));
  const CheckResult* sockets = FindCheck(analysis, "sockets_stable");
  ASSERT_NE(sockets, nullptr);
  EXPECT_EQ(sockets->verdict, Verdict::kFail) << sockets->detail;
  EXPECT_EQ(sockets->observed, 10);
  EXPECT_THAT(sockets->detail, AllOf(HasSubstr("tcp -> 127.0.0.1:38685 x5"),
                                     HasSubstr("tcp accepted on 127.0.0.1:38685 x5")));
  const GrowthItem* client = FindGrowth(analysis, "socket", "tcp -> 127.0.0.1:38685");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->total, 5);
  EXPECT_EQ(client->per_run, 1);
  // Examples are new items only (not the warm-up's port 41000), sorted, at most three.
  EXPECT_THAT(client->examples, ElementsAre("tcp 127.0.0.1:41001 -> 127.0.0.1:38685 ESTABLISHED",
                                            "tcp 127.0.0.1:41002 -> 127.0.0.1:38685 ESTABLISHED",
                                            "tcp 127.0.0.1:41003 -> 127.0.0.1:38685 ESTABLISHED"));
  EXPECT_TRUE(client->suppressed.empty());
  ASSERT_NE(FindGrowth(analysis, "socket", "tcp accepted on 127.0.0.1:38685"), nullptr);
  // The fds check names the same sockets, and the file fds that did not grow are not listed.
  const GrowthItem* fd = FindGrowth(analysis, "fd", "tcp -> 127.0.0.1:38685");
  ASSERT_NE(fd, nullptr);
  EXPECT_EQ(fd->examples, client->examples);
  EXPECT_EQ(FindGrowth(analysis, "fd", "pipe"), nullptr);
  EXPECT_EQ(FindCheck(analysis, "fds_stable")->verdict, Verdict::kFail);
}

// Defect: a service leaking one unconnected UDP socket per run, each bound to 127.0.0.1:0 (a new
// ephemeral port every time), was listed one growth line per port ("udp on 127.0.0.1:39948 +1
// (0.25 per run)", ... "+1 (0.00 per run)"), so neither the count nor the rate of the leak showed.
// The sockets are now one site, "udp on 127.0.0.1:*", +5 at 1.00 per run, next to a fixed-port
// listener and a connection that keep their ports.
TEST(ResolvedFdsTest, SocketsOnEphemeralPortsAreOneSiteWithTheirCountAndRate) {
  Thresholds thresholds = NoChecks();
  thresholds.fds = 0;
  thresholds.sockets = 0;
  const int ports[] = {39948, 51217, 33090, 45771, 58003, 40112};  // as the kernel hands them out
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [&](RunObservation& run, int k) {
    SocketTable table = {{1, "tcp 0.0.0.0:8080 LISTEN"},
                         {2, "tcp 127.0.0.1:44000 -> 127.0.0.1:5432 ESTABLISHED"}};
    std::vector<std::string> targets = {"socket:[1]", "socket:[2]", "/dev/null"};
    for (int i = 0; i <= k; ++i) {  // the warm-up leaked one too
      table[100 + i] = "udp 127.0.0.1:" + std::to_string(ports[i]) + " UNCONN";
      targets.push_back("socket:[" + std::to_string(100 + i) + "]");
    }
    run.resolved_fds = ResolveFds(targets, table);
    run.sockets = static_cast<int64_t>(table.size());
  }));
  EXPECT_EQ(FindCheck(analysis, "sockets_stable")->verdict, Verdict::kFail);
  std::vector<const GrowthItem*> sockets;
  for (const GrowthItem& item : analysis.growth) {
    if (item.kind == "socket") sockets.push_back(&item);
  }
  ASSERT_EQ(sockets.size(), 1u) << "one line for the UDP sockets, none for the stable ones";
  EXPECT_EQ(sockets[0]->site, "udp on 127.0.0.1:*");
  EXPECT_EQ(sockets[0]->total, 5);
  EXPECT_EQ(sockets[0]->per_run, 1);
  // The examples still show the ports (new items only, sorted).
  EXPECT_THAT(sockets[0]->examples,
              ElementsAre("udp 127.0.0.1:33090 UNCONN", "udp 127.0.0.1:40112 UNCONN",
                          "udp 127.0.0.1:45771 UNCONN"));
  EXPECT_THAT(FindCheck(analysis, "sockets_stable")->detail, HasSubstr("udp on 127.0.0.1:* x5"));
  const GrowthItem* fd = FindGrowth(analysis, "fd", "udp on 127.0.0.1:*");
  ASSERT_NE(fd, nullptr);
  EXPECT_EQ(fd->total, 5);
  EXPECT_EQ(FindGrowth(analysis, "socket", "tcp listening on 0.0.0.0:8080"), nullptr);
}

TEST(ResolvedFdsTest, AConnectionThatChangesPeersIsNotANewSocket) {
  // One connection, to a different address after each run (DNS round robin): still one socket.
  Thresholds thresholds = NoChecks();
  thresholds.sockets = 0;
  thresholds.fds = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    const std::string peer = "10.0.0." + std::to_string(k + 1) + ":443";
    run.resolved_fds = {{"tcp -> " + peer, "tcp 10.0.0.100:50000 -> " + peer + " ESTABLISHED", true},
                        {"/tmp/app.log", "/tmp/app.log", false}};
    run.sockets = 1;
  }));
  EXPECT_EQ(analysis.verdict, Verdict::kPass)
      << FindCheck(analysis, "sockets_stable")->detail << "\n"
      << FindCheck(analysis, "fds_stable")->detail;
  // The current peer is still shown as what is new since the warm-up.
  const GrowthItem* item = FindGrowth(analysis, "socket", "tcp -> 10.0.0.6:443");
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item->total, 1);
}

TEST(SuppressionsTest, ASuppressedSiteIsListedWithItsReasonButNotCounted) {
  Suppressions suppressions;
  suppressions.entries = {{"thread", "grpc_timer*", "one timer thread per channel, closed at exit"},
                          {"socket", "tcp -> *:5432", "the connection pool grows to its size"}};
  Thresholds thresholds = NoChecks();
  thresholds.threads = 0;
  thresholds.sockets = 0;
  thresholds.fds = 0;
  AnalysisInput input = MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.thread_names = Concat(kServerThreads, Repeat("grpc_timer_0", k));
    std::vector<ResolvedFd> fds;
    for (int i = 0; i < k; ++i) {
      fds.push_back({"tcp -> 10.0.0.9:5432",
                     "tcp 10.0.0.5:" + std::to_string(40000 + i) + " -> 10.0.0.9:5432 ESTABLISHED", true});
    }
    run.resolved_fds = fds;
    run.sockets = k;
  });
  const Analysis unsuppressed = Analyze(input);
  EXPECT_EQ(unsuppressed.verdict, Verdict::kFail);

  input.suppressions = &suppressions;
  const Analysis analysis = Analyze(input);
  for (const CheckResult& check : analysis.checks) {
    EXPECT_EQ(check.verdict, Verdict::kPass) << check.name << ": " << check.detail;
    EXPECT_THAT(check.detail, HasSubstr("Suppressed, not counted"));
  }
  const GrowthItem* thread = FindGrowth(analysis, "thread", "grpc_timer_0");
  ASSERT_NE(thread, nullptr);
  EXPECT_EQ(thread->total, 5) << "a suppressed site is still shown";
  EXPECT_EQ(thread->suppressed, "one timer thread per channel, closed at exit");
  // A socket suppression covers the fds of those sockets too.
  const GrowthItem* fd = FindGrowth(analysis, "fd", "tcp -> 10.0.0.9:5432");
  ASSERT_NE(fd, nullptr);
  EXPECT_EQ(fd->suppressed, "the connection pool grows to its size");
  EXPECT_EQ(FindGrowth(analysis, "socket", "tcp -> 10.0.0.9:5432")->suppressed, fd->suppressed);
}

TEST(SuppressionsTest, AnUnrelatedSuppressionChangesNothing) {
  Suppressions suppressions;
  suppressions.entries = {{"fd", "exch-heartbeat", "names a thread, not an fd"}};
  Thresholds thresholds = NoChecks();
  thresholds.threads = 0;
  AnalysisInput input = MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.thread_names = Concat(kServerThreads, Repeat("exch-heartbeat", k));
  });
  input.suppressions = &suppressions;
  const Analysis analysis = Analyze(input);
  EXPECT_EQ(analysis.verdict, Verdict::kFail);
  ASSERT_EQ(analysis.growth.size(), 1u);
  EXPECT_TRUE(analysis.growth[0].suppressed.empty());
}

// ---------------------------------------------------------------------------------------------
// Idle CPU

Thresholds CpuOnly() {
  Thresholds t = NoChecks();
  t.idle_cpu_pct = 2.0;
  return t;
}

struct CpuCase {
  std::string name;
  std::vector<double> after;  // idle CPU % after each judged run's cooldown (baseline 0.3 %)
  Verdict expected;
};

void PrintTo(const CpuCase& c, std::ostream* os) { *os << c.name; }

class IdleCpuTest : public ::testing::TestWithParam<CpuCase> {};

TEST_P(IdleCpuTest, DecidesAsExpected) {
  const CpuCase& c = GetParam();
  const Analysis analysis = Analyze(
      MakeInput(static_cast<int>(c.after.size()), CpuOnly(), [&](RunObservation& run, int k) {
        if (k > 0) run.idle_cpu_pct = c.after[k - 1];
      }));
  ASSERT_EQ(analysis.checks.size(), 1u);
  EXPECT_EQ(analysis.checks[0].verdict, c.expected) << analysis.checks[0].detail;
  EXPECT_DOUBLE_EQ(*analysis.checks[0].observed, c.after.back() - 0.3);
}

INSTANTIATE_TEST_SUITE_P(
    TypedSeries, IdleCpuTest,
    ::testing::Values(
        CpuCase{"Staircase", {1.5, 2.6, 3.8, 5.0, 6.1}, Verdict::kFail},
        CpuCase{"TheDocumentsStaircase", {37, 70, 85}, Verdict::kFail},
        // Regression: a staircase whose first steps stay under the allowance was left undecided
        // (above in 2 of 5 runs), and a gate another check had failed stopped before deciding it.
        CpuCase{"StaircaseAboveOnlyInItsLastRuns", {0.5, 1.2, 1.9, 2.6, 3.3}, Verdict::kFail},
        CpuCase{"LastTwoAboveWithoutATrend", {1.0, 0.4, 0.9, 2.6, 2.5}, Verdict::kInconclusive},
        CpuCase{"OneSpike", {0.4, 6.0, 0.5, 0.3, 0.4}, Verdict::kPass},
        CpuCase{"NoiseOnly", {0.5, 0.2, 0.9, 0.4, 0.6}, Verdict::kPass},
        CpuCase{"OnlyTheLastRunIsAbove", {0.4, 0.5, 0.3, 0.4, 3.1}, Verdict::kInconclusive},
        CpuCase{"MostAboveButReturned", {3.0, 3.2, 3.5, 3.1, 0.5}, Verdict::kInconclusive},
        CpuCase{"TwoRunsBothAbove", {4.0, 5.0}, Verdict::kInconclusive}),
    [](const ::testing::TestParamInfo<CpuCase>& info) { return info.param.name; });

TEST(IdleCpuCheckTest, DetailShowsTheStaircase) {
  const std::vector<double> after = {1.5, 2.6, 3.8, 5.0, 6.1};
  const Analysis analysis = Analyze(MakeInput(5, CpuOnly(), [&](RunObservation& run, int k) {
    if (k > 0) run.idle_cpu_pct = after[k - 1];
  }));
  const CheckResult& check = analysis.checks[0];
  EXPECT_EQ(check.name, "idle_cpu_returns");
  EXPECT_EQ(check.metric, "cpu_pct");
  EXPECT_EQ(check.unit, "%");
  EXPECT_EQ(check.threshold, 2.0);
  EXPECT_THAT(check.detail, HasSubstr("baseline 0.3 %, after runs 2-6: 1.5, 2.6, 3.8, 5, 6.1 %"));
}

TEST(IdleCpuCheckTest, DetailNamesTheThreadsAboveTheBaseline) {
  const std::vector<double> after = {1.5, 2.6, 3.8, 5.0, 6.1};
  AnalysisInput input = MakeInput(5, CpuOnly(), [&](RunObservation& run, int k) {
    if (k > 0) run.idle_cpu_pct = after[k - 1];
    // Runs 3-6 are above the threshold: there the heartbeats use 3 % to 6 %, 4.5 % on average.
    const double heartbeat = k >= 2 ? 1.0 + k : 0.0;
    run.idle_threads = {{"exch-heartbeat", k + 1, heartbeat}, {"server", 1, 0.3}};
  });
  input.baseline.idle_threads = {{"server", 1, 0.3}};
  const Analysis analysis = Analyze(input);
  ASSERT_EQ(analysis.checks[0].verdict, Verdict::kFail);
  EXPECT_THAT(analysis.checks[0].detail,
              HasSubstr("Threads above their baseline CPU (mean after runs 3, 4, 5, 6): "
                        "exch-heartbeat \u00d76: 4.5 % (baseline 0 %)."));
  EXPECT_THAT(analysis.checks[0].detail, Not(HasSubstr("server")));
}

TEST(IdleCpuCheckTest, NoThreadsNamedWhenCpuReturns) {
  AnalysisInput input = MakeInput(5, CpuOnly(), [&](RunObservation& run, int) {
    run.idle_threads = {{"server", 1, 1.0}};
  });
  const Analysis analysis = Analyze(input);
  ASSERT_EQ(analysis.checks[0].verdict, Verdict::kPass);
  EXPECT_THAT(analysis.checks[0].detail, Not(HasSubstr("Threads above")));
}

// ---------------------------------------------------------------------------------------------
// Peak RSS, thresholds, overall verdict

TEST(PeakRssTest, FailsWhenARunPeaksOverTheLimit) {
  Thresholds thresholds = NoChecks();
  thresholds.peak_rss = 100 * kMiB;
  const Analysis over = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.peak_rss_bytes = static_cast<int64_t>((k == 3 ? 180 : 60) * kMiB);
  }));
  EXPECT_EQ(over.verdict, Verdict::kFail);
  EXPECT_EQ(over.checks[0].observed, 180 * kMiB);
  EXPECT_THAT(over.checks[0].detail, HasSubstr("run 4"));
  const Analysis under = Analyze(MakeInput(5, thresholds, [](RunObservation&, int) {}));
  EXPECT_EQ(under.verdict, Verdict::kPass);
}

TEST(ThresholdsTest, NullTurnsChecksOff) {
  const Analysis none = Analyze(MakeInput(5, NoChecks(), [](RunObservation& run, int k) {
    run.rss_bytes = static_cast<int64_t>(kRss + k * 10 * kMiB);
    run.idle_cpu_pct = 90;
  }));
  EXPECT_THAT(none.checks, IsEmpty());
  EXPECT_EQ(none.verdict, Verdict::kPass);
  EXPECT_THAT(none.summary, HasSubstr("turned off"));

  Thresholds defaults;
  const Analysis all = Analyze(MakeInput(5, defaults, [](RunObservation& run, int) {
    run.heap_bytes = 1000;
    run.fd_targets = kServerFds;
    run.thread_names = kServerThreads;
    run.sockets = 1;
  }));
  EXPECT_THAT(CheckNames(all),
              ElementsAre("idle_cpu_returns", "rss_growth_per_run", "rss_growth_total",
                          "heap_growth_per_run", "fds_stable", "sockets_stable", "threads_stable"));
  EXPECT_EQ(all.verdict, Verdict::kPass) << all.summary;
}

TEST(AnalyzeTest, FailOutranksInconclusiveAndStopsTheRuns) {
  Thresholds thresholds = CpuOnly();
  thresholds.threads = 0;
  const Analysis analysis = Analyze(MakeInput(5, thresholds, [](RunObservation& run, int k) {
    run.idle_cpu_pct = k == 5 ? 4.0 : 0.3;  // inconclusive: only the last run
    run.thread_names = Concat(kServerThreads, Repeat("exch-heartbeat", k));
  }));
  EXPECT_EQ(VerdictOf(analysis, "idle_cpu_returns"), Verdict::kInconclusive);
  EXPECT_EQ(analysis.verdict, Verdict::kFail);
  EXPECT_FALSE(analysis.needs_more_runs);
  EXPECT_THAT(analysis.summary,
              AllOf(HasSubstr("fail"), HasSubstr("threads_stable"), Not(HasSubstr("idle_cpu"))));
}

TEST(AnalyzeTest, InconclusiveAtTheMaximumStopsAsking) {
  AnalysisInput input = MakeInput(
      5, CpuOnly(), [](RunObservation& run, int k) { run.idle_cpu_pct = k == 5 ? 4.0 : 0.3; });
  input.max_runs = 6;
  const Analysis analysis = Analyze(input);
  EXPECT_EQ(analysis.verdict, Verdict::kInconclusive);
  EXPECT_FALSE(analysis.needs_more_runs);
  EXPECT_THAT(analysis.summary, HasSubstr("maximum of 6 runs"));
}

TEST(AnalyzeTest, OnlyWarmupRunsAskForMore) {
  const Analysis analysis = Analyze(MakeInput(
      0, Thresholds{}, [](RunObservation&, int) {}, /*warmups=*/1));
  EXPECT_EQ(analysis.verdict, Verdict::kInconclusive);
  EXPECT_TRUE(analysis.needs_more_runs);
  EXPECT_EQ(analysis.judged_runs, 0);
}

// ---------------------------------------------------------------------------------------------
// Whole gates on seeded noise: the runner's loop (warm-up 1, 5 runs, one more while asked, at most
// 12) on RSS with +-200 KiB uniform noise.

struct GateTally {
  int pass = 0, fail = 0, inconclusive = 0;
};

template <class Rss>
GateTally SimulateGates(int gates, Rss rss, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> noise(-200 * kKiB, 200 * kKiB);
  GateTally tally;
  for (int g = 0; g < gates; ++g) {
    AnalysisInput input;
    input.thresholds = RssOnly();
    input.baseline.rss_bytes = static_cast<int64_t>(30 * kMiB);
    Analysis analysis;
    for (int index = 1;; ++index) {
      RunObservation run;
      run.index = index;
      run.warmup = index == 1;
      run.rss_bytes = static_cast<int64_t>(rss(index - 1) + noise(rng));
      input.runs.push_back(run);
      if (index < 5) continue;
      analysis = Analyze(input);
      if (!analysis.needs_more_runs) break;
    }
    (analysis.verdict == Verdict::kPass   ? tally.pass
     : analysis.verdict == Verdict::kFail ? tally.fail
                                          : tally.inconclusive)++;
  }
  return tally;
}

TEST(SimulatedGateTest, NoiseNeverFails) {
  const GateTally tally = SimulateGates(
      300, [](int) { return kRss; }, 1);
  EXPECT_EQ(tally.fail, 0);
  EXPECT_EQ(tally.pass, 300);
}

TEST(SimulatedGateTest, LeakAboveTheBudgetNeverPasses) {
  const GateTally tally = SimulateGates(
      300, [](int k) { return kRss + k * 320 * kKiB; }, 2);
  EXPECT_EQ(tally.pass, 0);
  EXPECT_EQ(tally.fail, 300);
}

TEST(SimulatedGateTest, LeakAtTheBudgetAlmostAlwaysFails) {
  const GateTally tally = SimulateGates(
      300, [](int k) { return kRss + k * 256 * kKiB; }, 3);
  EXPECT_GE(tally.fail, 291);  // 97%: at exactly the budget the statistics cannot be certain
}

TEST(SimulatedGateTest, ClimbThenPlateauNeverFails) {
  const GateTally tally = SimulateGates(
      300, [](int k) { return kRss + std::min(k, 2) * kMiB; }, 4);
  EXPECT_EQ(tally.fail, 0);
  EXPECT_GE(tally.pass, 294);
}

TEST(SimulatedGateTest, SpikeNeverFails) {
  const GateTally tally = SimulateGates(
      300, [](int k) { return kRss + (k == 3 ? 6 * kMiB : 0); }, 5);
  EXPECT_EQ(tally.fail, 0);
  EXPECT_EQ(tally.pass, 300);
}

}  // namespace
}  // namespace leakgate::harness
