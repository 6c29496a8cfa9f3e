#pragma once

#include <poll.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "aifc/record.hpp"
#include "http/socket_io.hpp"
#include "http/tls.hpp"
#include "http/url.hpp"

namespace aifc::detail {

/// One kept-alive connection to a server, plain TCP or TLS, for the blocking transport (a
/// thread per stream). Every wait is a poll with a deadline, which interrupt() cuts short from
/// any other thread; reads carry the kernel's receive stamp like the event loop's.
class BlockingConnection {
 public:
  enum class Io {
    done,
    deadline,     ///< the deadline passed first
    interrupted,  ///< interrupt() was called (and stays in effect until clear_interrupt())
    closed,       ///< the server closed the connection (read) or it is gone (write)
    failed,       ///< error() says why
  };

  /// `tls` may be null for http://. Never throws for lack of descriptors: connect() reports it.
  BlockingConnection(const Url& url, std::shared_ptr<const TlsContext> tls);
  ~BlockingConnection();
  BlockingConnection(const BlockingConnection&) = delete;
  BlockingConnection& operator=(const BlockingConnection&) = delete;

  bool is_open() const noexcept { return fd_ >= 0; }
  const std::shared_ptr<const TlsContext>& tls_context() const noexcept { return tls_context_; }
  /// For a connection that sat idle: true when the server has not closed it meanwhile.
  bool usable_after_idle();
  void close() noexcept;

  /// Opens the connection (TCP, then the TLS handshake for https). On `failed`,
  /// failed_in_tls() tells whether TCP worked and TLS did not.
  Io connect(MonoNanos deadline);
  bool failed_in_tls() const noexcept { return failed_in_tls_; }
  Io write_all(std::string_view bytes, MonoNanos deadline);
  /// Waits for bytes and reads what is there (up to `size`); `arrived` is when the kernel
  /// received them (else the moment the read returned).
  Io read(char* data, std::size_t size, MonoNanos deadline, std::size_t& got, MonoNanos& arrived);
  const std::string& error() const noexcept { return error_; }

  /// Safe from any thread.
  void interrupt() noexcept;
  void clear_interrupt() noexcept;

 private:
  /// Waits until the socket is readable (`events` POLLIN) or writable (POLLOUT).
  Io wait(short events, MonoNanos deadline);
  /// Waits for what OpenSSL asked for: want_read readable, want_write writable.
  Io wait_for_tls(TlsStream::Status wanted, MonoNanos deadline) {
    return wait(wanted == TlsStream::Status::want_read ? POLLIN : POLLOUT, deadline);
  }
  Io fail(std::string message) {
    error_ = std::move(message);
    return Io::failed;
  }

  Url url_;
  std::shared_ptr<const TlsContext> tls_context_;
  SocketAddress address_;
  bool resolved_ = false;
  bool stamps_ = true;
  bool more_waiting_ = false;  // the last read filled the buffer: read again before waiting
  bool failed_in_tls_ = false;
  int fd_ = -1;
  // Made with the first connection (so that a client costs no descriptor until it is used).
  std::atomic<int> wake_fd_{-1};
  std::atomic<bool> interrupted_{false};
  std::unique_ptr<TlsStream> tls_;
  std::string error_;
};

}  // namespace aifc::detail
