#include <doctest/doctest.h>
#include <httplib.h>

#include <aifc/client_group.hpp>
#include <aifc/error.hpp>
#include <aifc/simulator.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

namespace {

aifc::SimulatorConfig sim_config(const char* ttft = "10", const char* itl = "2") {
  aifc::SimulatorConfig s;
  s.port = 0;
  s.ttft = aifc::DelaySpec::parse(ttft);
  s.itl = aifc::DelaySpec::parse(itl);
  return s;
}

std::vector<aifc::Prompt> prompts(int n = 10, std::int64_t output = 8) {
  std::vector<aifc::Prompt> p;
  for (int i = 0; i < n; ++i) p.push_back({"a b c d e f", 6, false, output});
  return p;
}

// CTest runs this suite once per transport (AIFC_TEST_TRANSPORT=threads|event_loop).
aifc::Transport transport_under_test() {
  const char* t = std::getenv("AIFC_TEST_TRANSPORT");
  if (t && std::string(t) == "threads") return aifc::Transport::threads;
  if (t && std::string(t) == "event_loop") return aifc::Transport::event_loop;
  return aifc::Transport::automatic;
}

aifc::GroupConfig group_for(const aifc::Simulator& sim, std::int64_t n) {
  aifc::GroupConfig g;
  g.transport = transport_under_test();
  g.client.base_url = sim.base_url();
  g.client.model = "aifc-sim";
  g.load.num_requests = n;
  g.progress_interval = std::chrono::milliseconds(50);
  return g;
}

struct Recorder : aifc::Observer {
  std::mutex m;
  std::set<std::thread::id> threads;
  int started = 0, finished_requests = 0, progress = 0, finished = 0;
  void on_run_started(const aifc::ClockAnchor&, std::uint64_t) override { note(), ++started; }
  void on_request_finished(const aifc::RequestRecord&) override { note(), ++finished_requests; }
  void on_progress(const aifc::ProgressSnapshot&) override { note(), ++progress; }
  void on_run_finished(const aifc::ProgressSnapshot&) override { note(), ++finished; }
  int note() {
    std::lock_guard lock(m);
    threads.insert(std::this_thread::get_id());
    return 0;
  }
};

struct Thrower : aifc::Observer {
  void on_request_finished(const aifc::RequestRecord&) override {
    throw std::runtime_error("observer bug");
  }
};

}  // namespace

TEST_CASE("client_group: a paced run sends on schedule and measures every request") {
  aifc::Simulator sim(sim_config());
  sim.start();
  auto g = group_for(sim, 200);
  g.load.request_rate = 200;
  g.load.seed = 3;
  auto recorder = std::make_shared<Recorder>();
  aifc::ClientGroup group(g, prompts());
  group.add_observer(recorder);
  group.add_observer(std::make_shared<Thrower>());
  const auto result = group.run();
  CHECK(result.records.size() == 200);
  CHECK(result.summary.completed == 200);
  CHECK(result.summary.failed == 0);
  CHECK_FALSE(result.interrupted);
  // Scheduled times are the ArrivalSchedule's, relative to the run start.
  aifc::ArrivalSchedule schedule(g.load);
  std::vector<aifc::MonoNanos> planned(200);
  while (auto s = schedule.next()) planned[s->index] = s->offset.count();
  for (const auto& r : result.records) CHECK(r.scheduled_ns - result.start_ns == planned[r.index]);
  // Nothing leaves before its time, so the run lasts at least as long as the schedule. How
  // late sends are is a speed figure, measured in bench/ (a loaded machine would fail a bound).
  for (const auto& r : result.records) CHECK(r.send_ns >= r.scheduled_ns);
  const double last_s =
      static_cast<double>(*std::max_element(planned.begin(), planned.end())) * 1e-9;
  CHECK(result.summary.duration_s >= last_s);
  // Observers: called from one thread of their own; a throwing one is counted.
  CHECK(recorder->started == 1);
  CHECK(recorder->finished == 1);
  CHECK(recorder->finished_requests == 200);
  CHECK(recorder->progress >= 1);
  CHECK(recorder->threads.size() == 1);
  CHECK(recorder->threads.count(std::this_thread::get_id()) == 0);
  CHECK(result.observer_events_dropped == 0);
  CHECK(result.observer_errors == 200);
  CHECK(result.first_observer_error == "observer bug");
}

