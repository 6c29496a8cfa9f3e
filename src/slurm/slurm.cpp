#include "aifc/slurm.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "aifc/error.hpp"
#include "http/url.hpp"
#include "slurm/rest_reply.hpp"
#include "slurm/slurm_commands.hpp"
#include "util/key_values.hpp"
#include "util/observer_queue.hpp"
#include "util/process.hpp"

namespace aifc {
namespace {

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::invalid_argument, what); }

struct StateName {
  JobState state;
  std::string_view name;
  std::string_view code;
};
constexpr StateName kStates[] = {
    {JobState::pending, "PENDING", "PD"},     {JobState::running, "RUNNING", "R"},
    {JobState::suspended, "SUSPENDED", "S"},  {JobState::completing, "COMPLETING", "CG"},
    {JobState::completed, "COMPLETED", "CD"}, {JobState::failed, "FAILED", "F"},
    {JobState::cancelled, "CANCELLED", "CA"}, {JobState::timeout, "TIMEOUT", "TO"},
    {JobState::node_fail, "NODE_FAIL", "NF"}, {JobState::out_of_memory, "OUT_OF_MEMORY", "OOM"},
    {JobState::preempted, "PREEMPTED", "PR"}, {JobState::boot_fail, "BOOT_FAIL", "BF"},
    {JobState::deadline, "DEADLINE", "DL"},
};

