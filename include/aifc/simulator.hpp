#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "aifc/export.hpp"

namespace aifc {

/// A delay drawn per request or token: "50" (fixed ms), "uniform:20:80", "exp:50" (mean),
/// "normal:50:10" (mean, sd; clipped at 0).
struct AIFC_API DelaySpec {
  enum class Kind { fixed, uniform, exponential, normal };
  Kind kind = Kind::fixed;
  double a_ms = 0;                                  ///< fixed value, lower bound, or mean
  double b_ms = 0;                                  ///< upper bound or standard deviation
  static DelaySpec parse(const std::string& text);  ///< throws Error(invalid_argument)
  std::string to_string() const;
};

/// Which request fields set the answer's length: vLLM reads both names, llama.cpp's server and
/// older servers only `max_tokens`, some newer ones only `max_completion_tokens`.
enum class LengthField { both, max_tokens, max_completion_tokens };

/// How an injected in-stream error is written: vLLM's and OpenAI's `data: {"error": ...}`, an
/// `event: error` with its data, or llama.cpp's bare `error: {...}` line.
enum class StreamErrorStyle { data, event, error_field };

/// The /tokenize endpoint the simulator offers (see aifc::TokenizerApi): vLLM's shape,
/// llama.cpp's (which answers a vLLM-shaped request with 200 and no tokens, as llama.cpp does),
/// or none (404).
enum class SimTokenizer { vllm, llama_cpp, none };

NLOHMANN_JSON_SERIALIZE_ENUM(LengthField,
                             {{LengthField::both, "both"},
                              {LengthField::max_tokens, "max_tokens"},
                              {LengthField::max_completion_tokens, "max_completion_tokens"}})
NLOHMANN_JSON_SERIALIZE_ENUM(StreamErrorStyle, {{StreamErrorStyle::data, "data"},
                                                {StreamErrorStyle::event, "event"},
                                                {StreamErrorStyle::error_field, "error_field"}})
NLOHMANN_JSON_SERIALIZE_ENUM(SimTokenizer, {{SimTokenizer::vllm, "vllm"},
                                            {SimTokenizer::llama_cpp, "llama_cpp"},
                                            {SimTokenizer::none, "none"}})

/// A vLLM-compatible test server. Faults are drawn per request from the seed, so a given
/// seed and request order fault the same requests every time.
struct AIFC_API SimulatorConfig {
  std::string host = "127.0.0.1";
  int port = 8000;  ///< 0: any free port
  std::string model = "aifc-sim";
  /// LoRA adapters served beside the model, as `vllm serve --lora-modules`: listed by
  /// /v1/models with the model as parent, and accepted as a request's "model".
  std::vector<std::string> lora_modules;
  std::string api_key;  ///< when set, requests must carry "Authorization: Bearer <key>"
  /// Both set: serve https with this certificate (chain) and private key, PEM files (vLLM's
  /// --ssl-certfile and --ssl-keyfile).
  std::string ssl_certfile, ssl_keyfile;
  DelaySpec ttft;  ///< time to the first token
  DelaySpec itl;   ///< time between tokens
  std::int64_t default_max_tokens = 16;
  std::int64_t tokens_per_chunk = 1;  ///< vLLM streams one token per chunk
  std::int64_t reasoning_tokens = 0;  ///< chat: the first N tokens arrive as reasoning_content
  double eos_probability = 0;         ///< per token, unless the request sets ignore_eos
  std::int64_t max_model_len = 1 << 20;
  /// Speculative decoding as a vLLM server reports it on /metrics (the vllm:spec_decode_*
  /// counters): after the first token, every engine step of a stream drafts this many tokens,
  /// each accepted with probability `spec_acceptance_rate` when the one before it was, and
  /// emits the accepted ones plus one. 0: off. Only the counters: the tokens keep their timing.
  std::int64_t num_speculative_tokens = 0;
  double spec_acceptance_rate = 0.7;
  // Habits of real servers other than vLLM, each off (vLLM's behaviour) by default.
  LengthField length_field = LengthField::both;
  SimTokenizer tokenizer = SimTokenizer::vllm;
  /// Characters per token of the simulated tokenizer: 0 counts a word as one token; N counts
  /// each word as ceil(length / N) tokens, like a tokenizer that splits words.
  std::int64_t chars_per_token = 0;
  /// >= 0: close the connection this long after every response while its headers still
  /// promise keep-alive (llama.cpp's server was seen doing that); -1: keep connections open.
  std::chrono::milliseconds close_after_response{-1};
  /// Requests one connection serves before the server closes it (announced with
  /// `Keep-Alive: max=N` and `Connection: close` on the last); 0: no limit.
  std::int64_t max_requests_per_connection = 0;
  // Fault injection: the share of requests that fail in each way.
  double error_rate = 0;  ///< answer with HTTP `error_status` at once
  int error_status = 500;
  double disconnect_rate = 0;  ///< close the connection mid-stream
  double stall_rate = 0;       ///< stop sending mid-stream for `stall`
  std::chrono::milliseconds stall{5000};
  double stream_error_rate = 0;  ///< send an error object inside the stream
  double malformed_rate = 0;     ///< send a chunk that is not JSON
  StreamErrorStyle stream_error_style = StreamErrorStyle::data;
  double empty_response_rate = 0;       ///< answer 200 with no content and no usage
  std::int64_t fault_after_tokens = 2;  ///< mid-stream faults come after this many tokens
  std::uint64_t seed = 0;
  /// Event-loop threads, each serving any number of connections; 0: one per core.
  std::int64_t threads = 0;

  void validate() const;
};

AIFC_API void to_json(nlohmann::json& j, const SimulatorConfig& c);
AIFC_API void from_json(const nlohmann::json& j, SimulatorConfig& c);

/// Runs the simulator in this process on its own event-loop threads. Endpoints: POST
/// /v1/completions, /v1/chat/completions (streaming or not), /tokenize; GET /v1/models, /health,
/// /metrics. Every streamed chunk carries `aifc_sent_ns`, its monotonic send time, so that a client
/// on the same machine can measure its own error.
class AIFC_API Simulator {
 public:
  explicit Simulator(SimulatorConfig config);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  /// Binds and starts serving; returns the port. Throws Error(io_error) if it cannot bind.
  int start();
  /// Stops serving and ends open streams. Idempotent.
  void stop() noexcept;
  /// Blocks until stop() is called from elsewhere.
  void wait();
  int port() const noexcept;
  std::string base_url() const;
  /// Request counts by outcome, tokens sent, requests per LoRA adapter (requests_by_adapter),
  /// and how late streamed chunks went out against their due time (send_lateness_us: count,
  /// p50, p99, max; also on /metrics as aifc_sim_send_lateness_seconds).
  nlohmann::json stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc
