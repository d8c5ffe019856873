//! Resource limits through the real binary: `--memory`, `--fuel`, `--ulimit nofile`,
//! `--storage-opt size`. Each guest that takes without end meets a clear end, and the
//! host and the other containers carry on.

use capsule_tests::{Containers, Run, TestEnv, guests};
use std::time::{Duration, Instant};

/// A home with `hog` (see `guests/c/hog.c`) and `service` as images; every container
/// is removed (its supervisor ended) when the test ends, pass or fail.
struct Env(Containers);

impl std::ops::Deref for Env {
    type Target = Containers;
    fn deref(&self) -> &Containers {
        &self.0
    }
}

impl Env {
    fn new() -> Self {
        Self(Containers::new(&[
            (guests::HOG, "hog"),
            (guests::SERVICE, "svc"),
        ]))
    }

    fn run(&self, args: &[&str]) -> Run {
        self.0.env.run(args)
    }

    /// How many ticks the detached `ticker` has logged.
    fn ticks(&self) -> usize {
        self.ok(&["logs", "ticker"])
            .lines()
            .filter(|l| l.starts_with("tick "))
            .count()
    }
}

/// The MiB `hog mem` reached before malloc failed.
#[track_caller]
fn allocated(run: &Run) -> u64 {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("malloc failed after "))
        .and_then(|rest| rest.strip_suffix(" MiB"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("hog mem did not report its end:\n{run:?}"))
}

/// `--memory`: a guest that allocates without end is refused memory inside the guest
/// (malloc returns NULL), and when it then aborts the run ends out of memory: one
/// clear line, exit 137, `State.OOMKilled` — while a detached container keeps ticking.
/// Named after its guest, `hog`, which the other limits use as well.
#[test]
pub fn hog() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "ticker", "svc", "tick", "0", "20"]);
    env.wait_for("ticker", "running", |s| s["Status"] == "running");

    // A module file: the guest sees malloc fail below the limit, then aborts.
    let run = env.run(&["run", "-m", "16m", guests::HOG, "mem", "1"]);
    run.assert_code(137);
    let mib = allocated(&run);
    assert!(
        (8..16).contains(&mib),
        "malloc should fail a little below 16m, at {mib} MiB:\n{run:?}"
    );
    assert!(
        run.stderr
            .contains("capsule: guest ran out of memory: --memory 16m"),
        "{}",
        run.stderr
    );

    // A guest that handles the failure and exits by itself keeps its code; the run
    // still says it ran out of memory.
    let run = env.run(&["run", "--memory", "8m", guests::HOG, "mem", "1", "exit"]);
    run.assert_code(3);
    assert!(allocated(&run) < 8, "{run:?}");
    assert!(
        run.stderr
            .contains("capsule: guest ran out of memory: --memory 8m"),
        "{}",
        run.stderr
    );

    // A container: the state records it as Docker's does.
    let before = env.ticks();
    let run = env.run(&["run", "--name", "greedy", "-m", "32m", "hog", "mem", "2"]);
    run.assert_code(137);
    assert!((16..32).contains(&allocated(&run)), "{run:?}");
    assert!(
        run.stderr
            .contains("capsule: guest ran out of memory: --memory 32m"),
        "{}",
        run.stderr
    );
    let state = env.state("greedy");
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");
    assert!(
        state["Error"]
            .as_str()
            .is_some_and(|e| e.contains("out of memory")),
        "{state}"
    );
    let logs = env.run(&["logs", "greedy"]);
    assert!(
        logs.stderr
            .contains("guest ran out of memory: --memory 32m"),
        "the log says why it ended: {logs:?}"
    );

    // Detached, the same: and the other container carried on throughout.
    env.ok(&[
        "run", "-d", "--name", "greedy2", "-m", "16m", "hog", "mem", "1",
    ]);
    env.wait_for("greedy2", "exited", |s| s["Status"] == "exited");
    let state = env.state("greedy2");
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");
    let start = Instant::now();
    while env.ticks() < before + 5 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the other container stopped ticking"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.state("ticker")["Status"], "running");

    // A run that stays within its memory is not marked.
    env.ok(&[
        "run", "--name", "modest", "-m", "16m", "svc", "tick", "1", "0",
    ]);
    assert_eq!(env.state("modest")["OOMKilled"], false);
}

/// `--memory` below what the module declares at start: the run ends out of memory
/// before the guest's first instruction.
#[test]
pub fn memory_below_initial() {
    let env = TestEnv::new();
    let wat = env.wat(
        "big.wat",
        r#"(module (memory 64) (func (export "_start")))"#,
    );
    let wat = wat.to_str().expect("utf-8 path");
    let run = env.run(&["run", "-m", "1m", wat]);
    run.assert_code(137);
    assert!(
        run.stderr
            .contains("capsule: guest ran out of memory: --memory 1m"),
        "{}",
        run.stderr
    );
    env.run(&["run", "-m", "4m", wat]).assert_clean_success();
}

/// `--memory` bounds tables too: `table.grow` past it returns -1 in the guest.
#[test]
pub fn memory_bounds_tables() {
    let env = TestEnv::new();
    // Grows its table by 64k elements (512 KiB at 8 bytes each) until refused, then
    // exits with how many grows succeeded.
    let wat = env.wat(
        "tables.wat",
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 1)
  (table 0 funcref)
  (func (export "_start") (local $n i32)
    (loop $l
      (if (i32.ne (table.grow (ref.null func) (i32.const 65536)) (i32.const -1))
        (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
    (call $exit (local.get $n))))"#,
    );
    let run = env.run(&["run", "-m", "4m", wat.to_str().expect("utf-8 path")]);
    // 4 MiB minus the one 64 KiB page of memory holds 7 grows of 512 KiB.
    run.assert_code(7);
    assert!(
        run.stderr.contains("guest ran out of memory: --memory 4m"),
        "{}",
        run.stderr
    );
}

/// `--fuel`: a guest that loops forever without calling the host is stopped when its
/// instructions run out (exit 152), in the foreground and detached; a guest that ends
/// within its fuel is unaffected, and other containers carry on.
#[test]
pub fn fuel() {
    let env = Env::new();
    let run = env.run(&["run", "--fuel", "5000000", "svc", "spin"]);
    run.assert_code(152);
    assert!(
        run.stderr
            .contains("capsule: guest ran out of fuel: --fuel 5000000"),
        "{}",
        run.stderr
    );
    // A module file, and a run that needs less than it has.
    let run = env.run(&["run", "--fuel", "5000000", guests::SERVICE, "spin"]);
    run.assert_code(152);
    let run = env.run(&["run", "--fuel", "100000000", "svc", "tick", "2", "0"]);
    run.assert_code(0);
    assert_eq!(run.stdout, "tick 1\ntick 2\n");
    // Detached, next to a container without fuel metering.
    env.ok(&["run", "-d", "--name", "ticker", "svc", "tick", "0", "20"]);
    env.ok(&[
        "run", "-d", "--name", "spinner", "--fuel", "20000000", "svc", "spin",
    ]);
    env.wait_for("spinner", "exited", |s| s["Status"] == "exited");
    let state = env.state("spinner");
    assert_eq!(state["ExitCode"], 152, "{state}");
    assert!(
        state["Error"]
            .as_str()
            .is_some_and(|e| e.contains("ran out of fuel")),
        "{state}"
    );
    env.wait_for("ticker", "ticking", |s| s["Status"] == "running");
    let before = env.ticks();
    let start = Instant::now();
    while env.ticks() < before + 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "ticker stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--ulimit nofile=N`: descriptor numbers stop at N (stdio and the preopen count), the
/// next open answers EMFILE; the default is 1024.
#[test]
pub fn nofile() {
    let env = TestEnv::new();
    let dir = env.work().join("data");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("f"), "x").expect("write");
    let volume = format!("{}:/data", dir.display());
    // 0-2 stdio, 3 the root preopen: 60 more fit under 64.
    let run = env.run(&[
        "run",
        "--ulimit",
        "nofile=64",
        "-v",
        &volume,
        guests::HOG,
        "open",
        "/data/f",
    ]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "opened 60: EMFILE\n");
    // Docker's SOFT:HARD form: the soft limit applies.
    let run = env.run(&[
        "run",
        "--ulimit",
        "nofile=10:100",
        "-v",
        &volume,
        guests::HOG,
        "open",
        "/data/f",
    ]);
    assert_eq!(run.stdout, "opened 6: EMFILE\n");
    let run = env.run(&["run", "-v", &volume, guests::HOG, "open", "/data/f"]);
    assert_eq!(run.stdout, "opened 1020: EMFILE\n", "the default is 1024");
    // At the limit, creating a file fails before creating it.
    let run = env.run(&[
        "run",
        "--ulimit",
        "nofile=8",
        "-v",
        &volume,
        guests::EMFILE,
        "/data",
    ]);
    run.assert_clean_success();
    assert!(
        run.stdout.contains("limit reached after 4 opens: EMFILE")
            && run.stdout.contains("create at the limit: EMFILE"),
        "{}",
        run.stdout
    );
    assert!(!dir.join("fresh").exists());
}

/// The bytes `hog fill` wrote before its write failed, and the error.
#[track_caller]
fn filled(run: &Run) -> (u64, String) {
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .unwrap_or_else(|| panic!("hog fill did not report:\n{run:?}"));
    let (bytes, error) = line.split_once(" bytes: ").expect("wrote N bytes: E");
    (bytes.parse().expect("a number"), error.to_owned())
}

/// `--storage-opt size=N`: the writable layer answers ENOSPC once it holds N bytes of
/// file data; what it holds counts again after a restart; removing a file gives its
/// room back; a module's in-memory root obeys it too.
#[test]
pub fn storage() {
    let env = Env::new();
    let run = env.run(&[
        "run",
        "--name",
        "filler",
        "--storage-opt",
        "size=1m",
        "hog",
        "fill",
        "/big",
    ]);
    run.assert_clean_success();
    assert_eq!(filled(&run), (1 << 20, "ENOSPC".to_owned()));
    // The upper holds the file on the host, no more than the limit.
    let upper = env.env.home().join("containers");
    let size = walk_size(&upper, "big");
    assert_eq!(size, 1 << 20, "the file in the writable layer");
    // Run again: the layer is measured when mounted, so there is no room left.
    let run = env.run(&["start", "-a", "filler"]);
    run.assert_clean_success();
    assert_eq!(filled(&run), (0, "ENOSPC".to_owned()));

    // Removing a file gives its room back.
    let run = env.run(&[
        "run",
        "--storage-opt",
        "size=512k",
        "hog",
        "fill",
        "/a",
        "again",
    ]);
    run.assert_clean_success();
    assert_eq!(
        run.stdout,
        "wrote 524288 bytes: ENOSPC\nwrote 524288 bytes: ENOSPC\n"
    );

    // A module's in-memory root.
    let run = env.run(&[
        "run",
        "--storage-opt",
        "size=256k",
        guests::HOG,
        "fill",
        "/big",
    ]);
    run.assert_clean_success();
    assert_eq!(filled(&run), (256 << 10, "ENOSPC".to_owned()));
}

fn walk_size(dir: &std::path::Path, name: &str) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            total += walk_size(&path, name);
        } else if entry.file_name() == name {
            total += meta.len();
        }
    }
    total
}

