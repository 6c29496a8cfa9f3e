#pragma once

#include <cstddef>
#include <optional>

#include "http/http_response_parser.hpp"
#include "stream/stream_recorder.hpp"

namespace aifc::detail {

/// Hands what the HTTP response parser reads to a recorder, with the arrival time of the bytes
/// being fed (the parser's handler, for both transports).
struct RecorderFeed {
  StreamRecorder& recorder;
  MonoNanos arrived;
  bool on_headers(int status, bool event_stream) {
    recorder.on_headers(status, event_stream, arrived);
    return true;
  }
  bool on_body(const char* data, std::size_t len) { return recorder.on_body(data, len, arrived); }
};

/// Parses received bytes of a measured response: nullopt while it goes on, else how it ended:
/// complete, or aborted with the record's error set (by the recorder, or here for a response
/// that is not HTTP). One reading of the parser's outcome for both transports.
inline std::optional<TransportEnd> feed_response(HttpResponseParser& parser, const char* data,
                                                 std::size_t len, RecorderFeed& feed) {
  const auto result = parser.feed(data, len, feed);
  if (parser.stopped()) return TransportEnd::aborted;  // the recorder said why
  if (result == HttpResponseParser::Result::error) {
    feed.recorder.fail(RequestError::malformed_stream, "bad HTTP response: " + parser.error());
    return TransportEnd::aborted;
  }
  if (result == HttpResponseParser::Result::complete) return TransportEnd::complete;
  return std::nullopt;
}

}  // namespace aifc::detail
