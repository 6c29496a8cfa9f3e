#include <doctest/doctest.h>

#include <aifc/error.hpp>
#include <aifc/options.hpp>
#include <cmath>
#include <fstream>
#include <sstream>

#include "cli.hpp"

using aifc::cli::parse_bench_args;

TEST_CASE("cli: vllm bench serve flags map onto the configs") {
  const auto o = parse_bench_args({"--base-url",
                                   "http://h:9000",
                                   "--endpoint",
                                   "/v1/chat/completions",
                                   "--model=m",
                                   "--dataset-name",
                                   "random",
                                   "--num-prompts",
                                   "77",
                                   "--random-input-len",
                                   "300",
                                   "--random_output_len",
                                   "40",
                                   "--random-range-ratio",
                                   "0.25",
                                   "--request-rate",
                                   "12.5",
                                   "--burstiness",
                                   "0.5",
                                   "--max-concurrency",
                                   "16",
                                   "--goodput",
                                   "ttft:200",
                                   "tpot:20",
                                   "--percentile-metrics",
                                   "ttft,itl,e2el",
                                   "--metric-percentiles",
                                   "50,90,99",
                                   "--seed",
                                   "7",
                                   "--ignore-eos",
                                   "--save-detailed",
                                   "--metadata",
                                   "a=1",
                                   "b=x",
                                   "--header",
                                   "X-Team=hpc",
                                   "--extra-body",
                                   "{\"top_k\":5}",
                                   "--rank",
                                   "1",
                                   "--nranks",
                                   "4"});
  CHECK_FALSE(o.spec.simulator.has_value());
  CHECK(o.spec.client.base_url == "http://h:9000");
  CHECK(o.spec.client.is_chat());
  CHECK(o.spec.client.model == "m");
  CHECK(o.spec.dataset.num_prompts == 77);
  CHECK(o.spec.load.num_requests == 77);
  CHECK(o.spec.dataset.random_input_len == 300);
  CHECK(o.spec.dataset.random_output_len == 40);
  CHECK(o.spec.dataset.random_range_ratio == 0.25);
  CHECK(o.spec.load.request_rate == 12.5);
  CHECK(o.spec.load.burstiness == 0.5);
  CHECK(o.spec.load.max_concurrency == 16);
  CHECK(*o.spec.summary.goodput.ttft_ms == 200);
  CHECK(*o.spec.summary.goodput.tpot_ms == 20);
  CHECK(o.spec.summary.percentile_metrics == std::vector<std::string>{"ttft", "itl", "e2el"});
  CHECK(o.spec.summary.metric_percentiles == std::vector<double>{50, 90, 99});
  CHECK(o.spec.load.seed == 7);
  CHECK(o.spec.dataset.seed == 7);
  CHECK(o.spec.client.ignore_eos);
  CHECK(o.save_result);
  CHECK(o.save_detailed);
  CHECK(o.spec.metadata == std::map<std::string, std::string>{{"a", "1"}, {"b", "x"}});
  CHECK(o.spec.client.headers[0].first == "X-Team");
  CHECK(o.spec.client.extra_body["top_k"] == 5);
  CHECK(o.spec.shard.rank == 1);
  CHECK(o.spec.shard.nranks == 4);
}

TEST_CASE("cli: defaults follow vLLM, and the simulator runs only when asked for") {
  const auto o = parse_bench_args({});
  CHECK(std::isinf(o.spec.load.request_rate));
  CHECK(o.spec.dataset.num_prompts == 1000);
  CHECK_FALSE(o.spec.simulator.has_value());  // no server named: vLLM's 127.0.0.1:8000
  CHECK(o.spec.client.base_url == "http://127.0.0.1:8000");
  const auto sim = parse_bench_args({"--sim"});
  REQUIRE(sim.spec.simulator.has_value());
  CHECK(sim.spec.simulator->model == "aifc-sim");
  CHECK(o.spec.raise_fd_limit);  // the program may change its own process; the library never
  CHECK(o.spec.summary.metric_percentiles == std::vector<double>{99});
}

TEST_CASE("cli: --host and --port make the URL whatever their order") {
  CHECK(parse_bench_args({"--port", "9001", "--host", "gpu7"}).spec.client.base_url ==
        "http://gpu7:9001");
  CHECK(parse_bench_args({"--host", "gpu7", "--port", "9001"}).spec.client.base_url ==
        "http://gpu7:9001");
  CHECK(parse_bench_args({"--port", "9002"}).spec.client.base_url == "http://127.0.0.1:9002");
  CHECK(parse_bench_args({"--host", "gpu8"}).spec.client.base_url == "http://gpu8:8000");
  // Nothing is remembered from one command line to the next.
  CHECK(parse_bench_args({"--port", "9003"}).spec.client.base_url == "http://127.0.0.1:9003");
  CHECK_FALSE(parse_bench_args({"--port", "9003"}).spec.simulator.has_value());
  CHECK_THROWS_AS(parse_bench_args({"--port", "70000"}), aifc::Error);
}

