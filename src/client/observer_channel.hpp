#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "aifc/observer.hpp"
#include "util/observer_queue.hpp"

namespace aifc::detail {

/// Carries a run's events to its aifc::Observer objects through an ObserverQueue: request
/// events are dropped (and counted) when the queue is full, a newer progress snapshot replaces
/// one not yet delivered, a run's start and end always get through.
class ObserverChannel {
 public:
  explicit ObserverChannel(std::size_t capacity = 65536) : queue_(capacity) {}

  ObserverHandle add(std::shared_ptr<Observer> observer) { return queue_.add(std::move(observer)); }
  bool remove(ObserverHandle handle) { return queue_.remove(handle); }
  bool active() const { return queue_.active(); }

  void run_started(const ClockAnchor& anchor, std::uint64_t total) {
    queue_.post([anchor, total](Observer& o) { o.on_run_started(anchor, total); }, false);
  }
  void request_finished(const RequestRecord& record) {
    if (!active()) return;  // no copy of the record when nobody listens
    queue_.post([record](Observer& o) { o.on_request_finished(record); }, true);
  }
  void progress(const ProgressSnapshot& snapshot) {
    queue_.post_latest([snapshot](Observer& o) { o.on_progress(snapshot); });
  }
  void run_finished(const ProgressSnapshot& snapshot) {
    queue_.post([snapshot](Observer& o) { o.on_run_finished(snapshot); }, false);
  }
  /// Delivers everything queued, then stops the thread. Idempotent.
  void finish() { queue_.finish(); }

  std::uint64_t errors() const { return queue_.errors(); }
  std::string first_error() const { return queue_.first_error(); }
  std::uint64_t dropped() const { return queue_.dropped(); }

 private:
  ObserverQueue<Observer> queue_;
};

}  // namespace aifc::detail
