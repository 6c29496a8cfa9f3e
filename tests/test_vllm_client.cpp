#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aifc/client_group.hpp>
#include <aifc/error.hpp>
#include <aifc/simulator.hpp>
#include <aifc/vllm_client.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <numeric>
#include <thread>

#include "http/keep_alive.hpp"

namespace {

aifc::SimulatorConfig sim_config() {
  aifc::SimulatorConfig s;
  s.port = 0;
  return s;
}

aifc::ClientConfig client_for(const aifc::Simulator& sim) {
  aifc::ClientConfig c;
  c.base_url = sim.base_url();
  c.model = "aifc-sim";
  return c;
}

aifc::RequestSpec spec(std::int64_t max_tokens = 8) {
  return aifc::RequestSpec{"one two three four",     max_tokens, 4, false,
                           nlohmann::json::object(), ""};
}

double mean_ms(const std::vector<aifc::MonoNanos>& t) {
  double sum = 0;
  for (std::size_t i = 1; i < t.size(); ++i) sum += static_cast<double>(t[i] - t[i - 1]) * 1e-6;
  return sum / static_cast<double>(t.size() - 1);
}

}  // namespace

TEST_CASE("vllm_client: streamed completion is timed as the simulator was told") {
  auto cfg = sim_config();
  cfg.ttft = aifc::DelaySpec::parse("50");
  cfg.itl = aifc::DelaySpec::parse("10");
  aifc::Simulator sim(cfg);
  sim.start();
  aifc::VLLMClient client(client_for(sim));
  for (int round = 0; round < 3; ++round) {
    const auto r = client.send(spec(20));
    REQUIRE_MESSAGE(r.ok(), r.error_message);
    CHECK(r.http_status == 200);
    CHECK(r.output_tokens == 20);
    CHECK(r.output_token_source == aifc::TokenSource::usage);
    CHECK(r.input_tokens == 4);
    CHECK(r.input_tokens_exact);
    REQUIRE(r.token_ns.size() == 20);
    REQUIRE(r.server_token_ns.size() == 20);
    // The simulator's delays are floors (how close aifc gets is measured in bench/): the first
    // token after 50 ms, the last after 19 more gaps of 10 ms.
    CHECK(r.ttft_s() >= 0.050);
    CHECK(r.token_ns.back() - r.send_ns >= 240'000'000);
    CHECK(mean_ms(r.token_ns) > 0);
    CHECK(r.first_byte_ns <= r.first_token_ns);
    CHECK(r.end_ns >= r.token_ns.back());
    // A chunk cannot arrive before the simulator sent it (its stamp is on the same clock).
    for (std::size_t i = 0; i < r.token_ns.size(); ++i)
      CHECK(r.token_ns[i] >= r.server_token_ns[i]);
  }
}

TEST_CASE("vllm_client: chat with reasoning times both first tokens") {
  auto cfg = sim_config();
  cfg.ttft = aifc::DelaySpec::parse("20");
  cfg.itl = aifc::DelaySpec::parse("5");
  cfg.reasoning_tokens = 4;
  aifc::Simulator sim(cfg);
  sim.start();
  auto c = client_for(sim);
  c.endpoint = "/v1/chat/completions";
  c.capture_text = true;
  aifc::VLLMClient client(c);
  const auto r = client.send(spec(10));
  REQUIRE_MESSAGE(r.ok(), r.error_message);
  CHECK(r.token_ns.size() == 10);  // the empty role chunk is not a token
  CHECK(r.first_reasoning_ns == r.first_token_ns);
  CHECK(r.first_answer_ns - r.send_ns >=
        20'000'000 + 4 * 5'000'000);  // after four reasoning tokens
  CHECK(r.generated_text.size() > 0);
}

TEST_CASE("vllm_client: non-streaming and usage-less streams") {
  auto cfg = sim_config();
  aifc::Simulator sim(cfg);
  sim.start();
  auto c = client_for(sim);
  c.stream = false;
  aifc::VLLMClient plain(c);
  auto r = plain.send(spec(6));
  REQUIRE_MESSAGE(r.ok(), r.error_message);
  CHECK(r.output_tokens == 6);
  CHECK(r.first_token_ns == r.end_ns);

  auto c2 = client_for(sim);
  c2.extra_body = {{"stream_options", {{"include_usage", false}}}};
  aifc::VLLMClient counted(c2);
  r = counted.send(spec(7));
  REQUIRE_MESSAGE(r.ok(), r.error_message);
  CHECK(r.output_tokens == 7);
  CHECK(r.output_token_source == aifc::TokenSource::chunks);
  CHECK_FALSE(r.input_tokens_exact);
}

