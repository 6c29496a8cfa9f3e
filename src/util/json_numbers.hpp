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

/// Refuses a fraction given for a whole-number field, which nlohmann::json would truncate without
/// a word ("max_concurrency": 4.7 ran with 4). `given` is the JSON a spec was read from, `read`
/// the spec written back: where `given` holds a number with a fraction and `read` an integer at
/// the same place, the field was an integer. Places that `read` names or types differently are
/// left alone.
inline void check_whole_numbers_at(const nlohmann::json& given, const nlohmann::json& read,
                                   const std::string& what, const std::string& path) {
  if (given.is_number_float()) {
    if (read.is_number_integer() && given.get<double>() != std::floor(given.get<double>()))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}{}: must be a whole number (got {})", what,
                              path.empty() ? "value" : path, given.dump()));
  } else if (given.is_object() && read.is_object()) {
    for (const auto& [key, value] : given.items())
      if (const auto at = read.find(key); at != read.end())
        check_whole_numbers_at(value, *at, what, path.empty() ? key : path + "." + key);
  } else if (given.is_array() && read.is_array()) {
    for (std::size_t i = 0; i < given.size() && i < read.size(); ++i)
      check_whole_numbers_at(given[i], read[i], what, fmt::format("{}[{}]", path, i));
  }
}

inline void check_whole_numbers(const nlohmann::json& given, const nlohmann::json& read,
                                const std::string& what) {
  check_whole_numbers_at(given, read, what, "");
}

}  // namespace aifc::detail
