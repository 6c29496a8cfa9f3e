#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aifc/benchmark.hpp"
#include "aifc/export.hpp"
#include "aifc/observer.hpp"
#include "aifc/slurm.hpp"

namespace aifc {

/// A client group's life: created -> submitted (a Slurm job id) -> registering (the first agent
/// called in) -> ready (all have, and have prepared their prompts) -> running -> finished; or
/// failed (with Slurm's reason or the service's) or cancelled at any point before the end.
enum class GroupState {
  created,
  submitted,
  registering,
  ready,
  running,
  finished,
  failed,
  cancelled
};

AIFC_API std::string_view to_string(GroupState s) noexcept;
/// Throws Error(parse_error) for a name that is none of the above.
AIFC_API GroupState group_state_from_string(std::string_view s);
AIFC_API bool is_terminal(GroupState s) noexcept;

/// What `POST /api/v1/client-group/{id}` asks for. The JSON body is flat: the Slurm fields, and
/// the workload named like `aifc bench`'s flags in snake_case (num_prompts, request_rate,
/// burstiness, max_concurrency, dataset_name, random_input_len, random_output_len, goodput, ...);
/// `spec` may give a whole BenchmarkSpec to start from.
struct AIFC_API ClientGroupRequest {
  std::int64_t num_clients = 1;         ///< agents, one Slurm task each
  std::chrono::minutes time_limit{10};  ///< the job's time limit
  std::string partition, account, qos;  ///< empty: Slurm's defaults
  std::int64_t nodes = 0;               ///< 0: as few as Slurm likes
  std::int64_t ntasks_per_node = 0;     ///< 0: not set
  std::int64_t cpus_per_task = 0;       ///< 0: not set
  std::string memory;                   ///< per node, e.g. "4G"
  std::string job_name;                 ///< empty: aifc-<group id>
  BenchmarkSpec spec;                   ///< the whole run; every agent sends its shard of it

  /// Throws Error(invalid_argument) naming the field.
  void validate() const;
};

/// The flat body (see ClientGroupRequest). Unknown keys and wrong types throw
/// Error(invalid_argument) naming the key.
AIFC_API void from_json(const nlohmann::json& j, ClientGroupRequest& r);
AIFC_API void to_json(nlohmann::json& j, const ClientGroupRequest& r);

/// How the service reaches Slurm.
enum class SlurmDoor { rest, cli, ssh };

/// Everything `aifc service` is started with.
struct AIFC_API ServiceConfig {
  std::string server_url;                  ///< the inference server the agents measure
  std::string listen_host = "127.0.0.1";   ///< loopback unless told otherwise
  int port = 8001;                         ///< 0: any free port
  std::string state_dir = "aifc-service";  ///< the SQLite database and the API token file
  /// Every API call must carry "Authorization: Bearer <api_token>"; empty: one is generated at
  /// start and written (mode 0600) to state_dir/api-token.
  std::string api_token;
  /// How agents reach the service; empty: http://<listen_host>:<port>.
  std::string public_url;
  /// Where jobs run: each group gets <job_directory>/<id>, where its agents also write their raw
  /// results; empty: <state_dir>/jobs.
  std::string job_directory;
  /// The agent's command line on the nodes; empty: this program's own path and "agent".
  std::vector<std::string> agent_command;
  std::optional<ContainerSpec> container;  ///< run the agents in Apptainer
  /// Environment the agents get on top of the service's (e.g. an API key for the server); sent
  /// to Slurm with the job, never written into the script.
  std::vector<std::pair<std::string, std::string>> agent_environment;
  std::chrono::seconds registration_timeout{600};  ///< from RUNNING to every agent ready
  std::chrono::milliseconds start_delay{2000};     ///< from `run` to the agreed start instant
  std::chrono::seconds agent_silence_limit{60};    ///< a running agent not heard from is lost
  /// How often a running agent sends what it measured so far (the records since its last
  /// message and its aggregate), so that an agent that dies loses only its last seconds.
  std::chrono::milliseconds partial_interval{2000};
  std::chrono::seconds result_grace{20};  ///< after the job ends, how long to wait for results
  std::chrono::milliseconds slurm_poll_interval{1000};
  std::int64_t max_body_bytes = 256 << 20;

  void validate() const;
};

/// The client service: a REST API (see /openapi.json) that creates client groups, dispatches
/// each as one Slurm job of agents, starts them together, and merges their results exactly.
/// State lives in SQLite (WAL) under state_dir: a service killed and started again continues
/// where it was, and its agents reconnect. Threads: the HTTP server's, and one monitor that
/// follows the jobs. stop() is idempotent; the destructor stops and joins.
/// One event of a client group, as GET /api/v1/client-group/{id}/events sends it: its type
/// ("state", "job", "agent", "progress", "result") and its JSON data (which names the type,
/// the group and the time too).
struct AIFC_API GroupEvent {
  std::string group_id;
  std::string type;
  nlohmann::json data;
};

/// Receives the events of every group, in the same style as aifc::Observer and JobObserver:
/// called in order on the service's observer thread, behind a bounded queue (4096 events; beyond
/// that an event is dropped and counted), an exception counted instead of escaping.
class AIFC_API GroupObserver {
 public:
  virtual ~GroupObserver() = default;
  virtual void on_group_event(const GroupEvent& /*event*/) {}
};

class AIFC_API Service {
 public:
  /// Throws Error(invalid_argument) for a bad config.
  Service(ServiceConfig config, std::unique_ptr<SlurmBackend> slurm);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// Opens the state, recovers the groups it holds, binds and serves in the background.
  /// Throws Error(io_error) when the state cannot be opened, connection_failed when the port
  /// cannot be bound.
  void start();
  void stop() noexcept;
  /// Blocks until stop() (from another thread or a signal handler's thread).
  void wait();

  int port() const noexcept;
  std::string url() const;  ///< http://host:port
  const std::string& api_token() const noexcept;
  const ServiceConfig& config() const noexcept;

  /// Observers of every group's events; see GroupObserver. remove_observer: false for an
  /// unknown handle; once it returns, the observer is not called again.
  ObserverHandle add_observer(std::shared_ptr<GroupObserver> observer);
  ObserverHandle on_event(std::function<void(const GroupEvent&)> observer);
  bool remove_observer(ObserverHandle handle);
  /// Blocks until the observers have had every event so far (stop() does this too).
  void flush_observers();
  std::uint64_t observer_errors() const;
  std::uint64_t observer_events_dropped() const;

  /// The OpenAPI 3 document of every route the service serves (what GET /openapi.json sends).
  static nlohmann::json openapi();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc
