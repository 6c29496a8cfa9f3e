#include <doctest/doctest.h>
#include <httplib.h>
#include <unistd.h>

#include <aifc/error.hpp>
#include <aifc/simulator.hpp>
#include <aifc/slurm.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "test_needs.hpp"

namespace {

std::string run_bash(const std::string& script) {
  const auto path =
      std::filesystem::temp_directory_path() / ("aifc_quote_" + std::to_string(::getpid()) + ".sh");
  std::ofstream(path) << script;
  std::string out;
  if (FILE* p = ::popen(("bash " + path.string()).c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  std::filesystem::remove(path);
  return out;
}

const char* env(const char* name) { return std::getenv(name); }

// The cluster tests need tests/cluster/start.sh's environment; the test command provides it
// and sets AIFC_REQUIRE_CLUSTER so that a missing cluster fails instead of skipping.
bool have_cluster() {
  if (env("AIFC_CLUSTER_STATE")) return true;
  // Reached only when AIFC_REQUIRE_CLUSTER is set (otherwise the case is skipped).
  FAIL("AIFC_REQUIRE_CLUSTER is set but no cluster environment is (source env.sh)");
  return false;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

aifc::JobSpec two_node_spec(const std::string& tag) {
  aifc::JobSpec s;
  s.name = "aifc-test-" + tag;
  s.partition = env("AIFC_CLUSTER_PARTITION");
  s.nodes = 2;
  s.ntasks_per_node = 1;
  s.time_limit = std::chrono::minutes(5);
  s.working_directory = env("AIFC_CLUSTER_WORKDIR");
  s.output = s.working_directory + "/" + tag + "-%j.out";
  s.environment = {{"AIFC_GREETING", "hello from aifc"}};
  s.command = {"bash", "-c", "echo \"task $SLURM_PROCID on $SLURMD_NODENAME says $AIFC_GREETING\""};
  return s;
}

aifc::RestConfig rest_config() {
  aifc::RestConfig c;
  c.url = env("AIFC_SLURMRESTD_URL");
  c.user_name = env("AIFC_CLUSTER_USER");
  c.api_ver = env("AIFC_SLURMRESTD_API_VERSION");
  c.jwt = env("AIFC_SLURMRESTD_TOKEN");
  return c;
}

// An array of `tasks` one-node tasks that end at different times: the job is COMPLETED only
// when every task is, and each wrote its own output.
void check_array_job(aifc::SlurmDispatcher& d, const std::string& tag, int tasks) {
  auto array = two_node_spec(tag);
  array.nodes = 1;
  array.ntasks_per_node = 0;
  array.array = "0-" + std::to_string(tasks - 1);
  array.output = array.working_directory + "/" + tag + "-%A_%a.out";
  array.command = {"bash", "-c", "sleep 0.$SLURM_ARRAY_TASK_ID; echo task $SLURM_ARRAY_TASK_ID"};
  const auto id = d.submit(array);
  CHECK(d.wait(id, std::chrono::seconds(60)).state == aifc::JobState::completed);
  for (int t = 0; t < tasks; ++t)
    CHECK(read_all(array.working_directory + "/" + tag + "-" + id + "_" + std::to_string(t) +
                   ".out") == "task " + std::to_string(t) + "\n");
}

void check_two_node_output(const aifc::JobInfo& info, const std::string& tag) {
  CHECK(info.state == aifc::JobState::completed);
  CHECK(info.exit_code == 0);
  const auto out =
      read_all(std::string(env("AIFC_CLUSTER_WORKDIR")) + "/" + tag + "-" + info.job_id + ".out");
  CAPTURE(out);
  CHECK(out.find("task 0 on n") != std::string::npos);
  CHECK(out.find("task 1 on n") != std::string::npos);
  CHECK(out.find("says hello from aifc") != std::string::npos);
  std::set<std::string> nodes;
  for (const char* n : {"n1", "n2", "n3", "n4"})
    if (out.find(std::string("on ") + n + " ") != std::string::npos) nodes.insert(n);
  CHECK(nodes.size() == 2);  // two tasks, two different nodes
}

}  // namespace

TEST_CASE("slurm: shell quoting survives bash for every nasty string") {
  for (const std::string s :
       {"plain", "with space", "it's", "$(rm -rf /)", "`id`", "a\"b", "back\\slash", "semi;colon",
        "new\nline", "", "*", "~user", "--flag=x y", "ünïcode"}) {
    CAPTURE(s);
    CHECK(run_bash("printf '%s' " + aifc::shell_quote(s)) == s);
  }
}

TEST_CASE("slurm: the batch script is readable, quoted and free of environment values") {
  aifc::JobSpec s;
  s.name = "bench run";
  s.partition = "gpu";
  s.account = "proj-42";
  s.nodes = 4;
  s.ntasks_per_node = 8;
  s.gpus_per_node = 4;
  s.memory = "64G";
  s.time_limit = std::chrono::minutes(90);
  s.array = "0-3%2";
  s.working_directory = "/scratch/my runs";
  s.environment = {{"API_TOKEN", "s3cr3t-value"}};
  s.extra_directives = {"--exclusive"};
  s.command = {"aifc", "bench", "--metadata", "note=$(whoami)"};
  s.container =
      aifc::ContainerSpec{"/images/aifc.sif", {"/scratch:/scratch"}, std::nullopt, {}, "apptainer"};
  const auto script = aifc::render_batch_script(s);
  CAPTURE(script);
  CHECK(script.rfind("#!/bin/bash\n", 0) == 0);
  CHECK(script.find("#SBATCH --job-name='bench run'\n") != std::string::npos);
  CHECK(script.find("#SBATCH --partition=gpu\n") != std::string::npos);
  CHECK(script.find("#SBATCH --nodes=4\n") != std::string::npos);
  CHECK(script.find("#SBATCH --ntasks-per-node=8\n") != std::string::npos);
  CHECK(script.find("#SBATCH --gpus-per-node=4\n") != std::string::npos);
  CHECK(script.find("#SBATCH --time=90\n") != std::string::npos);
  CHECK(script.find("#SBATCH --array=0-3%2\n") != std::string::npos);
  CHECK(script.find("#SBATCH --chdir='/scratch/my runs'\n") != std::string::npos);
  CHECK(script.find("#SBATCH --exclusive\n") != std::string::npos);
  CHECK(script.find("srun apptainer exec --nv --bind /scratch:/scratch /images/aifc.sif aifc bench "
                    "--metadata 'note=$(whoami)'\n") != std::string::npos);
  CHECK(script.find("s3cr3t") == std::string::npos);  // environment goes to the job, not the script
  s.gpus_per_node = 0;
  CHECK(aifc::render_batch_script(s).find("--nv") == std::string::npos);
  s.use_srun = false;
  s.container.reset();
  CHECK(aifc::render_batch_script(s).find("\naifc bench") != std::string::npos);
  s.use_srun = true;
  CHECK(aifc::render_batch_script(s).find("\nsrun aifc bench") != std::string::npos);
}

TEST_CASE("slurm: job specs, container specs and job info travel as JSON") {
  aifc::JobSpec s;
  s.name = "json run";
  s.partition = "gpu";
  s.nodes = 3;
  s.ntasks_per_node = 2;
  s.time_limit = std::chrono::minutes(45);
  s.environment = {{"A", "1"}, {"B", "two words"}};
  s.command = {"aifc", "bench", "--num-prompts", "9"};
  s.use_srun = false;
  s.container = aifc::ContainerSpec{"/img/aifc.sif", {"/data"}, false, {"--cleanenv"}, "/opt/at"};
  const nlohmann::json j = s;
  CHECK(j.at("time_limit_min") == 45);
  CHECK(j.at("environment") == nlohmann::json{{"A", "1"}, {"B", "two words"}});
  CHECK(j.at("container").at("gpu") == false);
  const auto back = j.get<aifc::JobSpec>();
  CHECK(back.environment == s.environment);
  REQUIRE(back.container.has_value());
  CHECK(back.container->gpu == std::optional<bool>(false));
  CHECK(back.container->extra_args == std::vector<std::string>{"--cleanenv"});
  CHECK(aifc::render_batch_script(back) == aifc::render_batch_script(s));

  // Missing fields keep their defaults; null container means none.
  const auto minimal = nlohmann::json{{"command", {"hostname"}}, {"container", nullptr}};
  const auto m = minimal.get<aifc::JobSpec>();
  CHECK(m.name == "aifc");
  CHECK(m.nodes == 1);
  CHECK(m.use_srun);
  CHECK_FALSE(m.container.has_value());
  CHECK_THROWS_AS((nlohmann::json{{"nodes", "two"}}.get<aifc::JobSpec>()),
                  nlohmann::json::type_error);

  aifc::JobInfo info;
  info.job_id = "42";
  info.state = aifc::JobState::out_of_memory;
  info.exit_code = 0;
  const nlohmann::json ij = info;
  CHECK(ij.at("state") == "OUT_OF_MEMORY");
  CHECK(ij.at("terminal") == true);
}

TEST_CASE("slurm: job specs that could break the script are refused") {
  aifc::JobSpec s;
  s.command = {"true"};
  CHECK_NOTHROW(s.validate());
  auto refused = [](aifc::JobSpec spec, const char* what) {
    CHECK_THROWS_WITH_AS(spec.validate(), doctest::Contains(what), aifc::Error);
  };
  auto t = s;
  t.partition = "debug\n#SBATCH --uid=0";
  refused(t, "partition");
  t = s;
  t.name = "it's";
  refused(t, "name");
  t = s;
  t.environment = {{"BAD-NAME", "x"}};
  refused(t, "BAD-NAME");
  t = s;
  t.command.clear();
  refused(t, "command");
  t = s;
  t.nodes = -1;
  refused(t, "nodes");
  t = s;
  t.nodes = 0;  // Slurm picks the nodes, but only for a task count
  t.ntasks = 0;
  refused(t, "nodes");
  t = s;
  t.extra_directives = {"exclusive"};
  refused(t, "exclusive");
  t = s;
  t.container = aifc::ContainerSpec{};
  refused(t, "image");
}

TEST_CASE("slurm: job observers are removable and their exceptions never escape wait()") {
  // A backend that walks one job through PENDING, RUNNING, COMPLETED: this checks the
  // dispatcher's observer contract; Slurm itself is exercised live in the cluster cases.
  struct Scripted : aifc::SlurmBackend {
    int polls = 0;
    std::string name() const override { return "scripted"; }
    std::string submit(const aifc::JobSpec&) override { return "42"; }
    aifc::JobInfo query(const std::string& id) override {
      aifc::JobInfo info;
      info.job_id = id;
      info.state = ++polls < 2 ? aifc::JobState::running : aifc::JobState::completed;
      return info;
    }
    void cancel(const std::string&) override {}
  };
  aifc::SlurmDispatcher d(std::make_unique<Scripted>());
  std::vector<aifc::JobState> seen, seen_by_quitter;
  const auto counter =
      d.on_state_change([&](const aifc::JobEvent& e) { seen.push_back(e.info.state); });
  d.on_state_change([](const aifc::JobEvent&) { throw std::runtime_error("observer bug"); });
  aifc::ObserverHandle quitter = 0;
  quitter = d.on_state_change([&](const aifc::JobEvent& e) {
    seen_by_quitter.push_back(e.info.state);
    d.remove_observer(quitter);  // removes itself from inside its own call
  });
  aifc::JobSpec spec;
  spec.command = {"true"};
  const auto id = d.submit(spec);
  aifc::JobInfo info;
  CHECK_NOTHROW(info = d.wait(id, std::chrono::seconds(10), std::chrono::milliseconds(1)));
  CHECK(info.state == aifc::JobState::completed);
  CHECK(seen == std::vector<aifc::JobState>{aifc::JobState::pending, aifc::JobState::running,
                                            aifc::JobState::completed});
  CHECK(seen_by_quitter.size() == 1);
  CHECK(d.observer_errors() == 3);
  CHECK(d.first_observer_error() == "observer bug");
  CHECK(d.observer_events_dropped() == 0);
  CHECK(d.remove_observer(counter));
  CHECK_FALSE(d.remove_observer(counter));
  CHECK_THROWS_AS(d.add_observer(nullptr), aifc::Error);
}

TEST_CASE("slurm: observers are called on their own thread, so a blocked one holds up nothing") {
  struct Scripted : aifc::SlurmBackend {
    int polls = 0;
    std::string name() const override { return "scripted"; }
    std::string submit(const aifc::JobSpec&) override { return "7"; }
    aifc::JobInfo query(const std::string& id) override {
      aifc::JobInfo info;
      info.job_id = id;
      info.state = ++polls < 3 ? aifc::JobState::running : aifc::JobState::completed;
      return info;
    }
    void cancel(const std::string&) override {}
  };
  aifc::SlurmDispatcher d(std::make_unique<Scripted>());
  std::mutex gate;
  std::unique_lock closed(gate);  // the observer blocks on it until the polling is done
  std::vector<aifc::JobState> seen;
  std::thread::id observer_thread;
  d.on_state_change([&](const aifc::JobEvent& e) {
    std::lock_guard wait_for_gate(gate);
    observer_thread = std::this_thread::get_id();
    seen.push_back(e.info.state);
  });
  aifc::JobSpec spec;
  spec.command = {"true"};
  const auto id = d.submit(spec);
  // Called inline, the observer would hold up (deadlock) each of these calls.
  CHECK(d.state(id).state == aifc::JobState::running);
  CHECK(d.state(id).state == aifc::JobState::running);
  CHECK(d.state(id).state == aifc::JobState::completed);
  closed.unlock();
  d.flush_observers();
  CHECK(seen == std::vector<aifc::JobState>{aifc::JobState::pending, aifc::JobState::running,
                                            aifc::JobState::completed});
  CHECK(observer_thread != std::this_thread::get_id());
}

TEST_CASE("slurm: job states as Slurm writes them") {
  CHECK(aifc::job_state_from_string("RUNNING") == aifc::JobState::running);
  CHECK(aifc::job_state_from_string("CANCELLED by 1001") == aifc::JobState::cancelled);
  CHECK(aifc::job_state_from_string("CA") == aifc::JobState::cancelled);
  CHECK(aifc::job_state_from_string("OUT_OF_MEMORY") == aifc::JobState::out_of_memory);
  CHECK(aifc::job_state_from_string("node_fail") == aifc::JobState::node_fail);
  CHECK(aifc::job_state_from_string("weird") == aifc::JobState::unknown);
  CHECK(aifc::is_terminal(aifc::JobState::timeout));
  CHECK_FALSE(aifc::is_terminal(aifc::JobState::completing));
  CHECK(aifc::to_string(aifc::JobState::completed) == "COMPLETED");
}

TEST_CASE("slurm: REST configuration files and versions") {
  const auto path = std::filesystem::temp_directory_path() / "aifc_rest.conf";
  std::ofstream(path)
      << "# site config\nurl = "
         "http://rest:6820\nuser_name=alice\napi_ver=0.0.40\naccount='proj'\njwt=abc.def\n";
  auto c = aifc::RestConfig::from_file(path.string());
  CHECK(c.url == "http://rest:6820");
  CHECK(c.user_name == "alice");
  CHECK(c.api_ver == "v0.0.40");
  CHECK(c.account == "proj");
  CHECK(c.jwt == "abc.def");
  CHECK_NOTHROW(c.validate());
  c.api_ver = "v0.0.36";
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("v0.0.36"), aifc::Error);
  std::ofstream(path) << "url=http://x\npassword=hunter2\n";
  CHECK_THROWS_WITH_AS(aifc::RestConfig::from_file(path.string()), doctest::Contains("password"),
                       aifc::Error);
  CHECK_THROWS_AS(aifc::RestConfig::from_file("/nonexistent/rest.conf"), aifc::Error);
  aifc::RestConfig missing_token;
  missing_token.url = "http://x";
  missing_token.user_name = "u";
  CHECK_THROWS_WITH_AS(missing_token.validate(), doctest::Contains("token"), aifc::Error);
  std::ofstream(path) << "url=http://x\njust words\n";
  CHECK_THROWS_WITH_AS(aifc::RestConfig::from_file(path.string()), doctest::Contains(":2:"),
                       aifc::Error);  // the file and the line
}

TEST_CASE("slurm: backend settings travel as JSON, never with the token") {
  aifc::RestConfig rest;
  rest.url = "http://rest:6820";
  rest.user_name = "alice";
  rest.api_ver = "v0.0.40";
  rest.jwt = "eyJ.secret.token";
  const nlohmann::json j = rest;
  CHECK(j.dump().find("secret") == std::string::npos);
  CHECK(j.get<aifc::RestConfig>().url == "http://rest:6820");
  CHECK(j.get<aifc::RestConfig>().api_ver == "v0.0.40");
  CHECK((nlohmann::json{{"jwt", "t"}}.get<aifc::RestConfig>().jwt == "t"));  // read, not written
  aifc::CliConfig cli;
  cli.slurm_conf = "/etc/slurm/site.conf";
  cli.sbatch = "/opt/slurm/bin/sbatch";
  const auto back = nlohmann::json(cli).get<aifc::CliConfig>();
  CHECK(back.slurm_conf == cli.slurm_conf);
  CHECK(back.sbatch == cli.sbatch);
  CHECK(back.scancel == "scancel");
}

TEST_CASE("slurm: an unreachable slurmrestd is a clear error") {
  aifc::RestConfig c;
  c.url = "http://127.0.0.1:1";
  c.user_name = "u";
  c.jwt = "secret-token-value";
  aifc::SlurmDispatcher d(aifc::make_rest_backend(c));
  try {
    d.state("1");
    FAIL("no error");
  } catch (const aifc::Error& e) {
    CHECK(e.code() == aifc::ErrorCode::connection_failed);
    CHECK(std::string(e.what()).find("cannot reach slurmrestd") != std::string::npos);
    CHECK(std::string(e.what()).find("secret-token-value") == std::string::npos);
  }
}

TEST_CASE("slurm: the CLI backend runs a job on two nodes and follows it to COMPLETED" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SlurmDispatcher d(aifc::make_cli_backend());
  std::vector<aifc::JobState> seen;
  d.on_state_change([&](const aifc::JobEvent& e) { seen.push_back(e.info.state); });
  const auto id = d.submit(two_node_spec("cli"));
  const auto info = d.wait(id, std::chrono::seconds(60));
  check_two_node_output(info, "cli");
  REQUIRE(seen.size() >= 2);
  CHECK(seen.front() == aifc::JobState::pending);
  CHECK(seen.back() == aifc::JobState::completed);
}

TEST_CASE("slurm: the REST backend runs the same spec, arrays, cancels and failures" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SlurmDispatcher d(aifc::make_rest_backend(rest_config()));
  check_two_node_output(d.wait(d.submit(two_node_spec("rest")), std::chrono::seconds(60)), "rest");

  check_array_job(d, "array", 3);

  auto sleeper = two_node_spec("sleep");
  sleeper.command = {"sleep", "300"};
  const auto sleep_id = d.submit(sleeper);
  d.wait(sleep_id, std::chrono::seconds(2));
  d.cancel(sleep_id);
  CHECK(d.wait(sleep_id, std::chrono::seconds(30)).state == aifc::JobState::cancelled);

  auto failing = two_node_spec("fail");
  failing.nodes = 1;
  failing.use_srun = false;
  failing.command = {"bash", "-c", "exit 3"};
  const auto failed = d.wait(d.submit(failing), std::chrono::seconds(60));
  CHECK(failed.state == aifc::JobState::failed);
  CHECK(failed.exit_code == 3);
}

// Slurm ends these two itself: the time limit (checked by slurmctld about every 30 s, so this
// case takes one to two minutes) and a node set DOWN under a job that may not be requeued.
TEST_CASE("slurm: a job past its time limit ends TIMEOUT, one that loses its node NODE_FAIL" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SlurmDispatcher rest(aifc::make_rest_backend(rest_config()));
  auto late = two_node_spec("timeout");
  late.nodes = 1;
  late.time_limit = std::chrono::minutes(1);
  late.extra_directives = {"--exclude=n4"};
  late.command = {"sleep", "600"};
  const auto late_id = rest.submit(late);

  aifc::SlurmDispatcher cli(aifc::make_cli_backend());
  std::vector<aifc::JobState> seen;
  cli.on_state_change([&](const aifc::JobEvent& e) { seen.push_back(e.info.state); });
  auto lost = two_node_spec("nodefail");
  lost.nodes = 1;
  lost.extra_directives = {"--no-requeue", "--nodelist=n4"};
  lost.command = {"sleep", "600"};
  const auto lost_id = cli.submit(lost);
  for (int i = 0; i < 200 && cli.state(lost_id).state != aifc::JobState::running; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(cli.state(lost_id).state == aifc::JobState::running);
  CHECK(std::system("scontrol update nodename=n4 state=down reason=aifc-node-fail-test") == 0);
  const auto lost_info = cli.wait(lost_id, std::chrono::seconds(60));
  // ReturnToService=2 may have brought n4 back already; then "resume" is refused, harmlessly.
  std::system("scontrol update nodename=n4 state=resume 2>/dev/null");
  std::string n4_state;
  for (int i = 0; i < 300 && n4_state != "idle"; ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    n4_state = run_bash("sinfo -h -n n4 -o %t");
    if (!n4_state.empty() && n4_state.back() == '\n') n4_state.pop_back();
  }
  CHECK(n4_state == "idle");
  CHECK(lost_info.state == aifc::JobState::node_fail);
  CHECK(seen.back() == aifc::JobState::node_fail);

  const auto late_info = rest.wait(late_id, std::chrono::seconds(180));
  CHECK(late_info.state == aifc::JobState::timeout);
}

// start.sh confines jobs to their memory with task/cgroup where the host has a cgroup-v1 memory
// controller; the kernel's OOM killer then ends the batch step and Slurm says OUT_OF_MEMORY.
TEST_CASE("slurm: a job over its memory ends OUT_OF_MEMORY" * AIFC_NEEDS_MEMORY_LIMITS) {
  if (!have_cluster()) return;
  // Skipped (see test_needs.hpp) where the host has no cgroup-v1 memory controller.
  aifc::SlurmDispatcher d(aifc::make_rest_backend(rest_config()));
  auto hungry = two_node_spec("oom");
  hungry.nodes = 1;
  hungry.memory = "50M";
  hungry.use_srun = false;
  hungry.command = {"python3", "-c", "import time; held = bytearray(300 << 20); time.sleep(30)"};
  const auto info = d.wait(d.submit(hungry), std::chrono::seconds(60));
  CHECK(info.state == aifc::JobState::out_of_memory);
  CHECK(info.state_text == "OUT_OF_MEMORY");
}

TEST_CASE("slurm: REST errors name the cause and hide the token" * AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  auto spec = two_node_spec("bad");
  spec.partition = "no-such-partition";
  aifc::SlurmDispatcher d(aifc::make_rest_backend(rest_config()));
  CHECK_THROWS_WITH_AS(d.submit(spec), doctest::Contains("partition"), aifc::Error);
  // The cluster keeps accounts (slurmdbd): an unknown one is refused, the test user's own works.
  auto bad_account = two_node_spec("account");
  bad_account.account = "no-such-account";
  CHECK_THROWS_WITH_AS(d.submit(bad_account), doctest::Contains("account"), aifc::Error);
  auto good_account = two_node_spec("account-ok");
  good_account.account = env("AIFC_CLUSTER_ACCOUNT");
  CHECK(d.wait(d.submit(good_account), std::chrono::seconds(60)).state ==
        aifc::JobState::completed);

  auto wrong = rest_config();
  wrong.jwt = "not-a-real-token";
  aifc::SlurmDispatcher w(aifc::make_rest_backend(wrong));
  try {
    w.submit(two_node_spec("token"));
    FAIL("a wrong token was accepted");
  } catch (const aifc::Error& e) {
    CHECK(std::string(e.what()).find("token") != std::string::npos);
    CHECK(std::string(e.what()).find("not-a-real-token") == std::string::npos);
  }
  // An expired token: Slurm's own, with a lifespan of one second.
  std::string token;
  if (FILE* p = ::popen(
          ("scontrol token username=" + std::string(env("AIFC_CLUSTER_USER")) + " lifespan=1")
              .c_str(),
          "r")) {
    char buf[2048];
    while (std::fgets(buf, sizeof buf, p)) token += buf;
    ::pclose(p);
  }
  REQUIRE(token.rfind("SLURM_JWT=", 0) == 0);
  token = token.substr(10, token.find_last_not_of("\n") - 9);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto expired = rest_config();
  expired.jwt = token;
  aifc::SlurmDispatcher e(aifc::make_rest_backend(expired));
  try {
    e.submit(two_node_spec("expired"));
    FAIL("an expired token was accepted");
  } catch (const aifc::Error& err) {
    CHECK(std::string(err.what()).find("token") != std::string::npos);
    CHECK(std::string(err.what()).find(token) == std::string::npos);
  }
  CHECK_THROWS_WITH_AS(d.state("999999"), doctest::Contains("999999"), aifc::Error);
  auto no_dir = two_node_spec("nodir");
  no_dir.working_directory.clear();
  CHECK_THROWS_WITH_AS(d.submit(no_dir), doctest::Contains("working_directory"), aifc::Error);
}

TEST_CASE("slurm: the CLI backend reports sbatch's own complaint" * AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  auto spec = two_node_spec("clibad");
  spec.partition = "no-such-partition";
  aifc::SlurmDispatcher d(aifc::make_cli_backend());
  CHECK_THROWS_WITH_AS(d.submit(spec), doctest::Contains("partition"), aifc::Error);
  auto bad_account = two_node_spec("cliaccount");
  bad_account.account = "no-such-account";
  CHECK_THROWS_WITH_AS(d.submit(bad_account), doctest::Contains("account"), aifc::Error);
  CHECK_THROWS_AS(d.state("abc"), aifc::Error);
}

// Later data versions cannot run here (Debian 12 ships Slurm 22.05, v0.0.38 at most): a small
// server plays slurmrestd with the request and response shapes of the published OpenAPI
// documents (v0.0.39/v0.0.40 job_desc_msg: environment a string list, nodes a string,
// time_limit a {set, infinite, number} object; v0.0.40 responses: job_state a list, exit_code
// an object; v0.0.41: script inside job).
TEST_CASE("slurm: request and response shapes of v0.0.39, v0.0.40 and v0.0.41") {
  for (const std::string version : {"v0.0.39", "v0.0.40", "v0.0.41"}) {
    CAPTURE(version);
    httplib::Server server;
    nlohmann::json submitted;
    std::string user_header, token_header;
    server.Post("/slurm/" + version + "/job/submit", [&](const httplib::Request& req,
                                                         httplib::Response& res) {
      submitted = nlohmann::json::parse(req.body);
      user_header = req.get_header_value("X-SLURM-USER-NAME");
      token_header = req.get_header_value("X-SLURM-USER-TOKEN");
      res.set_content(R"({"job_id": 42, "step_id": "batch", "errors": [], "warnings": []})",
                      "application/json");
    });
    server.Get("/slurm/" + version + "/job/42", [&](const httplib::Request&,
                                                    httplib::Response& res) {
      res.set_content(
          R"({"jobs": [{"job_id": 42, "job_state": ["FAILED"], "state_reason": "NonZeroExitCode",
                          "nodes": "n[1-2]", "exit_code": {"status": ["EXITED"], "return_code": {"set": true,
                          "infinite": false, "number": 3}}}], "errors": []})",
          "application/json");
    });
    const int port = server.bind_to_any_port("127.0.0.1");
    std::thread serving([&] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

    aifc::RestConfig c;
    c.url = "http://127.0.0.1:" + std::to_string(port);
    c.user_name = "alice";
    c.jwt = "tok";
    c.api_ver = version;
    aifc::SlurmDispatcher d(aifc::make_rest_backend(c));
    aifc::JobSpec s;
    s.nodes = 2;
    s.time_limit = std::chrono::minutes(30);
    s.working_directory = "/home/alice";
    s.environment = {{"A", "1"}};
    s.command = {"true"};
    CHECK(d.submit(s) == "42");
    CHECK(user_header == "alice");
    CHECK(token_header == "tok");
    const auto& job = submitted.at("job");
    CHECK(job.at("environment").is_array());
    CHECK(job.at("environment")[0] == "A=1");
    CHECK(job.at("nodes") == "2");
    CHECK(job.at("time_limit") ==
          nlohmann::json{{"set", true}, {"infinite", false}, {"number", 30}});
    if (version == "v0.0.41") {
      CHECK(job.contains("script"));
      CHECK_FALSE(submitted.contains("script"));
    } else {
      CHECK(submitted.contains("script"));
    }
    const auto info = d.state("42");
    CHECK(info.state == aifc::JobState::failed);
    CHECK(info.exit_code == 3);
    CHECK(info.nodes == "n[1-2]");
    CHECK(info.reason == "NonZeroExitCode");
    server.stop();
    serving.join();
  }
}

