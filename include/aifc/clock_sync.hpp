#pragma once

#include <cstdint>
#include <vector>

#include "aifc/export.hpp"

namespace aifc {

/// One NTP-style exchange with a reference clock: this machine's system clock when the question
/// left and when the answer came back, and the reference clock's reading in between (all Unix
/// nanoseconds).
struct AIFC_API ClockSample {
  std::int64_t sent_ns = 0;
  std::int64_t reference_ns = 0;
  std::int64_t received_ns = 0;
};

/// How far the reference clock is ahead of this one: reference = local + offset_ns, give or
/// take uncertainty_ns (half the round trip of the exchange it came from).
struct AIFC_API ClockOffset {
  std::int64_t offset_ns = 0;
  std::int64_t uncertainty_ns = 0;
  std::int64_t round_trip_ns = 0;
  std::uint32_t samples = 0;
};

/// The estimate from the exchange with the shortest round trip (the least queueing, so the
/// tightest bound). Samples whose answer came back before the question left are ignored.
/// No usable sample: samples == 0 and offset 0.
AIFC_API ClockOffset estimate_clock_offset(const std::vector<ClockSample>& samples);

}  // namespace aifc
