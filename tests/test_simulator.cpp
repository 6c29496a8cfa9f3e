#include <doctest/doctest.h>
#include <httplib.h>

#include <aifc/error.hpp>
#include <aifc/simulator.hpp>

TEST_CASE("simulator: delay specs") {
  CHECK(aifc::DelaySpec::parse("25").a_ms == 25);
  const auto u = aifc::DelaySpec::parse("uniform:1:3");
  CHECK(u.kind == aifc::DelaySpec::Kind::uniform);
  CHECK(u.b_ms == 3);
  CHECK(aifc::DelaySpec::parse("exp:4").kind == aifc::DelaySpec::Kind::exponential);
  CHECK(aifc::DelaySpec::parse("normal:5:1").to_string() == "normal:5:1");
  for (const char* bad : {"", "x", "-1", "uniform:3:1", "gauss:1", "uniform:1"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(aifc::DelaySpec::parse(bad), aifc::Error);
  }
}

TEST_CASE("simulator: endpoints answer like vLLM") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.threads = 8;
  aifc::Simulator sim(cfg);
  const int port = sim.start();
  CHECK(port > 0);
  httplib::Client cli("127.0.0.1", port);
  auto res = cli.Get("/health");
  REQUIRE(res);
  CHECK(res->status == 200);
  res = cli.Get("/v1/models");
  REQUIRE(res);
  CHECK(nlohmann::json::parse(res->body)["data"][0]["id"] == "aifc-sim");
  res = cli.Post("/v1/completions", R"({"model":"other","prompt":"x"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(nlohmann::json::parse(res->body)["message"].get<std::string>().find("does not exist") !=
        std::string::npos);
  res = cli.Post("/v1/completions", "{not json", "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  res = cli.Post("/v1/completions", R"({"prompt":"a b c","max_tokens":3,"stream":true})",
                 "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type").find("text/event-stream") != std::string::npos);
  CHECK(res->body.find("data: [DONE]") != std::string::npos);
  CHECK(res->body.find("\"usage\":{") == std::string::npos);  // not asked for
  res = cli.Post("/tokenize", R"({"prompt":"one two  three"})", "application/json");
  REQUIRE(res);
  CHECK(nlohmann::json::parse(res->body)["count"] == 3);
  res = cli.Get("/metrics");
  REQUIRE(res);
  CHECK(res->body.find("vllm:request_success_total{model_name=\"aifc-sim\"} 1") !=
        std::string::npos);
  CHECK(sim.stats()["requests"] == 3);
  sim.stop();
  sim.stop();
}