TEST_CASE("client_group: max concurrency bounds the requests in flight") {
  aifc::Simulator sim(sim_config("20", "1"));
  sim.start();
  auto g = group_for(sim, 40);
  g.load.max_concurrency = 4;
  aifc::ClientGroup group(g, prompts());
  const auto result = group.run();
  CHECK(result.summary.completed == 40);
  CHECK(result.summary.max_concurrent_requests.value() == 4);
  CHECK(result.summary.metric("ttft")->mean >= 20.0);  // the server's delay is a floor
  // max_clients bounds unbounded concurrency only; an explicit max_concurrency is reached.
  g.max_clients = 2;
  g.load.max_concurrency = 6;
  g.load.request_rate = std::numeric_limits<double>::infinity();
  const auto capped = aifc::ClientGroup(g, prompts()).run();
  CHECK(capped.summary.completed == 40);
  CHECK(capped.summary.max_concurrent_requests.value() == 6);
}

TEST_CASE("client_group: stop() ends the run early and keeps what was measured") {
  aifc::Simulator sim(sim_config("5", "20"));
  sim.start();
  auto g = group_for(sim, 10000);
  g.load.request_rate = 100;
  aifc::ClientGroup group(g, prompts(10, 20));
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    group.stop();
    group.stop();  // idempotent
  });
  const auto t0 = aifc::mono_now();
  const auto result = group.run();
  stopper.join();
  CHECK((aifc::mono_now() - t0) < 30'000'000'000);  // not the 100 s the whole schedule takes
  CHECK(result.interrupted);
  CHECK(result.summary.completed > 20);
  CHECK(result.summary.cancelled > 0);  // those in flight at the stop
  CHECK(result.summary.failed == 0);
  for (const auto& r : result.records) CHECK((r.ok() || r.error == aifc::RequestError::cancelled));
}

TEST_CASE("client_group: a stop while waiting for a far start instant ends the run unsent") {
  aifc::Simulator sim(sim_config());
  sim.start();
  auto g = group_for(sim, 10);
  g.load.request_rate = 100;
  aifc::ClientGroup group(g, prompts());
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    group.stop();
  });
  const auto t0 = aifc::mono_now();
  const auto result = group.run_at(std::chrono::system_clock::now() + std::chrono::minutes(10));
  stopper.join();
  CHECK((aifc::mono_now() - t0) < 60'000'000'000);  // not the 10 minutes to the instant
  CHECK(result.interrupted);
  CHECK(result.summary.completed == 0);
  CHECK(sim.stats()["requests"] == 0);
}

TEST_CASE("client_group: shards of one workload send disjoint parts of one schedule") {
  aifc::Simulator sim(sim_config("1", "1"));
  sim.start();
  std::set<std::uint64_t> seen;
  std::size_t total = 0;
  for (std::uint32_t rank = 0; rank < 3; ++rank) {
    auto g = group_for(sim, 50);
    g.load.request_rate = 500;
    g.shard = {rank, 3};
    aifc::ClientGroup group(g, prompts());
    const auto result = group.run();
    total += result.records.size();
    for (const auto& r : result.records) {
      CHECK(r.index % 3 == rank);
      CHECK(seen.insert(r.index).second);
    }
  }
  CHECK(total == 50);
  CHECK(seen.size() == 50);
}

