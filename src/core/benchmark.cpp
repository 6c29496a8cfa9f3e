#include "aifc/benchmark.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <mutex>
#include <thread>

#include "aifc/error.hpp"
#include "aifc/server_metrics.hpp"
#include "aifc/version.hpp"
#include "metrics/record_json.hpp"
#include "util/json_numbers.hpp"

namespace aifc {
namespace {

// Runs one section's validate() and names the section in its message.
template <class Section>
void validate_section(const char* name, const Section& section) {
  try {
    section.validate();
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("{}: {}", name, e.what()));
  }
}

std::string local_stamp(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// A wall-clock instant as Python's datetime.isoformat() writes local time, which is what vLLM
// stores: 2026-11-29T19:05:01.123456.
std::string local_iso_time(std::int64_t unix_ns) {
  const std::time_t t = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06}", buf, (unix_ns % 1'000'000'000) / 1000);
}

// vLLM's rps_change_events: every whole rate a ramp-up passes, with the wall time of the first
// request sent at it. The global schedule is drawn again (it is deterministic) up to the run's
// end, so that an interrupted run lists only the rates it reached.
nlohmann::json rps_change_events(const LoadConfig& load, const BenchmarkResult& r) {
  nlohmann::json events = nlohmann::json::array();
  const std::int64_t start_unix_ns = r.anchor.unix_ns + (r.start_ns - r.anchor.mono_ns);
  const auto ran = std::chrono::nanoseconds(static_cast<std::int64_t>(r.summary.duration_s * 1e9));
  std::int64_t last = load.ramp_up_start_rps;
  events.push_back({{"rps", last}, {"timestamp", local_iso_time(start_unix_ns)}});
  ArrivalSchedule schedule(load);
  while (const auto slot = schedule.next()) {
    if (slot->offset > ran) break;
    const auto whole = static_cast<std::int64_t>(slot->rate);
    if (whole <= last) continue;
    const std::string at = local_iso_time(start_unix_ns + slot->offset.count());
    for (std::int64_t rps = last + 1; rps <= whole; ++rps)
      events.push_back({{"rps", rps}, {"timestamp", at}});
    last = whole;
  }
  return events;
}

}  // namespace

TableConfig table_config(const LoadConfig& load) {
  TableConfig c;
  if (!std::isinf(load.request_rate)) c.request_rate = load.request_rate;
  if (load.max_concurrency > 0) c.max_concurrency = load.max_concurrency;
  return c;
}

void BenchmarkSpec::validate() const {
  validate_section("client", client);
  validate_section("dataset", dataset);
  validate_section("load", load);
  validate_section("shard", shard);
  validate_section("summary", summary);
  if (simulator) validate_section("simulator", *simulator);
  auto bad = [](const std::string& what) { throw Error(ErrorCode::invalid_argument, what); };
  if (io_threads < 1) bad(fmt::format("io_threads must be at least 1 (got {})", io_threads));
  if (max_clients < 1) bad(fmt::format("max_clients must be at least 1 (got {})", max_clients));
  if (!(probe_request_rate >= 0 && probe_request_rate <= 1000))
    bad(fmt::format("probe_request_rate must be from 0 to 1000 requests/s (got {})",
                    probe_request_rate));
  if (ready_check_timeout.count() < 0 || ready_check_timeout > std::chrono::hours(24 * 7))
    bad(fmt::format("ready_check_timeout must be from 0 to a week (got {} s)",
                    ready_check_timeout.count()));
}

GroupConfig BenchmarkSpec::group_config() const {
  GroupConfig g;
  g.client = client;
  g.load = load;
  g.shard = shard;
  g.summary = summary;
  g.transport = transport;
  g.io_threads = io_threads;
  g.max_clients = max_clients;
  g.keep_records = keep_records;
  g.raise_fd_limit = raise_fd_limit;
  g.start_at = start_at;
  return g;
}

