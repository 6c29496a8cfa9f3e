#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "http/keep_alive.hpp"
#include "http/line_reader.hpp"

namespace aifc::detail {

/// Incremental HTTP/1.1 response parser for the event-loop transport: status line, headers,
/// then a body framed by chunked encoding, Content-Length or the connection's close. Bytes may
/// be fed split anywhere. Only what a benchmark needs is kept: status, Content-Type, framing and
/// keep-alive.
class HttpResponseParser {
 public:
  enum class Result { more, complete, error };

  /// Feeds bytes. The handler gets on_headers(status, event_stream) once and on_body(data, len)
  /// for every body piece; either returning false stops parsing (Result::error is not set:
  /// `stopped()` tells). Returns complete when the response ended inside these bytes.
  template <class Handler>
  Result feed(const char* data, std::size_t len, Handler& handler);

  /// The connection closed: completes a close-delimited body, otherwise the response is cut.
  bool complete_at_eof() const noexcept {
    return state_ == State::body_until_close || state_ == State::done;
  }
  bool keep_alive() const noexcept { return keep_alive_; }
  /// The `Keep-Alive` header's timeout and max, when the server sent one.
  const KeepAliveHint& keep_alive_hint() const noexcept { return keep_alive_hint_; }
  bool started() const noexcept { return started_; }
  bool stopped() const noexcept { return stopped_; }
  const std::string& error() const noexcept { return error_; }
  /// Bytes of an unfinished line held between feeds (bounded: see the limits in feed()).
  std::size_t buffered_bytes() const noexcept { return line_.size(); }
  void reset();

 private:
  enum class State {
    status_line,
    headers,
    chunk_size,
    chunk_data,
    chunk_data_end,
    trailers,
    body_length,
    body_until_close,
    done
  };

  using Line = LineStatus;
  Line take_line(const char*& p, const char* end, std::string_view& line, std::size_t limit) {
    return detail::take_line(p, end, line_, line, limit);
  }
  bool header(std::string_view line);
  Result fail(std::string message) {
    error_ = std::move(message);
    return Result::error;
  }

  State state_ = State::status_line;
  std::string line_;
  int status_ = 0;
  bool http10_ = false;
  bool chunked_ = false;
  bool keep_alive_ = true;
  bool event_stream_ = false;
  bool started_ = false;
  bool stopped_ = false;
  std::int64_t content_length_ = -1;
  std::uint64_t remaining_ = 0;
  KeepAliveHint keep_alive_hint_;
  std::string error_;
};

inline void HttpResponseParser::reset() {
  state_ = State::status_line;
  line_.clear();
  status_ = 0;
  http10_ = chunked_ = event_stream_ = started_ = stopped_ = false;
  keep_alive_ = true;
  content_length_ = -1;
  remaining_ = 0;
  keep_alive_hint_ = {};
  error_.clear();
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

inline bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

inline bool HttpResponseParser::header(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view name = line.substr(0, colon);
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (iequals(name, "content-type")) {
    event_stream_ = icontains(value, "text/event-stream");
  } else if (iequals(name, "content-length")) {
    std::int64_t v = 0;
    if (value.empty() || value.size() > 15) return false;  // up to about 1 PB: no overflow
    for (char c : value) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    content_length_ = v;
  } else if (iequals(name, "transfer-encoding")) {
    chunked_ = icontains(value, "chunked");
  } else if (iequals(name, "keep-alive")) {
    keep_alive_hint_ = KeepAliveHint::parse(value);
  } else if (iequals(name, "connection")) {
    if (icontains(value, "close"))
      keep_alive_ = false;
    else if (icontains(value, "keep-alive"))
      keep_alive_ = true;
  }
  return true;
}

template <class Handler>
HttpResponseParser::Result HttpResponseParser::feed(const char* data, std::size_t len,
                                                    Handler& handler) {
  const char* p = data;
  const char* const end = data + len;
  if (len > 0) started_ = true;
  while (p != end) {
    switch (state_) {
      case State::status_line: {
        std::string_view line;
        const auto got = take_line(p, end, line, 8192);
        if (got == Line::too_long) return fail("status line too long");
        if (got == Line::partial) return Result::more;
        // "HTTP/1.1 200 OK"
        if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[8] != ' ')
          return fail("not an HTTP response: " + std::string(line.substr(0, 60)));
        http10_ = line.substr(5, 3) == "1.0";
        keep_alive_ = !http10_;
        for (std::size_t i = 9; i < 12; ++i)
          if (line[i] < '0' || line[i] > '9') return fail("bad HTTP status");
        status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        if (status_ < 100) return fail("bad HTTP status");
        line_.clear();
        state_ = State::headers;
        break;
      }
      case State::headers: {
        std::string_view line;
        const auto got = take_line(p, end, line, 65536);
        if (got == Line::too_long) return fail("header too long");
        if (got == Line::partial) return Result::more;
        if (!line.empty()) {
          const bool ok = header(line);
          line_.clear();
          if (!ok) return fail("malformed header");
          break;
        }
        line_.clear();
        if (status_ >= 100 && status_ < 200) {  // interim response: the real one follows
          state_ = State::status_line;
          break;
        }
        if (!handler.on_headers(status_, event_stream_)) {
          stopped_ = true;
          return Result::more;
        }
        if (status_ == 204 || status_ == 304)
          state_ = State::done;
        else if (chunked_)
          state_ = State::chunk_size;
        else if (content_length_ >= 0) {
          remaining_ = static_cast<std::uint64_t>(content_length_);
          state_ = remaining_ ? State::body_length : State::done;
        } else {
          state_ = State::body_until_close;
          keep_alive_ = false;
        }
        if (state_ == State::done) return Result::complete;
        break;
      }
      case State::chunk_size: {
        std::string_view line;
        const auto got = take_line(p, end, line, 1024);
        if (got == Line::too_long) return fail("chunk size line too long");
        if (got == Line::partial) return Result::more;
        std::uint64_t size = 0;
        std::size_t i = 0;
        for (; i < line.size(); ++i) {
          const char c = line[i];
          int d;
          if (c >= '0' && c <= '9')
            d = c - '0';
          else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
          else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
          else
            break;
          size = size * 16 + static_cast<std::uint64_t>(d);
          if (size > (1ull << 40)) return fail("chunk too large");
        }
        if (i == 0 || (i < line.size() && line[i] != ';' && line[i] != ' '))
          return fail("bad chunk size");
        line_.clear();
        remaining_ = size;
        state_ = size ? State::chunk_data : State::trailers;
        break;
      }
      case State::chunk_data:
      case State::body_length: {
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(end - p)));
        if (!handler.on_body(p, n)) {
          stopped_ = true;
          return Result::more;
        }
        p += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          if (state_ == State::body_length) {
            state_ = State::done;
            return Result::complete;
          }
          state_ = State::chunk_data_end;
        }
        break;
      }
      case State::chunk_data_end: {
        std::string_view line;
        // Only the CRLF may follow a chunk (an empty line): junk must not pile up.
        const auto got = take_line(p, end, line, 0);
        if (got == Line::too_long || (got == Line::partial && line_[0] != '\r'))
          return fail("chunk not followed by CRLF");
        if (got == Line::partial) return Result::more;
        line_.clear();
        state_ = State::chunk_size;
        break;
      }
      case State::trailers: {
        std::string_view line;
        const auto got = take_line(p, end, line, 65536);
        if (got == Line::too_long) return fail("trailer too long");
        if (got == Line::partial) return Result::more;
        const bool last = line.empty();
        line_.clear();
        if (last) {
          state_ = State::done;
          return Result::complete;
        }
        break;
      }
      case State::body_until_close: {
        if (!handler.on_body(p, static_cast<std::size_t>(end - p))) {
          stopped_ = true;
          return Result::more;
        }
        p = end;
        break;
      }
      case State::done:
        return fail("bytes after the end of the response");
    }
  }
  return state_ == State::done ? Result::complete : Result::more;
}

}  // namespace aifc::detail
