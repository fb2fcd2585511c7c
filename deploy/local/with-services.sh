#!/usr/bin/env bash
# Run a command with Redis and Kafka available: start them when absent (services.sh up), export
# REDIS_URL / KAFKA_BOOTSTRAP_SERVERS, run the command, then stop only what was started here.
#
#   deploy/local/with-services.sh .venv/bin/python -m pytest
set -euo pipefail
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd -- "$SCRIPT_DIR/../.." && pwd)"
LOCAL_DIR="${VIGIE_LOCAL_DIR:-$REPO_DIR/.local}"

trap 'bash "$SCRIPT_DIR/services.sh" down || true' EXIT
bash "$SCRIPT_DIR/services.sh" up
# shellcheck disable=SC1091
. "$LOCAL_DIR/services.env"
"$@"
