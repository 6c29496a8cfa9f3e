#include "aifc/timeline.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "aifc/error.hpp"
#include "util/html.hpp"

namespace aifc {
namespace {

void bad(const std::string& what) { throw Error(ErrorCode::invalid_argument, what); }

// The colour class of one part of a request's line.
enum class Part { ttft, green, orange, red, failed };
const char* class_of(Part p) {
  constexpr const char* kClasses[] = {"t", "g", "o", "r", "f"};
  return kClasses[static_cast<int>(p)];
}

}  // namespace

void TimelineOptions::validate() const {
  if (!(itl_green_below_ms >= 0 && itl_green_below_ms <= itl_red_above_ms &&
        itl_red_above_ms <= 1e9))
    bad(
        fmt::format("timeline ITL thresholds must be two numbers of ms, 0 <= first <= second "
                    "(got {} and {})",
                    itl_green_below_ms, itl_red_above_ms));
  if (max_requests < 1) bad("timeline max_requests must be at least 1");
}

TimelineOptions TimelineOptions::from_thresholds(const std::string& thresholds_ms) {
  TimelineOptions o;
  std::string text = thresholds_ms;
  std::replace(text.begin(), text.end(), ',', ' ');
  std::istringstream in(text);
  std::vector<double> values;
  std::string word;
  while (in >> word) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || !std::isfinite(v))
      bad(fmt::format("timeline ITL threshold '{}' is not a number of ms", word));
    values.push_back(v);
  }
  if (values.size() != 2)
    bad(fmt::format("timeline ITL thresholds are two numbers of ms, as 25,50 (got '{}')",
                    thresholds_ms));
  o.itl_green_below_ms = values[0];
  o.itl_red_above_ms = values[1];
  o.validate();
  return o;
}

std::string timeline_html(const BenchmarkResult& result, const TimelineOptions& options) {
  options.validate();
  std::vector<const RequestRecord*> sent;
  for (const auto& r : result.records)
    if (!r.warmup && r.send_ns >= 0 && r.end_ns >= r.send_ns) sent.push_back(&r);
  std::sort(sent.begin(), sent.end(), [](const RequestRecord* a, const RequestRecord* b) {
    return a->send_ns < b->send_ns || (a->send_ns == b->send_ns && a->index < b->index);
  });
  const std::size_t total = sent.size();
  if (sent.size() > options.max_requests) sent.resize(options.max_requests);

  MonoNanos last_end = result.start_ns + 1;
  for (const auto* r : sent) last_end = std::max(last_end, r->end_ns);
  const double span_ns = static_cast<double>(last_end - result.start_ns);
  constexpr double kLeft = 60, kWidth = 1100;
  const double row = sent.empty() ? 10.0 : std::clamp(900.0 / sent.size(), 1.0, 10.0);
  const double height = row * static_cast<double>(sent.size()) + 40;
  auto x = [&](MonoNanos t) {
    return kLeft + kWidth * static_cast<double>(t - result.start_ns) / span_ns;
  };

  std::string svg;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const RequestRecord& r = *sent[i];
    const double y = 20 + row * static_cast<double>(i);
    const double ttft_ms = r.first_token_ns >= 0 ? (r.first_token_ns - r.send_ns) * 1e-6 : -1.0;
    svg += fmt::format("<g><title>request {}: {}TTFT {} ms, E2EL {:.1f} ms, {} tokens</title>",
                       r.index, r.ok() ? "" : fmt::format("failed ({}), ", to_string(r.error)),
                       ttft_ms >= 0 ? fmt::format("{:.1f}", ttft_ms) : std::string("n/a"),
                       (r.end_ns - r.send_ns) * 1e-6, r.output_tokens);
    // Consecutive parts of one colour are drawn as one bar.
    auto bar = [&](Part part, MonoNanos from, MonoNanos to) {
      svg += fmt::format(
          R"(<rect class="{}" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}"/>)",
          class_of(part), x(from), y, std::max(0.3, x(to) - x(from)), std::max(0.8, row * 0.8));
    };
    if (!r.ok() || r.first_token_ns < 0) {
      bar(Part::failed, r.send_ns, r.end_ns);
    } else {
      bar(Part::ttft, r.send_ns, r.first_token_ns);
      Part run = Part::ttft;
      MonoNanos run_from = r.first_token_ns;
      for (std::size_t k = 1; k < r.token_ns.size(); ++k) {
        const double gap_ms = (r.token_ns[k] - r.token_ns[k - 1]) * 1e-6;
        const Part part = gap_ms < options.itl_green_below_ms  ? Part::green
                          : gap_ms <= options.itl_red_above_ms ? Part::orange
                                                               : Part::red;
        if (part != run) {
          if (run != Part::ttft) bar(run, run_from, r.token_ns[k - 1]);
          run = part;
          run_from = r.token_ns[k - 1];
        }
      }
      if (run != Part::ttft) bar(run, run_from, r.token_ns.back());
    }
    svg += "</g>\n";
  }
  // A time axis: ticks at round seconds (or fractions of one for a short run).
  const double span_s = span_ns * 1e-9;
  double step = std::pow(10.0, std::floor(std::log10(std::max(span_s, 1e-3))));
  if (span_s / step > 8) step *= span_s / step > 40 ? 10 : 5;
  if (span_s / step < 2) step /= 5;
  std::string axis;
  for (double t = 0; t <= span_s + 1e-12; t += step) {
    const double px = kLeft + kWidth * t / span_s;
    axis += fmt::format(
        R"(<line class="a" x1="{0:.2f}" x2="{0:.2f}" y1="14" y2="{1:.2f}"/><text x="{0:.2f}" y="11">{2:g} s</text>)",
        px, height - 20, t);
  }

  const std::string note =
      result.records.empty() ? std::string(detail::kNoRecordsNote)
      : total > sent.size()
          ? fmt::format("<p>The first {} of {} requests are drawn.</p>\n", sent.size(), total)
          : std::string();
  return detail::report_page_head(
             options.title,
             ".t { fill: #8fa8c8; background: #8fa8c8; } .g { fill: #2ca02c; background: #2ca02c; "
             "}\n"
             ".o { fill: #ff9f1c; background: #ff9f1c; } .r { fill: #d62728; background: #d62728; "
             "}\n"
             ".f { fill: #999; background: #999; } .a { stroke: #ddd; stroke-width: 1; }\n"
             ".key span { display: inline-block; width: 1em; height: 1em; vertical-align: middle; "
             "margin: 0 .3em 0 1em; }\n") +
         fmt::format(
             R"(<p id="summary">{0} requests sent over {1:.2f} s, one line each in the order they left: the wait for the first token, then the gaps between tokens.</p>
<p class="key"><span class="t"></span>until the first token<span class="g"></span>ITL below {2:g} ms<span class="o"></span>{2:g} to {3:g} ms<span class="r"></span>above {3:g} ms<span class="f"></span>failed</p>
{4}<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{5:.0f}" height="{6:.0f}" data-requests="{0}">
{7}{8}</svg>
</body></html>
)",
             sent.size(), span_s, options.itl_green_below_ms, options.itl_red_above_ms, note,
             kLeft + kWidth + 20, height, axis, svg);
}

}  // namespace aifc
