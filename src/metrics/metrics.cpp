#include "aifc/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "aifc/error.hpp"

namespace aifc {
namespace {

constexpr const char* kKnownMetrics[] = {
    "ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_including_client_queue"};

std::string percentile_word(double p) {
  if (p == std::floor(p)) return fmt::format("{}", static_cast<long long>(p));
  return fmt::format("{}", p);
}

double numpy_percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// The latency metrics, in the order the summary lists them.
enum class Metric {
  ttft,
  tpot,
  itl,
  e2el,
  lateness,
  ttft_from_schedule,
  e2el_from_schedule,
  ttft_reasoning,
  ttft_answer
};
constexpr Metric kMetrics[] = {Metric::ttft,
                               Metric::tpot,
                               Metric::itl,
                               Metric::e2el,
                               Metric::lateness,
                               Metric::ttft_from_schedule,
                               Metric::e2el_from_schedule,
                               Metric::ttft_reasoning,
                               Metric::ttft_answer};
constexpr const char* kMetricNames[] = {"ttft",
                                        "tpot",
                                        "itl",
                                        "e2el",
                                        "lateness",
                                        "ttft_from_schedule",
                                        "e2el_from_schedule",
                                        "ttft_reasoning",
                                        "ttft_answer"};
constexpr std::size_t kMetricCount = std::size(kMetrics);

const char* name_of(Metric m) { return kMetricNames[static_cast<std::size_t>(m)]; }

// vLLM's names for two of aifc's own metrics, reported under those names when chosen in
// percentile_metrics: how long a request waited past its scheduled time (vLLM: for the
// concurrency limit) and its end-to-end latency counted from the schedule.
struct VllmAlias {
  const char* name;
  Metric metric;
};
constexpr VllmAlias kVllmAliases[] = {{"client_queue_time", Metric::lateness},
                                      {"e2el_including_client_queue", Metric::e2el_from_schedule}};

// What a record means for the metrics, in one place for the exact summary and the aggregate:
// every latency sample it gives, in nanoseconds. Warm-up and cancelled records give none.
template <class OnSample>
void for_each_sample(const RequestRecord& r, OnSample&& on_sample) {
  if (r.warmup || r.error == RequestError::cancelled) return;
  if (r.send_ns >= 0 && r.scheduled_ns >= 0)
    on_sample(Metric::lateness, static_cast<double>(r.send_ns - r.scheduled_ns));
  if (!r.ok()) return;
  if (r.first_token_ns >= 0) {
    on_sample(Metric::ttft, static_cast<double>(r.first_token_ns - r.send_ns));
    if (r.scheduled_ns >= 0)
      on_sample(Metric::ttft_from_schedule, static_cast<double>(r.first_token_ns - r.scheduled_ns));
    if (r.output_tokens > 1) on_sample(Metric::tpot, r.tpot_s() * 1e9);
  }
  if (r.first_reasoning_ns >= 0) {
    on_sample(Metric::ttft_reasoning, static_cast<double>(r.first_reasoning_ns - r.send_ns));
    if (r.first_answer_ns >= 0)
      on_sample(Metric::ttft_answer, static_cast<double>(r.first_answer_ns - r.send_ns));
  }
  on_sample(Metric::e2el, static_cast<double>(r.end_ns - r.send_ns));
  if (r.scheduled_ns >= 0)
    on_sample(Metric::e2el_from_schedule, static_cast<double>(r.end_ns - r.scheduled_ns));
  for (std::size_t i = 1; i < r.token_ns.size(); ++i)
    on_sample(Metric::itl, static_cast<double>(r.token_ns[i] - r.token_ns[i - 1]));
}

// A percentile of the statistics (0 when it was not computed), for the table.
double percentile_of(const MetricStats& m, double p) {
  for (const auto& [q, v] : m.percentiles)
    if (q == p) return v;
  return 0.0;
}

bool selected(const SummaryOptions& o, const std::string& metric) {
  return std::find(o.percentile_metrics.begin(), o.percentile_metrics.end(), metric) !=
         o.percentile_metrics.end();
}

}  // namespace

bool GoodputSlo::is_good(const RequestRecord& r) const noexcept {
  if (!r.ok()) return false;
  const double ttft = r.first_token_ns >= 0 ? r.ttft_s() * 1e3 : 0.0;
  const double tpot = r.output_tokens > 1 ? r.tpot_s() * 1e3 : 0.0;  // as vLLM: tpot 0 for <=1
  if (ttft_ms && ttft > *ttft_ms) return false;
  if (tpot_ms && tpot > *tpot_ms) return false;
  if (e2el_ms && r.e2el_s() * 1e3 > *e2el_ms) return false;
  return true;
}

GoodputSlo GoodputSlo::parse(const std::string& spec) {
  GoodputSlo slo;
  std::string normalized = spec;
  std::replace(normalized.begin(), normalized.end(), ',', ' ');
  std::istringstream in(normalized);
  std::string item;
  while (in >> item) {
    const auto colon = item.find(':');
    if (colon == std::string::npos)
      throw Error(
          ErrorCode::invalid_argument,
          fmt::format("goodput item '{}' must look like ttft:MS, tpot:MS or e2el:MS", item));
    const auto key = item.substr(0, colon);
    double value = 0;
    try {
      std::size_t used = 0;
      value = std::stod(item.substr(colon + 1), &used);
      if (used != item.size() - colon - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("goodput item '{}' has no number of ms", item));
    }
    if (!(value >= 0 && value <= 1e12))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("goodput '{}' must be a number of ms from 0 to 1e12", item));
    if (key == "ttft")
      slo.ttft_ms = value;
    else if (key == "tpot")
      slo.tpot_ms = value;
    else if (key == "e2el")
      slo.e2el_ms = value;
    else
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("goodput metric '{}' is not one of ttft, tpot, e2el", key));
  }
  return slo;
}

