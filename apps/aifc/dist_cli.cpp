// `aifc service`, `aifc agent` and `aifc merge`: the distributed side of the program, thin
// wiring over aifc::Service, aifc::Agent and aifc::merge_shards.
#include <unistd.h>

#include <aifc/agent.hpp>
#include <aifc/merge.hpp>
#include <aifc/service.hpp>
#include <aifc/ssh.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

#include "cli.hpp"
#include "flags.hpp"

namespace aifc::cli {
namespace {

std::string env_or(const char* name, const std::string& fallback = {}) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// A `.env` file's KEY=VALUE lines become environment variables unless they are set already.
void load_env_file(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(start, eq - start), value = line.substr(eq + 1);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (key.rfind("export ", 0) == 0) key = key.substr(7);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    ::setenv(key.c_str(), value.c_str(), 0);
  }
}

struct ServiceOptions {
  ServiceConfig config;
  std::string backend;  // rest, cli, ssh; empty: rest with --slurm-config, else cli
  std::string slurm_config;
  std::string slurm_conf;  // SLURM_CONF for the cli backend
  std::string container_image;
  std::vector<std::string> container_binds;
  int tunnel_port = 0;
};

FlagTable service_flags(ServiceOptions& o) {
  using A = Flag::Arity;
  FlagTable t;
  auto one = [&](const std::string& name, std::function<void(const std::string&)> f,
                 std::string help) {
    t[name] = {A::one, [f](const std::vector<std::string>& v) { f(v[0]); }, std::move(help), ""};
  };
  auto& c = o.config;
  one(
      "--host", [&c](const std::string& v) { c.listen_host = v; },
      "address to listen on (default 127.0.0.1; never beyond loopback unless told)");
  one(
      "--port", [&c](const std::string& v) { c.port = static_cast<int>(to_int(v, "port")); },
      "port (default 8001, $CLIENT_SERVICE_PORT; 0: any free)");
  one(
      "--state-dir", [&c](const std::string& v) { c.state_dir = v; },
      "where the SQLite state and the API token live (default ./aifc-service)");
  one(
      "--job-dir", [&c](const std::string& v) { c.job_directory = v; },
      "the jobs' working directory, seen alike by the nodes (default STATE_DIR/jobs)");
  one(
      "--public-url", [&c](const std::string& v) { c.public_url = v; },
      "the URL agents use to reach the service (default http://HOST:PORT)");
  one(
      "--slurm-backend", [&o](const std::string& v) { o.backend = v; },
      "rest (slurmrestd), cli (local sbatch) or ssh (sbatch on a login node)");
  one(
      "--slurm-config", [&o](const std::string& v) { o.slurm_config = v; },
      "slurmrestd key=value file: url, user_name, api_ver, account, jwt");
  one(
      "--slurm-conf", [&o](const std::string& v) { o.slurm_conf = v; },
      "SLURM_CONF for the cli backend's tools");
  one(
      "--container", [&o](const std::string& v) { o.container_image = v; },
      "run the agents in this Apptainer image ($CLIENT_SERVICE_CONTAINER_MODE)");
  t["--bind"] = {A::multi,
                 [&o](const std::vector<std::string>& v) {
                   o.container_binds.insert(o.container_binds.end(), v.begin(), v.end());
                 },
                 "Apptainer bind paths for the agents' container", ""};
  t["--agent-command"] = {
      A::multi, [&c](const std::vector<std::string>& v) { c.agent_command = v; },
      "the agents' command line (default: this program's path and 'agent')", ""};
  one(
      "--registration-timeout",
      [&c](const std::string& v) {
        c.registration_timeout = std::chrono::seconds(to_int(v, "registration-timeout"));
      },
      "seconds from the job's start until every agent must be ready (default 600)");
  one(
      "--start-delay",
      [&c](const std::string& v) { c.start_delay = seconds_flag(v, "start-delay"); },
      "seconds from `run` to the agreed start instant (default 2)");
  one(
      "--agent-silence-limit",
      [&c](const std::string& v) {
        c.agent_silence_limit = std::chrono::seconds(to_int(v, "agent-silence-limit"));
      },
      "seconds a running agent may stay silent before it counts as lost (default 60)");
  one(
      "--partial-interval",
      [&c](const std::string& v) { c.partial_interval = seconds_flag(v, "partial-interval"); },
      "seconds between a running agent's partial results (what it measured so far; default 2)");
  one(
      "--result-grace",
      [&c](const std::string& v) {
        c.result_grace = std::chrono::seconds(to_int(v, "result-grace"));
      },
      "seconds after the job ends to wait for results before reading the agents' raw files "
      "(default 20)");
  one(
      "--agent-outage-limit",
      [&c](const std::string& v) {
        c.agent_environment.emplace_back("AIFC_AGENT_OUTAGE_LIMIT_S",
                                         std::to_string(to_int(v, "agent-outage-limit")));
      },
      "seconds an agent keeps retrying an unreachable service before it gives up, its raw "
      "result left in the job directory (default 600)");
  one(
      "--tunnel-port",
      [&o](const std::string& v) { o.tunnel_port = static_cast<int>(to_int(v, "tunnel-port")); },
      "ssh backend: the login node's port the reverse tunnel listens on; the agents use "
      "http://127.0.0.1:PORT unless --public-url says otherwise (default: any port)");
  t["--help"] = {A::none, [](const std::vector<std::string>&) {}, "this help", ""};
  return t;
}

constexpr const char* kServiceHead =
    "usage: aifc service SERVER_URL [flags]\n"
    "The client service: a REST API (GET /docs) that creates client groups, runs each as one\n"
    "Slurm job of agents, starts them together and merges their results. Settings also come\n"
    "from the environment or a .env file: CLIENT_SERVICE_SERVER_ADDR, CLIENT_SERVICE_PORT,\n"
    "CLIENT_SERVICE_CONTAINER_MODE (an image), AIFC_API_TOKEN, SLURM_JWT, and for ssh SSH_HOST,\n"
    "SSH_PORT, SSH_USER, SSH_KEY_PATH, REMOTE_BASE_PATH.\n";

std::string service_help() {
  ServiceOptions o;
  return help_text(service_flags(o), kServiceHead);
}

ServiceOptions parse_service_args(const std::vector<std::string>& all) {
  ServiceOptions o;
  o.config.state_dir = "aifc-service";
  // The server's URL comes first, as in `aifc service http://ai-server:8000`.
  std::vector<std::string> args = all;
  if (!args.empty() && args.front().rfind("--", 0) != 0) {
    o.config.server_url = args.front();
    args.erase(args.begin());
  }
  if (o.config.server_url.empty()) o.config.server_url = env_or("CLIENT_SERVICE_SERVER_ADDR");
  if (const auto port = env_or("CLIENT_SERVICE_PORT"); !port.empty())
    o.config.port = static_cast<int>(to_int(port, "CLIENT_SERVICE_PORT"));
  o.container_image = env_or("CLIENT_SERVICE_CONTAINER_MODE");
  if (o.container_image == "0" || o.container_image == "false") o.container_image.clear();
  o.config.api_token = env_or("AIFC_API_TOKEN");
  // The inference server's key reaches the agents in their job's environment, as the agent
  // token does (never in the batch script or the API).
  if (const auto key = env_or("OPENAI_API_KEY"); !key.empty())
    o.config.agent_environment.emplace_back("OPENAI_API_KEY", key);
  parse_flags(args, service_flags(o), "service");
  if (o.config.server_url.empty())
    usage_error(
        "aifc service: the inference server's URL is required (or "
        "CLIENT_SERVICE_SERVER_ADDR)");
  if (o.backend.empty()) o.backend = o.slurm_config.empty() ? "cli" : "rest";
  if (o.backend != "rest" && o.backend != "cli" && o.backend != "ssh")
    usage_error(
        fmt::format("aifc service: --slurm-backend '{}' is not one of rest, cli, ssh", o.backend));
  if (o.backend == "rest" && o.slurm_config.empty())
    usage_error("aifc service: --slurm-backend rest needs --slurm-config FILE");
  if (!o.container_image.empty()) {
    ContainerSpec c;
    c.image = o.container_image;
    c.binds = o.container_binds;
    if (!o.config.job_directory.empty()) c.binds.push_back(o.config.job_directory);
    o.config.container = c;
    if (o.config.agent_command.empty()) o.config.agent_command = {"aifc", "agent"};
  }
  try {
    o.config.validate();
  } catch (const Error& e) {
    usage_error(fmt::format("aifc service: {}", e.what()));
  }
  return o;
}

}  // namespace

