#!/usr/bin/env bash
# A consumer project builds against aifc three ways: find_package(aifc) from an installed
# prefix, find_package(aifc) from the build tree (aifc_DIR), and add_subdirectory of the sources.
# usage: install_consumer_test.sh BUILD_DIR CONSUMER_DIR CMAKE SOURCE_DIR
set -euo pipefail
build=$1 consumer=$2 cmake=$3 source=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jobs=$(nproc)

"$cmake" --install "$build" --prefix "$tmp/prefix" --component dev >/dev/null
"$cmake" -S "$consumer" -B "$tmp/installed" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
"$cmake" --build "$tmp/installed" -j "$jobs" >/dev/null
"$tmp/installed/consumer"

"$cmake" -S "$consumer" -B "$tmp/build-tree" -Daifc_DIR="$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
"$cmake" --build "$tmp/build-tree" -j "$jobs" >/dev/null
"$tmp/build-tree/consumer"

"$cmake" -S "$consumer/../consumer_subdir" -B "$tmp/subdir" -DAIFC_SOURCE_DIR="$source" \
  -DCMAKE_BUILD_TYPE=Release >"$tmp/subdir.log"
# As a subproject aifc neither forces a build type nor adds its tests, programs or install rules.
grep -q "CMAKE_BUILD_TYPE:STRING=Release" "$tmp/subdir/CMakeCache.txt"
if grep -q "AIFC_BUILD_TESTS:BOOL=ON\|AIFC_INSTALL:BOOL=ON" "$tmp/subdir/CMakeCache.txt"; then
  echo "FAIL: aifc as a subproject turned on its tests or install rules" >&2
  exit 1
fi
"$cmake" --build "$tmp/subdir" -j "$jobs" >/dev/null
"$tmp/subdir/consumer"
echo "consumers: installed, build tree and add_subdirectory all built and ran"
