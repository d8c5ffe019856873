//! Images: import, tag, rmi, inspect, history, save → load into a fresh store, the
//! saved layout checked by independent tools (skopeo, umoci), `system check`, hostile
//! archives, and `run IMAGE` with Docker's overrides.

use capsule_tests::rawtar::{E, tar};
use capsule_tests::{TestEnv, guests, tool};
use std::process::Command;

fn import_catalog(env: &TestEnv, name: &str) {
    env.write(
        "catalog.wasm",
        std::fs::read(guests::examples::CATALOG).expect("guest"),
    );
    env.run(&["image", "import", "catalog.wasm", "-t", name])
        .assert_code(0);
}

#[test]
fn import_tag_inspect_history_and_rmi() {
    let env = TestEnv::new();
    import_catalog(&env, "cat:1");
    env.run(&["tag", "cat:1", "cat:latest"])
        .assert_clean_success();
    let images = env.run(&["images"]);
    images.assert_clean_success();
    let lines: Vec<&str> = images.stdout.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG      IMAGE ID       CREATED        SIZE"),
        "{}",
        images.stdout
    );
    assert_eq!(lines.len(), 3, "{}", images.stdout);
    let json = env.run(&["images", "--format", "json"]);
    for line in json.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(v["Repository"], "cat");
    }
    let inspect = env.run(&["inspect", "cat"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    assert_eq!(v[0]["Architecture"], "wasm");
    assert_eq!(v[0]["Os"], "wasip1");
    assert_eq!(v[0]["Config"]["Entrypoint"][0], "/catalog.wasm");
    let id = v[0]["Id"].as_str().expect("id").to_owned();
    // Short IDs resolve.
    let by_id = env.run(&["inspect", &id["sha256:".len().."sha256:".len() + 8]]);
    by_id.assert_code(0);
    let history = env.run(&["history", "cat:1"]);
    assert!(
        history.stdout.contains("capsule image import catalog.wasm"),
        "{}",
        history.stdout
    );
    // rmi of one name keeps the image; of an ID with two names needs -f.
    let untag = env.run(&["rmi", "cat:latest"]);
    untag.assert_code(0);
    assert!(
        untag.stdout.contains("Untagged: cat:latest"),
        "{}",
        untag.stdout
    );
    env.run(&["tag", "cat:1", "cat:2"]).assert_code(0);
    let refused = env.run(&["rmi", &id]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("several names"),
        "{}",
        refused.stderr
    );
    let removed = env.run(&["rmi", "-f", &id]);
    removed.assert_code(0);
    assert!(
        removed.stdout.contains("Deleted: sha256:"),
        "{}",
        removed.stdout
    );
    assert_eq!(env.run(&["images", "-q"]).stdout.trim(), "");
    // Its blobs are gone too.
    let blobs = std::fs::read_dir(env.home().join("store/blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(blobs, 0);
    env.run(&["rmi", "nosuch"]).assert_code(1);
    env.run(&["run", "nosuch"])
        .assert_error(127, &["nosuch", "capsule build"]);
}

#[test]
fn run_image_applies_docker_overrides() {
    let env = TestEnv::new();
    env.write(
        "ctx/catalog.wasm",
        std::fs::read(guests::examples::CATALOG).expect("guest"),
    );
    env.write(
        "ctx/conf.toml",
        "title = \"From image\"\ndata_dir = \"d\"\n",
    );
    env.write("ctx/d/x.txt", "x line\n");
    env.write("ctx/Capsulefile", "FROM scratch\nCOPY catalog.wasm /bin/catalog.wasm\nCOPY conf.toml /etc/\nCOPY d /srv/d/\nENV APP_MODE=image\nWORKDIR /srv\nENTRYPOINT [\"/bin/catalog.wasm\"]\nCMD [\"--config\", \"/etc/conf.toml\"]\n");
    env.run(&["build", "-t", "app", "ctx"]).assert_code(0);
    let out = env.run(&["run", "--rm", "app"]);
    out.assert_clean_success();
    assert!(
        out.stdout.contains("From image")
            && out.stdout.contains("APP_MODE=image")
            && out.stdout.contains("x.txt"),
        "{}",
        out.stdout
    );
    // -e overrides ENV; arguments replace CMD.
    let out = env.run(&["run", "--rm", "-e", "APP_MODE=flag", "app", "--help"]);
    out.assert_code(0);
    assert!(!out.stdout.contains("From image"), "{}", out.stdout);
    let out = env.run(&[
        "run",
        "--rm",
        "-e",
        "APP_MODE=flag",
        "app",
        "--config",
        "/etc/conf.toml",
    ]);
    assert!(out.stdout.contains("APP_MODE=flag"), "{}", out.stdout);
    // --entrypoint drops CMD; -w changes the workdir (data_dir "d" no longer resolves).
    let out = env.run(&["run", "--rm", "-w", "/", "app"]);
    out.assert_code(1);
    assert_eq!(
        out.stderr, "catalog: cannot list d: No such file or directory (os error 44)\n",
        "the guest ran in / and its relative data_dir d did not resolve there"
    );
    // A container keeps its writable layer unless --rm.
    let containers = env.home().join("containers");
    let before = std::fs::read_dir(&containers)
        .map(|d| d.count())
        .unwrap_or(0);
    env.run(&["run", "app"]).assert_code(0);
    assert_eq!(
        std::fs::read_dir(&containers).expect("containers").count(),
        before + 1
    );
    // An entrypoint that is not in the image is a clear error.
    env.run(&["run", "--rm", "--entrypoint", "/nope.wasm", "app"])
        .assert_error(126, &["/nope.wasm"]);
}

#[test]
fn hello_world_is_a_built_in_image_with_the_same_digest_everywhere() {
    let a = TestEnv::new();
    let b = TestEnv::new();
    for env in [&a, &b] {
        let out = env.run(&["run", "--rm", "hello-world"]);
        out.assert_clean_success();
        assert!(out.stdout.contains("Hello from Capsule!"));
    }
    let id = |env: &TestEnv| {
        env.run(&["images", "-q", "--no-trunc", "hello-world"])
            .stdout
    };
    assert_eq!(id(&a), id(&b));
    assert!(id(&a).starts_with("sha256:"));
}

#[test]
fn save_then_load_into_a_fresh_store_and_validate_with_skopeo_and_umoci() {
    let skopeo = tool("skopeo");
    let umoci = tool("umoci");
    let env = TestEnv::new();
    import_catalog(&env, "cat:1");
    env.run(&["run", "--rm", "hello-world"]).assert_code(0);
    let out = env.run(&["save", "-o", "both.tar", "cat:1", "hello-world"]);
    out.assert_code(0);
    let archive = env.work().join("both.tar");
    // skopeo reads each image by its tag from the OCI archive.
    let inspect = capsule_tests::output(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("oci-archive:{}:1", archive.display())),
    );
    assert!(
        inspect.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("json");
    assert_eq!(v["Architecture"], "wasm");
    assert_eq!(v["Os"], "wasip1");
    // umoci checks the layout and unpacks the layer.
    let layout = env.work().join("layout");
    std::fs::create_dir(&layout).expect("mkdir");
    let untar = capsule_tests::output(
        Command::new(capsule_tests::tool("tar"))
            .arg("xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout),
    );
    assert!(untar.status.success(), "{untar:?}");
    let stat = capsule_tests::output(
        Command::new(&umoci)
            .args(["stat", "--image"])
            .arg(format!("{}:1", layout.display())),
    );
    assert!(
        stat.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&stat.stderr)
    );
    let unpacked = env.work().join("bundle");
    let unpack = capsule_tests::output(
        Command::new(&umoci)
            .args(["raw", "unpack", "--rootless", "--image"])
            .arg(format!("{}:1", layout.display()))
            .arg(&unpacked),
    );
    assert!(
        unpack.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    assert_eq!(
        std::fs::read(unpacked.join("catalog.wasm")).expect("file"),
        std::fs::read(guests::examples::CATALOG).expect("guest")
    );

    // Load into a fresh store: same IDs, names, runnable.
    let fresh = TestEnv::new();
    std::fs::copy(&archive, fresh.work().join("both.tar")).expect("copy");
    let load = fresh.run(&["load", "-i", "both.tar"]);
    load.assert_code(0);
    assert!(
        load.stdout.contains("Loaded image: cat:1")
            && load.stdout.contains("Loaded image: hello-world:latest"),
        "{}",
        load.stdout
    );
    for name in ["cat:1", "hello-world"] {
        assert_eq!(
            env.run(&["images", "-q", "--no-trunc", name]).stdout,
            fresh.run(&["images", "-q", "--no-trunc", name]).stdout
        );
    }
    fresh
        .run(&["run", "--rm", "hello-world"])
        .assert_clean_success();
    fresh.run(&["system", "check"]).assert_code(0);
}

#[test]
fn system_check_quarantines_a_corrupt_blob() {
    let env = TestEnv::new();
    import_catalog(&env, "cat");
    env.run(&["system", "check"]).assert_code(0);
    let inspect = env.run(&["inspect", "cat"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    let layer = v[0]["Manifest"]["Layers"][0]["Digest"]
        .as_str()
        .expect("layer")
        .to_owned();
    let hex = &layer["sha256:".len()..];
    let path = env.home().join("store/blobs/sha256").join(hex);
    let mut bytes = std::fs::read(&path).expect("blob");
    bytes[20] ^= 0xff;
    std::fs::write(&path, bytes).expect("corrupt it");
    let check = env.run(&["system", "check"]);
    check.assert_code(1);
    assert!(
        check.stdout.contains(&format!("corrupt: {layer}")),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("image cat:latest"),
        "{}",
        check.stdout
    );
    assert!(env.home().join("store/quarantine").join(hex).is_file());
    assert!(!path.exists());
    // The broken image can be removed by name; the store is consistent again.
    let rmi = env.run(&["rmi", "cat"]);
    rmi.assert_code(0);
    assert!(
        rmi.stdout.contains("Untagged: cat:latest"),
        "{}",
        rmi.stdout
    );
    env.run(&["system", "check"]).assert_code(0);
}

/// A tar of files, names written as given (`..` included).
fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let files: Vec<E> = entries
        .iter()
        .map(|(name, data)| E::File(name, data))
        .collect();
    tar(&files)
}

#[test]
fn hostile_and_broken_archives_are_refused_without_naming_anything() {
    let env = TestEnv::new();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tar_with(&[("../escape", b"x")]), "escapes the archive"),
        (tar_with(&[(&format!("blobs/sha256/{}", sha(b"other")), b"data")]), "hashes to"),
        (tar_with(&[("oci-layout", b"{}")]), "neither index.json"),
        (
            tar_with(&[("index.json", format!("{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:{}\",\"size\":2}}]}}", sha(b"{}")).as_bytes())]),
            "not in the store",
        ),
        (b"this is not a tar at all".repeat(40), "not a valid image archive"),
    ];
    for (i, (bytes, needle)) in cases.iter().enumerate() {
        let name = format!("bad{i}.tar");
        env.write(&name, bytes);
        let out = env.run(&["load", "-i", &name]);
        assert_ne!(out.code, Some(0), "case {i}");
        assert!(out.stderr.contains(needle), "case {i}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
    assert_eq!(env.run(&["images", "-q"]).stdout.trim(), "");
}

/// A CNCF wasm artifact (`application/vnd.wasm.config.v0+json` config, one
/// `application/wasm` layer) holding `wasm`, as an OCI layout tar naming it `name`.
fn wasm_artifact_tar(wasm: &[u8], os: &str, name: &str) -> Vec<u8> {
    let config = format!(
        r#"{{"created":"2024-01-01T00:00:00Z","architecture":"wasm","os":"{os}","layerDigests":[]}}"#
    )
    .into_bytes();
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.wasm.config.v0+json\",\"digest\":\"sha256:{}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"application/wasm\",\"digest\":\"sha256:{}\",\"size\":{}}}]}}",
        sha(&config),
        config.len(),
        sha(wasm),
        wasm.len()
    );
    let index = format!(
        "{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:{}\",\"size\":{},\"annotations\":{{\"io.containerd.image.name\":\"docker.io/library/{name}\"}}}}]}}",
        sha(manifest.as_bytes()),
        manifest.len()
    );
    let names = [
        format!("blobs/sha256/{}", sha(&config)),
        format!("blobs/sha256/{}", sha(wasm)),
        format!("blobs/sha256/{}", sha(manifest.as_bytes())),
    ];
    tar_with(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        (&names[0], &config),
        (&names[1], wasm),
        (&names[2], manifest.as_bytes()),
        ("index.json", index.as_bytes()),
    ])
}

#[test]
fn a_cncf_wasm_artifact_of_a_component_loads_and_runs() {
    let env = TestEnv::new();
    let component = std::fs::read(guests::components::HELLO).expect("hello component");
    env.write(
        "artifact.tar",
        wasm_artifact_tar(&component, "wasip2", "component:1"),
    );
    let load = env.run(&["load", "-i", "artifact.tar"]);
    load.assert_code(0);
    let out = env.run(&["run", "--rm", "component:1", "--exit", "6"]);
    out.assert_code(6);
    assert!(
        out.stdout.contains("hello from a component"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_cncf_wasm_artifact_loads_and_runs() {
    let env = TestEnv::new();
    let module = std::fs::read(guests::examples::SHOW).expect("guest");
    let archive = wasm_artifact_tar(&module, "wasip1", "artifact:1");
    env.write("artifact.tar", archive);
    let load = env.run(&["load", "-i", "artifact.tar"]);
    load.assert_code(0);
    assert!(
        load.stdout.contains("Loaded image: artifact:1"),
        "{}",
        load.stdout
    );
    let out = env.run(&["run", "--rm", "artifact:1", "--exists", "/module.wasm"]);
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "yes");
    // Its cached layer (a tar Capsule made, not named by its own digest) checks out.
    let check = env.run(&["system", "check"]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("1 cached layers verified"),
        "{}",
        check.stdout
    );
    // A truncated module blob is caught as the layer is made from it.
    let blob = env.home().join("store/blobs/sha256").join(sha(&module));
    std::fs::write(&blob, &module[..module.len() / 2]).expect("truncate");
    for entry in std::fs::read_dir(env.home().join("cache/layers")).expect("cache") {
        std::fs::remove_file(entry.expect("entry").path()).expect("clear the cache");
    }
    env.run(&["run", "--rm", "artifact:1", "--exists", "/module.wasm"])
        .assert_error(125, &[&sha(&module), "damaged", "system check"]);
}

/// A plain layer tar with one file.
fn layer_tar(path: &str, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, path, data)
        .expect("append");
    builder.into_inner().expect("tar")
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn load_accepts_plain_and_zstd_layers_and_the_pre_25_docker_format() {
    let env = TestEnv::new();
    let module = std::fs::read(guests::examples::SHOW).expect("guest");
    let app = layer_tar("app/show.wasm", &module);
    let data = layer_tar("app/data/index.txt", b"z.md\t3\t1\n");
    let zstd = ruzstd::encoding::compress_to_vec(
        data.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    let config = format!(
        "{{\"architecture\":\"wasm\",\"os\":\"wasip1\",\"config\":{{\"Entrypoint\":[\"/app/show.wasm\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"sha256:{}\",\"sha256:{}\"]}}}}",
        sha(&app),
        sha(&data)
    );
    // An OCI layout whose layers are a plain tar and a tar+zstd.
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:{}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:{}\",\"size\":{}}},{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"sha256:{}\",\"size\":{}}}]}}",
        sha(config.as_bytes()),
        config.len(),
        sha(&app),
        app.len(),
        sha(&zstd),
        zstd.len()
    );
    let index = format!(
        "{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:{}\",\"size\":{},\"annotations\":{{\"io.containerd.image.name\":\"docker.io/library/mixed:1\",\"org.opencontainers.image.ref.name\":\"1\"}}}}]}}",
        sha(manifest.as_bytes()),
        manifest.len()
    );
    let blob = |b: &[u8]| format!("blobs/sha256/{}", sha(b));
    let oci = tar_with(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        (&blob(config.as_bytes()), config.as_bytes()),
        (&blob(&app), &app),
        (&blob(&zstd), &zstd),
        (&blob(manifest.as_bytes()), manifest.as_bytes()),
        ("index.json", index.as_bytes()),
    ]);
    env.write("mixed.tar", oci);
    let load = env.run(&["load", "-i", "mixed.tar"]);
    load.assert_code(0);
    assert!(
        load.stdout.contains("Loaded image: mixed:1"),
        "{}",
        load.stdout
    );
    let out = env.run(&["run", "--rm", "mixed:1"]);
    out.assert_code(0);
    assert!(out.stdout.contains("z.md: 1 words"), "{}", out.stdout);

    // The same image as `docker save` wrote it before Docker 25.
    let legacy_manifest = format!(
        "[{{\"Config\":\"{}.json\",\"RepoTags\":[\"legacy:old\"],\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar\"]}}]",
        sha(config.as_bytes())
    );
    let legacy = tar_with(&[
        (
            &format!("{}.json", sha(config.as_bytes())),
            config.as_bytes(),
        ),
        ("l1/layer.tar", &app),
        ("l2/layer.tar", &data),
        ("manifest.json", legacy_manifest.as_bytes()),
    ]);
    env.write("legacy.tar", legacy);
    let load = env.run(&["load", "-i", "legacy.tar"]);
    load.assert_code(0);
    assert!(
        load.stdout.contains("Loaded image: legacy:old"),
        "{}",
        load.stdout
    );
    let out = env.run(&["run", "--rm", "legacy:old"]);
    assert!(out.stdout.contains("z.md: 1 words"), "{}", out.stdout);
    // The config bytes were kept: both loads give the same image ID.
    let ids = env.run(&["images", "-q", "--no-trunc"]);
    let mut unique: Vec<&str> = ids.stdout.lines().collect();
    unique.dedup();
    assert_eq!(unique.len(), 1, "{}", ids.stdout);

    // References: name@digest and a short ID.
    let inspect = env.run(&["inspect", "mixed:1"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    let digest = v[0]["Manifest"]["Digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    env.run(&["run", "--rm", &format!("mixed@{digest}")])
        .assert_code(0);
    let id = v[0]["Id"].as_str().expect("id").to_owned();
    env.run(&["run", "--rm", &id["sha256:".len().."sha256:".len() + 12]])
        .assert_code(0);
}

#[test]
fn a_loaded_image_with_a_hostile_layer_is_refused_when_run() {
    let env = TestEnv::new();
    let module = std::fs::read(guests::examples::SHOW).expect("guest");
    let app = layer_tar("app/show.wasm", &module);
    // A layer that tries to write outside the container's root.
    let evil = tar_with(&[("../../escaped.txt", b"gotcha")]);
    let config = format!(
        "{{\"architecture\":\"wasm\",\"os\":\"wasip1\",\"config\":{{\"Entrypoint\":[\"/app/show.wasm\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"sha256:{}\",\"sha256:{}\"]}}}}",
        sha(&app),
        sha(&evil)
    );
    let legacy_manifest =
        r#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["a.tar","b.tar"]}]"#;
    env.write(
        "evil.tar",
        tar_with(&[
            ("c.json", config.as_bytes()),
            ("a.tar", &app),
            ("b.tar", &evil),
            ("manifest.json", legacy_manifest.as_bytes()),
        ]),
    );
    env.run(&["load", "-i", "evil.tar"]).assert_code(0);
    let out = env.run(&["run", "--rm", "evil:1"]);
    out.assert_error(125, &["../../escaped.txt"]);
    assert!(!env.home().join("escaped.txt").exists());
    assert!(!env.work().join("escaped.txt").exists());
}

#[test]
fn bad_input_to_image_commands_is_one_clear_line_and_changes_nothing() {
    let env = TestEnv::new();
    env.run(&["run", "--rm", "hello-world"]).assert_code(0);
    env.run(&["build", "-t", "x", "nonexistent"])
        .assert_error(125, &["nonexistent", "not a directory"]);
    env.run(&["load", "-i", "missing.tar"])
        .assert_error(125, &["missing.tar"]);
    env.run(&["save", "-o", "no/such/dir/x.tar", "hello-world"])
        .assert_error(125, &["no/such/dir/x.tar"]);
    env.run(&["tag", "hello-world", "Bad:Name"])
        .assert_error(125, &["Bad", "lowercase"]);
    env.run(&["build", "-t", "a:b:c", "."])
        .assert_error(125, &["a:b:c"]);
    env.run(&["run", "--layer", "x.tar", "hello-world"])
        .assert_error(125, &["--layer"]);
    // Nothing changed.
    let images = env.run(&["images", "-q"]);
    assert_eq!(images.stdout.lines().count(), 1, "{}", images.stdout);
    // A damaged index says where it is and what to do.
    std::fs::write(env.home().join("store/index.json"), "{garbage").expect("damage");
    env.run(&["images"])
        .assert_error(125, &["store/index.json", "line 1 column 2", "repair it"]);
}
