#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aifc/error.hpp>
#include <aifc/simulator.hpp>
#include <aifc/slurm.hpp>
#include <aifc/ssh.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_needs.hpp"

namespace {

const char* env(const char* name) { return std::getenv(name); }

bool have_cluster() {
  if (env("AIFC_CLUSTER_STATE")) return true;
  // Reached only when AIFC_REQUIRE_CLUSTER is set (otherwise the case is skipped).
  FAIL("AIFC_REQUIRE_CLUSTER is set but no cluster environment is (source env.sh)");
  return false;
}

aifc::SshConfig cluster_ssh() {
  aifc::SshConfig c;
  c.host = "127.0.0.1";
  c.port = std::atoi(env("AIFC_CLUSTER_SSH_PORT"));
  c.user = env("AIFC_CLUSTER_USER");
  c.key_path = env("AIFC_CLUSTER_SSH_KEY");
  c.known_hosts_path = env("AIFC_CLUSTER_SSH_KNOWN_HOSTS");
  c.remote_base_path = env("AIFC_CLUSTER_WORKDIR");
  return c;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("aifc_ssh_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("ssh: settings travel as JSON and come from .env files like slurmrestd's") {
  aifc::SshConfig c;
  c.host = "login1";
  c.port = 2022;
  c.user = "me";
  c.key_path = "/home/me/.ssh/id_ed25519";
  c.remote_base_path = "/scratch/me/aifc";
  c.timeout = std::chrono::milliseconds(2500);
  const auto back = nlohmann::json(c).get<aifc::SshConfig>();
  CHECK(nlohmann::json(back) == nlohmann::json(c));
  CHECK(back.timeout.count() == 2500);
  const auto env = std::filesystem::temp_directory_path() / "aifc_test.env";
  std::ofstream(env) << "# site\nexport SSH_HOST=login2\nSSH_PORT = 2200\nSSH_USER='bob'\n";
  const auto from_file = aifc::SshConfig::from_environment(env.string());
  CHECK(from_file.host == (std::getenv("SSH_HOST") ? std::getenv("SSH_HOST") : "login2"));
  if (!std::getenv("SSH_USER")) CHECK(from_file.user == "bob");
  if (!std::getenv("SSH_PORT")) CHECK(from_file.port == 2200);
  CHECK_NOTHROW(aifc::SshConfig::from_environment("/nonexistent/.env"));  // optional file
}

TEST_CASE("ssh: configuration from the environment and a .env file") {
  const auto file = temp_path("env");
  std::ofstream(file) << "# the seed service's variables\nSSH_HOST=login.example\nexport "
                         "SSH_PORT=2200\nSSH_USER='bob'\n"
                         "SSH_KEY_PATH=/keys/id\nREMOTE_BASE_PATH=/scratch/bob\n";
  ::setenv("SSH_USER", "alice", 1);  // the environment wins over the file
  const auto c = aifc::SshConfig::from_environment(file);
  ::unsetenv("SSH_USER");
  CHECK(c.host == "login.example");
  CHECK(c.port == 2200);
  CHECK(c.user == "alice");
  CHECK(c.key_path == "/keys/id");
  CHECK(c.remote_base_path == "/scratch/bob");
  CHECK_FALSE(c.accept_unknown_host);
  aifc::SshConfig incomplete;
  incomplete.host = "h";
  incomplete.user = "u";
  CHECK_THROWS_WITH_AS(incomplete.validate(), doctest::Contains("key"), aifc::Error);
}

TEST_CASE(
    "ssh: host keys are checked; unknown ones only on explicit acceptance, changed ones never" *
    AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  auto c = cluster_ssh();
  c.known_hosts_path = temp_path("known_hosts_empty");
  std::ofstream(c.known_hosts_path).close();
  CHECK_THROWS_WITH_AS(aifc::SshSession{c}, doctest::Contains("unknown"), aifc::Error);
  c.accept_unknown_host = true;
  CHECK_NOTHROW(aifc::SshSession{c});
  CHECK(read_all(c.known_hosts_path).find("ssh-ed25519") != std::string::npos);  // recorded
  c.accept_unknown_host = false;
  CHECK_NOTHROW(aifc::SshSession{c});  // now known

  // A different key recorded for the same host: refused even when unknown hosts are accepted.
  const auto other_key = temp_path("other_host_key");
  REQUIRE(std::system(("ssh-keygen -q -t ed25519 -N '' -f " + other_key).c_str()) == 0);
  std::string pub = read_all(other_key + ".pub");
  std::ofstream(c.known_hosts_path)
      << "[127.0.0.1]:" << c.port << " " << pub.substr(0, pub.rfind(' ')) << "\n";
  c.accept_unknown_host = true;
  CHECK_THROWS_WITH_AS(aifc::SshSession{c}, doctest::Contains("CHANGED"), aifc::Error);
}

TEST_CASE("ssh: a refused login and a missing key say so" * AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  auto c = cluster_ssh();
  c.key_path = temp_path("stranger_key");
  REQUIRE(std::system(("ssh-keygen -q -t ed25519 -N '' -f " + c.key_path).c_str()) == 0);
  CHECK_THROWS_WITH_AS(aifc::SshSession{c}, doctest::Contains("refused"), aifc::Error);
  c.key_path = "/nonexistent/key";
  CHECK_THROWS_WITH_AS(aifc::SshSession{c}, doctest::Contains("/nonexistent/key"), aifc::Error);
  c = cluster_ssh();
  c.port = 1;
  CHECK_THROWS_WITH_AS(aifc::SshSession{c}, doctest::Contains("cannot connect"), aifc::Error);
}

TEST_CASE("ssh: commands, exit codes, stdin and SFTP" * AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SshSession s(cluster_ssh());
  auto r = s.exec("printenv SLURM_CONF; echo oops >&2; exit 7");
  CHECK(r.exit_code == 7);
  CHECK(r.out.find("slurm.conf") != std::string::npos);
  CHECK(r.err == "oops\n");
  CHECK(s.exec("cat", "from stdin").out == "from stdin");
  const auto path = std::string(env("AIFC_CLUSTER_WORKDIR")) + "/uploaded.txt";
  s.upload(path, "content over sftp\n");
  CHECK(read_all(path) == "content over sftp\n");
  CHECK_THROWS_WITH_AS(s.upload("/no/such/dir/file", "x"), doctest::Contains("does not exist"),
                       aifc::Error);
}

TEST_CASE("ssh: the SSH backend submits on the login node and a reverse tunnel carries HTTP back" *
          AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  aifc::Simulator sim(sim_config);
  const int local_port = sim.start();
  const int remote_port = free_port();
  aifc::SshReverseTunnel tunnel(cluster_ssh(), remote_port, "127.0.0.1", local_port);
  CHECK(tunnel.remote_port() == remote_port);

  aifc::SlurmDispatcher d(aifc::make_ssh_backend(cluster_ssh()));
  aifc::JobSpec s;
  s.name = "aifc-ssh";
  s.partition = env("AIFC_CLUSTER_PARTITION");
  s.nodes = 2;
  s.ntasks_per_node = 1;
  s.working_directory = env("AIFC_CLUSTER_WORKDIR");
  s.output = s.working_directory + "/ssh-%j.out";
  s.environment = {{"AIFC_SECRET", "tunnel-test value"}};
  s.command = {"bash", "-c",
               "echo \"$SLURM_PROCID $SLURMD_NODENAME $AIFC_SECRET\"; curl -s http://127.0.0.1:" +
                   std::to_string(remote_port) + "/v1/models"};
  const auto id = d.submit(s);
  const auto info = d.wait(id, std::chrono::seconds(60));
  CHECK(info.state == aifc::JobState::completed);
  const auto out = read_all(s.working_directory + "/ssh-" + id + ".out");
  CAPTURE(out);
  CHECK(out.find("0 n") != std::string::npos);
  CHECK(out.find("1 n") != std::string::npos);
  CHECK(out.find("tunnel-test value") != std::string::npos);
  // Both tasks reached the local simulator through the tunnel.
  std::size_t models = 0;
  for (auto at = out.find("aifc-sim"); at != std::string::npos;
       at = out.find("\"object\":\"list\"", at + 1))
    ++models;
  CHECK(models >= 2);
  CHECK(sim.stats()["rejected"] == 0);

  auto sleeper = s;
  sleeper.command = {"sleep", "300"};
  const auto sleep_id = d.submit(sleeper);
  d.cancel(sleep_id);
  CHECK(d.wait(sleep_id, std::chrono::seconds(30)).state == aifc::JobState::cancelled);
  tunnel.stop();
  tunnel.stop();
}

TEST_CASE("ssh: the SSH backend needs a remote base path that exists" * AIFC_NEEDS_CLUSTER) {
  if (!have_cluster()) return;
  auto c = cluster_ssh();
  c.remote_base_path.clear();
  CHECK_THROWS_WITH_AS(aifc::make_ssh_backend(c), doctest::Contains("REMOTE_BASE_PATH"),
                       aifc::Error);
  c.remote_base_path = "/no/such/base";
  aifc::SlurmDispatcher d(aifc::make_ssh_backend(c));
  aifc::JobSpec s;
  s.command = {"true"};
  CHECK_THROWS_WITH_AS(d.submit(s), doctest::Contains("/no/such/base"), aifc::Error);
}
