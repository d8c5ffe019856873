//! Compose through the real binary: a project from `compose.toml`, its services made
//! as `capsule create` makes containers, dependencies, restarts, volumes, variables,
//! recreation of changed services, errors in the file, Ctrl-C on a foreground `up`.

use capsule_tests::{Containers, guests};
use std::process::Stdio;
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
    let mut child = c
        .env
        .capsule()
        .current_dir(c.env.work().join("demo"))
        .args(["compose", "up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    c.wait_for("demo-a-1", "running", |s| s["Status"] == "running");
    std::thread::sleep(Duration::from_millis(300));
    let sent = std::process::Command::new(capsule_tests::tool("kill"))
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "compose up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("demo-a-1 | tick 1"), "{stdout}");
    assert_eq!(status.code(), Some(130));
    assert_eq!(c.state("demo-a-1")["Status"], "exited");
}
