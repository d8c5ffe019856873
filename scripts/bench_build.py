#!/usr/bin/env python3
"""Image benchmarks (`scripts/bench.sh build`): medians from hyperfine, one run.

(a) no-op rebuild: `capsule build` of an unchanged context (every step CACHED);
(b) a 100 MB context (100 files x 1 MB, incompressible): a full build (--no-cache)
    and its no-op rebuild (hashing the context is the cost);
(c) `capsule run --rm` start-up of a 20,000-file image against a one-file image, both
    running a module that exits at once (after one run has cached the layers' index).
"""
import argparse
import json
import os
import subprocess
import tempfile

EXIT_AT_ONCE = b"\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x05\x03\x01\x00\x01\x07\x13\x02\x06memory\x02\x00\x06_start\x00\x00\x0a\x04\x01\x02\x00\x0b"


def hyperfine(cmds, runs, env, warmup=2):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup), "--export-json", out.name]
        subprocess.run(args + cmds, check=True, stdout=subprocess.DEVNULL, env=env)
        return [r["median"] for r in json.load(open(out.name))["results"]]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capsule", required=True)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    capsule = os.path.abspath(args.capsule)
    work = tempfile.mkdtemp(prefix="capsule-bench-build-")
    env = dict(os.environ, CAPSULE_HOME=os.path.join(work, "home"), CAPSULE_PROGRESS="plain")

    def run(*a):
        subprocess.run([capsule, *a], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # (a) a small app: module + config + a few data files.
    small = os.path.join(work, "small")
    write(f"{small}/app.wasm", EXIT_AT_ONCE)
    for i in range(10):
        write(f"{small}/data/f{i}.txt", f"file {i}\n".encode() * 100)
    write(f"{small}/Capsulefile", b"FROM scratch\nCOPY app.wasm /app/app.wasm\nCOPY data/ /app/data/\nENV MODE=bench\nWORKDIR /app\nENTRYPOINT [\"/app/app.wasm\"]\n")
    run("build", "-t", "small", small)
    (noop_small,) = hyperfine([f"{capsule} build -t small {small}"], args.runs, env)

    # (b) a 100 MB context.
    big = os.path.join(work, "big")
    write(f"{big}/app.wasm", EXIT_AT_ONCE)
    for i in range(100):
        write(f"{big}/data/f{i:03d}.bin", os.urandom(1 << 20))
    write(f"{big}/Capsulefile", b"FROM scratch\nCOPY app.wasm /app/app.wasm\nCOPY data/ /data/\nENTRYPOINT [\"/app/app.wasm\"]\n")
    (full_big,) = hyperfine([f"{capsule} build --no-cache -t big {big}"], 5, env, warmup=1)
    run("build", "-t", "big", big)
    (noop_big,) = hyperfine([f"{capsule} build -t big {big}"], args.runs, env)

    # (c) start-up: 20,000 files vs one.
    many = os.path.join(work, "many")
    write(f"{many}/app.wasm", EXIT_AT_ONCE)
    for i in range(20000):
        write(f"{many}/files/d{i // 1000:02d}/f{i:05d}.txt", b"x" * 64)
    write(f"{many}/Capsulefile", b"FROM scratch\nCOPY files/ /files/\nCOPY app.wasm /app.wasm\nENTRYPOINT [\"/app.wasm\"]\n")
    one = os.path.join(work, "one")
    write(f"{one}/app.wasm", EXIT_AT_ONCE)
    write(f"{one}/Capsulefile", b"FROM scratch\nCOPY app.wasm /app.wasm\nENTRYPOINT [\"/app.wasm\"]\n")
    run("build", "-t", "many", many)
    run("build", "-t", "one", one)
    run("run", "--rm", "many")
    run("run", "--rm", "one")
    one_start, many_start = hyperfine([f"{capsule} run --rm one", f"{capsule} run --rm many"], max(args.runs, 50), env)

    ms = lambda s: f"{s * 1000:.1f} ms"
    print("| measurement | median |")
    print("| --- | ---: |")
    print(f"| no-op rebuild, small app (5 steps, all CACHED) | {ms(noop_small)} |")
    print(f"| full build, 100 MB context (--no-cache) | {ms(full_big)} |")
    print(f"| no-op rebuild, 100 MB context | {ms(noop_big)} |")
    print(f"| `capsule run --rm` of a one-file image | {ms(one_start)} |")
    print(f"| `capsule run --rm` of a 20,000-file image | {ms(many_start)} |")
    print(f"\n20,000-file image start-up / one-file image start-up: {many_start / one_start:.2f}x")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
