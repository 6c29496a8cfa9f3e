#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aifc/record.hpp"  // MonoNanos
#include "http/http_request_parser.hpp"

namespace aifc::detail {

/// A response body produced over time. The server calls step() once due() has come, from the
/// thread that serves the connection, and writes what it appended at once.
class TimedBody {
 public:
  enum class Next {
    more,  ///< call again at due()
    done,  ///< the body is complete
    drop   ///< write what was appended, then close the connection (a simulated failure)
  };
  virtual ~TimedBody() = default;
  virtual MonoNanos due() const = 0;
  /// Appends the bytes due by `now` to `out`.
  virtual Next step(MonoNanos now, std::string& out) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;  ///< empty: no Content-Type header
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< written after the standard ones
  /// When set, the body is produced over time (and `body` is ignored): streamed with chunked
  /// encoding when `stream`, otherwise written whole, headers and all, once it is done.
  std::unique_ptr<TimedBody> timed;
  bool stream = false;
};

/// A JSON answer (`body` already serialized).
HttpResponse json_response(int status, std::string body);

struct EventServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;     ///< 0: any free port
  int threads = 0;  ///< event-loop threads; 0: one per core
  /// Responses one connection carries before the server closes it (announced with
  /// `Keep-Alive: max=N` and `Connection: close` on the last); 0: no limit.
  std::int64_t max_requests_per_connection = 0;
  /// >= 0: shut the connection down this long after each complete response although its
  /// headers promised keep-alive (a habit seen in llama.cpp's server); < 0: never.
  std::chrono::nanoseconds close_after_response{-1};
  /// Both set: serve https with this certificate (chain) and private key, PEM files.
  std::string tls_cert_file, tls_key_file;
};

/// An HTTP/1.1 server on epoll: a few threads serve every connection, each with its own epoll
/// set and a timer heap for the timed bodies it streams, so that ten thousand slow streams cost
/// no thread each. The handler runs on the serving thread and must not block; it may throw, which
/// answers 500 with a JSON error. Requests on one connection are answered in order (pipelining).
class EventServer {
 public:
  using Handler = std::function<HttpResponse(HttpRequest&)>;

  EventServer(EventServerOptions options, Handler handler);
  ~EventServer();
  EventServer(const EventServer&) = delete;
  EventServer& operator=(const EventServer&) = delete;

  /// Binds, listens and starts the threads; returns the port. Throws Error(io_error) if it
  /// cannot bind.
  int start();
  /// Closes every connection (ending open streams) and joins the threads. Idempotent.
  void stop() noexcept;
  int port() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc::detail