void SummaryOptions::validate() const {
  for (const auto& m : percentile_metrics)
    if (std::find(std::begin(kKnownMetrics), std::end(kKnownMetrics), m) == std::end(kKnownMetrics))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("percentile metric '{}' is not one of ttft, tpot, itl, e2el, "
                              "client_queue_time, e2el_including_client_queue",
                              m));
  for (const auto& slo : {goodput.ttft_ms, goodput.tpot_ms, goodput.e2el_ms})
    if (slo && !(*slo >= 0 && *slo <= 1e12))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("goodput {} ms is not from 0 to 1e12", *slo));
  for (double p : metric_percentiles)
    if (!(p > 0.0 && p < 100.0) && p != 100.0)
      throw Error(ErrorCode::invalid_argument, fmt::format("percentile {} is not in (0, 100]", p));
}

void to_json(nlohmann::json& j, const GoodputSlo& g) {
  j = nlohmann::json::object();
  if (g.ttft_ms) j["ttft_ms"] = *g.ttft_ms;
  if (g.tpot_ms) j["tpot_ms"] = *g.tpot_ms;
  if (g.e2el_ms) j["e2el_ms"] = *g.e2el_ms;
}

void from_json(const nlohmann::json& j, GoodputSlo& g) {
  g = GoodputSlo{};
  if (j.is_string()) {
    g = GoodputSlo::parse(j.get<std::string>());
    return;
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "ttft_ms")
      g.ttft_ms = value.get<double>();
    else if (key == "tpot_ms")
      g.tpot_ms = value.get<double>();
    else if (key == "e2el_ms")
      g.e2el_ms = value.get<double>();
    else
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("goodput key '{}' is not ttft_ms, tpot_ms or e2el_ms", key));
  }
}

void to_json(nlohmann::json& j, const SummaryOptions& o) {
  j = nlohmann::json{{"percentile_metrics", o.percentile_metrics},
                     {"metric_percentiles", o.metric_percentiles},
                     {"goodput", o.goodput}};
}

