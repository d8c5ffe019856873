#!/usr/bin/env bash
# Builds the example WASI 0.2 components of examples/components into OUT_DIR:
#
#   scripts/build-components.sh [OUT_DIR] [NAME...]
#
#   OUT_DIR  where the components go (default: examples/components/out)
#   NAME     hello, http-rust, kv, notes-api, http-python, http-js (default: all six)
#
#   hello.wasm        Rust, wasm32-wasip2 (cargo; the target is added with rustup)
#   http-rust.wasm    Rust, wasm32-wasip2, wstd (cargo)
#   kv.wasm           Rust, wasm32-wasip2, std only: a key-value server and client over TCP (cargo)
#   notes-api.wasm    Rust, wasm32-wasip2, wstd: a wasi:http notes API that keeps its data in kv (cargo)
#   http-python.wasm  Python, componentize-py from PyPI (a venv in the tools directory)
#   http-js.wasm      JavaScript, componentize-js from npm (npm ci in examples/components/http-js)
#
# It prints the path of each component on stdout, what it does on stderr. Every download
# is pinned: Cargo.lock (cargo --locked), build-requirements.txt (pip --require-hashes),
# package-lock.json (npm ci). Installs have time limits; a missing tool stops the build
# with the command that installs it. Run again with nothing changed, it only checks: cargo
# finds nothing to do, and a Python or JS component whose inputs (sources, WIT, lock
# files, tool versions) hash as before is kept.
#
# Environment:
#   CAPSULE_TOOLS_DIR       the tools directory (default: $HOME/.cache/capsule-tools),
#                           which holds componentize-py's venv
#   COMPONENTS_TARGET_DIR   cargo's target directory (default: examples/components/target)
#   INSTALL_TIMEOUT         seconds an install may take (default: 600)
#   BUILD_TIMEOUT           seconds one build may take (default: 1200)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
comps="$root/examples/components"
out=${1:-$comps/out}
[ $# -gt 0 ] && shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(hello http-rust kv notes-api http-python http-js)

tools=${CAPSULE_TOOLS_DIR:-$HOME/.cache/capsule-tools}
target_dir=${COMPONENTS_TARGET_DIR:-$comps/target}
install_timeout=${INSTALL_TIMEOUT:-600}
build_timeout=${BUILD_TIMEOUT:-1200}

COMPONENTIZE_PY_VERSION=0.25.1

say() { echo "== $*" >&2; }
now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
took() { # took START: seconds since START, to a tenth
    awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1fs", e - s }'
}
die() {
    echo "build-components.sh: $1" >&2
    [ $# -gt 1 ] && echo "  fix: $2" >&2
    exit 1
}
need() { # need COMMAND FIX
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed" "$2"
}
# GNU timeout (macOS: coreutils' gtimeout) and a sha256 tool.
if command -v timeout >/dev/null 2>&1; then timeout_cmd=timeout
elif command -v gtimeout >/dev/null 2>&1; then timeout_cmd=gtimeout
else die "timeout is not installed" "apt-get install coreutils (macOS: brew install coreutils)"
fi
sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi; }
# Runs a command with a time limit; a command that runs out of it is named.
limited() { # limited SECONDS COMMAND...
    local seconds=$1 status=0
    shift
    "$timeout_cmd" --kill-after=10 "$seconds" "$@" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        die "timed out after ${seconds}s: $*" "run it again (downloads resume from the caches), or raise INSTALL_TIMEOUT/BUILD_TIMEOUT"
    fi
    return "$status"
}
# A component file: the wasm magic, then version 0x0d and layer 1 (a core module has 1, 0).
check_component() { # check_component FILE
    local header
    header=$(od -An -tx1 -N8 "$1" | tr -d ' \n')
    [ "$header" = 0061736d0d000100 ] || die "$1 is not a WebAssembly component (header $header)"
}
# The hash of the named files and extra words: the key a cached output is kept by.
inputs_hash() { # inputs_hash WORDS -- FILES...
    local words=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do words+=("$1"); shift; done
    shift
    { printf '%s\n' "${words[@]}"; sha256 "$@"; } | sha256 | cut -d' ' -f1
}
# Runs a build whose output is kept while its inputs hash the same.
cached() { # cached NAME KEY COMMAND... (COMMAND writes $out/NAME.wasm)
    local name=$1 key=$2 stamp="$out/.$1.inputs" start
    shift 2
    start=$(now)
    if [ -f "$out/$name.wasm" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
        say "$name: up to date"
        return
    fi
    rm -f "$stamp"
    "$@"
    check_component "$out/$name.wasm"
    echo "$key" >"$stamp"
    say "$name: $(wc -c <"$out/$name.wasm" | tr -d ' ') bytes, $(took "$start")"
}

for name in "${names[@]}"; do
    case "$name" in
        hello | http-rust | kv | notes-api | http-python | http-js) ;;
        *) die "unknown component $name" "name some of: hello http-rust kv notes-api http-python http-js" ;;
    esac
done
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
wants() { printf '%s\n' "${names[@]}" | grep -qx "$1"; }

