#include "aifc/simulator.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "aifc/error.hpp"
#include "aifc/record.hpp"
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

// The socket of the connection a request came in on, found by its two ends (cpp-httplib does
// not hand it out). Only the close-after-response habit needs it.
int connection_socket(const httplib::Request& req) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    sockaddr_storage peer{}, local{};
    socklen_t peer_len = sizeof peer, local_len = sizeof local;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    auto port = [](const sockaddr_storage& a) {
      if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
      if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
      return std::uint16_t{0};
    };
    if (port(peer) == req.remote_port && port(local) == req.local_port) return fd;
  }
  return -1;
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
  if (threads < 1) bad("threads must be at least 1");
  if (chars_per_token < 0) bad("chars_per_token must not be negative");
  if (close_after_response.count() < -1)
    bad("close_after_response must be -1 (off) or a delay in ms");
  if (max_requests_per_connection < 0) bad("max_requests_per_connection must not be negative");
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

struct Simulator::Impl {
  explicit Impl(SimulatorConfig c) : config(std::move(c)) {}

  SimulatorConfig config;
  httplib::Server server;
  std::thread thread;
  int bound_port = -1;
  int listen_socket = -1;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> next_request{0};
  std::atomic<std::uint64_t> requests{0}, ok{0}, faulted{0}, rejected{0}, running{0};
  std::atomic<std::uint64_t> prompt_tokens{0}, generation_tokens{0};
  std::atomic<std::uint64_t> profiles_started{0}, profiles_stopped{0};
  mutable std::mutex by_model_mutex;
  std::map<std::string, std::uint64_t> requests_by_adapter;  // under by_model_mutex
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stopped = false;

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

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (config.api_key.empty() ||
        req.get_header_value("Authorization") == "Bearer " + config.api_key)
      return true;
    res.status = 401;
    res.set_content(error_json("invalid API key", "AuthenticationError", 401), "application/json");
    ++rejected;
    return false;
  }

  // Sleeps until `t` unless the simulator stops first; returns false when stopping.
  bool sleep_until(MonoNanos t) {
    while (!stopping.load(std::memory_order_relaxed)) {
      const MonoNanos now = mono_now();
      if (now >= t) return true;
      const MonoNanos step = std::min<MonoNanos>(t - now, 50'000'000);
      std::this_thread::sleep_for(std::chrono::nanoseconds(step));
    }
    return false;
  }

  void generate(const httplib::Request& req, httplib::Response& res, bool chat);
  /// With close_after_response: lets the response go out whole, then closes its connection
  /// although the headers promised keep-alive.
  void close_after(const httplib::Request& req, httplib::Response& res);
  void setup_routes();
};