TEST_CASE("client_group: faults are counted by kind and nothing is lost") {
  auto cfg = sim_config("1", "1");
  cfg.error_rate = 0.2;
  cfg.disconnect_rate = 0.1;
  cfg.seed = 4;
  aifc::Simulator sim(cfg);
  sim.start();
  auto g = group_for(sim, 300);
  g.load.max_concurrency = 8;
  aifc::ClientGroup group(g, prompts());
  const auto result = group.run();
  const auto completed = result.summary.completed;
  const auto failed = result.summary.failed;
  CHECK(completed + failed == 300);
  CHECK(result.summary.errors_by_kind.at("http_status") == doctest::Approx(60).epsilon(0.5));
  CHECK(result.summary.errors_by_kind.at("connection_closed") == doctest::Approx(30).epsilon(0.6));
  // The first ten failures say why, in the order they came.
  REQUIRE(result.first_errors.size() == aifc::BenchmarkResult::kMaxFirstErrors);
  for (const auto& e : result.first_errors)
    CHECK((e.rfind("http_status: HTTP 500", 0) == 0 || e.rfind("connection_closed: ", 0) == 0));
}

TEST_CASE("client_group: duration-limited run, warm-ups and aggregate-only mode") {
  aifc::Simulator sim(sim_config("1", "1"));
  sim.start();
  auto g = group_for(sim, 0);
  g.load.duration = std::chrono::milliseconds(700);
  g.load.max_concurrency = 2;
  g.load.num_warmups = 3;
  g.keep_records = false;
  aifc::ClientGroup group(g, prompts());
  const auto result = group.run();
  CHECK(result.records.empty());
  CHECK(result.summary.completed > 20);
  CHECK(result.summary.percentiles_exact == false);
  // It stops sending at 0.7 s; the upper bound only tells "stopped" from "never stopped".
  CHECK(result.duration_s >= 0.65);
  CHECK(result.duration_s < 30);

  auto bad = group_for(sim, 10);
  bad.max_clients = 0;
  CHECK_THROWS_AS(aifc::ClientGroup(bad, prompts()), aifc::Error);
  CHECK_THROWS_AS(aifc::ClientGroup(group_for(sim, 10), {}), aifc::Error);
  aifc::ClientGroup once(group_for(sim, 2), prompts());
  once.run();
  CHECK_THROWS_AS(once.run(), aifc::Error);
}

TEST_CASE("client_group: warm-ups are copies of the first request, sent together") {
  aifc::Simulator sim(sim_config("1500", "1"));
  sim.start();
  auto g = group_for(sim, 2);
  g.load.num_warmups = 4;
  g.load.max_concurrency = 8;
  std::vector<aifc::Prompt> mixed = {{"one two", 2, false, 1}, {"a b c d e f g", 7, false, 1}};
  const auto result = aifc::ClientGroup(g, mixed).run();
  std::vector<aifc::RequestRecord> warmups;
  for (const auto& r : result.records)
    if (r.warmup) warmups.push_back(r);
  REQUIRE(warmups.size() == 4);
  aifc::MonoNanos first_end = warmups.front().end_ns;
  for (const auto& w : warmups) first_end = std::min(first_end, w.end_ns);
  for (const auto& w : warmups) {
    CHECK(w.ok());
    CHECK(w.input_tokens == 2);    // the first prompt each time
    CHECK(w.send_ns < first_end);  // all sent before any answered: together
  }
  CHECK(result.summary.completed == 2);  // warm-ups are not counted
}

TEST_CASE("client_group: before_measuring runs after the warm-ups, before any measured request") {
  aifc::Simulator sim(sim_config("1", "1"));
  sim.start();
  auto g = group_for(sim, 6);
  g.load.num_warmups = 3;
  aifc::ClientGroup group(g, prompts());
  aifc::MonoNanos called_at = -1;
  int calls = 0;
  group.before_measuring([&] {
    ++calls;
    called_at = aifc::mono_now();
  });
  const auto result = group.run();
  CHECK(calls == 1);
  REQUIRE(result.records.size() == 9);
  for (const auto& r : result.records) {
    if (r.warmup)
      CHECK(r.end_ns < called_at);
    else
      CHECK(r.send_ns > called_at);
  }
  CHECK_THROWS_AS(group.before_measuring([] {}), aifc::Error);  // after run()
  // An exception from it ends run() on its own thread.
  aifc::ClientGroup failing(group_for(sim, 2), prompts());
  failing.before_measuring([] { throw std::runtime_error("the hook failed"); });
  CHECK_THROWS_WITH(failing.run(), "the hook failed");
}