# --- Rust: hello, http-rust, kv, notes-api -----------------------------------------------
rust_target=wasm32-wasip2
build_rust() { # build_rust NAME ARTIFACT
    local name=$1 artifact=$2 built start
    start=$(now)
    say "$name: cargo build --release --locked --target $rust_target"
    # Its own workspace; the caller's cargo settings do not leak in.
    limited "$build_timeout" env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
        -u CARGO_ENCODED_RUSTFLAGS cargo build --release --locked --target "$rust_target" \
        --manifest-path "$comps/$name/Cargo.toml" --target-dir "$target_dir" >&2 ||
        die "cargo could not build $name (the lines above say why)" \
            "cargo build --release --locked --target $rust_target --manifest-path $comps/$name/Cargo.toml"
    built="$target_dir/$rust_target/release/$artifact"
    check_component "$built"
    cmp -s "$built" "$out/$name.wasm" || cp "$built" "$out/$name.wasm"
    say "$name: $(wc -c <"$out/$name.wasm" | tr -d ' ') bytes, $(took "$start")"
}
if wants hello || wants http-rust || wants kv || wants notes-api; then
    need cargo "install Rust 1.95 or later with rustup (https://rustup.rs)"
    if ! rustc --print target-list 2>/dev/null | grep -qx "$rust_target"; then
        die "this Rust ($(rustc --version)) has no $rust_target target" "rustup update stable"
    fi
    if ! rustc --print sysroot >/dev/null 2>&1 ||
        [ ! -d "$(rustc --print sysroot)/lib/rustlib/$rust_target" ]; then
        need rustup "install the $rust_target standard library for $(rustc --version), or use rustup (https://rustup.rs)"
        say "rustup target add $rust_target"
        limited "$install_timeout" rustup target add "$rust_target" >&2 ||
            die "rustup could not add $rust_target" "rustup target add $rust_target"
    fi
    wants hello && build_rust hello hello.wasm
    wants http-rust && build_rust http-rust http_rust.wasm
    wants kv && build_rust kv kv.wasm
    wants notes-api && build_rust notes-api notes_api.wasm
fi

# --- Python: http-python -----------------------------------------------------------------
if wants http-python; then
    need python3 "apt-get install python3 python3-venv (Python 3.10 or later)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "componentize-py needs Python 3.10 or later, this is $(python3 --version)" "install Python 3.10 or later"
    venv="$tools/componentize-py-$COMPONENTIZE_PY_VERSION"
    reqs="$comps/http-python/build-requirements.txt"
    req_key=$(sha256 "$reqs" | cut -d' ' -f1)
    if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$req_key" ]; then
        say "http-python: componentize-py $COMPONENTIZE_PY_VERSION into $venv"
        rm -rf "$venv"
        mkdir -p "$tools"
        python3 -m venv "$venv" >&2 ||
            die "python3 cannot make a venv" "apt-get install python3-venv"
        limited "$install_timeout" "$venv/bin/pip" install --quiet --disable-pip-version-check \
            --require-hashes --only-binary=:all: -r "$reqs" >&2 ||
            die "pip could not install componentize-py" \
                "$venv/bin/pip install --require-hashes --only-binary=:all: -r $reqs"
        echo "$req_key" >"$venv/.installed"
    fi
    py_version=$("$venv/bin/componentize-py" --version)
    key=$(inputs_hash "$py_version" -- "$comps/http-python/app.py" "$comps"/wit/*.wit "$comps"/wit/deps/*.wit)
    build_python() {
        say "http-python: $py_version componentize app"
        # The app's directory is copied: the build leaves __pycache__ where the sources are.
        local src
        src=$(mktemp -d)
        cp "$comps/http-python/app.py" "$src/"
        limited "$build_timeout" "$venv/bin/componentize-py" --quiet -d "$comps/wit" \
            -w http-service componentize app -p "$src" -o "$out/http-python.wasm" >&2
        rm -rf "$src"
    }
    cached http-python "$key" build_python
fi

# --- JavaScript: http-js -----------------------------------------------------------------
if wants http-js; then
    need node "apt-get install nodejs npm (Node.js 18 or later)"
    need npm "apt-get install npm"
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' ||
        die "componentize-js needs Node.js 18 or later, this is $(node --version)" "install Node.js 18 or later"
    js="$comps/http-js"
    lock_key=$(sha256 "$js/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$js/node_modules/.capsule-installed" 2>/dev/null)" != "$lock_key" ]; then
        say "http-js: npm ci (componentize-js and its tools, as package-lock.json pins them)"
        limited "$install_timeout" npm ci --prefix "$js" --ignore-scripts --no-audit --no-fund \
            --loglevel=error >&2 ||
            die "npm ci failed in $js" "cd $js && npm ci --ignore-scripts"
        echo "$lock_key" >"$js/node_modules/.capsule-installed"
    fi
    cjs_version=$(node -p 'require(process.argv[1]).version' \
        "$js/node_modules/@bytecodealliance/componentize-js/package.json")
    key=$(inputs_hash "componentize-js $cjs_version" "node $(node --version)" -- \
        "$js/app.js" "$js/package-lock.json" "$js"/wit/*.wit "$js"/wit/deps/*.wit)
    build_js() {
        say "http-js: componentize-js $cjs_version"
        limited "$build_timeout" "$js/node_modules/.bin/componentize-js" --wit "$js/wit" \
            --world-name http-service --out "$out/http-js.wasm" "$js/app.js" >&2
    }
    cached http-js "$key" build_js
fi

for name in "${names[@]}"; do
    echo "$out/$name.wasm"
done
