#pragma once

#include <string>

namespace aifc::detail {

/// A base URL taken apart: "https://[::1]:8443/proxy/" gives origin "https://[::1]:8443",
/// host "::1", port "8443" and prefix "/proxy" (no trailing slash). The port defaults to the
/// scheme's (80 or 443). Shared by every HTTP client in the library.
struct Url {
  std::string origin;
  std::string host;
  std::string port;
  std::string prefix;
};

inline Url parse_url(const std::string& url) {
  Url u;
  const auto scheme_end = url.find("://");
  const auto authority = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const auto path_start = url.find('/', authority);
  u.origin = url.substr(0, path_start);
  if (path_start != std::string::npos) u.prefix = url.substr(path_start);
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  const std::string rest = u.origin.substr(authority);
  u.port = url.rfind("https://", 0) == 0 ? "443" : "80";
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const auto close = rest.find(']');
    u.host = rest.substr(1, close - 1);
    if (close != std::string::npos && close + 1 < rest.size() && rest[close + 1] == ':')
      u.port = rest.substr(close + 2);
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    u.host = rest.substr(0, colon);
    u.port = rest.substr(colon + 1);
  } else {
    u.host = rest;
  }
  return u;
}

}  // namespace aifc::detail
