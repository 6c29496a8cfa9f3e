#pragma once

#include <string>

#include "aifc/record.hpp"
#include "aifc/vllm_client.hpp"
#include "stream/openai_stream.hpp"
#include "stream/sse.hpp"

namespace aifc::detail {

/// The message of an error body or an in-stream error event: OpenAI's {"error":{"message"}} or
/// {"error":"..."}, vLLM's and llama.cpp's {"message"}, FastAPI's {"detail"}; else the raw text,
/// cut to a few hundred bytes at a character boundary.
std::string error_body_message(std::string_view body);

/// The first `max_bytes` bytes of `text`, shortened so that no UTF-8 character is cut in half.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept;

/// How a transport saw a request end.
enum class TransportEnd {
  complete,  ///< the whole response arrived
  connect_failed,
  connect_timeout,
  tls_failed,
  read_failed,  ///< the connection closed or a read timed out before the response was complete
  write_failed,
  aborted,  ///< the recorder (or a deadline, or cancel) asked to stop
};

/// Turns one response, as any transport receives it, into a RequestRecord: status and
/// headers, body bytes (event stream or plain JSON) with their arrival times, deadlines, and
/// the classification of how it ended. Shared by every transport so that they measure alike.
class StreamRecorder {
 public:
  explicit StreamRecorder(const ClientConfig& config);

  /// Starts a new request; `rec` receives everything.
  void begin(RequestRecord& rec, const PreparedRequest& request, MonoNanos scheduled_ns,
             MonoNanos send_ns);
  void on_headers(int status, bool event_stream, MonoNanos now);
  /// Returns false when the request must stop (the record's error is then set).
  bool on_body(const char* data, std::size_t len, MonoNanos now);
  /// The timeout that has run out at `now`, or none.
  RequestError overdue(MonoNanos now) const noexcept;
  /// The earliest instant at which overdue() can change, for event loops.
  MonoNanos next_deadline() const noexcept;
  /// Records a failure decided outside the recorder (deadline, cancel) unless one is set.
  void fail(RequestError error, std::string message);
  /// Completes the record. `transport_message` describes a transport failure.
  void finish(TransportEnd end, MonoNanos now, const std::string& transport_message = {});

  MonoNanos last_byte_ns() const noexcept { return last_byte_ns_; }
  std::string timeout_message(RequestError e) const;

 private:
  bool on_event(const SseEvent& ev, MonoNanos now);
  void take_usage(const StreamChunk& chunk);  ///< the server's token counts, when it sent them

  const ClientConfig& config_;
  MonoNanos first_token_budget_ = -1;
  MonoNanos total_budget_ = 0;
  MonoNanos read_budget_ = 0;
  RequestRecord* rec_ = nullptr;
  SseParser sse_;
  bool event_stream_ = false;
  bool saw_done_ = false;
  bool saw_finish_ = false;
  std::string plain_body_;
  MonoNanos last_byte_ns_ = -1;
};

}  // namespace aifc::detail
