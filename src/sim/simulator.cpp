#include "aifc/simulator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "aifc/error.hpp"
#include "aifc/histogram.hpp"
#include "aifc/record.hpp"
#include "http/event_server.hpp"
#include "util/durations.hpp"
#include "util/rng.hpp"

namespace aifc {

namespace {

constexpr const char* kTokens[] = {" the", " of", " and", " to",  " in", " is",  " you", " that",
                                   " it",  " he", " was", " for", " on", " are", " as",  " with"};

// The simulated tokenizer: a word is one token, or ceil(length / chars_per_token) tokens.
std::int64_t count_tokens(std::string_view text, std::int64_t chars_per_token) {
  std::int64_t n = 0, word = 0;
  auto end_word = [&] {
    if (word > 0) n += chars_per_token > 0 ? (word + chars_per_token - 1) / chars_per_token : 1;
    word = 0;
  };
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r')
      end_word();
    else
      ++word;
  }
  end_word();
  return n;
}

double parse_ms(const std::string& text, const std::string& whole) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    // At most a day: a delay beyond that is a typo, and NaN or inf would become 0.
    if (used != text.size() || !(v >= 0 && v <= 86'400'000)) throw std::invalid_argument("bad");
    return v;
  } catch (const std::exception&) {
    throw Error(
        ErrorCode::invalid_argument,
        fmt::format("delay '{}' must be MS, uniform:LO:HI, exp:MEAN or normal:MEAN:SD, each from "
                    "0 to 86400000 ms",
                    whole));
  }
}

std::string error_json(const std::string& message, const char* type, int code) {
  return nlohmann::json{
      {"object", "error"}, {"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}
      .dump();
}

using detail::json_response;

constexpr const char* kNotFound = R"({"detail":"Not Found"})";  // FastAPI's, as vLLM's

enum class Fault { none, http_error, disconnect, stall, stream_error, malformed, empty };

}  // namespace

DelaySpec DelaySpec::parse(const std::string& text) {
  DelaySpec d;
  std::vector<std::string> parts;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ':');) parts.push_back(item);
  if (parts.empty()) {
    parse_ms("", text);  // throws the message that lists the forms
  } else if (parts.size() == 1) {
    d.a_ms = parse_ms(parts[0], text);
  } else if (parts[0] == "fixed" && parts.size() == 2) {
    d.a_ms = parse_ms(parts[1], text);
  } else if (parts[0] == "uniform" && parts.size() == 3) {
    d.kind = Kind::uniform;
    d.a_ms = parse_ms(parts[1], text);
    d.b_ms = parse_ms(parts[2], text);
    if (d.b_ms < d.a_ms)
      throw Error(ErrorCode::invalid_argument, fmt::format("delay '{}': HI < LO", text));
  } else if ((parts[0] == "exp" || parts[0] == "exponential") && parts.size() == 2) {
    d.kind = Kind::exponential;
    d.a_ms = parse_ms(parts[1], text);
  } else if (parts[0] == "normal" && parts.size() == 3) {
    d.kind = Kind::normal;
    d.a_ms = parse_ms(parts[1], text);
    d.b_ms = parse_ms(parts[2], text);
  } else {
    parse_ms("x", text);  // throws the uniform message
  }
  return d;
}

std::string DelaySpec::to_string() const {
  switch (kind) {
    case Kind::fixed:
      return fmt::format("{}", a_ms);
    case Kind::uniform:
      return fmt::format("uniform:{}:{}", a_ms, b_ms);
    case Kind::exponential:
      return fmt::format("exp:{}", a_ms);
    case Kind::normal:
      return fmt::format("normal:{}:{}", a_ms, b_ms);
  }
  return "0";
}

namespace {
double draw_ms(const DelaySpec& d, detail::Rng& rng) {
  switch (d.kind) {
    case DelaySpec::Kind::fixed:
      return d.a_ms;
    case DelaySpec::Kind::uniform:
      return d.a_ms + (d.b_ms - d.a_ms) * rng.uniform();
    case DelaySpec::Kind::exponential:
      return rng.exponential(d.a_ms);
    case DelaySpec::Kind::normal:
      return std::max(0.0, d.a_ms + d.b_ms * rng.normal());
  }
  return 0;
}
}  // namespace

void to_json(nlohmann::json& j, const SimulatorConfig& c) {
  j = nlohmann::json{{"host", c.host},
                     {"port", c.port},
                     {"model", c.model},
                     {"lora_modules", c.lora_modules},
                     {"ttft_ms", c.ttft.to_string()},
                     {"itl_ms", c.itl.to_string()},
                     {"default_max_tokens", c.default_max_tokens},
                     {"tokens_per_chunk", c.tokens_per_chunk},
                     {"reasoning_tokens", c.reasoning_tokens},
                     {"eos_probability", c.eos_probability},
                     {"max_model_len", c.max_model_len},
                     {"num_speculative_tokens", c.num_speculative_tokens},
                     {"spec_acceptance_rate", c.spec_acceptance_rate},
                     {"error_rate", c.error_rate},
                     {"error_status", c.error_status},
                     {"disconnect_rate", c.disconnect_rate},
                     {"stall_rate", c.stall_rate},
                     {"stall_ms", c.stall.count()},
                     {"stream_error_rate", c.stream_error_rate},
                     {"malformed_rate", c.malformed_rate},
                     {"stream_error_style", c.stream_error_style},
                     {"empty_response_rate", c.empty_response_rate},
                     {"length_field", c.length_field},
                     {"tokenizer", c.tokenizer},
                     {"chars_per_token", c.chars_per_token},
                     {"close_after_response_ms", c.close_after_response.count()},
                     {"max_requests_per_connection", c.max_requests_per_connection},
                     {"ssl_certfile", c.ssl_certfile},
                     {"ssl_keyfile", c.ssl_keyfile},
                     {"fault_after_tokens", c.fault_after_tokens},
                     {"seed", c.seed},
                     {"threads", c.threads}};
}

void from_json(const nlohmann::json& j, SimulatorConfig& c) {
  c = SimulatorConfig{};
  auto delay = [&](const char* key, DelaySpec& d) {
    if (!j.contains(key)) return;
    const auto& v = j.at(key);
    d = DelaySpec::parse(v.is_string() ? v.get<std::string>() : fmt::format("{}", v.get<double>()));
  };
  c.host = j.value("host", c.host);
  c.port = j.value("port", c.port);
  c.model = j.value("model", c.model);
  if (j.contains("lora_modules")) j.at("lora_modules").get_to(c.lora_modules);
  c.api_key = j.value("api_key", c.api_key);
  delay("ttft_ms", c.ttft);
  delay("itl_ms", c.itl);
  c.default_max_tokens = j.value("default_max_tokens", c.default_max_tokens);
  c.tokens_per_chunk = j.value("tokens_per_chunk", c.tokens_per_chunk);
  c.reasoning_tokens = j.value("reasoning_tokens", c.reasoning_tokens);
  c.eos_probability = j.value("eos_probability", c.eos_probability);
  c.max_model_len = j.value("max_model_len", c.max_model_len);
  c.num_speculative_tokens = j.value("num_speculative_tokens", c.num_speculative_tokens);
  c.spec_acceptance_rate = j.value("spec_acceptance_rate", c.spec_acceptance_rate);
  c.error_rate = j.value("error_rate", c.error_rate);
  c.error_status = j.value("error_status", c.error_status);
  c.disconnect_rate = j.value("disconnect_rate", c.disconnect_rate);
  c.stall_rate = j.value("stall_rate", c.stall_rate);
  c.stall = std::chrono::milliseconds(j.value("stall_ms", c.stall.count()));
  c.stream_error_rate = j.value("stream_error_rate", c.stream_error_rate);
  c.malformed_rate = j.value("malformed_rate", c.malformed_rate);
  // nlohmann maps an unknown name to an enum's first value; a typo must be an error instead.
  auto named = [&j](const char* key, auto& field) {
    if (!j.contains(key)) return;
    using Enum = std::remove_reference_t<decltype(field)>;
    const Enum value = j.at(key).get<Enum>();
    if (nlohmann::json(value) != j.at(key))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("simulator {}: {} is not a known value", key, j.at(key).dump()));
    field = value;
  };
  named("stream_error_style", c.stream_error_style);
  c.empty_response_rate = j.value("empty_response_rate", c.empty_response_rate);
  named("length_field", c.length_field);
  named("tokenizer", c.tokenizer);
  c.chars_per_token = j.value("chars_per_token", c.chars_per_token);
  c.close_after_response =
      std::chrono::milliseconds(j.value("close_after_response_ms", c.close_after_response.count()));
  c.max_requests_per_connection =
      j.value("max_requests_per_connection", c.max_requests_per_connection);
  c.fault_after_tokens = j.value("fault_after_tokens", c.fault_after_tokens);
  c.ssl_certfile = j.value("ssl_certfile", c.ssl_certfile);
  c.ssl_keyfile = j.value("ssl_keyfile", c.ssl_keyfile);
  c.seed = j.value("seed", c.seed);
  c.threads = j.value("threads", c.threads);
}

void SimulatorConfig::validate() const {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::invalid_argument, what); };
  if (port < 0 || port > 65535) bad(fmt::format("port {} is out of range", port));
  if (model.empty()) bad("model must not be empty");
  for (const auto& name : lora_modules)
    if (name.empty() || name == model) bad("lora_modules: a name is empty or the model's");
  if (default_max_tokens < 1) bad("default_max_tokens must be at least 1");
  if (tokens_per_chunk < 1) bad("tokens_per_chunk must be at least 1");
  if (reasoning_tokens < 0) bad("reasoning_tokens must not be negative");
  if (num_speculative_tokens < 0 || num_speculative_tokens > 64)
    bad(fmt::format("num_speculative_tokens must be from 0 to 64 (got {})",
                    num_speculative_tokens));
  if (!(spec_acceptance_rate >= 0 && spec_acceptance_rate <= 1))
    bad("spec_acceptance_rate must be in [0, 1]");
  if (threads < 0 || threads > 256)
    bad(fmt::format("threads must be from 0 to 256 event-loop threads, 0 for one per core (got {})",
                    threads));
  if (chars_per_token < 0) bad("chars_per_token must not be negative");
  if (close_after_response.count() < -1)
    bad("close_after_response must be -1 (off) or a delay in ms");
  if (max_requests_per_connection < 0) bad("max_requests_per_connection must not be negative");
  if (ssl_certfile.empty() != ssl_keyfile.empty())
    bad("ssl_certfile and ssl_keyfile go together (https needs both)");
  if (stall.count() < 0) bad("stall must not be negative");
  if (fault_after_tokens < 0) bad("fault_after_tokens must not be negative");
  if (error_status < 400 || error_status > 599) bad("error_status must be an HTTP error status");
  double sum = 0;
  for (double r : {error_rate, disconnect_rate, stall_rate, stream_error_rate, malformed_rate,
                   empty_response_rate, eos_probability}) {
    if (!(r >= 0 && r <= 1)) bad("fault rates and eos_probability must be in [0, 1]");
  }
  sum = error_rate + disconnect_rate + stall_rate + stream_error_rate + malformed_rate +
        empty_response_rate;
  if (sum > 1.0 + 1e-9) bad("fault rates must add up to at most 1");
}

namespace {

// Counts a request as running from the start of its answer to its end, however it ends: done,
// dropped by a fault, or cut off by the client or by stop().
class RunningAnswer : public detail::TimedBody {
 public:
  explicit RunningAnswer(std::atomic<std::uint64_t>& running) : running_(running) { ++running_; }
  ~RunningAnswer() override { --running_; }
  RunningAnswer(const RunningAnswer&) = delete;
  RunningAnswer& operator=(const RunningAnswer&) = delete;

 private:
  std::atomic<std::uint64_t>& running_;
};

// A whole (non-streamed) answer, written when its last token is due.
class DelayedAnswer final : public RunningAnswer {
 public:
  DelayedAnswer(std::atomic<std::uint64_t>& running, MonoNanos at, std::string body,
                std::function<void()> on_sent)
      : RunningAnswer(running), at_(at), body_(std::move(body)), on_sent_(std::move(on_sent)) {}
  MonoNanos due() const override { return at_; }
  Next step(MonoNanos, std::string& out) override {
    out = std::move(body_);
    on_sent_();
    return Next::done;
  }

 private:
  MonoNanos at_;
  std::string body_;
  std::function<void()> on_sent_;
};

}  // namespace

struct Simulator::Impl {
  explicit Impl(SimulatorConfig c)
      : config(std::move(c)),
        spec_accepted_per_position(std::make_unique<std::atomic<std::uint64_t>[]>(
            static_cast<std::size_t>(config.num_speculative_tokens))) {}

  SimulatorConfig config;
  int bound_port = -1;
  std::atomic<std::uint64_t> next_request{0};
  std::atomic<std::uint64_t> requests{0}, ok{0}, faulted{0}, rejected{0}, running{0};
  std::atomic<std::uint64_t> prompt_tokens{0}, generation_tokens{0};
  std::atomic<std::uint64_t> profiles_started{0}, profiles_stopped{0};
  // Speculative decoding's counters (config.num_speculative_tokens > 0).
  std::atomic<std::uint64_t> spec_drafts{0}, spec_accepted{0};  // each draft is k tokens
  std::unique_ptr<std::atomic<std::uint64_t>[]> spec_accepted_per_position;

  // Counts the engine steps that emitting `tokens` more of a stream takes; `step_left` is what
  // the stream's current step has still to emit.
  void count_spec_decode(std::int64_t tokens, std::int64_t& step_left, detail::Rng& rng) {
    const std::int64_t k = config.num_speculative_tokens;
    if (k <= 0 || tokens <= 0) return;
    std::uint64_t drafts = 0, accepted = 0;
    while (tokens > 0) {
      if (step_left == 0) {
        std::int64_t a = 0;
        while (a < k && rng.uniform() < config.spec_acceptance_rate)
          spec_accepted_per_position[static_cast<std::size_t>(a++)].fetch_add(1);
        ++drafts;
        accepted += static_cast<std::uint64_t>(a);
        step_left = a + 1;
      }
      const std::int64_t emitted = std::min(tokens, step_left);
      tokens -= emitted;
      step_left -= emitted;
    }
    spec_drafts += drafts;
    spec_accepted += accepted;
  }
  mutable std::mutex by_model_mutex;
  std::map<std::string, std::uint64_t> requests_by_adapter;  // under by_model_mutex
  // How late each streamed chunk was stamped and written against its due time (ns): the
  // simulator's own accuracy, which bounds what a client can measure against it.
  mutable std::mutex lateness_mutex;
  Histogram send_lateness;  // under lateness_mutex

  void record_lateness(const MonoNanos* values, std::size_t n) {
    std::lock_guard lock(lateness_mutex);
    for (std::size_t i = 0; i < n; ++i) send_lateness.record(values[i]);
  }
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stopped = false;
  // Last, so that it is destroyed first: its open answers use the counters above.
  std::unique_ptr<detail::EventServer> server;

