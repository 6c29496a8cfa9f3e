#include <doctest/doctest.h>

#include <aifc/error.hpp>
#include <aifc/schedule.hpp>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

namespace {

std::vector<aifc::ScheduledRequest> all(const aifc::LoadConfig& c, aifc::Shard s = {}) {
  aifc::ArrivalSchedule sched(c, s);
  std::vector<aifc::ScheduledRequest> out;
  while (auto r = sched.next()) out.push_back(*r);
  return out;
}

double seconds(const aifc::ScheduledRequest& r) {
  return static_cast<double>(r.offset.count()) * 1e-9;
}

}  // namespace

TEST_CASE("schedule: infinite rate sends everything at time zero") {
  aifc::LoadConfig c;
  c.num_requests = 100;
  const auto s = all(c);
  REQUIRE(s.size() == 100);
  for (std::size_t i = 0; i < s.size(); ++i) {
    CHECK(s[i].index == i);
    CHECK(s[i].offset.count() == 0);
  }
}

TEST_CASE("schedule: Poisson arrivals have the asked rate and exponential gaps") {
  aifc::LoadConfig c;
  c.request_rate = 50;
  c.num_requests = 20000;
  c.seed = 11;
  const auto s = all(c);
  REQUIRE(s.size() == 20000);
  std::vector<double> gaps;
  for (std::size_t i = 1; i < s.size(); ++i) gaps.push_back(seconds(s[i]) - seconds(s[i - 1]));
  double mean = 0, var = 0;
  for (double g : gaps) mean += g;
  mean /= static_cast<double>(gaps.size());
  for (double g : gaps) var += (g - mean) * (g - mean);
  var /= static_cast<double>(gaps.size());
  // Mean 1/rate; coefficient of variation 1 for exponential gaps (1/sqrt(k) for gamma shape k).
  CHECK(mean == doctest::Approx(0.02).epsilon(0.03));
  CHECK(std::sqrt(var) / mean == doctest::Approx(1.0).epsilon(0.05));
}

TEST_CASE("schedule: as vLLM's, the last request leaves at N / rate and the first after a gap") {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    aifc::LoadConfig c;
    c.request_rate = 8;
    c.num_requests = 40;
    c.seed = seed;
    const auto s = all(c);
    REQUIRE(s.size() == 40);
    CAPTURE(seed);
    CHECK(seconds(s.back()) == doctest::Approx(5.0).epsilon(1e-9));  // 40 / 8, whatever the seed
    CHECK(s.front().offset.count() > 0);
    for (std::size_t i = 1; i < s.size(); ++i) CHECK(s[i].offset >= s[i - 1].offset);
  }
}

TEST_CASE("schedule: burstiness sets the gamma shape") {
  for (double k : {0.25, 4.0}) {
    aifc::LoadConfig c;
    c.request_rate = 10;
    c.burstiness = k;
    c.num_requests = 20000;
    const auto s = all(c);
    std::vector<double> gaps;
    for (std::size_t i = 1; i < s.size(); ++i) gaps.push_back(seconds(s[i]) - seconds(s[i - 1]));
    double mean = 0, var = 0;
    for (double g : gaps) mean += g;
    mean /= static_cast<double>(gaps.size());
    for (double g : gaps) var += (g - mean) * (g - mean);
    var /= static_cast<double>(gaps.size());
    CAPTURE(k);
    CHECK(mean == doctest::Approx(0.1).epsilon(0.05));
    CHECK(std::sqrt(var) / mean == doctest::Approx(1.0 / std::sqrt(k)).epsilon(0.06));
  }
}

TEST_CASE("schedule: same seed, same times; other seed, other times") {
  aifc::LoadConfig c;
  c.request_rate = 5;
  c.num_requests = 50;
  c.seed = 1;
  const auto a = all(c), b = all(c);
  c.seed = 2;
  const auto other = all(c);
  bool any_diff = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].offset == b[i].offset);
    any_diff |= a[i].offset != other[i].offset;
  }
  CHECK(any_diff);
}

TEST_CASE("schedule: shards partition the global schedule exactly") {
  aifc::LoadConfig c;
  c.request_rate = 100;
  c.num_requests = 1001;
  c.seed = 5;
  const auto global = all(c);
  for (std::uint32_t n : {1u, 2u, 3u, 7u}) {
    std::set<std::uint64_t> seen;
    std::size_t total = 0;
    for (std::uint32_t r = 0; r < n; ++r) {
      const auto part = all(c, {r, n});
      total += part.size();
      CHECK(part.size() >= 1001 / n);
      CHECK(part.size() <= 1001 / n + 1);
      for (const auto& slot : part) {
        CHECK(seen.insert(slot.index).second);
        CHECK(slot.offset == global[slot.index].offset);  // same time as in the global schedule
      }
    }
    CHECK(total == global.size());
  }
}

