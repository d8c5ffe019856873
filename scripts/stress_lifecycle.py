#!/usr/bin/env python3
"""Lifecycle race stress (scripts/bench.sh stress; issue 26 item 4, "races that lose
nothing"): many processes at once run `stop`, `kill`, `rm -f`, `start`, `restart`,
`rename`, `cp`, `run -d` (and `rm -f` during `run -d`'s start-up) on the same few
detached containers, then check that nothing was lost or left behind:

  - every failed command said so in one `capsule:` line (no panic, no backtrace, no
    raw host error, no hang, no death by a signal);
  - no state.json or config.json was ever seen torn (sampled throughout the run);
  - no supervisor (`capsule __supervise ID`) runs for a container that is gone or not
    running, and each running container has its supervisor;
  - `capsule ps -a` lists exactly the directories under $CAPSULE_HOME/containers, with
    no name twice, none `dead` (a process that ended without recording its end), and
    nothing left by an interrupted removal;
  - `capsule system check` is clean;
  - after `rm -f` of everything, no supervisor of the home is left.

Python 3 standard library only. The guest is `tests/guests/c/service.c` compiled
(`service tick 0 100` runs until stopped). Exits 1 on any violation. The seed fixes
each worker's sequence of commands, not the interleaving.

  stress_lifecycle.py --capsule BIN --guest service.wasm [--containers 8] [--workers 8]
                      [--duration 60 | --iterations N] [--seed 1] [--log ops.jsonl]
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

IMAGE = "stress-svc"
GUEST_ARGS = ["tick", "0", "100"]
# Every command gets this long before it counts as hung.
COMMAND_TIMEOUT = 60.0

# verb -> weight
VERBS = {
    "stop": 4,
    "kill": 3,
    "rm": 2,
    "start": 5,
    "restart": 3,
    "rename": 3,
    "cp": 3,
    "run": 3,
    "run+rm": 2,
    "ps": 1,
}


class Stress:
    def __init__(self, args):
        self.args = args
        self.home = args.home or tempfile.mkdtemp(prefix="capsule-stress-home-")
        self.work = tempfile.mkdtemp(prefix="capsule-stress-work-")
        self.env = dict(os.environ, CAPSULE_HOME=self.home)
        self.env.pop("RUST_BACKTRACE", None)
        self.lock = threading.Lock()
        self.records = []  # one dict per command
        self.violations = []
        self.torn = []
        self.stop_sampling = threading.Event()
        self.log = open(args.log, "w") if args.log else None

    # -- commands ------------------------------------------------------------------

    def capsule(self, *argv, timeout=COMMAND_TIMEOUT):
        """Runs `capsule ARGV`: (rc or None when hung, stdout, stderr, seconds)."""
        start = time.monotonic()
        try:
            p = subprocess.run([self.args.capsule, *argv], env=self.env, cwd=self.work,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout)
            return p.returncode, p.stdout, p.stderr, time.monotonic() - start
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            return None, out, err, time.monotonic() - start

    def spawn(self, *argv):
        return subprocess.Popen([self.args.capsule, *argv], env=self.env, cwd=self.work,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def finish(self, proc, start):
        try:
            out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
            return proc.returncode, out, err, time.monotonic() - start
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return None, out, err, time.monotonic() - start

    def record(self, verb, argv, result):
        rc, out, err, secs = result
        outcome, kind = classify(rc, err)
        rec = {"verb": verb, "argv": argv, "rc": rc, "secs": round(secs, 4),
               "outcome": outcome, "kind": kind, "stderr": err}
        with self.lock:
            self.records.append(rec)
            if outcome == "violation":
                self.violations.append(f"{' '.join(argv)} -> rc {rc}: {kind}: {err.strip()[:400]}")
            if self.log:
                self.log.write(json.dumps(rec) + "\n")

    # -- the workload --------------------------------------------------------------

    def names(self, slot):
        return [f"s{slot}", f"s{slot}-x"]

    def one(self, rng):
        verb = rng.choices(list(VERBS), weights=list(VERBS.values()))[0]
        slot = rng.randrange(self.args.containers)
        pair = self.names(slot)
        name = rng.choice(pair)
        if verb == "stop":
            argv = ["stop", "-t", rng.choice(["0", "0", "1"]), name]
        elif verb == "kill":
            argv = ["kill", name]
        elif verb == "rm":
            argv = ["rm", "-f", name]
        elif verb == "start":
            argv = ["start", name]
        elif verb == "restart":
            argv = ["restart", "-t", "0", name]
        elif verb == "rename":
            argv = ["rename", name, pair[1] if name == pair[0] else pair[0]]
        elif verb == "cp":
            if rng.random() < 0.5:
                src = os.path.join(self.work, "payload.txt")
                argv = ["cp", src, f"{name}:/payload-{rng.randrange(4)}.txt"]
            else:
                dest = os.path.join(self.work, f"out-{threading.get_ident()}-{rng.randrange(1 << 30)}")
                argv = ["cp", f"{name}:/service.wasm", dest]
                self.record(verb, argv, self.capsule(*argv))
                # Whatever was copied is whole (the image's module) or absent.
                if os.path.exists(dest):
                    size = os.path.getsize(dest)
                    if size != self.guest_size:
                        with self.lock:
                            self.violations.append(f"cp out of {name} gave {size} bytes, not {self.guest_size}")
                    os.remove(dest)
                return
        elif verb == "run":
            argv = ["run", "-d", "--name", name, IMAGE, *GUEST_ARGS]
        elif verb == "run+rm":
            # `rm -f` during `run -d`'s start-up: both at once, the removal a little
            # later (0-40 ms), so it lands anywhere from before create to after start.
            run_argv = ["run", "-d", "--name", name, IMAGE, *GUEST_ARGS]
            rm_argv = ["rm", "-f", name]
            start = time.monotonic()
            runner = self.spawn(*run_argv)
            time.sleep(rng.random() * 0.04)
            rm_start = time.monotonic()
            remover = self.spawn(*rm_argv)
            self.record("run+rm:run", run_argv, self.finish(runner, start))
            self.record("run+rm:rm", rm_argv, self.finish(remover, rm_start))
            return
        else:
            argv = ["ps", "-a"]
        self.record(verb, argv, self.capsule(*argv))

    def worker(self, index, deadline):
        rng = random.Random(self.args.seed * 1000 + index)
        done = 0
        while time.monotonic() < deadline and (self.args.iterations is None or done < self.args.iterations):
            self.one(rng)
            done += 1

    def sampler(self):
        """Reads every state.json and config.json over and over: a file that exists
        must always parse (they are replaced by rename, never written in place)."""
        root = os.path.join(self.home, "containers")
        while not self.stop_sampling.is_set():
            try:
                entries = os.listdir(root)
            except FileNotFoundError:
                entries = []
            for entry in entries:
                for name in ("state.json", "config.json"):
                    path = os.path.join(root, entry, name)
                    try:
                        with open(path, "rb") as f:
                            data = f.read()
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    try:
                        json.loads(data)
                    except ValueError as e:
                        with self.lock:
                            self.torn.append(f"{entry[:12]}/{name}: {e}: {data[:120]!r}")
            time.sleep(0.02)

    # -- the checks ----------------------------------------------------------------

    def supervisors(self):
        """{pid: container ID} of the `capsule __supervise ID` processes of this home."""
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if len(argv) < 3 or argv[1] != b"__supervise":
                    continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
                # A process that is a zombie or exiting has no environ left to read.
                if f"CAPSULE_HOME={self.home}".encode() not in environ:
                    continue
                with open(f"/proc/{pid}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                        continue
                found[int(pid)] = argv[2].decode()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        return found

    def listed(self):
        """`ps -a` as {ID: entry}, and the violations of reading it."""
        rc, out, err, _ = self.capsule("ps", "-a", "--no-trunc", "--format", "json")
        if rc != 0:
            return None, [f"ps -a failed (rc {rc}): {err.strip()}"]
        entries = {}
        for line in out.splitlines():
            if line.strip():
                entry = json.loads(line)
                entries[entry["ID"]] = entry
        return entries, []

    def inconsistencies(self):
        """What is wrong with the home now, as lines (empty: all invariants hold)."""
        problems = []
        entries, bad = self.listed()
        if entries is None:
            return bad
        root = os.path.join(self.home, "containers")
        dirs = set(os.listdir(root)) if os.path.isdir(root) else set()
        hidden = sorted(d for d in dirs if d.startswith("."))
        if hidden:
            problems.append(f"left in containers/ by an interrupted write or removal: {hidden}")
        dirs -= set(hidden)
        if set(entries) != dirs:
            problems.append(f"ps -a and the container directories differ: only listed "
                            f"{sorted(i[:12] for i in set(entries) - dirs)}, only on disk "
                            f"{sorted(i[:12] for i in dirs - set(entries))}")
        for d in sorted(dirs):
            for name in ("config.json", "state.json"):
                path = os.path.join(root, d, name)
                try:
                    with open(path, "rb") as f:
                        json.loads(f.read())
                except (OSError, ValueError) as e:
                    problems.append(f"{d[:12]}/{name} unreadable: {e}")
            stray = [f for f in os.listdir(os.path.join(root, d)) if f.endswith(".tmp")]
            if stray:
                problems.append(f"{d[:12]}: temporary files left: {stray}")
        names = collections.Counter(e["Names"] for e in entries.values())
        for name, n in names.items():
            if n > 1:
                problems.append(f"the name {name} is held by {n} containers")
        supervisors = self.supervisors()
        by_id = collections.defaultdict(list)
        for pid, cid in supervisors.items():
            by_id[cid].append(pid)
        for cid, pids in sorted(by_id.items()):
            entry = entries.get(cid)
            if entry is None:
                problems.append(f"supervisor(s) {pids} run for {cid[:12]}, which ps -a does not list")
            elif entry["State"] not in ("running", "restarting"):
                problems.append(f"supervisor(s) {pids} run for {entry['Names']}, which is {entry['State']}")
            elif len(pids) > 1:
                problems.append(f"{len(pids)} supervisors {pids} run {entry['Names']}")
        for cid, entry in sorted(entries.items()):
            if entry["State"] in ("running", "restarting") and cid not in by_id:
                problems.append(f"{entry['Names']} is {entry['State']} with no supervisor")
            if entry["State"] == "dead":
                problems.append(f"{entry['Names']} is dead: its process ended without recording how")
        rc, out, err, _ = self.capsule("system", "check")
        if rc != 0:
            problems.append(f"system check failed (rc {rc}): {(out + err).strip()[:600]}")
        return problems

    def settle(self, limit=15.0):
        """The invariants, given supervisors that are ending a moment to end (a stop
        lets the guest run a second after interrupting it; a supervisor whose directory
        went notices within half a second)."""
        start = time.monotonic()
        while True:
            problems = self.inconsistencies()
            if not problems or time.monotonic() - start > limit:
                return problems
            time.sleep(0.5)

    # -- the run -------------------------------------------------------------------

    def run(self):
        a = self.args
        rc, _, err, _ = self.capsule("image", "import", a.guest, "-t", IMAGE)
        if rc != 0:
            sys.exit(f"stress: cannot import {a.guest}: {err.strip()}")
        self.guest_size = os.path.getsize(a.guest)
        with open(os.path.join(self.work, "payload.txt"), "w") as f:
            f.write("payload\n" * 100)
        # The first run compiles the guest; the containers then start from the cache.
        rc, _, err, _ = self.capsule("run", "--rm", IMAGE, "tick", "1", "0")
        if rc != 0:
            sys.exit(f"stress: the guest does not run: {err.strip()}")
        for slot in range(a.containers):
            rc, _, err, _ = self.capsule("run", "-d", "--name", self.names(slot)[0], IMAGE, *GUEST_ARGS)
            if rc != 0:
                sys.exit(f"stress: cannot start container {slot}: {err.strip()}")

        load_before = os.getloadavg()
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        start = time.monotonic()
        deadline = start + (a.duration if a.iterations is None else 1e9)
        threads = [threading.Thread(target=self.worker, args=(i, deadline)) for i in range(a.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        load_after = os.getloadavg()
        self.stop_sampling.set()
        sampler.join()

        problems = self.settle()
        # Everything removed: no supervisor of the home may be left.
        ids = [i for i in (self.listed()[0] or {})]
        if ids:
            rc, _, err, _ = self.capsule("rm", "-f", *ids)
            if rc != 0:
                problems.append(f"rm -f of every container failed: {err.strip()}")
        end = time.monotonic()
        while self.supervisors() and time.monotonic() - end < 10:
            time.sleep(0.2)
        left = self.supervisors()
        if left:
            problems.append(f"supervisors left after rm -f of every container: {sorted(left)}")
        final = self.inconsistencies()
        problems += [f"after removing all: {p}" for p in final]

        ok = self.report(elapsed, load_before, load_after, problems)
        if self.log:
            self.log.close()
        if not a.keep:
            shutil.rmtree(self.work, ignore_errors=True)
            if not a.home and ok:
                shutil.rmtree(self.home, ignore_errors=True)
        if not ok:
            print(f"home kept for a look: {self.home}")
        return ok

    def report(self, elapsed, load_before, load_after, problems):
        a = self.args
        n = len(self.records)
        print(f"stress: {a.capsule}: {a.containers} containers, {a.workers} workers, seed {a.seed}, "
              f"{'%d iterations per worker' % a.iterations if a.iterations else '%g s' % a.duration}")
        print(f"{n} commands in {elapsed:.1f} s: {n / elapsed:.1f} commands/s; "
              f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
              f"({os.cpu_count()} CPUs)")
        by_verb = collections.defaultdict(collections.Counter)
        secs = collections.defaultdict(list)
        kinds = collections.defaultdict(collections.Counter)
        for r in self.records:
            by_verb[r["verb"]][r["outcome"]] += 1
            secs[r["verb"]].append(r["secs"])
            if r["outcome"] != "ok":
                kinds[r["verb"]][r["kind"]] += 1
        print(f"{'verb':<12} {'total':>6} {'ok':>6} {'refused':>8} {'bad':>5} {'p50 ms':>8} {'max ms':>8}")
        for verb in sorted(by_verb):
            c = by_verb[verb]
            s = sorted(secs[verb])
            print(f"{verb:<12} {sum(c.values()):>6} {c['ok']:>6} {c['refused']:>8} {c['violation']:>5} "
                  f"{s[len(s) // 2] * 1000:>8.0f} {s[-1] * 1000:>8.0f}")
        print("refusals and failures, by kind:")
        for verb in sorted(kinds):
            for kind, count in kinds[verb].most_common():
                print(f"  {verb:<12} {count:>5}  {kind}")
        checks = [
            ("every failure is one clear capsule: line", not self.violations),
            ("no state.json/config.json seen torn", not self.torn),
            ("home consistent, supervisors accounted for, system check clean", not problems),
        ]
        for what, good in checks:
            print(f"{'PASS' if good else 'FAIL'}: {what}")
        for v in self.violations[:40]:
            print(f"  command: {v}")
        if len(self.violations) > 40:
            print(f"  ... and {len(self.violations) - 40} more")
        for t in self.torn[:20]:
            print(f"  torn: {t}")
        for p in problems:
            print(f"  home: {p}")
        return all(good for _, good in checks)


# A name, an ID, a pid, a path or a number in a message, so that messages group by kind.
NORMALIZE = [
    (re.compile(r"\bs\d+(-x)?\b"), "NAME"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "ID"),
    (re.compile(r"/[^\s:'\"),]+"), "PATH"),
    (re.compile(r"\b\d+\b"), "N"),
]


def classify(rc, stderr):
    """("ok" | "refused" | "violation", the kind of message)."""
    if rc is None:
        return "violation", f"hung (no end within {COMMAND_TIMEOUT:.0f} s)"
    if rc < 0:
        return "violation", f"killed by signal {-rc}"
    lines = [line for line in stderr.splitlines() if not line.startswith("capsule: warning:")]
    if "panicked" in stderr or "backtrace" in stderr.lower():
        return "violation", "panic"
    if rc == 0:
        return ("ok", "") if not lines else ("violation", "succeeded with stderr: " + lines[0][:200])
    if len(lines) != 1 or not lines[0].startswith("capsule: "):
        return "violation", f"not one capsule: line ({len(lines)} lines)"
    kind = lines[0][len("capsule: "):]
    for pattern, placeholder in NORMALIZE:
        kind = pattern.sub(placeholder, kind)
    # A host error that escaped: the race was not turned into a clear message.
    if "os error" in kind:
        return "violation", f"raw host error: {kind}"
    return "refused", f"rc {rc}: {kind}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capsule", required=True, help="the capsule binary")
    ap.add_argument("--guest", required=True, help="the service guest module (tests/guests/c/service.c)")
    ap.add_argument("--containers", type=int, default=8)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds (unless --iterations)")
    ap.add_argument("--iterations", type=int, default=None, help="commands per worker, instead of --duration")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--home", help="CAPSULE_HOME to use (default: a fresh temporary one)")
    ap.add_argument("--log", help="write every command and its outcome here, one JSON object a line")
    ap.add_argument("--keep", action="store_true", help="keep the home and work directory")
    args = ap.parse_args()
    if args.containers < 1 or args.workers < 1:
        ap.error("--containers and --workers must be at least 1")
    sys.exit(0 if Stress(args).run() else 1)


if __name__ == "__main__":
    main()