int service_main(const std::vector<std::string>& args) {
  if (std::find(args.begin(), args.end(), "--help") != args.end()) {
    std::cout << service_help();
    return 0;
  }
  load_env_file(".env");
  ServiceOptions o;
  try {
    o = parse_service_args(args);
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  try {
    // Before any thread starts (the tunnel's), so that every thread leaves SIGINT to it.
    std::mutex service_mutex;
    Service* running = nullptr;
    bool stop_early = false;
    SignalWatcher signals([&](int) {
      std::lock_guard lock(service_mutex);
      if (running)
        running->stop();
      else
        stop_early = true;
    });
    std::unique_ptr<SlurmBackend> backend;
    std::unique_ptr<SshReverseTunnel> tunnel;
    SshConfig ssh;
    if (o.backend == "rest") {
      auto rest = RestConfig::from_file(o.slurm_config);
      rest.complete_from_environment();
      backend = make_rest_backend(rest);
    } else if (o.backend == "cli") {
      CliConfig cli;
      cli.slurm_conf = o.slurm_conf;
      backend = make_cli_backend(cli);
    } else {
      ssh = SshConfig::from_environment(".env");
      backend = make_ssh_backend(ssh);
      // The agents on the cluster reach the service through the login node: the tunnel's
      // remote port is known before the service starts, so the jobs carry it.
      if (o.config.port == 0)
        throw Error(ErrorCode::invalid_argument,
                    "--slurm-backend ssh needs a fixed --port (the reverse tunnel points at it)");
      tunnel = std::make_unique<SshReverseTunnel>(ssh, o.tunnel_port, o.config.listen_host,
                                                  o.config.port);
      if (o.config.public_url.empty()) {
        o.config.public_url = fmt::format("http://127.0.0.1:{}", tunnel->remote_port());
        std::cerr << fmt::format(
            "note: agents reach the service at port {} of the login node's loopback; give "
            "--public-url when the nodes need another address\n",
            tunnel->remote_port());
      }
    }
    Service service(o.config, std::move(backend));
    // Forgets the service before it is destroyed, however this block is left.
    struct Forget {
      std::mutex& mutex;
      Service*& pointer;
      ~Forget() {
        std::lock_guard lock(mutex);
        pointer = nullptr;
      }
    } forget{service_mutex, running};
    service.start();
    {
      std::lock_guard lock(service_mutex);
      running = &service;
      if (stop_early) service.stop();
    }
    std::cout << fmt::format("aifc service listening on {} (server {}, Slurm via {})\n",
                             service.url(), o.config.server_url, o.backend);
    if (o.config.api_token.empty())
      std::cout << fmt::format("API token (also in {}/api-token): {}\n", o.config.state_dir,
                               service.api_token());
    std::cout.flush();
    service.wait();
    if (tunnel) tunnel->stop();
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

int agent_main(const std::vector<std::string>& args) {
  if (!args.empty()) {
    const bool help = args.front() == "--help" || args.front() == "-h";
    (help ? std::cout : std::cerr)
        << "usage: aifc agent\nOne agent of a client group, started by the group's Slurm job. "
           "It reads AIFC_SERVICE_URL, AIFC_GROUP_ID, AIFC_AGENT_TOKEN, SLURM_PROCID, "
           "SLURM_NTASKS, SLURMD_NODENAME and AIFC_AGENT_DIR from its environment.\n";
    return help ? 0 : 2;
  }
  try {
    Agent agent(AgentConfig::from_environment());
    SignalWatcher signals([&](int) { agent.stop(); });
    return agent.run();
  } catch (const Error& e) {
    std::cerr << "aifc agent: error: " << e.what() << "\n";
    return e.code() == ErrorCode::invalid_argument ? 2 : 1;
  }
}

int merge_main(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  std::string output = "aifc-merged.json";
  bool detailed = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << "usage: aifc merge RESULT.json... [--output FILE] [--save-detailed]\n"
                   "Merges the result files of `aifc bench --rank i --nranks n --save-result "
                   "--save-detailed` shards into one result (exact when every file holds its "
                   "records) and prints its summary table.\n";
      return 0;
    }
    if (args[i] == "--output" || args[i] == "--result-filename") {
      if (i + 1 >= args.size()) {
        std::cerr << "error: aifc merge: " << args[i] << " needs a value\n";
        return 2;
      }
      output = args[++i];
    } else if (args[i] == "--save-detailed") {
      detailed = true;
    } else if (args[i].rfind("--", 0) == 0) {
      std::cerr << "error: aifc merge: unknown flag '" << args[i] << "'\n";
      return 2;
    } else {
      files.push_back(args[i]);
    }
  }
  if (files.empty()) {
    std::cerr << "error: aifc merge: name at least one result file\n";
    return 2;
  }
  try {
    std::vector<ShardResult> parts;
    std::optional<BenchmarkSpec> spec;
    TokenizerApi tokenizer = TokenizerApi::none;
    std::uint32_t nranks = 0;
    for (const auto& file : files) {
      std::ifstream in(file);
      if (!in) throw Error(ErrorCode::io_error, fmt::format("cannot read {}", file));
      nlohmann::json doc;
      try {
        doc = nlohmann::json::parse(in);
      } catch (const nlohmann::json::parse_error& e) {
        throw Error(ErrorCode::parse_error, fmt::format("{}: not JSON ({})", file, e.what()));
      }
      ResultDocument read;
      try {
        read = read_result_document(doc);
      } catch (const Error& e) {
        throw Error(e.code(), fmt::format("{}: {}", file, e.what()));
      }
      if (nranks == 0) nranks = read.spec.shard.nranks;
      if (read.spec.shard.nranks != nranks)
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{} is a shard of {} ranks, the first file of {}", file,
                                read.spec.shard.nranks, nranks));
      ShardResult part;
      part.rank = read.spec.shard.rank;
      part.node = doc.value("host", std::string());
      part.result = std::move(read.result);
      if (!spec || part.rank == 0) {
        spec = read.spec;
        tokenizer = read.tokenizer;
      }
      parts.push_back(std::move(part));
    }
    const auto merged = merge_shards(std::move(parts), nranks, spec->summary);
    const auto doc = merged_result_document(*spec, tokenizer, merged, detailed);
    std::ofstream out(output);
    if (!(out << doc.dump(2) << '\n'))
      throw Error(ErrorCode::io_error, fmt::format("cannot write {}", output));
    std::cout << format_summary_table(merged.result.summary, spec->summary,
                                      table_config(spec->load));
    std::cout << fmt::format(
        "Merged {} of {} ranks{} ({}) into {}\n", merged.ranks.size(), nranks,
        merged.missing_ranks.empty()
            ? std::string()
            : fmt::format("; missing: {}", nlohmann::json(merged.missing_ranks).dump()),
        merged.exact ? "exact, from every record" : "from the aggregates, percentiles within 0.1%",
        output);
    return merged.missing_ranks.empty() ? 0 : 1;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return e.code() == ErrorCode::invalid_argument ? 2 : 1;
  }
}

}  // namespace aifc::cli
