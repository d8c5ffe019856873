//! Compose through the real binary: a project from `compose.toml`, its services made
//! as `capsule create` makes containers, dependencies, restarts, volumes, variables,
//! recreation of changed services, errors in the file, Ctrl-C on a foreground `up`.

use capsule_tests::{Containers, Proc, guests};
use std::time::{Duration, Instant};

/// A home with `svc` and a project directory `demo/` holding `compose.toml`.
fn project(toml: &str) -> Containers {
    let c = Containers::new(&[(guests::SERVICE, "svc")]);
    c.env.write("demo/compose.toml", toml);
    c
}

fn compose(c: &Containers, args: &[&str]) -> capsule_tests::Run {
    let mut cmd = c.env.capsule();
    cmd.current_dir(c.env.work().join("demo"))
        .arg("compose")
        .args(args);
    capsule_tests::Run::of(&mut cmd, None)
}

#[track_caller]
fn compose_ok(c: &Containers, args: &[&str]) -> String {
    let run = compose(c, args);
    run.assert_code(0);
    run.stdout
}

const APP: &str = r#"
[services.loader]
image = "svc"
command = ["write", "/data/seed", "${SEED:-from-default}"]
volumes = ["data:/data"]

[services.api]
image = "svc"
command = "tick 0 100"
depends_on = { loader = { condition = "completed_successfully" } }
volumes = ["data:/data"]
environment = { MODE = "${MODE}" }

[volumes.data]
"#;

