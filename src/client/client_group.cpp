#include "aifc/client_group.hpp"

#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "aifc/error.hpp"
#include "client/event_loop.hpp"
#include "client/observer_channel.hpp"
#include "client/raw_request.hpp"
#include "http/tls.hpp"
#include "util/durations.hpp"
#include "util/json_numbers.hpp"

namespace aifc {

void GroupConfig::validate() const {
  client.validate();
  load.validate();
  shard.validate();
  summary.validate();
  if (max_clients < 1) throw Error(ErrorCode::invalid_argument, "max_clients must be at least 1");
  if (progress_interval.count() <= 0)
    throw Error(ErrorCode::invalid_argument, "progress_interval must be positive");
  if (io_threads < 1) throw Error(ErrorCode::invalid_argument, "io_threads must be at least 1");
  if (observer_queue_capacity < 1)
    throw Error(ErrorCode::invalid_argument, "observer_queue_capacity must be at least 1");
}

void to_json(nlohmann::json& j, const GroupConfig& c) {
  j = nlohmann::json{{"client", c.client},
                     {"load", c.load},
                     {"shard", c.shard},
                     {"transport", c.transport},
                     {"io_threads", c.io_threads},
                     {"coalesce_window_us", c.coalesce_window.count()},
                     {"max_clients", c.max_clients},
                     {"progress_interval_s", detail::seconds_of(c.progress_interval)},
                     {"observer_queue_capacity", c.observer_queue_capacity},
                     {"raise_fd_limit", c.raise_fd_limit},
                     {"keep_records", c.keep_records},
                     {"summary", c.summary},
                     {"start_at_unix_ns", start_at_to_json(c.start_at)}};
}

nlohmann::json start_at_to_json(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return nullptr;
  return detail::nanos_of(t->time_since_epoch());
}

std::optional<std::chrono::system_clock::time_point> start_at_from_json(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(j.get<std::int64_t>())));
}

void from_json(const nlohmann::json& j, GroupConfig& c) {
  detail::check_json_numbers(j, "group config: ");
  c = GroupConfig{};
  if (j.contains("client")) j.at("client").get_to(c.client);
  if (j.contains("load")) j.at("load").get_to(c.load);
  if (j.contains("shard")) j.at("shard").get_to(c.shard);
  if (j.contains("summary")) j.at("summary").get_to(c.summary);
  c.transport = j.value("transport", c.transport);
  c.io_threads = j.value("io_threads", c.io_threads);
  c.coalesce_window =
      std::chrono::microseconds(j.value("coalesce_window_us", c.coalesce_window.count()));
  c.max_clients = j.value("max_clients", c.max_clients);
  c.progress_interval = detail::millis_from_seconds(
      j.value("progress_interval_s", detail::seconds_of(c.progress_interval)));
  c.observer_queue_capacity = j.value("observer_queue_capacity", c.observer_queue_capacity);
  c.keep_records = j.value("keep_records", c.keep_records);
  c.raise_fd_limit = j.value("raise_fd_limit", c.raise_fd_limit);
  if (j.contains("start_at_unix_ns")) c.start_at = start_at_from_json(j.at("start_at_unix_ns"));
  detail::check_whole_numbers(j, nlohmann::json(c), "group config: ");
}

namespace {

struct Worker {
  explicit Worker(const ClientConfig& c) : client(c) {}
  VLLMClient client;
  std::thread thread;
};

constexpr auto kDispatchTick = std::chrono::milliseconds(10);

}  // namespace

struct ClientGroup::State {
  State(GroupConfig c, std::vector<Prompt> p)
      : config(std::move(c)),
        prompts(std::move(p)),
        observers(static_cast<std::size_t>(config.observer_queue_capacity)),
        schedule(make_schedule(config, prompts)) {}

