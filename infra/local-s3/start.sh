#!/usr/bin/env bash
# Starts an all-in-one OpenStack Swift (2.30, Debian packages) with the s3api middleware on
# 127.0.0.1, keeping everything (configs, rings, data, logs, pids) in DIR.
#
#   infra/local-s3/start.sh DIR PORT      # S3 endpoint http://127.0.0.1:PORT
#   eval "$(infra/local-s3/start.sh DIR PORT)"   # also exports the endpoint and keys
#
# Ports used: PORT (proxy, the S3 endpoint), PORT+1..PORT+3 (account, container, object servers),
# PORT+4 (memcached, when installed). Stdout carries only `export ...` lines; progress goes to
# stderr. Stop with infra/local-s3/stop.sh DIR, which stops exactly the pids recorded here.
# This script never installs packages: see README.md for the list CI installs.
set -euo pipefail

# shellcheck source=../lib/daemons.sh
source "$(dirname "$0")/../lib/daemons.sh"
die() { echo "local-s3: $*" >&2; exit 1; }
say() { echo "local-s3: $*" >&2; }

[[ $# -eq 2 ]] || die "usage: $0 DIR PORT"
PORT=$2
[[ $PORT =~ ^[0-9]+$ ]] && (( PORT >= 1024 && PORT <= 65530 )) || die "PORT must be a number in 1024..65530 (got '$PORT')"
mkdir -p "$1" || die "cannot create $1"
DIR=$(cd "$1" && pwd -P)   # swift needs absolute config paths
PY=/usr/bin/python3        # a pyenv python may come first on PATH; swift's modules live in Debian's

BIN=${SELFTRAIN_SWIFT_BIN_DIR:-/usr/bin}   # where the Swift servers are (Debian: /usr/bin)
for bin in swift-proxy-server swift-account-server swift-container-server swift-object-server swift-ring-builder; do
  [[ -x $BIN/$bin ]] || die "$BIN/$bin not found: install the Debian packages listed in infra/local-s3/README.md"
done

ACCOUNT_PORT=$((PORT + 1)); CONTAINER_PORT=$((PORT + 2)); OBJECT_PORT=$((PORT + 3)); MEMCACHE_PORT=$((PORT + 4))
ENDPOINT="http://127.0.0.1:$PORT"
ETC=$DIR/etc; SRV=$DIR/srv; LOGS=$DIR/logs; PIDS=$DIR/pids
mkdir -p "$ETC" "$SRV/d1" "$LOGS" "$PIDS"

print_env() {
  cat <<ENV | tee "$DIR/env"
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=test:tester
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export SELFTRAIN_TEST_S3_ENDPOINT=$ENDPOINT
ENV
}

alive() { [[ -f $PIDS/$1.pid ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

# A second start on a running DIR reports and exits (rings carry the ports, so they must match).
if alive proxy; then
  [[ -f $DIR/port && $(cat "$DIR/port") == "$PORT" ]] || die "$DIR is already running on port $(cat "$DIR/port" 2>/dev/null || echo '?'); stop it first"
  say "already running in $DIR at $ENDPOINT"
  print_env
  exit 0
fi
for name in account container object memcached; do
  alive "$name" && die "$DIR has a stray $name server (pid $(cat "$PIDS/$name.pid")) but no proxy: run stop.sh $DIR first"
done

# A busy port would make a server retry binding for 30 s while the readiness check talks to
# whatever else holds the port: refuse up front.
ports_free local-s3 127.0.0.1 "$PORT" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" "$MEMCACHE_PORT" || die "ports $PORT..$MEMCACHE_PORT must all be free on 127.0.0.1 (pick another PORT)"

# The servers read /etc/swift/swift.conf whatever swift_dir says. Keep an existing one (its hash
# suffix decides where existing data lives); write one only when it is missing or has no hash.
if ! grep -Eqs '^\s*swift_hash_path_(suffix|prefix)\s*=\s*\S' /etc/swift/swift.conf; then
  mkdir -p /etc/swift 2>/dev/null && cat > /etc/swift/swift.conf 2>/dev/null <<CONF || die "cannot write /etc/swift/swift.conf (run once as root, or create it with a [swift-hash] section)"
[swift-hash]
swift_hash_path_suffix = selftrain-local-s3
swift_hash_path_prefix = selftrain-local-s3

[storage-policy:0]
name = Policy-0
default = yes
CONF
  say "wrote /etc/swift/swift.conf"
fi
cp /etc/swift/swift.conf "$ETC/swift.conf"

USER_NAME=$(id -un)
common() { # $1 = port
  cat <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
workers = 0
user = $USER_NAME
swift_dir = $ETC
devices = $SRV
mount_check = false
log_level = INFO
CONF
}

{ common "$ACCOUNT_PORT"; cat <<CONF
[pipeline:main]
pipeline = account-server
[app:account-server]
use = egg:swift#account
CONF
} > "$ETC/account-server.conf"

{ common "$CONTAINER_PORT"; cat <<CONF
[pipeline:main]
pipeline = container-server
[app:container-server]
use = egg:swift#container
CONF
} > "$ETC/container-server.conf"

{ common "$OBJECT_PORT"; cat <<CONF
[pipeline:main]
pipeline = object-server
[app:object-server]
use = egg:swift#object
CONF
} > "$ETC/object-server.conf"

# s3api sits just before tempauth (it turns S3 signatures into a Swift identity), slo after s3api
# (s3api implements multipart uploads with SLO), the cache filter stays (tempauth needs it).
{ common "$PORT"; cat <<CONF
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHE_PORT
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:dlo]
use = egg:swift#dlo
CONF
} > "$ETC/proxy-server.conf"

# Rings: 1 replica on 1 device. The servers' ports are baked in, so rebuild when PORT changes.
if [[ ! -f $ETC/object.ring.gz || ! -f $DIR/port || $(cat "$DIR/port") != "$PORT" ]]; then
  say "building rings"
  # One python process for all three rings (swift-ring-builder would need nine, ~1 s each).
  $PY - "$ETC" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" <<'PYEOF' || die "ring building failed"
import os, sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for name, port in zip(('account', 'container', 'object'), sys.argv[2:5]):
    builder = RingBuilder(8, 1, 1)  # 2^8 partitions, 1 replica, min_part_hours 1
    builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port),
                     'device': 'd1', 'weight': 1, 'meta': ''})
    builder.rebalance()
    builder.get_ring().save(os.path.join(etc, name + '.ring.gz'))
    builder.save(os.path.join(etc, name + '.builder'))
PYEOF
  echo "$PORT" > "$DIR/port"
fi

STARTED=()
cleanup_on_failure() {
  for name in "${STARTED[@]}"; do
    kill "$(cat "$PIDS/$name.pid")" 2>/dev/null || true
    rm -f "$PIDS/$name.pid"
  done
}
trap 'cleanup_on_failure' ERR

launch() { # name, command...: runs in the background, logs to DIR/logs/name.log, records the pid
  local name=$1; shift
  nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! > "$PIDS/$name.pid"
  STARTED+=("$name")
}

if command -v memcached >/dev/null; then
  # memcached refuses to run as root without -u.
  launch memcached memcached -l 127.0.0.1 -p "$MEMCACHE_PORT" -U 0 -m 64 -u "$USER_NAME"
else
  say "memcached not installed: running without it (about 2x slower)"
fi
# -v sends logs to the console (there is no syslog here), which we redirect to DIR/logs.
launch account   $PY $BIN/swift-account-server   "$ETC/account-server.conf" -v
launch container $PY $BIN/swift-container-server "$ETC/container-server.conf" -v
launch object    $PY $BIN/swift-object-server    "$ETC/object-server.conf" -v
launch proxy     $PY $BIN/swift-proxy-server     "$ETC/proxy-server.conf" -v

# Ready when the proxy's healthcheck answers and the storage servers accept connections.
if ! $PY - "$PORT" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" "$PIDS" <<'PYEOF'
import os, socket, sys, time, urllib.request
proxy, *others = [int(p) for p in sys.argv[1:5]]
pids = sys.argv[5]
deadline = time.time() + 30
def up(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return True
    except OSError:
        return False
while time.time() < deadline:
    for name in ('account', 'container', 'object', 'proxy'):
        pid = int(open(os.path.join(pids, name + '.pid')).read())
        try:
            os.kill(pid, 0)
        except OSError:
            print(f'local-s3: {name} server exited during start', file=sys.stderr)
            sys.exit(1)
    try:
        if all(up(p) for p in others):
            with urllib.request.urlopen(f'http://127.0.0.1:{proxy}/healthcheck', timeout=2) as r:
                if r.read().strip() == b'OK':
                    sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
print('local-s3: servers did not become ready within 30 s', file=sys.stderr)
sys.exit(1)
PYEOF
then
  for f in "$LOGS"/*.log; do echo "--- $f (last lines)" >&2; tail -n 15 "$f" >&2; done
  cleanup_on_failure
  die "start failed; logs in $LOGS"
fi
trap - ERR
say "running in $DIR at $ENDPOINT (logs in $LOGS)"
print_env