TEST_CASE("vllm_client: every injected fault is a record with the right kind") {
  struct Case {
    const char* name;
    void (*setup)(aifc::SimulatorConfig&);
    aifc::RequestError expected;
  };
  const Case cases[] = {
      {"http 500", [](aifc::SimulatorConfig& s) { s.error_rate = 1; },
       aifc::RequestError::http_status},
      {"http 429",
       [](aifc::SimulatorConfig& s) {
         s.error_rate = 1;
         s.error_status = 429;
       },
       aifc::RequestError::http_status},
      {"disconnect", [](aifc::SimulatorConfig& s) { s.disconnect_rate = 1; },
       aifc::RequestError::connection_closed},
      {"stream error", [](aifc::SimulatorConfig& s) { s.stream_error_rate = 1; },
       aifc::RequestError::server_error},
      {"malformed", [](aifc::SimulatorConfig& s) { s.malformed_rate = 1; },
       aifc::RequestError::malformed_stream},
  };
  for (const auto& tc : cases) {
    CAPTURE(tc.name);
    auto cfg = sim_config();
    tc.setup(cfg);
    aifc::Simulator sim(cfg);
    sim.start();
    aifc::VLLMClient client(client_for(sim));
    for (int i = 0; i < 2; ++i) {  // the connection stays usable after a fault
      const auto r = client.send(spec());
      CHECK(r.error == tc.expected);
      CHECK_FALSE(r.error_message.empty());
      CHECK(r.end_ns >= r.send_ns);
    }
    if (tc.expected == aifc::RequestError::http_status) {
      const auto r = client.send(spec());
      CHECK(r.http_status == cfg.error_status);
      CHECK(r.error_message.find("injected fault") != std::string::npos);
    }
  }
}

TEST_CASE("vllm_client: stalls hit the read timeout, slow starts the first-token timeout") {
  auto cfg = sim_config();
  cfg.stall_rate = 1;
  cfg.stall = std::chrono::milliseconds(20000);
  aifc::Simulator sim(cfg);
  sim.start();
  auto c = client_for(sim);
  c.read_timeout = std::chrono::milliseconds(300);
  aifc::VLLMClient client(c);
  auto r = client.send(spec());
  CHECK(r.error == aifc::RequestError::timeout_read);
  CHECK(r.token_ns.size() == 2);  // measured tokens before the stall are kept
  CHECK(r.e2el_s() < 15.0);       // cut short, well before the 20 s stall

  auto slow = sim_config();
  slow.ttft = aifc::DelaySpec::parse("20000");
  aifc::Simulator slow_sim(slow);
  slow_sim.start();
  auto c2 = client_for(slow_sim);
  c2.first_token_timeout = std::chrono::milliseconds(200);
  aifc::VLLMClient impatient(c2);
  r = impatient.send(spec());
  CHECK(r.error == aifc::RequestError::timeout_first_token);
  CHECK(r.e2el_s() < 15.0);
}

TEST_CASE("vllm_client: deadlines hold while it waits, and cancel works from another thread") {
  auto cfg = sim_config();
  cfg.ttft = aifc::DelaySpec::parse("20000");
  aifc::Simulator sim(cfg);
  sim.start();
  auto c = client_for(sim);
  c.request_timeout = std::chrono::milliseconds(250);
  c.read_timeout = std::chrono::milliseconds(10000);
  aifc::VLLMClient client(c);
  auto r = client.send(spec());
  CHECK(r.error == aifc::RequestError::timeout_total);
  CHECK(r.error_message == "request took longer than 250 ms");
  CHECK(r.e2el_s() < 15.0);  // expired, not the 20 s answer

  aifc::VLLMClient victim(client_for(sim));
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    victim.cancel();
  });
  r = victim.send(spec());
  canceller.join();
  CHECK(r.error == aifc::RequestError::cancelled);
  CHECK(r.e2el_s() < 15.0);
  CHECK(victim.send(spec()).error == aifc::RequestError::cancelled);  // stays cancelled
}

TEST_CASE("vllm_client: unreachable server, API keys and set-up calls") {
  aifc::ClientConfig c;
  c.base_url = "http://127.0.0.1:1";  // nothing listens on port 1
  aifc::VLLMClient nowhere(c);
  const auto r = nowhere.send(spec());
  CHECK(r.error == aifc::RequestError::connect);
  CHECK(r.error_message.find("127.0.0.1:1") != std::string::npos);
  CHECK_THROWS_AS(nowhere.list_models(), aifc::Error);
  CHECK_FALSE(nowhere.health());

  auto cfg = sim_config();
  cfg.api_key = "secret";
  aifc::Simulator sim(cfg);
  sim.start();
  auto good = client_for(sim);
  good.api_key = "secret";
  aifc::VLLMClient ok(good);
  CHECK(ok.send(spec()).ok());
  const auto models = ok.list_models();
  REQUIRE(models.size() == 1);
  CHECK(models[0] == "aifc-sim");
  CHECK(ok.health());
  CHECK(ok.count_tokens("a b c d e") == 5);
  auto bad = client_for(sim);
  bad.api_key = "wrong";
  const auto refused = aifc::VLLMClient(bad).send(spec());
  CHECK(refused.error == aifc::RequestError::http_status);
  CHECK(refused.http_status == 401);

  aifc::ClientConfig invalid;
  invalid.base_url = "ftp://x";
  CHECK_THROWS_WITH_AS(aifc::VLLMClient{invalid}, doctest::Contains("base_url"), aifc::Error);
  invalid = {};
  invalid.headers = {{"X-Bad", "line\r\nbreak"}};
  CHECK_THROWS_AS(aifc::VLLMClient{invalid}, aifc::Error);
}

