# Shared by infra/*/start.sh and stop.sh (sourced, not run).

# ports_free TAG HOST PORT...: exits 0 when every PORT can be bound on HOST, else names the busy one.
ports_free() {
  local tag=$1 host=$2; shift 2
  /usr/bin/python3 - "$tag" "$host" "$@" <<'PYEOF'
import socket, sys
tag, host = sys.argv[1], sys.argv[2]
for port in map(int, sys.argv[3:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is fine
    try:
        s.bind((host, port))
    except OSError as e:
        print(f'{tag}: port {port} is in use ({e.strerror})', file=sys.stderr)
        sys.exit(1)
    finally:
        s.close()
PYEOF
}

# stop_recorded TAG PIDS_DIR OURS_FN NAME...: for each NAME (in order) whose PIDS_DIR/NAME.pid
# holds a pid that OURS_FN "pid" "name" accepts, SIGTERM it; wait up to 10 s, then SIGKILL what is
# left. Pid files are removed; a pid OURS_FN refuses (reused by another process) is left alone.
stop_recorded() {
  local tag=$1 pids=$2 ours_fn=$3 name file pid entry; shift 3
  local stopping=() left=()
  for name in "$@"; do
    file=$pids/$name.pid
    [[ -f $file ]] || continue
    pid=$(cat "$file")
    if [[ $pid =~ ^[0-9]+$ ]] && "$ours_fn" "$pid" "$name"; then
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$pid:$name")
    fi
    rm -f "$file"
  done
  for _ in $(seq 100); do
    left=()
    for entry in "${stopping[@]}"; do kill -0 "${entry%%:*}" 2>/dev/null && left+=("$entry"); done
    stopping=("${left[@]}")
    (( ${#stopping[@]} == 0 )) && break
    sleep 0.1
  done
  for entry in "${stopping[@]}"; do
    echo "$tag: ${entry##*:} (pid ${entry%%:*}) ignored SIGTERM: killing" >&2
    kill -KILL "${entry%%:*}" 2>/dev/null || true
  done
}
