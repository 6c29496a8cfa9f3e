#!/usr/bin/env bash
# Installs what aifc needs on Debian 12 and is not there yet. Safe to run again.
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config python3 python3-venv python3-dev
          libcpp-httplib-dev nlohmann-json3-dev libfmt-dev doctest-dev libssl-dev openssl libssh-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[aifc] installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
