#!/usr/bin/env bash
# The long run of the generated differential test of WASI preview1 (not part of the
# test command, which runs a fixed set of seeds): random seeds for SECONDS (default
# 600), each a sequence of raw preview1 calls run under Capsule and under
# wasmtime-wasi. Every divergence is shrunk to a minimal reproducer, printed with both
# transcripts and the `capsule run` command that replays it; the run fails if any.
#
#   scripts/fuzz-wasi.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export CAPSULE_FUZZ_SECONDS="${1:-600}"
exec cargo test --locked -p capsule-tests --test integration \
    wasi_fuzz::generated_preview1_calls_agree_with_the_reference -- --exact --nocapture
