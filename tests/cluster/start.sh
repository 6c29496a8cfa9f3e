#!/usr/bin/env bash
# tests/cluster/start.sh [STATE_DIR]
# Starts a real Slurm test cluster on loopback, as root: munged, MariaDB + slurmdbd (accounts are
# enforced), slurmctld, four slurmd (n1..n4, one process each), slurmrestd with JWT auth, and a
# key-only sshd. Everything lives in
# STATE_DIR (default /tmp/aifc-cluster). Components already running are left alone.
# Writes STATE_DIR/env.sh for tests and people to source.
set -euo pipefail

state=${1:-/tmp/aifc-cluster}
nodes=${AIFC_CLUSTER_NODES:-4}
# CPUs each node declares (slurmd trusts the configuration): more than the host has lets a
# benchmark place many agents per node (bench/distributed.py --agents 64 wants 16).
cpus=${AIFC_CLUSTER_CPUS:-2}
ctld_port=${AIFC_CLUSTER_CTLD_PORT:-6817}
slurmd_port_base=${AIFC_CLUSTER_SLURMD_PORT_BASE:-17000}
rest_listen=${AIFC_CLUSTER_REST:-127.0.0.1:6820}
dbd_port=${AIFC_CLUSTER_DBD_PORT:-6819}
db_port=${AIFC_CLUSTER_DB_PORT:-3307}
account=aifc-test
ssh_port=${AIFC_CLUSTER_SSH_PORT:-2222}
user=${AIFC_CLUSTER_USER:-aifctest}
partition=debug
rest_version=v0.0.38  # the newest openapi plugin of Debian 12's Slurm 22.05

started=$(date +%s%N)
say() { printf '[cluster %5dms] %s\n' $(( ($(date +%s%N) - started) / 1000000 )) "$*"; }
fail() { say "error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root"
case "$state" in /?*) ;; *) fail "STATE_DIR must be an absolute path other than /" ;; esac

conf=$state/etc/slurm.conf
munge_socket=$state/munge/munge.socket.2
export SLURM_CONF=$conf

# alive PIDFILE NAME: the pid file names a living (not zombie) process called NAME
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -dc 0-9 < "$1")
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ] || return 1
  local stat; stat=$(cat /proc/"$pid"/stat 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}
port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_up_to() {  # wait_up_to SECONDS COMMAND...: true once COMMAND succeeds, false at the limit
  local until=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$until" ] || return 1
    sleep 0.05
  done
}
wait_for() {  # wait_for WHAT COMMAND...
  local what=$1; shift
  wait_up_to 60 "$@" || fail "$what did not come up (logs in $state/log)"
}

# 1. Packages. Debian does not start daemons here (no systemd); a policy-rc.d makes sure.
have_all() {
  local b
  for b in munged slurmctld slurmd slurmdbd slurmrestd scontrol sbatch squeue scancel sacctmgr mariadbd \
           mariadb-install-db curl ssh ssh-keygen; do
    command -v "$b" >/dev/null || return 1
  done
  [ -x /usr/sbin/sshd ] && dpkg -s slurm-wlm-jwt-plugin >/dev/null 2>&1
}
if ! have_all; then
  say "installing Slurm, munge and OpenSSH from Debian"
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # slurm-wlm-jwt-plugin is not pulled in by slurmrestd, and JWT auth needs it.
  apt-get install -y -qq --no-install-recommends slurm-wlm slurm-client slurmrestd slurm-wlm-jwt-plugin \
    slurmdbd mariadb-server munge openssh-server openssh-client curl >/dev/null
  [ "$policy_added" = 0 ] || rm -f /usr/sbin/policy-rc.d
fi

# 2. Directories, keys, the test user.
mkdir -p "$state"/{etc,log,run,spool/ctld,spool/d,munge,home,ssh/authorized_keys}
chmod 755 "$state" "$state"/{etc,log,run,spool,munge,home}   # munged needs o+x on its socket dir
chmod 711 "$state/ssh"
chmod 755 "$state/ssh/authorized_keys"
if ! id "$user" >/dev/null 2>&1; then
  useradd -M -d "$state/home/$user" -s /bin/bash -U "$user"
  usermod -p '*' "$user"  # no password, but not locked: sshd without PAM refuses locked accounts