void from_json(const nlohmann::json& j, SummaryOptions& o) {
  o = SummaryOptions{};
  if (j.contains("percentile_metrics")) j.at("percentile_metrics").get_to(o.percentile_metrics);
  if (j.contains("metric_percentiles")) j.at("metric_percentiles").get_to(o.metric_percentiles);
  if (j.contains("goodput") && !j.at("goodput").is_null()) j.at("goodput").get_to(o.goodput);
}

MetricStats exact_stats(std::vector<double> seconds, const std::vector<double>& percentiles) {
  MetricStats s;
  if (seconds.empty()) {
    for (double p : percentiles) s.percentiles.emplace_back(p, 0.0);
    return s;
  }
  std::sort(seconds.begin(), seconds.end());
  s.count = seconds.size();
  const double n = static_cast<double>(seconds.size());
  const double mean = std::accumulate(seconds.begin(), seconds.end(), 0.0) / n;
  double sq = 0;
  for (double v : seconds) sq += (v - mean) * (v - mean);
  s.mean = mean * 1e3;
  s.std = std::sqrt(sq / n) * 1e3;
  s.median = numpy_percentile(seconds, 50.0) * 1e3;
  for (double p : percentiles) s.percentiles.emplace_back(p, numpy_percentile(seconds, p) * 1e3);
  return s;
}

MetricStats histogram_stats(const Histogram& h, const std::vector<double>& percentiles) {
  MetricStats s;
  s.count = h.count();
  s.mean = h.mean() * 1e-6;
  s.std = h.stddev() * 1e-6;
  s.median = h.percentile(50.0) * 1e-6;
  for (double p : percentiles) s.percentiles.emplace_back(p, h.percentile(p) * 1e-6);
  return s;
}

namespace {

Histogram& histogram_of(MetricsAggregate& a, Metric m) {
  switch (m) {
    case Metric::ttft:
      return a.ttft;
    case Metric::tpot:
      return a.tpot;
    case Metric::itl:
      return a.itl;
    case Metric::e2el:
      return a.e2el;
    case Metric::lateness:
      return a.lateness;
    case Metric::ttft_from_schedule:
      return a.ttft_from_schedule;
    case Metric::e2el_from_schedule:
      return a.e2el_from_schedule;
    case Metric::ttft_reasoning:
      return a.ttft_reasoning;
    case Metric::ttft_answer:
      return a.ttft_answer;
  }
  return a.ttft;
}

const Histogram& histogram_of(const MetricsAggregate& a, Metric m) {
  return histogram_of(const_cast<MetricsAggregate&>(a), m);
}

// What both summaries share: counts, tokens, throughputs, errors and sources.
Summary counts_of(const MetricsAggregate& a, double duration_s, const SummaryOptions& options) {
  Summary s;
  const double d = duration_s > 0 ? duration_s : 1e-9;
  s.duration_s = duration_s;
  s.completed = a.completed;
  s.failed = a.failed;
  s.cancelled = a.cancelled;
  s.total_input_tokens = a.total_input_tokens;
  s.total_output_tokens = a.total_output_tokens;
  s.request_throughput = static_cast<double>(a.completed) / d;
  if (!options.goodput.empty()) s.request_goodput = static_cast<double>(a.good) / d;
  s.output_throughput = static_cast<double>(a.total_output_tokens) / d;
  s.total_token_throughput = static_cast<double>(a.total_input_tokens + a.total_output_tokens) / d;
  s.errors_by_kind = a.errors_by_kind;
  s.output_token_source = a.output_token_source;
  s.input_tokens_exact = a.inexact_input_counts == 0;
  s.exceeded_requested_length = a.exceeded_requested_length;
  s.retried_requests = a.retried;
  return s;
}

// Which metrics a summary shows: the chosen percentile metrics, aifc's own always, and the
// reasoning split when there was reasoning.
bool shown(Metric m, const SummaryOptions& options, std::uint64_t samples) {
  switch (m) {
    case Metric::ttft:
    case Metric::tpot:
    case Metric::itl:
    case Metric::e2el:
      return selected(options, name_of(m));
    case Metric::ttft_reasoning:
    case Metric::ttft_answer:
      return samples > 0;
    default:
      return true;
  }
}

// The chosen vLLM names, as copies of the metrics they name (which every summary has).
void add_vllm_aliases(Summary& out, const SummaryOptions& options) {
  for (const auto& alias : kVllmAliases)
    if (selected(options, alias.name))
      if (const auto it = out.metrics.find(name_of(alias.metric)); it != out.metrics.end())
        out.metrics[alias.name] = it->second;
}

}  // namespace

