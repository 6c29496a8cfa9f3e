#include "aifc/vllm_client.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "aifc/error.hpp"
#include "http/keep_alive.hpp"
#include "http/url.hpp"
#include "stream/openai_stream.hpp"
#include "stream/sse.hpp"
#include "stream/stream_recorder.hpp"
#include "util/durations.hpp"
#include "util/json_text.hpp"
#include "util/json_values.hpp"

namespace aifc {
namespace {

void configure(httplib::Client& cli, const ClientConfig& c,
               std::chrono::milliseconds read_timeout) {
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  // A compressed event stream would be buffered by the compressor and ruin every timestamp.
  cli.set_decompress(false);
  cli.set_compress(false);
  cli.set_connection_timeout(c.connect_timeout);
  cli.set_read_timeout(read_timeout);
  cli.set_write_timeout(c.connect_timeout);
  if (!c.ca_cert_path.empty()) cli.set_ca_cert_path(c.ca_cert_path);
  cli.enable_server_certificate_verification(c.verify_tls);
}

}  // namespace

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
        cli(url.origin),
        body_with_max_tokens(config, true),
        body_without_max_tokens(config, false) {
    // The socket's read timeout is the silence limit only: the first-token deadline holds until
    // the first token and no longer, which a per-read timeout cannot express; expire_if_late()
    // enforces it (and the total deadline) from a watchdog.
    configure(cli, config, std::min(config.read_timeout, config.request_timeout));
    headers.emplace("Content-Type", "application/json");
    headers.emplace("Accept-Encoding", "identity");
    if (config.stream) headers.emplace("Accept", "text/event-stream");
    if (!config.api_key.empty()) headers.emplace("Authorization", "Bearer " + config.api_key);
    for (const auto& [k, v] : config.headers) headers.emplace(k, v);
    path = url.prefix + config.endpoint;
  }

