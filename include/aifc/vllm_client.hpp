#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "aifc/export.hpp"
#include "aifc/record.hpp"

namespace aifc {

/// Sampling parameters, as `vllm bench serve`'s flags of the same names: each is sent only when
/// set, so that the server's own default applies otherwise (vLLM's benchmark no longer sends
/// temperature 0 unless asked; neither does aifc).
struct AIFC_API SamplingParams {
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<std::int64_t> top_k;
  std::optional<double> min_p;
  std::optional<double> frequency_penalty;
  std::optional<double> presence_penalty;
  std::optional<double> repetition_penalty;
  /// Log-probabilities per token: completions "logprobs": N; chat "logprobs": true and
  /// "top_logprobs": N.
  std::optional<std::int64_t> logprobs;

  /// Throws aifc::Error(invalid_argument) naming the bad field.
  void validate() const;
  bool operator==(const SamplingParams&) const = default;
};

/// {"temperature": 0.7, ...}: the fields that are set, nothing for the others.
AIFC_API void to_json(nlohmann::json& j, const SamplingParams& s);
AIFC_API void from_json(const nlohmann::json& j, SamplingParams& s);

/// How to reach an OpenAI-compatible server and what to ask of it.
/// How requests are spread over LoRA adapters, as `vllm bench serve --lora-assignment`.
enum class LoraAssignment : std::uint8_t {
  random,       ///< each request draws one (seeded by its index: the same in every shard)
  round_robin,  ///< request i asks for adapter i mod N
};

NLOHMANN_JSON_SERIALIZE_ENUM(LoraAssignment, {{LoraAssignment::random, "random"},
                                              {LoraAssignment::round_robin, "round-robin"}})

struct AIFC_API ClientConfig {
  std::string base_url = "http://127.0.0.1:8000";  ///< scheme://host:port[/prefix]
  std::string endpoint = "/v1/completions";        ///< or /v1/chat/completions
  std::string model;                               ///< empty: the server's first model
  /// The model's name in the API (the body's "model"), when it differs from `model` (which
  /// names the model in results), as `vllm bench serve --served-model-name`.
  std::string served_model_name;
  /// LoRA adapters loaded on the server: each request names one of them as its model instead,
  /// as `vllm bench serve --lora-modules`; empty: every request asks for api_model().
  std::vector<std::string> lora_modules;
  LoraAssignment lora_assignment = LoraAssignment::random;
  std::string api_key;  ///< sent as "Authorization: Bearer ..."
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra request headers
  nlohmann::json extra_body = nlohmann::json::object();      ///< merged into every body
  /// `vllm bench serve --chat-template-kwargs`: sent as the chat body's "chat_template_kwargs",
  /// so the server renders the template with them (vLLM renders on the client; the prompt the
  /// model sees is the same). Chat endpoints only.
  nlohmann::json chat_template_kwargs = nlohmann::json::object();
  bool stream = true;
  bool ignore_eos = false;
  SamplingParams sampling;
  /// Every request carries "x-request-id: <prefix><index>" (its place in the schedule), as
  /// vLLM's benchmark sends; unset: "bench-<8 random hex digits>-" chosen when a group is made;
  /// empty: no such header.
  std::optional<std::string> request_id_prefix;
  bool capture_text = false;  ///< keep the generated text in each record
  std::string ca_cert_path;   ///< CA bundle for https; empty: the system's
  bool verify_tls = true;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds read_timeout{300'000};   ///< longest silence within a response
  std::chrono::milliseconds first_token_timeout{0};  ///< 0: none
  std::chrono::milliseconds request_timeout{6 * 3600 * 1000};

  /// Throws aifc::Error(invalid_argument) naming the bad field.
  void validate() const;
  bool is_chat() const noexcept;
  /// The name the body carries: served_model_name, else model.
  const std::string& api_model() const noexcept;
  /// The model the request at this place of the schedule asks for: a LoRA adapter chosen by
  /// lora_assignment (drawn with `seed`), else api_model().
  const std::string& model_for_request(std::uint64_t index, std::uint64_t seed) const noexcept;
};

AIFC_API void to_json(nlohmann::json& j, const ClientConfig& c);  ///< the API key is never written
AIFC_API void from_json(const nlohmann::json& j, ClientConfig& c);

/// One request to send.
struct AIFC_API RequestSpec {
  std::string prompt;
  std::int64_t max_tokens = 0;    ///< 0: let the server decide
  std::int64_t input_tokens = 0;  ///< expected prompt length, reported when the server is silent
  bool input_tokens_exact = false;
  nlohmann::json extra_body = nlohmann::json::object();
  std::string model;  ///< the body's "model" for this request (a LoRA adapter); empty: the config's
};

/// A request whose body is already serialized, so that the send itself costs no JSON work.
struct AIFC_API PreparedRequest {
  std::string body;
  std::int64_t max_tokens = 0;  ///< the output length asked for (0: none)
  std::int64_t input_tokens = 0;
  bool input_tokens_exact = false;
};

/// The token-counting endpoint a server has, and how it is spoken to.
enum class TokenizerApi : std::uint8_t {
  none,       ///< no endpoint that counts: prompt lengths are estimates
  vllm,       ///< POST /tokenize {"model", "prompt"} -> {"count"} / {"tokens"} (vLLM, SGLang)
  llama_cpp,  ///< POST /tokenize {"content"} -> {"tokens": [...]} (llama.cpp's server)
  tgi,        ///< POST /tokenize {"inputs"} -> [{"id", ...}, ...] (Hugging Face TGI)
};

AIFC_API std::string_view to_string(TokenizerApi api) noexcept;
/// The reverse of to_string; unknown text gives none.
AIFC_API TokenizerApi tokenizer_api_from_string(std::string_view s) noexcept;

/// Streams requests to one OpenAI-compatible server over one kept-alive connection (plain or
/// TLS) and timestamps every chunk with the kernel's receive stamp. Enforces its own deadlines
/// while it waits. Not thread-safe except cancel() and resume(), which may be called from any
/// thread. A failed request is a record with an error, never an exception.
class AIFC_API VLLMClient {
 public:
  /// Validates `config`; throws Error(invalid_argument) naming the field (also when an https
  /// URL's CA file cannot be used).
  explicit VLLMClient(ClientConfig config);
  ~VLLMClient();
  VLLMClient(VLLMClient&&) noexcept;
  VLLMClient& operator=(VLLMClient&&) noexcept;

