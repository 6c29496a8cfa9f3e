#include "aifc/ssh.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "aifc/error.hpp"
#include "aifc/slurm.hpp"
#include "slurm/slurm_commands.hpp"
#include "util/durations.hpp"
#include "util/key_values.hpp"

namespace aifc {
namespace {

[[noreturn]] void refuse(const std::string& what) {
  throw Error(ErrorCode::connection_failed, what);
}

std::string where(const SshConfig& c) { return fmt::format("{}@{}:{}", c.user, c.host, c.port); }

// Opens, verifies and authenticates a libssh session; the caller frees it.
ssh_session open_session(const SshConfig& c) {
  c.validate();
  ssh_session s = ssh_new();
  if (!s) refuse("cannot create an SSH session");
  const long timeout_s = std::max<long>(1, static_cast<long>(c.timeout.count() / 1000));
  unsigned int port = static_cast<unsigned int>(c.port);
  ssh_options_set(s, SSH_OPTIONS_HOST, c.host.c_str());
  ssh_options_set(s, SSH_OPTIONS_PORT, &port);
  ssh_options_set(s, SSH_OPTIONS_USER, c.user.c_str());
  ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout_s);
  if (!c.known_hosts_path.empty())
    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, c.known_hosts_path.c_str());
  auto fail = [&](const std::string& what) {
    ssh_disconnect(s);
    ssh_free(s);
    refuse(what);
  };
  if (ssh_connect(s) != SSH_OK)
    fail(fmt::format("cannot connect to {}: {}", where(c), ssh_get_error(s)));
  switch (ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      break;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      fail(fmt::format(
          "the host key of {}:{} has CHANGED since it was recorded in known_hosts; this can be an "
          "attack. If the change is expected, remove the old key from {} and connect again",
          c.host, c.port, c.known_hosts_path.empty() ? "~/.ssh/known_hosts" : c.known_hosts_path));
      break;  // not reached: fail() throws
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      if (!c.accept_unknown_host)
        fail(fmt::format(
            "the host key of {}:{} is unknown (not in {}); check it and add it to known_hosts, or "
            "accept it explicitly (accept_unknown_host / SSH_ACCEPT_UNKNOWN_HOST=1)",
            c.host, c.port,
            c.known_hosts_path.empty() ? "~/.ssh/known_hosts" : c.known_hosts_path));
      if (ssh_session_update_known_hosts(s) != SSH_OK)
        fail(fmt::format("cannot record the host key of {} in known_hosts: {}", c.host,
                         ssh_get_error(s)));
      break;
    default:
      fail(fmt::format("cannot check the host key of {}: {}", c.host, ssh_get_error(s)));
  }
  ssh_key key = nullptr;
  if (ssh_pki_import_privkey_file(c.key_path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK)
    fail(fmt::format(
        "cannot read the private key '{}' (missing, unreadable, or protected by a passphrase)",
        c.key_path));
  const int auth = ssh_userauth_publickey(s, nullptr, key);
  ssh_key_free(key);
  if (auth != SSH_AUTH_SUCCESS)
    fail(fmt::format(
        "SSH login to {} with key '{}' was refused; check the user name and that the public key is "
        "in the remote authorized_keys",
        where(c), c.key_path));
  return s;
}

}  // namespace

void SshConfig::validate() const {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::invalid_argument, what); };
  if (host.empty()) bad("SSH needs a host (SSH_HOST)");
  if (user.empty()) bad("SSH needs a user (SSH_USER)");
  if (key_path.empty())
    bad("SSH needs a private key (SSH_KEY_PATH); only key authentication is used");
  if (port < 1 || port > 65535) bad(fmt::format("SSH port {} is out of range", port));
}

SshConfig SshConfig::from_environment(const std::string& env_file) {
  std::map<std::string, std::string> file;
  for (const auto& kv : detail::read_key_values(env_file, /*missing_ok=*/true))
    file[kv.key] = kv.value;
  auto get = [&](const char* name) -> std::string {
    if (const char* v = std::getenv(name)) return v;
    const auto it = file.find(name);
    return it == file.end() ? std::string() : it->second;
  };
  SshConfig c;
  c.host = get("SSH_HOST");
  if (const auto p = get("SSH_PORT"); !p.empty()) c.port = std::atoi(p.c_str());
  c.user = get("SSH_USER");
  c.key_path = get("SSH_KEY_PATH");
  c.known_hosts_path = get("SSH_KNOWN_HOSTS");
  c.remote_base_path = get("REMOTE_BASE_PATH");
  c.accept_unknown_host = get("SSH_ACCEPT_UNKNOWN_HOST") == "1";
  return c;
}

void to_json(nlohmann::json& j, const SshConfig& c) {
  j = nlohmann::json{{"host", c.host},
                     {"port", c.port},
                     {"user", c.user},
                     {"key_path", c.key_path},
                     {"known_hosts_path", c.known_hosts_path},
                     {"accept_unknown_host", c.accept_unknown_host},
                     {"remote_base_path", c.remote_base_path},
                     {"timeout_s", detail::seconds_of(c.timeout)}};
}

