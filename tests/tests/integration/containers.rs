//! Containers without a daemon, through the real binary: detached runs under their own
//! supervisor, logs, stop/kill/rm/wait/restart, restart policies, a supervisor that
//! dies, names, and bad input to each verb.

use capsule_tests::{Containers, Proc, guests};
use std::time::{Duration, Instant};

/// A home with the `service` guest as image `svc` (see `guests/c/service.c`); its
/// containers are removed when the test ends.
struct Env;

impl Env {
    #[allow(
        clippy::new_ret_no_self,
        reason = "a constructor of the shared fixture"
    )]
    fn new() -> Containers {
        Containers::new(&[(guests::SERVICE, "svc")])
    }
}

/// A test's home going (its test finished, or failed half-way) takes its running
/// containers with it: no supervisor outlives the test that started it.
#[test]
fn a_test_that_ends_leaves_no_supervisor_running() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "forever", "svc", "tick", "0", "100"]);
    env.wait_for("forever", "running", |s| s["Status"] == "running");
    let pid = env.state("forever")["Pid"]
        .as_u64()
        .expect("a running container has its supervisor's pid");
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists(), "the supervisor runs");
    drop(env);
    let start = Instant::now();
    // A pid may be reused, but not by a capsule supervisor of this home within seconds.
    while proc_dir.exists()
        && std::fs::read_to_string(proc_dir.join("cmdline")).is_ok_and(|c| c.contains("capsule"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the supervisor {pid} outlived its test"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A detached container whose directory is deleted by hand (its home removed, not
/// `rm`) does not run on as an orphan: its supervisor ends the guest and exits.
#[test]
fn a_supervisor_whose_container_directory_goes_ends() {
    let env = Env::new();
    let id = env.ok(&["run", "-d", "--name", "orphan", "svc", "tick", "0", "100"]);
    env.wait_for("orphan", "running", |s| s["Status"] == "running");
    let pid = env.state("orphan")["Pid"]
        .as_u64()
        .expect("a running container has its supervisor's pid");
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    std::fs::remove_dir_all(env.env.home().join("containers").join(id.trim()))
        .expect("remove the container's directory");
    let start = Instant::now();
    while proc_dir.exists()
        && std::fs::read_to_string(proc_dir.join("cmdline")).is_ok_and(|c| c.contains("capsule"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the supervisor {pid} runs on without its directory"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The guest every lifecycle test runs: `service` (see `guests/c/service.c`).
#[test]
pub fn service() {
    let env = Env::new();
    // Detached: the ID comes back at once, the guest keeps running.
    let id = env.ok(&["run", "-d", "--name", "ticker", "svc", "tick", "0", "100"]);
    assert_eq!(id.trim().len(), 64, "run -d prints the full ID: {id}");
    env.wait_for("ticker", "running", |s| s["Status"] == "running");
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("ticker") && ps.contains("Up "), "{ps}");
    assert!(env.ok(&["ps", "-q"]).contains(&id.trim()[..12]));
    // Logs arrive while it runs, in Docker's json-file format on disk.
    let start = Instant::now();
    while !env.ok(&["logs", "ticker"]).contains("tick 3") {
        assert!(start.elapsed() < Duration::from_secs(20), "no logs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(
        env.env
            .home()
            .join("containers")
            .join(id.trim())
            .join("container-json.log"),
    )
    .expect("test");
    let first: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("test")).expect("test");
    assert_eq!(first["log"], "tick 1\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().expect("test").contains('T'));
    let tail = env.ok(&["logs", "--tail", "1", "-t", "ticker"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("20"), "timestamps first: {tail}");
    // stop: the guest has no signals; after the grace period (and not before) it is
    // interrupted, well before the default grace of 10 s would end.
    let started = Instant::now();
    env.ok(&["stop", "-t", "1", "ticker"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "stop -t 1 took {took:?}: not its grace period"
    );
    let state = env.state("ticker");
    assert_eq!(state["Status"], "exited");
    assert_eq!(state["ExitCode"], 137);
    assert!(!env.ok(&["ps"]).contains("ticker"));
    assert!(env.ok(&["ps", "-a"]).contains("Exited (137)"));
    assert_eq!(env.ok(&["wait", "ticker"]).trim(), "137");
    // start again: it runs again, under a new supervisor.
    env.ok(&["start", "ticker"]);
    env.wait_for("ticker", "running again", |s| s["Status"] == "running");
    env.ok(&["kill", "ticker"]);
    assert_eq!(env.state("ticker")["ExitCode"], 137);
}

#[test]
fn create_then_start_attached_gives_output_and_exit_code() {
    let env = Env::new();
    let id = env.ok(&["create", "--name", "once", "svc", "tick", "3", "10", "5"]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(env.state("once")["Status"], "created");
    assert!(env.ok(&["ps", "-a"]).contains("Created"));
    let run = env.env.run(&["start", "-a", "once"]);
    run.assert_code(5);
    assert_eq!(run.stdout, "tick 1\ntick 2\ntick 3\n");
    assert_eq!(run.stderr, "started\n");
    assert_eq!(env.state("once")["ExitCode"], 5);
    // logs -f follows a running container and ends when it stops.
    env.ok(&["run", "-d", "--name", "follow", "svc", "tick", "5", "100"]);
    let followed = env.ok(&["logs", "-f", "follow"]);
    assert_eq!(followed, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n");
    assert_eq!(env.state("follow")["Status"], "exited");
}

#[test]
fn stop_lets_a_guest_that_ends_within_the_grace_period_exit_by_itself() {
    let env = Env::new();
    env.ok(&[
        "run", "-d", "--name", "short", "svc", "tick", "8", "100", "7",
    ]);
    let started = Instant::now();
    env.ok(&["stop", "-t", "20", "short"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    let state = env.state("short");
    assert_eq!(state["ExitCode"], 7, "{state}");
    assert!(env.ok(&["logs", "short"]).contains("tick 8"));
}

#[test]
fn restart_policies_are_carried_out_by_the_supervisor() {
    let env = Env::new();
    let data = env.env.work().join("data");
    std::fs::create_dir(&data).expect("test");
    let vol = format!("{}:/data", data.display());
    // on-failure:2 — the first run and two restarts.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "-v",
        &vol,
        "svc",
        "count",
        "/data/flaky",
        "3",
    ]);
    env.wait_for("flaky", "exited", |s| s["Status"] == "exited");
    let runs = std::fs::read_to_string(data.join("flaky")).expect("test");
    assert_eq!(runs.lines().count(), 3, "on-failure:2 runs three times");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "flaky"])).expect("test");
    assert_eq!(inspect[0]["RestartCount"], 2);
    assert_eq!(
        inspect[0]["HostConfig"]["RestartPolicy"]["Name"],
        "on-failure"
    );
    assert_eq!(
        inspect[0]["HostConfig"]["RestartPolicy"]["MaximumRetryCount"],
        2
    );
    // on-failure does not restart a success; no never restarts.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "-v",
        &vol,
        "svc",
        "count",
        "/data/fine",
        "0",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "never",
        "-v",
        &vol,
        "svc",
        "count",
        "/data/never",
        "1",
    ]);
    env.wait_for("fine", "exited", |s| s["Status"] == "exited");
    env.wait_for("never", "exited", |s| s["Status"] == "exited");
    assert_eq!(
        std::fs::read_to_string(data.join("fine"))
            .expect("test")
            .lines()
            .count(),
        1
    );
    assert_eq!(
        std::fs::read_to_string(data.join("never"))
            .expect("test")
            .lines()
            .count(),
        1
    );
    // always restarts a success until stopped; stop ends it for good.
    for policy in ["always", "unless-stopped"] {
        let file = format!("/data/{policy}");
        env.ok(&[
            "run",
            "-d",
            "--name",
            policy,
            "--restart",
            policy,
            "-v",
            &vol,
            "svc",
            "count",
            &file,
            "0",
        ]);
        let host = data.join(policy);
        let start = Instant::now();
        while std::fs::read_to_string(&host).map_or(0, |t| t.lines().count()) < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{policy} did not restart"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        env.ok(&["stop", "-t", "1", policy]);
        let state = env.state(policy);
        assert_eq!(state["Status"], "exited", "{policy}: {state}");
        let after = std::fs::read_to_string(&host)
            .expect("test")
            .lines()
            .count();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            std::fs::read_to_string(&host)
                .expect("test")
                .lines()
                .count(),
            after,
            "{policy} restarted after stop"
        );
    }
}

#[test]
fn a_killed_supervisor_shows_as_dead_never_running_forever() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "victim", "svc", "tick", "0", "100"]);
    env.wait_for("victim", "running", |s| s["Status"] == "running");
    let pid = env.state("victim")["Pid"].as_u64().expect("a pid");
    assert!(pid > 0);
    // The supervisor is a session of its own (setsid): no terminal reaches it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("its /proc entry");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm ends with )")
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "session id is its own pid: {stat}"
    );
    let killed = capsule_tests::output(
        std::process::Command::new(capsule_tests::tool("kill")).args(["-9", &pid.to_string()]),
    );
    assert!(killed.status.success(), "{killed:?}");
    env.wait_for("victim", "dead", |s| s["Status"] == "dead");
    let state = env.state("victim");
    assert!(
        state["Error"]
            .as_str()
            .expect("test")
            .contains("ended without recording"),
        "{state}"
    );
    assert!(
        !env.ok(&["ps"]).contains("victim"),
        "a dead container is not running"
    );
    assert!(env.ok(&["ps", "-a"]).contains("Dead"));
    // It can be started again, or removed without -f.
    env.ok(&["rm", "victim"]);
}

