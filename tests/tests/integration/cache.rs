//! The compiled-module cache: reused, checked, rebuilt when damaged, safe under races.

use capsule_tests::{Run, TestEnv, guests};
use std::path::PathBuf;

fn logged_run(env: &TestEnv, args: &[&str]) -> Run {
    Run::of(
        env.capsule()
            .env("CAPSULE_LOG", "capsule_runtime=debug")
            .args(args),
        None,
    )
}

/// The cache's files, but the `.verified` records of checked entries.
fn cache_entries(env: &TestEnv) -> Vec<PathBuf> {
    let dir = env.home().join("cache/modules");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    entries.retain(|p| p.extension().is_none_or(|x| x != "verified"));
    entries.sort();
    entries
}

#[test]
fn second_run_uses_the_cache() {
    let env = TestEnv::new();
    let first = logged_run(&env, &["run", guests::ARGS, "one"]);
    first.assert_code(0);
    assert!(
        first.stderr.contains("module cache miss"),
        "{}",
        first.stderr
    );
    assert_eq!(cache_entries(&env).len(), 1);

    let second = logged_run(&env, &["run", guests::ARGS, "two"]);
    second.assert_code(0);
    assert!(
        second.stderr.contains("module cache hit"),
        "{}",
        second.stderr
    );
    assert!(second.stdout.contains("argv[1]=two"));
    assert_eq!(cache_entries(&env).len(), 1);

    // A different engine configuration is a different entry, never a wrong one.
    let other = logged_run(&env, &["run", "-W", "tail-call=n", guests::ARGS]);
    other.assert_code(0);
    assert!(
        other.stderr.contains("module cache miss"),
        "{}",
        other.stderr
    );
    assert_eq!(cache_entries(&env).len(), 2);
}

#[test]
fn corrupt_or_truncated_entries_are_rebuilt() {
    let env = TestEnv::new();
    logged_run(&env, &["run", guests::EXIT, "0"]).assert_code(0);
    // A load checks the digest and records that this file was checked.
    logged_run(&env, &["run", guests::EXIT, "0"]).assert_code(0);
    let entry = cache_entries(&env).pop().expect("one entry");
    let mut verified = entry.clone().into_os_string();
    verified.push(".verified");
    assert!(PathBuf::from(verified).is_file(), "the check is recorded");
    let good = std::fs::read(&entry).expect("read entry");

    // Flip a byte in the compiled code: the digest catches it.
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    std::fs::write(&entry, &corrupt).expect("corrupt");
    let run = logged_run(&env, &["run", guests::EXIT, "5"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("unusable") && run.stderr.contains("digest mismatch"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&entry).expect("reread"),
        good,
        "the entry was rewritten"
    );
    assert!(
        logged_run(&env, &["run", guests::EXIT, "0"])
            .stderr
            .contains("module cache hit")
    );

    // Truncated, empty and foreign files too.
    for damaged in [
        &good[..good.len() / 3],
        &b""[..],
        &b"not a cache entry at all, just text"[..],
    ] {
        std::fs::write(&entry, damaged).expect("damage");
        let run = logged_run(&env, &["run", guests::EXIT, "6"]);
        run.assert_code(6);
        assert!(run.stderr.contains("unusable"), "{}", run.stderr);
        assert_eq!(std::fs::read(&entry).expect("reread"), good);
    }
}

#[test]
fn concurrent_first_runs_fill_the_cache_safely() {
    let env = TestEnv::new();
    let children: Vec<_> = (0..6)
        .map(|i| {
            capsule_tests::Proc::spawn(env.capsule().args(["run", guests::ARGS, &i.to_string()]))
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait();
        assert!(
            out.status.success(),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("argv[1]={i}\n")));
    }
    let entries = cache_entries(&env);
    assert_eq!(
        entries.len(),
        1,
        "one entry, no temporary files left: {entries:?}"
    );
    let run = logged_run(&env, &["run", guests::ARGS]);
    run.assert_code(0);
    assert!(run.stderr.contains("module cache hit"), "{}", run.stderr);
}

#[test]
fn no_cache_flag_and_unwritable_home_still_run() {
    let env = TestEnv::new();
    let run = logged_run(&env, &["run", "--no-cache", "hello-world"]);
    run.assert_code(0);
    assert!(cache_entries(&env).is_empty(), "--no-cache stores nothing");

    // A home that cannot be created (a file is in the way) degrades to no cache.
    let blocked = env.write("blocked-home", "a file, not a directory");
    let run = Run::of(
        env.capsule()
            .env("CAPSULE_HOME", &blocked)
            .args(["run", "hello-world"]),
        None,
    );
    run.assert_code(0);
    assert!(run.stdout.contains("Hello from Capsule!"));
}
