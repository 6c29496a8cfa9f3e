#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "aifc/vllm_client.hpp"

namespace aifc::detail {

/// A measured request as the bytes both transports write: the header lines every request of a
/// config carries are made once, each request adds its length and body.

/// The request line and the fixed headers of every request of `config`, each ending in CRLF.
std::string raw_request_head(const ClientConfig& config);
/// A set-up call's request (GET /v1/models, POST /tokenize, ...) to `path` below the base URL,
/// with the config's credentials and headers, and a JSON body when `body` is not null.
std::string raw_side_request(const ClientConfig& config, std::string_view method,
                             std::string_view path, const std::string* body);
/// The full HTTP/1.1 request for one prepared body, with an "x-request-id" header when
/// `request_id` is not empty.
std::string build_raw_request(std::string_view head, const std::string& body,
                              std::string_view request_id = {});
/// `raw` (made by build_raw_request) with an "x-request-id" header added.
std::string with_request_id(const std::string& raw, std::string_view request_id);

/// The "x-request-id" of the request at `index` of the schedule; empty: none is sent.
inline std::string request_id(const ClientConfig& config, std::uint64_t index) {
  if (!config.request_id_prefix || config.request_id_prefix->empty()) return {};
  return *config.request_id_prefix + std::to_string(index);
}

}  // namespace aifc::detail
