#!/usr/bin/env bash
# Capsule's benchmark command (not a test): builds a release `capsule` and reports
# medians from one run. Needs hyperfine (installed from Debian when missing) and, for
# the comparison, a wasmtime CLI on PATH (cargo install wasmtime-cli --version 48.0.8).
#
#   scripts/bench.sh            # start-up: hello-world cold and warm, vs wasmtime run
#   scripts/bench.sh fs         # layered filesystem: set-up vs layer size, file-heavy guest
#   scripts/bench.sh build      # images: no-op rebuild, 100 MB context, run start-up by image size
#   scripts/bench.sh python     # CPython -c pass from the python:3.15 image vs wasmtime run --invoke
#   scripts/bench.sh first-run  # python:3.15 arriving by build, load and pull into an empty home: the verb, then its end to run's first line
#   scripts/bench.sh containers # run -d to guest running; memory of 100 idle containers vs wasmtime
#   scripts/bench.sh registry   # push and pull of a 100 MB image on loopback vs skopeo copy
#   scripts/bench.sh compose    # compose up -d of ten services to all running, and down
#   scripts/bench.sh django     # examples/django-library (Django REST framework on CPython for WASI): first 200 after run -d, wrk vs native CPython
#   scripts/bench.sh api        # examples/library-api under wrk: capsule -p vs wasmtime (wasip2) vs native
#   scripts/bench.sh plugins    # plugin calls through the pool (1 and 8 threads) vs instantiate per call; 1,000 live instances
#   scripts/bench.sh stress     # lifecycle races: stop, kill, rm -f, start, restart, rename, cp, run -d at once on 8 containers for 60 s, then the invariants (exit 1 on a violation)
#   scripts/bench.sh components # WASI 0.2: warm run of a command component, HTTP components under wrk; vs wasmtime run / serve
#   scripts/bench.sh network    # TCP round trips/s between two components (kv bench -> kv serve): capsule network by container name vs wasmtime run -S inherit-network
#   scripts/bench.sh shim       # containerd tasks/s of hello-world through containerd-shim-capsule-v1, as runwasi's stress test; ctr run --rm vs capsule run (root)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v hyperfine >/dev/null 2>&1; then
    echo "bench: installing hyperfine (apt-get install -y hyperfine)" >&2
    apt-get install -y -qq hyperfine >/dev/null || { echo "bench: run: apt-get install -y hyperfine" >&2; exit 1; }
fi
if [ "${1:-}" = shim ]; then
    shift
    # containerd, ctr, protoc and libseccomp for the shim's build; both binaries in one
    # build, so that wasmtime is compiled once with one set of features.
    scripts/install-test-deps.sh >&2
    cargo build --release --locked -p capsule-runtime -p containerd-shim-capsule --bins >&2
    target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    exec python3 scripts/bench_shim.py --capsule "$target_dir/release/capsule" \
        --shim "$target_dir/release/containerd-shim-capsule-v1" \
        --stress "$target_dir/release/capsule-shim-stress" "$@"
fi
cargo build --release --locked -p capsule-runtime --bin capsule >&2
# The `service` guest (tests/guests/c/service.c), built for the benchmarks that run containers.
service_guest() {
    local guest="$target_dir/bench-guests/service.wasm"
    mkdir -p "$(dirname "$guest")"
    scripts/install-test-deps.sh >&2
    clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug tests/guests/c/service.c -o "$guest"
    echo "$guest"
}
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ "${1:-}" = fs ]; then
    shift
    guest="$target_dir/bench-guests/fileheavy.wasm"
    mkdir -p "$(dirname "$guest")"
    scripts/install-test-deps.sh
    clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug tests/guests/bench/fileheavy.c -o "$guest"
    native="$target_dir/bench-guests/fileheavy-native"
    clang -O2 tests/guests/bench/fileheavy.c -o "$native"
    exec python3 scripts/bench_fs.py --capsule "$target_dir/release/capsule" --fileheavy "$guest" --native "$native" "$@"
fi
if [ "${1:-}" = python ]; then
    shift
    context=$(examples/python/fetch.sh)
    # The tests' shared module cache: CPython is compiled once per machine.
    exec python3 scripts/bench_python.py --capsule "$target_dir/release/capsule" --context "$context" \
        --module-cache "$target_dir/capsule-test-module-cache" "$@"
