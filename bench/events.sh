#!/usr/bin/env bash
# WatchEvents: push latency under load, and what idle streams cost (issue 18).
#
#   bench/events.sh
#
# 1. Push latency, on PostgreSQL and on SQLite: `gridcase-load` with 100 streams following
#    every event (as an admin, who sees all), while 16 handsets report at 500 reports/s open
#    loop: 1,000 events/s (each report is `submitted` and `registered`), every stream sent all
#    of them. For each report's `registered` event on each stream: the time from the report's
#    acknowledgement (after its commit) to its arrival.
#    Baseline in the same run: the same load without streams (what intake alone costs).
# 2. Idle streams: the server's resident memory with 1,000 streams open and idle (each on a
#    connection of its own), against the same server with none; and the event table reads the
#    hub made meanwhile (from its log line at stop: none expected while idle).
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${GRIDCASE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
base="${pg%/*}"
db=gridcase_bench_events
secs="${SECONDS_TO_RUN:-20}"
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
# Simulated handsets report far faster than a person: no per-subject rate limits here.
export GRIDCASE_RATE_LIMITS=off
export GRIDCASE_DATA_DIR="$work/data"
export RUST_LOG=warn
cargo build --quiet --release --bin gridcase --bin gridcase-load
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"

serve() { # url port
  GRIDCASE_DATABASE_URL="$1" GRIDCASE_LISTEN="127.0.0.1:$2" target/release/gridcase serve >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if (echo > "/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  cat "$work/server.log"; return 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status"; }

fresh() { # url
  case $1 in
    postgres*) psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ;;
    *) rm -f "$work"/bench.db* ;;
  esac
  GRIDCASE_DATABASE_URL="$1" target/release/gridcase directory import demo/rizhao-directory.geojson >/dev/null
  sync
}

for url in "$base/$db" "sqlite://$work/bench.db?mode=rwc"; do
  name=${url%%:*}
  echo "== 1. $name: 500 reports/s (1,000 events/s), no streams (baseline)"
  fresh "$url"; serve "$url" 50181
  target/release/gridcase-load --target http://127.0.0.1:50181 --concurrency 16 --rate 500 --duration "${secs}s"
  stop
  echo "== 1. $name: 500 reports/s (1,000 events/s), 100 streams following every event"
  fresh "$url"; serve "$url" 50181
  target/release/gridcase-load --target http://127.0.0.1:50181 --concurrency 16 --rate 500 --duration "${secs}s" --watchers 100
  stop
done

echo "== 2. idle streams (PostgreSQL)"
fresh "$base/$db"; serve "$base/$db" 50182
sleep 2
before=$(rss_mib)
target/release/gridcase-load --target http://127.0.0.1:50182 --concurrency 0 --watchers 1000 --duration 15s --warmup 1s &
load=$!
sleep 12
during=$(rss_mib)
wait "$load"
echo "server RSS: ${before} MiB with no streams, ${during} MiB with 1,000 idle streams: $(awk -v a="$before" -v b="$during" 'BEGIN {printf "%.1f", b - a}') MiB more"
stop
psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