#[test]
fn fifty_detached_containers_at_once() {
    let env = Env::new();
    let children: Vec<_> = (0..50)
        .map(|i| {
            Proc::spawn(env.env.capsule().args([
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                "svc",
                "tick",
                "0",
                "200",
            ]))
        })
        .collect();
    for child in children {
        let out = child.wait();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ps = env.ok(&["ps", "-q"]);
    assert_eq!(ps.lines().count(), 50, "{ps}");
    let ids: Vec<String> = ps.lines().map(str::to_owned).collect();
    let mut args = vec!["stop", "-t", "0"];
    args.extend(ids.iter().map(String::as_str));
    env.ok(&args);
    assert_eq!(env.ok(&["ps", "-q"]).lines().count(), 0);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 50);
    let pruned = env.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Total: 50"), "{pruned}");
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 0);
}

#[test]
fn foreground_runs_stdin_timeout_and_names() {
    let env = Env::new();
    // -i gives the guest the host's stdin; without it, stdin is empty (as Docker).
    let run = env
        .env
        .run_with_stdin(&["run", "--rm", "-i", "svc", "cat"], b"hello");
    run.assert_code(0);
    assert_eq!(run.stdout, "hello");
    let run = env
        .env
        .run_with_stdin(&["run", "--rm", "svc", "cat"], b"hello");
    run.assert_code(0);
    assert_eq!(run.stdout, "");
    // --timeout interrupts a guest that never calls the host, and one asleep in it.
    let run = env
        .env
        .run(&["run", "--rm", "--timeout", "300ms", "svc", "spin"]);
    run.assert_code(124);
    assert!(run.stderr.contains("--timeout of 300ms"), "{}", run.stderr);
    let started = Instant::now();
    env.env
        .run(&["run", "--rm", "--timeout", "200ms", "svc", "sleep", "60"])
        .assert_code(124);
    assert!(started.elapsed() < Duration::from_secs(10));
    // A foreground run is a container too: kept, logged, named.
    let run = env.env.run(&["run", "--name", "fg", "svc", "env", "HOME"]);
    run.assert_code(0);
    assert!(env.ok(&["logs", "fg"]).contains("(unset)"));
    assert_eq!(env.state("fg")["Status"], "exited");
    env.ok(&["rename", "fg", "renamed"]);
    assert!(env.ok(&["ps", "-a"]).contains("renamed"));
    // Docker refuses a rename to the name the container already has.
    env.env
        .run(&["rename", "renamed", "renamed"])
        .assert_error(125, &["already has the name renamed"]);
    env.ok(&["rm", "renamed"]);
    assert!(!env.ok(&["ps", "-a"]).contains("renamed"));
}