TEST_CASE("client_group: stalls, slow starts and unreachable servers become records") {
  auto cfg = sim_config("1", "1");
  cfg.stall_rate = 1;
  cfg.stall = std::chrono::milliseconds(20000);
  aifc::Simulator stalling(cfg);
  stalling.start();
  auto g = group_for(stalling, 4);
  g.client.read_timeout = std::chrono::milliseconds(300);
  auto t0 = aifc::mono_now();
  auto result = aifc::ClientGroup(g, prompts()).run();
  CHECK(result.summary.errors_by_kind.at("timeout_read") == 4);
  CHECK(aifc::mono_now() - t0 < 15'000'000'000);  // cut short, well before the 20 s stall
  for (const auto& r : result.records)
    CHECK(r.token_ns.size() == 2);  // tokens before the stall are kept

  aifc::Simulator slow(sim_config("20000", "1"));
  slow.start();
  g = group_for(slow, 3);
  g.client.first_token_timeout = std::chrono::milliseconds(200);
  t0 = aifc::mono_now();
  result = aifc::ClientGroup(g, prompts()).run();
  CHECK(result.summary.errors_by_kind.at("timeout_first_token") == 3);
  CHECK(aifc::mono_now() - t0 < 15'000'000'000);  // well before the 20 s first token

  g = group_for(slow, 2);
  g.client.request_timeout = std::chrono::milliseconds(300);
  result = aifc::ClientGroup(g, prompts()).run();
  CHECK(result.summary.errors_by_kind.at("timeout_total") == 2);

  g = group_for(slow, 5);
  g.client.base_url = "http://127.0.0.1:1";
  result = aifc::ClientGroup(g, prompts()).run();
  CHECK(result.summary.errors_by_kind.at("connect") == 5);
  CHECK(result.records[0].error_message.find("127.0.0.1:1") != std::string::npos);
}

TEST_CASE(
    "client_group: streams, plain answers and stream faults measure alike on every transport") {
  aifc::Simulator sim(sim_config("30", "5"));
  sim.start();
  auto g = group_for(sim, 6);
  g.load.max_concurrency = 3;
  auto result = aifc::ClientGroup(g, prompts(6, 11)).run();
  REQUIRE(result.summary.completed == 6);
  // The simulator's delays are floors; how close aifc measures them is a figure for bench/.
  CHECK(result.summary.metric("ttft")->mean >= 30.0);
  CHECK(result.summary.total_output_tokens == 66);
  for (const auto& r : result.records) {
    CHECK(r.e2el_s() >= 0.030 + 10 * 0.005);  // first token, then ten gaps of 5 ms
    CHECK(r.input_tokens == 6);
    CHECK(r.input_tokens_exact);
    CHECK(r.server_token_ns.size() == 11);
  }
  g.client.stream = false;
  result = aifc::ClientGroup(g, prompts(6, 11)).run();
  CHECK(result.summary.completed == 6);
  CHECK(result.summary.total_output_tokens == 66);

  auto faulty = sim_config("1", "1");
  faulty.stream_error_rate = 0.5;
  faulty.malformed_rate = 0.5;
  aifc::Simulator bad(faulty);
  bad.start();
  result = aifc::ClientGroup(group_for(bad, 40), prompts()).run();
  CHECK(result.summary.failed == 40);
  CHECK(result.summary.errors_by_kind.at("server_error") > 5);
  CHECK(result.summary.errors_by_kind.at("malformed_stream") > 5);
}

TEST_CASE("client_group: config JSON round trip, as services and Python send it") {
  aifc::GroupConfig g;
  g.client.base_url = "http://h:1";
  g.client.api_key = "secret";
  g.load.request_rate = 7;
  g.load.max_concurrency = 3;
  g.shard = {1, 4};
  g.transport = aifc::Transport::threads;
  g.summary.goodput = aifc::GoodputSlo::parse("ttft:100");
  g.summary.metric_percentiles = {50, 99.9};
  const auto j = nlohmann::json(g);
  CHECK(j.dump().find("secret") == std::string::npos);
  const auto back = j.get<aifc::GroupConfig>();
  CHECK(back.client.base_url == "http://h:1");
  CHECK(back.load.request_rate == 7);
  CHECK(back.load.max_concurrency == 3);
  CHECK(back.shard.rank == 1);
  CHECK(back.transport == aifc::Transport::threads);
  CHECK(*back.summary.goodput.ttft_ms == 100);
  CHECK(back.summary.metric_percentiles == std::vector<double>{50, 99.9});
  CHECK(nlohmann::json(back) == j);
  // A fraction where a whole number belongs is refused by its place, not truncated.
  auto fractional = j;
  fractional["io_threads"] = 2.5;
  CHECK_THROWS_WITH_AS(fractional.get<aifc::GroupConfig>(),
                       doctest::Contains("group config: io_threads: must be a whole number"),
                       aifc::Error);
  fractional = j;
  fractional["load"]["max_concurrency"] = 3.0;  // a whole number written with a point
  CHECK(fractional.get<aifc::GroupConfig>().load.max_concurrency == 3);
}

TEST_CASE("client_group: every request carries its x-request-id, as vLLM's benchmark sends") {
  // A server of the test's own that notes each request's id and streams one token.
  httplib::Server server;
  std::mutex ids_mutex;
  std::vector<std::string> ids;
  server.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard lock(ids_mutex);
      ids.push_back(req.get_header_value("x-request-id"));
    }
    res.set_content(
        "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":1}}\n\n"
        "data: [DONE]\n\n",
        "text/event-stream");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  aifc::GroupConfig g;
  g.transport = transport_under_test();
  g.client.base_url = "http://127.0.0.1:" + std::to_string(port);
  g.client.model = "m";
  g.load.num_requests = 6;
  g.load.max_concurrency = 2;
  auto ids_of_run = [&](const aifc::GroupConfig& config) {
    {
      std::lock_guard lock(ids_mutex);
      ids.clear();
    }
    const auto result = aifc::ClientGroup(config, prompts(3, 1)).run();
    CHECK(result.aggregate.completed == 6);
    std::lock_guard lock(ids_mutex);
    auto sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  };
  // Unset: "bench-" and 8 hex digits of this run, then the request's place in the schedule.
  const auto generated = ids_of_run(g);
  REQUIRE(generated.size() == 6);
  const std::string prefix = generated[0].substr(0, generated[0].size() - 1);
  CHECK(prefix.size() == 15);
  CHECK(prefix.rfind("bench-", 0) == 0);
  for (int i = 0; i < 6; ++i)
    CHECK(generated[static_cast<std::size_t>(i)] == prefix + std::to_string(i));
  // A prefix of the user's; an empty one sends none.
  g.client.request_id_prefix = "run7-";
  CHECK(ids_of_run(g) ==
        std::vector<std::string>{"run7-0", "run7-1", "run7-2", "run7-3", "run7-4", "run7-5"});
  g.client.request_id_prefix = "";
  CHECK(ids_of_run(g) == std::vector<std::string>(6, ""));
  server.stop();
  serving.join();
}

