#!/usr/bin/env python3
"""Network benchmark (scripts/bench.sh network): TCP round trips between two WASI 0.2
components, the kv server and its client (examples/components/kv, built by
scripts/build-components.sh), one run:

  wasmtime  `wasmtime run -S inherit-network --dir DATA::/data kv.wasm serve --port P`, and
            `wasmtime run -S inherit-network kv.wasm bench 127.0.0.1:P N` (wasmtime 48:
            TCP is on by default, -S inherit-network lets the guest bind and connect to
            any address; a name in the address would need -S allow-ip-name-lookup too)
  capsule   a user-defined network: `capsule network create benchnet`,
            `capsule run -d --network benchnet --name kvbench-server -v DATA:/data kv serve`
            and `capsule run --rm --network benchnet kv bench kvbench-server:6379 N`: the
            client finds the server by its container name and connects to the loopback
            address Capsule gave it

`kv bench ADDR N` opens one connection and times N `PING` -> `PONG` round trips on it (a
line each way, one write per line, no pipelining), so the number is the latency of a
round trip through the hosts' sockets and the guests' wasi:sockets streams, not the start
of the client (outside its clock). Both servers run at once and REPS clients of each run
against them, the two hosts taking turns (so a change in the machine's load falls on both);
the median of each side's rates is reported, with the spread. Servers and clients share
the machine's cores, so the load average is printed with the results.

A step Capsule refuses (no `network` command yet, an unknown flag, a refused bind or name)
stops the benchmark with the command and its output, after the wasmtime numbers."""

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The free-port helper of the library API's benchmark (this directory is on sys.path).
from bench_api import free_port

NETWORK = "benchnet"
SERVER = "kvbench-server"
IMAGE = "kvbench"
VOLUME = "kvbench-data"


class Failed(Exception):
    pass


def rate(output, command):
    """The `rps R` line of `kv bench`."""
    m = re.search(r"^rps (\d+)$", output, re.MULTILINE)
    if not m:
        raise Failed(f"`{' '.join(command)}` printed no `rps` line:\n{output}")
    return int(m.group(1))


def run(command, env=None, timeout=600):
    """Runs a command; a failure raises with the command and everything it printed."""
    try:
        r = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Failed(f"`{' '.join(command)}` ran longer than {timeout} s:\n{e.stdout or ''}{e.stderr or ''}")
    if r.returncode != 0:
        raise Failed(f"`{' '.join(command)}` failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def wait_listening(read_output, alive, what, timeout=120):
    """Waits until the server printed `kv: listening on`; returns the line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = read_output()
        m = re.search(r"^kv: listening on (\S+)$", out, re.MULTILINE)
        if m:
            return m.group(0)
        if not alive():
            raise Failed(f"{what} exited before it listened:\n{out}")
        time.sleep(0.1)
    raise Failed(f"{what} did not print `kv: listening on` within {timeout} s:\n{read_output()}")


def summary(rates):
    return f"{statistics.median(rates):8.0f} round trips/s  (runs: {min(rates)} to {max(rates)})"


@contextlib.contextmanager
def wasmtime_server(wasmtime, kv, n):
    """A kv server under wasmtime; yields the client's command."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="capsule-bench-network-wasmtime-")
    log = tempfile.TemporaryFile(mode="w+")
    server = subprocess.Popen([wasmtime, "run", "-S", "inherit-network", "--dir", f"{data}::/data",
                               kv, "serve", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, text=True)

    def output():
        log.seek(0)
        return log.read()

    try:
        wait_listening(output, lambda: server.poll() is None, "the wasmtime kv server")
        yield [wasmtime, "run", "-S", "inherit-network", kv, "bench", f"127.0.0.1:{port}", str(n)]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def capsule_server(capsule, kv, n):
    """A kv server in a container on a network of its own; yields the CAPSULE_HOME
    environment and the client's command."""
    home = tempfile.mkdtemp(prefix="capsule-bench-network-")
    env = dict(os.environ, CAPSULE_HOME=home)
    c = lambda *a: run([capsule, *a], env=env)
    try:
        c("image", "import", kv, IMAGE)
        c("network", "create", NETWORK)
        c("run", "-d", "--network", NETWORK, "--name", SERVER, "-v", f"{VOLUME}:/data", IMAGE, "serve")

        def output():
            r = subprocess.run([capsule, "logs", SERVER], env=env, capture_output=True, text=True)
            return r.stdout + r.stderr

        def alive():
            r = subprocess.run([capsule, "inspect", "--type", "container", SERVER],
                               env=env, capture_output=True, text=True)
            return r.returncode != 0 or json.loads(r.stdout)[0]["State"]["Running"]

        wait_listening(output, alive, f"the capsule kv server ({SERVER})")
        yield env, [capsule, "run", "--rm", "--network", NETWORK, IMAGE, "bench", f"{SERVER}:6379", str(n)]
    finally:
        for cleanup in (["rm", "-f", SERVER], ["network", "rm", NETWORK], ["volume", "rm", VOLUME]):
            subprocess.run([capsule, *cleanup], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--kv", required=True, help="kv.wasm, as scripts/build-components.sh builds it")
    ap.add_argument("--wasmtime", default=shutil.which("wasmtime"),
                    help="the wasmtime CLI (default: wasmtime on PATH)")
    ap.add_argument("--round-trips", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(f"kv bench: {args.round_trips} PING round trips on one connection; median of {args.reps} "
          "clients each, the two hosts' clients taking turns\n")
    if not args.wasmtime:
        print("  wasmtime  not on PATH (cargo install wasmtime-cli --version 48.0.8): capsule alone")

    with contextlib.ExitStack() as servers:
        wasmtime_cmd = None
        if args.wasmtime:
            version = subprocess.run([args.wasmtime, "--version"], capture_output=True, text=True).stdout.strip()
            try:
                wasmtime_cmd = servers.enter_context(wasmtime_server(args.wasmtime, args.kv, args.round_trips))
            except Failed as e:
                print(f"bench: wasmtime: {e}", file=sys.stderr)
                return 1
        capsule_failed = None
        try:
            env, capsule_cmd = servers.enter_context(capsule_server(args.capsule, args.kv, args.round_trips))
        except Failed as e:
            capsule_failed = e
        wasmtime_rates, capsule_rates = [], []
        try:
            for _ in range(args.reps):
                if wasmtime_cmd:
                    wasmtime_rates.append(rate(run(wasmtime_cmd), wasmtime_cmd))
                if not capsule_failed:
                    capsule_rates.append(rate(run(capsule_cmd, env=env), capsule_cmd))
        except Failed as e:
            print(f"bench: {e}", file=sys.stderr)
            return 1
    if wasmtime_rates:
        print(f"  wasmtime  {summary(wasmtime_rates)}   {version}, 127.0.0.1:PORT")
    if capsule_failed:
        print(f"bench: capsule: {capsule_failed}", file=sys.stderr)
        return 1
    print(f"  capsule   {summary(capsule_rates)}   network {NETWORK}, {SERVER}:6379 by name")
    if wasmtime_rates:
        ratio = statistics.median(capsule_rates) / statistics.median(wasmtime_rates)
        print(f"  ratio capsule/wasmtime: {ratio:.2f}x")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
