#pragma once

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "aifc/error.hpp"

namespace aifc::detail {

/// Refuses, naming its place, a number of a JSON spec that no field can take: a fraction
/// whose magnitude reaches 2^63. nlohmann::json converts a float to an integer field with a plain
/// cast, which for such a value is undefined behaviour (found by fuzz/fuzz_specs.cpp:
/// "max_concurrency": 4.3e103). Every valid value of every field is far inside that range, so the
/// check refuses nothing validate() would accept. Called where JSON from others becomes a spec.
inline void check_json_numbers_at(const nlohmann::json& j, const std::string& what,
                                  const std::string& path) {
  if (j.is_number_float()) {
    const double d = j.get<double>();
    if (!std::isfinite(d) || std::abs(d) >= 9.2e18)
      throw Error(
          ErrorCode::invalid_argument,
          fmt::format("{}{}: {} is out of range", what, path.empty() ? "value" : path, j.dump()));
  } else if (j.is_object()) {
    for (const auto& [key, value] : j.items())
      check_json_numbers_at(value, what, path.empty() ? key : path + "." + key);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i)
      check_json_numbers_at(j[i], what, fmt::format("{}[{}]", path, i));
  }
}

/// `what` starts the message ("benchmark spec: "); the number's path in `j` follows.
inline void check_json_numbers(const nlohmann::json& j, const std::string& what) {
  check_json_numbers_at(j, what, "");
}

}  // namespace aifc::detail
