#!/usr/bin/env bash
# The one command that installs what the tests need and runs every test:
#   formatting, clippy (all targets, warnings are errors), unit tests, and the
#   integration tests that drive the real `capsule` binary and the SDK over real guests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check

echo "== cargo clippy --all-targets" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
# The tests' binary has the crash points (runtime/src/failpoint.rs) compiled in.
cargo clippy --workspace --all-targets --locked --features capsule-runtime/failpoints -- -D warnings

# Windows and macOS: the library, the CLI and the SDK compile (warnings are errors).
scripts/check-targets.sh

echo "== cargo test" >&2
cargo test --workspace --locked
