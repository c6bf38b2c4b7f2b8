#!/usr/bin/env bash
# Runs the console's end-to-end tests against a gridcase binary that embeds the built console:
#   console/build.sh && cargo build --bin gridcase && console/e2e/run.sh
# GRIDCASE_BIN picks another binary; screenshots land in console/e2e/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --ignore-scripts --no-audit --no-fund
exec node --test --test-concurrency=1 e2e/
