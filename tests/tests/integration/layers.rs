//! `capsule run --layer`: read-only layers stacked under the root, OCI semantics, and a
//! container's writes kept out of the layers.

use capsule_tests::{TestEnv, guests};
use std::path::Path;

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(dir)
                .expect("below")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                stack.push(path);
                out.push((rel, Vec::new()));
            } else {
                out.push((rel, std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn layers_stack_with_overrides_whiteouts_and_opaque_directories() {
    let env = TestEnv::new();
    env.write("base/etc/app.conf", "base config\n");
    env.write("base/bin/tool", "tool\n");
    env.write("base/bin/old", "old\n");
    env.write("base/cache/a", "a\n");
    env.write("base/cache/b", "b\n");
    env.write("app/etc/app.conf", "app config\n");
    env.write("app/bin/.wh.old", "");
    env.write("app/cache/.wh..wh..opq", "");
    env.write("app/cache/fresh", "fresh\n");
    let base = env.work().join("base").display().to_string();
    let app = env.work().join("app").display().to_string();
    let run = |args: &[&str]| {
        let mut argv = vec!["run", "--layer", &base, "--layer", &app, guests::FILES];
        argv.extend_from_slice(args);
        env.run(&argv)
    };
    let conf = run(&["read", "/etc/app.conf"]);
    conf.assert_clean_success();
    assert_eq!(conf.stdout, "app config\n", "the higher layer wins");
    assert_eq!(
        run(&["read", "/bin/tool"]).stdout,
        "tool\n",
        "lower files show through"
    );
    let bin = run(&["ls", "/bin"]);
    assert_eq!(
        bin.stdout, "tool\n",
        "the whiteout hides old and never shows itself"
    );
    assert_eq!(
        run(&["ls", "/cache"]).stdout,
        "fresh\n",
        "the opaque directory hides everything below"
    );
    let root = run(&["ls", "/"]);
    assert_eq!(
        root.stdout, "bin\ncache\netc\ntmp\n",
        "merged directories list each name once"
    );
}

#[test]
fn writes_go_to_the_container_layer_never_into_the_layers() {
    let env = TestEnv::new();
    env.write("layer/etc/conf", "original\n");
    env.write("layer/data/keep", "keep\n");
    let layer = env.work().join("layer");
    let before = snapshot(&layer);
    let l = layer.display().to_string();
    env.run(&[
        "run",
        "--layer",
        &l,
        guests::FILES,
        "write",
        "/etc/conf",
        "changed",
    ])
    .assert_clean_success();
    env.run(&["run", "--layer", &l, guests::FILES, "rm", "/data/keep"])
        .assert_clean_success();
    env.run(&["run", "--layer", &l, guests::FILES, "mkdir", "/new"])
        .assert_clean_success();
    assert_eq!(
        snapshot(&layer),
        before,
        "layers are read-only: nothing under them changed"
    );
    // Each run is a fresh container over the same layers.
    let again = env.run(&["run", "--layer", &l, guests::FILES, "read", "/etc/conf"]);
    assert_eq!(again.stdout, "original\n");
}

#[test]
fn a_tar_layer_is_indexed_in_place() {
    let env = TestEnv::new();
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, data)
            .expect("append");
    };
    add("app/main.txt", b"from the tar\n");
    add("app/sub/deep.txt", b"deep\n");
    let bytes = builder.into_inner().expect("finish tar");
    let tar = env.write("layer.tar", bytes);
    let t = tar.display().to_string();
    let run = env.run(&[
        "run",
        "--layer",
        &t,
        "-w",
        "/app",
        guests::FILES,
        "read",
        "main.txt",
    ]);
    run.assert_clean_success();
    assert_eq!(
        run.stdout, "from the tar\n",
        "the workdir is inside the layer; relative paths resolve there"
    );
    let ls = env.run(&["run", "--layer", &t, guests::FILES, "ls", "/app/sub"]);
    assert_eq!(ls.stdout, "deep.txt\n");
}

#[test]
fn missing_or_bad_layers_are_clear_errors() {
    let env = TestEnv::new();
    env.run(&["run", "--layer", "/no/such/layer.tar", guests::ARGS])
        .assert_error(125, &["/no/such/layer.tar"]);
    let junk = env.write("junk.tar", vec![7u8; 1500]);
    env.run(&[
        "run",
        "--layer",
        junk.to_str().expect("utf-8"),
        guests::ARGS,
    ])
    .assert_error(125, &["junk.tar"]);
}

#[test]
fn tmpfs_mounts_have_a_size_cap() {
    let env = TestEnv::new();
    let big = "x".repeat(3000);
    let run = env.run(&[
        "run",
        "--tmpfs",
        "/scratch:size=2k",
        guests::FILES,
        "write",
        "/scratch/big",
        &big,
    ]);
    run.assert_code(1);
    assert!(
        run.stdout.contains("ENOSPC") || run.stdout.contains("errno=51"),
        "{}",
        run.stdout
    );
    let ok = env.run(&[
        "run",
        "--tmpfs",
        "/scratch:size=4k",
        guests::FILES,
        "write",
        "/scratch/big",
        &big,
    ]);
    ok.assert_clean_success();
    env.run(&["run", "--tmpfs", "scratch", guests::ARGS])
        .assert_error(125, &["invalid tmpfs"]);
}

#[test]
fn a_host_directory_mounted_at_root_is_the_whole_root() {
    let env = TestEnv::new();
    env.write("rootfs/etc/motd", "hello from a host root\n");
    let root = format!("{}:/", env.work().join("rootfs").display());
    let run = env.run(&["run", "-v", &root, guests::FILES, "read", "/etc/motd"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "hello from a host root\n");
    env.run(&["run", "-v", &root, guests::FILES, "write", "/etc/new", "x"])
        .assert_clean_success();
    assert_eq!(
        std::fs::read_to_string(env.work().join("rootfs/etc/new")).expect("written"),
        "x"
    );
    let ls = env.run(&["run", "-v", &root, guests::FILES, "ls", "/"]);
    assert_eq!(
        ls.stdout, "etc\ntmp\n",
        "/tmp is still a tmpfs over the host root"
    );
}

#[test]
fn a_chain_is_indexed_once_and_a_damaged_saved_index_is_rebuilt() {
    let env = TestEnv::new();
    let mut builder = tar::Builder::new(Vec::new());
    for i in 0..50 {
        let data = format!("file {i}\n");
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("data/f{i:02}"), data.as_bytes())
            .expect("append");
    }
    let tar = env.write("layer.tar", builder.into_inner().expect("finish"));
    let t = tar.display().to_string();
    let logged = |args: &[&str]| {
        capsule_tests::Run::of(
            env.capsule()
                .env("CAPSULE_LOG", "capsule_runtime=debug")
                .args(args),
            None,
        )
    };

    let first = logged(&["run", "--layer", &t, guests::FILES, "read", "/data/f07"]);
    first.assert_code(0);
    assert_eq!(first.stdout, "file 7\n");
    assert!(
        first.stderr.contains("layer index saved"),
        "{}",
        first.stderr
    );
    let second = logged(&["run", "--layer", &t, guests::FILES, "read", "/data/f42"]);
    assert_eq!(second.stdout, "file 42\n");
    assert!(
        second.stderr.contains("layer index loaded"),
        "{}",
        second.stderr
    );

    let dir = env.home().join("cache/layer-index");
    let saved: Vec<_> = std::fs::read_dir(&dir)
        .expect("index dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let mut bytes = std::fs::read(&saved[0]).expect("read index");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&saved[0], &bytes).expect("damage index");
    let third = logged(&["run", "--layer", &t, guests::FILES, "ls", "/data"]);
    third.assert_code(0);
    assert_eq!(third.stdout.lines().count(), 50);
    assert!(
        third.stderr.contains("unusable; rebuilding"),
        "{}",
        third.stderr
    );
    assert!(
        logged(&["run", "--layer", &t, guests::FILES, "read", "/data/f00"])
            .stderr
            .contains("layer index loaded")
    );

    // A changed layer is a different chain: never served from the old index.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "data/f07", &b"new\n"[..])
        .expect("append");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&tar, builder.into_inner().expect("finish")).expect("rewrite layer");
    let changed = logged(&["run", "--layer", &t, guests::FILES, "read", "/data/f07"]);
    assert_eq!(changed.stdout, "new\n", "{}", changed.stderr);
}
