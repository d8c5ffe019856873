//! One owner for a running container (issue 26): `cp` that the guest sees, `cp` out
//! of a file being written, `exec`, `top`, `stats`, health checks from `run`'s flags,
//! and `stop` as a message — through the real binary, over the `service` guest.

use capsule_tests::{Containers, Proc, guests, names_in};
use std::path::Path;
use std::time::{Duration, Instant};

fn env() -> Containers {
    Containers::new(&[(guests::SERVICE, "svc")])
}

/// Waits (at most 30 s) until the container's log holds `needle`; the log.
#[track_caller]
fn wait_for_log(env: &Containers, name: &str, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let logs = env.env.run(&["logs", name]);
        if logs.stdout.contains(needle) {
            return logs.stdout;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name}'s log never showed {needle:?}: {}{}",
            logs.stdout,
            logs.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The issue's first finding: a guest polling for a file never saw what `cp` put in
/// its container (cp wrote the writable layer on disk behind the supervisor's back).
#[test]
fn a_running_guest_sees_a_file_copied_in_at_its_next_look() {
    let env = env();
    env.ok(&["run", "-d", "--name", "w1", "svc", "watch", "/cp.txt", "50"]);
    wait_for_log(&env, "w1", "watching /cp.txt");
    let host = env.env.write("cp.txt", "hello from the host\n");
    let copied = Instant::now();
    env.ok(&["cp", host.to_str().expect("utf-8"), "w1:/cp.txt"]);
    env.wait_for("w1", "exited", |s| s["Status"] == "exited");
    let logs = env.ok(&["logs", "w1"]);
    assert!(
        logs.contains("saw hello from the host"),
        "the guest did not see the file: {logs}"
    );
    assert_eq!(env.state("w1")["ExitCode"], 0);
    // It looks every 50 ms: seen at once, not at a later restart.
    assert!(copied.elapsed() < Duration::from_secs(20));
    // A tar from stdin into a directory is seen as well.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "w2",
        "svc",
        "watch",
        "/tmp/in.txt",
        "50",
    ]);
    wait_for_log(&env, "w2", "watching /tmp/in.txt");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "in.txt", &b"tarred"[..])
        .expect("tar entry");
    let tar = tar.into_inner().expect("tar");
    env.env
        .run_with_stdin(&["cp", "-", "w2:/tmp"], &tar)
        .assert_code(0);
    env.wait_for("w2", "exited", |s| s["Status"] == "exited");
    assert!(env.ok(&["logs", "w2"]).contains("saw tarred"));
}

/// Whether `bytes` is what `service append` has written at one moment: whole records
/// of `record` bytes, each all one value, from one round (record `i` is the first's
/// value plus `i`, mod 256) — not records of two rounds, nor a record half written.
fn whole_records(bytes: &[u8], record: usize) -> bool {
    let first = bytes.first().copied().unwrap_or(0);
    bytes.len().is_multiple_of(record)
        && bytes.chunks(record).enumerate().all(|(i, chunk)| {
            let value = (usize::from(first) + i) % 256;
            chunk.iter().all(|b| usize::from(*b) == value)
        })
}

/// A file the guest keeps writing (256 KiB per write, truncated and rewritten every
/// 16 records) is copied out as it was between two of its writes: whole records of one
/// round. Without the freeze a copy, which reads the file in pieces, mixes records
/// of two rounds or ends in the middle of one.
#[test]
fn a_file_being_written_is_copied_out_whole() {
    let env = env();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "svc",
        "append",
        "/data.bin",
        "256",
        "32",
    ]);
    wait_for_log(&env, "writer", "appending");
    let record = 256 * 1024;
    let mut sizes = Vec::new();
    for i in 0..8 {
        let out = env.env.work().join(format!("copy{i}.bin"));
        env.ok(&["cp", "writer:/data.bin", out.to_str().expect("utf-8")]);
        let bytes = std::fs::read(&out).expect("the copy");
        assert!(
            whole_records(&bytes, record),
            "copy {i} is torn: {} bytes",
            bytes.len()
        );
        sizes.push(bytes.len() / record);
    }
    // The copies came while the guest wrote, not all at one moment.
    sizes.sort_unstable();
    sizes.dedup();
    assert!(sizes.len() > 1, "every copy saw the same size: {sizes:?}");
    env.ok(&["rm", "-f", "writer"]);
}

