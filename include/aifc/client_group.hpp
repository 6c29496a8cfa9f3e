#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aifc/dataset.hpp"
#include "aifc/export.hpp"
#include "aifc/metrics.hpp"
#include "aifc/observer.hpp"
#include "aifc/record.hpp"
#include "aifc/schedule.hpp"
#include "aifc/server_metrics.hpp"
#include "aifc/vllm_client.hpp"

namespace aifc {

/// How a group moves bytes. `event_loop`: every stream on epoll threads (`io_threads`), plain
/// or TLS; `threads`: a thread and a blocking VLLMClient per stream; `automatic`: event_loop.
enum class Transport { automatic, event_loop, threads };

NLOHMANN_JSON_SERIALIZE_ENUM(Transport, {{Transport::automatic, "automatic"},
                                         {Transport::event_loop, "event_loop"},
                                         {Transport::threads, "threads"}})

/// Everything one client group runs.
struct AIFC_API GroupConfig {
  Transport transport = Transport::automatic;
  std::int64_t io_threads = 1;  ///< event-loop threads (the event_loop transport)
  /// Event loop: how long arrivals may gather before they are handled, which saves a wake-up
  /// per chunk. Timestamps come from the kernel's receive stamps, so it costs no accuracy;
  /// it is skipped while a send is due. Zero turns it off.
  std::chrono::microseconds coalesce_window{1000};
  ClientConfig client;
  LoadConfig load;
  Shard shard;
  /// Clients (threads, each with its own connection) when concurrency is unbounded; the group
  /// starts with as many as it needs and never goes beyond this.
  std::int64_t max_clients = 4096;
  std::chrono::milliseconds progress_interval{1000};
  /// Events waiting for slow observers; beyond it request events are dropped (see Observer).
  std::int64_t observer_queue_capacity = 65536;
  bool keep_records = true;  ///< false keeps only the mergeable aggregate (long runs)
  /// Raise the process's open-file limit to its hard limit before the run (every stream is a
  /// socket, and the soft limit is often 1024). Process-wide, so off unless asked.
  bool raise_fd_limit = false;
  SummaryOptions summary;
  /// When the schedule's time zero is, on this machine's system clock (a distributed run's
  /// agreed start instant); unset: as soon as the clients are ready. An instant already past
  /// starts at once, and the result's start shows by how much it was late.
  std::optional<std::chrono::system_clock::time_point> start_at;

  void validate() const;
};

AIFC_API void to_json(nlohmann::json& j, const GroupConfig& c);
AIFC_API void from_json(const nlohmann::json& j, GroupConfig& c);

/// The outcome of a run: every record (unless keep_records is off), a mergeable aggregate and
/// the summary in `vllm bench serve`'s keys.
struct AIFC_API BenchmarkResult {
  ClockAnchor anchor;      ///< taken at the run's start
  MonoNanos start_ns = 0;  ///< the schedule's time zero
  MonoNanos end_ns = 0;
  /// How late the first request of the schedule left (its send minus its slot): with start_ns,
  /// when this process actually began. 0 when nothing was sent.
  std::int64_t first_send_late_ns = 0;
  double duration_s = 0;
  bool interrupted = false;            ///< stop() ended the run early; the records so far are kept
  std::vector<RequestRecord> records;  ///< in completion order, warm-ups included (flagged)
  MetricsAggregate aggregate;
  Summary summary;
  /// The first failed requests' "kind: message" (at most kMaxFirstErrors, in the order they
  /// finished; cancellations left out), kept whether or not records are: what a failure count
  /// alone does not say.
  static constexpr std::size_t kMaxFirstErrors = 10;
  std::vector<std::string> first_errors;
  std::uint64_t observer_errors = 0;
  std::string first_observer_error;
  std::uint64_t observer_events_dropped = 0;  ///< request events slow observers did not get
  /// What went wrong around the run without stopping it (a profiler the server refused).
  std::vector<std::string> warnings;
  /// The probe requests sent beside the workload (BenchmarkSpec::probe_request_rate), in the
  /// order they were sent; never part of the records or the metrics.
  std::vector<RequestRecord> probes;
  /// What the server's speculative decoding did over the run, from its /metrics counters read
  /// after the warm-ups and after the run (Benchmark; vLLM's spec_decode_* result keys); unset
  /// when the server has none.
  std::optional<SpecDecodeStats> spec_decode;
};

/// The JSON form of a start instant: nanoseconds since the Unix epoch, or null.
AIFC_API nlohmann::json start_at_to_json(
    const std::optional<std::chrono::system_clock::time_point>& t);
AIFC_API std::optional<std::chrono::system_clock::time_point> start_at_from_json(
    const nlohmann::json& j);

/// Runs one workload with many concurrent clients: requests leave at their scheduled times
/// (ArrivalSchedule) over as many kept-alive connections as the concurrency needs.
/// Threads: the transport's (one per client, or the event loops), one controller that collects
/// records, enforces deadlines, spawns clients and takes progress snapshots, and one that calls
/// observers (see Observer: they can never slow the controller). run() blocks; stop() may be
/// called from any thread, is idempotent, and keeps what was measured. The destructor stops and
/// joins.
class AIFC_API ClientGroup {
 public:
  ClientGroup(GroupConfig config, std::vector<Prompt> prompts);
  ~ClientGroup();
  ClientGroup(const ClientGroup&) = delete;
  ClientGroup& operator=(const ClientGroup&) = delete;

  /// Before run(). The handle removes it again, from any thread, also during the run.
  ObserverHandle add_observer(std::shared_ptr<Observer> observer);
  /// Returns false for an unknown handle. Once it returns, the observer is not called again.
  bool remove_observer(ObserverHandle handle);
  /// Before run(): `hook` is called on run()'s thread once the warm-ups are done and before the
  /// schedule's clock starts, for what must happen in between (Benchmark reads the server's
  /// counters there, as vLLM does). An exception from it ends run().
  void before_measuring(std::function<void()> hook);

  /// Runs to the end (or until stop()) and returns the result. Callable once.
  BenchmarkResult run();
  /// run() with the schedule's time zero at `start` on this machine's system clock (a
  /// distributed run's agreed instant; see GroupConfig::start_at).
  BenchmarkResult run_at(std::chrono::system_clock::time_point start);
  void stop() noexcept;
  bool stopping() const noexcept;
  ProgressSnapshot progress() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace aifc