void from_json(const nlohmann::json& j, SshConfig& c) {
  c = SshConfig{};
  c.host = j.value("host", c.host);
  c.port = j.value("port", c.port);
  c.user = j.value("user", c.user);
  c.key_path = j.value("key_path", c.key_path);
  c.known_hosts_path = j.value("known_hosts_path", c.known_hosts_path);
  c.accept_unknown_host = j.value("accept_unknown_host", c.accept_unknown_host);
  c.remote_base_path = j.value("remote_base_path", c.remote_base_path);
  c.timeout = detail::millis_from_seconds(j.value("timeout_s", detail::seconds_of(c.timeout)));
}

struct SshSession::Impl {
  ssh_session session = nullptr;
  ~Impl() {
    if (session) {
      ssh_disconnect(session);
      ssh_free(session);
    }
  }
};

SshSession::SshSession(SshConfig config)
    : impl_(std::make_unique<Impl>()), config_(std::move(config)) {
  impl_->session = open_session(config_);
}

SshSession::~SshSession() = default;

SshSession::ExecResult SshSession::exec(const std::string& command, const std::string& input) {
  ssh_session s = impl_->session;
  ssh_channel ch = ssh_channel_new(s);
  if (!ch || ssh_channel_open_session(ch) != SSH_OK ||
      ssh_channel_request_exec(ch, command.c_str()) != SSH_OK) {
    if (ch) ssh_channel_free(ch);
    throw Error(ErrorCode::connection_failed,
                fmt::format("cannot run a command on {}: {}", where(config_), ssh_get_error(s)));
  }
  std::size_t sent = 0;
  while (sent < input.size()) {
    const int n =
        ssh_channel_write(ch, input.data() + sent, static_cast<uint32_t>(input.size() - sent));
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  ssh_channel_send_eof(ch);
  ExecResult r;
  char buf[4096];
  const int timeout_ms = static_cast<int>(config_.timeout.count()) * 4;
  for (int stream = 0; stream < 2; ++stream) {
    for (;;) {
      const int n = ssh_channel_read_timeout(ch, buf, sizeof buf, stream, timeout_ms);
      if (n <= 0) break;
      (stream == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
    }
  }
  r.exit_code = ssh_channel_get_exit_status(ch);
  ssh_channel_close(ch);
  ssh_channel_free(ch);
  return r;
}

void SshSession::upload(const std::string& remote_path, const std::string& content, int mode) {
  sftp_session sftp = sftp_new(impl_->session);
  if (!sftp || sftp_init(sftp) != SSH_OK) {
    if (sftp) sftp_free(sftp);
    throw Error(ErrorCode::io_error, fmt::format("SFTP is not available on {}", where(config_)));
  }
  const auto dir = remote_path.substr(0, remote_path.rfind('/'));
  if (sftp_attributes a = sftp_stat(sftp, dir.empty() ? "/" : dir.c_str())) {
    sftp_attributes_free(a);
  } else {
    sftp_free(sftp);
    throw Error(ErrorCode::io_error,
                fmt::format("the remote path '{}' does not exist on {} (check REMOTE_BASE_PATH)",
                            dir, config_.host));
  }
  sftp_file f =
      sftp_open(sftp, remote_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, static_cast<mode_t>(mode));
  if (!f) {
    sftp_free(sftp);
    throw Error(ErrorCode::io_error,
                fmt::format("cannot write '{}' on {}", remote_path, config_.host));
  }
  const auto written = sftp_write(f, content.data(), content.size());
  sftp_close(f);
  sftp_free(sftp);
  if (written < 0 || static_cast<std::size_t>(written) != content.size())
    throw Error(ErrorCode::io_error,
                fmt::format("writing '{}' on {} was cut short", remote_path, config_.host));
}

// ---------------------------------------------------------------------------------------------

struct SshReverseTunnel::Impl {
  ssh_session session = nullptr;
  int remote_port = 0;
  std::string local_host;
  int local_port = 0;
  std::atomic<bool> stopping{false};
  std::thread relay;

  struct Pair {
    ssh_channel channel;
    int fd;
  };

  int connect_local() {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(local_host.c_str(), std::to_string(local_port).c_str(), &hints, &res) != 0 ||
        !res)
      return -1;
    const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
      ::close(fd);
      freeaddrinfo(res);
      return -1;
    }
    freeaddrinfo(res);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
  }

  // One thread moves bytes both ways for every forwarded connection. It serves control
  // traffic back to the user's machine, not measured streams, so simple polling is enough.
  void run() {
    std::vector<Pair> pairs;
    char buf[16384];
    while (!stopping.load()) {
      bool busy = false;
      int port = 0;
      if (ssh_channel ch = ssh_channel_open_forward_port(session, 10, &port, nullptr, nullptr)) {
        const int fd = connect_local();
        if (fd < 0) {
          ssh_channel_close(ch);
          ssh_channel_free(ch);
        } else {
          pairs.push_back({ch, fd});
        }
        busy = true;
      }
      for (auto it = pairs.begin(); it != pairs.end();) {
        bool closed = false;
        const int n = ssh_channel_read_nonblocking(it->channel, buf, sizeof buf, 0);
        if (n > 0) {
          busy = true;
          for (int off = 0; off < n;) {
            const ssize_t w =
                ::send(it->fd, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
            if (w > 0)
              off += static_cast<int>(w);
            else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
              std::this_thread::sleep_for(std::chrono::microseconds(200));
            else {
              closed = true;
              break;
            }
          }
        } else if (n == SSH_ERROR || ssh_channel_is_eof(it->channel)) {
          closed = true;
        }
        const ssize_t m = ::recv(it->fd, buf, sizeof buf, 0);
        if (m > 0) {
          busy = true;
          if (ssh_channel_write(it->channel, buf, static_cast<uint32_t>(m)) < 0) closed = true;
        } else if (m == 0 || (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          closed = true;
        }
        if (closed) {
          ssh_channel_send_eof(it->channel);
          ssh_channel_close(it->channel);
          ssh_channel_free(it->channel);
          ::close(it->fd);
          it = pairs.erase(it);
        } else {
          ++it;
        }
      }
      if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (auto& p : pairs) {
      ssh_channel_close(p.channel);
      ssh_channel_free(p.channel);
      ::close(p.fd);
    }
  }
};

SshReverseTunnel::SshReverseTunnel(SshConfig config, int remote_port, std::string local_host,
                                   int local_port)
    : impl_(std::make_unique<Impl>()) {
  impl_->session = open_session(config);
  impl_->local_host = std::move(local_host);
  impl_->local_port = local_port;
  int bound = 0;
  if (ssh_channel_listen_forward(impl_->session, "127.0.0.1", remote_port, &bound) != SSH_OK) {
    const std::string message = ssh_get_error(impl_->session);
    ssh_disconnect(impl_->session);
    ssh_free(impl_->session);
    impl_->session = nullptr;
    throw Error(
        ErrorCode::connection_failed,
        fmt::format(
            "{} refused to forward remote port {}: {} (port taken, or AllowTcpForwarding off?)",
            config.host, remote_port, message));
  }
  impl_->remote_port = remote_port != 0 ? remote_port : bound;
  impl_->relay = std::thread([this] { impl_->run(); });
}

SshReverseTunnel::~SshReverseTunnel() { stop(); }

int SshReverseTunnel::remote_port() const noexcept { return impl_->remote_port; }

void SshReverseTunnel::stop() noexcept {
  if (!impl_ || !impl_->session) return;
  impl_->stopping.store(true);
  if (impl_->relay.joinable()) impl_->relay.join();
  ssh_channel_cancel_forward(impl_->session, "127.0.0.1", impl_->remote_port);
  ssh_disconnect(impl_->session);
  ssh_free(impl_->session);
  impl_->session = nullptr;
}

// ---------------------------------------------------------------------------------------------

namespace {

// Slurm's tools on a login node: the script is uploaded by SFTP under remote_base_path, and
// the job's environment goes in on stdin, so no value is ever on a remote command line.
class SshCommands : public detail::SlurmCommands {
 public:
  explicit SshCommands(SshConfig c) : session_(std::move(c)) {
    if (session_.config().remote_base_path.empty())
      throw Error(ErrorCode::invalid_argument,
                  "the SSH backend needs remote_base_path (REMOTE_BASE_PATH)");
  }
  std::string name() const override { return "ssh"; }
  std::string place() const override { return " on " + session_.config().host; }

  detail::ProcessResult sbatch(const JobSpec& spec, const std::string& script) override {
    const auto& c = session_.config();
    std::random_device rd;
    const auto path = fmt::format("{}/aifc-{}-{:08x}.sbatch", c.remote_base_path, spec.name, rd());
    session_.upload(path, script, 0700);
    std::string exports;
    for (const auto& [k, v] : spec.environment)
      exports += "export " + k + "=" + shell_quote(v) + "\n";
    return result_of(session_.exec(
        fmt::format("set -a; . /dev/stdin; set +a; cd {} && sbatch --parsable --export=ALL {}",
                    shell_quote(c.remote_base_path), shell_quote(path)),
        exports));
  }

  detail::ProcessResult run(const std::vector<std::string>& argv) override {
    std::string command;
    for (const auto& word : argv) command += (command.empty() ? "" : " ") + shell_quote(word);
    return result_of(session_.exec(command));
  }

 private:
  static detail::ProcessResult result_of(SshSession::ExecResult r) {
    detail::ProcessResult p;
    p.exit_code = r.exit_code;
    p.out = std::move(r.out);
    p.err = std::move(r.err);
    return p;
  }
  SshSession session_;
};

}  // namespace

std::unique_ptr<SlurmBackend> make_ssh_backend(SshConfig config) {
  return detail::make_command_backend(std::make_unique<SshCommands>(std::move(config)));
}

}  // namespace aifc
