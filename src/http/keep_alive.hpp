#pragma once

#include <cstdint>
#include <string_view>

#include "aifc/record.hpp"

namespace aifc::detail {

/// What a server said about keeping its connection open (`Keep-Alive: timeout=T, max=N`), and
/// the one rule both transports follow to decide whether a kept-alive connection may carry
/// the next request. Servers close connections in ways a client cannot see in time (a FIN
/// still in flight when the next request leaves), so the rule errs on the side of a fresh one.
struct KeepAliveHint {
  std::int64_t timeout_s = -1;  ///< -1: not said
  std::int64_t max = -1;        ///< -1: not said

  /// Reads a Keep-Alive header value such as "timeout=5, max=100".
  static KeepAliveHint parse(std::string_view value) noexcept {
    KeepAliveHint h;
    auto read = [&](std::string_view name) -> std::int64_t {
      for (std::size_t at = value.find(name); at != std::string_view::npos;
           at = value.find(name, at + 1)) {
        const bool starts = at == 0 || value[at - 1] == ' ' || value[at - 1] == ',';
        std::size_t i = at + name.size();
        if (!starts || i >= value.size() || value[i] != '=') continue;
        std::int64_t v = 0;
        bool digits = false;
        for (++i; i < value.size() && value[i] >= '0' && value[i] <= '9' && v < 1'000'000'000;
             ++i) {
          v = v * 10 + (value[i] - '0');
          digits = true;
        }
        return digits ? v : -1;
      }
      return -1;
    };
    h.timeout_s = read("timeout");
    h.max = read("max");
    return h;
  }

  /// May a connection that has answered `responses` requests carry another? `max` is read both
  /// ways servers mean it (requests left, as Apache counts down; or the total, as cpp-httplib
  /// repeats it): once either says no more, the connection is not reused.
  bool allows_another(std::int64_t responses) const noexcept {
    return max < 0 || (max > 1 && responses < max);
  }

  /// How long the connection may sit idle before the server is likely to drop it: a margin
  /// under the announced timeout (a second, or half of a shorter one); -1: no limit known.
  MonoNanos idle_limit_ns() const noexcept {
    if (timeout_s < 0) return -1;
    const MonoNanos t = timeout_s * 1'000'000'000;
    return t - (t / 2 < 1'000'000'000 ? t / 2 : 1'000'000'000);
  }
};

}  // namespace aifc::detail
