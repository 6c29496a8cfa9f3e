#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aifc/benchmark.hpp"
#include "aifc/client_group.hpp"
#include "aifc/clock_sync.hpp"
#include "aifc/export.hpp"

namespace aifc {

/// One rank's part of a distributed run, as an agent reports it or a `--rank i --nranks n`
/// result file holds it.
struct AIFC_API ShardResult {
  std::uint32_t rank = 0;
  std::string node;  ///< the host it ran on (Slurm's node name when known)
  BenchmarkResult result;
  /// Added to this rank's system clock to give the reference clock (the service's); 0 when
  /// the shards share a clock.
  std::int64_t clock_offset_ns = 0;
  std::int64_t clock_uncertainty_ns = 0;  ///< half the best round trip of the estimate
};

/// Every rank's part on one time line, merged.
struct AIFC_API MergedResult {
  /// Times are nanoseconds of the reference clock (Unix time), so `anchor` maps them 1:1.
  /// Exact (records) when every part kept its records; otherwise from the merged aggregates,
  /// whose percentiles are within the histogram's 0.1%.
  BenchmarkResult result;
  bool exact = false;
  std::vector<std::uint32_t> ranks;          ///< the ranks that reported
  std::vector<std::uint32_t> missing_ranks;  ///< of 0..nranks-1, the ones that did not
  /// The latest rank's actual start minus the earliest's, on the reference clock; a rank's
  /// actual start is its planned start plus how late its first request left.
  std::int64_t start_spread_ns = 0;
  /// Per rank: {"rank", "node", "completed", "failed", "start_offset_ms", "first_send_late_ms",
  /// "clock_offset_ms", "clock_uncertainty_ms", "duration_s", "interrupted"}; and per node the same
  /// counts summed.
  nlohmann::json per_rank = nlohmann::json::array();
  nlohmann::json per_node = nlohmann::json::object();
};

/// Merges the parts of one run (each rank at most once; `nranks` names the ranks expected).
/// The merged counts, token totals and, when every part has its records, percentiles equal
/// those of the union of the records. Throws Error(invalid_argument) for a rank reported twice
/// or beyond nranks, or parts judged by different SummaryOptions.
AIFC_API MergedResult merge_shards(std::vector<ShardResult> parts, std::uint32_t nranks,
                                   const SummaryOptions& summary);

/// Reads a result document back (Benchmark::result_document, detailed or not): the spec, the
/// records when present, the aggregate, the clock anchor. Throws Error(parse_error) naming
/// what is missing.
struct AIFC_API ResultDocument {
  BenchmarkSpec spec;
  TokenizerApi tokenizer = TokenizerApi::none;
  BenchmarkResult result;
};
AIFC_API ResultDocument read_result_document(const nlohmann::json& document);

/// The merged document: `vllm bench serve`'s keys from the merged result, the spec of rank 0
/// with the shard cleared, and "distributed": {nranks, ranks, missing_ranks, exact,
/// start_spread_ms, per_rank, per_node}. With `detailed` the merged records too.
AIFC_API nlohmann::json merged_result_document(const BenchmarkSpec& spec, TokenizerApi tokenizer,
                                               const MergedResult& merged, bool detailed = false);

}  // namespace aifc
