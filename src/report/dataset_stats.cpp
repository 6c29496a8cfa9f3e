#include "aifc/dataset_stats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "aifc/metrics.hpp"
#include "util/html.hpp"

namespace aifc {
namespace {

constexpr int kBins = 20;
constexpr double kWidth = 520, kHeight = 180, kLeft = 40, kTop = 10;

// One histogram: kBins bars of equal width from the smallest value to the largest, each with a
// tooltip of its range and count, and the figures of the values beneath.
std::string histogram(const char* id, const char* heading, const std::vector<double>& values) {
  if (values.empty()) return fmt::format("<h2>{}</h2><p>No request.</p>\n", heading);
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double lo = *lo_it, hi = *hi_it;
  const double width = hi > lo ? (hi - lo) / kBins : 1.0;
  std::vector<std::int64_t> counts(kBins, 0);
  for (double v : values)
    ++counts[std::min<std::size_t>(kBins - 1, static_cast<std::size_t>((v - lo) / width))];
  const double tallest = static_cast<double>(*std::max_element(counts.begin(), counts.end()));
  std::string bars;
  for (int b = 0; b < kBins; ++b) {
    const double h = kHeight * static_cast<double>(counts[b]) / tallest;
    bars += fmt::format(
        R"(<rect class="bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"><title>{:g} to {:g} tokens: {} requests</title></rect>)",
        kLeft + b * kWidth / kBins, kTop + kHeight - h, kWidth / kBins - 1, h, lo + b * width,
        lo + (b + 1) * width, counts[b]);
  }
  const MetricStats s = exact_stats(values, {99.0});  // ms of "seconds": the values x 1000
  const double max = hi;
  return fmt::format(
      R"(<h2>{1}</h2>
<svg xmlns="http://www.w3.org/2000/svg" id="{0}" width="{2:.0f}" height="{3:.0f}" data-requests="{4}">
<line class="a" x1="{5:.0f}" x2="{5:.0f}" y1="{6:.0f}" y2="{7:.0f}"/><text x="2" y="{8:.0f}">{9}</text>
{10}<text x="{5:.0f}" y="{11:.0f}">{12:g}</text><text x="{13:.0f}" y="{11:.0f}" text-anchor="end">{14:g}</text>
</svg>
<p class="figures" id="{0}-figures">{4} requests: mean {15:.1f}, min {12:g}, median {16:g}, p99 {17:g}, max {14:g} tokens</p>
)",
      id, heading, kLeft + kWidth + 10, kTop + kHeight + 30, values.size(), kLeft, kTop,
      kTop + kHeight, kTop + 10, static_cast<std::int64_t>(tallest), bars, kTop + kHeight + 16, lo,
      kLeft + kWidth, max, s.mean / 1e3, s.median / 1e3, s.percentiles.at(0).second / 1e3);
}

}  // namespace

std::string dataset_stats_html(const BenchmarkResult& result, const std::string& title) {
  std::vector<double> prompt, output, total;
  for (const auto& r : result.records) {
    if (r.warmup) continue;
    const auto out = r.requested_output_tokens > 0 ? r.requested_output_tokens : r.output_tokens;
    prompt.push_back(static_cast<double>(r.input_tokens));
    output.push_back(static_cast<double>(out));
    total.push_back(static_cast<double>(r.input_tokens + out));
  }
  return detail::report_page_head(
             title, ".bar { fill: #4c78a8; } .a { stroke: #999; stroke-width: 1; }\n") +
         (result.records.empty() ? std::string(detail::kNoRecordsNote) : std::string()) +
         histogram("prompt-tokens", "Prompt tokens", prompt) +
         histogram("output-tokens", "Output tokens", output) +
         histogram("total-tokens", "Prompt and output tokens", total) + "</body></html>\n";
}

}  // namespace aifc