#[test]
fn bad_input_to_every_verb_is_one_clear_line_and_changes_nothing() {
    let env = Env::new();
    for verb in [
        "start", "stop", "kill", "rm", "wait", "logs", "inspect", "restart",
    ] {
        env.env.run(&[verb, "nosuch"]).assert_error(1, &["nosuch"]);
    }
    env.env
        .run(&["rename", "nosuch", "x"])
        .assert_error(1, &["no such container: nosuch"]);
    // inspect looks for both kinds, and says so.
    env.env
        .run(&["inspect", "nosuch"])
        .assert_error(1, &["no such container or image: nosuch"]);
    env.ok(&["run", "-d", "--name", "busy", "svc", "tick", "0", "100"]);
    env.env
        .run(&["run", "-d", "--name", "busy", "svc", "tick", "1", "1"])
        .assert_error(125, &["name busy is already in use"]);
    env.env
        .run(&["create", "--name", "-bad", "svc"])
        .assert_error(125, &["invalid container name"]);
    env.env
        .run(&["run", "--restart", "sometimes", "svc"])
        .assert_error(125, &["invalid restart policy"]);
    env.env
        .run(&["run", "--timeout", "soon", "svc"])
        .assert_error(125, &["invalid duration"]);
    env.env
        .run(&["rm", "busy"])
        .assert_error(1, &["busy is running", "rm -f"]);
    env.env
        .run(&["start", "busy"])
        .assert_error(1, &["already running"]);
    env.env
        .run(&["kill", "-s", "TERM", "busy"])
        .assert_error(125, &["only KILL"]);
    // Nothing changed: one container, still running.
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
    assert_eq!(env.state("busy")["Status"], "running");
    env.ok(&["rm", "-f", "busy"]);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 0);
}

