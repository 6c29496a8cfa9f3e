#include "aifc/vllm_client.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cctype>
#include <cmath>

#include "aifc/error.hpp"
#include "client/blocking_connection.hpp"
#include "client/raw_request.hpp"
#include "client/response_feed.hpp"
#include "http/http_response_parser.hpp"
#include "http/keep_alive.hpp"
#include "http/url.hpp"
#include "stream/openai_stream.hpp"
#include "stream/sse.hpp"
#include "stream/stream_recorder.hpp"
#include "util/durations.hpp"
#include "util/json_text.hpp"
#include "util/json_values.hpp"

namespace aifc {

void SamplingParams::validate() const {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::invalid_argument, what); };
  // Only what no server accepts is refused here; the server judges the rest.
  auto finite = [&](const char* name, const std::optional<double>& v) {
    if (v && !std::isfinite(*v)) bad(fmt::format("sampling: {} must be a finite number", name));
  };
  finite("temperature", temperature);
  finite("top_p", top_p);
  finite("min_p", min_p);
  finite("frequency_penalty", frequency_penalty);
  finite("presence_penalty", presence_penalty);
  finite("repetition_penalty", repetition_penalty);
  if (temperature && *temperature < 0)
    bad(fmt::format("sampling: temperature must not be negative (got {})", *temperature));
  if (top_p && (*top_p <= 0 || *top_p > 1))
    bad(fmt::format("sampling: top_p must be in (0, 1] (got {})", *top_p));
  if (min_p && (*min_p < 0 || *min_p > 1))
    bad(fmt::format("sampling: min_p must be in [0, 1] (got {})", *min_p));
  if (top_k && *top_k < -1)
    bad(fmt::format("sampling: top_k must be -1 (all), 0 (all) or positive (got {})", *top_k));
  if (repetition_penalty && *repetition_penalty <= 0)
    bad(fmt::format("sampling: repetition_penalty must be positive (got {})", *repetition_penalty));
  if (logprobs && (*logprobs < 0 || *logprobs > 1000))
    bad(fmt::format("sampling: logprobs must be from 0 to 1000 (got {})", *logprobs));
}

namespace {
// The fields of SamplingParams by their JSON (and vLLM flag) names: one list for both ways.
template <class Params, class Visit>
void each_sampling_field(Params& s, Visit&& visit) {
  visit("temperature", s.temperature);
  visit("top_p", s.top_p);
  visit("top_k", s.top_k);
  visit("min_p", s.min_p);
  visit("frequency_penalty", s.frequency_penalty);
  visit("presence_penalty", s.presence_penalty);
  visit("repetition_penalty", s.repetition_penalty);
  visit("logprobs", s.logprobs);
}
}  // namespace

void to_json(nlohmann::json& j, const SamplingParams& s) {
  j = nlohmann::json::object();
  each_sampling_field(s, [&](const char* name, const auto& v) {
    if (v) j[name] = *v;
  });
}

void from_json(const nlohmann::json& j, SamplingParams& s) {
  s = SamplingParams{};
  if (!j.is_object()) throw Error(ErrorCode::invalid_argument, "sampling must be a JSON object");
  for (const auto& item : j.items()) {
    // Named copies: lambdas cannot capture structured bindings before C++20 in clang 14.
    const std::string key = item.key();
    const nlohmann::json& value = item.value();
    bool known = false;
    each_sampling_field(s, [&](const char* name, auto& v) {
      if (key != name) return;
      known = true;
      if (!value.is_null()) v = value.get<typename std::decay_t<decltype(v)>::value_type>();
    });
    if (!known)
      throw Error(ErrorCode::invalid_argument, fmt::format("sampling: unknown key '{}'", key));
  }
}

