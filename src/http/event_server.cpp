#include "http/event_server.hpp"

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <queue>
#include <thread>
#include <unordered_map>

#include "aifc/error.hpp"
#include "http/tls.hpp"

namespace aifc::detail {

HttpResponse json_response(int status, std::string body) {
  HttpResponse res;
  res.status = status;
  res.content_type = "application/json";
  res.body = std::move(body);
  return res;
}

namespace {

// Unparsed bytes (pipelined requests) a connection may hold before reading from it pauses.
constexpr std::size_t kMaxPendingInput = 1u << 20;
// Unsent bytes a connection may hold before its timed body pauses: a client that does not read
// slows its own stream down, as a real server's socket buffer would, and memory stays bounded.
constexpr std::size_t kMaxPendingOutput = 256u << 10;
constexpr int kMaxEvents = 256;
constexpr MonoNanos kAcceptPause = 10'000'000;  // after EMFILE: let connections close first

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return status < 400 ? "OK" : "Error";
  }
}

// FastAPI's shape for errors of the protocol, as vLLM answers them.
HttpResponse json_error(int status, const std::string& message) {
  return json_response(status, nlohmann::json{{"detail", message}}.dump());
}

struct Connection {
  int fd = -1;
  std::unique_ptr<TlsStream> tls;  // https: the session over fd
  bool tls_wants_write = false;    // a read waits for the socket to take a handshake message
  std::uint64_t serial = 0;        // tells this connection's timers from those of an earlier fd
  HttpRequestParser parser;
  std::string in;  // received, not parsed yet
  std::string out;
  std::size_t out_sent = 0;
  std::unique_ptr<TimedBody> body;  // the timed response in progress
  bool body_stream = false;
  bool body_keep_alive = true;
  bool body_paused = false;  // waits for the client to read what is pending
  std::string body_head;     // the head of a whole timed body, written when it is done
  std::int64_t served = 0;
  bool continue_sent = false;
  bool peer_eof = false;  // the client has shut its side: answer what came, then close
  bool closing = false;   // close once `out` is sent
  MonoNanos shutdown_at = -1;
  std::uint32_t events = 0;  // the epoll interest set now

  std::size_t pending_output() const noexcept { return out.size() - out_sent; }
};

struct Timer {
  MonoNanos at;
  int fd;
  std::uint64_t serial;
  bool operator>(const Timer& o) const noexcept { return at > o.at; }
};

}  // namespace

struct EventServer::Impl {
  EventServerOptions options;
  Handler handler;
  int listen_fd = -1;
  int wake_fd = -1;
  int bound_port = -1;
  std::atomic<bool> stopping{false};
  std::shared_ptr<const TlsContext> tls;  // null: plain http

  struct Worker {
    Impl& server;
    int epfd = -1;
    std::thread thread;
    std::unordered_map<int, std::unique_ptr<Connection>> connections;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
    std::uint64_t next_serial = 1;
    MonoNanos accept_resume_at = -1;

    explicit Worker(Impl& s) : server(s) {}
    ~Worker() {
      for (auto& [fd, c] : connections) ::close(fd);
      if (epfd >= 0) ::close(epfd);
    }

    void run();
    void accept_connections(MonoNanos now);
    void on_readable(Connection& c);
    void on_timer(Connection& c, MonoNanos now);
    // Each returns false once it has closed the connection, which must then not be touched.
    bool process(Connection& c);
    bool start_response(Connection& c, HttpResponse&& res, bool keep_alive);
    bool run_body(Connection& c, MonoNanos now);
    bool flush(Connection& c);
    /// send() of the pending output, through TLS when the connection has it (errno as send's).
    ssize_t send_some(Connection& c);
    void close_connection(Connection& c);
    void update_interest(Connection& c);
    void arm(Connection& c, MonoNanos at) { timers.push({at, c.fd, c.serial}); }
  };
  std::vector<std::unique_ptr<Worker>> workers;
};