void MetricsAggregate::add(const RequestRecord& r) {
  // Straight into the histograms: this runs once per request on the controller thread.
  if (r.warmup) return;
  if (r.error == RequestError::cancelled) {  // stopped by the user: not the server's failure
    ++cancelled;
    return;
  }
  if (r.retried) ++retried;
  if (!r.ok()) {
    ++failed;
    ++errors_by_kind[std::string(to_string(r.error))];
  } else {
    ++completed;
    if (goodput_.is_good(r)) ++good;
    total_input_tokens += r.input_tokens;
    total_output_tokens += r.output_tokens;
    if (!r.input_tokens_exact) ++inexact_input_counts;
    if (r.exceeded_requested_length()) ++exceeded_requested_length;
    ++output_token_source[std::string(to_string(r.output_token_source))];
  }
  for_each_sample(r,
                  [this](Metric m, double ns) { histogram_of(*this, m).record(std::llround(ns)); });
}

void MetricsAggregate::merge(const MetricsAggregate& o) {
  completed += o.completed;
  failed += o.failed;
  cancelled += o.cancelled;
  good += o.good;
  total_input_tokens += o.total_input_tokens;
  total_output_tokens += o.total_output_tokens;
  inexact_input_counts += o.inexact_input_counts;
  exceeded_requested_length += o.exceeded_requested_length;
  retried += o.retried;
  for (const Metric m : kMetrics) histogram_of(*this, m).merge(histogram_of(o, m));
  for (const auto& [k, v] : o.errors_by_kind) errors_by_kind[k] += v;
  for (const auto& [k, v] : o.output_token_source) output_token_source[k] += v;
}

nlohmann::json MetricsAggregate::to_json() const {
  nlohmann::json j{{"completed", completed},
                   {"failed", failed},
                   {"cancelled", cancelled},
                   {"good", good},
                   {"goodput", goodput_},
                   {"total_input_tokens", total_input_tokens},
                   {"total_output_tokens", total_output_tokens},
                   {"inexact_input_counts", inexact_input_counts},
                   {"exceeded_requested_length", exceeded_requested_length},
                   {"retried", retried},
                   {"errors_by_kind", errors_by_kind},
                   {"output_token_source", output_token_source}};
  for (const Metric m : kMetrics) j[name_of(m)] = histogram_of(*this, m).to_json();
  return j;
}

MetricsAggregate MetricsAggregate::from_json(const nlohmann::json& j) {
  MetricsAggregate a;
  try {
    if (j.contains("goodput") && !j.at("goodput").is_null()) j.at("goodput").get_to(a.goodput_);
    a.completed = j.at("completed").get<std::uint64_t>();
    a.failed = j.at("failed").get<std::uint64_t>();
    a.good = j.at("good").get<std::uint64_t>();
    a.cancelled = j.value("cancelled", std::uint64_t{0});
    a.total_input_tokens = j.at("total_input_tokens").get<std::int64_t>();
    a.total_output_tokens = j.at("total_output_tokens").get<std::int64_t>();
    a.inexact_input_counts = j.value("inexact_input_counts", std::uint64_t{0});
    a.exceeded_requested_length = j.value("exceeded_requested_length", std::uint64_t{0});
    a.retried = j.value("retried", std::uint64_t{0});
    a.errors_by_kind = j.at("errors_by_kind").get<std::map<std::string, std::uint64_t>>();
    a.output_token_source = j.at("output_token_source").get<std::map<std::string, std::uint64_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::parse_error, std::string("metrics aggregate: ") + e.what());
  }
  for (const Metric m : kMetrics) {
    // The reasoning split came later: files without it load with empty histograms.
    const bool optional = m == Metric::ttft_reasoning || m == Metric::ttft_answer;
    if (!j.contains(name_of(m))) {
      if (optional) continue;
      throw Error(ErrorCode::parse_error,
                  fmt::format("metrics aggregate: '{}' is missing", name_of(m)));
    }
    histogram_of(a, m) = Histogram::from_json(j.at(name_of(m)));
  }
  return a;
}

