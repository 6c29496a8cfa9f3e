#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "aifc/observer.hpp"

namespace aifc::detail {

/// Carries a run's events to its observers on a thread of its own, through a bounded queue,
/// with the overflow policy that aifc::Observer states. Posting never blocks and never throws.
/// The thread starts with the first event and ends in finish(), which delivers what is queued.
class ObserverChannel {
 public:
  explicit ObserverChannel(std::size_t capacity = 65536);
  ~ObserverChannel();
  ObserverChannel(const ObserverChannel&) = delete;
  ObserverChannel& operator=(const ObserverChannel&) = delete;

  ObserverHandle add(std::shared_ptr<Observer> observer);
  /// Once this returns, the observer is not called again (a call under way finishes first,
  /// unless it is the caller itself). Safe from any thread, observers included.
  bool remove(ObserverHandle handle);
  /// False when no observer is attached: callers may skip building events.
  bool active() const;

  void run_started(const ClockAnchor& anchor, std::uint64_t total);
  void request_finished(const RequestRecord& record);
  void progress(const ProgressSnapshot& snapshot);
  void run_finished(const ProgressSnapshot& snapshot);
  /// Delivers everything queued, then stops the thread. Idempotent.
  void finish();

  std::uint64_t errors() const;
  std::string first_error() const;
  std::uint64_t dropped() const;

 private:
  enum class Kind { run_started, request_finished, progress, run_finished };
  struct Event {
    Kind kind;
    RequestRecord record;
    ProgressSnapshot snapshot;
    ClockAnchor anchor;
    std::uint64_t total = 0;
  };
  struct Entry {
    ObserverHandle handle;
    std::shared_ptr<Observer> observer;
    bool removed = false;  // guarded by call_mutex_
  };

  void post(Event&& event, bool droppable);
  void loop();
  void deliver(const Event& event);

  const std::size_t capacity_;
  mutable std::mutex mutex_;  // queue, entries list, counters
  std::condition_variable cv_;
  std::deque<Event> queue_;
  std::optional<ProgressSnapshot> pending_progress_;
  std::vector<std::shared_ptr<Entry>> entries_;
  ObserverHandle next_handle_ = 1;
  bool closing_ = false;
  std::uint64_t errors_ = 0, dropped_ = 0;
  std::string first_error_;
  std::recursive_mutex call_mutex_;  // held while an observer is called
  std::thread thread_;
};

}  // namespace aifc::detail
