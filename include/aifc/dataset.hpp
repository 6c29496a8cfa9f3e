#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aifc/export.hpp"

namespace aifc {

/// The prompt sources, with vLLM's names: random words of drawn lengths; ShareGPT conversations;
/// a JSON-lines file (vLLM's `custom`); random words in groups that share a prefix
/// (`prefix_repetition`, for prefix-cache studies); the request and response lengths of a
/// BurstGPT trace (its CSV file); the requests of a timed trace (`timed_trace`: JSON lines with
/// an arrival time, lengths and the hash ids of shared prompt blocks, as Mooncake's traces).
enum class DatasetKind { random, sharegpt, jsonl, prefix_repetition, burstgpt, timed_trace };

NLOHMANN_JSON_SERIALIZE_ENUM(DatasetKind, {{DatasetKind::random, "random"},
                                           {DatasetKind::sharegpt, "sharegpt"},
                                           {DatasetKind::jsonl, "jsonl"},
                                           {DatasetKind::prefix_repetition, "prefix_repetition"},
                                           {DatasetKind::burstgpt, "burstgpt"},
                                           {DatasetKind::timed_trace, "timed_trace"}})

/// Which prompts to send. Field names follow `vllm bench serve`'s flags.
struct AIFC_API DatasetConfig {
  DatasetKind dataset_name = DatasetKind::random;
  /// The file of sharegpt, jsonl and timed_trace (JSON or JSON lines, or Parquet: a row a
  /// record) or burstgpt (its CSV).
  std::string dataset_path;
  std::int64_t num_prompts = 1000;
  std::int64_t random_input_len = 1024;
  std::int64_t random_output_len = 128;
  /// random: input lengths uniform in [len*(1-r), len*(1+r)], and output lengths too unless
  /// random_output_range_ratio is set (vLLM's {"input": r, "output": r2}); each in [0, 1).
  double random_range_ratio = 0.0;
  std::optional<double> random_output_range_ratio;
  std::int64_t random_prefix_len = 0;    ///< a shared prefix of this many tokens
  std::int64_t sharegpt_output_len = 0;  ///< 0: use the conversation's reply length
  /// jsonl (vLLM's `custom`): the output length of every prompt; unset: a line's own
  /// "output_tokens" (or "output_len", "max_tokens"), else 256 as vLLM; 0: no limit.
  std::optional<std::int64_t> custom_output_len;
  /// prefix_repetition: every prompt is prefix_len + suffix_len tokens, and each of the
  /// num_prefixes prefixes is shared by an equal share of the prompts (vLLM's defaults).
  std::int64_t prefix_repetition_prefix_len = 256;
  std::int64_t prefix_repetition_suffix_len = 256;
  std::int64_t prefix_repetition_num_prefixes = 10;
  std::int64_t prefix_repetition_output_len = 128;
  /// timed_trace: tokens that one hash id stands for (Mooncake's traces: 512; Qwen's: 16), the
  /// factor that turns a timestamp into seconds (0.001 for milliseconds), and the keys of a line.
  /// Lines with the same hash id get the same block of text, so a prefix cache hits as it did.
  std::int64_t timed_trace_chunk_hash_size = 16;
  double timed_trace_sec_multiplier = 1.0;
  std::string timed_trace_label_timestamp = "timestamp";
  std::string timed_trace_label_input_length = "input_length";
  std::string timed_trace_label_output_length = "output_length";
  std::string timed_trace_label_hash_ids = "hash_ids";
  bool disable_shuffle = false;  ///< file datasets: keep the file's order
  /// File datasets: never repeat a prompt; a file with fewer than num_prompts usable prompts
  /// then sends fewer requests (default: cycle through them, as vLLM oversamples).
  bool no_oversample = false;
  std::uint64_t seed = 0;

  /// Throws aifc::Error(invalid_argument) naming the bad field.
  void validate() const;
};

AIFC_API void to_json(nlohmann::json& j, const DatasetConfig& c);
AIFC_API void from_json(const nlohmann::json& j, DatasetConfig& c);

/// vLLM's output length of a `custom` prompt that states none.
inline constexpr std::int64_t kCustomOutputLen = 256;

/// One prompt of a workload.
struct AIFC_API Prompt {
  std::string text;
  std::int64_t input_tokens = 0;    ///< the prompt's length in tokens
  bool input_tokens_exact = false;  ///< counted by the server's tokenizer
  std::int64_t output_tokens = 0;   ///< max_tokens to ask for; 0: the server's default
  /// A timed trace's arrival time in seconds (from the trace's own origin); -1: none. A
  /// self-timed load sends each prompt at its time, counted from the first prompt's.
  double arrival_s = -1.0;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Prompt, text, input_tokens, input_tokens_exact,
                                                output_tokens, arrival_s)

/// Counts the tokens of a text with the target server's tokenizer; returns nullopt when the
/// server has none (e.g. no /tokenize endpoint).
using TokenCounter = std::function<std::optional<std::int64_t>(const std::string&)>;

/// Builds the prompts. Same config and seed, same prompts. With a counter, `random` prompts
/// are adjusted to exactly the drawn token count, and file prompts are counted exactly;
/// without one, lengths are estimates and `input_tokens_exact` is false.
/// Throws aifc::Error (io_error, parse_error, invalid_argument) with the file and line.
AIFC_API std::vector<Prompt> load_dataset(const DatasetConfig& config,
                                          const TokenCounter& counter = {});

/// Which prompts (by index) a process will send; the others may be left empty.
using PromptFilter = std::function<bool(std::int64_t index)>;

/// The same, for one rank of a distributed run: random prompts that `needed` turns down are left
/// empty (their index keeps its place), so that each rank builds and fits only its own. Each
/// random prompt is drawn from its own seed (the dataset seed and its index), so a prompt is the
/// same whichever ranks build it. File datasets are read whole (their filters count every
/// prompt).
AIFC_API std::vector<Prompt> load_dataset(const DatasetConfig& config, const TokenCounter& counter,
                                          const PromptFilter& needed);

}  // namespace aifc
