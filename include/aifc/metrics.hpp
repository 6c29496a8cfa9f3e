#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aifc/histogram.hpp"
#include "aifc/record.hpp"

namespace aifc {

/// Service-level objectives for goodput (`--goodput ttft:MS tpot:MS e2el:MS`): a request is
/// good when it succeeded and meets every objective that is set.
struct GoodputSlo {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool empty() const noexcept { return !ttft_ms && !tpot_ms && !e2el_ms; }
  bool is_good(const RequestRecord& r) const noexcept;
  /// Parses "ttft:200 tpot:50" (space or comma separated); throws Error(invalid_argument).
  static GoodputSlo parse(const std::string& spec);
};

/// What the summary reports, as `vllm bench serve`'s --percentile-metrics / --metric-percentiles.
struct SummaryOptions {
  std::vector<std::string> percentile_metrics{"ttft", "tpot", "itl"};
  std::vector<double> metric_percentiles{99.0};
  GoodputSlo goodput;
  void validate() const;
};

void to_json(nlohmann::json& j, const GoodputSlo& g);
void from_json(const nlohmann::json& j, GoodputSlo& g);
void to_json(nlohmann::json& j, const SummaryOptions& o);
void from_json(const nlohmann::json& j, SummaryOptions& o);

/// Mean, median, standard deviation and chosen percentiles of one latency metric, in ms.
struct MetricStats {
  std::uint64_t count = 0;  ///< samples; with none every figure is 0, as vLLM writes it
  double mean = 0, median = 0, std = 0;
  std::vector<std::pair<double, double>> percentiles;  ///< (p, value)
};

/// Exact statistics of samples in seconds, reported in ms (numpy's linear percentiles).
MetricStats exact_stats(std::vector<double> seconds, const std::vector<double>& percentiles);
/// The same from a histogram of nanoseconds (within 0.1%).
MetricStats histogram_stats(const Histogram& ns, const std::vector<double>& percentiles);

/// A mergeable summary of many records: counts, token totals and one histogram per metric.
/// Merging the aggregates of disjoint record sets equals aggregating their union.
class MetricsAggregate {
 public:
  explicit MetricsAggregate(GoodputSlo goodput = {}) : goodput_(goodput) {}
  /// Counts one record and records its samples (warm-ups are skipped; cancelled requests are
  /// only counted as such). The exact summary counts through this same function.
  void add(const RequestRecord& r);
  /// Adds another aggregate's counts and histograms. Both must judge goodput by the same SLO.
  void merge(const MetricsAggregate& other);
  const GoodputSlo& goodput() const noexcept { return goodput_; }

  std::uint64_t completed = 0, failed = 0, good = 0;
  std::uint64_t cancelled = 0;  ///< stopped by the user; neither completed nor failed
  std::int64_t total_input_tokens = 0, total_output_tokens = 0;
  Histogram ttft, tpot, itl, e2el, lateness, ttft_from_schedule, e2el_from_schedule, ttft_reasoning,
      ttft_answer;
  std::map<std::string, std::uint64_t> errors_by_kind;
  std::map<std::string, std::uint64_t> output_token_source;
  std::uint64_t inexact_input_counts = 0;
  std::uint64_t exceeded_requested_length = 0;  ///< answers longer than their max_tokens
  std::uint64_t retried = 0;  ///< resent once on a fresh connection (a stale kept-alive one)

  /// Everything, the goodput SLO included, so that add() after a load judges alike.
  nlohmann::json to_json() const;
  static MetricsAggregate from_json(const nlohmann::json& j);

 private:
  GoodputSlo goodput_;
};

/// The result summary: `vllm bench serve`'s keys (completed, failed, request_throughput,
/// output_throughput, total_token_throughput, mean_/median_/std_/pNN_ for the chosen metrics,
/// request_goodput, max_output_tokens_per_s, max_concurrent_requests, ...) plus aifc's own:
/// schedule lateness, latencies measured from the scheduled time, errors by kind, token-count
/// sources. Percentiles are exact. Warm-up records are left out.
nlohmann::json summarize(const std::vector<RequestRecord>& records, double duration_s,
                         const SummaryOptions& options);

/// The same keys from an aggregate (percentiles within 0.1%); the keys that need raw records
/// (max_output_tokens_per_s, max_concurrent_requests) are absent.
nlohmann::json summarize(const MetricsAggregate& aggregate, double duration_s,
                         const SummaryOptions& options);

/// The table `vllm bench serve` prints, with aifc's additions at the end.
std::string format_summary_table(const nlohmann::json& summary, const SummaryOptions& options);

}  // namespace aifc