void ClientConfig::validate() const {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::invalid_argument, what); };
  // user:password@ would be echoed in messages and results: refused before anything shows it.
  {
    const auto scheme_end = base_url.find("://");
    const auto authority_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    const auto authority_end = base_url.find_first_of("/?#", authority_start);
    if (base_url.substr(authority_start, authority_end - authority_start).find('@') !=
        std::string::npos)
      bad("base_url carries credentials (user:password@); give the key with api_key or a "
          "header instead");
  }
  if (base_url.rfind("http://", 0) != 0 && base_url.rfind("https://", 0) != 0)
    bad(fmt::format("base_url '{}' must start with http:// or https://", base_url));
  if (detail::parse_url(base_url).host.empty())
    bad(fmt::format("base_url '{}' has no host", base_url));
  if (endpoint.empty() || endpoint.front() != '/')
    bad(fmt::format("endpoint '{}' must start with '/'", endpoint));
  if (!extra_body.is_object()) bad("extra_body must be a JSON object");
  if (!chat_template_kwargs.is_object()) bad("chat_template_kwargs must be a JSON object");
  if (!chat_template_kwargs.empty() && !is_chat())
    bad("chat_template_kwargs: a completions endpoint gets text, which vLLM's benchmark renders "
        "with the chat template on the client and aifc does not; use a chat endpoint "
        "(--backend openai-chat), where the server renders it with these kwargs");
  if (connect_timeout.count() <= 0) bad("connect_timeout must be positive");
  if (read_timeout.count() <= 0) bad("read_timeout must be positive");
  if (request_timeout.count() <= 0) bad("request_timeout must be positive");
  if (first_token_timeout.count() < 0) bad("first_token_timeout must not be negative");
  // Deadlines are kept in nanoseconds: a year is plenty and does not overflow.
  const auto year = std::chrono::hours(24 * 365);
  if (connect_timeout > year || read_timeout > year || request_timeout > year ||
      first_token_timeout > year)
    bad("timeouts must be at most a year");
  if (api_key.find_first_of("\r\n") != std::string::npos)
    bad("api_key has a line break in it (it would inject a header)");
  for (const auto& [name, value] : headers) {
    if (name.empty() || name.find_first_of(":\r\n ") != std::string::npos)
      bad(fmt::format("header name '{}' is not valid", name));
    if (value.find_first_of("\r\n") != std::string::npos)
      bad(fmt::format("header '{}' has a line break in its value", name));
  }
  if (request_id_prefix && (request_id_prefix->size() > 200 ||
                            request_id_prefix->find_first_of("\r\n") != std::string::npos))
    bad("request_id_prefix must be at most 200 characters on one line");
  for (const auto& name : lora_modules)
    if (name.empty()) bad("lora_modules: an adapter name is empty");
  sampling.validate();
}

const std::string& ClientConfig::api_model() const noexcept {
  return served_model_name.empty() ? model : served_model_name;
}

const std::string& ClientConfig::model_for_request(std::uint64_t index,
                                                   std::uint64_t seed) const noexcept {
  if (lora_modules.empty()) return api_model();
  const std::uint64_t n = lora_modules.size();
  if (lora_assignment == LoraAssignment::round_robin) return lora_modules[index % n];
  // splitmix64 of (seed, index): a draw per request that every shard makes alike.
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return lora_modules[(z ^ (z >> 31)) % n];
}

bool ClientConfig::is_chat() const noexcept {
  return endpoint.find("chat/completions") != std::string::npos;
}

// Headers that carry credentials: their values never leave the process in JSON (results,
// specs sent to agents); the name stays, so a reader sees that one was set.
static bool carries_secret(std::string_view name) {
  std::string lower(name);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* word : {"authorization", "cookie", "token", "secret", "key", "password"})
    if (lower.find(word) != std::string::npos) return true;
  return false;
}

void to_json(nlohmann::json& j, const ClientConfig& c) {
  auto headers = c.headers;
  for (auto& [name, value] : headers)
    if (carries_secret(name)) value = "<redacted>";
  j = nlohmann::json{{"base_url", c.base_url},
                     {"endpoint", c.endpoint},
                     {"model", c.model},
                     {"served_model_name", c.served_model_name},
                     {"lora_modules", c.lora_modules},
                     {"lora_assignment", c.lora_assignment},
                     {"headers", headers},
                     {"extra_body", c.extra_body},
                     {"chat_template_kwargs", c.chat_template_kwargs},
                     {"stream", c.stream},
                     {"ignore_eos", c.ignore_eos},
                     {"sampling", c.sampling},
                     {"request_id_prefix", detail::optional_to_json(c.request_id_prefix)},
                     {"capture_text", c.capture_text},
                     {"ca_cert_path", c.ca_cert_path},
                     {"verify_tls", c.verify_tls},
                     {"connect_timeout_s", detail::seconds_of(c.connect_timeout)},
                     {"read_timeout_s", detail::seconds_of(c.read_timeout)},
                     {"first_token_timeout_s", detail::seconds_of(c.first_token_timeout)},
                     {"request_timeout_s", detail::seconds_of(c.request_timeout)}};
}