  Fault draw_fault(detail::Rng& rng) const {
    const double u = rng.uniform();
    double edge = config.error_rate;
    if (u < edge) return Fault::http_error;
    if (u < (edge += config.disconnect_rate)) return Fault::disconnect;
    if (u < (edge += config.stall_rate)) return Fault::stall;
    if (u < (edge += config.stream_error_rate)) return Fault::stream_error;
    if (u < (edge += config.malformed_rate)) return Fault::malformed;
    if (u < (edge += config.empty_response_rate)) return Fault::empty;
    return Fault::none;
  }

  // Whether the request may pass; otherwise `res` is the 401 to send.
  bool authorized(const detail::HttpRequest& req, detail::HttpResponse& res) {
    if (config.api_key.empty() || req.header("Authorization") == "Bearer " + config.api_key)
      return true;
    res = json_response(401, error_json("invalid API key", "AuthenticationError", 401));
    ++rejected;
    return false;
  }

  detail::HttpResponse handle(detail::HttpRequest& req);
  detail::HttpResponse generate(const detail::HttpRequest& req, bool chat);
  detail::HttpResponse list_models();
  detail::HttpResponse tokenize(const detail::HttpRequest& req);
  detail::HttpResponse metrics();
  class CompletionStream;
};

// A streamed completion: chunks on an absolute timetable (token k is due at arrival + TTFT +
// the ITLs before it, drawn as the stream goes, so that a long answer holds no table and sleeps
// do not drift), the injected fault at its token, then the finish chunk, usage and [DONE].
// Tokens already due when the stream is served go out together, as a busy server's would.
class Simulator::Impl::CompletionStream final : public RunningAnswer {
 public:
  struct Plan {
    bool chat = false;
    std::string id;
    std::int64_t created = 0;
    std::string finish;
    bool include_usage = false;
    std::int64_t prompt_len = 0;
    std::int64_t n_tokens = 0;
    Fault fault = Fault::none;
    MonoNanos arrived = 0;
  };

  CompletionStream(Impl& sim, detail::Rng rng, Plan plan)
      : RunningAnswer(sim.running), sim_(sim), rng_(rng), plan_(std::move(plan)) {
    const auto& c = sim_.config;
    reasoning_ = plan_.chat ? c.reasoning_tokens : 0;
    fault_at_ =
        plan_.fault == Fault::empty ? 0 : std::min(c.fault_after_tokens, plan_.n_tokens - 1);
    fault_pending_ = plan_.fault != Fault::none;
    token_due_ = plan_.arrived + static_cast<MonoNanos>(draw_ms(c.ttft, rng_) * 1e6);
    next_due_ = plan_.arrived;
  }

  ~CompletionStream() override { sim_.record_lateness(lateness_.data(), lateness_count_); }

  MonoNanos due() const override { return next_due_; }

  Next step(MonoNanos now, std::string& out) override {
    const auto& c = sim_.config;
    const std::string& model = c.model;
    if (plan_.chat && !role_sent_) {
      role_sent_ = true;  // vLLM opens a chat stream with an empty assistant delta
      out += fmt::format(
          "data: "
          "{{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},"
          "\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
          plan_.id, plan_.created, model);
    }
    for (;;) {
      if (next_ >= plan_.n_tokens) {
        append_tail(out);
        ++sim_.ok;
        return Next::done;
      }
      if (fault_pending_ && next_ == fault_at_) {
        fault_pending_ = false;
        switch (plan_.fault) {
          case Fault::disconnect:
            return Next::drop;  // the connection closes without the stream's end
          case Fault::stall:
            stall_until_ = mono_now() + detail::nanos_of(c.stall);
            break;
          case Fault::stream_error: {
            const std::string error =
                "{\"message\":\"injected stream error\",\"type\":\"InternalServerError\","
                "\"code\":500}";
            switch (c.stream_error_style) {
              case StreamErrorStyle::data:
                out += "data: {\"error\":" + error + "}\n\n";
                break;
              case StreamErrorStyle::event:
                out += "event: error\ndata: " + error + "\n\n";
                break;
              case StreamErrorStyle::error_field:
                out += "error: " + error + "\n\n";
                break;
            }
            out += "data: [DONE]\n\n";
            return Next::done;
          }
          case Fault::empty:  // the finish chunk and [DONE], no content and no usage
            out += fmt::format(
                "data: {{\"id\":\"{}\",\"object\":\"{}\",\"created\":{},\"model\":\"{}\","
                "\"choices\":[{{\"index\":0,{},\"finish_reason\":\"stop\"}}]}}\n\n",
                plan_.id, plan_.chat ? "chat.completion.chunk" : "text_completion", plan_.created,
                model, plan_.chat ? R"("delta":{})" : R"("text":"")");
            out += "data: [DONE]\n\n";
            return Next::done;
          case Fault::malformed:
            out += "data: {\"choices\":[{\"text\":\"broken\n\n";
            out += "data: [DONE]\n\n";
            return Next::done;
          default:
            break;
        }
      }
      const std::int64_t k = std::min(c.tokens_per_chunk, plan_.n_tokens - next_);
      next_due_ = std::max(due_of(next_ + k - 1), stall_until_);
      if (next_due_ > now || out.size() >= kCoalesceBytes) return Next::more;
      append_chunk(out, k);
    }
  }

