#!/usr/bin/env bash
# Fetches the wheels of requirements.txt for the image's `pip install`, which has no
# network: a build's RUN is sandboxed. Run it once before `capsule build`:
#
#   1. pip downloads exactly the pins of requirements.lock (each with its sha256,
#      --require-hashes) as pure-Python wheels for CPython 3.15 into a cache OUTSIDE the
#      repository: $CAPSULE_DJANGO_WHEELS, else ${XDG_CACHE_HOME:-~/.cache}/capsule/django-wheels.
#      Wheels already there with the pinned hash are not downloaded again.
#   2. It stages them in .wheels/ beside this script, in the build context, where the
#      Capsulefile's `RUN --mount=type=bind,source=.wheels,target=/wheels` finds them
#      (.gitignore keeps them out of git; see README.md for why they stay in the context).
#
# requirements.lock must name the same versions as requirements.txt: it says so and
# stops when they differ. Prints the staged directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${CAPSULE_DJANGO_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/capsule/django-wheels}

fail() { echo "django example: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || fail "python3 is missing; run: apt-get install -y python3 python3-pip"
mkdir -p "$cache" || fail "cannot create the cache directory $cache (set CAPSULE_DJANGO_WHEELS to a writable directory)"

# What the lock pins, checked against requirements.txt: one line per wheel,
# "NAME VERSION SHA256" (NAME normalized as in wheel file names).
pins=$(python3 - "$here/requirements.txt" "$here/requirements.lock" <<'PY'
import re, sys

def norm(name):
    return re.sub(r"[-_.]+", "_", name).lower()

def logical_lines(path):
    text = open(path, encoding="utf-8").read().replace("\\\n", " ")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--hash") else line.strip()
        if line:
            yield number, line

def requirements(path, hashed):
    found = {}
    for number, line in logical_lines(path):
        words = line.split()
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", words[0])
        if not m:
            sys.exit(f"{path}:{number}: not NAME==VERSION: {words[0]}")
        hashes = [w.split(":", 1)[1] for w in words[1:] if w.startswith("--hash=sha256:")]
        if len(words) - 1 != len(hashes):
            sys.exit(f"{path}:{number}: only --hash=sha256:HEX may follow the pin: {line}")
        if hashed and len(hashes) != 1:
            sys.exit(f"{path}:{number}: {m[1]} needs exactly one --hash=sha256:")
        if not hashed and hashes:
            sys.exit(f"{path}:{number}: hashes belong in requirements.lock")
        if hashed and not re.fullmatch(r"[0-9a-f]{64}", hashes[0]):
            sys.exit(f"{path}:{number}: not a sha256: {hashes[0]}")
        found[norm(m[1])] = (m[2], hashes[0] if hashed else None)
    return found

txt, lock = sys.argv[1], sys.argv[2]
wanted, locked = requirements(txt, False), requirements(lock, True)
if {k: v for k, (v, _) in wanted.items()} != {k: v for k, (v, _) in locked.items()}:
    show = lambda d: ", ".join(f"{k}=={v}" for k, (v, _) in sorted(d.items()))
    sys.exit(f"requirements.lock does not pin what requirements.txt does:\n"
             f"  requirements.txt:  {show(wanted)}\n  requirements.lock: {show(locked)}\n"
             f"update the lock (pip download --no-deps NAME==VERSION, sha256sum the wheel)")
for name, (version, digest) in sorted(locked.items()):
    print(name, version, digest)
PY
) || fail "fix requirements.txt / requirements.lock (above)"

# The cached wheel of NAME VERSION with the pinned SHA256, or nothing.
cached() {
    local f
    for f in "$cache/$1-$2-"*.whl; do
        [ -f "$f" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$3" ] && { echo "$f"; return; }
    done
    return 0
}

missing=0
while read -r name version digest; do
    [ -n "$(cached "$name" "$version" "$digest")" ] || missing=1
done <<<"$pins"
if [ "$missing" = 1 ]; then
    python3 -m pip --version >/dev/null 2>&1 || fail "pip is missing; run: apt-get install -y python3-pip"
    echo "django example: pip download of requirements.lock into $cache" >&2
    python3 -m pip download --quiet --disable-pip-version-check \
        --only-binary=:all: --platform any --python-version 3.15 --implementation py \
        --no-deps --require-hashes -r "$here/requirements.lock" -d "$cache" >&2 ||
        fail "pip download failed; run by hand: python3 -m pip download --no-deps --require-hashes --only-binary=:all: -r '$here/requirements.lock' -d '$cache'"
fi

staged="$here/.wheels"
rm -rf "$staged.tmp"
mkdir -p "$staged.tmp"
while read -r name version digest; do
    wheel=$(cached "$name" "$version" "$digest")
    [ -n "$wheel" ] || fail "no wheel of $name $version with sha256 $digest in $cache after pip download"
    case "$wheel" in
        *-none-any.whl) ;;
        *) fail "$wheel is not a pure-Python wheel (py3-none-any): CPython for WASI cannot load native code" ;;
    esac
    cp "$wheel" "$staged.tmp/"
done <<<"$pins"
rm -rf "$staged"
mv "$staged.tmp" "$staged"
echo "django example: $(wc -l <<<"$pins") wheels checked and staged in $staged" >&2
echo "$staged"
