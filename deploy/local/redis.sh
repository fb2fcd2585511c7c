#!/usr/bin/env bash
# Redis on 127.0.0.1 for tests and development, without Docker: Debian's redis-server, persisted like
# deploy/compose.yaml's: an append-only file (appendonly yes, appendfsync everysec) in $VIGIE_LOCAL_DIR/redis.
# Redis is the authority for subscriptions and their webhook secrets: `stop; start` keeps them.
#
# Usage: deploy/local/redis.sh start|stop|status
#
# Environment (all optional):
#   VIGIE_LOCAL_DIR      state directory (default: <repo>/.local, git-ignored)
#   REDIS_PORT           port (default 6379)
#   REDIS_START_TIMEOUT  seconds to wait for PONG (default 20)
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd -- "$SCRIPT_DIR/../.." && pwd)"
LOCAL_DIR="${VIGIE_LOCAL_DIR:-$REPO_DIR/.local}"

REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
REDIS_DIR="$LOCAL_DIR/redis"
PID_FILE="$REDIS_DIR/redis.pid"
LOG_FILE="$REDIS_DIR/redis.log"

log() { printf 'redis.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# PID of *our* redis-server: from the PID file, alive, and really a redis-server on our port.
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(<"$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE -- "redis-server .*:${REDIS_PORT}( |$)" || return 1
    echo "$pid"
}

# Send an inline PING over bash's /dev/tcp (no redis-cli needed); succeed on "+PONG".
ping_redis() {
    # shellcheck disable=SC2016  # the inner script expands its own $0
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
        printf "PING\r\n" >&3
        IFS= read -r -t 2 reply <&3 || exit 1
        [[ "$reply" == "+PONG"* ]]
    ' "$REDIS_PORT" 2>/dev/null
}

# shellcheck disable=SC2016  # the inner script expands its own $0
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$REDIS_PORT" 2>/dev/null; }

ensure_installed() {
    command -v redis-server >/dev/null && return 0
    ((EUID == 0)) || die "redis-server is missing; install it with: sudo apt-get install -y redis-server"
    log "redis-server is missing and this runs as root: installing Debian's redis-server with apt-get now" \
        "(set REDIS_URL to use a Redis of your own instead)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2; }
}

cmd_start() {
    local pid
    if pid="$(our_pid)"; then
        ping_redis || die "our redis-server (pid $pid) runs but does not answer PING"
        log "already running (pid $pid) on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    if port_open; then
        if ping_redis; then
            log "a Redis (not started by this script) already answers on 127.0.0.1:$REDIS_PORT: using it"
            return 0
        fi
        die "port $REDIS_PORT is taken by something that does not answer PING"
    fi
    ensure_installed
    mkdir -p "$REDIS_DIR"
    rm -f "$PID_FILE"
    # The append-only file (fsync every second) is what survives a restart; no RDB snapshots on top of it.
    # daemonize writes the PID file itself.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly yes --appendfsync everysec \
        --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG_FILE" --dir "$REDIS_DIR"
    local deadline=$((SECONDS + REDIS_START_TIMEOUT))
    until ping_redis; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$LOG_FILE" >&2 || true
            die "redis-server did not answer PING on 127.0.0.1:$REDIS_PORT within ${REDIS_START_TIMEOUT}s"
        fi
        sleep 0.1
    done
    log "Redis ready on 127.0.0.1:$REDIS_PORT (pid $(<"$PID_FILE"))"
}

cmd_stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after 20s: SIGKILL"
        kill -KILL "$pid"
    fi
    rm -f "$PID_FILE"
    log "stopped pid $pid"
}

cmd_status() {
    local pid
    if pid="$(our_pid)"; then
        if ping_redis; then
            echo "redis: running (pid $pid) on 127.0.0.1:$REDIS_PORT"
            return 0
        fi
        echo "redis: running (pid $pid) but not answering on 127.0.0.1:$REDIS_PORT"
        return 1
    fi
    echo "redis: stopped"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