fi
home=$state/home/$user
mkdir -p "$home"
chown "$user:" "$home"
chmod 755 "$home"
[ -s "$state/munge/munge.key" ] || dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$state/munge/munge.key"
[ -s "$state/etc/jwt.key" ] || dd if=/dev/urandom of="$state/etc/jwt.key" bs=32 count=1 status=none
chmod 600 "$state/etc/jwt.key"

# 3. munged, on a socket of its own.
if ! alive "$state/munge/munged.pid" munged; then
  rm -f "$munge_socket" "$munge_socket.lock"
  munged --key-file="$state/munge/munge.key" --socket="$munge_socket" --pid-file="$state/munge/munged.pid" \
    --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed"
  wait_for munged sh -c "munge -S '$munge_socket' -n | unmunge -S '$munge_socket'"
  say "munged up"
fi
# sacctmgr's connection to slurmdbd ignores AuthInfo and asks munge's default socket; point that
# name at this munged unless a real one lives there.
# A symlink there is a test cluster's (maybe a stale one); a real munged makes a socket.
if [ -L /run/munge/munge.socket.2 ] || [ ! -e /run/munge/munge.socket.2 ]; then
  mkdir -p /run/munge
  ln -sfn "$munge_socket" /run/munge/munge.socket.2
  echo /run/munge/munge.socket.2 > "$state/munge/default-socket-link"
fi

# 3b. MariaDB and slurmdbd: with accounting, Slurm checks accounts (an unknown one is refused).
db_dir=$state/mysql
db_socket=$db_dir/mysql.sock
[ -s "$state/etc/db.pass" ] || head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9 > "$state/etc/db.pass"
chmod 600 "$state/etc/db.pass"
db_pass=$(cat "$state/etc/db.pass")
if ! alive "$db_dir/mariadbd.pid" mariadbd; then
  if [ ! -d "$db_dir/mysql" ]; then
    mkdir -p "$db_dir"
    mariadb-install-db --user=root --datadir="$db_dir" --auth-root-authentication-method=socket \
      >"$state/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed (see $state/log/mariadb-install.log)"
  fi
  ! port_busy 127.0.0.1 "$db_port" || fail "port $db_port is taken"
  setsid mariadbd --user=root --datadir="$db_dir" --socket="$db_socket" --pid-file="$db_dir/mariadbd.pid" \
    --bind-address=127.0.0.1 --port="$db_port" --log-error="$state/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  wait_for mariadb mariadb -S "$db_socket" -e 'select 1'
  mariadb -S "$db_socket" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
    ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  say "mariadb up on 127.0.0.1:$db_port"
fi
{
  echo "AuthType=auth/munge"
  echo "AuthInfo=socket=$munge_socket"
  echo "DbdHost=localhost"
  echo "DbdAddr=127.0.0.1"
  echo "DbdPort=$dbd_port"
  echo "SlurmUser=root"
  echo "PidFile=$state/run/slurmdbd.pid"
  echo "LogFile=$state/log/slurmdbd.log"
  echo "StorageType=accounting_storage/mysql"
  echo "StorageHost=127.0.0.1"
  echo "StoragePort=$db_port"
  echo "StorageUser=slurm"
  echo "StoragePass=$db_pass"
  echo "StorageLoc=slurm_acct_db"
} > "$state/etc/slurmdbd.conf"
chmod 600 "$state/etc/slurmdbd.conf"   # slurmdbd refuses a config others can read
if ! alive "$state/run/slurmdbd.pid" slurmdbd; then
  ! port_busy 127.0.0.1 "$dbd_port" || fail "port $dbd_port is taken"
  slurmdbd
  wait_for slurmdbd port_busy 127.0.0.1 "$dbd_port"
  say "slurmdbd up"
fi

# 4. slurm.conf: n1..nN on 127.0.0.1, each slurmd on its own port. Where the host has a cgroup-v1
#    memory controller, jobs are confined to their memory (task/cgroup), so that a job over its
#    --mem really ends OUT_OF_MEMORY; elsewhere memory is not enforced (task/none).
if [ -d /sys/fs/cgroup/memory ] && grep -qE '^cgroup /sys/fs/cgroup/memory cgroup .*memory' /proc/mounts; then
  memory_limits=1 task_plugin=task/cgroup select_params=CR_CPU_Memory
else
  memory_limits=0 task_plugin=task/none select_params=CR_CPU
