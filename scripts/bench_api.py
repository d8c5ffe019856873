#!/usr/bin/env python3
"""Library API benchmark (scripts/bench.sh api): the same Rust code (examples/library-api)
served three ways, loaded with wrk, requests per second and p99 latency from one run each:

  capsule   the wasm32-wasip1 module in a container, `capsule run -d -p PORT:8000`
            (Capsule opens the listener and hands it to the guest)
  wasmtime  the same code for wasm32-wasip2, `wasmtime run -S inherit-network ... --bind`
            (wasmtime 48 has no preopened listener for preview1 modules any more:
            `-S tcplisten` and `-S listenfd` belonged to the legacy preview1 host that
            `-S preview2=n` selected, and that flag now fails)
  native    the same code built for the host, `library-api --bind`

Each server gets a fresh data directory with 10 books, then
`wrk -t THREADS -c CONNECTIONS -d DURATION --latency URL` on one GET route. The server
answers one request per connection (Connection: close), so every request includes a TCP
connect and accept: that is what the numbers measure. With wrk and the server on the same
few cores, requests per second say as much about the machine as about the server; the
server's own CPU time per request (user and system, from /proc/PID/stat: the container's
supervisor, the wasmtime process, the native process) is the steadier comparison."""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(port, proc=None, timeout=120, path="/"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}{path} within {timeout} s")


def seed(port, n=10):
    for i in range(n):
        body = json.dumps({"title": f"Book {i}", "subtitle": "A benchmark", "author": f"Author {i}",
                           "isbn": f"97800000000{i:02d}"}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/books", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 201, r.status


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def cpu_seconds(pid):
    """(user, system) CPU seconds a process has used, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def wrk(args, port, pid):
    url = f"http://127.0.0.1:{port}{args.path}"
    before = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections),
                          "-d", f"{args.duration}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    after = cpu_seconds(pid)
    done = re.search(r"(\d+) requests in", out)
    n = int(done.group(1)) if done else 0
    cpu = tuple((a - b) / n * 1e6 if n else float("nan") for a, b in zip(after, before))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    notes = []
    if errors:
        notes.append("socket errors: " + errors.group(1).strip())
    if non2xx:
        notes.append(f"{non2xx.group(1)} non-2xx")
    return (float(rps.group(1)) if rps else float("nan"),
            to_ms(p99.group(1)) if p99 else float("nan"),
            cpu, "; ".join(notes), out)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_process(args, argv, env=None):
    port = free_port()
    argv = [a.replace("PORT", str(port)) for a in argv]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_serving(port, proc)
        seed(port)
        return wrk(args, port, proc.pid)
    finally:
        stop(proc)


def bench_capsule(args, work):
    home = os.path.join(work, "capsule-home")
    env = dict(os.environ, CAPSULE_HOME=home)

    def capsule(*a):
        return subprocess.run([args.capsule, *a], env=env, capture_output=True, text=True)

    context = os.path.join(work, "context")
    os.makedirs(context)
    for f in ["Capsulefile", ".capsuleignore"]:
        shutil.copy(os.path.join(args.example, f), context)
    shutil.copytree(os.path.join(args.example, "fixtures"), os.path.join(context, "fixtures"))
    shutil.copy(args.wasip1, os.path.join(context, "library-api.wasm"))
    r = capsule("build", "-t", "library-api", context)
    if r.returncode != 0:
        raise RuntimeError("capsule build: " + r.stderr.strip())
    port = free_port()
    r = capsule("run", "-d", "-p", f"{port}:8000", "-v", "bench-data:/data", "--name", "api", "library-api")
    if r.returncode != 0:
        raise RuntimeError("capsule run -d -p: " + r.stderr.strip())
    try:
        wait_serving(port)
        seed(port)
        # The container's supervisor runs the guest.
        state = json.loads(capsule("inspect", "api").stdout)[0]["State"]
        return wrk(args, port, state["Pid"])
    finally:
        capsule("rm", "-f", "api")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--example", required=True, help="examples/library-api (Capsulefile, .capsuleignore)")
    ap.add_argument("--wasip1", required=True)
    ap.add_argument("--wasip2", required=True)
    ap.add_argument("--native", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--path", default="/books/1")
    ap.add_argument("--verbose", action="store_true", help="print wrk's whole output")
    args = ap.parse_args()
    wasmtime = shutil.which("wasmtime")
    work = tempfile.mkdtemp(prefix="capsule-bench-api-")
    rows = []
    try:
        wasmtime_data = os.path.join(work, "wasmtime-data")
        os.makedirs(wasmtime_data)

        def under_wasmtime():
            if not wasmtime:
                raise RuntimeError("no wasmtime on PATH (cargo install wasmtime-cli --version 48.0.8)")
            # The reason the peer is the wasip2 build, checked on the wasmtime measured:
            # if its CLI hands a preview1 module a listener again, compare like with like.
            probe = subprocess.run([wasmtime, "run", "-S", "tcplisten=127.0.0.1:0", args.wasip1],
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
            if probe.returncode == 0 or "do not support --tcplisten" not in probe.stderr:
                print("bench api: this wasmtime accepts -S tcplisten for a preview1 module; "
                      "the wasip1 module could be its peer (see the notes at the top)", file=sys.stderr)
            return bench_process(args, [wasmtime, "run", "-S", "inherit-network", "--dir",
                                        f"{wasmtime_data}::/data", args.wasip2, "--bind", "127.0.0.1:PORT"])

        def native():
            env = dict(os.environ, LIBRARY_DATA=os.path.join(work, "native-data"))
            return bench_process(args, [args.native, "--bind", "127.0.0.1:PORT"], env=env)

        runs = [
            ("capsule (wasip1, run -d -p)", lambda: bench_capsule(args, work)),
            ("wasmtime 48 (wasip2, --bind)", under_wasmtime),
            ("native (--bind)", native),
        ]
        for name, run in runs:
            print(f"bench api: {name} ...", file=sys.stderr)
            try:
                rps, p99, cpu, notes, out = run()
                if args.verbose:
                    print(out, file=sys.stderr)
                rows.append((name, rps, p99, cpu, notes))
            except (RuntimeError, subprocess.CalledProcessError, OSError, KeyError, ValueError) as e:
                rows.append((name, None, None, None, f"not measured: {e}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nGET {args.path}: wrk -t{args.threads} -c{args.connections} -d{args.duration}s, one run each "
          f"(one request per connection)\n")
    print(f"{'server':<30} {'requests/s':>12} {'p99 latency':>12} {'server CPU per request':>26}  notes")
    for name, rps, p99, cpu, notes in rows:
        if rps is None:
            print(f"{name:<30} {'-':>12} {'-':>12} {'-':>26}  {notes}")
        else:
            cpu_text = f"{cpu[0]:.1f} us user + {cpu[1]:.1f} us sys"
            print(f"{name:<30} {rps:>12.0f} {p99:>10.2f}ms {cpu_text:>26}  {notes}")
    by = {n.split()[0]: r for n, r, _, _, _ in rows if r}
    if "capsule" in by and "wasmtime" in by:
        print(f"\ncapsule / wasmtime requests per second: {by['capsule'] / by['wasmtime']:.2f}x")
    if "capsule" in by and "native" in by:
        print(f"capsule / native requests per second: {by['capsule'] / by['native']:.2f}x")


if __name__ == "__main__":
    main()
