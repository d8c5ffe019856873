//! Health checks through the real binary: a recipe's HEALTHCHECK kept in the image and
//! run by the container's owner (`ps` shows `(health: starting)`, `(healthy)`,
//! `(unhealthy)` as a file the check looks for appears and goes), `HEALTHCHECK NONE`
//! and `--no-healthcheck` turning it off, compose's `healthcheck` and
//! `depends_on = { db = { condition = "service_healthy" } }`, and bad input in both
//! files as one error line. The check is the `service` guest's `exists PATH` (exit 0
//! when PATH exists); `capsule exec` makes and removes the file. Every wait is bounded.

use capsule_tests::{Containers, Proc, Run, guests};
use std::time::Duration;

/// The check every test uses: healthy while `/ok` exists in the container.
const CHECK: &str = r#"["/service.wasm", "exists", "/ok"]"#;

/// A home with the `service` guest as image `svc` and, built from it, `checked`: a
/// HEALTHCHECK on `/ok` every 200 ms, whose failures in the first 5 s do not count.
fn checked() -> Containers {
    let c = Containers::new(&[(guests::SERVICE, "svc")]);
    c.env.write(
        "ctx/Capsulefile",
        format!(
            "FROM svc\nHEALTHCHECK --interval=200ms --timeout=10s --start-period=5s \
             --start-interval=200ms --retries=2 CMD {CHECK}\nCMD [\"tick\", \"0\", \"200\"]\n"
        ),
    );
    c.env.run(&["build", "-t", "checked", "ctx"]).assert_code(0);
    c
}

/// `capsule image inspect IMAGE`'s `Config`.
fn image_config(c: &Containers, image: &str) -> serde_json::Value {
    let out = c.ok(&["image", "inspect", image]);
    let value: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
    value[0]["Config"].clone()
}

/// The image's check, as its label holds it.
fn image_check(c: &Containers, image: &str) -> serde_json::Value {
    let config = image_config(c, image);
    let label = config["Labels"]["io.capsule.healthcheck"]
        .as_str()
        .unwrap_or_else(|| panic!("{image} has no io.capsule.healthcheck label: {config}"));
    serde_json::from_str(label).expect("the label is JSON")
}

/// The row of `capsule ps` for a container.
fn ps_row(c: &Containers, name: &str) -> String {
    let ps = c.ok(&["ps", "-a"]);
    ps.lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in ps:\n{ps}"))
        .to_owned()
}

/// Waits (at most 30 s) until the container's `State.Health.Status` is `status`.
#[track_caller]
fn wait_health(c: &Containers, name: &str, status: &str) {
    c.wait_for(name, status, |s| s["Health"]["Status"] == status);
}