fi
host=$(hostname -s 2>/dev/null || echo localhost)
getent hosts "$host" >/dev/null 2>&1 || host=localhost
cat > "$conf.new" <<EOF
# Written by aifc tests/cluster/start.sh: a test cluster on one host.
ClusterName=aifc
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$munge_socket
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$state/etc/jwt.key
CommunicationParameters=NoInAddrAny
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d/%n
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd-%n.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=$task_plugin
SelectType=select/cons_tres
SelectTypeParameters=$select_params
DefMemPerCPU=250
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=3600
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStorageEnforce=associations
JobCompType=jobcomp/filetxt
JobCompLoc=$state/log/jobcomp.txt
MailProg=/bin/true
NodeName=n[1-$nodes] NodeHostname=$host NodeAddr=127.0.0.1 Port=[$((slurmd_port_base + 1))-$((slurmd_port_base + nodes))] CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=$partition Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if alive "$state/run/slurmctld.pid" slurmctld; then
  cmp -s "$conf.new" "$conf" || say "warning: slurmctld runs with an older slurm.conf; stop the cluster to apply"
  rm -f "$conf.new"
else
  mv "$conf.new" "$conf"
fi
chmod 644 "$conf"
# Slurm 22.05's slurmd always loads a cgroup plugin; cgroup/v1 starts on hosts without cgroupfs too.
{
  echo "CgroupPlugin=cgroup/v1"
  [ "$memory_limits" = 0 ] || printf 'ConstrainRAMSpace=yes\nConstrainSwapSpace=yes\nAllowedSwapSpace=0\n'
} > "$state/etc/cgroup.conf"
chmod 644 "$state/etc/cgroup.conf"

# 5. The cluster, an account and the test user in the accounting database (one `sacctmgr
#    load`), then slurmctld, which reads every association from slurmdbd as it starts, then the
#    slurmd processes. Loading while slurmctld starts saves a second, but under load the push
#    from slurmdbd was lost every time (10 of 10 starts at load average 10).
has_user() { sacctmgr -n -P show assoc cluster=aifc user="$user" format=account 2>/dev/null | grep -qx "$account"; }
if ! has_user; then
  cat > "$state/etc/associations.cfg" <<EOF
Cluster - 'aifc'
Parent - 'root'
Account - '$account':Description='aifc-tests':Organization='aifc'
Parent - '$account'
User - '$user':DefaultAccount='$account'
EOF
  sacctmgr -i load file="$state/etc/associations.cfg" >"$state/log/sacctmgr.log" 2>&1 || true
  has_user || fail "sacctmgr could not add $user to $account (see $state/log/sacctmgr.log)"
fi
if ! alive "$state/run/slurmctld.pid" slurmctld; then
  ! port_busy 127.0.0.1 "$ctld_port" || fail "port $ctld_port is taken by another program"
  slurmctld -f "$conf"
fi
wait_for slurmctld sh -c "scontrol ping | grep -q 'is UP'"
# The database having the association is not enough: slurmctld must have it in its own cache,
# or every job is refused "Invalid account". Should it still be missing (a slurmctld that was
# already running, a lost update), a restarted slurmctld reads all associations from slurmdbd.
ctld_knows_user() {
  scontrol show assoc_mgr users="$user" flags=assoc 2>/dev/null | grep -q "Account=$account UserName=$user("
}
if ! wait_up_to 20 ctld_knows_user; then
  say "slurmctld has not learned $user's association from slurmdbd; restarting it"
  pid=$(tr -dc 0-9 < "$state/run/slurmctld.pid")
  kill "$pid" 2>/dev/null || true
  wait_up_to 30 sh -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  slurmctld -f "$conf"
  wait_for slurmctld sh -c "scontrol ping | grep -q 'is UP'"
  wait_for "slurmctld's association for $user" ctld_knows_user
fi
say "slurmctld up, with $user in $account"
for i in $(seq 1 "$nodes"); do
  alive "$state/run/slurmd-n$i.pid" slurmd && continue
  ! port_busy 127.0.0.1 $((slurmd_port_base + i)) || fail "port $((slurmd_port_base + i)) is taken"
  mkdir -p "$state/spool/d/n$i"
  slurmd -f "$conf" -N "n$i"
done
nodes_idle() { [ "$(sinfo -h -N -o '%t' | grep -cE '^(idle|alloc|mix|comp)$')" -ge "$nodes" ]; }
wait_for "the slurmd nodes" nodes_idle
say "$nodes nodes up: $(sinfo -h -o '%P %a %D %t %N' | tr '\n' ' ')"

