//! Volumes through the real binary: named volumes filled from the image and kept
//! across containers, anonymous volumes for an image's `VOLUME`, `--mount`,
//! `--read-only`, `volume rm`/`prune` respecting the containers that use a volume, and
//! bad input.

use capsule_tests::{TestEnv, guests};
use std::path::PathBuf;

/// A home with image `seeded`: the `files` guest as its entrypoint, and content at
/// `/data` (`seed.txt`, `sub/deep.txt`, and on Unix a symlink `link` pointing
/// outside `/data`), which is also a `VOLUME` of the image.
fn seeded_env() -> TestEnv {
    let env = TestEnv::new();
    let wasm = std::fs::read(guests::FILES).expect("read the files guest");
    env.write("ctx/files.wasm", wasm);
    env.write("ctx/data/seed.txt", "from the image");
    env.write("ctx/data/sub/deep.txt", "deep");
    #[cfg(unix)]
    std::os::unix::fs::symlink("../etc/motd", env.work().join("ctx/data/link"))
        .expect("make a symlink in the context");
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY files.wasm /bin/files.wasm\nCOPY data /data\nVOLUME /data\nENTRYPOINT [\"/bin/files.wasm\"]\n",
    );
    env.run(&["build", "-t", "seeded", "ctx"]).assert_code(0);
    env
}

fn ok(env: &TestEnv, args: &[&str]) -> String {
    let run = env.run(args);
    run.assert_code(0);
    run.stdout
}

fn volume_names(env: &TestEnv) -> Vec<String> {
    ok(env, &["volume", "ls", "-q"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn data_dir(env: &TestEnv, volume: &str) -> PathBuf {
    env.home().join("volumes").join(volume).join("_data")
}

fn inspect(env: &TestEnv, container: &str) -> serde_json::Value {
    let out = ok(env, &["inspect", container]);
    let value: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
    value[0].clone()
}

fn seeded_listing() -> &'static str {
    if cfg!(unix) {
        "link\nseed.txt\nsub\n"
    } else {
        "seed.txt\nsub\n"
    }
}

#[test]
fn a_named_volume_is_filled_from_the_image_and_outlives_its_containers() {
    let env = seeded_env();
    // First use creates the volume and fills it from the image's /data.
    assert_eq!(
        ok(
            &env,
            &[
                "run", "--name", "first", "-v", "db:/data", "seeded", "ls", "/data"
            ]
        ),
        seeded_listing()
    );
    assert_eq!(
        ok(
            &env,
            &[
                "run",
                "--rm",
                "-v",
                "db:/data",
                "seeded",
                "read",
                "/data/sub/deep.txt"
            ]
        ),
        "deep"
    );
    let data = data_dir(&env, "db");
    assert_eq!(
        std::fs::read_to_string(data.join("seed.txt")).expect("seeded file on the host"),
        "from the image"
    );
    #[cfg(unix)]
    {
        // The symlink is copied as a symlink, never followed.
        let meta = std::fs::symlink_metadata(data.join("link")).expect("link copied");
        assert!(meta.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(data.join("link")).expect("readlink"),
            PathBuf::from("../etc/motd")
        );
    }
    // inspect shows the volume by name.
    let mounts = inspect(&env, "first")["Mounts"].clone();
    let db = mounts
        .as_array()
        .expect("Mounts")
        .iter()
        .find(|m| m["Destination"] == "/data")
        .unwrap_or_else(|| panic!("no /data mount: {mounts}"));
    assert_eq!(db["Type"], "volume", "{mounts}");
    assert_eq!(db["Name"], "db", "{mounts}");
    assert!(
        ok(&env, &["ps", "-a", "--format", "json"]).contains("\"Mounts\":\"db\""),
        "ps shows the volume"
    );

    // Data written by one container is read by the next, after the first is removed;
    // a volume that is not empty is not filled again.
    ok(
        &env,
        &[
            "run",
            "--name",
            "writer",
            "-v",
            "db:/data",
            "seeded",
            "write",
            "/data/seed.txt",
            "changed",
        ],
    );
    ok(&env, &["rm", "first", "writer"]);
    assert!(volume_names(&env).contains(&"db".to_owned()));
    assert_eq!(
        ok(
            &env,
            &[
                "run",
                "--rm",
                "-v",
                "db:/data",
                "seeded",
                "read",
                "/data/seed.txt"
            ]
        ),
        "changed"
    );
    let info: serde_json::Value =
        serde_json::from_str(&ok(&env, &["volume", "inspect", "db"])).expect("JSON");
    assert_eq!(info[0]["Name"], "db");
    assert_eq!(info[0]["Driver"], "local");
    assert_eq!(
        PathBuf::from(info[0]["Mountpoint"].as_str().expect("Mountpoint")),
        data
    );
}

#[test]
fn containers_racing_to_create_one_volume_fill_it_once() {
    let env = seeded_env();
    let children: Vec<_> = (0..4)
        .map(|_| {
            capsule_tests::Proc::spawn(env.capsule().args([
                "run",
                "--rm",
                "-v",
                "race:/data",
                "seeded",
                "ls",
                "/data",
            ]))
        })
        .collect();
    for child in children {
        let out = child.wait();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), seeded_listing());
    }
    let mut names: Vec<String> = std::fs::read_dir(data_dir(&env, "race"))
        .expect("volume data")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.join("\n") + "\n", seeded_listing());
    let volume_dir = env.home().join("volumes").join("race");
    let mut inside: Vec<String> = std::fs::read_dir(&volume_dir)
        .expect("volume dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["_data", "volume.json"], "nothing left over");
}

