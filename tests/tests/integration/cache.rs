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

/// A module of more than a megabyte (a data segment) that prints `ready`: big enough for
/// `build`, `load` and `image import` to announce its compile.
fn big_module() -> Vec<u8> {
    let filler = "a".repeat(1_200_000);
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 32)
          (data (i32.const 16) "ready\n")
          (data (i32.const 64) "{filler}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 6))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ))
    .expect("wat")
}

/// The first run of `image` in `env`: it prints `ready` and compiles nothing.
#[track_caller]
fn first_run_finds_it_compiled(env: &TestEnv, image: &str) {
    let run = logged_run(env, &["run", "--rm", image]);
    run.assert_code(0);
    assert_eq!(run.stdout, "ready\n");
    assert!(
        run.stderr.contains("module cache hit") && !run.stderr.contains("module cache miss"),
        "the first run compiled:\n{}",
        run.stderr
    );
}

#[test]
fn images_arrive_compiled_for_their_first_run() {
    // build: the program is compiled, with a line before and after (no terminal).
    let source = TestEnv::new();
    source.write("ctx/big.wasm", big_module());
    source.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY big.wasm /bin/big.wasm\nCMD [\"/bin/big.wasm\"]\n",
    );
    let build = source.run(&["build", "-t", "big:1", "ctx"]);
    build.assert_code(0);
    assert!(
        build
            .stderr
            .contains("Compiling /bin/big.wasm (1.2MB) for this machine\n")
            && build.stderr.contains("Compiled /bin/big.wasm in "),
        "{}",
        build.stderr
    );
    let entries = cache_entries(&source);
    assert_eq!(
        entries.len(),
        2,
        "an entry and the image's alias: {entries:?}"
    );
    first_run_finds_it_compiled(&source, "big:1");
    // A second build (all cached) has nothing to compile and says nothing about it.
    let again = source.run(&["build", "-t", "big:1", "ctx"]);
    again.assert_code(0);
    assert!(!again.stderr.contains("Compil"), "{}", again.stderr);

    // load into a fresh home: compiled once, then found.
    source
        .run(&["save", "-o", "big.tar", "big:1"])
        .assert_code(0);
    let fresh = TestEnv::new();
    std::fs::copy(source.work().join("big.tar"), fresh.work().join("big.tar")).expect("copy");
    let load = fresh.run(&["load", "-i", "big.tar"]);
    load.assert_code(0);
    assert!(
        load.stderr
            .contains("Compiling /bin/big.wasm (1.2MB) for this machine"),
        "{}",
        load.stderr
    );
    first_run_finds_it_compiled(&fresh, "big:1");
    let reload = fresh.run(&["load", "-q", "-i", "big.tar"]);
    reload.assert_clean_success();

    // image import of a module file: the same.
    let imported = TestEnv::new();
    imported.write("big.wasm", big_module());
    let import = imported.run(&["image", "import", "big.wasm", "-t", "big:2"]);
    import.assert_code(0);
    assert!(
        import.stderr.contains("Compiled /big.wasm in "),
        "{}",
        import.stderr
    );
    first_run_finds_it_compiled(&imported, "big:2");
}

#[test]
fn an_image_whose_program_cannot_compile_arrives_with_one_warning() {
    let env = TestEnv::new();
    // A module header, then a code section that is not one.
    env.write(
        "ctx/bad.wasm",
        b"\0asm\x01\0\0\0\x0a\x05\x01\xff\xff\xff\xff",
    );
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY bad.wasm /bad.wasm\nCMD [\"/bad.wasm\"]\n",
    );
    let build = env.run(&["build", "-t", "bad:1", "ctx"]);
    build.assert_code(0);
    let warnings: Vec<&str> = build
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", build.stderr);
    assert!(
        warnings[0]
            .starts_with("warning: bad:1: its program was not compiled ahead of its first run: "),
        "{}",
        build.stderr
    );
    // The image is stored; its run says what is wrong, and fails.
    let run = env.run(&["run", "--rm", "bad:1"]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    // An image without a command has nothing to compile and says nothing.
    env.write("ctx2/data.txt", "data\n");
    env.write(
        "ctx2/Capsulefile",
        "FROM scratch\nCOPY data.txt /data.txt\n",
    );
    let quiet = env.run(&["build", "-q", "-t", "data:1", "ctx2"]);
    quiet.assert_clean_success();
}