TEST_CASE("vllm_client: the tokenizer probe speaks each shape and trusts no empty count") {
  using Api = aifc::TokenizerApi;
  struct Case {
    aifc::SimTokenizer sim;
    Api expected;
  };
  for (const auto& c : {Case{aifc::SimTokenizer::vllm, Api::vllm},
                        Case{aifc::SimTokenizer::llama_cpp, Api::llama_cpp},
                        Case{aifc::SimTokenizer::none, Api::none}}) {
    CAPTURE(aifc::to_string(c.expected));
    auto cfg = sim_config();
    cfg.tokenizer = c.sim;
    cfg.chars_per_token = 3;
    // Set-up calls meet the same closing habit as requests, on their own connection.
    cfg.close_after_response = std::chrono::milliseconds(5);
    aifc::Simulator sim(cfg);
    sim.start();
    aifc::VLLMClient client(client_for(sim));
    CHECK(client.probe_tokenizer() == c.expected);
    CHECK(client.probe_tokenizer() == c.expected);  // kept, not probed again
    if (c.expected == Api::none) {
      CHECK_FALSE(client.count_tokens("the quick brown fox").has_value());
    } else {
      // "the" 1, "quick" 2, "brown" 2, "fox" 1: words split as the simulated tokenizer does.
      CHECK(client.count_tokens("the quick brown fox") == 6);
      for (int i = 0; i < 5; ++i) CHECK(client.count_tokens("a b c d e") == 5);
    }
    CHECK(client.health());
    CHECK(client.list_models().size() == 1);
  }
}

TEST_CASE("vllm_client: secrets never reach JSON, and cannot inject headers") {
  aifc::ClientConfig c;
  c.api_key = "sk-live-123";
  c.headers = {{"Authorization", "Bearer sk-other"}, {"X-Api-Key", "k1"}, {"X-Team", "hpc"}};
  const auto text = nlohmann::json(c).dump();
  CHECK(text.find("sk-live") == std::string::npos);
  CHECK(text.find("sk-other") == std::string::npos);
  CHECK(text.find("k1") == std::string::npos);
  CHECK(text.find("hpc") != std::string::npos);            // ordinary headers are kept
  CHECK(text.find("Authorization") != std::string::npos);  // the name shows one was set
  c.api_key = "sk\r\nX-Evil: 1";
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("api_key"), aifc::Error);
}

