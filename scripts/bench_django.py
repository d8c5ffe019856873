#!/usr/bin/env python3
"""Django walkthrough benchmark (scripts/bench.sh django): examples/django-library, the
Django REST framework API of Docker's classic walkthrough, served by Django's own
`runserver --noreload --nothreading` two ways, one run each:

  capsule   the example's image (FROM python:3.15, CPython for WASI), `capsule run -d -p`
            with SQLite on a named volume, after `python manage.py setup` (migrate + fixture)
  native    the same project and the same wheels on the host's CPython, in a venv

Reported: container start (`run -d`) to the first 200 from /api/; requests/s and p99 of
GET /api/ with 100 books (wrk, 1 connection and 8, one thread), the server's CPU time per
request; the image's size; the running container's resident memory (the supervisor
process that hosts the guest). The host's CPython is the machine's (3.11 on Debian 12):
there is no native CPython 3.15 on this machine's package sources, so the minor versions
differ and the report says which ran."""

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

# The helpers the library API's benchmark measures with (this directory is on sys.path).
from bench_api import cpu_seconds, free_port, to_ms


def first_200(port, start, proc=None, timeout=120):
    """Seconds from `start` to the first 200 from /api/."""
    deadline = start + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/", timeout=5) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"/api/ on 127.0.0.1:{port} gave no 200 within {timeout} s")


def seed(port, n=100):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/", timeout=10) as r:
        have = len(json.load(r))
    for i in range(have, n):
        body = json.dumps({"title": f"Book {i}", "subtitle": "A benchmark", "author": f"Author {i}",
                           "isbn": f"978{i:010d}"}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 201, r.status
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/", timeout=10) as r:
        count = len(json.load(r))
    assert count == n, f"{count} books, not {n}"


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wrk(port, pid, connections, duration):
    url = f"http://127.0.0.1:{port}/api/"
    before = sum(cpu_seconds(pid))
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s",
                          "--latency", url], check=True, capture_output=True, text=True).stdout
    after = sum(cpu_seconds(pid))
    done = re.search(r"(\d+) requests in", out)
    n = int(done.group(1)) if done else 0
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    notes = []
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        notes.append("socket errors: " + errors.group(1).strip())
    if non2xx:
        notes.append(f"{non2xx.group(1)} non-2xx")
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p99_ms": to_ms(p99.group(1)) if p99 else float("nan"),
        "cpu_ms_per_request": (after - before) / n * 1000 if n else float("nan"),
        "notes": "; ".join(notes),
    }


def measure(port, pid, args):
    seed(port)
    return {f"c{c}": wrk(port, pid, c, args.duration) for c in (1, 8)}


def bench_capsule(args, work):
    env = dict(os.environ, CAPSULE_HOME=os.path.join(work, "home"))
    if args.module_cache:
        env["CAPSULE_MODULE_CACHE"] = args.module_cache

    def capsule(*a, check=True):
        r = subprocess.run([args.capsule, *a], env=env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"capsule {' '.join(a)}: {r.stderr.strip()}")
        return r

    capsule("build", "-t", "python:3.15", args.base_context)
    capsule("build", "-t", "django-library", args.example)
    size = capsule("images", "--format", "json", "django-library").stdout
    capsule("run", "--rm", "-v", "db:/data", "-e", "DATABASE_PATH=/data/db.sqlite3",
            "django-library", "python", "manage.py", "setup")
    port = free_port()
    start = time.monotonic()
    capsule("run", "-d", "--name", "web", "-p", f"{port}:8000", "-v", "db:/data",
            "-e", "DATABASE_PATH=/data/db.sqlite3", "django-library")
    try:
        ready = first_200(port, start)
        pid = json.loads(capsule("inspect", "web").stdout)[0]["State"]["Pid"]
        row = measure(port, pid, args)
        row["first_200_s"] = ready
        row["rss_mib"] = rss_mib(pid)
        row["image"] = size.strip()
        return row
    finally:
        capsule("rm", "-f", "web", check=False)


def bench_native(args, work):
    venv = os.path.join(work, "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    py = os.path.join(venv, "bin", "python")
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", args.wheels,
                    "-r", os.path.join(args.example, "requirements.txt")], check=True)
    project = os.path.join(work, "native")
    shutil.copytree(args.example, project, ignore=shutil.ignore_patterns(".wheels", "__pycache__"))
    env = dict(os.environ, DATABASE_PATH=os.path.join(work, "native.sqlite3"), PYTHONUNBUFFERED="1",
               PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([py, "manage.py", "setup"], cwd=project, env=env, check=True, capture_output=True)
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen([py, "manage.py", "runserver", "--noreload", "--nothreading",
                             f"127.0.0.1:{port}"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = first_200(port, start, proc)
        row = measure(port, proc.pid, args)
        row["first_200_s"] = ready
        row["rss_mib"] = rss_mib(proc.pid)
        row["python"] = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                                       capture_output=True, text=True).stdout.strip()
        return row
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--base-context", required=True, help="the staged python:3.15 context (fetch.sh)")
    ap.add_argument("--example", required=True, help="examples/django-library, with .wheels filled")
    ap.add_argument("--wheels", required=True)
    ap.add_argument("--module-cache")
    ap.add_argument("--duration", type=int, default=10)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="capsule-bench-django-")
    try:
        rows = {"capsule": bench_capsule(args, work), "native": bench_native(args, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(rows, indent=2))
    c, n = rows["capsule"], rows["native"]
    print(f"\nfirst 200 from /api/ after run -d: {c['first_200_s']:.2f} s "
          f"(native {n['first_200_s']:.2f} s)")
    for conns in ("c1", "c8"):
        ratio = c[conns]["rps"] / n[conns]["rps"] if n[conns]["rps"] else float("nan")
        print(f"GET /api/ (100 books), {conns[1:]} connection(s): capsule {c[conns]['rps']:.0f} req/s "
              f"p99 {c[conns]['p99_ms']:.1f} ms; native CPython {n['python']} {n[conns]['rps']:.0f} req/s "
              f"p99 {n[conns]['p99_ms']:.1f} ms; ratio {ratio:.2f}x")
    print(f"container RSS {c['rss_mib']:.0f} MiB (native {n['rss_mib']:.0f} MiB)")
    print(f"image: {c['image']}")


if __name__ == "__main__":
    main()