void EventServer::Impl::Worker::run() {
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // this thread only: streams are due to the µs
  epoll_event events[kMaxEvents];
  while (!server.stopping.load(std::memory_order_relaxed)) {
    MonoNanos now = mono_now();
    if (accept_resume_at >= 0 && now >= accept_resume_at) {
      accept_resume_at = -1;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLEXCLUSIVE;
      ev.data.fd = server.listen_fd;
      epoll_ctl(epfd, EPOLL_CTL_ADD, server.listen_fd, &ev);
    }
    while (!timers.empty() && timers.top().at <= now) {
      const Timer t = timers.top();
      timers.pop();
      auto it = connections.find(t.fd);
      if (it != connections.end() && it->second->serial == t.serial) on_timer(*it->second, now);
    }
    MonoNanos wake_at = timers.empty() ? -1 : timers.top().at;
    if (accept_resume_at >= 0 && (wake_at < 0 || accept_resume_at < wake_at))
      wake_at = accept_resume_at;
    now = mono_now();
    const MonoNanos wait = wake_at < 0 ? -1 : std::max<MonoNanos>(0, wake_at - now);
    int n;
    if (wait < 0) {
      n = epoll_wait(epfd, events, kMaxEvents, -1);
    } else {
      timespec timeout{static_cast<time_t>(wait / 1'000'000'000),
                       static_cast<long>(wait % 1'000'000'000)};
      n = epoll_pwait2(epfd, events, kMaxEvents, &timeout, nullptr);
      if (n < 0 && errno == ENOSYS)
        n = epoll_wait(epfd, events, kMaxEvents, static_cast<int>((wait + 999'999) / 1'000'000));
    }
    if (n < 0) continue;  // EINTR
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == server.wake_fd) continue;  // the loop condition sees the stop
      if (fd == server.listen_fd) {
        accept_connections(mono_now());
        continue;
      }
      auto it = connections.find(fd);
      if (it == connections.end()) continue;
      Connection& c = *it->second;
      const std::uint32_t ev = events[i].events;
      if (ev & (EPOLLERR | EPOLLHUP)) {
        close_connection(c);
        continue;
      }
      if ((ev & EPOLLOUT) && !flush(c)) continue;
      if (c.body_paused && c.pending_output() < kMaxPendingOutput / 2) {
        c.body_paused = false;
        arm(c, c.body->due());
      }
      if ((ev & EPOLLIN) || c.tls_wants_write) {
        on_readable(c);
        continue;
      }
      if (!process(c)) continue;  // requests held back while the output queue was full
      update_interest(c);
    }
  }
}

void EventServer::Impl::Worker::accept_connections(MonoNanos now) {
  for (int i = 0; i < 64; ++i) {
    const int fd = accept4(server.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop accepting for a moment instead of spinning on the backlog.
        epoll_ctl(epfd, EPOLL_CTL_DEL, server.listen_fd, nullptr);
        accept_resume_at = now + kAcceptPause;
      }
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    if (server.tls) c->tls = std::make_unique<TlsStream>(*server.tls, fd);
    c->serial = next_serial++;
    c->events = EPOLLIN;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    connections[fd] = std::move(c);
  }
}

void EventServer::Impl::Worker::on_readable(Connection& c) {
  char buffer[64 * 1024];
  c.tls_wants_write = false;
  while (c.tls && c.in.size() < kMaxPendingInput && !c.peer_eof) {
    std::size_t got = 0;
    const auto status = c.tls->read(buffer, sizeof buffer, got);
    if (status == TlsStream::Status::ok) {
      c.in.append(buffer, got);
    } else if (status == TlsStream::Status::closed) {
      c.peer_eof = true;
    } else if (status == TlsStream::Status::want_write) {
      c.tls_wants_write = true;
      break;
    } else if (status == TlsStream::Status::want_read) {
      break;
    } else {  // a client that does not speak TLS, or a damaged record
      close_connection(c);
      return;
    }
  }
  while (!c.tls && c.in.size() < kMaxPendingInput && !c.peer_eof) {
    const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      c.in.append(buffer, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < sizeof buffer) break;
    } else if (n == 0) {
      c.peer_eof = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      close_connection(c);
      return;
    }
  }
  if (c.peer_eof && c.body) {  // the client left mid-answer: end it, as vLLM aborts a request
    close_connection(c);
    return;
  }
  if (process(c)) update_interest(c);
}

void EventServer::Impl::Worker::on_timer(Connection& c, MonoNanos now) {
  if (c.body && !c.body_paused && c.body->due() <= now) {
    if (!run_body(c, now)) return;
    if (!process(c)) return;  // the next pipelined request, if the body is done
  }
  if (c.shutdown_at >= 0 && c.shutdown_at <= now) {
    if (c.pending_output() > 0 || c.body) {
      c.shutdown_at = now + 1'000'000;  // let the response out first
      arm(c, c.shutdown_at);
    } else {
      ::shutdown(c.fd, SHUT_RDWR);
      close_connection(c);
      return;
    }
  }
  update_interest(c);
}

bool EventServer::Impl::Worker::process(Connection& c) {
  // A connection due to be shut down serves nothing more: a request sent meanwhile is lost, as
  // it is with the servers that have this habit.
  while (!c.closing && !c.body && c.shutdown_at < 0 && c.pending_output() < kMaxPendingOutput) {
    const char* p = c.in.data();
    const auto result = c.parser.feed(p, c.in.data() + c.in.size());
    c.in.erase(0, static_cast<std::size_t>(p - c.in.data()));
    if (result == HttpRequestParser::Result::more) {
      if (c.peer_eof) {
        c.closing = true;
      } else if (c.parser.headers_done() && c.parser.request().expect_continue &&
                 !c.continue_sent) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        c.continue_sent = true;
      }
      break;
    }
    if (result == HttpRequestParser::Result::error) {
      auto res = json_error(c.parser.error_status(), c.parser.error());
      c.in.clear();
      if (!start_response(c, std::move(res), false)) return false;
      break;
    }
    HttpRequest request = std::move(c.parser.request());
    c.parser.reset();
    c.continue_sent = false;
    ++c.served;
    const auto limit = server.options.max_requests_per_connection;
    const bool keep_alive =
        request.keep_alive && !server.stopping.load() && (limit <= 0 || c.served < limit);
    HttpResponse res;
    try {
      res = server.handler(request);
    } catch (const std::exception&) {
      // Answered as vLLM's server answers a bug: a JSON 500, and the exception's text stays
      // out of the answer.
      res = json_error(500, "internal server error");
    }
    if (!start_response(c, std::move(res), keep_alive)) return false;
  }
  return flush(c);
}

bool EventServer::Impl::Worker::start_response(Connection& c, HttpResponse&& res, bool keep_alive) {
  std::string head = fmt::format("HTTP/1.1 {} {}\r\n", res.status, reason_phrase(res.status));
  if (!res.content_type.empty()) head += fmt::format("Content-Type: {}\r\n", res.content_type);
  for (const auto& [name, value] : res.headers) head += fmt::format("{}: {}\r\n", name, value);
  const auto limit = server.options.max_requests_per_connection;
  if (!keep_alive)
    head += "Connection: close\r\n";
  else if (limit > 0)
    head += fmt::format("Keep-Alive: timeout=5, max={}\r\n", limit - c.served);
  if (!res.timed) {
    c.out += head;
    c.out += fmt::format("Content-Length: {}\r\n\r\n", res.body.size());
    c.out += res.body;
    if (!keep_alive) {
      c.closing = true;
    } else if (server.options.close_after_response.count() >= 0) {
      c.shutdown_at = mono_now() + server.options.close_after_response.count();
      arm(c, c.shutdown_at);
    }
    return true;
  }
  c.body = std::move(res.timed);
  c.body_stream = res.stream;
  c.body_keep_alive = keep_alive;
  if (res.stream) {
    c.out += head;
    c.out += "Transfer-Encoding: chunked\r\n\r\n";
  } else {
    c.body_head = std::move(head);
  }
  return run_body(c, mono_now());
}

bool EventServer::Impl::Worker::run_body(Connection& c, MonoNanos now) {
  if (c.pending_output() >= kMaxPendingOutput) {
    c.body_paused = true;  // resumed by EPOLLOUT once the client has read
    return true;
  }
  std::string bytes;
  const TimedBody::Next next = c.body->step(now, bytes);
  if (c.body_stream) {
    if (!bytes.empty()) {
      c.out += fmt::format("{:x}\r\n", bytes.size());
      c.out += bytes;
      c.out += "\r\n";
    }
  } else if (next == TimedBody::Next::done) {
    c.out += c.body_head;
    c.out += fmt::format("Content-Length: {}\r\n\r\n", bytes.size());
    c.out += bytes;
    c.body_head.clear();
  }
  switch (next) {
    case TimedBody::Next::more:
      arm(c, c.body->due());
      break;
    case TimedBody::Next::done:
      if (c.body_stream) c.out += "0\r\n\r\n";
      c.body.reset();
      if (!c.body_keep_alive) {
        c.closing = true;
      } else if (server.options.close_after_response.count() >= 0) {
        c.shutdown_at = mono_now() + server.options.close_after_response.count();
        arm(c, c.shutdown_at);
      }
      break;
    case TimedBody::Next::drop:  // what was appended goes out, the stream is never ended
      c.body.reset();
      c.closing = true;
      break;
  }
  return flush(c);
}

bool EventServer::Impl::Worker::flush(Connection& c) {
  while (c.pending_output() > 0) {
    const ssize_t n = send_some(c);
    if (n > 0) {
      c.out_sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (c.out_sent > 64 * 1024) {
        c.out.erase(0, c.out_sent);
        c.out_sent = 0;
      }
      return true;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {  // the client went away
      close_connection(c);
      return false;
    }
  }
  c.out.clear();
  c.out_sent = 0;
  if (c.closing && !c.body) {
    close_connection(c);
    return false;
  }
  return true;
}

ssize_t EventServer::Impl::Worker::send_some(Connection& c) {
  if (!c.tls)
    return ::send(c.fd, c.out.data() + c.out_sent, c.pending_output(), MSG_NOSIGNAL | MSG_DONTWAIT);
  std::size_t put = 0;
  switch (c.tls->write(c.out.data() + c.out_sent, c.pending_output(), put)) {
    case TlsStream::Status::ok:
      return static_cast<ssize_t>(put);
    case TlsStream::Status::want_read:
    case TlsStream::Status::want_write:
      errno = EAGAIN;
      return -1;
    default:
      errno = EPIPE;
      return -1;
  }
}

void EventServer::Impl::Worker::close_connection(Connection& c) {
  const int fd = c.fd;
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  connections.erase(fd);  // destroys c, and with it a body in progress
}

void EventServer::Impl::Worker::update_interest(Connection& c) {
  std::uint32_t want = 0;
  if (!c.peer_eof && !c.closing && c.in.size() < kMaxPendingInput) want |= EPOLLIN;
  if (c.pending_output() > 0 || c.tls_wants_write) want |= EPOLLOUT;
  if (want == c.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = c.fd;
  epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
  c.events = want;
}

EventServer::EventServer(EventServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
}

EventServer::~EventServer() { stop(); }

int EventServer::start() {
  auto& s = *impl_;
  if (s.listen_fd >= 0) throw Error(ErrorCode::invalid_state, "the server is already running");
  if (!s.options.tls_cert_file.empty() || !s.options.tls_key_file.empty())
    s.tls = TlsContext::for_server(s.options.tls_cert_file, s.options.tls_key_file);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(s.options.port);
  const int rc = getaddrinfo(s.options.host.empty() ? nullptr : s.options.host.c_str(),
                             port.c_str(), &hints, &found);
  if (rc != 0)
    throw Error(ErrorCode::io_error,
                fmt::format("cannot listen on {}: {}", s.options.host, gai_strerror(rc)));
  std::string failure = "no address";
  for (addrinfo* a = found; a != nullptr && s.listen_fd < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    // SO_REUSEADDR only: SO_REUSEPORT would let a second server share a taken port silently.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      s.listen_fd = fd;
    } else {
      failure = std::strerror(errno);
      ::close(fd);
    }
  }
  freeaddrinfo(found);
  if (s.listen_fd < 0)
    throw Error(ErrorCode::io_error,
                fmt::format("cannot listen on {}:{}: {}", s.options.host, s.options.port, failure));
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&local), &len);
  s.bound_port = local.ss_family == AF_INET6
                     ? ntohs(reinterpret_cast<const sockaddr_in6&>(local).sin6_port)
                     : ntohs(reinterpret_cast<const sockaddr_in&>(local).sin_port);
  s.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int threads = s.options.threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    for (int i = 0; i < threads; ++i) {
      auto w = std::make_unique<Impl::Worker>(s);
      w->epfd = epoll_create1(EPOLL_CLOEXEC);
      if (w->epfd < 0 || s.wake_fd < 0)
        throw Error(ErrorCode::io_error, fmt::format("epoll: {}", std::strerror(errno)));
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = s.wake_fd;
      epoll_ctl(w->epfd, EPOLL_CTL_ADD, s.wake_fd, &ev);
      // EPOLLEXCLUSIVE: a new connection wakes one thread, not all of them.
      ev.events = EPOLLIN | EPOLLEXCLUSIVE;
      ev.data.fd = s.listen_fd;
      epoll_ctl(w->epfd, EPOLL_CTL_ADD, s.listen_fd, &ev);
      s.workers.push_back(std::move(w));
    }
    for (auto& w : s.workers) w->thread = std::thread([w = w.get()] { w->run(); });
  } catch (...) {
    stop();
    throw;
  }
  return s.bound_port;
}

void EventServer::stop() noexcept {
  if (!impl_) return;
  auto& s = *impl_;
  s.stopping.store(true);
  if (s.wake_fd >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(s.wake_fd, &one, sizeof one);
  }
  for (auto& w : s.workers)
    if (w->thread.joinable()) w->thread.join();
  s.workers.clear();  // closes every connection
  if (s.listen_fd >= 0) ::close(s.listen_fd);
  if (s.wake_fd >= 0) ::close(s.wake_fd);
  s.listen_fd = s.wake_fd = -1;
}

int EventServer::port() const noexcept { return impl_->bound_port; }

}  // namespace aifc::detail
