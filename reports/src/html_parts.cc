#include "html_parts.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>

#include "base/units.h"

namespace leakgate::reports {

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      case '\0': out += "\xEF\xBF\xBD"; break;  // U+FFFD: HTML forbids NUL in text
      default: out += c;
    }
  }
  return out;
}

namespace html {
namespace {

constexpr double kKiB = 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// A coordinate in the viewBox: one decimal is finer than a pixel at any zoom a person uses.
std::string Coord(double value) {
  if (!std::isfinite(value)) value = 0;
  std::string text = Fixed(value, 1);
  if (text.ends_with(".0")) text.resize(text.size() - 2);
  if (text == "-0") text = "0";
  return text;
}

// The byte unit an axis over [0, high] reads in.
std::pair<double, std::string_view> ByteScale(double high) {
  const double magnitude = std::fabs(high);
  if (magnitude >= kGiB) return {kGiB, "GiB"};
  if (magnitude >= kMiB) return {kMiB, "MiB"};
  if (magnitude >= kKiB) return {kKiB, "KiB"};
  return {1.0, "B"};
}

// The smallest step of the 1, 2, 2.5, 5 x 10^n ladder at least `rough`.
double NiceStep(double rough, bool allow_two_and_a_half = true) {
  if (!(rough > 0) || !std::isfinite(rough)) return 1;
  const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  for (double factor : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (factor == 2.5 && !allow_two_and_a_half) continue;
    if (factor * magnitude >= rough * (1 - 1e-9)) return factor * magnitude;
  }
  return 10 * magnitude;
}

// Decimals needed to tell ticks `step` apart.
int DecimalsFor(double step) {
  int decimals = 0;
  while (decimals < 3 && std::fabs(step * std::pow(10.0, decimals) -
                                   std::round(step * std::pow(10.0, decimals))) > 1e-6) {
    ++decimals;
  }
  return decimals;
}

// Tick labels of one axis: the same decimals and unit for every tick.
std::string TickLabel(double value, double step, ValueUnit unit) {
  if (std::fabs(value) < step * 1e-9) value = 0;
  switch (unit) {
    case ValueUnit::kPercent: return Fixed(value, DecimalsFor(step)) + " %";
    case ValueUnit::kCount: return Fixed(value, DecimalsFor(step));
    case ValueUnit::kBytes: break;
  }
  return "";
}

std::string ByteTickLabel(double value, double step, double scale, std::string_view name) {
  if (std::fabs(value) < step * 1e-9) value = 0;
  return Fixed(value / scale, DecimalsFor(step / scale)) + " " + std::string(name);
}

std::string SecondsTickLabel(double value, double step) {
  if (std::fabs(value) < step * 1e-9) value = 0;
  return Fixed(value, DecimalsFor(step)) + " s";
}

std::string Attr(std::string_view text) { return HtmlEscape(text); }

// A pattern id unique to one chart of a page, made of the metric's word characters.
std::string HatchId(const ChartSpec& chart) {
  std::string id = "hatch-";
  for (char c : chart.metric) {
    id += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  }
  for (char c : chart.title) {
    if (std::isalnum(static_cast<unsigned char>(c))) id += c;
  }
  return id;
}

// Rough width of `text` in the chart's 11 px label font (digits and Latin letters).
double LabelWidth(std::string_view text, double font_px) {
  double width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) == 0x80) continue;  // UTF-8 continuation byte
    width += c >= 0x80 ? font_px : font_px * 0.6;
  }
  return width;
}

constexpr double kLabelFont = 12;
constexpr double kLaneHeight = 11;
constexpr double kLaneGap = 4;

}  // namespace

std::string FormatValue(double value, ValueUnit unit) {
  switch (unit) {
    case ValueUnit::kPercent: {
      const double magnitude = std::fabs(value);
      return Fixed(value, magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2) + " %";
    }
    case ValueUnit::kBytes:
      return FormatSize(static_cast<int64_t>(std::llround(value)));
    case ValueUnit::kCount:
      return std::fabs(value - std::round(value)) < 1e-9 ? std::to_string(std::llround(value))
                                                         : Fixed(value, 2);
  }
  return Fixed(value, 2);
}