fi
if [ "${1:-}" = first-run ]; then
    shift
    scripts/install-test-deps.sh >&2
    context=$(examples/python/fetch.sh)
    exec python3 scripts/bench_first_run.py --capsule "$target_dir/release/capsule" --context "$context" "$@"
fi
if [ "${1:-}" = django ]; then
    shift
    if ! command -v wrk >/dev/null 2>&1; then
        echo "bench: installing wrk (apt-get install -y wrk)" >&2
        apt-get install -y -qq wrk >/dev/null || { echo "bench: run: apt-get install -y wrk" >&2; exit 1; }
    fi
    context=$(examples/python/fetch.sh)
    wheels=$(examples/django-library/wheels.sh)
    exec python3 scripts/bench_django.py --capsule "$target_dir/release/capsule" --base-context "$context" \
        --example examples/django-library --wheels "$wheels" \
        --module-cache "$target_dir/capsule-test-module-cache" "$@"
fi
if [ "${1:-}" = containers ]; then
    shift
    guest=$(service_guest)
    exec python3 scripts/bench_containers.py --capsule "$target_dir/release/capsule" --guest "$guest" "$@"
fi
if [ "${1:-}" = stress ]; then
    shift
    guest=$(service_guest)
    exec python3 scripts/stress_lifecycle.py --capsule "$target_dir/release/capsule" --guest "$guest" "$@"
fi
if [ "${1:-}" = compose ]; then
    shift
    guest=$(service_guest)
    exec python3 scripts/bench_compose.py --capsule "$target_dir/release/capsule" --guest "$guest" "$@"
fi
if [ "${1:-}" = registry ]; then
    shift
    scripts/install-test-deps.sh
    exec python3 scripts/bench_registry.py --capsule "$target_dir/release/capsule" "$@"
fi
if [ "${1:-}" = api ]; then
    shift
    if ! command -v wrk >/dev/null 2>&1; then
        echo "bench: installing wrk (apt-get install -y wrk)" >&2
        apt-get install -y -qq wrk >/dev/null || { echo "bench: run: apt-get install -y wrk" >&2; exit 1; }
    fi
    # The same code three ways: wasm32-wasip1 (the image), wasm32-wasip2 (wasmtime), native.
    wasip1=$(examples/library-api/build.sh)
    wasip2=$(examples/library-api/build.sh --wasip2)
    native=$(examples/library-api/build.sh --native)
    exec python3 scripts/bench_api.py --capsule "$target_dir/release/capsule" --example examples/library-api \
        --wasip1 "$wasip1" --wasip2 "$wasip2" --native "$native" "$@"
fi
if [ "${1:-}" = plugins ]; then
    shift
    # The Rust plugin of examples/plugin-host (plugins/rust, on sdk/guest), and the
    # benchmark program (examples/plugin-host/src/bin/capsule-plugin-bench.rs), which runs
    # in-process.
    cargo build --quiet --release --target wasm32-wasip1 --lib \
        --manifest-path examples/plugin-host/plugins/rust/Cargo.toml --target-dir "$target_dir/bench-guests/plugin" >&2
    cargo build --release --locked -p capsule-example-plugin-host --bin capsule-plugin-bench >&2
    exec "$target_dir/release/capsule-plugin-bench" "$target_dir/bench-guests/plugin/wasm32-wasip1/release/rust_plugin.wasm" "$@"
fi
if [ "${1:-}" = components ]; then
    shift
    if ! command -v wrk >/dev/null 2>&1; then
        echo "bench: installing wrk (apt-get install -y wrk)" >&2
        apt-get install -y -qq wrk >/dev/null || { echo "bench: run: apt-get install -y wrk" >&2; exit 1; }
    fi
    scripts/build-components.sh examples/components/out >/dev/null
    exec python3 scripts/bench_components.py --capsule "$target_dir/release/capsule" \
        --components examples/components/out "$@"
fi
if [ "${1:-}" = network ]; then
    shift
    scripts/build-components.sh examples/components/out kv >/dev/null
    exec python3 scripts/bench_network.py --capsule "$target_dir/release/capsule" \
        --kv examples/components/out/kv.wasm "$@"
fi
if [ "${1:-}" = build ]; then
    shift
    exec python3 scripts/bench_build.py --capsule "$target_dir/release/capsule" "$@"
fi
exec python3 scripts/bench.py --capsule "$target_dir/release/capsule" --target-dir "$target_dir" "$@"
