#include "aifc/agent.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "aifc/benchmark.hpp"
#include "aifc/clock_sync.hpp"
#include "aifc/error.hpp"
#include "http/url.hpp"
#include "util/durations.hpp"

namespace aifc {
namespace {

std::string env_or(const char* name, const std::string& fallback = {}) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::uint32_t env_number(const char* name, std::uint32_t fallback) {
  const auto text = env_or(name);
  if (text.empty()) return fallback;
  try {
    std::size_t used = 0;
    const auto v = std::stoul(text, &used);
    if (used == text.size() && v <= 1'000'000) return static_cast<std::uint32_t>(v);
  } catch (const std::exception&) {
  }
  throw Error(ErrorCode::invalid_argument, fmt::format("{}='{}' is not a rank number", name, text));
}

nlohmann::json progress_json(const ProgressSnapshot& p) {
  return {{"elapsed_s", p.elapsed_s},
          {"completed", p.completed},
          {"failed", p.failed},
          {"in_flight", p.in_flight},
          {"total", p.total},
          {"output_tokens", p.output_tokens},
          {"request_throughput", p.request_throughput},
          {"output_throughput", p.output_throughput}};
}

}  // namespace

AgentConfig AgentConfig::from_environment() {
  AgentConfig c;
  auto need = [](const char* name) {
    auto v = env_or(name);
    if (v.empty())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{} is not set (the client group's Slurm job sets it)", name));
    return v;
  };
  c.service_url = need("AIFC_SERVICE_URL");
  c.group_id = need("AIFC_GROUP_ID");
  c.token = need("AIFC_AGENT_TOKEN");
  c.rank = env_number("SLURM_PROCID", 0);
  c.nranks = env_number("SLURM_NTASKS", 1);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  c.node = env_or("SLURMD_NODENAME", host);
  c.output_dir = env_or("AIFC_AGENT_DIR", ".");
  c.server_api_key = env_or("OPENAI_API_KEY");
  if (const auto limit = env_or("AIFC_AGENT_OUTAGE_LIMIT_S"); !limit.empty())
    c.service_outage_limit = std::chrono::seconds(env_number("AIFC_AGENT_OUTAGE_LIMIT_S", 600));
  c.validate();
  return c;
}

void AgentConfig::validate() const {
  auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  if (service_url.rfind("http://", 0) != 0)
    bad(fmt::format("service_url must be an http:// URL (got '{}')", service_url));
  if (group_id.empty()) bad("group_id must not be empty");
  if (token.empty()) bad("token must not be empty");
  if (nranks < 1 || rank >= nranks)
    bad(fmt::format("rank {} is not below nranks {}", rank, nranks));
  if (records_per_batch < 1) bad("records_per_batch must be at least 1");
  if (clock_samples < 1) bad("clock_samples must be at least 1");
}

// What an agent has measured so far, for the partial results it sends while it runs: the
// aggregate of every finished request and the records not sent yet (at most `max_pending`; older
// ones beyond that, while the service cannot be reached, are dropped: the final result still
// has them). Fed by an Observer, so it never slows the run.
class PartialCollector : public Observer {
 public:
  PartialCollector(GoodputSlo goodput, bool keep_records, std::size_t max_pending)
      : aggregate_(goodput),
        sent_(goodput),
        keep_records_(keep_records),
        max_pending_(max_pending) {}

  void on_run_started(const ClockAnchor& anchor, std::uint64_t) override {
    std::lock_guard lock(mutex_);
    anchor_ = anchor;
    started_ = true;
  }
  void on_request_finished(const RequestRecord& r) override {
    std::lock_guard lock(mutex_);
    aggregate_.add(r);
    // How late the schedule's first request left: this agent's actual start.
    if (!r.warmup && r.scheduled_ns >= 0 && r.send_ns >= 0 &&
        (first_scheduled_ns_ < 0 || r.scheduled_ns < first_scheduled_ns_)) {
      first_scheduled_ns_ = r.scheduled_ns;
      first_send_late_ns_ = r.send_ns - r.scheduled_ns;
    }
    if (!keep_records_) return;
    if (pending_.size() >= max_pending_) {
      pending_.erase(pending_.begin());
      ++dropped_;
    }
    pending_.push_back(r);
  }

  /// The next partial message (up to `batch` records), or null before the run started. The
  /// records leave the collector only when commit() says the service has them.
  nlohmann::json next(std::size_t batch, std::uint64_t seq, MonoNanos start_mono_ns) {
    std::lock_guard lock(mutex_);
    if (!started_) return nullptr;
    taken_ = std::min(batch, pending_.size());
    nlohmann::json records = nlohmann::json::array();
    for (std::size_t i = 0; i < taken_; ++i) records.push_back(pending_[i]);
    // The aggregate counts exactly the records sent so far plus these, unless some were
    // dropped here (then the service merges this part from its aggregate).
    MetricsAggregate upto(aggregate_.goodput());
    upto.merge(sent_);
    for (std::size_t i = 0; i < taken_; ++i) upto.add(pending_[i]);
    return {{"seq", seq},
            {"records", std::move(records)},
            {"keep_records", keep_records_},
            {"aggregate", keep_records_ && dropped_ == 0 ? upto.to_json() : aggregate_.to_json()},
            {"records_dropped", dropped_},
            {"anchor", {{"mono_ns", anchor_.mono_ns}, {"unix_ns", anchor_.unix_ns}}},
            {"start_mono_ns", start_mono_ns},
            {"until_mono_ns", mono_now()},
            {"first_send_late_ns", first_send_late_ns_}};
  }
  void commit() {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < taken_; ++i) sent_.add(pending_[i]);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(taken_));
    taken_ = 0;
  }
  bool has_pending() const {
    std::lock_guard lock(mutex_);
    return !pending_.empty();
  }

