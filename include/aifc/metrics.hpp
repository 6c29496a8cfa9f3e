#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aifc/export.hpp"
#include "aifc/histogram.hpp"
#include "aifc/record.hpp"

namespace aifc {

/// Service-level objectives for goodput (`--goodput ttft:MS tpot:MS e2el:MS`): a request is
/// good when it succeeded and meets every objective that is set.
struct AIFC_API GoodputSlo {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool empty() const noexcept { return !ttft_ms && !tpot_ms && !e2el_ms; }
  bool is_good(const RequestRecord& r) const noexcept;
  /// Parses "ttft:200 tpot:50" (space or comma separated); throws Error(invalid_argument).
  static GoodputSlo parse(const std::string& spec);
};

/// What the summary reports, as `vllm bench serve`'s --percentile-metrics / --metric-percentiles.
struct AIFC_API SummaryOptions {
  std::vector<std::string> percentile_metrics{"ttft", "tpot", "itl"};
  std::vector<double> metric_percentiles{99.0};
  GoodputSlo goodput;
  void validate() const;
};

AIFC_API void to_json(nlohmann::json& j, const GoodputSlo& g);
AIFC_API void from_json(const nlohmann::json& j, GoodputSlo& g);
AIFC_API void to_json(nlohmann::json& j, const SummaryOptions& o);
AIFC_API void from_json(const nlohmann::json& j, SummaryOptions& o);

/// Mean, median, standard deviation and chosen percentiles of one latency metric, in ms.
struct AIFC_API MetricStats {
  std::uint64_t count = 0;  ///< samples; with none every figure is 0, as vLLM writes it
  double mean = 0, median = 0, std = 0;
  std::vector<std::pair<double, double>> percentiles;  ///< (p, value)
};

/// Exact statistics of samples in seconds, reported in ms (numpy's linear percentiles).
AIFC_API MetricStats exact_stats(std::vector<double> seconds,
                                 const std::vector<double>& percentiles);
/// The same from a histogram of nanoseconds (within 0.1%).
AIFC_API MetricStats histogram_stats(const Histogram& ns, const std::vector<double>& percentiles);

/// A mergeable summary of many records: counts, token totals and one histogram per metric.
/// Merging the aggregates of disjoint record sets equals aggregating their union.
class AIFC_API MetricsAggregate {
 public:
  explicit MetricsAggregate(GoodputSlo goodput = {}) : goodput_(goodput) {}
  /// Counts one record and records its samples (warm-ups are skipped; cancelled requests are
  /// only counted as such). The exact summary counts through this same function.
  void add(const RequestRecord& r);
  /// Adds another aggregate's counts and histograms. Both must judge goodput by the same SLO.
  void merge(const MetricsAggregate& other);
  const GoodputSlo& goodput() const noexcept { return goodput_; }
  /// The requests counted: completed, failed or cancelled (warm-ups are never counted).
  std::uint64_t counted() const noexcept { return completed + failed + cancelled; }

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

/// The summary of a run, typed. Its JSON form has `vllm bench serve`'s keys (completed, failed,
/// request_throughput, output_throughput, total_token_throughput, mean_/median_/std_/pNN_ of
/// each metric shown, request_goodput, max_output_tokens_per_s, max_concurrent_requests, ...)
/// plus aifc's own: schedule lateness, latencies measured from the scheduled time, errors by
/// kind, token-count sources. Warm-up records are left out.
struct AIFC_API Summary {
  double duration_s = 0;
  std::uint64_t completed = 0, failed = 0;
  std::uint64_t cancelled = 0;  ///< stopped by the user
  std::int64_t total_input_tokens = 0, total_output_tokens = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  std::optional<double> request_goodput;  ///< with a goodput SLO
  /// From raw records only (absent in a summary of an aggregate), as vLLM computes them.
  std::optional<double> max_output_tokens_per_s;
  std::optional<std::int64_t> max_concurrent_requests;
  /// Each metric shown, by name: the chosen ones of ttft, tpot, itl, e2el; always lateness,
  /// ttft_from_schedule and e2el_from_schedule; ttft_reasoning and ttft_answer when a stream
  /// had reasoning.
  std::map<std::string, MetricStats> metrics;
  double max_lateness_ms = 0;
  bool percentiles_exact = true;  ///< from raw samples; false: from 0.1% histograms
  std::map<std::string, std::uint64_t> errors_by_kind;
  std::map<std::string, std::uint64_t> output_token_source;
  bool input_tokens_exact = true;  ///< every prompt counted by the server's tokenizer
  std::uint64_t exceeded_requested_length = 0;
  std::uint64_t retried_requests = 0;

  /// The statistics of one metric, or nullptr when it is not shown.
  const MetricStats* metric(const std::string& name) const;
};

AIFC_API void to_json(nlohmann::json& j, const Summary& s);
/// Reads the keys back (a saved result); Error(parse_error) when a required key is missing.
AIFC_API void from_json(const nlohmann::json& j, Summary& s);

/// The exact summary of records (numpy's linear percentiles of the raw samples).
AIFC_API Summary summarize(const std::vector<RequestRecord>& records, double duration_s,
                           const SummaryOptions& options);

/// The same from an aggregate (percentiles within 0.1%); max_output_tokens_per_s and
/// max_concurrent_requests need raw records and stay empty.
AIFC_API Summary summarize(const MetricsAggregate& aggregate, double duration_s,
                           const SummaryOptions& options);

/// What the summary table shows of the run's configuration.
struct AIFC_API TableConfig {
  std::optional<double> request_rate;           ///< none: inf
  std::optional<std::int64_t> max_concurrency;  ///< none: unbounded
};

/// The table `vllm bench serve` prints, with aifc's additions at the end.
AIFC_API std::string format_summary_table(const Summary& summary, const SummaryOptions& options,
                                          const TableConfig& config = {});

}  // namespace aifc