  const ClientConfig& config() const noexcept;

  PreparedRequest prepare(const RequestSpec& spec) const;
  /// Sends and measures one request. `scheduled_ns` is when it should have been sent (-1: now);
  /// a non-empty `request_id` goes out as its "x-request-id" header.
  RequestRecord send(const PreparedRequest& request, MonoNanos scheduled_ns = -1,
                     std::string_view request_id = {});
  RequestRecord send(const RequestSpec& spec) { return send(prepare(spec)); }

  /// Aborts the request in flight (or set-up call) and refuses later ones (they end as
  /// `cancelled`) until resume(). Safe from any thread.
  void cancel() noexcept;
  void resume() noexcept;
  /// GET /v1/models: the served model ids. Throws Error(connection_failed / server_error).
  std::vector<std::string> list_models();
  /// GET /health: true on a 2xx answer.
  bool health();
  /// GET /metrics: the server's Prometheus text, or nullopt when it answers anything but a 2xx
  /// (or nothing). Throws like list_models() only for a bad configuration.
  std::optional<std::string> metrics_text();
  /// POSTs an empty JSON object to a control path of the server, such as vLLM's
  /// /start_profile and /stop_profile: the HTTP status, or 0 when no answer came.
  int post_control(std::string_view path);
  /// Finds which token-counting endpoint the server speaks and checks that it really counts:
  /// a non-empty text must count more than zero tokens, and a longer text more than a shorter
  /// one (a server given a request shape it does not read may answer 200 with no tokens).
  /// Tries vLLM's shape, then llama.cpp's, then TGI's; the answer is kept for count_tokens().
  TokenizerApi probe_tokenizer();
  /// The text's token count through the probed endpoint (probing first if needed), without
  /// special tokens where the server lets that be chosen; nullopt when the server has none.
  /// Set-up calls share one kept-alive connection of their own.
  std::optional<std::int64_t> count_tokens(const std::string& text);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc
