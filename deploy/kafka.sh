#!/usr/bin/env bash
# deploy/kafka.sh — a real single-node Apache Kafka broker (KRaft, combined
# broker+controller) for development and CI, without Docker.
#
# The broker is assembled from Maven Central (deploy/kafka/pom.xml) into a
# cached, git-ignored folder and run with the local Java (17+).
#
#   bash deploy/kafka.sh start            assemble (once), format (once), start, wait until ready
#   bash deploy/kafka.sh stop [--wipe]    clean shutdown (SIGTERM, SIGKILL after 60 s); --wipe also deletes all data
#   bash deploy/kafka.sh wipe             same as: stop --wipe
#   bash deploy/kafka.sh restart
#   bash deploy/kafka.sh status           prints running / not running; exit 0 / 1
#   bash deploy/kafka.sh logs [-f] [N]    last N (default 100) lines of the broker log, -f to follow
#   bash deploy/kafka.sh tool CLASS|ALIAS [ARGS...]
#                                         run a Kafka CLI class on the broker's classpath; aliases:
#                                         topics, console-producer, console-consumer, consumer-groups,
#                                         configs, api-versions, storage
#                                         e.g. bash deploy/kafka.sh tool topics --bootstrap-server 127.0.0.1:9092 --list
#   bash deploy/kafka.sh classpath        print the classpath (for java -cp "$(...)" ...)
#
# Environment (all optional):
#   KAFKA_VERSION           org.apache.kafka:kafka_2.13 version (default 4.4.0)
#   KAFKA_PORT              PLAINTEXT listener on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT   CONTROLLER listener on 127.0.0.1 (default KAFKA_PORT+1)
#   KAFKA_HOME_DIR          state folder: lib/, data/, server.properties, kafka.log, kafka.pid
#                           (default deploy/.kafka next to this script)
#   KAFKA_HEAP_OPTS         broker heap (default "-Xmx512m -Xms256m")
#   KAFKA_JVM_OPTS          extra broker JVM flags (appended)
#   KAFKA_START_TIMEOUT     seconds to wait for readiness (default 120)
#   KAFKA_STOP_TIMEOUT      seconds to wait for a clean shutdown before SIGKILL (default 60)
#   JAVA_HOME, MVN          java / maven to use (default: java and mvn on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
LOG4J_BROKER="$SCRIPT_DIR/kafka/log4j2.yaml"
LOG4J_TOOLS="$SCRIPT_DIR/kafka/tools-log4j2.yaml"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$SCRIPT_DIR/.kafka}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"
HOST=127.0.0.1

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
MVN="${MVN:-mvn}"

say() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# State paths (KAFKA_HOME_DIR made absolute so the broker never depends on cwd).
mkdir -p "$KAFKA_HOME_DIR"
HOME_DIR="$(cd "$KAFKA_HOME_DIR" && pwd)"
LIB_DIR="$HOME_DIR/lib"
LIB_STAMP="$LIB_DIR/.assembled"
DATA_DIR="$HOME_DIR/data"
FORMATTED="$HOME_DIR/.formatted"
CLUSTER_ID_FILE="$HOME_DIR/cluster.id"
CONF="$HOME_DIR/server.properties"
PROBE_CONF="$HOME_DIR/probe.properties"
PID_FILE="$HOME_DIR/kafka.pid"
LOG_FILE="$HOME_DIR/kafka.log"
LOCK_FILE="$HOME_DIR/.lock"

# ---------------------------------------------------------------- helpers

# Serialise start/stop/wipe between concurrent invocations.
take_lock() {
    exec 9>"$LOCK_FILE"
    flock -w 300 9 || die "another kafka.sh is busy with $HOME_DIR (lock $LOCK_FILE)"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Pid of our broker if it is alive (and really is kafka.Kafka with our config).
broker_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc 0-9 <"$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: the command line must be our broker.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $CONF" || return 1
    fi
    echo "$pid"
}

classpath() { echo "$LIB_DIR/*"; }

# Run a Kafka CLI class on the assembled classpath (quiet logging, small heap, fast start).
run_tool() {
    local cls="$1"; shift
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="file:$LOG4J_TOOLS" \
        -cp "$(classpath)" "$cls" "$@"
}

check_java() {
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Kafka 4 needs Java 17+; set JAVA_HOME)"
    local v
    v="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    if ! [[ "${v%%.*}" =~ ^[0-9]+$ ]] || (( ${v%%.*} < 17 )); then
        die "Kafka $KAFKA_VERSION needs Java 17+, found '${v:-unknown}' ($JAVA)"
    fi
}

# ---------------------------------------------------------------- assemble

assemble() {
    local want
    want="kafka.version=$KAFKA_VERSION pom=$(sha256sum "$POM" | cut -c1-16)"
    if [[ -f "$LIB_STAMP" && "$(cat "$LIB_STAMP")" == "$want" ]]; then
        return 0
    fi
    command -v "$MVN" >/dev/null 2>&1 || die "maven ($MVN) not found; needed once to assemble Kafka from Maven Central"
    say "assembling Kafka $KAFKA_VERSION from Maven Central into $LIB_DIR ..."
    local t0=$SECONDS tmp="$HOME_DIR/lib.tmp.$$" mvnlog="$HOME_DIR/assemble.log"
    rm -rf "$tmp"
    if ! "$MVN" -B -q -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
        rm -rf "$tmp"
        tail -n 40 "$mvnlog" >&2 || true
        die "maven could not assemble Kafka $KAFKA_VERSION (full output: $mvnlog)"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "assembly has no kafka_2.13 jar (see $mvnlog)"; }
    echo "$want" >"$tmp/.assembled"
    rm -rf "$LIB_DIR"
    mv "$tmp" "$LIB_DIR"
    local jars=("$LIB_DIR"/*.jar)
    say "assembled ${#jars[@]} jars in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- config

write_config() {
    mkdir -p "$DATA_DIR"
    cat >"$CONF.tmp" <<EOF
# Generated by deploy/kafka.sh on every start — edit the script, not this file.
# Single-node KRaft: this process is both broker and controller.
node.id=1
process.roles=broker,controller

listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
# Dynamic quorum, formatted with "StorageTool format --standalone".
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT

log.dirs=$DATA_DIR
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0

# Retention: Kafka defaults (7 days, no size limit, 1 GiB segments).
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000

num.network.threads=3
num.io.threads=8
EOF
    mv "$CONF.tmp" "$CONF"

    # Admin client settings for the readiness probe: fail fast, retry in our loop.
    cat >"$PROBE_CONF" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=8000
retries=0
EOF
}

format_storage() {
    if [[ -f "$FORMATTED" && -f "$DATA_DIR/meta.properties" ]]; then
        # The controller's endpoint is recorded in the KRaft voter set at format
        # time (--standalone), so the controller port cannot change afterwards.
        # (The broker port can: brokers re-register their endpoints on start.)
        local have
        have="$(sed -n 's/.*controller_port=\([0-9]*\).*/\1/p' "$FORMATTED")"
        [[ -z "$have" || "$have" == "$KAFKA_CONTROLLER_PORT" ]] \
            || die "storage in $DATA_DIR was formatted with controller port $have, not $KAFKA_CONTROLLER_PORT; use KAFKA_CONTROLLER_PORT=$have, or run 'bash deploy/kafka.sh wipe' first (deletes all data)"
        return 0
    fi
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        die "$DATA_DIR holds a Kafka log dir that this script did not format; run 'bash deploy/kafka.sh wipe' to start over"
    fi
    if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
        run_tool kafka.tools.StorageTool random-uuid | tr -d '[:space:]' >"$CLUSTER_ID_FILE.tmp"
        [[ -s "$CLUSTER_ID_FILE.tmp" ]] || die "StorageTool random-uuid printed nothing"
        mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
    fi
    local cid
    cid="$(cat "$CLUSTER_ID_FILE")"
    say "formatting storage $DATA_DIR (cluster id $cid) ..."
    if ! run_tool kafka.tools.StorageTool format --standalone -t "$cid" -c "$CONF" >"$HOME_DIR/format.log" 2>&1; then
        cat "$HOME_DIR/format.log" >&2
        die "StorageTool format failed"
    fi
    echo "controller_port=$KAFKA_CONTROLLER_PORT port=$KAFKA_PORT cluster_id=$cid kafka.version=$KAFKA_VERSION" >"$FORMATTED"
}

# ---------------------------------------------------------------- start

# 0 once the broker answers a real Kafka API call (Metadata via AdminClient).
kafka_answers() {
    port_open "$KAFKA_PORT" || return 1
    timeout 30 "$JAVA" -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="file:$LOG4J_TOOLS" \
        -cp "$(classpath)" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$HOST:$KAFKA_PORT" --command-config "$PROBE_CONF" --list \
        >/dev/null 2>&1
}

wait_ready() {
    local pid="$1" t0=$SECONDS
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "broker process $pid exited during startup; last lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            die "Kafka failed to start"
        fi
        if kafka_answers; then
            say "Kafka $KAFKA_VERSION ready on $HOST:$KAFKA_PORT (pid $pid, $((SECONDS - t0)) s)"
            return 0
        fi
        if (( SECONDS - t0 >= KAFKA_START_TIMEOUT )); then
            say "broker not ready after ${KAFKA_START_TIMEOUT} s; last lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2 || true
            die "Kafka did not become ready in time (still running as pid $pid; 'bash deploy/kafka.sh stop' to stop it)"
        fi
        sleep 1
    done
}

