#!/usr/bin/env python3
"""containerd shim benchmark (scripts/bench.sh shim): tasks of the hello-world image
through containerd-shim-capsule-v1, against `capsule run --rm` of the same image.

1. Throughput as runwasi measures its shims (about 16 tasks/s reported for runwasi's
   wasmtime shim): `capsule-shim-stress` (shim/src/stress.rs) drives containerd's API
   like runwasi's stress test in containerd mode: snapshots prepared and the sandbox's
   shim started before the clock; then every task's container and task created,
   started (--parallel at a time), waited for, checked and deleted; with the spec `ctr
   run` gives a container (namespaces, its own cgroup, masked paths, /proc, /dev, /sys
   mounted: more than runwasi's stress-test spec), at parallel 1 and one task per core.
2. Latency as a user sees it: `ctr run --rm` one task after another (a new shim per
   task, the snapshot made and removed, ctr itself started), against `capsule run --rm`.

runwasi's own wasmtime shim is not on the crates registry and pins another wasmtime,
so it is not built here (see docs/kubernetes.md). A containerd of its own (root, state,
socket in a temporary directory, the shim first on its PATH, the CRI plugin off) is
started and stopped. Needs root. Medians from one run."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNTIME = "io.containerd.capsule.v1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--stress", required=True, help="the capsule-shim-stress binary")
    ap.add_argument("--runs", type=int, default=50, help="ctr run --rm tasks (latency)")
    ap.add_argument("--tasks", type=int, default=200, help="tasks per throughput run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: containerd needs root: run sudo -E scripts/bench.sh shim")
    work = tempfile.mkdtemp(prefix="capsule-ctrd-")
    for sub in ("root", "state", "module-cache"):
        os.mkdir(os.path.join(work, sub))
    sock = os.path.join(work, "c.sock")
    with open(os.path.join(work, "config.toml"), "w") as f:
        f.write(
            f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
            '[metrics]\n  address = ""\n'
        )
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(os.path.abspath(args.shim)) + ":" + env.get("PATH", "")
    env["CAPSULE_MODULE_CACHE"] = os.path.join(work, "module-cache")
    log = open(os.path.join(work, "containerd.log"), "w")
    containerd = subprocess.Popen(["containerd", "--config", os.path.join(work, "config.toml")],
                                  env=env, stdout=log, stderr=log)
    home = tempfile.mkdtemp(prefix="capsule-bench-home-")
    capsule_env = dict(os.environ, CAPSULE_HOME=home)

    def ctr(*a, check=True):
        return subprocess.run(["ctr", "-a", sock, "-n", "bench", *a], check=check,
                              capture_output=True, text=True)

    def capsule(*a):
        return subprocess.run([args.capsule, *a], env=capsule_env, check=True,
                              capture_output=True, text=True)

    try:
        deadline = time.time() + 30
        while ctr("version", check=False).returncode != 0:
            if time.time() > deadline or containerd.poll() is not None:
                sys.exit(f"bench: containerd did not start; see {work}/containerd.log")
            time.sleep(0.05)
        tar = os.path.join(work, "hello.tar")
        # The built-in image enters the store when it first runs.
        capsule("run", "--rm", "hello-world")
        capsule("save", "-o", tar, "hello-world")
        ctr("image", "import", "--all-platforms", tar)
        image = next(l for l in ctr("image", "ls", "-q").stdout.split() if "hello-world" in l)
        # The first run compiles the module into the node's cache.
        first = ctr("run", "--rm", "--runtime", RUNTIME, image, "warm")
        if "Hello" not in first.stdout:
            sys.exit(f"bench: unexpected output of the hello image: {first.stdout!r} {first.stderr!r}")

        # The spec ctr gives a container of this image, for the stress client.
        ctr("run", "--runtime", RUNTIME, image, "spec-source")
        info = json.loads(ctr("containers", "info", "spec-source").stdout)
        ctr("task", "delete", "spec-source", check=False)
        ctr("containers", "delete", "spec-source")
        spec_file = os.path.join(work, "spec.json")
        with open(spec_file, "w") as f:
            json.dump(info["Spec"], f)
        for parallel in (1, os.cpu_count() or 1):
            out = subprocess.run([args.stress, "--address", sock, "--namespace", "bench",
                                  "--image", image, "--runtime", RUNTIME, "--spec", spec_file,
                                  "--count", str(args.tasks), "--parallel", str(parallel),
                                  "--expect", "Hello"],
                                 env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"bench: capsule-shim-stress failed: {out.stderr.strip()}")
            print(out.stdout.rstrip(), flush=True)

        def timed(cmd):
            times = []
            for i in range(args.runs):
                start = time.perf_counter()
                subprocess.run(cmd(i), check=True, capture_output=True, env=capsule_env)
                times.append(time.perf_counter() - start)
            return times

        shim = timed(lambda i: ["ctr", "-a", sock, "-n", "bench", "run", "--rm", "--runtime",
                                RUNTIME, image, f"t{i}"])
        capsule("run", "--rm", "hello-world")
        local = timed(lambda i: [args.capsule, "run", "--rm", "hello-world"])
        total = sum(shim)
        for name, times in (("ctr run --rm (capsule shim)", shim),
                            ("capsule run --rm", local)):
            median = statistics.median(times)
            print(f"{name}: median {median * 1000:.1f} ms = {1 / median:.1f} tasks/s "
                  f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f} ms, {len(times)} runs)")
        print(f"{args.runs} sequential shim tasks in {total:.2f} s = {args.runs / total:.1f} tasks/s")
    finally:
        for cid in ctr("containers", "ls", "-q", check=False).stdout.split():
            ctr("task", "delete", "-f", cid, check=False)
            ctr("containers", "delete", cid, check=False)
        containerd.terminate()
        # The namespace's cgroup directories (the shim removes each task's, not the
        # parent), once empty.
        for d in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", h) for h in os.listdir("/sys/fs/cgroup")]:
            try:
                os.rmdir(os.path.join(d, "bench"))
            except OSError:
                pass
        try:
            containerd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            containerd.kill()
        subprocess.run(["rm", "-rf", work, home], check=False)


if __name__ == "__main__":
    main()
