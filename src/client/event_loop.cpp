#include "client/event_loop.hpp"

#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>

#include "aifc/error.hpp"
#include "client/raw_request.hpp"
#include "client/response_feed.hpp"
#include "http/http_response_parser.hpp"
#include "http/socket_io.hpp"
#include "http/tls.hpp"
#include "http/url.hpp"
#include "stream/stream_recorder.hpp"
#include "util/durations.hpp"

namespace aifc::detail {

namespace {

enum class ConnState { idle, connecting, handshaking, writing, reading };

struct Connection {
  explicit Connection(const ClientConfig& c) : recorder(c) {}
  int fd = -1;
  ConnState state = ConnState::idle;
  const std::string* request = nullptr;
  std::string with_request_id;  // the request with its own x-request-id header, when one is sent
  std::size_t written = 0;
  bool reused = false;         // the request went out on a connection that had answered before
  bool retried = false;        // this request was already resent once on a fresh connection
  std::int64_t responses = 0;  // complete responses on the current socket
  MonoNanos idle_since = -1;   // when the socket last became idle
  MonoNanos idle_limit = -1;   // from the server's Keep-Alive timeout; -1: none known
  bool watching_out = false;   // EPOLLOUT registered
  MonoNanos connect_deadline = -1;
  std::unique_ptr<TlsStream> tls;  // https: the session over fd
  HttpResponseParser parser;
  StreamRecorder recorder;
  RequestRecord rec;
  std::uint64_t index = 0;
  std::list<Connection*>::iterator active_pos;
};

}  // namespace

struct EventLoop::Impl {
  Impl(const ClientConfig& c, const std::vector<PreparedRequest>& p,
       const std::vector<std::string>& raw, std::int64_t cap, LoopHooks h)
      : config(c),
        prepared(p),
        requests(raw),
        max_in_flight(cap),
        hooks(std::move(h)),
        buffer(1 << 16) {}

  const ClientConfig& config;
  const std::vector<PreparedRequest>& prepared;
  const std::vector<std::string>& requests;
  std::int64_t max_in_flight;
  LoopHooks hooks;
  SocketAddress address;
  std::string origin;
  std::string host;
  std::shared_ptr<const TlsContext> tls_context;  // null for http://
  int epfd = -1;
  int wake_fd = -1;
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<Connection*> idle;
  std::list<Connection*> active;
  std::vector<char> buffer;

  void resolve();
  void set_events(Connection& c, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
  }
  void close_fd(Connection& c) {
    c.tls.reset();
    if (c.fd >= 0) {
      epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);
      c.fd = -1;
    }
  }
  Connection* acquire(MonoNanos now);
  void start(const ScheduledRequest& slot, MonoNanos now);
  /// Opens a new socket for `c` (if it has none) and sends its request.
  void connect_and_send(Connection& c, MonoNanos send_ns);
  /// Resends the request of `c` once on a fresh connection when its kept-alive one turned out
  /// to be closed before any byte of the answer came back. False when that does not apply.
  bool retry_on_fresh_connection(Connection& c, TransportEnd end);
  void on_event(Connection& c, std::uint32_t events, MonoNanos now);
  void write_some(Connection& c, MonoNanos now);
  /// Sends what the socket takes of the request over TLS; true when all of it went.
  bool write_tls(Connection& c, MonoNanos now);
  void read_some(Connection& c, MonoNanos now);
  void read_tls(Connection& c, MonoNanos now);
  /// Parses `n` bytes of the buffer; false when that ended the request.
  bool feed(Connection& c, std::size_t n, RecorderFeed& handler);
  /// Takes the TLS handshake a step further; writes the request once it is done.
  void handshake(Connection& c, MonoNanos now);
  /// Read interest always; write interest when `out` (changed only when it differs).
  void watch_out(Connection& c, bool out) {
    if (c.watching_out == out) return;
    set_events(c, out ? EPOLLIN | EPOLLRDHUP | EPOLLOUT : EPOLLIN | EPOLLRDHUP);
    c.watching_out = out;
  }
  /// The batch's time, or the kernel's stamp of the bytes when there is one.
  MonoNanos arrival(const Connection& c, MonoNanos stamp, MonoNanos now) const {
    return stamp > 0 ? std::clamp(stamp - realtime_offset, c.rec.send_ns, now) : now;
  }
  /// recv() that also reports when the kernel received the bytes (SO_TIMESTAMPNS), converted
  /// to the monotonic clock; falls back to `now` (the batch's wake-up time).
  ssize_t receive(Connection& c, MonoNanos now, MonoNanos& arrived);
  bool kernel_timestamps = true;
  /// Lets more events gather before they are handled, when the kernel stamps arrivals (so
  /// waiting costs no accuracy) and no send is due within the window (so it costs no lateness).
  void coalesce(bool schedule_done, MonoNanos next_due) {
    if (!kernel_timestamps || hooks.coalesce_window <= 0) return;
    const MonoNanos now = mono_now();
    const bool send_waiting =
        !schedule_done &&
        (hooks.closed_loop || (next_due >= 0 && next_due < now + hooks.coalesce_window));
    if (send_waiting && static_cast<std::int64_t>(active.size()) < max_in_flight) return;
    if (hooks.closed_loop && !schedule_done) return;  // a completion frees a slot: send at once
    timespec t{0, static_cast<long>(hooks.coalesce_window)};
    nanosleep(&t, nullptr);
  }
  MonoNanos realtime_offset = 0;  // realtime_minus_mono(), refreshed every batch
  void finish(Connection& c, TransportEnd end, MonoNanos now, const std::string& message = {});
  /// Ends overdue requests; returns the earliest deadline still ahead (or a second from now).
  MonoNanos check_deadlines(MonoNanos now);
};

