#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "aifc/record.hpp"
#include "aifc/vllm_client.hpp"

namespace aifc::detail {

/// TLS settings shared by connections: OpenSSL's context with the CAs to trust.
class TlsContext {
 public:
  /// `verify`: check the server's certificate chain (against `ca_cert_path`, a PEM file, or the
  /// system's CAs when empty) and that it names the host. Throws Error(invalid_argument) when
  /// the CA file cannot be used.
  TlsContext(bool verify, const std::string& ca_cert_path);
  /// A server's context: its certificate (chain) and private key, PEM files. Throws
  /// Error(invalid_argument) naming the file that cannot be used.
  static std::shared_ptr<const TlsContext> for_server(const std::string& cert_file,
                                                      const std::string& key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  bool verifies() const noexcept { return verify_; }
  void* native() const noexcept { return ctx_; }  ///< SSL_CTX*

 private:
  TlsContext() = default;
  void* ctx_ = nullptr;
  bool verify_ = true;
};

/// The context for these settings, shared by every client that uses them while one holds it
/// (a CA bundle is read once, not once per stream).
std::shared_ptr<const TlsContext> shared_tls_context(bool verify, const std::string& ca_cert_path);
/// The shared context a client of `config` uses: null for an http:// URL.
std::shared_ptr<const TlsContext> tls_context_for(const ClientConfig& config);

struct TlsSocket;  // the socket under a session, as OpenSSL's I/O callbacks see it

/// One TLS session over a connected non-blocking socket, which it reads with kernel receive
/// stamps like the plain transports. Every call returns at once: `want_read`/`want_write` say
/// what to wait for before calling again.
class TlsStream {
 public:
  enum class Status { ok, want_read, want_write, closed, failed };

  /// `host` is sent as SNI (unless it is an IP address) and, when the context verifies, must be
  /// named by the certificate. The stream does not own `fd`.
  TlsStream(const TlsContext& context, int fd, const std::string& host);
  /// The server's side of a session on an accepted socket (a context from for_server()).
  TlsStream(const TlsContext& context, int fd);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  Status handshake();
  /// Decrypted bytes into `data`; `got` > 0 with ok. closed: the server ended the session
  /// (close_notify or the socket's end).
  Status read(char* data, std::size_t size, std::size_t& got);
  Status write(const char* data, std::size_t size, std::size_t& put);
  /// True when decrypted or raw bytes wait inside OpenSSL (a poll on the socket would not see
  /// them).
  bool has_buffered() const noexcept;
  /// For an idle connection: true when the server has not closed it (tickets or other
  /// handshake messages are taken in passing); false when it closed it or sent data unasked.
  bool alive_when_idle();
  /// The kernel's receive stamp (real time, ns) of the last raw bytes read; -1: none yet.
  MonoNanos last_stamp() const noexcept;
  /// What went wrong, for `failed` (a certificate problem names itself).
  const std::string& error() const noexcept { return error_; }

 private:
  Status classify(int rc, const char* operation);
  /// Makes the session; false (with error_ set) when OpenSSL cannot.
  bool open(const TlsContext& context, int fd);
  std::unique_ptr<TlsSocket> socket_;
  void* ssl_ = nullptr;  // SSL*
  std::string error_;
};

}  // namespace aifc::detail
