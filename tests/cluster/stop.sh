#!/usr/bin/env bash
# tests/cluster/stop.sh [STATE_DIR]: cancels the cluster's jobs and stops every daemon that
# start.sh started (by pid file, after checking the process name). Leaves nothing running.
set -uo pipefail
state=${1:-/tmp/aifc-cluster}
case "$state" in /?*) ;; *) echo "STATE_DIR must be an absolute path other than /" >&2; exit 2 ;; esac
export SLURM_CONF=$state/etc/slurm.conf

name_of() {  # the command name of a living (not zombie) pid, or nothing
  local stat; stat=$(cat /proc/"$1"/stat 2>/dev/null) || return 0
  stat=${stat##*) }
  [ "${stat%% *}" = Z ] || cat /proc/"$1"/comm 2>/dev/null
}
stop_pid() {  # stop_pid PID NAME: TERM, then KILL after 10 s
  local pid=$1 name=$2
  [ -n "$pid" ] && [ "$(name_of "$pid")" = "$name" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do [ "$(name_of "$pid")" = "$name" ] || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}
stop_pidfile() { [ -s "$1" ] && stop_pid "$(tr -dc 0-9 < "$1")" "$2"; rm -f "$1"; }

ctld_pid=$( [ -s "$state/run/slurmctld.pid" ] && tr -dc 0-9 < "$state/run/slurmctld.pid")
if [ -n "$ctld_pid" ] && [ "$(name_of "$ctld_pid")" = slurmctld ]; then
  jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 100); do [ -z "$(squeue -h -o '%A' 2>/dev/null)" ] && break; sleep 0.1; done
  fi
fi

stop_pidfile "$state/run/slurmrestd.pid" slurmrestd
if [ -s "$state/ssh/sshd.pid" ]; then
  sshd_pid=$(tr -dc 0-9 < "$state/ssh/sshd.pid")
  # sessions are children of the listener; end them too
  for f in /proc/[0-9]*/stat; do
    stat=$(cat "$f" 2>/dev/null) || continue
    rest=${stat##*) }
    set -- $rest
    [ "${2:-}" = "$sshd_pid" ] && { p=${f#/proc/}; stop_pid "${p%/stat}" sshd; }
  done
  stop_pidfile "$state/ssh/sshd.pid" sshd
fi
for pf in "$state"/run/slurmd-*.pid; do [ -e "$pf" ] && stop_pidfile "$pf" slurmd; done
stop_pidfile "$state/run/slurmctld.pid" slurmctld
stop_pidfile "$state/run/slurmdbd.pid" slurmdbd
stop_pidfile "$state/mysql/mariadbd.pid" mariadbd
# Job steps outlive a killed slurmd: end any slurmstepd that belongs to this cluster.
for d in /proc/[0-9]*; do
  [ "$(name_of "${d#/proc/}")" = slurmstepd ] || continue
  tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" && stop_pid "${d#/proc/}" slurmstepd
done
stop_pidfile "$state/munge/munged.pid" munged
if [ -s "$state/munge/default-socket-link" ]; then
  link=$(cat "$state/munge/default-socket-link")
  [ "$(readlink "$link")" = "$state/munge/munge.socket.2" ] && rm -f "$link"
  rm -f "$state/munge/default-socket-link"
fi
echo "[cluster] stopped ($state)"