/// What CI found racing lifecycle verbs: a copy out of a running container was
/// written on the host by the container's own process, and when that process ended
/// in the middle of it (`kill`) the temporary file of the copy was left beside its
/// destination, and the copy made again went into the half-made directory. The same
/// held for a copy in, inside the container. A copy is now written by `cp` itself
/// (out), or undone by the owner before its process ends (in): one cut by the stop is
/// made again, whole, and nothing of the cut one is left on either side.
#[test]
fn a_copy_cut_by_the_containers_stop_is_made_whole_and_leaves_nothing_behind() {
    let env = env();
    env.ok(&["run", "-d", "--name", "big", "svc", "tick", "0", "100"]);
    wait_for_log(&env, "big", "tick 1");
    // A directory of a file big enough to be in flight when the stop comes, and a
    // small one after it.
    let big: Vec<u8> = (0..48u32 << 20).map(|i| (i % 251) as u8).collect();
    let src = env.env.work().join("d");
    std::fs::create_dir(&src).expect("test");
    std::fs::write(src.join("big.bin"), &big).expect("test");
    std::fs::write(src.join("small.txt"), "small\n").expect("test");
    let src = src.to_str().expect("utf-8");
    env.ok(&["cp", src, "big:/d"]);
    let out = env.env.work().join("out");
    std::fs::create_dir(&out).expect("test");
    let rounds = 8u64;
    for round in 0..rounds {
        let dest = out.join(format!("copy{round}"));
        let dest = dest.to_str().expect("utf-8");
        let into = format!("big:/in{round}");
        // Out and in at once, the container killed 0-42 ms after they start.
        let copy_out = Proc::spawn(env.env.capsule().args(["cp", "big:/d", dest]));
        let copy_in = Proc::spawn(env.env.capsule().args(["cp", src, &into]));
        std::thread::sleep(Duration::from_millis(round * 6));
        env.ok(&["kill", "big"]);
        for cp in [copy_out, copy_in] {
            let command = cp.command().to_owned();
            let ended = cp.finish(Duration::from_secs(120)).expect("cp ends");
            assert!(
                ended.status.success() && ended.stderr.is_empty(),
                "round {round}: {command} exited {:?}: {}",
                ended.status.code(),
                String::from_utf8_lossy(&ended.stderr)
            );
        }
        assert_eq!(
            names_in(Path::new(dest)),
            ["big.bin", "small.txt"],
            "round {round}"
        );
        assert!(
            std::fs::read(Path::new(dest).join("big.bin")).expect("test") == big,
            "round {round}: big.bin copied out is not whole"
        );
        env.ok(&["start", "big"]);
    }
    let want: Vec<String> = (0..rounds).map(|r| format!("copy{r}")).collect();
    assert_eq!(names_in(&out), want, "what the copies out left on the host");
    // In the container: each copy in whole, and nothing else.
    let mut want: Vec<String> = ["A /d", "A /d/big.bin", "A /d/small.txt"]
        .map(str::to_owned)
        .to_vec();
    for round in 0..rounds {
        want.extend([
            format!("A /in{round}"),
            format!("A /in{round}/big.bin"),
            format!("A /in{round}/small.txt"),
        ]);
    }
    want.sort();
    let mut changes: Vec<String> = env
        .ok(&["diff", "big"])
        .lines()
        .map(str::to_owned)
        .collect();
    changes.sort();
    assert_eq!(changes, want, "what the copies in left in the container");
    for round in 0..rounds {
        let back = env.env.work().join(format!("back{round}.bin"));
        env.ok(&[
            "cp",
            &format!("big:/in{round}/big.bin"),
            back.to_str().expect("utf-8"),
        ]);
        assert!(
            std::fs::read(&back).expect("test") == big,
            "round {round}: big.bin copied in is not whole"
        );
    }
    env.ok(&["rm", "-f", "big"]);
}

