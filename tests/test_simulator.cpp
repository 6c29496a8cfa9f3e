#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aifc/error.hpp>
#include <aifc/server_metrics.hpp>
#include <aifc/simulator.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    sent += static_cast<std::size_t>(n);
  }
}

// Reads until `done(received)` or the peer closes (generous deadline: nothing here is timed).
std::string read_until(int fd, const std::function<bool(const std::string&)>& done) {
  std::string received;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  char buffer[16384];
  while (!done(received) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    received.append(buffer, static_cast<std::size_t>(n));
  }
  return received;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string completion_request(const std::string& body, const std::string& extra_headers = "") {
  return "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

int threads_of_this_process() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return -1;
}

template <class Predicate>
bool eventually(Predicate p) {  // polls for up to a minute: a condition, not a time
  for (int i = 0; i < 6000; ++i) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return p();
}

}  // namespace

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
  // Its own accuracy: the three streamed chunks, each sent at or after its due time.
  CHECK(res->body.find("aifc_sim_send_lateness_seconds_count 3\n") != std::string::npos);
  CHECK(sim.stats()["requests"] == 3);
  CHECK(sim.stats()["send_lateness_us"]["count"] == 3);
  CHECK(sim.stats()["send_lateness_us"]["p50"].get<double>() >= 0);
  sim.stop();
  sim.stop();
}

TEST_CASE("simulator: LoRA adapters are listed and served as vLLM's") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
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

TEST_CASE("simulator: serves https with a certificate and its key, and names a wrong file") {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / ("aifc_sim_tls_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string(),
             other_key = (dir / "other.pem").string();
  REQUIRE(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                       "-keyout " +
                       key + " -out " + cert +
                       " >/dev/null 2>&1 && openssl genrsa "
                       "-out " +
                       other_key + " 2048 >/dev/null 2>&1")
                          .c_str()) == 0);
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.threads = 1;
  cfg.ssl_certfile = cert;
  CHECK_THROWS_WITH_AS(cfg.validate(), doctest::Contains("go together"), aifc::Error);
  cfg.ssl_keyfile = other_key;
  CHECK_THROWS_WITH_AS(aifc::Simulator(cfg).start(), doctest::Contains("mismatch"), aifc::Error);
  cfg.ssl_keyfile = (dir / "missing.pem").string();
  CHECK_THROWS_WITH_AS(aifc::Simulator(cfg).start(), doctest::Contains("ssl_keyfile"), aifc::Error);
  cfg.ssl_keyfile = key;
  aifc::Simulator sim(cfg);
  const int port = sim.start();
  CHECK(sim.base_url() == "https://127.0.0.1:" + std::to_string(port));
  httplib::SSLClient tls("127.0.0.1", port);
  tls.enable_server_certificate_verification(false);
  const auto res =
      tls.Post("/v1/completions", R"({"prompt":"a b","max_tokens":3})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(nlohmann::json::parse(res->body)["usage"]["completion_tokens"] == 3);
  // Plain HTTP to a TLS port is no answer, not a crash.
  httplib::Client plain("127.0.0.1", port);
  plain.set_read_timeout(std::chrono::seconds(5));
  CHECK_FALSE(plain.Get("/health"));
  CHECK(tls.Get("/health"));
  sim.stop();
  fs::remove_all(dir);
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
  c.num_speculative_tokens = 4;
  c.spec_acceptance_rate = 0.25;
  const auto j = nlohmann::json(c);
  CHECK(j["num_speculative_tokens"] == 4);
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

TEST_CASE("simulator: speculative decoding shows on /metrics as vLLM's counters") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.num_speculative_tokens = 3;
  cfg.spec_acceptance_rate = 0.6;
  aifc::Simulator sim(cfg);
  const int port = sim.start();
  httplib::Client cli("127.0.0.1", port);
  const int requests = 40, tokens = 25;
  for (int i = 0; i < requests; ++i) {
    const bool stream = i % 2 == 0;  // streamed and whole answers count alike
    auto res = cli.Post(
        "/v1/completions",
        nlohmann::json{{"prompt", "a b"}, {"max_tokens", tokens}, {"stream", stream}}.dump(),
        "application/json");
    REQUIRE(res);
    REQUIRE(res->status == 200);
  }
  auto res = cli.Get("/metrics");
  REQUIRE(res);
  CHECK(res->body.find("vllm:spec_decode_num_accepted_tokens_per_pos_total{engine=\"0\",model_"
                       "name=\"aifc-sim\",position=\"2\"}") != std::string::npos);
  const auto counters = aifc::parse_spec_decode_counters(res->body);
  REQUIRE(counters.has_value());
  // Every token after the first of each answer comes from a step; a step emits its accepted
  // drafts plus one, and the last step of an answer may be cut short.
  const double steps = counters->num_drafts, accepted = counters->num_accepted_tokens;
  CHECK(steps + accepted >= requests * (tokens - 1));
  CHECK(steps + accepted < requests * (tokens - 1) + requests * 4);
  CHECK(counters->num_draft_tokens == doctest::Approx(3 * steps));
  REQUIRE(counters->accepted_per_position.size() == 3);
  double sum = 0;
  for (const auto& [position, value] : counters->accepted_per_position) sum += value;
  CHECK(sum == doctest::Approx(accepted));
  // Acceptance falls with the position: 0.6, 0.36, 0.216 of the steps.
  CHECK(counters->accepted_per_position.at(0) > counters->accepted_per_position.at(1));
  CHECK(counters->accepted_per_position.at(1) > counters->accepted_per_position.at(2));
  CHECK(counters->accepted_per_position.at(0) / steps == doctest::Approx(0.6).epsilon(0.15));
  // Off by default: no counters at all, as a vLLM without speculative decoding.
  aifc::SimulatorConfig plain;
  plain.port = 0;
  aifc::Simulator off(plain);
  httplib::Client off_cli("127.0.0.1", off.start());
  REQUIRE(off_cli.Post("/v1/completions", R"({"prompt":"a","max_tokens":5})", "application/json"));
  res = off_cli.Get("/metrics");
  REQUIRE(res);
  CHECK_FALSE(aifc::parse_spec_decode_counters(res->body).has_value());
  // Checked settings.
  cfg.num_speculative_tokens = -1;
  CHECK_THROWS_WITH_AS(cfg.validate(), doctest::Contains("num_speculative_tokens"), aifc::Error);
  cfg.num_speculative_tokens = 2;
  cfg.spec_acceptance_rate = 1.5;
  CHECK_THROWS_WITH_AS(cfg.validate(), doctest::Contains("spec_acceptance_rate"), aifc::Error);
}

