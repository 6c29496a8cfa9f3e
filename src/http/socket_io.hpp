#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <string>

#include "aifc/record.hpp"

namespace aifc::detail {

/// Socket work shared by the client transports (the event loop and the blocking connection):
/// one way to find a server, open a socket and stamp what arrives.

/// A server's resolved address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

/// Looks up host:port. Returns false with `error` set ("cannot resolve 'host': ...").
bool resolve_address(const std::string& host, const std::string& port, SocketAddress& address,
                     std::string& error);

/// A non-blocking TCP socket towards `address` with TCP_NODELAY, and with kernel receive stamps
/// (SO_TIMESTAMPNS) when `stamps` is true and the kernel allows them (else `stamps` becomes
/// false). Its connect() is started; done when the socket turns writable. -1 with errno set on
/// failure (errno from socket() or connect()).
int open_connecting_socket(const SocketAddress& address, bool& stamps) noexcept;

/// CLOCK_REALTIME minus the monotonic clock, now: turns a kernel receive stamp (real time) into
/// the MonoNanos every record uses.
MonoNanos realtime_minus_mono() noexcept;

/// recv() that also gives the kernel's receive stamp (real time, ns) of the last packet in the
/// bytes, or leaves `stamp` alone when none came with them.
ssize_t receive_stamped(int fd, char* data, std::size_t size, MonoNanos& stamp) noexcept;

}  // namespace aifc::detail
