#pragma once

#include <string>

#include "aifc/client_group.hpp"
#include "aifc/export.hpp"

namespace aifc {

/// A self-contained HTML page (inline SVG, no script, nothing fetched) with the distributions of
/// the run's prompts, as `vllm bench serve --plot-dataset-stats` draws them: prompt tokens,
/// output tokens (asked for; the answer's where none was asked) and the two together, each a
/// histogram with its count, mean, min, median, p99 and max. Warm-ups are left out. Needs the
/// result's records (keep_records on); without them the page says so.
AIFC_API std::string dataset_stats_html(const BenchmarkResult& result,
                                        const std::string& title = "aifc dataset statistics");

}  // namespace aifc
