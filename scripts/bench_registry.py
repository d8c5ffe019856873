#!/usr/bin/env python3
"""Registry benchmark (`scripts/bench.sh registry`): medians from hyperfine, one run.

A ~100 MB image (four layers of 25 MB of incompressible data) against Debian's
docker-registry on loopback (plain HTTP), each measurement against `skopeo copy` of
the same image:

  push: `capsule push` from the store vs `skopeo copy oci:LAYOUT docker://...`
        (the registry's storage is emptied before every run: every blob is sent);
  pull: `capsule pull` into an empty home vs `skopeo copy docker://... oci:DIR`
        (the destination is removed before every run).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time


def hyperfine(cmds, runs, env, prepare):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", "1",
                "--export-json", out.name]
        for cmd in cmds:
            args += ["--prepare", prepare]
        subprocess.run(args + cmds, check=True, stdout=subprocess.DEVNULL, env=env)
        return [r["median"] for r in json.load(open(out.name))["results"]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(work):
    """Debian's docker-registry on a free loopback port, storing under WORK/storage;
    returns the process and its address once it accepts connections."""
    storage = os.path.join(work, "storage")
    os.makedirs(storage, exist_ok=True)
    port = free_port()
    addr = f"127.0.0.1:{port}"
    config = os.path.join(work, "config.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
                f"  maintenance:\n    uploadpurging:\n      enabled: false\n"
                f"http:\n  addr: {addr}\n  secret: bench\n")
    log = open(os.path.join(work, "registry.log"), "w")
    registry = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=log)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return registry, addr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for tool in ["docker-registry", "skopeo", "hyperfine"]:
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is missing: run scripts/install-test-deps.sh")
    capsule = os.path.abspath(args.capsule)
    work = tempfile.mkdtemp(prefix="capsule-bench-registry-")
    storage = os.path.join(work, "storage")
    registry, addr = start_registry(work)
    try:
        home = os.path.join(work, "home")
        env = dict(os.environ, CAPSULE_HOME=home, CAPSULE_PROGRESS="plain")

        def run(*a, **kw):
            subprocess.run([capsule, *a], check=True, env=kw.get("env", env),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        ctx = os.path.join(work, "ctx")
        os.makedirs(ctx)
        recipe = "FROM scratch\n"
        for i in range(4):
            with open(os.path.join(ctx, f"part{i}.bin"), "wb") as f:
                f.write(os.urandom(25 << 20))
            recipe += f"COPY part{i}.bin /data/part{i}.bin\n"
        with open(os.path.join(ctx, "Capsulefile"), "w") as f:
            f.write(recipe)
        name = f"{addr}/bench/app:1"
        run("build", "-t", name, ctx)
        # skopeo's source: the same image as an OCI layout (capsule save, unpacked).
        layout = os.path.join(work, "layout")
        os.makedirs(layout)
        run("save", "-o", os.path.join(work, "app.tar"), name)
        subprocess.run(["tar", "xf", os.path.join(work, "app.tar"), "-C", layout], check=True)
        size = sum(os.path.getsize(os.path.join(layout, "blobs/sha256", b))
                   for b in os.listdir(os.path.join(layout, "blobs/sha256")))

        empty_registry = f"rm -rf {storage}/docker"
        push_capsule, push_skopeo = hyperfine(
            [f"{capsule} push -q {name}",
             f"skopeo copy -q --dest-tls-verify=false --preserve-digests oci:{layout}:1 docker://{addr}/bench/skopeo:1"],
            args.runs, env, empty_registry)

        run("push", "-q", name)
        pull_home = os.path.join(work, "pull-home")
        pull_dir = os.path.join(work, "pull-oci")
        pull_env = dict(env, CAPSULE_HOME=pull_home)
        pull_capsule, pull_skopeo = hyperfine(
            [f"{capsule} pull -q {name}",
             f"skopeo copy -q --src-tls-verify=false --preserve-digests docker://{name} oci:{pull_dir}:1"],
            args.runs, pull_env, f"rm -rf {pull_home} {pull_dir}")
    finally:
        registry.kill()
        registry.wait()
        shutil.rmtree(work, ignore_errors=True)

    ms = lambda s: f"{s * 1000:.0f} ms"
    print(f"image: {size / 1e6:.0f} MB in 4 layers, registry on loopback (plain HTTP), {args.runs} runs each")
    print("| measurement | capsule | skopeo copy | capsule / skopeo |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| push ~100 MB | {ms(push_capsule)} | {ms(push_skopeo)} | {push_capsule / push_skopeo:.2f} |")
    print(f"| pull ~100 MB | {ms(pull_capsule)} | {ms(pull_skopeo)} | {pull_capsule / pull_skopeo:.2f} |")


if __name__ == "__main__":
    main()
