// Robust statistics, the building blocks of every decision that must survive a noisy machine:
// median, median absolute deviation, the Theil-Sen slope with Sen's confidence range, and outliers
// by robust deviations. Used by the analysis (harness/analyze) and by the reports that restate a
// slope from result.json (reports/compare). Pure functions; thread-safe.
#ifndef LEAKGATE_BASE_STATS_H_
#define LEAKGATE_BASE_STATS_H_

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace leakgate {

// MAD -> standard deviation of a normal distribution.
inline constexpr double kMadToSigma = 1.4826;

// Median of the values; nullopt when empty.
std::optional<double> Median(std::span<const double> values);

// Median absolute deviation from the median (unscaled: multiply by 1.4826 for a normal sigma);
// nullopt when empty.
std::optional<double> MedianAbsoluteDeviation(std::span<const double> values);

struct SlopeEstimate {
  double slope = 0;      // median of the pairwise slopes (y_j - y_i) / (x_j - x_i), x_i != x_j
  double intercept = 0;  // median of y - slope * x
  double low = 0;        // Sen's confidence range of the slope (ranks from Kendall's S, normal
  double high = 0;       // approximation, rounded outwards: with 5 points or fewer it is min..max)
  double confidence = 0.95;
  int points = 0;
  int pairs = 0;           // pairs with distinct x
  int positive_pairs = 0;  // pairs whose slope is > 0
};

// Theil-Sen estimate of y against x. nullopt when x and y differ in size, or when fewer than two
// distinct x exist. `confidence` in (0, 1).
std::optional<SlopeEstimate> TheilSenSlope(std::span<const double> x, std::span<const double> y,
                                           double confidence = 0.95);

// Indices of the values more than `cutoff` robust deviations (1.4826 x MAD) from the median. When
// the MAD is zero (most values equal), every value that differs from the median is returned.
std::vector<size_t> FindOutliers(std::span<const double> values, double cutoff = 5.0);

}  // namespace leakgate

#endif  // LEAKGATE_BASE_STATS_H_
