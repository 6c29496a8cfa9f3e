#include <doctest/doctest.h>

#include <aifc/benchmark.hpp>
#include <aifc/error.hpp>
#include <aifc/simulator.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace {

aifc::BenchmarkSpec simulated(std::int64_t requests = 20) {
  aifc::BenchmarkSpec spec;
  aifc::SimulatorConfig sim;
  sim.port = 0;
  sim.ttft = aifc::DelaySpec::parse("2");
  sim.itl = aifc::DelaySpec::parse("1");
  spec.simulator = sim;
  spec.dataset.num_prompts = requests;
  spec.dataset.random_input_len = 12;
  spec.dataset.random_output_len = 3;
  spec.load.num_requests = requests;
  return spec;
}

// The same workload against a simulator the test runs itself, to read its stats.
aifc::BenchmarkSpec against(const aifc::Simulator& server, std::int64_t requests) {
  auto spec = simulated(requests);
  spec.client.model = spec.simulator->model;
  spec.simulator.reset();
  spec.client.base_url = server.base_url();
  return spec;
}

}  // namespace

TEST_CASE("benchmark: a spec round-trips through JSON, without the API key") {
  auto spec = simulated();
  spec.client.api_key = "sk-secret";
  spec.client.endpoint = "/v1/chat/completions";
  spec.load.request_rate = 12.5;
  spec.load.max_concurrency = 3;
  spec.shard = {2, 5};
  spec.summary.goodput = aifc::GoodputSlo::parse("ttft:250");
  spec.transport = aifc::Transport::threads;
  spec.keep_records = false;
  const nlohmann::json j = spec;
  CHECK(j.dump().find("sk-secret") == std::string::npos);
  const auto back = j.get<aifc::BenchmarkSpec>();
  CHECK(nlohmann::json(back) == j);
  CHECK(back.client.api_key.empty());
  CHECK(back.load.request_rate == 12.5);
  CHECK(back.shard.rank == 2);
  CHECK(back.simulator.has_value());
  CHECK(*back.summary.goodput.ttft_ms == 250);
  CHECK(nlohmann::json::object().get<aifc::BenchmarkSpec>().transport ==
        aifc::Transport::automatic);
}

