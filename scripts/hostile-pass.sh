#!/usr/bin/env bash
# A hostile pass: 166 bad and edge inputs against the capsule binary (run flags, the
# container, volume, image, cp, load, build and compose verbs), each under a 20 s bound.
# For each it prints the exit code, the first line of stderr and flags: PANIC, HANG,
# EXIT0 (accepted), MULTILINE (more than one line on stderr, build progress included),
# DOUBLE-OS (an OS error said twice); then `system check`. Not a test (some EXIT0 rows
# are Docker's behaviour, e.g. `volume create` of an existing name): a tool for the
# next hostile pass, whose rows are read by a person.
# usage: scripts/hostile-pass.sh CAPSULE SERVICE_WASM
#   SERVICE_WASM: tests/guests/c/service.c built (target/debug/build/capsule-tests-*/out/guests/service.wasm)
set -u
CAP=$1; SERVICE=$2
export CAPSULE_HOME=$(mktemp -d /tmp/hostile-home.XXXX)
W=$(mktemp -d /tmp/hostile-work.XXXX); cd "$W"
n=0; bad=0
t() { # expect-failure case
  n=$((n+1))
  out=$(timeout 20 "$CAP" "$@" 2>"$W/err" </dev/null); rc=$?
  lines=$(grep -c . "$W/err")
  first=$(head -c 200 "$W/err" | head -1)
  flag=""
  if grep -q panicked "$W/err"; then flag="PANIC"; fi
  if [ $rc = 124 ]; then flag="$flag HANG"; fi
  if [ $rc = 0 ]; then flag="$flag EXIT0"; fi
  if [ "$lines" -gt 1 ] && ! grep -q '^Usage:' "$W/err" && ! grep -q "^For more information" "$W/err"; then flag="$flag MULTILINE"; fi
  if grep -q "os error.*os error" "$W/err"; then flag="$flag DOUBLE-OS"; fi
  [ -n "$flag" ] && bad=$((bad+1))
  printf '%-4s %-60.60s rc=%-3s %-18s %s\n' "$n" "$*" "$rc" "${flag:-ok}" "$first"
}
"$CAP" image import "$SERVICE" -t tool >/dev/null 2>&1 || { echo "cannot import"; exit 1; }
"$CAP" run -d --name up tool tick 0 200 >/dev/null 2>&1
"$CAP" volume create vol1 >/dev/null 2>&1
# run flags
t run --memory -1 tool tick 1 1
t run --memory 1.5.5m tool tick 1 1
t run --memory 99999999999999999999 tool tick 1 1
t run --memory 0 tool tick 1 1
t run --memory 1k tool tick 1 1
t run --cpus abc tool tick 1 1
t run --cpus -1 tool tick 1 1
t run --pids-limit x tool tick 1 1
t run --ulimit nofile=abc tool tick 1 1
t run --ulimit nofile=10:5 tool tick 1 1
t run --ulimit bogus=1 tool tick 1 1
t run --ulimit nofile tool tick 1 1
t run --storage-opt size=abc tool tick 1 1
t run --storage-opt bogus=1 tool tick 1 1
t run --storage-opt size tool tick 1 1
t run --stop-timeout -5 tool tick 1 1
t run --stop-timeout abc tool tick 1 1
t run --restart sometimes tool tick 1 1
t run --restart on-failure:x tool tick 1 1
t run --restart on-failure:-1 tool tick 1 1
t run --restart always --rm tool tick 1 1
t run --label =x tool tick 1 1
t run --label "" tool tick 1 1
t run --name "" tool tick 1 1
t run --name "a b" tool tick 1 1
t run --name up tool tick 1 1
t run --name ../x tool tick 1 1
t run --name "$(printf 'a%.0s' $(seq 1 200))" tool tick 1 1
t run -p 0:80 tool tick 1 1
t run -p 70000:80 tool tick 1 1
t run -p 80:70000 tool tick 1 1
t run -p abc tool tick 1 1
t run -p 127.0.0.1::80:90 tool tick 1 1
t run -p 999.1.1.1:8080:80 tool tick 1 1
t run -p 18093:80/sctp tool tick 1 1
t run -p 18094-18090:80-84 tool tick 1 1
t run -p 18094-18095:80 tool tick 1 1
t run -v :/x tool tick 1 1
t run -v /nonexistent-host-dir:/x tool tick 1 1
t run -v vol1:/x:rx tool tick 1 1
t run -v vol1:/x:ro,rw tool tick 1 1
t run -v "bad/name:/x" tool tick 1 1
t run -v vol1:/ tool tick 1 1
t run --tmpfs relative tool tick 1 1
t run --tmpfs /t:size=abc tool tick 1 1
t run --tmpfs /t:bogus tool tick 1 1
t run -e "" tool tick 1 1
t run -w relative tool tick 1 1
t run -w "" tool tick 1 1
t run --entrypoint "" tool
t run --env-file /etc tool tick 1 1
t run --env-file /nonexistent tool tick 1 1
t run no-such-image
t run "UPPER/Case:tag"
t run "a@sha256:zz"
t run ""
t run tool --no-such-flag-for-guest-xx; # guest arg: not bad for capsule
t run -d --rm --restart always tool tick 1 1
t run --read-only --tmpfs /:size=1m tool tick 1 1
t run --user root tool tick 1 1
t run -m 4k tool tick 1 1
# lifecycle verbs
t stop nosuch
t stop -t -1 up
t stop -t abc up
t kill -s BOGUS up
t kill -s 0 up
t kill -s 99 up
t kill nosuch
t logs --tail abc up
t logs --since abc up
t logs nosuch
t rename up up
t rename nosuch x
t rename up "bad name"
t wait nosuch
t inspect nosuch
t inspect --format '{{' up
t port up 99999
t port up abc
t diff nosuch
t rm up
t rm nosuch
t start nosuch
t restart -t abc up
t ps --filter bogus
t ps --filter status=bogus
t ps --filter "name=["
t ps --format "{{"
t ps --format bogus
t commit nosuch img
t commit up "BAD REF"
# cp
t cp nosuch:/a .
t cp up:/nonexistent .
t cp /nonexistent up:/x
t cp up:/ up:/
t cp a b
t cp up: .
t cp up:/etc/../.. /tmp/hostile-out
t cp "$W" up:relative
# volumes
t volume create "../x"
t volume create ""
t volume create "a/b"
t volume create vol1
t volume rm nosuch
t volume inspect nosuch
t volume create --driver bogus v2
t volume create --opt x=y v3
t volume prune --filter bogus
# images
t tag nosuch x
t tag tool "BAD REF"
t tag tool "x:"
t tag tool "x:$(printf 't%.0s' $(seq 1 200))"
t rmi nosuch
t rmi tool
t history nosuch
t save -o /nonexistent-dir/x.tar tool
t save nosuch -o out.tar
t image import /nonexistent -t x
t image import "$W" -t x
t images --filter bogus
t images --format "{{"
printf '{not json' > notjson.tar; t load -i notjson.tar
printf '' > empty.tar; t load -i empty.tar
echo hi | gzip > gz.tar; t load -i gz.tar
t load -i "$W"
t load -i /nonexistent.tar
"$CAP" save -o good.tar tool >/dev/null 2>&1; head -c 5000 good.tar > cut.tar; t load -i cut.tar
# build
mkdir -p ctx; printf 'FROM\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nCOPY nonexistent /x\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nCOPY ../../etc/passwd /x\n' > ctx/Capsulefile; t build ctx
printf 'FROM nosuch-image\n' > ctx/Capsulefile; t build ctx
printf 'BOGUS x\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nEXPOSE abc\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nEXPOSE 70000\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nENV\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nWORKDIR\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nARG\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nSTOPSIGNAL BOGUS\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nHEALTHCHECK --interval=abc CMD x\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nLABEL\n' > ctx/Capsulefile; t build ctx
printf 'FROM scratch\nCMD ["unterminated\n' > ctx/Capsulefile; t build ctx
t build -t "BAD REF" ctx
t build -f /nonexistent ctx
t build /nonexistent
# compose
mkdir -p cp1; cd cp1
printf '' > compose.toml; t compose up -d
printf '[services]\n' > compose.toml; t compose up -d
printf '[services.a]\nimage = "tool"\nmemory = "1q"\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\nports = ["70000:80"]\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\nrestart = "sometimes"\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\ndepends_on = ["b"]\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\ndepends_on = ["a"]\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\nvolumes = ["../x:/x"]\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\nbogus = 1\n' > compose.toml; t compose config
printf '[services.a]\nbuild = 5\n' > compose.toml; t compose config
printf '[services.a]\nbuild = { context = ".", dockerfile = "X" }\n' > compose.toml; t compose config
printf '[services.a\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\nstop_grace_period = "forever"\n' > compose.toml; t compose config
printf '[services.a]\nimage = "tool"\n[volumes.v]\nexternal = true\n' > compose.toml; t compose config
printf '[services."A B"]\nimage = "tool"\n' > compose.toml; t compose config
t compose -p "BAD NAME" config
t compose -f /nonexistent config
t compose down -t abc
t compose logs nosuch
cd "$W"
# system
t system prune --filter bogus
t system bogus
t volume rm vol1 vol1
echo "---"
echo "cases: $n  flagged: $bad"
"$CAP" system check 2>&1 | tail -2
"$CAP" rm -f up >/dev/null 2>&1
