#include "aifc/service.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "aifc/error.hpp"
#include "aifc/merge.hpp"
#include "aifc/options.hpp"
#include "service/api_routes.hpp"
#include "service/store.hpp"
#include "util/json_numbers.hpp"
#include "util/json_values.hpp"
#include "util/observer_queue.hpp"

namespace aifc {
namespace {

constexpr std::string_view kStateNames[] = {"created", "submitted", "registering", "ready",
                                            "running", "finished",  "failed",      "cancelled"};

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

}  // namespace

std::string_view to_string(GroupState s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  return i < std::size(kStateNames) ? kStateNames[i] : "unknown";
}

GroupState group_state_from_string(std::string_view s) {
  for (std::size_t i = 0; i < std::size(kStateNames); ++i)
    if (kStateNames[i] == s) return static_cast<GroupState>(i);
  throw Error(ErrorCode::parse_error, fmt::format("'{}' is not a client group state", s));
}

bool is_terminal(GroupState s) noexcept {
  return s == GroupState::finished || s == GroupState::failed || s == GroupState::cancelled;
}

// ---- The create request ------------------------------------------------------------------

void ClientGroupRequest::validate() const {
  if (num_clients < 1 || num_clients > 100'000)
    bad(fmt::format("num_clients must be between 1 and 100000 (got {})", num_clients));
  if (time_limit.count() < 1 || time_limit.count() > 525'600)
    bad(fmt::format("time_limit must be between 1 and 525600 minutes (got {})",
                    time_limit.count()));
  if (nodes < 0 || nodes > num_clients)
    bad(fmt::format("nodes must be between 0 and num_clients ({}) (got {})", num_clients, nodes));
  if (ntasks_per_node < 0) bad("ntasks_per_node must not be negative");
  if (cpus_per_task < 0) bad("cpus_per_task must not be negative");
  if (spec.simulator) bad("spec: simulator: a distributed run measures a real server");
  if (!spec.client.api_key.empty())
    bad("spec: client: api_key: the server's key does not travel through the API (the agents "
        "read OPENAI_API_KEY from their job's environment)");
  if (spec.shard.nranks != 1 || spec.shard.rank != 0)
    bad("spec: shard: the service shards the run itself; leave it unset");
  if (spec.probe_request_rate > 0)
    bad("spec: probe_request_rate: every agent would send its own probes; run one aifc bench "
        "with --probe-request-rate beside the group instead");
  if (spec.profile)
    bad("spec: profile: every agent would switch the server's profiler; POST /start_profile and "
        "/stop_profile to the server around the group's run instead");
  spec.validate();
}

void from_json(const nlohmann::json& j, ClientGroupRequest& r) {
  if (!j.is_object()) bad("the request body must be a JSON object");
  detail::check_json_numbers(j, "");
  r = ClientGroupRequest{};
  std::string key = "spec";
  // The workload keys are the benchmark's named options, applied together after the rest (their
  // messages name the option).
  nlohmann::json workload = nlohmann::json::object();
  const auto whole = detail::whole_number;
  try {
    if (j.contains("spec")) r.spec = j.at("spec").get<BenchmarkSpec>();
    for (const auto& [name, value] : j.items()) {
      key = name;
      if (name == "spec") continue;
      if (name == "num_clients") {
        r.num_clients = whole(value);
      } else if (name == "time_limit") {
        r.time_limit = std::chrono::minutes(whole(value));
      } else if (name == "partition") {
        r.partition = value.get<std::string>();
      } else if (name == "account") {
        r.account = value.get<std::string>();
      } else if (name == "qos") {
        r.qos = value.get<std::string>();
      } else if (name == "nodes") {
        r.nodes = whole(value);
      } else if (name == "ntasks_per_node") {
        r.ntasks_per_node = whole(value);
      } else if (name == "cpus_per_task") {
        r.cpus_per_task = whole(value);
      } else if (name == "memory") {
        r.memory = value.get<std::string>();
      } else if (name == "job_name") {
        r.job_name = value.get<std::string>();
      } else if (find_benchmark_option(name)) {
        if (const auto why = service::refused_group_option(name))
          bad(fmt::format("{}: {}", name, *why));
        workload[name] = value;
      } else {
        for (const auto& refused : unsupported_vllm_options())
          if (refused.name == name) bad(fmt::format("{}: not supported: {}", name, refused.reason));
        bad(fmt::format("unknown field '{}'", name));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    // nlohmann's "[json.exception.type_error.302] type must be number, but is string"
    std::string what = e.what();
    if (const auto at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
    bad(fmt::format("{}: {}", key, what));
  } catch (const Error& e) {
    const std::string what = e.what();
    if (e.code() != ErrorCode::invalid_argument || what.rfind(key + ":", 0) == 0 ||
        what.rfind("unknown field", 0) == 0)
      throw;
    bad(fmt::format("{}: {}", key, what));
  }
  apply_benchmark_options(r.spec, workload);
}

void to_json(nlohmann::json& j, const ClientGroupRequest& r) {
  j = {{"num_clients", r.num_clients},
       {"time_limit", r.time_limit.count()},
       {"partition", r.partition},
       {"account", r.account},
       {"qos", r.qos},
       {"nodes", r.nodes},
       {"ntasks_per_node", r.ntasks_per_node},
       {"cpus_per_task", r.cpus_per_task},
       {"memory", r.memory},
       {"job_name", r.job_name},
       {"spec", r.spec}};
}

void ServiceConfig::validate() const {
  if (server_url.empty()) bad("server_url: the inference server's address is required");
  if (port < 0 || port > 65535) bad(fmt::format("port must be between 0 and 65535 (got {})", port));
  if (state_dir.empty()) bad("state_dir must not be empty");
  if (start_delay.count() < 100) bad("start_delay must be at least 100 ms");
  if (partial_interval.count() < 500) bad("partial_interval must be at least 500 ms");
  if (registration_timeout.count() < 1) bad("registration_timeout must be at least 1 s");
  if (max_body_bytes < 4096) bad("max_body_bytes must be at least 4096");
}

// ---- The service ---------------------------------------------------------------------------

namespace {

struct AgentState {
  std::uint32_t rank = 0;
  std::string node, hostname;
  std::int64_t pid = 0;
  std::int64_t clock_offset_ns = 0, clock_uncertainty_ns = 0;
  std::int64_t registered_ns = 0, last_seen_ns = 0;
  std::string state = "registered";  // registered, ready, running, finished, failed, lost
  std::string error;
  nlohmann::json progress = nlohmann::json::object();
  bool result_received = false;
};

void to_json(nlohmann::json& j, const AgentState& a) {
  j = {{"rank", a.rank},
       {"node", a.node},
       {"hostname", a.hostname},
       {"pid", a.pid},
       {"clock_offset_ns", a.clock_offset_ns},
       {"clock_uncertainty_ns", a.clock_uncertainty_ns},
       {"registered_unix_ns", a.registered_ns},
       {"last_seen_unix_ns", a.last_seen_ns},
       {"state", a.state},
       {"error", a.error},
       {"progress", a.progress},
       {"result_received", a.result_received}};
}

void from_json(const nlohmann::json& j, AgentState& a) {
  a.rank = j.at("rank").get<std::uint32_t>();
  a.node = j.value("node", "");
  a.hostname = j.value("hostname", "");
  a.pid = j.value("pid", std::int64_t{0});
  a.clock_offset_ns = j.value("clock_offset_ns", std::int64_t{0});
  a.clock_uncertainty_ns = j.value("clock_uncertainty_ns", std::int64_t{0});
  a.registered_ns = j.value("registered_unix_ns", std::int64_t{0});
  a.last_seen_ns = j.value("last_seen_unix_ns", std::int64_t{0});
  a.state = j.value("state", "registered");
  a.error = j.value("error", "");
  a.progress = j.value("progress", nlohmann::json::object());
  a.result_received = j.value("result_received", false);
}

struct Transition {
  GroupState state;
  std::int64_t at_ns;
  std::string reason;
};

struct Group {
  std::string id;
  ClientGroupRequest request;
  GroupState state = GroupState::created;
  std::string reason;
  std::string job_id;
  std::string agent_token;
  std::int64_t start_at_ns = 0;
  std::int64_t created_ns = 0;
  std::int64_t job_running_ns = 0;
  std::int64_t job_ended_ns = 0;
  JobInfo job;
  std::vector<Transition> transitions;
  std::map<std::uint32_t, AgentState> agents;
  std::vector<nlohmann::json> events;  // this process's event log, for /events
  std::uint32_t nranks() const { return static_cast<std::uint32_t>(request.num_clients); }
};

std::string random_token() {
  unsigned char bytes[24];
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (!urandom.read(reinterpret_cast<char*>(bytes), sizeof bytes))
    throw Error(ErrorCode::io_error, "cannot read /dev/urandom for a token");
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

bool same_secret(std::string_view a, std::string_view b) {
  // Constant time in the length of the expected token, so the comparison leaks nothing.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < b.size(); ++i)
    diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ b[i]);
  return diff == 0;
}

bool valid_group_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::string self_executable() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("aifc") : p.string();
}

// Slurm's pending reasons that no amount of waiting cures.
bool hopeless_pending_reason(const std::string& reason) {
  static const std::set<std::string> kHopeless = {
      "BadConstraints",    "PartitionNodeLimit",
      "PartitionConfig",   "InvalidAccount",
      "InvalidQOS",        "AccountNotAllowed",
      "QOSNotAllowed",     "PartitionDown",
      "PartitionInactive", "ReqNodeNotAvail, UnavailableNodes",
      "JobHeldAdmin"};
  return kHopeless.count(reason) > 0;
}

}  // namespace

struct Service::Impl {
  ServiceConfig config;
  std::unique_ptr<SlurmDispatcher> slurm;
  std::mutex slurm_mutex;  // the dispatcher is used from the HTTP threads and the monitor
  std::unique_ptr<service::Store> store;
  std::mutex store_mutex;  // taken after `mutex` when both are needed, never before
  std::string token;
  httplib::Server server;
  int bound_port = 0;
  std::thread server_thread, monitor_thread;
  std::atomic<bool> stopping{false}, started{false};
  std::mutex mutex;                 // the groups
  std::condition_variable changed;  // a group changed: events, monitor wake-ups
  detail::ObserverQueue<GroupObserver> observers{4096};
  std::map<std::string, Group> groups;
  std::mutex merge_mutex;  // one merge at a time

  // --- persistence ---
  void open_store() {
    std::filesystem::create_directories(config.state_dir);
    ::chmod(config.state_dir.c_str(), 0700);
    store = std::make_unique<service::Store>(config.state_dir + "/service.db");
    store->exec(
        "CREATE TABLE IF NOT EXISTS groups(id TEXT PRIMARY KEY, request TEXT NOT NULL, state TEXT "
        "NOT NULL, reason TEXT NOT NULL, job_id TEXT NOT NULL, agent_token TEXT NOT NULL, "
        "start_at_ns INTEGER NOT NULL, created_ns INTEGER NOT NULL, job_running_ns INTEGER NOT "
        "NULL, job_ended_ns INTEGER NOT NULL)");
    store->exec(
        "CREATE TABLE IF NOT EXISTS transitions(group_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "state TEXT NOT NULL, at_ns INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY "
        "KEY(group_id, seq))");
    store->exec(
        "CREATE TABLE IF NOT EXISTS agents(group_id TEXT NOT NULL, rank INTEGER NOT NULL, info "
        "TEXT NOT NULL, PRIMARY KEY(group_id, rank))");
    store->exec(
        "CREATE TABLE IF NOT EXISTS record_batches(group_id TEXT NOT NULL, rank INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(group_id, rank, seq))");
    store->exec(
        "CREATE TABLE IF NOT EXISTS agent_results(group_id TEXT NOT NULL, rank INTEGER NOT NULL, "
        "document TEXT NOT NULL, record_batches INTEGER NOT NULL, PRIMARY KEY(group_id, rank))");
    // Partial results sent while a run goes on: the records of each message, and the latest
    // aggregate and time line of each rank. Used for a rank that never sent its result.
    store->exec(
        "CREATE TABLE IF NOT EXISTS partial_batches(group_id TEXT NOT NULL, rank INTEGER NOT "
        "NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(group_id, rank, seq))");
    store->exec(
        "CREATE TABLE IF NOT EXISTS partial_state(group_id TEXT NOT NULL, rank INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(group_id, rank))");
    store->exec(
        "CREATE TABLE IF NOT EXISTS merged(group_id TEXT PRIMARY KEY, document TEXT NOT NULL)");
    for (const auto& row : store->query(
             "SELECT id, request, state, reason, job_id, agent_token, start_at_ns, created_ns, "
             "job_running_ns, job_ended_ns FROM groups")) {
      Group g;
      g.id = service::as_text(row[0]);
      g.request = nlohmann::json::parse(service::as_text(row[1])).get<ClientGroupRequest>();
      g.state = group_state_from_string(service::as_text(row[2]));
      g.reason = service::as_text(row[3]);
      g.job_id = service::as_text(row[4]);
      g.agent_token = service::as_text(row[5]);
      g.start_at_ns = service::as_int(row[6]);
      g.created_ns = service::as_int(row[7]);
      g.job_running_ns = service::as_int(row[8]);
      g.job_ended_ns = service::as_int(row[9]);
      for (const auto& t : store->query(
               "SELECT state, at_ns, reason FROM transitions WHERE group_id=?1 ORDER BY seq",
               {g.id}))
        g.transitions.push_back({group_state_from_string(service::as_text(t[0])),
                                 service::as_int(t[1]), service::as_text(t[2])});
      for (const auto& a :
           store->query("SELECT info FROM agents WHERE group_id=?1 ORDER BY rank", {g.id})) {
        auto agent = nlohmann::json::parse(service::as_text(a[0])).get<AgentState>();
        // Heard from now: a restarted service gives its agents time to find it again.
        agent.last_seen_ns = unix_now_ns();
        g.agents[agent.rank] = agent;
      }
      groups.emplace(g.id, std::move(g));
    }
  }

  void save_group(const Group& g) {
    std::lock_guard lock(store_mutex);
    store->exec(
        "INSERT INTO groups(id, request, state, reason, job_id, agent_token, start_at_ns, "
        "created_ns, job_running_ns, job_ended_ns) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) ON "
        "CONFLICT(id) DO UPDATE SET state=?3, reason=?4, job_id=?5, start_at_ns=?7, "
        "job_running_ns=?9, job_ended_ns=?10",
        {g.id, nlohmann::json(g.request).dump(), std::string(to_string(g.state)), g.reason,
         g.job_id, g.agent_token, g.start_at_ns, g.created_ns, g.job_running_ns, g.job_ended_ns});
  }

  void save_agent(const Group& g, const AgentState& a) {
    std::lock_guard lock(store_mutex);
    store->exec("INSERT OR REPLACE INTO agents(group_id, rank, info) VALUES(?1, ?2, ?3)",
                {g.id, static_cast<std::int64_t>(a.rank), nlohmann::json(a).dump()});
  }

  void event(Group& g, std::string type, nlohmann::json data) {
    data["type"] = type;
    data["group"] = g.id;
    data["unix_ns"] = unix_now_ns();
    if (observers.active())
      observers.post(
          [e = GroupEvent{g.id, std::move(type), data}](GroupObserver& o) { o.on_group_event(e); },
          true);
    g.events.push_back(std::move(data));
    if (g.events.size() > 10'000) g.events.erase(g.events.begin(), g.events.begin() + 1000);
    changed.notify_all();
  }

  // Appends a transition to the group's history, in memory and stored (seq counts from 1).
  void record_transition(Group& g, GroupState to, std::int64_t at_ns, const std::string& reason) {
    g.transitions.push_back({to, at_ns, reason});
    std::lock_guard lock(store_mutex);
    store->exec(
        "INSERT INTO transitions(group_id, seq, state, at_ns, reason) VALUES(?1,?2,?3,?4,?5)",
        {g.id, static_cast<std::int64_t>(g.transitions.size()), std::string(to_string(to)), at_ns,
         reason});
  }

  // Caller holds `mutex`. Persists the new state and its transition before anyone is told.
  void transition(Group& g, GroupState to, std::string reason = {}) {
    if (g.state == to) return;
    const GroupState from = g.state;
    g.state = to;
    g.reason = reason;
    record_transition(g, to, unix_now_ns(), reason);
    save_group(g);
    event(g, "state",
          {{"from", to_string(from)}, {"state", to_string(to)}, {"reason", std::move(reason)}});
  }

  // --- views ---
  nlohmann::json group_view(const Group& g) const {
    nlohmann::json transitions = nlohmann::json::array();
    for (const auto& t : g.transitions)
      transitions.push_back(
          {{"state", to_string(t.state)}, {"at_unix_ns", t.at_ns}, {"reason", t.reason}});
    nlohmann::json agents = nlohmann::json::array();
    for (const auto& [rank, a] : g.agents) agents.push_back(a);
    return {{"id", g.id},
            {"state", to_string(g.state)},
            {"reason", g.reason},
            {"job_id", g.job_id},
            {"job", g.job.job_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(g.job)},
            {"num_clients", g.request.num_clients},
            {"agents_registered", g.agents.size()},
            {"start_at_unix_ns", g.start_at_ns ? nlohmann::json(g.start_at_ns) : nullptr},
            {"created_unix_ns", g.created_ns},
            {"transitions", std::move(transitions)},
            {"agents", std::move(agents)},
            {"request", g.request}};
  }

  // --- Slurm ---
  JobSpec job_for(const Group& g) const {
    JobSpec job;
    job.name = g.request.job_name.empty() ? "aifc-" + g.id : g.request.job_name;
    job.partition = g.request.partition;
    job.account = g.request.account;
    job.qos = g.request.qos;
    job.ntasks = static_cast<int>(g.request.num_clients);
    job.nodes = static_cast<int>(g.request.nodes);  // 0: Slurm spreads the tasks
    job.ntasks_per_node = static_cast<int>(g.request.ntasks_per_node);
    job.cpus_per_task = static_cast<int>(g.request.cpus_per_task);
    job.memory = g.request.memory;
    job.time_limit = g.request.time_limit;
    job.working_directory = job_directory();
    job.output = job.working_directory + "/aifc-" + g.id + "-%j.out";
    job.command = config.agent_command;
    if (job.command.empty()) job.command = {self_executable(), "agent"};
    job.container = config.container;
    job.environment = config.agent_environment;
    job.environment.emplace_back("AIFC_SERVICE_URL", public_url());
    job.environment.emplace_back("AIFC_GROUP_ID", g.id);
    job.environment.emplace_back("AIFC_AGENT_TOKEN", g.agent_token);
    job.environment.emplace_back("AIFC_AGENT_DIR", job.working_directory);
    return job;
  }

  std::string job_directory() const {
    return config.job_directory.empty() ? config.state_dir + "/jobs" : config.job_directory;
  }

  std::string public_url() const {
    if (!config.public_url.empty()) return config.public_url;
    return fmt::format("http://{}:{}", config.listen_host, bound_port);
  }

  void submit(const std::string& id) {
    JobSpec job;
    {
      std::lock_guard lock(mutex);
      job = job_for(groups.at(id));
    }
    std::string job_id, failure;
    try {
      std::filesystem::create_directories(job.working_directory);
      std::lock_guard lock(slurm_mutex);
      job_id = slurm->submit(job);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    std::lock_guard lock(mutex);
    Group& g = groups.at(id);
    if (!failure.empty()) {
      transition(g, GroupState::failed, "the Slurm job was not accepted: " + failure);
      return;
    }
    g.job_id = job_id;
    g.job.job_id = job_id;
    transition(g, GroupState::submitted, "job " + job_id);
  }

  void cancel_job(const std::string& job_id) {
    if (job_id.empty()) return;
    try {
      std::lock_guard lock(slurm_mutex);
      slurm->cancel(job_id);
    } catch (const std::exception&) {
      // Already gone; the monitor sees its end either way.
    }
  }

  // --- results ---
  // Reads every stored agent result and merges them. Caller holds merge_mutex only.
  nlohmann::json merge_group(const std::string& id, const ClientGroupRequest& request,
                             const std::map<std::uint32_t, AgentState>& agents) {
    std::vector<ShardResult> parts;
    TokenizerApi tokenizer = TokenizerApi::none;
    auto partial = nlohmann::json::array();
    {
      std::lock_guard lock(store_mutex);
      for (const auto& row : store->query(
               "SELECT rank, document, record_batches FROM agent_results WHERE group_id=?1 ORDER "
               "BY rank",
               {id})) {
        const auto rank = static_cast<std::uint32_t>(service::as_int(row[0]));
        auto doc = nlohmann::json::parse(service::as_text(row[1]));
        auto records = nlohmann::json::array();
        for (const auto& b : store->query(
                 "SELECT body FROM record_batches WHERE group_id=?1 AND rank=?2 AND seq<?3 ORDER "
                 "BY seq",
                 {id, static_cast<std::int64_t>(rank), service::as_int(row[2])}))
          for (auto& r : nlohmann::json::parse(service::as_text(b[0])))
            records.push_back(std::move(r));
        if (!records.empty() || service::as_int(row[2]) > 0) doc["records"] = std::move(records);
        auto read = read_result_document(doc);
        if (rank == 0 || parts.empty()) tokenizer = read.tokenizer;
        ShardResult part;
        part.rank = rank;
        part.result = std::move(read.result);
        if (const auto a = agents.find(rank); a != agents.end()) {
          part.node = a->second.node;
          part.clock_offset_ns = a->second.clock_offset_ns;
          part.clock_uncertainty_ns = a->second.clock_uncertainty_ns;
        }
        parts.push_back(std::move(part));
      }
      // Ranks without a result: what their partial messages brought, if anything.
      for (std::uint32_t rank = 0; rank < static_cast<std::uint32_t>(request.num_clients); ++rank) {
        if (std::any_of(parts.begin(), parts.end(),
                        [&](const ShardResult& p) { return p.rank == rank; }))
          continue;
        auto part = partial_part(id, rank, request.spec.summary.goodput);
        if (!part) continue;
        if (const auto a = agents.find(rank); a != agents.end()) {
          part->node = a->second.node;
          part->clock_offset_ns = a->second.clock_offset_ns;
          part->clock_uncertainty_ns = a->second.clock_uncertainty_ns;
        }
        partial.push_back({{"rank", rank},
                           {"requests", part->result.aggregate.counted()},
                           {"reason", agent_reason(agents, rank)}});
        parts.push_back(std::move(*part));
      }
    }
    const auto merged = merge_shards(
        std::move(parts), static_cast<std::uint32_t>(request.num_clients), request.spec.summary);
    // With the records (the per-request arrays too), so `?detail=records` can give them; the
    // plain view drops them when it is read.
    auto doc = merged_result_document(request.spec, tokenizer, merged, merged.exact);
    auto missing = nlohmann::json::array();
    for (auto rank : merged.missing_ranks)
      missing.push_back({{"rank", rank}, {"reason", agent_reason(agents, rank)}});
    doc["distributed"]["missing"] = std::move(missing);
    // Ranks that ended without their result and count only what they sent while running.
    auto partial_ranks = nlohmann::json::array();
    for (const auto& p : partial) partial_ranks.push_back(p["rank"]);
    doc["distributed"]["partial_ranks"] = std::move(partial_ranks);
    doc["distributed"]["partial"] = std::move(partial);
    return doc;
  }

  static std::string agent_reason(const std::map<std::uint32_t, AgentState>& agents,
                                  std::uint32_t rank) {
    const auto a = agents.find(rank);
    if (a == agents.end()) return "never registered";
    if (a->second.state == "failed") return "failed: " + a->second.error;
    return "no result (last state " + a->second.state + ")";
  }

  // Caller holds store_mutex. A rank's part from its partial messages, or nothing.
  std::optional<ShardResult> partial_part(const std::string& id, std::uint32_t rank,
                                          const GoodputSlo& goodput) {
    const auto state =
        store->query("SELECT seq, body FROM partial_state WHERE group_id=?1 AND rank=?2",
                     {id, static_cast<std::int64_t>(rank)});
    if (state.empty()) return std::nullopt;
    const auto last_seq = service::as_int(state[0][0]);
    const auto body = nlohmann::json::parse(service::as_text(state[0][1]));
    ShardResult part;
    part.rank = rank;
    BenchmarkResult& r = part.result;
    r.anchor.mono_ns = body.at("anchor").at("mono_ns").get<std::int64_t>();
    r.anchor.unix_ns = body.at("anchor").at("unix_ns").get<std::int64_t>();
    r.start_ns = body.at("start_mono_ns").get<std::int64_t>();
    r.end_ns = std::max(r.start_ns, body.at("until_mono_ns").get<std::int64_t>());
    r.duration_s = static_cast<double>(r.end_ns - r.start_ns) * 1e-9;
    r.first_send_late_ns = body.value("first_send_late_ns", std::int64_t{0});
    // It ended before its share did; partial_ranks says so (the run itself was not stopped).
    r.aggregate = MetricsAggregate::from_json(body.at("aggregate"));
    if (r.aggregate.goodput().ttft_ms != goodput.ttft_ms ||
        r.aggregate.goodput().tpot_ms != goodput.tpot_ms ||
        r.aggregate.goodput().e2el_ms != goodput.e2el_ms)
      return std::nullopt;
    for (const auto& b : store->query(
             "SELECT body FROM partial_batches WHERE group_id=?1 AND rank=?2 AND seq<=?3 ORDER BY "
             "seq",
             {id, static_cast<std::int64_t>(rank), last_seq}))
      for (const auto& rec : nlohmann::json::parse(service::as_text(b[0])))
        r.records.push_back(rec.get<RequestRecord>());
    return part;
  }

  // Merges and finishes a group whose agents have all reported (or cannot any more).
  void finalize(const std::string& id) {
    std::lock_guard merge_lock(merge_mutex);
    ClientGroupRequest request;
    std::map<std::uint32_t, AgentState> agents;
    {
      std::lock_guard lock(mutex);
      const Group& g = groups.at(id);
      if (g.state != GroupState::running) return;
      request = g.request;
      agents = g.agents;
    }
    nlohmann::json doc;
    std::string failure;
    try {
      doc = merge_group(id, request, agents);
    } catch (const std::exception& e) {
      failure = std::string("merging the agents' results failed: ") + e.what();
    }
    std::lock_guard lock(mutex);
    Group& g = groups.at(id);
    if (g.state != GroupState::running) return;
    if (failure.empty() && doc["distributed"]["ranks"].empty())
      failure = "no agent reported a result";
    if (!failure.empty()) {
      transition(g, GroupState::failed, failure);
      return;
    }
    {
      std::lock_guard slock(store_mutex);
      store->exec("INSERT OR REPLACE INTO merged(group_id, document) VALUES(?1, ?2)",
                  {id, doc.dump()});
    }
    const auto& missing = doc["distributed"]["missing_ranks"];
    const auto& partial = doc["distributed"]["partial_ranks"];
    std::string reason;
    if (!missing.empty()) reason = fmt::format("ranks without a result: {}", missing.dump());
    if (!partial.empty())
      reason += fmt::format("{}ranks that ended early, counted from their partial results: {}",
                            reason.empty() ? "" : "; ", partial.dump());
    transition(g, GroupState::finished, reason);
    event(g, "result",
          {{"completed", doc.value("completed", 0)}, {"failed", doc.value("failed", 0)}});
  }

  // Caller holds `mutex`. The raw result an agent writes to the job directory
  // (aifc-<id>-rank<r>.json, with every record), stored as if it had been sent. False when
  // there is none or it is not a whole result document of this rank.
  bool read_raw_result(const Group& g, std::uint32_t rank) {
    const auto path =
        std::filesystem::path(job_directory()) / fmt::format("aifc-{}-rank{}.json", g.id, rank);
    std::ifstream in(path);
    if (!in) return false;
    try {
      const auto doc = nlohmann::json::parse(in);
      const auto read = read_result_document(doc);
      if (read.spec.shard.rank != rank || read.spec.shard.nranks != g.nranks()) return false;
      std::lock_guard lock(store_mutex);
      store->exec(
          "INSERT OR REPLACE INTO agent_results(group_id, rank, document, record_batches) "
          "VALUES(?1,?2,?3,0)",
          {g.id, static_cast<std::int64_t>(rank), doc.dump()});
      return true;
    } catch (const std::exception&) {
      return false;  // cut short (the agent died while writing it): the rank is missing
    }
  }

  // Caller holds `mutex`: true when every rank has reported, failed or gone silent.
  bool all_accounted(const Group& g) const {
    if (g.agents.size() < g.nranks()) return false;
    return std::all_of(g.agents.begin(), g.agents.end(), [](const auto& kv) {
      return kv.second.result_received || kv.second.state == "failed" || kv.second.state == "lost";
    });
  }

  // --- the monitor: follows jobs, deadlines and silent agents ---
  void monitor() {
    while (!stopping.load()) {
      std::vector<std::pair<std::string, std::string>> follow;
      {
        std::unique_lock lock(mutex);
        changed.wait_for(lock, config.slurm_poll_interval);
        if (stopping.load()) break;
        for (const auto& [id, g] : groups)
          if (!is_terminal(g.state) && !g.job_id.empty()) follow.emplace_back(id, g.job_id);
      }
      for (const auto& [id, job_id] : follow) {
        JobInfo info;
        try {
          std::lock_guard lock(slurm_mutex);
          info = slurm->state(job_id);
        } catch (const std::exception&) {
          continue;  // Slurm unreachable for a moment: ask again next time
        }
        bool finalize_now = false;
        std::string cancel;
        {
          std::lock_guard lock(mutex);
          auto it = groups.find(id);
          if (it == groups.end() || is_terminal(it->second.state)) continue;
          Group& g = it->second;
          const auto now = unix_now_ns();
          if (g.job.state != info.state) event(g, "job", {{"job", info}});
          g.job = info;
          if (info.state == JobState::running && g.job_running_ns == 0) {
            g.job_running_ns = now;
            save_group(g);
          }
          if (is_terminal(info.state) && g.job_ended_ns == 0) {
            g.job_ended_ns = now;
            save_group(g);
          }
          const auto job_text =
              fmt::format("job {} {}{}", info.job_id, to_string(info.state),
                          info.reason.empty() || info.reason == "None" ? std::string()
                                                                       : " (" + info.reason + ")");
          const bool before_run = g.state == GroupState::submitted ||
                                  g.state == GroupState::registering ||
                                  g.state == GroupState::ready;
          if (before_run && is_terminal(info.state)) {
            transition(g, GroupState::failed, "the Slurm job ended before the run: " + job_text);
          } else if (before_run && info.state == JobState::pending &&
                     hopeless_pending_reason(info.reason)) {
            transition(g, GroupState::failed, "the Slurm job cannot start: " + job_text);
            cancel = g.job_id;
          } else if ((g.state == GroupState::submitted || g.state == GroupState::registering) &&
                     g.job_running_ns > 0 &&
                     now - g.job_running_ns >
                         std::chrono::nanoseconds(config.registration_timeout).count()) {
            transition(g, GroupState::failed,
                       fmt::format("registration deadline passed: {} of {} agents registered",
                                   g.agents.size(), g.nranks()));
            cancel = g.job_id;
          } else if (g.state == GroupState::running) {
            // The job ended and the results it could still send have had their time.
            const bool job_gone =
                g.job_ended_ns > 0 &&
                now - g.job_ended_ns > std::chrono::nanoseconds(config.result_grace).count();
            for (auto& [rank, a] : g.agents) {
              if (a.result_received || a.state == "failed" || a.state == "lost") continue;
              const bool silent = now - a.last_seen_ns >
                                  std::chrono::nanoseconds(config.agent_silence_limit).count();
              if (!silent && !job_gone) continue;
              if (read_raw_result(g, rank)) {
                // It never reached the service, but it wrote its raw result beside the job's
                // output: nothing is lost.
                a.result_received = true;
                a.state = "finished";
                a.error = "result read from its raw file";
              } else {
                a.state = "lost";
                a.error = silent ? "not heard from within the silence limit"
                                 : "the job ended without its result (" + job_text + ")";
              }
              save_agent(g, a);
              event(g, "agent", {{"rank", rank}, {"state", a.state}, {"error", a.error}});
            }
            // Ranks that never registered count as lost once the job is gone.
            if (job_gone)
              for (std::uint32_t r = 0; r < g.nranks(); ++r)
                if (!g.agents.count(r)) {
                  AgentState a;
                  a.rank = r;
                  a.state = "lost";
                  a.error = "never registered";
                  g.agents[r] = a;
                }
            finalize_now = all_accounted(g);
          }
        }
        if (!cancel.empty()) cancel_job(cancel);
        if (finalize_now) finalize(id);
      }
      std::vector<std::string> complete;
      {
        std::lock_guard lock(mutex);
        for (const auto& [id, g] : groups)
          if (g.state == GroupState::running && all_accounted(g)) complete.push_back(id);
      }
      for (const auto& id : complete) finalize(id);
      emit_progress();
    }
  }

  void emit_progress() {
    std::lock_guard lock(mutex);
    for (auto& [id, g] : groups) {
      if (g.state != GroupState::running) continue;
      std::uint64_t completed = 0, failed = 0, in_flight = 0;
      std::int64_t tokens = 0;
      for (const auto& [rank, a] : g.agents) {
        completed += a.progress.value("completed", std::uint64_t{0});
        failed += a.progress.value("failed", std::uint64_t{0});
        in_flight += a.progress.value("in_flight", std::uint64_t{0});
        tokens += a.progress.value("output_tokens", std::int64_t{0});
      }
      event(g, "progress",
            {{"completed", completed},
             {"failed", failed},
             {"in_flight", in_flight},
             {"output_tokens", tokens},
             {"agents_running", std::count_if(g.agents.begin(), g.agents.end(), [](const auto& kv) {
                return kv.second.state == "running";
              })}});
    }
  }

  // --- HTTP ---
  void install_routes();
};

// ---- Routes --------------------------------------------------------------------------------

namespace {

void reply(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void error_reply(httplib::Response& res, int status, const std::string& message) {
  reply(res, status, {{"error", message}});
}

nlohmann::json parse_body(const httplib::Request& req) {
  if (req.body.empty()) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::parse_error& e) {
    bad(fmt::format("the body is not valid JSON ({})", e.what()));
  }
}

std::string bearer(const httplib::Request& req) {
  const auto h = req.get_header_value("Authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (h.size() <= kPrefix.size() || h.compare(0, kPrefix.size(), kPrefix) != 0) return {};
  return h.substr(kPrefix.size());
}

std::string path_to_regex(const std::string& path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '{') {
      const auto end = path.find('}', i);
      const auto name = path.substr(i + 1, end - i - 1);
      out += name == "rank" ? "([0-9]{1,9})" : "([^/]+)";
      i = end;
    } else if (path[i] == '.') {
      out += "\\.";
    } else {
      out += path[i];
    }
  }
  return out;
}

}  // namespace

void Service::Impl::install_routes() {
  using service::Access;
  using service::Route;
  using Params = std::vector<std::string>;
  using Handler = std::function<void(const httplib::Request&, httplib::Response&, const Params&)>;
  std::map<std::string, Handler> handlers;

  // Looks a group up for a handler; nullptr after a 404 reply.
  auto find = [this](const std::string& id, httplib::Response& res) -> Group* {
    auto it = groups.find(id);
    if (it == groups.end()) {
      error_reply(res, 404, fmt::format("no client group '{}'", id));
      return nullptr;
    }
    return &it->second;
  };

  handlers["health"] = [this](const httplib::Request&, httplib::Response& res, const Params&) {
    std::lock_guard lock(mutex);
    reply(res, 200, {{"status", "ok"}, {"groups", groups.size()}});
  };
  handlers["openapi"] = [](const httplib::Request&, httplib::Response& res, const Params&) {
    reply(res, 200, Service::openapi());
  };
  handlers["docs"] = [](const httplib::Request&, httplib::Response& res, const Params&) {
    res.set_content(service::docs_page(Service::openapi()), "text/html; charset=utf-8");
  };
  handlers["metrics"] = [this](const httplib::Request&, httplib::Response& res, const Params&) {
    std::lock_guard lock(mutex);
    std::map<GroupState, int> by_state;
    std::uint64_t agents = 0, completed = 0, failed = 0;
    std::int64_t tokens = 0;
    for (const auto& [id, g] : groups) {
      ++by_state[g.state];
      for (const auto& [rank, a] : g.agents) {
        agents += a.state == "lost" ? 0 : 1;
        completed += a.progress.value("completed", std::uint64_t{0});
        failed += a.progress.value("failed", std::uint64_t{0});
        tokens += a.progress.value("output_tokens", std::int64_t{0});
      }
    }
    std::string text =
        "# HELP aifc_service_groups Client groups by state.\n# TYPE aifc_service_groups gauge\n";
    for (std::size_t i = 0; i < std::size(kStateNames); ++i)
      text += fmt::format("aifc_service_groups{{state=\"{}\"}} {}\n", kStateNames[i],
                          by_state[static_cast<GroupState>(i)]);
    text += fmt::format(
        "# HELP aifc_service_agents Agents registered, over all groups.\n"
        "# TYPE aifc_service_agents gauge\naifc_service_agents {}\n"
        "# HELP aifc_service_requests_completed Requests completed, as the agents last reported.\n"
        "# TYPE aifc_service_requests_completed gauge\naifc_service_requests_completed {}\n"
        "# HELP aifc_service_requests_failed Requests failed, as the agents last reported.\n"
        "# TYPE aifc_service_requests_failed gauge\naifc_service_requests_failed {}\n"
        "# HELP aifc_service_output_tokens Output tokens, as the agents last reported.\n"
        "# TYPE aifc_service_output_tokens gauge\naifc_service_output_tokens {}\n",
        agents, completed, failed, tokens);
    res.set_content(text, "text/plain; version=0.0.4");
  };
  handlers["list"] = [this](const httplib::Request&, httplib::Response& res, const Params&) {
    std::lock_guard lock(mutex);
    auto list = nlohmann::json::array();
    for (const auto& [id, g] : groups)
      list.push_back({{"id", id},
                      {"state", to_string(g.state)},
                      {"job_id", g.job_id},
                      {"num_clients", g.request.num_clients},
                      {"created_unix_ns", g.created_ns}});
    reply(res, 200, {{"groups", std::move(list)}});
  };
  handlers["create"] = [this](const httplib::Request& req, httplib::Response& res,
                              const Params& p) {
    const auto& id = p[0];
    if (!valid_group_id(id))
      return error_reply(res, 400, "id: a group id is 1 to 64 letters, digits, '-', '_' or '.'");
    auto request = parse_body(req).template get<ClientGroupRequest>();
    if (request.spec.client.base_url == ClientConfig{}.base_url)
      request.spec.client.base_url = config.server_url;
    request.validate();
    {
      std::lock_guard lock(mutex);
      if (groups.count(id))
        return error_reply(res, 409, fmt::format("client group '{}' exists", id));
      Group g;
      g.id = id;
      g.request = std::move(request);
      g.agent_token = random_token();
      g.created_ns = unix_now_ns();
      save_group(g);
      record_transition(g, GroupState::created, g.created_ns, "");
      auto& created = groups.emplace(id, std::move(g)).first->second;
      event(created, "state", {{"from", nullptr}, {"state", "created"}, {"reason", ""}});
    }
    submit(id);
    std::lock_guard lock(mutex);
    reply(res, 201, group_view(groups.at(id)));
  };
  handlers["get"] = [this, find](const httplib::Request&, httplib::Response& res, const Params& p) {
    std::lock_guard lock(mutex);
    if (Group* g = find(p[0], res)) reply(res, 200, group_view(*g));
  };
  handlers["delete"] = [this, find](const httplib::Request&, httplib::Response& res,
                                    const Params& p) {
    std::string job;
    {
      std::lock_guard lock(mutex);
      Group* g = find(p[0], res);
      if (!g) return;
      if (is_terminal(g->state))
        return error_reply(
            res, 409, fmt::format("client group '{}' is already {}", p[0], to_string(g->state)));
      transition(*g, GroupState::cancelled, "cancelled through the API");
      job = g->job_id;
    }
    cancel_job(job);
    std::lock_guard lock(mutex);
    reply(res, 200, group_view(groups.at(p[0])));
  };
  handlers["run"] = [this, find](const httplib::Request& req, httplib::Response& res,
                                 const Params& p) {
    const auto body = parse_body(req);
    std::lock_guard lock(mutex);
    Group* g = find(p[0], res);
    if (!g) return;
    if (g->state == GroupState::running || g->state == GroupState::finished)
      return error_reply(res, 409,
                         fmt::format("client group '{}' has already been started ({})", p[0],
                                     to_string(g->state)));
    if (g->state != GroupState::ready) {
      std::size_t ready = 0;
      for (const auto& [rank, a] : g->agents) ready += a.state == "ready" ? 1 : 0;
      return error_reply(res, 409,
                         fmt::format("client group '{}' is {}, not ready: {} of {} agents ready",
                                     p[0], to_string(g->state), ready, g->nranks()));
    }
    auto delay = config.start_delay;
    if (body.contains("start_delay_ms")) {
      if (!body.at("start_delay_ms").is_number_integer() ||
          body.at("start_delay_ms").get<std::int64_t>() < 100 ||
          body.at("start_delay_ms").get<std::int64_t>() > 600'000)
        return error_reply(res, 400, "start_delay_ms must be a whole number from 100 to 600000");
      delay = std::chrono::milliseconds(body.at("start_delay_ms").get<std::int64_t>());
    }
    g->start_at_ns = unix_now_ns() + std::chrono::nanoseconds(delay).count();
    transition(*g, GroupState::running,
               fmt::format("start at {} (in {} ms)", g->start_at_ns, delay.count()));
    reply(res, 200, group_view(*g));
  };
  handlers["results"] = [this, find](const httplib::Request& req, httplib::Response& res,
                                     const Params& p) {
    GroupState state;
    {
      std::lock_guard lock(mutex);
      Group* g = find(p[0], res);
      if (!g) return;
      state = g->state;
    }
    std::vector<std::vector<service::SqlValue>> rows;
    {
      std::lock_guard lock(store_mutex);
      rows = store->query("SELECT document FROM merged WHERE group_id=?1", {p[0]});
    }
    if (rows.empty())
      return error_reply(
          res, 409,
          fmt::format("client group '{}' has no result yet (it is {})", p[0], to_string(state)));
    auto doc = nlohmann::json::parse(service::as_text(rows[0][0]));
    const auto detail = req.get_param_value("detail");
    if (detail != "agents" && detail != "all") {
      doc["distributed"].erase("per_rank");
      doc["distributed"].erase("per_node");
    }
    if (detail != "records" && detail != "all")
      for (const char* key : {"records", "input_lens", "output_lens", "ttfts", "itls",
                              "start_times", "errors", "generated_texts"})
        doc.erase(key);
    reply(res, 200, doc);
  };
  handlers["events"] = [this, find](const httplib::Request&, httplib::Response& res,
                                    const Params& p) {
    {
      std::lock_guard lock(mutex);
      if (!find(p[0], res)) return;
    }
    const std::string id = p[0];
    auto next = std::make_shared<std::size_t>(0);
    res.set_chunked_content_provider(
        "text/event-stream", [this, id, next](std::size_t, httplib::DataSink& sink) {
          std::unique_lock lock(mutex);
          const auto it = groups.find(id);
          if (it == groups.end() || stopping.load()) {
            sink.done();
            return true;
          }
          if (*next >= it->second.events.size()) changed.wait_for(lock, std::chrono::seconds(1));
          const Group& g = groups.at(id);
          std::string out;
          for (; *next < g.events.size(); ++*next)
            out += fmt::format("event: {}\ndata: {}\n\n", g.events[*next].value("type", "message"),
                               g.events[*next].dump());
          const bool over = is_terminal(g.state);
          lock.unlock();
          if (out.empty()) out = ": keep-alive\n\n";
          if (!sink.write(out.data(), out.size())) return false;
          if (over) sink.done();
          return true;
        });
  };

  // --- the agents' side ---
  auto agent_of = [find](const Params& p, httplib::Response& res, std::uint32_t& rank) -> Group* {
    Group* g = find(p[0], res);
    if (!g) return nullptr;
    rank = static_cast<std::uint32_t>(std::stoul(p[1]));
    if (rank >= g->nranks()) {
      error_reply(res, 404,
                  fmt::format("rank {} is beyond the group's {} clients", rank, g->nranks()));
      return nullptr;
    }
    return g;
  };
  handlers["clock"] = [this, agent_of](const httplib::Request&, httplib::Response& res,
                                       const Params& p) {
    {
      std::lock_guard lock(mutex);
      std::uint32_t rank = 0;
      if (!agent_of(p, res, rank)) return;
    }
    reply(res, 200, {{"unix_ns", unix_now_ns()}});
  };
  handlers["register"] = [this, agent_of](const httplib::Request& req, httplib::Response& res,
                                          const Params& p) {
    const auto body = parse_body(req);
    std::lock_guard lock(mutex);
    std::uint32_t rank = 0;
    Group* g = agent_of(p, res, rank);
    if (!g) return;
    if (is_terminal(g->state))
      return error_reply(res, 409,
                         fmt::format("client group '{}' is {}", p[0], to_string(g->state)));
    AgentState a = g->agents.count(rank) ? g->agents[rank] : AgentState{};
    a.rank = rank;
    a.node = body.value("node", "");
    a.hostname = body.value("hostname", "");
    a.pid = body.value("pid", std::int64_t{0});
    a.clock_offset_ns = body.value("clock_offset_ns", std::int64_t{0});
    a.clock_uncertainty_ns = body.value("clock_uncertainty_ns", std::int64_t{0});
    a.registered_ns = a.last_seen_ns = unix_now_ns();
    if (a.state != "running") a.state = "registered";
    g->agents[rank] = a;
    save_agent(*g, a);
    event(*g, "agent", {{"rank", rank}, {"state", "registered"}, {"node", a.node}});
    if (g->state == GroupState::submitted || g->state == GroupState::created)
      transition(*g, GroupState::registering, fmt::format("rank {} on {}", rank, a.node));
    BenchmarkSpec spec = g->request.spec;
    spec.shard = Shard{rank, g->nranks()};
    reply(res, 200,
          {{"spec", spec},
           {"heartbeat_interval_ms", 250},
           {"partial_interval_ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(config.partial_interval).count()},
           {"start_at_unix_ns", g->start_at_ns ? nlohmann::json(g->start_at_ns) : nullptr}});
  };
  handlers["heartbeat"] = [this, agent_of](const httplib::Request& req, httplib::Response& res,
                                           const Params& p) {
    const auto body = parse_body(req);
    std::lock_guard lock(mutex);
    std::uint32_t rank = 0;
    Group* g = agent_of(p, res, rank);
    if (!g) return;
    if (!g->agents.count(rank))
      return error_reply(res, 409, fmt::format("rank {} has not registered", rank));
    AgentState& a = g->agents[rank];
    a.last_seen_ns = unix_now_ns();
    if (body.contains("progress") && body["progress"].is_object()) a.progress = body["progress"];
    const std::string state = body.value("state", a.state);
    static const std::set<std::string> kAgentStates = {"registered", "preparing", "ready",
                                                       "running",    "finished",  "failed"};
    if (!kAgentStates.count(state))
      return error_reply(res, 400, fmt::format("state: '{}' is not an agent state", state));
    // A refined clock offset, sent by a ready agent before the start instant (a tighter bound
    // than its registration's; see Agent).
    if (state == "ready" && a.state == "ready" && body.contains("clock_uncertainty_ns") &&
        body.contains("clock_offset_ns") && body["clock_uncertainty_ns"].is_number_integer() &&
        body["clock_offset_ns"].is_number_integer()) {
      const auto uncertainty = body["clock_uncertainty_ns"].get<std::int64_t>();
      if (uncertainty >= 0 && uncertainty < a.clock_uncertainty_ns) {
        a.clock_offset_ns = body["clock_offset_ns"].get<std::int64_t>();
        a.clock_uncertainty_ns = uncertainty;
        save_agent(*g, a);  // the state stays: nothing below saves it
      }
    }
    if (state != a.state && a.state != "lost") {
      a.state = state;
      a.error = body.value("error", "");
      save_agent(*g, a);
      event(*g, "agent", {{"rank", rank}, {"state", state}, {"error", a.error}});
    }
    if (g->state == GroupState::registering && g->agents.size() == g->nranks() &&
        std::all_of(g->agents.begin(), g->agents.end(),
                    [](const auto& kv) { return kv.second.state == "ready"; }))
      transition(*g, GroupState::ready, fmt::format("{} agents ready", g->nranks()));
    if (state == "failed" &&
        (g->state == GroupState::registering || g->state == GroupState::submitted)) {
      transition(*g, GroupState::failed,
                 fmt::format("rank {} failed to prepare: {}", rank, a.error));
    }
    reply(res, 200,
          {{"group_state", to_string(g->state)},
           {"start_at_unix_ns",
            g->state == GroupState::running ? nlohmann::json(g->start_at_ns) : nullptr},
           {"cancel", g->state == GroupState::cancelled || g->state == GroupState::failed}});
  };
  handlers["records"] = [this, agent_of](const httplib::Request& req, httplib::Response& res,
                                         const Params& p) {
    const auto body = parse_body(req);
    {
      std::lock_guard lock(mutex);
      std::uint32_t rank = 0;
      if (!agent_of(p, res, rank)) return;
    }
    if (!body.contains("seq") || !body["seq"].is_number_unsigned() || !body.contains("records") ||
        !body["records"].is_array())
      return error_reply(res, 400, "a record batch is {\"seq\": N, \"records\": [...]}");
    {
      std::lock_guard lock(store_mutex);
      store->exec(
          "INSERT OR REPLACE INTO record_batches(group_id, rank, seq, body) VALUES(?1,?2,?3,?4)",
          {p[0], static_cast<std::int64_t>(std::stoul(p[1])), body["seq"].get<std::int64_t>(),
           body["records"].dump()});
    }
    reply(res, 200, {{"stored", body["records"].size()}});
  };
  handlers["partial"] = [this, agent_of](const httplib::Request& req, httplib::Response& res,
                                         const Params& p) {
    auto body = parse_body(req);
    std::uint32_t rank = 0;
    {
      std::lock_guard lock(mutex);
      if (!agent_of(p, res, rank)) return;
      const auto& agents = groups.at(p[0]).agents;
      if (const auto a = agents.find(rank); a != agents.end() && a->second.result_received)
        return reply(res, 200, {{"stored", 0}});  // the whole one is here
    }
    if (!body.contains("seq") || !body["seq"].is_number_unsigned() || !body.contains("records") ||
        !body["records"].is_array() || !body.contains("aggregate") ||
        !body["aggregate"].is_object() || !body.contains("anchor") || !body["anchor"].is_object() ||
        !body.contains("start_mono_ns") || !body["start_mono_ns"].is_number_integer() ||
        !body.contains("until_mono_ns") || !body["until_mono_ns"].is_number_integer())
      return error_reply(res, 400,
                         "a partial result is {\"seq\": N, \"records\": [...], \"aggregate\": "
                         "{...}, \"anchor\": {...}, \"start_mono_ns\": T, \"until_mono_ns\": T}");
    try {
      MetricsAggregate::from_json(body["aggregate"]);
      for (const auto& r : body["records"]) r.get<RequestRecord>();
    } catch (const std::exception& e) {
      return error_reply(res, 400, fmt::format("partial result: {}", e.what()));
    }
    const auto seq = body["seq"].get<std::int64_t>();
    const std::size_t stored = body["records"].size();
    const std::string records = body["records"].dump();
    body.erase("records");  // the rest is the rank's latest state
    {
      std::lock_guard lock(store_mutex);
      store->exec(
          "INSERT OR REPLACE INTO partial_batches(group_id, rank, seq, body) VALUES(?1,?2,?3,?4)",
          {p[0], static_cast<std::int64_t>(rank), seq, records});
      // The latest aggregate wins; a message resent late does not move it back.
      store->exec(
          "INSERT INTO partial_state(group_id, rank, seq, body) VALUES(?1,?2,?3,?4) ON "
          "CONFLICT(group_id, rank) DO UPDATE SET seq=excluded.seq, body=excluded.body WHERE "
          "excluded.seq >= partial_state.seq",
          {p[0], static_cast<std::int64_t>(rank), seq, body.dump()});
    }
    reply(res, 200, {{"stored", stored}});
  };
  handlers["result"] = [this, agent_of](const httplib::Request& req, httplib::Response& res,
                                        const Params& p) {
    const auto body = parse_body(req);
    std::uint32_t rank = 0;
    {
      std::lock_guard lock(mutex);
      if (!agent_of(p, res, rank)) return;
    }
    if (!body.contains("document") || !body["document"].is_object() ||
        !body.contains("record_batches") || !body["record_batches"].is_number_unsigned())
      return error_reply(res, 400, "a result is {\"document\": {...}, \"record_batches\": N}");
    const auto batches = body["record_batches"].get<std::int64_t>();
    try {
      read_result_document(body["document"]);
    } catch (const Error& e) {
      return error_reply(res, 400, fmt::format("document: {}", e.what()));
    }
    {
      std::lock_guard lock(store_mutex);
      const auto have = store->query(
          "SELECT COUNT(*) FROM record_batches WHERE group_id=?1 AND rank=?2 AND seq<?3",
          {p[0], static_cast<std::int64_t>(rank), batches});
      if (service::as_int(have[0][0]) != batches)
        return error_reply(res, 409,
                           fmt::format("{} of {} record batches arrived; send them again",
                                       service::as_int(have[0][0]), batches));
      store->exec(
          "INSERT OR REPLACE INTO agent_results(group_id, rank, document, record_batches) "
          "VALUES(?1,?2,?3,?4)",
          {p[0], static_cast<std::int64_t>(rank), body["document"].dump(), batches});
      // The whole result supersedes what came while it ran.
      for (const char* table : {"partial_batches", "partial_state"})
        store->exec(fmt::format("DELETE FROM {} WHERE group_id=?1 AND rank=?2", table),
                    {p[0], static_cast<std::int64_t>(rank)});
    }
    bool finalize_now = false;
    {
      std::lock_guard lock(mutex);
      Group& g = groups.at(p[0]);
      AgentState& a = g.agents[rank];
      a.rank = rank;
      a.result_received = true;
      a.state = "finished";
      a.last_seen_ns = unix_now_ns();
      save_agent(g, a);
      event(g, "agent", {{"rank", rank}, {"state", "finished"}});
      finalize_now = g.state == GroupState::running && all_accounted(g);
    }
    reply(res, 200, {{"accepted", true}});
    if (finalize_now) finalize(p[0]);
  };

  for (const auto& route : service::routes()) {
    auto handler = handlers.at(route.handler);
    auto wrapped = [this, route, handler](const httplib::Request& req, httplib::Response& res) {
      if (route.access != Access::open) {
        const std::string given = bearer(req);
        bool allowed = !given.empty() && same_secret(given, token);
        if (!allowed && route.access == Access::agent && !req.matches[1].str().empty()) {
          std::lock_guard lock(mutex);
          const auto it = groups.find(req.matches[1].str());
          allowed =
              it != groups.end() && !given.empty() && same_secret(given, it->second.agent_token);
        }
        if (!allowed) {
          res.set_header("WWW-Authenticate", "Bearer");
          return error_reply(res, 401, "a valid 'Authorization: Bearer <token>' is required");
        }
      }
      Params params;
      for (std::size_t i = 1; i < req.matches.size(); ++i) params.push_back(req.matches[i].str());
      try {
        handler(req, res, params);
      } catch (const Error& e) {
        error_reply(res, e.code() == ErrorCode::invalid_argument ? 400 : 500, e.what());
      } catch (const std::exception& e) {
        error_reply(res, 500, e.what());
      }
    };
    const auto pattern = path_to_regex(route.path);
    if (route.method == "GET")
      server.Get(pattern, wrapped);
    else if (route.method == "POST")
      server.Post(pattern, wrapped);
    else if (route.method == "DELETE")
      server.Delete(pattern, wrapped);
  }
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty())
      error_reply(res, res.status,
                  res.status == 404   ? "no such route (see /openapi.json)"
                  : res.status == 413 ? "the request body is too large"
                                      : "the request was refused");
  });
}

Service::Service(ServiceConfig config, std::unique_ptr<SlurmBackend> slurm)
    : impl_(std::make_unique<Impl>()) {
  config.validate();
  if (!slurm) bad("a Slurm backend is required");
  impl_->config = std::move(config);
  impl_->slurm = std::make_unique<SlurmDispatcher>(std::move(slurm));
}

Service::~Service() { stop(); }

void Service::start() {
  auto& s = *impl_;
  if (s.started.exchange(true)) throw Error(ErrorCode::invalid_state, "the service was started");
  try {
    s.open_store();
  } catch (const std::filesystem::filesystem_error& e) {
    throw Error(ErrorCode::io_error, fmt::format("state directory: {}", e.what()));
  }
  s.token = s.config.api_token;
  const std::string token_file = s.config.state_dir + "/api-token";
  if (s.token.empty()) {
    std::ifstream in(token_file);
    std::getline(in, s.token);
  }
  if (s.token.empty()) {
    s.token = random_token();
    const int fd = ::open(token_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ::write(fd, (s.token + "\n").data(), s.token.size() + 1) !=
                      static_cast<ssize_t>(s.token.size() + 1)) {
      if (fd >= 0) ::close(fd);
      throw Error(ErrorCode::io_error, "cannot write the API token to " + token_file);
    }
    ::close(fd);
  }
  s.server.set_payload_max_length(static_cast<std::size_t>(s.config.max_body_bytes));
  // Agents call briefly and close; 64 workers leave room for many of them and for event
  // streams, which hold a worker each while they last.
  s.server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  s.install_routes();
  s.bound_port =
      s.config.port == 0
          ? s.server.bind_to_any_port(s.config.listen_host)
          : (s.server.bind_to_port(s.config.listen_host, s.config.port) ? s.config.port : -1);
  if (s.bound_port <= 0)
    throw Error(ErrorCode::connection_failed,
                fmt::format("cannot listen on {}:{}", s.config.listen_host, s.config.port));
  s.server_thread = std::thread([&s] { s.server.listen_after_bind(); });
  s.monitor_thread = std::thread([&s] { s.monitor(); });
}

void Service::stop() noexcept {
  auto& s = *impl_;
  if (s.stopping.exchange(true)) return;
  s.changed.notify_all();
  s.server.stop();
  if (s.server_thread.joinable()) s.server_thread.join();
  if (s.monitor_thread.joinable()) s.monitor_thread.join();
  s.observers.flush();
}

ObserverHandle Service::add_observer(std::shared_ptr<GroupObserver> observer) {
  if (!observer) throw Error(ErrorCode::invalid_argument, "add_observer: the observer is null");
  return impl_->observers.add(std::move(observer));
}

ObserverHandle Service::on_event(std::function<void(const GroupEvent&)> observer) {
  struct Function : GroupObserver {
    explicit Function(std::function<void(const GroupEvent&)> f) : f(std::move(f)) {}
    void on_group_event(const GroupEvent& e) override { f(e); }
    std::function<void(const GroupEvent&)> f;
  };
  if (!observer) throw Error(ErrorCode::invalid_argument, "on_event: the function is empty");
  return add_observer(std::make_shared<Function>(std::move(observer)));
}

bool Service::remove_observer(ObserverHandle handle) { return impl_->observers.remove(handle); }
void Service::flush_observers() { impl_->observers.flush(); }
std::uint64_t Service::observer_errors() const { return impl_->observers.errors(); }
std::uint64_t Service::observer_events_dropped() const { return impl_->observers.dropped(); }

void Service::wait() {
  auto& s = *impl_;
  std::unique_lock lock(s.mutex);
  while (!s.stopping.load()) s.changed.wait_for(lock, std::chrono::milliseconds(200));
}

int Service::port() const noexcept { return impl_->bound_port; }
std::string Service::url() const {
  return fmt::format("http://{}:{}", impl_->config.listen_host, impl_->bound_port);
}
const std::string& Service::api_token() const noexcept { return impl_->token; }
const ServiceConfig& Service::config() const noexcept { return impl_->config; }

}  // namespace aifc
