#include <doctest/doctest.h>

#include <aifc/error.hpp>
#include <aifc/options.hpp>
#include <cmath>
#include <set>

using aifc::apply_benchmark_options;
using aifc::BenchmarkSpec;
using nlohmann::json;

namespace {

std::string error_of(const json& options) {
  BenchmarkSpec spec;
  try {
    apply_benchmark_options(spec, options);
  } catch (const aifc::Error& e) {
    CHECK(e.code() == aifc::ErrorCode::invalid_argument);
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("options: typed JSON values set the spec") {
  BenchmarkSpec spec;
  apply_benchmark_options(spec, {{"base_url", "http://gpu1:8000"},
                                 {"num_prompts", 50},
                                 {"request_rate", "inf"},
                                 {"max_concurrency", 8},
                                 {"random_input_len", 64},
                                 {"goodput", {{"ttft", 200}, {"e2el", 900}}},
                                 {"percentile_metrics", {"ttft", "e2el"}},
                                 {"metric_percentiles", "50,99"},
                                 {"header", {{"X-A", "1"}}},
                                 {"metadata", {"team=hpc"}},
                                 {"stream_responses", false},
                                 {"keep_records", false},
                                 {"transport", "event-loop"},
                                 {"dataset_name", "custom"},
                                 {"dataset_path", "/data/p.jsonl"},
                                 {"duration", 2.5},
                                 {"seed", 9},
                                 {"max_clients", nullptr}});  // null: left at its default
  CHECK(spec.client.base_url == "http://gpu1:8000");
  CHECK(spec.dataset.num_prompts == 50);
  CHECK(spec.load.num_requests == 50);
  CHECK(std::isinf(spec.load.request_rate));
  CHECK(spec.load.max_concurrency == 8);
  CHECK(*spec.summary.goodput.ttft_ms == 200);
  CHECK(*spec.summary.goodput.e2el_ms == 900);
  CHECK(spec.summary.percentile_metrics == std::vector<std::string>{"ttft", "e2el"});
  CHECK(spec.summary.metric_percentiles == std::vector<double>{50, 99});
  CHECK(spec.client.headers.at(0) == std::pair<std::string, std::string>{"X-A", "1"});
  CHECK(spec.metadata.at("team") == "hpc");
  CHECK_FALSE(spec.client.stream);
  CHECK_FALSE(spec.keep_records);
  CHECK(spec.transport == aifc::Transport::event_loop);
  CHECK(spec.dataset.dataset_name == aifc::DatasetKind::jsonl);
  CHECK(spec.load.duration == std::chrono::milliseconds(2500));
  CHECK(spec.load.seed == 9);
  CHECK(spec.dataset.seed == 9);
  CHECK(spec.max_clients == BenchmarkSpec{}.max_clients);
}

TEST_CASE("options: values from text are read as their kind") {
  BenchmarkSpec spec;
  apply_benchmark_options(spec, {{"num_prompts", "12"},
                                 {"request_rate", "2.5"},
                                 {"ignore_eos", "true"},
                                 {"goodput", "ttft:100 tpot:20"}});
  CHECK(spec.dataset.num_prompts == 12);
  CHECK(spec.load.request_rate == 2.5);
  CHECK(spec.client.ignore_eos);
  CHECK(*spec.summary.goodput.tpot_ms == 20);
  // vLLM's --random-range-ratio: a float for both lengths, or an object for each.
  apply_benchmark_options(spec, {{"random_range_ratio", R"({"input": 0.3, "output": 0.5})"}});
  CHECK(spec.dataset.random_range_ratio == 0.3);
  CHECK(spec.dataset.random_output_range_ratio == 0.5);
  apply_benchmark_options(spec, {{"random_range_ratio", {{"output", 0.25}}}});
  CHECK(spec.dataset.random_range_ratio == 0.0);
  CHECK(spec.dataset.random_output_range_ratio == 0.25);
  apply_benchmark_options(spec, {{"random_range_ratio", "0.2"}});
  CHECK(spec.dataset.random_range_ratio == 0.2);
  CHECK_FALSE(spec.dataset.random_output_range_ratio);
}

TEST_CASE("options: every error names the option") {
  CHECK(error_of({{"num_prompts", "many"}}) == "num_prompts: 'many' is not a whole number");
  CHECK(error_of({{"num_prompts", 1.5}}).rfind("num_prompts: must be a whole number", 0) == 0);
  CHECK(error_of({{"burstiness", "inf"}}).rfind("burstiness: must be a finite number", 0) == 0);
  CHECK(error_of({{"ignore_eos", 3}}).rfind("ignore_eos: must be true or false", 0) == 0);
  CHECK(error_of({{"transport", "fast"}}).rfind("transport: 'fast' is not one of", 0) == 0);
  CHECK(error_of({{"header", {"nokey"}}}).rfind("header: 'nokey' must look like KEY=VALUE", 0) ==
        0);
  CHECK(error_of({{"extra_body", "[1]"}}).rfind("extra_body: must be a JSON object", 0) == 0);
  CHECK(error_of({{"seed", -1}}).rfind("seed: must not be negative", 0) == 0);
  CHECK(error_of({{"port", 0}}).rfind("port: 0 is out of range", 0) == 0);
  CHECK(error_of({{"goodput", "latency:5"}}).rfind("goodput: ", 0) == 0);
  CHECK(error_of({{"num_promts", 5}}) == "unknown option 'num_promts'");
  CHECK(error_of({{"base_url", "http://h:1"}, {"sim_itl_ms", 5}}).find("exclude each other") !=
        std::string::npos);
  CHECK(error_of(json::array()) == "benchmark options must be a JSON object");
}

TEST_CASE("options: values out of any sensible range are refused, naming the field") {
  auto invalid = [](const json& options) {
    try {
      aifc::benchmark_spec_from_options(options).validate();
    } catch (const aifc::Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(invalid({{"request_timeout", 1e10}}).find("out of range") != std::string::npos);
  CHECK(invalid({{"request_timeout", 1e8}}).find("timeouts must be at most a year") !=
        std::string::npos);
  CHECK(invalid({{"request_rate", 1e-300}}).find("request_rate must be from") != std::string::npos);
  CHECK(invalid({{"random_range_ratio", "nan"}}).find("random_range_ratio") != std::string::npos);
  CHECK(invalid({{"random_range_ratio", R"({"input": 0.1, "outptu": 0.2})"}})
            .find("'outptu' is not input or output") != std::string::npos);
  CHECK(invalid({{"random_range_ratio", R"({"output": 1.5})"}})
            .find("random_output_range_ratio must be in [0, 1)") != std::string::npos);
  CHECK(invalid({{"goodput", "ttft:nan"}}).find("goodput") != std::string::npos);
  CHECK(invalid({{"goodput", {{"ttft", -5}}}}).find("goodput") != std::string::npos);
  CHECK(invalid({{"sim_stall_ms", -1}}).find("stall must not be negative") != std::string::npos);
  CHECK(invalid({{"sim_ttft_ms", "inf"}}).find("delay 'inf'") != std::string::npos);
  CHECK(invalid({{"nranks", -1}}).find("nranks: must not be negative") != std::string::npos);
  CHECK(invalid({{"random_input_len", 4611686018427387904}}).find("at most 10000000") !=
        std::string::npos);
  CHECK(invalid({{"num_prompts", 10}, {"burstiness", 1e9}}).find("burstiness") !=
        std::string::npos);
  CHECK(invalid({{"num_prompts", 10}, {"sim_ttft_ms", 5}}) == "accepted");
  // Credentials in the URL are refused without being echoed.
  const auto message = invalid({{"base_url", "http://alice:s3cret@gpu1:8000/v1"}});
  CHECK(message.find("carries credentials") != std::string::npos);
  CHECK(message.find("s3cret") == std::string::npos);
}

TEST_CASE("options: host and port compose the URL whatever their order") {
  BenchmarkSpec a, b, c;
  apply_benchmark_options(a, {{"port", 9001}, {"host", "gpu7"}});
  CHECK(a.client.base_url == "http://gpu7:9001");
  apply_benchmark_options(b, {{"host", "::1"}});
  CHECK(b.client.base_url == "http://[::1]:8000");
  apply_benchmark_options(c, {{"base_url", "http://x:1"}, {"port", 9}});
  CHECK(c.client.base_url == "http://x:1");  // base_url wins, as in vLLM
}

TEST_CASE("options: the simulator by sim and sim_*, or when no server is named") {
  BenchmarkSpec spec;
  apply_benchmark_options(spec, {{"sim_ttft_ms", 15}, {"sim_tokenizer", "llama_cpp"}});
  REQUIRE(spec.simulator.has_value());
  CHECK(spec.simulator->port == 0);
  CHECK(spec.simulator->ttft.a_ms == 15);
  CHECK(spec.simulator->itl.kind == aifc::DelaySpec::Kind::uniform);  // the built-in default
  CHECK(spec.simulator->tokenizer == aifc::SimTokenizer::llama_cpp);
  // As vllm bench serve: no server named is 127.0.0.1:8000, never the simulator by surprise.
  const auto plain = aifc::benchmark_spec_from_options(json::object());
  CHECK_FALSE(plain.simulator.has_value());
  CHECK(plain.client.base_url == "http://127.0.0.1:8000");
  CHECK(aifc::benchmark_spec_from_options({{"sim", true}}).simulator.has_value());
  CHECK_FALSE(aifc::benchmark_spec_from_options({{"port", 8000}}).simulator.has_value());
}

TEST_CASE("options: the table is sorted, unique, documented and has the vLLM flag names") {
  std::set<std::string> names;
  std::string previous;
  for (const auto& o : aifc::benchmark_options()) {
    CHECK(o.name > previous);
    previous = o.name;
    CHECK_MESSAGE(!o.help.empty(), o.name);
    CHECK(o.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos);
    names.insert(o.name);
    CHECK(aifc::find_benchmark_option(o.name) == &o);
  }
  for (const char* vllm : {"base_url",
                           "host",
                           "port",
                           "endpoint",
                           "backend",
                           "model",
                           "dataset_name",
                           "dataset_path",
                           "num_prompts",
                           "random_input_len",
                           "random_output_len",
                           "random_range_ratio",
                           "random_prefix_len",
                           "sharegpt_output_len",
                           "request_rate",
                           "burstiness",
                           "max_concurrency",
                           "ignore_eos",
                           "percentile_metrics",
                           "metric_percentiles",
                           "goodput",
                           "seed",
                           "label",
                           "metadata",
                           "ramp_up_strategy",
                           "ramp_up_start_rps",
                           "ramp_up_end_rps",
                           "num_warmups",
                           "header",
                           "extra_body",
                           "temperature",
                           "top_p",
                           "top_k",
                           "min_p",
                           "frequency_penalty",
                           "presence_penalty",
                           "repetition_penalty",
                           "logprobs",
                           "served_model_name",
                           "request_id_prefix"})
    CHECK_MESSAGE(names.count(vllm) == 1, vllm);
  // Every simulator option is there with the sim_ prefix.
  for (const auto& o : aifc::simulator_options()) CHECK(names.count("sim_" + o.name) == 1);
  CHECK(aifc::find_benchmark_option("no_such") == nullptr);
}

TEST_CASE("options: defaults are read from the spec's own fields, as --help shows them") {
  auto default_of = [](const char* name) {
    const auto* o = aifc::find_benchmark_option(name);
    REQUIRE(o != nullptr);
    return o->default_value;
  };
  CHECK(default_of("num_prompts") == 1000);
  CHECK(default_of("request_timeout") == 21600.0);      // request_timeout_s
  CHECK(default_of("ready_check_timeout_sec") == 0);    // ready_check_timeout_s
  CHECK(default_of("seed") == 0);                       // the dataset's and the load's
  CHECK(default_of("sim_ttft_ms") == "uniform:20:60");  // the built-in simulator's
  CHECK(default_of("temperature").is_null());           // the server's: nothing to show
  CHECK(aifc::find_simulator_option("close_after_response")->default_value == -1);
  CHECK(aifc::shown_default(true) == "on");
  CHECK(aifc::shown_default(nlohmann::json::array({"ttft", "tpot"})) == "ttft,tpot");
  CHECK(aifc::shown_default(99.0) == "99");
  CHECK(aifc::shown_default(0.25) == "0.25");
  CHECK(aifc::shown_default("").empty());
  CHECK(aifc::shown_default(nlohmann::json::object()).empty());
}

TEST_CASE("options: vLLM's settings aifc does not take are refused with the reason") {
  for (const auto& u : aifc::unsupported_vllm_options()) {
    CHECK_MESSAGE(aifc::find_benchmark_option(u.name) == nullptr, u.name);
    CHECK(u.reason.size() > 20);
  }
  aifc::BenchmarkSpec spec;
  try {
    aifc::apply_benchmark_options(spec, {{"hf_split", "train"}});
    FAIL("refused");
  } catch (const aifc::Error& e) {
    CHECK(std::string(e.what()).find("hf_split: not supported: ") == 0);
  }
  CHECK_THROWS_WITH_AS(aifc::apply_benchmark_options(spec, {{"no_such_thing", 1}}),
                       "unknown option 'no_such_thing'", aifc::Error);
  for (const char* name : {"sonnet", "hf", "random-mm", "spec_bench"})
    CHECK_THROWS_WITH_AS(aifc::apply_benchmark_options(spec, {{"dataset_name", name}}),
                         doctest::Contains("is not supported: "), aifc::Error);
  CHECK_THROWS_WITH_AS(aifc::apply_benchmark_options(spec, {{"backend", "openai-embeddings"}}),
                       doctest::Contains("out of scope"), aifc::Error);
  // vLLM's -1 for custom_output_len means the dataset's own lengths: aifc's default.
  aifc::apply_benchmark_options(spec, {{"custom_output_len", 5}});
  CHECK(spec.dataset.custom_output_len == 5);
  aifc::apply_benchmark_options(spec, {{"custom_output_len", -1}});
  CHECK_FALSE(spec.dataset.custom_output_len);
}

TEST_CASE("options: the random dataset ignores EOS unless told, as vLLM's benchmark") {
  CHECK(aifc::benchmark_spec_from_options(json::object()).client.ignore_eos);
  CHECK_FALSE(aifc::benchmark_spec_from_options({{"ignore_eos", false}}).client.ignore_eos);
  CHECK_FALSE(aifc::benchmark_spec_from_options({{"dataset_name", "jsonl"}, {"dataset_path", "p"}})
                  .client.ignore_eos);
  // A timed trace replays its own times unless self_timed is turned off, as vLLM's.
  CHECK(aifc::benchmark_spec_from_options({{"dataset_name", "timed_trace"}, {"dataset_path", "t"}})
            .load.self_timed);
  CHECK_FALSE(aifc::benchmark_spec_from_options(
                  {{"dataset_name", "timed_trace"}, {"dataset_path", "t"}, {"self_timed", false}})
                  .load.self_timed);
  CHECK_FALSE(aifc::benchmark_spec_from_options(json::object()).load.self_timed);
  const auto spec = aifc::benchmark_spec_from_options(
      {{"temperature", "0"}, {"top_k", 5}, {"served_model_name", "s"}, {"request_id_prefix", ""}});
  CHECK(spec.client.sampling.temperature == 0.0);
  CHECK(spec.client.sampling.top_k == 5);
  CHECK_FALSE(spec.client.sampling.top_p.has_value());
  CHECK(spec.client.served_model_name == "s");
  CHECK(spec.client.request_id_prefix == std::string());
  // The general lengths, over the dataset-specific ones whatever the order.
  const auto lengths = aifc::benchmark_spec_from_options(
      {{"random_output_len", 9}, {"output_len", 5}, {"input_len", 33}, {"random_input_len", 2}});
  CHECK(lengths.dataset.random_input_len == 33);
  CHECK(lengths.dataset.random_output_len == 5);
  CHECK(lengths.dataset.sharegpt_output_len == 5);
  CHECK(lengths.dataset.custom_output_len == 5);
  CHECK(aifc::benchmark_spec_from_options({{"disable_shuffle", true}, {"no_oversample", "yes"}})
            .dataset.no_oversample);
  CHECK_THROWS_WITH_AS(aifc::benchmark_spec_from_options({{"top_p", 0}}).validate(),
                       doctest::Contains("top_p must be in (0, 1]"), aifc::Error);
}

TEST_CASE("options: command-line words become values of the option's kind") {
  using aifc::OptionKind;
  CHECK(aifc::option_value_from_words(OptionKind::boolean, {}) == true);
  CHECK(aifc::option_value_from_words(OptionKind::integer, {"42"}) == 42);
  CHECK_THROWS_AS(aifc::option_value_from_words(OptionKind::integer, {"4x"}), aifc::Error);
  CHECK(aifc::option_value_from_words(OptionKind::list, {"a,b", "c"}) == json::array({"a,b", "c"}));
  CHECK(aifc::option_schema(OptionKind::integer, "n")["type"] == "integer");
}