void to_json(nlohmann::json& j, const BenchmarkSpec& s) {
  j = nlohmann::json{{"client", s.client},
                     {"dataset", s.dataset},
                     {"load", s.load},
                     {"shard", s.shard},
                     {"summary", s.summary},
                     {"transport", s.transport},
                     {"io_threads", s.io_threads},
                     {"max_clients", s.max_clients},
                     {"keep_records", s.keep_records},
                     {"use_server_tokenizer", s.use_server_tokenizer},
                     {"raise_fd_limit", s.raise_fd_limit},
                     {"ready_check_timeout_s", s.ready_check_timeout.count()},
                     {"profile", s.profile},
                     {"probe_request_rate", s.probe_request_rate},
                     {"tokenizer", s.tokenizer},
                     {"start_at_unix_ns", start_at_to_json(s.start_at)},
                     {"simulator", s.simulator ? nlohmann::json(*s.simulator) : nullptr},
                     {"label", s.label},
                     {"metadata", s.metadata}};
}

void from_json(const nlohmann::json& j, BenchmarkSpec& s) {
  if (!j.is_object())
    throw Error(ErrorCode::invalid_argument, "a benchmark spec must be a JSON object");
  detail::check_json_numbers(j, "benchmark spec: ");
  static const char* const kKeys[] = {"client",
                                      "dataset",
                                      "load",
                                      "shard",
                                      "summary",
                                      "transport",
                                      "io_threads",
                                      "max_clients",
                                      "keep_records",
                                      "use_server_tokenizer",
                                      "raise_fd_limit",
                                      "ready_check_timeout_s",
                                      "simulator",
                                      "start_at_unix_ns",
                                      "label",
                                      "metadata",
                                      "profile",
                                      "tokenizer",
                                      "probe_request_rate"};
  for (const auto& [key, value] : j.items()) {
    if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("benchmark spec: unknown key '{}'", key));
  }
  s = BenchmarkSpec{};
  const char* section = "spec";
  try {
    auto take = [&](const char* key, auto& field) {
      section = key;
      if (j.contains(key)) j.at(key).get_to(field);
    };
    take("client", s.client);
    take("dataset", s.dataset);
    take("load", s.load);
    take("shard", s.shard);
    take("summary", s.summary);
    take("transport", s.transport);
    take("io_threads", s.io_threads);
    take("max_clients", s.max_clients);
    take("keep_records", s.keep_records);
    take("use_server_tokenizer", s.use_server_tokenizer);
    take("raise_fd_limit", s.raise_fd_limit);
    take("profile", s.profile);
    take("probe_request_rate", s.probe_request_rate);
    take("tokenizer", s.tokenizer);
    section = "ready_check_timeout_s";
    if (j.contains("ready_check_timeout_s"))
      s.ready_check_timeout =
          std::chrono::seconds(j.at("ready_check_timeout_s").get<std::int64_t>());
    take("label", s.label);
    take("metadata", s.metadata);
    section = "start_at_unix_ns";
    if (j.contains("start_at_unix_ns")) s.start_at = start_at_from_json(j.at("start_at_unix_ns"));
    section = "simulator";
    if (j.contains("simulator") && !j.at("simulator").is_null())
      s.simulator = j.at("simulator").get<SimulatorConfig>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("benchmark spec: {}: {}", section, e.what()));
  }
  detail::check_whole_numbers(j, nlohmann::json(s), "benchmark spec: ");
}

namespace {
// Asks GET /v1/models once a second until the server answers 200 (a server still loading its
// model refuses connections or answers 503), the timeout passes, or a stop is requested.
void wait_until_ready(VLLMClient& probe, std::chrono::seconds timeout, std::stop_token stop) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    try {
      probe.list_models();
      return;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::connection_failed && e.code() != ErrorCode::server_error) throw;
      if (std::chrono::steady_clock::now() >= deadline)
        throw Error(e.code(), fmt::format("the server was not ready within {} s: {}",
                                          timeout.count(), e.what()));
    }
    const auto next =
        std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    while (std::chrono::steady_clock::now() < next) {
      if (stop.stop_requested())
        throw Error(ErrorCode::interrupted, "stopped while waiting for the server to be ready");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}
}  // namespace

struct Benchmark::Impl {
  BenchmarkSpec spec;
  std::unique_ptr<Simulator> simulator;
  TokenizerApi tokenizer = TokenizerApi::none;
  std::vector<std::string> warnings;
  std::unique_ptr<ClientGroup> group;
};

