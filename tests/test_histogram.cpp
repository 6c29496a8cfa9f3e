#include <doctest/doctest.h>

#include <aifc/histogram.hpp>
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

TEST_CASE("histogram: buckets cover every value with 0.1% width") {
  for (std::int64_t v : {0LL, 1LL, 2047LL, 2048LL, 2049LL, 4095LL, 4096LL, 123456789LL, 1LL << 40,
                         (1LL << 62) + 12345}) {
    const auto i = aifc::Histogram::bucket_index(v);
    CAPTURE(v);
    CHECK(aifc::Histogram::bucket_low(i) <= v);
    CHECK(aifc::Histogram::bucket_high(i) >= v);
    const double width =
        static_cast<double>(aifc::Histogram::bucket_high(i) - aifc::Histogram::bucket_low(i) + 1);
    CHECK(width <= std::max(1.0, static_cast<double>(v) / 1000.0));
  }
}

TEST_CASE("histogram: merge of parts equals the whole") {
  std::mt19937_64 gen(7);
  std::lognormal_distribution<double> dist(15.0, 1.5);
  aifc::Histogram whole;
  std::vector<aifc::Histogram> parts(7);
  for (int i = 0; i < 100000; ++i) {
    const auto v = static_cast<std::int64_t>(dist(gen));
    whole.record(v);
    parts[static_cast<std::size_t>(i) % parts.size()].record(v);
  }
  aifc::Histogram merged;
  for (const auto& p : parts) merged.merge(p);
  CHECK(merged == whole);
  CHECK(merged.count() == 100000);
  CHECK(merged.percentile(99) == whole.percentile(99));
  CHECK(merged.stddev() == whole.stddev());
  // Through JSON, as agents will send it.
  aifc::Histogram via_json;
  for (const auto& p : parts) via_json.merge(aifc::Histogram::from_json(p.to_json()));
  CHECK(via_json == whole);
}

TEST_CASE("histogram: the same values give the same histogram in any order and any merge") {
  // Storage covers only the buckets in use, so it grows at either end; none of that may show.
  const std::vector<std::int64_t> values = {30'000'000, 5, 2'000'000'000, 20'000'000, 4096,
                                            1LL << 40,  0, 20'000'001};
  aifc::Histogram rising, falling, halves, json_halves;
  auto sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (auto v : sorted) rising.record(v);
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) falling.record(*it);
  aifc::Histogram low, high;  // disjoint ranges, merged both ways round
  for (auto v : values) (v < 10'000'000 ? low : high).record(v);
  halves.merge(high);
  halves.merge(low);
  json_halves.merge(aifc::Histogram::from_json(low.to_json()));
  json_halves.merge(aifc::Histogram::from_json(high.to_json()));
  CHECK(falling == rising);
  CHECK(halves == rising);
  CHECK(json_halves == rising);
  CHECK(rising.to_json() == falling.to_json());
  CHECK(halves.to_json() == rising.to_json());
  for (double q : {0.0, 10.0, 50.0, 90.0, 100.0}) {
    CAPTURE(q);
    CHECK(falling.percentile(q) == rising.percentile(q));
    CHECK(halves.percentile(q) == rising.percentile(q));
  }
  CHECK(rising.percentile(50) == doctest::Approx(20'000'000).epsilon(0.001));
  // An empty histogram equals a cleared one, and a cleared one starts again anywhere.
  aifc::Histogram empty;
  falling.clear();
  CHECK(falling == empty);
  falling.record(7);
  CHECK(falling.percentile(50) == 7);
  CHECK_FALSE(falling == rising);
}

TEST_CASE("histogram: percentiles and moments agree with exact values") {
  std::mt19937_64 gen(3);
  std::exponential_distribution<double> dist(1.0 / 5e6);
  std::vector<double> values;
  aifc::Histogram h;
  for (int i = 0; i < 50000; ++i) {
    const auto v = static_cast<std::int64_t>(dist(gen));
    values.push_back(static_cast<double>(v));
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  auto exact = [&](double q) {
    const double pos = q / 100.0 * static_cast<double>(values.size() - 1);
    const auto lo = static_cast<std::size_t>(pos);
    return values[lo] + (values[std::min(lo + 1, values.size() - 1)] - values[lo]) *
                            (pos - static_cast<double>(lo));
  };
  for (double q : {1.0, 25.0, 50.0, 90.0, 99.0, 99.9}) {
    CAPTURE(q);
    CHECK(h.percentile(q) == doctest::Approx(exact(q)).epsilon(0.002));
  }
  CHECK(h.percentile(0) == values.front());
  CHECK(h.percentile(100) == values.back());
  double mean = 0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  CHECK(h.mean() == doctest::Approx(mean).epsilon(1e-12));
}

TEST_CASE("histogram: small values are exact and empty is zero") {
  aifc::Histogram h;
  CHECK(h.percentile(50) == 0);
  for (int v : {1, 2, 3, 4}) h.record(v);
  CHECK(h.percentile(50) == doctest::Approx(2.5));
  CHECK(h.min() == 1);
  CHECK(h.max() == 4);
  CHECK(h.stddev() == doctest::Approx(std::sqrt(1.25)));
}
