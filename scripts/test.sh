#!/usr/bin/env bash
# Every test: install what is missing, build with tests, run CTest (unit, integration over
# real sockets, the CLI program, find_package from an install).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" -DAIFC_BUILD_TESTS=ON -DAIFC_BUILD_EXAMPLES=ON
cd "$root/build"
ctest --output-on-failure --timeout 600
