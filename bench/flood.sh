#!/usr/bin/env bash
# Overload (issue 20): do the handsets keep their p99 while one subject floods and is shed?
#
#   bench/flood.sh
#
# The release binary on SQLite with the demo directory and the default per-subject limits
# (a gateway: 500/s, burst 1,000). Three phases of 20 s, one after the other:
#   1. baseline: gridcase-load, 64 handsets reporting at 200 reports/s in all, open loop
#      (about 3 a second each, well under a grid member's 20/s);
#   2. the same, while one gateway sends IngestTicket at 450/s (h2load --rps), under its limit:
#      what the admitted part of a flood costs the handsets;
#   3. flood: the same, while h2load sends IngestTicket as one gateway as fast as it can
#      (4 connections x 50 streams; the same ticket again and again, so each admitted call is
#      an idempotent lookup). h2load runs at nice 19: on a real deployment the flood comes from
#      another machine, and here the two cores are shared by all three programs.
# The handsets' SubmitReport p50/p99 and errors come from gridcase-load; the flood's admitted
# and refused calls from the server's own metrics (gridcase_rpc_requests_total by code).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_TO_RUN:-20}"
if ! command -v h2load >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq nghttp2-client >/dev/null
fi
cargo build --quiet --release --bin gridcase --bin gridcase-load
work=$(mktemp -d)
trap 'kill "${pid:-}" "${flood:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
export GRIDCASE_DATA_DIR="$work/data"
export GRIDCASE_DATABASE_URL="sqlite://$work/gridcase.db?mode=rwc"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GRIDCASE_LISTEN="127.0.0.1:$port" GRIDCASE_METRICS_LISTEN="127.0.0.1:$mport"
export RUST_LOG=warn
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
target/release/gridcase serve --demo >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.2
done
token=$(target/release/gridcase token --sub gw-flood --role gateway --ttl 2h)
python3 - "$work/ticket.bin" <<'PY'
import struct, sys
def s(field, text):
    b = text.encode()
    return bytes([field << 3 | 2, len(b)]) + b
# IngestTicketRequest: source = 2 (12345 hotline), external_id, category_code, description,
# caller_phone, region_code.
body = (bytes([1 << 3, 2]) + s(2, "FLOOD-0001") + s(3, "dispute.neighbor")
        + s(4, "市民来电反映邻里纠纷") + s(5, "13800000000") + s(9, "371102"))
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(body)) + body)
PY
metric() { # name and labels, as the exposition prints them
  curl -s "http://127.0.0.1:$mport/metrics" | awk -v k="$1" 'index($0, k) == 1 {s += $2} END {print s + 0}'
}
load() {
  target/release/gridcase-load --target "http://127.0.0.1:$port" --concurrency 64 --rate 200 \
    --duration "${secs}s" | tail -1
}
echo "## baseline: handsets alone"
load
echo "## the gateway within its limit: handsets, and the same gateway at 450 tickets/s (all admitted)"
nice -n 19 h2load -c 1 -m 10 -t 1 --rps 450 -D "$((secs + 8))" -H 'content-type: application/grpc' \
  -H 'te: trailers' -H "authorization: Bearer $token" -d "$work/ticket.bin" \
  "http://127.0.0.1:$port/gridcase.v1.GatewayService/IngestTicket" >"$work/h2load-paced.log" 2>&1 &
flood=$!
sleep 2
load
wait "$flood" || true
echo "paced gateway: $(grep -oP 'finished in [^,]+, [0-9.]+ req/s' "$work/h2load-paced.log")"
echo "## flood: handsets, and one gateway as fast as h2load goes"
ok0=$(metric 'gridcase_rpc_requests_total{method="IngestTicket",code="Ok"}')
shed0=$(metric 'gridcase_rpc_requests_total{method="IngestTicket",code="ResourceExhausted"}')
nice -n 19 h2load -c 4 -m 50 -t 1 -D "$((secs + 8))" -H 'content-type: application/grpc' -H 'te: trailers' \
  -H "authorization: Bearer $token" -d "$work/ticket.bin" \
  "http://127.0.0.1:$port/gridcase.v1.GatewayService/IngestTicket" >"$work/h2load.log" 2>&1 &
flood=$!
sleep 2
load
wait "$flood" || true
ok1=$(metric 'gridcase_rpc_requests_total{method="IngestTicket",code="Ok"}')
shed1=$(metric 'gridcase_rpc_requests_total{method="IngestTicket",code="ResourceExhausted"}')
other=$(curl -s "http://127.0.0.1:$mport/metrics" | grep -F 'gridcase_rpc_requests_total{method="IngestTicket"' \
  | grep -vE 'code="(Ok|ResourceExhausted)"' || true)
dur=$((secs + 8))
echo "flood: $(grep -oP 'finished in [^,]+, [0-9.]+ req/s' "$work/h2load.log"); admitted $((ok1 - ok0)) ($(( (ok1 - ok0) / dur ))/s), shed $((shed1 - shed0)) ($(( (shed1 - shed0) / dur ))/s)"
[ -z "$other" ] || echo "flood answered otherwise: $other"