bool has_line_break(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

// A value on an #SBATCH line: sbatch splits those lines itself, so a value is single-quoted
// when it needs to be, and one that cannot be quoted that way is refused by validate().
std::string directive_value(std::string_view v) {
  if (!v.empty() && v.find_first_of(" \t\"'\\$`#;&|<>(){}*?[]!~") == std::string_view::npos)
    return std::string(v);
  return "'" + std::string(v) + "'";
}

void check_directive_value(std::string_view field, std::string_view v) {
  if (has_line_break(v)) bad(fmt::format("job {} must not contain a line break", field));
  if (v.find('\'') != std::string_view::npos)
    bad(fmt::format("job {} must not contain a single quote", field));
}

bool is_env_name(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_'))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

std::string_view to_string(JobState s) noexcept {
  for (const auto& n : kStates)
    if (n.state == s) return n.name;
  return "UNKNOWN";
}

JobState job_state_from_string(std::string_view s) noexcept {
  // "CANCELLED by 1001", "RUNNING", "CA", "cancelled"
  const auto space = s.find(' ');
  if (space != std::string_view::npos) s = s.substr(0, space);
  std::string upper(s);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper.size() && upper.back() == '+') upper.pop_back();  // "CANCELLED+" in sacct
  for (const auto& n : kStates)
    if (upper == n.name || upper == n.code) return n.state;
  if (upper == "CONFIGURING" || upper == "CF" || upper == "REQUEUED" || upper == "RESIZING")
    return JobState::pending;
  return JobState::unknown;
}

bool is_terminal(JobState s) noexcept {
  switch (s) {
    case JobState::completed:
    case JobState::failed:
    case JobState::cancelled:
    case JobState::timeout:
    case JobState::node_fail:
    case JobState::out_of_memory:
    case JobState::preempted:
    case JobState::boot_fail:
    case JobState::deadline:
      return true;
    default:
      return false;
  }
}

std::string shell_quote(std::string_view word) {
  if (!word.empty() &&
      word.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:=@%+,") ==
          std::string_view::npos)
    return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  out += "'";
  return out;
}

void to_json(nlohmann::json& j, const ContainerSpec& c) {
  j = nlohmann::json{{"image", c.image},
                     {"binds", c.binds},
                     {"gpu", c.gpu ? nlohmann::json(*c.gpu) : nlohmann::json()},
                     {"extra_args", c.extra_args},
                     {"apptainer", c.apptainer}};
}

void from_json(const nlohmann::json& j, ContainerSpec& c) {
  c = ContainerSpec{};
  c.image = j.value("image", c.image);
  if (j.contains("binds")) j.at("binds").get_to(c.binds);
  if (j.contains("gpu") && !j.at("gpu").is_null()) c.gpu = j.at("gpu").get<bool>();
  if (j.contains("extra_args")) j.at("extra_args").get_to(c.extra_args);
  c.apptainer = j.value("apptainer", c.apptainer);
}

void to_json(nlohmann::json& j, const JobSpec& s) {
  auto environment = nlohmann::json::object();
  for (const auto& [key, value] : s.environment) environment[key] = value;
  j = nlohmann::json{{"name", s.name},
                     {"partition", s.partition},
                     {"account", s.account},
                     {"qos", s.qos},
                     {"nodes", s.nodes},
                     {"ntasks", s.ntasks},
                     {"ntasks_per_node", s.ntasks_per_node},
                     {"cpus_per_task", s.cpus_per_task},
                     {"gpus_per_node", s.gpus_per_node},
                     {"memory", s.memory},
                     {"time_limit_min", s.time_limit.count()},
                     {"array", s.array},
                     {"working_directory", s.working_directory},
                     {"output", s.output},
                     {"error", s.error},
                     {"environment", std::move(environment)},
                     {"extra_directives", s.extra_directives},
                     {"command", s.command},
                     {"use_srun", s.use_srun},
                     {"container", s.container ? nlohmann::json(*s.container) : nlohmann::json()}};
}

void from_json(const nlohmann::json& j, JobSpec& s) {
  s = JobSpec{};
  s.name = j.value("name", s.name);
  s.partition = j.value("partition", s.partition);
  s.account = j.value("account", s.account);
  s.qos = j.value("qos", s.qos);
  s.nodes = j.value("nodes", s.nodes);
  s.ntasks = j.value("ntasks", s.ntasks);
  s.ntasks_per_node = j.value("ntasks_per_node", s.ntasks_per_node);
  s.cpus_per_task = j.value("cpus_per_task", s.cpus_per_task);
  s.gpus_per_node = j.value("gpus_per_node", s.gpus_per_node);
  s.memory = j.value("memory", s.memory);
  s.time_limit = std::chrono::minutes(j.value("time_limit_min", s.time_limit.count()));
  s.array = j.value("array", s.array);
  s.working_directory = j.value("working_directory", s.working_directory);
  s.output = j.value("output", s.output);
  s.error = j.value("error", s.error);
  if (j.contains("environment"))
    for (const auto& [key, value] : j.at("environment").items())
      s.environment.emplace_back(key, value.get<std::string>());
  if (j.contains("extra_directives")) j.at("extra_directives").get_to(s.extra_directives);
  if (j.contains("command")) j.at("command").get_to(s.command);
  s.use_srun = j.value("use_srun", s.use_srun);
  if (j.contains("container") && !j.at("container").is_null())
    s.container = j.at("container").get<ContainerSpec>();
}

void to_json(nlohmann::json& j, const JobInfo& i) {
  j = nlohmann::json{{"job_id", i.job_id},
                     {"state", std::string(to_string(i.state))},
                     {"state_text", i.state_text},
                     {"reason", i.reason},
                     {"exit_code", i.exit_code},
                     {"nodes", i.nodes},
                     {"terminal", is_terminal(i.state)}};
}

void JobSpec::validate() const {
  if (name.empty()) bad("job name must not be empty");
  for (const auto& [field, value] : {std::pair<const char*, const std::string*>{"name", &name},
                                     {"partition", &partition},
                                     {"account", &account},
                                     {"qos", &qos},
                                     {"memory", &memory},
                                     {"array", &array},
                                     {"working_directory", &working_directory},
                                     {"output", &output},
                                     {"error", &error}})
    check_directive_value(field, *value);
  if (nodes < 0 || (nodes == 0 && ntasks < 1))
    bad(fmt::format("nodes must be at least 1, or 0 with a task count (got {})", nodes));
  if (ntasks < 0 || ntasks_per_node < 0 || cpus_per_task < 0 || gpus_per_node < 0)
    bad("ntasks, ntasks_per_node, cpus_per_task and gpus_per_node must not be negative");
  if (time_limit.count() < 0) bad("time_limit must not be negative");
  if (command.empty() || command.front().empty()) bad("a job needs a command");
  for (const auto& [k, v] : environment) {
    if (!is_env_name(k)) bad(fmt::format("environment name '{}' is not a valid variable name", k));
    if (v.find('\0') != std::string::npos)
      bad(fmt::format("environment value of {} contains a NUL byte", k));
  }
  for (const auto& d : extra_directives) {
    if (d.rfind("--", 0) != 0 && d.rfind("-", 0) != 0)
      bad(fmt::format("extra directive '{}' must start with '-'", d));
    if (has_line_break(d)) bad("extra directives must not contain line breaks");
  }
  if (container) {
    if (container->image.empty()) bad("container mode needs an image");
    for (const auto& b : container->binds)
      if (b.empty() || has_line_break(b)) bad(fmt::format("container bind '{}' is not valid", b));
  }
}

std::string render_batch_script(const JobSpec& s) {
  s.validate();
  std::string out = "#!/bin/bash\n# Generated by aifc: one task per client.\n";
  auto directive = [&](std::string_view option, const std::string& value) {
    if (!value.empty()) out += fmt::format("#SBATCH --{}={}\n", option, directive_value(value));
  };
  directive("job-name", s.name);
  directive("partition", s.partition);
  directive("account", s.account);
  directive("qos", s.qos);
  if (s.nodes > 0) out += fmt::format("#SBATCH --nodes={}\n", s.nodes);
  if (s.ntasks > 0) out += fmt::format("#SBATCH --ntasks={}\n", s.ntasks);
  if (s.ntasks_per_node > 0)
    out += fmt::format("#SBATCH --ntasks-per-node={}\n", s.ntasks_per_node);
  if (s.cpus_per_task > 0) out += fmt::format("#SBATCH --cpus-per-task={}\n", s.cpus_per_task);
  if (s.gpus_per_node > 0) out += fmt::format("#SBATCH --gpus-per-node={}\n", s.gpus_per_node);
  directive("mem", s.memory);
  if (s.time_limit.count() > 0) out += fmt::format("#SBATCH --time={}\n", s.time_limit.count());
  directive("array", s.array);
  directive("chdir", s.working_directory);
  directive("output", s.output);
  directive("error", s.error);
  for (const auto& d : s.extra_directives) out += "#SBATCH " + d + "\n";
  out += "\nset -euo pipefail\n\n";
  // The launch line, word by word: srun, then Apptainer, then the command.
  std::string line;
  const auto word = [&line](std::string_view w) {
    if (!line.empty()) line += ' ';
    line += w;
  };
  if (s.use_srun) word("srun");
  if (s.container) {
    const auto& c = *s.container;
    word(shell_quote(c.apptainer));
    word("exec");
    if (c.gpu.value_or(s.gpus_per_node > 0)) word("--nv");
    for (const auto& b : c.binds) {
      word("--bind");
      word(shell_quote(b));
    }
    for (const auto& a : c.extra_args) word(shell_quote(a));
    word(shell_quote(c.image));
  }
  for (const auto& a : s.command) word(shell_quote(a));
  out += line + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dispatcher

struct SlurmDispatcher::Observers {
  detail::ObserverQueue<JobObserver> queue{4096};
};

SlurmDispatcher::SlurmDispatcher(std::unique_ptr<SlurmBackend> backend)
    : backend_(std::move(backend)), observers_(std::make_unique<Observers>()) {
  if (!backend_) bad("SlurmDispatcher needs a backend");
}
SlurmDispatcher::~SlurmDispatcher() { observers_->queue.finish(); }

ObserverHandle SlurmDispatcher::add_observer(std::shared_ptr<JobObserver> observer) {
  if (!observer) bad("add_observer: the observer is null");
  return observers_->queue.add(std::move(observer));
}

ObserverHandle SlurmDispatcher::on_state_change(std::function<void(const JobEvent&)> observer) {
  struct Function : JobObserver {
    explicit Function(std::function<void(const JobEvent&)> f) : f(std::move(f)) {}
    void on_state_change(const JobEvent& e) override { f(e); }
    std::function<void(const JobEvent&)> f;
  };
  if (!observer) bad("on_state_change: the function is empty");
  return add_observer(std::make_shared<Function>(std::move(observer)));
}

bool SlurmDispatcher::remove_observer(ObserverHandle handle) {
  return observers_->queue.remove(handle);
}
void SlurmDispatcher::flush_observers() { observers_->queue.flush(); }
std::uint64_t SlurmDispatcher::observer_errors() const { return observers_->queue.errors(); }
std::string SlurmDispatcher::first_observer_error() const {
  return observers_->queue.first_error();
}
std::uint64_t SlurmDispatcher::observer_events_dropped() const {
  return observers_->queue.dropped();
}

void SlurmDispatcher::note(const JobInfo& info) {
  JobState previous = JobState::unknown;
  {
    std::lock_guard lock(states_mutex_);
    auto it = std::find_if(last_states_.begin(), last_states_.end(),
                           [&](const auto& p) { return p.first == info.job_id; });
    if (it != last_states_.end()) previous = it->second;
    if (it != last_states_.end() && previous == info.state) return;
    if (it == last_states_.end())
      last_states_.emplace_back(info.job_id, info.state);
    else
      it->second = info.state;
  }
  if (!observers_->queue.active()) return;
  observers_->queue.post(
      [event = JobEvent{info.job_id, previous, info}](JobObserver& o) { o.on_state_change(event); },
      true);
}

std::string SlurmDispatcher::submit(const JobSpec& spec) {
  spec.validate();
  const auto id = backend_->submit(spec);
  JobInfo info;
  info.job_id = id;
  info.state = JobState::pending;
  info.state_text = "SUBMITTED";
  note(info);
  return id;
}

JobInfo SlurmDispatcher::state(const std::string& job_id) {
  auto info = backend_->query(job_id);
  note(info);
  return info;
}

JobInfo SlurmDispatcher::wait(const std::string& job_id, std::chrono::milliseconds timeout,
                              std::chrono::milliseconds poll_interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto info = state(job_id);
    if (is_terminal(info.state) || std::chrono::steady_clock::now() >= deadline) {
      flush_observers();  // as a run does: its observers have seen everything when it returns
      return info;
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        poll_interval, deadline - std::chrono::steady_clock::now()));
  }
}