  // A self-timed load sends at its prompts' arrival times, counted from the first.
  static ArrivalSchedule make_schedule(const GroupConfig& c, const std::vector<Prompt>& prompts) {
    if (!c.load.self_timed) return ArrivalSchedule(c.load, c.shard);
    std::vector<std::chrono::nanoseconds> offsets;
    offsets.reserve(prompts.size());
    for (const auto& p : prompts) {
      if (p.arrival_s < 0)
        throw Error(ErrorCode::invalid_argument,
                    "self_timed needs prompts with arrival times (the timed_trace dataset)");
      offsets.emplace_back(
          static_cast<std::int64_t>(std::llround((p.arrival_s - prompts.front().arrival_s) * 1e9)));
    }
    return ArrivalSchedule(c.load, c.shard, std::move(offsets));
  }

  GroupConfig config;
  std::vector<Prompt> prompts;
  std::vector<PreparedRequest> prepared;
  detail::ObserverChannel observers;
  std::atomic<bool> started{false};
  std::atomic<bool> stop_requested{false};
  std::function<void()> before_measuring;  // see ClientGroup::before_measuring

  // The schedule, handed out one slot at a time to whichever client is free.
  std::mutex schedule_mutex;
  ArrivalSchedule schedule;
  bool schedule_done = false;
  bool infinite_rate = false;
  // Set by run() once, read by progress() from any thread.
  std::atomic<MonoNanos> start_ns{0};
  MonoNanos duration_end_ns = -1;

  std::mutex workers_mutex;
  std::vector<std::unique_ptr<Worker>> workers;
  std::int64_t worker_limit = 1;
  std::atomic<std::int64_t> free_workers{0};
  std::atomic<std::int64_t> running_workers{0};

  std::condition_variable leader_cv;  // free clients waiting to lead (with schedule_mutex)
  std::condition_variable sleep_cv;   // the leader waiting for its slot (with schedule_mutex)
  bool leader_taken = false;
  int leader_waiters = 0;
  std::optional<ScheduledRequest> pending_slot;  // drawn from the schedule, not yet sent

  std::mutex done_mutex;
  std::vector<RequestRecord> done;
  std::condition_variable dispatcher_cv;
  std::atomic<bool> need_workers{false};

  std::atomic<std::uint64_t> in_flight{0};
  std::atomic<std::uint64_t> completed{0}, failed{0};
  std::atomic<std::int64_t> output_tokens{0};
  std::atomic<std::uint64_t> total{0};  // set by run(), read by progress()

  std::vector<std::unique_ptr<detail::EventLoop>> loops;
  std::vector<std::thread> loop_threads;
  std::vector<std::string> raw_requests;
  // Held for the run, so that every client made later (on the controller's thread) shares it
  // and none can fail to load the CA certificates there.
  std::shared_ptr<const detail::TlsContext> tls_context;

  void spawn_worker();
  void worker_loop(Worker& w);
  void deliver(RequestRecord&& rec);
  /// With schedule_mutex held: makes pending_slot the next slot to send; false when none is
  /// left (schedule exhausted or the duration over). The one place the schedule is read.
  bool draw_pending(MonoNanos now);
  std::optional<ScheduledRequest> take_due_slot(MonoNanos now, MonoNanos& next_due);
  MonoNanos scheduled_time(const ScheduledRequest& slot, MonoNanos now) const {
    const MonoNanos t = start_ns.load(std::memory_order_relaxed) + slot.offset.count();
    // With an infinite rate nothing is scheduled: a request is due when a client is free.
    return infinite_rate ? std::max(t, now) : t;
  }
  ProgressSnapshot snapshot(MonoNanos now) const {
    ProgressSnapshot s;
    const MonoNanos start = start_ns.load();
    s.elapsed_s = start > 0 ? static_cast<double>(now - start) * 1e-9 : 0.0;
    s.completed = completed.load();
    s.failed = failed.load();
    s.in_flight = in_flight.load();
    s.total = total;
    s.output_tokens = output_tokens.load();
    if (s.elapsed_s > 0) {
      s.request_throughput = static_cast<double>(s.completed) / s.elapsed_s;
      s.output_throughput = static_cast<double>(s.output_tokens) / s.elapsed_s;
    }
    return s;
  }
};

void ClientGroup::State::spawn_worker() {
  // Called with workers_mutex held.
  auto w = std::make_unique<Worker>(config.client);
  if (stop_requested.load()) w->client.cancel();
  Worker& ref = *w;
  free_workers.fetch_add(1);
  running_workers.fetch_add(1);
  workers.push_back(std::move(w));
  ref.thread = std::thread([this, &ref] { worker_loop(ref); });
}

