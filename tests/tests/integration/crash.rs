//! Crash consistency at chosen points: the tests' `capsule` binary has crash points
//! (`CAPSULE_FAILPOINT`, see `runtime/src/failpoint.rs`) where it dies at once, as if
//! killed. After each crash `system check` passes, the index still names exactly the
//! images that were complete, no temporary file is left once `image prune` has run,
//! and doing the same thing again succeeds.

use capsule_tests::{Run, TestEnv, guests};
use std::path::Path;

/// Runs `capsule ARGS` with the crash point `point` armed; it must die there.
fn crash(env: &TestEnv, point: &str, args: &[&str]) {
    let run = Run::of(
        env.capsule().env("CAPSULE_FAILPOINT", point).args(args),
        None,
    );
    assert_eq!(
        run.code, None,
        "capsule {args:?} should have died at the crash point {point:?} (is the binary built \
         with --features capsule-runtime/failpoints?)\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout, run.stderr
    );
}

/// Every `*.tmp` file below `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "tmp") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// What must hold after any crash: the store checks out, the image list is readable,
/// and pruning leaves no temporary file behind. (A temporary file of the layer cache
/// is removed only once it is an hour old, since runs write there without the GC lock:
/// the ones the crash left are aged by two hours first.)
fn after_crash(env: &TestEnv) {
    let check = env.run(&["system", "check"]);
    check.assert_code(0);
    assert!(check.stdout.starts_with("ok: "), "{}", check.stdout);
    env.run(&["images"]).assert_code(0);
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for tmp in temp_files(&env.home().join("cache/layers")) {
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("age a temporary file of the layer cache");
    }
    env.run(&["image", "prune", "-f"]).assert_code(0);
    let left = temp_files(env.home());
    assert!(
        left.is_empty(),
        "temporary files left after prune: {left:?}"
    );
    env.run(&["system", "check"]).assert_code(0);
}

/// A build context whose one layer holds two files, so that `layer-write` (after the
/// first file) kills the build in the middle of the layer.
fn context(env: &TestEnv) {
    env.write(
        "ctx/app.wasm",
        std::fs::read(guests::ARGS).expect("the args guest"),
    );
    env.write("ctx/data/a.txt", "a\n");
    env.write("ctx/data/b.txt", vec![b'b'; 1 << 20]);
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY data /data/\nCOPY app.wasm /app.wasm\nENTRYPOINT [\"/app.wasm\"]\n",
    );
}

fn image_ids(env: &TestEnv, name: &str) -> String {
    let ids = env.run(&["images", "-q", name]);
    ids.assert_code(0);
    ids.stdout.trim().to_owned()
}

#[test]
fn a_crash_while_writing_a_layer_leaves_no_image_and_a_sound_store() {
    let env = TestEnv::new();
    context(&env);
    crash(&env, "layer-write", &["build", "-t", "app", "ctx"]);
    assert_eq!(image_ids(&env, "app"), "", "a half-built image has a name");
    after_crash(&env);
    env.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    env.run(&["run", "--rm", "app", "hi"]).assert_code(0);
    env.run(&["system", "check"]).assert_code(0);
}

#[test]
fn a_crash_while_loading_leaves_no_image_and_the_next_load_succeeds() {
    let env = TestEnv::new();
    context(&env);
    env.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    env.run(&["save", "-o", "app.tar", "app"]).assert_code(0);
    env.run(&["rmi", "app"]).assert_code(0);
    env.run(&["image", "prune", "-f"]).assert_code(0);
    crash(&env, "load", &["load", "-i", "app.tar"]);
    assert_eq!(image_ids(&env, "app"), "", "a half-loaded image has a name");
    after_crash(&env);
    env.run(&["load", "-i", "app.tar"]).assert_code(0);
    env.run(&["run", "--rm", "app", "hi"]).assert_code(0);
}

#[test]
fn a_crash_while_pruning_keeps_every_named_image_whole() {
    let env = TestEnv::new();
    context(&env);
    env.run(&["build", "-t", "old", "ctx"]).assert_code(0);
    // Building `old` again from a changed context leaves its first image dangling: its
    // blobs are what prune removes.
    env.write("ctx/data/c.txt", "c\n");
    env.run(&["build", "-t", "old", "ctx"]).assert_code(0);
    env.run(&["tag", "old", "app"]).assert_code(0);
    crash(&env, "prune", &["image", "prune", "-f"]);
    assert_ne!(image_ids(&env, "app"), "");
    after_crash(&env);
    env.run(&["run", "--rm", "app", "hi"]).assert_code(0);
}

#[test]
fn a_crash_while_updating_the_index_keeps_the_old_index() {
    let env = TestEnv::new();
    context(&env);
    env.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    let id = image_ids(&env, "app");
    crash(&env, "index.json", &["tag", "app", "app:2"]);
    assert_eq!(
        image_ids(&env, "app:2"),
        "",
        "the new name was not published"
    );
    assert_eq!(image_ids(&env, "app"), id, "the old names are intact");
    after_crash(&env);
    env.run(&["tag", "app", "app:2"]).assert_code(0);
    assert_eq!(image_ids(&env, "app:2"), id);
}
