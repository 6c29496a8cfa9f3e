#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aifc/export.hpp"
#include "aifc/observer.hpp"

namespace aifc {

/// Slurm's job states, as squeue and slurmrestd name them.
enum class JobState {
  pending,
  running,
  suspended,
  completing,
  completed,
  failed,
  cancelled,
  timeout,
  node_fail,
  out_of_memory,
  preempted,
  boot_fail,
  deadline,
  unknown,
};

AIFC_API std::string_view to_string(JobState s) noexcept;  ///< "PENDING", "RUNNING", ...
/// Parses "RUNNING", "CANCELLED by 0", "OUT_OF_MEMORY", "CA", ... (unknown text:
/// JobState::unknown).
AIFC_API JobState job_state_from_string(std::string_view s) noexcept;
/// True for states a job never leaves.
AIFC_API bool is_terminal(JobState s) noexcept;

/// Runs the job's command inside Apptainer: `apptainer exec [--nv] --bind ... IMAGE COMMAND`.
struct AIFC_API ContainerSpec {
  std::string image;               ///< a .sif file or a docker:// / oras:// reference
  std::vector<std::string> binds;  ///< "src[:dst[:opts]]"
  std::optional<bool> gpu;         ///< --nv; default: when the job asks for GPUs
  std::vector<std::string> extra_args;
  std::string apptainer = "apptainer";
};

/// A client job, in Slurm's own vocabulary. Every value ends up quoted in the batch script.
struct AIFC_API JobSpec {
  std::string name = "aifc";
  std::string partition;
  std::string account;
  std::string qos;
  int nodes = 1;                       ///< 0: Slurm picks, for `ntasks` tasks
  int ntasks = 0;                      ///< 0: one task per node
  int ntasks_per_node = 0;             ///< 0: not set
  int cpus_per_task = 0;               ///< 0: not set
  int gpus_per_node = 0;               ///< 0: none
  std::string memory;                  ///< per node, e.g. "4G"; empty: not set
  std::chrono::minutes time_limit{0};  ///< 0: the partition's default
  std::string array;                   ///< e.g. "0-3" or "1,5%2"; empty: no array
  std::string working_directory;
  std::string output;  ///< standard output path (Slurm patterns like %j allowed)
  std::string error;
  std::vector<std::pair<std::string, std::string>>
      environment;                            ///< given to the job, not written into the script
  std::vector<std::string> extra_directives;  ///< more sbatch options, e.g. "--exclusive"
  std::vector<std::string> command;           ///< argv of each task
  bool use_srun = true;  ///< launch the command with srun (one task per client)
  std::optional<ContainerSpec> container;

  /// Throws Error(invalid_argument) naming the field.
  void validate() const;
};

/// JSON as services and notebooks send job specs: the field names above, `time_limit_min` in
/// minutes, `environment` as an object, `container` null or an object. Missing fields keep their
/// defaults; a value of the wrong type throws nlohmann::json::type_error.
AIFC_API void to_json(nlohmann::json& j, const ContainerSpec& c);
AIFC_API void from_json(const nlohmann::json& j, ContainerSpec& c);
AIFC_API void to_json(nlohmann::json& j, const JobSpec& s);
AIFC_API void from_json(const nlohmann::json& j, JobSpec& s);

/// Quotes a word for bash: the result always reads back as exactly `word`.
AIFC_API std::string shell_quote(std::string_view word);

/// The batch script every backend submits: #SBATCH lines for the resources, then the command
/// (through srun and Apptainer when asked). Readable, and with every value quoted.
AIFC_API std::string render_batch_script(const JobSpec& spec);

/// What Slurm reports about one job.
struct AIFC_API JobInfo {
  std::string job_id;
  JobState state = JobState::unknown;
  std::string state_text;  ///< as Slurm wrote it
  std::string reason;      ///< why pending, or why it ended
  int exit_code = -1;      ///< the batch script's exit status when known
  std::string nodes;       ///< e.g. "n[1-2]"
};

/// {"job_id", "state" ("RUNNING", ...), "state_text", "reason", "exit_code", "nodes", "terminal"}.
AIFC_API void to_json(nlohmann::json& j, const JobInfo& i);

/// One way of talking to Slurm. Implementations: make_rest_backend, make_cli_backend.
class AIFC_API SlurmBackend {
 public:
  virtual ~SlurmBackend() = default;
  /// Submits and returns the job id. Throws Error(server_error / connection_failed / ...).
  virtual std::string submit(const JobSpec& spec) = 0;
  virtual JobInfo query(const std::string& job_id) = 0;
  virtual void cancel(const std::string& job_id) = 0;
  virtual std::string name() const = 0;
};

/// slurmrestd settings, in the key=value form sites hand out (url, user_name, api_ver, account,
/// jwt).
struct AIFC_API RestConfig {
  std::string url;  ///< e.g. http://slurm-rest:6820
  std::string user_name;
  std::string api_ver = "v0.0.38";
  std::string account;  ///< default account for jobs that set none
  std::string jwt;      ///< never logged or shown