void from_json(const nlohmann::json& j, ClientConfig& c) {
  c = ClientConfig{};
  c.base_url = j.value("base_url", c.base_url);
  c.endpoint = j.value("endpoint", c.endpoint);
  c.model = j.value("model", c.model);
  c.served_model_name = j.value("served_model_name", c.served_model_name);
  if (j.contains("lora_modules")) j.at("lora_modules").get_to(c.lora_modules);
  if (j.contains("lora_assignment")) {
    // nlohmann maps an unknown name to the first value; a typo must be an error instead.
    j.at("lora_assignment").get_to(c.lora_assignment);
    if (nlohmann::json(c.lora_assignment) != j.at("lora_assignment"))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("lora_assignment: {} is not random or round-robin",
                              j.at("lora_assignment").dump()));
  }
  c.api_key = j.value("api_key", c.api_key);
  if (j.contains("headers")) j.at("headers").get_to(c.headers);
  if (j.contains("extra_body")) c.extra_body = j.at("extra_body");
  if (j.contains("chat_template_kwargs")) c.chat_template_kwargs = j.at("chat_template_kwargs");
  c.stream = j.value("stream", c.stream);
  c.ignore_eos = j.value("ignore_eos", c.ignore_eos);
  if (j.contains("sampling")) j.at("sampling").get_to(c.sampling);
  detail::optional_from_json(j, "request_id_prefix", c.request_id_prefix);
  c.capture_text = j.value("capture_text", c.capture_text);
  c.ca_cert_path = j.value("ca_cert_path", c.ca_cert_path);
  c.verify_tls = j.value("verify_tls", c.verify_tls);
  c.connect_timeout = detail::millis_from_seconds(
      j.value("connect_timeout_s", detail::seconds_of(c.connect_timeout)));
  c.read_timeout =
      detail::millis_from_seconds(j.value("read_timeout_s", detail::seconds_of(c.read_timeout)));
  c.first_token_timeout = detail::millis_from_seconds(
      j.value("first_token_timeout_s", detail::seconds_of(c.first_token_timeout)));
  c.request_timeout = detail::millis_from_seconds(
      j.value("request_timeout_s", detail::seconds_of(c.request_timeout)));
}