// Habits of real servers other than vLLM (issue: llama.cpp's server broke the measurement).

TEST_CASE("client_group: a server that closes after every response causes no false failures") {
  auto cfg = sim_config("2", "1");
  // Long enough that the next request is always on its way before the close: the stale case.
  cfg.close_after_response = std::chrono::milliseconds(20);
  aifc::Simulator sim(cfg);
  sim.start();
  for (const std::int64_t concurrency : {1, 8}) {
    for (const bool stream : {true, false}) {
      for (const char* endpoint : {"/v1/completions", "/v1/chat/completions"}) {
        CAPTURE(concurrency);
        CAPTURE(stream);
        CAPTURE(endpoint);
        auto g = group_for(sim, 24);
        g.load.max_concurrency = concurrency;
        g.client.stream = stream;
        g.client.endpoint = endpoint;
        const auto result = aifc::ClientGroup(g, prompts(24, 4)).run();
        CHECK(result.summary.failed == 0);
        CHECK(result.summary.completed == 24);
        CHECK(result.summary.total_output_tokens == 96);
        if (concurrency == 1) CHECK(result.summary.retried_requests > 0);
        for (const auto& r : result.records) {
          // A resent request is measured from its second send; its lateness holds the delay.
          if (r.retried) CHECK(r.send_ns >= r.scheduled_ns);
        }
      }
    }
  }
}

