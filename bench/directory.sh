#!/usr/bin/env bash
# Directory benchmarks with the PostGIS baseline: installs Debian's PostGIS for the local
# PostgreSQL when it is missing, then runs `cargo bench --bench directory` against it.
# Figures go to stdout; BENCHMARKS.md records them with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
url="${GRIDCASE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
major=$(psql "$url" -Atc "SHOW server_version_num" | cut -c1-2)
if ! psql "$url" -Atc "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'" | grep -q 1; then
  echo "installing postgresql-${major}-postgis-3 from Debian" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "postgresql-${major}-postgis-3" >/dev/null
fi
GRIDCASE_BENCH_POSTGRES_URL="$url" cargo bench --bench directory
