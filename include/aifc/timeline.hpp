#pragma once

#include <cstddef>
#include <string>

#include "aifc/client_group.hpp"
#include "aifc/export.hpp"

namespace aifc {

/// How a timeline colours a request's inter-token gaps, as `vllm bench serve --plot-timeline
/// --timeline-itl-thresholds 25,50`: green below the first threshold, orange up to the second,
/// red above it.
struct AIFC_API TimelineOptions {
  double itl_green_below_ms = 25.0;
  double itl_red_above_ms = 50.0;
  /// Requests drawn at most (the first to be sent); the page says when more were left out.
  std::size_t max_requests = 20000;
  std::string title = "aifc timeline";

  /// Throws aifc::Error(invalid_argument) naming the bad field.
  void validate() const;
  /// Reads vLLM's "25,50"; throws aifc::Error(invalid_argument).
  static TimelineOptions from_thresholds(const std::string& thresholds_ms);
};

/// A self-contained HTML page (inline SVG, no script, nothing fetched) with one line per request
/// of the run, in the order they were sent: its wait for the first token, then every gap between
/// tokens coloured by the thresholds; failed requests in grey. Each line's tooltip gives the
/// request's index, TTFT, E2EL and tokens. Needs the result's records (keep_records on);
/// without them the page says so.
AIFC_API std::string timeline_html(const BenchmarkResult& result,
                                   const TimelineOptions& options = {});

}  // namespace aifc
