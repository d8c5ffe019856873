#!/usr/bin/env python3
"""Filesystem benchmarks for Capsule's layered filesystem (`scripts/bench.sh fs`).

(a) container set-up: `capsule run --layer IMAGE.tar` of a module that exits at once,
    over a 1 MB / 10-file layer and over a 500 MB / 20,000-file layer;
(b) a file-heavy guest (tests/guests/bench/fileheavy.c): Capsule over the tree as a
    layer vs `wasmtime run --dir` over the same tree unpacked, and vs the same C
    program built for the host (--native), run over the unpacked tree and writing in a
    directory of the same filesystem as Capsule's writable layer.
Medians from hyperfine; ratios from one run. With --native, also each phase's loop alone
(fileheavy.c times its loops and prints them on stderr), Capsule and native in turns.
`--phases write` runs only the write phase of (b) (create, write, stat and delete 1,000
files in the writable layer); `--phases setup,read,list,write,all` is the default.
"""
import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile


def hyperfine(cmds, runs, prepare=None, warmup=2):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup), "--export-json", out.name]
        if prepare:
            args += ["--prepare", prepare]
        subprocess.run(args + cmds, check=True, stdout=subprocess.DEVNULL)
        return [r["median"] for r in json.load(open(out.name))["results"]]


def loop_times(cmds, runs, prepares):
    """Median loop time in ms of each command: the `loop-ms PHASE=MS ...` line
    fileheavy.c prints on stderr (its loops timed inside the program, without its start
    and exit). The commands take turns, run after run, so both see the same machine."""
    times = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            if prepares[i]:
                subprocess.run(prepares[i], shell=True, check=True)
            err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
            line = next(l for l in err.splitlines() if l.startswith("loop-ms "))
            times[i].append(sum(float(kv.split("=")[1]) for kv in line.split()[1:]))
    return [statistics.median(t) for t in times]


