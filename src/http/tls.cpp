#include "http/tls.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "aifc/error.hpp"
#include "http/socket_io.hpp"

namespace aifc::detail {

struct TlsSocket {
  int fd = -1;
  MonoNanos stamp = -1;
  bool eof = false;
};

namespace {

std::string openssl_error() {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "no detail from OpenSSL";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// OpenSSL reads and writes the socket through these, so that TLS bytes get the kernel's receive
// stamps as plain ones do, and no write raises SIGPIPE.
int read_socket(BIO* bio, char* data, std::size_t size, std::size_t* got) {
  auto* s = static_cast<TlsSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  *got = 0;
  for (;;) {
    const ssize_t n = receive_stamped(s->fd, data, size, s->stamp);
    if (n > 0) {
      *got = static_cast<std::size_t>(n);
      return 1;
    }
    if (n == 0) {
      s->eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
    return 0;
  }
}

int write_socket(BIO* bio, const char* data, std::size_t size, std::size_t* put) {
  auto* s = static_cast<TlsSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  *put = 0;
  for (;;) {
    const ssize_t n = ::send(s->fd, data, size, MSG_NOSIGNAL);
    if (n >= 0) {
      *put = static_cast<std::size_t>(n);
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
    return 0;
  }
}

long control_socket(BIO* bio, int command, long, void*) {
  auto* s = static_cast<TlsSocket*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return s && s->eof ? 1 : 0;
    default:
      return 0;
  }
}

BIO_METHOD* stamped_socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "aifc socket");
    BIO_meth_set_read_ex(m, read_socket);
    BIO_meth_set_write_ex(m, write_socket);
    BIO_meth_set_ctrl(m, control_socket);
    return m;
  }();
  return method;
}

bool is_ip_address(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

SSL* as_ssl(void* p) { return static_cast<SSL*>(p); }

}  // namespace

TlsContext::TlsContext(bool verify, const std::string& ca_cert_path) : verify_(verify) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) throw Error(ErrorCode::io_error, "TLS: cannot create a context: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Whole socket reads instead of a header and a body per record: half the system calls.
  SSL_CTX_set_read_ahead(ctx, 1);
  // Servers often close without a close_notify; the HTTP framing says whether a body was cut.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    struct stat st {};
    const bool directory =
        !ca_cert_path.empty() && ::stat(ca_cert_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    const int loaded = ca_cert_path.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                       : directory
                           ? SSL_CTX_load_verify_locations(ctx, nullptr, ca_cert_path.c_str())
                           : SSL_CTX_load_verify_locations(ctx, ca_cert_path.c_str(), nullptr);
    if (loaded != 1) {
      const std::string why = openssl_error();
      SSL_CTX_free(ctx);
      throw Error(ErrorCode::invalid_argument,
                  ca_cert_path.empty()
                      ? fmt::format("TLS: cannot load the system's CA certificates: {}", why)
                      : fmt::format("ca_cert_path: cannot load CA certificates from '{}': {}",
                                    ca_cert_path, why));
    }
  }
  ctx_ = ctx;
}

std::shared_ptr<const TlsContext> TlsContext::for_server(const std::string& cert_file,
                                                         const std::string& key_file) {
  std::shared_ptr<TlsContext> made(new TlsContext());
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) throw Error(ErrorCode::io_error, "TLS: cannot create a context: " + openssl_error());
  made->ctx_ = ctx;  // freed by the context from here on
  made->verify_ = false;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    throw Error(ErrorCode::invalid_argument,
                fmt::format("ssl_certfile: cannot use '{}': {}", cert_file, openssl_error()));
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    throw Error(ErrorCode::invalid_argument,
                fmt::format("ssl_keyfile: cannot use '{}': {}", key_file, openssl_error()));
  if (SSL_CTX_check_private_key(ctx) != 1)
    throw Error(ErrorCode::invalid_argument,
                fmt::format("ssl_keyfile: '{}' is not the key of '{}'", key_file, cert_file));
  return made;
}

TlsContext::~TlsContext() { SSL_CTX_free(static_cast<SSL_CTX*>(ctx_)); }

std::shared_ptr<const TlsContext> shared_tls_context(bool verify, const std::string& ca_cert_path) {
  static std::mutex mutex;
  static std::map<std::pair<bool, std::string>, std::weak_ptr<const TlsContext>> contexts;
  std::lock_guard lock(mutex);
  auto& slot = contexts[{verify, ca_cert_path}];
  if (auto existing = slot.lock()) return existing;
  auto made = std::make_shared<const TlsContext>(verify, ca_cert_path);
  slot = made;
  return made;
}

