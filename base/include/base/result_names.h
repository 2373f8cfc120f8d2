// The names of result.json that every writer and reader of a result must spell the same way: the
// schema, the verdicts and the checks (DESIGN.md "result.json": names are added freely and never
// renamed). The harness writes them, the reports read them; neither spells one as a literal.
// Constants and pure functions; thread-safe.
#ifndef LEAKGATE_BASE_RESULT_NAMES_H_
#define LEAKGATE_BASE_RESULT_NAMES_H_

#include <optional>
#include <string_view>

namespace leakgate {

inline constexpr std::string_view kResultSchema = "leakgate.result/1";

// The verdict of a check or of a whole gate. A check is never kError; a gate is kError when it
// could not judge (the target failed, bad input).
enum class Verdict { kPass, kFail, kInconclusive, kError };

// "pass", "fail", "inconclusive", "error" (the words of result.json).
std::string_view VerdictName(Verdict verdict);

// The verdict a word of result.json names; nullopt for any other text.
std::optional<Verdict> ParseVerdict(std::string_view name);

// The checks of a gate, in the order the analysis adds them.
namespace check_id {
inline constexpr std::string_view kIdleCpuReturns = "idle_cpu_returns";
inline constexpr std::string_view kRssGrowthPerRun = "rss_growth_per_run";
inline constexpr std::string_view kRssGrowthTotal = "rss_growth_total";
inline constexpr std::string_view kHeapGrowthPerRun = "heap_growth_per_run";
inline constexpr std::string_view kFdsStable = "fds_stable";
inline constexpr std::string_view kSocketsStable = "sockets_stable";
inline constexpr std::string_view kThreadsStable = "threads_stable";
inline constexpr std::string_view kPeakRss = "peak_rss";
}  // namespace check_id

}  // namespace leakgate

#endif  // LEAKGATE_BASE_RESULT_NAMES_H_