Benchmark::Benchmark(BenchmarkSpec spec, std::stop_token stop) : impl_(std::make_unique<Impl>()) {
  auto check_stop = [&stop] {
    if (stop.stop_requested())
      throw Error(ErrorCode::interrupted, "stopped during the set-up; nothing was measured");
  };
  spec.validate();
  auto& s = *impl_;
  s.spec = std::move(spec);
  auto& client = s.spec.client;
  if (s.spec.simulator) {
    s.simulator = std::make_unique<Simulator>(*s.spec.simulator);
    s.simulator->start();
    client.base_url = s.simulator->base_url();
    if (client.model.empty()) client.model = s.spec.simulator->model;
  }
  // vLLM's benchmark once sent temperature 0 unless told; now neither does, and a run against a
  // real server should know that its sampling is the server's (the simulator has none).
  if (!s.spec.simulator && !client.sampling.temperature &&
      !client.extra_body.contains("temperature"))
    s.warnings.push_back(
        "no temperature given: the server's default sampling applies (often not greedy, so "
        "answers and their lengths vary between runs); --temperature 0 asks for greedy decoding");
  VLLMClient probe(client);
  if (s.spec.ready_check_timeout.count() > 0)
    wait_until_ready(probe, s.spec.ready_check_timeout, stop);
  if (client.model.empty()) {
    const auto models = probe.list_models();
    if (models.empty())
      throw Error(ErrorCode::server_error, fmt::format("{} serves no model", client.base_url));
    client.model = models.front();
    probe = VLLMClient(client);
  }
  TokenCounter counter;
  if (s.spec.use_server_tokenizer) {
    s.tokenizer = probe.probe_tokenizer();
    if (s.tokenizer != TokenizerApi::none)
      counter = [&probe, &check_stop](const std::string& text) {
        check_stop();  // each count is a round trip: the place to notice a stop
        return probe.count_tokens(text);
      };
    else
      s.warnings.push_back(
          "the server has no /tokenize that counts (tried the vLLM, llama.cpp and TGI request "
          "shapes); prompt lengths are estimates and the result says input_tokens_exact: false "
          "unless the server reports usage");
  }
  // A rank sends only its own slots (and the warm-ups, copies of the first prompt): when each
  // prompt serves one slot, only those prompts are built and fitted.
  PromptFilter needed;
  const auto& load = s.spec.load;
  if (s.spec.shard.nranks > 1 && load.duration.count() == 0 &&
      load.num_requests <= s.spec.dataset.num_prompts) {
    needed = [shard = s.spec.shard, warmups = load.num_warmups](std::int64_t i) {
      return (i == 0 && warmups > 0) || shard.owns(static_cast<std::uint64_t>(i));
    };
  }
  check_stop();
  auto prompts = load_dataset(s.spec.dataset, counter, needed);
  check_stop();
  // Without oversampling a short file sends each of its prompts once; a trace is never
  // repeated (its times are the point).
  const auto available = static_cast<std::int64_t>(prompts.size());
  if ((s.spec.dataset.no_oversample || s.spec.dataset.dataset_name == DatasetKind::timed_trace) &&
      s.spec.load.duration.count() == 0 && s.spec.load.num_requests > available) {
    s.warnings.push_back(fmt::format(
        "the dataset has {} usable prompts and {}: sending {} requests, not {}", available,
        s.spec.dataset.no_oversample ? "no_oversample is set" : "a trace is not repeated",
        available, s.spec.load.num_requests));
    s.spec.load.num_requests = available;
  }
  s.group = std::make_unique<ClientGroup>(s.spec.group_config(), std::move(prompts));
}

Benchmark::~Benchmark() {
  if (!impl_) return;
  impl_->group.reset();  // stops and joins before the simulator goes
  if (impl_->simulator) impl_->simulator->stop();
}

const BenchmarkSpec& Benchmark::spec() const noexcept { return impl_->spec; }
TokenizerApi Benchmark::tokenizer() const noexcept { return impl_->tokenizer; }
const std::vector<std::string>& Benchmark::warnings() const noexcept { return impl_->warnings; }

ObserverHandle Benchmark::add_observer(std::shared_ptr<Observer> observer) {
  return impl_->group->add_observer(std::move(observer));
}