TEST_CASE("client_group: Keep-Alive max and Connection: close end connections cleanly") {
  auto cfg = sim_config("1", "1");
  cfg.max_requests_per_connection = 3;
  aifc::Simulator sim(cfg);
  sim.start();
  auto g = group_for(sim, 30);
  g.load.max_concurrency = 2;
  const auto result = aifc::ClientGroup(g, prompts(30, 3)).run();
  CHECK(result.summary.failed == 0);
  CHECK(result.summary.completed == 30);
}

TEST_CASE("client_group: errors inside a 200 stream are failures with the server's message") {
  using Style = aifc::StreamErrorStyle;
  for (const auto style : {Style::data, Style::event, Style::error_field}) {
    CAPTURE(nlohmann::json(style).dump());
    auto cfg = sim_config("1", "1");
    cfg.stream_error_rate = 1;
    cfg.stream_error_style = style;
    aifc::Simulator sim(cfg);
    sim.start();
    for (const char* endpoint : {"/v1/completions", "/v1/chat/completions"}) {
      auto g = group_for(sim, 10);
      g.client.endpoint = endpoint;
      const auto result = aifc::ClientGroup(g, prompts(10, 6)).run();
      CHECK(result.summary.completed == 0);
      CHECK(result.summary.failed == 10);
      CHECK(result.summary.errors_by_kind.at("server_error") == 10);
      for (const auto& r : result.records) CHECK(r.error_message == "injected stream error");
    }
  }
}

TEST_CASE("client_group: a 200 answer with no content and no usage is a failure") {
  auto cfg = sim_config("1", "1");
  cfg.empty_response_rate = 1;
  aifc::Simulator sim(cfg);
  sim.start();
  for (const bool stream : {true, false}) {
    for (const char* endpoint : {"/v1/completions", "/v1/chat/completions"}) {
      CAPTURE(stream);
      CAPTURE(endpoint);
      auto g = group_for(sim, 6);
      g.client.stream = stream;
      g.client.endpoint = endpoint;
      const auto result = aifc::ClientGroup(g, prompts(6, 4)).run();
      CHECK(result.summary.completed == 0);
      CHECK(result.summary.errors_by_kind.at("server_error") == 6);
      CHECK(result.records[0].error_message.find("no content and no usage") != std::string::npos);
    }
  }
}

TEST_CASE("client_group: the requested length holds on servers that read either field") {
  using Field = aifc::LengthField;
  for (const auto field : {Field::both, Field::max_tokens, Field::max_completion_tokens}) {
    CAPTURE(nlohmann::json(field).dump());
    auto cfg = sim_config("1", "1");
    cfg.length_field = field;
    cfg.default_max_tokens = 40;  // what such a server generates when it misses the field
    aifc::Simulator sim(cfg);
    sim.start();
    auto g = group_for(sim, 8);
    g.client.endpoint = "/v1/chat/completions";
    auto result = aifc::ClientGroup(g, prompts(8, 5)).run();
    CHECK(result.summary.completed == 8);
    CHECK(result.summary.total_output_tokens == 40);
    CHECK(result.summary.exceeded_requested_length == 0);

    // Without max_tokens in the body, a server that reads only that field overruns: reported.
    g.client.extra_body = {{"max_tokens", nullptr}};
    result = aifc::ClientGroup(g, prompts(8, 5)).run();
    CHECK(result.summary.completed == 8);
    const int over = field == Field::max_tokens ? 8 : 0;
    CHECK(result.summary.exceeded_requested_length == over);
    const bool reported = aifc::format_summary_table(result.summary, g.summary)
                              .find("Answers longer than max_tokens:") != std::string::npos;
    CHECK(reported == (over > 0));
  }
}

