#!/usr/bin/env bash
# `make compose-test`: the engine (tests/compose/engine.sh, idempotent), then the compose test
# (tests/compose/compose_test.py). Stops the Docker daemon afterwards if this run started it,
# also when the run is interrupted. Arguments go to compose_test.py (e.g. --source worktree to
# test uncommitted work, --keep to leave the stack up).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/compose/engine.sh
source tests/compose/engine.sh
stop_dockerd() {
  if [ -n "${HMREC_DOCKERD_PID:-}" ] && kill -0 "$HMREC_DOCKERD_PID" 2>/dev/null; then
    kill "$HMREC_DOCKERD_PID"
    for _ in $(seq 1 30); do kill -0 "$HMREC_DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    echo "[engine] stopped dockerd (pid $HMREC_DOCKERD_PID)" >&2
  fi
}
trap stop_dockerd EXIT
# In the background so a TERM (CI's timeout) reaches the test, which then takes the stack down.
python3 tests/compose/compose_test.py "$@" &
test_pid=$!
trap 'kill -TERM "$test_pid" 2>/dev/null; wait "$test_pid"; exit 143' INT TERM
wait "$test_pid"
