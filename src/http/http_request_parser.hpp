#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_response_parser.hpp"  // iequals
#include "http/line_reader.hpp"

namespace aifc::detail {

/// One HTTP/1.1 request as a server sees it. Header names are kept as sent; look them up with
/// header(), which ignores case.
struct HttpRequest {
  std::string method;
  std::string target;  ///< the path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;        ///< HTTP/1.1 unless "Connection: close"; HTTP/1.0 if asked
  bool expect_continue = false;  ///< "Expect: 100-continue": the client waits for a 100

  /// The first header of that name (any case), or empty.
  std::string_view header(std::string_view name) const noexcept {
    for (const auto& [n, v] : headers)
      if (iequals(n, name)) return v;
    return {};
  }
  /// The target without its query string.
  std::string_view path() const noexcept {
    const std::string_view t = target;
    return t.substr(0, t.find('?'));
  }
};

/// Incremental HTTP/1.1 request parser for an event-loop server: request line, headers, then a
/// body framed by Content-Length or chunked encoding. Bytes may arrive split anywhere and
/// several requests may come in one read (pipelining): feed() stops at the end of a request and
/// leaves the rest for the next one. Everything is bounded, so a client cannot make the server
/// hold more than the limits whatever it sends; a breach is an error with the status to answer.
class HttpRequestParser {
 public:
  enum class Result { more, complete, error };

  static constexpr std::size_t kMaxLine = 8 * 1024;          ///< request line, header, chunk size
  static constexpr std::size_t kMaxHeaderBytes = 64 * 1024;  ///< all the headers together
  static constexpr std::size_t kMaxHeaders = 100;
  static constexpr std::uint64_t kMaxBody = 64ull * 1024 * 1024;

  /// Consumes bytes from [p, end) up to the end of one request and advances p past them.
  /// complete: request() holds it (call reset() before the next); error: error_status() and
  /// error() say what to answer, and the connection should then be closed.
  Result feed(const char*& p, const char* end);

  /// Whether the request line and headers are complete (the body may still be coming): the
  /// moment to answer "100 Continue" when request().expect_continue.
  bool headers_done() const noexcept { return state_ > State::headers; }
  const HttpRequest& request() const noexcept { return request_; }
  HttpRequest& request() noexcept { return request_; }
  int error_status() const noexcept { return error_status_; }
  const std::string& error() const noexcept { return error_; }
  /// Whether nothing of a request has arrived yet (an idle keep-alive connection may close).
  bool idle() const noexcept { return state_ == State::request_line && line_.empty(); }
  void reset();

 private:
  enum class State {
    request_line,
    headers,
    body_length,
    chunk_size,
    chunk_data,
    chunk_data_end,
    trailers,
    done
  };
  using Line = LineStatus;
  bool request_line(std::string_view line);
  bool header(std::string_view line);
  Result fail(int status, std::string message) {
    error_status_ = status;
    error_ = std::move(message);
    state_ = State::done;
    return Result::error;
  }

