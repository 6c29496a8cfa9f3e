#include "aifc/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "aifc/error.hpp"

namespace aifc {
namespace {

constexpr std::int64_t kExactLimit = std::int64_t{1} << Histogram::kSubBucketBits;  // 2048
constexpr std::size_t kHalf = std::size_t{1} << (Histogram::kSubBucketBits - 1);    // 1024

__extension__ using U128 = unsigned __int128;

U128 load(const std::uint64_t (&halves)[2]) {
  return (static_cast<U128>(halves[1]) << 64) | halves[0];
}

void store(std::uint64_t (&halves)[2], U128 v) {
  halves[0] = static_cast<std::uint64_t>(v);
  halves[1] = static_cast<std::uint64_t>(v >> 64);
}

std::string u128_to_string(U128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

U128 u128_from_string(const std::string& s) {
  U128 v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') throw Error(ErrorCode::parse_error, "histogram: bad sum '" + s + "'");
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v;
}

}  // namespace

std::size_t Histogram::bucket_index(std::int64_t value) noexcept {
  if (value < 0) value = 0;
  if (value < kExactLimit) return static_cast<std::size_t>(value);
  const auto v = static_cast<std::uint64_t>(value);
  const int msb = 63 - std::countl_zero(v);                      // >= kSubBucketBits
  const int shift = msb - (kSubBucketBits - 1);                  // keep the top 11 bits
  const std::size_t top = static_cast<std::size_t>(v >> shift);  // in [1024, 2048)
  return static_cast<std::size_t>(kExactLimit) + static_cast<std::size_t>(shift - 1) * kHalf +
         (top - kHalf);
}

std::int64_t Histogram::bucket_low(std::size_t index) noexcept {
  if (index < static_cast<std::size_t>(kExactLimit)) return static_cast<std::int64_t>(index);
  const std::size_t rel = index - static_cast<std::size_t>(kExactLimit);
  const int shift = static_cast<int>(rel / kHalf) + 1;
  const std::uint64_t top = kHalf + rel % kHalf;
  return static_cast<std::int64_t>(top << shift);
}

std::int64_t Histogram::bucket_high(std::size_t index) noexcept {
  if (index < static_cast<std::size_t>(kExactLimit)) return static_cast<std::int64_t>(index);
  const std::size_t rel = index - static_cast<std::size_t>(kExactLimit);
  const int shift = static_cast<int>(rel / kHalf) + 1;
  return bucket_low(index) + (std::int64_t{1} << shift) - 1;
}

void Histogram::record_n(std::int64_t value, std::uint64_t times) noexcept {
  if (times == 0) return;
  if (value < 0) value = 0;
  const std::size_t i = bucket_index(value);
  cover(i, i);
  counts_[i - first_] += times;
  if (count_ == 0 || value < min_) min_ = value;
  if (count_ == 0 || value > max_) max_ = value;
  count_ += times;
  const auto v = static_cast<U128>(value);
  store(sum_, load(sum_) + v * times);
  store(sum_sq_, load(sum_sq_) + v * v * times);
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) return;
  if (!other.counts_.empty()) {
    cover(other.first_, other.first_ + other.counts_.size() - 1);
    const std::size_t at = other.first_ - first_;
    for (std::size_t k = 0; k < other.counts_.size(); ++k) counts_[at + k] += other.counts_[k];
  }
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  if (count_ == 0 || other.max_ > max_) max_ = other.max_;
  count_ += other.count_;
  store(sum_, load(sum_) + load(other.sum_));
  store(sum_sq_, load(sum_sq_) + load(other.sum_sq_));
}

void Histogram::cover(std::size_t low, std::size_t high) {
  if (counts_.empty()) {
    first_ = low;
    counts_.assign(high - low + 1, 0);
    return;
  }
  if (low < first_) {
    counts_.insert(counts_.begin(), first_ - low, 0);
    first_ = low;
  }
  if (high >= first_ + counts_.size()) counts_.resize(high - first_ + 1, 0);
}

void Histogram::clear() noexcept {
  counts_.clear();
  first_ = 0;
  count_ = 0;
  min_ = max_ = 0;
  store(sum_, 0);
  store(sum_sq_, 0);
}

double Histogram::mean() const noexcept {
  return count_ ? static_cast<double>(load(sum_)) / static_cast<double>(count_) : 0.0;
}

double Histogram::stddev() const noexcept {
  if (count_ == 0) return 0.0;
  // n*sum_sq - sum^2 can exceed 128 bits for long runs; long double keeps 64 bits of mantissa.
  const long double n = static_cast<long double>(count_);
  const long double mean = static_cast<long double>(load(sum_)) / n;
  const long double var = static_cast<long double>(load(sum_sq_)) / n - mean * mean;
  return var > 0 ? static_cast<double>(std::sqrt(var)) : 0.0;
}

double Histogram::value_at_rank(std::uint64_t rank) const noexcept {
  if (rank == 0) return static_cast<double>(min_);
  if (rank + 1 >= count_) return static_cast<double>(max_);
  std::uint64_t seen = 0;
  for (std::size_t k = 0; k < counts_.size(); ++k) {
    seen += counts_[k];
    if (seen > rank) {
      const std::size_t i = first_ + k;
      const double mid =
          (static_cast<double>(bucket_low(i)) + static_cast<double>(bucket_high(i))) / 2.0;
      return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

double Histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0.0;
  q = std::clamp(q, 0.0, 100.0);
  const double pos = q / 100.0 * static_cast<double>(count_ - 1);
  const auto lo = static_cast<std::uint64_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(lo);
  const double a = value_at_rank(lo);
  if (frac == 0.0) return a;
  return a + (value_at_rank(lo + 1) - a) * frac;
}

bool Histogram::operator==(const Histogram& o) const noexcept {
  if (count_ != o.count_ || min() != o.min() || max() != o.max() || load(sum_) != load(o.sum_) ||
      load(sum_sq_) != load(o.sum_sq_))
    return false;
  // The same counts, whatever range each one's storage happens to cover.
  auto at = [](const Histogram& h, std::size_t i) -> std::uint64_t {
    return i >= h.first_ && i - h.first_ < h.counts_.size() ? h.counts_[i - h.first_] : 0;
  };
  const std::size_t low = std::min(first_, o.first_);
  const std::size_t high = std::max(first_ + counts_.size(), o.first_ + o.counts_.size());
  for (std::size_t i = low; i < high; ++i)
    if (at(*this, i) != at(o, i)) return false;
  return true;
}

nlohmann::json Histogram::to_json() const {
  nlohmann::json buckets = nlohmann::json::array();
  for (std::size_t k = 0; k < counts_.size(); ++k)
    if (counts_[k]) buckets.push_back({first_ + k, counts_[k]});
  return {{"count", count_},
          {"min", min()},
          {"max", max()},
          {"sum", u128_to_string(load(sum_))},
          {"sum_sq", u128_to_string(load(sum_sq_))},
          {"buckets", std::move(buckets)}};
}

Histogram Histogram::from_json(const nlohmann::json& j) {
  Histogram h;
  try {
    const auto& buckets = j.at("buckets");
    std::size_t low = 0, high = 0;
    for (std::size_t k = 0; k < buckets.size(); ++k) {
      const auto i = buckets.at(k).at(0).get<std::size_t>();
      if (i > (std::size_t{1} << 20)) throw Error(ErrorCode::parse_error, "histogram: bad bucket");
      low = k == 0 ? i : std::min(low, i);
      high = k == 0 ? i : std::max(high, i);
    }
    if (!buckets.empty()) h.cover(low, high);  // one allocation, of the range in use
    for (const auto& b : buckets)
      h.counts_[b.at(0).get<std::size_t>() - low] += b.at(1).get<std::uint64_t>();
    h.count_ = j.at("count").get<std::uint64_t>();
    h.min_ = j.at("min").get<std::int64_t>();
    h.max_ = j.at("max").get<std::int64_t>();
    store(h.sum_, u128_from_string(j.at("sum").get<std::string>()));
    store(h.sum_sq_, u128_from_string(j.at("sum_sq").get<std::string>()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::parse_error, std::string("histogram: ") + e.what());
  }
  return h;
}

}  // namespace aifc