TEST_CASE("vllm_client: Keep-Alive headers are read as both kinds of server mean them") {
  using aifc::detail::KeepAliveHint;
  auto h = KeepAliveHint::parse("timeout=5, max=100");
  CHECK(h.timeout_s == 5);
  CHECK(h.max == 100);
  CHECK(h.allows_another(1));
  CHECK(h.allows_another(99));
  CHECK_FALSE(h.allows_another(100));
  CHECK(h.idle_limit_ns() == 4'000'000'000);
  CHECK_FALSE(KeepAliveHint::parse("timeout=5, max=1").allows_another(0));  // the last one
  CHECK(KeepAliveHint::parse("max=2,timeout=1").idle_limit_ns() == 500'000'000);
  h = KeepAliveHint::parse("");
  CHECK(h.timeout_s == -1);
  CHECK(h.idle_limit_ns() == -1);
  CHECK(h.allows_another(1'000'000));
  CHECK(KeepAliveHint::parse("xmax=3, timeout=x").max == -1);
  CHECK(KeepAliveHint::parse("xmax=3, timeout=x").timeout_s == -1);
}

TEST_CASE("vllm_client: a stream line that never ends is a failed request, not unbounded memory") {
  // 40 MiB of one SSE line without a line end, in 1 MiB pieces.
  httplib::Server server;
  server.Post("/v1/completions", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream",
                                     [sent = 0](std::size_t, httplib::DataSink& sink) mutable {
                                       if (sent == 0) sink.write("data: ", 6);
                                       const std::string piece(1 << 20, 'x');
                                       if (sent++ < 40 && sink.is_writable())
                                         return sink.write(piece.data(), piece.size());
                                       sink.done();
                                       return true;
                                     });
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  aifc::ClientConfig c;
  c.base_url = "http://127.0.0.1:" + std::to_string(port);
  c.model = "m";
  // Both transports: the blocking client, and the event loop through a group.
  const auto r = aifc::VLLMClient(c).send(spec());
  CHECK(r.error == aifc::RequestError::malformed_stream);
  CHECK(r.error_message.find("longer than 16 MiB") != std::string::npos);
  aifc::GroupConfig g;
  g.client = c;
  g.transport = aifc::Transport::event_loop;
  g.load.num_requests = 2;
  const auto result = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
  CHECK(result.summary.errors_by_kind.at("malformed_stream") == 2);
  server.stop();
  serving.join();
}

namespace {

// A server on a raw socket that answers every connection its own way: each connection gets
// `behave(fd)` on a thread of its own after the request has been read (or at once, when
// `read_request` is false: the bytes may not be an HTTP request at all).
struct RawServer {
  explicit RawServer(std::function<void(int)> behave, bool read_request = true)
      : behave(std::move(behave)) {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    REQUIRE(::listen(listener, 16) == 0);
    acceptor = std::thread([this, read_request] {
      for (;;) {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) return;
        std::lock_guard lock(mutex);
        connections.emplace_back([this, fd, read_request] {
          // The whole request (headers, and a JSON body unless it is a GET) before answering.
          std::string request;
          char buf[8192];
          while (read_request && (request.find("\r\n\r\n") == std::string::npos ||
                                  (request.rfind("GET ", 0) != 0 && request.back() != '}'))) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            request.append(buf, static_cast<std::size_t>(n));
          }
          this->behave(fd);
          ::close(fd);
        });
      }
    });
  }
  ~RawServer() {
    ::shutdown(listener, SHUT_RDWR);
    ::close(listener);
    acceptor.join();
    std::lock_guard lock(mutex);
    for (auto& t : connections) t.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  std::function<void(int)> behave;
  int listener = -1;
  int port = 0;
  std::thread acceptor;
  std::mutex mutex;
  std::vector<std::thread> connections;
};

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Until the client closes its side (or a minute passes).
void wait_for_close(int fd) {
  char buf[4096];
  timeval tv{60, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
}

const std::string kStreamHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

std::string chunk(std::string_view data) {
  return fmt::format("{:x}\r\n{}\r\n", data.size(), data);
}

// The process's peak resident memory in KiB, and a reset of it (Linux: clear_refs 5).
long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// AddressSanitizer keeps freed memory in quarantine (and shadows all of it): resident memory
// then says nothing about what aifc holds.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMeasuresMemory = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kMeasuresMemory = false;
#else
constexpr bool kMeasuresMemory = true;
#endif
#else
constexpr bool kMeasuresMemory = true;
#endif

}  // namespace

TEST_CASE("vllm_client: a timeout or a cancel of a close-delimited stream keeps its kind") {
  // A streamed answer with no length and no chunking (it ends when the connection closes), then
  // quiet: what a timeout or a cancel cuts must not look like an answer that ended.
  RawServer server([](int fd) {
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
             "data: {\"choices\":[{\"text\":\" a\"}]}\n\n");
    wait_for_close(fd);
  });
  aifc::ClientConfig c;
  c.base_url = server.url();
  c.model = "m";
  c.request_timeout = std::chrono::milliseconds(300);
  {
    aifc::VLLMClient client(c);  // the blocking transport, with its own watchdog
    const auto r = client.send(spec());
    CHECK(r.error == aifc::RequestError::timeout_total);
    CHECK(r.token_ns.size() == 1);
  }
  {
    c.request_timeout = std::chrono::seconds(60);
    aifc::VLLMClient client(c);
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      client.cancel();
    });
    const auto r = client.send(spec());
    canceller.join();
    CHECK(r.error == aifc::RequestError::cancelled);
  }
  // The event loop says the same.
  aifc::GroupConfig g;
  g.client = c;
  g.client.request_timeout = std::chrono::milliseconds(300);
  g.transport = aifc::Transport::event_loop;
  g.load.num_requests = 1;
  const auto result = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
  CHECK(result.summary.errors_by_kind.count("timeout_total") == 1);
}
TEST_CASE("vllm_client: cancel() ends a set-up call that waits on a silent server") {
  RawServer server([](int fd) { wait_for_close(fd); });  // reads the request, never answers
  aifc::ClientConfig c;
  c.base_url = server.url();
  c.model = "m";
  c.read_timeout = std::chrono::minutes(10);  // set-up calls then wait 30 s at most
  aifc::VLLMClient client(c);
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    client.cancel();
  });
  // Without the cancel this would say "no answer for 30000 ms".
  CHECK_THROWS_WITH_AS(client.list_models(), doctest::Contains("cancelled"), aifc::Error);
  canceller.join();
  CHECK_FALSE(client.metrics_text().has_value());  // refused until resume()
}

