#!/usr/bin/env bash
# scripts/build-sanitize.sh [TARGET...]: configures and builds build-sanitize/ — clang, ASan and
# UBSan on every target, the libFuzzer harnesses and the tests — installing clang and its runtime
# (clang-14, libclang-rt-14-dev) when missing. Without targets it builds everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/install-packages.sh" clang-14 libclang-rt-14-dev
build="$root/build-sanitize"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAIFC_SANITIZE=address,undefined -DAIFC_BUILD_FUZZERS=ON -DAIFC_BUILD_TESTS=ON \
  -DAIFC_BUILD_EXAMPLES=ON -DAIFC_INSTALL=OFF >/dev/null
if [ $# -gt 0 ]; then
  cmake --build "$build" -j "$(nproc)" --target "$@"
else
  cmake --build "$build" -j "$(nproc)"
fi
