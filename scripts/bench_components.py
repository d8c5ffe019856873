#!/usr/bin/env python3
"""Components benchmark (scripts/bench.sh components): the example WASI 0.2 components of
examples/components, built by scripts/build-components.sh, one run of each measurement:

  command  warm `capsule run hello.wasm` vs `wasmtime run hello.wasm` (wasmtime 48 CLI):
           wall time (hyperfine median) and peak resident memory (median of /usr/bin/time
           -f %M over the runs); both with their compiled-code caches warm
  http     the Rust wasi:http component (GET /health): `capsule run -d -p PORT:8080` vs
           `wasmtime serve -S cli`, wrk -t2 -c16 -d10s --latency, requests/s and p99
  python   the componentize-py service (GET /), capsule vs wasmtime serve
  js       the componentize-js service (GET /), capsule vs wasmtime serve

wrk and the servers share the machine's cores: requests per second say as much about the
machine as about the servers; the load average is printed with the results."""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

# The helpers the library API's benchmark measures with (this directory is on sys.path).
from bench_api import free_port, wait_serving


def hyperfine(commands, runs, env):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", str(runs),
                        "--export-json", out.name, *commands],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        data = json.load(open(out.name))
    return [r["median"] for r in data["results"]]


def peak_rss_kib(command, runs, env):
    samples = []
    for _ in range(runs):
        r = subprocess.run(["/usr/bin/time", "-f", "%M", *command], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
        samples.append(int(r.stderr.strip().splitlines()[-1]))
    return statistics.median(samples)


def wrk(port, path, seconds):
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}{path}"],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--components", required=True, help="the directory build-components.sh wrote")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    wasmtime = shutil.which("wasmtime")
    home = tempfile.mkdtemp(prefix="capsule-bench-components-")
    env = dict(os.environ, CAPSULE_HOME=home)
    capsule = args.capsule
    comp = lambda name: os.path.join(args.components, name)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    if wasmtime:
        version = subprocess.run([wasmtime, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"peer: {version}")
    else:
        print("peer: no wasmtime on PATH (cargo install wasmtime-cli --version 48.0.8): capsule alone")

    # -- command: hello ---------------------------------------------------------------
    hello = comp("hello.wasm")
    subprocess.run([capsule, "run", hello], env=env, check=True, stdout=subprocess.DEVNULL)
    commands = [f"{capsule} run {hello} x"]
    if wasmtime:
        subprocess.run([wasmtime, "run", hello], check=True, stdout=subprocess.DEVNULL)
        commands.append(f"{wasmtime} run {hello} x")
    times = hyperfine(commands, args.runs, env)
    rss = [peak_rss_kib(c.split(), 10, env) for c in commands]
    print("\ncommand component (hello.wasm, warm caches), median of runs:")
    print(f"  capsule run   {times[0] * 1000:7.2f} ms   peak RSS {rss[0] / 1024:6.1f} MiB")
    if wasmtime:
        print(f"  wasmtime run  {times[1] * 1000:7.2f} ms   peak RSS {rss[1] / 1024:6.1f} MiB")
        print(f"  ratio capsule/wasmtime: time {times[0] / times[1]:.2f}x, memory {rss[0] / rss[1]:.2f}x")

    # -- services ------------------------------------------------------------------------
    services = [("http-rust", "/health"), ("http-python", "/"), ("http-js", "/")]
    print(f"\nHTTP services, wrk -t2 -c16 -d{args.seconds}s (one run each):")
    for name, path in services:
        wasm = comp(f"{name}.wasm")
        subprocess.run([capsule, "image", "import", wasm, f"bench-{name}"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        port = free_port()
        cid = subprocess.run([capsule, "run", "-d", "-p", f"127.0.0.1:{port}:8080", f"bench-{name}"],
                             env=env, check=True, capture_output=True, text=True).stdout.strip()
        try:
            wait_serving(port, path=path)
            rps, p99, errors = wrk(port, path, args.seconds)
        finally:
            subprocess.run([capsule, "rm", "-f", cid], env=env, stdout=subprocess.DEVNULL)
        line = f"  {name:12} capsule   {rps:9.0f} req/s  p99 {p99:7.2f} ms"
        if errors:
            line += f"  ({errors} non-2xx)"
        print(line)
        if wasmtime:
            port = free_port()
            proc = subprocess.Popen([wasmtime, "serve", "-S", "cli", "--addr", f"127.0.0.1:{port}", wasm],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_serving(port, proc, path=path)
                wrps, wp99, werrors = wrk(port, path, args.seconds)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            line = f"  {name:12} wasmtime  {wrps:9.0f} req/s  p99 {wp99:7.2f} ms   ratio {rps / wrps:.2f}x"
            if werrors:
                line += f"  ({werrors} non-2xx)"
            print(line)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
