#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "aifc/export.hpp"

namespace aifc {

/// Nanoseconds on the system-wide monotonic clock (steady_clock). Every timestamp in a record
/// uses it, so timestamps from processes on one machine are directly comparable.
using MonoNanos = std::int64_t;

/// Reads the monotonic clock.
inline MonoNanos mono_now() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Reads the system clock: nanoseconds since the Unix epoch.
inline std::int64_t unix_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Links the monotonic clock to wall-clock time, taken once per run, so that records from
/// several machines can be placed on one time line.
struct AIFC_API ClockAnchor {
  MonoNanos mono_ns = 0;
  std::int64_t unix_ns = 0;  ///< system_clock at the same instant
  static ClockAnchor now() noexcept;
};

/// Why a request failed. `none` means it succeeded.
enum class RequestError : std::uint8_t {
  none,
  connect,            ///< could not connect (refused, unreachable, DNS)
  tls,                ///< TLS handshake or certificate verification failed
  http_status,        ///< the server answered with a non-2xx status
  server_error,       ///< the server sent an error object inside the stream or body
  malformed_stream,   ///< the body is not a valid event stream / JSON
  connection_closed,  ///< the connection ended before the response was complete
  timeout_connect,
  timeout_first_token,
  timeout_total,
  timeout_read,  ///< no bytes for longer than the read timeout
  cancelled,     ///< stopped by the caller (stop(), Ctrl-C)
  io,            ///< any other socket error
};

AIFC_API std::string_view to_string(RequestError e) noexcept;
AIFC_API RequestError request_error_from_string(std::string_view s) noexcept;

/// Where a record's output token count comes from.
enum class TokenSource : std::uint8_t {
  usage,   ///< the server's `usage` object
  chunks,  ///< counted content chunks, because the server sent no usage
  none,    ///< unknown (e.g. the request failed before any output)
};

AIFC_API std::string_view to_string(TokenSource s) noexcept;

/// The measurement of one request. Times are MonoNanos; -1 means "did not happen".
struct AIFC_API RequestRecord {
  std::uint64_t index = 0;        ///< position in the global schedule
  bool warmup = false;            ///< warm-up requests are measured but not counted
  MonoNanos scheduled_ns = -1;    ///< when the schedule said to send it
  MonoNanos send_ns = -1;         ///< when the request was actually handed to the socket
  MonoNanos first_byte_ns = -1;   ///< response headers received
  MonoNanos first_token_ns = -1;  ///< first chunk with content (answer or reasoning)
  MonoNanos first_reasoning_ns = -1;
  MonoNanos first_answer_ns = -1;
  MonoNanos end_ns = -1;            ///< response complete, or the failure detected
  std::vector<MonoNanos> token_ns;  ///< arrival of every chunk with content, in order
  /// Send stamps the server put into chunks (the aifc simulator does), parallel to token_ns.
  std::vector<MonoNanos> server_token_ns;
  std::int64_t input_tokens = 0;
  bool input_tokens_exact = false;  ///< true when the server's usage confirmed the count
  std::int64_t output_tokens = 0;
  TokenSource output_token_source = TokenSource::none;
  std::int64_t requested_output_tokens = 0;  ///< the max_tokens asked for; 0: none
  /// Sent a second time on a fresh connection because a kept-alive one had been closed by the
  /// server before any byte of the answer came back (its send_ns is the second send's).
  bool retried = false;
  int http_status = 0;
  RequestError error = RequestError::none;
  std::string error_message;
  std::string generated_text;  ///< filled only when text capture is enabled

  bool ok() const noexcept { return error == RequestError::none; }
  /// Latency from the actual send (what vLLM reports), in seconds; NaN when not applicable.
  double ttft_s() const noexcept;
  double e2el_s() const noexcept;
  /// (e2el - ttft) / (output_tokens - 1); NaN for fewer than two output tokens.
  double tpot_s() const noexcept;
  /// How late the send was against the schedule, in seconds.
  double lateness_s() const noexcept;
  /// The server generated more tokens than the request asked for.
  bool exceeded_requested_length() const noexcept {
    return ok() && requested_output_tokens > 0 && output_tokens > requested_output_tokens;
  }
};

AIFC_API void to_json(nlohmann::json& j, const RequestRecord& r);
AIFC_API void from_json(const nlohmann::json& j, RequestRecord& r);

}  // namespace aifc
