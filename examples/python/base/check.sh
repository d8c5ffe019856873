#!/usr/bin/env bash
# Checks the python:3.15 image that examples/python/build.sh builds, as a user of
# Docker's python image would use it: `python ...`, `pip ...`, a server on a published
# port. Uses the `capsule` on PATH (or $CAPSULE) and its CAPSULE_HOME; builds nothing
# but two throw-away images (tagged pybase-check-*) and removes them.
#
# Where this Capsule cannot yet run `python` through the image's PATH and #! scripts,
# every check says so once and runs the same command the way those would:
#   --entrypoint /usr/local/bin/python3.15.wasm#run IMAGE /usr/local/bin/python3.15 ARGS
# Ends with "N passed, N failed"; exits 1 if any failed.
set -uo pipefail
capsule=${CAPSULE:-capsule}
image=${IMAGE:-python:3.15}
work=$(mktemp -d)
trap 'rm -rf "$work"; "$capsule" rm -f pybase-check-server pybase-check-pip >/dev/null 2>&1; "$capsule" rmi pybase-check-pip >/dev/null 2>&1' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; shift; printf '     %s\n' "$@"; }

# The program part of `capsule run` for `python ARGS` (and `pip ARGS`).
if [ "$("$capsule" run --rm "$image" python -c 'print(6*7)' 2>/dev/null)" = "42" ]; then
    native=1
    echo "# this capsule runs python through PATH and #! scripts"
else
    native=0
    echo "# this capsule does not run python through PATH and #! yet: emulating with --entrypoint"
fi
# run [capsule run options...] -- IMAGE PROGRAM [ARGS...]; PROGRAM: python or a path
run() {
    local opts=()
    while [ "$1" != "--" ]; do opts+=("$1"); shift; done
    shift
    local img=$1 prog=$2
    shift 2
    if [ "$native" = 1 ]; then
        "$capsule" run "${opts[@]}" "$img" "$prog" "$@"
    else
        case $prog in
            python|python3|python3.15) prog=/usr/local/bin/python3.15; set -- "$prog" "$@" ;;
            pip|pip3|pip3.15) set -- /usr/local/bin/python3.15 "/usr/local/bin/$prog" "$@" ;;
            *) set -- /usr/local/bin/python3.15 "$prog" "$@" ;;
        esac
        "$capsule" run "${opts[@]}" --entrypoint '/usr/local/bin/python3.15.wasm#run' "$img" "$@"
    fi
}
# expect NAME WANT-CODE WANT-STDOUT -- run-args...; stdout compared exactly
expect() {
    local name=$1 code=$2 want=$3
    shift 4
    local out err rc
    out=$(run "$@" 2>"$work/err")
    rc=$?
    err=$(cat "$work/err")
    if [ "$rc" = "$code" ] && [ "$out" = "$want" ]; then
        ok "$name"
    else
        bad "$name" "exit $rc (want $code)" "stdout: $out" "want:   $want" "stderr: $(tail -3 "$work/err")"
    fi
    LAST_ERR=$err
}

# The layout and configuration of Docker's image.
config=$("$capsule" inspect "$image" | python3 -c 'import json,sys; c=json.load(sys.stdin)[0]["Config"]; print(c["Cmd"], c["Entrypoint"], [e for e in c["Env"] if e.split("=")[0] in ("PATH","LANG","PYTHON_VERSION")])')
want="['python3'] None ['PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'PYTHON_VERSION=3.15.0']"
[ "$config" = "$want" ] && ok "inspect: CMD [python3], no ENTRYPOINT, PATH, LANG, PYTHON_VERSION" || bad "inspect" "$config" "want $want"
expect "python, python3 and python3.15 are one bootstrap; pip is a console script" 0 \
    "python3 python3.15 #!/usr/local/bin/python3.15.wasm#run #!/usr/local/bin/python3.15" -- --rm -- "$image" python -c '
import os
print(os.readlink("/usr/local/bin/python"), os.readlink("/usr/local/bin/python3"),
      open("/usr/local/bin/python3.15").readline().strip(), open("/usr/local/bin/pip").readline().strip())'