TEST_CASE("benchmark: bad specs name the section and the field") {
  auto message = [](const aifc::BenchmarkSpec& spec) {
    try {
      spec.validate();
    } catch (const aifc::Error& e) {
      CHECK(e.code() == aifc::ErrorCode::invalid_argument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto spec = simulated();
  spec.load.request_rate = -1;
  CHECK(message(spec).rfind("load: ", 0) == 0);
  CHECK(message(spec).find("request_rate") != std::string::npos);
  spec = simulated();
  spec.dataset.num_prompts = 0;
  CHECK(message(spec).rfind("dataset: num_prompts", 0) == 0);
  spec = simulated();
  spec.client.endpoint = "v1/completions";
  CHECK(message(spec).rfind("client: endpoint", 0) == 0);
  spec = simulated();
  spec.simulator->chars_per_token = -2;
  CHECK(message(spec).rfind("simulator: chars_per_token", 0) == 0);
  spec = simulated();
  spec.max_clients = 0;
  CHECK(message(spec).find("max_clients") != std::string::npos);
  CHECK_THROWS_WITH_AS((nlohmann::json{{"laod", {}}}.get<aifc::BenchmarkSpec>()),
                       doctest::Contains("unknown key 'laod'"), aifc::Error);
  CHECK_THROWS_WITH_AS(
      (nlohmann::json{{"load", {{"request_rate", "fast"}}}}.get<aifc::BenchmarkSpec>()),
      doctest::Contains("load"), aifc::Error);
  CHECK_THROWS_AS(aifc::Benchmark{spec}, aifc::Error);  // the constructor validates too
  // A number no integer field can take is refused by its place, not cast (undefined behaviour;
  // found by fuzz/fuzz_specs.cpp).
  CHECK_THROWS_WITH_AS(
      nlohmann::json::parse(R"({"load": {"max_concurrency": 4.3e103}})").get<aifc::BenchmarkSpec>(),
      doctest::Contains("benchmark spec: load.max_concurrency: 4.3e+103 is out of range"),
      aifc::Error);  // A fraction for a whole-number field is refused, not truncated; a whole one
                     // written with a
  // point is that number.
  CHECK_THROWS_WITH_AS(
      nlohmann::json::parse(R"({"load": {"max_concurrency": 4.7}})").get<aifc::BenchmarkSpec>(),
      doctest::Contains("benchmark spec: load.max_concurrency: must be a whole number (got 4.7)"),
      aifc::Error);
  CHECK_THROWS_WITH_AS(nlohmann::json::parse(R"({"dataset": {"random_input_len": 10.5}})")
                           .get<aifc::BenchmarkSpec>(),
                       doctest::Contains("dataset.random_input_len: must be a whole number"),
                       aifc::Error);
  CHECK(nlohmann::json::parse(R"({"load": {"max_concurrency": 4.0, "request_rate": 2.5}})")
            .get<aifc::BenchmarkSpec>()
            .load.max_concurrency == 4);
}

TEST_CASE("benchmark: runs a spec against its simulator and writes vLLM's result keys") {
  aifc::Benchmark benchmark(simulated(20));
  CHECK(benchmark.spec().client.model == "aifc-sim");
  CHECK(benchmark.spec().client.base_url.rfind("http://127.0.0.1:", 0) == 0);
  CHECK(benchmark.tokenizer() == aifc::TokenizerApi::vllm);
  CHECK(benchmark.warnings().empty());
  const auto result = benchmark.run();
  CHECK(result.summary.completed == 20);
  CHECK(result.summary.total_input_tokens == 20 * 12);
  const auto doc = benchmark.result_document(result, true);
  for (const char* key :
       {"completed", "failed", "request_throughput", "output_throughput", "mean_ttft_ms",
        "p99_itl_ms", "date", "model_id", "num_prompts", "request_rate", "max_concurrency",
        "input_lens", "ttfts", "aifc_spec", "latencies", "queue_times", "rtfx"})
    CHECK_MESSAGE(doc.contains(key), key);
  CHECK(doc["aifc_spec"].get<aifc::BenchmarkSpec>().client.model == "aifc-sim");
  CHECK(benchmark.summary_table(result).find("Successful requests:") != std::string::npos);
}

TEST_CASE("benchmark: a detailed result as text is the document, its records written directly") {
  aifc::Benchmark benchmark(simulated(12));
  const auto result = benchmark.run();
  const auto whole = benchmark.result_document(result, true);
  const auto without = benchmark.result_document(result, true, /*records=*/false);
  CHECK(!without.contains("records"));
  CHECK(without.contains("ttfts"));
  for (const int indent : {-1, 0, 2}) {
    CAPTURE(indent);
    const auto text = aifc::result_document_text(without, result, indent);
    auto back = nlohmann::json::parse(text);
    back["date"] = whole["date"];  // stamped when each document was made
    CHECK(back == whole);
    CHECK(back["records"].size() == 12);
    // One line, or indented like the rest (a record a line).
    CHECK((text.find('\n') == std::string::npos) == (indent < 0));
  }
  aifc::BenchmarkResult none;
  CHECK(nlohmann::json::parse(aifc::result_document_text(nlohmann::json::object(), none, 2)) ==
        nlohmann::json{{"records", nlohmann::json::array()}});
  CHECK_THROWS_AS(aifc::result_document_text(nlohmann::json::array(), none), aifc::Error);
}

TEST_CASE("benchmark: the per-request arrays are in request order, as vLLM's") {
  // Varied lengths and concurrent requests finish out of order; vLLM's arrays follow the order
  // the requests were sent in, and so do aifc's.
  auto spec = simulated(30);
  spec.load.max_concurrency = 6;
  spec.dataset.random_range_ratio = 0.9;
  spec.simulator->itl = aifc::DelaySpec::parse("uniform:1:8");
  aifc::Benchmark benchmark(spec);
  const auto result = benchmark.run();
  const auto doc = benchmark.result_document(result, true);
  REQUIRE(doc["records"].size() == 30);
  bool finished_out_of_order = false;
  for (std::size_t i = 1; i < result.records.size(); ++i)
    finished_out_of_order |= result.records[i].index < result.records[i - 1].index;
  CHECK(finished_out_of_order);
  for (std::size_t i = 0; i < 30; ++i) {
    const auto& rec = doc["records"][i];
    CHECK(rec["index"] == i);
    CHECK(doc["input_lens"][i] == rec["input_tokens"]);
    CHECK(doc["output_lens"][i] == rec["output_tokens"]);
  }
}

TEST_CASE("benchmark: a server without a tokenizer is a warning, not an error") {
  auto spec = simulated(5);
  spec.simulator->tokenizer = aifc::SimTokenizer::none;
  aifc::Benchmark benchmark(spec);
  CHECK(benchmark.tokenizer() == aifc::TokenizerApi::none);
  REQUIRE(benchmark.warnings().size() == 1);
  CHECK(benchmark.warnings()[0].find("/tokenize") != std::string::npos);
  CHECK(benchmark.run().summary.completed == 5);

  spec = simulated(5);
  spec.simulator.reset();
  spec.client.base_url = "http://127.0.0.1:1";
  CHECK_THROWS_AS(aifc::Benchmark{spec}, aifc::Error);  // unreachable: a clear set-up error
}

TEST_CASE("benchmark: without oversampling a short file sends each prompt once, and says so") {
  const auto path = std::filesystem::temp_directory_path() / "aifc_test_short.jsonl";
  std::ofstream(path) << "\"one two\"\n\"three four\"\n\"five six\"\n";
  auto spec = simulated(10);
  spec.dataset.dataset_name = aifc::DatasetKind::jsonl;
  spec.dataset.dataset_path = path.string();
  spec.dataset.custom_output_len = 2;
  spec.dataset.no_oversample = true;
  aifc::Benchmark benchmark(spec);
  CHECK(benchmark.spec().load.num_requests == 3);
  REQUIRE(benchmark.warnings().size() == 1);
  CHECK(benchmark.warnings()[0].find("3 usable prompts") != std::string::npos);
  const auto result = benchmark.run();
  CHECK(result.summary.completed == 3);
  CHECK(result.summary.total_output_tokens == 6);
  // Oversampled (the default): ten requests from three prompts.
  spec.dataset.no_oversample = false;
  CHECK(aifc::Benchmark(spec).run().summary.completed == 10);
}

TEST_CASE("benchmark: with a ready check it waits for a server that comes up late") {
  // A free port, closed again: nothing listens there until the simulator starts.
  int port = 0;
  {
    aifc::SimulatorConfig probe;
    probe.port = 0;
    aifc::Simulator s(probe);
    s.start();
    port = s.port();
  }
  auto spec = simulated(4);
  aifc::SimulatorConfig late = *spec.simulator;
  late.port = port;
  spec.simulator.reset();
  spec.client.base_url = "http://127.0.0.1:" + std::to_string(port);
  spec.client.model = late.model;
  spec.ready_check_timeout = std::chrono::seconds(1);
  CHECK_THROWS_WITH_AS(aifc::Benchmark{spec}, doctest::Contains("not ready within 1 s"),
                       aifc::Error);
  aifc::Simulator server(late);
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    server.start();
  });
  spec.ready_check_timeout = std::chrono::seconds(120);
  aifc::Benchmark benchmark(spec);  // returns once the server answers
  starter.join();
  CHECK(benchmark.run().summary.completed == 4);
  server.stop();
}

TEST_CASE("benchmark: a ramp-up writes vLLM's rps_change_events, one per whole rate reached") {
  auto spec = simulated(30);
  spec.load.ramp_up_strategy = aifc::RampUp::linear;
  spec.load.ramp_up_start_rps = 200;
  spec.load.ramp_up_end_rps = 205;
  aifc::Benchmark benchmark(spec);
  const auto result = benchmark.run();
  CHECK(result.summary.completed == 30);
  const auto doc = benchmark.result_document(result, false);
  CHECK(doc["ramp_up_strategy"] == "linear");
  CHECK(doc["ramp_up_start_rps"] == 200);
  CHECK(doc["ramp_up_end_rps"] == 205);
  const auto& events = doc.at("rps_change_events");
  REQUIRE(events.size() == 6);
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i]["rps"] == 200 + static_cast<int>(i));
    const auto stamp = events[i]["timestamp"].get<std::string>();
    CHECK(stamp.size() == 26);  // 2026-11-29T19:05:01.123456
    CHECK(stamp[10] == 'T');
    if (i > 0) CHECK(stamp >= events[i - 1]["timestamp"].get<std::string>());
  }
}

