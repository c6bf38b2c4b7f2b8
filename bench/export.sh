#!/usr/bin/env bash
# ExportCases over 10,000 and 100,000 cases (SIZES to change) on PostgreSQL, through the real
# server and `gridcase export`: the server's resident memory before and during the export
# (VmRSS sampled every 20 ms, and VmHWM, from /proc), the export's time and throughput, Python's
# csv module counting every row of the file, and ListCases paging over the same cases (500 a
# page, a generic gRPC client) as the baseline of reading them without an export. For one size
# (SLOW, 100,000 by default) the export is also read slowly (about 3 MB/s) through a pipe.
#
# The cases are generated in SQL as the service stores them (all in district 371102, the
# district supervisor's scope; descriptions with commas, quotes and line breaks, phones,
# addresses), so the export reads, converts, masks and quotes every one.
#
# Run it alone on the machine (it builds the release binary first if needed):
#   flock /tmp/gridcase-build.lock bash bench/export.sh
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${GRIDCASE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
base="${pg%/*}"
db=gridcase_bench_export
sizes="${SIZES:-10000 100000}"
port=50191
work=$(mktemp -d)
trap 'kill "${pid:-}" "${sampler:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
# Rate limits off: the ListCases baseline asks for 2,000 pages as fast as answers come.
export GRIDCASE_DATA_DIR="$work/data" RUST_LOG=warn GRIDCASE_RATE_LIMITS=off
cargo build --quiet --release --bin gridcase
venv=target/generic-client-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet grpcio grpcio-health-checking grpcio-reflection
fi
kib() { awk -v k="$1" '/^'"$1"':/ {print $2}' "/proc/$pid/status"; }
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(psql "$pg" -Atc 'SHOW server_version') PostgreSQL"
for n in $sizes; do
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  export GRIDCASE_DATABASE_URL="$base/$db"
  target/release/gridcase directory import demo/rizhao-directory.geojson >/dev/null
  cat > "$work/supervisor.geojson" <<'JSON'
{"type": "FeatureCollection", "features": [],
 "members": [{"sub": "sup-371102", "name": "东港区督查", "role": "supervisor", "region": "371102", "phone": "13800000000"}]}
JSON
  target/release/gridcase directory import "$work/supervisor.geojson" >/dev/null
  psql "$base/$db" -q <<SQL
INSERT INTO cases (id, code, status, source, category_code, severity, description, address,
  city_code, district_code, township_code, community_code, grid_code, region_code, tier,
  unit_code, lat, lon, geo_cell, snapped, snap_distance_m, reporter_sub, reporter_phone,
  received_at, updated_at, version, cycle, reopen_count, escalation_level, red_card,
  request_hash, attachment_ids, last_event_hash)
SELECT lpad(to_hex(g), 12, '0') || '-bench',
  '371102' || to_char(date '2026-11-30' - g / 1000000, 'YYYYMMDD') || lpad((g % 1000000)::text, 6, '0'),
  (ARRAY['registered','dispatched','accepted','in_progress','resolved','closed'])[1 + g % 6],
  'handset', 'dispute.neighbor', 'general',
  '第 ' || g || ' 件：楼道堆放杂物，"影响通行",' || chr(10) || '居民多次反映，请尽快处理。=SUM(A1)',
  '东港区测试路 ' || g || ' 号, ' || (1 + g % 9) || ' 单元',
  '371100', '371102', NULL, NULL, NULL, '371102', 'district', '371102.center', 35.4, 119.4,
  0, false, 0, 'gm-bench', '138' || lpad((g % 100000000)::text, 8, '0'),
  now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval, 1, 1, 0, 0, false,
  md5(g::text), '[]', md5(g::text)
FROM generate_series(1, $n) AS g;
ANALYZE cases;
SQL
  sync
  start() {
    GRIDCASE_LISTEN=127.0.0.1:$port target/release/gridcase serve >>"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  }
  # The first start takes the statistics snapshots of the month, quarter and year just ended,
  # which reads their cases (all of them, when the benchmark runs on the 1st of a month): wait
  # for it, and measure a second start, whose memory is the serving's own.
  start
  for _ in $(seq 600); do
    [ "$(psql "$base/$db" -Atc 'SELECT count(*) FROM job_runs WHERE finished_at IS NOT NULL')" -ge 3 ] && break
    sleep 0.1
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  start
  rss_started=$(kib VmRSS)
  token=$(target/release/gridcase token --sub sup-371102 --role supervisor)
  # Warm up: one small export (a status no case has), so what follows is the export's own cost.
  target/release/gridcase export --target "http://127.0.0.1:$port" --token "$token" \
    --out "$work/warm.csv" cases --status submitted 2>/dev/null
  rss_before=$(kib VmRSS); hwm_before=$(kib VmHWM)
  echo 0 > "$work/peak"; : > "$work/series"
  ( peak=0; while kill -0 "$pid" 2>/dev/null; do
      r=$(kib VmRSS || echo 0); echo "$(date +%s.%N) ${r:-0}" >> "$work/series"
      [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" > "$work/peak"
      sleep 0.02; done ) &
  sampler=$!
  started=$(date +%s.%N)
  target/release/gridcase export --target "http://127.0.0.1:$port" --token "$token" \
    --out "$work/cases.csv" cases 2>"$work/export.err"
  ended=$(date +%s.%N)
  sleep 0.1
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  rss_peak=$(cat "$work/peak"); hwm_after=$(kib VmHWM)
  # VmRSS through the export: the highest in each tenth of its time (KiB).
  tenths=$(awk -v s="$started" -v e="$ended" '$1 >= s && $1 <= e {
      i = int(10 * ($1 - s) / (e - s)); if (i > 9) i = 9; if ($2 > m[i]) m[i] = $2 }
    END { for (i = 0; i < 10; i++) printf "%s%s", (i ? " " : ""), (m[i] ? m[i] : "-") }' "$work/series")
  bytes=$(stat -c %s "$work/cases.csv")
  rows=$(python3 -c 'import csv,sys; r=list(csv.reader(open(sys.argv[1], encoding="utf-8-sig", newline=""))); print(len(r)-1)' "$work/cases.csv")
  secs=$(echo "$ended - $started" | bc -l)
  list=$("$venv/bin/python" - "127.0.0.1:$port" "$token" <<'PY'
import sys, time, grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
channel = grpc.insecure_channel(sys.argv[1])
pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
req = message_factory.GetMessageClass(pool.FindMessageTypeByName("gridcase.v1.ListCasesRequest"))
res = message_factory.GetMessageClass(pool.FindMessageTypeByName("gridcase.v1.ListCasesResponse"))
call = channel.unary_unary("/gridcase.v1.CaseService/ListCases",
    request_serializer=lambda m: m.SerializeToString(), response_deserializer=res.FromString)
md = [("authorization", f"Bearer {sys.argv[2]}")]
started, total, token = time.perf_counter(), 0, ""
while True:
    r = req(); r.page.page_size = 500; r.page.page_token = token
    page = call(r, metadata=md, timeout=60)
    total += len(page.cases); token = page.next_page_token
    if not token:
        break
print(f"{total} {time.perf_counter() - started:.3f}")
PY
)
  slow=""
  if [ "$n" = "${SLOW:-100000}" ]; then
    # A slow client: the same export through a pipe read 64 KiB every 20 ms (about 3 MB/s).
    # The server must hold the reading back, not buffer what the client has not taken.
    rss_slow_before=$(kib VmRSS); echo 0 > "$work/peak"
    ( peak=0; while kill -0 "$pid" 2>/dev/null; do
        r=$(kib VmRSS || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" > "$work/peak"
        sleep 0.02; done ) &
    sampler=$!
    slow_started=$(date +%s.%N)
    target/release/gridcase export --target "http://127.0.0.1:$port" --token "$token" cases \
      | python3 -c 'import sys, time
n = 0
while True:
    b = sys.stdin.buffer.read(65536)
    if not b: break
    n += len(b); time.sleep(0.02)
print(n)' > "$work/slow.bytes"
    slow_ended=$(date +%s.%N)
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    slow=$(printf 'slow n=%s bytes=%s time=%.1fs; server VmRSS before=%s KiB peak during=%s KiB (+%s KiB)' \
      "$n" "$(cat "$work/slow.bytes")" "$(echo "$slow_ended - $slow_started" | bc -l)" \
      "$rss_slow_before" "$(cat "$work/peak")" "$(( $(cat "$work/peak") - rss_slow_before ))")
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  read -r list_rows list_secs <<<"$list"
  printf 'export n=%s rows=%s (python csv) bytes=%s time=%.2fs rows/s=%.0f MB/s=%.1f\n' \
    "$n" "$rows" "$bytes" "$secs" "$(echo "$rows / $secs" | bc -l)" "$(echo "$bytes / $secs / 1000000" | bc -l)"
  printf 'server n=%s VmRSS started=%s before=%s KiB peak during=%s KiB (+%s KiB); VmHWM before=%s after=%s KiB\n' \
    "$n" "$rss_started" "$rss_before" "$rss_peak" "$((rss_peak - rss_before))" "$hwm_before" "$hwm_after"
  printf 'server n=%s VmRSS by tenth of the export (KiB): %s\n' "$n" "$tenths"
  printf 'listcases n=%s rows=%s time=%.2fs rows/s=%.0f (500 a page, grpcio)\n' \
    "$n" "$list_rows" "$list_secs" "$(echo "$list_rows / $list_secs" | bc -l)"
  [ -z "$slow" ] || echo "$slow"
  [ "$rows" = "$n" ] || { echo "expected $n rows, the file has $rows" >&2; exit 1; }
done
psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
