#!/usr/bin/env bash
# The main job: install what is missing, build, and benchmark the built-in simulator.
# Any arguments are passed on to `aifc bench` (e.g. --num-prompts 500 --request-rate 100); the
# simulator runs unless they name a server (--base-url, --host, --port).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" >/dev/null
if [ $# -eq 0 ]; then
  set -- --num-prompts 300 --request-rate 100 --random-input-len 256 --random-output-len 64 \
         --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99 --save-result \
         --result-dir "$root/results"
fi
case " $* " in
  *" --base-url"* | *" --host"* | *" --port"* | *" --base_url"*) ;;
  *) set -- --sim "$@" ;;
esac
exec "$root/build/apps/aifc" bench "$@"