TEST_CASE("slurm: a slurmrestd that answers nonsense gives aifc::Error, never a crash") {
  httplib::Server server;
  std::string submit_reply, job_reply;
  server.Post("/slurm/v0.0.40/job/submit", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(submit_reply, "application/json");
  });
  server.Get("/slurm/v0.0.40/job/42", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(job_reply, "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  aifc::RestConfig c;
  c.url = "http://127.0.0.1:" + std::to_string(port);
  c.user_name = "alice";
  c.jwt = "tok";
  c.api_ver = "v0.0.40";
  auto backend = aifc::make_rest_backend(c);
  aifc::JobSpec s;
  s.working_directory = "/tmp";
  s.command = {"true"};
  auto submit_error = [&](std::string reply) {
    submit_reply = std::move(reply);
    try {
      return "returned " + backend->submit(s);
    } catch (const aifc::Error& e) {
      CHECK(e.code() == aifc::ErrorCode::server_error);
      return std::string(e.what());
    }
  };
  auto query_error = [&](std::string reply) {
    job_reply = std::move(reply);
    try {
      backend->query("42");
      return std::string("returned");
    } catch (const aifc::Error& e) {
      CHECK(e.code() == aifc::ErrorCode::server_error);
      return std::string(e.what());
    }
  };
  // A reply nested a million deep (the JSON parser would overflow the stack).
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  CHECK(submit_error(deep).find("nested deeper than 64") != std::string::npos);
  CHECK(query_error(R"({"jobs": )" + deep + "}").find("nested deeper") != std::string::npos);
  // Job ids that are not job ids.
  for (const char* reply :
       {R"({"job_id": "abc"})", R"({"job_id": -5})", R"({"job_id": 1e300})",
        R"({"job_id": -9223372036854775808})", R"({"job_id": {"set": true, "number": 2.5}})",
        R"({"job_id": {"set": false, "number": 7}})"}) {
    CAPTURE(reply);
    CHECK(submit_error(reply).find("is not a job id") != std::string::npos);
  }
  CHECK(submit_error(R"({"job_id": 17})") == "returned 17");
  // Shapes that are not slurmrestd's.
  CHECK(submit_error(R"({"errors": [5, "x", {"error": 7}], "job_id": 3})") == "returned 3");
  CHECK(query_error(R"({"jobs": "none"})").find("no list of jobs") != std::string::npos);
  CHECK(query_error(R"({"jobs": [5]})").find("unexpected shape") != std::string::npos);
  CHECK(
      query_error(R"({"jobs": [{"job_state": "RUNNING", "nodes": 7}]})").find("unexpected shape") !=
      std::string::npos);
  CHECK(query_error(R"([1, 2])").find("knows no job") != std::string::npos);
  CHECK(query_error(R"({"jobs": [{"job_state": ["RUNNING"], "nodes": "n1"}]})") == "returned");
  server.stop();
  serving.join();
}

TEST_CASE("slurm: a missing token comes from $SLURM_JWT") {
  aifc::RestConfig c;
  c.url = "http://127.0.0.1:1";
  c.user_name = "someone";
  ::setenv("SLURM_JWT", "from-environment", 1);
  c.complete_from_environment();
  ::unsetenv("SLURM_JWT");
  CHECK(c.jwt == "from-environment");
}

TEST_CASE("slurm: without $SLURM_JWT the token comes from `scontrol token`" * AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::RestConfig fresh = rest_config();
  fresh.jwt.clear();
  fresh.user_name = "root";  // scontrol token issues a token for the calling user
  fresh.complete_from_environment();
  REQUIRE_FALSE(fresh.jwt.empty());
  CHECK(fresh.jwt.find('\n') == std::string::npos);
  aifc::SlurmDispatcher d(aifc::make_rest_backend(fresh));
  auto spec = two_node_spec("root-token");
  spec.nodes = 1;
  spec.ntasks_per_node = 0;
  spec.command = {"true"};
  CHECK(d.wait(d.submit(spec), std::chrono::seconds(60)).state == aifc::JobState::completed);
}

TEST_CASE("slurm: CLI array jobs end when every task has" * AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SlurmDispatcher d(aifc::make_cli_backend());
  check_array_job(d, "cliarray", 4);
}

// The exact launch line (options, binds, --nv, quoting through srun), recorded by a stand-in
// `apptainer` that then runs the command; the real Apptainer runs in the next case.
TEST_CASE("slurm: container mode launches `apptainer exec` on every task (stand-in apptainer)" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  const std::string dir = env("AIFC_CLUSTER_WORKDIR");
  const std::string stub = dir + "/apptainer-stand-in";
  std::ofstream(stub)
      << "#!/bin/bash\n"
         "# records argv, then runs the command after the image (argv after 'exec' and options)\n"
         "printf '%s|' \"$@\" > \"$0.args.$SLURM_PROCID\"\n"
         "shift; while [[ $1 == --* ]]; do [[ $1 == --bind ]] && shift; shift; done; shift\n"
         "exec \"$@\"\n";
  std::filesystem::permissions(
      stub, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                std::filesystem::perms::others_exec);
  auto spec = two_node_spec("container");
  spec.gpus_per_node = 0;
  spec.container =
      aifc::ContainerSpec{"/images/aifc.sif", {"/scratch:/scratch", "/data"}, true, {}, stub};
  spec.command = {"bash", "-c", "echo \"in container $SLURM_PROCID: $AIFC_GREETING\""};
  aifc::SlurmDispatcher d(aifc::make_rest_backend(rest_config()));
  const auto id = d.submit(spec);
  CHECK(d.wait(id, std::chrono::seconds(60)).state == aifc::JobState::completed);
  const auto out = read_all(dir + "/container-" + id + ".out");
  CAPTURE(out);
  CHECK(out.find("in container 0: hello from aifc") != std::string::npos);
  CHECK(out.find("in container 1: hello from aifc") != std::string::npos);
  CHECK(read_all(stub + ".args.0") ==
        "exec|--nv|--bind|/scratch:/scratch|--bind|/data|/images/aifc.sif|bash|-c|echo \"in "
        "container $SLURM_PROCID: "
        "$AIFC_GREETING\"|");
}

// Container mode for real: Apptainer runs the image built from containers/aifc.def
// (tests/container/build-image.sh) on two nodes, and `aifc bench` inside it measures a
// simulator in this process over loopback (Apptainer shares the host's network by default).
TEST_CASE("slurm: container mode runs aifc bench inside the Apptainer image on two nodes" *
          AIFC_NEEDS_APPTAINER) {
  if (!have_cluster()) return;
  const char* image = env("AIFC_TEST_APPTAINER_IMAGE");
  REQUIRE_MESSAGE(image, "AIFC_REQUIRE_APPTAINER is set but AIFC_TEST_APPTAINER_IMAGE is not");
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  aifc::Simulator sim(sim_config);
  sim.start();

  const std::string dir = env("AIFC_CLUSTER_WORKDIR");
  auto spec = two_node_spec("apptainer");
  spec.container = aifc::ContainerSpec{image, {dir}, std::nullopt, {}, "apptainer"};
  spec.command = {"bash", "-c",
                  "test -d /.singularity.d || { echo 'not in a container'; exit 3; }\n"
                  "echo \"container $SLURM_PROCID on $SLURMD_NODENAME: $AIFC_GREETING\"\n"
                  "exec aifc bench --base-url " +
                      sim.base_url() +
                      " --num-prompts 6 --random-input-len 16 --random-output-len 8 --save-result"
                      " --result-dir " +
                      dir + " --result-filename apptainer-$SLURM_JOB_ID-$SLURM_PROCID.json"};
  aifc::SlurmDispatcher d(aifc::make_rest_backend(rest_config()));
  const auto id = d.submit(spec);
  const auto info = d.wait(id, std::chrono::seconds(180));
  const auto out = read_all(dir + "/apptainer-" + id + ".out");
  CAPTURE(out);
  REQUIRE(info.state == aifc::JobState::completed);
  std::set<std::string> nodes;
  for (int rank = 0; rank < 2; ++rank) {
    const auto prefix = "container " + std::to_string(rank) + " on ";
    const auto at = out.find(prefix);
    REQUIRE(at != std::string::npos);
    const auto node = out.substr(at + prefix.size(), out.find(':', at) - at - prefix.size());
    nodes.insert(node);
    CHECK(out.find(prefix + node + ": hello from aifc") != std::string::npos);
    const auto result = nlohmann::json::parse(
        read_all(dir + "/apptainer-" + id + "-" + std::to_string(rank) + ".json"));
    CHECK(result.at("completed") == 6);
    CHECK(result.at("failed") == 0);
    CHECK(result.at("total_output_tokens") == 48);
  }
  CHECK(nodes.size() == 2);
  CHECK(sim.stats().at("requests").get<int>() >= 12);
}