#[test]
fn diff_commit_and_cp_round_trip_with_deletions() {
    let env = Env::new();
    env.ok(&[
        "run",
        "--name",
        "w",
        "svc",
        "write",
        "/new.txt",
        "made inside",
    ]);
    env.ok(&["run", "--name", "d", "svc", "rm", "/service.wasm"]);
    assert_eq!(env.ok(&["diff", "w"]), "A /new.txt\n");
    assert_eq!(env.ok(&["diff", "d"]), "D /service.wasm\n");
    // cp in both directions, on stopped containers.
    let host_in = env.env.write("from-host.txt", "from the host\n");
    env.ok(&["cp", host_in.to_str().expect("test"), "w:/"]);
    env.env.write("tree/sub/deep.txt", "deep\n");
    env.ok(&[
        "cp",
        env.env.work().join("tree").to_str().expect("test"),
        "w:/copied",
    ]);
    let diff = env.ok(&["diff", "w"]);
    for line in [
        "A /from-host.txt",
        "A /new.txt",
        "A /copied",
        "A /copied/sub/deep.txt",
    ] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line} missing from\n{diff}"
        );
    }
    let out = env.env.work().join("out");
    std::fs::create_dir(&out).expect("test");
    env.ok(&["cp", "w:/new.txt", out.to_str().expect("test")]);
    assert_eq!(
        std::fs::read_to_string(out.join("new.txt")).expect("test"),
        "made inside"
    );
    env.ok(&["cp", "w:/copied", out.join("again").to_str().expect("test")]);
    // A missing file is said in words, with the errno's name.
    env.env
        .run(&["cp", "w:/nonexistent", out.to_str().expect("test")])
        .assert_error(
            1,
            &["/nonexistent in the container: no such file or directory (ENOENT)"],
        );
    assert_eq!(
        std::fs::read_to_string(out.join("again/sub/deep.txt")).expect("test"),
        "deep\n"
    );
    // commit: a new layer over the image; the deletion is a whiteout that holds.
    let id = env.ok(&["commit", "w", "committed:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    let run = env.env.run(&["run", "--rm", "committed:1", "env", "X"]);
    run.assert_code(0);
    env.ok(&["run", "--name", "check", "committed:1", "write", "/x", "y"]);
    env.ok(&[
        "cp",
        "check:/from-host.txt",
        out.join("round.txt").to_str().expect("test"),
    ]);
    assert_eq!(
        std::fs::read_to_string(out.join("round.txt")).expect("test"),
        "from the host\n"
    );
    env.ok(&["commit", "d", "deleted"]);
    env.env
        .run(&["run", "--rm", "deleted"])
        .assert_error(126, &["/service.wasm"]);
    let history = env.ok(&["history", "deleted"]);
    assert!(history.contains("capsule commit d"), "{history}");
    // The same changes give the same layer: commit is reproducible.
    let again = env.ok(&["commit", "d"]);
    let first: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "deleted"])).expect("test");
    let second: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", again.trim()])).expect("test");
    assert_eq!(
        first[0]["RootFS"]["Layers"], second[0]["RootFS"]["Layers"],
        "{first}\n{second}"
    );
}

