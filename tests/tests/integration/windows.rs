//! The Windows build of `capsule` (`x86_64-pc-windows-gnu`) run under Wine: the same
//! commands as on Linux must print the same, from `capsule run hello-world` to the
//! layered-filesystem conformance programs on the container's layered root and on a
//! tmpfs, with the writable layer and volumes on the host's disk through Wine's
//! Windows file API (NTFS semantics as Wine gives them).
//!
//! What Wine cannot do that the Windows build needs is Wine's gap, listed in
//! `capsule_tests::wine::GAPS` with how the tests meet it, and checked here to still
//! occur. A difference between the Windows and the Linux binary that is Capsule's is
//! in [`WINDOWS_DIFFERENCES`], with the reason; any other fails.

use crate::conformance::seed_layer;
use capsule_tests::wine::{GAPS, Lines, Wine, windows_path};
use capsule_tests::{Run, TestEnv};
use std::path::Path;

/// Capsule's own deliberate differences on Windows (its, not Wine's: Wine's are in
/// `capsule_tests::wine::GAPS`): the lines, and why. Each must occur.
const WINDOWS_DIFFERENCES: &[(Lines, &str)] = &[
    (("fs_rename", "layered", LINK_COUNTS), NO_LINK_COUNT),
    (("fs_rename", "host", LINK_COUNTS), NO_LINK_COUNT),
];

const LINK_COUNTS: &[&str] = &[
    "fstat after unlink",
    "nlink h1 after link",
    "nlink h2 after link",
];

const NO_LINK_COUNT: &str = "Rust's std has no stable link count on Windows: Capsule reports \
     one link for a host file (the hard link itself works)";

/// `capsule ARGS` of the Windows binary under Wine, with `env`'s home, run from its
/// work directory.
#[track_caller]
fn wine(env: &TestEnv, args: &[&str]) -> Run {
    Wine::run(
        Wine::get().capsule(env.home(), env.work()).args(args),
        env.work(),
    )
}

/// Both runs ended alike: exit code, stdout, stderr.
#[track_caller]
fn assert_same(what: &str, linux: &Run, windows: &Run) {
    assert_eq!(
        (linux.code, &linux.stdout, &linux.stderr),
        (windows.code, &windows.stdout, &windows.stderr),
        "{what}: the Windows binary under Wine (right) differs from Linux (left)"
    );
}

#[test]
fn wine_gaps_are_as_listed() {
    // The DLL: without the stand-in (Wine's builtin only), the binary does not load.
    // (The other gaps are checked by the conformance programs they are listed for.)
    assert_eq!(GAPS.len(), 3, "each gap has its check");
    let env = TestEnv::new();
    let wine = Wine::get();
    let mut cmd = wine.capsule(env.home(), env.work());
    cmd.env("WINEDLLOVERRIDES", "mscoree,mshtml=;bcryptprimitives=b")
        .env("WINEDEBUG", "err+module")
        .arg("--version");
    let run = Wine::run(&mut cmd, env.work());
    assert!(
        run.code != Some(0)
            && run.stderr.contains("bcryptprimitives.dll")
            && run.stderr.contains("c0000135"),
        "Wine now loads the binary without the stand-in bcryptprimitives.dll: remove the \
         gap from capsule_tests::wine::GAPS ({}): {run:?}",
        GAPS[0].what
    );
    // With it, the binary loads.
    wine_run_ok(&env, &["--version"]);
}

#[track_caller]
fn wine_run_ok(env: &TestEnv, args: &[&str]) -> Run {
    let run = wine(env, args);
    run.assert_code(0);
    run
}

#[test]
fn hello_world_prints_the_same_under_wine() {
    let (linux, windows) = (TestEnv::new(), TestEnv::new());
    let expected = linux.run(&["run", "hello-world"]);
    expected.assert_clean_success();
    assert_same(
        "capsule run hello-world",
        &expected,
        &wine(&windows, &["run", "hello-world"]),
    );
    // Twice: the second run is served by the module cache the first filled.
    assert_same(
        "capsule run hello-world (cached)",
        &expected,
        &wine(&windows, &["run", "hello-world"]),
    );
}