#[test]
fn volume_rm_refuses_a_volume_in_use_and_changes_nothing() {
    let env = seeded_env();
    // A created (never started) container uses the volume as much as a running one.
    ok(
        &env,
        &[
            "create",
            "--name",
            "holder",
            "-v",
            "keep:/data",
            "seeded",
            "ls",
            "/data",
        ],
    );
    std::fs::write(data_dir(&env, "keep").join("mine.txt"), "precious").expect("write");
    env.run(&["volume", "rm", "keep"])
        .assert_error(1, &["volume keep is in use by container holder"]);
    assert!(volume_names(&env).contains(&"keep".to_owned()));
    assert_eq!(
        std::fs::read_to_string(data_dir(&env, "keep").join("mine.txt")).expect("kept"),
        "precious"
    );
    // Neither prune touches it.
    ok(&env, &["volume", "prune", "-a", "-f"]);
    assert!(volume_names(&env).contains(&"keep".to_owned()));
    ok(&env, &["rm", "holder"]);
    assert_eq!(ok(&env, &["volume", "rm", "keep"]), "keep\n");
    assert!(!volume_names(&env).contains(&"keep".to_owned()));
    assert!(!env.home().join("volumes").join("keep").exists());
    env.run(&["volume", "rm", "keep"])
        .assert_error(1, &["no such volume: keep"]);
}

#[test]
fn read_only_root_refuses_writes_but_mounts_and_tmp_take_them() {
    let env = seeded_env();
    let run = env.run(&[
        "run",
        "--rm",
        "--read-only",
        "seeded",
        "write",
        "/x.txt",
        "y",
    ]);
    run.assert_code(1);
    assert!(run.stdout.contains("EROFS"), "{}", run.stdout);
    // Files of the image cannot be changed either.
    let run = env.run(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        "rw:/other",
        "seeded",
        "write",
        "/bin/files.wasm",
        "y",
    ]);
    run.assert_code(1);
    assert!(run.stdout.contains("EROFS"), "{}", run.stdout);
    ok(
        &env,
        &[
            "run",
            "--rm",
            "--read-only",
            "seeded",
            "write",
            "/tmp/x.txt",
            "y",
        ],
    );
    ok(
        &env,
        &[
            "run",
            "--rm",
            "--read-only",
            "-v",
            "rw:/other",
            "seeded",
            "write",
            "/other/x",
            "y",
        ],
    );
    // The image's VOLUME is writable too, and the workdir is made before / is sealed.
    ok(
        &env,
        &[
            "run",
            "--name",
            "ro",
            "--read-only",
            "-w",
            "/srv/app",
            "seeded",
            "write",
            "/data/x",
            "y",
        ],
    );
    assert_eq!(inspect(&env, "ro")["HostConfig"]["ReadonlyRootfs"], true);
    // Without the flag the same write to / works.
    ok(&env, &["run", "--rm", "seeded", "write", "/x.txt", "y"]);
}