#[test]
fn cp_never_follows_a_symlink_out_of_the_container() {
    let env = Env::new();
    env.ok(&["create", "--name", "box", "svc", "env", "X"]);
    // Symlinks that point out of the container, as a hostile image would hold them.
    let links = env.env.work().join("links");
    std::fs::create_dir(&links).expect("test");
    std::os::unix::fs::symlink("/etc", links.join("abs")).expect("test");
    std::os::unix::fs::symlink("../../../../../../../../etc", links.join("rel")).expect("test");
    env.ok(&["cp", links.to_str().expect("test"), "box:/links"]);
    let diff = env.ok(&["diff", "box"]);
    assert!(diff.contains("A /links/abs"), "{diff}");
    // Reading through them resolves inside the container, where /etc does not exist.
    let out = env.env.work().join("stolen");
    for link in ["/links/abs/passwd", "/links/rel/passwd"] {
        let run = env
            .env
            .run(&["cp", &format!("box:{link}"), out.to_str().expect("test")]);
        run.assert_error(1, &[link]);
        assert!(!out.exists(), "{link} reached the host's /etc");
    }
    // Writing through them lands inside the container, or fails; never on the host.
    let payload = env.env.write("payload", "owned\n");
    let run = env.env.run(&[
        "cp",
        payload.to_str().expect("test"),
        "box:/links/abs/capsule-escape",
    ]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(!std::path::Path::new("/etc/capsule-escape").exists());
    // A symlink copied out stays a symlink; nothing is written through one on the host.
    env.ok(&[
        "cp",
        "box:/links",
        env.env.work().join("back").to_str().expect("test"),
    ]);
    let back = std::fs::read_link(env.env.work().join("back/abs")).expect("test");
    assert_eq!(back, std::path::Path::new("/etc"));
    let trap = env.env.work().join("trap");
    std::os::unix::fs::symlink("/tmp", &trap).expect("test");
    env.ok(&["run", "--name", "src", "svc", "write", "/f", "x"]);
    env.env
        .run(&["cp", "src:/f", trap.to_str().expect("test")])
        .assert_error(1, &["symlink on the host"]);
    assert!(
        !std::path::Path::new("/tmp/f").exists()
            || std::fs::read_to_string("/tmp/f").expect("test") != "x"
    );
    env.env
        .run(&["cp", "nosuch:/f", out.to_str().expect("test")])
        .assert_error(1, &["no such container"]);
    env.env
        .run(&["cp", "a", "b"])
        .assert_error(125, &["CONTAINER:PATH"]);
}

#[test]
fn images_containers_and_prune_respect_what_runs() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "up", "svc", "tick", "0", "100"]);
    env.ok(&["run", "--name", "done", "svc", "write", "/f", "data"]);
    let df = env.ok(&["system", "df"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("Containers"))
        .expect("a Containers row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..3], &["2", "1"], "{df}");
    // An image a container uses is not removed, running or stopped.
    env.env.run(&["rmi", "svc"]).assert_error(1, &["svc"]);
    env.env
        .run(&["container", "prune"])
        .assert_error(125, &["-f"]);
    assert_eq!(
        env.ok(&["ps", "-aq"]).lines().count(),
        2,
        "nothing pruned unconfirmed"
    );
    let pruned = env.ok(&["system", "prune", "-f", "-a"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    let left = env.ok(&["ps", "-a"]);
    assert!(left.contains("up") && !left.contains("done"), "{left}");
    assert!(
        env.ok(&["images"]).contains("svc"),
        "the running container's image stays"
    );
    // --volumes takes the unused volumes too; a volume in use stays.
    env.ok(&["volume", "create", "spare"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "kept:/data",
        "svc",
        "tick",
        "0",
        "100",
    ]);
    let pruned = env.ok(&["system", "prune", "-f", "-a", "--volumes"]);
    assert!(pruned.contains("spare"), "{pruned}");
    let volumes = env.ok(&["volume", "ls", "-q"]);
    assert!(
        volumes.contains("kept") && !volumes.contains("spare"),
        "{volumes}"
    );
}

/// After a race: `system check` passes, no container is left, and so no directory.
#[track_caller]
fn assert_no_container_left(env: &Containers) {
    let check = env.env.run(&["system", "check"]);
    check.assert_code(0);
    assert!(check.stdout.contains("ok:"), "{}", check.stdout);
    assert_eq!(env.ok(&["ps", "-aq"]), "", "ps -a lists a container");
    let left: Vec<_> = std::fs::read_dir(env.env.home().join("containers"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container directories left: {left:?}");
}

/// Issue 31: `wait` and `logs -f` on a container that `rm -f` removes (or `kill`
/// stops) return, with its exit code or an error saying it was removed; never hang.
#[test]
fn wait_and_logs_follow_return_when_the_container_is_killed_or_removed() {
    let env = Env::new();
    let spawn = |args: &[&str]| Proc::spawn(env.env.capsule().args(args));
    for round in 0..8u64 {
        env.ok(&["run", "-d", "--name", "w", "svc", "tick", "0", "20"]);
        let waiter = spawn(&["wait", "w"]);
        let follower = spawn(&["logs", "-f", "w"]);
        // Mostly after both have found it; a verb that starts after the removal says
        // there is no such container, which is right too.
        std::thread::sleep(Duration::from_millis(100 + 40 * (round % 4)));
        let kill = round % 2 == 1;
        if kill {
            env.ok(&["kill", "w"]);
        } else {
            env.ok(&["rm", "-f", "w"]);
        }
        let waited = waiter.wait_within(Duration::from_secs(20));
        let stdout = String::from_utf8_lossy(&waited.stdout);
        let stderr = String::from_utf8_lossy(&waited.stderr);
        if kill || waited.status.success() {
            assert!(waited.status.success(), "round {round}: {stderr}");
            assert_eq!(stdout.trim(), "137", "round {round}");
        } else {
            assert_eq!(waited.status.code(), Some(1), "round {round}: {stderr}");
            assert!(
                stderr.starts_with("capsule: ")
                    && (stderr.contains("container w was removed")
                        || stderr.contains("no such container: w"))
                    && stderr.lines().count() == 1,
                "round {round}: {stderr}"
            );
        }
        let followed = follower.wait_within(Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&followed.stderr);
        assert!(
            followed.status.success() || stderr.contains("no such container: w"),
            "round {round}: {stderr}"
        );
        if kill {
            env.ok(&["rm", "w"]);
        }
    }
    assert_no_container_left(&env);
}

/// Issue 31: a copy that fails part way (the writable layer is full) leaves nothing of
/// itself: no truncated file, no half-copied directory, an existing file whole.
#[test]
fn cp_that_fails_leaves_nothing_partial() {
    let env = Env::new();
    env.ok(&[
        "create",
        "--name",
        "small",
        "--storage-opt",
        "size=1m",
        "svc",
        "env",
        "X",
    ]);
    let big = env.env.write("big.bin", vec![7u8; 3 << 20]);
    let run = env
        .env
        .run(&["cp", big.to_str().expect("test"), "small:/big.bin"]);
    run.assert_error(1, &["/big.bin", "ENOSPC"]);
    assert_eq!(env.ok(&["diff", "small"]), "", "a partial file stayed");
    // A directory whose second file does not fit: neither stays.
    env.env.write("tree/a.txt", "small\n");
    env.env.write("tree/z.bin", vec![1u8; 3 << 20]);
    let tree = env.env.work().join("tree");
    env.env
        .run(&["cp", tree.to_str().expect("test"), "small:/tree"])
        .assert_error(1, &["ENOSPC"]);
    assert_eq!(env.ok(&["diff", "small"]), "", "a partial directory stayed");
    // An existing file that a copy fails to replace is kept whole.
    let keep = env.env.write("keep.txt", "kept\n");
    env.ok(&["cp", keep.to_str().expect("test"), "small:/big.bin"]);
    env.env
        .run(&["cp", big.to_str().expect("test"), "small:/big.bin"])
        .assert_error(1, &["ENOSPC"]);
    assert_eq!(env.ok(&["diff", "small"]), "A /big.bin\n");
    let back = env.env.work().join("back.txt");
    env.ok(&["cp", "small:/big.bin", back.to_str().expect("test")]);
    assert_eq!(std::fs::read_to_string(&back).expect("test"), "kept\n");
}

/// Issue 31: `-` is Docker's tar stream: `cp C:PATH -` writes one to stdout, `cp -
/// C:DIR` extracts one from stdin into a directory; an archive that leads out of it,
/// or a destination that is not a directory, is refused and changes nothing.
#[test]
fn cp_dash_is_a_tar_stream() {
    let env = Env::new();
    env.ok(&["run", "--name", "t", "svc", "write", "/data.txt", "payload"]);
    // Out: a tar on stdout, not a file named "-".
    let out = capsule_tests::output(env.env.capsule().args(["cp", "t:/data.txt", "-"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!env.env.work().join("-").exists(), "wrote a file named -");
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    let mut entries = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("test");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).expect("test");
        entries.push((entry.path().expect("test").display().to_string(), text));
    }
    assert_eq!(entries, [("data.txt".to_owned(), "payload".to_owned())]);
    // In: a tar from stdin, extracted into a directory.
    use capsule_tests::rawtar::{E, raw, tar};
    let archive = tar(&[E::Dir("sub"), E::File("sub/in.txt", b"hello")]);
    env.env
        .run_with_stdin(&["cp", "-", "t:/"], &archive)
        .assert_code(0);
    let diff = env.ok(&["diff", "t"]);
    assert!(diff.contains("A /sub/in.txt"), "{diff}");
    // Refused, and nothing changes: not a directory; an entry leading out; a cut-off
    // archive; not a tar.
    env.env
        .run_with_stdin(&["cp", "-", "t:/data.txt"], &archive)
        .assert_error(1, &["not a directory"]);
    let evil = tar(&[
        E::File("fine.txt", b"x"),
        raw(b"../escape.txt", b'0', 0o644),
    ]);
    env.env
        .run_with_stdin(&["cp", "-", "t:/sub"], &evil)
        .assert_error(1, &["leads out"]);
    let body = vec![b'y'; 5000];
    let mut cut = tar(&[E::File("first.txt", b"x"), E::File("long.txt", &body)]);
    cut.truncate(2048);
    env.env
        .run_with_stdin(&["cp", "-", "t:/sub"], &cut)
        .assert_error(1, &["damaged or cut off"]);
    env.env
        .run_with_stdin(&["cp", "-", "t:/sub"], b"{not a tar")
        .assert_error(1, &["damaged or cut off"]);
    assert_eq!(
        env.ok(&["diff", "t"]),
        diff,
        "a refused copy changed the container"
    );
}

/// Issue 31: a container whose record (`config.json`) is damaged or gone does not
/// vanish: `ps -a` shows it as dead by ID, `system check` reports it, `rm` (`-f` while
/// its process runs) and the prunes remove it.
#[test]
fn damaged_container_records_are_shown_reported_and_removed() {
    let env = Env::new();
    let id = |out: String| out.trim().to_owned();
    let garbage = id(env.ok(&["create", "--name", "g", "svc", "env", "X"]));
    let deleted = id(env.ok(&["create", "--name", "d", "svc", "env", "X"]));
    let pruned = id(env.ok(&["create", "--name", "p", "svc", "env", "X"]));
    let running = id(env.ok(&["run", "-d", "--name", "r", "svc", "tick", "0", "100"]));
    env.wait_for("r", "running", |s| s["Status"] == "running");
    let pid = env.state("r")["Pid"].as_u64().expect("a pid");
    let config = |id: &str| {
        env.env
            .home()
            .join("containers")
            .join(id)
            .join("config.json")
    };
    std::fs::write(config(&garbage), "{garbage").expect("test");
    std::fs::remove_file(config(&deleted)).expect("test");
    std::fs::write(config(&pruned), "").expect("test");
    std::fs::write(config(&running), "[1, 2]").expect("test");
    let ps = env.ok(&["ps", "-a"]);
    for id in [&garbage, &deleted, &pruned, &running] {
        assert!(ps.contains(&id[..12]), "ps -a lists {id}: {ps}");
    }
    assert!(ps.contains("Dead (config.json is missing)"), "{ps}");
    assert!(ps.contains("Dead (config.json is damaged"), "{ps}");
    assert_eq!(
        env.ok(&["ps", "-aq", "--filter", "status=dead"])
            .lines()
            .count(),
        4
    );
    let check = env.env.run(&["system", "check"]);
    check.assert_code(1);
    for id in [&garbage, &deleted, &pruned, &running] {
        assert!(
            check.stdout.contains(&format!("damaged: container {id}")),
            "{}",
            check.stdout
        );
    }
    // rm by ID: the running one only with -f, which ends its process.
    env.env
        .run(&["rm", &running[..12]])
        .assert_error(1, &["is running", "rm -f"]);
    env.ok(&["rm", "-f", &running[..12]]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| !c.contains(&running)),
        "the damaged container's supervisor still runs"
    );
    env.ok(&["rm", &garbage]);
    // The prunes remove the others.
    let out = env.ok(&["container", "prune", "-f"]);
    assert!(out.contains(&deleted), "{out}");
    env.ok(&["create", "--name", "again", "svc", "env", "X"]);
    let again = id(env.ok(&["ps", "-aq", "--no-trunc"]));
    std::fs::write(config(&again), "null").expect("test");
    let out = env.ok(&["system", "prune", "-f"]);
    assert!(out.contains(&again), "{out}");
    assert_no_container_left(&env);
}

/// Issue 31: `ps --filter` follows Docker's grammar: `name` is a regular expression,
/// values of one key are alternatives, a status Docker does not know is an error.
#[test]
fn ps_filters_follow_docker() {
    let env = Env::new();
    for name in ["web-1", "web-2", "api-web"] {
        env.ok(&["create", "--name", name, "svc", "env", "X"]);
    }
    let names = |filters: &[&str]| {
        let mut args = vec!["ps", "-a", "--format", "json"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let mut names: Vec<String> = env
            .ok(&args)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
                v["Names"].as_str().expect("a name").to_owned()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&["name=^web"]), ["web-1", "web-2"]);
    assert_eq!(names(&["name=^/web-1$"]), ["web-1"]);
    assert_eq!(names(&["name=web-[2-9]"]), ["web-2"]);
    assert_eq!(names(&["name=web"]), ["api-web", "web-1", "web-2"]);
    assert_eq!(names(&["name=^web-1$", "name=^api"]), ["api-web", "web-1"]);
    assert_eq!(names(&["status=created", "status=exited"]).len(), 3);
    assert_eq!(names(&["status=running"]).len(), 0);
    env.env
        .run(&["ps", "-a", "--filter", "status=bogus"])
        .assert_error(125, &["status=bogus", "exited"]);
    env.env
        .run(&["ps", "-a", "--filter", "name=[web"])
        .assert_error(125, &["name=[web", "regular expression"]);
}