/// `capsule build` of a small image from a Windows path, then `run` with a volume on
/// `Z:\...` (a host directory) and on `C:\...` (the prefix's drive), and a named
/// volume kept across runs; what the guest wrote is on the host's disk.
#[test]
fn build_and_run_an_image_with_volumes_under_wine() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    std::fs::create_dir_all(ctx.join("etc")).expect("mkdir ctx");
    std::fs::copy(capsule_tests::guests::FILES, ctx.join("files.wasm")).expect("copy guest");
    std::fs::write(ctx.join("etc/motd"), "built on Windows\n").expect("write motd");
    std::fs::write(
        ctx.join("Capsulefile"),
        "FROM scratch\nCOPY files.wasm /bin/files.wasm\nCOPY etc /etc/\n\
         ENTRYPOINT [\"/bin/files.wasm\"]\n",
    )
    .expect("write the Capsulefile");
    let build = wine_run_ok(&env, &["build", "-t", "wapp", &windows_path(&ctx)]);
    assert!(
        build.stderr.contains("Named wapp:latest"),
        "build names its image: {build:?}"
    );
    let read = wine_run_ok(&env, &["run", "--rm", "wapp", "read", "/etc/motd"]);
    assert_eq!(read.stdout, "built on Windows\n");

    // A host directory as Z:\...
    let data = env.work().join("data");
    std::fs::create_dir_all(&data).expect("mkdir data");
    let volume = format!("{}:/data", windows_path(&data));
    wine_run_ok(
        &env,
        &[
            "run", "--rm", "-v", &volume, "wapp", "write", "/data/a", "from z",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(data.join("a")).expect("read a"),
        "from z"
    );
    // The prefix's C: drive, as a Windows user types it.
    let drive = Wine::get().drive_c().join(format!(
        "capsule-test-{}",
        env.home()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
    ));
    std::fs::create_dir_all(&drive).expect("mkdir on C:");
    let c_volume = format!(
        "C:\\{}:/data",
        drive.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    );
    wine_run_ok(
        &env,
        &[
            "run", "--rm", "-v", &c_volume, "wapp", "write", "/data/b", "from c",
        ],
    );
    let written = std::fs::read_to_string(drive.join("b"));
    let _ = std::fs::remove_dir_all(&drive);
    assert_eq!(written.expect("read b on C:"), "from c");
    // A read-only volume refuses writes as on Linux.
    let ro = format!("{}:/data:ro", windows_path(&data));
    let refused = wine(
        &env,
        &["run", "--rm", "-v", &ro, "wapp", "write", "/data/c", "no"],
    );
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stdout.contains("EROFS") || refused.stdout.contains("EACCES"),
        "{refused:?}"
    );
    assert!(!data.join("c").exists());
    // A named volume keeps its data from one container to the next.
    wine_run_ok(
        &env,
        &[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "wapp",
            "write",
            "/data/k",
            "kept",
        ],
    );
    let kept = wine_run_ok(
        &env,
        &["run", "--rm", "-v", "keep:/data", "wapp", "read", "/data/k"],
    );
    assert_eq!(kept.stdout, "kept");
    let listed = wine_run_ok(&env, &["volume", "ls", "-q"]);
    assert_eq!(listed.stdout, "keep\n");
}

