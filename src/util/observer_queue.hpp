#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aifc/observer.hpp"

namespace aifc::detail {

/// The one way aifc calls observers (of runs, of Slurm jobs): on a thread of its own, through a
/// bounded queue, so that whoever posts an event never waits for an observer. Posting never
/// blocks and never throws. Overflow: a droppable event that finds the queue full is dropped
/// and counted; a "latest" event replaces the one of its kind not yet delivered (progress: only
/// the newest matters); the others (a run's start and end) always get a place. An exception from
/// an observer is caught and counted. The thread starts with the first event and ends in
/// finish(), which delivers what is queued first.
template <class Target>
class ObserverQueue {
 public:
  using Call = std::function<void(Target&)>;

  explicit ObserverQueue(std::size_t capacity) : capacity_(std::max<std::size_t>(1, capacity)) {}
  ~ObserverQueue() { finish(); }
  ObserverQueue(const ObserverQueue&) = delete;
  ObserverQueue& operator=(const ObserverQueue&) = delete;

  ObserverHandle add(std::shared_ptr<Target> observer) {
    std::lock_guard lock(mutex_);
    const ObserverHandle handle = next_handle_++;
    entries_.push_back(std::make_shared<Entry>(Entry{handle, std::move(observer)}));
    return handle;
  }

  /// Once this returns, the observer is not called again (a call under way finishes first,
  /// unless it is the caller itself). Safe from any thread, observers included.
  bool remove(ObserverHandle handle) {
    std::shared_ptr<Entry> entry;
    {
      std::lock_guard lock(mutex_);
      const auto it = std::find_if(entries_.begin(), entries_.end(),
                                   [&](const auto& e) { return e->handle == handle; });
      if (it == entries_.end()) return false;
      entry = *it;
      entries_.erase(it);
    }
    std::lock_guard calls(call_mutex_);  // waits for a call under way on the observer thread
    entry->removed = true;
    return true;
  }

  /// False when no observer is attached: callers may skip building events.
  bool active() const {
    std::lock_guard lock(mutex_);
    return !entries_.empty();
  }

  void post(Call call, bool droppable) {
    {
      std::lock_guard lock(mutex_);
      if (entries_.empty() || closing_) return;
      if (droppable && queue_.size() >= capacity_) {
        ++dropped_;
        return;
      }
      queue_.push_back(std::make_shared<Call>(std::move(call)));
      start_thread();
    }
    cv_.notify_one();
  }

  /// Replaces the previous latest event when it has not been delivered yet.
  void post_latest(Call call) {
    {
      std::lock_guard lock(mutex_);
      if (entries_.empty() || closing_) return;
      if (latest_) {
        *latest_ = std::move(call);
        return;
      }
      latest_ = std::make_shared<Call>(std::move(call));
      queue_.push_back(latest_);
      start_thread();
    }
    cv_.notify_one();
  }

  /// Blocks until everything posted before the call has been delivered.
  void flush() {
    std::unique_lock lock(mutex_);
    if (!thread_.joinable() || thread_.get_id() == std::this_thread::get_id()) return;
    const std::uint64_t target = posted_total();
    idle_cv_.wait(lock, [&] { return delivered_ >= target; });
  }

  /// Delivers everything queued, then stops the thread. Idempotent.
  void finish() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  std::uint64_t errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  std::string first_error() const {
    std::lock_guard lock(mutex_);
    return first_error_;
  }
  std::uint64_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }

 private:
  struct Entry {
    ObserverHandle handle;
    std::shared_ptr<Target> observer;
    bool removed = false;  // guarded by call_mutex_
  };

  void start_thread() {  // with mutex_ held
    ++enqueued_;
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  std::uint64_t posted_total() const { return enqueued_; }

  void loop() {
    for (;;) {
      Call call;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !queue_.empty() || closing_; });
        if (queue_.empty()) return;                      // closing, and everything delivered
        if (queue_.front() == latest_) latest_.reset();  // from now on a new one queues anew
        call = std::move(*queue_.front());
        queue_.pop_front();
      }
      deliver(call);
      {
        std::lock_guard lock(mutex_);
        ++delivered_;
      }
      idle_cv_.notify_all();
    }
  }

  void deliver(const Call& call) {
    std::vector<std::shared_ptr<Entry>> entries;
    {
      std::lock_guard lock(mutex_);
      entries = entries_;
    }
    for (const auto& entry : entries) {
      std::lock_guard calls(call_mutex_);
      if (entry->removed) continue;
      std::string failure;
      try {
        call(*entry->observer);
        continue;
      } catch (const std::exception& e) {
        failure = e.what();
      } catch (...) {
        failure = "unknown exception";
      }
      std::lock_guard lock(mutex_);
      if (errors_++ == 0) first_error_ = failure;
    }
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;  // queue, entries list, counters
  std::condition_variable cv_, idle_cv_;
  std::deque<std::shared_ptr<Call>> queue_;
  std::shared_ptr<Call> latest_;  // the latest event while it waits in the queue
  std::vector<std::shared_ptr<Entry>> entries_;
  ObserverHandle next_handle_ = 1;
  bool closing_ = false;
  std::uint64_t errors_ = 0, dropped_ = 0;
  std::uint64_t enqueued_ = 0, delivered_ = 0;
  std::string first_error_;
  std::recursive_mutex call_mutex_;  // held while an observer is called
  std::thread thread_;
};

}  // namespace aifc::detail
