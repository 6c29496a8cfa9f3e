#pragma once

#include <string>
#include <string_view>

namespace aifc::detail {

/// Text made safe inside an HTML element or a double-quoted attribute.
inline std::string html_escaped(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// The start of a self-contained report page up to its <h1>: the title, the style every page
/// shares and the page's own `css` rules.
inline std::string report_page_head(std::string_view title, std::string_view css) {
  const std::string t = html_escaped(title);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>";
  out += t;
  out +=
      "</title>\n<style>\nbody { font: 14px sans-serif; margin: 1em; }\n"
      "svg text { font: 11px sans-serif; fill: #444; }\n";
  out += css;
  out += "</style></head>\n<body>\n<h1>";
  out += t;
  out += "</h1>\n";
  return out;
}

/// What a report page says when the result kept no per-request records.
inline constexpr std::string_view kNoRecordsNote =
    "<p>The result holds no per-request records (keep_records was off), so there is nothing to "
    "draw.</p>\n";

}  // namespace aifc::detail
