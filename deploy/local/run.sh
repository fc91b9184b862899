#!/usr/bin/env bash
# The main job (`make run`): topics, the worker in the background, the demo producer, and where to look.
#   deploy/local/run.sh        start (idempotent: a running worker is reused)
#   deploy/local/run.sh stop   stop the worker
# Kafka and Redis must be up (`make services`); settings come from NBA_* variables.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/.venv/bin"
run_dir="${RUN_DIR:-$root/var/run}"
pidfile="$run_dir/worker.pid"
logfile="$run_dir/worker.log"
port="${NBA_WORKER__WEB_PORT:-6066}"
host="${NBA_WORKER__WEB_HOST:-127.0.0.1}"
mkdir -p "$run_dir"

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [[ "${1:-start}" == "stop" ]]; then
  # waits for the worker to exit, so that `make stop services-stop` never takes the broker away
  # from a worker still leaving its group (it then retries the dead broker and does not exit)
  if running; then
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 1 "${STOP_TIMEOUT_S:-90}"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "worker $pid still running after ${STOP_TIMEOUT_S:-90}s; killing it (its tables recover from their changelogs)"
      kill -9 "$pid"
    else
      echo "worker stopped"
    fi
  else
    echo "no worker running"
  fi
  rm -f "$pidfile"; exit 0
fi

cd "$root"
"$bin/nba" topics
if ! running && curl -fsS "http://$host:$port/healthz" >/dev/null 2>&1; then
  echo "port $port is served by a process this script did not start; stop it or set NBA_WORKER__WEB_PORT"; exit 1
fi
if running; then
  echo "worker already running (pid $(cat "$pidfile"))"
else
  NBA_WORKER__DATADIR="${NBA_WORKER__DATADIR:-$root/var/worker}" \
    setsid nohup "$bin/nba" worker --no-create-topics >"$logfile" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  echo "worker started (pid $!, log $logfile); waiting for http://$host:$port/readyz"
fi
for _ in $(seq 1 120); do
  if curl -fsS "http://$host:$port/readyz" >/dev/null 2>&1; then break; fi
  running || { echo "worker exited; last lines of $logfile:"; tail -n 40 "$logfile"; exit 1; }
  sleep 1
done
curl -fsS "http://$host:$port/readyz" >/dev/null && running || { echo "worker not ready after 120s; see $logfile"; exit 1; }
"$bin/nba" demo
echo
echo "worker log: $logfile    stop it: make stop    stop Kafka and Redis: make services-stop"