  State state_ = State::request_line;
  std::string line_;
  HttpRequest request_;
  bool http10_ = false;
  bool chunked_ = false;
  std::int64_t content_length_ = -1;
  std::uint64_t remaining_ = 0;
  std::size_t header_bytes_ = 0;
  int error_status_ = 0;
  std::string error_;
};

inline void HttpRequestParser::reset() {
  state_ = State::request_line;
  line_.clear();
  request_ = HttpRequest{};
  http10_ = chunked_ = false;
  content_length_ = -1;
  remaining_ = 0;
  header_bytes_ = 0;
  error_status_ = 0;
  error_.clear();
}

inline bool HttpRequestParser::request_line(std::string_view line) {
  const auto first = line.find(' ');
  const auto last = line.rfind(' ');
  if (first == std::string_view::npos || first == last || first == 0) return false;
  const std::string_view method = line.substr(0, first);
  const std::string_view target = line.substr(first + 1, last - first - 1);
  const std::string_view version = line.substr(last + 1);
  for (char c : method)
    if (c < 'A' || c > 'Z') return false;
  if (target.empty() || target.find(' ') != std::string_view::npos) return false;
  if (version == "HTTP/1.0")
    http10_ = true;
  else if (version != "HTTP/1.1")
    return false;
  request_.method = std::string(method);
  request_.target = std::string(target);
  request_.keep_alive = !http10_;
  return true;
}

inline bool HttpRequestParser::header(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view name = line.substr(0, colon);
  if (name.find_first_of(" \t") != std::string_view::npos) return false;  // no space before ':'
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (iequals(name, "Content-Length")) {
    if (value.empty() || value.size() > 18 ||
        value.find_first_not_of("0123456789") != std::string_view::npos)
      return false;
    std::int64_t n = 0;
    for (char c : value) n = n * 10 + (c - '0');
    if (content_length_ >= 0 && content_length_ != n) return false;  // two that disagree
    content_length_ = n;
  } else if (iequals(name, "Transfer-Encoding")) {
    if (!iequals(value, "chunked")) return false;  // nothing else is sent to an API server
    chunked_ = true;
  } else if (iequals(name, "Connection")) {
    if (iequals(value, "close")) request_.keep_alive = false;
    if (iequals(value, "keep-alive")) request_.keep_alive = true;
  } else if (iequals(name, "Expect")) {
    request_.expect_continue = iequals(value, "100-continue");
  }
  request_.headers.emplace_back(std::string(name), std::string(value));
  return true;
}

inline HttpRequestParser::Result HttpRequestParser::feed(const char*& p, const char* end) {
  while (true) {
    switch (state_) {
      case State::done:
        return error_status_ ? Result::error : Result::complete;
      case State::request_line:
      case State::headers:
      case State::chunk_size:
      case State::trailers: {
        // An idle connection's stray CRLF before a request is skipped, as RFC 9112 allows.
        std::string_view line;
        const Line got = take_line(p, end, line_, line, kMaxLine);
        if (got == Line::too_long)
          return state_ == State::request_line ? fail(414, "the request line is too long")
                 : state_ == State::headers    ? fail(431, "a header line is too long")
                                               : fail(400, "a chunk line is too long");
        if (got == Line::partial) return Result::more;
        // A line that came in pieces is moved out of line_, which then starts the next one.
        std::string held;
        if (!line_.empty()) {
          held = std::move(line_);
          line_.clear();
          line = std::string_view(held).substr(0, line.size());
        }
        const std::size_t length = line.size();
        if (state_ == State::request_line) {
          if (line.empty()) continue;
          if (!request_line(line)) return fail(400, "the request line is not HTTP/1.1");
          state_ = State::headers;
        } else if (state_ == State::headers) {
          header_bytes_ += length + 2;
          if (header_bytes_ > kMaxHeaderBytes) return fail(431, "the headers are too large");
          if (!line.empty()) {
            if (request_.headers.size() >= kMaxHeaders) return fail(431, "too many headers");
            if (!header(line)) return fail(400, "a header is not valid");
            continue;
          }
          if (chunked_ && content_length_ >= 0)
            return fail(400, "both Content-Length and chunked encoding");
          if (content_length_ > static_cast<std::int64_t>(kMaxBody))
            return fail(413, "the body is too large");
          if (chunked_) {
            state_ = State::chunk_size;
          } else if (content_length_ > 0) {
            remaining_ = static_cast<std::uint64_t>(content_length_);
            request_.body.reserve(remaining_);
            state_ = State::body_length;
          } else {
            state_ = State::done;
          }
        } else if (state_ == State::chunk_size) {
          const std::string_view digits = line.substr(0, line.find(';'));
          if (digits.empty() || digits.size() > 15 ||
              digits.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos)
            return fail(400, "a chunk size is not valid");
          std::uint64_t n = 0;
          for (char c : digits)
            n = n * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
          if (request_.body.size() + n > kMaxBody) return fail(413, "the body is too large");
          remaining_ = n;
          state_ = n == 0 ? State::trailers : State::chunk_data;
        } else {  // trailers: ignored up to the empty line
          if (line.empty()) state_ = State::done;
        }
        break;
      }
      case State::body_length:
      case State::chunk_data: {
        const auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(end - p)));
        request_.body.append(p, n);
        p += n;
        remaining_ -= n;
        if (remaining_ > 0) return Result::more;
        state_ = state_ == State::body_length ? State::done : State::chunk_data_end;
        break;
      }
      case State::chunk_data_end: {
        // The CRLF after a chunk's data, which may itself arrive split; anything else is refused
        // at once rather than read on as a line.
        while (p < end && state_ == State::chunk_data_end) {
          const char c = *p++;
          if (c == '\n') {
            line_.clear();
            state_ = State::chunk_size;
          } else if (c != '\r' || !line_.empty()) {
            return fail(400, "a chunk is not followed by CRLF");
          } else {
            line_.push_back(c);
          }
        }
        if (state_ == State::chunk_data_end) return Result::more;
        break;
      }
    }
  }
}

}  // namespace aifc::detail