void Simulator::Impl::generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  const MonoNanos arrived = mono_now();
  ++requests;
  if (!authorized(req, res)) return;
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::exception& e) {
    res.status = 400;
    res.set_content(
        error_json(std::string("request body is not JSON: ") + e.what(), "BadRequestError", 400),
        "application/json");
    ++rejected;
    return;
  }
  // Fields of the wrong type are the client's error, named as vLLM's server names them.
  auto reject = [&](const std::string& message) {
    res.status = 400;
    res.set_content(error_json(message, "BadRequestError", 400), "application/json");
    ++rejected;
  };
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
  if (!model.empty() && model != config.model && !adapter) {
    res.status = 404;
    res.set_content(
        error_json(fmt::format("The model `{}` does not exist.", model), "NotFoundError", 404),
        "application/json");
    ++rejected;
    return;
  }
  std::int64_t prompt_len = 0;
  if (chat) {
    if (body.contains("messages") && body["messages"].is_array())
      for (const auto& m : body["messages"])
        if (m.contains("content") && m["content"].is_string())
          prompt_len += count_tokens(m["content"].get<std::string>(), config.chars_per_token);
  } else if (body.contains("prompt") && body["prompt"].is_string()) {
    prompt_len = count_tokens(body["prompt"].get<std::string>(), config.chars_per_token);
  } else {
    res.status = 400;
    res.set_content(error_json("'prompt' must be a string", "BadRequestError", 400),
                    "application/json");
    ++rejected;
    return;
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
  if (max_tokens < 1 || max_tokens > config.max_model_len - prompt_len) {
    res.status = 400;
    res.set_content(error_json(fmt::format("max_tokens {} with a prompt of {} tokens does not fit",
                                           max_tokens, prompt_len),
                               "BadRequestError", 400),
                    "application/json");
    ++rejected;
    return;
  }
  const std::uint64_t seq = next_request.fetch_add(1);
  detail::Rng rng(config.seed * 0x9E3779B97F4A7C15ull + seq);
  const Fault fault = draw_fault(rng);
  if (fault == Fault::http_error) {
    ++faulted;
    res.status = config.error_status;
    res.set_content(
        error_json("injected fault",
                   config.error_status == 429 ? "TooManyRequests" : "InternalServerError",
                   config.error_status),
        "application/json");
    return;
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
  const bool include_usage = body.contains("stream_options") &&
                             body["stream_options"].is_object() &&
                             body["stream_options"].value("include_usage", false);
  const std::string finish = n_tokens < max_tokens ? "stop" : "length";
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", seq);
  const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  // Token k is due at first + sum of ITLs: an absolute timetable, so sleeps do not drift.
  std::vector<MonoNanos> due(static_cast<std::size_t>(n_tokens));
  MonoNanos t = arrived + static_cast<MonoNanos>(draw_ms(config.ttft, rng) * 1e6);
  for (auto& d : due) {
    d = t;
    t += static_cast<MonoNanos>(draw_ms(config.itl, rng) * 1e6);
  }
  prompt_tokens += static_cast<std::uint64_t>(prompt_len);
  ++running;

  if (!stream) {
    if (!sleep_until(due.back())) {
      --running;
      res.status = 503;
      return;
    }
    std::string text;
    for (std::int64_t i = 0; i < n_tokens; ++i)
      text += kTokens[static_cast<std::size_t>(i) % std::size(kTokens)];
    if (fault == Fault::empty) {
      text.clear();
      ++faulted;
    }
    nlohmann::json choice{{"index", 0}, {"finish_reason", finish}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    else
      choice["text"] = text;
    nlohmann::json answer{{"id", id},
                          {"object", chat ? "chat.completion" : "text_completion"},
                          {"created", created},
                          {"model", config.model},
                          {"choices", nlohmann::json::array({choice})}};
    if (fault != Fault::empty)
      answer["usage"] = {{"prompt_tokens", prompt_len},
                         {"completion_tokens", n_tokens},
                         {"total_tokens", prompt_len + n_tokens}};
    res.set_content(answer.dump(), "application/json");
    generation_tokens += static_cast<std::uint64_t>(n_tokens);
    ++ok;
    --running;
    return;
  }

  struct StreamState {
    std::int64_t next = 0;  // next token to send
    bool role_sent = false;
    bool finished = false;
  };
  auto st = std::make_shared<StreamState>();
  const std::int64_t per_chunk = config.tokens_per_chunk;
  const std::int64_t reasoning = chat ? config.reasoning_tokens : 0;
  const std::int64_t fault_at =
      fault == Fault::empty ? 0 : std::min(config.fault_after_tokens, n_tokens - 1);
  const std::string model_name = config.model;
  if (fault != Fault::none) ++faulted;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [this, st, due = std::move(due), n_tokens,
                                                         per_chunk, reasoning, fault, fault_at,
                                                         chat, id, created, model_name, finish,
                                                         include_usage, prompt_len](
                                                            std::size_t, httplib::DataSink& sink) {
    auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    if (chat && !st->role_sent) {
      st->role_sent = true;  // vLLM opens a chat stream with an empty assistant delta
      return write(fmt::format(
          "data: "
          "{{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},"
          "\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
          id, created, model_name));
    }
    if (st->next < n_tokens) {
      if (fault != Fault::none && st->next == fault_at) {
        switch (fault) {
          case Fault::disconnect:
            --running;
            return false;  // httplib drops the connection without the final chunk
          case Fault::stall:
            if (!sleep_until(
                    mono_now() +
                    std::chrono::duration_cast<std::chrono::nanoseconds>(config.stall).count())) {
              --running;
              return false;
            }
            break;
          case Fault::stream_error: {
            const std::string error =
                "{\"message\":\"injected stream error\",\"type\":\"InternalServerError\","
                "\"code\":500}";
            switch (config.stream_error_style) {
              case StreamErrorStyle::data:
                write("data: {\"error\":" + error + "}\n\n");
                break;
              case StreamErrorStyle::event:
                write("event: error\ndata: " + error + "\n\n");
                break;
              case StreamErrorStyle::error_field:
                write("error: " + error + "\n\n");
                break;
            }
            write("data: [DONE]\n\n");
            sink.done();
            --running;
            return true;
          }
          case Fault::empty:  // the finish chunk and [DONE], no content and no usage
            write(fmt::format(
                "data: {{\"id\":\"{}\",\"object\":\"{}\",\"created\":{},\"model\":\"{}\","
                "\"choices\":[{{\"index\":0,{},\"finish_reason\":\"stop\"}}]}}\n\n",
                id, chat ? "chat.completion.chunk" : "text_completion", created, model_name,
                chat ? R"("delta":{})" : R"("text":"")"));
            write("data: [DONE]\n\n");
            sink.done();
            --running;
            return true;
          case Fault::malformed:
            write("data: {\"choices\":[{\"text\":\"broken\n\n");
            write("data: [DONE]\n\n");
            sink.done();
            --running;
            return true;
          default:
            break;
        }
      }
      const std::int64_t k = std::min(per_chunk, n_tokens - st->next);
      if (!sleep_until(due[static_cast<std::size_t>(st->next + k - 1)])) {
        --running;
        return false;
      }
      std::string text;
      for (std::int64_t i = 0; i < k; ++i)
        text += kTokens[static_cast<std::size_t>(st->next + i) % std::size(kTokens)];
      const bool is_reasoning = st->next < reasoning;
      st->next += k;
      generation_tokens += static_cast<std::uint64_t>(k);
      std::string chunk;
      if (chat) {
        chunk = fmt::format(
            "data: "
            "{{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{}\","
            "\"choices\":[{{\"index\":0,\"delta\":{{\"{}\":\"{}\"}},\"logprobs\":null,\"finish_"
            "reason\":null}}],"
            "\"aifc_sent_ns\":{}}}\n\n",
            id, created, model_name, is_reasoning ? "reasoning_content" : "content", text,
            mono_now());
      } else {
        chunk = fmt::format(
            "data: {{\"id\":\"{}\",\"object\":\"text_completion\",\"created\":{},\"model\":\"{}\","
            "\"choices\":[{{\"index\":0,\"text\":\"{}\",\"logprobs\":null,\"finish_reason\":null,"
            "\"stop_reason\":null}}],\"usage\":null,\"aifc_sent_ns\":{}}}\n\n",
            id, created, model_name, text, mono_now());
      }
      if (!write(chunk)) {  // the client went away
        --running;
        return false;
      }
      return true;
    }
    // The finish chunk, the usage chunk (if asked for), then [DONE].
    std::string tail;
    if (chat) {
      tail = fmt::format(
          "data: "
          "{{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{}\"}}]}"
          "}\n\n",
          id, created, model_name, finish);
    } else {
      tail = fmt::format(
          "data: {{\"id\":\"{}\",\"object\":\"text_completion\",\"created\":{},\"model\":\"{}\","
          "\"choices\":[{{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"{}\","
          "\"stop_reason\":null}}],\"usage\":null}}\n\n",
          id, created, model_name, finish);
    }
    if (include_usage)
      tail += fmt::format(
          "data: {{\"id\":\"{}\",\"object\":\"{}\",\"created\":{},\"model\":\"{}\",\"choices\":[],"
          "\"usage\":{{\"prompt_tokens\":{},\"total_tokens\":{},\"completion_tokens\":{}}}}}\n\n",
          id, chat ? "chat.completion.chunk" : "text_completion", created, model_name, prompt_len,
          prompt_len + n_tokens, n_tokens);
    tail += "data: [DONE]\n\n";
    write(tail);
    sink.done();
    ++ok;
    --running;
    return true;
  });
}

void Simulator::Impl::close_after(const httplib::Request& req, httplib::Response& res) {
  if (config.close_after_response.count() < 0) return;
  const int fd = connection_socket(req);
  const auto delay =
      std::chrono::duration_cast<std::chrono::nanoseconds>(config.close_after_response).count();
  auto close_later = [this, fd, delay] {
    if (sleep_until(mono_now() + delay) && fd >= 0) ::shutdown(fd, SHUT_RDWR);
  };
  if (res.content_provider_) {  // a stream: close once its end has been written
    auto inner = std::move(res.content_provider_);
    res.content_provider_ = [inner, close_later](std::size_t offset, std::size_t length,
                                                 httplib::DataSink& sink) {
      const auto original_done = sink.done;
      sink.done = [original_done, close_later] {
        original_done();
        close_later();
      };
      const bool more = inner(offset, length, sink);
      sink.done = original_done;
      return more;
    };
    return;
  }
  if (res.body.empty()) return;
  auto body = std::make_shared<std::string>(std::move(res.body));
  res.body.clear();
  const std::string type = res.get_header_value("Content-Type");
  res.headers.erase("Content-Type");
  res.set_content_provider(
      body->size(), type.c_str(),
      [body, close_later](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        if (!sink.write(body->data() + offset, length)) return false;
        if (offset + length == body->size()) close_later();
        return true;
      });
}

void Simulator::Impl::setup_routes() {
  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, false);
    close_after(req, res);
  });
  server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, true);
    close_after(req, res);
  });
  server.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
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
    res.set_content(j.dump(), "application/json");
    close_after(req, res);
  });
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  // vLLM's profiler switches (a vLLM started with a profiler config has them); counted only.
  for (const auto& [path, counter] : {std::pair{"/start_profile", &profiles_started},
                                      std::pair{"/stop_profile", &profiles_stopped}}) {
    auto* count = counter;
    server.Post(path, [this, count](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      ++*count;
      res.status = 200;
      close_after(req, res);
    });
  }
  server.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    if (config.tokenizer == SimTokenizer::none) {
      res.status = 404;
      res.set_content(R"({"detail":"Not Found"})", "application/json");
      return;
    }
    const auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (!body.is_object()) {
      res.status = 400;
      res.set_content(error_json("request body is not a JSON object", "BadRequestError", 400),
                      "application/json");
      return;
    }
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
      res.status = 400;
      res.set_content(error_json("'prompt' must be a string", "BadRequestError", 400),
                      "application/json");
      return;
    }
    nlohmann::json tokens = nlohmann::json::array();
    for (std::int64_t i = 0; i < n; ++i) tokens.push_back(i);
    nlohmann::json answer{{"tokens", std::move(tokens)}};
    if (!llama) {
      answer["count"] = n;
      answer["max_model_len"] = config.max_model_len;
    }
    res.set_content(answer.dump(), "application/json");
    close_after(req, res);
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        fmt::format("# TYPE vllm:num_requests_running gauge\n"
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
                    config.model, running.load(), ok.load(), prompt_tokens.load(),
                    generation_tokens.load(), requests.load(), faulted.load(), rejected.load()),
        "text/plain; version=0.0.4");
  });
}

