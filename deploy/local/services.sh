#!/usr/bin/env bash
# Bring up the real services the integration tests use (Redis, Kafka), without Docker.
#
# Usage: deploy/local/services.sh up|down|status
#
#   up     Start Redis and Kafka on 127.0.0.1, except a service whose URL is already given in the environment
#          (REDIS_URL, KAFKA_BOOTSTRAP_SERVERS pointing elsewhere). Writes $VIGIE_LOCAL_DIR/services.env:
#              deploy/local/services.sh up && . .local/services.env && pytest tests/integration
#          and remembers, in $VIGIE_LOCAL_DIR/services.started, which services it started itself.
#   down   Stop only what `up` started (a broker you started by hand, or one CI provides, is left alone).
#   status Show both services.
#
# Both commands are idempotent: `up` twice starts nothing new and still remembers what the first one started.
set -euo pipefail
shopt -s inherit_errexit  # a failing start inside $(bring_up …) must fail `up`

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd -- "$SCRIPT_DIR/../.." && pwd)"
LOCAL_DIR="${VIGIE_LOCAL_DIR:-$REPO_DIR/.local}"
export VIGIE_LOCAL_DIR="$LOCAL_DIR"

REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
LOCAL_REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
LOCAL_KAFKA="127.0.0.1:${KAFKA_PORT}"
ENV_FILE="$LOCAL_DIR/services.env"
STARTED_FILE="$LOCAL_DIR/services.started"

log() { printf 'services.sh: %s\n' "$*" >&2; }

# Is this service (redis|kafka) currently running from our own PID file?
ours_running() { "$SCRIPT_DIR/$1.sh" status >/dev/null 2>&1; }

remember_started() {
    grep -qx "$1" "$STARTED_FILE" 2>/dev/null || echo "$1" >>"$STARTED_FILE"
}

# Start service $1 unless the environment variable $2 already points somewhere other than the local default $3.
# Prints the address to export.
bring_up() {
    local name="$1" var="$2" local_address="$3" given="${!2:-}"
    if [[ -n "$given" && "$given" != "$local_address" ]]; then
        log "$var=$given is set: not starting $name"
        echo "$given"
        return 0
    fi
    local was_running=false
    ours_running "$name" && was_running=true
    "$SCRIPT_DIR/$name.sh" start >&2
    # Started now (by us) -> remember it for `down`. Already ours, or someone else's: leave the record as is.
    if [[ "$was_running" == false ]] && ours_running "$name"; then
        remember_started "$name"
    fi
    echo "$local_address"
}

cmd_up() {
    mkdir -p "$LOCAL_DIR"
    local redis_url kafka_bootstrap
    redis_url="$(bring_up redis REDIS_URL "$LOCAL_REDIS_URL")"
    kafka_bootstrap="$(bring_up kafka KAFKA_BOOTSTRAP_SERVERS "$LOCAL_KAFKA")"
    {
        echo "# Written by deploy/local/services.sh up; source it: . $ENV_FILE"
        printf 'export REDIS_URL=%q\n' "$redis_url"
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$kafka_bootstrap"
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "services up; started by this script: $(paste -sd ' ' "$STARTED_FILE" 2>/dev/null || echo none)"
    log "environment in $ENV_FILE"
    cat "$ENV_FILE"
}

cmd_down() {
    if [[ ! -s "$STARTED_FILE" ]]; then
        log "nothing was started by 'up': nothing to stop"
        rm -f "$STARTED_FILE" "$ENV_FILE"
        return 0
    fi
    # Kafka first (clients may still hold Redis state while it shuts down), then Redis.
    local name
    for name in kafka redis; do
        if grep -qx "$name" "$STARTED_FILE"; then
            "$SCRIPT_DIR/$name.sh" stop
        fi
    done
    rm -f "$STARTED_FILE" "$ENV_FILE"
}

cmd_status() {
    local rc=0
    "$SCRIPT_DIR/redis.sh" status || rc=1
    "$SCRIPT_DIR/kafka.sh" status || rc=1
    return "$rc"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac
