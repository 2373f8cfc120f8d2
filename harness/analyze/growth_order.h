// The order of "what grew": the growth items a person should read first come first, in
// result.json's "growth" array and so in every report rendered from it (console, Markdown, HTML,
// JUnit, comparison), which keep the order they are given.
//
// The rule, key by key:
//  1. The verdict of the check the item's kind is judged by: items of a failing check first, then
//     of an inconclusive one, then of a passing (or absent) one; suppressed items last, whatever
//     their check. The check of a kind: heap -> heap_growth_per_run (when it is absent, the worse
//     of rss_growth_per_run and rss_growth_total: the heap sites then explain the RSS), fd ->
//     fds_stable, socket -> sockets_stable, thread -> threads_stable; another kind has none.
//  2. Size per run, normalised within the kind: the item's per_run over the largest per_run of
//     its kind in the list (bytes for heap, items for fd, socket and thread; suppressed items
//     among themselves), so the largest of each kind is 1 and bytes are never compared with
//     counts; larger first. A per_run at or under zero (a site that grew once, late) counts as 0.
//  3. The kind: thread, socket, fd, heap, then others by name. A thread, a socket or an fd is one
//     counted object that names its cause; heap bytes are often what such an object holds (a
//     leaked thread's stack and buffers), and an fd item repeats a socket item of the same site.
//  4. Larger total first, then the site's name (so the order is the same on every machine).
// The sort is stable and depends only on the items and the checks: ordering an ordered list again
// changes nothing. Pure and thread-safe.
#ifndef LEAKGATE_HARNESS_ANALYZE_GROWTH_ORDER_H_
#define LEAKGATE_HARNESS_ANALYZE_GROWTH_ORDER_H_

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "harness/analyze/analysis.h"

namespace leakgate::harness {

// `growth` in the order above, judged by `checks` (Analysis::checks).
std::vector<GrowthItem> OrderGrowth(std::vector<GrowthItem> growth,
                                    std::span<const CheckResult> checks);

// The verdict rule 1 reads for `kind`; nullopt when no check judges it.
std::optional<Verdict> VerdictOfKind(std::string_view kind, std::span<const CheckResult> checks);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_ANALYZE_GROWTH_ORDER_H_