/// A tar copied in from stdin that is still arriving when the container is stopped:
/// the owner waits for its client's next bytes, so it must see the stop while it
/// waits. The copy is refused in one line and nothing of it is left in the
/// container (without the cut the owner's process ended with the copy's temporary
/// file and directory in the container's writable layer).
#[test]
fn a_tar_copied_in_when_the_container_stops_leaves_nothing_in_it() {
    let env = env();
    env.ok(&["run", "-d", "--name", "slow", "svc", "tick", "0", "100"]);
    wait_for_log(&env, "slow", "tick 1");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "t/", std::io::empty())
        .expect("tar entry");
    for (name, size) in [("t/big.bin", 8usize << 20), ("t/small.txt", 6)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, &vec![7u8; size][..])
            .expect("tar entry");
    }
    let tar = tar.into_inner().expect("tar");
    let mut command = env.env.capsule();
    command
        .args(["cp", "-", "slow:/"])
        .stdin(std::process::Stdio::piped());
    let mut cp = Proc::spawn(&mut command);
    let mut stdin = cp.stdin().expect("a piped stdin");
    // Part of the big file: the owner has written some of it and waits for more.
    if let Err(e) = std::io::Write::write_all(&mut stdin, &tar[..2 << 20]) {
        let ended = cp.finish(Duration::from_secs(60)).expect("cp ends");
        panic!(
            "cp stopped reading: {e}: exited {:?}: {}",
            ended.status.code(),
            String::from_utf8_lossy(&ended.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["kill", "slow"]);
    env.wait_for("slow", "exited", |s| s["Status"] == "exited");
    drop(stdin);
    let ended = cp.finish(Duration::from_secs(60)).expect("cp ends");
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert!(
        !ended.status.success()
            && stderr.lines().count() == 1
            && stderr.contains("stopped while the archive was copied in"),
        "cp exited {:?}: {stderr}",
        ended.status.code()
    );
    assert_eq!(env.ok(&["diff", "slow"]), "", "what the cut copy left");
    env.ok(&["rm", "-f", "slow"]);
}

/// `cp -` to stdout carries raw bytes: read them as such.
#[test]
fn a_tar_copied_out_of_a_running_container_is_whole() {
    let env = env();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "svc",
        "append",
        "/data.bin",
        "64",
        "16",
    ]);
    wait_for_log(&env, "writer", "appending");
    let out = capsule_tests::output(env.env.capsule().args(["cp", "writer:/data.bin", "-"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut entries = archive.entries().expect("a tar");
    let mut entry = entries.next().expect("one entry").expect("an entry");
    assert_eq!(entry.path().expect("a path").to_str(), Some("data.bin"));
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut bytes).expect("its data");
    assert!(
        whole_records(&bytes, 64 * 1024),
        "torn: {} bytes",
        bytes.len()
    );
    // Nothing there: one error line, not an empty archive.
    env.env
        .run(&["cp", "writer:/nothing", "-"])
        .assert_error(1, &["/nothing", "no such file"]);
}

#[test]
fn exec_runs_a_program_beside_the_container_with_its_env_files_stdin_and_exit_code() {
    let env = env();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "GREETING=hi",
        "svc",
        "tick",
        "0",
        "100",
    ]);
    env.wait_for("box", "running", |s| s["Status"] == "running");
    // The container's environment, and -e over it.
    assert_eq!(
        env.ok(&["exec", "box", "/service.wasm", "env", "GREETING"]),
        "hi\n"
    );
    assert_eq!(
        env.ok(&[
            "exec",
            "-e",
            "GREETING=yo",
            "box",
            "/service.wasm",
            "env",
            "GREETING"
        ]),
        "yo\n"
    );
    // Its own stdin with -i; none without.
    let run = env.env.run_with_stdin(
        &["exec", "-i", "box", "/service.wasm", "cat"],
        b"through exec\n",
    );
    run.assert_clean_success();
    assert_eq!(run.stdout, "through exec\n");
    // The same filesystem: a file one program writes, another reads, and cp sees.
    env.ok(&[
        "exec",
        "box",
        "/service.wasm",
        "write",
        "/tmp/shared.txt",
        "made by exec",
    ]);
    env.ok(&[
        "exec",
        "-w",
        "/tmp",
        "box",
        "/service.wasm",
        "write",
        "rel.txt",
        "in the workdir",
    ]);
    let out = env.env.work().join("rel.txt");
    env.ok(&["cp", "box:/tmp/rel.txt", out.to_str().expect("utf-8")]);
    assert_eq!(
        std::fs::read_to_string(&out).expect("copied"),
        "in the workdir"
    );
    let out = env.env.work().join("shared.txt");
    env.ok(&["cp", "box:/tmp/shared.txt", out.to_str().expect("utf-8")]);
    assert_eq!(
        std::fs::read_to_string(&out).expect("copied"),
        "made by exec"
    );
    // Its exit code is exec's; a program found nowhere is 127, as Docker's.
    env.env
        .run(&["exec", "box", "/service.wasm", "tick", "1", "0", "7"])
        .assert_code(7);
    env.env
        .run(&["exec", "box", "nosuch"])
        .assert_error(127, &["nosuch", "not found"]);
    // The container is untouched by all this.
    assert_eq!(env.state("box")["Status"], "running");
}

