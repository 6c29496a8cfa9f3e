#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "aifc/export.hpp"

namespace aifc {

/// How to reach a login node over SSH. Key authentication only; the host key is checked
/// against known_hosts, and an unknown or changed key is refused unless the user explicitly
/// accepts an unknown one (a changed one is always refused).
struct AIFC_API SshConfig {
  std::string host;
  int port = 22;
  std::string user;
  std::string key_path;              ///< private key file
  std::string known_hosts_path;      ///< empty: ~/.ssh/known_hosts
  bool accept_unknown_host = false;  ///< record an unknown host's key instead of refusing
  std::string remote_base_path;      ///< where job scripts are uploaded
  std::chrono::milliseconds timeout{15'000};

  void validate() const;
  /// From SSH_HOST, SSH_PORT, SSH_USER, SSH_KEY_PATH, REMOTE_BASE_PATH (and SSH_KNOWN_HOSTS,
  /// SSH_ACCEPT_UNKNOWN_HOST=1), reading `env_file` (KEY=VALUE lines) first when it exists;
  /// variables already set in the environment win.
  static SshConfig from_environment(const std::string& env_file = ".env");
};

AIFC_API void to_json(nlohmann::json& j, const SshConfig& c);
AIFC_API void from_json(const nlohmann::json& j, SshConfig& c);

/// One authenticated SSH connection (libssh). Not thread-safe; use one per thread.
class AIFC_API SshSession {
 public:
  /// Connects, verifies the host key and logs in. Throws Error(connection_failed) naming the cause.
  explicit SshSession(SshConfig config);
  ~SshSession();
  SshSession(const SshSession&) = delete;
  SshSession& operator=(const SshSession&) = delete;

  struct ExecResult {
    int exit_code = -1;
    std::string out;
    std::string err;
  };
  /// Runs a command (through the remote user's shell), feeding `input` on its stdin.
  ExecResult exec(const std::string& command, const std::string& input = {});
  /// Writes a file over SFTP; its directory must exist. Throws Error(io_error) naming the path.
  void upload(const std::string& remote_path, const std::string& content, int mode = 0644);
  const SshConfig& config() const noexcept { return config_; }

 private:
  friend class SshReverseTunnel;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  SshConfig config_;
};

/// Reverse port forwarding: connections to `remote_port` on the SSH host's loopback are carried
/// back to `local_host:local_port` here, so programs on compute nodes can reach a service on the
/// user's machine. Owns its SSH connection and a relay thread; the destructor stops both.
class AIFC_API SshReverseTunnel {
 public:
  SshReverseTunnel(SshConfig config, int remote_port, std::string local_host, int local_port);
  ~SshReverseTunnel();
  SshReverseTunnel(const SshReverseTunnel&) = delete;
  SshReverseTunnel& operator=(const SshReverseTunnel&) = delete;

  int remote_port() const noexcept;
  /// Stops forwarding and joins the relay thread. Idempotent.
  void stop() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aifc