 private:
  static constexpr std::size_t kCoalesceBytes = 16 * 1024;

  // The due time of token i; i never decreases from one call to the next.
  MonoNanos due_of(std::int64_t i) {
    for (; due_index_ < i; ++due_index_)
      token_due_ += static_cast<MonoNanos>(draw_ms(sim_.config.itl, rng_) * 1e6);
    return token_due_;
  }

  void append_chunk(std::string& out, std::int64_t k) {
    std::string text;
    for (std::int64_t i = 0; i < k; ++i)
      text += kTokens[static_cast<std::size_t>(next_ + i) % std::size(kTokens)];
    const bool is_reasoning = next_ < reasoning_;
    // The first token comes from the prefill, the rest from drafting steps.
    sim_.count_spec_decode(next_ == 0 ? k - 1 : k, spec_step_left_, rng_);
    next_ += k;
    sim_.generation_tokens += static_cast<std::uint64_t>(k);
    const std::string& model = sim_.config.model;
    // aifc_sent_ns is stamped here, just before the server writes the chunk.
    const MonoNanos sent = mono_now();
    if (lateness_count_ == lateness_.size()) {  // batched: one lock per 64 chunks
      sim_.record_lateness(lateness_.data(), lateness_count_);
      lateness_count_ = 0;
    }
    lateness_[lateness_count_++] = std::max<MonoNanos>(0, sent - next_due_);
    if (plan_.chat) {
      fmt::format_to(
          std::back_inserter(out),
          "data: "
          "{{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"delta\":{{\"{}\":\"{}\"}},\"logprobs\":null,\"finish_"
          "reason\":null}}],"
          "\"aifc_sent_ns\":{}}}\n\n",
          plan_.id, plan_.created, model, is_reasoning ? "reasoning_content" : "content", text,
          sent);
    } else {
      fmt::format_to(
          std::back_inserter(out),
          "data: {{\"id\":\"{}\",\"object\":\"text_completion\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"text\":\"{}\",\"logprobs\":null,\"finish_reason\":null,"
          "\"stop_reason\":null}}],\"usage\":null,\"aifc_sent_ns\":{}}}\n\n",
          plan_.id, plan_.created, model, text, sent);
    }
  }

  // The finish chunk, the usage chunk (if asked for), then [DONE].
  void append_tail(std::string& out) const {
    const std::string& model = sim_.config.model;
    if (plan_.chat) {
      fmt::format_to(
          std::back_inserter(out),
          "data: "
          "{{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{}\"}}]}"
          "}\n\n",
          plan_.id, plan_.created, model, plan_.finish);
    } else {
      fmt::format_to(
          std::back_inserter(out),
          "data: {{\"id\":\"{}\",\"object\":\"text_completion\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"{}\","
          "\"stop_reason\":null}}],\"usage\":null}}\n\n",
          plan_.id, plan_.created, model, plan_.finish);
    }
    if (plan_.include_usage)
      fmt::format_to(
          std::back_inserter(out),
          "data: {{\"id\":\"{}\",\"object\":\"{}\",\"created\":{},\"model\":\"{}\",\"choices\":[],"
          "\"usage\":{{\"prompt_tokens\":{},\"total_tokens\":{},\"completion_tokens\":{}}}}}\n\n",
          plan_.id, plan_.chat ? "chat.completion.chunk" : "text_completion", plan_.created, model,
          plan_.prompt_len, plan_.prompt_len + plan_.n_tokens, plan_.n_tokens);
    out += "data: [DONE]\n\n";
  }

  Impl& sim_;
  detail::Rng rng_;
  Plan plan_;
  std::int64_t reasoning_ = 0;
  std::int64_t fault_at_ = 0;
  bool fault_pending_ = false;
  bool role_sent_ = false;
  std::int64_t next_ = 0;            // the next token to send
  std::int64_t spec_step_left_ = 0;  // tokens the current speculative step has still to emit
  std::int64_t due_index_ = 0;
  MonoNanos token_due_ = 0;  // the due time of token due_index_
  MonoNanos stall_until_ = 0;
  MonoNanos next_due_ = 0;
  std::array<MonoNanos, 64> lateness_{};
  std::size_t lateness_count_ = 0;
};

detail::HttpResponse Simulator::Impl::handle(detail::HttpRequest& req) {
  const std::string_view path = req.path();
  const bool post = req.method == "POST";
  const bool get = req.method == "GET";
  detail::HttpResponse res;
  auto wrong_method = [] { return json_response(405, R"({"detail":"Method Not Allowed"})"); };
  if (path == "/v1/completions" || path == "/v1/chat/completions")
    return post ? generate(req, path == "/v1/chat/completions") : wrong_method();
  if (path == "/v1/models") {
    if (!get) return wrong_method();
    return authorized(req, res) ? list_models() : std::move(res);
  }
  if (path == "/health") return get ? detail::HttpResponse{} : wrong_method();
  // vLLM's profiler switches (a vLLM started with a profiler config has them); counted only.
  if (path == "/start_profile" || path == "/stop_profile") {
    if (!post) return wrong_method();
    if (!authorized(req, res)) return res;
    ++(path == "/start_profile" ? profiles_started : profiles_stopped);
    return res;
  }
  if (path == "/tokenize") {
    if (!post) return wrong_method();
    return authorized(req, res) ? tokenize(req) : std::move(res);
  }
  if (path == "/metrics") return get ? metrics() : wrong_method();
  return json_response(404, kNotFound);
}