# 6. slurmrestd with JWT. It refuses root (-u nobody), needs SLURM_JWT=daemon, and only the
#    slurmctld plugins load without slurmdbd.
token=$(scontrol token username="$user" lifespan=86400 | sed -n 's/^SLURM_JWT=//p')
[ -n "$token" ] || fail "scontrol token gave no token"
rest_url=http://$rest_listen
if ! alive "$state/run/slurmrestd.pid" slurmrestd; then
  ! port_busy "${rest_listen%:*}" "${rest_listen##*:}" || fail "$rest_listen is taken"
  SLURM_JWT=daemon setsid slurmrestd -f "$conf" -u nobody -a rest_auth/jwt \
    -s openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38 "$rest_listen" >>"$state/log/slurmrestd.log" 2>&1 </dev/null &
  echo $! > "$state/run/slurmrestd.pid"
  rest_up() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-SLURM-USER-NAME: $user" -H "X-SLURM-USER-TOKEN: $token" \
      "$rest_url/slurm/$rest_version/ping")" = 200 ]
  }
  wait_for slurmrestd rest_up
  say "slurmrestd up at $rest_url"
fi

# 7. sshd, key-only, for the test user; remote commands find the cluster through SetEnv.
mkdir -p /run/sshd
[ -s "$state/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/host_ed25519"
[ -s "$state/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "$user@aifc-cluster" -f "$state/ssh/id_ed25519"
install -m 644 "$state/ssh/id_ed25519.pub" "$state/ssh/authorized_keys/$user"
echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$state/ssh/host_ed25519.pub")" > "$state/ssh/known_hosts"
{
  echo "Port $ssh_port"
  echo "ListenAddress 127.0.0.1"
  echo "HostKey $state/ssh/host_ed25519"
  echo "PidFile $state/ssh/sshd.pid"
  echo "AuthorizedKeysFile $state/ssh/authorized_keys/%u"
  echo "PubkeyAuthentication yes"
  echo "PasswordAuthentication no"
  echo "KbdInteractiveAuthentication no"
  echo "PermitRootLogin no"
  echo "AllowUsers $user"
  echo "UsePAM no"
  echo "StrictModes no"
  echo "AllowTcpForwarding yes"
  echo "X11Forwarding no"
  echo "PrintMotd no"
  echo "SetEnv SLURM_CONF=$conf"
  echo "Subsystem sftp /usr/lib/openssh/sftp-server"
} > "$state/ssh/sshd_config"
if ! alive "$state/ssh/sshd.pid" sshd; then
  ! port_busy 127.0.0.1 "$ssh_port" || fail "port $ssh_port is taken"
  /usr/sbin/sshd -f "$state/ssh/sshd_config" -E "$state/log/sshd.log"
  wait_for sshd ssh -p "$ssh_port" -i "$state/ssh/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$state/ssh/known_hosts" "$user@127.0.0.1" true
  say "sshd up on 127.0.0.1:$ssh_port"
fi

# 8. The environment for tests. The token is not called SLURM_JWT: that name would switch the
#    Slurm commands themselves to JWT auth.
{
  echo "export AIFC_CLUSTER_STATE=$state"
  echo "export SLURM_CONF=$conf"
  echo "export AIFC_CLUSTER_NODES=$nodes"
  echo "export AIFC_CLUSTER_MEMORY_LIMITS=$memory_limits"
  echo "export AIFC_CLUSTER_PARTITION=$partition"
  echo "export AIFC_CLUSTER_USER=$user"
  echo "export AIFC_CLUSTER_ACCOUNT=$account"
  echo "export AIFC_CLUSTER_WORKDIR=$home"
  echo "export AIFC_SLURMRESTD_URL=$rest_url"
  echo "export AIFC_SLURMRESTD_API_VERSION=$rest_version"
  echo "export AIFC_SLURMRESTD_TOKEN=$token"
  echo "export AIFC_CLUSTER_SSH_PORT=$ssh_port"
  echo "export AIFC_CLUSTER_SSH_KEY=$state/ssh/id_ed25519"
  echo "export AIFC_CLUSTER_SSH_KNOWN_HOSTS=$state/ssh/known_hosts"
} > "$state/env.sh"
chmod 644 "$state/env.sh"
say "cluster ready; source $state/env.sh"
