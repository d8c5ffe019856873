#!/usr/bin/env python3
"""CPython start-up benchmark: `-c pass` from the `python:3.15` image under Capsule
beside `wasmtime run -W exceptions=y,unknown-imports-trap=y --invoke run --dir ROOT::/
python.wasm -c pass` over the same files (the module and the standard-library zip at
the same guest paths), in one run.

Wall time: hyperfine medians (no shell, warm-up runs first, so both use their caches of
compiled code). Peak memory: `/usr/bin/time -v`'s maximum resident set size, medians.
Prints a Markdown table ready for the README, with the ratios against the goals
(time <= 0.7x wasmtime's, peak memory <= 0.5x).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile


def hyperfine(cmds, runs, env):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--style", "none", "--warmup", "2", "--runs", str(runs),
                "--export-json", out.name]
        subprocess.run(args + cmds, check=True, env=env, stdout=subprocess.DEVNULL)
        return [r["median"] for r in json.load(open(out.name))["results"]]


def peak_rss_kib(cmd, runs, env):
    samples = []
    for _ in range(runs):
        proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.exit(f"bench: {' '.join(cmd)} failed:\n{proc.stderr}")
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        if not found:
            sys.exit("bench: /usr/bin/time -v printed no maximum resident set size")
        samples.append(int(found.group(1)))
    return statistics.median(samples)


def run(cmd, env, what):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: {what} failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--capsule", required=True)
    p.add_argument("--context", required=True, help="the python:3.15 build context (fetch.sh)")
    p.add_argument("--wasmtime", default=shutil.which("wasmtime") or os.path.expanduser("~/.cargo/bin/wasmtime"))
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rss-runs", type=int, default=5)
    p.add_argument("--module-cache", help="CAPSULE_MODULE_CACHE: compiled modules kept across runs")
    a = p.parse_args()
    if not os.path.isfile(a.wasmtime):
        sys.exit("bench: no wasmtime CLI; run: cargo install wasmtime-cli --version 48.0.8 --locked")
    if not os.path.isfile("/usr/bin/time"):
        sys.exit("bench: /usr/bin/time is missing; run: apt-get install -y time")

    work = tempfile.mkdtemp(prefix="capsule-bench-python-")
    env = dict(os.environ)
    env.pop("CAPSULE_LOG", None)
    env["CAPSULE_HOME"] = os.path.join(work, "home")
    env.pop("CAPSULE_MODULE_CACHE", None)
    if a.module_cache:
        env["CAPSULE_MODULE_CACHE"] = a.module_cache
    # The same files for both: wasmtime's root holds them at the paths the image has.
    root = os.path.join(work, "root")
    os.makedirs(os.path.join(root, "usr/local/bin"))
    os.makedirs(os.path.join(root, "usr/local/lib"))
    os.makedirs(os.path.join(root, "tmp"))
    module = os.path.join(root, "usr/local/bin/python.wasm")
    shutil.copy(os.path.join(a.context, "python.wasm"), module)
    shutil.copy(os.path.join(a.context, "python315.zip"), os.path.join(root, "usr/local/lib/python315.zip"))

    print("bench: building python:3.15 and compiling CPython once (minutes)", file=sys.stderr)
    run([a.capsule, "build", "-t", "python:3.15", a.context], env, "capsule build")
    capsule = [a.capsule, "run", "--rm", "python:3.15", "python3", "-c", "pass"]
    run(capsule, env, "the first capsule run")
    wasmtime = [a.wasmtime, "run", "-W", "exceptions=y,unknown-imports-trap=y", "--invoke", "run",
                "--dir", f"{root}::/", module, "-c", "pass"]
    print("bench: warming wasmtime's cache (minutes the first time)", file=sys.stderr)
    run(wasmtime, env, "the first wasmtime run")
    answer = run([a.capsule, "run", "--rm", "python:3.15", "python3", "-c", "print(6*7)"], env, "print(6*7)")
    if answer != "42\n":
        sys.exit(f"bench: capsule run python:3.15 -c 'print(6*7)' printed {answer!r}")

    t_capsule, t_wasmtime = hyperfine([" ".join(capsule), " ".join(wasmtime)], a.runs, env)
    m_capsule = peak_rss_kib(capsule, a.rss_runs, env)
    m_wasmtime = peak_rss_kib(wasmtime, a.rss_runs, env)
    shutil.rmtree(work, ignore_errors=True)

    t_ratio, m_ratio = t_capsule / t_wasmtime, m_capsule / m_wasmtime
    print("| CPython `-c pass` | wall time (median) | peak RSS (median) |")
    print("| --- | --- | --- |")
    print(f"| `capsule run python:3.15 -c pass` | {t_capsule * 1000:.0f} ms | {m_capsule / 1024:.0f} MiB |")
    print(f"| `wasmtime run ... --invoke run --dir ROOT::/ python.wasm -c pass` | {t_wasmtime * 1000:.0f} ms | {m_wasmtime / 1024:.0f} MiB |")
    print(f"| Capsule / wasmtime (goal <= 0.7 / <= 0.5) | {t_ratio:.2f}x | {m_ratio:.2f}x |")


if __name__ == "__main__":
    main()
