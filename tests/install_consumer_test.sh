#!/usr/bin/env bash
# A consumer project builds against aifc four ways: find_package(aifc) from an installed
# prefix, find_package(aifc) from the build tree (aifc_DIR), add_subdirectory of the sources,
# and find_package(aifc) of a shared libaifc, which exports its public API only.
# usage: install_consumer_test.sh BUILD_DIR CONSUMER_DIR CMAKE SOURCE_DIR
set -euo pipefail
build=$1 consumer=$2 cmake=$3 source=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jobs=$(nproc)
# The two copies of libaifc built below (as a subproject, and shared) are there to check the
# packaging, not to run fast: unoptimized, they compile in about two thirds of the time.
quick=-DCMAKE_CXX_FLAGS_RELEASE="-O0 -DNDEBUG"

"$cmake" --install "$build" --prefix "$tmp/prefix" --component dev >/dev/null
"$cmake" -S "$consumer" -B "$tmp/installed" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
"$cmake" --build "$tmp/installed" -j "$jobs" >/dev/null
"$tmp/installed/consumer"

"$cmake" -S "$consumer" -B "$tmp/build-tree" -Daifc_DIR="$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
"$cmake" --build "$tmp/build-tree" -j "$jobs" >/dev/null
"$tmp/build-tree/consumer"

"$cmake" -S "$consumer/../consumer_subdir" -B "$tmp/subdir" -DAIFC_SOURCE_DIR="$source" \
  -DCMAKE_BUILD_TYPE=Release "$quick" >"$tmp/subdir.log"
# As a subproject aifc neither forces a build type nor adds its tests, programs or install rules.
grep -q "CMAKE_BUILD_TYPE:STRING=Release" "$tmp/subdir/CMakeCache.txt"
if grep -q "AIFC_BUILD_TESTS:BOOL=ON\|AIFC_INSTALL:BOOL=ON" "$tmp/subdir/CMakeCache.txt"; then
  echo "FAIL: aifc as a subproject turned on its tests or install rules" >&2
  exit 1
fi
"$cmake" --build "$tmp/subdir" -j "$jobs" >/dev/null
"$tmp/subdir/consumer"

# A shared libaifc: versioned soname, the consumer links and runs, internals not exported.
"$cmake" -S "$source" -B "$tmp/shared" -DBUILD_SHARED_LIBS=ON -DAIFC_BUILD_TESTS=OFF \
  -DAIFC_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Release "$quick" >/dev/null
"$cmake" --build "$tmp/shared" -j "$jobs" >/dev/null
"$cmake" --install "$tmp/shared" --prefix "$tmp/shared-prefix" --component dev >/dev/null
library=$(find "$tmp/shared-prefix" -name 'libaifc.so.*.*.*' | head -n1)
soname=$(readelf -d "$library" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
version=$(cat "$source/VERSION")
case "$version" in
  0.*) expected="libaifc.so.${version%.*}" ;;
  *) expected="libaifc.so.${version%%.*}" ;;
esac
if [ "$soname" != "$expected" ]; then
  echo "FAIL: soname '$soname', expected '$expected'" >&2
  exit 1
fi
if nm -D --defined-only -C "$library" | grep -q "aifc::SseParser\|aifc::detail::StreamRecorder\|aifc::detail::EventLoop"; then
  echo "FAIL: the shared library exports internals" >&2
  exit 1
fi
"$cmake" -S "$consumer" -B "$tmp/shared-consumer" -DCMAKE_PREFIX_PATH="$tmp/shared-prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
"$cmake" --build "$tmp/shared-consumer" -j "$jobs" >/dev/null
LD_LIBRARY_PATH="$(dirname "$library")" "$tmp/shared-consumer/consumer" >/dev/null
echo "consumers: installed, build tree, add_subdirectory and shared ($soname) all built and ran"
