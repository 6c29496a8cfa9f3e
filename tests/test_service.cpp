#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aifc/error.hpp>
#include <aifc/merge.hpp>
#include <aifc/service.hpp>
#include <aifc/simulator.hpp>
#include <aifc/slurm.hpp>
#include <aifc/ssh.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "service/api_routes.hpp"
#include "test_needs.hpp"

namespace {

const char* env(const char* name) { return std::getenv(name); }

std::string fresh_dir(const std::string& tag) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("aifc-service-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The API as a user calls it: real HTTP on loopback, with the bearer token.
struct Api {
  Api(const std::string& url, std::string token) : client(url), token(std::move(token)) {
    client.set_read_timeout(std::chrono::seconds(60));
  }
  httplib::Headers auth() const { return {{"Authorization", "Bearer " + token}}; }
  std::pair<int, nlohmann::json> get(const std::string& path) {
    return parse(client.Get(path.c_str(), auth()));
  }
  std::pair<int, nlohmann::json> post(const std::string& path, const std::string& body) {
    return parse(client.Post(path.c_str(), auth(), body, "application/json"));
  }
  std::pair<int, nlohmann::json> post(const std::string& path, const nlohmann::json& body) {
    return post(path, body.dump());
  }
  std::pair<int, nlohmann::json> del(const std::string& path) {
    return parse(client.Delete(path.c_str(), auth()));
  }
  static std::pair<int, nlohmann::json> parse(const httplib::Result& r) {
    REQUIRE_MESSAGE(r, "no answer: " << httplib::to_string(r.error()));
    nlohmann::json body;
    try {
      body = nlohmann::json::parse(r->body);
    } catch (const std::exception&) {
      body = r->body;
    }
    return {r->status, body};
  }
  // Polls a group until it reaches `state` (or a terminal one) or the time is up.
  nlohmann::json wait_for(const std::string& id, const std::string& state,
                          std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    nlohmann::json g;
    for (;;) {
      g = get("/api/v1/client-group/" + id).second;
      const auto s = g.value("state", "");
      if (s == state || s == "failed" || s == "cancelled" || s == "finished" ||
          std::chrono::steady_clock::now() > until)
        return g;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  httplib::Client client;
  std::string token;
};

// A service whose Slurm door leads nowhere: every job is refused, which is all the API's own
// checks need.
aifc::ServiceConfig offline_config(const std::string& tag) {
  aifc::ServiceConfig c;
  c.server_url = "http://127.0.0.1:9";
  c.port = 0;
  c.state_dir = fresh_dir(tag);
  return c;
}

std::unique_ptr<aifc::SlurmBackend> no_slurm() {
  aifc::CliConfig cli;
  cli.sbatch = "/nonexistent/aifc-test-sbatch";
  return aifc::make_cli_backend(cli);
}

aifc::RestConfig rest_config() {
  aifc::RestConfig c;
  c.url = env("AIFC_SLURMRESTD_URL");
  c.user_name = env("AIFC_CLUSTER_USER");
  c.api_ver = env("AIFC_SLURMRESTD_API_VERSION");
  c.jwt = env("AIFC_SLURMRESTD_TOKEN");
  return c;
}

bool have_cluster() {
  if (env("AIFC_CLUSTER_STATE") && env("AIFC_CLI")) return true;
  FAIL("AIFC_REQUIRE_CLUSTER is set but no cluster environment (or AIFC_CLI) is");
  return false;
}

// A service against the test cluster, its agents being this build's `aifc agent`.
aifc::ServiceConfig cluster_config(const std::string& tag, const std::string& server_url) {
  aifc::ServiceConfig c;
  c.server_url = server_url;
  c.port = 0;
  c.state_dir = fresh_dir(tag);
  c.job_directory = env("AIFC_CLUSTER_WORKDIR");
  c.agent_command = {env("AIFC_CLI"), "agent"};
  c.registration_timeout = std::chrono::seconds(120);
  return c;
}

std::string job_output(const std::string& id, const nlohmann::json& group) {
  const std::string job = group.value("job_id", "");
  return read_all(std::string(env("AIFC_CLUSTER_WORKDIR")) + "/aifc-" + id + "-" + job + ".out");
}

}  // namespace

TEST_CASE("service: every API call needs the token, and bad input gets a 4xx naming the field") {
  auto config = offline_config("api");
  config.max_body_bytes = 8192;
  aifc::Service service(config, no_slurm());
  std::mutex seen_mutex;
  std::vector<std::string> seen;  // "group type state"
  service.on_event([&](const aifc::GroupEvent& e) {
    std::lock_guard lock(seen_mutex);
    seen.push_back(e.group_id + " " + e.type + " " + e.data.value("state", std::string()));
  });
  service.on_event([](const aifc::GroupEvent&) { throw std::runtime_error("observer bug"); });
  service.start();
  Api api(service.url(), service.api_token());
  CHECK(service.api_token().size() >= 32);

  // Open routes.
  auto health = httplib::Client(service.url()).Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);

  // No token, a wrong one: 401, and nothing is created.
  Api stranger(service.url(), "wrong-token");
  CHECK(stranger.get("/api/v1/client-groups").first == 401);
  CHECK(stranger.post("/api/v1/client-group/x", nlohmann::json{{"num_clients", 1}}).first == 401);
  auto bare = httplib::Client(service.url()).Get("/api/v1/client-groups");
  REQUIRE(bare);
  CHECK(bare->status == 401);
  CHECK(api.get("/api/v1/client-groups").second["groups"].empty());

  auto error_of = [&](const std::string& id, const std::string& body) {
    const auto [status, reply] = api.post("/api/v1/client-group/" + id, body);
    CHECK(status == 400);
    return reply.value("error", std::string());
  };
  CHECK(error_of("a", R"({"num_clients": "eight"})").rfind("num_clients:", 0) == 0);
  CHECK(error_of("a", R"({"num_clients": 2.5})") ==
        "num_clients: must be a whole number (got 2.5)");
  CHECK(error_of("a", R"({"num_clients": 2, "spec": {"load": {"num_requests": 10.5}}})")
            .find("load.num_requests: must be a whole number") != std::string::npos);
  CHECK(error_of("a", R"({"num_clients": 2, "bogus": 1})").find("unknown field 'bogus'") !=
        std::string::npos);
  CHECK(error_of("a", R"({"num_clients": 0})").find("num_clients") != std::string::npos);
  CHECK(error_of("a", R"({"num_clients": 2, "request_rate": -3})").find("request_rate") !=
        std::string::npos);
  CHECK(error_of("a", R"({"num_clients": 2, "goodput": "ttft=5"})").rfind("goodput:", 0) == 0);
  CHECK(error_of("a", R"({"num_clients": 2, "dataset_name": 7})").rfind("dataset_name:", 0) == 0);
  // The benchmark's own options that a distributed run sets itself are refused by name.
  CHECK(error_of("a", R"({"num_clients": 2, "sim_ttft_ms": 5})").rfind("sim_ttft_ms:", 0) == 0);
  CHECK(error_of("a", R"({"num_clients": 2, "rank": 1})").rfind("rank: the service shards", 0) ==
        0);
  CHECK(error_of("a", R"({"num_clients": 2, "api_key": "k"})").find("OPENAI_API_KEY") !=
        std::string::npos);
  CHECK(error_of("a", R"({"num_clients": 2, "spec": {"client": {"api_key": "k"}}})")
            .find("OPENAI_API_KEY") != std::string::npos);
  CHECK(error_of("a", R"({"num_clients": 2, "profile": true})").rfind("profile: every agent", 0) ==
        0);
  CHECK(error_of("a", R"({"num_clients": 2, "spec": {"profile": true}})")
            .find("every agent would switch") != std::string::npos);
  CHECK(error_of("a", R"({"num_clients": 2, "probe_request_rate": 2})")
            .rfind("probe_request_rate: every agent", 0) == 0);
  CHECK(error_of("a", R"({"num_clients": 2, "spec": {"probe_request_rate": 2}})")
            .find("its own probes") != std::string::npos);
  // vLLM's settings aifc does not take say why, here too.
  CHECK(error_of("a", R"({"num_clients": 2, "hf_split": "train"})").find("Hugging Face Hub") !=
        std::string::npos);
  CHECK(error_of("a", "{not json").find("not valid JSON") != std::string::npos);
  CHECK(error_of("a", "[1, 2]").find("JSON object") != std::string::npos);
  CHECK(error_of("bad$id", R"({"num_clients": 1})").rfind("id:", 0) == 0);
  CHECK(api.post("/api/v1/client-group/big", std::string(20000, ' ')).first == 413);
  CHECK(api.get("/api/v1/client-groups").second["groups"].empty());

  // A job Slurm refuses: the group exists, failed, with the reason.
  const auto [status, group] =
      api.post("/api/v1/client-group/g1", nlohmann::json{{"num_clients", 2}, {"num_prompts", 10}});
  CHECK(status == 201);
  CHECK(group["state"] == "failed");
  CHECK(group["reason"].get<std::string>().find("not accepted") != std::string::npos);
  CHECK(group["transitions"].size() == 2);
  // Observers get the group's events, as /events sends them, on the service's observer thread.
  service.flush_observers();
  {
    std::lock_guard lock(seen_mutex);
    CHECK(seen == std::vector<std::string>{"g1 state created", "g1 state failed"});
  }
  CHECK(service.observer_errors() == 2);
  CHECK(api.post("/api/v1/client-group/g1", nlohmann::json{{"num_clients", 2}}).first == 409);
  CHECK(api.get("/api/v1/client-group/nope").first == 404);
  CHECK(api.del("/api/v1/client-group/nope").first == 404);
  CHECK(api.del("/api/v1/client-group/g1").first == 409);
  CHECK(api.post("/api/v1/client-group/g1/run", std::string()).first == 409);
  CHECK(api.get("/api/v1/client-group/g1/results").first == 409);
  CHECK(api.get("/api/v1/no-such-route").first == 404);

  // The agents' side takes the group's own token only.
  CHECK(api.post("/api/v1/client-group/g1/agents/0/register", nlohmann::json::object()).first ==
        409);  // the API token is accepted, but the group is over
  CHECK(
      stranger.post("/api/v1/client-group/g1/agents/0/register", nlohmann::json::object()).first ==
      401);
  CHECK(api.get("/api/v1/client-group/g1/agents/9/clock").first == 404);

  const auto metrics = httplib::Client(service.url()).Get("/metrics", api.auth());
  REQUIRE(metrics);
  CHECK(metrics->body.find("aifc_service_groups{state=\"failed\"} 1\n") != std::string::npos);
}

TEST_CASE("service: /openapi.json describes every route the server answers, /docs shows them") {
  auto config = offline_config("openapi");
  aifc::Service service(config, no_slurm());
  service.start();
  Api api(service.url(), service.api_token());
  const auto [status, doc] = api.get("/openapi.json");
  REQUIRE(status == 200);
  CHECK(doc["openapi"].get<std::string>().rfind("3.", 0) == 0);
  const auto page = httplib::Client(service.url()).Get("/docs");
  REQUIRE(page);
  CHECK(page->get_header_value("Content-Type").find("text/html") == 0);
  CHECK(page->body.find("http://") == page->body.find("http://127.0.0.1:8001"));  // nothing remote
  std::size_t routes = 0;
  for (const auto& [path, methods] : doc["paths"].items()) {
    CHECK(page->body.find("<code>" + path + "</code>") != std::string::npos);
    for (const auto& [method, op] : methods.items()) {
      ++routes;
      // Fill the path's parameters and call it: the server knows the route (its own 404 for an
      // unknown route says so; a 404 for an unknown group does not).
      std::string concrete = path;
      for (const auto& [name, value] :
           std::vector<std::pair<std::string, std::string>>{{"{id}", "nogroup"}, {"{rank}", "0"}})
        if (const auto at = concrete.find(name); at != std::string::npos)
          concrete.replace(at, name.size(), value);
      httplib::Client c(service.url());
      httplib::Result r = method == "get" ? c.Get(concrete.c_str(), api.auth())
                          : method == "post"
                              ? c.Post(concrete.c_str(), api.auth(), "{}", "application/json")
                              : c.Delete(concrete.c_str(), api.auth());
      REQUIRE(r);
      const std::string method_name = method;  // clang before 16: no binding in a lambda
      CAPTURE(method_name);
      CAPTURE(concrete);
      CHECK(r->body.find("no such route") == std::string::npos);
    }
  }
  CHECK(routes == aifc::service::routes().size());
}

TEST_CASE("service: docs/api-reference.md has a section for every route of /openapi.json") {
  const auto doc = read_all(AIFC_SOURCE_DIR "/docs/api-reference.md");
  REQUIRE(!doc.empty());
  std::size_t sections = 0;
  for (std::size_t at = doc.find("\n### `"); at != std::string::npos;
       at = doc.find("\n### `", at + 1))
    ++sections;
  std::size_t routes = 0;
  const auto openapi = aifc::Service::openapi();
  for (const auto& path_item : openapi["paths"].items())
    for (const auto& method_item : path_item.value().items()) {
      // Named copies: clang before 16 cannot capture structured bindings (CAPTURE is a lambda).
      const std::string path = path_item.key();
      std::string upper = method_item.key();
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      CAPTURE(upper + " " + path);
      CHECK(doc.find("\n### `" + upper + " " + path + "`\n") != std::string::npos);
      ++routes;
    }
  CHECK(sections == routes);
}

TEST_CASE("service: a restarted service has kept its groups, their history and its token") {
  auto config = offline_config("restart");
  std::string token;
  nlohmann::json before;
  {
    aifc::Service service(config, no_slurm());
    service.start();
    token = service.api_token();
    Api api(service.url(), token);
    CHECK(api.post("/api/v1/client-group/kept", nlohmann::json{{"num_clients", 3}}).first == 201);
    before = api.get("/api/v1/client-group/kept").second;
  }
  CHECK((std::filesystem::status(config.state_dir + "/api-token").permissions() &
         std::filesystem::perms::group_all) == std::filesystem::perms::none);
  aifc::Service again(config, no_slurm());
  again.start();
  CHECK(again.api_token() == token);
  Api api(again.url(), token);
  const auto after = api.get("/api/v1/client-group/kept").second;
  CHECK(after["state"] == before["state"]);
  CHECK(after["reason"] == before["reason"]);
  CHECK(after["transitions"] == before["transitions"]);
  CHECK(after["request"] == before["request"]);
}

TEST_CASE("service: 8 agents on 4 nodes start together and their merged result is exact" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  sim_config.ttft = aifc::DelaySpec::parse("5");
  sim_config.itl = aifc::DelaySpec::parse("2");
  aifc::Simulator sim(sim_config);
  sim.start();
  aifc::Service service(cluster_config("eight", sim.base_url()),
                        aifc::make_rest_backend(rest_config()));
  service.start();
  Api api(service.url(), service.api_token());
  const std::string id = "eight-" + std::to_string(::getpid());
  const auto [status, created] = api.post(
      "/api/v1/client-group/" + id, nlohmann::json{{"num_clients", 8},
                                                   {"nodes", 4},
                                                   {"ntasks_per_node", 2},
                                                   {"time_limit", 5},
                                                   {"partition", env("AIFC_CLUSTER_PARTITION")},
                                                   {"num_prompts", 400},
                                                   {"request_rate", 200},
                                                   {"random_input_len", 16},
                                                   {"random_output_len", 8},
                                                   {"percentile_metrics", "ttft,tpot,itl,e2el"},
                                                   {"metric_percentiles", "50,99"}});
  REQUIRE(status == 201);
  const nlohmann::json& created_group = created;  // clang before 16: no binding in a lambda
  CAPTURE(created_group);
  auto group = api.wait_for(id, "ready", std::chrono::seconds(180));
  CAPTURE(group);
  CAPTURE(job_output(id, group));
  REQUIRE(group["state"] == "ready");
  CHECK(group["agents"].size() == 8);
  CHECK(api.get("/api/v1/client-group/" + id + "/results").first == 409);

  const auto [run_status, running] = api.post("/api/v1/client-group/" + id + "/run", std::string());
  REQUIRE(run_status == 200);
  CHECK(running["state"] == "running");
  CHECK(api.post("/api/v1/client-group/" + id + "/run", std::string()).first == 409);
  group = api.wait_for(id, "finished", std::chrono::seconds(180));
  REQUIRE(group["state"] == "finished");

  const auto [rstatus, result] = api.get("/api/v1/client-group/" + id + "/results?detail=agents");
  REQUIRE(rstatus == 200);
  CHECK(result["completed"] == 400);
  CHECK(result["failed"] == 0);
  CHECK(result["total_output_tokens"] == 400 * 8);
  const auto& dist = result["distributed"];
  CHECK(dist["ranks"].size() == 8);
  CHECK(dist["missing_ranks"].empty());
  CHECK(dist["exact"] == true);
  CHECK(dist["per_node"].size() == 4);
  CHECK(dist["per_rank"].size() == 8);
  // Every agent started its shard at the agreed instant: on loopback the spread is a few ms
  // at most (bench/ measures it); a loaded machine may add scheduling delay, hence the margin.
  CHECK(dist["start_spread_ms"].get<double>() < 250.0);
  std::int64_t per_rank_total = 0;
  for (const auto& r : dist["per_rank"]) per_rank_total += r["completed"].get<std::int64_t>();
  CHECK(per_rank_total == 400);

  // The merged percentiles are those of the union of the agents' own records (their raw files).
  std::vector<double> ttfts, e2els;
  for (int rank = 0; rank < 8; ++rank) {
    const auto file = std::string(env("AIFC_CLUSTER_WORKDIR")) + "/aifc-" + id + "-rank" +
                      std::to_string(rank) + ".json";
    const auto doc = aifc::read_result_document(nlohmann::json::parse(read_all(file)));
    for (const auto& rec : doc.result.records)
      if (!rec.warmup && rec.ok()) {
        ttfts.push_back(rec.ttft_s());
        e2els.push_back(rec.e2el_s());
      }
  }
  REQUIRE(ttfts.size() == 400);
  const auto ttft = aifc::exact_stats(ttfts, {50, 99});
  const auto e2el = aifc::exact_stats(e2els, {50, 99});
  CHECK(result["mean_ttft_ms"].get<double>() == doctest::Approx(ttft.mean));
  CHECK(result["p99_ttft_ms"].get<double>() == doctest::Approx(ttft.percentiles[1].second));
  CHECK(result["median_e2el_ms"].get<double>() == doctest::Approx(e2el.median));
  CHECK(result["p99_e2el_ms"].get<double>() == doctest::Approx(e2el.percentiles[1].second));

  // Its history, in order.
  std::vector<std::string> states;
  for (const auto& t : group["transitions"]) states.push_back(t["state"]);
  CHECK(states == std::vector<std::string>{"created", "submitted", "registering", "ready",
                                           "running", "finished"});
  // The events of the run, as server-sent events that end with the group.
  auto events = httplib::Client(service.url())
                    .Get(("/api/v1/client-group/" + id + "/events").c_str(), api.auth());
  REQUIRE(events);
  CHECK(events->get_header_value("Content-Type").find("text/event-stream") == 0);
  CHECK(events->body.find("event: state") != std::string::npos);
  CHECK(events->body.find("\"state\":\"finished\"") != std::string::npos);
  // Progress over all agents came once a second while the 2-second run lasted.
  CHECK(events->body.find("event: progress") != std::string::npos);
  // The agents' token never reached the job's script or output.
  CHECK(job_output(id, group).find("AIFC_AGENT_TOKEN=") == std::string::npos);
}

TEST_CASE(
    "service: a job Slurm cannot run fails the group with Slurm's reason; cancel stops a "
    "run" *
    AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  aifc::Simulator sim(sim_config);
  sim.start();
  aifc::Service service(cluster_config("faults", sim.base_url()), aifc::make_cli_backend());
  service.start();
  Api api(service.url(), service.api_token());
  const std::string tag = std::to_string(::getpid());

  const auto [status, refused] = api.post(
      "/api/v1/client-group/nopart-" + tag,
      nlohmann::json{{"num_clients", 2}, {"partition", "no-such-partition"}, {"num_prompts", 4}});
  CHECK(status == 201);
  const nlohmann::json& refused_reply = refused;  // clang before 16: no binding in a lambda
  CAPTURE(refused_reply);
  CHECK(refused["state"] == "failed");
  CHECK(refused["reason"].get<std::string>().find("partition") != std::string::npos);

  const std::string id = "cancel-" + tag;
  REQUIRE(api.post("/api/v1/client-group/" + id,
                   nlohmann::json{{"num_clients", 2},
                                  {"nodes", 2},
                                  {"time_limit", 5},
                                  {"partition", env("AIFC_CLUSTER_PARTITION")},
                                  {"duration", 120},
                                  {"request_rate", 20},
                                  {"random_input_len", 8},
                                  {"random_output_len", 4}})
              .first == 201);
  auto group = api.wait_for(id, "ready", std::chrono::seconds(180));
  CAPTURE(group);
  CAPTURE(job_output(id, group));
  REQUIRE(group["state"] == "ready");
  REQUIRE(api.post("/api/v1/client-group/" + id + "/run", std::string()).first == 200);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const auto [dstatus, cancelled] = api.del("/api/v1/client-group/" + id);
  CHECK(dstatus == 200);
  CHECK(cancelled["state"] == "cancelled");
  // The job is gone from the queue: Slurm says CANCELLED.
  aifc::SlurmDispatcher slurm(aifc::make_cli_backend());
  const auto info = slurm.wait(group["job_id"].get<std::string>(), std::chrono::seconds(60));
  CHECK(info.state == aifc::JobState::cancelled);
  CHECK(api.del("/api/v1/client-group/" + id).first == 409);
}

namespace {

// A port nothing listens on now: bound without listening, then closed.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// `aifc service` as its own process, so that it can be killed with SIGKILL.
struct ServiceProcess {
  ServiceProcess(const std::vector<std::string>& args, const std::string& token, int port,
                 const std::vector<std::pair<std::string, std::string>>& environment = {})
      : url("http://127.0.0.1:" + std::to_string(port)) {
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setenv("AIFC_API_TOKEN", token.c_str(), 1);
      for (const auto& [name, value] : environment) ::setenv(name.c_str(), value.c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    httplib::Client c(url);
    for (int i = 0; i < 200; ++i) {
      if (auto r = c.Get("/health"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("aifc service did not come up");
  }
  void kill_now() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  ~ServiceProcess() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
  std::string url;
  pid_t pid = -1;
};

}  // namespace

TEST_CASE(
    "service: an agent killed mid-run counts with what its partial results brought; a service "
    "killed with SIGKILL mid-run and restarted completes the run" *
    AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  sim_config.ttft = aifc::DelaySpec::parse("5");
  sim_config.itl = aifc::DelaySpec::parse("5");
  aifc::Simulator sim(sim_config);
  sim.start();
  const int port = free_port();
  const std::string token = "test-token-" + std::to_string(::getpid());
  const auto state = fresh_dir("killed");
  const std::vector<std::string> args = {env("AIFC_CLI"),
                                         "service",
                                         sim.base_url(),
                                         "--port",
                                         std::to_string(port),
                                         "--state-dir",
                                         state,
                                         "--job-dir",
                                         env("AIFC_CLUSTER_WORKDIR"),
                                         "--slurm-backend",
                                         "cli",
                                         "--agent-silence-limit",
                                         "8",
                                         "--partial-interval",
                                         "1",
                                         "--agent-command",
                                         env("AIFC_CLI"),
                                         "agent"};
  auto service = std::make_unique<ServiceProcess>(args, token, port);
  Api api(service->url, token);
  const std::string id = "killed-" + std::to_string(::getpid());
  REQUIRE(api.post("/api/v1/client-group/" + id,
                   nlohmann::json{{"num_clients", 4},
                                  {"nodes", 2},
                                  {"ntasks_per_node", 2},
                                  {"time_limit", 5},
                                  {"partition", env("AIFC_CLUSTER_PARTITION")},
                                  {"num_prompts", 600},
                                  {"request_rate", 60},
                                  {"random_input_len", 8},
                                  {"random_output_len", 4}})
              .first == 201);
  auto group = api.wait_for(id, "ready", std::chrono::seconds(180));
  CAPTURE(group);
  CAPTURE(job_output(id, group));
  REQUIRE(group["state"] == "ready");
  REQUIRE(api.post("/api/v1/client-group/" + id + "/run", std::string()).first == 200);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  // Rank 1 dies with SIGKILL (the agents run on this machine: the test cluster's nodes do).
  const auto pid = group["agents"][1]["pid"].get<pid_t>();
  REQUIRE(group["agents"][1]["rank"] == 1);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  // The service dies too, and comes back on the same state while the other agents run on.
  service->kill_now();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  service = std::make_unique<ServiceProcess>(args, token, port);
  group = api.wait_for(id, "finished", std::chrono::seconds(180));
  REQUIRE(group["state"] == "finished");
  const auto [status, result] = api.get("/api/v1/client-group/" + id + "/results");
  REQUIRE(status == 200);
  const auto& dist = result["distributed"];
  // Rank 1 sent partial results every second until it was killed 4 s into its 10 s share:
  // those requests count, the rest of its share is missing, and the result says so.
  CHECK(dist["ranks"] == nlohmann::json({0, 1, 2, 3}));
  CHECK(dist["missing_ranks"].empty());
  CHECK(dist["partial_ranks"] == nlohmann::json({1}));
  REQUIRE(dist["partial"].size() == 1);
  const int partial_requests = dist["partial"][0]["requests"].get<int>();
  CHECK(partial_requests > 0);
  CHECK(partial_requests < 150);
  // The three other ranks' shares (150 requests each) are whole, and rank 1's records are
  // merged exactly like theirs.
  CHECK(result["completed"].get<int>() + result["failed"].get<int>() == 450 + partial_requests);
  CHECK(result["failed"] == 0);
  CHECK(dist["exact"] == true);
  std::vector<std::string> states;
  for (const auto& t : group["transitions"]) states.push_back(t["state"]);
  CHECK(states.back() == "finished");
  CHECK(group["reason"].get<std::string>().find("partial results: [1]") != std::string::npos);
}

TEST_CASE(
    "service: through sbatch over SSH, with the agents coming back through a reverse "
    "tunnel" *
    AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  aifc::Simulator sim(sim_config);
  sim.start();
  // `aifc service --slurm-backend ssh` as a user starts it: the login node from SSH_* (as in a
  // .env file), a reverse tunnel it opens there, and agents that know only the tunnel's end.
  const int port = free_port();
  const std::string token = "ssh-token-" + std::to_string(::getpid());
  const std::vector<std::string> args = {env("AIFC_CLI"),
                                         "service",
                                         sim.base_url(),
                                         "--port",
                                         std::to_string(port),
                                         "--state-dir",
                                         fresh_dir("ssh-program"),
                                         "--job-dir",
                                         env("AIFC_CLUSTER_WORKDIR"),
                                         "--slurm-backend",
                                         "ssh",
                                         "--agent-command",
                                         env("AIFC_CLI"),
                                         "agent"};
  ServiceProcess service(args, token, port,
                         {{"SSH_HOST", "127.0.0.1"},
                          {"SSH_PORT", env("AIFC_CLUSTER_SSH_PORT")},
                          {"SSH_USER", env("AIFC_CLUSTER_USER")},
                          {"SSH_KEY_PATH", env("AIFC_CLUSTER_SSH_KEY")},
                          {"SSH_KNOWN_HOSTS", env("AIFC_CLUSTER_SSH_KNOWN_HOSTS")},
                          {"REMOTE_BASE_PATH", env("AIFC_CLUSTER_WORKDIR")}});
  Api api(service.url, token);
  const std::string id = "ssh-" + std::to_string(::getpid());
  const auto [status, created] = api.post(
      "/api/v1/client-group/" + id, nlohmann::json{{"num_clients", 2},
                                                   {"nodes", 2},
                                                   {"time_limit", 5},
                                                   {"partition", env("AIFC_CLUSTER_PARTITION")},
                                                   {"num_prompts", 40},
                                                   {"request_rate", 100},
                                                   {"random_input_len", 8},
                                                   {"random_output_len", 4}});
  REQUIRE(status == 201);
  auto group = api.wait_for(id, "ready", std::chrono::seconds(180));
  CAPTURE(group);
  CAPTURE(job_output(id, group));
  REQUIRE(group["state"] == "ready");
  REQUIRE(api.post("/api/v1/client-group/" + id + "/run", std::string()).first == 200);
  group = api.wait_for(id, "finished", std::chrono::seconds(180));
  REQUIRE(group["state"] == "finished");
  const auto [rstatus, result] = api.get("/api/v1/client-group/" + id + "/results");
  REQUIRE(rstatus == 200);
  CHECK(result["completed"] == 40);
  CHECK(result["distributed"]["missing_ranks"].empty());
}

TEST_CASE("service: container mode runs the agents in the Apptainer image" * AIFC_NEEDS_APPTAINER) {
  if (!have_cluster()) return;
  const char* image = env("AIFC_TEST_APPTAINER_IMAGE");
  REQUIRE_MESSAGE(image, "AIFC_REQUIRE_APPTAINER is set but AIFC_TEST_APPTAINER_IMAGE is not");
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  aifc::Simulator sim(sim_config);
  sim.start();
  // `aifc service` as a user starts it on a login node with slurmrestd: the REST settings in
  // a key=value file, container mode from CLIENT_SERVICE_CONTAINER_MODE (the image's own
  // `aifc agent`, the job directory bound in for the raw result files).
  const auto state = fresh_dir("container");
  const std::string slurm_config = state + "/slurmrestd.conf";
  std::filesystem::create_directories(state);
  {
    const auto rest = rest_config();
    std::ofstream out(slurm_config);
    REQUIRE(out);
    out << "url=" << rest.url << "\nuser_name=" << rest.user_name << "\napi_ver=" << rest.api_ver
        << "\njwt=" << rest.jwt << "\n";
  }
  const int port = free_port();
  const std::string token = "container-token-" + std::to_string(::getpid());
  ServiceProcess service(
      {env("AIFC_CLI"), "service", sim.base_url(), "--port", std::to_string(port), "--state-dir",
       state, "--job-dir", env("AIFC_CLUSTER_WORKDIR"), "--slurm-backend", "rest", "--slurm-config",
       slurm_config, "--registration-timeout", "240"},
      token, port, {{"CLIENT_SERVICE_CONTAINER_MODE", image}});
  Api api(service.url, token);
  const std::string id = "container-" + std::to_string(::getpid());
  REQUIRE(api.post("/api/v1/client-group/" + id,
                   nlohmann::json{{"num_clients", 2},
                                  {"nodes", 2},
                                  {"time_limit", 5},
                                  {"partition", env("AIFC_CLUSTER_PARTITION")},
                                  {"num_prompts", 20},
                                  {"request_rate", 100},
                                  {"random_input_len", 8},
                                  {"random_output_len", 4}})
              .first == 201);
  auto group = api.wait_for(id, "ready", std::chrono::seconds(240));
  CAPTURE(group);
  CAPTURE(job_output(id, group));
  REQUIRE(group["state"] == "ready");
  REQUIRE(api.post("/api/v1/client-group/" + id + "/run", std::string()).first == 200);
  group = api.wait_for(id, "finished", std::chrono::seconds(180));
  REQUIRE(group["state"] == "finished");
  const auto [rstatus, result] = api.get("/api/v1/client-group/" + id + "/results");
  REQUIRE(rstatus == 200);
  CHECK(result["completed"] == 20);
  CHECK(result["distributed"]["missing_ranks"].empty());
}

TEST_CASE("service: agents that outlive the service leave raw results it reads back on restart" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  aifc::Simulator sim(sim_config);
  sim.start();
  const int port = free_port();
  const std::string token = "raw-token-" + std::to_string(::getpid());
  const std::vector<std::string> args = {env("AIFC_CLI"),
                                         "service",
                                         sim.base_url(),
                                         "--port",
                                         std::to_string(port),
                                         "--state-dir",
                                         fresh_dir("raw"),
                                         "--job-dir",
                                         env("AIFC_CLUSTER_WORKDIR"),
                                         "--slurm-backend",
                                         "cli",
                                         "--result-grace",
                                         "1",
                                         "--agent-outage-limit",
                                         "2",
                                         "--agent-command",
                                         env("AIFC_CLI"),
                                         "agent"};
  auto service = std::make_unique<ServiceProcess>(args, token, port);
  Api api(service->url, token);
  const std::string id = "raw-" + std::to_string(::getpid());
  REQUIRE(api.post("/api/v1/client-group/" + id,
                   nlohmann::json{{"num_clients", 2},
                                  {"nodes", 2},
                                  {"time_limit", 5},
                                  {"partition", env("AIFC_CLUSTER_PARTITION")},
                                  {"num_prompts", 100},
                                  {"request_rate", 50},
                                  {"random_input_len", 8},
                                  {"random_output_len", 4}})
              .first == 201);
  auto group = api.wait_for(id, "ready", std::chrono::seconds(180));
  CAPTURE(group);
  REQUIRE(group["state"] == "ready");
  REQUIRE(api.post("/api/v1/client-group/" + id + "/run", std::string()).first == 200);
  // Once both agents run, the service is gone for the rest of the run: the agents measure,
  // fail to report within their two seconds of patience, keep their raw results and end.
  for (int i = 0; i < 100; ++i) {
    group = api.get("/api/v1/client-group/" + id).second;
    if (group["agents"].size() == 2 && group["agents"][0]["state"] == "running" &&
        group["agents"][1]["state"] == "running")
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(group["agents"][1]["state"] == "running");
  service->kill_now();
  aifc::SlurmDispatcher slurm(aifc::make_cli_backend());
  const auto info = slurm.wait(group["job_id"].get<std::string>(), std::chrono::seconds(120));
  CHECK(aifc::is_terminal(info.state));
  service = std::make_unique<ServiceProcess>(args, token, port);
  group = api.wait_for(id, "finished", std::chrono::seconds(120));
  REQUIRE(group["state"] == "finished");
  const auto [status, result] = api.get("/api/v1/client-group/" + id + "/results");
  REQUIRE(status == 200);
  CHECK(result["completed"] == 100);
  CHECK(result["distributed"]["missing_ranks"].empty());
  CHECK(result["distributed"]["exact"] == true);
}

TEST_CASE("service: agents that never register fail the group at the registration deadline" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  auto config = cluster_config("deadline", "http://127.0.0.1:9");
  config.registration_timeout = std::chrono::seconds(2);
  config.agent_command = {"sleep", "300"};  // a job that runs but whose agents never call in
  aifc::Service service(config, aifc::make_cli_backend());
  service.start();
  Api api(service.url(), service.api_token());
  const std::string id = "deadline-" + std::to_string(::getpid());
  REQUIRE(api.post("/api/v1/client-group/" + id,
                   nlohmann::json{{"num_clients", 2},
                                  {"nodes", 2},
                                  {"time_limit", 5},
                                  {"partition", env("AIFC_CLUSTER_PARTITION")}})
              .first == 201);
  const auto group = api.wait_for(id, "failed", std::chrono::seconds(120));
  CAPTURE(group);
  REQUIRE(group["state"] == "failed");
  CHECK(group["reason"].get<std::string>().find("registration deadline passed: 0 of 2") !=
        std::string::npos);
  // The job does not linger: the service cancelled it.
  aifc::SlurmDispatcher slurm(aifc::make_cli_backend());
  CHECK(slurm.wait(group["job_id"].get<std::string>(), std::chrono::seconds(60)).state ==
        aifc::JobState::cancelled);
}