/// Bad limit values: one clear line, exit 125, and no container created.
#[test]
pub fn bad_limits() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["-m", "lots"], "--memory: invalid size 'lots'"),
        (&["--memory", "1k"], "--memory 1k is too small"),
        (&["--fuel", "0"], "--fuel: invalid amount '0'"),
        (&["--fuel", "-5"], "--fuel: invalid amount '-5'"),
        (&["--fuel", "many"], "--fuel: invalid amount 'many'"),
        (&["--ulimit", "nproc=5"], "Capsule enforces only nofile=N"),
        (
            &["--ulimit", "nofile=0"],
            "--ulimit nofile=0: expected nofile=N",
        ),
        (&["--ulimit", "nofile=10:5"], "--ulimit nofile=10:5"),
        (&["--ulimit", "nofile=abc"], "--ulimit nofile=abc"),
        (
            &["--storage-opt", "size=0"],
            "--storage-opt size=0: invalid size",
        ),
        (&["--storage-opt", "size=big"], "invalid size 'big'"),
        (&["--storage-opt", "dm.basesize=1g"], "knows only size=N"),
    ];
    for (flags, needle) in cases {
        for verb in ["run", "create"] {
            let mut args = vec![verb, "--name", "never"];
            args.extend_from_slice(flags);
            args.extend(["svc", "tick", "1", "0"]);
            env.run(&args).assert_error(125, &[needle]);
        }
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend([guests::SERVICE, "tick", "1", "0"]);
        env.run(&args).assert_error(125, &[needle]);
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "", "nothing was created");
    let containers = env.env.home().join("containers");
    let left = std::fs::read_dir(&containers)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "no container directory left in {containers:?}");
}

