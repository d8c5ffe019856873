#!/usr/bin/env python3
"""Containers benchmark (scripts/bench.sh containers): the time from `capsule run -d`
to the guest running (the command returns once the supervisor is about to run the
guest's first instruction), and the summed memory of N idle detached containers against
N idle `wasmtime run` processes of the same guest (a guest asleep in poll_oneoff).
Memory is PSS (shared pages divided among the processes that share them) and RSS, read
from /proc/PID/smaps_rollup. Medians from one run."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def mem_kib(pid):
    """(pss, rss) in KiB of a process, from smaps_rollup."""
    pss = rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    return pss, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--idle", type=int, default=100)
    args = ap.parse_args()
    wasmtime = shutil.which("wasmtime")
    home = tempfile.mkdtemp(prefix="capsule-bench-home-")
    env = dict(os.environ, CAPSULE_HOME=home)

    def capsule(*a, check=True):
        return subprocess.run([args.capsule, *a], env=env, check=check, capture_output=True, text=True)

    try:
        capsule("image", "import", args.guest, "-t", "svc")
        # Warm the module cache (the first run compiles).
        capsule("run", "--rm", "svc", "env", "X")

        latencies = []
        for i in range(args.runs):
            start = time.perf_counter()
            capsule("run", "-d", "--name", f"lat{i}", "svc", "sleep", "3600")
            latencies.append((time.perf_counter() - start) * 1000)
        ids = capsule("ps", "-aq", "--no-trunc").stdout.split()
        capsule("rm", "-f", *ids)
        median = statistics.median(latencies)
        print(f"run -d to guest running: median {median:.1f} ms "
              f"(min {min(latencies):.1f}, max {max(latencies):.1f}, {args.runs} runs)")

        # N idle detached containers.
        for i in range(args.idle):
            capsule("run", "-d", "--name", f"idle{i}", "svc", "sleep", "3600")
        time.sleep(1)
        pids = []
        for i in range(args.idle):
            import json
            state = json.loads(capsule("inspect", f"idle{i}").stdout)[0]["State"]
            pids.append(state["Pid"])
        capsule_mem = [mem_kib(p) for p in pids]
        ids = capsule("ps", "-aq", "--no-trunc").stdout.split()
        capsule("rm", "-f", *ids)
        c_pss = sum(m[0] for m in capsule_mem)
        c_rss = sum(m[1] for m in capsule_mem)
        print(f"{args.idle} idle detached containers: PSS {c_pss / 1024:.1f} MiB "
              f"({c_pss / args.idle / 1024:.2f} MiB each), RSS {c_rss / 1024:.1f} MiB "
              f"({c_rss / args.idle / 1024:.2f} MiB each)")

        if not wasmtime:
            print("wasmtime not on PATH: no comparison (cargo install wasmtime-cli --version 48.0.8)",
                  file=sys.stderr)
            return
        procs = [subprocess.Popen([wasmtime, "run", args.guest, "sleep", "3600"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(args.idle)]
        time.sleep(3)
        w_mem = [mem_kib(p.pid) for p in procs]
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        w_pss = sum(m[0] for m in w_mem)
        w_rss = sum(m[1] for m in w_mem)
        print(f"{args.idle} idle wasmtime run: PSS {w_pss / 1024:.1f} MiB "
              f"({w_pss / args.idle / 1024:.2f} MiB each), RSS {w_rss / 1024:.1f} MiB "
              f"({w_rss / args.idle / 1024:.2f} MiB each)")
        print(f"ratio capsule/wasmtime: PSS {c_pss / w_pss:.2f}x, RSS {c_rss / w_rss:.2f}x")
    finally:
        ids = subprocess.run([args.capsule, "ps", "-aq", "--no-trunc"], env=env,
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([args.capsule, "rm", "-f", *ids], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