#[test]
fn exec_into_a_stopped_or_unknown_container_is_a_clear_error() {
    let env = env();
    env.ok(&["create", "--name", "idle", "svc", "tick", "1", "0"]);
    env.env
        .run(&["exec", "idle", "/service.wasm", "pwd"])
        .assert_error(1, &["container idle is not running"]);
    env.env
        .run(&["exec", "ghost", "/service.wasm", "pwd"])
        .assert_error(1, &["no such container: ghost"]);
    env.env
        .run(&["exec", "-u", "root", "idle", "/service.wasm"])
        .assert_error(125, &["-u root", "no user ids"]);
}

/// A program `exec` started ends with its container, and with its client.
#[test]
fn exec_ends_with_the_container_and_with_its_client() {
    let env = env();
    env.ok(&["run", "-d", "--name", "host", "svc", "tick", "0", "100"]);
    env.wait_for("host", "running", |s| s["Status"] == "running");
    let mut child = Proc::spawn(
        env.env
            .capsule()
            .args(["exec", "host", "/service.wasm", "spin"]),
    );
    let programs = || env.ok(&["top", "host"]).lines().count() - 1;
    let start = Instant::now();
    while programs() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exec never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its client killed (as Ctrl-C would): the program is stopped.
    child.kill();
    let start = Instant::now();
    while programs() > 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the program outlived its client"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A container that stops ends what runs in it: exec exits 137 with the reason.
    let mut child = Proc::spawn(
        env.env
            .capsule()
            .args(["exec", "host", "/service.wasm", "spin"]),
    );
    let start = Instant::now();
    while programs() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exec never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.ok(&["kill", "host"]);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exec outlived its container"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(137));
}

#[test]
fn top_and_stats_show_the_programs_memory_and_descriptors_of_a_container() {
    let env = env();
    env.ok(&[
        "run", "-d", "--name", "busy", "--memory", "64m", "svc", "tick", "0", "100",
    ]);
    env.wait_for("busy", "running", |s| s["Status"] == "running");
    let top = env.ok(&["top", "busy"]);
    let lines: Vec<&str> = top.lines().collect();
    assert!(lines[0].starts_with("PID"), "{top}");
    assert_eq!(lines.len(), 2, "one program: {top}");
    assert!(
        lines[1].starts_with('1') && lines[1].ends_with("/service.wasm tick 0 100"),
        "{top}"
    );
    let json: serde_json::Value =
        serde_json::from_str(env.ok(&["top", "--format", "json", "busy"]).trim()).expect("json");
    assert_eq!(json["pid"], 1);
    assert!(json["memory"].as_u64().expect("memory") > 0, "{json}");
    // stdio and the root preopen at least.
    assert!(json["fds"].as_u64().expect("fds") >= 4, "{json}");

    let stats = env.ok(&["stats", "--no-stream", "--format", "json"]);
    let line: serde_json::Value = serde_json::from_str(stats.trim()).expect("one json line");
    assert_eq!(line["Name"], "busy");
    assert_eq!(line["Usage"]["memory_limit"], 64 << 20);
    assert_eq!(line["PIDs"], "1");
    assert!(
        line["MemUsage"]
            .as_str()
            .expect("text")
            .ends_with("/ 64MiB"),
        "{line}"
    );
    let table = env.ok(&["stats", "--no-stream", "busy"]);
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    assert!(table.contains("busy"), "{table}");
    // A stopped container has no usage to ask for.
    env.ok(&["kill", "busy"]);
    env.env
        .run(&["top", "busy"])
        .assert_error(1, &["container busy is not running"]);
}

/// Two programs of one container share its --memory: one holding most of it leaves
/// the other only the rest.
#[test]
fn the_programs_of_a_container_share_its_memory_limit() {
    let env = env();
    env.ok(&[
        "run", "-d", "--name", "tight", "--memory", "8m", "svc", "append", "/tmp/a", "4096", "1",
    ]);
    wait_for_log(&env, "tight", "appending");
    // The main program holds 4 MiB of records and its stack: a second one asking
    // for another 4 MiB is refused memory and ends out of memory.
    let run = env.env.run(&[
        "exec",
        "tight",
        "/service.wasm",
        "append",
        "/tmp/b",
        "4096",
        "1",
    ]);
    assert_ne!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    // Alone it would fit.
    env.ok(&["kill", "tight"]);
    env.ok(&[
        "run", "-d", "--name", "roomy", "--memory", "8m", "svc", "tick", "0", "100",
    ]);
    env.wait_for("roomy", "running", |s| s["Status"] == "running");
    let mut child = Proc::spawn(env.env.capsule().args([
        "exec",
        "roomy",
        "/service.wasm",
        "append",
        "/tmp/b",
        "4096",
        "1",
    ]));
    // It got its 4 MiB: it says so before it starts writing.
    child.wait_for_stdout("appending\n");
    child.kill();
}

#[test]
fn health_checks_from_run_flags_turn_a_container_healthy_and_unhealthy() {
    let env = env();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "doc",
        "--health-cmd",
        r#"["/service.wasm", "exists", "/tmp/ok"]"#,
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "svc",
        "tick",
        "0",
        "100",
    ]);
    let health = |env: &Containers| env.state("doc")["Health"]["Status"].clone();
    env.wait_for("doc", "unhealthy", |s| s["Health"]["Status"] == "unhealthy");
    assert!(env.ok(&["ps"]).contains("(unhealthy)"));
    env.ok(&["exec", "doc", "/service.wasm", "write", "/tmp/ok", "yes"]);
    env.wait_for("doc", "healthy", |s| s["Health"]["Status"] == "healthy");
    assert!(env.ok(&["ps"]).contains("(healthy)"));
    let state = env.state("doc");
    let log = state["Health"]["Log"].as_array().expect("a log");
    assert!(!log.is_empty() && log.len() <= 5, "{state}");
    assert_eq!(log.last().expect("a result")["ExitCode"], 0);
    env.ok(&["exec", "doc", "/service.wasm", "rm", "/tmp/ok"]);
    env.wait_for("doc", "unhealthy again", |s| {
        s["Health"]["Status"] == "unhealthy"
    });
    assert_eq!(health(&env), "unhealthy");
    // A check that outlives its timeout fails with Docker's -1.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        r#"["/service.wasm", "spin"]"#,
        "--health-interval",
        "100ms",
        "--health-timeout",
        "200ms",
        "--health-retries",
        "1",
        "svc",
        "tick",
        "0",
        "100",
    ]);
    env.wait_for("slow", "unhealthy", |s| {
        s["Health"]["Status"] == "unhealthy"
    });
    let log = env.state("slow")["Health"]["Log"].clone();
    assert_eq!(log[0]["ExitCode"], -1, "{log}");
    assert!(
        log[0]["Output"]
            .as_str()
            .expect("output")
            .contains("exceeded timeout")
    );
    // Bad flags: one line each.
    env.env
        .run(&["run", "--health-retries", "0", "svc"])
        .assert_error(125, &["--health-retries"]);
    env.env
        .run(&["run", "--no-healthcheck", "--health-cmd", "x", "svc"])
        .assert_error(125, &["--no-healthcheck"]);
    env.env
        .run(&["run", "--health-interval", "soon", "svc"])
        .assert_error(125, &["--health-interval"]);
}