namespace {

// The body of a request, as the DOM that fixes its keys and their order (prompt, max_tokens and
// model given as JSON so that a template can hold placeholders in their places).
nlohmann::json request_body(const ClientConfig& c, const nlohmann::json& prompt,
                            const nlohmann::json& max_tokens, const nlohmann::json& model,
                            const nlohmann::json& spec_extra_body) {
  nlohmann::json body{{"model", model}, {"stream", c.stream}};
  if (c.is_chat()) {
    body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", prompt}}});
    // Both names: servers differ in which one they read (vLLM either, llama.cpp and older
    // servers only max_tokens, OpenAI's newer models only max_completion_tokens). A user can
    // drop one with extra_body {"max_tokens": null}.
    if (!max_tokens.is_null()) {
      body["max_completion_tokens"] = max_tokens;
      body["max_tokens"] = max_tokens;
    }
  } else {
    body["prompt"] = prompt;
    if (!max_tokens.is_null()) body["max_tokens"] = max_tokens;
  }
  if (c.stream) body["stream_options"] = {{"include_usage", true}};
  if (c.ignore_eos) body["ignore_eos"] = true;
  const nlohmann::json sampling = c.sampling;
  for (const auto& [name, value] : sampling.items()) {
    if (name == "logprobs" && c.is_chat()) {
      body["logprobs"] = true;  // chat asks with a flag and a count
      body["top_logprobs"] = value;
    } else {
      body[name] = value;
    }
  }
  if (c.is_chat() && !c.chat_template_kwargs.empty())
    body["chat_template_kwargs"] = c.chat_template_kwargs;
  body.merge_patch(c.extra_body);
  if (spec_extra_body.is_object()) body.merge_patch(spec_extra_body);
  return body;
}

std::string dump_body(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A serialized body with holes for what differs between requests, so that preparing a request
// costs a few appends instead of building and serializing a JSON document. Made by
// request_body() itself, so both ways give the same bytes.
class BodyTemplate {
 public:
  BodyTemplate(const ClientConfig& c, bool with_max_tokens) {
    // Placeholders no real request holds. A user's extra_body that replaces a field replaces its
    // placeholder too, and the field is then the user's in every request, as it should be.
    constexpr const char* kPrompt = "@aifc:prompt:5d2c1f@";
    constexpr const char* kModel = "@aifc:model:5d2c1f@";
    constexpr std::int64_t kMaxTokens = 7'700'770'077'007;
    const std::string text = dump_body(
        request_body(c, kPrompt, with_max_tokens ? nlohmann::json(kMaxTokens) : nlohmann::json(),
                     kModel, nlohmann::json::object()));
    const std::pair<std::string, Slot> markers[] = {{dump_body(kPrompt), Slot::prompt},
                                                    {std::to_string(kMaxTokens), Slot::max_tokens},
                                                    {dump_body(kModel), Slot::model}};
    // Should the config itself hold a placeholder's text (a seed of 7700770077007, say), the
    // template could not tell it from a hole: such a config builds every body as a document.
    const std::string config_only =
        dump_body(request_body(c, "", with_max_tokens ? nlohmann::json(1) : nlohmann::json(), "",
                               nlohmann::json::object()));
    for (const auto& marker : markers)
      if (config_only.find(marker.first) != std::string::npos) return;
    usable_ = true;
    std::size_t from = 0;
    for (;;) {
      std::size_t next = std::string::npos;
      const std::pair<std::string, Slot>* found = nullptr;
      for (const auto& marker : markers) {
        const auto at = text.find(marker.first, from);
        if (at < next) {
          next = at;
          found = &marker;
        }
      }
      if (!found) {
        pieces_.push_back({text.substr(from), Slot::none});
        fixed_size_ += pieces_.back().text.size();
        return;
      }
      pieces_.push_back({text.substr(from, next - from), found->second});
      fixed_size_ += pieces_.back().text.size();
      from = next + found->first.size();
    }
  }

  /// False when the config holds a placeholder's text (then build the body as a document).
  bool usable() const noexcept { return usable_; }

  std::string fill(const std::string& prompt, std::int64_t max_tokens,
                   const std::string& model) const {
    std::string out;
    // Bodies are kept for the whole run: room for this one, not a guess (quotes, a number).
    out.reserve(fixed_size_ + prompt.size() + model.size() + 32);
    for (const auto& piece : pieces_) {
      out += piece.text;
      switch (piece.slot) {
        case Slot::prompt:
          detail::append_json_string(out, prompt);
          break;
        case Slot::max_tokens:
          out += std::to_string(max_tokens);
          break;
        case Slot::model:
          detail::append_json_string(out, model);
          break;
        case Slot::none:
          break;
      }
    }
    return out;
  }

 private:
  enum class Slot { none, prompt, max_tokens, model };
  struct Piece {
    std::string text;
    Slot slot;  // what follows the text
  };
  std::vector<Piece> pieces_;
  std::size_t fixed_size_ = 0;  // the pieces' text
  bool usable_ = false;
};

}  // namespace

struct VLLMClient::Impl {
  explicit Impl(ClientConfig c)
      : config(std::move(c)),
        url(detail::parse_url(config.base_url)),
        connection(url, detail::tls_context_for(config)),
        side_connection(url, connection.tls_context()),
        request_head(detail::raw_request_head(config)),
        body_with_max_tokens(config, true),
        body_without_max_tokens(config, false) {}

  std::optional<std::int64_t> count_with(TokenizerApi api, const std::string& text);

  /// A set-up call's answer: status 0 when none came (`error` says why).
  struct SideAnswer {
    int status = 0;
    std::string body;
    std::string error;
    bool reached = false;  ///< a connection was made (the failure came after)
  };
  /// A set-up call (GET /v1/models, POST /tokenize, ...) on a connection of its own, so that it
  /// never disturbs the measuring one; made again once on a fresh connection when the kept-alive
  /// one had been closed by the server (the habit the measuring path handles too).
  SideAnswer side_call(std::string_view method, std::string_view path,
                       const std::string* body = nullptr);

  RequestRecord send(const PreparedRequest& prepared, MonoNanos scheduled_ns,
                     std::string_view request_id);
  /// One exchange of `request` on the measuring connection (opened first if needed): how it
  /// ended, with `end_ns` the arrival of its last byte when it completed.
  detail::TransportEnd exchange(const std::string& request, RequestRecord& rec, MonoNanos& end_ns,
                                std::string& message);
  /// Records the deadline that `wait` ran into, or cancel(), as the request's failure.
  detail::TransportEnd cut_short(detail::BlockingConnection::Io io);

  ClientConfig config;
  detail::Url url;
  detail::BlockingConnection connection;
  detail::BlockingConnection side_connection;  // set-up calls
  std::string request_head;  // the request line and fixed headers of every measured request
  BodyTemplate body_with_max_tokens, body_without_max_tokens;  // what prepare() fills in
  detail::HttpResponseParser parser;
  detail::StreamRecorder recorder{config};
  std::unique_ptr<char[]> buffer;  // made at the first request
  std::atomic<bool> cancelled{false};
  // The kept-alive connection's life, to decide whether it may carry the next request.
  std::int64_t responses_on_connection = 0;
  MonoNanos idle_since = -1;
  MonoNanos idle_limit = -1;              // from the server's Keep-Alive timeout; -1: none known
  std::optional<TokenizerApi> tokenizer;  // probed once
};

namespace {
constexpr std::size_t kReceiveBuffer = 32 * 1024;
// The largest answer to a set-up call kept; beyond it the call fails (memory stays bounded
// whatever a server sends).
constexpr std::size_t kMaxSideAnswer = 64u << 20;

// The parser's handler for a set-up call: keeps the status and the body, up to its limit.
struct AnswerCollector {
  int status = 0;
  std::string body;
  bool on_headers(int s, bool) {
    status = s;
    return true;
  }
  bool on_body(const char* data, std::size_t len) {
    if (body.size() + len > kMaxSideAnswer) return false;
    body.append(data, len);
    return true;
  }
};

}  // namespace

VLLMClient::Impl::SideAnswer VLLMClient::Impl::side_call(std::string_view method,
                                                         std::string_view path,
                                                         const std::string* body) {
  using Io = detail::BlockingConnection::Io;
  const std::string request = detail::raw_side_request(config, method, path, body);
  const auto quiet_limit = std::min(config.read_timeout, std::chrono::milliseconds(30'000));
  SideAnswer answer;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (side_connection.is_open() && !side_connection.usable_after_idle()) side_connection.close();
    const bool reused = side_connection.is_open();
    if (!reused) {
      const Io io = side_connection.connect(mono_now() + detail::nanos_of(config.connect_timeout));
      if (io != Io::done) {
        answer.reached = false;
        answer.error = io == Io::failed ? side_connection.error()
                       : io == Io::interrupted
                           ? std::string("cancelled")
                           : fmt::format("connecting to {} took longer than {} ms", url.origin,
                                         config.connect_timeout.count());
        return answer;
      }
    }
    answer.reached = true;
    detail::HttpResponseParser response;
    AnswerCollector collected;
    std::string failure;
    bool complete = false;
    Io io = side_connection.write_all(request, mono_now() + detail::nanos_of(quiet_limit));
    char buffer[16 * 1024];
    while (io == Io::done) {
      std::size_t got = 0;
      MonoNanos arrived = -1;
      io = side_connection.read(buffer, sizeof buffer, mono_now() + detail::nanos_of(quiet_limit),
                                got, arrived);
      if (io == Io::closed) complete = response.complete_at_eof();
      if (io != Io::done) break;
      const auto result = response.feed(buffer, got, collected);
      if (response.stopped()) {
        failure = fmt::format("the answer is larger than {} MiB", kMaxSideAnswer >> 20);
      } else if (result == detail::HttpResponseParser::Result::error) {
        failure = "bad HTTP response: " + response.error();
      }
      complete = result == detail::HttpResponseParser::Result::complete;
      if (complete || !failure.empty()) break;
    }
    if (complete) {
      if (!response.keep_alive()) side_connection.close();
      answer.status = collected.status;
      answer.body = std::move(collected.body);
      return answer;
    }
    side_connection.close();
    if (reused && !response.started() && failure.empty() && (io == Io::closed || io == Io::failed))
      continue;  // the server had closed the kept-alive connection: once more on a fresh one
    answer.error = !failure.empty()        ? failure
                   : io == Io::deadline    ? fmt::format("no answer for {} ms", quiet_limit.count())
                   : io == Io::failed      ? side_connection.error()
                   : io == Io::interrupted ? std::string("cancelled")
                                           : std::string("the connection closed before the answer");
    return answer;
  }
  return answer;
}

detail::TransportEnd VLLMClient::Impl::cut_short(detail::BlockingConnection::Io io) {
  using Io = detail::BlockingConnection::Io;
  if (io == Io::interrupted || cancelled.load(std::memory_order_relaxed)) {
    recorder.fail(RequestError::cancelled, "cancelled");
  } else if (const RequestError late = recorder.overdue(mono_now()); late != RequestError::none) {
    recorder.fail(late, recorder.timeout_message(late));
  }
  return detail::TransportEnd::aborted;
}

detail::TransportEnd VLLMClient::Impl::exchange(const std::string& request, RequestRecord& rec,
                                                MonoNanos& end_ns, std::string& message) {
  using Io = detail::BlockingConnection::Io;
  using detail::TransportEnd;
  const bool reused = connection.is_open();
  parser.reset();
  if (!reused) {
    const MonoNanos connect_deadline = rec.send_ns + detail::nanos_of(config.connect_timeout);
    const Io io = connection.connect(std::min(connect_deadline, recorder.next_deadline()));
    if (io == Io::failed) {
      message = connection.error();
      return connection.failed_in_tls() ? TransportEnd::tls_failed : TransportEnd::connect_failed;
    }
    if (io == Io::deadline && recorder.overdue(mono_now()) == RequestError::none) {
      message = fmt::format("connecting to {} took longer than {} ms", url.origin,
                            config.connect_timeout.count());
      return TransportEnd::connect_timeout;
    }
    if (io != Io::done) return cut_short(io);
  }
  switch (const Io io = connection.write_all(request, recorder.next_deadline())) {
    case Io::done:
      break;
    case Io::closed:
    case Io::failed:
      message = io == Io::failed
                    ? connection.error()
                    : fmt::format("sending to {} failed: connection closed", url.origin);
      // A kept-alive connection that fails on writing was closed by the server meanwhile.
      return reused ? TransportEnd::read_failed : TransportEnd::write_failed;
    default:
      return cut_short(io);
  }
  if (!buffer) buffer = std::make_unique<char[]>(kReceiveBuffer);
  detail::RecorderFeed feed{recorder, rec.send_ns};
  for (;;) {
    std::size_t got = 0;
    MonoNanos arrived = -1;
    const Io io =
        connection.read(buffer.get(), kReceiveBuffer, recorder.next_deadline(), got, arrived);
    if (io == Io::deadline && recorder.overdue(mono_now()) == RequestError::none) continue;
    if (io == Io::closed) {
      end_ns = mono_now();
      return parser.complete_at_eof() ? TransportEnd::complete : TransportEnd::read_failed;
    }
    if (io == Io::failed) {
      end_ns = mono_now();
      return TransportEnd::read_failed;
    }
    if (io != Io::done) return cut_short(io);
    // The kernel's stamp of these bytes, never before the request went out.
    feed.arrived = std::max(arrived, rec.send_ns);
    if (const auto end = detail::feed_response(parser, buffer.get(), got, feed)) {
      if (*end == TransportEnd::complete) end_ns = feed.arrived;  // when its last byte arrived
      return *end;
    }
    if (cancelled.load(std::memory_order_relaxed)) return cut_short(Io::interrupted);
  }
}

RequestRecord VLLMClient::Impl::send(const PreparedRequest& prepared, MonoNanos scheduled_ns,
                                     std::string_view request_id) {
  using detail::TransportEnd;
  RequestRecord rec;
  if (cancelled.load(std::memory_order_relaxed)) {
    const MonoNanos now = mono_now();
    recorder.begin(rec, prepared, scheduled_ns, now);
    recorder.fail(RequestError::cancelled, "cancelled before sending");
    recorder.finish(TransportEnd::aborted, now);
    return rec;
  }
  const std::string request = detail::build_raw_request(request_head, prepared.body, request_id);
  // A kept-alive connection idle past the server's announced timeout is likely being closed,
  // and one the server closed while idle cannot carry the request.
  if (connection.is_open() && ((idle_limit >= 0 && mono_now() - idle_since > idle_limit) ||
                               !connection.usable_after_idle()))
    connection.close();
  if (!connection.is_open()) responses_on_connection = 0;
  const bool reused = connection.is_open();
  recorder.begin(rec, prepared, scheduled_ns, mono_now());
  MonoNanos end_ns = -1;
  std::string message;
  TransportEnd end = exchange(request, rec, end_ns, message);
  // A server may close a kept-alive connection while the next request is already on its way:
  // such a request never reached it. Resend it once on a fresh connection, measured from the
  // second send (its lateness shows the delay), instead of counting a server failure.
  if (reused && !parser.started() && rec.error == RequestError::none &&
      (end == TransportEnd::read_failed || end == TransportEnd::write_failed) &&
      !cancelled.load(std::memory_order_relaxed)) {
    connection.close();
    responses_on_connection = 0;
    recorder.begin(rec, prepared, rec.scheduled_ns, mono_now());
    rec.retried = true;
    message.clear();
    end = exchange(request, rec, end_ns, message);
  }
  if (end_ns < 0) end_ns = mono_now();
  recorder.finish(end, end_ns, message);
  if (end == TransportEnd::complete) ++responses_on_connection;
  // The connection carries the next request after a success or an HTTP error status (the
  // exchange completed cleanly), when the server keeps it open and has not used up its
  // Keep-Alive max.
  const detail::KeepAliveHint& hint = parser.keep_alive_hint();
  const bool reusable = end == TransportEnd::complete && parser.keep_alive() &&
                        hint.allows_another(responses_on_connection) &&
                        (rec.ok() || rec.error == RequestError::http_status);
  idle_since = end_ns;
  idle_limit = hint.idle_limit_ns();
  if (!reusable) connection.close();
  return rec;
}

VLLMClient::VLLMClient(ClientConfig config) {
  config.validate();
  impl_ = std::make_unique<Impl>(std::move(config));
}

VLLMClient::~VLLMClient() = default;
VLLMClient::VLLMClient(VLLMClient&&) noexcept = default;
VLLMClient& VLLMClient::operator=(VLLMClient&&) noexcept = default;

const ClientConfig& VLLMClient::config() const noexcept { return impl_->config; }

PreparedRequest VLLMClient::prepare(const RequestSpec& spec) const {
  const auto& c = impl_->config;
  const std::string& model = spec.model.empty() ? c.api_model() : spec.model;
  PreparedRequest p;
  const auto& body =
      spec.max_tokens > 0 ? impl_->body_with_max_tokens : impl_->body_without_max_tokens;
  if (body.usable() &&
      (spec.extra_body.is_null() || (spec.extra_body.is_object() && spec.extra_body.empty()))) {
    p.body = body.fill(spec.prompt, spec.max_tokens, model);
  } else {
    p.body = dump_body(request_body(
        c, spec.prompt, spec.max_tokens > 0 ? nlohmann::json(spec.max_tokens) : nlohmann::json(),
        model, spec.extra_body));
  }
  p.max_tokens = spec.max_tokens;
  p.input_tokens = spec.input_tokens;
  p.input_tokens_exact = spec.input_tokens_exact;
  return p;
}

RequestRecord VLLMClient::send(const PreparedRequest& request, MonoNanos scheduled_ns,
                               std::string_view request_id) {
  return impl_->send(request, scheduled_ns, request_id);
}

void VLLMClient::cancel() noexcept {
  impl_->cancelled.store(true);
  impl_->connection.interrupt();
  impl_->side_connection.interrupt();
}

void VLLMClient::resume() noexcept {
  impl_->cancelled.store(false);
  impl_->connection.clear_interrupt();
  impl_->side_connection.clear_interrupt();
}

std::vector<std::string> VLLMClient::list_models() {
  const auto res = impl_->side_call("GET", "/v1/models");
  if (res.status == 0 && !res.reached)
    throw Error(ErrorCode::connection_failed,
                fmt::format("cannot reach {} ({}); is the server running?", impl_->config.base_url,
                            res.error));
  if (res.status == 0)
    throw Error(ErrorCode::server_error, fmt::format("GET /v1/models: {}", res.error));
  if (res.status != 200)
    throw Error(ErrorCode::server_error,
                fmt::format("GET /v1/models answered HTTP {}: {}", res.status,
                            detail::error_body_message(res.body)));
  std::vector<std::string> ids;
  try {
    const auto doc =
        nlohmann::json::parse(res.body);  // named: a temporary would die before the loop
    for (const auto& m : doc.at("data")) ids.push_back(m.at("id").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::server_error,
                fmt::format("GET /v1/models: unexpected answer ({})", e.what()));
  }
  return ids;
}

bool VLLMClient::health() {
  const auto res = impl_->side_call("GET", "/health");
  return res.status >= 200 && res.status < 300;
}

std::optional<std::string> VLLMClient::metrics_text() {
  auto res = impl_->side_call("GET", "/metrics");
  if (res.status < 200 || res.status >= 300) return std::nullopt;
  return std::move(res.body);
}

int VLLMClient::post_control(std::string_view path) {
  const std::string empty_object = "{}";
  return impl_->side_call("POST", path, &empty_object).status;
}

std::string_view to_string(TokenizerApi api) noexcept {
  switch (api) {
    case TokenizerApi::vllm:
      return "vllm";
    case TokenizerApi::llama_cpp:
      return "llama_cpp";
    case TokenizerApi::tgi:
      return "tgi";
    case TokenizerApi::none:
      break;
  }
  return "none";
}

TokenizerApi tokenizer_api_from_string(std::string_view s) noexcept {
  for (auto api : {TokenizerApi::vllm, TokenizerApi::llama_cpp, TokenizerApi::tgi})
    if (to_string(api) == s) return api;
  return TokenizerApi::none;
}

std::optional<std::int64_t> VLLMClient::Impl::count_with(TokenizerApi api,
                                                         const std::string& text) {
  nlohmann::json body;
  switch (api) {
    case TokenizerApi::vllm:
      body = {{"model", config.api_model()}, {"prompt", text}, {"add_special_tokens", false}};
      break;
    case TokenizerApi::llama_cpp:
      body = {{"content", text}, {"add_special", false}};
      break;
    case TokenizerApi::tgi:
      body = {{"inputs", text}};
      break;
    case TokenizerApi::none:
      return std::nullopt;
  }
  const std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const auto res = side_call("POST", "/tokenize", &payload);
  if (res.status != 200) return std::nullopt;
  const auto j = nlohmann::json::parse(res.body, nullptr, false);
  if (api == TokenizerApi::tgi) {
    if (j.is_array()) return static_cast<std::int64_t>(j.size());
    return std::nullopt;
  }
  if (!j.is_object()) return std::nullopt;
  if (api == TokenizerApi::vllm && j.contains("count") && j["count"].is_number_integer())
    return j["count"].get<std::int64_t>();
  if (j.contains("tokens") && j["tokens"].is_array())
    return static_cast<std::int64_t>(j["tokens"].size());
  return std::nullopt;
}

TokenizerApi VLLMClient::probe_tokenizer() {
  auto& s = *impl_;
  if (s.tokenizer) return *s.tokenizer;
  // Two plain texts, the second four times the first: any real tokenizer counts both above
  // zero and the second higher.
  const std::string shorter = "the quick brown fox jumps over the lazy dog";
  const std::string longer = shorter + " " + shorter + " " + shorter + " " + shorter;
  s.tokenizer = TokenizerApi::none;
  for (const auto api : {TokenizerApi::vllm, TokenizerApi::llama_cpp, TokenizerApi::tgi}) {
    const auto a = s.count_with(api, shorter);
    if (!a || *a <= 0) continue;
    const auto b = s.count_with(api, longer);
    if (b && *b > *a) {
      s.tokenizer = api;
      break;
    }
  }
  return *s.tokenizer;
}

std::optional<std::int64_t> VLLMClient::count_tokens(const std::string& text) {
  const TokenizerApi api = probe_tokenizer();
  if (api == TokenizerApi::none) return std::nullopt;
  return impl_->count_with(api, text);
}

}  // namespace aifc
