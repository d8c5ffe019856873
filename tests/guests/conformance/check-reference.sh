#!/bin/sh
# Compiles every conformance guest (every *.c here) and runs it under the
# reference WASI implementation (the wasmtime CLI, wasmtime-wasi preview1),
# each in a fresh empty scratch directory mounted at /work, with its starting
# files (`PROG /work seeded`, see check.h), and prints each program's exit
# code. For humans; the tests do not call this script. The Rust guest
# (../rust, rust_std) is built by cargo; the differential test runs it.
#
#   tests/guests/conformance/check-reference.sh          # exit codes only
#   tests/guests/conformance/check-reference.sh -v       # also transcripts and trees
#   tests/guests/conformance/check-reference.sh fs_seek  # only some programs
#
# Environment: CC (default clang), WASMTIME (default wasmtime).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-clang}
wasmtime=${WASMTIME:-wasmtime}
verbose=0
if [ "${1:-}" = "-v" ]; then
    verbose=1
    shift
fi
if [ $# -eq 0 ]; then
    for src in "$here"/*.c; do
        set -- "$@" "$(basename "$src" .c)"
    done
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0
for prog in "$@"; do
    if ! "$cc" --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Wextra -Werror \
        -Wl,--strip-debug "$here/$prog.c" -o "$out/$prog.wasm"; then
        echo "$prog: COMPILE FAILED"
        failed=1
        continue
    fi
    scratch=$(mktemp -d "$out/scratch.XXXXXX")
    # stdin from /dev/null and stdout to a file: fs_stat prints the file
    # types of the standard streams, which are only deterministic when
    # neither is a terminal.
    set +e
    "$wasmtime" run --dir "$scratch::/work" "$out/$prog.wasm" /work seeded \
        </dev/null >"$out/$prog.stdout" 2>"$out/$prog.stderr"
    rc=$?
    set -e
    lines=$(wc -l <"$out/$prog.stdout")
    echo "$prog: exit $rc ($lines lines)"
    # raw_io ends with proc_exit(7) on purpose.
    expected=0
    [ "$prog" = raw_io ] && expected=7
    [ "$rc" -eq "$expected" ] || failed=1
    if [ "$verbose" -eq 1 ] || [ "$rc" -ne "$expected" ]; then
        sed "s/^/    /" "$out/$prog.stdout"
        sed "s/^/    stderr: /" "$out/$prog.stderr"
        echo "    tree:"
        (cd "$scratch" && find . -mindepth 1 | LC_ALL=C sort | sed "s/^/      /")
    fi
done
exit $failed