TEST_CASE("schedule: concurrency shares add up to the limit") {
  aifc::LoadConfig c;
  c.max_concurrency = 10;
  std::int64_t sum = 0;
  for (std::uint32_t r = 0; r < 4; ++r)
    sum += aifc::ArrivalSchedule(c, {r, 4}).shard_max_concurrency();
  CHECK(sum == 10);
}

TEST_CASE("schedule: duration-limited and ramp-up schedules") {
  aifc::LoadConfig c;
  c.request_rate = 100;
  c.duration = std::chrono::milliseconds(2000);
  const auto s = all(c);
  CHECK(s.size() == doctest::Approx(200).epsilon(0.2));
  for (const auto& r : s) CHECK(seconds(r) < 2.0);

  aifc::LoadConfig ramp;
  ramp.ramp_up_strategy = aifc::RampUp::linear;
  ramp.ramp_up_start_rps = 10;
  ramp.ramp_up_end_rps = 100;
  ramp.num_requests = 2000;
  const auto r = all(ramp);
  // Early gaps follow ~10 rps, late ones ~100 rps.
  const double early = (seconds(r[100]) - seconds(r[0])) / 100;
  const double late = (seconds(r[1999]) - seconds(r[1899])) / 100;
  CHECK(early > 3 * late);
  // Each slot carries the rate it was drawn at: from the start rate up to the end rate.
  CHECK(r.front().rate == doctest::Approx(10));
  CHECK(r.back().rate == doctest::Approx(100));
  for (std::size_t i = 1; i < r.size(); ++i) CHECK(r[i].rate >= r[i - 1].rate);
}

TEST_CASE("schedule: the ramp-up rules of vLLM are kept") {
  aifc::LoadConfig c;
  c.ramp_up_strategy = aifc::RampUp::exponential;
  c.ramp_up_start_rps = 2;
  c.ramp_up_end_rps = 20;
  CHECK_NOTHROW(c.validate());
  c.request_rate = 5;  // the ramp sets the rate
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("leave request_rate at inf"), aifc::Error);
  c.request_rate = std::numeric_limits<double>::infinity();
  c.ramp_up_start_rps = 30;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("must not exceed ramp_up_end_rps"),
                       aifc::Error);
  c.ramp_up_start_rps = 0;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("from 1 to 1e9"), aifc::Error);
  c = {};
  c.ramp_up_end_rps = 10;  // no strategy
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("need a ramp_up_strategy"), aifc::Error);
}

TEST_CASE("schedule: bad configs are refused with the field named") {
  aifc::LoadConfig c;
  c.request_rate = -1;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("request_rate"), aifc::Error);
  c = {};
  c.burstiness = 0;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("burstiness"), aifc::Error);
  c = {};
  c.duration = std::chrono::milliseconds(1000);
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("max_concurrency"), aifc::Error);
  CHECK_THROWS_AS(aifc::Shard({3, 2}).validate(), aifc::Error);
}

TEST_CASE("schedule: a self-timed schedule sends at the given times, sharded like any other") {
  using std::chrono::milliseconds;
  aifc::LoadConfig c;
  c.self_timed = true;
  c.num_requests = 3;
  const std::vector<std::chrono::nanoseconds> times{milliseconds(0), milliseconds(5),
                                                    milliseconds(5), milliseconds(20)};
  aifc::ArrivalSchedule all(c, {}, times);
  CHECK(all.global_size() == 3u);  // at most num_requests
  std::vector<std::int64_t> got;
  while (const auto slot = all.next()) got.push_back(slot->offset.count());
  CHECK(got == std::vector<std::int64_t>{0, 5'000'000, 5'000'000});
  c.num_requests = 10;
  aifc::ArrivalSchedule odd(c, {1, 2}, times);
  CHECK(odd.next()->index == 1);
  CHECK(odd.next()->offset == milliseconds(20));
  CHECK_FALSE(odd.next());
  c.duration = milliseconds(10);
  aifc::ArrivalSchedule short_run(c, {}, times);
  int n = 0;
  while (short_run.next()) ++n;
  CHECK(n == 3);
  c.duration = {};
  CHECK_THROWS_WITH_AS(aifc::ArrivalSchedule(c, {}, {milliseconds(5), milliseconds(1)}),
                       doctest::Contains("never go back"), aifc::Error);
  c.ramp_up_strategy = aifc::RampUp::linear;
  c.ramp_up_start_rps = 1;
  c.ramp_up_end_rps = 2;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("excludes a ramp-up"), aifc::Error);
}
