#!/usr/bin/env bash
# Builds library-api and prints the path of what it built on stdout.
#
#   examples/library-api/build.sh           # wasm32-wasip1 -> examples/library-api/library-api.wasm,
#                                           # where the Capsulefile COPYs it from
#   examples/library-api/build.sh --native  # the same code as a native program (binds with --bind ADDR)
#   examples/library-api/build.sh --wasip2  # the same code for wasm32-wasip2 (binds with --bind ADDR
#                                           # under wasmtime run -S inherit-network)
#
# Adds the wasm32 target with rustup when it is missing. Its own workspace and target
# directory (examples/library-api/target), whatever the caller's environment says.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)

mode=${1:-wasip1}
case "$mode" in
    wasip1 | --wasip1) target=wasm32-wasip1 ;;
    --wasip2) target=wasm32-wasip2 ;;
    --native) target= ;;
    *) echo "build.sh: unknown option $mode (try --native, --wasip2 or nothing)" >&2; exit 2 ;;
esac

if [ -n "$target" ] && ! rustup target list --installed | grep -qx "$target"; then
    echo "== rustup target add $target" >&2
    rustup target add "$target"
fi

build() {
    echo "== cargo build --release $* (examples/library-api)" >&2
    env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
        cargo build --release --locked --manifest-path Cargo.toml --target-dir target "$@" >&2
}

if [ -z "$target" ]; then
    build
    echo "$here/target/release/library-api"
elif [ "$target" = wasm32-wasip2 ]; then
    build --target "$target"
    echo "$here/target/$target/release/library-api.wasm"
else
    build --target "$target"
    cp "target/$target/release/library-api.wasm" library-api.wasm
    echo "$here/library-api.wasm"
fi
