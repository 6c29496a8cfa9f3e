#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "aifc/export.hpp"

namespace aifc {

/// What one agent of a client group needs: where the service is, which group and rank it is.
/// `from_environment()` reads what the group's Slurm job gives every task.
struct AIFC_API AgentConfig {
  std::string service_url;   ///< AIFC_SERVICE_URL
  std::string group_id;      ///< AIFC_GROUP_ID
  std::string token;         ///< AIFC_AGENT_TOKEN (never logged)
  std::uint32_t rank = 0;    ///< SLURM_PROCID
  std::uint32_t nranks = 1;  ///< SLURM_NTASKS
  std::string node;          ///< SLURMD_NODENAME, else the host name
  /// The inference server's bearer token (OPENAI_API_KEY; never logged, never sent back).
  std::string server_api_key;
  /// Where the agent writes its raw result (AIFC_AGENT_DIR, else the working directory), so
  /// that a service that lost it can read it back.
  std::string output_dir = ".";
  /// How long the agent keeps trying while the service cannot be reached
  /// (AIFC_AGENT_OUTAGE_LIMIT_S).
  std::chrono::seconds service_outage_limit{600};
  std::int64_t records_per_batch = 2000;  ///< records per upload message
  std::int32_t clock_samples = 8;         ///< round trips for the clock-offset estimate

  /// Reads the variables above; throws Error(invalid_argument) naming a missing one.
  static AgentConfig from_environment();
  void validate() const;
};

/// One agent: registers, estimates its clock offset to the service, prepares its shard, waits
/// for the start instant, runs, reports progress and its result, and ends when the run has or
/// the group was cancelled. Retries with backoff and jitter while the service is away.
class AIFC_API Agent {
 public:
  explicit Agent(AgentConfig config);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Runs to the end. Returns 0 when the run ended (or the group was cancelled); throws
  /// Error(connection_failed) when the service stayed away past the outage limit,
  /// Error(server_error) when the service refused the agent, and the Benchmark's errors
  /// (after telling the service) when its set-up failed.
  int run();
  /// Stops a running benchmark from any thread (its partial result is still reported).
  void stop() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc
