#!/usr/bin/env bash
# Capsule's benchmark command (not a test): builds a release `capsule` and reports
# medians from one run. Needs hyperfine (installed from Debian when missing) and, for
# the comparison, a wasmtime CLI on PATH (cargo install wasmtime-cli --version 48.0.8).
#
#   scripts/bench.sh            # start-up: hello-world cold and warm, vs wasmtime run
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v hyperfine >/dev/null 2>&1; then
    echo "bench: installing hyperfine (apt-get install -y hyperfine)" >&2
    apt-get install -y -qq hyperfine >/dev/null || { echo "bench: run: apt-get install -y hyperfine" >&2; exit 1; }
fi
cargo build --release --locked -p capsule-runtime --bin capsule >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec python3 scripts/bench.py --capsule "$target_dir/release/capsule" --target-dir "$target_dir" "$@"
