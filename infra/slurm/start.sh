#!/usr/bin/env bash
# Starts a one-node Slurm cluster (slurmctld + slurmd from Debian's slurm-wlm) on this host,
# keeping its config, state, spool, logs and pid files in DIR. munged (Debian's munge) is started
# too when none is running; DIR then records its pid and stop.sh stops it.
#
#   infra/slurm/start.sh DIR [PORT]            # slurmctld on PORT (default 16817), slurmd on PORT+1
#   eval "$(infra/slurm/start.sh DIR)"         # also exports SLURM_CONF for sbatch/squeue/scancel
#
# Stdout carries only `export ...` lines (also written to DIR/env); progress goes to stderr. Stop
# with infra/slurm/stop.sh DIR, which stops exactly the pids recorded in DIR/pids.
# This script never installs packages: see README.md for the list CI installs.
set -euo pipefail

# shellcheck source=../lib/daemons.sh
source "$(dirname "$0")/../lib/daemons.sh"
die() { echo "slurm: $*" >&2; exit 1; }
say() { echo "slurm: $*" >&2; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 DIR [PORT]"
PORT=${2:-16817}
[[ $PORT =~ ^[0-9]+$ ]] && (( PORT >= 1024 && PORT <= 65530 )) || die "PORT must be a number in 1024..65530 (got '$PORT')"
for bin in slurmctld slurmd munged; do
  [[ -x /usr/sbin/$bin ]] || die "/usr/sbin/$bin not found: install the Debian packages listed in infra/slurm/README.md"
done
for bin in sbatch squeue sinfo scontrol munge unmunge; do
  command -v "$bin" >/dev/null || die "$bin not found: install the Debian packages listed in infra/slurm/README.md"
done
[[ $(id -u) == 0 ]] || die "run as root (slurmd launches jobs as their submitting user, and SlurmUser=root here)"
mkdir -p "$1" || die "cannot create $1"
DIR=$(cd "$1" && pwd -P)
CONF=$DIR/slurm.conf
PIDS=$DIR/pids
LOGS=$DIR/logs
NODE=$(hostname)
mkdir -p "$PIDS" "$LOGS" "$DIR/state" "$DIR/spool"

print_env() {
  cat <<ENV | tee "$DIR/env"
export SLURM_CONF=$CONF
export SELFTRAIN_TEST_SLURM_CONF=$CONF
ENV
}

alive() { [[ -f $PIDS/$1.pid ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

if alive slurmctld && alive slurmd; then
  [[ -f $DIR/port && $(cat "$DIR/port") == "$PORT" ]] || die "$DIR is already running on port $(cat "$DIR/port" 2>/dev/null || echo '?'); stop it first"
  say "already running in $DIR (slurmctld port $PORT)"
  print_env
  exit 0
fi
for name in slurmctld slurmd; do
  alive "$name" && die "$DIR has a stray $name (pid $(cat "$PIDS/$name.pid")): run stop.sh $DIR first"
done

ports_free slurm 0.0.0.0 "$PORT" "$((PORT + 1))" || die "ports $PORT and $((PORT + 1)) must be free (pick another PORT)"

# munge: Debian ships /etc/munge/munge.key; the daemon needs its socket directory. One munged per
# host serves every Slurm on it, so a running one is used as it is (and left running by stop.sh).
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running: using it"
else
  [[ -r /etc/munge/munge.key ]] || die "/etc/munge/munge.key is missing (Debian's munge package creates it; or run mungekey)"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  su -s /bin/sh munge -c /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
  for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$PIDS/munged.pid"
  munge -n | unmunge >/dev/null || die "munged started but munge -n | unmunge fails"
  say "started munged (pid $(cat "$PIDS/munged.pid"))"
fi

CPUS=$(nproc)
cat > "$CONF" <<CONF
# Written by infra/slurm/start.sh: a one-node cluster for tests and local runs.
ClusterName=selftrain
SlurmctldHost=$NODE
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# Finished jobs stay visible to scontrol for 5 minutes (their exit codes, without accounting).
MinJobAge=300
SlurmdTimeout=60
NodeName=$NODE CPUs=$CPUS State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
echo "$PORT" > "$DIR/port"

export SLURM_CONF=$CONF
/usr/sbin/slurmctld -f "$CONF" || die "slurmctld did not start; see $LOGS/slurmctld.log"
/usr/sbin/slurmd -f "$CONF" || die "slurmd did not start; see $LOGS/slurmd.log"

# Ready when the node is idle (the controller has heard from slurmd); ~3 s on a quiet machine.
for _ in $(seq 300); do
  state=$(sinfo -h -n "$NODE" -o '%t' 2>/dev/null | head -1 || true)
  [[ $state == idle || $state == mix || $state == alloc ]] && break
  sleep 0.1
done
if [[ ! ${state:-} =~ ^(idle|mix|alloc)$ ]]; then
  for f in "$LOGS"/*.log; do echo "--- $f (last lines)" >&2; tail -n 15 "$f" >&2; done
  die "node $NODE not idle after 30 s (state '${state:-?}'); stop with $(dirname "$0")/stop.sh $DIR"
fi
say "running in $DIR: node $NODE ($CPUS CPUs), slurmctld port $PORT, slurmd port $((PORT + 1))"
print_env
