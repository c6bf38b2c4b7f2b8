#!/usr/bin/env bash
# Intake throughput: gridcase-load drives SubmitReport against a release gridcase on
# PostgreSQL (synchronous_commit on) and on SQLite, and pgbench runs the plain-insert baseline
# (bench/intake-baseline.sql) against the same PostgreSQL in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${GRIDCASE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
base="${pg%/*}"
db=gridcase_bench_intake
conc="${CONCURRENCY:-64}"
secs="${SECONDS_TO_RUN:-20}"
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
export GRIDCASE_DATA_DIR="$work/data"
export RUST_LOG=warn
cargo build --quiet --release --bin gridcase --bin gridcase-load

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# postgres: $(psql "$pg" -Atc 'SHOW server_version'), synchronous_commit=$(psql "$pg" -Atc 'SHOW synchronous_commit')"

serve() { # url port
  GRIDCASE_DATABASE_URL="$1" GRIDCASE_LISTEN="127.0.0.1:$2" target/release/gridcase serve >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    if (echo > "/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  cat "$work/server.log"; return 1
}

fresh_pg() {
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  GRIDCASE_DATABASE_URL="$base/$db" target/release/gridcase directory import demo/rizhao-directory.geojson >/dev/null
}

echo "== gridcase on PostgreSQL, $conc handsets"
fresh_pg
serve "$base/$db" 50161
target/release/gridcase-load --target http://127.0.0.1:50161 --concurrency "$conc" --duration "${secs}s"
kill "$pid"; wait "$pid" 2>/dev/null || true
echo "stored cases: $(psql "$base/$db" -Atc 'SELECT count(*) FROM cases')"

echo "== baseline: pgbench, plain inserts of the same rows, one transaction each, $conc clients"
fresh_pg
psql "$base/$db" -qc "CREATE SEQUENCE bench_event_seq START 1000000000"
pgbench -n -c "$conc" -j 2 -T "$secs" -f bench/intake-baseline.sql "$base/$db" 2>&1 \
  | grep -E '^(tps|latency average|number of transactions actually processed)'

echo "== gridcase on SQLite, $conc handsets"
sqlite="sqlite://$work/bench.db?mode=rwc"
GRIDCASE_DATABASE_URL="$sqlite" target/release/gridcase directory import demo/rizhao-directory.geojson >/dev/null
serve "$sqlite" 50162
target/release/gridcase-load --target http://127.0.0.1:50162 --concurrency "$conc" --duration "${secs}s"
kill "$pid"; wait "$pid" 2>/dev/null || true
psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