detail::HttpResponse Simulator::Impl::generate(const detail::HttpRequest& req, bool chat) {
  const MonoNanos arrived = mono_now();
  ++requests;
  detail::HttpResponse res;
  if (!authorized(req, res)) return res;
  // Fields of the wrong type are the client's error, named as vLLM's server names them.
  auto reject = [&](const std::string& message, int status = 400,
                    const char* type = "BadRequestError") {
    ++rejected;
    return json_response(status, error_json(message, type, status));
  };
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::exception& e) {
    return reject(std::string("request body is not JSON: ") + e.what());
  }
  if (!body.is_object()) return reject("the request body must be a JSON object");
  auto has = [&](const char* key) { return body.contains(key) && !body[key].is_null(); };
  for (const char* key : {"model", "prompt"})
    if (has(key) && !body[key].is_string() && !(chat && std::string_view(key) == "prompt"))
      return reject(fmt::format("{}: must be a string", key));
  for (const char* key : {"stream", "ignore_eos"})
    if (has(key) && !body[key].is_boolean())
      return reject(fmt::format("{}: must be a boolean", key));
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (has(key) && !body[key].is_number_integer())
      return reject(fmt::format("{}: must be an integer", key));
  if (has("stream_options") && !body["stream_options"].is_object())
    return reject("stream_options: must be an object");
  if (has("n") && !(body["n"].is_number_integer() && body["n"].get<std::int64_t>() == 1))
    return reject("n: the simulator answers with one choice only (n = 1)");
  const std::string model = body.value("model", std::string());
  const bool adapter = std::find(config.lora_modules.begin(), config.lora_modules.end(), model) !=
                       config.lora_modules.end();
  if (adapter) {
    std::lock_guard lock(by_model_mutex);
    ++requests_by_adapter[model];
  }
  if (!model.empty() && model != config.model && !adapter)
    return reject(fmt::format("The model `{}` does not exist.", model), 404, "NotFoundError");
  std::int64_t prompt_len = 0;
  if (chat) {
    if (body.contains("messages") && body["messages"].is_array())
      for (const auto& m : body["messages"])
        if (m.contains("content") && m["content"].is_string())
          prompt_len += count_tokens(m["content"].get<std::string>(), config.chars_per_token);
  } else if (body.contains("prompt") && body["prompt"].is_string()) {
    prompt_len = count_tokens(body["prompt"].get<std::string>(), config.chars_per_token);
  } else {
    return reject("'prompt' must be a string");
  }
  std::int64_t max_tokens = config.default_max_tokens;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    const bool is_max_tokens = std::string_view(key) == "max_tokens";
    const bool read = config.length_field == LengthField::both ||
                      (config.length_field == LengthField::max_tokens) == is_max_tokens;
    if (read && body.contains(key) && body[key].is_number_integer())
      max_tokens = body[key].is_number_unsigned() &&
                           body[key].get<std::uint64_t>() >
                               static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                       ? std::numeric_limits<std::int64_t>::max()
                       : body[key].get<std::int64_t>();
  }
  // Compared without adding: max_tokens near INT64_MAX would overflow the sum.
  if (max_tokens < 1 || max_tokens > config.max_model_len - prompt_len)
    return reject(fmt::format("max_tokens {} with a prompt of {} tokens does not fit", max_tokens,
                              prompt_len));
  const std::uint64_t seq = next_request.fetch_add(1);
  detail::Rng rng(config.seed * 0x9E3779B97F4A7C15ull + seq);
  const Fault fault = draw_fault(rng);
  if (fault == Fault::http_error) {
    ++faulted;
    return json_response(
        config.error_status,
        error_json("injected fault",
                   config.error_status == 429 ? "TooManyRequests" : "InternalServerError",
                   config.error_status));
  }
  const bool ignore_eos = body.value("ignore_eos", false);
  std::int64_t n_tokens = max_tokens;
  if (!ignore_eos && config.eos_probability > 0) {
    for (std::int64_t i = 1; i < max_tokens; ++i)
      if (rng.uniform() < config.eos_probability) {
        n_tokens = i;
        break;
      }
  }
  const bool stream = body.value("stream", false);
  CompletionStream::Plan plan;
  plan.chat = chat;
  plan.include_usage = body.contains("stream_options") && body["stream_options"].is_object() &&
                       body["stream_options"].value("include_usage", false);
  plan.finish = n_tokens < max_tokens ? "stop" : "length";
  plan.id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", seq);
  plan.created = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  plan.prompt_len = prompt_len;
  plan.n_tokens = n_tokens;
  plan.fault = fault;
  plan.arrived = arrived;
  prompt_tokens += static_cast<std::uint64_t>(prompt_len);

  if (stream) {
    if (fault != Fault::none) ++faulted;
    res.content_type = "text/event-stream";
    res.headers.emplace_back("Cache-Control", "no-cache");
    res.stream = true;
    res.timed = std::make_unique<CompletionStream>(*this, rng, std::move(plan));
    return res;
  }
  // Whole: written when the last token is due (the same draws as a stream's timetable).
  MonoNanos last = arrived + static_cast<MonoNanos>(draw_ms(config.ttft, rng) * 1e6);
  for (std::int64_t i = 1; i < n_tokens; ++i)
    last += static_cast<MonoNanos>(draw_ms(config.itl, rng) * 1e6);
  if (fault != Fault::empty) {
    std::int64_t step_left = 0;
    count_spec_decode(n_tokens - 1, step_left, rng);
  }
  std::string text;
  for (std::int64_t i = 0; i < n_tokens; ++i)
    text += kTokens[static_cast<std::size_t>(i) % std::size(kTokens)];
  if (fault == Fault::empty) {
    text.clear();
    ++faulted;
  }
  nlohmann::json choice{{"index", 0}, {"finish_reason", plan.finish}};
  if (chat)
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  nlohmann::json answer{{"id", plan.id},
                        {"object", chat ? "chat.completion" : "text_completion"},
                        {"created", plan.created},
                        {"model", config.model},
                        {"choices", nlohmann::json::array({choice})}};
  if (fault != Fault::empty)
    answer["usage"] = {{"prompt_tokens", prompt_len},
                       {"completion_tokens", n_tokens},
                       {"total_tokens", prompt_len + n_tokens}};
  res.content_type = "application/json";
  res.timed = std::make_unique<DelayedAnswer>(running, last, answer.dump(), [this, n_tokens] {
    generation_tokens += static_cast<std::uint64_t>(n_tokens);
    ++ok;
  });
  return res;
}

