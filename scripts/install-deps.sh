#!/usr/bin/env bash
# Installs what aifc needs on Debian 12 and is not there yet. Safe to run again.
set -euo pipefail
exec "$(dirname "$0")/install-packages.sh" build-essential cmake ninja-build pkg-config python3 \
  python3-venv python3-dev libcpp-httplib-dev nlohmann-json3-dev libfmt-dev doctest-dev libssl-dev \
  openssl libssh-dev libsqlite3-dev zlib1g-dev libzstd-dev
