#include "client/raw_request.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "aifc/version.hpp"
#include "http/url.hpp"

namespace aifc::detail {

std::string raw_request_head(const ClientConfig& config) {
  const Url e = parse_url(config.base_url);
  std::string host = e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
  const bool https = config.base_url.rfind("https://", 0) == 0;
  if (e.port != (https ? "443" : "80")) host += ":" + e.port;
  std::string r = fmt::format(
      "POST {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: aifc/{}\r\nContent-Type: application/json\r\n"
      "Accept-Encoding: identity\r\nConnection: keep-alive\r\n",
      e.prefix, config.endpoint, host, version());
  if (config.stream) r += "Accept: text/event-stream\r\n";
  if (!config.api_key.empty()) r += "Authorization: Bearer " + config.api_key + "\r\n";
  for (const auto& [k, v] : config.headers) r += k + ": " + v + "\r\n";
  return r;
}

std::string build_raw_request(std::string_view head, const std::string& body,
                              std::string_view request_id) {
  char length[48];
  const int n = std::snprintf(length, sizeof length, "Content-Length: %zu\r\n\r\n", body.size());
  std::string r;
  r.reserve(head.size() + (request_id.empty() ? 0 : request_id.size() + 16) +
            static_cast<std::size_t>(n) + body.size());
  r += head;
  if (!request_id.empty()) r.append("x-request-id: ").append(request_id).append("\r\n");
  r.append(length, static_cast<std::size_t>(n));
  r += body;
  return r;
}

std::string with_request_id(const std::string& raw, std::string_view request_id) {
  // Content-Length is the last header build_raw_request writes: the id goes just before it.
  const auto at = raw.find("\r\nContent-Length: ") + 2;
  std::string r;
  r.reserve(raw.size() + request_id.size() + 16);
  r.assign(raw, 0, at);
  r.append("x-request-id: ").append(request_id).append("\r\n");
  r.append(raw, at, std::string::npos);
  return r;
}

}  // namespace aifc::detail
