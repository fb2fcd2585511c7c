#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft combined mode) for tests and development, without Docker.
#
# The jars come from Maven Central (see kafka-pom.xml) and are cached under $VIGIE_LOCAL_DIR/kafka/libs;
# the broker runs as `java -cp 'libs/*' kafka.Kafka server.properties` on 127.0.0.1.
#
# Usage: deploy/local/kafka.sh fetch|start|stop|restart|status|wipe
#        deploy/local/kafka.sh console-consumer TOPIC [N] [extra ConsoleConsumer options…]
#
# Environment (all optional):
#   VIGIE_LOCAL_DIR          state directory (default: <repo>/.local, git-ignored)
#   KAFKA_PORT               client listener port (default 9092)
#   KAFKA_CONTROLLER_PORT    KRaft controller listener port (default 9093)
#   KAFKA_VERSION            Kafka version to fetch (default 4.0.2; docs/distributed.md says which versions the
#                            clients are tested against: change it only with a test run against the new one)
#   KAFKA_HEAP_OPTS          broker heap (default "-Xms256m -Xmx512m")
#   KAFKA_START_TIMEOUT      seconds to wait for the broker to answer (default 90)
#   KAFKA_BOOTSTRAP_SERVERS  broker used by console-consumer (default 127.0.0.1:$KAFKA_PORT)
#   KAFKA_CONSOLE_TIMEOUT_MS console-consumer idle timeout (default 30000)
#   VIGIE_PYTHON             Python with aiokafka used for the readiness probe (default <repo>/.venv/bin/python;
#                            without it the probe falls back to Kafka's BrokerApiVersionsCommand)
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd -- "$SCRIPT_DIR/../.." && pwd)"
LOCAL_DIR="${VIGIE_LOCAL_DIR:-$REPO_DIR/.local}"

KAFKA_VERSION="${KAFKA_VERSION:-4.0.2}"
SCALA_BINARY_VERSION="2.13"
LOG4J2_VERSION="${LOG4J2_VERSION:-2.24.3}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"
VIGIE_PYTHON="${VIGIE_PYTHON:-$REPO_DIR/.venv/bin/python}"
JAVA="${JAVA:-java}"

KAFKA_DIR="$LOCAL_DIR/kafka"
LIBS_DIR="$KAFKA_DIR/libs"           # jars + VERSION marker
CONF_DIR="$KAFKA_DIR/config"         # server.properties, log4j2 configs (rewritten on every start)
DATA_DIR="$KAFKA_DIR/data"           # log.dirs and KRaft metadata log: survives restart, removed by wipe
LOGS_DIR="$KAFKA_DIR/logs"           # server.log (log4j2) and kafka.out (JVM stdout/stderr)
PID_FILE="$KAFKA_DIR/kafka.pid"
POM="$SCRIPT_DIR/kafka-pom.xml"

# Main classes, checked against the 4.0.2 jars: kafka.Kafka and kafka.tools.StorageTool live in
# kafka_2.13-*.jar; the command-line tools moved to org.apache.kafka.tools.* in kafka-tools-*.jar.
MAIN_BROKER="kafka.Kafka"
MAIN_STORAGE="kafka.tools.StorageTool"
MAIN_CONSOLE_CONSUMER="org.apache.kafka.tools.consumer.ConsoleConsumer"
MAIN_API_VERSIONS="org.apache.kafka.tools.BrokerApiVersionsCommand"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- fetch ------------------------------------------------------------------------------------------------

# First line of libs/VERSION: what was fetched. A different line means the cache is stale.
version_key() { echo "kafka_${SCALA_BINARY_VERSION}-${KAFKA_VERSION} log4j2-${LOG4J2_VERSION}"; }

is_fetched() { [[ -f "$LIBS_DIR/VERSION" ]] && [[ "$(head -n 1 "$LIBS_DIR/VERSION")" == "$(version_key)" ]]; }

# Copy the POM's runtime dependency closure into $1, with $2 as the log4j SLF4J binder artifact.
# Quiet (-q: errors only) on stderr; the sed drops the stray colour resets Debian's Maven 3.8 prints even in
# batch mode (pipefail keeps mvn's exit status).
mvn_copy() {
    mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$1" \
        -Dkafka.version="$KAFKA_VERSION" -Dlog4j2.version="$LOG4J2_VERSION" -Dslf4j.binding="$2" 2>&1 \
        | sed $'s/\e\\[0m//g' >&2
}

