#!/usr/bin/env bash
# `make server` / `make server-stop`: a local Prefect server, a worker per work pool, the deployments.
#
#   deployments/server.sh start   # server on 127.0.0.1:$PREFECT_PORT (4200), pools, deploy, workers
#   deployments/server.sh stop    # workers by PID with SIGINT (they ignore SIGTERM), then the server
#   deployments/server.sh status
#
# Everything lives under .volrisk/: the server's PREFECT_HOME (SQLite database, results) in
# .volrisk/prefect-server, PID files and logs in .volrisk/server. Analytics are off. The server binds
# 127.0.0.1 only; see README "Putting auth in front of the server" before exposing it.
set -euo pipefail
# Job control: each background process gets its own process group (pgid = pid) and, unlike a
# plain `cmd &` in a script, does not start with SIGINT ignored, so workers stop on SIGINT.
set -m
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/.venv/bin}
PORT=${PREFECT_PORT:-4200}
RUN_DIR=$ROOT/.volrisk/server
export PREFECT_HOME=${VOLRISK_SERVER_HOME:-$ROOT/.volrisk/prefect-server}
export PREFECT_API_URL=http://127.0.0.1:$PORT/api
export PREFECT_SERVER_API_HOST=127.0.0.1
export PREFECT_SERVER_API_PORT=$PORT
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_UI_API_URL=$PREFECT_API_URL
mkdir -p "$RUN_DIR" "$PREFECT_HOME"

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_healthy() {
  "$BIN/python" - "$PREFECT_API_URL" <<'PY'
import sys, time, urllib.request
url = sys.argv[1] + "/health"
deadline = time.time() + 120
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(1)
sys.exit(f"Prefect server at {url} not healthy after 120s")
PY
}

start_worker() {  # pool, then extra env assignments
  local pool=$1; shift
  if alive "$RUN_DIR/worker-$pool.pid"; then echo "worker for pool '$pool' already running"; return; fi
  env "$@" nohup "$BIN/prefect" worker start --pool "$pool" --type process \
    >"$RUN_DIR/worker-$pool.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/worker-$pool.pid"
  echo "worker for pool '$pool': pid $(cat "$RUN_DIR/worker-$pool.pid"), log $RUN_DIR/worker-$pool.log"
}

start() {
  if alive "$RUN_DIR/server.pid"; then
    echo "Prefect server already running (pid $(cat "$RUN_DIR/server.pid"))"
  else
    # Own process group (set -m), so `stop` can end it and its uvicorn child by the group's PID.
    nohup "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" \
      >"$RUN_DIR/server.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/server.pid"
    echo "Prefect server: pid $(cat "$RUN_DIR/server.pid"), log $RUN_DIR/server.log"
  fi
  wait_healthy
  for pool in process gpu; do
    "$BIN/prefect" work-pool inspect "$pool" >/dev/null 2>&1 \
      || "$BIN/prefect" work-pool create "$pool" --type process >/dev/null
  done
  "$BIN/prefect" --no-prompt deploy --all --prefect-file deployments/prefect.yaml >"$RUN_DIR/deploy.log" 2>&1 \
    || { cat "$RUN_DIR/deploy.log"; exit 1; }
  "$BIN/prefect" deployment ls
  start_worker process
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    start_worker gpu
  else
    # No GPU here: still serve the gpu pool so weekly-evaluate runs, falling back to the CPU.
    start_worker gpu VOLRISK_ALLOW_CPU_FALLBACK=1
  fi
  echo "UI: http://127.0.0.1:$PORT   (export PREFECT_API_URL=$PREFECT_API_URL to use the CLI)"
}

stop_pid() {  # pid file, signal, seconds
  local file=$1 sig=$2 secs=$3 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq "$((secs * 5))"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid still running after SIG$sig; sending SIGKILL to its process group"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

stop() {
  for f in "$RUN_DIR"/worker-*.pid; do
    [[ -e $f ]] || continue
    echo "stopping $(basename "$f" .pid) (SIGINT)"
    stop_pid "$f" INT 30
  done
  if [[ -f $RUN_DIR/server.pid ]]; then
    echo "stopping Prefect server (SIGTERM to process group $(cat "$RUN_DIR/server.pid"))"
    local pid; pid=$(cat "$RUN_DIR/server.pid")
    kill -TERM -- "-$pid" 2>/dev/null || true
    stop_pid "$RUN_DIR/server.pid" TERM 20
  fi
}

status() {
  for f in "$RUN_DIR"/*.pid; do
    [[ -e $f ]] || { echo "nothing running"; return; }
    if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
    else echo "$(basename "$f" .pid): not running (stale pid file)"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