TEST_CASE("simulator: LoRA adapters are listed and served as vLLM's") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.threads = 4;
  cfg.lora_modules = {"sql-lora"};
  aifc::Simulator sim(cfg);
  httplib::Client cli("127.0.0.1", sim.start());
  auto res = cli.Get("/v1/models");
  REQUIRE(res);
  const auto models = nlohmann::json::parse(res->body)["data"];
  REQUIRE(models.size() == 2);
  CHECK(models[1]["id"] == "sql-lora");
  CHECK(models[1]["parent"] == "aifc-sim");
  res = cli.Post("/v1/completions", R"({"model":"sql-lora","prompt":"x","max_tokens":2})",
                 "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  res = cli.Post("/v1/completions", R"({"model":"other-lora","prompt":"x"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(sim.stats()["requests_by_adapter"] == nlohmann::json{{"sql-lora", 1}});
  cfg.lora_modules = {"aifc-sim"};
  CHECK_THROWS_AS(cfg.validate(), aifc::Error);
}

TEST_CASE("simulator: fields of the wrong type get a 400 naming the field, never a 500") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.threads = 8;
  aifc::Simulator sim(cfg);
  httplib::Client cli("127.0.0.1", sim.start());
  auto message_of = [&](const char* path, const std::string& body) {
    auto res = cli.Post(path, body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK_FALSE(res->has_header("EXCEPTION_WHAT"));
    return nlohmann::json::parse(res->body).value("message", std::string());
  };
  CHECK(message_of("/v1/completions", R"({"model": 5, "prompt": "a"})") ==
        "model: must be a string");
  CHECK(message_of("/v1/completions", R"({"prompt": "a", "stream": "yes"})") ==
        "stream: must be a boolean");
  CHECK(message_of("/v1/completions", R"([1, 2])") == "the request body must be a JSON object");
  CHECK(message_of("/v1/completions", R"({"prompt": "a", "max_tokens": "8"})") ==
        "max_tokens: must be an integer");
  CHECK(message_of("/v1/completions", R"({"prompt": "a", "max_tokens": 9223372036854775807})")
            .find("does not fit") != std::string::npos);
  CHECK(message_of("/v1/completions", R"({"prompt": "a", "max_tokens": 18446744073709551615})")
            .find("does not fit") != std::string::npos);
  CHECK(message_of("/v1/completions", R"({"prompt": "a", "n": 2})").rfind("n: ", 0) == 0);
  CHECK(message_of("/v1/chat/completions", R"({"messages": [], "ignore_eos": 1})") ==
        "ignore_eos: must be a boolean");
  auto ok = cli.Post("/v1/completions", R"({"prompt": "a", "n": 1, "max_tokens": 2})",
                     "application/json");
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("simulator: a taken port is a clear error; configs are validated") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.threads = 2;
  aifc::Simulator first(cfg);
  cfg.port = first.start();
  aifc::Simulator second(cfg);
  CHECK_THROWS_WITH_AS(second.start(), doctest::Contains("cannot listen"), aifc::Error);
  aifc::SimulatorConfig bad;
  bad.error_rate = 0.7;
  bad.disconnect_rate = 0.7;
  CHECK_THROWS_AS(aifc::Simulator{bad}, aifc::Error);
}

TEST_CASE("simulator: faults are drawn from the seed") {
  auto count_errors = [](std::uint64_t seed) {
    aifc::SimulatorConfig cfg;
    cfg.port = 0;
    cfg.threads = 2;
    cfg.error_rate = 0.5;
    cfg.seed = seed;
    aifc::Simulator sim(cfg);
    httplib::Client cli("127.0.0.1", sim.start());
    std::string pattern;
    for (int i = 0; i < 40; ++i) {
      auto res =
          cli.Post("/v1/completions", R"({"prompt":"a","max_tokens":1})", "application/json");
      pattern += res && res->status == 200 ? '.' : 'x';
    }
    return pattern;
  };
  const auto a = count_errors(1);
  CHECK(a == count_errors(1));
  CHECK(a != count_errors(2));
  CHECK(a.find('x') != std::string::npos);
  CHECK(a.find('.') != std::string::npos);
}

TEST_CASE("simulator: config JSON round trip") {
  aifc::SimulatorConfig c;
  c.ttft = aifc::DelaySpec::parse("uniform:1:2");
  c.itl = aifc::DelaySpec::parse("3");
  c.error_rate = 0.25;
  c.stall = std::chrono::milliseconds(77);
  const auto back = nlohmann::json(c).get<aifc::SimulatorConfig>();
  CHECK(back.ttft.kind == aifc::DelaySpec::Kind::uniform);
  CHECK(back.itl.a_ms == 3);
  CHECK(back.error_rate == 0.25);
  CHECK(back.stall.count() == 77);
  CHECK(nlohmann::json{{"ttft_ms", 12}}.get<aifc::SimulatorConfig>().ttft.a_ms == 12);
  CHECK_THROWS_AS((nlohmann::json{{"itl_ms", "soon"}}.get<aifc::SimulatorConfig>()), aifc::Error);
}

TEST_CASE("simulator: real-server habits are options that round-trip and are checked") {
  aifc::SimulatorConfig c;
  c.tokenizer = aifc::SimTokenizer::llama_cpp;
  c.length_field = aifc::LengthField::max_tokens;
  c.stream_error_style = aifc::StreamErrorStyle::error_field;
  c.close_after_response = std::chrono::milliseconds(3);
  c.max_requests_per_connection = 7;
  c.chars_per_token = 4;
  c.empty_response_rate = 0.5;
  const auto j = nlohmann::json(c);
  CHECK(j["tokenizer"] == "llama_cpp");
  CHECK(j["stream_error_style"] == "error_field");
  const auto back = j.get<aifc::SimulatorConfig>();
  CHECK(nlohmann::json(back) == j);
  CHECK_THROWS_WITH_AS((nlohmann::json{{"tokenizer", "llamacpp"}}.get<aifc::SimulatorConfig>()),
                       doctest::Contains("tokenizer"), aifc::Error);
  CHECK_THROWS_AS((nlohmann::json{{"length_field", "max_tokenz"}}.get<aifc::SimulatorConfig>()),
                  aifc::Error);
  c = {};
  c.chars_per_token = -1;
  CHECK_THROWS_AS(c.validate(), aifc::Error);
  c = {};
  c.empty_response_rate = 0.7;
  c.error_rate = 0.5;
  CHECK_THROWS_AS(c.validate(), aifc::Error);  // rates add up to more than 1
}