 private:
  mutable std::mutex mutex_;
  MetricsAggregate aggregate_;  // every record observed
  MetricsAggregate sent_;       // the records the service has
  std::deque<RequestRecord> pending_;
  std::size_t taken_ = 0;
  ClockAnchor anchor_;
  bool started_ = false;
  bool keep_records_;
  std::size_t max_pending_;
  std::uint64_t dropped_ = 0;
  MonoNanos first_scheduled_ns_ = -1;
  std::int64_t first_send_late_ns_ = 0;
};

struct Agent::Impl {
  AgentConfig config;
  std::string prefix;  // /api/v1/client-group/<id>/agents/<rank>
  std::unique_ptr<httplib::Client> http;
  std::mutex http_mutex;  // httplib::Client is used by the main and the heartbeat thread
  std::atomic<bool> stop_requested{false};
  std::mutex bench_mutex;
  Benchmark* bench = nullptr;
  std::mt19937_64 rng{std::random_device{}()};

  struct Reply {
    int status = 0;
    nlohmann::json body;
  };

  // One request; status 0 when the service could not be reached.
  Reply once(const std::string& method, const std::string& path, const nlohmann::json& body) {
    std::lock_guard lock(http_mutex);
    const httplib::Headers headers = {{"Authorization", "Bearer " + config.token}};
    httplib::Result res = method == "GET"
                              ? http->Get(path.c_str(), headers)
                              : http->Post(path.c_str(), headers, body.dump(), "application/json");
    Reply r;
    if (!res) return r;
    r.status = res->status;
    try {
      r.body = res->body.empty() ? nlohmann::json::object() : nlohmann::json::parse(res->body);
    } catch (const nlohmann::json::exception&) {
      r.body = {{"error", res->body.substr(0, 200)}};
    }
    return r;
  }

  // Retries while the service is unreachable or answers 5xx, with exponential backoff and
  // jitter, for up to the outage limit. A 4xx answer is returned to the caller.
  Reply call(const std::string& method, const std::string& path,
             const nlohmann::json& body = nlohmann::json::object()) {
    const auto give_up = std::chrono::steady_clock::now() + config.service_outage_limit;
    double backoff_ms = 100;
    for (;;) {
      Reply r = once(method, path, body);
      if (r.status == 401)
        throw Error(ErrorCode::server_error, "the service refused this agent's token");
      if (r.status != 0 && r.status < 500) return r;
      if (std::chrono::steady_clock::now() >= give_up)
        throw Error(ErrorCode::connection_failed,
                    fmt::format("the service at {} stayed unreachable for {} s ({})",
                                config.service_url, config.service_outage_limit.count(),
                                r.status ? fmt::format("status {}", r.status) : "no answer"));
      std::uniform_real_distribution<double> jitter(0.5, 1.5);
      std::this_thread::sleep_for(
          std::chrono::microseconds(static_cast<std::int64_t>(backoff_ms * 1000 * jitter(rng))));
      backoff_ms = std::min(backoff_ms * 2, 5000.0);
    }
  }

  Reply expect_ok(const std::string& method, const std::string& what,
                  const nlohmann::json& body = nlohmann::json::object()) {
    auto r = call(method, prefix + "/" + what, body);
    if (r.status / 100 != 2)
      throw Error(ErrorCode::server_error,
                  fmt::format("the service refused {} ({}): {}", what, r.status,
                              r.body.value("error", r.body.dump())));
    return r;
  }

