#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace aifc::detail {

enum class LineStatus { complete, partial, too_long };

/// The next line of [p, end) (without its CRLF or LF) into `line`, advancing p past it. A line
/// that does not end in these bytes is appended to `held` (partial); a later call completes it,
/// and `line` then views `held`, which the caller clears once done with it. A line longer than
/// `limit` is too_long whether it came in one piece or many (the network decides that): an
/// unfinished one may still have its '\r' to shed, hence limit + 1 for it. Shared by the HTTP
/// response and request parsers.
inline LineStatus take_line(const char*& p, const char* end, std::string& held,
                            std::string_view& line, std::size_t limit) {
  const char* nl =
      static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
  if (!nl) {
    held.append(p, static_cast<std::size_t>(end - p));
    p = end;
    return held.size() > limit + 1 ? LineStatus::too_long : LineStatus::partial;
  }
  if (held.empty()) {
    line = std::string_view(p, static_cast<std::size_t>(nl - p));
  } else {
    held.append(p, static_cast<std::size_t>(nl - p));
    line = held;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  p = nl + 1;
  return line.size() > limit ? LineStatus::too_long : LineStatus::complete;
}

}  // namespace aifc::detail
