#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "aifc/export.hpp"

namespace aifc {

/// A log-linear histogram of non-negative integer values (nanoseconds, token counts) that
/// merges exactly: merging the histograms of the parts of a data set gives, bit for bit, the
/// histogram of the whole. Values below 2048 are kept exactly; above, each power of two is cut
/// into 1024 buckets, so any reported quantile is within 0.1% of a real value.
/// Count, sum, sum of squares, min and max are kept exactly (128-bit sums).
class AIFC_API Histogram {
 public:
  static constexpr int kSubBucketBits = 11;  // 2048 exact values, then 1024 buckets per octave

  void record(std::int64_t value) noexcept { record_n(value, 1); }
  void record_n(std::int64_t value, std::uint64_t times) noexcept;
  /// Adds all of `other` into this histogram.
  void merge(const Histogram& other);
  void clear() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::int64_t min() const noexcept { return count_ ? min_ : 0; }
  std::int64_t max() const noexcept { return count_ ? max_ : 0; }
  double mean() const noexcept;
  /// Population standard deviation (as numpy.std), exact up to the final division.
  double stddev() const noexcept;
  /// The value at quantile q in [0, 100], interpolated linearly between neighbouring ranks as
  /// numpy.percentile does, each rank represented by the middle of its bucket (exact below 2048).
  double percentile(double q) const noexcept;

  bool operator==(const Histogram& other) const noexcept;

  /// Sparse JSON form: {"count","min","max","sum","sum_sq","buckets":[[index,count],...]}.
  /// Sums are decimal strings because they exceed 64 bits.
  nlohmann::json to_json() const;
  static Histogram from_json(const nlohmann::json& j);

  static std::size_t bucket_index(std::int64_t value) noexcept;
  static std::int64_t bucket_low(std::size_t index) noexcept;
  static std::int64_t bucket_high(std::size_t index) noexcept;  ///< inclusive

 private:
  double value_at_rank(std::uint64_t rank) const noexcept;
  /// Grows the storage to hold the buckets low..high.
  void cover(std::size_t low, std::size_t high);

  // Only the range of buckets in use is stored (counts_[k] is bucket first_ + k): latencies of
  // tens of milliseconds need ~2 k buckets instead of the 16 k below them.
  std::size_t first_ = 0;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::int64_t min_ = 0;
  std::int64_t max_ = 0;
  // Exact 128-bit sums (squares of nanoseconds overflow 64 bits), as two halves so that no
  // compiler extension shows in the public header.
  std::uint64_t sum_[2] = {0, 0};     ///< low, high
  std::uint64_t sum_sq_[2] = {0, 0};  ///< low, high
};

}  // namespace aifc