  ClockOffset measure_clock() {
    call("GET", prefix + "/clock");  // opens the connection the samples then share
    std::vector<ClockSample> samples;
    for (int i = 0; i < config.clock_samples; ++i) {
      ClockSample s;
      s.sent_ns = unix_now_ns();
      auto r = call("GET", prefix + "/clock");
      s.received_ns = unix_now_ns();
      if (r.status != 200 || !r.body.contains("unix_ns")) continue;
      s.reference_ns = r.body["unix_ns"].get<std::int64_t>();
      samples.push_back(s);
    }
    const auto estimate = estimate_clock_offset(samples);
    if (estimate.samples == 0)
      throw Error(ErrorCode::server_error, "the service's clock could not be read");
    return estimate;
  }

  nlohmann::json heartbeat(const std::string& state, const nlohmann::json& progress = {},
                           const std::string& error = {},
                           const nlohmann::json& clock = nlohmann::json::object()) {
    nlohmann::json body = clock;
    body["state"] = state;
    if (!progress.is_null()) body["progress"] = progress;
    if (!error.empty()) body["error"] = error;
    return expect_ok("POST", "heartbeat", body).body;
  }

  void upload(const Benchmark& benchmark, const BenchmarkResult& result) {
    auto document = benchmark.result_document(result, false);
    // The raw result, in full, beside the job's output: a service that lost it reads it here.
    const auto file = std::filesystem::path(config.output_dir) /
                      fmt::format("aifc-{}-rank{}.json", config.group_id, config.rank);
    {
      auto full = benchmark.result_document(result, true);
      std::ofstream out(file);
      out << full.dump() << '\n';
    }
    const auto batch = static_cast<std::size_t>(config.records_per_batch);
    const std::size_t batches = (result.records.size() + batch - 1) / batch;
    auto send_batches = [&] {
      for (std::size_t seq = 0; seq < batches; ++seq) {
        nlohmann::json records = nlohmann::json::array();
        for (std::size_t i = seq * batch; i < std::min(result.records.size(), (seq + 1) * batch);
             ++i)
          records.push_back(result.records[i]);
        expect_ok("POST", "records", {{"seq", seq}, {"records", std::move(records)}});
      }
    };
    send_batches();
    const nlohmann::json body = {{"document", document}, {"record_batches", batches}};
    auto r = call("POST", prefix + "/result", body);
    if (r.status == 409) {  // a batch went missing (a service restart): once more
      send_batches();
      r = call("POST", prefix + "/result", body);
    }
    if (r.status / 100 != 2)
      throw Error(ErrorCode::server_error,
                  fmt::format("the service refused the result ({}): {}", r.status,
                              r.body.value("error", r.body.dump())));
  }

