#!/usr/bin/env bash
# Stops the servers that start.sh recorded in DIR/pids, and only those. A pid whose process no
# longer runs the DIR's servers (reused pid) is left alone.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 1; }
[[ -d $1 ]] || { echo "local-s3: $1 does not exist: nothing to stop" >&2; exit 0; }
DIR=$(cd "$1" && pwd -P)
PIDS=$DIR/pids
shopt -s nullglob
# shellcheck source=../lib/daemons.sh
source "$(dirname "$0")/../lib/daemons.sh"

ours() { # pid name: true when pid is alive and is the server start.sh launched for this DIR
  local cmd
  cmd=$({ tr '\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null) || return 1
  if [[ $2 == memcached ]]; then
    # memcached's command line has no DIR; match the port start.sh gave it (PORT+4).
    [[ -f $DIR/port && $cmd == "memcached -l 127.0.0.1 -p $(( $(cat "$DIR/port") + 4 )) "* ]]
  else
    [[ $cmd == *"$DIR/etc/"* ]]
  fi
}

names=()
for file in "$PIDS"/*.pid; do names+=("$(basename "$file" .pid)"); done
stop_recorded local-s3 "$PIDS" ours "${names[@]}"
echo "local-s3: stopped servers in $DIR" >&2