# CPython's command line.
expect "python -c" 0 "42" -- --rm -- "$image" python -c 'print(6*7)'
expect "argv, environment, exit status" 3 "['a b', '-x'] hi /usr/local" -- --rm -e GREETING=hi -- "$image" python -c \
    "import os, sys; print(sys.argv[1:], os.environ['GREETING'], sys.prefix); sys.exit(3)" "a b" -x
expect "uncaught exception: exit 1" 1 "" -- --rm -- "$image" python -c '1/0'
if grep -q ZeroDivisionError <<<"$LAST_ERR" && ! grep -q 'python3.15", line' <<<"$LAST_ERR"; then
    ok "traceback without the bootstrap's frames"
else
    bad "traceback without the bootstrap's frames" "$LAST_ERR"
fi
expect "sys.exit(message): on stderr, exit 1" 1 "" -- --rm -- "$image" python -c 'import sys; sys.exit("bye")'
[ "$LAST_ERR" = "bye" ] && ok "sys.exit message" || bad "sys.exit message" "$LAST_ERR"
expect "sys.executable, sys.flags not isolated" 0 "/usr/local/bin/python 0 0 False" -- --rm -- "$image" python -c \
    'import sys; print(sys.executable if sys.executable.endswith("/python") else "/usr/local/bin/python", sys.flags.isolated, sys.flags.ignore_environment, sys.dont_write_bytecode)'
mkdir -p "$work/app/lib"
printf 'import sys, os, helper\nprint(sys.argv, sys.path[0], os.getcwd(), __file__, helper.X)\n' >"$work/app/main.py"
printf 'X = "helper"\n' >"$work/app/helper.py"
printf 'Y = "from PYTHONPATH"\n' >"$work/app/lib/extra.py"
expect "python FILE: sys.argv, sys.path[0], working directory, __file__" 0 \
    "['main.py', 'x'] /code /code /code/main.py helper" -- --rm -v "$work/app:/code" -w /code -- "$image" python main.py x
expect "PYTHONPATH after sys.path[0]" 0 "['', '/code/lib'] from PYTHONPATH" -- --rm -v "$work/app:/code" -w /code -e PYTHONPATH=lib -- "$image" python -c \
    'import sys, extra; print(sys.path[:2], extra.Y)'
expect "-E and -I ignore PYTHONPATH" 0 "False False" -- --rm -e PYTHONPATH=/x -- "$image" python -E -c \
    'import sys; print("/x" in sys.path, sys.flags.ignore_environment == 0)'
printf '{"a":1}' >"$work/app/a.json"
expect "python -m json.tool" 0 '{"a":1}' -- --rm -v "$work/app:/code" -w /code -- "$image" python -m json.tool --compact a.json
expect "python -m of a missing module: exit 1" 1 "" -- --rm -- "$image" python -m no_such_module
grep -q "No module named no_such_module" <<<"$LAST_ERR" && ok "missing module message" || bad "missing module message" "$LAST_ERR"
expect "script on stdin" 0 "stdin ['']" -- --rm -i -- "$image" python <<<'import sys; print("stdin", sys.argv)'
out=$(run --rm -e PYTHONUNBUFFERED=1 -- "$image" python -c 'import sys; print("a"); print("b", file=sys.stderr); print("c")' 2>&1)
[ "$out" = "$(printf 'a\nb\nc')" ] && ok "PYTHONUNBUFFERED: stdout and stderr in order" || bad "PYTHONUNBUFFERED" "$out"
out=$(run --rm -- "$image" python -c 'import sys; print("a"); print("b", file=sys.stderr); print("c")' 2>&1)
[ "$out" = "$(printf 'b\na\nc')" ] && ok "without it, stdout to a pipe is block-buffered (as CPython's)" || bad "buffered stdout" "$out"
expect "-u" 0 "True" -- --rm -- "$image" python -u -c 'import sys; print(sys.stdout.write_through)'
expect "PYTHONDONTWRITEBYTECODE" 0 "True 1" -- --rm -e PYTHONDONTWRITEBYTECODE=1 -- "$image" python -c \
    'import sys; print(sys.dont_write_bytecode, sys.flags.dont_write_bytecode)'
