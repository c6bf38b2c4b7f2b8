#!/usr/bin/env bash
# ListCases for a district supervisor over 1,000,000 cases on PostgreSQL (issue 5): loads the
# Rizhao directory plus a district supervisor, generates the cases in SQL, prints the query plan
# and times pages through the real server with a generic gRPC client.
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${GRIDCASE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
base="${pg%/*}"
db=gridcase_bench_list
n="${CASES:-1000000}"
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
export GRIDCASE_DATA_DIR="$work/data" RUST_LOG=warn
cargo build --quiet --release --bin gridcase
venv=target/generic-client-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet grpcio grpcio-health-checking grpcio-reflection
fi
psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export GRIDCASE_DATABASE_URL="$base/$db"
target/release/gridcase directory import demo/rizhao-directory.geojson >/dev/null
cat > "$work/supervisor.geojson" <<'JSON'
{"type": "FeatureCollection", "features": [],
 "members": [{"sub": "sup-371102", "name": "东港区督查", "role": "supervisor", "region": "371102", "phone": "13800000000"}]}
JSON
target/release/gridcase directory import "$work/supervisor.geojson" >/dev/null
echo "# generating $n cases over the four districts"
psql "$base/$db" -q <<SQL
INSERT INTO cases (id, code, status, source, category_code, severity, description, city_code,
  district_code, township_code, community_code, grid_code, region_code, tier, unit_code, lat, lon,
  geo_cell, snapped, snap_distance_m, reporter_sub, received_at, updated_at, version, cycle,
  reopen_count, escalation_level, red_card, request_hash, attachment_ids, last_event_hash)
SELECT lpad(to_hex(g), 12, '0') || '-bench', 'L' || g,
  (ARRAY['registered','dispatched','accepted','in_progress','resolved','closed'])[1 + g % 6],
  'handset', 'dispute.neighbor', 'general', '生成的案件', '371100',
  (ARRAY['371102','371103','371121','371122'])[1 + g % 4], NULL, NULL, NULL,
  (ARRAY['371102','371103','371121','371122'])[1 + g % 4], 'district', '371102.center',
  35.4, 119.4, 0, false, 0, 'gm-bench', now() - (g || ' seconds')::interval,
  now() - (g || ' seconds')::interval, 1, 1, 0, 0, false, md5(g::text), '[]', md5(g::text)
FROM generate_series(1, $n) AS g;
ANALYZE cases;
SQL
echo "# plan of the first page's query (as gridcase issues it)"
psql "$base/$db" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM cases WHERE district_code = '371102' ORDER BY received_at DESC, id DESC LIMIT 51"
GRIDCASE_LISTEN=127.0.0.1:50181 target/release/gridcase serve >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/50181) 2>/dev/null && break; sleep 0.2; done
token=$(target/release/gridcase token --sub sup-371102 --role supervisor)
"$venv/bin/python" bench/list_cases_client.py 127.0.0.1:50181 "$token" 20
kill "$pid"; wait "$pid" 2>/dev/null || true
psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