  int run() {
    const auto url = detail::parse_url(config.service_url);
    http = std::make_unique<httplib::Client>(url.host, std::stoi(url.port));
    http->set_connection_timeout(std::chrono::seconds(5));
    http->set_read_timeout(std::chrono::seconds(60));
    http->set_write_timeout(std::chrono::seconds(60));
    http->set_keep_alive(true);
    prefix =
        url.prefix + fmt::format("/api/v1/client-group/{}/agents/{}", config.group_id, config.rank);

    auto clock = measure_clock();
    // The clock exchanges shared one kept-alive connection (no handshake inside a round trip);
    // from here on every call has a connection of its own, so that an agent never holds one of
    // the service's worker threads between its heartbeats (64 agents against 16 workers waited
    // seconds for theirs, and started up to 10 s late).
    {
      std::lock_guard lock(http_mutex);
      http->set_keep_alive(false);
    }
    auto reg = expect_ok("POST", "register",
                         {{"node", config.node},
                          {"hostname", config.node},
                          {"pid", static_cast<std::int64_t>(::getpid())},
                          {"clock_offset_ns", clock.offset_ns},
                          {"clock_uncertainty_ns", clock.uncertainty_ns}});
    auto spec = reg.body.at("spec").get<BenchmarkSpec>();
    if (!config.server_api_key.empty()) spec.client.api_key = config.server_api_key;
    const auto interval =
        std::chrono::milliseconds(reg.body.value("heartbeat_interval_ms", std::int64_t{250}));
    const auto partial_interval =
        std::chrono::milliseconds(reg.body.value("partial_interval_ms", std::int64_t{2000}));

    heartbeat("preparing");
    std::unique_ptr<Benchmark> benchmark;
    try {
      benchmark = std::make_unique<Benchmark>(spec);
    } catch (const std::exception& e) {
      heartbeat("failed", {}, e.what());
      throw;
    }
    // Wait for the start instant (or the end of the group).
    std::int64_t start_at = 0;
    for (;;) {
      const auto hb = heartbeat("ready");
      if (hb.value("cancel", false) || stop_requested.load()) return 0;
      if (hb.contains("start_at_unix_ns") && hb["start_at_unix_ns"].is_number_integer()) {
        start_at = hb["start_at_unix_ns"].get<std::int64_t>();
        break;
      }
      std::this_thread::sleep_for(interval);
    }
    // The registration's exchanges ran while every agent of the group started at once; the
    // wait for the start instant is quiet, so a second burst usually bounds the offset tighter
    // (64 agents on two cores: from up to 7 ms to under 1 ms). Skipped when the instant is close.
    if (start_at - unix_now_ns() > 300'000'000) {
      ClockOffset again;
      {
        std::lock_guard lock(http_mutex);
        http->set_keep_alive(true);
      }
      try {
        again = measure_clock();
      } catch (const Error&) {
        // the registration's estimate stands
      }
      {
        std::lock_guard lock(http_mutex);
        http->set_keep_alive(false);
      }
      // Also closes the kept-alive connection, so that no service worker waits on it.
      if (again.samples > 0 && again.uncertainty_ns < clock.uncertainty_ns) {
        clock = again;
        heartbeat(
            "ready", {}, {},
            {{"clock_offset_ns", clock.offset_ns}, {"clock_uncertainty_ns", clock.uncertainty_ns}});
      } else {
        heartbeat("ready");
      }
    }
    // The service's instant on this machine's clock: reference = local + offset.
    const auto local_start = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(start_at - clock.offset_ns)));
    {
      std::lock_guard lock(bench_mutex);
      bench = benchmark.get();
    }
    if (stop_requested.load()) benchmark->stop();
    // Partial results while it runs, so that an agent killed mid-run loses only its last
    // seconds: the aggregate so far and the records finished since the last message.
    auto partials =
        std::make_shared<PartialCollector>(spec.summary.goodput, spec.keep_records,
                                           static_cast<std::size_t>(config.records_per_batch) * 10);
    benchmark->add_observer(partials);
    std::uint64_t partial_seq = 0;
    // The schedule's time zero on this machine's monotonic clock.
    const MonoNanos start_mono_ns =
        mono_now() + (detail::nanos_of(local_start.time_since_epoch()) - unix_now_ns());
    auto send_partials = [&] {
      // A failed send is kept for the next turn (same seq: the service stores it once).
      for (int round = 0; round < 8; ++round) {
        auto body = partials->next(static_cast<std::size_t>(config.records_per_batch), partial_seq,
                                   start_mono_ns);
        if (body.is_null()) return;
        if (once("POST", prefix + "/partial", body).status != 200) return;
        partials->commit();
        ++partial_seq;
        if (!partials->has_pending()) return;
      }
    };
    // Progress once a second; a heartbeat that fails is skipped (the run never waits for it).
    std::mutex beat_mutex;
    std::condition_variable beat_cv;
    bool running = true;
    std::thread beat([&] {
      std::unique_lock lock(beat_mutex);
      auto next_partial = std::chrono::steady_clock::now() + partial_interval;
      while (!beat_cv.wait_for(lock, std::chrono::seconds(1), [&] { return !running; })) {
        lock.unlock();
        const auto r =
            once("POST", prefix + "/heartbeat",
                 {{"state", "running"}, {"progress", progress_json(benchmark->progress())}});
        if (r.status == 200 && r.body.value("cancel", false)) benchmark->stop();
        if (std::chrono::steady_clock::now() >= next_partial) {
          send_partials();
          next_partial = std::chrono::steady_clock::now() + partial_interval;
        }
        lock.lock();
      }
    });
    BenchmarkResult result;
    try {
      result = benchmark->run_at(local_start);
    } catch (...) {
      {
        std::lock_guard lock(beat_mutex);
        running = false;
      }
      beat_cv.notify_all();
      beat.join();
      throw;
    }
    {
      std::lock_guard lock(beat_mutex);
      running = false;
    }
    beat_cv.notify_all();
    beat.join();
    {
      std::lock_guard lock(bench_mutex);
      bench = nullptr;
    }
    upload(*benchmark, result);
    heartbeat("finished", progress_json(benchmark->progress()));
    return 0;
  }
};

Agent::Agent(AgentConfig config) : impl_(std::make_unique<Impl>()) {
  config.validate();
  impl_->config = std::move(config);
}

Agent::~Agent() = default;

int Agent::run() { return impl_->run(); }

void Agent::stop() noexcept {
  impl_->stop_requested.store(true);
  std::lock_guard lock(impl_->bench_mutex);
  if (impl_->bench) impl_->bench->stop();
}

}  // namespace aifc
