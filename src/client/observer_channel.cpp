#include "client/observer_channel.hpp"

#include <algorithm>

namespace aifc::detail {

ObserverChannel::ObserverChannel(std::size_t capacity)
    : capacity_(std::max<std::size_t>(1, capacity)) {}

ObserverChannel::~ObserverChannel() { finish(); }

ObserverHandle ObserverChannel::add(std::shared_ptr<Observer> observer) {
  std::lock_guard lock(mutex_);
  const ObserverHandle handle = next_handle_++;
  entries_.push_back(std::make_shared<Entry>(Entry{handle, std::move(observer)}));
  return handle;
}

bool ObserverChannel::remove(ObserverHandle handle) {
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

bool ObserverChannel::active() const {
  std::lock_guard lock(mutex_);
  return !entries_.empty();
}

void ObserverChannel::post(Event&& event, bool droppable) {
  {
    std::lock_guard lock(mutex_);
    if (entries_.empty() || closing_) return;
    if (droppable && queue_.size() >= capacity_) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(event));
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  cv_.notify_one();
}

void ObserverChannel::run_started(const ClockAnchor& anchor, std::uint64_t total) {
  Event e{Kind::run_started, {}, {}, anchor, total};
  post(std::move(e), false);
}

void ObserverChannel::request_finished(const RequestRecord& record) {
  if (!active()) return;  // no copy of the record when nobody listens
  Event e{Kind::request_finished, record, {}, {}, 0};
  post(std::move(e), true);
}

void ObserverChannel::progress(const ProgressSnapshot& snapshot) {
  {
    std::lock_guard lock(mutex_);
    if (entries_.empty() || closing_) return;
    const bool queued = pending_progress_.has_value();
    pending_progress_ = snapshot;  // a newer snapshot replaces one not yet delivered
    if (queued) return;
    queue_.push_back(Event{Kind::progress, {}, {}, {}, 0});
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  cv_.notify_one();
}

void ObserverChannel::run_finished(const ProgressSnapshot& snapshot) {
  Event e{Kind::run_finished, {}, snapshot, {}, 0};
  post(std::move(e), false);
}

void ObserverChannel::finish() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void ObserverChannel::loop() {
  for (;;) {
    Event event;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;  // closing, and everything delivered
      event = std::move(queue_.front());
      queue_.pop_front();
      if (event.kind == Kind::progress) {
        event.snapshot = *pending_progress_;
        pending_progress_.reset();
      }
    }
    deliver(event);
  }
}

void ObserverChannel::deliver(const Event& event) {
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
      Observer& o = *entry->observer;
      switch (event.kind) {
        case Kind::run_started:
          o.on_run_started(event.anchor, event.total);
          break;
        case Kind::request_finished:
          o.on_request_finished(event.record);
          break;
        case Kind::progress:
          o.on_progress(event.snapshot);
          break;
        case Kind::run_finished:
          o.on_run_finished(event.snapshot);
          break;
      }
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

std::uint64_t ObserverChannel::errors() const {
  std::lock_guard lock(mutex_);
  return errors_;
}

std::string ObserverChannel::first_error() const {
  std::lock_guard lock(mutex_);
  return first_error_;
}

std::uint64_t ObserverChannel::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace aifc::detail