bool Benchmark::remove_observer(ObserverHandle handle) {
  return impl_->group->remove_observer(handle);
}

namespace {

// vLLM's --profile: the server's profiler switched on around the run.
template <class Run>
BenchmarkResult profiled(const BenchmarkSpec& spec, Run&& run) {
  if (!spec.profile) return run();
  VLLMClient control(spec.client);
  auto call = [&control](const char* path, std::vector<std::string>& warnings) {
    const int status = control.post_control(path);
    if (status < 200 || status >= 300)
      warnings.push_back(
          status == 0 ? fmt::format("POST {} got no answer: the server was not profiled", path)
                      : fmt::format("POST {} answered HTTP {}: the server was not profiled (a "
                                    "vLLM server needs a profiler config)",
                                    path, status));
  };
  std::vector<std::string> warnings;
  call("/start_profile", warnings);
  BenchmarkResult result = run();
  call("/stop_profile", warnings);
  result.warnings.insert(result.warnings.end(), warnings.begin(), warnings.end());
  return result;
}

// A thread of the run's own beside the measured run: `work` runs on it and waits, with
// wait_for_start(), until the run begins (after the warm-ups; the group's observer thread says
// so). run() measures, then stops the thread: the wait ends, `client` is cancelled when the run
// was cut short (a call still waiting on the server ends too), and the thread is joined.
class BesideTheRun {
 public:
  BesideTheRun(ClientGroup& group, VLLMClient& client, std::function<void(BesideTheRun&)> work)
      : group_(group), client_(client) {
    signal_ = group.add_observer(std::make_shared<StartSignal>(*this));
    try {
      thread_ = std::thread([this, work = std::move(work)] { work(*this); });
    } catch (...) {
      group.remove_observer(signal_);
      throw;
    }
  }
  BesideTheRun(const BesideTheRun&) = delete;
  BesideTheRun& operator=(const BesideTheRun&) = delete;
  ~BesideTheRun() { stop(true); }

  template <class Run>
  BenchmarkResult run(Run&& measure) {
    BenchmarkResult result;
    try {
      result = measure();
    } catch (...) {
      stop(true);
      throw;
    }
    stop(result.interrupted);
    return result;
  }

  /// For `work`: true once the run has begun, false when it ended first.
  bool wait_for_start() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return started_ || stopped_; });
    return !stopped_;
  }
  /// For `work`: waits `pause` unless the run ends first; true when it has ended.
  bool stopped_within(std::chrono::nanoseconds pause) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, pause, [&] { return stopped_; });
  }

 private:
  struct StartSignal final : Observer {
    BesideTheRun& beside;
    explicit StartSignal(BesideTheRun& b) : beside(b) {}
    void on_run_started(const ClockAnchor&, std::uint64_t) override {
      {
        std::lock_guard lock(beside.mutex_);
        beside.started_ = true;
      }
      beside.cv_.notify_all();
    }
  };

  void stop(bool cancel) {
    {
      std::lock_guard lock(mutex_);
      if (stopped_ && !thread_.joinable()) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (cancel) client_.cancel();
    if (thread_.joinable()) thread_.join();
    group_.remove_observer(signal_);
  }

  ClientGroup& group_;
  VLLMClient& client_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool started_ = false, stopped_ = false;
  ObserverHandle signal_{};
  std::thread thread_;
};

// vLLM's speculative-decoding figures: the server's counters (GET /metrics) read once the
// warm-ups are done, just before the measured run (as vLLM's), and after it; nothing when the
// server has none. A rank of a distributed run does not read them: the ranks' readings of the
// same counters would not add up.
template <class Run>
BenchmarkResult with_spec_decode_stats(const BenchmarkSpec& spec, ClientGroup& group, Run&& run) {
  if (spec.shard.nranks > 1) return run();
  ClientConfig config = spec.client;
  // A server's metrics are never worth the run, nor more than a few seconds of its start.
  config.read_timeout = std::min(config.read_timeout, std::chrono::milliseconds(5000));
  std::optional<VLLMClient> control;
  try {
    control.emplace(config);
  } catch (...) {  // the run's own clients will say what is wrong
    return run();
  }
  auto read = [&control]() -> std::optional<SpecDecodeCounters> {
    try {
      if (auto text = control->metrics_text()) return parse_spec_decode_counters(*text);
    } catch (...) {
    }
    return std::nullopt;
  };
  std::optional<SpecDecodeCounters> before;
  group.before_measuring([&] { before = read(); });
  BenchmarkResult result = run();
  // An interrupted run ends at once: no second call to a server that may be the reason.
  if (before && !result.interrupted)
    if (const auto after = read()) result.spec_decode = spec_decode_stats(*before, *after);
  return result;
}