TEST_CASE("cli: bad flags give one clear message") {
  auto message = [](std::vector<std::string> args) {
    try {
      parse_bench_args(args);
    } catch (const aifc::Error& e) {
      CHECK(e.code() == aifc::ErrorCode::invalid_argument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message({"--request-rat", "5"}).find("unknown flag '--request-rat'") != std::string::npos);
  CHECK(message({"--num-prompts", "many"}).find("not a whole number") != std::string::npos);
  CHECK(message({"--num-prompts"}).find("needs a value") != std::string::npos);
  CHECK(message({"--request-rate", "-3"}).find("request_rate") != std::string::npos);
  CHECK(message({"--base-url", "localhost:8000"}).find("http://") != std::string::npos);
  CHECK(message({"--goodput", "latency:5"}).find("latency") != std::string::npos);
  CHECK(message({"--dataset-name", "sharegpt"}).find("dataset_path") != std::string::npos);
  CHECK(message({"--ignore-eos=yes"}).find("takes no value") != std::string::npos);
  CHECK(message({"stray"}).find("unexpected argument") != std::string::npos);
  // The library's message names the option; the program's names the flag.
  CHECK(message({"--transport", "fast"}).find("--transport: 'fast' is not one of") !=
        std::string::npos);
  CHECK(message({"--base-url", "http://h:1", "--sim-ttft-ms", "5"}).find("exclude each other") !=
        std::string::npos);
}

TEST_CASE("cli: a switch has its --no- form and a list flag given twice keeps both") {
  const auto o = parse_bench_args({"--port", "9000", "--no-stream-responses", "--no-keep-records",
                                   "--header", "A=1", "--header", "B=2"});
  CHECK_FALSE(o.spec.client.stream);
  // vLLM's --no-stream is about its Hugging Face datasets: accepted, and the responses still
  // stream.
  CHECK(parse_bench_args({"--no-stream"}).spec.client.stream);
  CHECK_THROWS(parse_bench_args({"--no-no-stream"}));
  CHECK_FALSE(o.spec.keep_records);
  REQUIRE(o.spec.client.headers.size() == 2);
  CHECK(o.spec.client.headers[1].second == "2");
  CHECK_FALSE(
      parse_bench_args({"--port", "9000", "--no-server-tokenizer"}).spec.use_server_tokenizer);
  // --save-detailed keeps the answers' texts (vLLM's generated_texts) unless told not to.
  CHECK_FALSE(parse_bench_args({}).spec.client.capture_text);
  CHECK(parse_bench_args({"--save-detailed"}).spec.client.capture_text);
  CHECK_FALSE(parse_bench_args({"--save-detailed", "--no-capture-text"}).spec.client.capture_text);
  CHECK(parse_bench_args({"--capture-text"}).spec.client.capture_text);
}

TEST_CASE("cli: aifc sim takes the simulator's options") {
  const auto s =
      aifc::cli::parse_sim_args({"--port", "0", "--ttft-ms", "uniform:1:2", "--tokenizer",
                                 "llama_cpp", "--close-after-response", "5"});
  CHECK(s.port == 0);
  CHECK(s.ttft.kind == aifc::DelaySpec::Kind::uniform);
  CHECK(s.tokenizer == aifc::SimTokenizer::llama_cpp);
  CHECK(s.close_after_response == std::chrono::milliseconds(5));
  try {
    aifc::cli::parse_sim_args({"--length-field", "tokens"});
    FAIL("no error");
  } catch (const aifc::Error& e) {
    CHECK(std::string(e.what()).find("--length-field: 'tokens' is not one of") !=
          std::string::npos);
  }
}

TEST_CASE("cli: help is text, not an error") {
  const auto help = aifc::cli::bench_help();
  CHECK(help.rfind("usage: aifc bench", 0) == 0);
  for (const char* flag : {"--base-url", "--request-rate", "--sim-tokenizer", "--goodput"})
    CHECK_MESSAGE(help.find(flag) != std::string::npos, flag);
  // Grouped as vLLM's, in this order; a switch's --no- form is said once in the head.
  std::size_t at = 0;
  for (const char* group : {"\nserver:\n", "\nsampling parameters:\n", "\ndataset:\n", "\nload:\n",
                            "\nresults:\n", "\nsimulator"}) {
    const auto found = help.find(group, at);
    CHECK_MESSAGE(found != std::string::npos, group);
    at = found == std::string::npos ? at : found;
  }
  CHECK(help.find("sampling parameters:\n  --frequency-penalty V") != std::string::npos);
  CHECK(help.find("--no-ignore-eos") == std::string::npos);
  CHECK(help.find("--no-oversample") != std::string::npos);  // vLLM's own flag
  // vLLM's tokenizer flags are accepted; --tokenizer is recorded.
  const auto o = aifc::cli::parse_bench_args({"--tokenizer", "meta-llama/Llama-3.1-8B",
                                              "--tokenizer-mode", "auto", "--trust-remote-code"});
  CHECK(o.spec.tokenizer == "meta-llama/Llama-3.1-8B");
  CHECK(aifc::cli::sim_help().find("--close-after-response") != std::string::npos);
  CHECK_NOTHROW(parse_bench_args({"--help"}));  // the program prints help before parsing
}

TEST_CASE("cli: the default result file name comes from the result document") {
  aifc::cli::BenchOptions o;
  nlohmann::json doc{{"model_id", "org/Llama-3.1-8B"},
                     {"date", "20261128-221500"},
                     {"request_rate", "inf"},
                     {"max_concurrency", 8}};
  // vLLM's pattern: the backend when there is no label, rates as Python prints them.
  doc["backend"] = "openai-chat";
  CHECK(aifc::cli::default_result_filename(o, doc) ==
        "openai-chat-infqps-concurrency8-Llama-3.1-8B-20261128-221500.json");
  o.spec.label = "run7";
  doc["request_rate"] = 12.5;
  doc["max_concurrency"] = nullptr;
  CHECK(aifc::cli::default_result_filename(o, doc) ==
        "run7-12.5qps-Llama-3.1-8B-20261128-221500.json");
  doc["request_rate"] = 20;
  CHECK(aifc::cli::default_result_filename(o, doc) ==
        "run7-20.0qps-Llama-3.1-8B-20261128-221500.json");
  doc["ramp_up_strategy"] = "linear";
  doc["ramp_up_start_rps"] = 1.0;
  doc["ramp_up_end_rps"] = 10.0;
  CHECK(aifc::cli::default_result_filename(o, doc) ==
        "run7-ramp-up-linear-1qps-10qps-Llama-3.1-8B-20261128-221500.json");
}

namespace {

std::vector<std::string> split(const std::string& line, char at) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(line);
  while (std::getline(in, item, at))
    if (at != ' ' || !item.empty()) out.push_back(item);
  if (!line.empty() && line.back() == at && at == '\t') out.emplace_back();
  return out;
}

// vLLM writes a default as Python prints it; aifc's --help as shown_default() does.
std::string as_aifc_shows(const std::string& python) {
  if (python == "None") return "";
  if (python == "False") return "off";
  if (python == "True") return "on";
  if (python.size() > 2 && python.compare(python.size() - 2, 2, ".0") == 0)
    return python.substr(0, python.size() - 2);
  return python;
}

}  // namespace

TEST_CASE("cli: every flag of vllm bench serve is taken or refused with a reason") {
  std::ifstream file(AIFC_SOURCE_DIR "/tests/vllm/bench_serve_flags.tsv");
  REQUIRE(file.good());
  std::string line;
  int rows = 0, refused = 0;
  bool header_seen = false;
  while (std::getline(file, line)) {
    if (line.empty() || line.front() == '#') continue;
    if (!header_seen) {  // the column names
      header_seen = true;
      continue;
    }
    const auto cells = split(line, '\t');
    REQUIRE_MESSAGE(cells.size() == 6, line);
    const std::string& flag = cells[0];
    const std::string& vllm_default = cells[1];
    const std::string& status = cells[2];
    const std::string& aifc_default = cells[3];
    const std::string& note = cells[5];
    INFO("vLLM flag ", flag, " (", status, ")");
    ++rows;
    std::vector<std::string> args{flag};
    for (auto& word : split(cells[4], ' ')) args.push_back(word);
    if (status == "refused") {
      ++refused;
      std::string message;
      try {
        parse_bench_args(args);
      } catch (const aifc::Error& e) {
        message = e.what();
      }
      CHECK_MESSAGE(message.find(" is not supported: ") != std::string::npos, message);
      continue;
    }
    CHECK_NOTHROW(parse_bench_args(args));
    CHECK((status == "same" || status == "same-meaning" || status == "differs" ||
           status == "no-op" || status == "program"));
    if (status != "same" && status != "program") CHECK_MESSAGE(!note.empty(), "say why");
    if (aifc_default == "-") continue;
    std::string name = flag.substr(2);
    std::replace(name.begin(), name.end(), '-', '_');
    const auto* option = aifc::find_benchmark_option(name);
    REQUIRE(option != nullptr);
    CHECK(aifc::shown_default(option->default_value) == aifc_default);
    if (status == "same") CHECK(as_aifc_shows(vllm_default) == aifc_default);
  }
  // The table is whole: vLLM's 102 flags (serve.py and its dataset parser).
  CHECK(rows == 102);
  CHECK(refused == 22);
}
