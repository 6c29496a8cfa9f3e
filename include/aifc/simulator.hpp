#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace aifc {

/// A delay drawn per request or token: "50" (fixed ms), "uniform:20:80", "exp:50" (mean),
/// "normal:50:10" (mean, sd; clipped at 0).
struct DelaySpec {
  enum class Kind { fixed, uniform, exponential, normal };
  Kind kind = Kind::fixed;
  double a_ms = 0;                                  ///< fixed value, lower bound, or mean
  double b_ms = 0;                                  ///< upper bound or standard deviation
  static DelaySpec parse(const std::string& text);  ///< throws Error(invalid_argument)
  std::string to_string() const;
};

/// A vLLM-compatible test server. Faults are drawn per request from the seed, so a given
/// seed and request order fault the same requests every time.
struct SimulatorConfig {
  std::string host = "127.0.0.1";
  int port = 8000;  ///< 0: any free port
  std::string model = "aifc-sim";
  std::string api_key;  ///< when set, requests must carry "Authorization: Bearer <key>"
  DelaySpec ttft;       ///< time to the first token
  DelaySpec itl;        ///< time between tokens
  std::int64_t default_max_tokens = 16;
  std::int64_t tokens_per_chunk = 1;  ///< vLLM streams one token per chunk
  std::int64_t reasoning_tokens = 0;  ///< chat: the first N tokens arrive as reasoning_content
  double eos_probability = 0;         ///< per token, unless the request sets ignore_eos
  std::int64_t max_model_len = 1 << 20;
  // Fault injection: the share of requests that fail in each way.
  double error_rate = 0;  ///< answer with HTTP `error_status` at once
  int error_status = 500;
  double disconnect_rate = 0;  ///< close the connection mid-stream
  double stall_rate = 0;       ///< stop sending mid-stream for `stall`
  std::chrono::milliseconds stall{5000};
  double stream_error_rate = 0;         ///< send an error object inside the stream
  double malformed_rate = 0;            ///< send a chunk that is not JSON
  std::int64_t fault_after_tokens = 2;  ///< mid-stream faults come after this many tokens
  std::uint64_t seed = 0;
  std::int64_t threads = 1100;  ///< connections served at once (one thread each)

  void validate() const;
};

void to_json(nlohmann::json& j, const SimulatorConfig& c);
void from_json(const nlohmann::json& j, SimulatorConfig& c);

/// Runs the simulator in this process on its own threads. Endpoints: POST /v1/completions,
/// /v1/chat/completions (streaming or not), /tokenize; GET /v1/models, /health, /metrics.
/// Every streamed chunk carries `aifc_sent_ns`, its monotonic send time, so that a client on
/// the same machine can measure its own error.
class Simulator {
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
  /// Request counts by outcome, tokens sent.
  nlohmann::json stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc
