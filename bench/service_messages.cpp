// The client service's own CPU per agent message, without Slurm or agents in the way: a
// service in this process (its Slurm backend says every job is running), and a child process
// that plays N agents: register, ready, run, then partial results as an agent sends them every
// 2 s (the records since the last one and the aggregate so far), heartbeats, and the final
// results. The records are real ones, measured against the built-in simulator.
//
//   aifc_service_messages [--agents 64] [--rounds 10] [--records 20]
//
// Prints the service's CPU time per partial message, per heartbeat and per final result.
#include <fmt/format.h>
#include <httplib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aifc/aifc.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// A Slurm that runs nothing: every job is running at once, and the agents are this bench.
class AlwaysRunning : public aifc::SlurmBackend {
 public:
  std::string submit(const aifc::JobSpec& spec) override {
    std::lock_guard lock(mutex_);
    for (const auto& [k, v] : spec.environment)
      if (k == "AIFC_AGENT_TOKEN") agent_token_ = v;
    return "1";
  }
  std::string agent_token() const {
    std::lock_guard lock(mutex_);
    return agent_token_;
  }
  aifc::JobInfo query(const std::string& id) override {
    aifc::JobInfo i;
    i.job_id = id;
    i.state = aifc::JobState::running;
    i.state_text = "RUNNING";
    return i;
  }
  void cancel(const std::string&) override {}
  std::string name() const override { return "bench"; }

 private:
  mutable std::mutex mutex_;
  std::string agent_token_;
};

struct Args {
  int agents = 64;
  int rounds = 10;
  int records = 20;
};

void write_all(int fd, const std::string& s) {
  if (::write(fd, s.data(), s.size()) != static_cast<ssize_t>(s.size())) std::exit(3);
}

std::string read_line(int fd) {
  std::string s;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') s.push_back(c);
  return s;
}

void check(const httplib::Result& r, const char* what) {
  if (!r || r->status / 100 != 2) {
    std::fprintf(stderr, "%s failed: %s\n", what, r ? r->body.c_str() : "no answer");
    std::exit(2);
  }
}