// vLLM's --probe-request-rate: a thread of the run's own sends one-token requests one after
// the other, 1/rate apart, from the run's start (after the warm-ups, as vLLM's) until the run is
// over. The probe in flight then is let finish, as vLLM's; an interrupted or failed run cancels
// it instead.
template <class Run>
BenchmarkResult probed(const BenchmarkSpec& spec, ClientGroup& group, Run&& run) {
  if (spec.probe_request_rate <= 0) return run();
  ClientConfig config = spec.client;
  config.lora_modules.clear();
  VLLMClient client(config);
  const PreparedRequest hi = client.prepare(RequestSpec{"Hi", 1, 1, false, {}, ""});
  const auto interval = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(1.0 / spec.probe_request_rate));
  std::vector<RequestRecord> probes;  // read by the main thread after the join only
  BesideTheRun prober(group, client, [&](BesideTheRun& beside) {
    if (!beside.wait_for_start()) return;
    try {
      for (std::uint64_t i = 0;; ++i) {
        if (beside.stopped_within(i == 0 ? std::chrono::nanoseconds(0) : interval)) return;
        RequestRecord rec = client.send(hi, -1, fmt::format("probe-{}", i));
        rec.index = i;
        probes.push_back(std::move(rec));
      }
    } catch (...) {  // a probe is never worth the run: the ones sent so far are kept
    }
  });
  BenchmarkResult result = prober.run(run);
  result.probes = std::move(probes);
  return result;
}

}  // namespace

BenchmarkResult Benchmark::run() {
  auto& s = *impl_;
  return profiled(s.spec, [&] {
    return with_spec_decode_stats(
        s.spec, *s.group, [&] { return probed(s.spec, *s.group, [&] { return s.group->run(); }); });
  });
}
BenchmarkResult Benchmark::run_at(std::chrono::system_clock::time_point start) {
  auto& s = *impl_;
  s.spec.start_at = start;
  return profiled(s.spec, [&] {
    return with_spec_decode_stats(s.spec, *s.group, [&] {
      return probed(s.spec, *s.group, [&] { return s.group->run_at(start); });
    });
  });
}
void Benchmark::stop() noexcept { impl_->group->stop(); }
ProgressSnapshot Benchmark::progress() const { return impl_->group->progress(); }

namespace {
// vLLM's probe keys: written when a probe was answered, as vLLM does.
nlohmann::json probe_summary(const BenchmarkResult& r) {
  std::vector<double> e2el_s;
  for (const auto& p : r.probes)
    if (p.ok()) e2el_s.push_back(static_cast<double>(p.end_ns - p.send_ns) * 1e-9);
  if (e2el_s.empty()) return nullptr;
  const MetricStats stats = exact_stats(e2el_s, {99.0});
  return {{"probe_completed", e2el_s.size()},
          {"probe_failed", r.probes.size() - e2el_s.size()},
          {"probe_median_e2el_ms", stats.median},
          {"probe_p99_e2el_ms", stats.percentiles.at(0).second},
          {"probe_max_e2el_ms", *std::max_element(e2el_s.begin(), e2el_s.end()) * 1e3}};
}
}  // namespace

std::string format_probe_table(const nlohmann::json& document) {
  if (!document.is_object() || !document.contains("probe_completed")) return {};
  auto number = [&](const char* key) {
    const auto it = document.find(key);
    return it != document.end() && it->is_number() ? it->get<double>() : std::nan("");
  };
  std::string table = fmt::format("{:-^50}\n", "Probe Requests");
  table += fmt::format("{:<40} {:<10}\n", "Probe requests completed:", number("probe_completed"));
  table += fmt::format("{:<40} {:<10}\n", "Probe requests failed:", number("probe_failed"));
  for (const auto& [key, label] : {std::pair{"probe_median_e2el_ms", "Median probe E2EL (ms):"},
                                   std::pair{"probe_p99_e2el_ms", "P99 probe E2EL (ms):"},
                                   std::pair{"probe_max_e2el_ms", "Max probe E2EL (ms):"}})
    table += fmt::format("{:<40} {:<10.2f}\n", label, number(key));
  table += std::string(50, '=') + "\n";
  return table;
}