Simulator::Simulator(SimulatorConfig config) {
  config.validate();
  impl_ = std::make_unique<Impl>(std::move(config));
}

Simulator::~Simulator() { stop(); }

int Simulator::start() {
  auto& s = *impl_;
  if (s.bound_port >= 0) throw Error(ErrorCode::invalid_state, "the simulator is already running");
  const auto threads = static_cast<std::size_t>(s.config.threads);
  s.server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.server.set_tcp_nodelay(true);
  // A bug here answers as vLLM's server would, a JSON 500, and never leaks the exception's
  // text into a header (cpp-httplib's default).
  s.server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(error_json("internal error in the simulator", "InternalServerError", 500),
                        "application/json");
      });
  // cpp-httplib closes a connection after 5 requests by default; vLLM keeps it open.
  s.server.set_keep_alive_max_count(
      s.config.max_requests_per_connection > 0
          ? static_cast<std::size_t>(s.config.max_requests_per_connection)
          : std::size_t{1} << 30);
  // httplib's default adds SO_REUSEPORT, which lets a second simulator share a taken port
  // silently. The callback also tells us the listening socket, for the backlog below.
  s.server.set_socket_options([&s](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    s.listen_socket = sock;
  });
  s.setup_routes();
  if (s.config.port == 0) {
    s.bound_port = s.server.bind_to_any_port(s.config.host);
  } else {
    s.bound_port = s.server.bind_to_port(s.config.host, s.config.port) ? s.config.port : -1;
  }
  if (s.bound_port < 0)
    throw Error(ErrorCode::io_error, fmt::format("the simulator cannot listen on {}:{} (in use?)",
                                                 s.config.host, s.config.port));
  // Debian's httplib listens with a backlog of 5: a burst of connects overflows it and the
  // kernel resets them. Listening again on the same socket raises the backlog.
  if (s.listen_socket >= 0) ::listen(s.listen_socket, SOMAXCONN);
  s.thread = std::thread([&s] { s.server.listen_after_bind(); });
  for (int i = 0; i < 50000 && !s.server.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  return s.bound_port;
}

void Simulator::stop() noexcept {
  if (!impl_) return;
  auto& s = *impl_;
  s.stopping.store(true);
  if (s.thread.joinable()) {
    s.server.stop();
    s.thread.join();
  }
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
  return fmt::format("http://{}:{}", impl_->config.host, impl_->bound_port);
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
          {"requests_by_adapter", [&s] {
             std::lock_guard lock(s.by_model_mutex);
             return nlohmann::json(s.requests_by_adapter);
           }()}};
}

}  // namespace aifc
