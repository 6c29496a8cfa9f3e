#include "aifc/schedule.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "aifc/error.hpp"
#include "util/durations.hpp"
#include "util/rng.hpp"

namespace aifc {
namespace {

void bad(const std::string& what) { throw Error(ErrorCode::invalid_argument, what); }

// The generator's state lives inline in ArrivalSchedule (as raw words) to keep rng.hpp private.
static_assert(sizeof(detail::Rng) == 4 * sizeof(std::uint64_t));

}  // namespace

void LoadConfig::validate() const {
  // Outside these bounds the gaps between requests overflow or vanish in nanoseconds.
  if (!(request_rate >= 1e-6 && (request_rate <= 1e9 || std::isinf(request_rate))))
    bad(fmt::format("request_rate must be from 0.000001 to 1e9 requests/s, or inf (got {})",
                    request_rate));
  if (!(burstiness >= 1e-3 && burstiness <= 1e3))
    bad(fmt::format("burstiness must be from 0.001 to 1000 (got {})", burstiness));
  if (num_requests > 100'000'000)
    bad(fmt::format("num_requests must be at most 100000000 (got {})", num_requests));
  if (duration > std::chrono::hours(24 * 365)) bad("duration must be at most a year");
  if (max_concurrency < 0)
    bad(fmt::format("max_concurrency must not be negative (got {})", max_concurrency));
  if (duration.count() < 0) bad("duration must not be negative");
  if (duration.count() == 0 && num_requests < 1)
    bad(fmt::format("num_requests must be at least 1 (got {})", num_requests));
  if (num_warmups < 0) bad("num_warmups must not be negative");
  // vLLM's ramp-up rules. A start of 0 is refused for both strategies: vLLM's own run stops on
  // it at the first request (a rate of 0 has no gap).
  if (ramp_up_strategy != RampUp::none) {
    if (!std::isinf(request_rate))
      bad(fmt::format("a ramp-up sets the request rate: leave request_rate at inf (got {})",
                      request_rate));
    if (ramp_up_start_rps < 1 || ramp_up_end_rps > 1'000'000'000)
      bad(
          fmt::format("a ramp-up needs ramp_up_start_rps and ramp_up_end_rps from 1 to 1e9 "
                      "requests/s (got {} and {})",
                      ramp_up_start_rps, ramp_up_end_rps));
    if (ramp_up_start_rps > ramp_up_end_rps)
      bad(fmt::format("ramp_up_start_rps ({}) must not exceed ramp_up_end_rps ({})",
                      ramp_up_start_rps, ramp_up_end_rps));
  } else if (ramp_up_start_rps != 0 || ramp_up_end_rps != 0) {
    bad("ramp_up_start_rps and ramp_up_end_rps need a ramp_up_strategy (linear or exponential)");
  }
  if (self_timed && ramp_up_strategy != RampUp::none)
    bad("self_timed sends at the trace's times: it excludes a ramp-up");
  if (duration.count() > 0 && std::isinf(request_rate) && max_concurrency == 0 &&
      ramp_up_strategy == RampUp::none && !self_timed)
    bad("a duration-limited run with an infinite request rate needs max_concurrency");
}

void to_json(nlohmann::json& j, const LoadConfig& c) {
  j = nlohmann::json{{"request_rate", std::isinf(c.request_rate) ? nlohmann::json("inf")
                                                                 : nlohmann::json(c.request_rate)},
                     {"burstiness", c.burstiness},
                     {"max_concurrency", c.max_concurrency},
                     {"num_requests", c.num_requests},
                     {"duration_s", detail::seconds_of(c.duration)},
                     {"num_warmups", c.num_warmups},
                     {"ramp_up_strategy", c.ramp_up_strategy},
                     {"ramp_up_start_rps", c.ramp_up_start_rps},
                     {"ramp_up_end_rps", c.ramp_up_end_rps},
                     {"self_timed", c.self_timed},
                     {"seed", c.seed}};
}

void from_json(const nlohmann::json& j, LoadConfig& c) {
  c = LoadConfig{};
  if (j.contains("request_rate")) {
    const auto& r = j["request_rate"];
    c.request_rate = r.is_string() && r.get<std::string>() == "inf"
                         ? std::numeric_limits<double>::infinity()
                         : r.get<double>();
  }
  c.burstiness = j.value("burstiness", c.burstiness);
  c.max_concurrency = j.value("max_concurrency", c.max_concurrency);
  c.num_requests = j.value("num_requests", c.num_requests);
  c.duration = detail::millis_from_seconds(j.value("duration_s", detail::seconds_of(c.duration)));
  c.num_warmups = j.value("num_warmups", c.num_warmups);
  c.ramp_up_strategy = j.value("ramp_up_strategy", c.ramp_up_strategy);
  c.ramp_up_start_rps = j.value("ramp_up_start_rps", c.ramp_up_start_rps);
  c.ramp_up_end_rps = j.value("ramp_up_end_rps", c.ramp_up_end_rps);
  c.self_timed = j.value("self_timed", c.self_timed);
  c.seed = j.value("seed", c.seed);
}

void Shard::validate() const {
  if (nranks < 1) bad("nranks must be at least 1");
  if (rank >= nranks) bad(fmt::format("rank {} is out of range for {} ranks", rank, nranks));
}

ArrivalSchedule::ArrivalSchedule(const LoadConfig& config, Shard shard)
    : config_(config), shard_(shard) {
  config_.validate();
  shard_.validate();
  // A stream of its own, so that arrival times do not depend on how prompts were drawn.
  detail::Rng rng(config_.seed ^ 0xA11CE5C4ED11ull);
  std::memcpy(rng_state_, &rng, sizeof rng_state_);
  // As vLLM's benchmark: a count-limited run at a fixed rate is stretched so that its last
  // request leaves at exactly N / rate (the sum of N random gaps misses it by 1-2%, which moved
  // throughput with the seed). The gaps are drawn twice rather than stored: N may be large.
  // (A self-timed schedule draws no gaps, so it skips this.)
  if (config_.duration.count() == 0 && config_.ramp_up_strategy == RampUp::none &&
      std::isfinite(config_.request_rate) && !config_.self_timed) {
    const double theta = 1.0 / (config_.request_rate * config_.burstiness);
    double total = 0;
    for (std::int64_t i = 0; i < config_.num_requests; ++i)
      total += rng.gamma(config_.burstiness, theta);
    if (total > 0)
      scale_ = static_cast<double>(config_.num_requests) / config_.request_rate / total;
  }
}

ArrivalSchedule::ArrivalSchedule(const LoadConfig& config, Shard shard,
                                 std::vector<std::chrono::nanoseconds> offsets)
    : ArrivalSchedule(config, shard) {
  if (offsets.empty()) throw Error(ErrorCode::invalid_argument, "a timed schedule needs times");
  for (std::size_t i = 0; i < offsets.size(); ++i)
    if (offsets[i].count() < 0 || (i > 0 && offsets[i] < offsets[i - 1]))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("the arrival times must start at 0 or later and never go back "
                              "(slot {})",
                              i));
  offsets_ = std::move(offsets);
}

std::optional<std::uint64_t> ArrivalSchedule::global_size() const {
  if (config_.duration.count() > 0) return std::nullopt;
  if (!offsets_.empty())
    return std::min<std::uint64_t>(offsets_.size(),
                                   static_cast<std::uint64_t>(config_.num_requests));
  return static_cast<std::uint64_t>(config_.num_requests);
}

std::int64_t ArrivalSchedule::shard_max_concurrency() const {
  if (config_.max_concurrency == 0) return 0;
  const auto n = static_cast<std::int64_t>(shard_.nranks);
  const auto share =
      config_.max_concurrency / n + (shard_.rank < config_.max_concurrency % n ? 1 : 0);
  return std::max<std::int64_t>(share, 1);
}

double ArrivalSchedule::current_rate(std::uint64_t index, double elapsed_s) const {
  if (config_.ramp_up_strategy == RampUp::none) return config_.request_rate;
  // Progress through the ramp: by request count, or by time for duration-limited runs.
  double progress;
  if (config_.duration.count() > 0) {
    progress = elapsed_s / (static_cast<double>(config_.duration.count()) / 1000.0);
  } else {
    progress = static_cast<double>(index) /
               static_cast<double>(std::max<std::int64_t>(config_.num_requests - 1, 1));
  }
  progress = std::clamp(progress, 0.0, 1.0);
  const auto a = static_cast<double>(config_.ramp_up_start_rps);
  const auto b = static_cast<double>(config_.ramp_up_end_rps);
  if (config_.ramp_up_strategy == RampUp::linear) return a + (b - a) * progress;
  return a * std::pow(b / a, progress);
}

std::optional<ScheduledRequest> ArrivalSchedule::next_global() {
  const std::uint64_t index = next_index_;
  if (!offsets_.empty()) {
    if (index >= offsets_.size() || (config_.duration.count() == 0 &&
                                     index >= static_cast<std::uint64_t>(config_.num_requests)))
      return std::nullopt;
    const auto at = offsets_[index];
    if (config_.duration.count() > 0 && at >= config_.duration) return std::nullopt;
    ++next_index_;
    return ScheduledRequest{index, at, 0.0};
  }
  if (config_.duration.count() == 0 && index >= static_cast<std::uint64_t>(config_.num_requests))
    return std::nullopt;
  const double rate = current_rate(index, time_s_);
  // Every request waits its gap, the first one included, as in vLLM.
  if (!std::isinf(rate)) {
    detail::Rng rng(0);
    std::memcpy(&rng, rng_state_, sizeof rng_state_);
    const double theta = 1.0 / (rate * config_.burstiness);
    time_s_ += rng.gamma(config_.burstiness, theta) * scale_;
    std::memcpy(rng_state_, &rng, sizeof rng_state_);
  }
  if (config_.duration.count() > 0 &&
      time_s_ * 1000.0 >= static_cast<double>(config_.duration.count()))
    return std::nullopt;
  ++next_index_;
  return ScheduledRequest{index, std::chrono::nanoseconds(static_cast<std::int64_t>(time_s_ * 1e9)),
                          rate};
}

std::optional<ScheduledRequest> ArrivalSchedule::next() {
  while (auto slot = next_global()) {
    if (shard_.owns(slot->index)) return slot;
  }
  return std::nullopt;
}

}  // namespace aifc