std::string Benchmark::summary_table(const BenchmarkResult& result) const {
  // vLLM's probe section comes after the rest.
  nlohmann::json spec_decode = nlohmann::json::object();
  if (result.spec_decode) add_spec_decode_keys(spec_decode, *result.spec_decode);
  return format_summary_table(result.summary, impl_->spec.summary, table_config(impl_->spec.load)) +
         format_probe_table(probe_summary(result)) + format_spec_decode_table(spec_decode);
}

nlohmann::json Benchmark::result_document(const BenchmarkResult& r, bool detailed,
                                          bool records) const {
  return aifc::result_document(impl_->spec, impl_->tokenizer, r, detailed, records);
}

namespace {

// vLLM's arrays are in request order (its outputs are gathered in the order it sent); records
// are kept in the order they finished. Warm-ups first.
std::vector<const RequestRecord*> in_request_order(const BenchmarkResult& r) {
  std::vector<const RequestRecord*> in_order;
  in_order.reserve(r.records.size());
  for (const auto& rec : r.records) in_order.push_back(&rec);
  std::stable_sort(in_order.begin(), in_order.end(), [](const auto* a, const auto* b) {
    return a->warmup != b->warmup ? a->warmup : a->index < b->index;
  });
  return in_order;
}

}  // namespace

std::string result_document_text(const nlohmann::json& document, const BenchmarkResult& result,
                                 int indent) {
  if (!document.is_object())
    throw Error(ErrorCode::invalid_argument, "result_document_text: the document is no object");
  const std::string pad = indent >= 0 ? std::string(static_cast<std::size_t>(indent), ' ') : "";
  const char* newline = indent >= 0 ? "\n" : "";
  std::string text = "{";
  if (!document.empty()) {
    text = document.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
    text.pop_back();                   // the closing brace
    if (indent >= 0) text.pop_back();  // and the newline before it
    text += ',';
  }
  text += newline;
  text += pad;
  text += indent >= 0 ? "\"records\": [" : "\"records\":[";
  const auto in_order = in_request_order(result);
  for (std::size_t i = 0; i < in_order.size(); ++i) {
    if (i > 0) text += ',';
    text += newline;
    text += pad;
    text += pad;
    append_record_json(text, *in_order[i]);
  }
  if (!in_order.empty()) {
    text += newline;
    text += pad;
  }
  text += ']';
  text += newline;
  text += '}';
  return text;
}