Summary summarize(const std::vector<RequestRecord>& records, double duration_s,
                  const SummaryOptions& options) {
  // Counted exactly as the aggregate counts; the percentiles from the raw samples.
  MetricsAggregate counts(options.goodput);
  std::vector<double> samples[kMetricCount];
  // Peak output tokens per second and peak concurrency, as vLLM computes them.
  MonoNanos first_send = -1;
  std::vector<std::pair<MonoNanos, int>> events;
  for (const auto& r : records) {
    counts.add(r);
    for_each_sample(
        r, [&](Metric m, double ns) { samples[static_cast<std::size_t>(m)].push_back(ns * 1e-9); });
    if (r.warmup || !r.ok()) continue;
    if (first_send < 0 || r.send_ns < first_send) first_send = r.send_ns;
    events.emplace_back(r.send_ns, 1);
    events.emplace_back(r.end_ns, -1);
  }
  Summary out = counts_of(counts, duration_s, options);

  double max_tokens_per_s = 0;
  if (first_send >= 0) {
    std::vector<double> per_second;
    for (const auto& r : records) {
      if (r.warmup || !r.ok()) continue;
      for (MonoNanos t : r.token_ns) {
        const auto sec = static_cast<std::size_t>((t - first_send) / 1'000'000'000);
        if (sec >= per_second.size()) per_second.resize(sec + 1, 0.0);
        per_second[sec] += 1.0;
      }
    }
    if (!per_second.empty())
      max_tokens_per_s = *std::max_element(per_second.begin(), per_second.end());
  }
  std::sort(events.begin(), events.end());  // at equal times, -1 sorts first: half-open intervals
  int current = 0, peak = 0;
  for (const auto& e : events) peak = std::max(peak, current += e.second);
  out.max_output_tokens_per_s = max_tokens_per_s;
  out.max_concurrent_requests = peak;

  for (const Metric m : kMetrics) {
    auto& values = samples[static_cast<std::size_t>(m)];
    if (shown(m, options, values.size()))
      out.metrics[name_of(m)] = exact_stats(values, options.metric_percentiles);
  }
  add_vllm_aliases(out, options);
  const auto& lateness = samples[static_cast<std::size_t>(Metric::lateness)];
  out.max_lateness_ms =
      lateness.empty() ? 0.0 : *std::max_element(lateness.begin(), lateness.end()) * 1e3;
  out.percentiles_exact = true;
  return out;
}

Summary summarize(const MetricsAggregate& a, double duration_s, const SummaryOptions& options) {
  Summary out = counts_of(a, duration_s, options);
  for (const Metric m : kMetrics) {
    const Histogram& h = histogram_of(a, m);
    if (shown(m, options, h.count()))
      out.metrics[name_of(m)] = histogram_stats(h, options.metric_percentiles);
  }
  add_vllm_aliases(out, options);
  out.max_lateness_ms = static_cast<double>(a.lateness.max()) * 1e-6;
  out.percentiles_exact = false;
  return out;
}

const MetricStats* Summary::metric(const std::string& name) const {
  const auto it = metrics.find(name);
  return it == metrics.end() ? nullptr : &it->second;
}

void to_json(nlohmann::json& j, const Summary& s) {
  j = nlohmann::json{{"duration", s.duration_s},
                     {"completed", s.completed},
                     {"failed", s.failed},
                     {"cancelled", s.cancelled},
                     {"total_input_tokens", s.total_input_tokens},
                     {"total_output_tokens", s.total_output_tokens},
                     {"request_throughput", s.request_throughput},
                     {"request_goodput", s.request_goodput ? nlohmann::json(*s.request_goodput)
                                                           : nlohmann::json(nullptr)},
                     {"output_throughput", s.output_throughput},
                     {"total_token_throughput", s.total_token_throughput},
                     {"errors_by_kind", s.errors_by_kind},
                     {"output_token_source", s.output_token_source},
                     {"input_tokens_exact", s.input_tokens_exact},
                     {"exceeded_requested_length", s.exceeded_requested_length},
                     {"retried_requests", s.retried_requests},
                     {"max_lateness_ms", s.max_lateness_ms},
                     {"percentiles_exact", s.percentiles_exact},
                     {"samples", nlohmann::json::object()}};
  if (s.max_output_tokens_per_s) j["max_output_tokens_per_s"] = *s.max_output_tokens_per_s;
  if (s.max_concurrent_requests) j["max_concurrent_requests"] = *s.max_concurrent_requests;
  for (const auto& [name, m] : s.metrics) {
    j["samples"][name] = m.count;
    j["mean_" + name + "_ms"] = m.mean;
    j["median_" + name + "_ms"] = m.median;
    j["std_" + name + "_ms"] = m.std;
    for (const auto& [p, v] : m.percentiles) j["p" + percentile_word(p) + "_" + name + "_ms"] = v;
  }
}

void from_json(const nlohmann::json& j, Summary& s) {
  s = Summary{};
  try {
    s.duration_s = j.at("duration").get<double>();
    s.completed = j.at("completed").get<std::uint64_t>();
    s.failed = j.at("failed").get<std::uint64_t>();
    s.cancelled = j.value("cancelled", std::uint64_t{0});
    s.total_input_tokens = j.at("total_input_tokens").get<std::int64_t>();
    s.total_output_tokens = j.at("total_output_tokens").get<std::int64_t>();
    s.request_throughput = j.at("request_throughput").get<double>();
    if (j.contains("request_goodput") && j["request_goodput"].is_number())
      s.request_goodput = j["request_goodput"].get<double>();
    s.output_throughput = j.at("output_throughput").get<double>();
    s.total_token_throughput = j.at("total_token_throughput").get<double>();
    if (j.contains("max_output_tokens_per_s"))
      s.max_output_tokens_per_s = j["max_output_tokens_per_s"].get<double>();
    if (j.contains("max_concurrent_requests"))
      s.max_concurrent_requests = j["max_concurrent_requests"].get<std::int64_t>();
    s.errors_by_kind = j.value("errors_by_kind", std::map<std::string, std::uint64_t>{});
    s.output_token_source = j.value("output_token_source", std::map<std::string, std::uint64_t>{});
    s.input_tokens_exact = j.value("input_tokens_exact", true);
    s.exceeded_requested_length = j.value("exceeded_requested_length", std::uint64_t{0});
    s.retried_requests = j.value("retried_requests", std::uint64_t{0});
    s.max_lateness_ms = j.value("max_lateness_ms", 0.0);
    s.percentiles_exact = j.value("percentiles_exact", true);
    // A metric is shown when its sample count is; its percentiles are the pNN_<name>_ms keys.
    const nlohmann::json samples = j.value("samples", nlohmann::json::object());
    for (const auto& [name, count] : samples.items()) {
      MetricStats m;
      m.count = count.get<std::uint64_t>();
      m.mean = j.value("mean_" + name + "_ms", 0.0);
      m.median = j.value("median_" + name + "_ms", 0.0);
      m.std = j.value("std_" + name + "_ms", 0.0);
      const std::string tail = "_" + name + "_ms";
      for (const auto& [key, value] : j.items()) {
        if (key.size() <= tail.size() + 1 || key[0] != 'p' ||
            key.compare(key.size() - tail.size(), tail.size(), tail) != 0)
          continue;
        const std::string word = key.substr(1, key.size() - 1 - tail.size());
        std::size_t used = 0;
        double p = 0;
        try {
          p = std::stod(word, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == word.size() && value.is_number())
          m.percentiles.emplace_back(p, value.get<double>());
      }
      std::sort(m.percentiles.begin(), m.percentiles.end());
      s.metrics[name] = std::move(m);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::parse_error, std::string("summary: ") + e.what());
  }
}

std::string format_summary_table(const Summary& s, const SummaryOptions& options,
                                 const TableConfig& config) {
  std::string t;
  auto line = [&](std::string_view label, const std::string& value) {
    t += fmt::format("{:<40} {:<10}\n", label, value);
  };
  auto num = [](double v) { return fmt::format("{:.2f}", v); };
  t += fmt::format("{:=^50}\n", " Serving Benchmark Result ");
  line("Successful requests:", std::to_string(s.completed));
  line("Failed requests:", std::to_string(s.failed));
  if (config.max_concurrency)
    line("Maximum request concurrency:", std::to_string(*config.max_concurrency));
  if (config.request_rate) line("Request rate configured (RPS):", num(*config.request_rate));
  line("Benchmark duration (s):", num(s.duration_s));
  line("Total input tokens:", std::to_string(s.total_input_tokens));
  line("Total generated tokens:", std::to_string(s.total_output_tokens));
  line("Request throughput (req/s):", num(s.request_throughput));
  if (s.request_goodput) line("Request goodput (req/s):", num(*s.request_goodput));
  line("Output token throughput (tok/s):", num(s.output_throughput));
  if (s.max_output_tokens_per_s)
    line("Peak output token throughput (tok/s):", num(*s.max_output_tokens_per_s));
  if (s.max_concurrent_requests)
    line("Peak concurrent requests:", num(static_cast<double>(*s.max_concurrent_requests)));
  line("Total token throughput (tok/s):", num(s.total_token_throughput));
  auto section = [&](const std::string& key, const std::string& name, const std::string& header,
                     bool always) {
    if (!always && !selected(options, key)) return;
    const MetricStats* m = s.metric(key);
    if (!m) return;
    // A metric without samples (TPOT and ITL of a non-streaming run) has no value to show.
    auto stat = [&](double v) { return m->count == 0 ? std::string("n/a") : num(v); };
    t += fmt::format("{:-^50}\n", header);
    line(fmt::format("Mean {} (ms):", name), stat(m->mean));
    line(fmt::format("Median {} (ms):", name), stat(m->median));
    for (double p : options.metric_percentiles)
      line(fmt::format("P{} {} (ms):", percentile_word(p), name), stat(percentile_of(*m, p)));
  };
  section("ttft", "TTFT", "Time to First Token", false);
  section("tpot", "TPOT", "Time per Output Token (excl. 1st token)", false);
  section("itl", "ITL", "Inter-token Latency", false);
  section("e2el", "E2EL", "End-to-end Latency", false);
  section("client_queue_time", "Client Queue Time", "Client Queue Time", false);
  section("e2el_including_client_queue", "E2EL incl. Client Queue",
          "End-to-end Latency incl. Client Queue", false);
  section("ttft_reasoning", "TTFT", "First Reasoning Token", true);
  section("ttft_answer", "TTFT", "First Answer Token (reasoning)", true);
  t += fmt::format("{:-^50}\n", "Client (aifc)");
  const MetricStats* lateness = s.metric("lateness");
  line("Mean send lateness (ms):", lateness ? num(lateness->mean) : "n/a");
  for (double p : options.metric_percentiles)
    line(fmt::format("P{} send lateness (ms):", percentile_word(p)),
         lateness ? num(percentile_of(*lateness, p)) : "n/a");
  line("Max send lateness (ms):", num(s.max_lateness_ms));
  if (s.output_token_source.count("chunks"))
    line("Output tokens counted from chunks:", std::to_string(s.total_output_tokens));
  if (!s.input_tokens_exact) line("Input token counts:", "approximate");
  if (s.exceeded_requested_length > 0)
    line("Answers longer than max_tokens:", std::to_string(s.exceeded_requested_length));
  if (s.retried_requests > 0)
    line("Resent after a stale connection:", std::to_string(s.retried_requests));
  for (const auto& [kind, n] : s.errors_by_kind)
    line(fmt::format("Errors ({}):", kind), std::to_string(n));
  t += fmt::format("{:=^50}\n", "");
  return t;
}

}  // namespace aifc