#[test]
fn a_recipes_healthcheck_follows_the_file_it_checks() {
    let c = checked();
    // Kept in the image: its history and its label.
    let history = c.ok(&["history", "--no-trunc", "checked"]);
    assert!(
        history.contains(
            "HEALTHCHECK --interval=200ms --timeout=10s --start-period=5s --start-interval=200ms \
             --retries=2 CMD [\"/service.wasm\",\"exists\",\"/ok\"]"
        ),
        "{history}"
    );
    let check = image_check(&c, "checked");
    assert_eq!(
        check["Test"],
        serde_json::json!(["CMD", "/service.wasm", "exists", "/ok"])
    );
    assert_eq!(check["Interval"], 200_000_000);
    assert_eq!(check["StartPeriod"], 5_000_000_000_u64);
    assert_eq!(check["Retries"], 2);

    c.ok(&["run", "-d", "--name", "web", "checked"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&c.ok(&["inspect", "web"])).expect("JSON");
    assert_eq!(inspect[0]["Config"]["Healthcheck"]["Test"], check["Test"]);
    // Failing in its start period: checked, and still starting.
    c.wait_for("web", "checked once", |s| {
        s["Health"]["Log"].as_array().is_some_and(|l| !l.is_empty())
    });
    let state = c.state("web");
    assert_eq!(state["Health"]["Status"], "starting", "{state}");
    assert_eq!(state["Health"]["Log"][0]["ExitCode"], 1, "{state}");
    assert!(
        ps_row(&c, "web").contains("(health: starting)"),
        "{}",
        ps_row(&c, "web")
    );

    // The file appears: healthy.
    c.ok(&["exec", "web", "/service.wasm", "write", "/ok", "x"]);
    wait_health(&c, "web", "healthy");
    let row = ps_row(&c, "web");
    assert!(row.contains("Up ") && row.contains("(healthy)"), "{row}");

    // It goes: two failures in a row make it unhealthy.
    c.ok(&["exec", "web", "/service.wasm", "rm", "/ok"]);
    wait_health(&c, "web", "unhealthy");
    let row = ps_row(&c, "web");
    assert!(row.contains("(unhealthy)"), "{row}");
    let state = c.state("web");
    assert!(
        state["Health"]["FailingStreak"].as_u64() >= Some(2),
        "{state}"
    );
    let log = state["Health"]["Log"].as_array().expect("a log");
    assert_eq!(log.last().expect("a result")["ExitCode"], 1, "{state}");
    // And back.
    c.ok(&["exec", "web", "/service.wasm", "write", "/ok", "x"]);
    wait_health(&c, "web", "healthy");
}

#[test]
fn healthcheck_none_and_no_healthcheck_turn_it_off_and_a_later_one_replaces_it() {
    let c = checked();
    c.env
        .write("off/Capsulefile", "FROM checked\nHEALTHCHECK NONE\n");
    c.env.write(
        "other/Capsulefile",
        "FROM checked\nHEALTHCHECK --retries=7 CMD /service.wasm exists /other\n",
    );
    c.env.run(&["build", "-t", "off", "off"]).assert_code(0);
    c.env.run(&["build", "-t", "other", "other"]).assert_code(0);
    assert_eq!(image_check(&c, "off")["Test"], serde_json::json!(["NONE"]));
    let other = image_check(&c, "other");
    assert_eq!(
        other["Test"],
        serde_json::json!(["CMD-SHELL", "/service.wasm exists /other"])
    );
    assert_eq!(other["Retries"], 7);
    assert_eq!(
        other["Interval"], 0,
        "a HEALTHCHECK replaces the whole check"
    );
    let history = c.ok(&["history", "--no-trunc", "off"]);
    assert!(history.contains("HEALTHCHECK NONE"), "{history}");

    c.ok(&["run", "-d", "--name", "none", "off"]);
    c.ok(&["run", "-d", "--name", "flag", "--no-healthcheck", "checked"]);
    // A check every 200 ms would have run a few times by now.
    std::thread::sleep(Duration::from_millis(1000));
    for name in ["none", "flag"] {
        let inspect: serde_json::Value =
            serde_json::from_str(&c.ok(&["inspect", name])).expect("JSON");
        assert!(
            inspect[0]["Config"]["Healthcheck"].is_null(),
            "{name}: {inspect}"
        );
        assert_eq!(
            inspect[0]["State"]["Status"], "running",
            "{name}: {inspect}"
        );
        assert!(inspect[0]["State"]["Health"].is_null(), "{name}: {inspect}");
        let row = ps_row(&c, name);
        assert!(row.contains("Up ") && !row.contains("health"), "{row}");
    }
}

#[test]
fn bad_healthcheck_lines_are_one_error_each() {
    let c = Containers::new(&[(guests::SERVICE, "svc")]);
    let cases: &[(&str, &[&str])] = &[
        (
            "HEALTHCHECK --intervl=1s CMD [\"/c\"]",
            &[
                "Capsulefile:2:13",
                "unknown flag '--intervl' for HEALTHCHECK",
            ],
        ),
        (
            "HEALTHCHECK --interval=1s",
            &["Capsulefile:2:26", "HEALTHCHECK needs CMD or NONE"],
        ),
        (
            "HEALTHCHECK --timeout=fast CMD [\"/c\"]",
            &["Capsulefile:2:23", "invalid duration 'fast'"],
        ),
        (
            "HEALTHCHECK --retries=0 CMD [\"/c\"]",
            &["Capsulefile:2:23", "--retries '0'", "at least 1"],
        ),
        (
            "HEALTHCHECK CMD [\"/a\"] CMD [\"/b\"]",
            &["Capsulefile:2:17", "HEALTHCHECK CMD takes one command"],
        ),
        (
            "HEALTHCHECK /c",
            &["Capsulefile:2:13", "expects CMD or NONE"],
        ),
        (
            "LABEL io.capsule.healthcheck=nonsense",
            &["Capsulefile:2:1", "io.capsule.healthcheck", "HEALTHCHECK"],
        ),
    ];
    for (line, needles) in cases {
        c.env
            .write("bad/Capsulefile", format!("FROM svc\n{line}\n"));
        let out = c.env.run(&["build", "-t", "bad", "bad"]);
        assert_ne!(out.code, Some(0), "{line}");
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("capsule: "))
            .collect();
        assert_eq!(errors.len(), 1, "{line}:\n{}", out.stderr);
        for needle in *needles {
            assert!(
                errors[0].contains(needle),
                "{line}: {needle:?} in {}",
                errors[0]
            );
        }
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    assert_eq!(
        c.ok(&["images", "-q", "bad"]).trim(),
        "",
        "nothing was named"
    );
}

/// `capsule compose ARGS` in the project directory `demo/`.
fn compose(c: &Containers, args: &[&str]) -> std::process::Command {
    let mut cmd = c.env.capsule();
    cmd.current_dir(c.env.work().join("demo"))
        .arg("compose")
        .args(args);
    cmd
}

/// A compose project whose `api` waits for `db` to be healthy; `db`'s check looks for
/// `PATH`, with these timings.
fn healthy_project(path: &str, timings: &str) -> Containers {
    let c = Containers::new(&[(guests::SERVICE, "svc")]);
    c.env.write(
        "demo/compose.toml",
        format!(
            r#"
[services.db]
image = "svc"
command = "tick 0 200"
healthcheck = {{ test = ["CMD", "/service.wasm", "exists", "{path}"], timeout = "1s", {timings} }}

[services.api]
image = "svc"
command = "tick 0 200"
depends_on = {{ db = {{ condition = "service_healthy" }} }}
"#
        ),
    );
    c
}

/// Waits for a child, killing it after `limit` (failing the test with what it
/// printed).
fn finish(child: Proc, limit: Duration) -> Run {
    let out = child.wait_within(limit);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn compose_starts_a_dependent_only_once_its_dependency_is_healthy() {
    // Checked every 200 ms until it is first healthy (its start period), then every
    // 30 s: its log's last result stays the first that passed.
    let c = healthy_project(
        "/ok",
        r#"start_period = "60s", start_interval = "200ms", interval = "30s""#,
    );
    let child = Proc::spawn(&mut compose(&c, &["up", "-d"]));
    // db runs and is checked (and fails), and api is not made while it waits.
    c.wait_for("demo-db-1", "checked twice", |s| {
        s["Status"] == "running" && s["Health"]["Log"].as_array().is_some_and(|l| l.len() >= 2)
    });
    assert_eq!(c.state("demo-db-1")["Health"]["Status"], "starting");
    assert_ne!(
        c.env.run(&["inspect", "demo-api-1"]).code,
        Some(0),
        "api was made before db was healthy"
    );
    c.ok(&["exec", "demo-db-1", "/service.wasm", "write", "/ok", "x"]);
    let up = finish(child, Duration::from_secs(60));
    up.assert_code(0);
    let at = |needle: &str| {
        up.stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", up.stderr))
    };
    assert!(
        at("demo-db-1  Started") < at("demo-db-1  Waiting"),
        "{}",
        up.stderr
    );
    assert!(
        at("demo-db-1  Waiting") < at("demo-db-1  Healthy"),
        "{}",
        up.stderr
    );
    assert!(
        at("demo-db-1  Healthy") < at("demo-api-1  Created"),
        "{}",
        up.stderr
    );
    // api started after db's first passing check (RFC 3339 with nanoseconds: they
    // compare as text).
    let db = c.state("demo-db-1");
    let passed = db["Health"]["Log"]
        .as_array()
        .and_then(|log| log.iter().find(|p| p["ExitCode"] == 0))
        .unwrap_or_else(|| panic!("no passing check: {db}"))["End"]
        .as_str()
        .expect("a time")
        .to_owned();
    c.wait_for("demo-api-1", "running", |s| s["Status"] == "running");
    let api_started = c.state("demo-api-1")["StartedAt"]
        .as_str()
        .expect("a time")
        .to_owned();
    assert!(
        passed < api_started,
        "db passed at {passed}, api started at {api_started}"
    );
    // An up with everything healthy goes straight through.
    let again = finish(
        Proc::spawn(&mut compose(&c, &["up", "-d"])),
        Duration::from_secs(60),
    );
    again.assert_code(0);
    assert!(
        again.stderr.contains("demo-db-1  Healthy"),
        "{}",
        again.stderr
    );
}

#[test]
fn compose_fails_on_an_unhealthy_dependency_and_on_one_without_a_check() {
    let c = healthy_project("/never", r#"interval = "200ms", retries = 2"#);
    let up = finish(
        Proc::spawn(&mut compose(&c, &["up", "-d"])),
        Duration::from_secs(60),
    );
    up.assert_code(1);
    let errors: Vec<&str> = up
        .stderr
        .lines()
        .filter(|l| l.starts_with("capsule: "))
        .collect();
    assert_eq!(
        errors,
        [
            "capsule: dependency failed to start: container demo-db-1 is unhealthy (its last \
             check exited 1) (service api waits for db to be healthy)"
        ],
        "{}",
        up.stderr
    );
    // What it started is left running, as Compose leaves it; api was never made.
    assert_eq!(c.state("demo-db-1")["Status"], "running");
    assert_ne!(c.env.run(&["inspect", "demo-api-1"]).code, Some(0));
    Run::of(&mut compose(&c, &["down"]), None).assert_code(0);

    // A dependency with no check at all is refused before anything is made.
    c.env.write(
        "demo/compose.toml",
        r#"
[services.db]
image = "svc"
command = "tick 0 200"

[services.api]
image = "svc"
depends_on = { db = { condition = "service_healthy" } }
"#,
    );
    Run::of(&mut compose(&c, &["up", "-d"]), None).assert_error(
        125,
        &["service api waits for db to be healthy, but db has no health check"],
    );
    assert_ne!(c.env.run(&["inspect", "demo-db-1"]).code, Some(0));
}

#[test]
fn bad_compose_healthchecks_are_one_error_where_they_are() {
    let c = Containers::new(&[(guests::SERVICE, "svc")]);
    let cases: &[(&str, &[&str])] = &[
        (
            "healthcheck = { test = [\"CMD\"] }",
            &["compose.toml:4:24: services.db: healthcheck.test"],
        ),
        (
            "healthcheck = { interval = \"soon\" }",
            &["compose.toml:4:28: services.db: healthcheck.interval: invalid duration 'soon'"],
        ),
        (
            "healthcheck = { retries = 0 }",
            &["compose.toml:4:27", "healthcheck.retries 0", "at least 1"],
        ),
        (
            "healthcheck = { test = [\"CMD\", \"/c\"], timout = \"1s\" }",
            &["compose.toml:4", "timout"],
        ),
        (
            "healthcheck = { disable = true }\n[services.api]\nimage = \"svc\"\n\
             depends_on = { db = { condition = \"service_healthy\" } }",
            &[
                "compose.toml:7:35: services.api.depends_on.db.condition",
                "db must be healthy first, but its healthcheck is turned off",
            ],
        ),
    ];
    for (line, needles) in cases {
        c.env.write(
            "demo/compose.toml",
            format!("[services.db]\nimage = \"svc\"\ncommand = \"tick 0 200\"\n{line}\n"),
        );
        for verb in [&["config"][..], &["up", "-d"]] {
            Run::of(&mut compose(&c, verb), None).assert_error(125, needles);
        }
    }
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "", "nothing was made");
}
