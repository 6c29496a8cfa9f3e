#include "client/blocking_connection.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace aifc::detail {

BlockingConnection::BlockingConnection(const Url& url, std::shared_ptr<const TlsContext> tls)
    : url_(url), tls_context_(std::move(tls)) {}

BlockingConnection::~BlockingConnection() {
  close();
  if (const int wake = wake_fd_.load(); wake >= 0) ::close(wake);
}

void BlockingConnection::close() noexcept {
  tls_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  more_waiting_ = false;
}

bool BlockingConnection::usable_after_idle() {
  if (fd_ < 0) return false;
  if (tls_) return tls_->alive_when_idle();
  char probe;
  const ssize_t n = ::recv(fd_, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void BlockingConnection::interrupt() noexcept {
  interrupted_.store(true);
  if (const int wake = wake_fd_.load(); wake >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake, &one, sizeof one);
  }
}

void BlockingConnection::clear_interrupt() noexcept {
  interrupted_.store(false);
  if (const int wake = wake_fd_.load(); wake >= 0) {
    std::uint64_t drained;
    [[maybe_unused]] const auto n = ::read(wake, &drained, sizeof drained);
  }
}

BlockingConnection::Io BlockingConnection::wait(short events, MonoNanos deadline) {
  pollfd fds[2] = {{fd_, events, 0}, {wake_fd_.load(), POLLIN, 0}};
  for (;;) {
    const MonoNanos left = deadline - mono_now();
    if (left <= 0) return Io::deadline;
    const timespec timeout{static_cast<time_t>(left / 1'000'000'000),
                           static_cast<long>(left % 1'000'000'000)};
    const int n = ::ppoll(fds, 2, &timeout, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(fmt::format("poll(): {}", std::strerror(errno)));
    }
    if (n == 0) continue;  // the clock decides, above
    if (fds[1].revents != 0) return Io::interrupted;
    return Io::done;  // ready, or an error the next call on the socket reports
  }
}

BlockingConnection::Io BlockingConnection::connect(MonoNanos deadline) {
  close();
  failed_in_tls_ = false;
  if (wake_fd_.load() < 0) {
    const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake < 0)
      return fail(
          fmt::format("cannot connect to {}: eventfd(): {}", url_.origin, std::strerror(errno)));
    wake_fd_.store(wake);
    if (interrupted_.load()) interrupt();  // an interrupt that came before there was a fd
  }
  if (!resolved_) {
    std::string why;
    if (!resolve_address(url_.host, url_.port, address_, why)) return fail(why);
    resolved_ = true;
  }
  fd_ = open_connecting_socket(address_, stamps_);
  if (fd_ < 0) {
    resolved_ = false;  // look the name up again next time
    return fail(fmt::format("cannot connect to {}: {}", url_.origin, std::strerror(errno)));
  }
  Io io = wait(POLLOUT, deadline);
  if (io != Io::done) {
    close();
    return io;
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    close();
    resolved_ = false;
    return fail(fmt::format("cannot connect to {}: {}", url_.origin, std::strerror(err)));
  }
  if (!tls_context_) return Io::done;
  tls_ = std::make_unique<TlsStream>(*tls_context_, fd_, url_.host);
  for (;;) {
    switch (const auto status = tls_->handshake()) {
      case TlsStream::Status::ok:
        return Io::done;
      case TlsStream::Status::want_read:
      case TlsStream::Status::want_write:
        io = wait_for_tls(status, deadline);
        break;
      case TlsStream::Status::closed:
        failed_in_tls_ = true;
        close();
        return fail(
            fmt::format("TLS with {} failed: the server closed the connection during the handshake",
                        url_.origin));
      case TlsStream::Status::failed: {
        failed_in_tls_ = true;
        const std::string why = tls_->error();
        close();
        return fail(fmt::format("TLS with {} failed: {}", url_.origin, why));
      }
    }
    if (io != Io::done) {
      close();
      return io;
    }
  }
}

BlockingConnection::Io BlockingConnection::write_all(std::string_view bytes, MonoNanos deadline) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const char* from = bytes.data() + sent;
    const std::size_t left = bytes.size() - sent;
    Io io = Io::done;
    if (tls_) {
      std::size_t put = 0;
      switch (const auto status = tls_->write(from, left, put)) {
        case TlsStream::Status::ok:
          sent += put;
          continue;
        case TlsStream::Status::want_read:
        case TlsStream::Status::want_write:
          io = wait_for_tls(status, deadline);
          break;
        case TlsStream::Status::closed:
          return Io::closed;
        case TlsStream::Status::failed:
          return fail(fmt::format("sending to {} failed: {}", url_.origin, tls_->error()));
      }
    } else {
      const ssize_t n = ::send(fd_, from, left, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return fail(fmt::format("sending to {} failed: {}", url_.origin, std::strerror(errno)));
      io = wait(POLLOUT, deadline);
    }
    if (io != Io::done) return io;
  }
  return Io::done;
}

BlockingConnection::Io BlockingConnection::read(char* data, std::size_t size, MonoNanos deadline,
                                                std::size_t& got, MonoNanos& arrived) {
  got = 0;
  // The kernel's stamp (real time) as a monotonic instant, never later than now.
  auto arrival = [](MonoNanos stamp) {
    const MonoNanos now = mono_now();
    return stamp >= 0 ? std::min(stamp - realtime_minus_mono(), now) : now;
  };
  bool tls_ready = tls_ && tls_->has_buffered();  // OpenSSL holds bytes a poll cannot see
  for (;;) {
    if (tls_) {
      if (!tls_ready) {
        const Io io = wait(POLLIN, deadline);
        if (io != Io::done) return io;
      }
      tls_ready = false;
      switch (tls_->read(data, size, got)) {
        case TlsStream::Status::ok:
          arrived = arrival(tls_->last_stamp());
          return Io::done;
        case TlsStream::Status::want_read:
          continue;  // part of a record, or only a ticket: wait for more
        case TlsStream::Status::want_write: {
          const Io io = wait(POLLOUT, deadline);
          if (io != Io::done) return io;
          tls_ready = true;
          continue;
        }
        case TlsStream::Status::closed:
          return Io::closed;
        case TlsStream::Status::failed:
          return fail(fmt::format("reading from {} failed: {}", url_.origin, tls_->error()));
      }
    }
    if (!more_waiting_) {
      const Io io = wait(POLLIN, deadline);
      if (io != Io::done) return io;
    }
    MonoNanos stamp = -1;
    const ssize_t n =
        stamps_ ? receive_stamped(fd_, data, size, stamp) : ::recv(fd_, data, size, 0);
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      more_waiting_ = got == size;
      arrived = arrival(stamp);
      return Io::done;
    }
    more_waiting_ = false;
    if (n == 0) return Io::closed;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    return fail(fmt::format("reading from {} failed: {}", url_.origin, std::strerror(errno)));
  }
}

}  // namespace aifc::detail
