//! `capsule build`: recipes, the build cache (what it rebuilds and why), reproducible
//! digests, recipe errors with file:line:col, and a build killed mid-way.

use capsule_tests::{TestEnv, guests};

/// A context with a module and two data files.
fn context(env: &TestEnv) {
    env.write(
        "ctx/hello.wasm",
        std::fs::read(guests::examples::CATALOG).expect("guest"),
    );
    env.write("ctx/data/a.txt", "alpha\n");
    env.write("ctx/data/b.txt", "beta\n");
    env.write("ctx/app.conf", "title = \"T\"\ndata_dir = \"/srv/data\"\n");
}

const RECIPE: &str = "\
FROM scratch
COPY hello.wasm /usr/bin/catalog.wasm
COPY data/ /srv/data/
ENV APP_MODE=test
COPY app.conf /etc/app.conf
ENTRYPOINT [\"/usr/bin/catalog.wasm\"]
CMD [\"--config\", \"/etc/app.conf\"]
";

/// The step lines of a build's stderr: (text, CACHED or rebuilt reason).
fn steps(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            let text = l.split_once("] ").map_or(l, |(_, t)| t);
            match text.split_once("  ") {
                Some((t, rest)) => (t.to_owned(), rest.trim().to_owned()),
                None => (text.to_owned(), String::new()),
            }
        })
        .collect()
}

fn image_id(env: &TestEnv, name: &str) -> String {
    let out = env.run(&["images", "-q", "--no-trunc", name]);
    out.assert_code(0);
    out.stdout.trim().to_owned()
}

#[test]
fn cache_rebuilds_a_changed_step_and_everything_after_it() {
    let env = TestEnv::new();
    context(&env);
    env.write("ctx/Capsulefile", RECIPE);
    let first = env.run(&["build", "-t", "app", "ctx"]);
    first.assert_code(0);
    assert!(
        steps(&first.stderr)
            .iter()
            .skip(1)
            .all(|(_, o)| o.contains("first build")),
        "{}",
        first.stderr
    );
    let run = env.run(&["run", "--rm", "app"]);
    run.assert_code(0);
    assert!(run.stdout.contains("env APP_MODE=test"), "{}", run.stdout);
    assert!(run.stdout.contains("a.txt"), "{}", run.stdout);

    // No change: everything cached, same image.
    let id = image_id(&env, "app");
    let again = env.run(&["build", "-t", "app", "ctx"]);
    again.assert_code(0);
    assert!(
        steps(&again.stderr)
            .iter()
            .skip(1)
            .all(|(_, o)| o == "CACHED"),
        "{}",
        again.stderr
    );
    assert_eq!(image_id(&env, "app"), id);

    // Change the last COPY's input: only that step and the ones after it rebuild.
    env.write("ctx/app.conf", "title = \"T2\"\ndata_dir = \"/srv/data\"\n");
    let last = env.run(&["build", "-t", "app", "ctx"]);
    last.assert_code(0);
    let s = steps(&last.stderr);
    assert_eq!(s[1].1, "CACHED");
    assert_eq!(s[2].1, "CACHED");
    assert_eq!(s[3].1, "CACHED");
    assert!(
        s[4].1.contains("rebuilt: app.conf changed"),
        "{}",
        last.stderr
    );
    assert!(
        s[5].1.contains("an earlier step changed"),
        "{}",
        last.stderr
    );
    assert_ne!(image_id(&env, "app"), id);

    // Change an early COPY's input: everything after it rebuilds, and the miss names the file.
    env.write("ctx/data/b.txt", "beta, changed\n");
    let early = env.run(&["build", "-t", "app", "ctx"]);
    early.assert_code(0);
    let s = steps(&early.stderr);
    assert_eq!(s[1].1, "CACHED", "{}", early.stderr);
    assert!(
        s[2].1.contains("rebuilt: data/b.txt changed"),
        "{}",
        early.stderr
    );
    for (text, outcome) in &s[3..] {
        assert!(
            outcome.starts_with(|c: char| c.is_ascii_digit()),
            "{text}: {outcome}"
        );
    }

    // An added file is named as added.
    env.write("ctx/data/c.txt", "gamma\n");
    let added = env.run(&["build", "-t", "app", "ctx"]);
    assert!(
        steps(&added.stderr)[2].1.contains("data/c.txt added"),
        "{}",
        added.stderr
    );

    // --no-cache rebuilds every step and says so.
    let nocache = env.run(&["build", "--no-cache", "-t", "app", "ctx"]);
    nocache.assert_code(0);
    assert!(
        steps(&nocache.stderr)
            .iter()
            .skip(1)
            .all(|(_, o)| o.contains("--no-cache")),
        "{}",
        nocache.stderr
    );
}

