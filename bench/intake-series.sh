#!/usr/bin/env bash
# A series of short intake runs on PostgreSQL, one line per run, for A/B comparisons between
# builds and for catching rare stalls (BENCHMARKS.md "Eighth session").
#
#   bench/intake-series.sh BINDIR RUNS RATE|max [SECONDS]
#
# BINDIR holds a release `gridcase` and `gridcase-load` (copy them aside to compare builds).
# Each run: a fresh database with the Rizhao directory, `gridcase serve` with the intake
# writer's batch log on, `gridcase-load` with 64 handsets open loop at RATE reports/s (or
# closed loop with `max`), then one line: the load tool's figures; the CPU time per stored
# report of the server, of every PostgreSQL process and of the load tool; the intake batches
# (count, mean size, slowest); and the WAL syncs PostgreSQL made meanwhile (pg_stat_wal; their
# time only with track_wal_io_timing on).
#
# Environment: GRIDCASE_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
# WORK (where the server logs are kept, one per run; default a new temporary directory), SYNC=0
# to skip the `sync` before each run,
# PROBE=1 to sample the machine every 5 ms while each run loads, PROBE=procs to add each
# process's CPU every 50 ms (bench/stall-probe.py; read with `bench/stall-probe.py report
# WORK/probe.N`).
set -uo pipefail
bin=$(cd "$1" && pwd); runs=$2; rate=$3; secs=${4:-20}
cd "$(dirname "$0")/.."
pg="${GRIDCASE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
base="${pg%/*}"; db=gridcase_bench_series; port=50171
work=${WORK:-$(mktemp -d)}; mkdir -p "$work"
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
# Simulated handsets report far faster than a person: no per-subject rate limits here.
export GRIDCASE_RATE_LIMITS=off
export GRIDCASE_DATA_DIR="$work/data"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); logs in $work"

ticks() { # CPU ticks of the server and of all PostgreSQL processes
  local s=0 p=0 line comm rest
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    comm=${line#*(}; comm=${comm%%)*}; rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    case $comm in gridcase) s=$((s + ${12} + ${13}));; postgres) p=$((p + ${12} + ${13}));; esac
  done
  echo "$s $p"
}
wal() {
  psql "$pg" -Atc "SELECT wal_sync || ' ' || wal_sync_time || ' ' || wal_bytes FROM pg_stat_wal"
}

for i in $(seq "$runs"); do
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  RUST_LOG=warn GRIDCASE_DATABASE_URL="$base/$db" "$bin/gridcase" directory import demo/rizhao-directory.geojson >/dev/null
  # Pages left dirty before the run (a build, the import) are written back now, not during it;
  # SYNC=0 leaves them to the kernel, as the eighth session's writeback stalls did.
  [ "${SYNC:-1}" = 0 ] || sync
  RUST_LOG=${RUST_LOG:-warn},gridcase::storage::intake=debug GRIDCASE_DATABASE_URL="$base/$db" \
    GRIDCASE_LISTEN="127.0.0.1:$port" "$bin/gridcase" serve >"$work/server.$i.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  probe=
  if [ -n "${PROBE:-}" ]; then
    extra=(); [ "$PROBE" = procs ] && extra=(--procs)
    python3 bench/stall-probe.py record "$work/probe.$i" $((secs + 4)) "${extra[@]}" & probe=$!
  fi
  c0=$(ticks); w0=$(wal)
  mode=(); [ "$rate" = max ] || mode=(--rate "$rate")
  out=$( { TIMEFORMAT="%U %S"; time "$bin/gridcase-load" --target "http://127.0.0.1:$port" \
    --concurrency 64 --duration "${secs}s" "${mode[@]}" 2>/dev/null | tail -1; } 2>"$work/load.time")
  c1=$(ticks); w1=$(wal)
  kill "$pid"; wait "$pid" 2>/dev/null
  [ -n "$probe" ] && wait "$probe"
  stored=$(psql "$base/$db" -Atc "SELECT count(*) FROM cases")
  cpu=$(echo "$c0 $c1 $(cat "$work/load.time")" | awk -v n="$stored" -v hz="$(getconf CLK_TCK)" \
    '{printf "cpu_us_per_report server=%.0f postgres=%.0f load=%.0f", ($3-$1)*1e6/hz/n, ($4-$2)*1e6/hz/n, ($5+$6)*1e6/n}')
  batches=$(sed 's/\x1b\[[0-9;]*m//g' "$work/server.$i.log" | awk '/intake batch/ {
      for (k = 1; k <= NF; k++) { split($k, f, "="); if (f[1] == "size") s = f[2]; if (f[1] == "elapsed_ms") e = f[2] }
      n++; total += s; if (e > max) max = e }
    END { if (n) printf "batches=%d mean_size=%.1f slowest_ms=%.1f", n, total / n, max }')
  walsyncs=$(echo "$w0 $w1" | awk '{printf "wal_syncs=%d wal_sync_ms=%.0f wal_mb=%.0f", $4-$1, $5-$2, ($6-$3)/1e6}')
  echo "run=$i $out $cpu $batches $walsyncs"
done