cmd_start() {
    take_lock
    check_java
    local pid
    if pid="$(broker_pid)"; then
        assemble   # no-op unless the lib dir is gone; needed for the probe
        if kafka_answers; then
            say "already running (pid $pid) on $HOST:$KAFKA_PORT"
            return 0
        fi
        say "broker pid $pid is alive but not ready yet; waiting ..."
        wait_ready "$pid"
        return 0
    fi
    rm -f "$PID_FILE"
    if port_open "$KAFKA_PORT"; then
        die "port $HOST:$KAFKA_PORT is already in use by another process (not the broker in $HOME_DIR); stop it or set KAFKA_PORT"
    fi
    if port_open "$KAFKA_CONTROLLER_PORT"; then
        die "controller port $HOST:$KAFKA_CONTROLLER_PORT is already in use; stop that process or set KAFKA_CONTROLLER_PORT"
    fi

    assemble
    write_config
    format_storage

    # Keep the previous run's log for post-mortems.
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    say "starting Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (log: $LOG_FILE) ..."
    local -a jvm
    # shellcheck disable=SC2206  # word splitting of the *_OPTS strings is intended
    jvm=($KAFKA_HEAP_OPTS
         -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
         -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
         -Dlog4j2.configurationFile="file:$LOG4J_BROKER" -Dkafka.logs.dir="$HOME_DIR"
         $KAFKA_JVM_OPTS)
    # setsid: own session, so the broker outlives this shell and terminal hang-ups.
    # The subshell is not a process-group leader, so setsid execs in place and $!
    # is the java pid.
    # fd 9 (our lock) is closed so the broker does not hold the lock forever.
    (exec 9>&-; cd "$HOME_DIR" && exec nohup setsid "$JAVA" "${jvm[@]}" -cp "$(classpath)" \
        kafka.Kafka "$CONF" >"$LOG_FILE" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    disown "$pid" 2>/dev/null || true
    wait_ready "$pid"
}

# ---------------------------------------------------------------- stop / wipe

cmd_stop() {
    local wipe=0
    for a in "$@"; do
        case "$a" in
            --wipe) wipe=1 ;;
            *) die "stop: unknown option '$a' (only --wipe)" ;;
        esac
    done
    take_lock
    local pid
    if pid="$(broker_pid)"; then
        say "stopping Kafka (pid $pid) ..."
        kill -TERM "$pid" 2>/dev/null || true
        local t0=$SECONDS
        while kill -0 "$pid" 2>/dev/null; do
            if (( SECONDS - t0 >= KAFKA_STOP_TIMEOUT )); then
                say "WARNING: no clean shutdown after ${KAFKA_STOP_TIMEOUT} s; sending SIGKILL (next start will run log recovery)"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 1
                break
            fi
            sleep 0.5
        done
        say "stopped ($((SECONDS - t0)) s)"
    else
        say "not running"
    fi
    rm -f "$PID_FILE"
    if (( wipe )); then
        say "wiping data: $DATA_DIR"
        rm -rf "$DATA_DIR" "$FORMATTED" "$CLUSTER_ID_FILE"
    fi
}

# ---------------------------------------------------------------- status / logs

cmd_status() {
    local pid
    if pid="$(broker_pid)"; then
        if port_open "$KAFKA_PORT"; then
            echo "running (pid $pid, $HOST:$KAFKA_PORT, home $HOME_DIR)"
        else
            echo "running (pid $pid, $HOST:$KAFKA_PORT not accepting connections yet)"
        fi
        return 0
    fi
    echo "not running"
    return 1
}

cmd_logs() {
    local follow=0 n=100
    for a in "$@"; do
        case "$a" in
            -f|--follow) follow=1 ;;
            ''|*[!0-9]*) die "logs: usage: logs [-f] [N]" ;;
            *) n="$a" ;;
        esac
    done
    [[ -f "$LOG_FILE" ]] || die "no log yet ($LOG_FILE)"
    if (( follow )); then exec tail -n "$n" -F "$LOG_FILE"; fi
    tail -n "$n" "$LOG_FILE"
}

cmd_tool() {
    (( $# >= 1 )) || die "tool: usage: tool CLASS|ALIAS [ARGS...]"
    local cls="$1"; shift
    case "$cls" in
        topics)           cls=org.apache.kafka.tools.TopicCommand ;;
        console-producer) cls=org.apache.kafka.tools.ConsoleProducer ;;
        console-consumer) cls=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
        consumer-groups)  cls=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
        configs)          cls=org.apache.kafka.tools.ConfigCommand ;;
        api-versions)     cls=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
        storage)          cls=kafka.tools.StorageTool ;;
    esac
    check_java
    (take_lock; assemble)
    run_tool "$cls" "$@"
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    start)     cmd_start "$@" ;;
    stop)      cmd_stop "$@" ;;
    wipe)      cmd_stop --wipe ;;
    restart)   cmd_stop; cmd_start ;;
    status)    cmd_status ;;
    logs)      cmd_logs "$@" ;;
    tool)      cmd_tool "$@" ;;
    classpath) classpath ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
esac
