#!/usr/bin/env bash
# scripts/sanitize.sh [--thread]: the unit and integration tests under AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, build-sanitize/, shared with scripts/fuzz.sh): a memory
# error, a leak or undefined behaviour anywhere in aifc fails the run. The unit tests include
# the replay of every fuzzing input (fuzz/corpus, fuzz/regressions). Left out: install_consumer
# (it builds aifc once more, as a consumer would, which the ordinary run checks) and the /docs
# page in Chromium (a browser under test, not aifc).
# --thread instead builds build-tsan/ and runs the client group suites (both transports: the
# code with the most threads) under ThreadSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ "${1:-}" = "--thread" ]; then
  "$root/scripts/build-sanitize.sh" --thread test_client_group
  build="$root/build-tsan"
  # Suppressed: reports inside Debian's uninstrumented libraries only (tests/tsan.supp says which).
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp}
  cd "$build" && exec ctest --output-on-failure --timeout 900 -R '^client_group'
fi
"$root/scripts/build-sanitize.sh"
cd "$root/build-sanitize"
exec ctest --output-on-failure --timeout 900 -L 'unit|integration' \
  -E '^(install_consumer|service_docs_browser)$'