TEST_CASE("benchmark: LoRA adapters are spread over the requests as vLLM's --lora-assignment") {
  aifc::SimulatorConfig sim = *simulated(1).simulator;
  sim.lora_modules = {"sql", "chat", "code"};
  aifc::Simulator server(sim);
  server.start();
  auto spec = against(server, 12);
  spec.client.lora_modules = {"sql", "chat", "code"};
  spec.client.lora_assignment = aifc::LoraAssignment::round_robin;
  const auto result = aifc::Benchmark(spec).run();
  CHECK(result.summary.completed == 12);
  CHECK(server.stats()["requests_by_adapter"] ==
        nlohmann::json{{"chat", 4}, {"code", 4}, {"sql", 4}});
  // An adapter the server does not serve fails as on vLLM (404), one record per request.
  spec.client.lora_modules = {"sql", "missing"};
  const auto half = aifc::Benchmark(spec).run();
  CHECK(half.summary.completed == 6);
  CHECK(half.summary.failed == 6);
  REQUIRE_FALSE(half.first_errors.empty());
  CHECK(half.first_errors[0].find("does not exist") != std::string::npos);
  // The random assignment is drawn per request from the seed: every shard draws alike.
  aifc::ClientConfig c;
  c.lora_modules = {"a", "b", "c"};
  std::map<std::string, int> drawn;
  for (std::uint64_t i = 0; i < 300; ++i) {
    ++drawn[c.model_for_request(i, 7)];
    CHECK(c.model_for_request(i, 7) == c.model_for_request(i, 7));
  }
  CHECK(drawn.size() == 3);
  for (const auto& [name, n] : drawn) CHECK(n > 60);
  bool seed_matters = false;
  for (std::uint64_t i = 0; i < 20; ++i)
    seed_matters |= c.model_for_request(i, 7) != c.model_for_request(i, 8);
  CHECK(seed_matters);
  c.lora_modules.clear();
  c.model = "base";
  CHECK(c.model_for_request(5, 7) == "base");
}

