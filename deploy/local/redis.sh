#!/usr/bin/env bash
# Real Redis server (Debian's redis-server) for development, tests and CI.
#
#   deploy/local/redis.sh start    install redis-server if missing, start it, wait for PONG
#   deploy/local/redis.sh stop     stop the server this script started (another one is left alone)
#   deploy/local/redis.sh status   exit 0 when a server answers PING
#
# Idempotent: `start` on a live server on the same port reuses it. No persistence:
# Redis is a read mirror here; the worker's Faust tables are the source of truth.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${NBA_LOCAL_CACHE:-$here/.cache}"
host="${REDIS_HOST:-127.0.0.1}"
port="${REDIS_PORT:-6379}"
pidfile="$cache/redis.pid"
logfile="$cache/redis.log"

log() { printf '[redis] %s\n' "$*" >&2; }

ping() { redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; }

install() {
  command -v redis-server >/dev/null && return 0
  log "redis-server not found; installing Debian's package"
  local sudo=""; [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2
}

start() {
  mkdir -p "$cache"
  install
  if ping; then log "already answering on $host:$port; reusing it"; return 0; fi
  redis-server --bind "$host" --port "$port" --daemonize yes --pidfile "$pidfile" \
    --logfile "$logfile" --dir "$cache" --save "" --appendonly no >&2
  for _ in $(seq 1 50); do
    if ping; then log "ready on $host:$port (pid $(cat "$pidfile" 2>/dev/null))"; return 0; fi
    sleep 0.2
  done
  log "not ready after 10s; see $logfile"; exit 1
}

stop() {
  local pid
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping pid $pid"
    kill "$pid"
    # redis removes its pid file as it exits: wait on the pid itself
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  else
    log "not running (no server started by this script)"
  fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if ping; then log "up on $host:$port"; else log "down"; exit 1; fi ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