void ClientGroup::State::worker_loop(Worker& w) {
  // Wake-ups to the microsecond: the default 50 us timer slack would show up as lateness.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  for (;;) {
    // Leader/followers: one free client (the leader) waits for the next slot while the others
    // wait to lead. Claiming slots ahead would make every client hold a connection it may
    // not need.
    ScheduledRequest slot;
    MonoNanos scheduled = 0;
    {
      std::unique_lock lock(schedule_mutex);
      ++leader_waiters;
      leader_cv.wait(lock, [&] { return stop_requested.load() || schedule_done || !leader_taken; });
      --leader_waiters;
      if (stop_requested.load() || schedule_done) break;
      if (!draw_pending(mono_now())) {
        leader_cv.notify_all();
        break;
      }
      scheduled = scheduled_time(*pending_slot, mono_now());
      if (scheduled > mono_now()) {
        // Only a slot in the future needs a leader to wait for it; a due one is simply taken,
        // so a run at full speed never passes through a condition variable.
        leader_taken = true;
        const auto due = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(scheduled));
        sleep_cv.wait_until(lock, due, [&] { return stop_requested.load(); });
        leader_taken = false;
        if (stop_requested.load()) {
          leader_cv.notify_all();
          break;
        }
      }
      slot = *pending_slot;
      pending_slot.reset();
      if (leader_waiters > 0) leader_cv.notify_one();
    }
    if (infinite_rate) scheduled = scheduled_time(slot, mono_now());  // due when a client is free
    if (free_workers.fetch_sub(1) == 1) {
      need_workers.store(true);
      dispatcher_cv.notify_one();
    }
    const PreparedRequest& request = prepared[slot.index % prepared.size()];
    in_flight.fetch_add(1);
    RequestRecord rec =
        w.client.send(request, scheduled, detail::request_id(config.client, slot.index));
    in_flight.fetch_sub(1);
    rec.index = slot.index;
    deliver(std::move(rec));
    free_workers.fetch_add(1);
  }
  running_workers.fetch_sub(1);
  dispatcher_cv.notify_one();
}

void ClientGroup::State::deliver(RequestRecord&& rec) {
  if (rec.ok()) {
    completed.fetch_add(1, std::memory_order_relaxed);
    output_tokens.fetch_add(rec.output_tokens, std::memory_order_relaxed);
  } else if (rec.error != RequestError::cancelled) {
    failed.fetch_add(1, std::memory_order_relaxed);
  }
  std::lock_guard lock(done_mutex);
  done.push_back(std::move(rec));
}

bool ClientGroup::State::draw_pending(MonoNanos now) {
  if (schedule_done) return false;
  // A slot drawn ahead is dropped too once the duration is over.
  if (duration_end_ns >= 0 && now >= duration_end_ns) {
    schedule_done = true;
    pending_slot.reset();
    return false;
  }
  if (!pending_slot) {
    pending_slot = schedule.next();
    if (!pending_slot) schedule_done = true;
  }
  return !schedule_done;
}

std::optional<ScheduledRequest> ClientGroup::State::take_due_slot(MonoNanos now,
                                                                  MonoNanos& next_due) {
  std::lock_guard lock(schedule_mutex);
  next_due = -1;
  if (!draw_pending(now)) return std::nullopt;
  const MonoNanos due = scheduled_time(*pending_slot, now);
  if (due > now) {
    next_due = due;
    return std::nullopt;
  }
  auto slot = pending_slot;
  pending_slot.reset();
  return slot;
}

ClientGroup::ClientGroup(GroupConfig config, std::vector<Prompt> prompts) {
  config.validate();
  // As vLLM's benchmark: request ids unique to this run unless a prefix was given.
  if (!config.client.request_id_prefix)
    config.client.request_id_prefix =
        fmt::format("bench-{:08x}-", std::random_device{}() & 0xffffffffu);
  if (prompts.empty())
    throw Error(ErrorCode::invalid_argument, "a client group needs at least one prompt");
  state_ = std::make_unique<State>(std::move(config), std::move(prompts));
}