// The child: N agents' messages, in the order a running group sends them. Marks each phase on
// `marks` so that the parent reads its CPU clock between them.
void play_agents(const Args& a, int in, int marks) {
  const auto port = std::stoi(read_line(in));
  const std::string api_token = read_line(in);
  // Real records: a run against the built-in simulator (TTFT 20 ms, ITL 1 ms, 64 tokens).
  aifc::BenchmarkSpec spec;
  aifc::SimulatorConfig sim;
  sim.port = 0;
  sim.ttft = aifc::DelaySpec::parse("20");
  sim.itl = aifc::DelaySpec::parse("1");
  spec.simulator = sim;
  spec.dataset.random_input_len = 64;
  spec.dataset.random_output_len = 64;
  spec.load.num_requests = a.records * a.rounds;
  spec.load.max_concurrency = 32;
  aifc::Benchmark measured(spec);
  const auto result = measured.run();
  if (result.records.size() != static_cast<std::size_t>(a.records * a.rounds)) std::exit(4);

  httplib::Client http("127.0.0.1", port);
  const httplib::Headers user = {{"Authorization", "Bearer " + api_token}};
  check(http.Post("/api/v1/client-group/bench", user,
                  fmt::format(R"({{"num_clients": {}, "time_limit": 10, "num_prompts": {},
                                   "request_rate": 100}})",
                              a.agents, a.agents * a.records * a.rounds),
                  "application/json"),
        "create");
  const std::string agent_token = read_line(in);  // the parent read it from the job
  const httplib::Headers agent = {{"Authorization", "Bearer " + agent_token}};
  auto post = [&](int rank, const char* what, const nlohmann::json& body) {
    check(http.Post(fmt::format("/api/v1/client-group/bench/agents/{}/{}", rank, what), agent,
                    body.dump(), "application/json"),
          what);
  };
  for (int rank = 0; rank < a.agents; ++rank) {
    post(rank, "register", {{"node", fmt::format("n{}", rank % 4)}, {"pid", 1}});
    post(rank, "heartbeat", {{"state", "ready"}});
  }
  check(http.Post("/api/v1/client-group/bench/run", user, "", "application/json"), "run");
  for (int rank = 0; rank < a.agents; ++rank) post(rank, "heartbeat", {{"state", "running"}});

  const auto anchor = result.anchor;
  write_all(marks, "p");
  for (int round = 0; round < a.rounds; ++round) {
    aifc::MetricsAggregate upto(result.aggregate.goodput());
    for (int i = 0; i < (round + 1) * a.records; ++i) upto.add(result.records[i]);
    nlohmann::json records = nlohmann::json::array();
    for (int i = round * a.records; i < (round + 1) * a.records; ++i)
      records.push_back(result.records[i]);
    const nlohmann::json body = {
        {"seq", round},
        {"records", records},
        {"keep_records", true},
        {"aggregate", upto.to_json()},
        {"records_dropped", 0},
        {"anchor", {{"mono_ns", anchor.mono_ns}, {"unix_ns", anchor.unix_ns}}},
        {"start_mono_ns", result.start_ns},
        {"until_mono_ns", result.end_ns},
        {"first_send_late_ns", 0}};
    for (int rank = 0; rank < a.agents; ++rank) post(rank, "partial", body);
  }
  write_all(marks, "h");
  const nlohmann::json progress = {{"completed", 100}, {"failed", 0}, {"in_flight", 8}};
  for (int round = 0; round < a.rounds; ++round)
    for (int rank = 0; rank < a.agents; ++rank)
      post(rank, "heartbeat", {{"state", "running"}, {"progress", progress}});
  write_all(marks, "r");
  const auto document = measured.result_document(result, false);
  for (int rank = 0; rank < a.agents; ++rank) {
    nlohmann::json records = nlohmann::json::array();
    for (const auto& r : result.records) records.push_back(r);
    post(rank, "records", {{"seq", 0}, {"records", std::move(records)}});
    post(rank, "result", {{"document", document}, {"record_batches", 1}});
  }
  write_all(marks, "d");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--agents")
      a.agents = value;
    else if (flag == "--rounds")
      a.rounds = value;
    else if (flag == "--records")
      a.records = value;
    else {
      std::fprintf(stderr, "usage: %s [--agents N] [--rounds N] [--records N]\n", argv[0]);
      return 1;
    }
  }
  int to_child[2], marks[2];
  if (::pipe(to_child) != 0 || ::pipe(marks) != 0) return 1;
  // The agents are another process, so that this process's CPU clock counts the service alone.
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(to_child[1]);
    ::close(marks[0]);
    play_agents(a, to_child[0], marks[1]);
    std::_Exit(0);
  }
  ::close(to_child[0]);
  ::close(marks[1]);

  const auto dir =
      std::filesystem::temp_directory_path() / fmt::format("aifc-service-messages-{}", ::getpid());
  aifc::ServiceConfig config;
  config.server_url = "http://127.0.0.1:9";
  config.port = 0;
  config.state_dir = dir.string();
  auto slurm = std::make_unique<AlwaysRunning>();
  const AlwaysRunning& jobs = *slurm;
  aifc::Service service(config, std::move(slurm));
  service.start();
  write_all(to_child[1], fmt::format("{}\n{}\n", service.port(), service.api_token()));
  // The group's job is submitted by the monitor; its environment carries the agents' token.
  while (jobs.agent_token().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  write_all(to_child[1], jobs.agent_token() + "\n");

  double at[4];
  char mark;
  for (int i = 0; i < 4; ++i) {
    if (::read(marks[0], &mark, 1) != 1) {
      std::fprintf(stderr, "the agents' process ended early\n");
      return 1;
    }
    at[i] = cpu_seconds();
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  service.stop();
  std::filesystem::remove_all(dir);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  const double partials = a.agents * a.rounds, finals = a.agents;
  std::printf("service CPU, %d agents, %d records a partial message:\n", a.agents, a.records);
  std::printf("  per partial message   %.3f ms\n", 1e3 * (at[1] - at[0]) / partials);
  std::printf("  per heartbeat         %.3f ms\n", 1e3 * (at[2] - at[1]) / partials);
  std::printf("  per final result      %.3f ms (%d records in one batch, then the document)\n",
              1e3 * (at[3] - at[2]) / finals, a.records * a.rounds);
  return 0;
}