bool TlsStream::open(const TlsContext& context, int fd) {
  socket_->fd = fd;
  ERR_clear_error();
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(context.native()));
  BIO* bio = ssl ? BIO_new(stamped_socket_method()) : nullptr;
  if (!ssl || !bio) {
    error_ = "cannot start a TLS session: " + openssl_error();
    SSL_free(ssl);
    return false;
  }
  BIO_set_data(bio, socket_.get());
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);
  ssl_ = ssl;
  return true;
}

std::shared_ptr<const TlsContext> tls_context_for(const ClientConfig& config) {
  if (config.base_url.rfind("https://", 0) != 0) return nullptr;
  return shared_tls_context(config.verify_tls, config.ca_cert_path);
}

TlsStream::TlsStream(const TlsContext& context, int fd) : socket_(std::make_unique<TlsSocket>()) {
  if (open(context, fd)) SSL_set_accept_state(as_ssl(ssl_));
}

TlsStream::TlsStream(const TlsContext& context, int fd, const std::string& host)
    : socket_(std::make_unique<TlsSocket>()) {
  if (!open(context, fd)) return;
  SSL* ssl = as_ssl(ssl_);
  const bool ip = is_ip_address(host);
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (context.verifies()) {
    if (ip)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    else
      SSL_set1_host(ssl, host.c_str());
  }
  SSL_set_connect_state(ssl);
}

TlsStream::~TlsStream() { SSL_free(as_ssl(ssl_)); }

TlsStream::Status TlsStream::classify(int rc, const char* operation) {
  SSL* ssl = as_ssl(ssl_);
  const int saved_errno = errno;
  switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
      return Status::want_read;
    case SSL_ERROR_WANT_WRITE:
      return Status::want_write;
    case SSL_ERROR_ZERO_RETURN:
      return Status::closed;
    case SSL_ERROR_SYSCALL:
      if (socket_->eof || saved_errno == 0) return Status::closed;
      error_ = fmt::format("{}: {}", operation, std::strerror(saved_errno));
      ERR_clear_error();
      return Status::failed;
    default:
      if (const long verdict = SSL_get_verify_result(ssl); verdict != X509_V_OK) {
        error_ = fmt::format("the server's certificate is not trusted: {}",
                             X509_verify_cert_error_string(verdict));
        ERR_clear_error();
      } else {
        const bool plain_answer =
            ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_WRONG_VERSION_NUMBER;
        error_ = fmt::format("{}: {}{}", operation, openssl_error(),
                             plain_answer ? " (the server answers without TLS: is the URL "
                                            "http:// rather than https://?)"
                                          : "");
      }
      return Status::failed;
  }
}

TlsStream::Status TlsStream::handshake() {
  if (!ssl_) return Status::failed;
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_do_handshake(as_ssl(ssl_));
  if (rc == 1) return Status::ok;
  return classify(rc, "TLS handshake");
}

TlsStream::Status TlsStream::read(char* data, std::size_t size, std::size_t& got) {
  got = 0;
  if (!ssl_) return Status::failed;
  ERR_clear_error();
  errno = 0;
  if (SSL_read_ex(as_ssl(ssl_), data, size, &got) == 1) return Status::ok;
  return classify(0, "TLS read");
}

TlsStream::Status TlsStream::write(const char* data, std::size_t size, std::size_t& put) {
  put = 0;
  if (!ssl_) return Status::failed;
  ERR_clear_error();
  errno = 0;
  if (SSL_write_ex(as_ssl(ssl_), data, size, &put) == 1) return Status::ok;
  return classify(0, "TLS write");
}

bool TlsStream::has_buffered() const noexcept { return ssl_ && SSL_has_pending(as_ssl(ssl_)) == 1; }

bool TlsStream::alive_when_idle() {
  if (!ssl_) return false;
  char probe;
  const ssize_t n = ::recv(socket_->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return !has_buffered();
  if (n <= 0) return false;
  // Bytes wait: session tickets and key updates are taken in passing; an alert or application
  // data nobody asked for means the connection is not fit for the next request.
  ERR_clear_error();
  std::size_t got = 0;
  if (SSL_peek_ex(as_ssl(ssl_), &probe, 1, &got) == 1) return false;
  const bool waiting = SSL_get_error(as_ssl(ssl_), 0) == SSL_ERROR_WANT_READ;
  ERR_clear_error();
  return waiting;
}

MonoNanos TlsStream::last_stamp() const noexcept { return socket_->stamp; }

}  // namespace aifc::detail