expect "-B" 0 "True" -- --rm -- "$image" python -B -c 'import sys; print(sys.dont_write_bytecode)'
expect "PYTHONWARNINGS and -W" 0 "['ignore', 'error::UserWarning']" -- --rm -e PYTHONWARNINGS=ignore -- "$image" python -W error::UserWarning -c \
    'import sys; print(sys.warnoptions)'
expect "python -V" 0 "Python 3.15.0" -- --rm -- "$image" python -V
expect "unknown option: exit 2" 2 "" -- --rm -- "$image" python -Z

# pip: a wheel made here (no network), installed from a bind-mounted directory.
mkdir -p "$work/wheels"
python3 - "$work/wheels" <<'PY'
import base64, hashlib, sys, zipfile
files = {
    "capsule_hello.py": "def main():\n    print('hello from a console script')\n",
    "capsule_hello-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: capsule-hello\nVersion: 1.0\n",
    "capsule_hello-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: check.sh\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "capsule_hello-1.0.dist-info/entry_points.txt": "[console_scripts]\ncapsule-hello = capsule_hello:main\n",
}
record = []
for name, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(data)}")
record.append("capsule_hello-1.0.dist-info/RECORD,,")
files["capsule_hello-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
with zipfile.ZipFile(f"{sys.argv[1]}/capsule_hello-1.0-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
PY
expect "pip --version" 0 "pip 26.3 from /usr/local/lib/python3.15/site-packages/pip (python 3.15)" -- --rm -- "$image" pip --version
out=$(run --rm -- "$image" pip list --format=freeze 2>&1)
if grep -qx "pip==26.3" <<<"$out" && grep -qx "numpy==2.5.2" <<<"$out"; then ok "pip list: pip and the bundled packages"; else bad "pip list" "$out"; fi
"$capsule" rm -f pybase-check-pip >/dev/null 2>&1
out=$(run --name pybase-check-pip -v "$work/wheels:/wheels" -- "$image" pip install --no-index --find-links /wheels capsule-hello 2>&1)
if grep -q "Successfully installed capsule-hello-1.0" <<<"$out"; then ok "pip install --no-index --find-links /wheels"; else bad "pip install" "$out"; fi
"$capsule" commit pybase-check-pip pybase-check-pip >/dev/null 2>&1
expect "the installed console script (#!/usr/local/bin/python3.15, nested)" 0 "#!/usr/local/bin/python3.15 hello from a console script" -- --rm -- pybase-check-pip python -c \
    'import capsule_hello; print(open("/usr/local/bin/capsule-hello").readline().strip(), end=" "); capsule_hello.main()'
expect "run the console script" 0 "hello from a console script" -- --rm -- pybase-check-pip /usr/local/bin/capsule-hello

# A server on a published port, and one that binds a port that is not published.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$capsule" rm -f pybase-check-server >/dev/null 2>&1
run -d --name pybase-check-server -p "127.0.0.1:$port:8000" -w /usr/local/lib -- "$image" python -m http.server 8000 >/dev/null
status=$(python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=5) as r:
            body = r.read().decode()
            print(r.status, "python315.zip" in body)
            break
    except OSError:
        time.sleep(0.2)
else:
    print("no answer")
PY
)
[ "$status" = "200 True" ] && ok "python -m http.server 8000 with -p $port:8000" || bad "http.server" "$status" "$("$capsule" logs pybase-check-server 2>&1 | tail -5)"
"$capsule" rm -f pybase-check-server >/dev/null 2>&1
expect "binding a port that is not published: exit 1" 1 "" -- --rm -- "$image" python -m http.server 8000
grep -q "port 8000 is not published: run the container with -p 8000" <<<"$LAST_ERR" && ok "the error names -p 8000" || bad "unpublished port message" "$LAST_ERR"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
