#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "aifc/error.hpp"

namespace aifc::detail {

/// A JSON value as a message may show it: bytes that are not UTF-8 are replaced, never thrown on.
inline std::string shown_json(const nlohmann::json& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// An optional field is written as its value or as null, so a reader sees every field.
template <class T>
nlohmann::json optional_to_json(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

/// Reads `key` of `j` into `out` when present and not null; leaves `out` alone otherwise.
template <class T>
void optional_from_json(const nlohmann::json& j, const char* key, std::optional<T>& out) {
  if (const auto at = j.find(key); at != j.end() && !at->is_null()) out = at->template get<T>();
}

/// A whole number from JSON: an integer, a float without a fraction, or text that is one
/// (numbers arrive as text from a command line, an .env file or a form). Anything else, and
/// anything beyond int64, is refused with ErrorCode::invalid_argument and a message that shows it.
inline std::int64_t whole_number(const nlohmann::json& v) {
  auto bad = [](const std::string& message) { throw Error(ErrorCode::invalid_argument, message); };
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() &&
        v.get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      bad(fmt::format("{} is too large", shown_json(v)));
    return v.get<std::int64_t>();
  }
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    std::size_t used = 0;
    std::int64_t n = 0;
    try {
      n = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (s.empty() || used != s.size()) bad(fmt::format("'{}' is not a whole number", s));
    return n;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15)
      return static_cast<std::int64_t>(d);
  }
  bad(fmt::format("must be a whole number (got {})", shown_json(v)));
  return 0;  // not reached
}

}  // namespace aifc::detail