/// One conformance program on the layered root (over a tar layer) and on a tmpfs, by
/// the Linux binary and the Windows binary under Wine: the same exit code, stdout
/// (its transcript and the tree it lists) and stderr, but for [`WINDOWS_DIFFERENCES`].
fn conformance_under_wine(name: &str, wasm: &str) {
    let linux = TestEnv::new();
    let (_, seed_tar) = seed_layer(&linux, name, wasm);
    let windows = TestEnv::new();
    let mut problems = Vec::new();
    for backend in ["layered", "tmpfs", "host"] {
        // Each system's own host directory for `-v` (the program's scratch).
        let host_dir = |system: &str| {
            let dir = linux.work().join(format!("host-{system}"));
            std::fs::create_dir_all(&dir).expect("mkdir the volume");
            dir
        };
        let (linux_dir, windows_dir) = (host_dir("linux"), host_dir("windows"));
        // The same command line, with host paths as each system spells them.
        let args = |path: &dyn Fn(&Path) -> String, dir: &Path| -> Vec<String> {
            let wasm = path(Path::new(wasm));
            let list: Vec<String> = match backend {
                "layered" => vec!["--layer".into(), path(&seed_tar), wasm, "/work".into()],
                "host" => vec![
                    "-v".into(),
                    format!("{}:/work", path(dir)),
                    wasm,
                    "/work".into(),
                    "seeded".into(),
                ],
                _ => vec![
                    "--tmpfs".into(),
                    "/work".into(),
                    wasm,
                    "/work".into(),
                    "seeded".into(),
                ],
            };
            std::iter::once("run".to_owned()).chain(list).collect()
        };
        let (l, w) = (
            args(&|p| p.display().to_string(), &linux_dir),
            args(&|p| windows_path(p), &windows_dir),
        );
        let expected = linux.run(&l.iter().map(String::as_str).collect::<Vec<_>>());
        let got = wine(&windows, &w.iter().map(String::as_str).collect::<Vec<_>>());
        let excused: Vec<(&[&str], String)> = GAPS
            .iter()
            .flat_map(|gap| {
                gap.differs
                    .iter()
                    .map(move |l| (l, format!("Wine's gap: {}", gap.what)))
            })
            .chain(
                WINDOWS_DIFFERENCES
                    .iter()
                    .map(|(l, why)| (l, format!("Capsule on Windows: {why}"))),
            )
            .filter(|((program, b, _), _)| *program == name && *b == backend)
            .map(|((_, _, labels), why)| (*labels, why))
            .collect();
        let labels: Vec<&str> = excused
            .iter()
            .flat_map(|(l, _)| l.iter().copied())
            .collect();
        let whole = labels.contains(&"*");
        let (kept_l, left_l) = partition(&expected.stdout, &labels);
        let (kept_w, left_w) = partition(&got.stdout, &labels);
        if !excused.is_empty()
            && (left_l == left_w && !whole || whole && expected.stdout == got.stdout)
        {
            problems.push(format!(
                "{backend}: the listed difference ({}) did not occur: remove it",
                excused
                    .iter()
                    .map(|(_, why)| why.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if whole {
            continue;
        }
        if expected.code != got.code {
            problems.push(format!(
                "{backend}: exit code {:?} on Linux, {:?} under Wine",
                expected.code, got.code
            ));
        }
        if expected.stderr != got.stderr {
            problems.push(format!(
                "{backend}: stderr differs:\n--- Linux\n{}--- Wine\n{}",
                expected.stderr, got.stderr
            ));
        }
        for i in 0..kept_l.len().max(kept_w.len()) {
            let (l, w) = (
                kept_l.get(i).copied().unwrap_or("<none>"),
                kept_w.get(i).copied().unwrap_or("<none>"),
            );
            if l != w {
                problems.push(format!("{backend}: Linux {l:?}, Wine {w:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{name}: the Windows binary under Wine differs from Linux:\n{}",
        problems.join("\n")
    );
}

/// `stdout`'s lines split into those whose label is not in `labels` and those that
/// are (a line's label: its text up to the first `:`, or `TREE\tPATH`).
fn partition<'a>(stdout: &'a str, labels: &[&str]) -> (Vec<&'a str>, Vec<&'a str>) {
    stdout.lines().partition(|line| {
        let label = match line.strip_prefix("TREE\t") {
            Some(rest) => &line[..5 + rest.find('\t').unwrap_or(rest.len())],
            None => line.split(':').next().unwrap_or(line),
        };
        !labels.contains(&label)
    })
}

macro_rules! under_wine {
    ($name:ident, $path:expr) => {
        #[test]
        fn $name() {
            conformance_under_wine(stringify!($name), $path);
        }
    };
}

mod conformance {
    use super::conformance_under_wine;
    capsule_tests::foreach_conformance!(under_wine);
}

/// The State of `inspect NAME` under Wine.
#[track_caller]
fn wine_state(env: &TestEnv, name: &str) -> serde_json::Value {
    let out = wine_run_ok(env, &["inspect", name]);
    let value: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect is JSON");
    value[0]["State"].clone()
}

/// Waits (at most 30 s) until `check` holds on what `capsule ARGS` prints.
#[track_caller]
fn wine_wait(env: &TestEnv, args: &[&str], what: &str, check: impl Fn(&Run) -> bool) -> Run {
    let start = std::time::Instant::now();
    loop {
        let run = wine(env, args);
        if check(&run) {
            return run;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{what}: not within 30 s; last `capsule {}`: {run:?}",
            args.join(" ")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Builds, under Wine, image `tag` of the one guest `wasm` as `/TAG.wasm` (its
/// entrypoint); the build context's directory.
#[track_caller]
fn wine_image(env: &TestEnv, wasm: &str, tag: &str) -> std::path::PathBuf {
    let ctx = env.work().join(tag);
    std::fs::create_dir_all(&ctx).expect("mkdir ctx");
    std::fs::copy(wasm, ctx.join(format!("{tag}.wasm"))).expect("copy guest");
    std::fs::write(
        ctx.join("Capsulefile"),
        format!("FROM scratch\nCOPY {tag}.wasm /{tag}.wasm\nENTRYPOINT [\"/{tag}.wasm\"]\n"),
    )
    .expect("write the Capsulefile");
    wine_run_ok(env, &["build", "-q", "-t", tag, &windows_path(&ctx)]);
    ctx
}

/// Detached containers on Windows: the supervisor is a process of its own (no fork,
/// no setsid: a hidden console and a process group of its own); `top`, `stats`,
/// `cp`, `diff`, `exec` and health checks reach its owner through the control channel
/// (loopback TCP and a token there); `stop` through its request file; `rm -f` ends it
/// with TerminateProcess; `--rm` removes it when it ends; the store is left clean.
#[test]
fn detached_containers_under_wine() {
    let env = TestEnv::new();
    let ctx = wine_image(&env, capsule_tests::guests::SERVICE, "svc");

    let started = wine_run_ok(
        &env,
        &["run", "-d", "--name", "ticker", "svc", "tick", "0", "100"],
    );
    let id = started.stdout.trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run -d prints the full ID: {started:?}"
    );
    // It runs on after the command that started it ended, and logs as on Linux.
    wine_wait(&env, &["logs", "ticker"], "three ticks logged", |run| {
        run.stdout.contains("tick 3\n")
    });
    let ps = wine_run_ok(&env, &["ps"]);
    assert!(
        ps.stdout.contains("ticker") && ps.stdout.contains("Up "),
        "{ps:?}"
    );
    assert_eq!(wine_state(&env, "ticker")["Status"], "running");

    // Its owner answers through the control channel (loopback TCP and a token here).
    let top = wine_run_ok(&env, &["top", "ticker"]);
    assert!(top.stdout.contains("/svc.wasm tick 0 100"), "{top:?}");
    let stats = wine_run_ok(&env, &["stats", "--no-stream", "ticker"]);
    assert!(stats.stdout.contains("ticker"), "{stats:?}");
    // The process's CPU time (GetProcessTimes): it compiled and ran the guest.
    let stats = wine_run_ok(
        &env,
        &["stats", "--no-stream", "--format", "{{json .}}", "ticker"],
    );
    let usage: serde_json::Value = serde_json::from_str(stats.stdout.trim()).expect("JSON");
    assert!(
        usage["Usage"]["cpu_ns"].as_u64().is_some_and(|n| n > 0),
        "{usage}"
    );
    // cp into and out of the running container, a Windows path on the host side.
    let file = env.write("in.txt", "copied in\n");
    wine_run_ok(&env, &["cp", &windows_path(&file), "ticker:/in.txt"]);
    let out = env.work().join("out.txt");
    wine_run_ok(&env, &["cp", "ticker:/in.txt", &windows_path(&out)]);
    assert_eq!(
        std::fs::read_to_string(&out).expect("read out.txt"),
        "copied in\n"
    );
    let diff = wine_run_ok(&env, &["diff", "ticker"]);
    assert_eq!(diff.stdout, "A /in.txt\n");
    // exec: the program's output comes back over the channel, its exit code is ours.
    let exec = wine(
        &env,
        &["exec", "ticker", "/svc.wasm", "tick", "2", "1", "7"],
    );
    assert_eq!(exec.code, Some(7), "{exec:?}");
    assert_eq!(exec.stdout, "tick 1\ntick 2\n");
    assert_eq!(exec.stderr, "started\n");
    let exec = wine_run_ok(
        &env,
        &[
            "exec",
            "-e",
            "WHO=exec",
            "ticker",
            "/svc.wasm",
            "env",
            "WHO",
        ],
    );
    assert_eq!(exec.stdout, "exec\n");
    // -i needs this command's stdin passed to another process: one line, nothing run.
    let exec = wine(&env, &["exec", "-i", "ticker", "/svc.wasm", "cat"]);
    assert_eq!(exec.code, Some(125), "{exec:?}");
    assert!(
        exec.stderr.contains("Unix-only") && exec.stderr.lines().count() == 1,
        "{exec:?}"
    );

    // stop: the guest does not end by itself, so it is ended after the grace period.
    let stop = wine_run_ok(&env, &["stop", "-t", "1", "ticker"]);
    assert_eq!(stop.stdout, "ticker\n");
    let state = wine_state(&env, "ticker");
    assert_eq!(state["Status"], "exited", "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");

    // start again, then rm -f of the running container ends its supervisor outright.
    wine_run_ok(&env, &["start", "ticker"]);
    assert_eq!(wine_state(&env, "ticker")["Status"], "running");
    wine_run_ok(&env, &["rm", "-f", "ticker"]);
    let left = wine_run_ok(&env, &["ps", "-a", "-q"]);
    assert_eq!(left.stdout, "", "rm -f left a container");

    // --rm: removed once it has ended by itself.
    // A health check runs in the container, beside its program.
    std::fs::write(
        ctx.join("Capsulefile"),
        "FROM scratch\nCOPY svc.wasm /svc.wasm\nENTRYPOINT [\"/svc.wasm\"]\n\
         HEALTHCHECK --interval=200ms --start-interval=200ms --retries=2 \
         CMD [\"/svc.wasm\", \"exists\", \"/ok\"]\n",
    )
    .expect("write the Capsulefile");
    wine_run_ok(&env, &["build", "-q", "-t", "checked", &windows_path(&ctx)]);
    wine_run_ok(
        &env,
        &["run", "-d", "--name", "doc", "checked", "tick", "0", "100"],
    );
    let health = |want: &'static str| {
        move |run: &Run| {
            serde_json::from_str::<serde_json::Value>(&run.stdout)
                .is_ok_and(|v| v[0]["State"]["Health"]["Status"] == want)
        }
    };
    wine_wait(&env, &["inspect", "doc"], "unhealthy", health("unhealthy"));
    let ok = env.write("ok", "");
    wine_run_ok(&env, &["cp", &windows_path(&ok), "doc:/ok"]);
    wine_wait(&env, &["inspect", "doc"], "healthy", health("healthy"));
    wine_run_ok(&env, &["rm", "-f", "doc"]);

    // Its supervisor removes it, but cannot delete its own log while it holds it: the
    // next listing, once that process has gone, deletes what was left.
    wine_run_ok(&env, &["run", "-d", "--rm", "svc", "tick", "2", "50"]);
    let store = env.home().join("containers");
    wine_wait(
        &env,
        &["ps", "-a", "-q"],
        "the --rm container removed",
        |run| {
            run.code == Some(0)
                && run.stdout.is_empty()
                && std::fs::read_dir(&store).is_ok_and(|mut d| d.next().is_none())
        },
    );
}

/// Published ports on Windows: a preview1 echo server behind `-p 127.0.0.1::8000`, in
/// its blocking mode and in its `poll()` mode over several clients at once (the
/// host's sockets waited on with `WSAPoll` there).
#[test]
fn published_ports_under_wine() {
    use std::io::{BufRead, BufReader, Write};
    let env = TestEnv::new();
    wine_image(&env, capsule_tests::guests::ECHO_SERVER, "echo");
    for mode in ["block", "poll"] {
        let name = format!("echo-{mode}");
        wine_run_ok(
            &env,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "-p",
                "127.0.0.1::8000",
                "echo",
                mode,
            ],
        );
        let port = wine_run_ok(&env, &["port", &name, "8000"]);
        let port: u16 = port
            .stdout
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("capsule port: {port:?}"));
        let clients = if mode == "poll" { 3 } else { 1 };
        let mut streams: Vec<std::net::TcpStream> = (0..clients)
            .map(|_| {
                let stream = std::net::TcpStream::connect(("127.0.0.1", port))
                    .unwrap_or_else(|e| panic!("{mode}: connect to {port}: {e}"));
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .expect("timeout");
                stream
            })
            .collect();
        for round in 0..20 {
            for (i, stream) in streams.iter_mut().enumerate() {
                let line = format!("{mode} client {i} line {round}\n");
                stream.write_all(line.as_bytes()).expect("send");
                let mut got = String::new();
                BufReader::new(stream.try_clone().expect("clone"))
                    .read_line(&mut got)
                    .expect("read the echo");
                assert_eq!(got, line, "{mode}: the guest echoes the line");
            }
        }
        drop(streams);
        wine_run_ok(&env, &["rm", "-f", &name]);
    }
}

/// Names Windows cannot hold as the guest means them (an alternate data stream after
/// `:`, `\` a separator there, DOS device names, a trailing dot) are refused with
/// `EINVAL` when a guest makes one, on a volume and in the writable layer, and nothing
/// appears on the host; ordinary names next to them are made.
#[test]
fn names_windows_cannot_hold_are_refused_under_wine() {
    let env = TestEnv::new();
    wine_image(&env, capsule_tests::guests::FILES, "files");
    let data = env.work().join("data");
    std::fs::create_dir_all(&data).expect("mkdir data");
    let volume = format!("{}:/data", windows_path(&data));
    // A volume, and the root of the writable layer.
    for dir in ["/data", ""] {
        for name in ["a:b", "a\\b", "con", "NUL.txt", "com1", "trail.", "q?"] {
            let path = format!("{dir}/{name}");
            let run = wine(
                &env,
                &["run", "--rm", "-v", &volume, "files", "write", &path, "x"],
            );
            assert_eq!(run.code, Some(1), "{path}: {run:?}");
            assert!(run.stdout.contains("(EINVAL)"), "{path}: {run:?}");
        }
        let ok = format!("{dir}/plain.txt");
        wine_run_ok(
            &env,
            &["run", "--rm", "-v", &volume, "files", "write", &ok, "x"],
        );
    }
    let made: Vec<_> = std::fs::read_dir(&data)
        .expect("read data")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(made, ["plain.txt"], "only the ordinary name was made");
}