/// Durations have one documented maximum, 10^9 seconds, checked before anything is
/// done: a longer `stop -t`, `restart -t`, `--stop-timeout` or `--timeout` is one clear
/// line and the container runs on. Before, `stop -t 18446744073709551615` panicked
/// ("overflow when adding durations"), `restart -t` left the container stopped, and
/// `stop -t 100000000000000000` killed the guest at once.
#[test]
pub fn durations_have_one_maximum() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "ticker", "svc", "tick", "0", "20"]);
    env.wait_for("ticker", "running", |s| s["Status"] == "running");
    let started = env.state("ticker")["StartedAt"].clone();
    for verb in ["stop", "restart"] {
        for t in ["18446744073709551615", "100000000000000000", "1000000001"] {
            env.run(&[verb, "-t", t, "ticker"])
                .assert_error(125, &[&format!("-t {t}: too long"), "1000000000 seconds"]);
        }
        for t in ["soon", "-1", "5s"] {
            env.run(&[verb, "-t", t, "ticker"])
                .assert_error(125, &[&format!("-t {t}:"), "whole number of seconds"]);
        }
    }
    let state = env.state("ticker");
    assert_eq!(state["Status"], "running", "{state}");
    assert_eq!(state["StartedAt"], started, "not restarted: {state}");
    for (flag, value, needle) in [
        ("--stop-timeout", "18446744073709551615", "too long"),
        ("--stop-timeout", "ten", "whole number of seconds"),
        ("--timeout", "18446744073709551615", "too long"),
        ("--timeout", "300000h", "too long"),
    ] {
        for verb in ["run", "create"] {
            let mut args = vec![verb];
            if verb == "run" {
                args.push("-d");
            }
            args.extend(["--name", "never", flag, value, "svc", "tick", "1", "0"]);
            env.run(&args)
                .assert_error(125, &[&format!("{flag} {value}"), needle]);
        }
    }
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1, "only ticker");
    // The longest grace period is accepted: the guest ends by itself within it.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "short",
        "--stop-timeout",
        "1000000000",
        "svc",
        "tick",
        "5",
        "100",
        "7",
    ]);
    env.wait_for("short", "running", |s| s["Status"] == "running");
    env.ok(&["stop", "short"]);
    assert_eq!(env.state("short")["ExitCode"], 7, "it ran to its end");
    env.ok(&["stop", "-t", "0", "ticker"]);
}