#[test]
fn up_ps_logs_and_down_in_dependency_order() {
    let c = project(APP);
    c.env.write("demo/.env", "MODE=from-dotenv\n");
    let up = compose(&c, &["up", "-d"]);
    up.assert_code(0);
    // The loader ran to completion before the api was created.
    let loader_done = up.stderr.find("demo-loader-1  Started").expect("loader");
    let api_created = up.stderr.find("demo-api-1  Created").expect("api");
    assert!(loader_done < api_created, "{}", up.stderr);
    assert_eq!(c.state("demo-loader-1")["ExitCode"], 0);
    c.wait_for("demo-api-1", "running", |s| s["Status"] == "running");
    // ps shows what runs, ps -a the finished loader too.
    let ps = compose_ok(&c, &["ps"]);
    assert!(ps.contains("demo-api-1") && ps.contains("Up "), "{ps}");
    assert!(!ps.contains("demo-loader-1"), "{ps}");
    let ps = compose_ok(&c, &["ps", "-a"]);
    assert!(
        ps.contains("demo-loader-1") && ps.contains("Exited (0)"),
        "{ps}"
    );
    let rows: Vec<serde_json::Value> = compose_ok(&c, &["ps", "-a", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let row = |service: &str| {
        rows.iter()
            .find(|r| r["Service"] == service)
            .unwrap_or_else(|| panic!("no {service} in {rows:?}"))
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(row("api")["Name"], "demo-api-1");
    assert_eq!(row("api")["State"], "running");
    assert_eq!(row("api")["Project"], "demo");
    assert_eq!(row("loader")["State"], "exited");
    assert_eq!(row("loader")["ExitCode"], 0);
    assert_eq!(
        compose_ok(&c, &["ps", "--services"]).trim(),
        "api",
        "only running services"
    );
    // The seed went through the shared, project-scoped volume.
    let out = c.env.work().join("seed");
    c.ok(&["cp", "demo-api-1:/data/seed", out.to_str().expect("utf-8")]);
    assert_eq!(std::fs::read_to_string(&out).expect("seed"), "from-default");
    assert!(c.ok(&["volume", "ls"]).contains("demo_data"));
    // .env fills ${MODE}; the environment wins over .env.
    let inspect: serde_json::Value =
        serde_json::from_str(&c.ok(&["inspect", "demo-api-1"])).expect("json");
    assert!(
        inspect[0]["Config"]["Env"]
            .to_string()
            .contains("MODE=from-dotenv"),
        "{inspect}"
    );
    let start = Instant::now();
    while !compose_ok(&c, &["logs", "api"]).contains("demo-api-1 | tick 2") {
        assert!(start.elapsed() < Duration::from_secs(20), "no logs");
        std::thread::sleep(Duration::from_millis(50));
    }
    // down keeps volumes; down -v removes them.
    compose_ok(&c, &["down"]);
    assert_eq!(c.ok(&["ps", "-aq"]).lines().count(), 0);
    assert!(c.ok(&["volume", "ls"]).contains("demo_data"));
    compose_ok(&c, &["up", "-d"]);
    compose_ok(&c, &["down", "-v"]);
    assert!(!c.ok(&["volume", "ls"]).contains("demo_data"));
}

#[test]
fn up_again_recreates_only_changed_services() {
    let c = project(
        "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\n[services.b]\nimage = \"svc\"\ncommand = \"tick 0 100\"\n",
    );
    compose_ok(&c, &["up", "-d"]);
    let id = |name: &str| {
        let v: serde_json::Value = serde_json::from_str(&c.ok(&["inspect", name])).expect("json");
        v[0]["Id"].as_str().expect("id").to_owned()
    };
    let (a1, b1) = (id("demo-a-1"), id("demo-b-1"));
    let again = compose(&c, &["up", "-d"]);
    again.assert_code(0);
    assert!(
        again.stderr.contains("demo-a-1  Running"),
        "{}",
        again.stderr
    );
    assert_eq!((id("demo-a-1"), id("demo-b-1")), (a1.clone(), b1.clone()));
    c.env.write(
        "demo/compose.toml",
        "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\n[services.b]\nimage = \"svc\"\ncommand = \"tick 0 200\"\n",
    );
    let changed = compose(&c, &["up", "-d"]);
    changed.assert_code(0);
    assert!(
        changed.stderr.contains("demo-b-1  Recreate"),
        "{}",
        changed.stderr
    );
    assert_eq!(id("demo-a-1"), a1, "an unchanged service is left running");
    assert_ne!(id("demo-b-1"), b1, "a changed service is recreated");
    c.wait_for("demo-a-1", "running", |s| s["Status"] == "running");
    compose_ok(&c, &["down"]);
}

#[test]
fn restart_policies_and_failed_dependencies() {
    let c = project(
        "[services.flaky]\nimage = \"svc\"\ncommand = [\"count\", \"/data/runs\", \"3\"]\nrestart = \"on-failure:2\"\nvolumes = [\"runs:/data\"]\n[volumes.runs]\n",
    );
    compose_ok(&c, &["up", "-d"]);
    c.wait_for("demo-flaky-1", "exited for good", |s| {
        s["Status"] == "exited" && s["ExitCode"] == 3
    });
    let inspect: serde_json::Value =
        serde_json::from_str(&c.ok(&["inspect", "demo-flaky-1"])).expect("json");
    assert_eq!(inspect[0]["RestartCount"], 2);
    compose_ok(&c, &["down", "-v"]);
    // A dependency that must complete successfully and fails stops the `up`.
    c.env.write(
        "demo/compose.toml",
        "[services.bad]\nimage = \"svc\"\ncommand = \"tick 1 1 4\"\n[services.app]\nimage = \"svc\"\ncommand = \"tick 0 100\"\ndepends_on = { bad = { condition = \"completed_successfully\" } }\n",
    );
    let up = compose(&c, &["up", "-d"]);
    up.assert_code(1);
    assert!(up.stderr.contains("exited with 4"), "{}", up.stderr);
    assert!(
        c.env.run(&["inspect", "demo-app-1"]).code != Some(0),
        "app was not created"
    );
}

#[test]
fn errors_in_the_file_name_line_column_and_key() {
    let c = project("[services.api]\nimage = \"svc\"\nports = [\"8000:8000\"]\nimagee = \"x\"\n");
    let run = compose(&c, &["config"]);
    run.assert_error(
        125,
        &["compose.toml:4:1", "services.api.imagee", "unknown field"],
    );
    c.env.write(
        "demo/compose.toml",
        "[services.a]\nimage = \"svc\"\ndepends_on = { b = {} }\n[services.b]\nimage = \"svc\"\ndepends_on = { a = {} }\n",
    );
    compose(&c, &["up", "-d"]).assert_error(125, &["cycle", "a -> b -> a"]);
    c.env.write(
        "demo/compose.toml",
        "[services.a]\nimage = \"${IMAGE:?set IMAGE to the image to run}\"\n",
    );
    compose(&c, &["up", "-d"]).assert_error(
        125,
        &[
            "compose.toml:2:10",
            "services.a.image",
            "set IMAGE to the image to run",
        ],
    );
    let mut cmd = c.env.capsule();
    cmd.current_dir(c.env.work().join("demo"))
        .env("IMAGE", "svc")
        .args(["compose", "config"]);
    let config = capsule_tests::Run::of(&mut cmd, None);
    config.assert_code(0);
    assert!(
        config.stdout.contains("image = \"svc\""),
        "{}",
        config.stdout
    );
    std::fs::remove_file(c.env.work().join("demo/compose.toml")).expect("rm");
    compose(&c, &["ps"]).assert_error(125, &["compose.toml", "-f"]);
    assert_eq!(
        c.ok(&["ps", "-aq"]).lines().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn depends_on_as_a_list_and_coloured_log_prefixes() {
    let c = project(
        "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 50\"\n[services.b]\nimage = \"svc\"\ncommand = \"tick 0 50\"\ndepends_on = [\"a\"]\n",
    );
    let up = compose(&c, &["up", "-d", "b"]);
    up.assert_code(0);
    let a = up.stderr.find("demo-a-1  Started").expect("a started");
    let b = up.stderr.find("demo-b-1  Created").expect("b created");
    assert!(a < b, "a list names services to start first: {}", up.stderr);
    let both = |out: &str| out.contains("demo-a-1 | tick 2") && out.contains("demo-b-1 | tick 2");
    let start = Instant::now();
    while !both(&compose_ok(&c, &["--ansi", "never", "logs"])) {
        assert!(start.elapsed() < Duration::from_secs(20), "no logs");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Not a terminal: no colours unless asked for.
    let plain = compose_ok(&c, &["logs"]);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    // Asked for: each service's prefix in its own colour, the same whichever are shown.
    let coloured = compose_ok(&c, &["--ansi", "always", "logs"]);
    let colour_of = |out: &str, name: &str| -> String {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {out:?}"));
        assert!(line.starts_with("\x1b["), "{line:?}");
        assert!(line.contains("\x1b[0m"), "{line:?}");
        line[..line.find('m').expect("an escape")].to_owned()
    };
    let (ca, cb) = (
        colour_of(&coloured, "demo-a-1"),
        colour_of(&coloured, "demo-b-1"),
    );
    assert_ne!(ca, cb, "{coloured:?}");
    let only_b = compose_ok(&c, &["--ansi", "always", "logs", "b"]);
    assert_eq!(colour_of(&only_b, "demo-b-1"), cb);
    let bad = compose(&c, &["--ansi", "sometimes", "logs"]);
    bad.assert_code(125);
    assert!(bad.stderr.contains("'sometimes'"), "{}", bad.stderr);
    compose_ok(&c, &["down", "-t", "0"]);
}

#[test]
fn ctrl_c_stops_a_foreground_up_gracefully() {
    let c = project("[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\n");
    let mut child = Proc::spawn(
        c.env
            .capsule()
            .current_dir(c.env.work().join("demo"))
            .args(["compose", "up"]),
    );
    // The service's output reaches the foreground `up`: it follows the logs, and so has
    // its Ctrl-C handler (installed before it follows them).
    child.wait_for_stdout("demo-a-1 | tick 1");
    child.signal(rustix::process::Signal::INT);
    let out = child.wait_within(Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.state("demo-a-1")["Status"], "exited");
}

/// `compose down -t`, `stop -t` and `restart -t` obey the library's longest duration:
/// past it, one clear line and nothing is stopped or removed (before, `down -t
/// 18446744073709551615` panicked with the containers stopped but not removed).
#[test]
fn a_too_long_grace_period_stops_nothing() {
    let c = project("[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\n");
    compose_ok(&c, &["up", "-d"]);
    c.wait_for("demo-a-1", "running", |s| s["Status"] == "running");
    for verb in ["down", "stop", "restart"] {
        compose(&c, &[verb, "-t", "18446744073709551615"])
            .assert_error(125, &["-t 18446744073709551615: too long"]);
        compose(&c, &[verb, "-t", "-1"]).assert_error(125, &["-t -1: expected a whole number"]);
    }
    assert_eq!(c.state("demo-a-1")["Status"], "running");
    compose_ok(&c, &["down", "-t", "0"]);
    assert_eq!(c.ok(&["ps", "-aq"]).lines().count(), 0);
}

/// The id of a container, by name.
fn id_of(c: &Containers, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["inspect", name])).expect("json");
    v[0]["Id"].as_str().expect("id").to_owned()
}

/// `compose run` publishes none of the service's ports unless `--service-ports`, as
/// Docker Compose: with the service up, a one-off run of it works (before, it failed:
/// the service's own container holds the port).
#[test]
fn compose_run_publishes_ports_only_with_service_ports() {
    // A fixed host port, named in the file: the test is that a one-off run with
    // --service-ports asks for the very port the service's container holds (a port
    // left to Capsule to pick would be another one for each container).
    let port = capsule_tests::free_port();
    let c = project(&format!(
        "[services.web]\nimage = \"svc\"\ncommand = \"tick 0 100\"\nports = [\"{port}:80\"]\nrestart = \"always\"\n"
    ));
    compose_ok(&c, &["up", "-d"]);
    c.wait_for("demo-web-1", "running", |s| s["Status"] == "running");
    // The service restarts always; a one-off removed when it ends does not (Docker
    // Compose clears the policy for it).
    let run = compose(&c, &["run", "--rm", "web", "tick", "2", "0", "3"]);
    run.assert_code(3);
    assert!(run.stdout.contains("tick 2"), "{}", run.stdout);
    compose(
        &c,
        &["run", "--rm", "--service-ports", "web", "tick", "1", "0"],
    )
    .assert_error(125, &[&port.to_string(), "already in use"]);
    assert_eq!(c.ok(&["ps", "-aq"]).lines().count(), 1, "one-offs removed");
    compose_ok(&c, &["down", "-t", "0"]);
}

/// `external = true` names a volume made outside the project: a missing one is an
/// error before anything is created, not a silent create.
#[test]
fn a_missing_external_volume_is_an_error() {
    let c = project(
        "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\nvolumes = [\"shared:/data\"]\n[volumes.shared]\nexternal = true\n",
    );
    compose(&c, &["up", "-d"]).assert_error(
        125,
        &["volume shared is external", "capsule volume create shared"],
    );
    assert!(!c.ok(&["volume", "ls"]).contains("shared"), "not created");
    assert_eq!(c.ok(&["ps", "-aq"]).lines().count(), 0, "nothing created");
    c.ok(&["volume", "create", "shared"]);
    compose_ok(&c, &["up", "-d"]);
    compose_ok(&c, &["down", "-t", "0", "-v"]);
    assert!(
        c.ok(&["volume", "ls"]).contains("shared"),
        "down -v leaves an external volume"
    );
}

/// Two `compose up -d` of one project at once both succeed: one waits for the other
/// under the project's lock, then finds the services running (before, one failed:
/// both created the same containers). Bounded: three rounds.
#[test]
fn concurrent_ups_of_one_project_both_succeed() {
    let c = project(
        "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\n[services.b]\nimage = \"svc\"\ncommand = \"tick 0 100\"\ndepends_on = [\"a\"]\n",
    );
    for round in 0..3 {
        let spawn = || {
            let mut cmd = c.env.capsule();
            cmd.current_dir(c.env.work().join("demo"))
                .args(["compose", "up", "-d"]);
            Proc::spawn(&mut cmd)
        };
        let (one, two) = (spawn(), spawn());
        for child in [one, two] {
            let out = child.wait();
            assert_eq!(
                out.status.code(),
                Some(0),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut names: Vec<String> = compose_ok(&c, &["ps", "-a", "--format", "json"])
            .lines()
            .map(|l| {
                let row: serde_json::Value = serde_json::from_str(l).expect("json");
                row["Name"].as_str().expect("a name").to_owned()
            })
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["demo-a-1", "demo-b-1"], "round {round}");
        compose_ok(&c, &["down", "-t", "0"]);
    }
    c.ok(&["system", "check"]);
}

/// A bad `build` names its key or type, never "did not match any variant".
#[test]
fn bad_build_sections_name_the_key() {
    let c = project("[services.a]\nbuild = { context = \"..\", dockerfile = \"X\" }\n");
    let run = compose(&c, &["config"]);
    run.assert_error(
        125,
        &[
            "compose.toml:2:",
            "services.a.build",
            "`dockerfile`",
            "did you mean `file`",
        ],
    );
    c.env
        .write("demo/compose.toml", "[services.a]\nbuild = 5\n");
    let run = compose(&c, &["config"]);
    run.assert_error(
        125,
        &[
            "compose.toml:2:",
            "services.a.build",
            "integer",
            "a directory",
        ],
    );
    assert!(!run.stderr.contains("variant"), "{}", run.stderr);
}

/// The whole file is checked (and what must be built is built) before anything is
/// stopped or removed: a change that cannot run leaves the project as it was. Before,
/// `up` printed "Recreate", then the error, and left no container.
#[test]
fn a_bad_change_leaves_the_running_project_alone() {
    let base = "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\n";
    let c = project(base);
    compose_ok(&c, &["up", "-d"]);
    c.wait_for("demo-a-1", "running", |s| s["Status"] == "running");
    let id = id_of(&c, "demo-a-1");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let in_use = format!("ports = [\"{port}:80\"]");
    let addr = format!("127.0.0.1:{port}");
    let bad: [(&str, Vec<&str>); 6] = [
        (
            "memory = \"1q\"",
            vec!["compose.toml:4:10", "memory: invalid size '1q'"],
        ),
        (
            "env_file = \"missing.env\"",
            vec!["compose.toml:4:12", "missing.env"],
        ),
        ("ports = [\"70000:80\"]", vec!["compose.toml:4:10", "70000"]),
        (
            "restart = \"sometimes\"",
            vec!["compose.toml:4:11", "restart policy"],
        ),
        (
            "stop_grace_period = \"10 years\"",
            vec!["compose.toml:4:21", "invalid duration"],
        ),
        // Found only when the new container is made: the old one runs again.
        (&in_use, vec![&addr, "already in use"]),
    ];
    for (line, needles) in &bad {
        c.env.write("demo/compose.toml", format!("{base}{line}\n"));
        let run = compose(&c, &["up", "-d"]);
        if *line == in_use {
            run.assert_code(125);
            assert!(run.stderr.contains("demo-a-1  Recreate"), "{}", run.stderr);
            let last = run.stderr.lines().last().unwrap_or("");
            assert!(last.starts_with("capsule: "), "{}", run.stderr);
            for needle in needles {
                assert!(last.contains(needle), "{needle}: {}", run.stderr);
            }
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        } else {
            run.assert_error(125, needles);
        }
        let state = c.state("demo-a-1");
        assert_eq!(state["Status"], "running", "{line}: {state}");
        assert_eq!(id_of(&c, "demo-a-1"), id, "{line}: the same container");
        assert_eq!(c.ok(&["ps", "-aq"]).lines().count(), 1, "{line}");
    }
    drop(taken);
    c.env.write("demo/compose.toml", base);
    compose_ok(&c, &["down", "-t", "0"]);
}

/// A bind mount's missing host directory is found before anything is created, and
/// said once.
#[test]
fn a_missing_bind_directory_is_said_once() {
    let c = project("[services.a]\nimage = \"svc\"\nvolumes = [\"./nodir:/d\"]\n");
    let run = compose(&c, &["up", "-d"]);
    run.assert_error(125, &["services.a", "nodir", "does not exist"]);
    assert_eq!(
        run.stderr.matches("does not exist").count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(c.ok(&["ps", "-aq"]).lines().count(), 0, "nothing created");
}

/// `compose config` checks what `up` checks, an unset variable is a warning (as
/// Compose), and a file without services is an error.
#[test]
fn config_checks_what_up_checks() {
    let c = project("[services.a]\nimage = \"svc\"\nports = [\"70000:80\"]\n");
    compose(&c, &["config"]).assert_error(125, &["compose.toml:3:10", "70000"]);
    for (text, needle) in [
        (
            "[services.a]\nimage = \"svc\"\nrestart = \"sometimes\"\n",
            "restart policy",
        ),
        (
            "[services.a]\nimage = \"svc\"\nmemory = \"1q\"\n",
            "invalid size '1q'",
        ),
        (
            "[services.a]\nimage = \"svc\"\ntimeout = \"soon\"\n",
            "invalid duration 'soon'",
        ),
        (
            "[services.a]\nimage = \"svc\"\nvolumes = [\"x:/d\"]\n[volumes.\"../x\"]\n",
            "invalid volume name",
        ),
        ("", "no services"),
        ("name = \"x\"\n", "no services"),
    ] {
        c.env.write("demo/compose.toml", text);
        compose(&c, &["config"]).assert_error(125, &[needle]);
    }
    c.env.write(
        "demo/compose.toml",
        "[services.a]\nimage = \"svc:${TAG}\"\n",
    );
    let run = compose(&c, &["config"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr.trim(),
        "capsule: warning: the TAG variable is not set: it is read as an empty string",
        "{}",
        run.stderr
    );
}

/// The service fields that had no test: limits, read_only, working_dir, env_file and
/// bind volumes reach the container as `capsule create`'s flags would.
#[test]
fn service_fields_reach_the_container() {
    let c = project(
        "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 100\"\nmemory = \"32m\"\ntimeout = \"1h\"\nfuel = 1000000000000\nnofile = 64\nstorage = \"8m\"\nstop_grace_period = \"3s\"\nread_only = true\nworking_dir = \"/data\"\nenv_file = \"a.env\"\nenvironment = { B = \"2\" }\nvolumes = [\"./host:/data:ro\"]\n",
    );
    c.env.write("demo/a.env", "# comment\nA=1\nB=1\n");
    c.env.write("demo/host/seen.txt", "from the host");
    compose_ok(&c, &["up", "-d"]);
    c.wait_for("demo-a-1", "running", |s| s["Status"] == "running");
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["inspect", "demo-a-1"])).expect("json");
    let host = &v[0]["HostConfig"];
    let config = &v[0]["Config"];
    let limits = &host["Limits"];
    assert_eq!(limits["memory"], 32 << 20, "{host}");
    assert_eq!(limits["storage"], 8 << 20, "{host}");
    assert_eq!(limits["nofile"], 64, "{host}");
    assert_eq!(limits["fuel"], 1_000_000_000_000u64, "{host}");
    assert_eq!(limits["timeout"]["secs"], 3600, "{host}");
    assert_eq!(host["ReadonlyRootfs"], true, "{host}");
    assert_eq!(config["WorkingDir"], "/data", "{config}");
    assert_eq!(config["StopTimeout"], 3, "{config}");
    let env = config["Env"].to_string();
    assert!(env.contains("\"A=1\"") && env.contains("\"B=2\""), "{env}");
    let mounts = &v[0]["Mounts"];
    assert_eq!(mounts[0]["Type"], "bind", "{mounts}");
    assert_eq!(mounts[0]["Destination"], "/data", "{mounts}");
    assert_eq!(mounts[0]["RW"], false, "{mounts}");
    assert!(
        mounts[0]["Source"]
            .as_str()
            .is_some_and(|s| s.ends_with("/demo/host")),
        "{mounts}"
    );
    compose_ok(&c, &["down", "-t", "0"]);
}
