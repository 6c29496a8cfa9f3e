#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "aifc/export.hpp"

namespace aifc {

enum class RampUp { none, linear, exponential };

NLOHMANN_JSON_SERIALIZE_ENUM(RampUp, {{RampUp::none, "none"},
                                      {RampUp::linear, "linear"},
                                      {RampUp::exponential, "exponential"}})

/// When requests are sent. Names follow `vllm bench serve`.
struct AIFC_API LoadConfig {
  /// Requests per second; infinity sends everything at once (bounded by max_concurrency).
  double request_rate = std::numeric_limits<double>::infinity();
  /// Gamma shape of the inter-arrival times: 1 is Poisson, <1 burstier, >1 more regular.
  double burstiness = 1.0;
  /// At most this many requests in flight; 0 means unbounded.
  std::int64_t max_concurrency = 0;
  /// How many requests the run sends (ignored when `duration` is set).
  std::int64_t num_requests = 1000;
  /// Keep sending for this long instead of a fixed count; zero means off.
  std::chrono::milliseconds duration{0};
  /// Requests sent before the measured run, with the same concurrency, and not counted.
  std::int64_t num_warmups = 0;
  /// A rate that climbs from ramp_up_start_rps to ramp_up_end_rps over the run (by request
  /// count, or by time when `duration` is set). As in vLLM the rates are whole requests per
  /// second, start <= end, and request_rate stays at infinity: the ramp sets the rate.
  RampUp ramp_up_strategy = RampUp::none;
  std::int64_t ramp_up_start_rps = 0;
  std::int64_t ramp_up_end_rps = 0;
  /// Send each request at the arrival time its prompt carries (a timed trace) instead of drawing
  /// the arrivals: vLLM's --self-timed (on by default for the timed_trace dataset). The rate,
  /// burstiness and ramp-up are then unused.
  bool self_timed = false;
  std::uint64_t seed = 0;

  void validate() const;
};

AIFC_API void to_json(nlohmann::json& j, const LoadConfig& c);
AIFC_API void from_json(const nlohmann::json& j, LoadConfig& c);

/// One slot of the global schedule.
struct AIFC_API ScheduledRequest {
  std::uint64_t index = 0;             ///< position in the global schedule
  std::chrono::nanoseconds offset{0};  ///< send time after the run's start
  double rate = 0.0;  ///< the request rate in force when this slot was drawn (inf: none)
};

/// Which part of a distributed run this process sends: request i goes to rank i % nranks.
/// Round-robin keeps every rank's part spread over the whole run and equal in size to within one.
struct AIFC_API Shard {
  std::uint32_t rank = 0;
  std::uint32_t nranks = 1;
  void validate() const;
  bool owns(std::uint64_t index) const noexcept { return index % nranks == rank; }
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Shard, rank, nranks)

/// Generates the global schedule lazily and deterministically (same config and seed, same
/// times on every machine), yielding only this shard's slots. A count-limited schedule ends
/// after num_requests slots; a duration-limited one after the last slot inside the duration.
/// As in `vllm bench serve`, every request (the first too) waits a gamma-distributed gap, and a
/// count-limited schedule at a fixed rate is scaled so that its last request leaves at exactly
/// num_requests / request_rate.
class AIFC_API ArrivalSchedule {
 public:
  ArrivalSchedule(const LoadConfig& config, Shard shard = {});
  /// A self-timed schedule: slot i leaves at `offsets[i]` after the start (times of a trace,
  /// in order, the first usually 0); at most num_requests of them, within `duration` if set.
  ArrivalSchedule(const LoadConfig& config, Shard shard,
                  std::vector<std::chrono::nanoseconds> offsets);

  /// The next slot of this shard, or nullopt when the schedule is exhausted.
  std::optional<ScheduledRequest> next();

  /// The number of slots of the global schedule when it is count-limited, else nullopt.
  std::optional<std::uint64_t> global_size() const;
  /// This shard's share of the concurrency limit (0: unbounded); the shares add up to the limit.
  std::int64_t shard_max_concurrency() const;

 private:
  std::optional<ScheduledRequest> next_global();
  double current_rate(std::uint64_t index, double elapsed_s) const;

  LoadConfig config_;
  Shard shard_;
  std::uint64_t next_index_ = 0;
  double time_s_ = 0.0;
  double scale_ = 1.0;  ///< stretches a count-limited schedule to end at N / rate
  std::vector<std::chrono::nanoseconds> offsets_;  ///< a self-timed schedule's times
  std::uint64_t rng_state_[4];
};

}  // namespace aifc