TEST_CASE("benchmark: probe requests run beside the workload and are reported apart") {
  aifc::SimulatorConfig sim = *simulated(1).simulator;
  sim.itl = aifc::DelaySpec::parse("5");
  aifc::Simulator server(sim);
  server.start();
  auto spec = against(server, 20);
  spec.load.request_rate = 40;  // half a second at least
  spec.load.max_concurrency = 1;
  spec.probe_request_rate = 20;
  spec.load.num_warmups = 2;
  aifc::Benchmark benchmark(spec);
  const auto result = benchmark.run();
  CHECK(result.summary.completed == 20);  // the probes are not in the metrics
  REQUIRE(result.probes.size() >= 2);
  // As vLLM's: the probes start with the measured run, after the warm-ups.
  aifc::MonoNanos warmups_end = 0;
  for (const auto& r : result.records)
    if (r.warmup) warmups_end = std::max(warmups_end, r.end_ns);
  CHECK(warmups_end > 0);
  for (const auto& probe : result.probes) CHECK(probe.send_ns > warmups_end);
  std::uint64_t answered = 0;
  for (const auto& probe : result.probes) {
    CHECK(probe.requested_output_tokens == 1);
    answered += probe.ok() ? 1 : 0;
  }
  // The simulator counts a stream after writing its [DONE], so the client can see the end a
  // moment before the count moves: wait for it (generously; this asserts no time).
  auto server_ok = [&] { return server.stats()["ok"].get<std::uint64_t>(); };
  for (int i = 0; i < 500 && server_ok() < 22 + answered; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(server_ok() == 22 + answered);  // with the two warm-ups
  const auto doc = benchmark.result_document(result);
  CHECK(doc["probe_completed"] == answered);
  CHECK(doc["probe_failed"] == result.probes.size() - answered);
  CHECK(doc["probe_max_e2el_ms"].get<double>() >= doc["probe_median_e2el_ms"].get<double>());
  CHECK(benchmark.summary_table(result).find("Probe requests completed:") != std::string::npos);
  spec.probe_request_rate = -1;
  CHECK_THROWS_WITH_AS(spec.validate(), doctest::Contains("probe_request_rate"), aifc::Error);
  spec.probe_request_rate = std::nan("");
  CHECK_THROWS_AS(spec.validate(), aifc::Error);
  server.stop();
}

TEST_CASE("benchmark: a server's speculative decoding is reported as vLLM's spec_decode keys") {
  auto spec = simulated(12);
  spec.simulator->num_speculative_tokens = 2;
  spec.simulator->spec_acceptance_rate = 0.5;
  spec.dataset.random_output_len = 30;
  spec.load.num_warmups = 4;  // as vLLM's, outside the counted window
  spec.load.max_concurrency = 4;
  aifc::Benchmark benchmark(spec);
  const auto result = benchmark.run();
  REQUIRE(result.summary.completed == 12);
  REQUIRE(result.spec_decode.has_value());
  const auto& stats = *result.spec_decode;
  CHECK(stats.num_drafts > 0);
  CHECK(stats.draft_tokens == 2 * stats.num_drafts);
  CHECK(stats.accepted_tokens <= stats.draft_tokens);
  CHECK(stats.acceptance_rate ==
        doctest::Approx(100.0 * static_cast<double>(stats.accepted_tokens) /
                        static_cast<double>(stats.draft_tokens)));
  CHECK(stats.per_position_acceptance_rates.size() == 2);
  // Exactly the steps of the counted requests: every token after the first of each, plus at
  // most a cut-short step each; the warm-ups' steps (4 x 29 tokens) would not fit under the
  // bound, so they were left out.
  std::int64_t counted_tokens = 0;
  for (const auto& r : result.records)
    if (!r.warmup) counted_tokens += r.output_tokens - 1;
  CHECK(stats.num_drafts + stats.accepted_tokens >= counted_tokens);
  CHECK(stats.num_drafts + stats.accepted_tokens < counted_tokens + 12 * 3);
  const auto doc = benchmark.result_document(result);
  CHECK(doc["spec_decode_num_drafts"] == stats.num_drafts);
  CHECK(doc["spec_decode_acceptance_length"].get<double>() > 1.0);
  CHECK(benchmark.summary_table(result).find("Speculative Decoding") != std::string::npos);
  // A server without the counters: no keys and no section.
  aifc::Benchmark plain(simulated(3));
  const auto without = plain.run();
  CHECK_FALSE(without.spec_decode.has_value());
  CHECK_FALSE(plain.result_document(without).contains("spec_decode_num_drafts"));
  CHECK(plain.summary_table(without).find("Speculative Decoding") == std::string::npos);
}

TEST_CASE("benchmark: --profile switches the server's profiler on around the run") {
  auto spec = simulated(5);
  spec.profile = true;
  aifc::Benchmark benchmark(spec);
  const auto result = benchmark.run();
  CHECK(result.summary.completed == 5);
  CHECK(result.warnings.empty());
  // The benchmark's own simulator counted the two calls.
  aifc::SimulatorConfig sim = *spec.simulator;
  aifc::Simulator server(sim);
  server.start();
  auto direct = against(server, 3);
  direct.profile = true;
  CHECK(aifc::Benchmark(direct).run().warnings.empty());
  CHECK(server.stats()["profiles_started"] == 1);
  CHECK(server.stats()["profiles_stopped"] == 1);
  // A server that refuses (here: a key it does not know) gets a warning, and the run stands.
  aifc::SimulatorConfig locked = sim;
  locked.api_key = "the-right-key";
  aifc::Simulator guarded(locked);
  guarded.start();
  direct.client.base_url = guarded.base_url();
  direct.client.api_key = "a-wrong-key";
  direct.use_server_tokenizer = false;
  const auto refused = aifc::Benchmark(direct).run();
  REQUIRE(refused.warnings.size() == 2);
  CHECK(refused.warnings[0].find("POST /start_profile answered HTTP 401") != std::string::npos);
  CHECK(refused.summary.failed == 3);
  CHECK(guarded.stats()["profiles_started"] == 0);
  guarded.stop();
  server.stop();
}

TEST_CASE("benchmark: a timed trace is replayed at its own times") {
  const auto path = std::filesystem::temp_directory_path() / "aifc_test_replay.jsonl";
  std::ofstream(path) << "{\"timestamp\": 10.0, \"input_length\": 8, \"output_length\": 2}\n"
                         "{\"timestamp\": 10.05, \"input_length\": 8, \"output_length\": 2}\n"
                         "{\"timestamp\": 10.2, \"input_length\": 8, \"output_length\": 2}\n";
  auto spec = simulated(10);
  spec.dataset.dataset_name = aifc::DatasetKind::timed_trace;
  spec.dataset.dataset_path = path.string();
  spec.load.self_timed = true;
  aifc::Benchmark benchmark(spec);
  CHECK(benchmark.spec().load.num_requests == 3);  // the trace's length
  REQUIRE(benchmark.warnings().size() == 1);
  CHECK(benchmark.warnings()[0].find("a trace is not repeated") != std::string::npos);
  const auto result = benchmark.run();
  CHECK(result.summary.completed == 3);
  std::vector<std::int64_t> offsets_ms;
  for (const auto& r : result.records)
    offsets_ms.push_back((r.scheduled_ns - result.start_ns) / 1'000'000);
  std::sort(offsets_ms.begin(), offsets_ms.end());
  CHECK(offsets_ms == std::vector<std::int64_t>{0, 50, 200});
}