ClientGroup::~ClientGroup() {
  if (!state_) return;
  stop();
  std::lock_guard lock(state_->workers_mutex);
  for (auto& w : state_->workers)
    if (w->thread.joinable()) w->thread.join();
  for (auto& t : state_->loop_threads)
    if (t.joinable()) t.join();
}

ObserverHandle ClientGroup::add_observer(std::shared_ptr<Observer> observer) {
  if (state_->started.load())
    throw Error(ErrorCode::invalid_state, "observers must be added before run()");
  if (!observer) throw Error(ErrorCode::invalid_argument, "add_observer: the observer is null");
  return state_->observers.add(std::move(observer));
}

bool ClientGroup::remove_observer(ObserverHandle handle) {
  return state_->observers.remove(handle);
}

void ClientGroup::before_measuring(std::function<void()> hook) {
  if (state_->started.load())
    throw Error(ErrorCode::invalid_state, "before_measuring must be set before run()");
  state_->before_measuring = std::move(hook);
}

bool ClientGroup::stopping() const noexcept { return state_->stop_requested.load(); }

void ClientGroup::stop() noexcept {
  auto& s = *state_;
  s.stop_requested.store(true);
  { std::lock_guard lock(s.schedule_mutex); }
  s.sleep_cv.notify_all();
  s.leader_cv.notify_all();
  {
    std::lock_guard lock(s.workers_mutex);
    for (auto& w : s.workers) w->client.cancel();
    for (auto& loop : s.loops) loop->wake();
  }
  { std::lock_guard lock(s.done_mutex); }  // the dispatcher is waiting, or sees the flag
  s.dispatcher_cv.notify_all();
}

ProgressSnapshot ClientGroup::progress() const { return state_->snapshot(mono_now()); }

BenchmarkResult ClientGroup::run_at(std::chrono::system_clock::time_point start) {
  if (state_->started.load())
    throw Error(ErrorCode::invalid_state, "a client group runs only once");
  state_->config.start_at = start;
  return run();
}

