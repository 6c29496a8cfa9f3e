#pragma once

#include <cstdint>
#include <string>

#include "aifc/export.hpp"
#include "aifc/record.hpp"

namespace aifc {

/// A live view of a running benchmark.
struct AIFC_API ProgressSnapshot {
  double elapsed_s = 0;
  std::uint64_t completed = 0;  ///< finished successfully (warm-ups excluded)
  std::uint64_t failed = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t total = 0;  ///< requests this run will send; 0 when duration-limited
  std::int64_t output_tokens = 0;
  double request_throughput = 0;  ///< completed per second so far
  double output_throughput = 0;   ///< output tokens per second so far
};

/// Receives a run's events. Observers are called from one thread of their own, fed through a
/// bounded queue, so that the run's controller (sending, deadlines, spawning clients) never
/// waits for them. When observers fall behind and the queue is full, `on_request_finished`
/// events are dropped and counted (`BenchmarkResult::observer_events_dropped`); a newer progress
/// snapshot replaces one not yet delivered; the run's start and end are always delivered, and
/// the run returns once observers have seen its end. An exception thrown by an observer is
/// caught and counted in the result and does not stop the run.
class AIFC_API Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_run_started(const ClockAnchor& /*anchor*/, std::uint64_t /*total*/) {}
  virtual void on_request_finished(const RequestRecord& /*record*/) {}
  virtual void on_progress(const ProgressSnapshot& /*snapshot*/) {}
  virtual void on_run_finished(const ProgressSnapshot& /*final_snapshot*/) {}
};

/// Names an added observer, for remove_observer().
using ObserverHandle = std::uint64_t;

}  // namespace aifc