  // A connection of its own for set-up calls, so they never disturb the measuring one.
  httplib::Client& side_client() {
    if (!side) {
      side = std::make_unique<httplib::Client>(url.origin);
      configure(*side, config, std::min(config.read_timeout, std::chrono::milliseconds(30'000)));
    }
    return *side;
  }

  std::optional<std::int64_t> count_with(TokenizerApi api, const std::string& text);

  /// A set-up call, made again once on a fresh connection when the kept-alive one had been
  /// closed by the server (the same habit the measuring path handles).
  template <class Call>
  httplib::Result side_call(Call&& call) {
    auto res = call(side_client());
    if (!res && (res.error() == httplib::Error::Read || res.error() == httplib::Error::Write)) {
      side_client().stop();
      res = call(side_client());
    }
    return res;
  }

  httplib::Headers side_headers() const {
    httplib::Headers h;
    if (!config.api_key.empty()) h.emplace("Authorization", "Bearer " + config.api_key);
    for (const auto& [k, v] : config.headers) h.emplace(k, v);
    return h;
  }

  void abort_with(RequestError reason) noexcept {
    auto expected = static_cast<int>(RequestError::none);
    abort_reason.compare_exchange_strong(expected, static_cast<int>(reason));
    cli.stop();
  }

  RequestRecord send(const PreparedRequest& prepared, MonoNanos scheduled_ns,
                     std::string_view request_id);

  ClientConfig config;
  detail::Url url;
  httplib::Client cli;
  BodyTemplate body_with_max_tokens, body_without_max_tokens;  // what prepare() fills in
  httplib::Headers headers;
  std::string path;
  detail::StreamRecorder recorder{config};
  std::atomic<bool> cancelled{false};
  std::atomic<int> abort_reason{static_cast<int>(RequestError::none)};
  std::atomic<MonoNanos> first_token_deadline{-1};  // -1: none or already met
  std::atomic<MonoNanos> total_deadline{-1};
  // The kept-alive connection's life, to decide whether it may carry the next request.
  std::int64_t responses_on_connection = 0;
  std::unique_ptr<httplib::Client> side;
  std::optional<TokenizerApi> tokenizer;  // probed once
  MonoNanos idle_since = -1;
  detail::KeepAliveHint keep_alive;

  /// One exchange on the measuring connection; true when the response arrived complete.
  bool exchange(httplib::Request& req, httplib::Error& err);

  ~Impl() { stop_watchdog(); }  // before the connection goes; also when a client is moved over

  // The client's own watchdog (Deadlines::own_watchdog): sleeps until the request's nearest
  // deadline and expires it; woken when a request starts and at destruction.
  void start_watchdog();
  void stop_watchdog();
  void deadlines_changed() {
    if (!watchdog.joinable()) return;
    { std::lock_guard lock(watchdog_mutex); }
    watchdog_cv.notify_one();
  }
  void expire_if_late(MonoNanos now) noexcept;
  std::thread watchdog;
  std::mutex watchdog_mutex;
  std::condition_variable watchdog_cv;
  bool watchdog_stop = false;
};

void VLLMClient::Impl::expire_if_late(MonoNanos now) noexcept {
  const MonoNanos ft = first_token_deadline.load(std::memory_order_relaxed);
  const MonoNanos total = total_deadline.load(std::memory_order_relaxed);
  if (ft >= 0 && now > ft)
    abort_with(RequestError::timeout_first_token);
  else if (total >= 0 && now > total)
    abort_with(RequestError::timeout_total);
}

void VLLMClient::Impl::start_watchdog() {
  watchdog = std::thread([this] {
    std::unique_lock lock(watchdog_mutex);
    while (!watchdog_stop) {
      const MonoNanos ft = first_token_deadline.load(std::memory_order_relaxed);
      const MonoNanos total = total_deadline.load(std::memory_order_relaxed);
      MonoNanos next = -1;
      for (const MonoNanos d : {ft, total})
        if (d >= 0 && (next < 0 || d < next)) next = d;
      if (next < 0) {
        watchdog_cv.wait(lock);
        continue;
      }
      watchdog_cv.wait_until(
          lock, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(next + 1'000'000)));
      expire_if_late(mono_now());
    }
  });
}

void VLLMClient::Impl::stop_watchdog() {
  if (!watchdog.joinable()) return;
  {
    std::lock_guard lock(watchdog_mutex);
    watchdog_stop = true;
  }
  watchdog_cv.notify_one();
  watchdog.join();
}

bool VLLMClient::Impl::exchange(httplib::Request& req, httplib::Error& err) {
  httplib::Response res;
  err = httplib::Error::Success;
  const MonoNanos send_ns = mono_now();
  first_token_deadline.store(config.first_token_timeout.count() > 0
                                 ? send_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 config.first_token_timeout)
                                                 .count()
                                 : -1,
                             std::memory_order_relaxed);
  total_deadline.store(
      send_ns +
          std::chrono::duration_cast<std::chrono::nanoseconds>(config.request_timeout).count(),
      std::memory_order_relaxed);
  deadlines_changed();
  const bool sent = cli.send(req, res, err);
  first_token_deadline.store(-1, std::memory_order_relaxed);
  total_deadline.store(-1, std::memory_order_relaxed);
  return sent;
}

RequestRecord VLLMClient::Impl::send(const PreparedRequest& prepared, MonoNanos scheduled_ns,
                                     std::string_view request_id) {
  RequestRecord rec;
  if (cancelled.load(std::memory_order_relaxed)) {
    const MonoNanos now = mono_now();
    recorder.begin(rec, prepared, scheduled_ns, now);
    recorder.fail(RequestError::cancelled, "cancelled before sending");
    recorder.finish(detail::TransportEnd::aborted, now);
    return rec;
  }
  abort_reason.store(static_cast<int>(RequestError::none), std::memory_order_relaxed);

  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = headers;
  if (!request_id.empty()) req.headers.emplace("x-request-id", std::string(request_id));
  req.body = prepared.body;
  req.response_handler = [&](const httplib::Response& res) {
    keep_alive = detail::KeepAliveHint::parse(res.get_header_value("Keep-Alive"));
    recorder.on_headers(
        res.status,
        res.get_header_value("Content-Type").find("text/event-stream") != std::string::npos,
        mono_now());
    return !cancelled.load(std::memory_order_relaxed);
  };
  req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
    // One timestamp per received piece: every event in it arrived at the same instant.
    const MonoNanos now = mono_now();
    if (cancelled.load(std::memory_order_relaxed)) return false;
    const bool more = recorder.on_body(data, len, now);
    if (rec.first_token_ns >= 0) first_token_deadline.store(-1, std::memory_order_relaxed);
    return more;
  };

  // A kept-alive connection idle past the server's announced timeout is likely being closed.
  bool reused = cli.is_socket_open() != 0;
  const MonoNanos idle_limit = keep_alive.idle_limit_ns();
  if (reused && idle_limit >= 0 && mono_now() - idle_since > idle_limit) {
    cli.stop();
    reused = false;
  }
  if (!reused) responses_on_connection = 0;
  httplib::Error err = httplib::Error::Success;
  recorder.begin(rec, prepared, scheduled_ns, mono_now());
  bool sent = exchange(req, err);
  // A server may close a kept-alive connection while the next request is already on its way:
  // such a request never reached it. Resend it once on a fresh connection, measured from the
  // second send (its lateness shows the delay), instead of counting a server failure.
  if (!sent && reused && rec.first_byte_ns < 0 &&
      (err == httplib::Error::Read || err == httplib::Error::Write) &&
      abort_reason.load(std::memory_order_relaxed) == static_cast<int>(RequestError::none) &&
      !cancelled.load(std::memory_order_relaxed)) {
    cli.stop();
    responses_on_connection = 0;
    recorder.begin(rec, prepared, rec.scheduled_ns, mono_now());
    rec.retried = true;
    sent = exchange(req, err);
  }
  const MonoNanos end_ns = mono_now();
  using detail::TransportEnd;
  const auto reason = static_cast<RequestError>(abort_reason.load(std::memory_order_relaxed));
  // A body that ends when the connection closes "completes" when a deadline or cancel() closed
  // it: that is the abort it was, not an answer (nor a server's close).
  const bool aborted = reason != RequestError::none || cancelled.load(std::memory_order_relaxed);
  if (sent && !aborted) {
    recorder.finish(TransportEnd::complete, end_ns);
    idle_since = end_ns;
    if (!keep_alive.allows_another(++responses_on_connection)) cli.stop();
  } else if (sent) {
    if (reason != RequestError::none) recorder.fail(reason, recorder.timeout_message(reason));
    recorder.finish(TransportEnd::aborted, end_ns);
  } else {
    if (reason != RequestError::none) recorder.fail(reason, recorder.timeout_message(reason));
    switch (err) {
      case httplib::Error::Canceled:
        recorder.finish(TransportEnd::aborted, end_ns);
        break;
      case httplib::Error::Connection:
        recorder.finish(TransportEnd::connect_failed, end_ns,
                        fmt::format("cannot connect to {}", url.origin));
        break;
      case httplib::Error::ConnectionTimeout:
        recorder.finish(TransportEnd::connect_timeout, end_ns,
                        fmt::format("connecting to {} took longer than {} ms", url.origin,
                                    config.connect_timeout.count()));
        break;
      case httplib::Error::SSLConnection:
      case httplib::Error::SSLServerVerification:
      case httplib::Error::SSLLoadingCerts:
        recorder.finish(TransportEnd::tls_failed, end_ns,
                        fmt::format("TLS with {} failed: {}", url.origin, httplib::to_string(err)));
        break;
      case httplib::Error::Read:
        recorder.finish(TransportEnd::read_failed, end_ns);
        break;
      default:
        recorder.finish(TransportEnd::write_failed, end_ns, httplib::to_string(err));
        break;
    }
  }
  if (!rec.ok() && rec.error != RequestError::http_status &&
      rec.error != RequestError::server_error)
    cli.stop();  // the connection's state is unknown: start the next request on a fresh one
  return rec;
}

VLLMClient::VLLMClient(ClientConfig config, Deadlines deadlines) {
  config.validate();
  impl_ = std::make_unique<Impl>(std::move(config));
  if (deadlines == Deadlines::own_watchdog) impl_->start_watchdog();
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
  impl_->abort_with(RequestError::cancelled);
}

void VLLMClient::resume() noexcept { impl_->cancelled.store(false); }

void VLLMClient::expire_if_late(MonoNanos now) noexcept { impl_->expire_if_late(now); }

std::vector<std::string> VLLMClient::list_models() {
  auto res = impl_->side_call([&](httplib::Client& c) {
    return c.Get(impl_->url.prefix + "/v1/models", impl_->side_headers());
  });
  if (!res)
    throw Error(ErrorCode::connection_failed,
                fmt::format("cannot reach {} ({}); is the server running?", impl_->config.base_url,
                            httplib::to_string(res.error())));
  if (res->status != 200)
    throw Error(ErrorCode::server_error,
                fmt::format("GET /v1/models answered HTTP {}: {}", res->status,
                            detail::error_body_message(res->body)));
  std::vector<std::string> ids;
  try {
    const auto doc =
        nlohmann::json::parse(res->body);  // named: a temporary would die before the loop
    for (const auto& m : doc.at("data")) ids.push_back(m.at("id").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::server_error,
                fmt::format("GET /v1/models: unexpected answer ({})", e.what()));
  }
  return ids;
}

bool VLLMClient::health() {
  auto res = impl_->side_call([&](httplib::Client& c) {
    return c.Get(impl_->url.prefix + "/health", impl_->side_headers());
  });
  return res && res->status >= 200 && res->status < 300;
}

int VLLMClient::post_control(std::string_view path) {
  const std::string target = impl_->url.prefix + std::string(path);
  auto res = impl_->side_call([&](httplib::Client& c) {
    return c.Post(target, impl_->side_headers(), "{}", "application/json");
  });
  return res ? res->status : 0;
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
  auto res = side_call([&](httplib::Client& c) {
    return c.Post(url.prefix + "/tokenize", side_headers(), payload, "application/json");
  });
  if (!res || res->status != 200) return std::nullopt;
  const auto j = nlohmann::json::parse(res->body, nullptr, false);
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
