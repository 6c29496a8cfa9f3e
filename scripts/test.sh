#!/usr/bin/env bash
# Every test: install what is missing, build with tests, run CTest (unit, integration over
# real sockets, the CLI program, find_package from an install), then install the Python
# package into a virtual environment with `pip install .[test]` and run pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" -DAIFC_BUILD_TESTS=ON -DAIFC_BUILD_EXAMPLES=ON
(cd "$root/build" && ctest --output-on-failure --timeout 600)

venv="$root/build/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "$root[test]"
cd "$root"
"$venv/bin/python" -m pytest -q tests/python