void EventLoop::Impl::resolve() {
  const Url e = parse_url(config.base_url);
  origin = e.origin;
  host = e.host;
  tls_context = tls_context_for(config);
  std::string why;
  if (!resolve_address(e.host, e.port, address, why))
    throw Error(ErrorCode::connection_failed, why);
}

Connection* EventLoop::Impl::acquire(MonoNanos now) {
  // Most recently used first: its connection is the likeliest to be warm and alive.
  for (std::size_t i = idle.size(); i-- > 0;) {
    Connection* c = idle[i];
    if (c->fd < 0) continue;
    if (c->idle_limit >= 0 && now - c->idle_since > c->idle_limit) {
      close_fd(*c);  // idle past the server's Keep-Alive timeout: it may be closing it now
      continue;
    }
    char probe;
    if (c->tls ? c->tls->alive_when_idle()
               : ::recv(c->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
                     (errno == EAGAIN || errno == EWOULDBLOCK)) {
      idle.erase(idle.begin() + static_cast<std::ptrdiff_t>(i));
      c->reused = true;
      return c;
    }
    close_fd(*c);  // closed by the server while idle
  }
  if (!idle.empty()) {
    Connection* c = idle.back();
    idle.pop_back();
    c->reused = false;
    return c;
  }
  connections.push_back(std::make_unique<Connection>(config));
  return connections.back().get();
}

void EventLoop::Impl::start(const ScheduledRequest& slot, MonoNanos now) {
  Connection& c = *acquire(now);
  c.rec = RequestRecord{};
  c.rec.index = slot.index;
  c.index = slot.index;
  c.request = &requests[slot.index % requests.size()];
  if (const auto id = request_id(config, slot.index); !id.empty()) {
    c.with_request_id = with_request_id(*c.request, id);
    c.request = &c.with_request_id;
  }
  c.retried = false;
  const MonoNanos scheduled = hooks.scheduled_time(slot, now);
  active.push_back(&c);
  c.active_pos = std::prev(active.end());
  hooks.in_flight->fetch_add(1, std::memory_order_relaxed);
  const MonoNanos send_ns = mono_now();
  c.recorder.begin(c.rec, prepared[slot.index % prepared.size()], scheduled, send_ns);
  connect_and_send(c, send_ns);
}

bool EventLoop::Impl::retry_on_fresh_connection(Connection& c, TransportEnd end) {
  if (c.retried || !c.reused || c.parser.started() || c.rec.error != RequestError::none ||
      (end != TransportEnd::read_failed && end != TransportEnd::write_failed))
    return false;
  close_fd(c);
  c.retried = true;
  c.reused = false;
  // Latencies count from the second send; the schedule stays, so lateness shows the delay.
  const MonoNanos scheduled = c.rec.scheduled_ns;
  const MonoNanos send_ns = mono_now();
  c.recorder.begin(c.rec, prepared[c.index % prepared.size()], scheduled, send_ns);
  c.rec.retried = true;
  connect_and_send(c, send_ns);
  return true;
}

void EventLoop::Impl::connect_and_send(Connection& c, MonoNanos send_ns) {
  c.written = 0;
  c.parser.reset();
  if (c.fd < 0) {
    c.responses = 0;
    c.fd = open_connecting_socket(address, kernel_timestamps);
    if (c.fd < 0) {
      finish(c, TransportEnd::connect_failed, mono_now(),
             fmt::format("cannot connect to {}: {}", origin, std::strerror(errno)));
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
    ev.data.ptr = &c;
    epoll_ctl(epfd, EPOLL_CTL_ADD, c.fd, &ev);
    c.watching_out = true;
    c.state = ConnState::connecting;
    c.connect_deadline = send_ns + nanos_of(config.connect_timeout);
    return;
  }
  c.state = ConnState::writing;
  write_some(c, send_ns);
}

void EventLoop::Impl::write_some(Connection& c, MonoNanos now) {
  if (c.tls) {
    if (!write_tls(c, now)) return;
    c.state = ConnState::reading;
    watch_out(c, false);
    return;
  }
  while (c.written < c.request->size()) {
    const ssize_t n =
        ::send(c.fd, c.request->data() + c.written, c.request->size() - c.written, MSG_NOSIGNAL);
    if (n > 0) {
      c.written += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c.watching_out) {
        set_events(c, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
        c.watching_out = true;
      }
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    finish(c, c.reused ? TransportEnd::read_failed : TransportEnd::write_failed, now,
           fmt::format("sending to {} failed: {}", origin, std::strerror(errno)));
    return;
  }
  c.state = ConnState::reading;
  // Reading interest stays registered for the connection's life; only write interest comes and
  // goes, so a request that is written at once costs no epoll_ctl.
  if (c.watching_out) {
    set_events(c, EPOLLIN | EPOLLRDHUP);
    c.watching_out = false;
  }
}

bool EventLoop::Impl::write_tls(Connection& c, MonoNanos now) {
  while (c.written < c.request->size()) {
    std::size_t put = 0;
    switch (c.tls->write(c.request->data() + c.written, c.request->size() - c.written, put)) {
      case TlsStream::Status::ok:
        c.written += put;
        continue;
      case TlsStream::Status::want_write:
        watch_out(c, true);
        return false;
      case TlsStream::Status::want_read:
        watch_out(c, false);  // readable wakes it: on_event writes again
        return false;
      case TlsStream::Status::closed:
      case TlsStream::Status::failed:
        finish(c, c.reused ? TransportEnd::read_failed : TransportEnd::write_failed, now,
               fmt::format("sending to {} failed: {}", origin,
                           c.tls->error().empty() ? "connection closed" : c.tls->error()));
        return false;
    }
  }
  return true;
}

void EventLoop::Impl::handshake(Connection& c, MonoNanos now) {
  switch (c.tls->handshake()) {
    case TlsStream::Status::ok:
      c.state = ConnState::writing;
      write_some(c, now);
      return;
    case TlsStream::Status::want_read:
      watch_out(c, false);
      return;
    case TlsStream::Status::want_write:
      watch_out(c, true);
      return;
    case TlsStream::Status::closed:
      finish(c, TransportEnd::tls_failed, now,
             fmt::format("TLS with {} failed: the server closed the connection during the "
                         "handshake",
                         origin));
      return;
    case TlsStream::Status::failed:
      finish(c, TransportEnd::tls_failed, now,
             fmt::format("TLS with {} failed: {}", origin, c.tls->error()));
      return;
  }
}

void EventLoop::Impl::read_some(Connection& c, MonoNanos now) {
  if (c.tls) {
    read_tls(c, now);
    return;
  }
  RecorderFeed handler{c.recorder, now};
  for (;;) {
    const ssize_t n = receive(c, now, handler.arrived);
    if (n > 0) {
      if (!feed(c, static_cast<std::size_t>(n), handler)) return;
      if (static_cast<std::size_t>(n) < buffer.size())
        return;  // drained; level-triggered epoll calls again
      continue;
    }
    if (n == 0) {
      finish(c, c.parser.complete_at_eof() ? TransportEnd::complete : TransportEnd::read_failed,
             now);
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR) continue;
    finish(c, TransportEnd::read_failed, now);
    return;
  }
}

void EventLoop::Impl::read_tls(Connection& c, MonoNanos now) {
  watch_out(c, false);  // a read that needed to write has had its chance
  RecorderFeed handler{c.recorder, now};
  // Until OpenSSL wants more from the socket: what it holds decrypted, no poll would report.
  for (;;) {
    std::size_t got = 0;
    switch (c.tls->read(buffer.data(), buffer.size(), got)) {
      case TlsStream::Status::ok:
        handler.arrived = arrival(c, c.tls->last_stamp(), now);
        if (!feed(c, got, handler)) return;
        // Drained: asking again would cost a read that finds nothing; level-triggered epoll
        // reports what the socket still holds.
        if (got < buffer.size() && !c.tls->has_buffered()) return;
        continue;
      case TlsStream::Status::want_read:
        return;
      case TlsStream::Status::want_write:
        watch_out(c, true);
        return;
      case TlsStream::Status::closed:
        finish(c, c.parser.complete_at_eof() ? TransportEnd::complete : TransportEnd::read_failed,
               now);
        return;
      case TlsStream::Status::failed:
        finish(c, TransportEnd::read_failed, now);
        return;
    }
  }
}

bool EventLoop::Impl::feed(Connection& c, std::size_t n, RecorderFeed& handler) {
  const auto end = feed_response(c.parser, buffer.data(), n, handler);
  // A complete response ends when its last byte arrived.
  if (end) finish(c, *end, handler.arrived);
  return !end;
}

ssize_t EventLoop::Impl::receive(Connection& c, MonoNanos now, MonoNanos& arrived) {
  arrived = now;
  if (!kernel_timestamps) return ::recv(c.fd, buffer.data(), buffer.size(), 0);
  MonoNanos stamp = -1;
  const ssize_t n = receive_stamped(c.fd, buffer.data(), buffer.size(), stamp);
  // The kernel's stamp of the last packet in these bytes: never later than our wake-up, never
  // before the request was sent.
  if (n > 0) arrived = arrival(c, stamp, now);
  return n;
}

void EventLoop::Impl::on_event(Connection& c, std::uint32_t events, MonoNanos now) {
  switch (c.state) {
    case ConnState::idle:
      // The server closed (or wrote to) an idle connection; a TLS session ticket is no reason.
      if (!c.tls || !c.tls->alive_when_idle()) close_fd(c);
      return;
    case ConnState::connecting: {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        finish(c, TransportEnd::connect_failed, now,
               fmt::format("cannot connect to {}: {}", origin, std::strerror(err)));
        return;
      }
      if (tls_context) {
        c.tls = std::make_unique<TlsStream>(*tls_context, c.fd, host);
        c.state = ConnState::handshaking;
        handshake(c, now);
        return;
      }
      c.state = ConnState::writing;
      write_some(c, now);
      return;
    }
    case ConnState::handshaking:
      handshake(c, now);
      return;
    case ConnState::writing:
      if (c.tls) {  // TLS may wait for either direction
        write_some(c, now);
        return;
      }
      if (!(events & EPOLLOUT) && !(events & (EPOLLERR | EPOLLHUP))) return;  // nothing to read yet
      if (events & (EPOLLERR | EPOLLHUP)) {
        finish(c, TransportEnd::read_failed, now);
        return;
      }
      write_some(c, now);
      return;
    case ConnState::reading:
      read_some(c, now);
      return;
  }
}

void EventLoop::Impl::finish(Connection& c, TransportEnd end, MonoNanos now,
                             const std::string& message) {
  if (retry_on_fresh_connection(c, end)) return;
  c.recorder.finish(end, now, message);
  if (end == TransportEnd::complete) ++c.responses;
  const KeepAliveHint& hint = c.parser.keep_alive_hint();
  // A connection is reused after a success or an HTTP error status (the exchange completed
  // cleanly), when the server keeps it open and has not used up its Keep-Alive max.
  const bool reusable = end == TransportEnd::complete && c.parser.keep_alive() &&
                        hint.allows_another(c.responses) &&
                        (c.rec.ok() || c.rec.error == RequestError::http_status);
  c.idle_since = now;
  c.idle_limit = hint.idle_limit_ns();
  active.erase(c.active_pos);
  hooks.in_flight->fetch_sub(1, std::memory_order_relaxed);
  RequestRecord rec = std::move(c.rec);
  rec.index = c.index;
  c.state = ConnState::idle;
  c.connect_deadline = -1;
  if (!reusable) close_fd(c);
  idle.push_back(&c);
  hooks.deliver(std::move(rec));
}

MonoNanos EventLoop::Impl::check_deadlines(MonoNanos now) {
  MonoNanos next = now + 1'000'000'000;
  for (auto it = active.begin(); it != active.end();) {
    Connection& c = **it++;  // finish() removes c from the list
    if ((c.state == ConnState::connecting || c.state == ConnState::handshaking) &&
        c.connect_deadline >= 0) {
      if (now > c.connect_deadline) {
        finish(c, TransportEnd::connect_timeout, now,
               fmt::format("connecting to {} took longer than {} ms", origin,
                           config.connect_timeout.count()));
        continue;
      }
      next = std::min(next, c.connect_deadline + 1);
    }
    const RequestError late = c.recorder.overdue(now);
    if (late != RequestError::none) {
      c.recorder.fail(late, late == RequestError::timeout_read
                                ? fmt::format("no data for {} ms", config.read_timeout.count())
                                : c.recorder.timeout_message(late));
      finish(c, TransportEnd::aborted, now);
      continue;
    }
    next = std::min(next, c.recorder.next_deadline());
  }
  return next;
}

EventLoop::EventLoop(const ClientConfig& config, const std::vector<PreparedRequest>& prepared,
                     const std::vector<std::string>& raw_requests, std::int64_t max_in_flight,
                     LoopHooks hooks)
    : impl_(std::make_unique<Impl>(config, prepared, raw_requests,
                                   std::max<std::int64_t>(1, max_in_flight), std::move(hooks))) {
  impl_->resolve();
  impl_->epfd = epoll_create1(EPOLL_CLOEXEC);
  impl_->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl_->epfd < 0 || impl_->wake_fd < 0)
    throw Error(ErrorCode::io_error, fmt::format("epoll/eventfd: {}", std::strerror(errno)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(impl_->epfd, EPOLL_CTL_ADD, impl_->wake_fd, &ev);
}

EventLoop::~EventLoop() {
  for (auto& c : impl_->connections)
    if (c->fd >= 0) ::close(c->fd);
  if (impl_->epfd >= 0) ::close(impl_->epfd);
  if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
}

void EventLoop::wake() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(impl_->wake_fd, &one, sizeof one);
}

void EventLoop::run() {
  auto& s = *impl_;
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  MonoNanos next_check = 0;
  bool schedule_done = false;
  // No deadline of a request started now comes sooner than this.
  MonoNanos shortest_budget =
      std::min({nanos_of(s.config.read_timeout), nanos_of(s.config.request_timeout),
                nanos_of(s.config.connect_timeout)});
  if (s.config.first_token_timeout.count() > 0)
    shortest_budget = std::min(shortest_budget, nanos_of(s.config.first_token_timeout));
  for (;;) {
    MonoNanos now = mono_now();
    if (s.hooks.stop->load(std::memory_order_relaxed)) {
      while (!s.active.empty()) {
        Connection& c = *s.active.front();
        c.recorder.fail(RequestError::cancelled, "cancelled");
        s.finish(c, TransportEnd::aborted, now);
      }
      return;
    }
    MonoNanos next_due = -1;
    while (!schedule_done && static_cast<std::int64_t>(s.active.size()) < s.max_in_flight) {
      auto slot = s.hooks.take_due_slot(now, next_due);
      if (!slot) {
        if (next_due < 0) schedule_done = true;
        break;
      }
      s.start(*slot, now);
      now = mono_now();
      next_check = std::min(next_check, now + shortest_budget + 1);
    }
    if (schedule_done && s.active.empty()) return;
    // Deadlines move with every byte, so the next check is recomputed, not trusted: a check
    // costs one pass over the streams and runs only when the earliest deadline may have passed
    // or a new request came in.
    if (now >= next_check) next_check = s.check_deadlines(now);
    // Sleep until the next slot (if a stream is free for it) or the next deadline check.
    MonoNanos wake_at = next_check;
    if (next_due >= 0 && static_cast<std::int64_t>(s.active.size()) < s.max_in_flight)
      wake_at = std::min(wake_at, next_due);
    const MonoNanos wait = std::max<MonoNanos>(0, wake_at - mono_now());
    timespec timeout{static_cast<time_t>(wait / 1'000'000'000),
                     static_cast<long>(wait % 1'000'000'000)};
    int n = epoll_pwait2(s.epfd, events, kMaxEvents, &timeout, nullptr);
    if (n < 0 && errno == ENOSYS)
      n = epoll_wait(s.epfd, events, kMaxEvents, static_cast<int>((wait + 999'999) / 1'000'000));
    if (n <= 0) continue;
    if (!schedule_done && static_cast<std::int64_t>(s.active.size()) >= s.max_in_flight)
      schedule_done = !s.hooks.has_more_slots();
    s.coalesce(schedule_done, next_due);
    // Everything in this batch arrived before epoll returned: one timestamp, taken at once,
    // is the closest bound for all of them.
    const MonoNanos arrived = mono_now();
    if (s.kernel_timestamps) s.realtime_offset = realtime_minus_mono();
    for (int i = 0; i < n; ++i) {
      if (!events[i].data.ptr) {
        std::uint64_t drained;
        [[maybe_unused]] const auto r = ::read(s.wake_fd, &drained, sizeof drained);
        continue;
      }
      s.on_event(*static_cast<Connection*>(events[i].data.ptr), events[i].events, arrived);
    }
  }
}

}  // namespace aifc::detail