detail::HttpResponse Simulator::Impl::list_models() {
  const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  nlohmann::json j{{"object", "list"},
                   {"data", nlohmann::json::array({{{"id", config.model},
                                                    {"object", "model"},
                                                    {"created", created},
                                                    {"owned_by", "aifc"},
                                                    {"root", config.model},
                                                    {"max_model_len", config.max_model_len}}})}};
  // As vLLM lists its LoRA adapters: after the model, with the model as their parent.
  for (const auto& name : config.lora_modules)
    j["data"].push_back({{"id", name},
                         {"object", "model"},
                         {"created", created},
                         {"owned_by", "aifc"},
                         {"root", name},
                         {"parent", config.model},
                         {"max_model_len", config.max_model_len}});
  return json_response(200, j.dump());
}

detail::HttpResponse Simulator::Impl::tokenize(const detail::HttpRequest& req) {
  if (config.tokenizer == SimTokenizer::none) return json_response(404, kNotFound);
  const auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object())
    return json_response(400,
                         error_json("request body is not a JSON object", "BadRequestError", 400));
  // vLLM reads "prompt" (or chat "messages"); llama.cpp reads "content" and answers any other
  // shape with 200 and an empty token list.
  const bool llama = config.tokenizer == SimTokenizer::llama_cpp;
  std::int64_t n = 0;
  const char* text_key = llama ? "content" : "prompt";
  if (body.contains(text_key) && body[text_key].is_string()) {
    n = count_tokens(body[text_key].get<std::string>(), config.chars_per_token);
  } else if (!llama && body.contains("messages") && body["messages"].is_array()) {
    for (const auto& m : body["messages"])
      if (m.is_object() && m.contains("content") && m["content"].is_string())
        n += count_tokens(m["content"].get<std::string>(), config.chars_per_token);
  } else if (!llama) {
    return json_response(400, error_json("'prompt' must be a string", "BadRequestError", 400));
  }
  nlohmann::json tokens = nlohmann::json::array();
  for (std::int64_t i = 0; i < n; ++i) tokens.push_back(i);
  nlohmann::json answer{{"tokens", std::move(tokens)}};
  if (!llama) {
    answer["count"] = n;
    answer["max_model_len"] = config.max_model_len;
  }
  return json_response(200, answer.dump());
}

