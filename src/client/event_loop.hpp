#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aifc/record.hpp"
#include "aifc/schedule.hpp"
#include "aifc/vllm_client.hpp"

namespace aifc::detail {

/// What a client group gives an event loop.
struct LoopHooks {
  /// The next slot if it is due at `now`; otherwise nullopt with `next_due` set (-1: none left).
  /// Thread-safe.
  std::function<std::optional<ScheduledRequest>(MonoNanos now, MonoNanos& next_due)> take_due_slot;
  /// False once the schedule has nothing left to send. Thread-safe.
  std::function<bool()> has_more_slots;
  /// The scheduled send time of a slot.
  std::function<MonoNanos(const ScheduledRequest&, MonoNanos now)> scheduled_time;
  /// Hands a finished record to the group. Thread-safe.
  std::function<void(RequestRecord&&)> deliver;
  const std::atomic<bool>* stop = nullptr;
  bool closed_loop = false;       ///< infinite rate: the next request goes when one ends
  MonoNanos coalesce_window = 0;  ///< see EventLoop; 0 turns it off
  std::atomic<std::uint64_t>* in_flight = nullptr;
};

/// The transport that runs many streams (http:// or https://) on one thread with epoll: one wake-up
/// serves every socket that has data, and a slot is sent from the same thread that waited for it.
class EventLoop {
 public:
  /// Resolves the server's address; throws Error(connection_failed) if it cannot.
  /// `prepared` and `raw_requests` are parallel (the same request as data and as bytes) and
  /// must outlive the loop.
  EventLoop(const ClientConfig& config, const std::vector<PreparedRequest>& prepared,
            const std::vector<std::string>& raw_requests, std::int64_t max_in_flight,
            LoopHooks hooks);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Runs until the schedule is exhausted and nothing is in flight, or until stop.
  void run();
  /// Wakes run() from any thread (after setting the stop flag).
  void wake() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc::detail
