#include "aifc/options.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "aifc/error.hpp"
#include "util/json_values.hpp"

namespace aifc {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

std::string shown(const json& v) { return detail::shown_json(v); }

// Values by kind. Numbers may arrive as text (a command line, an .env file, a form), which is
// why each reader also takes a string.

double number_value(const json& v, bool infinity_allowed = false) {
  double d = 0;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "inf" || s == "infinity") {
      d = std::numeric_limits<double>::infinity();
    } else {
      std::size_t used = 0;
      try {
        d = std::stod(s, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (s.empty() || used != s.size()) bad(fmt::format("'{}' is not a number", s));
    }
  } else {
    bad(fmt::format("must be a number (got {})", shown(v)));
  }
  if (std::isnan(d) || (std::isinf(d) && !infinity_allowed))
    bad(fmt::format("must be a finite number (got {})", shown(v)));
  return d;
}

std::int64_t integer_value(const json& v) { return detail::whole_number(v); }

std::uint64_t unsigned_value(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  const auto n = integer_value(v);
  if (n < 0) bad(fmt::format("must not be negative (got {})", n));
  return static_cast<std::uint64_t>(n);
}

bool bool_value(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  }
  bad(fmt::format("must be true or false (got {})", shown(v)));
}

std::string text_value(const json& v) {
  if (!v.is_string()) bad(fmt::format("must be a string (got {})", shown(v)));
  return v.get<std::string>();
}

// A list: a JSON array, or strings split at commas and spaces ("ttft,itl" or "50 99"; a
// command line gives one string per word).
std::vector<json> list_value(const json& v) {
  if (!v.is_array() && !v.is_string())
    bad(fmt::format("must be a list or a comma-separated string (got {})", shown(v)));
  std::vector<json> out;
  for (const auto& element : v.is_array() ? v : json::array({v})) {
    if (!element.is_string()) {
      out.push_back(element);
      continue;
    }
    std::string item;
    for (char c : element.get<std::string>() + ",") {
      if (c == ',' || c == ' ') {
        if (!item.empty()) out.emplace_back(item);
        item.clear();
      } else {
        item.push_back(c);
      }
    }
  }
  return out;
}

std::vector<std::string> string_list(const json& v) {
  std::vector<std::string> out;
  for (const auto& item : list_value(v)) out.push_back(text_value(item));
  return out;
}

