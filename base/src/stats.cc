#include "base/stats.h"

#include <algorithm>
#include <cmath>

namespace leakgate {
namespace {

// Inverse of the standard normal distribution function, by bisection on erfc (exact enough for
// choosing ranks).
double NormalQuantile(double p) {
  double low = -10, high = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (low + high) / 2;
    if (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p) {
      low = mid;
    } else {
      high = mid;
    }
  }
  return (low + high) / 2;
}

}  // namespace

std::optional<double> Median(std::span<const double> values) {
  if (values.empty()) return std::nullopt;
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  const size_t mid = sorted.size() / 2;
  return sorted.size() % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

std::optional<double> MedianAbsoluteDeviation(std::span<const double> values) {
  const std::optional<double> center = Median(values);
  if (!center) return std::nullopt;
  std::vector<double> deviations;
  for (double v : values) deviations.push_back(std::fabs(v - *center));
  return Median(deviations);
}

std::optional<SlopeEstimate> TheilSenSlope(std::span<const double> x, std::span<const double> y,
                                           double confidence) {
  if (x.size() != y.size() || !(confidence > 0 && confidence < 1)) return std::nullopt;
  std::vector<double> slopes;
  int positive = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    for (size_t j = i + 1; j < x.size(); ++j) {
      if (x[j] == x[i]) continue;
      const double slope = (y[j] - y[i]) / (x[j] - x[i]);
      slopes.push_back(slope);
      if (slope > 0) ++positive;
    }
  }
  if (slopes.empty()) return std::nullopt;
  std::sort(slopes.begin(), slopes.end());
  SlopeEstimate estimate;
  estimate.slope = *Median(slopes);
  std::vector<double> offsets;
  for (size_t i = 0; i < x.size(); ++i) offsets.push_back(y[i] - estimate.slope * x[i]);
  estimate.intercept = *Median(offsets);
  // Sen (1968): the range's ends are the slopes of ranks (C -+ z sqrt(Var S)) / 2 (+1 for the
  // upper), with Var S = n(n-1)(2n+5)/18 from Kendall's S.
  const double n = static_cast<double>(x.size());
  const double count = static_cast<double>(slopes.size());
  const double spread =
      NormalQuantile(1 - (1 - confidence) / 2) * std::sqrt(n * (n - 1) * (2 * n + 5) / 18);
  const double lower_rank = std::clamp(std::floor((count - spread) / 2), 1.0, count);
  const double upper_rank = std::clamp(std::ceil((count + spread) / 2 + 1), 1.0, count);
  estimate.low = slopes[static_cast<size_t>(lower_rank) - 1];
  estimate.high = slopes[static_cast<size_t>(upper_rank) - 1];
  estimate.confidence = confidence;
  estimate.points = static_cast<int>(x.size());
  estimate.pairs = static_cast<int>(slopes.size());
  estimate.positive_pairs = positive;
  return estimate;
}

std::vector<size_t> FindOutliers(std::span<const double> values, double cutoff) {
  std::vector<size_t> outliers;
  const std::optional<double> center = Median(values);
  if (!center) return outliers;
  const double mad = *MedianAbsoluteDeviation(values);
  for (size_t i = 0; i < values.size(); ++i) {
    const double deviation = std::fabs(values[i] - *center);
    if (mad == 0 ? deviation > 0 : deviation > cutoff * kMadToSigma * mad) outliers.push_back(i);
  }
  return outliers;
}

}  // namespace leakgate
