#!/usr/bin/env bash
# Checks that the library, the CLI and the SDK compile for the other systems Capsule
# promises, warnings as errors (called by scripts/test.sh; the containerd shim is
# Linux-only and not checked):
#
#   x86_64-pc-windows-gnu   cargo build (linked with mingw-w64, x86_64-w64-mingw32-gcc):
#                           the integration tests `windows` run this capsule.exe under
#                           Wine (their build of it is this command, so a no-op after it)
#   x86_64-apple-darwin     cargo check; ring's and wasmtime's C with this machine's
#   aarch64-apple-darwin    clang, against the few Apple SDK headers they include, stood
#                           in for by scripts/cross/macos-include (declarations only:
#                           a check links nothing)
#
# The targets are added by scripts/install-test-deps.sh. All three share the one target
# directory (CARGO_TARGET_DIR), each in its own subdirectory.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings"
export CARGO_TARGET_X86_64_APPLE_DARWIN_RUSTFLAGS="-D warnings"
export CARGO_TARGET_AARCH64_APPLE_DARWIN_RUSTFLAGS="-D warnings"
resource=$(clang -print-resource-dir)/include
include="$PWD/scripts/cross/macos-include"
for arch in x86_64 aarch64; do
    target="${arch}_apple_darwin"
    export "CC_${target}=clang"
    export "CFLAGS_${target}=--target=${arch}-apple-darwin -ffreestanding -nostdinc -isystem $resource -I$include"
done

echo "== cargo build --target x86_64-pc-windows-gnu (the library, the CLI, the SDK)" >&2
cargo build --locked -p capsule-runtime -p capsule-sdk --lib --bins --target x86_64-pc-windows-gnu
for target in x86_64-apple-darwin aarch64-apple-darwin; do
    echo "== cargo check --target $target (the library, the CLI, the SDK)" >&2
    cargo check --locked -p capsule-runtime -p capsule-sdk --lib --bins --target "$target"
done
