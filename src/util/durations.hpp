#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>

namespace aifc::detail {

/// Durations in the JSON forms are seconds ("..._s"); in the structs, milliseconds.
inline double seconds_of(std::chrono::milliseconds ms) {
  return static_cast<double>(ms.count()) / 1000.0;
}

inline std::chrono::milliseconds millis_from_seconds(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

/// A duration as a count of nanoseconds (the unit of every MonoNanos instant).
template <class Rep, class Period>
std::int64_t nanos_of(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace aifc::detail
