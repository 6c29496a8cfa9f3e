#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace aifc::detail {

/// Appends `text` as a JSON string: the text nlohmann writes for it (escapes; bytes that are not
/// UTF-8 replaced by U+FFFD), without building a JSON value when it is plain printable ASCII,
/// as most prompts and messages are.
inline void append_json_string(std::string& out, std::string_view text) {
  const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
  });
  if (plain) {
    out += '"';
    out += text;
    out += '"';
  } else {
    out += nlohmann::json(std::string(text))
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

}  // namespace aifc::detail
