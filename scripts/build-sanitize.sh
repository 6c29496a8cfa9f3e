#!/usr/bin/env bash
# scripts/build-sanitize.sh [--thread] [TARGET...]: configures and builds build-sanitize/ — clang,
# ASan and UBSan on every target, the libFuzzer harnesses and the tests — installing clang and
# its runtime (clang-14, libclang-rt-14-dev) when missing. --thread builds build-tsan/ instead:
# ThreadSanitizer, the tests only. Without targets it builds everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-sanitize"
options=(-DAIFC_SANITIZE=address,undefined -DAIFC_BUILD_FUZZERS=ON -DAIFC_BUILD_EXAMPLES=ON)
if [ "${1:-}" = "--thread" ]; then
  shift
  build="$root/build-tsan"
  options=(-DAIFC_SANITIZE=thread -DAIFC_BUILD_EXAMPLES=OFF)
fi
"$root/scripts/install-deps.sh"
"$root/scripts/install-packages.sh" clang-14 libclang-rt-14-dev
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${options[@]}" -DAIFC_BUILD_TESTS=ON -DAIFC_INSTALL=OFF >/dev/null
if [ $# -gt 0 ]; then
  cmake --build "$build" -j "$(nproc)" --target "$@"
else
  cmake --build "$build" -j "$(nproc)"
fi