cmd_fetch() {
    if is_fetched; then
        log "jars already in $LIBS_DIR ($(version_key))"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
    mkdir -p "$KAFKA_DIR"
    local tmp binding slf4j_jar slf4j_version started=$SECONDS
    tmp="$(mktemp -d "$KAFKA_DIR/libs.tmp.XXXXXX")"
    # shellcheck disable=SC2064  # expand $tmp now: the trap must remove this very directory
    trap "rm -rf '$tmp'" EXIT
    log "fetching org.apache.kafka:kafka_${SCALA_BINARY_VERSION}:${KAFKA_VERSION} and kafka-tools from Maven Central…"
    binding="log4j-slf4j-impl"
    mvn_copy "$tmp" "$binding"
    # The binder must match the slf4j-api Kafka brings: 1.7.x -> log4j-slf4j-impl, 2.x -> log4j-slf4j2-impl.
    slf4j_jar="$(cd "$tmp" && ls slf4j-api-*.jar)"
    slf4j_version="${slf4j_jar#slf4j-api-}"
    slf4j_version="${slf4j_version%.jar}"
    if [[ "$slf4j_version" == 2.* ]]; then
        binding="log4j-slf4j2-impl"
        log "slf4j-api $slf4j_version is 2.x: re-fetching with $binding"
        rm -f "$tmp"/*.jar
        mvn_copy "$tmp" "$binding"
    fi
    for jar in "kafka_${SCALA_BINARY_VERSION}-${KAFKA_VERSION}.jar" "kafka-tools-${KAFKA_VERSION}.jar" \
               "$binding-${LOG4J2_VERSION}.jar" "log4j-core-${LOG4J2_VERSION}.jar"; do
        [[ -f "$tmp/$jar" ]] || die "expected $jar after the Maven fetch, it is missing"
    done
    {
        version_key
        echo "slf4j-api=$slf4j_version binding=$binding"
    } >"$tmp/VERSION"
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    trap - EXIT
    log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1)) in $((SECONDS - started)) s;" \
        "slf4j-api $slf4j_version bound by $binding-$LOG4J2_VERSION"
}

# --- configuration ----------------------------------------------------------------------------------------

write_log_configs() {
    mkdir -p "$CONF_DIR" "$LOGS_DIR"
    # Broker: everything to logs/server.log (rolled by size); the request logger stays quiet as in Kafka's config.
    cat >"$CONF_DIR/log4j2.properties" <<'EOF'
status = warn
name = vigie-local-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
    # Tools (console consumer, probes): warnings only, on stderr, so stdout carries nothing but data.
    cat >"$CONF_DIR/tools-log4j2.properties" <<'EOF'
status = warn
name = vigie-local-kafka-tools
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
}

write_server_properties() {
    cat >"$CONF_DIR/server.properties" <<EOF
# Written by deploy/local/kafka.sh on every start; edit the script, not this file.
# KRaft combined mode: this one process is both the broker and the (only) controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${DATA_DIR}

# Topics: created on first use with one partition unless a test asks for more.
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=1
min.insync.replicas=1

# Single node: every internal topic must have replication factor 1, or it can never be created.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests start consumer groups constantly: do not wait 3 s before the first rebalance.
group.initial.rebalance.delay.ms=0

# On restart the controller keeps the previous incarnation's session alive until broker.session.timeout.ms
# expires and rejects the new registration meanwhile (DuplicateBrokerRegistrationException): with the 9 s
# default a restart takes ~13 s. A shorter session makes restart tests quicker; fine on one idle machine.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
EOF
}

# --- process helpers --------------------------------------------------------------------------------------

# PID of *our* broker: from the PID file, alive, and really running our server.properties.
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(<"$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$MAIN_BROKER $CONF_DIR/server.properties" || return 1
    echo "$pid"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

java_tool() {
    local main="$1"
    shift
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
        -cp "$LIBS_DIR/*" "$main" "$@"
}

# Does a real Kafka broker answer on $1 (host:port)? A metadata request through aiokafka when the venv has it
# (fast), else Kafka's own BrokerApiVersionsCommand (one JVM start, ~2 s).
probe() {
    local bootstrap="$1"
    if [[ -x "$VIGIE_PYTHON" ]] && "$VIGIE_PYTHON" -c 'import aiokafka' 2>/dev/null; then
        timeout 20 "$VIGIE_PYTHON" - "$bootstrap" 2>/dev/null <<'EOF'
import asyncio
import sys

from aiokafka import AIOKafkaClient


async def main(bootstrap: str) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()  # ApiVersions + Metadata round trips
        metadata = await client.fetch_all_metadata()
        if not metadata.brokers():
            sys.exit(1)
    finally:
        await client.close()


asyncio.run(asyncio.wait_for(main(sys.argv[1]), 15))
EOF
    elif is_fetched; then
        timeout 30 java_tool "$MAIN_API_VERSIONS" --bootstrap-server "$bootstrap" 2>/dev/null | grep -q '(id: '
    else
        return 1
    fi
}

show_log_tail() {
    local f
    for f in "$LOGS_DIR/kafka.out" "$LOGS_DIR/server.log"; do
        [[ -s "$f" ]] || continue
        log "last lines of $f:"
        tail -n 40 "$f" >&2
    done
}

java_major_version() {
    "$JAVA" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p'
}

# --- commands ---------------------------------------------------------------------------------------------

# Format the KRaft storage once (meta.properties present = formatted). --standalone makes this node the sole
# voter of a dynamic quorum (KIP-853), which is why the config uses controller.quorum.bootstrap.servers.
format_storage_if_needed() {
    local ports="$KAFKA_PORT $KAFKA_CONTROLLER_PORT"
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        if [[ -f "$DATA_DIR/.vigie-ports" ]] && [[ "$(<"$DATA_DIR/.vigie-ports")" != "$ports" ]]; then
            die "data in $DATA_DIR was formatted for ports $(<"$DATA_DIR/.vigie-ports"), not $ports: run '$0 wipe' first"
        fi
        return 0
    fi
    local cluster_id
    cluster_id="$(java_tool "$MAIN_STORAGE" random-uuid)"
    log "formatting $DATA_DIR (cluster id $cluster_id)"
    mkdir -p "$DATA_DIR"
    java_tool "$MAIN_STORAGE" format --standalone -t "$cluster_id" -c "$CONF_DIR/server.properties" >&2
    echo "$ports" >"$DATA_DIR/.vigie-ports"
}

wait_until_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log_tail
            rm -f "$PID_FILE"
            die "the broker exited during startup"
        fi
        if port_open "$KAFKA_PORT" && probe "127.0.0.1:$KAFKA_PORT"; then
            return 0
        fi
        sleep 0.5
    done
    show_log_tail
    die "the broker did not answer on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (still running as pid $pid; '$0 stop' to end it)"
}

cmd_start() {
    local pid
    if pid="$(our_pid)"; then
        probe "127.0.0.1:$KAFKA_PORT" || die "our broker (pid $pid) runs but does not answer on port $KAFKA_PORT"
        log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    if port_open "$KAFKA_PORT"; then
        if probe "127.0.0.1:$KAFKA_PORT"; then
            log "a working Kafka (not started by this script) already listens on 127.0.0.1:$KAFKA_PORT: using it"
            return 0
        fi
        die "port $KAFKA_PORT is taken by something that is not a working Kafka broker"
    fi
    if port_open "$KAFKA_CONTROLLER_PORT"; then
        die "controller port $KAFKA_CONTROLLER_PORT is already in use (set KAFKA_CONTROLLER_PORT)"
    fi
    (($(java_major_version) >= 17)) || die "Kafka $KAFKA_VERSION needs Java 17 or newer ($("$JAVA" -version 2>&1 | head -n 1))"

    is_fetched || cmd_fetch
    write_log_configs
    write_server_properties
    format_storage_if_needed

    local started=$SECONDS
    rm -f "$PID_FILE"
    # setsid: the broker gets its own session, so a Ctrl-C or the end of the calling shell does not reach it.
    # exec keeps the PID written by the inner shell, which is the JVM's.
    # shellcheck disable=SC2086,SC2016  # KAFKA_HEAP_OPTS is a list of JVM options; $$ is the inner shell's
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true -Dkafka.logs.dir="$LOGS_DIR" \
        -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
        -cp "$LIBS_DIR/*" "$MAIN_BROKER" "$CONF_DIR/server.properties" \
        </dev/null >"$LOGS_DIR/kafka.out" 2>&1 &
    # Wait for the inner shell to write its PID (it does so before exec'ing java).
    local _
    for _ in {1..50}; do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
    pid="$(<"$PID_FILE")"
    log "started pid $pid, waiting for 127.0.0.1:$KAFKA_PORT (logs: $LOGS_DIR)"
    wait_until_ready "$pid"
    log "Kafka $KAFKA_VERSION ready on 127.0.0.1:$KAFKA_PORT in $((SECONDS - started)) s"
}

cmd_stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid $pid"
    kill -TERM "$pid"
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(our_pid)"; then
        if probe "127.0.0.1:$KAFKA_PORT"; then
            echo "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
            return 0
        fi
        echo "kafka: running (pid $pid) but not answering on 127.0.0.1:$KAFKA_PORT"
        return 1
    fi
    echo "kafka: stopped"
    return 3
}

cmd_wipe() {
    cmd_stop
    rm -rf "$DATA_DIR" "$LOGS_DIR"
    log "removed $DATA_DIR and $LOGS_DIR (jars kept in $LIBS_DIR)"
}

# Kafka's own console consumer against KAFKA_BOOTSTRAP_SERVERS (or the local broker): values on stdout,
# one per line; diagnostics on stderr. Exits after N messages or KAFKA_CONSOLE_TIMEOUT_MS without one.
cmd_console_consumer() {
    (($# >= 1)) || die "usage: $0 console-consumer TOPIC [N] [ConsoleConsumer options…]"
    local topic="$1" max="${2:-10}"
    shift $(($# >= 2 ? 2 : 1))
    is_fetched || cmd_fetch
    write_log_configs
    java_tool "$MAIN_CONSOLE_CONSUMER" \
        --bootstrap-server "${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}" \
        --topic "$topic" --from-beginning --max-messages "$max" \
        --timeout-ms "${KAFKA_CONSOLE_TIMEOUT_MS:-30000}" "$@"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        fetch) cmd_fetch ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        restart) cmd_stop && cmd_start ;;
        status) cmd_status ;;
        wipe) cmd_wipe ;;
        console-consumer) cmd_console_consumer "$@" ;;
        *)
            echo "usage: $0 fetch|start|stop|restart|status|wipe|console-consumer TOPIC [N]" >&2
            exit 2
            ;;
    esac
}

main "$@"