def add_file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def make_image(path, files, total_bytes):
    size = max(1, total_bytes // files)
    blob = os.urandom(size)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(files):
            add_file(tar, f"data/d{i // 1000:03d}/f{i:05d}", blob)


def make_tree(root, tar_path):
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tar:
        for d in range(100):
            for f in range(100):
                data = (f"file {d} {f} " * 8).encode()
                rel = f"tree/d{d:03d}/f{f:03d}"
                add_file(tar, rel, data)
                os.makedirs(os.path.join(root, f"d{d:03d}"), exist_ok=True)
                with open(os.path.join(root, f"d{d:03d}", f"f{f:03d}"), "wb") as fh:
                    fh.write(data)
        os.makedirs(os.path.join(root, "big"), exist_ok=True)
        for i in range(5000):
            add_file(tar, f"tree/big/entry{i:05d}", b"")
            open(os.path.join(root, "big", f"entry{i:05d}"), "wb").close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--capsule", required=True)
    p.add_argument("--fileheavy", required=True)
    p.add_argument("--native", help="fileheavy.c built for the host")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--phases", default="setup,read,list,write,all", help="comma-separated: setup, read, list, write, all")
    a = p.parse_args()
    wanted = set(a.phases.split(","))
    unknown = wanted - {"setup", "read", "list", "write", "all"}
    if unknown:
        sys.exit(f"bench: unknown phase {', '.join(sorted(unknown))} (choose from setup, read, list, write, all)")
    work = tempfile.mkdtemp(prefix="capsule-bench-fs-")
    env = dict(os.environ, CAPSULE_HOME=os.path.join(work, "home"))
    os.environ.update(env)
    noop = os.path.join(work, "noop.wat")
    with open(noop, "w") as fh:
        fh.write('(module (func (export "_start")))')

    small = os.path.join(work, "small.tar")
    large = os.path.join(work, "large.tar")
    subprocess.run([a.capsule, "run", noop], check=True)
    rows = []
    if "setup" in wanted:
        make_image(small, 10, 1 << 20)
        make_image(large, 20000, 500 << 20)
        setup = hyperfine([f"{a.capsule} run {noop}", f"{a.capsule} run --layer {small} {noop}", f"{a.capsule} run --layer {large} {noop}"], 30)

    tree = os.path.join(work, "tree")
    tree_tar = os.path.join(work, "tree.tar")
    make_tree(tree, tree_tar)
    wt_work = os.path.join(work, "wt-work")
    os.makedirs(wt_work)
    check = subprocess.run([a.capsule, "run", "--layer", tree_tar, a.fileheavy, "/tree", "/work"], capture_output=True, text=True, check=True).stdout
    index_dir = os.path.join(work, "home", "cache", "layer-index")
    if "setup" in wanted:
        first = hyperfine([f"{a.capsule} run --layer {large} {noop}"], 5, prepare=f"rm -rf {index_dir}", warmup=0)[0]
        rows = [
            ("capsule run (no layer)", setup[0]),
            ("capsule run --layer 1 MB / 10 files", setup[1]),
            ("capsule run --layer 500 MB / 20,000 files", setup[2]),
            ("the same, first run of that chain (indexes the tar, saves the index)", first),
        ]
    wasmtime = shutil.which("wasmtime")
    if wasmtime:
        ref = subprocess.run([wasmtime, "run", "--dir", f"{tree}::/tree", "--dir", f"{wt_work}::/work", a.fileheavy, "/tree", "/work"], capture_output=True, text=True, check=True).stdout
        if ref != check:
            sys.exit(f"bench: results differ: capsule {check!r} vs wasmtime {ref!r}")
    native_work = os.path.join(work, "native-work")
    if a.native:
        ref = subprocess.run([a.native, tree, native_work], capture_output=True, text=True, check=True).stdout
        if ref != check:
            sys.exit(f"bench: results differ: capsule {check!r} vs native {ref!r}")
    phases = {}
    natives = {}
    loops = {}
    for phase, label in [("read", "stat+open+read 10,000 files"), ("list", "list a 5,000-entry directory 20 times"), ("write", "create+write, then stat+delete 1,000 files"), ("all", "all three")]:
        if phase not in wanted:
            continue
        ours = hyperfine([f"{a.capsule} run --layer {tree_tar} {a.fileheavy} /tree /work {phase}"], a.runs)[0]
        theirs = None
        if wasmtime:
            runs = 3 if phase in ("list", "all") else a.runs
            theirs = hyperfine([f"{wasmtime} run -C cache=y --dir {tree}::/tree --dir {wt_work}::/work {a.fileheavy} /tree /work {phase}"], runs, warmup=1)[0]
        phases[phase] = (label, ours, theirs)
        if a.native:
            # A new directory each run, as Capsule's writable layer is: ext4 allocates
            # a new file's inode near its directory's, slowly where many were freed
            # lately, so reusing one directory would measure the allocator's history.
            natives[phase] = hyperfine([f"{a.native} {tree} {native_work} {phase}"], a.runs,
                                       prepare=f"rm -rf {native_work}")[0]
            if phase != "all":
                loops[phase] = loop_times(
                    [[a.capsule, "run", "--layer", tree_tar, a.fileheavy, "/tree", "/work", phase],
                     [a.native, tree, native_work, phase]],
                    a.runs, [None, f"rm -rf {native_work}"])
    if not wasmtime:
        print("bench: no wasmtime on PATH; install it for the comparison: cargo install wasmtime-cli --version 48.0.8 --locked", file=sys.stderr)

    print(f"Filesystem benchmarks, medians (hyperfine -N); guest result: {check.strip()}")
    print()
    if rows:
        print("| command | median time |")
        print("| --- | ---: |")
        for name, secs in rows:
            print(f"| {name} | {secs * 1000:.1f} ms |")
        print()
    print("| file-heavy guest phase | capsule run --layer tree.tar | wasmtime run --dir (unpacked) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for label, ours, theirs in phases.values():
        if theirs:
            print(f"| {label} | {ours * 1000:.1f} ms | {theirs * 1000:.1f} ms | {ours / theirs:.2f}x |")
        else:
            print(f"| {label} | {ours * 1000:.1f} ms | - | - |")
    print()
    if rows:
        print(f"Set-up, 500 MB/20,000-file layer vs 1 MB/10-file layer: {setup[2] / setup[1]:.2f}x (goal: flat)")
    if "all" in phases and phases["all"][2]:
        print(f"File-heavy guest, capsule/wasmtime: {phases['all'][1] / phases['all'][2]:.2f}x (goal: <= 0.7x)")
    if natives:
        print()
        print("| file-heavy phase | capsule | native (same program, same filesystem) | capsule / native |")
        print("| --- | ---: | ---: | ---: |")
        for phase, native in natives.items():
            label, ours, _ = phases[phase]
            print(f"| {label} | {ours * 1000:.1f} ms | {native * 1000:.1f} ms | {ours / native:.2f}x |")
    if loops:
        print()
        print("| file-heavy phase, its loop alone (timed inside the program) | capsule | native | capsule / native |")
        print("| --- | ---: | ---: | ---: |")
        for phase, (ours, native) in loops.items():
            print(f"| {phases[phase][0]} | {ours:.1f} ms | {native:.1f} ms | {ours / native:.2f}x |")
    if "write" in phases and phases["write"][2]:
        print(f"Write phase in the writable layer, capsule/wasmtime: {phases['write'][1] / phases['write'][2]:.2f}x (goal: <= 0.5x)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
