#!/usr/bin/env python3
"""Start-up benchmark: `capsule run` of hello-world, cold and warm, beside `wasmtime run`.

Wall time comes from hyperfine (no shell, warm-up runs, many samples): medians.
Peak memory comes from wait4's ru_maxrss for each run: medians.
Prints a Markdown table ready for the README.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile


def hyperfine(cmds, runs, env, prepare=None):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--export-json", out.name]
        if prepare:
            args += ["--prepare", prepare]
        else:
            args += ["--warmup", "5"]
        subprocess.run(args + cmds, check=True, env=env, stdout=subprocess.DEVNULL)
        return [r["median"] for r in json.load(open(out.name))["results"]]


def peak_rss_kib(cmd, runs, env, before=None):
    samples = []
    for _ in range(runs):
        if before:
            before()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"bench: {' '.join(cmd)} failed")
        samples.append(usage.ru_maxrss)
    return statistics.median(samples)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--capsule", required=True)
    p.add_argument("--target-dir", required=True)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--cold-runs", type=int, default=20)
    a = p.parse_args()

    wasm = max(glob.glob(os.path.join(a.target_dir, "release/build/capsule-runtime-*/out/hello-world.wasm")), key=os.path.getmtime)
    work = tempfile.mkdtemp(prefix="capsule-bench-")
    module = os.path.join(work, "hello-world.wasm")
    shutil.copy(wasm, module)
    warm_home = os.path.join(work, "warm-home")
    cold_home = os.path.join(work, "cold-home")
    env = dict(os.environ)
    env.pop("CAPSULE_LOG", None)
    warm_env = dict(env, CAPSULE_HOME=warm_home)
    cold_env = dict(env, CAPSULE_HOME=cold_home)
    wasmtime = shutil.which("wasmtime")
    wt_env = dict(env, XDG_CACHE_HOME=os.path.join(work, "wasmtime-cache"), HOME=work)

    rows = []  # (name, median seconds, peak KiB)
    subprocess.run([a.capsule, "run", module], env=warm_env, check=True, stdout=subprocess.DEVNULL)
    warm = hyperfine([f"{a.capsule} run {module}", f"{a.capsule} run hello-world"], a.runs, warm_env)
    rows.append(("capsule run hello-world.wasm (warm: cached)", warm[0], peak_rss_kib([a.capsule, "run", module], 30, warm_env)))
    rows.append(("capsule run hello-world (built-in, warm)", warm[1], peak_rss_kib([a.capsule, "run", "hello-world"], 30, warm_env)))
    cold = hyperfine([f"{a.capsule} run {module}"], a.cold_runs, cold_env, prepare=f"rm -rf {cold_home}")
    rows.append(("capsule run hello-world.wasm (cold: empty cache)", cold[0],
                 peak_rss_kib([a.capsule, "run", module], 10, cold_env, before=lambda: shutil.rmtree(cold_home, ignore_errors=True))))
    wt_warm = wt_cold = None
    if wasmtime:
        version = subprocess.run([wasmtime, "--version"], capture_output=True, text=True).stdout.strip()
        subprocess.run([wasmtime, "run", "-C", "cache=y", module], env=wt_env, check=True, stdout=subprocess.DEVNULL)
        wt_warm = hyperfine([f"{wasmtime} run -C cache=y {module}"], a.runs, wt_env)[0]
        rows.append((f"wasmtime run -C cache=y (warm) [{version}]", wt_warm, peak_rss_kib([wasmtime, "run", "-C", "cache=y", module], 30, wt_env)))
        wt_cold = hyperfine([f"{wasmtime} run -C cache=n {module}"], a.cold_runs, wt_env)[0]
        rows.append(("wasmtime run -C cache=n (cold: compiles)", wt_cold, peak_rss_kib([wasmtime, "run", "-C", "cache=n", module], 10, wt_env)))
    else:
        print("bench: no wasmtime on PATH; install it for the comparison: cargo install wasmtime-cli --version 48.0.8 --locked", file=sys.stderr)

    print(f"Start-up of hello-world, medians of {a.runs} warm / {a.cold_runs} cold runs (hyperfine -N); peak RSS medians (wait4).")
    print()
    print("| command | median time | peak RSS |")
    print("| --- | ---: | ---: |")
    for name, secs, kib in rows:
        print(f"| {name} | {secs * 1000:.2f} ms | {kib / 1024:.1f} MiB |")
    if wt_warm:
        print()
        print(f"Warm ratio capsule/wasmtime: {warm[0] / wt_warm:.2f}x time, {rows[0][2] / rows[3][2]:.2f}x peak RSS (goal: <= 0.8x time, <= 1.0x memory).")
        print(f"Cold ratio capsule/wasmtime: {cold[0] / wt_cold:.2f}x time.")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
