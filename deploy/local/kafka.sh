#!/usr/bin/env bash
# Real Apache Kafka broker (KRaft, single node) for development, tests and CI.
#
#   deploy/local/kafka.sh start    resolve jars with Maven (once), format storage (once), start, wait until ready
#   deploy/local/kafka.sh stop     stop the broker this script started (a broker it did not start is left alone)
#   deploy/local/kafka.sh status   exit 0 when a broker answers on the port
#   deploy/local/kafka.sh reset    stop and delete the data directory (topics, offsets)
#
# Idempotent: `start` on a live broker (ours or anyone's on the same port) reuses it.
# KAFKA_EXTRA_PROPERTIES names a file appended to the broker's configuration (a later key wins:
# extra listeners, TLS, SASL); KAFKA_FORMAT_ARGS adds arguments to the storage format (e.g.
# --add-scram 'SCRAM-SHA-512=[name=u,password=p]'), applied when the data directory is new.
# Everything lives under deploy/local/.cache (git-ignored) unless NBA_LOCAL_CACHE says otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${NBA_LOCAL_CACHE:-$here/.cache}"
host="${KAFKA_HOST:-127.0.0.1}"
port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-9093}"
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
libs="$cache/kafka-$kafka_version/libs"
# One broker per port: the jars are shared, data, config, log and pid are per port.
data="${KAFKA_DATA_DIR:-$cache/kafka-$kafka_version/data-$port}"
conf="$cache/kafka-$kafka_version/server-$port.properties"
logfile="$cache/kafka-$kafka_version/broker-$port.log"
pidfile="$cache/kafka-$port.pid"
ready_timeout="${KAFKA_READY_TIMEOUT:-120}"

log() { printf '[kafka] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

our_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid; pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

resolve_jars() {
  if [[ -f "$libs/kafka_2.13-$kafka_version.jar" ]]; then return 0; fi
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    log "java or mvn not found; installing Debian's openjdk-17-jre-headless and maven"
    local sudo=""; [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openjdk-17-jre-headless maven >&2
  fi
  log "resolving org.apache.kafka:kafka_2.13:$kafka_version and its dependencies from Maven Central"
  mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs" >&2
}

write_config() {
  mkdir -p "$data"
  cat > "$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$controller_port
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port
advertised.listeners=PLAINTEXT://$host:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=60000
PROPS
  if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then cat "$KAFKA_EXTRA_PROPERTIES" >> "$conf"; fi
  cat > "$cache/log4j2.properties" <<'L4J'
status = warn
appender.file.type = Console
appender.file.name = STDOUT
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.org.name = org.apache.kafka
logger.org.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
L4J
}

java_cmd() {
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$cache/log4j2.properties" \
    -cp "$libs/*" "$@"
}

format_storage() {
  if [[ -f "$data/meta.properties" ]]; then return 0; fi
  local cluster_id; cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  log "formatting storage in $data (cluster $cluster_id)"
  local extra=(); read -r -a extra <<< "${KAFKA_FORMAT_ARGS:-}"
  java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$conf" --ignore-formatted "${extra[@]}" \
    >>"$cache/format.log" 2>&1
}

wait_ready() {
  local pid="$1" waited=0
  while (( waited < ready_timeout )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker exited during start; last lines of $logfile:"; tail -n 30 "$logfile" >&2; exit 1
    fi
    if port_open "$port" && grep -q "Kafka Server started" "$logfile" 2>/dev/null; then
      log "ready on $host:$port (Kafka $kafka_version, pid $pid, log $logfile)"; return 0
    fi
    sleep 1; waited=$((waited + 1))
  done
  log "not ready after ${ready_timeout}s; see $logfile"; exit 1
}

start() {
  mkdir -p "$cache"
  if port_open "$port"; then
    if pid="$(our_pid)"; then log "already running (pid $pid) on $host:$port"
    else log "a broker is already listening on $host:$port; reusing it"; fi
    return 0
  fi
  resolve_jars
  write_config
  format_storage
  : > "$logfile"
  # setsid: the broker outlives the shell that started it, and a Ctrl-C there.
  setsid nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$cache/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$conf" >>"$logfile" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  wait_ready "$!"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then log "not running (no broker started by this script)"; rm -f "$pidfile"; return 0; fi
  log "stopping pid $pid"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && { log "still alive after 60s, killing"; kill -9 "$pid" || true; }
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if port_open "$port"; then log "up on $host:$port"; else log "down"; exit 1; fi ;;
  reset) stop; rm -rf "$data"; log "data deleted" ;;
  *) echo "usage: $0 {start|stop|status|reset}" >&2; exit 2 ;;
esac
