#!/usr/bin/env bash
# Intake throughput and latency: gridcase-load drives SubmitReport against a release gridcase on
# PostgreSQL (synchronous_commit on) and on SQLite, and pgbench runs the plain-insert baseline
# (bench/intake-baseline.sql) against the same PostgreSQL in the same run.
#
# Four PostgreSQL phases, each on a fresh database:
#   1. baseline, closed loop: pgbench with $CONCURRENCY clients, as fast as it goes -> B tps
#   2. gridcase, closed loop: $CONCURRENCY handsets as fast as they go -> throughput, ratio to B
#   3. gridcase, open loop at B reports/s with $CONCURRENCY handsets -> latency at the baseline's
#      throughput, measured from each report's scheduled time
#   4. baseline, open loop at B (pgbench --rate) -> the same latency figures for the baseline
# then SQLite closed loop, and SQLite open loop at $SQLITE_RATE (default 60 % of its closed-loop
# throughput).
#
# Every phase starts with `sync`: pages other work left dirty (the build just before, the
# directory import) are written back then, not while a phase measures. Left to the kernel's
# flusher, 1.5 GB of them put p99 at 1.4-1.7 s for gridcase and for pgbench alike, because
# every commit's WAL flush queued behind their writeback (BENCHMARKS.md "Eighth session").
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
# Simulated handsets report far faster than a person: no per-subject rate limits here.
export GRIDCASE_RATE_LIMITS=off
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
  sync
}

pgb() { # label extra-args...: runs the baseline, prints tps and latency percentiles from its log
  local label=$1; shift
  fresh_pg
  psql "$base/$db" -qc "CREATE SEQUENCE bench_event_seq START 1000000000"
  rm -rf "$work/pgb"; mkdir -p "$work/pgb"
  (cd "$work/pgb" && pgbench -n -c "$conc" -j 2 -T "$secs" "$@" -l -f "$OLDPWD/bench/intake-baseline.sql" "$base/$db") \
    >"$work/pgb.out" 2>&1 || { cat "$work/pgb.out"; return 1; }
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgb.out" | head -1)
  # Log column 3 is each transaction's latency in µs; under --rate it runs from the scheduled start.
  cat "$work"/pgb/pgbench_log.* | awk '{print $3}' | sort -n >"$work/pgb.lat"
  n=$(wc -l <"$work/pgb.lat")
  at() { sed -n "$(( (n * $1 / 100) > 0 ? (n * $1 / 100) : 1 ))p" "$work/pgb.lat" | awk '{printf "%.2f", $1/1000}'; }
  echo "$label: transactions=$n tps=${tps%.*} p50_ms=$(at 50) p90_ms=$(at 90) p99_ms=$(at 99) max_ms=$(tail -1 "$work/pgb.lat" | awk '{printf "%.2f", $1/1000}')"
}

gridcase_pg() { # extra gridcase-load args...
  fresh_pg
  serve "$base/$db" 50161
  target/release/gridcase-load --target http://127.0.0.1:50161 --concurrency "$conc" --duration "${secs}s" "$@"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "stored cases: $(psql "$base/$db" -Atc 'SELECT count(*) FROM cases')"
}

echo "== 1. baseline: pgbench, plain inserts of the same rows, one transaction each, $conc clients, closed loop"
pgb "baseline closed loop"
rate=${tps%.*}

echo "== 2. gridcase on PostgreSQL, $conc handsets, closed loop"
gridcase_pg

echo "== 3. gridcase on PostgreSQL, $conc handsets, open loop at the baseline's $rate reports/s"
gridcase_pg --rate "$rate"

echo "== 4. baseline: pgbench, open loop at $rate tps"
pgb "baseline open loop" --rate "$rate"

echo "== 5. gridcase on SQLite, $conc handsets, closed loop"
sqlite="sqlite://$work/bench.db?mode=rwc"
GRIDCASE_DATABASE_URL="$sqlite" target/release/gridcase directory import demo/rizhao-directory.geojson >/dev/null
sync
serve "$sqlite" 50162
out=$(target/release/gridcase-load --target http://127.0.0.1:50162 --concurrency "$conc" --duration "${secs}s")
echo "$out"
sqlite_max=$(sed -n 's/.*reports_per_s=\([0-9]*\).*/\1/p' <<<"$out")
sqlite_rate=${SQLITE_RATE:-$(( sqlite_max * 6 / 10 ))}
echo "== 6. gridcase on SQLite, $conc handsets, open loop at $sqlite_rate reports/s"
sync
target/release/gridcase-load --target http://127.0.0.1:50162 --concurrency "$conc" --duration "${secs}s" --rate "$sqlite_rate"
kill "$pid"; wait "$pid" 2>/dev/null || true
psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
