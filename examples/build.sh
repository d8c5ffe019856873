#!/usr/bin/env bash
# Builds the example programs (examples/guests) for wasm32-wasip1 and copies them into
# the build contexts of the image examples, where their Capsulefiles COPY them from:
#   layered-app/base/bin/catalog.wasm
#   multi-stage/bin/mkindex.wasm, multi-stage/bin/show.wasm
set -euo pipefail
cd "$(dirname "$0")"

target=wasm32-wasip1
if ! rustup target list --installed | grep -qx "$target"; then
    echo "== rustup target add $target" >&2
    rustup target add "$target"
fi

echo "== cargo build --release --target $target (examples/guests)" >&2
# Built as its own workspace with its own target directory, whatever the caller's
# environment says.
env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
    cargo build --release --target "$target" \
    --manifest-path guests/Cargo.toml --target-dir guests/target

out="guests/target/$target/release"
install_wasm() {
    mkdir -p "$(dirname "$2")"
    cp "$out/$1.wasm" "$2"
    echo "$2" >&2
}
install_wasm catalog layered-app/base/bin/catalog.wasm
install_wasm mkindex multi-stage/bin/mkindex.wasm
install_wasm show multi-stage/bin/show.wasm