TEST_CASE("vllm_client: a chunk followed by junk instead of its CRLF is refused at once") {
  // One chunk, then 40 MiB without a line end where the chunk's CRLF belongs.
  RawServer server([](int fd) {
    send_all(fd, kStreamHead + "6\r\ndata: ");
    const std::string piece(1 << 20, 'x');
    for (int i = 0; i < 40 && send_all(fd, piece); ++i) {
    }
    wait_for_close(fd);
  });
  aifc::GroupConfig g;
  g.client.base_url = server.url();
  g.client.model = "m";
  g.load.num_requests = 2;
  for (const auto transport : {aifc::Transport::event_loop, aifc::Transport::threads}) {
    g.transport = transport;
    const std::string transport_name = nlohmann::json(transport).get<std::string>();
    CAPTURE(transport_name);
    const auto result = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
    REQUIRE(result.records.size() == 2);
    for (const auto& r : result.records) {
      CHECK(r.error == aifc::RequestError::malformed_stream);
      CHECK(r.error_message.find("chunk not followed by CRLF") != std::string::npos);
    }
  }
}

TEST_CASE("vllm_client: a hostile server's habits are the same failure on both transports") {
  struct Habit {
    const char* name;
    std::function<void(int)> behave;
    aifc::RequestError threads, event_loop;  // the kind each transport reports
  };
  using E = aifc::RequestError;
  const std::string token = "data: {\"choices\":[{\"text\":\" a\"}]}\n\n";
  const std::vector<Habit> habits = {
      {"never answers", [](int fd) { wait_for_close(fd); }, E::timeout_read, E::timeout_read},
      {"closes without a word", [](int) {}, E::connection_closed, E::connection_closed},
      {"resets the connection",
       [](int fd) {
         linger hard{1, 0};  // close() sends RST
         ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
       },
       E::connection_closed, E::connection_closed},
      {"answers in another protocol", [](int fd) { send_all(fd, "SSH-2.0-OpenSSH_9.2\r\n"); },
       E::malformed_stream, E::malformed_stream},
      {"sends a header line of 1 MiB",
       [](int fd) {
         send_all(fd, "HTTP/1.1 200 OK\r\nX-Filler: " + std::string(1 << 20, 'x') + "\r\n\r\n");
         wait_for_close(fd);
       },
       E::malformed_stream, E::malformed_stream},
      {"sends a chunk-size line without end",
       [](int fd) {
         send_all(fd, kStreamHead);
         const std::string piece(1 << 20, '0');
         for (int i = 0; i < 64 && send_all(fd, piece); ++i) {
         }
         wait_for_close(fd);
       },
       E::malformed_stream, E::malformed_stream},
      {"answers 500",
       [](int fd) {
         send_all(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nboom!");
       },
       E::http_status, E::http_status},
      {"cuts the stream short",
       [&](int fd) { send_all(fd, kStreamHead + chunk(token) + "40\r\ndata: {\"cho"); },
       E::connection_closed, E::connection_closed},
      {"streams forever",
       [&](int fd) {
         send_all(fd, kStreamHead);
         while (send_all(fd, chunk(token)))
           std::this_thread::sleep_for(std::chrono::milliseconds(5));
       },
       E::timeout_total, E::timeout_total},
      {"sends one line that never ends",
       [&](int fd) {
         send_all(fd, kStreamHead + chunk(token) + chunk("data: "));
         const std::string piece = chunk(std::string(1 << 20, 'x'));
         for (int i = 0; i < 200 && send_all(fd, piece); ++i) {
         }
         wait_for_close(fd);
       },
       E::malformed_stream, E::malformed_stream},
  };
  for (const auto& habit : habits) {
    const std::string name = habit.name;
    CAPTURE(name);
    RawServer server(habit.behave);
    aifc::ClientConfig c;
    c.base_url = server.url();
    c.model = "m";
    // Far apart, so that a loaded machine's pauses never turn one into the other.
    c.read_timeout = std::chrono::milliseconds(1000);
    c.request_timeout = std::chrono::milliseconds(4000);
    // Each transport's own peak: what the server sent (up to 200 MiB) is never held whole, only
    // the 16 MiB line cap (a string that grew to it by doubling) and buffers: 35-52 MiB here.
    reset_peak_rss();
    long before = peak_rss_kib();
    const auto blocking = aifc::VLLMClient(c).send(spec());
    const long blocking_peak = peak_rss_kib() - before;
    if (kMeasuresMemory) CHECK(blocking_peak < 96 * 1024);
    reset_peak_rss();
    before = peak_rss_kib();
    aifc::GroupConfig g;
    g.client = c;
    g.transport = aifc::Transport::event_loop;
    g.load.num_requests = 1;
    const auto looped = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
    REQUIRE(looped.records.size() == 1);
    const auto& evented = looped.records.front();
    CAPTURE(blocking.error_message);
    CAPTURE(evented.error_message);
    CHECK(to_string(blocking.error) == to_string(habit.threads));
    CHECK(to_string(evented.error) == to_string(habit.event_loop));
    const long loop_peak = peak_rss_kib() - before;
    if (kMeasuresMemory) CHECK(loop_peak < 96 * 1024);
  }
}

TEST_CASE("vllm_client: an https URL to a server that does not speak TLS is a tls failure") {
  // A plain-HTTP server answers the ClientHello with an HTTP error; another closes at once.
  for (const bool answers : {true, false}) {
    RawServer server(
        [answers](int fd) {
          char buf[4096];
          if (answers && ::recv(fd, buf, sizeof buf, 0) > 0)
            send_all(fd,
                     "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        },
        /*read_request=*/false);
    aifc::GroupConfig g;
    g.client.base_url = "https://127.0.0.1:" + std::to_string(server.port);
    g.client.model = "m";
    g.load.num_requests = 3;
    for (const auto transport : {aifc::Transport::event_loop, aifc::Transport::threads}) {
      g.transport = transport;
      const auto result = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
      REQUIRE(result.records.size() == 3);
      for (const auto& r : result.records) {
        CAPTURE(r.error_message);
        CHECK(r.error == aifc::RequestError::tls);
        CHECK(r.error_message.find("TLS with https://127.0.0.1:") == 0);
        if (answers) CHECK(r.error_message.find("rather than https://?") != std::string::npos);
      }
    }
  }
}

TEST_CASE("vllm_client: a set-up call's answer is bounded, and a bad one is named") {
  // 100 MiB promised and sent to GET /v1/models: the call fails past 64 MiB, in bounded memory.
  RawServer huge([](int fd) {
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(100 << 20) + "\r\n\r\n");
    const std::string piece(1 << 20, ' ');
    for (int i = 0; i < 100 && send_all(fd, piece); ++i) {
    }
  });
  aifc::ClientConfig c;
  c.base_url = huge.url();
  reset_peak_rss();
  const long before = peak_rss_kib();
  CHECK_THROWS_WITH_AS(aifc::VLLMClient(c).list_models(),
                       doctest::Contains("the answer is larger than 64 MiB"), aifc::Error);
  if (kMeasuresMemory) CHECK(peak_rss_kib() - before < 160 * 1024);
  // Not HTTP at all: a server error naming it, not "cannot reach".
  RawServer garbage([](int fd) { send_all(fd, "SSH-2.0-OpenSSH_9.2\r\n"); });
  c.base_url = garbage.url();
  try {
    aifc::VLLMClient(c).list_models();
    FAIL("no error");
  } catch (const aifc::Error& e) {
    CHECK(e.code() == aifc::ErrorCode::server_error);
    CHECK(std::string(e.what()).find("bad HTTP response") != std::string::npos);
  }
  CHECK_FALSE(aifc::VLLMClient(c).health());
}

TEST_CASE("vllm_client: request body follows the OpenAI and vLLM conventions") {
  aifc::ClientConfig c;
  c.model = "m";
  c.ignore_eos = true;
  c.extra_body = {{"temperature", 0.7}, {"top_p", 0.9}};
  aifc::VLLMClient client(c);
  auto body = nlohmann::json::parse(client.prepare(spec(12)).body);
  CHECK(body["prompt"] == "one two three four");
  CHECK(body["max_tokens"] == 12);
  CHECK(body["stream"] == true);
  CHECK(body["stream_options"]["include_usage"] == true);
  CHECK(body["ignore_eos"] == true);
  CHECK(body["temperature"] == 0.7);
  CHECK(body["top_p"] == 0.9);
  c.endpoint = "/v1/chat/completions";
  body = nlohmann::json::parse(aifc::VLLMClient(c).prepare(spec(5)).body);
  CHECK(body["messages"][0]["content"] == "one two three four");
  CHECK(body["max_completion_tokens"] == 5);
  // The chat template's kwargs go to a chat server, which renders the template with them.
  c.chat_template_kwargs = {{"thinking", true}};
  body = nlohmann::json::parse(aifc::VLLMClient(c).prepare(spec(5)).body);
  CHECK(body["chat_template_kwargs"]["thinking"] == true);
  auto completions = c;
  completions.endpoint = "/v1/completions";
  CHECK_THROWS_WITH_AS(completions.validate(),
                       doctest::Contains("chat_template_kwargs: a completions"), aifc::Error);
  c.chat_template_kwargs = nlohmann::json::object();
  CHECK_THROWS_WITH_AS(
      nlohmann::json({{"lora_assignment", "sequential"}}).get<aifc::ClientConfig>(),
      doctest::Contains("not random or round-robin"), aifc::Error);
  CHECK(nlohmann::json({{"lora_assignment", "round-robin"}})
            .get<aifc::ClientConfig>()
            .lora_assignment == aifc::LoraAssignment::round_robin);
  // A request may name its own model (a LoRA adapter), as vLLM's --lora-modules.
  auto adapter = spec(5);
  adapter.model = "sql-lora";
  CHECK(nlohmann::json::parse(aifc::VLLMClient(c).prepare(adapter).body)["model"] == "sql-lora");
  // The API key never appears in the JSON form of a config.
  c.api_key = "top-secret";
  CHECK(nlohmann::json(c).dump().find("top-secret") == std::string::npos);
}

TEST_CASE("vllm_client: a prepared body is the same bytes whichever way it is built") {
  // A request with its own extra_body is built as a JSON document; one without is filled into a
  // template. A patch that removes an absent key changes nothing, so both must agree byte for
  // byte, whatever the config and the prompt (quotes, control bytes, bytes that are not UTF-8).
  const std::string prompts[] = {
      "plain words",          "quote \" backslash \\ newline \n tab \t",
      "Zähle 日本語 😀",       std::string("cut \xE6\x97 and \xFF\x01 bytes"),
      "@aifc:prompt:5d2c1f@", ""};
  aifc::ClientConfig completions;
  completions.model = "m";
  aifc::ClientConfig chat = completions;
  chat.endpoint = "/v1/chat/completions";
  chat.chat_template_kwargs = {{"thinking", false}};
  chat.sampling.logprobs = 2;
  aifc::ClientConfig tuned = completions;
  tuned.ignore_eos = true;
  tuned.stream = false;
  tuned.sampling.temperature = 0.5;
  tuned.extra_body = {{"seed", 7}, {"max_tokens", nullptr}};  // the user drops a field
  aifc::ClientConfig renamed = chat;
  renamed.served_model_name = "served";
  for (const auto& c : {completions, chat, tuned, renamed}) {
    aifc::VLLMClient client(c);
    for (const auto& prompt : prompts) {
      for (const std::int64_t max_tokens : {0, 1, 300}) {
        for (const char* model : {"", "lora-a"}) {
          aifc::RequestSpec plain{prompt, max_tokens, 3, false, nlohmann::json::object(), model};
          aifc::RequestSpec patched = plain;
          patched.extra_body = {{"absent_key", nullptr}};
          CAPTURE(prompt);
          CAPTURE(max_tokens);
          CHECK(client.prepare(plain).body == client.prepare(patched).body);
        }
      }
    }
  }
  // The template's placeholders are the prompt's text when a prompt happens to hold them, and a
  // config's value when a config does.
  auto collides = completions;
  collides.extra_body = {{"seed", 7'700'770'077'007}, {"tag", "@aifc:prompt:5d2c1f@"}};
  const auto own =
      nlohmann::json::parse(aifc::VLLMClient(collides).prepare({"p", 9, 0, false, {}, ""}).body);
  CHECK(own["seed"] == 7'700'770'077'007);
  CHECK(own["tag"] == "@aifc:prompt:5d2c1f@");
  CHECK(own["max_tokens"] == 9);
  CHECK(own["prompt"] == "p");
  aifc::VLLMClient client(completions);
  const auto body = nlohmann::json::parse(
      client.prepare({"@aifc:model:5d2c1f@ 7700770077007", 9, 0, false, {}, ""}).body);
  CHECK(body["prompt"] == "@aifc:model:5d2c1f@ 7700770077007");
  CHECK(body["model"] == "m");
  CHECK(body["max_tokens"] == 9);
}

TEST_CASE("vllm_client: sampling parameters are sent only when set, as vLLM's benchmark does") {
  aifc::ClientConfig c;
  c.model = "org/model";
  auto body = nlohmann::json::parse(aifc::VLLMClient(c).prepare(spec(4)).body);
  for (const char* name : {"temperature", "top_p", "top_k", "min_p", "frequency_penalty",
                           "presence_penalty", "repetition_penalty", "logprobs"})
    CHECK_MESSAGE(!body.contains(name), name);  // the server's defaults apply
  CHECK(body["model"] == "org/model");
  c.sampling.temperature = 0.0;
  c.sampling.top_p = 0.95;
  c.sampling.top_k = 40;
  c.sampling.min_p = 0.05;
  c.sampling.frequency_penalty = 0.5;
  c.sampling.presence_penalty = -0.5;
  c.sampling.repetition_penalty = 1.1;
  c.sampling.logprobs = 3;
  c.served_model_name = "served";
  body = nlohmann::json::parse(aifc::VLLMClient(c).prepare(spec(4)).body);
  CHECK(body["temperature"] == 0.0);
  CHECK(body["top_p"] == 0.95);
  CHECK(body["top_k"] == 40);
  CHECK(body["min_p"] == 0.05);
  CHECK(body["frequency_penalty"] == 0.5);
  CHECK(body["presence_penalty"] == -0.5);
  CHECK(body["repetition_penalty"] == 1.1);
  CHECK(body["logprobs"] == 3);
  CHECK(body["model"] == "served");  // the API's name; `model` names it in results
  c.endpoint = "/v1/chat/completions";
  body = nlohmann::json::parse(aifc::VLLMClient(c).prepare(spec(4)).body);
  CHECK(body["logprobs"] == true);  // chat asks with a flag and a count
  CHECK(body["top_logprobs"] == 3);
  // The JSON form carries them, and only them, both ways.
  const auto j = nlohmann::json(c);
  CHECK(j["sampling"].size() == 8);
  CHECK(j.get<aifc::ClientConfig>().sampling == c.sampling);
  CHECK(nlohmann::json(aifc::ClientConfig{})["sampling"] == nlohmann::json::object());
  // What no server accepts is refused, naming the field.
  c.sampling.top_p = 1.5;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("top_p"), aifc::Error);
  c.sampling.top_p.reset();
  c.sampling.temperature = -1;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("temperature"), aifc::Error);
  CHECK_THROWS_WITH_AS(
      (nlohmann::json{{"sampling", {{"temprature", 1}}}}.get<aifc::ClientConfig>()),
      doctest::Contains("unknown key 'temprature'"), aifc::Error);
}