/// `stop` is a message to the owner now: the request file is not needed, and the
/// container stops within its grace period.
#[test]
fn stop_reaches_the_owner_through_its_channel() {
    let env = env();
    env.ok(&["run", "-d", "--name", "s1", "svc", "tick", "0", "100"]);
    env.wait_for("s1", "running", |s| s["Status"] == "running");
    let dir = env.env.home().join("containers");
    let socket = std::fs::read_dir(&dir)
        .expect("containers")
        .filter_map(Result::ok)
        .map(|e| e.path().join("control.sock"))
        .find(|p| p.exists())
        .expect("a control socket");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner may talk to it");
    env.ok(&["stop", "-t", "1", "s1"]);
    assert_eq!(env.state("s1")["Status"], "exited");
    assert!(!socket.exists(), "the socket goes with its owner");
    assert!(!socket.with_file_name("stop-request").exists());
}

/// `commit` of a running container holds it still (Docker's `--pause`, on by
/// default): the layer holds the file as it was between two writes.
#[test]
fn commit_of_a_running_container_takes_its_files_between_two_writes() {
    let env = env();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "svc",
        "append",
        "/data.bin",
        "256",
        "16",
    ]);
    wait_for_log(&env, "busy", "appending");
    for round in 0..3 {
        let tag = format!("snap:{round}");
        env.ok(&["commit", "busy", &tag]);
        env.ok(&["create", "--name", &format!("copy{round}"), &tag]);
        let out = env.env.work().join(format!("snap{round}.bin"));
        env.ok(&[
            "cp",
            &format!("copy{round}:/data.bin"),
            out.to_str().expect("utf-8"),
        ]);
        let bytes = std::fs::read(&out).expect("the committed file");
        assert!(
            whole_records(&bytes, 256 * 1024),
            "commit {round} holds a torn file: {} bytes",
            bytes.len()
        );
    }
    assert_eq!(env.ok(&["diff", "busy"]), "A /data.bin\n");
    // Unpaused, a file that shrinks under the copy is one clear error; a quiet
    // container commits as well.
    env.ok(&["run", "-d", "--name", "quiet", "svc", "tick", "0", "100"]);
    env.wait_for("quiet", "running", |s| s["Status"] == "running");
    env.ok(&["commit", "--pause=false", "quiet", "snap:unpaused"]);
}

/// The SDK's `exec`: what an embedder runs in a container it started, with stdin in
/// and both streams out (more than a pipe holds, read while it runs).
#[test]
fn the_sdk_runs_a_program_in_a_running_container() {
    let home = tempfile::tempdir().expect("home");
    let capsule = capsule_sdk::Capsule::open(home.path())
        .expect("capsule")
        .supervisor(capsule_tests::capsule_bin());
    let image = capsule.import(guests::SERVICE, "svc").expect("import");
    let box_ = capsule
        .create(
            &image,
            capsule_sdk::ContainerOptions::new()
                .name("box")
                .env("GREETING", "hi")
                .args(["tick", "0", "100"]),
        )
        .expect("create");
    let refused = box_
        .exec(&["/service.wasm", "pwd"], &[], b"")
        .expect_err("not running yet");
    assert_eq!(
        refused.kind(),
        capsule_sdk::ErrorKind::Conflict,
        "{refused}"
    );
    box_.start().expect("start");
    let out = box_
        .exec(&["/service.wasm", "env", "GREETING"], &[], b"")
        .expect("exec");
    assert_eq!((out.exit_code, out.stdout.as_slice()), (0, &b"hi\n"[..]));
    let big = vec![b'x'; 300_000];
    let out = box_
        .exec(&["/service.wasm", "cat"], &[("GREETING", "yo")], &big)
        .expect("exec");
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.len(), big.len(), "all of stdin came back");
    let out = box_.exec(&["nosuch"], &[], b"").expect("exec");
    assert_eq!(out.exit_code, 127);
    assert!(out.error.expect("a reason").contains("nosuch"));
    box_.kill().expect("kill");
}
