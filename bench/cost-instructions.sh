#!/usr/bin/env bash
# Cost per request (issue 20) in instructions: what the server executes to answer one call,
# counted by callgrind, so that the figure is the same run after run whatever else the machine
# does (bench/cost.sh's rates move by a tenth between runs on a shared two-core machine).
#
#   bench/cost-instructions.sh                 # builds target/release/gridcase
#   BIN=/path/to/gridcase N=5000 bench/cost-instructions.sh
#
# The server runs under valgrind (callgrind) with the demo directory on SQLite, access_log
# errors, rate limits and the alerts watcher off. Instructions are counted only inside hyper's
# HTTP/2 server futures (`--toggle-collect`): the connection (reading, HPACK, framing, writing)
# and each stream's task, which is where a call's tower layers, routing, auth, handler and
# encoding run. The scheduler, the directory and rules watchers and tokio's idle loop are left
# out, so what is counted is the calls' own work. h2load sends N calls (10 connections x 10
# streams) of each of: Health/Check; Health/Check with Locate's `authorization` header;
# Locate as a grid member (HS256). Prints instructions per call and the two ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${N:-5000}"
command -v valgrind >/dev/null && command -v h2load >/dev/null || {
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq valgrind nghttp2-client >/dev/null
}
if [ -z "${BIN:-}" ]; then
  cargo build --quiet --release --bin gridcase
  BIN=target/release/gridcase
fi
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export GRIDCASE_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
export GRIDCASE_RATE_LIMITS=off GRIDCASE_ALERTS=off
export GRIDCASE_DATA_DIR="$work/data"
export GRIDCASE_DATABASE_URL="sqlite://$work/gridcase.db?mode=rwc"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GRIDCASE_LISTEN="127.0.0.1:$port"
up() { for _ in $(seq 1200); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.5; done; exit 1; }
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F); $BIN; N=$n"
# The demo directory is loaded at native speed, then the server starts again under callgrind.
"$BIN" serve --demo >"$work/load.log" 2>&1 &
pid=$!
up
kill "$pid"; wait "$pid" || true
valgrind --tool=callgrind --instr-atstart=no --toggle-collect='*hyper*proto*h2*server*' \
  --callgrind-out-file="$work/cg.%p" "$BIN" serve >"$work/server.log" 2>&1 &
pid=$!
up
token=$("$BIN" token --sub gm-371102001001001 --role grid_member --ttl 2h)
printf '\0\0\0\0\0' >"$work/health.bin"
python3 - "$work/locate.bin" <<'PY'
import struct, sys
# LocateRequest { lat = 1 (double), lon = 2 (double), coord_system = 3 (WGS84 = 1) }
body = b"\x09" + struct.pack("<d", 35.5501632) + b"\x11" + struct.pack("<d", 119.0629968) + b"\x18\x01"
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(body)) + body)
PY
base="http://127.0.0.1:$port"
health=("$base/grpc.health.v1.Health/Check" -d "$work/health.bin")
health_auth=("${health[@]}" -H "authorization: Bearer $token")
locate=("$base/gridcase.v1.DirectoryService/Locate" -d "$work/locate.bin" -H "authorization: Bearer $token")
load() { h2load -c 10 -m 10 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' "$@"; }
# Warm-up, uncounted: connections, caches, the Locate answer's kept part.
load -n 2000 "${health[@]}" >/dev/null
load -n 2000 "${locate[@]}" >/dev/null
count() { # label, h2load arguments...
  local label=$1; shift
  callgrind_control -z "$pid" >/dev/null 2>&1
  callgrind_control -i on "$pid" >/dev/null 2>&1
  local ok
  ok=$(load -n "$n" "$@" | grep -oP 'requests: .* \K[0-9]+(?= succeeded)')
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$label" "$pid" >/dev/null 2>&1
  [ "$ok" = "$n" ] || { echo "$label: only $ok of $n calls succeeded" >&2; exit 1; }
  local file total
  file=$(grep -l "^desc: Trigger: dump $label\$" "$work"/cg.* | head -1)
  total=$(grep -oP '^totals: \K[0-9]+' "$file")
  echo "$((total / n))" >"$work/$label"
  echo "$label: $((total / n)) instructions per call"
}
count health "${health[@]}"
count health_auth "${health_auth[@]}"
count locate "${locate[@]}"
if grep ' rpc' "$work/server.log" | grep -q .; then
  echo "the server logged refused calls:" >&2; grep ' rpc' "$work/server.log" | head -3 >&2; exit 1
fi
python3 - "$work" <<'PY'
import sys
h, ha, l = (int(open(f"{sys.argv[1]}/{n}").read()) for n in ("health", "health_auth", "locate"))
print(f"Health/Check / Locate: {h / l:.3f}; Health/Check with Locate's headers / Locate: {ha / l:.3f} (target >= 0.80)")
PY
