#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aifc/export.hpp"

namespace aifc {

/// vLLM's speculative-decoding counters as its Prometheus /metrics shows them
/// (`vllm:spec_decode_num_drafts_total`, `..._num_draft_tokens_total`,
/// `..._num_accepted_tokens_total` and `..._num_accepted_tokens_per_pos_total{position="i"}`),
/// each summed over its label sets (engines, models).
struct AIFC_API SpecDecodeCounters {
  double num_drafts = 0;
  double num_draft_tokens = 0;
  double num_accepted_tokens = 0;
  std::map<std::int64_t, double> accepted_per_position;
};

/// The counters in a /metrics text; nullopt when it has none (speculative decoding is off, or
/// the server is not vLLM). Lines that are not counter samples are skipped, as are malformed
/// ones: a server's metrics never fail a run.
AIFC_API std::optional<SpecDecodeCounters> parse_spec_decode_counters(std::string_view text);

/// What the server's speculative decoding did between two readings of its counters, in
/// `vllm bench serve`'s terms and result keys ("spec_decode_acceptance_rate", ...).
struct AIFC_API SpecDecodeStats {
  std::int64_t num_drafts = 0;       ///< draft proposals (engine steps that drafted)
  std::int64_t draft_tokens = 0;     ///< tokens proposed
  std::int64_t accepted_tokens = 0;  ///< of those, accepted
  double acceptance_rate = 0;        ///< accepted / proposed, in percent
  double acceptance_length = 0;      ///< tokens per step: 1 + accepted / drafts
  /// Per draft position: accepted at that position / drafts (fractions, not percent).
  std::vector<double> per_position_acceptance_rates;
};

/// The difference of two readings, as vLLM computes it; nullopt when no token was drafted in
/// between (nothing to report).
AIFC_API std::optional<SpecDecodeStats> spec_decode_stats(const SpecDecodeCounters& before,
                                                          const SpecDecodeCounters& after);

/// The result document's keys: spec_decode_acceptance_rate, spec_decode_acceptance_length,
/// spec_decode_num_drafts, spec_decode_draft_tokens, spec_decode_accepted_tokens,
/// spec_decode_per_position_acceptance_rates.
AIFC_API void add_spec_decode_keys(nlohmann::json& document, const SpecDecodeStats& stats);
/// Read back from a result document; nullopt when it has none.
AIFC_API std::optional<SpecDecodeStats> read_spec_decode_keys(const nlohmann::json& document);

/// vLLM's "Speculative Decoding" table section from a result document's spec_decode_* keys;
/// empty when it has none.
AIFC_API std::string format_spec_decode_table(const nlohmann::json& document);

}  // namespace aifc
