//! How many host system calls a guest's file calls cost in a container's writable
//! layer, counted from outside the process with `strace -f`, so that a return of the
//! per-call path walks (an `openat2` from the upper's root for every `stat`, the parent
//! directory opened again for every `unlink`) fails a test, not only a benchmark.
//!
//! strace rather than a counter inside Capsule: it sees every call of every thread,
//! whichever layer makes it (Capsule, cap-std, the standard library), and needs nothing
//! compiled into the binary under test. Each phase of the guest (`hostcalls.c`) starts
//! with a `write(1, "@phase NAME\n")` that the host passes straight through, which
//! splits the trace. Every phase also has a lower bound (the creates must show N opens,
//! the unlinks N `unlinkat`s), so a trace that sees nothing cannot pass.

use capsule_tests::{TestEnv, capsule_bin, guests};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// Guest calls per phase.
const N: usize = 200;
/// Host calls allowed beyond the per-call bound in each phase (directory handles
/// opened the first time, the marker's own write).
const SLACK: usize = 10;

/// System calls that open a path.
const OPENS: &[&str] = &["open", "openat", "openat2", "creat"];
/// System calls that read metadata.
const STATS: &[&str] = &["stat", "lstat", "fstat", "newfstatat", "statx", "fstatat64"];

const INSTALL: &str =
    "install it with scripts/install-test-deps.sh (it runs: apt-get install -y strace)";

/// Per phase, how often each system call was made.
type Counts = BTreeMap<String, BTreeMap<String, usize>>;

fn require_strace() {
    // `tool` has found it on PATH (or failed naming the install command).
    let out = capsule_tests::output(Command::new(capsule_tests::tool("strace")).arg("-V"));
    assert!(
        out.status.success(),
        "strace -V failed ({}): {}; {INSTALL}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Splits an `strace -f` log at the guest's phase markers and counts calls by name.
fn count(log: &str) -> Counts {
    let mut counts = Counts::new();
    let mut phase = "start".to_owned();
    for line in log.lines() {
        // `PID name(args...` (a call that finished later shows `<... name resumed>`,
        // which is not a second call).
        let call = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        let Some((name, _)) = call.split_once('(') else {
            continue;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if name == "write"
            && let Some((_, rest)) = call.split_once("\"@phase ")
            && let Some((next, _)) = rest.split_once("\\n")
        {
            phase = next.to_owned();
            continue;
        }
        *counts
            .entry(phase.clone())
            .or_default()
            .entry(name.to_owned())
            .or_default() += 1;
    }
    counts
}

fn sum(counts: &Counts, phase: &str, names: &[&str]) -> usize {
    counts
        .get(phase)
        .map_or(0, |c| names.iter().filter_map(|n| c.get(*n)).sum())
}

#[test]
pub fn hostcalls() {
    require_strace();
    let env = TestEnv::new();
    // A layer, so that `/` is the overlay and /data is made in its writable layer.
    env.write("layer/etc/motd", "hello\n");
    let layer = env.work().join("layer").display().to_string();
    let n = N.to_string();
    let args = [
        "run",
        "--layer",
        &layer,
        guests::HOSTCALLS,
        "/data/deep/dir",
        &n,
    ];
    // Once without tracing: the guest's own checks pass, and the module is compiled
    // and cached before the traced run.
    let plain = env.run(&args);
    plain.assert_clean_success();
    assert!(
        plain.stdout.ends_with(&format!("ok {N}\n")),
        "the guest's calls did not all succeed:\n{}",
        plain.stdout
    );

    let log = env.work().join("strace.log");
    let mut cmd = Command::new(capsule_tests::tool("strace"));
    cmd.args(["-f", "-qq", "-s", "32", "-o"])
        .arg(&log)
        .arg(capsule_bin())
        .args(args)
        .env_clear()
        .env("CAPSULE_HOME", env.home())
        .current_dir(env.work())
        .stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let traced = capsule_tests::Run::of(&mut cmd, None);
    if traced.code != Some(0) && traced.stderr.contains("ptrace") {
        panic!(
            "strace cannot trace here ({}); allow ptrace for this test: in a container run it with --cap-add SYS_PTRACE (and a seccomp profile that permits ptrace), on a host set kernel.yama.ptrace_scope to 0 or 1",
            traced.stderr.trim()
        );
    }
    traced.assert_code(0);
    assert!(
        traced.stdout.ends_with(&format!("ok {N}\n")),
        "the traced run did not succeed:\n{}\n{}",
        traced.stdout,
        traced.stderr
    );
    let log = std::fs::read_to_string(&log).expect("read the strace log");
    let counts = count(&log);
    let report = format!("{counts:#?}");
    for phase in ["create", "stat", "lstat", "open", "unlink"] {
        assert!(
            counts.contains_key(phase),
            "no phase {phase} in the trace: the markers were not seen\n{report}"
        );
    }

    // The trace sees the host's calls: every create and open is one host open, every
    // unlink one unlinkat.
    assert!(
        sum(&counts, "create", OPENS) >= N && sum(&counts, "open", OPENS) >= N,
        "the trace does not show one host open per guest open\n{report}"
    );
    assert!(
        sum(&counts, "unlink", &["unlink", "unlinkat"]) >= N,
        "the trace does not show the unlinks\n{report}"
    );

    // The bounds. A guest stat or lstat of a file in the writable layer: one statx
    // relative to the kept handle of its directory, no open. An unlink: one unlinkat,
    // no open, no stat. A create: one open of the one component (the overlay knows
    // the name is free, so no stat). An open: one stat (the WASI host asks for the
    // kind) and one open.
    let bounds: [(&str, &[&str], usize, &str); 10] = [
        ("create", OPENS, N, "open per create"),
        ("create", STATS, 0, "stat per create"),
        ("stat", OPENS, 0, "open per stat"),
        ("stat", STATS, N, "stat per stat"),
        ("lstat", OPENS, 0, "open per lstat"),
        ("lstat", STATS, N, "stat per lstat"),
        ("open", OPENS, N, "open per open"),
        ("open", STATS, N, "stat per open"),
        ("unlink", OPENS, 0, "open per unlink"),
        ("unlink", STATS, 0, "stat per unlink"),
    ];
    for (phase, names, bound, what) in bounds {
        let seen = sum(&counts, phase, names);
        assert!(
            seen <= bound + SLACK,
            "phase {phase}: {seen} host calls of {names:?} for {N} guest calls, more than {} ({} {what}, +{SLACK})\n{report}",
            bound + SLACK,
            bound / N,
        );
    }
}