TEST_CASE("client_group: a blocked observer never holds up the run; what it missed is counted") {
  aifc::Simulator sim(sim_config("1", "1"));
  sim.start();
  auto g = group_for(sim, 60);
  g.load.max_concurrency = 4;
  g.observer_queue_capacity = 8;
  struct Blocked : aifc::Observer {
    std::mutex m;
    std::condition_variable cv;
    bool released = false;
    std::atomic<int> requests{0}, finished{0};
    void on_request_finished(const aifc::RequestRecord&) override {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return released; });
      ++requests;
    }
    void on_run_finished(const aifc::ProgressSnapshot&) override { ++finished; }
  };
  auto blocked = std::make_shared<Blocked>();
  aifc::ClientGroup group(g, prompts(60, 2));
  group.add_observer(blocked);
  aifc::BenchmarkResult result;
  std::thread runner([&] { result = group.run(); });
  // Every request completes while the observer is still stuck in its first call.
  while (group.progress().completed + group.progress().failed < 60)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  {
    std::lock_guard lock(blocked->m);
    blocked->released = true;
  }
  blocked->cv.notify_all();
  runner.join();
  CHECK(result.summary.completed == 60);
  CHECK(blocked->finished == 1);  // the end is always delivered
  CHECK(result.observer_events_dropped > 0);
  CHECK(blocked->requests + result.observer_events_dropped == 60);
}

TEST_CASE("client_group: an observer can be removed during the run, even by itself") {
  aifc::Simulator sim(sim_config("1", "1"));
  sim.start();
  auto g = group_for(sim, 30);
  aifc::ClientGroup group(g, prompts(30, 2));
  struct Quitter : aifc::Observer {
    aifc::ClientGroup* group = nullptr;
    aifc::ObserverHandle self = 0;
    int seen = 0;
    bool removed = false;
    void on_request_finished(const aifc::RequestRecord&) override {
      if (++seen == 5) removed = group->remove_observer(self);
    }
  };
  auto quitter = std::make_shared<Quitter>();
  auto counter = std::make_shared<Recorder>();
  quitter->group = &group;
  quitter->self = group.add_observer(quitter);
  group.add_observer(counter);
  const auto result = group.run();
  CHECK(quitter->removed);
  CHECK(quitter->seen == 5);
  CHECK(counter->finished_requests == 30);
  CHECK_FALSE(group.remove_observer(quitter->self));
  CHECK_THROWS_AS(group.add_observer(counter), aifc::Error);  // only before run()
}

TEST_CASE("client_group: a first-token timeout stops mattering once the first token is in") {
  // A long stream after a quick first token: the first-token deadline must not cut it (it did
  // on the threads transport, which every https:// URL uses).
  aifc::Simulator sim(sim_config("5", "20"));
  sim.start();
  auto g = group_for(sim, 4);
  g.load.max_concurrency = 2;
  g.client.first_token_timeout = std::chrono::milliseconds(150);
  const auto result = aifc::ClientGroup(g, prompts(4, 25)).run();  // about 0.5 s a stream
  CHECK(result.summary.failed == 0);
  CHECK(result.summary.completed == 4);
  CHECK(result.summary.total_output_tokens == 100);

  aifc::Simulator slow(sim_config("20000", "1"));  // and it still fires without a first token
  slow.start();
  g = group_for(slow, 2);
  g.client.first_token_timeout = std::chrono::milliseconds(150);
  CHECK(
      aifc::ClientGroup(g, prompts(2, 3)).run().summary.errors_by_kind.at("timeout_first_token") ==
      2);
}
