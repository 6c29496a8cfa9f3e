#!/usr/bin/env bash
# tests/cluster/start_under_load.sh [TIMES] [STATE_DIR]: starts and stops the test cluster TIMES
# times (default 10) from a fresh state directory while stress-ng keeps every core busy (load
# average well above the core count), and checks after each start that a job of the test user
# is accepted: the association race of a loaded start (slurmctld refusing "Invalid account") must
# never come back. Prints one line per start and a closing "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
times=${1:-10}
state=${2:-/tmp/aifc-cluster-load}
"$here/../../scripts/install-packages.sh" stress-ng
stress-ng --cpu "$(( $(nproc) * 5 ))" --timeout "$(( times * 60 ))s" >/dev/null 2>&1 &
hog=$!
trap 'kill "$hog" 2>/dev/null; "$here/stop.sh" "$state" >/dev/null 2>&1' EXIT
sleep 10  # let the load build up
passed=0 failed=0
for i in $(seq 1 "$times"); do
  "$here/stop.sh" "$state" >/dev/null 2>&1
  rm -rf "$state"
  start=$(date +%s%N)
  if "$here/start.sh" "$state" >"/tmp/aifc-start-under-load-$i.log" 2>&1; then
    # shellcheck disable=SC1091
    . "$state/env.sh"
    if out=$(su "$AIFC_CLUSTER_USER" -s /bin/sh -c \
        "SLURM_CONF='$SLURM_CONF' sbatch --parsable -A aifc-test -p '$AIFC_CLUSTER_PARTITION' --wrap true" 2>&1); then
      passed=$((passed + 1))
      printf 'start %2d: ok in %d ms (job %s), load average %s\n' "$i" \
        "$(( ($(date +%s%N) - start) / 1000000 ))" "$out" "$(cut -d' ' -f1 /proc/loadavg)"
    else
      failed=$((failed + 1))
      echo "start $i: the cluster came up but refused a job: $out"
    fi
  else
    failed=$((failed + 1))
    echo "start $i: failed (log: /tmp/aifc-start-under-load-$i.log)"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