BenchmarkResult ClientGroup::run() {
  auto& s = *state_;
  if (s.started.exchange(true))
    throw Error(ErrorCode::invalid_state, "a client group runs only once");
  const auto& load = s.config.load;
  BenchmarkResult result;
  result.aggregate = MetricsAggregate(s.config.summary.goodput);

  // Observers get copies through their own queue; nothing here waits for them.
  MonoNanos earliest_scheduled = -1;
  auto take = [&](RequestRecord&& rec) {
    // The first slot of the schedule tells when this process actually began sending.
    if (!rec.warmup && rec.scheduled_ns >= 0 && rec.send_ns >= 0 &&
        (earliest_scheduled < 0 || rec.scheduled_ns < earliest_scheduled)) {
      earliest_scheduled = rec.scheduled_ns;
      result.first_send_late_ns = rec.send_ns - rec.scheduled_ns;
    }
    if (!rec.warmup && !rec.ok() && rec.error != RequestError::cancelled &&
        result.first_errors.size() < BenchmarkResult::kMaxFirstErrors)
      result.first_errors.push_back(fmt::format("{}: {}", to_string(rec.error), rec.error_message));
    s.observers.request_finished(rec);
    result.aggregate.add(rec);
    if (s.config.keep_records) result.records.push_back(std::move(rec));
  };

  {
    VLLMClient preparer(s.config.client);
    s.prepared.reserve(s.prompts.size());
    for (std::size_t i = 0; i < s.prompts.size(); ++i) {
      const Prompt& p = s.prompts[i];
      s.prepared.push_back(preparer.prepare(
          RequestSpec{p.text, p.output_tokens, p.input_tokens, p.input_tokens_exact,
                      nlohmann::json::object(), s.config.client.model_for_request(i, load.seed)}));
    }
  }
  // As vLLM's benchmark: the warm-ups are copies of the first request, sent together (at most
  // this process's share of max_concurrency at once) before the clock starts.
  if (load.num_warmups > 0) {
    const std::int64_t share = s.schedule.shard_max_concurrency();
    const std::int64_t parallel =
        std::min({load.num_warmups, share > 0 ? share : load.num_warmups, s.config.max_clients});
    std::atomic<std::int64_t> next{0};
    std::mutex done_mutex;
    std::vector<RequestRecord> done;
    std::vector<std::thread> senders;
    for (std::int64_t t = 0; t < parallel; ++t)
      senders.emplace_back([&] {
        VLLMClient client(s.config.client);
        for (std::int64_t i = next++; i < load.num_warmups && !s.stop_requested.load();
             i = next++) {
          auto rec = client.send(s.prepared.front());
          rec.warmup = true;
          rec.index = static_cast<std::uint64_t>(i);
          std::lock_guard lock(done_mutex);
          done.push_back(std::move(rec));
        }
      });
    for (auto& t : senders) t.join();
    for (auto& rec : done) take(std::move(rec));
  }
  if (s.before_measuring && !s.stop_requested.load()) s.before_measuring();

  s.infinite_rate =
      std::isinf(load.request_rate) && load.ramp_up_strategy == RampUp::none && !load.self_timed;
  // Every stream is a socket: allow as many as the hard limit permits, when asked to.
  if (rlimit limit{}; s.config.raise_fd_limit && getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
                      limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (const auto n = s.schedule.global_size()) {
    const auto nranks = s.config.shard.nranks, rank = s.config.shard.rank;
    s.total = *n / nranks + (rank < *n % nranks ? 1 : 0);
  }
  const std::int64_t share = s.schedule.shard_max_concurrency();
  // max_clients bounds an unbounded concurrency only: an explicit max_concurrency is reached,
  // never silently capped.
  s.worker_limit = share > 0 ? share : s.config.max_clients;
  if (s.total > 0)
    s.worker_limit = std::min<std::int64_t>(s.worker_limit, static_cast<std::int64_t>(s.total));
  s.worker_limit = std::max<std::int64_t>(s.worker_limit, 1);
  // Enough clients from the start for what the schedule can demand at once; more on demand.
  std::int64_t initial = s.worker_limit;
  if (load.self_timed) {
    initial = std::min<std::int64_t>(s.worker_limit, 64);  // more join as the trace demands
  } else if (!s.infinite_rate) {
    const double rate = load.ramp_up_strategy == RampUp::none
                            ? load.request_rate
                            : static_cast<double>(load.ramp_up_end_rps);
    initial = std::min<std::int64_t>(
        s.worker_limit, std::max<std::int64_t>(16, static_cast<std::int64_t>(rate / 4)));
  }

  result.anchor = ClockAnchor::now();
  // Time zero a little ahead, so that the first requests do not count thread start-up as lateness.
  MonoNanos start = result.anchor.mono_ns + 2'000'000 + initial * 30'000;
  if (s.config.start_at) {
    const std::int64_t at_unix = detail::nanos_of(s.config.start_at->time_since_epoch());
    start = std::max(start, result.anchor.mono_ns + (at_unix - result.anchor.unix_ns));
  }
  s.start_ns = start;
  if (load.duration.count() > 0) s.duration_end_ns = s.start_ns + detail::nanos_of(load.duration);
  s.tls_context = detail::tls_context_for(s.config.client);
  const bool use_loops = s.config.transport != Transport::threads;
  {
    std::lock_guard lock(s.workers_mutex);
    if (use_loops) {
      const std::string head = detail::raw_request_head(s.config.client);
      s.raw_requests.reserve(s.prepared.size());
      for (const auto& p : s.prepared)
        s.raw_requests.push_back(detail::build_raw_request(head, p.body));
      detail::LoopHooks hooks;
      hooks.take_due_slot = [&s](MonoNanos now, MonoNanos& next_due) {
        return s.take_due_slot(now, next_due);
      };
      hooks.has_more_slots = [&s] {
        std::lock_guard lock(s.schedule_mutex);
        return s.draw_pending(mono_now());
      };
      hooks.scheduled_time = [&s](const ScheduledRequest& slot, MonoNanos now) {
        return s.scheduled_time(slot, now);
      };
      hooks.deliver = [&s](RequestRecord&& rec) { s.deliver(std::move(rec)); };
      hooks.stop = &s.stop_requested;
      hooks.closed_loop = s.infinite_rate;
      hooks.coalesce_window = detail::nanos_of(s.config.coalesce_window);
      hooks.in_flight = &s.in_flight;
      const auto n = std::min<std::int64_t>(s.config.io_threads, s.worker_limit);
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t cap = s.worker_limit / n + (i < s.worker_limit % n ? 1 : 0);
        s.loops.push_back(std::make_unique<detail::EventLoop>(s.config.client, s.prepared,
                                                              s.raw_requests, cap, hooks));
      }
      s.running_workers.store(n);
      for (auto& loop : s.loops)
        s.loop_threads.emplace_back([&s, l = loop.get()] {
          l->run();
          s.running_workers.fetch_sub(1);
          s.dispatcher_cv.notify_one();
        });
    } else {
      for (std::int64_t i = 0; i < initial && !s.stop_requested.load(); ++i) s.spawn_worker();
    }
  }
  s.observers.run_started(result.anchor, s.total);

  MonoNanos next_progress = s.start_ns + detail::nanos_of(s.config.progress_interval);
  std::vector<RequestRecord> batch;
  for (;;) {
    {
      // Nothing can finish before time zero: an agent waiting seconds for a coordinated start
      // ticks 4 times a second, not 100 (64 agents on a loaded node were 6,400 wake-ups a
      // second). A stop ends the wait.
      const MonoNanos until_start = s.start_ns - mono_now();
      const bool before_start = until_start > 0 && !s.stop_requested.load();
      const auto tick = before_start ? std::clamp<std::chrono::nanoseconds>(
                                           std::chrono::nanoseconds(until_start), kDispatchTick,
                                           std::chrono::milliseconds(250))
                                     : std::chrono::nanoseconds(kDispatchTick);
      std::unique_lock lock(s.done_mutex);
      s.dispatcher_cv.wait_for(lock, tick, [&] { return before_start && s.stop_requested.load(); });
      batch.swap(s.done);
    }
    for (auto& rec : batch) take(std::move(rec));
    batch.clear();
    const MonoNanos now = mono_now();
    {
      std::lock_guard lock(s.workers_mutex);
      if (s.need_workers.exchange(false) && !s.stop_requested.load()) {
        std::lock_guard slock(s.schedule_mutex);
        const bool more = !s.schedule_done;
        for (int i = 0;
             more && i < 8 && static_cast<std::int64_t>(s.workers.size()) < s.worker_limit &&
             s.free_workers.load() < 2;
             ++i)
          s.spawn_worker();
      }
    }
    if (now >= next_progress) {
      s.observers.progress(s.snapshot(now));
      next_progress = now + detail::nanos_of(s.config.progress_interval);
    }
    if (s.running_workers.load() == 0) {
      std::lock_guard lock(s.done_mutex);
      if (s.done.empty()) break;
    }
  }
  result.end_ns = mono_now();
  {
    std::lock_guard lock(s.workers_mutex);
    for (auto& w : s.workers)
      if (w->thread.joinable()) w->thread.join();
    for (auto& t : s.loop_threads)
      if (t.joinable()) t.join();
  }
  result.start_ns = s.start_ns;
  result.interrupted = s.stop_requested.load();
  // The run ends with its last response, not with the dispatcher's tick.
  MonoNanos last_end = s.start_ns;
  for (const auto& r : result.records)
    if (!r.warmup) last_end = std::max(last_end, r.end_ns);
  if (s.config.keep_records && !result.records.empty())
    result.end_ns = std::min(result.end_ns, last_end);
  result.duration_s = static_cast<double>(result.end_ns - s.start_ns) * 1e-9;
  result.summary = s.config.keep_records
                       ? summarize(result.records, result.duration_s, s.config.summary)
                       : summarize(result.aggregate, result.duration_s, s.config.summary);
  // The run returns once observers have seen its end.
  s.observers.run_finished(s.snapshot(result.end_ns));
  s.observers.finish();
  result.observer_errors = s.observers.errors();
  result.first_observer_error = s.observers.first_error();
  result.observer_events_dropped = s.observers.dropped();
  return result;
}

}  // namespace aifc