  void validate() const;
  /// Reads key=value lines (# comments, blank lines allowed). Throws Error(io_error / parse_error).
  static RestConfig from_file(const std::string& path);
  /// Fills what is missing: jwt from $SLURM_JWT, else from `scontrol token` when available;
  /// user_name from $USER.
  void complete_from_environment();
};

AIFC_API void to_json(nlohmann::json& j, const RestConfig& c);  ///< the token is never written
AIFC_API void from_json(const nlohmann::json& j, RestConfig& c);

/// The data versions a REST backend speaks.
AIFC_API std::vector<std::string> supported_rest_versions();

AIFC_API std::unique_ptr<SlurmBackend> make_rest_backend(RestConfig config);

/// Local command-line tools: sbatch --parsable, squeue, scontrol show job, scancel.
struct AIFC_API CliConfig {
  std::string slurm_conf;  ///< SLURM_CONF for the tools; empty: inherited
  std::string sbatch = "sbatch", squeue = "squeue", scontrol = "scontrol", scancel = "scancel";
};

AIFC_API void to_json(nlohmann::json& j, const CliConfig& c);
AIFC_API void from_json(const nlohmann::json& j, CliConfig& c);

AIFC_API std::unique_ptr<SlurmBackend> make_cli_backend(CliConfig config = {});

struct SshConfig;  // aifc/ssh.hpp

/// `sbatch` on a login node over SSH (aifc/ssh.hpp has SshConfig): the script is uploaded by
/// SFTP under remote_base_path and submitted there; scontrol and scancel run remotely.
/// Environment values reach the job through sbatch's environment, never on a command line.
AIFC_API std::unique_ptr<SlurmBackend> make_ssh_backend(SshConfig config);

/// A job's state change, for observers.
struct AIFC_API JobEvent {
  std::string job_id;
  JobState previous = JobState::unknown;
  JobInfo info;
};

/// Receives the state changes of jobs, in the same style as aifc::Observer: an interface, a
/// handle to remove it, called on an observer thread behind a bounded queue, exceptions counted
/// instead of escaping.
class AIFC_API JobObserver {
 public:
  virtual ~JobObserver() = default;
  virtual void on_state_change(const JobEvent& /*event*/) {}
};

/// Submits client jobs through one backend and follows them to the end.
class AIFC_API SlurmDispatcher {
 public:
  explicit SlurmDispatcher(std::unique_ptr<SlurmBackend> backend);
  /// Delivers the events still queued to the observers, then stops their thread.
  ~SlurmDispatcher();

  const SlurmBackend& backend() const noexcept { return *backend_; }
  /// Observers get every state change that submit(), state() or wait() sees, in order, on the
  /// dispatcher's observer thread: polling never waits for them. The queue holds 4096 events;
  /// beyond that an event is dropped and counted (observer_events_dropped()). An exception from
  /// an observer is caught and counted (observer_errors()), never thrown out of wait().
  ObserverHandle add_observer(std::shared_ptr<JobObserver> observer);
  /// The same for a plain function.
  ObserverHandle on_state_change(std::function<void(const JobEvent&)> observer);
  /// False for an unknown handle. Once it returns the observer is not called again. Safe from
  /// any thread, observers included.
  bool remove_observer(ObserverHandle handle);
  /// Blocks until the observers have had every event seen so far (wait() does this before it
  /// returns, as ClientGroup::run() does).
  void flush_observers();
  std::uint64_t observer_errors() const;
  std::string first_observer_error() const;
  std::uint64_t observer_events_dropped() const;

  std::string submit(const JobSpec& spec);
  JobInfo state(const std::string& job_id);
  /// Polls until the job reaches a terminal state or `timeout` passes (then the last state is
  /// returned, not terminal).
  JobInfo wait(const std::string& job_id, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll_interval = std::chrono::milliseconds(250));
  void cancel(const std::string& job_id);

 private:
  void note(const JobInfo& info);
  struct Observers;
  std::unique_ptr<SlurmBackend> backend_;
  std::unique_ptr<Observers> observers_;
  std::mutex states_mutex_;
  std::vector<std::pair<std::string, JobState>> last_states_;
};

}  // namespace aifc