TEST_CASE(
    "vllm_client: https with a CA bundle, refused without it, allowed with verification off") {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / ("aifc_tls_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);

  httplib::SSLServer server(cert.c_str(), key.c_str());
  REQUIRE(server.is_valid());
  // Each event its own chunk (so its own TLS record), a little apart, on kept-alive connections.
  server.Post("/v1/completions", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider(
        "text/event-stream", [step = 0](std::size_t, httplib::DataSink& sink) mutable {
          static const std::string events[] = {
              "data: {\"choices\":[{\"text\":\" a\"}]}\n\n",
              "data: {\"choices\":[{\"text\":\" b\",\"finish_reason\":\"length\"}]}\n\n",
              "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n",
              "data: [DONE]\n\n"};
          if (step == 4) {
            sink.done();
            return true;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          const std::string& event = events[step++];
          return sink.write(event.data(), event.size());
        });
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  aifc::ClientConfig c;
  c.base_url = "https://127.0.0.1:" + std::to_string(port);
  c.ca_cert_path = cert;
  auto r = aifc::VLLMClient(c).send(spec());
  CHECK_MESSAGE(r.ok(), r.error_message);
  CHECK(r.output_tokens == 2);
  CHECK(r.token_ns.size() == 2);

  // A directory of CA files, as OpenSSL's c_rehash lays it out.
  const auto ca_dir = dir / "cas";
  fs::create_directories(ca_dir);
  fs::copy_file(cert, ca_dir / "server.pem");
  REQUIRE(std::system(("openssl rehash " + ca_dir.string() + " >/dev/null 2>&1").c_str()) == 0);
  c.ca_cert_path = ca_dir.string();
  r = aifc::VLLMClient(c).send(spec());
  CHECK_MESSAGE(r.ok(), r.error_message);

  c.ca_cert_path.clear();  // the system's CAs do not know this certificate
  r = aifc::VLLMClient(c).send(spec());
  CHECK(r.error == aifc::RequestError::tls);
  CHECK(r.error_message.find("TLS") != std::string::npos);

  c.verify_tls = false;
  r = aifc::VLLMClient(c).send(spec());
  CHECK_MESSAGE(r.ok(), r.error_message);

  // Both transports of a group speak TLS, and judge the certificate alike.
  aifc::GroupConfig g;
  g.client = c;
  for (const auto transport : {aifc::Transport::automatic, aifc::Transport::threads}) {
    g.transport = transport;
    g.client.verify_tls = false;
    g.load.num_requests = 200;
    g.load.max_concurrency = 8;
    auto result = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
    CHECK(result.summary.completed == 200);
    CHECK(result.summary.total_output_tokens == 400);
    for (const auto& r : result.records) CHECK(r.token_ns.size() == 2);
    g.load.num_requests = 5;
    g.load.max_concurrency = 2;
    g.client.verify_tls = true;
    g.client.ca_cert_path = cert;
    result = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
    CHECK(result.summary.completed == 5);
    g.client.ca_cert_path.clear();
    result = aifc::ClientGroup(g, {aifc::Prompt{"x y", 2, false, 2}}).run();
    REQUIRE(result.records.size() == 5);
    CHECK(result.records.front().error == aifc::RequestError::tls);
    CHECK(result.records.front().error_message.find("certificate") != std::string::npos);
  }
  // A CA file that is not one is refused when the client is made, naming the field.
  c.verify_tls = true;
  c.ca_cert_path = key;
  CHECK_THROWS_WITH_AS(aifc::VLLMClient{c}, doctest::Contains("ca_cert_path"), aifc::Error);
  g.client = c;
  for (const auto transport : {aifc::Transport::event_loop, aifc::Transport::threads}) {
    g.transport = transport;
    aifc::ClientGroup group(g, {aifc::Prompt{"x y", 2, false, 2}});
    CHECK_THROWS_WITH_AS(group.run(), doctest::Contains("ca_cert_path"), aifc::Error);
  }

  server.stop();
  serving.join();
  fs::remove_all(dir);
}