std::string FormatSeconds(double seconds) {
  return Fixed(seconds, std::fabs(seconds) < 1 ? 2 : 1) + " s";
}

namespace {

// NiceTicks without the 2.5 step when `seconds` (time reads better as 0, 2, 4 s than 0.0, 2.5 s).
std::vector<double> Ticks(double low, double high, int target_count, ValueUnit unit, bool seconds) {
  if (!std::isfinite(low) || !std::isfinite(high)) return {0, 1};
  if (low > high) std::swap(low, high);
  if (target_count < 2) target_count = 2;
  if (high == low) {
    const double pad = high == 0 ? 1 : std::fabs(high) * 0.1;
    high += pad;
    if (low != 0) low -= pad;
  }
  double step = 0;
  if (unit == ValueUnit::kBytes) {
    const double scale = ByteScale(std::max(std::fabs(low), std::fabs(high))).first;
    step = NiceStep((high - low) / scale / (target_count - 1)) * scale;
    if (scale == 1.0) step = std::max(step, 1.0);
  } else {
    step = NiceStep((high - low) / (target_count - 1), !seconds);
    if (unit == ValueUnit::kCount) step = std::max(1.0, std::round(step));
  }
  const double first = std::floor(low / step + 1e-9) * step;
  const double last = std::ceil(high / step - 1e-9) * step;
  std::vector<double> ticks;
  for (int i = 0; first + i * step <= last + step * 1e-6 && i < 200; ++i) {
    ticks.push_back(first + i * step);
  }
  if (ticks.size() < 2) ticks.push_back(first + step);
  return ticks;
}

}  // namespace

std::vector<double> NiceTicks(double low, double high, int target_count, ValueUnit unit) {
  return Ticks(low, high, target_count, unit, false);
}

