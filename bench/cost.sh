#!/usr/bin/env bash
# Cost per request (issue 20): what a handset's cheapest authenticated call, Locate, pays beyond
# bare tonic, against grpc.health.v1.Health/Check of the same binary in the same run.
#
#   bench/cost.sh                  # builds target/release/gridcase
#   BIN=/path/to/gridcase bench/cost.sh   # another build (a before/after pair)
#
# h2load (Debian's nghttp2-client, installed when missing), 50 connections x 10 streams, 20 s
# per run after 3 s of warm-up, three alternating pairs (the machine drifts between runs).
# The server runs as deployed by default: SQLite, the demo directory, RUST_LOG unset (info),
# access_log=errors, metrics off; per-subject rate limits off, since one token stands for
# 500 handsets here. Locate is signed as a grid member (HS256) at the centre of grid
# 371102001001001. h2load counts HTTP 200, and gRPC errors are HTTP 200 too: the run checks that
# the server logged no refused call (at access_log=errors every non-OK call writes a line) and
# that each Locate answer carried its ~400 bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_TO_RUN:-20}"
pairs="${PAIRS:-3}"
if ! command -v h2load >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq nghttp2-client >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  cargo build --quiet --release --bin gridcase
  BIN=target/release/gridcase
fi
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
export GRIDCASE_RATE_LIMITS=off
export GRIDCASE_DATA_DIR="$work/data"
export GRIDCASE_DATABASE_URL="sqlite://$work/gridcase.db?mode=rwc"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GRIDCASE_LISTEN="127.0.0.1:$port"
echo "# work dir: $work"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F); $BIN"
"$BIN" serve --demo >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.2
done
token=$("$BIN" token --sub gm-371102001001001 --role grid_member --ttl 2h)
printf '\0\0\0\0\0' >"$work/health.bin"
python3 - "$work/locate.bin" <<'PY'
import struct, sys
# LocateRequest { lat = 1 (double), lon = 2 (double), coord_system = 3 (WGS84 = 1) }
body = b"\x09" + struct.pack("<d", 35.5501632) + b"\x11" + struct.pack("<d", 119.0629968) + b"\x18\x01"
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(body)) + body)
PY
common=(-c 50 -m 10 -t 1 -D "$secs" --warm-up-time=3 -H 'content-type: application/grpc' -H 'te: trailers')
run() { # label, extra h2load arguments...
  local label=$1; shift
  local out
  out=$(h2load "${common[@]}" "$@")
  local rps data ok
  rps=$(grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)' <<<"$out")
  ok=$(grep -oP 'requests: .* \K[0-9]+(?= succeeded)' <<<"$out")
  data=$(grep -oP 'traffic: .*\(\d+\) data' <<<"$out" | grep -oP '\(\K\d+(?=\) data)' | tail -1)
  echo "$label $rps req/s ($ok succeeded, $((data / (ok > 0 ? ok : 1))) data bytes each)"
  echo "$rps" >>"$work/$label"
}
for i in $(seq "$pairs"); do
  run health http://127.0.0.1:$port/grpc.health.v1.Health/Check -d "$work/health.bin"
  run locate http://127.0.0.1:$port/gridcase.v1.DirectoryService/Locate -d "$work/locate.bin" \
    -H "authorization: Bearer $token"
done
# h2load ends each run by closing its connections with 500 streams in flight: the server logs
# those calls (CANCELLED, or UNKNOWN when the connection went before the request body came), at
# most 500 a run. Anything else logged is a refusal, and would make the figures meaningless.
cut=$(grep ' rpc' "$work/server.log" | grep -Ec 'code=(Cancelled|Unknown)' || true)
refused=$(grep ' rpc' "$work/server.log" | grep -Evc 'code=(Cancelled|Unknown)' || true)
echo "# calls logged by the server: $cut cut off at the end of a run (at most $((pairs * 2 * 500))), $refused others (must be 0)"
grep ' rpc' "$work/server.log" | grep -Ev 'code=(Cancelled|Unknown)' | head -3 || true
python3 - "$work/health" "$work/locate" <<'PY'
import statistics, sys
h = [float(x) for x in open(sys.argv[1])]
l = [float(x) for x in open(sys.argv[2])]
pairs = [b / a for a, b in zip(h, l)]
print(f"health mean {statistics.mean(h):.0f} req/s, locate mean {statistics.mean(l):.0f} req/s; "
      f"locate/health per pair: {', '.join(f'{r:.2f}' for r in pairs)}; mean {statistics.mean(pairs):.2f} (target >= 0.80)")
PY
[ "$refused" = 0 ] && [ "$cut" -le $((pairs * 2 * 500)) ]
