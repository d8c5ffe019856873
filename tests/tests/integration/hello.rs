//! `capsule run hello-world`, `capsule version`, `capsule info`.

use capsule_tests::TestEnv;

#[test]
fn hello_world_runs_offline_and_explains_itself() {
    let env = TestEnv::new();
    let run = env.run(&["run", "hello-world"]);
    run.assert_clean_success();
    assert!(run.stdout.contains("Hello from Capsule!"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("To generate this message, Capsule took the following steps")
    );
    assert!(run.stdout.contains("module cache"));
}

#[test]
fn version_names_capsule_and_wasmtime() {
    let env = TestEnv::new();
    let run = env.run(&["version"]);
    run.assert_clean_success();
    assert!(
        run.stdout
            .starts_with(&format!("Capsule version {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Wasmtime:  48."), "{}", run.stdout);
    let flag = env.run(&["--version"]);
    flag.assert_clean_success();
    assert!(flag.stdout.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn info_reports_home_features_and_cache() {
    let env = TestEnv::new();
    let before = env.run(&["info"]);
    before.assert_clean_success();
    assert!(
        before
            .stdout
            .contains(&format!("Home:             {}", env.home().display())),
        "{}",
        before.stdout
    );
    assert!(
        before.stdout.contains("Cached modules:   0 (0 B)"),
        "{}",
        before.stdout
    );
    for feature in [
        "exceptions",
        "tail-call",
        "multi-value",
        "bulk-memory",
        "simd",
        "reference-types",
        "multi-memory",
    ] {
        let line = before
            .stdout
            .lines()
            .find(|l| l.contains("Wasm features:"))
            .expect("features line");
        assert!(
            line.split_whitespace().any(|w| w == feature),
            "{feature} missing from {line}"
        );
    }

    env.run(&["run", "hello-world"]).assert_code(0);
    let after = env.run(&["info", "--format", "json"]);
    after.assert_clean_success();
    let json: serde_json::Value =
        serde_json::from_str(&after.stdout).expect("info --format json is JSON");
    assert_eq!(json["module_cache"]["entries"], 1, "{}", after.stdout);
    assert!(json["module_cache"]["bytes"].as_u64().unwrap_or(0) > 0);
    assert_eq!(json["home"], env.home().display().to_string());
    assert!(
        json["wasmtime_version"]
            .as_str()
            .unwrap_or("")
            .starts_with("48.")
    );
}
