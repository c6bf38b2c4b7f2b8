#!/usr/bin/env bash
# Starts the built gridcase on a free local port with a throw-away SQLite database and checks it
# with a generic (Python grpcio) client. Used by .ci/run; needs python3 and the package registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
venv=target/generic-client-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet grpcio grpcio-health-checking grpcio-reflection
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The binary the integration tests use (`cargo test` has built it already in CI).
cargo test --quiet --no-run
GRIDCASE_LISTEN="127.0.0.1:$port" GRIDCASE_DATA_DIR="$work/data" \
  GRIDCASE_DATABASE_URL="sqlite://$work/gridcase.db?mode=rwc" \
  target/debug/gridcase serve >"$work/server.log" 2>&1 &
pid=$!
if ! "$venv/bin/python" tests/generic/check_generic_client.py "127.0.0.1:$port"; then
  cat "$work/server.log"
  exit 1
fi