// KEY=VALUE pairs: a JSON object or strings "KEY=VALUE".
std::vector<std::pair<std::string, std::string>> key_values(const json& v) {
  std::vector<std::pair<std::string, std::string>> out;
  if (v.is_object()) {
    for (const auto& [k, value] : v.items())
      out.emplace_back(k, value.is_string() ? value.get<std::string>() : value.dump());
    return out;
  }
  const std::vector<json> items = v.is_array()    ? std::vector<json>(v.begin(), v.end())
                                  : v.is_string() ? std::vector<json>{v}
                                                  : std::vector<json>{};
  if (items.empty() && !v.is_array())
    bad(fmt::format("must be an object or KEY=VALUE strings (got {})", shown(v)));
  for (const auto& item : items) {
    const auto s = text_value(item);
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) bad(fmt::format("'{}' must look like KEY=VALUE", s));
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

json object_value(const json& v) {
  if (v.is_object()) return v;
  if (v.is_string()) {
    try {
      json parsed = json::parse(v.get<std::string>());
      if (parsed.is_object()) return parsed;
    } catch (const json::exception&) {
    }
  }
  bad(fmt::format("must be a JSON object (got {})", shown(v)));
}

std::chrono::milliseconds seconds_value(const json& v) {
  const double s = number_value(v);
  if (std::abs(s) > 1e9) bad(fmt::format("{} seconds is out of range", s));
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

std::chrono::milliseconds milliseconds_value(const json& v) {
  return std::chrono::milliseconds(integer_value(v));
}

DelaySpec delay_value(const json& v) {
  if (v.is_number()) return DelaySpec::parse(fmt::format("{}", number_value(v)));
  return DelaySpec::parse(text_value(v));
}

// An enum by its JSON name or one of its aliases; nlohmann maps an unknown name to the first
// value, so the name is checked by converting back.
template <class Enum>
Enum enum_value(const json& v, const char* choices,
                std::initializer_list<std::pair<const char*, Enum>> aliases = {}) {
  const std::string s = text_value(v);
  for (const auto& [alias, e] : aliases)
    if (s == alias) return e;
  const Enum e = json(s).get<Enum>();
  if (json(e).get<std::string>() != s) bad(fmt::format("'{}' is not one of {}", s, choices));
  return e;
}

// Adds options to a table; those added after `group = "..."` belong to that group.
template <class Target>
struct OptionBuilder {
  std::vector<Option<Target>>& out;
  std::string group;
  void operator()(std::string name, OptionKind kind, std::string help,
                  std::function<void(Target&, const json&)> apply) {
    out.push_back({std::move(name), kind, std::move(help), group, std::move(apply)});
  }
};

using K = OptionKind;

// Every leaf of `j` whose key is `name` (or name_s, name_ms: the JSON's unit suffixes).
void find_fields(const json& j, const std::string& name, std::vector<json>& found) {
  if (!j.is_object()) return;
  for (const auto& [key, value] : j.items()) {
    const bool in_seconds = name.size() > 4 && name.compare(name.size() - 4, 4, "_sec") == 0 &&
                            key == name.substr(0, name.size() - 4) + "_s";
    if (key == name || key == name + "_s" || key == name + "_ms" || in_seconds)
      found.push_back(value);
    else
      find_fields(value, name, found);
  }
}

// Sets each option's default_value from the JSON of a default target: the field of its name,
// where there is exactly one value (seed is both the dataset's and the load's, both 0).
template <class Target>
void fill_defaults(std::vector<Option<Target>>& table, const json& defaults,
                   const std::string& strip_prefix = "") {
  for (auto& option : table) {
    std::string name = option.name;
    if (!strip_prefix.empty()) {
      if (name.rfind(strip_prefix, 0) != 0) continue;
      name = name.substr(strip_prefix.size());
    }
    std::vector<json> found;
    find_fields(defaults, name, found);
    if (!found.empty() &&
        std::all_of(found.begin(), found.end(), [&](const json& v) { return v == found.front(); }))
      option.default_value = found.front();
  }
}

std::vector<SimulatorOption> make_simulator_options() {
  std::vector<SimulatorOption> t;
  OptionBuilder<SimulatorConfig> add{t, "simulator"};
  add("host", K::text, "address to listen on",
      [](SimulatorConfig& s, const json& v) { s.host = text_value(v); });
  add("port", K::integer, "port (default 8000; 0: any free port)",
      [](SimulatorConfig& s, const json& v) {
        const auto p = integer_value(v);
        if (p < 0 || p > 65535) bad(fmt::format("{} is not a port", p));
        s.port = static_cast<int>(p);
      });
  add("seed", K::integer, "seed of delays and faults",
      [](SimulatorConfig& s, const json& v) { s.seed = unsigned_value(v); });
  add("api_key", K::text, "require this bearer token",
      [](SimulatorConfig& s, const json& v) { s.api_key = text_value(v); });
  add("ttft_ms", K::text, "time to first token: MS, uniform:LO:HI, exp:MEAN, normal:MEAN:SD",
      [](SimulatorConfig& s, const json& v) { s.ttft = delay_value(v); });
  add("itl_ms", K::text, "time between tokens, same forms",
      [](SimulatorConfig& s, const json& v) { s.itl = delay_value(v); });
  add("model", K::text, "served model name",
      [](SimulatorConfig& s, const json& v) { s.model = text_value(v); });
  add("lora_modules", K::list, "LoRA adapter names served beside the model (as vllm serve's)",
      [](SimulatorConfig& s, const json& v) { s.lora_modules = string_list(v); });
  add("max_tokens", K::integer, "tokens when the request sets none (default 16)",
      [](SimulatorConfig& s, const json& v) { s.default_max_tokens = integer_value(v); });
  add("tokens_per_chunk", K::integer, "tokens per streamed chunk",
      [](SimulatorConfig& s, const json& v) { s.tokens_per_chunk = integer_value(v); });
  add("reasoning_tokens", K::integer, "chat: the first N tokens as reasoning_content",
      [](SimulatorConfig& s, const json& v) { s.reasoning_tokens = integer_value(v); });
  add("eos_probability", K::number, "chance per token to stop early unless ignore_eos",
      [](SimulatorConfig& s, const json& v) { s.eos_probability = number_value(v); });
  add("error_rate", K::number, "share of requests answered with error_status",
      [](SimulatorConfig& s, const json& v) { s.error_rate = number_value(v); });
  add("error_status", K::integer, "HTTP status of injected errors (500, 429, ...)",
      [](SimulatorConfig& s, const json& v) {
        s.error_status = static_cast<int>(integer_value(v));
      });
  add("disconnect_rate", K::number, "share of streams cut mid-way",
      [](SimulatorConfig& s, const json& v) { s.disconnect_rate = number_value(v); });
  add("stall_rate", K::number, "share of streams that stall",
      [](SimulatorConfig& s, const json& v) { s.stall_rate = number_value(v); });
  add("stall_ms", K::integer, "length of a stall",
      [](SimulatorConfig& s, const json& v) { s.stall = milliseconds_value(v); });
  add("stream_error_rate", K::number, "share of streams that carry an error object",
      [](SimulatorConfig& s, const json& v) { s.stream_error_rate = number_value(v); });
  add("stream_error_style", K::text,
      "how a stream error is written: data (vLLM), event (event: error), error_field "
      "(llama.cpp's error: line)",
      [](SimulatorConfig& s, const json& v) {
        s.stream_error_style = enum_value<StreamErrorStyle>(v, "data, event, error_field");
      });
  add("malformed_rate", K::number, "share of streams with a broken chunk",
      [](SimulatorConfig& s, const json& v) { s.malformed_rate = number_value(v); });
  add("empty_response_rate", K::number,
      "share of answers that are 200 with no content and no usage",
      [](SimulatorConfig& s, const json& v) { s.empty_response_rate = number_value(v); });
  add("length_field", K::text,
      "which request field sets the output length: both (vLLM), max_tokens (llama.cpp), "
      "max_completion_tokens",
      [](SimulatorConfig& s, const json& v) {
        s.length_field = enum_value<LengthField>(v, "both, max_tokens, max_completion_tokens");
      });
  add("tokenizer", K::text,
      "/tokenize request shape: vllm, llama_cpp (empty answer to other shapes), none (404)",
      [](SimulatorConfig& s, const json& v) {
        s.tokenizer = enum_value<SimTokenizer>(v, "vllm, llama_cpp, none");
      });
  add("chars_per_token", K::integer, "0: a word is a token; N: a word is ceil(length/N) tokens",
      [](SimulatorConfig& s, const json& v) { s.chars_per_token = integer_value(v); });
  add("close_after_response", K::integer,
      "close every connection MS after its response while promising keep-alive (llama.cpp); -1: "
      "never",
      [](SimulatorConfig& s, const json& v) { s.close_after_response = milliseconds_value(v); });
  add("num_speculative_tokens", K::integer,
      "report speculative decoding on /metrics (vllm:spec_decode_*): tokens drafted per step; 0: "
      "off",
      [](SimulatorConfig& s, const json& v) { s.num_speculative_tokens = integer_value(v); });
  add("spec_acceptance_rate", K::number,
      "with num_speculative_tokens: the chance that a drafted token is accepted when the one "
      "before it was",
      [](SimulatorConfig& s, const json& v) { s.spec_acceptance_rate = number_value(v); });
  add("max_requests_per_connection", K::integer,
      "close a connection after N requests (Keep-Alive max); 0: never",
      [](SimulatorConfig& s, const json& v) { s.max_requests_per_connection = integer_value(v); });
  add("ssl_certfile", K::text, "serve https with this certificate (PEM; with ssl_keyfile)",
      [](SimulatorConfig& s, const json& v) { s.ssl_certfile = text_value(v); });
  add("ssl_keyfile", K::text, "the private key (PEM) of ssl_certfile",
      [](SimulatorConfig& s, const json& v) { s.ssl_keyfile = text_value(v); });
  add("fault_after_tokens", K::integer, "mid-stream faults come after this many tokens",
      [](SimulatorConfig& s, const json& v) { s.fault_after_tokens = integer_value(v); });
  add("threads", K::integer,
      "event-loop threads, each serving any number of connections; 0: one per core",
      [](SimulatorConfig& s, const json& v) { s.threads = integer_value(v); });
  std::sort(t.begin(), t.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  fill_defaults(t, json(SimulatorConfig{}));
  return t;
}

// vLLM's settings that aifc refuses, with the reason (see unsupported_vllm_options()).
std::vector<UnsupportedOption> make_unsupported_options() {
  const std::string multimodal =
      "multimodal requests are out of scope: aifc measures text generation";
  const std::string hub =
      "aifc reads no dataset from the Hugging Face Hub (compute nodes rarely reach it): download "
      "the set's Parquet or JSON-lines file (a prompt field or chat turns) and use "
      "--dataset-name custom --dataset-path FILE";
  std::vector<UnsupportedOption> t = {
      {"custom_ensure_client_side_data",
       "aifc renders no prompt on the client: custom prompts are sent as the file has them"},
      {"enable_multimodal_chat", multimodal},
      {"random_mm_base_items_per_request", multimodal},
      {"random_mm_num_mm_items_range_ratio", multimodal},
      {"random_mm_limit_mm_per_prompt", multimodal},
      {"random_mm_bucket_config", multimodal},
      {"asr_max_audio_len_sec", "speech recognition (audio) is out of scope"},
      {"asr_min_audio_len_sec", "speech recognition (audio) is out of scope"},
      {"random_batch_size", "embedding benchmarks are out of scope"},
      {"no_reranker", "reranking benchmarks are out of scope"},
      {"hf_subset", hub},
      {"hf_split", hub},
      {"hf_name", hub},
      {"hf_output_len", hub},
      {"blazedit_min_distance", hub},
      {"blazedit_max_distance", hub},
      {"bfcl_categories", hub},
      {"spec_bench_output_len", hub},
      {"spec_bench_category", hub},
      {"sonnet_input_len",
       "the sonnet dataset (deprecated in vLLM) is not built in: random with --random-prefix-len "
       "gives prompts with a shared prefix"},
      {"sonnet_output_len", "the sonnet dataset is not built in (see --sonnet-input-len)"},
      {"sonnet_prefix_len", "the sonnet dataset is not built in (see --sonnet-input-len)"},
  };
  std::sort(t.begin(), t.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return t;
}

// Why a dataset or backend vLLM knows is refused; empty: it is not one of vLLM's.
std::string vllm_value_refusal(const std::string& value) {
  static const std::map<std::string, std::string> reasons = {
      {"sonnet",
       "sonnet (deprecated in vLLM) is not built in: random with --random-prefix-len "
       "gives prompts with a shared prefix"},
      {"hf",
       "aifc reads no dataset from the Hugging Face Hub: download the set's Parquet or JSON-lines "
       "file and use custom"},
      {"spec_bench",
       "spec_bench comes from the Hub: download its Parquet or JSON-lines file and use custom"},
      {"speed_bench",
       "speed_bench comes from the Hub: download its Parquet or JSON-lines file and use custom"},
      {"txt-slices", "txt-slices is not built in: cut the text into JSON lines and use custom"},
      {"random-mm", "multimodal requests are out of scope"},
      {"custom_mm", "multimodal requests are out of scope"},
      {"custom_image", "multimodal requests are out of scope"},
      {"custom_audio", "audio requests are out of scope"},
      {"random-rerank", "reranking is out of scope"},
      {"openai-audio", "audio requests are out of scope"},
      {"openai-embeddings", "embeddings are out of scope: aifc measures text generation"},
      {"openai-embeddings-chat", "embeddings are out of scope: aifc measures text generation"},
      {"openai-embeddings-clip", "embeddings are out of scope: aifc measures text generation"},
      {"openai-embeddings-vlm2vec", "embeddings are out of scope: aifc measures text generation"},
      {"infinity-embeddings", "embeddings are out of scope: aifc measures text generation"},
      {"infinity-embeddings-clip", "embeddings are out of scope: aifc measures text generation"},
      {"vllm-pooling", "pooling models are out of scope: aifc measures text generation"},
      {"vllm-rerank", "reranking is out of scope: aifc measures text generation"},
  };
  const auto it = reasons.find(value);
  return it == reasons.end() ? std::string() : it->second;
}

// The simulator a benchmark starts by itself (`sim`, `sim_*`): a free port and delays like a
// small model's.
SimulatorConfig builtin_simulator() {
  SimulatorConfig s;
  s.port = 0;
  s.ttft = DelaySpec::parse("uniform:20:60");
  s.itl = DelaySpec::parse("uniform:5:15");
  return s;
}

std::vector<BenchmarkOption> make_benchmark_options() {
  std::vector<BenchmarkOption> t;
  OptionBuilder<BenchmarkSpec> add{t, "server"};
  using S = BenchmarkSpec;
  // The server. host and port are composed by apply_benchmark_options.
  add.group = "server";
  add("base_url", K::text, "server URL (default http://127.0.0.1:8000, as vLLM's)",
      [](S& s, const json& v) { s.client.base_url = text_value(v); });
  add("host", K::text, "server host (default 127.0.0.1, with port), if no base_url",
      [](S&, const json& v) { text_value(v); });
  add("port", K::integer, "server port (default 8000), if no base_url", [](S&, const json& v) {
    const auto p = integer_value(v);
    if (p < 1 || p > 65535) bad(fmt::format("{} is out of range", p));
  });
  add("endpoint", K::text, "/v1/completions (default) or /v1/chat/completions",
      [](S& s, const json& v) { s.client.endpoint = text_value(v); });
  add("backend", K::text, "vllm | openai | openai-chat (sets the endpoint)",
      [](S& s, const json& v) {
        const auto b = text_value(v);
        if (const auto why = vllm_value_refusal(b); !why.empty())
          bad(fmt::format("'{}' is not supported: {}", b, why));
        if (b == "openai-chat")
          s.client.endpoint = "/v1/chat/completions";
        else if (b == "openai" || b == "vllm")
          s.client.endpoint = "/v1/completions";
        else
          bad(fmt::format("'{}' is not one of vllm, openai, openai-chat", b));
      });
  add("model", K::text, "model name; default: the server's first model",
      [](S& s, const json& v) { s.client.model = text_value(v); });
  add("api_key", K::text, "bearer token (the aifc program's default: $OPENAI_API_KEY)",
      [](S& s, const json& v) { s.client.api_key = text_value(v); });
  add("header", K::key_values, "extra request headers KEY=VALUE", [](S& s, const json& v) {
    for (auto& kv : key_values(v)) s.client.headers.push_back(std::move(kv));
  });
  add.group = "requests";
  add("extra_body", K::object, "JSON object merged into every request body",
      [](S& s, const json& v) { s.client.extra_body = object_value(v); });
  add("chat_template_kwargs", K::object,
      "chat endpoints: JSON object the server renders the chat template with ({\"thinking\": "
      "true}); vLLM renders on the client, the model sees the same prompt",
      [](S& s, const json& v) { s.client.chat_template_kwargs = object_value(v); });
  add("ignore_eos", K::boolean, "ask the server to ignore EOS (default: on for random, as vLLM)",
      [](S& s, const json& v) { s.client.ignore_eos = bool_value(v); });
  add("served_model_name", K::text, "the model's name in the API, if not --model's",
      [](S& s, const json& v) { s.client.served_model_name = text_value(v); });
  add("lora_modules", K::list,
      "LoRA adapters on the server: each request asks for one of them instead of the model",
      [](S& s, const json& v) { s.client.lora_modules = string_list(v); });
  add("lora_assignment", K::text,
      "random (each request draws an adapter, seeded) | round-robin (request i: adapter i mod N)",
      [](S& s, const json& v) {
        s.client.lora_assignment = enum_value<LoraAssignment>(
            v, "random, round-robin", {{"round_robin", LoraAssignment::round_robin}});
      });
  add("use_beam_search", K::boolean,
      "vLLM: accepted and not sent (vLLM's benchmark does not send it either); no effect",
      [](S&, const json& v) { bool_value(v); });
  add("request_id_prefix", K::text,
      "x-request-id of each request is this + its index (default bench-<8 hex>-; \"\": none)",
      [](S& s, const json& v) { s.client.request_id_prefix = text_value(v); });
  // Sampling: sent only when given (the server's default otherwise, as vLLM's benchmark).
  add.group = "sampling parameters";
  add("temperature", K::number, "sampling temperature (default: the server's)",
      [](S& s, const json& v) { s.client.sampling.temperature = number_value(v); });
  add("top_p", K::number, "top-p sampling (default: the server's)",
      [](S& s, const json& v) { s.client.sampling.top_p = number_value(v); });
  add("top_k", K::integer, "top-k sampling (default: the server's)",
      [](S& s, const json& v) { s.client.sampling.top_k = integer_value(v); });
  add("min_p", K::number, "min-p sampling (default: the server's)",
      [](S& s, const json& v) { s.client.sampling.min_p = number_value(v); });
  add("frequency_penalty", K::number, "frequency penalty (default: the server's)",
      [](S& s, const json& v) { s.client.sampling.frequency_penalty = number_value(v); });
  add("presence_penalty", K::number, "presence penalty (default: the server's)",
      [](S& s, const json& v) { s.client.sampling.presence_penalty = number_value(v); });
  add("repetition_penalty", K::number, "repetition penalty (default: the server's)",
      [](S& s, const json& v) { s.client.sampling.repetition_penalty = number_value(v); });
  add("logprobs", K::integer, "log-probabilities per token to return (default none)",
      [](S& s, const json& v) { s.client.sampling.logprobs = integer_value(v); });
  // Not "stream": vLLM's --no-stream means a dataset, so aifc's flags are --[no-]stream-responses.
  add.group = "requests";
  add("stream_responses", K::boolean, "stream the responses (default on; off: TTFT = E2EL)",
      [](S& s, const json& v) { s.client.stream = bool_value(v); });
  add("no_stream", K::boolean,
      "vLLM: load a Hugging Face dataset without streaming; aifc reads local files, so no effect",
      [](S&, const json& v) { bool_value(v); });
  add.group = "server";
  add("insecure", K::boolean, "https: skip certificate verification",
      [](S& s, const json& v) { s.client.verify_tls = !bool_value(v); });
  add("ca_cert", K::text, "https: CA certificates, a PEM file or a directory of them",
      [](S& s, const json& v) { s.client.ca_cert_path = text_value(v); });
  add.group = "timeouts";
  add("request_timeout", K::number, "seconds per request",
      [](S& s, const json& v) { s.client.request_timeout = seconds_value(v); });
  add("first_token_timeout", K::number, "seconds to the first token (default none)",
      [](S& s, const json& v) { s.client.first_token_timeout = seconds_value(v); });
  add("connect_timeout", K::number, "seconds to connect",
      [](S& s, const json& v) { s.client.connect_timeout = seconds_value(v); });
  add("read_timeout", K::number, "longest silence within a response in seconds",
      [](S& s, const json& v) { s.client.read_timeout = seconds_value(v); });
  // The prompts.
  add.group = "dataset";
  add("dataset_name", K::text,
      "random | sharegpt | jsonl (custom) | prefix_repetition | burstgpt | timed_trace",
      [](S& s, const json& v) {
        if (const auto why = vllm_value_refusal(text_value(v)); !why.empty())
          bad(fmt::format("'{}' is not supported: {}", v.get<std::string>(), why));
        s.dataset.dataset_name = enum_value<DatasetKind>(
            v, "random, sharegpt, jsonl, prefix_repetition, burstgpt, timed_trace",
            {{"custom", DatasetKind::jsonl}});
      });
  add("dataset_path", K::text,
      "file for sharegpt / jsonl / timed_trace (JSON or JSON lines, or Parquet) / burstgpt (CSV)",
      [](S& s, const json& v) { s.dataset.dataset_path = text_value(v); });
  add("num_prompts", K::integer, "requests to send",
      [](S& s, const json& v) { s.dataset.num_prompts = s.load.num_requests = integer_value(v); });
  add("random_input_len", K::integer, "random: input tokens",
      [](S& s, const json& v) { s.dataset.random_input_len = integer_value(v); });
  add("random_output_len", K::integer, "random: output tokens",
      [](S& s, const json& v) { s.dataset.random_output_len = integer_value(v); });
  add("random_range_ratio", K::number,
      "random: lengths in [len*(1-r), len*(1+r)]; or {\"input\": r, \"output\": r2} as vLLM",
      [](S& s, const json& v) {
        const bool object =
            v.is_object() || (v.is_string() && v.get<std::string>().find('{') != std::string::npos);
        if (!object) {
          s.dataset.random_range_ratio = number_value(v);
          s.dataset.random_output_range_ratio.reset();
          return;
        }
        const json ratios = object_value(v);
        for (const auto& item : ratios.items())
          if (item.key() != "input" && item.key() != "output")
            bad(fmt::format("'{}' is not input or output", item.key()));
        s.dataset.random_range_ratio = ratios.contains("input") ? number_value(ratios["input"]) : 0;
        s.dataset.random_output_range_ratio =
            ratios.contains("output") ? number_value(ratios["output"]) : 0;
      });
  add("random_prefix_len", K::integer, "random: shared prefix tokens",
      [](S& s, const json& v) { s.dataset.random_prefix_len = integer_value(v); });
  add("sharegpt_output_len", K::integer, "sharegpt: fixed output length",
      [](S& s, const json& v) { s.dataset.sharegpt_output_len = integer_value(v); });
  add("custom_output_len", K::integer,
      "jsonl (custom): output length of every prompt (default: the line's own, else 256; -1 as "
      "vLLM: the same; 0: none)",
      [](S& s, const json& v) {
        // -1 is vLLM's "the dataset's own lengths", which is aifc's default.
        const auto n = integer_value(v);
        if (n == -1)
          s.dataset.custom_output_len.reset();
        else
          s.dataset.custom_output_len = n;
      });
  add("prefix_repetition_prefix_len", K::integer, "prefix_repetition: tokens of the shared prefix",
      [](S& s, const json& v) { s.dataset.prefix_repetition_prefix_len = integer_value(v); });
  add("prefix_repetition_suffix_len", K::integer, "prefix_repetition: tokens after the prefix",
      [](S& s, const json& v) { s.dataset.prefix_repetition_suffix_len = integer_value(v); });
  add("prefix_repetition_num_prefixes", K::integer,
      "prefix_repetition: distinct prefixes, each shared by num_prompts/N prompts",
      [](S& s, const json& v) { s.dataset.prefix_repetition_num_prefixes = integer_value(v); });
  add("prefix_repetition_output_len", K::integer, "prefix_repetition: output tokens",
      [](S& s, const json& v) { s.dataset.prefix_repetition_output_len = integer_value(v); });
  add("timed_trace_chunk_hash_size", K::integer,
      "timed_trace: tokens per hash id (default 16; Mooncake's traces: 512)",
      [](S& s, const json& v) { s.dataset.timed_trace_chunk_hash_size = integer_value(v); });
  add("timed_trace_sec_multiplier", K::number,
      "timed_trace: timestamp x this = seconds (default 1; 0.001 for milliseconds)",
      [](S& s, const json& v) { s.dataset.timed_trace_sec_multiplier = number_value(v); });
  add("timed_trace_label_timestamp", K::text, "timed_trace: key of the time",
      [](S& s, const json& v) { s.dataset.timed_trace_label_timestamp = text_value(v); });
  add("timed_trace_label_input_length", K::text, "timed_trace: key of the input length",
      [](S& s, const json& v) { s.dataset.timed_trace_label_input_length = text_value(v); });
  add("timed_trace_label_output_length", K::text, "timed_trace: key of the output length",
      [](S& s, const json& v) { s.dataset.timed_trace_label_output_length = text_value(v); });
  add("timed_trace_label_hash_ids", K::text, "timed_trace: key of the block hash ids",
      [](S& s, const json& v) { s.dataset.timed_trace_label_hash_ids = text_value(v); });
  add("input_len", K::integer, "input length of the dataset: random_input_len",
      [](S&, const json& v) { integer_value(v); });  // applied last, see apply_benchmark_options
  add("output_len", K::integer,
      "output length of the dataset: random_, sharegpt_, custom_ and prefix_repetition_output_len",
      [](S&, const json& v) { integer_value(v); });
  add("disable_shuffle", K::boolean, "file datasets: keep the file's order",
      [](S& s, const json& v) { s.dataset.disable_shuffle = bool_value(v); });
  add("no_oversample", K::boolean,
      "file datasets: never repeat a prompt (a short file sends fewer requests)",
      [](S& s, const json& v) { s.dataset.no_oversample = bool_value(v); });
  add.group = "server";
  add("ready_check_timeout_sec", K::integer,
      "wait up to this many seconds for the server to answer first (default 0: no wait)",
      [](S& s, const json& v) { s.ready_check_timeout = std::chrono::seconds(integer_value(v)); });
  add.group = "requests";
  add("capture_text", K::boolean,
      "keep each answer's text: generated_texts of a detailed result (on with --save-detailed)",
      [](S& s, const json& v) { s.client.capture_text = bool_value(v); });
  add("profile", K::boolean,
      "POST /start_profile before the run and /stop_profile after it (vLLM's profiler)",
      [](S& s, const json& v) { s.profile = bool_value(v); });
  add("tokenizer", K::text,
      "vLLM: the tokenizer to count with; aifc counts with the server's /tokenize and records "
      "this as tokenizer_id",
      [](S& s, const json& v) { s.tokenizer = text_value(v); });
  add("tokenizer_mode", K::text, "vLLM: how to load --tokenizer; no effect here",
      [](S&, const json& v) { text_value(v); });
  add("trust_remote_code", K::boolean, "vLLM: run a Hugging Face tokenizer's code; no effect here",
      [](S&, const json& v) { bool_value(v); });
  add("skip_tokenizer_init", K::boolean,
      "vLLM: load no tokenizer; aifc never loads one (it counts with /tokenize), so no effect",
      [](S&, const json& v) { bool_value(v); });
  add("skip_chat_template", K::boolean,
      "vLLM: send dataset prompts without the chat template; aifc never applies one, so no effect",
      [](S&, const json& v) { bool_value(v); });
  add("server_tokenizer", K::boolean,
      "fit and count prompts with the server's /tokenize (default on)",
      [](S& s, const json& v) { s.use_server_tokenizer = bool_value(v); });
  // The load.
  add.group = "load";
  add("request_rate", K::number, "requests per second or inf",
      [](S& s, const json& v) { s.load.request_rate = number_value(v, true); });
  add("burstiness", K::number, "gamma shape of arrivals; 1 = Poisson",
      [](S& s, const json& v) { s.load.burstiness = number_value(v); });
  add("max_concurrency", K::integer, "most requests in flight (0: unbounded)",
      [](S& s, const json& v) { s.load.max_concurrency = integer_value(v); });
  add("duration", K::number, "send for this many seconds instead of num_prompts",
      [](S& s, const json& v) { s.load.duration = seconds_value(v); });
  add("probe_request_rate", K::number,
      "one-token probe requests per second beside the workload, outside max_concurrency and "
      "the metrics; their latency is reported apart (probe_*_e2el_ms)",
      [](S& s, const json& v) { s.probe_request_rate = number_value(v); });
  add("num_warmups", K::integer, "uncounted warm-up requests",
      [](S& s, const json& v) { s.load.num_warmups = integer_value(v); });
  add("ramp_up_strategy", K::text, "linear | exponential", [](S& s, const json& v) {
    s.load.ramp_up_strategy = enum_value<RampUp>(v, "linear, exponential");
  });
  add("ramp_up_start_rps", K::integer, "ramp-up: first rate in whole requests/s",
      [](S& s, const json& v) { s.load.ramp_up_start_rps = integer_value(v); });
  add("ramp_up_end_rps", K::integer, "ramp-up: last rate in whole requests/s",
      [](S& s, const json& v) { s.load.ramp_up_end_rps = integer_value(v); });
  add("self_timed", K::boolean,
      "send at the trace's times, not the request rate's (default: on for timed_trace only)",
      [](S& s, const json& v) { s.load.self_timed = bool_value(v); });
  add("seed", K::integer, "seed of prompts and arrivals",
      [](S& s, const json& v) { s.dataset.seed = s.load.seed = unsigned_value(v); });
  add("rank", K::integer, "this process's part of a distributed run", [](S& s, const json& v) {
    s.shard.rank = static_cast<std::uint32_t>(std::min<std::uint64_t>(unsigned_value(v), 1u << 31));
  });
  add("nranks", K::integer, "number of parts of a distributed run", [](S& s, const json& v) {
    s.shard.nranks =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(unsigned_value(v), 1u << 31));
  });
  // How it is sent.
  add.group = "transport";
  add("transport", K::text,
      "event_loop: every stream on epoll threads, http and https (automatic, the default); "
      "threads: a thread and a blocking connection per stream",
      [](S& s, const json& v) {
        s.transport = enum_value<Transport>(
            v, "automatic, event_loop, threads",
            {{"auto", Transport::automatic}, {"event-loop", Transport::event_loop}});
      });
  add("io_threads", K::integer, "event-loop threads",
      [](S& s, const json& v) { s.io_threads = integer_value(v); });
  add("max_clients", K::integer, "most connections when concurrency is unbounded",
      [](S& s, const json& v) { s.max_clients = integer_value(v); });
  add("keep_records", K::boolean,
      "keep every request's record (exact percentiles; default on; off: 0.1% histograms)",
      [](S& s, const json& v) { s.keep_records = bool_value(v); });
  // What is reported.
  add.group = "results";
  add("percentile_metrics", K::list,
      "ttft,tpot,itl,e2el,client_queue_time,e2el_including_client_queue",
      [](S& s, const json& v) { s.summary.percentile_metrics = string_list(v); });
  add("metric_percentiles", K::list, "percentiles to report", [](S& s, const json& v) {
    s.summary.metric_percentiles.clear();
    for (const auto& p : list_value(v)) s.summary.metric_percentiles.push_back(number_value(p));
  });
  add("goodput", K::list, "SLOs in ms: ttft:MS tpot:MS e2el:MS (or an object {\"ttft\": MS})",
      [](S& s, const json& v) {
        // {"ttft": 200} as vLLM's "ttft:200" (the "_ms" names of the spec's JSON too).
        std::string joined;
        if (v.is_object()) {
          for (const auto& [metric, ms] : v.items()) {
            std::string name = metric;
            if (name.size() > 3 && name.compare(name.size() - 3, 3, "_ms") == 0)
              name.resize(name.size() - 3);
            joined += fmt::format("{}:{} ", name, number_value(ms));
          }
        }
        for (const auto& word : v.is_object() ? std::vector<json>{} : list_value(v))
          joined += text_value(word) + " ";
        s.summary.goodput = GoodputSlo::parse(joined);
      });
  add("label", K::text, "label of the run in the result",
      [](S& s, const json& v) { s.label = text_value(v); });
  add("metadata", K::key_values, "KEY=VALUE pairs stored in the result", [](S& s, const json& v) {
    for (auto& [k, value] : key_values(v)) s.metadata[k] = std::move(value);
  });
  add.group = "simulator (--sim-* are the options of aifc sim)";
  add("sim", K::boolean,
      "run against the built-in simulator, started in this process (any sim_* option implies it)",
      [](S& s, const json& v) {
        if (!bool_value(v))
          s.simulator.reset();
        else if (!s.simulator)
          s.simulator = builtin_simulator();
      });
  for (const auto& o : simulator_options()) {
    auto apply = o.apply;
    add("sim_" + o.name, o.kind, "simulator: " + o.help, [apply](S& s, const json& v) {
      if (!s.simulator) s.simulator = builtin_simulator();
      apply(*s.simulator, v);
    });
  }
  std::sort(t.begin(), t.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  // Not benchmark_spec_from_options({}): that applies options through this very table.
  BenchmarkSpec defaults;
  fill_defaults(t, json(defaults));
  fill_defaults(t, json(builtin_simulator()), "sim_");
  return t;
}

template <class Table>
auto find_in(const Table& table, const std::string& name) -> decltype(&table.front()) {
  const auto it = std::lower_bound(table.begin(), table.end(), name,
                                   [](const auto& o, const std::string& n) { return o.name < n; });
  return it != table.end() && it->name == name ? &*it : nullptr;
}

// Applies one option, naming it in the message of what went wrong.
template <class Target>
void apply_named(const Option<Target>& option, Target& target, const json& value) {
  try {
    option.apply(target, value);
  } catch (const Error& e) {
    throw Error(ErrorCode::invalid_argument, fmt::format("{}: {}", option.name, e.what()));
  } catch (const json::exception& e) {
    // nlohmann's "[json.exception.type_error.302] type must be number, but is string"
    std::string what = e.what();
    if (const auto at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
    throw Error(ErrorCode::invalid_argument, fmt::format("{}: {}", option.name, what));
  }
}

}  // namespace

const std::vector<SimulatorOption>& simulator_options() {
  static const std::vector<SimulatorOption> table = make_simulator_options();
  return table;
}

const std::vector<BenchmarkOption>& benchmark_options() {
  static const std::vector<BenchmarkOption> table = make_benchmark_options();
  return table;
}

const std::vector<UnsupportedOption>& unsupported_vllm_options() {
  static const std::vector<UnsupportedOption> table = make_unsupported_options();
  return table;
}

std::string shown_default(const nlohmann::json& v) {
  if (v.is_null() || (v.is_string() && v.get<std::string>().empty()) ||
      ((v.is_object() || v.is_array()) && v.empty()))
    return {};
  if (v.is_boolean()) return v.get<bool>() ? "on" : "off";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& item : v) out += (out.empty() ? "" : ",") + shown_default(item);
    return out;
  }
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  return v.dump();
}

const BenchmarkOption* find_benchmark_option(const std::string& name) {
  return find_in(benchmark_options(), name);
}

const SimulatorOption* find_simulator_option(const std::string& name) {
  return find_in(simulator_options(), name);
}

void apply_benchmark_options(BenchmarkSpec& spec, const nlohmann::json& options) {
  if (!options.is_object()) bad("benchmark options must be a JSON object");
  bool server_named = false, simulator_named = false;
  for (const auto& [name, value] : options.items()) {
    const BenchmarkOption* option = find_benchmark_option(name);
    if (!option) {
      if (const auto* refused = find_in(unsupported_vllm_options(), name))
        bad(fmt::format("{}: not supported: {}", name, refused->reason));
      bad(fmt::format("unknown option '{}'", name));
    }
    if (value.is_null()) continue;
    apply_named(*option, spec, value);
    if (name == "base_url" || name == "host" || name == "port") server_named = true;
    if (name.rfind("sim", 0) == 0 && !(name == "sim" && !bool_value(value))) simulator_named = true;
  }
  if (server_named && simulator_named)
    bad("the built-in simulator (sim, sim_*) and a server (base_url, host, port) exclude each "
        "other");
  // What combines options is applied after them all, so that their order does not matter.
  const auto given = [&](const char* key) {
    return options.contains(key) && !options[key].is_null();
  };
  // The general lengths win over the dataset-specific ones, as in vLLM.
  if (given("input_len")) spec.dataset.random_input_len = integer_value(options["input_len"]);
  if (given("output_len")) {
    const auto n = integer_value(options["output_len"]);
    spec.dataset.random_output_len = spec.dataset.sharegpt_output_len = n;
    spec.dataset.custom_output_len = n;
    spec.dataset.prefix_repetition_output_len = n;
  }
  // As vLLM's benchmark: random prompts run to their drawn output length, so the random dataset
  // asks the server to ignore EOS unless ignore_eos is given (vLLM offers no way out).
  if (!given("ignore_eos") && spec.dataset.dataset_name == DatasetKind::random)
    spec.client.ignore_eos = true;
  // As vLLM: a timed trace is replayed at its own times unless self_timed is turned off.
  if (!given("self_timed") && spec.dataset.dataset_name == DatasetKind::timed_trace)
    spec.load.self_timed = true;
  // host and port make the URL.
  if (!given("base_url") && (given("host") || given("port"))) {
    const std::string host = given("host") ? options["host"].get<std::string>() : "127.0.0.1";
    const std::int64_t port = given("port") ? integer_value(options["port"]) : 8000;
    spec.client.base_url = fmt::format(
        "http://{}:{}", host.find(':') != std::string::npos ? "[" + host + "]" : host, port);
  }
}

BenchmarkSpec benchmark_spec_from_options(const nlohmann::json& options) {
  // As `vllm bench serve`: no server named means http://127.0.0.1:8000 (the client's default);
  // the built-in simulator runs only when asked for (sim, sim_*).
  BenchmarkSpec spec;
  apply_benchmark_options(spec, options);
  return spec;
}

void apply_simulator_options(SimulatorConfig& config, const nlohmann::json& options) {
  if (!options.is_object()) bad("simulator options must be a JSON object");
  for (const auto& [name, value] : options.items()) {
    const SimulatorOption* option = find_simulator_option(name);
    if (!option) bad(fmt::format("unknown option '{}'", name));
    if (!value.is_null()) apply_named(*option, config, value);
  }
}

nlohmann::json option_value_from_words(OptionKind kind, const std::vector<std::string>& words) {
  switch (kind) {
    case OptionKind::boolean:
      if (words.empty()) return true;
      return bool_value(json(words.front()));
    case OptionKind::integer:
      return integer_value(json(words.at(0)));
    case OptionKind::number:
      return json(words.at(0));  // kept as text: "inf" is a number to some options only
    case OptionKind::text:
    case OptionKind::object:
      return json(words.at(0));
    case OptionKind::list:
    case OptionKind::key_values: {
      json out = json::array();
      for (const auto& w : words) out.push_back(w);
      return out;
    }
  }
  return nullptr;
}

nlohmann::json option_schema(OptionKind kind, const std::string& help) {
  json s;
  switch (kind) {
    case OptionKind::boolean:
      s = {{"type", "boolean"}};
      break;
    case OptionKind::integer:
      s = {{"type", "integer"}};
      break;
    case OptionKind::number:
      s = {{"oneOf", json::array({{{"type", "number"}}, {{"type", "string"}}})}};
      break;
    case OptionKind::text:
      s = {{"type", "string"}};
      break;
    case OptionKind::list:
      s = {{"oneOf", json::array({{{"type", "array"}}, {{"type", "string"}}})}};
      break;
    case OptionKind::key_values:
      s = {{"oneOf",
            json::array({{{"type", "object"}}, {{"type", "array"}}, {{"type", "string"}}})}};
      break;
    case OptionKind::object:
      s = {{"type", "object"}};
      break;
  }
  s["description"] = help;
  return s;
}

const char* to_string(OptionKind kind) noexcept {
  switch (kind) {
    case OptionKind::boolean:
      return "boolean";
    case OptionKind::integer:
      return "integer";
    case OptionKind::number:
      return "number";
    case OptionKind::text:
      return "text";
    case OptionKind::list:
      return "list";
    case OptionKind::key_values:
      return "key_values";
    case OptionKind::object:
      return "object";
  }
  return "?";
}

}  // namespace aifc