void SlurmDispatcher::cancel(const std::string& job_id) { backend_->cancel(job_id); }

// ---------------------------------------------------------------------------------------------
// Array jobs report one entry per task: the job is over when every task is, and then it ends
// in its first non-COMPLETED state.
namespace {
JobInfo combine(std::string job_id, const std::vector<JobInfo>& parts) {
  JobInfo out;
  out.job_id = std::move(job_id);
  if (parts.empty()) return out;
  if (parts.size() == 1) {
    out = parts.front();
    return out;
  }
  bool all_terminal = true;
  for (const auto& p : parts) all_terminal &= is_terminal(p.state);
  const JobInfo* pick = &parts.front();
  if (!all_terminal) {
    for (const auto& p : parts)
      if (p.state == JobState::running) pick = &p;
  } else {
    for (const auto& p : parts)
      if (p.state != JobState::completed) {
        pick = &p;
        break;
      }
  }
  const std::string id = out.job_id;
  out = *pick;
  out.job_id = id;
  if (!all_terminal && is_terminal(out.state)) out.state = JobState::running;
  return out;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Local CLI backend

namespace {

// The tools on this machine, with a clean environment: sbatch exports the submitter's whole
// environment, so the job sees exactly PATH, HOME, USER, ..., SLURM_CONF and its own variables.
class LocalCommands : public detail::SlurmCommands {
 public:
  explicit LocalCommands(CliConfig c) : config_(std::move(c)) {}
  std::string name() const override { return "cli"; }
  std::string place() const override { return ""; }

  detail::ProcessResult sbatch(const JobSpec& spec, const std::string& script) override {
    auto env = base_environment();
    for (const auto& [k, v] : spec.environment) env.push_back(k + "=" + v);
    return detail::run_process({config_.sbatch, "--parsable", "--export=ALL"}, env, script);
  }

  detail::ProcessResult run(const std::vector<std::string>& argv) override {
    auto resolved = argv;
    if (resolved[0] == "scontrol") resolved[0] = config_.scontrol;
    if (resolved[0] == "scancel") resolved[0] = config_.scancel;
    return detail::run_process(resolved, base_environment());
  }

 private:
  std::vector<std::string> base_environment() const {
    std::vector<std::string> env;
    for (const char* name : {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ"})
      if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
    if (!config_.slurm_conf.empty())
      env.push_back("SLURM_CONF=" + config_.slurm_conf);
    else if (const char* v = std::getenv("SLURM_CONF"))
      env.push_back(std::string("SLURM_CONF=") + v);
    return env;
  }
  CliConfig config_;
};

class CommandBackend : public SlurmBackend {
 public:
  explicit CommandBackend(std::unique_ptr<detail::SlurmCommands> commands)
      : commands_(std::move(commands)) {}
  std::string name() const override { return commands_->name(); }

  std::string submit(const JobSpec& spec) override {
    const auto r = commands_->sbatch(spec, render_batch_script(spec));
    if (r.exit_code != 0)
      throw Error(ErrorCode::server_error,
                  fmt::format("sbatch{} failed: {}", commands_->place(), failure(r)));
    // --parsable prints "ID" or "ID;CLUSTER".
    std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
      throw Error(ErrorCode::server_error,
                  fmt::format("sbatch{} printed no job id: '{}'", commands_->place(), r.out));
    return id;
  }

  JobInfo query(const std::string& job_id) override {
    detail::check_job_id(job_id);
    const auto r = commands_->run({"scontrol", "show", "job", "-o", job_id});
    if (r.exit_code != 0)
      throw Error(ErrorCode::server_error, fmt::format("scontrol show job {}{} failed: {}", job_id,
                                                       commands_->place(), failure(r)));
    return detail::parse_scontrol_jobs(job_id, r.out);
  }

  void cancel(const std::string& job_id) override {
    detail::check_job_id(job_id);
    const auto r = commands_->run({"scancel", job_id});
    if (r.exit_code != 0)
      throw Error(ErrorCode::server_error,
                  fmt::format("scancel {}{} failed: {}", job_id, commands_->place(), failure(r)));
  }

 private:
  static std::string failure(const detail::ProcessResult& r) {
    if (r.timed_out) return "timed out (is slurmctld reachable?)";
    return detail::trim_output(r.err,
                               r.out.empty() ? fmt::format("exit code {}", r.exit_code) : r.out);
  }
  std::unique_ptr<detail::SlurmCommands> commands_;
};

}  // namespace

namespace detail {

void check_job_id(const std::string& id) {
  if (id.empty() || id.find_first_not_of("0123456789_") != std::string::npos)
    bad(fmt::format("'{}' is not a Slurm job id", id));
}

std::string trim_output(const std::string& err, const std::string& out) {
  std::string e = err.empty() ? out : err;
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ' || e.back() == '\r')) e.pop_back();
  return e;
}

JobInfo parse_scontrol_jobs(const std::string& job_id, const std::string& text) {
  auto field = [](const std::string& line, const std::string& key) -> std::string {
    std::size_t start;
    if (line.rfind(key + "=", 0) == 0)
      start = 0;
    else if (const auto at = line.find(" " + key + "="); at != std::string::npos)
      start = at + 1;
    else
      return {};
    const auto value = start + key.size() + 1;
    return line.substr(value, line.find(' ', value) - value);
  };
  std::vector<JobInfo> parts;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("JobId=") == std::string::npos) continue;
    JobInfo info;
    info.job_id = job_id;
    info.state_text = field(line, "JobState");
    info.state = job_state_from_string(info.state_text);
    info.reason = field(line, "Reason");
    info.nodes = field(line, "NodeList");
    const auto exit = field(line, "ExitCode");  // "status:signal"
    if (!exit.empty()) info.exit_code = std::atoi(exit.c_str());
    parts.push_back(std::move(info));
  }
  if (parts.empty())
    throw Error(ErrorCode::server_error, fmt::format("Slurm knows no job {}", job_id));
  return combine(job_id, parts);
}

}  // namespace detail

std::unique_ptr<SlurmBackend> detail::make_command_backend(
    std::unique_ptr<detail::SlurmCommands> commands) {
  return std::make_unique<CommandBackend>(std::move(commands));
}

std::unique_ptr<SlurmBackend> make_cli_backend(CliConfig config) {
  return detail::make_command_backend(std::make_unique<LocalCommands>(std::move(config)));
}

// ---------------------------------------------------------------------------------------------
// slurmrestd backend

std::vector<std::string> supported_rest_versions() {
  return {"v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41"};
}

void RestConfig::validate() const {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
    bad(fmt::format("slurmrestd url '{}' must start with http:// or https://", url));
  const auto versions = supported_rest_versions();
  if (std::find(versions.begin(), versions.end(), api_ver) == versions.end())
    bad(fmt::format("api_ver '{}' is not supported; use one of v0.0.38, v0.0.39, v0.0.40, v0.0.41",
                    api_ver));
  if (user_name.empty()) bad("slurmrestd needs user_name (X-SLURM-USER-NAME)");
  if (jwt.empty())
    bad("slurmrestd needs a token: jwt in the config, $SLURM_JWT, or `scontrol token`");
}

RestConfig RestConfig::from_file(const std::string& path) {
  RestConfig c;
  for (const auto& kv : detail::read_key_values(path)) {
    if (kv.key == "url")
      c.url = kv.value;
    else if (kv.key == "user_name")
      c.user_name = kv.value;
    else if (kv.key == "api_ver")
      c.api_ver = kv.value.rfind("v", 0) == 0 ? kv.value : "v" + kv.value;
    else if (kv.key == "account")
      c.account = kv.value;
    else if (kv.key == "jwt")
      c.jwt = kv.value;
    else
      throw Error(ErrorCode::parse_error,
                  fmt::format("{}:{}: unknown key '{}' (url, user_name, api_ver, account, jwt)",
                              path, kv.line, kv.key));
  }
  return c;
}

void to_json(nlohmann::json& j, const RestConfig& c) {
  j = nlohmann::json{
      {"url", c.url}, {"user_name", c.user_name}, {"api_ver", c.api_ver}, {"account", c.account}};
}

void from_json(const nlohmann::json& j, RestConfig& c) {
  c = RestConfig{};
  c.url = j.value("url", c.url);
  c.user_name = j.value("user_name", c.user_name);
  c.api_ver = j.value("api_ver", c.api_ver);
  c.account = j.value("account", c.account);
  c.jwt = j.value("jwt", c.jwt);
}

void to_json(nlohmann::json& j, const CliConfig& c) {
  j = nlohmann::json{{"slurm_conf", c.slurm_conf},
                     {"sbatch", c.sbatch},
                     {"squeue", c.squeue},
                     {"scontrol", c.scontrol},
                     {"scancel", c.scancel}};
}

void from_json(const nlohmann::json& j, CliConfig& c) {
  c = CliConfig{};
  c.slurm_conf = j.value("slurm_conf", c.slurm_conf);
  c.sbatch = j.value("sbatch", c.sbatch);
  c.squeue = j.value("squeue", c.squeue);
  c.scontrol = j.value("scontrol", c.scontrol);
  c.scancel = j.value("scancel", c.scancel);
}

void RestConfig::complete_from_environment() {
  if (user_name.empty())
    if (const char* u = std::getenv("USER")) user_name = u;
  if (!jwt.empty()) return;
  if (const char* t = std::getenv("SLURM_JWT")) {
    jwt = t;
    return;
  }
  std::vector<std::string> env;
  for (const char* name : {"PATH", "HOME", "USER", "SLURM_CONF"})
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  const auto r =
      detail::run_process({"scontrol", "token"}, env, {}, std::chrono::milliseconds(15'000));
  const auto at = r.out.find("SLURM_JWT=");
  if (r.exit_code == 0 && at != std::string::npos) {
    jwt = r.out.substr(at + 10);
    while (!jwt.empty() && (jwt.back() == '\n' || jwt.back() == '\r')) jwt.pop_back();
  }
}

namespace {

// v0.0.39 and later write many numbers as {"set", "infinite", "number"}.
nlohmann::json no_val(std::int64_t n, bool versioned) {
  if (!versioned) return n;
  return {{"set", true}, {"infinite", false}, {"number", n}};
}

// A whole number that fits, else the fallback (a float, 1e30 or an unsigned beyond int64).
std::int64_t whole_number(const nlohmann::json& v, std::int64_t fallback) {
  if (v.is_number_unsigned())
    return v.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX)
               ? static_cast<std::int64_t>(v.get<std::uint64_t>())
               : fallback;
  if (v.is_number_integer()) return v.get<std::int64_t>();
  return fallback;
}

std::int64_t read_number(const nlohmann::json& v, std::int64_t fallback, int depth = 0) {
  if (v.is_number()) return whole_number(v, fallback);
  if (v.is_object() && depth < 2) {
    if (v.contains("return_code"))
      return read_number(v["return_code"], fallback, depth + 1);  // v0.0.40 exit_code
    const auto set = v.find("set");
    if ((set == v.end() || *set == true) && v.contains("number"))
      return whole_number(v["number"], fallback);
  }
  return fallback;
}

// How deep arrays and objects nest in JSON text, counted without parsing (the parser recurses:
// a reply nested a million deep would overflow the stack).
bool nests_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

std::string read_state(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array() && !v.empty() && v[0].is_string())
    return v[0].get<std::string>();  // v0.0.40: ["RUNNING"]
  return {};
}

JobInfo read_jobs(const std::string& job_id, const std::string& api_ver,
                  const nlohmann::json& reply) {
  std::vector<JobInfo> parts;
  const auto jobs = reply.value("jobs", nlohmann::json::array());
  if (!jobs.is_array())
    throw Error(ErrorCode::server_error,
                fmt::format("slurmrestd's reply about job {} has no list of jobs", job_id));
  for (const auto& j : jobs) {
    JobInfo info;
    info.job_id = job_id;
    info.state_text = read_state(j.value("job_state", nlohmann::json()));
    info.state = job_state_from_string(info.state_text);
    info.reason = j.value("state_reason", std::string());
    info.nodes = j.value("nodes", std::string());
    if (j.contains("exit_code")) {
      info.exit_code = static_cast<int>(read_number(j["exit_code"], -1));
      // v0.0.38 reports the raw wait status: the exit code sits in the high byte, a signal low.
      if (api_ver == "v0.0.38" && info.exit_code > 0)
        info.exit_code =
            (info.exit_code & 0x7f) ? 128 + (info.exit_code & 0x7f) : (info.exit_code >> 8) & 0xff;
    }
    parts.push_back(std::move(info));
  }
  if (parts.empty())
    throw Error(ErrorCode::server_error, fmt::format("slurmrestd knows no job {}", job_id));
  return combine(job_id, parts);
}
}  // namespace

namespace detail {

nlohmann::json read_rest_reply(const RestCall& call) {
  if (nests_deeper_than(call.body, 64))
    throw Error(
        ErrorCode::server_error,
        fmt::format("slurmrestd at {} sent a reply nested deeper than 64 levels", call.origin));
  nlohmann::json reply;
  try {
    reply = nlohmann::json::parse(call.body);
  } catch (const nlohmann::json::exception&) {
    reply = nlohmann::json::object();
  }
  if (!reply.is_object()) reply = nlohmann::json::object();
  std::string errors;
  const auto listed = reply.value("errors", nlohmann::json::array());
  for (const auto& e : listed.is_array() ? listed : nlohmann::json::array()) {
    if (!e.is_object()) continue;
    auto text_of = [&](const char* key) {
      const auto it = e.find(key);
      return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    std::string text = text_of("error");
    const std::string description = text_of("description");
    if (!description.empty()) text += (text.empty() ? "" : ": ") + description;
    if (!text.empty()) errors += (errors.empty() ? "" : "; ") + text;
  }
  if (call.status == 200 && errors.empty()) return reply;
  if (errors.empty()) errors = call.body.substr(0, 200);
  std::string hint;
  // A token slurmctld refuses comes back as 401 on some versions, and on 22.05 as a 500 whose
  // error is "Zero Bytes were transmitted or received" or "slurmctld config is unable to load".
  if (call.status == 401 || call.status == 403 ||
      errors.find("unable to load") != std::string::npos ||
      errors.find("Zero Bytes") != std::string::npos ||
      errors.find("uthentication") != std::string::npos)
    hint = " (slurmctld refused the request: check the token (expired or wrong?) and user_name)";
  else if (errors.find("partition") != std::string::npos)
    hint = " (check the partition name)";
  else if (errors.find("account") != std::string::npos)
    hint = " (check the account)";
  else if (call.status == 404)
    hint = fmt::format(" (does this slurmrestd serve api_ver {}?)", call.api_ver);
  throw Error(ErrorCode::server_error,
              fmt::format("slurmrestd {} {} failed with HTTP {}: {}{}", call.method, call.path,
                          call.status, errors, hint));
}

JobInfo read_rest_jobs(const std::string& job_id, const std::string& api_ver,
                       const nlohmann::json& reply) {
  try {
    return read_jobs(job_id, api_ver, reply);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::server_error,
                fmt::format("slurmrestd's reply about job {} has an unexpected shape ({})", job_id,
                            e.what()));
  }
}

std::string read_rest_job_id(const nlohmann::json& reply) {
  if (!reply.is_object() || !reply.contains("job_id"))
    throw Error(ErrorCode::server_error, "slurmrestd accepted the job but sent no job_id");
  const std::int64_t id = read_number(reply["job_id"], -1);
  if (id <= 0)
    throw Error(ErrorCode::server_error,
                fmt::format("slurmrestd accepted the job but its job_id {} is not a job id",
                            reply["job_id"].dump().substr(0, 60)));
  return std::to_string(id);
}

}  // namespace detail

namespace {

class RestBackend : public SlurmBackend {
 public:
  explicit RestBackend(RestConfig c) : config_(std::move(c)) {
    config_.validate();
    const auto url = detail::parse_url(config_.url);
    origin_ = url.origin;
    prefix_ = url.prefix;
  }
  std::string name() const override { return "rest"; }

  std::string submit(const JobSpec& spec) override {
    if (spec.working_directory.empty())
      bad("the REST backend needs working_directory (slurmrestd starts jobs in its own directory "
          "otherwise)");
    const bool versioned = config_.api_ver != "v0.0.38";
    nlohmann::json job{{"name", spec.name}, {"current_working_directory", spec.working_directory}};
    if (!spec.partition.empty()) job["partition"] = spec.partition;
    const std::string account = spec.account.empty() ? config_.account : spec.account;
    if (!account.empty()) job["account"] = account;
    if (!spec.qos.empty()) job["qos"] = spec.qos;
    if (spec.nodes > 0 && versioned)
      job["nodes"] = std::to_string(spec.nodes);
    else if (spec.nodes > 0)
      job["nodes"] = spec.nodes;
    if (spec.ntasks > 0) job["tasks"] = spec.ntasks;
    if (spec.ntasks_per_node > 0) job["tasks_per_node"] = spec.ntasks_per_node;
    if (spec.cpus_per_task > 0) job["cpus_per_task"] = spec.cpus_per_task;
    if (spec.time_limit.count() > 0) job["time_limit"] = no_val(spec.time_limit.count(), versioned);
    if (!spec.array.empty()) job["array"] = spec.array;
    if (!spec.output.empty()) job["standard_output"] = spec.output;
    if (!spec.error.empty()) job["standard_error"] = spec.error;
    // slurmrestd insists on an environment: v0.0.38 a dictionary, later versions "K=V" strings.
    std::vector<std::pair<std::string, std::string>> env = spec.environment;
    if (std::none_of(env.begin(), env.end(), [](const auto& p) { return p.first == "PATH"; }))
      env.emplace_back("PATH", "/usr/local/bin:/usr/bin:/bin");
    if (versioned) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& [k, v] : env) list.push_back(k + "=" + v);
      job["environment"] = list;
    } else {
      nlohmann::json dict = nlohmann::json::object();
      for (const auto& [k, v] : env) dict[k] = v;
      job["environment"] = dict;
    }
    // Memory, GPUs and extra options travel as #SBATCH lines of the script, which slurmrestd
    // reads too; the fields above are the ones it needs outside the script.
    const std::string script = render_batch_script(spec);
    nlohmann::json body{{"job", job}};
    if (config_.api_ver == "v0.0.41")
      body["job"]["script"] = script;
    else
      body["script"] = script;
    return detail::read_rest_job_id(call("POST", "/job/submit", body.dump()));
  }

  JobInfo query(const std::string& job_id) override {
    check_id(job_id);
    return detail::read_rest_jobs(job_id, config_.api_ver, call("GET", "/job/" + job_id, {}));
  }

  void cancel(const std::string& job_id) override {
    check_id(job_id);
    call("DELETE", "/job/" + job_id, {});
  }

 private:
  static void check_id(const std::string& id) {
    if (id.empty() || id.find_first_not_of("0123456789_") != std::string::npos)
      bad(fmt::format("'{}' is not a Slurm job id", id));
  }

  nlohmann::json call(const std::string& method, const std::string& path, const std::string& body) {
    httplib::Client cli(origin_);
    cli.set_connection_timeout(std::chrono::seconds(10));
    cli.set_read_timeout(std::chrono::seconds(60));
    const httplib::Headers headers{{"X-SLURM-USER-NAME", config_.user_name},
                                   {"X-SLURM-USER-TOKEN", config_.jwt}};
    const std::string full = prefix_ + "/slurm/" + config_.api_ver + path;
    httplib::Result res = method == "POST"  ? cli.Post(full, headers, body, "application/json")
                          : method == "GET" ? cli.Get(full, headers)
                                            : cli.Delete(full, headers);
    if (!res)
      throw Error(
          ErrorCode::connection_failed,
          fmt::format("cannot reach slurmrestd at {} ({}); check the url and that slurmrestd runs",
                      origin_, httplib::to_string(res.error())));
    return detail::read_rest_reply(
        {origin_, method, path, config_.api_ver, res->status, res->body});
  }

  RestConfig config_;
  std::string origin_;
  std::string prefix_;
};

}  // namespace

std::unique_ptr<SlurmBackend> make_rest_backend(RestConfig config) {
  return std::make_unique<RestBackend>(std::move(config));
}

}  // namespace aifc
