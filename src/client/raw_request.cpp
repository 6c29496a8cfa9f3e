#include "client/raw_request.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "aifc/version.hpp"
#include "http/url.hpp"

namespace aifc::detail {

namespace {

// The request line and the headers every request to the server carries.
std::string head(const ClientConfig& config, std::string_view method, std::string_view path) {
  const Url e = parse_url(config.base_url);
  std::string host = e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
  const bool https = config.base_url.rfind("https://", 0) == 0;
  if (e.port != (https ? "443" : "80")) host += ":" + e.port;
  std::string r = fmt::format(
      "{} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: aifc/{}\r\nAccept-Encoding: identity\r\n"
      "Connection: keep-alive\r\n",
      method, e.prefix, path, host, version());
  if (!config.api_key.empty()) r += "Authorization: Bearer " + config.api_key + "\r\n";
  for (const auto& [k, v] : config.headers) r += k + ": " + v + "\r\n";
  return r;
}

}  // namespace

std::string raw_request_head(const ClientConfig& config) {
  std::string r = head(config, "POST", config.endpoint);
  r += "Content-Type: application/json\r\n";
  if (config.stream) r += "Accept: text/event-stream\r\n";
  return r;
}

std::string raw_side_request(const ClientConfig& config, std::string_view method,
                             std::string_view path, const std::string* body) {
  if (!body) return head(config, method, path) + "\r\n";
  return build_raw_request(head(config, method, path) + "Content-Type: application/json\r\n",
                           *body);
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
