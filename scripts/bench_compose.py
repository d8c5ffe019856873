#!/usr/bin/env python3
"""Compose benchmark (scripts/bench.sh compose): `capsule compose up -d` of ten services
(each the `service` guest asleep) until every container is running (the command returns
then: each supervisor reports its guest started), and `compose down` of them. Medians of
several runs, each in a fresh project."""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="capsule-bench-home-")
    project = tempfile.mkdtemp(prefix="capsule-bench-compose-")
    env = dict(os.environ, CAPSULE_HOME=home)

    def capsule(*a):
        return subprocess.run([args.capsule, *a], env=env, cwd=project, check=True,
                              capture_output=True, text=True)

    try:
        capsule("image", "import", args.guest, "-t", "svc")
        capsule("run", "--rm", "svc", "env", "X")  # warm the module cache
        with open(os.path.join(project, "compose.toml"), "w") as f:
            for i in range(args.services):
                f.write(f'[services.s{i}]\nimage = "svc"\ncommand = "sleep 3600"\n\n')
        ups, downs = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            capsule("compose", "up", "-d")
            ups.append((time.perf_counter() - start) * 1000)
            running = capsule("ps", "-q").stdout.split()
            assert len(running) == args.services, running
            start = time.perf_counter()
            # The guests sleep and WASI has no signals to end them early: `down`
            # would wait each one's 10 s grace (all at once); -t 0 interrupts them.
            capsule("compose", "down", "-t", "0")
            downs.append((time.perf_counter() - start) * 1000)
        print(f"compose up -d of {args.services} services to all running: median "
              f"{statistics.median(ups):.0f} ms (min {min(ups):.0f}, max {max(ups):.0f}, {args.runs} runs)")
        print(f"compose down -t 0 of {args.services} services: median {statistics.median(downs):.0f} ms "
              f"(min {min(downs):.0f}, max {max(downs):.0f})")
    finally:
        ids = subprocess.run([args.capsule, "ps", "-aq", "--no-trunc"], env=env,
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([args.capsule, "rm", "-f", *ids], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
