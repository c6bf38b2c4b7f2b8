#!/usr/bin/env bash
# The fuzz target `request` (issue 20) for a bounded time, as CI runs it:
#
#   fuzz/run.sh [SECONDS]        # default 60
#
# It builds the cargo-fuzz target with the stable toolchain: the flags below are cargo-fuzz's
# own (`cargo fuzz build --sanitizer none --dev`: libFuzzer's coverage instrumentation, compare
# tracing, debug assertions, `--cfg fuzzing`), so neither a nightly toolchain nor cargo-fuzz
# is needed. Without AddressSanitizer: gridcase has no unsafe code (`unsafe_code = "deny"`),
# and what this target looks for is panics, overflows, hangs and unbounded memory, which
# libFuzzer catches itself (-timeout, -rss_limit_mb, -malloc_limit_mb). The ASan run stays
# available with a nightly toolchain: `cargo +nightly fuzz run request`.
#
# A crash leaves its input in fuzz/artifacts/request/ and fails the script; replay it with
# `fuzz/target/<host triple>/debug/request fuzz/artifacts/request/<file>`.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions --cfg fuzzing"
# An explicit target, as cargo-fuzz gives: RUSTFLAGS then reach only the target's crates, not
# the build scripts and proc macros (which would not link without libFuzzer).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --locked --target "$host" --bin request
mkdir -p corpus/request artifacts/request
# One process, the time given; every input answered within 10 s, at most 2 GB of memory, no
# single allocation over 512 MB.
"target/$host/debug/request" corpus/request \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
  -artifact_prefix=artifacts/request/ -print_final_stats=1
