#!/usr/bin/env bash
# Stops the daemons of infra/slurm/start.sh DIR: the pids in DIR/pids and only those (slurmctld
# and slurmd write their own pid files there; munged's is recorded only when start.sh started it).
# A pid whose process is no longer that daemon (reused pid) is left alone.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 1; }
[[ -d $1 ]] || { echo "slurm: $1 does not exist: nothing to stop" >&2; exit 0; }
DIR=$(cd "$1" && pwd -P)
PIDS=$DIR/pids
# shellcheck source=../lib/daemons.sh
source "$(dirname "$0")/../lib/daemons.sh"

ours() { # pid name: alive and running the daemon start.sh launched for this DIR
  local cmd
  cmd=$({ tr '\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null) || return 1
  if [[ $2 == munged ]]; then
    [[ $cmd == "/usr/sbin/munged "* ]]
  else
    # Debian's /usr/sbin/slurmctld is a link to slurmctld-wlm: match the config path instead.
    [[ $cmd == *"$2 -f $DIR/slurm.conf "* ]]
  fi
}

# Jobs of this cluster go first (through Slurm itself): slurmd would otherwise leave their
# slurmstepd processes behind.
if [[ -f $DIR/slurm.conf && -f $PIDS/slurmctld.pid ]] && ours "$(cat "$PIDS/slurmctld.pid")" slurmctld; then
  jobs=$(SLURM_CONF=$DIR/slurm.conf squeue -h -o %F 2>/dev/null | sort -u || true)
  if [[ -n $jobs ]]; then
    # shellcheck disable=SC2086
    SLURM_CONF=$DIR/slurm.conf scancel $jobs 2>/dev/null || true
    for _ in $(seq 100); do
      [[ -z $(SLURM_CONF=$DIR/slurm.conf squeue -h -o %F 2>/dev/null) ]] && break
      sleep 0.1
    done
  fi
fi

# slurmd first: the controller then sees its node go away instead of timing it out.
stop_recorded slurm "$PIDS" ours slurmd slurmctld munged
echo "slurm: stopped daemons in $DIR" >&2