#[test]
fn reordering_steps_changes_keys_and_a_changed_instruction_is_named() {
    let env = TestEnv::new();
    context(&env);
    env.write("ctx/Capsulefile", RECIPE);
    env.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    // Swap the two data COPYs: the first moved step misses (its parent differs).
    env.write(
        "ctx/Capsulefile",
        RECIPE.replace("COPY data/ /srv/data/\n", "").replace(
            "COPY app.conf /etc/app.conf\n",
            "COPY app.conf /etc/app.conf\nCOPY data/ /srv/data/\n",
        ),
    );
    let swapped = env.run(&["build", "-t", "app", "ctx"]);
    swapped.assert_code(0);
    let s = steps(&swapped.stderr);
    assert_eq!(s[1].1, "CACHED");
    assert!(
        s[2].1
            .contains("instruction changed (was: COPY data/ /srv/data/)"),
        "{}",
        swapped.stderr
    );
    assert!(
        s[3..].iter().all(|(_, o)| !o.contains("CACHED")),
        "{}",
        swapped.stderr
    );

    // A changed build argument is named through its ARG step.
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nARG MODE=one\nENV APP_MODE=$MODE\nCOPY hello.wasm /x.wasm\n",
    );
    env.run(&["build", "-t", "args", "ctx"]).assert_code(0);
    let changed = env.run(&["build", "-t", "args", "--build-arg", "MODE=two", "ctx"]);
    changed.assert_code(0);
    let s = steps(&changed.stderr);
    assert!(
        s[1].1.contains("instruction changed (was: ARG MODE=one)"),
        "{}",
        changed.stderr
    );
    assert_eq!(s[2].0, "ENV APP_MODE=two");
    let inspect = env.run(&["inspect", "args"]);
    assert!(
        inspect.stdout.contains("APP_MODE=two"),
        "{}",
        inspect.stdout
    );
}

#[test]
fn the_same_context_gives_the_same_digest_in_two_stores() {
    let a = TestEnv::new();
    let b = TestEnv::new();
    for env in [&a, &b] {
        context(env);
        env.write("ctx/Capsulefile", RECIPE);
    }
    // Different modification times on the second machine must not matter.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    b.write("ctx/data/a.txt", "alpha\n");
    a.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    b.run(&["build", "-t", "app:v2", "ctx"]).assert_code(0);
    let digest = |env: &TestEnv, name: &str| {
        let out = env.run(&["inspect", name]);
        out.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        (
            v[0]["Id"].as_str().expect("id").to_owned(),
            v[0]["Manifest"]["Digest"]
                .as_str()
                .expect("digest")
                .to_owned(),
        )
    };
    assert_eq!(digest(&a, "app"), digest(&b, "app:v2"));
    // SOURCE_DATE_EPOCH changes timestamps, and so the digest.
    capsule_tests::Run::of(
        a.capsule()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "-t", "dated", "ctx"]),
        None,
    )
    .assert_code(0);
    let dated = digest(&a, "dated");
    assert_ne!(dated, digest(&a, "app"));
    let inspect = a.run(&["inspect", "dated"]);
    assert!(
        inspect.stdout.contains("2023-11-14T22:13:20Z"),
        "{}",
        inspect.stdout
    );
}

#[test]
fn recipe_errors_name_file_line_and_column() {
    let env = TestEnv::new();
    context(&env);
    let cases: &[(&str, &[&str])] = &[
        (
            "FROM scratch\nCOPPY a /b\n",
            &["Capsulefile:2:1", "unknown instruction", "COPY"],
        ),
        ("COPY a /b\n", &["Capsulefile:1:1", "FROM"]),
        (
            "FROM scratch\nCOPY missing.txt /x\n",
            &["Capsulefile:2:6", "missing.txt", "not found"],
        ),
        (
            "FROM scratch\nRUN echo hi\n",
            &["Capsulefile:2:1", "shell form", "SHELL"],
        ),
        (
            "FROM scratch\nCOPY ../outside /x\n",
            &["Capsulefile:2:6", "outside the build context"],
        ),
        (
            "FROM nosuchimage\n",
            &["Capsulefile:1:1", "nosuchimage", "not found"],
        ),
        (
            "FROM scratch\nEXPOSE http\n",
            &["Capsulefile:2:8", "EXPOSE"],
        ),
        ("FROM scratch\nENV A=\"unterminated\n", &["Capsulefile:2"]),
        (
            "FROM scratch\nARG SIG=BOGUS\nSTOPSIGNAL $SIG\n",
            &["Capsulefile:3:12", "STOPSIGNAL", "invalid signal 'BOGUS'"],
        ),
    ];
    for (recipe, needles) in cases {
        env.write("ctx/Capsulefile", recipe);
        let out = env.run(&["build", "-t", "bad", "ctx"]);
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("capsule: "))
            .unwrap_or_else(|| panic!("no error for {recipe:?}:\n{}", out.stderr));
        assert_ne!(out.code, Some(0), "{recipe:?}");
        for needle in *needles {
            assert!(
                line.contains(needle),
                "{recipe:?}: error should mention {needle:?}: {line}"
            );
        }
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    // Nothing was named.
    let images = env.run(&["images", "-q", "bad"]);
    assert_eq!(images.stdout.trim(), "");
}

#[test]
fn ignore_file_globs_chmod_workdir_and_multi_stage() {
    let env = TestEnv::new();
    context(&env);
    env.write("ctx/data/skip.bak", "ignored\n");
    env.write("ctx/.capsuleignore", "# comment\n**/*.bak\n");
    env.write(
        "ctx/mk.wasm",
        std::fs::read(guests::examples::MKINDEX).expect("guest"),
    );
    env.write(
        "ctx/show.wasm",
        std::fs::read(guests::examples::SHOW).expect("guest"),
    );
    env.write(
        "ctx/Capsulefile",
        "\
# syntax=capsule
FROM scratch AS tools
COPY mk.wasm /tools/
COPY data/*.txt /src/pages/
WORKDIR /src
RUN [\"/tools/mk.wasm\", \"pages\", \"index.txt\"]

FROM scratch
COPY --chmod=755 show.wasm /app/show.wasm
COPY --from=tools /src/index.txt /app/data/
COPY --from=tools /src/pages/ \\
     /app/pages/
ENTRYPOINT [\"/app/show.wasm\"]
",
    );
    let out = env.run(&["build", "-t", "site", "ctx"]);
    out.assert_code(0);
    assert!(out.stderr.contains("indexed 2 files"), "{}", out.stderr);
    let run = env.run(&["run", "--rm", "site"]);
    run.assert_code(0);
    assert!(run.stdout.contains("a.txt: 1 words"), "{}", run.stdout);
    assert!(!run.stdout.contains("skip.bak"), "{}", run.stdout);
    let absent = env.run(&["run", "--rm", "site", "--exists", "/tools/mk.wasm"]);
    assert_eq!(absent.stdout.trim(), "no");
    let history = env.run(&["history", "--no-trunc", "site"]);
    assert!(
        history
            .stdout
            .contains("COPY --from=tools /src/pages/ /app/pages/"),
        "{}",
        history.stdout
    );
    // --target stops at a stage.
    let target = env.run(&["build", "--target", "tools", "-t", "tools-only", "ctx"]);
    target.assert_code(0);
    let exists = env.run(&[
        "run",
        "--rm",
        "--entrypoint",
        "/tools/mk.wasm",
        "tools-only",
        "/src/pages",
        "/tmp/x",
    ]);
    exists.assert_code(0);
}

#[test]
fn a_build_killed_mid_way_leaves_no_image_and_the_next_build_succeeds() {
    let env = TestEnv::new();
    env.wat(
        "ctx/spin.wasm",
        r#"(module (func (export "_start") (loop $l (br $l))) (memory (export "memory") 1))"#,
    );
    env.write("ctx/big.bin", vec![7u8; 4 << 20]);
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY big.bin /big.bin\nCOPY spin.wasm /spin.wasm\nRUN [\"/spin.wasm\"]\n",
    );
    let mut child =
        capsule_tests::Proc::spawn(env.capsule().args(["build", "-t", "killed", "ctx"]));
    // Wait until the RUN step is under way (its endless program started), then SIGKILL.
    child.wait_for_stderr("RUN");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(child.try_wait(), None, "the endless step ended");
    child.kill();

    assert_eq!(env.run(&["images", "-q", "killed"]).stdout.trim(), "");
    env.run(&["system", "check"]).assert_code(0);
    // The next build (without the endless step) succeeds, reusing what was cached,
    // and removes the killed build's work directory.
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY big.bin /big.bin\nCOPY spin.wasm /spin.wasm\n",
    );
    let next = env.run(&["build", "-t", "killed", "ctx"]);
    next.assert_code(0);
    assert!(steps(&next.stderr)[1].1 == "CACHED", "{}", next.stderr);
    assert_ne!(env.run(&["images", "-q", "killed"]).stdout.trim(), "");
    let tmp = env.home().join("tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "stale work directories: {leftovers:?}"
    );
}

#[test]
fn concurrent_builds_and_prunes_share_one_store_safely() {
    let env = TestEnv::new();
    context(&env);
    for i in 0..4 {
        env.write(
            &format!("ctx/Capsulefile.{i}"),
            format!("{RECIPE}ENV VARIANT={i}\nCOPY data/ /variant{i}/\n"),
        );
    }
    let mut children = Vec::new();
    for i in 0..4 {
        children.push(capsule_tests::Proc::spawn(env.capsule().args([
            "build",
            "-t",
            &format!("app:{i}"),
            "-f",
            &format!("ctx/Capsulefile.{i}"),
            "ctx",
        ])));
    }
    for _ in 0..3 {
        children.push(capsule_tests::Proc::spawn(
            env.capsule().args(["image", "prune", "-f"]),
        ));
    }
    for child in children {
        let out = child.wait();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..4 {
        let run = env.run(&["run", "--rm", &format!("app:{i}")]);
        run.assert_code(0);
        assert!(run.stdout.contains("APP_MODE=test"), "{}", run.stdout);
        let inspect = env.run(&["inspect", &format!("app:{i}")]);
        assert!(
            inspect.stdout.contains(&format!("VARIANT={i}")),
            "{}",
            inspect.stdout
        );
    }
    env.run(&["system", "check"]).assert_code(0);
}

#[test]
fn copy_into_an_existing_directory_and_platforms() {
    let env = TestEnv::new();
    context(&env);
    env.write(
        "base/hello.wasm",
        std::fs::read(guests::examples::SHOW).expect("guest"),
    );
    env.write("base/Capsulefile", "FROM --platform=wasi/wasm scratch\nCOPY hello.wasm /app/show.wasm\nENTRYPOINT [\"/app/show.wasm\"]\n");
    env.run(&["build", "-t", "base", "base"]).assert_code(0);
    // /app is a directory in the base: `COPY x /app` puts x inside it, as Docker does.
    env.write("ctx/Capsulefile", "FROM base\nCOPY app.conf /app\n");
    env.run(&["build", "-t", "child", "ctx"]).assert_code(0);
    let out = env.run(&["run", "--rm", "child", "--exists", "/app/app.conf"]);
    assert_eq!(out.stdout.trim(), "yes", "{}", out.stderr);
    env.write("ctx/Capsulefile", "FROM --platform=linux/amd64 scratch\n");
    let out = env.run(&["build", "ctx"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("Capsulefile:1:17") && out.stderr.contains("wasi/wasm"),
        "{}",
        out.stderr
    );
}

#[cfg(unix)]
#[test]
fn context_symlinks_cannot_reach_outside_the_context() {
    let env = TestEnv::new();
    context(&env);
    let secret = env.write("secret.txt", "host secret\n");
    std::os::unix::fs::symlink(&secret, env.work().join("ctx/link.txt")).expect("symlink");
    std::os::unix::fs::symlink(env.work(), env.work().join("ctx/up")).expect("symlink");
    // Through a symlinked directory: refused, nothing read.
    env.write("ctx/Capsulefile", "FROM scratch\nCOPY up/secret.txt /s\n");
    let out = env.run(&["build", "-t", "x", "ctx"]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("Capsulefile:2:6"), "{}", out.stderr);
    // A symlink is copied as a symlink (its text), never followed on the host.
    env.write("ctx/Capsulefile", "FROM scratch\nCOPY link.txt /etc/\n");
    env.run(&["build", "-t", "x", "ctx"]).assert_code(0);
    let inspect = env.run(&["inspect", "x"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    let layer = v[0]["Manifest"]["Layers"][0]["Digest"]
        .as_str()
        .expect("digest");
    let blob = std::fs::read(
        env.home()
            .join("store/blobs/sha256")
            .join(&layer["sha256:".len()..]),
    )
    .expect("blob");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
    let mut found = false;
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        if entry.path().expect("path").ends_with("link.txt") {
            assert!(entry.header().entry_type().is_symlink());
            found = true;
        }
        let mut text = String::new();
        let mut entry = entry;
        std::io::Read::read_to_string(&mut entry, &mut text).ok();
        assert!(!text.contains("host secret"));
    }
    assert!(found);
}

#[test]
fn builder_prune_forgets_every_step() {
    let env = TestEnv::new();
    context(&env);
    env.write("ctx/Capsulefile", RECIPE);
    env.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    let df = env.run(&["system", "df"]);
    let cache_line = df
        .stdout
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .expect("row")
        .to_owned();
    assert!(
        cache_line.split_whitespace().nth(2) == Some("6"),
        "{}",
        df.stdout
    );
    env.run(&["builder", "prune"]).assert_error(125, &["-f"]);
    let prune = env.run(&["builder", "prune", "-f"]);
    prune.assert_code(0);
    assert!(
        prune.stdout.contains("Total reclaimed space"),
        "{}",
        prune.stdout
    );
    let again = env.run(&["build", "-t", "app", "ctx"]);
    again.assert_code(0);
    assert!(
        steps(&again.stderr)
            .iter()
            .skip(1)
            .all(|(_, o)| o.contains("first build")),
        "{}",
        again.stderr
    );
    // The image itself was untouched and still runs.
    env.run(&["run", "--rm", "app"]).assert_code(0);
}

#[test]
fn remembered_hashes_never_hide_an_edit() {
    let env = TestEnv::new();
    context(&env);
    env.write("ctx/Capsulefile", RECIPE);
    // Files last written an hour ago: their hashes are remembered and reused.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for file in [
        "ctx/data/a.txt",
        "ctx/data/b.txt",
        "ctx/app.conf",
        "ctx/hello.wasm",
    ] {
        std::fs::File::options()
            .write(true)
            .open(env.work().join(file))
            .and_then(|f| f.set_modified(hour_ago))
            .expect("set mtime");
    }
    env.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    let hashes = std::fs::read_dir(env.home().join("cache/build/hashes"))
        .expect("hashes dir")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect::<String>();
    assert!(hashes.contains("data/a.txt"), "{hashes}");
    let again = env.run(&["build", "-t", "app", "ctx"]);
    assert!(
        steps(&again.stderr)
            .iter()
            .skip(1)
            .all(|(_, o)| o == "CACHED"),
        "{}",
        again.stderr
    );
    // An edit of the same size (a new mtime) is seen.
    env.write("ctx/data/a.txt", "alphA\n");
    let edited = env.run(&["build", "-t", "app", "ctx"]);
    edited.assert_code(0);
    assert!(
        steps(&edited.stderr)[2].1.contains("data/a.txt changed"),
        "{}",
        edited.stderr
    );
}

#[test]
fn env_values_on_one_line_see_the_environment_before_it_as_in_docker() {
    let env = TestEnv::new();
    context(&env);
    // The example of Docker's reference ("Environment replacement").
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n",
    );
    env.run(&["build", "-t", "envs", "ctx"]).assert_code(0);
    let inspect = env.run(&["inspect", "envs"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    assert_eq!(
        v[0]["Config"]["Env"],
        serde_json::json!(["abc=bye", "def=hello", "ghi=bye"])
    );
}
