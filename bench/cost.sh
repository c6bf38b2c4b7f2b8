#!/usr/bin/env bash
# Cost per request (issue 20): what a handset's cheapest authenticated call, Locate, pays beyond
# bare tonic, against grpc.health.v1.Health/Check of the same binary in the same run.
#
#   bench/cost.sh                  # builds target/release/gridcase
#   BIN=/path/to/gridcase bench/cost.sh   # another build (a before/after pair)
#   PIN=1 bench/cost.sh            # server on core 0, h2load on core 1 (see below)
#
# h2load (Debian's nghttp2-client, installed when missing), 50 connections x 10 streams, 20 s
# per run after 3 s of warm-up, three alternating rounds (the machine drifts between runs) of
# Health/Check, Health/Check with Locate's `authorization` header, and Locate: two ratios,
# Locate against each (mean and median of the rounds'). Each run also prints the server's CPU
# and h2load's per call and, where perf can count tracepoints, the server's system calls per call.
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
# PIN=1: the server on core 0, h2load on core 1, so that neither takes the other's CPU: the
# rate is then the server's own cost per call, provided h2load keeps its core below saturation
# (each run prints both cores' use). The server then runs one tokio worker, not two: this
# measures a one-core server.
server_pin=(); client_pin=()
if [ "${PIN:-0}" != 0 ]; then server_pin=(taskset -c 0); client_pin=(taskset -c 1); fi
"${server_pin[@]}" "$BIN" serve --demo >"$work/server.log" 2>&1 &
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
# The server's CPU time (user + system, in clock ticks) so far.
cpu() { awk '{print $14 + $15}' "/proc/${1:-$pid}/stat"; }
ticks=$(getconf CLK_TCK)
perf=""
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then perf=1; fi
run() { # label, extra h2load arguments...
  local label=$1; shift
  "${client_pin[@]}" h2load "${common[@]}" "$@" >"$work/out" &
  local h=$!
  # The server's CPU over the measured part of the run (after the warm-up, half a second in
  # from either end), per request at the run's rate: less noisy than the rate itself, since
  # h2load shares the two cores and the machine drifts.
  sleep 3.5
  local c0 t0 c1 t1 k0 k1
  c0=$(cpu); k0=$(cpu "$h"); t0=$(date +%s.%N)
  # The server's system calls over the same window, where perf can count them (a tracepoint,
  # no hardware counters needed): each one costs more than most of what a call does in user space.
  local calls=""
  if [ -n "$perf" ]; then
    calls=$(perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -- sleep "$((secs - 1))" 2>&1 >/dev/null | awk -F, '/raw_syscalls/ {print $1}')
  else
    sleep "$((secs - 1))"
  fi
  c1=$(cpu); k1=$(cpu "$h"); t1=$(date +%s.%N)
  wait "$h"
  local out rps data ok us
  out=$(cat "$work/out")
  rps=$(grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)' <<<"$out")
  ok=$(grep -oP 'requests: .* \K[0-9]+(?= succeeded)' <<<"$out")
  data=$(grep -oP 'traffic: .*\(\d+\) data' <<<"$out" | grep -oP '\(\K\d+(?=\) data)' | tail -1)
  us=$(python3 -c "print(f'{($c1 - $c0) / $ticks / ($t1 - $t0) / $rps * 1e6:.1f}')")
  local use
  use=$(python3 -c "w = $t1 - $t0; print(f'server {($c1 - $c0) / $ticks / w:.2f} cores, h2load {($k1 - $k0) / $ticks / w:.2f}, h2load {($k1 - $k0) / $ticks / w / $rps * 1e6:.1f} µs each')")
  [[ ! "$calls" =~ ^[0-9]+$ ]] || use="$use, $(python3 -c "print(f'{$calls / ($t1 - $t0) / $rps:.2f}')") system calls each"
  echo "$label $rps req/s ($ok succeeded, $((data / (ok > 0 ? ok : 1))) data bytes each), server CPU $us µs each ($use)"
  echo "$rps" >>"$work/$label"
  echo "$us" >>"$work/$label.cpu"
}
for i in $(seq "$pairs"); do
  run health http://127.0.0.1:$port/grpc.health.v1.Health/Check -d "$work/health.bin"
  # The same call carrying the same request headers as Locate: nghttp2 sends `authorization`
  # never-indexed, so each request carries and Huffman-codes its ~270 bytes on both sides.
  # That is transport, paid by bare tonic too; this pair isolates what gridcase adds.
  run health_auth http://127.0.0.1:$port/grpc.health.v1.Health/Check -d "$work/health.bin" \
    -H "authorization: Bearer $token"
  run locate http://127.0.0.1:$port/gridcase.v1.DirectoryService/Locate -d "$work/locate.bin" \
    -H "authorization: Bearer $token"
done
# h2load ends each run by closing its connections with 500 streams in flight: the server logs
# those calls (CANCELLED, or UNKNOWN when the connection went before the request body came), at
# most 500 a run (three runs a round). Anything else logged is a refusal, and would make the figures meaningless.
cut=$(grep ' rpc' "$work/server.log" | grep -Ec 'code=(Cancelled|Unknown)' || true)
refused=$(grep ' rpc' "$work/server.log" | grep -Evc 'code=(Cancelled|Unknown)' || true)
echo "# calls logged by the server: $cut cut off at the end of a run (at most $((pairs * 3 * 500))), $refused others (must be 0)"
grep ' rpc' "$work/server.log" | grep -Ev 'code=(Cancelled|Unknown)' | head -3 || true
python3 - "$work" <<'PY'
import statistics, sys
def read(name):
    return [float(x) for x in open(f"{sys.argv[1]}/{name}")]
h, ha, l = read("health"), read("health_auth"), read("locate")
hc, hac, lc = read("health.cpu"), read("health_auth.cpu"), read("locate.cpu")
for name, base, base_cpu in (("Health/Check", h, hc), ("Health/Check with Locate's headers", ha, hac)):
    pairs = [b / a for a, b in zip(base, l)]
    cpu = [a / b for a, b in zip(base_cpu, lc)]
    print(f"locate / {name}: {statistics.mean(l):.0f} / {statistics.mean(base):.0f} req/s; "
          f"per round {', '.join(f'{r:.2f}' for r in pairs)}; mean {statistics.mean(pairs):.2f}, "
          f"median {statistics.median(pairs):.2f}; "
          f"server CPU per call {statistics.mean(lc):.1f} / {statistics.mean(base_cpu):.1f} µs, "
          f"ratio per round {', '.join(f'{r:.2f}' for r in cpu)}; mean {statistics.mean(cpu):.2f} (target >= 0.80)")
PY
[ "$refused" = 0 ] && [ "$cut" -le $((pairs * 3 * 500)) ]
