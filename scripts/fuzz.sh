#!/usr/bin/env bash
# scripts/fuzz.sh [--seconds N] [--build-only] [HARNESS...]: fuzzes aifc's parsers of what others
# send it (fuzz/fuzz_*.cpp: sse, http_response, http_request, openai_chunk, specs, dataset, parquet,
# slurm_reply) with libFuzzer under ASan+UBSan, each for N seconds (default 60), starting from
# fuzz/corpus/<name> and fuzz/regressions/<name>. Builds into build-sanitize/ with clang
# (installed if missing; the same build runs the sanitized tests, scripts/sanitize.sh). An input
# that fails a check or trips a sanitizer is copied to fuzz/regressions/<name>/ and the script
# fails: fix the defect, then commit the input with the fix, so that `ctest -R fuzz_` replays it
# from then on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=60
build_only=0
harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(sse http_response http_request openai_chunk specs dataset parquet slurm_reply)

"$root/scripts/build-sanitize.sh" "${harnesses[@]/#/fuzz_}"
[ "$build_only" = 1 ] && exit 0

build="$root/build-sanitize"
found=0
for name in "${harnesses[@]}"; do
  work="$build/fuzz-corpus/$name"
  artifacts="$build/fuzz-found/$name"
  mkdir -p "$work" "$artifacts"
  rm -f "$artifacts"/*  # what an earlier run found is in fuzz/regressions/ already
  echo "[fuzz] $name for ${seconds}s"
  # New inputs go to the first directory (the working corpus); the committed ones are read only.
  if ! "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" \
      "$root/fuzz/corpus/$name" "$root/fuzz/regressions/$name" >"$build/fuzz-$name.log" 2>&1; then
    found=1
    tail -n 40 "$build/fuzz-$name.log" >&2
    for f in "$artifacts"/*; do
      [ -f "$f" ] || continue
      cp "$f" "$root/fuzz/regressions/$name/"
      echo "[fuzz] $name: a failing input, saved as fuzz/regressions/$name/$(basename "$f")" >&2
    done
  else
    grep -E "stat::number_of_executed_runs|cov:" "$build/fuzz-$name.log" | tail -n 2 |
      sed "s/^/[fuzz] $name: /"
  fi
done
exit $found