std::string RenderTimelineChart(const ChartSpec& chart) {
  const double width = chart.width;
  const double height = chart.height;

  // The ranges: time from 0 (or earlier) to the last point or band; values over every point and
  // threshold.
  double t_min = 0, t_max = 0;
  double v_min = std::numeric_limits<double>::infinity();
  double v_max = -std::numeric_limits<double>::infinity();
  size_t point_count = 0;
  size_t phase_series = 0;
  bool any_marked = false;
  bool any_warmup = false;
  std::vector<std::string> phases_seen;
  for (const ChartSeries& series : chart.series) {
    for (const TimePoint& p : series.points) {
      if (!std::isfinite(p.t) || !std::isfinite(p.value)) continue;
      ++point_count;
      t_min = std::min(t_min, p.t);
      t_max = std::max(t_max, p.t);
      v_min = std::min(v_min, p.value);
      v_max = std::max(v_max, p.value);
      any_marked = any_marked || p.marked || series.markers_on_every_point;
    }
    if (!series.phases.empty()) ++phase_series;
    for (const PhaseBand& band : series.phases) {
      t_min = std::min(t_min, band.start_t);
      t_max = std::max(t_max, band.end_t);
      any_warmup = any_warmup || band.warmup;
      if (std::find(phases_seen.begin(), phases_seen.end(), band.phase) == phases_seen.end()) {
        phases_seen.push_back(band.phase);
      }
    }
  }
  for (const ThresholdLine& line : chart.thresholds) {
    if (!std::isfinite(line.value)) continue;
    v_min = std::min(v_min, line.value);
    v_max = std::max(v_max, line.value);
  }

  const bool lanes = phase_series > 1;
  const double lane_block = lanes ? phase_series * (kLaneHeight + kLaneGap) + 2 : 0;
  const double left = 78, right = 16, top = 24;
  const double bottom = 44 + lane_block;
  const double plot_w = width - left - right;
  const double plot_h = height - top - bottom;

  std::ostringstream svg;
  svg << "<figure class=\"chart-box\">\n<figcaption>" << HtmlEscape(chart.title)
      << "</figcaption>\n";
  svg << "<svg class=\"chart\" data-metric=\"" << Attr(chart.metric) << "\" viewBox=\"0 0 "
      << Coord(width) << " " << Coord(height) << "\" role=\"img\" aria-label=\""
      << Attr(chart.title) << "\">\n";
  const std::string hatch = HatchId(chart);
  svg << "<defs><pattern id=\"" << hatch
      << "\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
         "patternTransform=\"rotate(45)\"><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" "
         "class=\"hatch-line\"/></pattern></defs>\n";

  if (point_count == 0) {
    svg << "<rect class=\"plot-frame\" x=\"" << Coord(left) << "\" y=\"" << Coord(top)
        << "\" width=\"" << Coord(plot_w) << "\" height=\"" << Coord(plot_h) << "\"/>\n";
    svg << "<text class=\"no-data\" x=\"" << Coord(left + plot_w / 2) << "\" y=\""
        << Coord(top + plot_h / 2) << "\" text-anchor=\"middle\">no data</text>\n";
    svg << "</svg>\n";
    if (!chart.note.empty()) svg << "<p class=\"chart-note\">" << HtmlEscape(chart.note) << "</p>\n";
    svg << "</figure>\n";
    return svg.str();
  }

  if (chart.y_from_zero && v_min > 0) v_min = 0;
  if (!chart.y_from_zero) {
    // At least a fifth of the top value (5 for counts), so one thread more among eighteen does not
    // fill the chart.
    const double min_span =
        std::max(0.2 * std::fabs(v_max), chart.unit == ValueUnit::kCount ? 5.0 : 0.0);
    if (v_max - v_min < min_span) v_min = v_min >= 0 ? std::max(0.0, v_max - min_span) : v_max - min_span;
  }
  const bool clipped = chart.y_cap > 0 && v_max > chart.y_cap;
  if (clipped) v_max = chart.y_cap;
  const std::vector<double> y_ticks = NiceTicks(v_min, v_max, 5, chart.unit);
  const double y_low = y_ticks.front();
  const double y_high = y_ticks.back();
  const double y_step = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1;
  if (t_max <= t_min) t_max = t_min + 1;

  auto x_of = [&](double t) { return left + (t - t_min) / (t_max - t_min) * plot_w; };
  auto y_of = [&](double v) {
    return top + plot_h - (std::min(v, y_high) - y_low) / (y_high - y_low) * plot_h;
  };

  // Phase bands under everything else.
  size_t lane = 0;
  for (const ChartSeries& series : chart.series) {
    if (series.phases.empty()) continue;
    const double band_top = lanes ? top + plot_h + 30 + lane * (kLaneHeight + kLaneGap) : top;
    const double band_height = lanes ? kLaneHeight : plot_h;
    svg << "<g class=\"phases\">\n";
    if (lanes) {
      svg << "<text class=\"lane-label\" x=\"" << Coord(left - 6) << "\" y=\""
          << Coord(band_top + kLaneHeight - 1.5) << "\" text-anchor=\"end\">"
          << HtmlEscape(series.label) << "</text>\n";
    }
    for (size_t i = 0; i < series.phases.size(); ++i) {
      const PhaseBand& band = series.phases[i];
      const double x0 = x_of(band.start_t);
      const double x1 = std::max(x_of(band.end_t), x0 + 1);
      std::string classes = "phase phase-" + band.phase + (band.warmup ? " warmup" : "");
      svg << "<rect class=\"" << Attr(classes) << "\" data-run=\"" << band.run << "\"";
      if (lanes) svg << " data-series=\"" << Attr(series.label) << "\"";
      svg << " x=\"" << Coord(x0) << "\" y=\"" << Coord(band_top) << "\" width=\""
          << Coord(x1 - x0) << "\" height=\"" << Coord(band_height) << "\"><title>"
          << HtmlEscape((lanes ? series.label + ": " : std::string()) + band.phase +
                        (band.run > 0 ? " " + std::to_string(band.run) : std::string()) +
                        (band.warmup ? " (warm-up)" : "") + ", " +
                        FormatSeconds(band.start_t) + " to " + FormatSeconds(band.end_t))
          << "</title></rect>\n";
      if (band.warmup) {
        svg << "<rect class=\"warmup-hatch\" fill=\"url(#" << hatch << ")\" x=\"" << Coord(x0)
            << "\" y=\"" << Coord(band_top) << "\" width=\"" << Coord(x1 - x0) << "\" height=\""
            << Coord(band_height) << "\"/>\n";
      }
      if (!lanes && (!band.label.empty() || !band.short_label.empty())) {
        // Left-aligned at the band's start when it fits before the next labelled band.
        double room_end = left + plot_w;
        for (size_t j = i + 1; j < series.phases.size(); ++j) {
          if (!series.phases[j].label.empty() || !series.phases[j].short_label.empty()) {
            room_end = x_of(series.phases[j].start_t);
            break;
          }
        }
        for (const std::string* text : {&band.label, &band.short_label}) {
          if (text->empty() || LabelWidth(*text, kLabelFont - 1) + 4 > room_end - x0) continue;
          svg << "<text class=\"phase-label\" x=\"" << Coord(x0 + 2) << "\" y=\""
              << Coord(top - 6) << "\">" << HtmlEscape(*text) << "</text>\n";
          break;
        }
      }
    }
    svg << "</g>\n";
    ++lane;
  }

  // Grid and axes.
  svg << "<g class=\"axis axis-y\">\n";
  const auto [byte_scale, byte_name] = ByteScale(std::max(std::fabs(y_low), std::fabs(y_high)));
  for (double tick : y_ticks) {
    const double y = y_of(tick);
    svg << "<line class=\"grid\" x1=\"" << Coord(left) << "\" x2=\"" << Coord(left + plot_w)
        << "\" y1=\"" << Coord(y) << "\" y2=\"" << Coord(y) << "\"/>";
    const std::string label = chart.unit == ValueUnit::kBytes
                                  ? ByteTickLabel(tick, y_step, byte_scale, byte_name)
                                  : TickLabel(tick, y_step, chart.unit);
    svg << "<text x=\"" << Coord(left - 6) << "\" y=\"" << Coord(y + 4)
        << "\" text-anchor=\"end\">" << HtmlEscape(label) << "</text>\n";
  }
  svg << "</g>\n<g class=\"axis axis-x\">\n";
  const std::vector<double> x_ticks = Ticks(t_min, t_max, 8, ValueUnit::kPercent, true);
  const double x_step = x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1;
  for (double tick : x_ticks) {
    if (tick < t_min - x_step * 1e-6 || tick > t_max + x_step * 1e-6) continue;
    const double x = x_of(tick);
    svg << "<line class=\"tick\" x1=\"" << Coord(x) << "\" x2=\"" << Coord(x) << "\" y1=\""
        << Coord(top + plot_h) << "\" y2=\"" << Coord(top + plot_h + 5) << "\"/>";
    svg << "<text x=\"" << Coord(x) << "\" y=\"" << Coord(top + plot_h + 18)
        << "\" text-anchor=\"middle\">" << HtmlEscape(SecondsTickLabel(tick, x_step))
        << "</text>\n";
  }
  svg << "<text class=\"axis-title\" x=\"" << Coord(left + plot_w) << "\" y=\""
      << Coord(height - 4) << "\" text-anchor=\"end\">" << HtmlEscape(chart.x_label)
      << "</text>\n";
  svg << "</g>\n";
  svg << "<rect class=\"plot-frame\" x=\"" << Coord(left) << "\" y=\"" << Coord(top)
      << "\" width=\"" << Coord(plot_w) << "\" height=\"" << Coord(plot_h) << "\"/>\n";

  // Thresholds: dashed lines under the series, their labels over them. Each label takes the first
  // of a few spots (above or below the line, at its right end, left end or middle) that stays in the
  // plot, clears the labels already placed and covers no data; failing that, the spot covering the
  // least data. A light backing keeps it readable over the phase bands.
  std::vector<std::vector<std::pair<double, double>>> polylines;
  for (const ChartSeries& series : chart.series) {
    polylines.emplace_back();
    for (const TimePoint& p : series.points) {
      if (std::isfinite(p.t) && std::isfinite(p.value)) {
        polylines.back().emplace_back(x_of(p.t), y_of(p.value));
      }
    }
  }
  struct LabelBox {
    double x0, x1, y0, y1;
    bool Contains(double x, double y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
  };
  // How much data a box covers: points sampled every 2 px along each series' line.
  auto data_under = [&](const LabelBox& box) {
    int covered = 0;
    for (const auto& line : polylines) {
      for (size_t i = 0; i < line.size(); ++i) {
        const auto [x0, y0] = line[i];
        const auto [x1, y1] = i + 1 < line.size() ? line[i + 1] : line[i];
        if (std::max(x0, x1) < box.x0 || std::min(x0, x1) > box.x1) continue;
        const int steps = 1 + static_cast<int>(std::hypot(x1 - x0, y1 - y0) / 2);
        for (int k = 0; k <= steps; ++k) {
          const double f = static_cast<double>(k) / steps;
          if (box.Contains(x0 + f * (x1 - x0), y0 + f * (y1 - y0))) ++covered;
        }
      }
    }
    return covered;
  };
  struct PlacedLabel {
    const ThresholdLine* line;
    LabelBox box;
  };
  std::vector<PlacedLabel> labels;
  // Highest first, so of two close lines the upper one is labelled above and the lower one below.
  std::vector<const ThresholdLine*> by_height;
  for (const ThresholdLine& line : chart.thresholds) by_height.push_back(&line);
  std::stable_sort(by_height.begin(), by_height.end(),
                   [](const ThresholdLine* a, const ThresholdLine* b) { return a->value > b->value; });
  for (const ThresholdLine* line_pointer : by_height) {
    const ThresholdLine& line = *line_pointer;
    if (!std::isfinite(line.value) || (clipped && line.value > y_high)) continue;
    const double y = y_of(line.value);
    svg << "<g class=\"threshold\"><line x1=\"" << Coord(left) << "\" x2=\"" << Coord(left + plot_w)
        << "\" y1=\"" << Coord(y) << "\" y2=\"" << Coord(y) << "\" stroke=\"" << Attr(line.color)
        << "\"><title>" << HtmlEscape(line.label) << "</title></line></g>\n";
    const double text_w = LabelWidth(line.label, kLabelFont) + 6;
    std::vector<LabelBox> spots;
    const double free_w = plot_w - 4 - text_w;
    for (double x0 : {left + 2 + free_w, left + 2, left + 2 + free_w / 2, left + 2 + free_w / 4,
                      left + 2 + free_w * 3 / 4}) {
      for (double baseline : {y - 5, y + 15}) {
        spots.push_back({x0, x0 + text_w, baseline - kLabelFont, baseline + 3});
      }
    }
    std::optional<LabelBox> best;
    int best_covered = std::numeric_limits<int>::max();
    for (const LabelBox& spot : spots) {
      if (spot.y0 < top - 1 || spot.y1 > top + plot_h + 1) continue;
      const bool on_label = std::any_of(labels.begin(), labels.end(), [&](const PlacedLabel& o) {
        return spot.x0 < o.box.x1 && o.box.x0 < spot.x1 && spot.y0 < o.box.y1 && o.box.y0 < spot.y1;
      });
      if (on_label) continue;
      const int covered = data_under(spot);
      if (covered < best_covered) {
        best = spot;
        best_covered = covered;
      }
      if (covered == 0) break;
    }
    if (!best) best = spots[y - top < 16 ? 1 : 0];
    labels.push_back({&line, *best});
  }

  // The series: a line, then one circle per point carrying its tooltip.
  for (const ChartSeries& series : chart.series) {
    svg << "<g class=\"series" << (series.css_class.empty() ? "" : " " + Attr(series.css_class))
        << "\" data-series=\"" << Attr(series.label) << "\">\n";
    std::string path;
    for (const TimePoint& p : series.points) {
      if (!std::isfinite(p.t) || !std::isfinite(p.value)) continue;
      path += (path.empty() ? "" : " ") + Coord(x_of(p.t)) + "," + Coord(y_of(p.value));
    }
    if (!path.empty()) {
      svg << "<polyline class=\"line\" points=\"" << path << "\" stroke=\"" << Attr(series.color)
          << "\"" << (series.dashed ? " stroke-dasharray=\"6 4\"" : "") << "/>\n";
    }
    for (const TimePoint& p : series.points) {
      if (!std::isfinite(p.t) || !std::isfinite(p.value)) continue;
      const bool visible = p.marked || series.markers_on_every_point;
      svg << "<circle class=\"" << (visible ? "pt mark" : "pt") << "\" cx=\""
          << Coord(x_of(p.t)) << "\" cy=\"" << Coord(y_of(p.value)) << "\" r=\""
          << (visible ? "4.5" : "3") << "\" fill=\"" << Attr(series.color) << "\"><title>"
          << HtmlEscape(series.label + ": " + FormatValue(p.value, chart.unit) + " at " +
                        FormatSeconds(p.t) + (p.note.empty() ? "" : " (" + p.note + ")"))
          << "</title></circle>";
    }
    svg << "\n</g>\n";
  }
  for (const PlacedLabel& label : labels) {
    svg << "<g class=\"threshold-label\"><rect x=\"" << Coord(label.box.x0) << "\" y=\""
        << Coord(label.box.y0 - 1) << "\" width=\"" << Coord(label.box.x1 - label.box.x0)
        << "\" height=\"" << Coord(label.box.y1 - label.box.y0 + 1) << "\" rx=\"2\"/>";
    svg << "<text x=\"" << Coord(label.box.x0 + 3) << "\" y=\"" << Coord(label.box.y1 - 3)
        << "\" text-anchor=\"start\" fill=\"" << Attr(label.line->color) << "\">"
        << HtmlEscape(label.line->label) << "</text></g>\n";
  }
  svg << "</svg>\n";

  // The legend in HTML, so it wraps.
  svg << "<div class=\"legend\">";
  for (const ChartSeries& series : chart.series) {
    svg << "<span class=\"key\"><span class=\"swatch swatch-line"
        << (series.dashed ? " dashed" : "") << "\" style=\"border-color:" << Attr(series.color)
        << "\"></span>" << HtmlEscape(series.label) << "</span>";
  }
  if (any_marked) {
    svg << "<span class=\"key\"><span class=\"swatch swatch-dot\"></span>"
        << "measured after a cooldown</span>";
  }
  for (const std::string& phase : phases_seen) {
    svg << "<span class=\"key\"><span class=\"swatch swatch-phase phase-" << Attr(phase)
        << "\"></span>" << HtmlEscape(phase) << "</span>";
  }
  if (any_warmup) {
    svg << "<span class=\"key\"><span class=\"swatch swatch-phase swatch-warmup\"></span>"
        << "warm-up (not judged)</span>";
  }
  if (clipped) {
    const std::string cap = chart.unit == ValueUnit::kBytes
                                ? FormatValue(y_high, chart.unit)
                                : TickLabel(y_high, y_step, chart.unit);
    svg << "<span class=\"key\">values above " << HtmlEscape(cap)
        << " drawn on the top edge (tooltips give the value)</span>";
  }
  if (!chart.thresholds.empty()) {
    svg << "<span class=\"key\"><span class=\"swatch swatch-line dashed\" style=\"border-color:"
        << kColorThreshold << "\"></span>threshold</span>";
  }
  svg << "</div>\n";
  if (!chart.note.empty()) svg << "<p class=\"chart-note\">" << HtmlEscape(chart.note) << "</p>\n";
  svg << "</figure>\n";
  return svg.str();
}

std::string_view PageCss() {
  static const std::string css = std::string(R"css(
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f6f7f9;color:#1f2328;
 font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
 overflow-wrap:anywhere}
main{max-width:1400px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:1.45rem;margin:.2em 0 .3em;line-height:1.25}
h2{font-size:1.15rem;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:1px solid #d0d7de}
h3{font-size:1rem;margin:1.2em 0 .4em}
p{margin:.4em 0}
code,.mono{font:13px/1.4 ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,Consolas,monospace;overflow-wrap:anywhere;word-break:break-word}
code{background:#eef1f4;border-radius:3px;padding:0 3px}
.sub{color:#57606a;margin:.1em 0}
.verdict{display:inline-block;font-weight:700;border-radius:6px;padding:.05em .5em;color:#fff;background:#57606a}
.verdict-pass{background:)css") + std::string(kColorPass) + R"css(}
.verdict-fail{background:)css" + std::string(kColorFail) + R"css(}
.verdict-inconclusive{background:)css" + std::string(kColorInconclusive) + R"css(}
.verdict-error{background:)css" + std::string(kColorError) + R"css(}
.banner{border-radius:8px;padding:12px 16px;margin:12px 0;background:#fff;border:1px solid #d0d7de;border-left-width:8px}
.banner-pass{border-left-color:)css" + std::string(kColorPass) + R"css(}
.banner-fail{border-left-color:)css" + std::string(kColorFail) + R"css(}
.banner-inconclusive{border-left-color:)css" + std::string(kColorInconclusive) + R"css(}
.banner-error{border-left-color:)css" + std::string(kColorError) + R"css(}
.banner .big{font-size:1.7rem;line-height:1.2}
.banner ul{margin:.4em 0 0;padding-left:1.2em;columns:2 440px;column-gap:2em}
.banner li{break-inside:avoid}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(540px,100%),1fr));gap:14px}
.chart-box{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:8px 10px;min-width:0}
.chart-box figcaption{font-weight:600;margin-bottom:2px}
svg.chart{display:block;width:100%;height:auto;font:12px system-ui,"Noto Sans",sans-serif}
svg.chart text{fill:#444c56}
svg.chart .grid{stroke:#e3e6ea;stroke-width:1}
svg.chart .tick{stroke:#8c959f}
svg.chart .plot-frame{fill:none;stroke:#8c959f;stroke-width:1}
svg.chart .axis-title{font-size:12px;fill:#57606a}
svg.chart .phase-label{font-size:11px;fill:#57606a}
svg.chart .lane-label{font-size:11px}
svg.chart .no-data{font-size:16px;fill:#8c959f}
svg.chart .phase-baseline,.swatch.phase-baseline{fill:#8c959f;background:#8c959f;opacity:.22}
svg.chart .phase-run,.swatch.phase-run{fill:#2f81f7;background:#2f81f7;opacity:.22}
svg.chart .phase-cooldown,.swatch.phase-cooldown{fill:#3fb950;background:#3fb950;opacity:.13}
svg.chart .hatch-line{stroke:#57606a;stroke-width:1.2;opacity:.35}
svg.chart .warmup-hatch{pointer-events:none}
svg.chart .threshold line{stroke-width:1.6;stroke-dasharray:7 4}
svg.chart .threshold-label text{font-size:12px;font-weight:600}
svg.chart .threshold-label rect{fill:#fff;fill-opacity:.7}
svg.chart .line{fill:none;stroke-width:2;stroke-linejoin:round}
svg.chart .series-samples .line{stroke-width:1.3}
svg.chart .pt{fill-opacity:0;stroke:none}
svg.chart .pt:hover{fill-opacity:.6}
svg.chart .pt.mark{fill-opacity:1;stroke:#fff;stroke-width:1.5}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px;color:#444c56;margin-top:2px}
.key{white-space:nowrap;display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:18px;height:0}
.swatch-line{border-top:3px solid #444c56}
.swatch-line.dashed{border-top-style:dashed}
.swatch-dot{width:10px;height:10px;border-radius:50%;background:#444c56;border:2px solid #fff;box-shadow:0 0 0 1px #444c56}
.swatch-phase{height:12px;width:16px}
.swatch-warmup{background:repeating-linear-gradient(45deg,#d0d7de 0 2px,#fff 2px 5px)}
.chart-note{font-size:13px;color:#57606a}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;background:#fff;font-size:14px;margin:.3em 0 .8em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.row-fail td:first-child{border-left:4px solid )css" + std::string(kColorFail) + R"css(}
tr.row-pass td:first-child{border-left:4px solid )css" + std::string(kColorPass) + R"css(}
tr.row-inconclusive td:first-child{border-left:4px solid )css" + std::string(kColorInconclusive) + R"css(}
tr.row-warmup td{color:#57606a;font-style:italic}
.bad{color:)css" + std::string(kColorFail) + R"css(;font-weight:600}
.good{color:)css" + std::string(kColorPass) + R"css(}
.detail{max-width:70ch}
details.stack{margin:.2em 0}
details.stack summary{cursor:pointer;color:#0969da}
details.stack ol{margin:.3em 0;padding-left:2.2em}
details.stack li{margin:.1em 0}
ul.items{padding-left:1.2em}
ul.items>li{margin:.45em 0}
tr.row-suppressed td{color:#57606a}
.tag{white-space:nowrap;overflow-wrap:normal;display:inline-block;font-size:12px;border-radius:4px;padding:0 .4em;background:#eef1f4;color:#444c56}
.notice{background:#fff8e1;border:1px solid #f0d58c;border-radius:6px;padding:8px 12px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:.4em 0}
dl.facts dt{color:#57606a}
dl.facts dd{margin:0;min-width:0}
)css";
  return css;
}

std::string RenderPage(std::string_view title, std::string_view lang,
                       const std::vector<std::pair<std::string, std::string>>& meta,
                       std::string_view body_html, std::string_view extra_css) {
  std::string page;
  page.reserve(body_html.size() + 8192);
  page += "<!DOCTYPE html>\n<html lang=\"" + HtmlEscape(lang) + "\">\n<head>\n";
  page += "<meta charset=\"utf-8\">\n";
  page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  for (const auto& [name, content] : meta) {
    page += "<meta name=\"" + HtmlEscape(name) + "\" content=\"" + HtmlEscape(content) + "\">\n";
  }
  page += "<title>" + HtmlEscape(title) + "</title>\n<style>";
  page += PageCss();
  page += extra_css;
  page += "</style>\n</head>\n<body>\n<main>\n";
  page += body_html;
  page += "</main>\n</body>\n</html>\n";
  return page;
}

std::string_view VerdictColor(std::string_view verdict) {
  if (verdict == "pass") return kColorPass;
  if (verdict == "fail") return kColorFail;
  if (verdict == "inconclusive") return kColorInconclusive;
  if (verdict == "error") return kColorError;
  return "#57606a";
}

std::string VerdictBadge(std::string_view verdict, std::string_view text) {
  const bool known =
      verdict == "pass" || verdict == "fail" || verdict == "inconclusive" || verdict == "error";
  std::string html = "<span class=\"verdict";
  if (known) html += " verdict-" + std::string(verdict);
  html += "\">" + HtmlEscape(text.empty() ? verdict : text) + "</span>";
  return html;
}

std::string SectionHeading(std::string_view id, std::string_view title) {
  return "<h2 id=\"" + HtmlEscape(id) + "\">" + HtmlEscape(title) + "</h2>\n";
}

std::string Code(std::string_view text) { return "<code>" + HtmlEscape(text) + "</code>"; }

std::string StackDetails(std::string_view summary_html, const std::vector<std::string>& frames) {
  if (frames.empty()) return "";
  std::string html = "<details class=\"stack\"><summary>";
  html += summary_html;
  html += "</summary><ol>";
  for (const std::string& frame : frames) html += "<li>" + Code(frame) + "</li>";
  html += "</ol></details>";
  return html;
}

std::string RenderTable(const std::vector<TableColumn>& columns, const std::vector<TableRow>& rows,
                        std::string_view css_class) {
  std::string html = "<div class=\"table-wrap\"><table";
  if (!css_class.empty()) html += " class=\"" + HtmlEscape(css_class) + "\"";
  html += ">\n<thead><tr>";
  for (const TableColumn& column : columns) {
    html += column.numeric ? "<th class=\"num\">" : "<th>";
    html += HtmlEscape(column.title) + "</th>";
  }
  html += "</tr></thead>\n<tbody>\n";
  for (const TableRow& row : rows) {
    html += row.css_class.empty() ? "<tr>" : "<tr class=\"" + HtmlEscape(row.css_class) + "\">";
    for (size_t i = 0; i < row.cells.size(); ++i) {
      const bool numeric = i < columns.size() && columns[i].numeric;
      html += numeric ? "<td class=\"num\">" : "<td>";
      html += row.cells[i] + "</td>";
    }
    html += "</tr>\n";
  }
  html += "</tbody></table></div>\n";
  return html;
}

}  // namespace html
}  // namespace leakgate::reports