detail::HttpResponse Simulator::Impl::metrics() {
  detail::HttpResponse res;
  res.content_type = "text/plain; version=0.0.4";
  res.body = fmt::format(
      "# TYPE vllm:num_requests_running gauge\n"
      "vllm:num_requests_running{{model_name=\"{0}\"}} {1}\n"
      "# TYPE vllm:request_success_total counter\n"
      "vllm:request_success_total{{model_name=\"{0}\"}} {2}\n"
      "# TYPE vllm:prompt_tokens_total counter\n"
      "vllm:prompt_tokens_total{{model_name=\"{0}\"}} {3}\n"
      "# TYPE vllm:generation_tokens_total counter\n"
      "vllm:generation_tokens_total{{model_name=\"{0}\"}} {4}\n"
      "# TYPE aifc_sim_requests_total counter\n"
      "aifc_sim_requests_total{{outcome=\"received\"}} {5}\n"
      "aifc_sim_requests_total{{outcome=\"faulted\"}} {6}\n"
      "aifc_sim_requests_total{{outcome=\"rejected\"}} {7}\n",
      config.model, running.load(), ok.load(), prompt_tokens.load(), generation_tokens.load(),
      requests.load(), faulted.load(), rejected.load());
  if (const std::int64_t k = config.num_speculative_tokens; k > 0) {
    // As vLLM writes them: counters per engine and model, values as floats.
    const auto counter = [&](const char* name, std::uint64_t value) {
      fmt::format_to(std::back_inserter(res.body),
                     "# TYPE vllm:spec_decode_{0}_total counter\n"
                     "vllm:spec_decode_{0}_total{{engine=\"0\",model_name=\"{1}\"}} {2}.0\n",
                     name, config.model, value);
    };
    const std::uint64_t drafts = spec_drafts.load();
    counter("num_drafts", drafts);
    counter("num_draft_tokens", drafts * static_cast<std::uint64_t>(k));
    counter("num_accepted_tokens", spec_accepted.load());
    res.body += "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter\n";
    for (std::int64_t i = 0; i < k; ++i)
      fmt::format_to(std::back_inserter(res.body),
                     "vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine=\"0\",model_"
                     "name=\"{}\",position=\"{}\"}} {}.0\n",
                     config.model, i,
                     spec_accepted_per_position[static_cast<std::size_t>(i)].load());
  }
  std::lock_guard lock(lateness_mutex);
  const auto& h = send_lateness;
  fmt::format_to(std::back_inserter(res.body),
                 "# HELP aifc_sim_send_lateness_seconds how late streamed chunks were sent\n"
                 "# TYPE aifc_sim_send_lateness_seconds summary\n"
                 "aifc_sim_send_lateness_seconds{{quantile=\"0.5\"}} {}\n"
                 "aifc_sim_send_lateness_seconds{{quantile=\"0.99\"}} {}\n"
                 "aifc_sim_send_lateness_seconds{{quantile=\"1\"}} {}\n"
                 "aifc_sim_send_lateness_seconds_sum {}\n"
                 "aifc_sim_send_lateness_seconds_count {}\n",
                 h.percentile(50) * 1e-9, h.percentile(99) * 1e-9, h.percentile(100) * 1e-9,
                 h.mean() * static_cast<double>(h.count()) * 1e-9, h.count());
  return res;
}

Simulator::Simulator(SimulatorConfig config) {
  config.validate();
  impl_ = std::make_unique<Impl>(std::move(config));
}

Simulator::~Simulator() { stop(); }

int Simulator::start() {
  auto& s = *impl_;
  if (s.server) throw Error(ErrorCode::invalid_state, "the simulator is already running");
  detail::EventServerOptions options;
  options.host = s.config.host;
  options.port = s.config.port;
  options.threads = static_cast<int>(s.config.threads);
  options.max_requests_per_connection = s.config.max_requests_per_connection;
  options.close_after_response = s.config.close_after_response;
  options.tls_cert_file = s.config.ssl_certfile;
  options.tls_key_file = s.config.ssl_keyfile;
  s.server = std::make_unique<detail::EventServer>(
      options, [&s](detail::HttpRequest& req) { return s.handle(req); });
  try {
    s.bound_port = s.server->start();
  } catch (const Error& e) {
    s.server.reset();
    throw Error(ErrorCode::io_error, fmt::format("the simulator: {}", e.what()));
  }
  return s.bound_port;
}

void Simulator::stop() noexcept {
  if (!impl_) return;
  auto& s = *impl_;
  if (s.server) s.server->stop();
  {
    std::lock_guard lock(s.stop_mutex);
    s.stopped = true;
  }
  s.stop_cv.notify_all();
}

void Simulator::wait() {
  std::unique_lock lock(impl_->stop_mutex);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
}

int Simulator::port() const noexcept { return impl_->bound_port; }

std::string Simulator::base_url() const {
  return fmt::format("{}://{}:{}", impl_->config.ssl_certfile.empty() ? "http" : "https",
                     impl_->config.host, impl_->bound_port);
}

nlohmann::json Simulator::stats() const {
  const auto& s = *impl_;
  return {{"requests", s.requests.load()},
          {"ok", s.ok.load()},
          {"faulted", s.faulted.load()},
          {"rejected", s.rejected.load()},
          {"running", s.running.load()},
          {"prompt_tokens", s.prompt_tokens.load()},
          {"generation_tokens", s.generation_tokens.load()},
          {"profiles_started", s.profiles_started.load()},
          {"profiles_stopped", s.profiles_stopped.load()},
          {"requests_by_adapter",
           [&s] {
             std::lock_guard lock(s.by_model_mutex);
             return nlohmann::json(s.requests_by_adapter);
           }()},
          {"send_lateness_us", [&s] {
             std::lock_guard lock(s.lateness_mutex);
             const auto& h = s.send_lateness;
             return nlohmann::json{{"count", h.count()},
                                   {"p50", h.percentile(50) / 1e3},
                                   {"p99", h.percentile(99) / 1e3},
                                   {"max", h.percentile(100) / 1e3}};
           }()}};
}

}  // namespace aifc
