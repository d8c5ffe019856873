//! Containers without a daemon, through the real binary: detached runs under their own
//! supervisor, logs, stop/kill/rm/wait/restart, restart policies, a supervisor that
//! dies, names, and bad input to each verb.

use capsule_tests::{TestEnv, guests};
use std::time::{Duration, Instant};

/// A home with the `service` guest as image `svc`; every container still running is
/// removed (and its supervisor ended) when the test ends, pass or fail.
struct Env {
    env: TestEnv,
}

impl Env {
    fn new() -> Self {
        let env = TestEnv::new();
        env.run(&["image", "import", guests::SERVICE, "-t", "svc"])
            .assert_code(0);
        Self { env }
    }

    fn ok(&self, args: &[&str]) -> String {
        let run = self.env.run(args);
        run.assert_code(0);
        run.stdout
    }

    fn state(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let value: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
        value[0]["State"].clone()
    }

    /// Waits until `check` holds on the container's state (at most 20 s).
    #[track_caller]
    fn wait_for(&self, name: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let start = Instant::now();
        loop {
            let state = self.state(name);
            if check(&state) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name} never became {what}: {state}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = self.env.run(&["ps", "-aq", "--no-trunc"]).stdout;
        for id in ids.lines() {
            let _ = self.env.run(&["rm", "-f", id]);
        }
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
    .unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["log"], "tick 1\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().contains('T'));
    let tail = env.ok(&["logs", "--tail", "1", "-t", "ticker"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("20"), "timestamps first: {tail}");
    // stop: the guest has no signals; after the grace period it is interrupted.
    let started = Instant::now();
    env.ok(&["stop", "-t", "1", "ticker"]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stop took too long"
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
    std::fs::create_dir(&data).unwrap();
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
    let runs = std::fs::read_to_string(data.join("flaky")).unwrap();
    assert_eq!(runs.lines().count(), 3, "on-failure:2 runs three times");
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "flaky"])).unwrap();
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
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert_eq!(
        std::fs::read_to_string(data.join("never"))
            .unwrap()
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
        let after = std::fs::read_to_string(&host).unwrap().lines().count();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            std::fs::read_to_string(&host).unwrap().lines().count(),
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
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    env.wait_for("victim", "dead", |s| s["Status"] == "dead");
    let state = env.state("victim");
    assert!(
        state["Error"]
            .as_str()
            .unwrap()
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
            let mut cmd = env.env.capsule();
            cmd.args([
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                "svc",
                "tick",
                "0",
                "200",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
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