#[test]
fn mount_flags_in_docker_syntax() {
    let env = seeded_env();
    env.write("host/in.txt", "from the host");
    let host = env.work().join("host").display().to_string();
    // bind, read-only: reads work, writes are refused.
    let ro = format!("type=bind,source={host},target=/h,readonly");
    assert_eq!(
        ok(
            &env,
            &["run", "--rm", "--mount", &ro, "seeded", "read", "/h/in.txt"]
        ),
        "from the host"
    );
    let run = env.run(&[
        "run", "--rm", "--mount", &ro, "seeded", "write", "/h/new", "x",
    ]);
    run.assert_code(1);
    assert!(run.stdout.contains("EROFS"), "{}", run.stdout);
    // bind with a relative source and the short keys: writes reach the host.
    ok(
        &env,
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,src=./host,dst=/h",
            "seeded",
            "write",
            "/h/new",
            "x",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(env.work().join("host/new")).expect("written"),
        "x"
    );
    // volume (the default type), filled from the image; then read-only.
    assert_eq!(
        ok(
            &env,
            &[
                "run",
                "--rm",
                "--mount",
                "source=vm,destination=/data",
                "seeded",
                "ls",
                "/data"
            ]
        ),
        seeded_listing()
    );
    let run = env.run(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=vm,dst=/data,ro",
        "seeded",
        "write",
        "/data/n",
        "x",
    ]);
    run.assert_code(1);
    assert!(run.stdout.contains("EROFS"), "{}", run.stdout);
    // volume-nocopy: a new volume stays empty.
    assert_eq!(
        ok(
            &env,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,src=bare,dst=/data,volume-nocopy",
                "seeded",
                "ls",
                "/data",
            ]
        ),
        ""
    );
    // tmpfs with a size: small writes fit, a big one is refused.
    ok(
        &env,
        &[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,target=/scratch,tmpfs-size=4k",
            "seeded",
            "write",
            "/scratch/a",
            "small",
        ],
    );
    let big = "x".repeat(8192);
    let run = env.run(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/scratch,tmpfs-size=4k",
        "seeded",
        "write",
        "/scratch/a",
        &big,
    ]);
    assert_ne!(run.code, Some(0), "an 8 KiB write fits a 4 KiB tmpfs");
    // -v and --mount at one path are refused.
    env.run(&[
        "run",
        "--rm",
        "-v",
        "vm:/data",
        "--mount",
        "src=vm,dst=/data",
        "seeded",
        "ls",
        "/",
    ])
    .assert_error(125, &["/data", "-v vm:/data", "--mount src=vm,dst=/data"]);
}

#[test]
fn anonymous_volumes_for_the_image_and_rm_v() {
    let env = seeded_env();
    // The image's VOLUME /data gets a fresh volume, filled from the image.
    assert_eq!(
        ok(&env, &["run", "--name", "anon", "seeded", "ls", "/data"]),
        seeded_listing()
    );
    let names = volume_names(&env);
    assert_eq!(names.len(), 1, "{names:?}");
    let anon = names[0].clone();
    assert!(
        anon.len() == 64 && anon.bytes().all(|b| b.is_ascii_hexdigit()),
        "{anon}"
    );
    let mounts = inspect(&env, "anon")["Mounts"].clone();
    assert!(
        mounts
            .as_array()
            .expect("Mounts")
            .iter()
            .any(|m| m["Type"] == "volume" && m["Name"] == anon.as_str()),
        "{mounts}"
    );
    // rm -v removes it.
    ok(&env, &["rm", "-v", "anon"]);
    assert!(volume_names(&env).is_empty());
    // rm without -v keeps it, and volume prune removes it once unused.
    ok(
        &env,
        &["run", "--name", "kept", "seeded", "write", "/data/x", "y"],
    );
    ok(&env, &["rm", "kept"]);
    assert_eq!(volume_names(&env).len(), 1);
    // run --rm removes its anonymous volumes; -v /path makes one more.
    ok(
        &env,
        &["run", "--rm", "-v", "/extra", "seeded", "ls", "/extra"],
    );
    assert_eq!(volume_names(&env).len(), 1);
    // A named volume at the VOLUME's path replaces the anonymous one.
    ok(
        &env,
        &["run", "--rm", "-v", "named:/data", "seeded", "ls", "/data"],
    );
    assert_eq!(volume_names(&env).len(), 2);
    let pruned = ok(&env, &["volume", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Volumes:"), "{pruned}");
    assert_eq!(volume_names(&env), ["named"], "prune keeps named volumes");
    ok(&env, &["volume", "prune", "-a", "-f"]);
    assert!(volume_names(&env).is_empty());
}

#[test]
fn volume_create_ls_inspect() {
    let env = seeded_env();
    assert_eq!(ok(&env, &["volume", "create", "made"]), "made\n");
    // Creating it again finds it, as Docker does.
    std::fs::write(data_dir(&env, "made").join("f"), "kept").expect("write");
    assert_eq!(ok(&env, &["volume", "create", "made"]), "made\n");
    assert!(data_dir(&env, "made").join("f").exists());
    let random = ok(&env, &["volume", "create", "--label", "team=a"]);
    assert_eq!(random.trim().len(), 64, "{random}");
    let ls = ok(&env, &["volume", "ls"]);
    assert!(
        ls.starts_with("DRIVER") && ls.contains("local     made"),
        "{ls}"
    );
    assert_eq!(
        ok(&env, &["volume", "ls", "-q", "--filter", "label=team=a"]).trim(),
        random.trim()
    );
    // system df counts them: two, none in use, the 4 bytes of `f`, all reclaimable.
    let df = ok(&env, &["system", "df"]);
    let row: Vec<&str> = df
        .lines()
        .find(|l| l.starts_with("Local Volumes"))
        .unwrap_or_else(|| panic!("no volumes row: {df}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[2..], ["2", "0", "4B", "4B", "(100%)"], "{df}");
    // A volume made with `volume create` is not anonymous: prune keeps it.
    ok(&env, &["volume", "prune", "-f"]);
    assert_eq!(volume_names(&env).len(), 2);
    // An existing (made) volume is not filled from the image: it is not empty.
    assert_eq!(
        ok(
            &env,
            &["run", "--rm", "-v", "made:/data", "seeded", "ls", "/data"]
        ),
        "f\n"
    );
    let json = ok(&env, &["volume", "ls", "--format", "json"]);
    assert!(
        json.lines().any(|l| l.contains("\"Name\":\"made\"")),
        "{json}"
    );
}

#[test]
fn bad_volume_input_is_one_clear_line_and_changes_nothing() {
    let env = seeded_env();
    for (args, needles) in [
        (
            vec!["run", "-v", "b:/x", "seeded", "ls", "/"],
            vec!["invalid volume name 'b'"],
        ),
        (
            vec!["run", "-v", "bad name:/x", "seeded", "ls", "/"],
            vec!["invalid volume name 'bad name'"],
        ),
        (
            vec!["run", "-v", "db:/x:rx", "seeded", "ls", "/"],
            vec!["unknown mode 'rx'"],
        ),
        (
            vec!["run", "-v", "db:x", "seeded", "ls", "/"],
            vec!["absolute"],
        ),
        (
            vec![
                "run",
                "--mount",
                "type=nfs,src=ab,dst=/x",
                "seeded",
                "ls",
                "/",
            ],
            vec!["unknown type 'nfs'"],
        ),
        (
            vec!["run", "--mount", "type=bind,target=/x", "seeded", "ls", "/"],
            vec!["type=bind needs source"],
        ),
        (
            vec!["run", "--mount", "src=ab", "seeded", "ls", "/"],
            vec!["target=PATH is required"],
        ),
        (
            vec![
                "run",
                "--mount",
                "src=ab,dst=/x,color=red",
                "seeded",
                "ls",
                "/",
            ],
            vec!["unknown field 'color'"],
        ),
        (
            vec![
                "run",
                "--mount",
                "src=ab,dst=/x,readonly=maybe",
                "seeded",
                "ls",
                "/",
            ],
            vec!["readonly=maybe"],
        ),
        (
            vec!["run", "--mount", "src=-ab,dst=/x", "seeded", "ls", "/"],
            vec!["invalid volume name '-ab'"],
        ),
        (
            vec!["run", "-v", "./missing-dir:/x", "seeded", "ls", "/"],
            vec!["./missing-dir does not exist"],
        ),
        (
            vec![
                "create",
                "--mount",
                "type=bind,src=./missing-dir,dst=/x",
                "seeded",
            ],
            vec!["./missing-dir does not exist"],
        ),
        (
            vec!["run", "-v", "db:/", "seeded", "ls", "/"],
            vec!["nothing can be mounted at /"],
        ),
        (
            vec!["run", "-v", "./any-dir:/", "seeded", "ls", "/"],
            vec!["nothing can be mounted at /"],
        ),
        (
            vec!["run", "-v", "/anon", guests::FILES, "ls", "/"],
            vec!["invalid volume '/anon'", "anonymous volume"],
        ),
        (
            vec!["run", "-v", "named:/d", guests::FILES, "ls", "/"],
            vec!["-v named:/d", "a named volume", "image import"],
        ),
        (
            vec!["volume", "create", "a/b"],
            vec!["invalid volume name 'a/b'"],
        ),
        (
            vec!["volume", "create", "--driver", "nfs", "ab"],
            vec!["unknown volume driver 'nfs'"],
        ),
        (
            vec!["volume", "ls", "--filter", "size=1"],
            vec!["unknown filter 'size'"],
        ),
    ] {
        env.run(&args).assert_error(125, &needles);
    }
    // Nothing was created: no container, no volume.
    assert_eq!(ok(&env, &["ps", "-aq"]), "");
    assert!(volume_names(&env).is_empty());

    // A directory in the volumes that Capsule did not make whole is never overwritten;
    // what a cut-short removal left is cleaned by prune.
    let volumes = env.home().join("volumes");
    std::fs::create_dir_all(volumes.join("broken")).expect("mkdir");
    std::fs::write(volumes.join("broken/keep.txt"), "mine").expect("write");
    env.run(&["run", "-v", "broken:/data", "seeded", "ls", "/"])
        .assert_error(125, &["volume broken is damaged"]);
    assert_eq!(
        std::fs::read_to_string(volumes.join("broken/keep.txt")).expect("kept"),
        "mine"
    );
    assert_eq!(ok(&env, &["ps", "-aq"]), "");
    std::fs::create_dir_all(volumes.join(".rm-old-1/_data")).expect("mkdir");
    ok(&env, &["volume", "prune", "-f"]);
    assert!(!volumes.join(".rm-old-1").exists());
    assert!(volumes.join("broken/keep.txt").exists());
}

#[test]
fn volume_rm_racing_a_new_container_never_takes_its_volume() {
    let env = seeded_env();
    for round in 0..6 {
        let name = format!("race{round}");
        let volume = format!("{name}:/data");
        ok(&env, &["volume", "create", &name]);
        let run = capsule_tests::Proc::spawn(env.capsule().args([
            "run", "--name", &name, "-v", &volume, "seeded", "write", "/data/f", "y",
        ]));
        let rm = env.run(&["volume", "rm", &name]);
        let out = run.wait();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Either rm came first (and the run made the volume again) or it was refused:
        // the container's volume exists and holds what it wrote.
        assert!(
            rm.code == Some(0) || rm.stderr.contains("in use by container"),
            "round {round}: {rm:?}"
        );
        assert_eq!(
            std::fs::read_to_string(data_dir(&env, &name).join("f")).expect("written"),
            "y",
            "round {round}"
        );
        env.run(&["volume", "rm", &name])
            .assert_error(1, &["in use by container", &name]);
    }
}

#[test]
fn a_mount_under_a_directory_the_image_lacks_is_reached_through_it() {
    // Docker makes a mount point's missing directories; so does Capsule, in the
    // container's writable layer (the image has no /lib, nor /srv/a).
    let env = seeded_env();
    env.write("host/book.txt", "chapter one\n");
    let host = env.work().join("host");
    for (target, read) in [
        ("/lib/app", "/lib/app/book.txt"),
        ("/srv/a/b", "/srv/a/b/book.txt"),
    ] {
        let mount = format!("{}:{target}:ro", host.display());
        let out = ok(&env, &["run", "--rm", "-v", &mount, "seeded", "read", read]);
        assert_eq!(out, "chapter one\n", "{target}");
    }
    let tmpfs = ok(
        &env,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/var/cache/x",
            "seeded",
            "write",
            "/var/cache/x/f",
            "y",
        ],
    );
    assert!(tmpfs.contains("wrote 1 bytes"), "{tmpfs}");
}
