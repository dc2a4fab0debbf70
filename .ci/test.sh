#!/usr/bin/env bash
# `make test`: lint, then pytest against real PostgreSQL and Redis started on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

export PGPORT=${PGPORT:-55432} REDIS_PORT=${REDIS_PORT:-56379}
export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/concierge"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export ORT_DISABLE_TELEMETRY=1 ANONYMIZED_TELEMETRY=False
# Under `make test` a missing browser is an error, not a skipped test.
export CONCIERGE_REQUIRE_BROWSER=1
export CONCIERGE_VAR_DIR="${CONCIERGE_VAR_DIR:-$(mktemp -d /tmp/concierge-test-var.XXXXXX)}"
# One serving copy of the embedding model for the whole run: the stacks the tests start each
# have a var directory of their own, and would otherwise each prepare it at boot.
export CONCIERGE_MODEL_DIR="${CONCIERGE_MODEL_DIR:-$CONCIERGE_VAR_DIR/models}"

bash .ci/services.sh start
trap 'bash .ci/services.sh stop' EXIT

make --no-print-directory lint
.venv/bin/pytest "$@"