nlohmann::json result_document(const BenchmarkSpec& spec, TokenizerApi tokenizer,
                               const BenchmarkResult& r, bool detailed, bool with_records) {
  nlohmann::json doc = r.summary;
  const bool chat = spec.client.is_chat();
  doc["date"] = local_stamp("%Y%m%d-%H%M%S");
  doc["endpoint_type"] = chat ? "openai-chat" : "openai";
  doc["backend"] = doc["endpoint_type"];
  doc["label"] = spec.label.empty() ? nlohmann::json(nullptr) : nlohmann::json(spec.label);
  doc["model_id"] = spec.client.model;
  doc["tokenizer_id"] = spec.tokenizer.empty() ? spec.client.model : spec.tokenizer;
  doc["num_prompts"] = spec.load.duration.count() > 0 ? nlohmann::json(nullptr)
                                                      : nlohmann::json(spec.load.num_requests);
  doc["request_rate"] = std::isinf(spec.load.request_rate) ? nlohmann::json("inf")
                                                           : nlohmann::json(spec.load.request_rate);
  doc["burstiness"] = spec.load.burstiness;
  doc["max_concurrency"] = spec.load.max_concurrency > 0 ? nlohmann::json(spec.load.max_concurrency)
                                                         : nlohmann::json(nullptr);
  if (spec.load.ramp_up_strategy != RampUp::none) {  // vLLM's keys, present with a ramp-up only
    doc["ramp_up_strategy"] = spec.load.ramp_up_strategy;
    doc["ramp_up_start_rps"] = spec.load.ramp_up_start_rps;
    doc["ramp_up_end_rps"] = spec.load.ramp_up_end_rps;
    doc["rps_change_events"] = rps_change_events(spec.load, r);
  }
  doc["interrupted"] = r.interrupted;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  doc["host"] = host;
  doc["aifc_version"] = version();
  doc["aifc_config"] = {{"client", spec.client},
                        {"dataset", spec.dataset},
                        {"load", spec.load},
                        {"shard", spec.shard}};
  doc["aifc_spec"] = spec;
  doc["tokenizer_api"] = to_string(tokenizer);
  doc["clock_anchor"] = {{"mono_ns", r.anchor.mono_ns},
                         {"unix_ns", r.anchor.unix_ns},
                         {"start_mono_ns", r.start_ns},
                         {"first_send_late_ns", r.first_send_late_ns}};
  doc["aggregate"] = r.aggregate.to_json();
  // vLLM writes these two per-request lists even without --save-detailed: each request's
  // end-to-end latency (0 when it failed) and how long it waited past its scheduled time
  // (vLLM's client queue time), in seconds; rtfx is for speech models, 0 for text.
  const auto in_order = in_request_order(r);
  {
    nlohmann::json latencies = nlohmann::json::array(), queue_times = nlohmann::json::array();
    for (const auto* record : in_order) {
      const RequestRecord& rec = *record;
      if (rec.warmup) continue;
      latencies.push_back(rec.ok() ? static_cast<double>(rec.end_ns - rec.send_ns) * 1e-9 : 0.0);
      queue_times.push_back(rec.scheduled_ns >= 0 && rec.send_ns >= 0
                                ? static_cast<double>(rec.send_ns - rec.scheduled_ns) * 1e-9
                                : 0.0);
    }
    doc["latencies"] = std::move(latencies);
    doc["queue_times"] = std::move(queue_times);
    doc["rtfx"] = 0.0;
  }
  if (detailed) {
    nlohmann::json input_lens = nlohmann::json::array(), output_lens = nlohmann::json::array(),
                   ttfts = nlohmann::json::array(), itls = nlohmann::json::array(),
                   start_times = nlohmann::json::array(), errors = nlohmann::json::array(),
                   texts = nlohmann::json::array(), records = nlohmann::json::array();
    for (const auto* record : in_order) {
      const RequestRecord& rec = *record;
      if (with_records) records.push_back(rec);
      if (rec.warmup) continue;
      input_lens.push_back(rec.input_tokens);
      output_lens.push_back(rec.ok() ? rec.output_tokens : 0);
      ttfts.push_back(rec.first_token_ns >= 0 ? rec.ttft_s() : 0.0);
      nlohmann::json itl = nlohmann::json::array();
      for (std::size_t i = 1; i < rec.token_ns.size(); ++i)
        itl.push_back((rec.token_ns[i] - rec.token_ns[i - 1]) * 1e-9);
      itls.push_back(std::move(itl));
      start_times.push_back(static_cast<double>(rec.send_ns - r.start_ns) * 1e-9);
      errors.push_back(rec.ok() ? std::string()
                                : fmt::format("{}: {}", to_string(rec.error), rec.error_message));
      texts.push_back(rec.generated_text);
    }
    doc["input_lens"] = std::move(input_lens);
    doc["output_lens"] = std::move(output_lens);
    doc["ttfts"] = std::move(ttfts);
    doc["itls"] = std::move(itls);
    doc["start_times"] = std::move(start_times);
    doc["errors"] = std::move(errors);
    doc["generated_texts"] = std::move(texts);
    if (with_records) doc["records"] = std::move(records);
  }
  if (const auto probes = probe_summary(r); !probes.is_null()) doc.update(probes);
  if (r.spec_decode) add_spec_decode_keys(doc, *r.spec_decode);
  // As vLLM does: --metadata pairs are top-level keys of the result.
  for (const auto& [key, value] : spec.metadata) doc[key] = value;
  return doc;
}

}  // namespace aifc
