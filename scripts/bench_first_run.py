#!/usr/bin/env python3
"""The first run of a big image (`scripts/bench.sh first-run`): CPython's 99 MB module.

For each way an image arrives on a machine -- `capsule build`, `capsule load` of a
saved archive, `capsule pull` from Debian's docker-registry on loopback -- into an
EMPTY home (so an empty module cache), this measures:

  * the verb itself (wall time, progress output discarded);
  * from the verb's end to the first line `capsule run --rm python:3.15 -c ...` prints
    (the goal: <= 15 s on 2 cores);
  * then the steady state: the median of warm `-c pass` runs (hyperfine).

Each verb runs --runs times (each time into a new empty home) and medians are
reported. The machine's load average before and after is printed with the numbers.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_registry import start_registry


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def timed(cmd, env, what):
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {what} failed ({' '.join(cmd)}):\n{proc.stderr}")
    return took


def first_line(capsule, env, image):
    """Seconds from now to the first line of output of a run of `image`."""
    start = time.monotonic()
    proc = subprocess.Popen([capsule, "run", "--rm", image, "python3", "-c", "print('ready')"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    took = time.monotonic() - start
    rest, err = proc.communicate()
    if proc.returncode != 0 or line != "ready\n":
        sys.exit(f"bench: the first run printed {line!r}, exit {proc.returncode}:\n{err}")
    return took


def steady(capsule, env, image, runs):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--style", "none", "--warmup", "1", "--runs", str(runs),
                        "--export-json", out.name, f"{capsule} run --rm {image} python3 -c pass"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        return json.load(open(out.name))["results"][0]["median"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--context", required=True, help="the python:3.15 build context (fetch.sh)")
    ap.add_argument("--runs", type=int, default=1, help="times each verb is measured (medians)")
    ap.add_argument("--steady-runs", type=int, default=10)
    ap.add_argument("--no-pull", action="store_true", help="skip the registry (no docker-registry)")
    a = ap.parse_args()
    if not a.no_pull and shutil.which("docker-registry") is None:
        sys.exit("bench: docker-registry is missing: run scripts/install-test-deps.sh (or --no-pull)")
    capsule = os.path.abspath(a.capsule)
    work = tempfile.mkdtemp(prefix="capsule-bench-first-")
    base = dict(os.environ, CAPSULE_PROGRESS="plain")
    for var in ("CAPSULE_LOG", "CAPSULE_MODULE_CACHE", "CAPSULE_HOME"):
        base.pop(var, None)
    counter = [0]

    def fresh_env():
        counter[0] += 1
        return dict(base, CAPSULE_HOME=os.path.join(work, f"home{counter[0]}"))

    results = {}
    registry = None
    print(f"bench: load average before: {load_average()}", file=sys.stderr)
    try:
        # An archive for `load`, from a home of its own.
        source = fresh_env()
        timed([capsule, "build", "-q", "-t", "python:3.15", a.context], source, "the source build")
        archive = os.path.join(work, "python.tar")
        timed([capsule, "save", "-o", archive, "python:3.15"], source, "capsule save")
        pull_name = None
        if not a.no_pull:
            registry, addr = start_registry(os.path.join(work, "registry"))
            pull_name = f"{addr}/bench/python:3.15"
            timed([capsule, "tag", "python:3.15", pull_name], source, "capsule tag")
            timed([capsule, "push", "-q", pull_name], source, "capsule push")

        verbs = [("build", lambda: [capsule, "build", "-t", "python:3.15", a.context], "python:3.15"),
                 ("load", lambda: [capsule, "load", "-i", archive], "python:3.15")]
        if pull_name:
            verbs.append(("pull", lambda: [capsule, "pull", pull_name], pull_name))
        for verb, cmd, image in verbs:
            verb_times, first_times = [], []
            env = None
            for _ in range(a.runs):
                env = fresh_env()
                verb_times.append(timed(cmd(), env, f"capsule {verb}"))
                first_times.append(first_line(capsule, env, image))
            results[verb] = (statistics.median(verb_times), statistics.median(first_times),
                             steady(capsule, env, image, a.steady_runs))
    finally:
        if registry:
            registry.kill()
            registry.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"bench: load average after: {load_average()}", file=sys.stderr)
    print(f"CPython 3.15 (99 MB module), each verb into an empty home, {a.runs} run(s) each, "
          f"load average {load_average()}")
    print("| image arrives by | the verb | verb end to first line of `run` (goal <= 15 s) | warm `run python3 -c pass` |")
    print("| --- | ---: | ---: | ---: |")
    for verb, (took, first, warm) in results.items():
        print(f"| `capsule {verb}` | {took:.1f} s | {first:.2f} s | {warm * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