TEST_CASE("simulator: one connection carries any number of requests, pipelined ones in order") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  aifc::Simulator sim(cfg);
  const int port = sim.start();
  const int fd = connect_to(port);
  // Three requests in one write: answered in the order sent (ids count up).
  std::string three;
  for (int i = 0; i < 3; ++i) three += completion_request(R"({"prompt":"a","max_tokens":1})");
  send_all(fd, three);
  const auto answers = read_until(fd, [](const std::string& r) { return count_of(r, "}}") >= 3; });
  CHECK(count_of(answers, "HTTP/1.1 200 OK") == 3);
  const auto first = answers.find("cmpl-0"), second = answers.find("cmpl-1"),
             third = answers.find("cmpl-2");
  CHECK(first < second);
  CHECK(second < third);
  CHECK(third != std::string::npos);
  // Unlimited keep-alive by default, as vLLM's server: no close after 5 (cpp-httplib's habit).
  for (int i = 0; i < 50; ++i) {
    send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto answer = read_until(
        fd, [](const std::string& r) { return r.find("\r\n\r\n") != std::string::npos; });
    REQUIRE(answer.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(answer.find("Connection: close") == std::string::npos);
  }
  ::close(fd);

  // A cap is announced with Keep-Alive: max=N, then Connection: close and the close itself.
  cfg.max_requests_per_connection = 2;
  aifc::Simulator capped(cfg);
  const int capped_fd = connect_to(capped.start());
  send_all(capped_fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  auto answer = read_until(
      capped_fd, [](const std::string& r) { return r.find("\r\n\r\n") != std::string::npos; });
  CHECK(answer.find("Keep-Alive: timeout=5, max=1") != std::string::npos);
  send_all(capped_fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  answer = read_until(capped_fd, [](const std::string&) { return false; });  // to the close
  CHECK(answer.find("Connection: close") != std::string::npos);
  ::close(capped_fd);
}

TEST_CASE("simulator: bad requests get HTTP errors, and a client that leaves ends its stream") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.ttft = aifc::DelaySpec::parse("10");
  cfg.itl = aifc::DelaySpec::parse("1000");
  aifc::Simulator sim(cfg);
  const int port = sim.start();
  auto exchange = [port](const std::string& request) {
    const int fd = connect_to(port);
    send_all(fd, request);
    auto answer = read_until(fd, [](const std::string& r) {
      const auto head = r.find("\r\n\r\n");
      return head != std::string::npos && r.find('}', head) != std::string::npos;
    });
    ::close(fd);
    return answer;
  };
  auto garbage = exchange("NONSENSE\r\n\r\n");
  CHECK(garbage.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(garbage.find("Connection: close") != std::string::npos);
  auto unknown = exchange("GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(unknown.rfind("HTTP/1.1 404", 0) == 0);
  CHECK(unknown.find(R"({"detail":"Not Found"})") != std::string::npos);
  auto wrong = exchange("GET /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(wrong.rfind("HTTP/1.1 405", 0) == 0);
  // Expect: 100-continue gets its 100 before the body is sent.
  const int expecting = connect_to(port);
  const std::string body = R"({"prompt":"a b","max_tokens":1})";
  send_all(expecting,
           "POST /tokenize HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n");
  CHECK(read_until(expecting, [](const std::string& r) {
          return r.find("\r\n\r\n") != std::string::npos;
        }).rfind("HTTP/1.1 100 Continue", 0) == 0);
  send_all(expecting, body);
  CHECK(read_until(expecting, [](const std::string& r) {
          return r.find("\"count\":2") != std::string::npos;
        }).find("\"count\":2") != std::string::npos);
  ::close(expecting);

  const int fd = connect_to(port);
  send_all(fd, completion_request(R"({"prompt":"a","max_tokens":100,"stream":true})"));
  read_until(fd, [](const std::string& r) { return r.find("data: ") != std::string::npos; });
  CHECK(sim.stats()["running"] == 1);
  ::close(fd);  // the stream ends with its client, not 99 s later
  CHECK(eventually([&] { return sim.stats()["running"] == 0; }));
  CHECK(sim.stats()["ok"] == 0);
}

TEST_CASE("simulator: thousands of concurrent streams are served by a few threads") {
  // Two sockets per stream in this process (ours and the simulator's).
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  const int streams = static_cast<int>(std::min<rlim_t>(2000, (files.rlim_cur - 100) / 2));
  MESSAGE("streams: " << streams);
  REQUIRE(streams >= 400);
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.threads = 1;
  cfg.ttft = aifc::DelaySpec::parse("20");
  cfg.itl = aifc::DelaySpec::parse("20");
  aifc::Simulator sim(cfg);
  const int port = sim.start();
  const int threads_before = threads_of_this_process();
  std::vector<int> fds;
  for (int i = 0; i < streams; ++i) {
    fds.push_back(connect_to(port));
    send_all(
        fds.back(),
        completion_request(R"({"prompt":"a b","max_tokens":20,"stream":true,"ignore_eos":true})"));
  }
  CHECK(threads_of_this_process() == threads_before);  // no thread per connection
  std::vector<std::string> received(fds.size());
  std::size_t finished = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  std::vector<pollfd> polled;
  for (int fd : fds) polled.push_back({fd, POLLIN, 0});
  char buffer[16384];
  while (finished < fds.size() && std::chrono::steady_clock::now() < deadline) {
    if (::poll(polled.data(), polled.size(), 100) <= 0) continue;
    for (std::size_t i = 0; i < polled.size(); ++i) {
      if (!(polled[i].revents & POLLIN)) continue;
      const ssize_t n = ::recv(polled[i].fd, buffer, sizeof buffer, 0);
      if (n > 0) received[i].append(buffer, static_cast<std::size_t>(n));
      if (n <= 0 ||
          received[i].find("0\r\n\r\n", received[i].find("[DONE]")) != std::string::npos) {
        polled[i].events = 0;
        ++finished;
      }
    }
  }
  std::size_t complete = 0, tokens = 0;
  for (const auto& r : received) {
    complete += r.find("data: [DONE]") != std::string::npos ? 1 : 0;
    tokens += count_of(r, "\"aifc_sent_ns\"");
  }
  CHECK(complete == fds.size());
  CHECK(tokens == fds.size() * 20);
  CHECK(sim.stats()["ok"] == fds.size());
  for (int fd : fds) ::close(fd);
}

TEST_CASE("simulator: a client that does not read holds its stream back; memory stays bounded") {
  aifc::SimulatorConfig cfg;
  cfg.port = 0;
  cfg.threads = 1;
  aifc::Simulator sim(cfg);
  const int fd = connect_to(sim.start());
  // A million tokens with no delay, never read: the server must stop, not buffer them all.
  send_all(fd, completion_request(
                   R"({"prompt":"a","max_tokens":1000000,"stream":true,"ignore_eos":true})"));
  auto generated = [&] { return sim.stats()["generation_tokens"].get<std::uint64_t>(); };
  std::uint64_t last = 0;
  CHECK(eventually([&] {
    const auto now = generated();
    const bool settled = now > 0 && now == last;
    last = now;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return settled;
  }));
  // ~200 bytes a token: the socket buffers on both sides (a few MB each) and the server's
  // bounded queue hold some 50,000; a server without backpressure would make all million.
  CHECK(generated() < 250'000);
  CHECK(sim.stats()["running"] == 1);
  // Reading resumes the stream.
  char buffer[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (generated() == last && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) > 0) (void)::recv(fd, buffer, sizeof buffer, 0);
  }
  CHECK(generated() > last);
  ::close(fd);
  CHECK(eventually([&] { return sim.stats()["running"] == 0; }));
}
