//! `pull`, `push`, `login`, `logout` against a real registry on loopback (Debian's
//! `docker-registry`, started per test and stopped at its end), checked from outside:
//! digests on both sides, the registry's own access log, `skopeo` both ways, the
//! registry's storage tampered with, and the credentials file on disk.

use capsule_tests::registry::Registry;
use capsule_tests::{TestEnv, guests, tool};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::process::Command;

/// Builds a two-layer image `name` (the args guest and a data file) in `env`.
fn build_image(env: &TestEnv, name: &str) {
    env.write("ctx/args.wasm", std::fs::read(guests::ARGS).expect("guest"));
    env.write("ctx/data.txt", "registry test data\n");
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY args.wasm /args.wasm\nCOPY data.txt /data.txt\nENTRYPOINT [\"/args.wasm\"]\n",
    );
    env.run(&["build", "-t", name, "ctx"]).assert_code(0);
}

/// The full image ID and manifest digest of `name`.
fn digests(env: &TestEnv, name: &str) -> (String, String) {
    let out = env.run(&["images", "--format", "json", "--no-trunc", name]);
    out.assert_code(0);
    let line = out
        .stdout
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no image {name}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    (
        v["ID"].as_str().expect("id").to_owned(),
        v["Digest"].as_str().expect("digest").to_owned(),
    )
}

/// Runs the image `name` by its name (`registry:port/repo:tag`, which is not a path
/// because no such file exists) and checks that its ID runs the same.
fn run_image(env: &TestEnv, name: &str, args: &[&str]) -> capsule_tests::Run {
    let (id, _) = digests(env, name);
    let mut by_id = vec!["run", "--rm", id.as_str()];
    by_id.extend_from_slice(args);
    let mut by_name = vec!["run", "--rm", name];
    by_name.extend_from_slice(args);
    let run = env.run(&by_name);
    let again = env.run(&by_id);
    assert_eq!(
        (run.code, &run.stdout),
        (again.code, &again.stdout),
        "{name} and its ID run differently: {}",
        run.stderr
    );
    run
}

/// The digests of the layers of `name`, from `inspect`.
fn layer_digests(env: &TestEnv, name: &str) -> Vec<String> {
    let out = env.run(&["inspect", name]);
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let layers = v[0]["Manifest"]["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in inspect: {}", out.stdout));
    layers
        .iter()
        .map(|l| l["Digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// Names of the files in a store's blob directory (temporary files included).
fn store_files(env: &TestEnv) -> Vec<String> {
    let dir = env.home().join("store/blobs/sha256");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn run_ok(cmd: &mut Command) -> String {
    let out = capsule_tests::output(cmd);
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        capsule_tests::process::command_line(cmd),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn push_then_pull_into_a_fresh_home_sends_nothing_twice_and_mounts_across_repositories() {
    let registry = Registry::start();
    let name = format!("{}/team/app:1", registry.addr);
    let env = TestEnv::new();
    build_image(&env, &name);
    let push = env.run(&["push", &name]);
    push.assert_clean_success();
    assert!(
        push.stdout.contains(&format!(
            "The push refers to repository [{}/team/app]",
            registry.addr
        )),
        "{}",
        push.stdout
    );
    let (id, manifest) = digests(&env, &name);
    assert!(
        push.stdout
            .contains(&format!("1: digest: {manifest} size: ")),
        "{}",
        push.stdout
    );
    assert_eq!(
        push.stdout.matches(": Pushed (").count(),
        3,
        "{}",
        push.stdout
    );
    let uploads = registry.uploads_started();
    assert_eq!(uploads, 3, "config and two layers:\n{}", registry.log());

    // Pull into a fresh home: the same config (ID) and manifest digests, and it runs.
    let fresh = TestEnv::new();
    let pull = fresh.run(&["pull", &name]);
    pull.assert_clean_success();
    assert!(
        pull.stdout.contains(&format!("Digest: {manifest}")),
        "{}",
        pull.stdout
    );
    assert!(
        pull.stdout.ends_with(&format!("{name}\n")),
        "{}",
        pull.stdout
    );
    assert_eq!(digests(&fresh, &name), (id.clone(), manifest.clone()));
    assert_eq!(layer_digests(&fresh, &name), layer_digests(&env, &name));
    // The pull compiled the image's program: its first run finds it in the cache.
    let first = capsule_tests::Run::of(
        fresh
            .capsule()
            .env("CAPSULE_LOG", "capsule_runtime=debug")
            .args(["run", "--rm", &name, "y"]),
        None,
    );
    first.assert_code(0);
    assert!(
        first.stderr.contains("module cache hit") && !first.stderr.contains("module cache miss"),
        "{}",
        first.stderr
    );
    let run = run_image(&fresh, &name, &["x"]);
    run.assert_code(0);
    assert_eq!(run.stdout, "argc=2\nargv[0]=/args.wasm\nargv[1]=x\n");
    fresh.run(&["system", "check"]).assert_code(0);
    // Pulling again fetches nothing.
    let again = fresh.run(&["pull", &name]);
    again.assert_clean_success();
    assert!(
        again.stdout.contains("Status: Image is up to date"),
        "{}",
        again.stdout
    );
    assert_eq!(
        again.stdout.matches("Already exists").count(),
        3,
        "{}",
        again.stdout
    );

    // A second push sends no blob: the registry saw no new upload.
    let second = env.run(&["push", &name]);
    second.assert_clean_success();
    assert_eq!(
        second.stdout.matches("Layer already exists").count(),
        3,
        "{}",
        second.stdout
    );
    assert_eq!(registry.uploads_started(), uploads, "{}", registry.log());

    // The same image under another repository is mounted, not sent.
    let other = format!("{}/other/app:2", registry.addr);
    env.run(&["tag", &name, &other]).assert_clean_success();
    let mounted = env.run(&["push", &other]);
    mounted.assert_clean_success();
    assert_eq!(
        mounted.stdout.matches("Mounted from team/app").count(),
        3,
        "{}",
        mounted.stdout
    );
    assert_eq!(registry.uploads_started(), uploads, "{}", registry.log());

    // Pull by digest, into another fresh home, runs by that digest.
    let by_digest = format!("{}/other/app@{manifest}", registry.addr);
    let third = TestEnv::new();
    third.run(&["pull", &by_digest]).assert_clean_success();
    let listed = third.run(&["images", "--format", "json", "--no-trunc"]);
    assert!(listed.stdout.contains(&manifest), "{}", listed.stdout);
    let id_only = third.run(&["images", "-q", "--no-trunc"]);
    assert_eq!(id_only.stdout.trim(), id);
    third.run(&["run", "--rm", &id]).assert_code(0);
}

#[test]
fn skopeo_reads_what_capsule_pushes_and_capsule_pulls_what_skopeo_copies() {
    let skopeo = tool("skopeo");
    let registry = Registry::start();
    let env = TestEnv::new();
    let name = format!("{}/interop/app:1", registry.addr);
    build_image(&env, &name);
    env.run(&["push", &name]).assert_clean_success();
    let (id, manifest) = digests(&env, &name);

    // Capsule → registry → skopeo: an OCI layout with the same manifest digest.
    let layout = env.work().join("from-registry");
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--src-tls-verify=false", "--preserve-digests"])
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:1", layout.display())),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], manifest.as_str());
    let inspect = run_ok(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("oci:{}:1", layout.display())),
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("json");
    assert_eq!(v["Architecture"], "wasm");
    assert_eq!(v["Os"], "wasip1");
    // Every blob skopeo wrote hashes to its name.
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).expect("blobs") {
        let entry = entry.expect("entry");
        let bytes = std::fs::read(entry.path()).expect("blob");
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(entry.file_name().to_string_lossy(), hex);
    }

    // capsule save → skopeo copy into the registry → capsule pull in a fresh home.
    env.run(&["save", "-o", "app.tar", &name]).assert_code(0);
    let saved = env.work().join("saved");
    std::fs::create_dir(&saved).expect("mkdir");
    run_ok(
        Command::new(capsule_tests::tool("tar"))
            .arg("xf")
            .arg(env.work().join("app.tar"))
            .arg("-C")
            .arg(&saved),
    );
    let copied = format!("{}/by-skopeo/app:7", registry.addr);
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
            .arg(format!("oci:{}:1", saved.display()))
            .arg(format!("docker://{copied}")),
    );
    let fresh = TestEnv::new();
    fresh.run(&["pull", &copied]).assert_clean_success();
    assert_eq!(digests(&fresh, &copied), (id, manifest));
    let run = run_image(&fresh, &copied, &[]);
    run.assert_code(0);
    assert_eq!(run.stdout, "argc=1\nargv[0]=/args.wasm\n");
}

/// Writes an OCI layout at `dir` whose `index.json` names (as `ref_name`) an image
/// index listing `entries` (media type, digest, size, os, architecture); `blobs` are
/// written beside it.
fn layout_with_index(
    dir: &Path,
    ref_name: &str,
    blobs: &[Vec<u8>],
    entries: &[(String, u64, &str, &str)],
) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).expect("mkdir");
    let put = |bytes: &[u8]| {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(blob_dir.join(&hex), bytes).expect("blob");
        (format!("sha256:{hex}"), bytes.len() as u64)
    };
    for blob in blobs {
        put(blob);
    }
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(digest, size, os, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": size,
                "platform": {"os": os, "architecture": arch}
            })
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .expect("json");
    let (digest, size) = put(&index);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest, "size": size,
                "annotations": {"org.opencontainers.image.ref.name": ref_name}
            }]
        }))
        .expect("json"),
    )
    .expect("index.json");
}

fn sha(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[test]
fn an_index_resolves_to_its_wasm_entry_and_one_without_is_refused() {
    let skopeo = tool("skopeo");
    let registry = Registry::start();
    let env = TestEnv::new();
    let name = format!("{}/multi/app:1", registry.addr);
    build_image(&env, &name);
    env.run(&["save", "-o", "app.tar", &name]).assert_code(0);
    let saved = env.work().join("saved");
    std::fs::create_dir(&saved).expect("mkdir");
    run_ok(
        Command::new(capsule_tests::tool("tar"))
            .arg("xf")
            .arg(env.work().join("app.tar"))
            .arg("-C")
            .arg(&saved),
    );
    let (_, wasm_manifest) = digests(&env, &name);
    let wasm_size = std::fs::metadata(
        saved
            .join("blobs/sha256")
            .join(wasm_manifest.trim_start_matches("sha256:")),
    )
    .expect("manifest blob")
    .len();
    // A linux/amd64 image beside it: a config and an empty-layer manifest.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let linux = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": []
    }))
    .expect("json");
    let linux_entry = (sha(&linux), linux.len() as u64, "linux", "amd64");
    // Docker's spelling of the wasm platform (wasi/wasm) is found too.
    layout_with_index(
        &saved,
        "both",
        &[config.clone(), linux.clone()],
        &[
            linux_entry.clone(),
            (wasm_manifest.clone(), wasm_size, "wasi", "wasm"),
        ],
    );
    let both = format!("{}/multi/app:both", registry.addr);
    run_ok(
        Command::new(&skopeo)
            .args([
                "copy",
                "--all",
                "--dest-tls-verify=false",
                "--preserve-digests",
            ])
            .arg(format!("oci:{}:both", saved.display()))
            .arg(format!("docker://{both}")),
    );
    let fresh = TestEnv::new();
    fresh.run(&["pull", &both]).assert_clean_success();
    assert_eq!(digests(&fresh, &both).1, wasm_manifest);
    run_image(&fresh, &both, &[]).assert_code(0);

    let linux_only = format!("{}/multi/app:linux", registry.addr);
    layout_with_index(&saved, "linux", &[config, linux], &[linux_entry]);
    run_ok(
        Command::new(&skopeo)
            .args([
                "copy",
                "--all",
                "--dest-tls-verify=false",
                "--preserve-digests",
            ])
            .arg(format!("oci:{}:linux", saved.display()))
            .arg(format!("docker://{linux_only}")),
    );
    let other = TestEnv::new();
    other
        .run(&["pull", &linux_only])
        .assert_error(1, &["no WebAssembly image", "linux/amd64"]);
    assert!(store_files(&other).is_empty(), "{:?}", store_files(&other));
}

#[test]
fn a_tampered_blob_is_refused_on_pull_and_nothing_is_stored() {
    let registry = Registry::start();
    let env = TestEnv::new();
    let name = format!("{}/tamper/app:1", registry.addr);
    build_image(&env, &name);
    env.run(&["push", &name]).assert_clean_success();
    // Flip a byte of the largest layer in the registry's storage (same size).
    let layers = layer_digests(&env, &name);
    let victim = layers
        .iter()
        .max_by_key(|d| {
            std::fs::metadata(registry.blob_path(d))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .expect("a layer")
        .clone();
    let path = registry.blob_path(&victim);
    let mut bytes = std::fs::read(&path).expect("registry blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).expect("tamper");

    let fresh = TestEnv::new();
    fresh
        .run(&["pull", &name])
        .assert_error(1, &[&victim, "refused", "nothing was stored"]);
    assert!(store_files(&fresh).is_empty(), "{:?}", store_files(&fresh));
    let images = fresh.run(&["images", "-q"]);
    images.assert_code(0);
    assert_eq!(images.stdout, "");
}

#[test]
fn login_over_tls_stores_credentials_0600_and_wrong_ones_are_refused() {
    let registry = Registry::start_with_auth("alice", "s3cret");
    let env = TestEnv::new();
    let name = format!("{}/private/app:1", registry.addr);
    build_image(&env, &name);
    let config = env.home().join("config.json");

    // Without its certificate authority, the registry's certificate is refused.
    env.run_with_stdin(
        &["login", "-u", "alice", "--password-stdin", &registry.addr],
        b"s3cret\n",
    )
    .assert_error(1, &["cannot reach registry", "certs.d"]);
    let certs = env.home().join("certs.d").join(&registry.addr);
    std::fs::create_dir_all(&certs).expect("certs.d");
    std::fs::copy(registry.ca.as_ref().expect("ca"), certs.join("ca.crt")).expect("ca");

    // Anonymous push and pull are refused with the fix named.
    env.run(&["push", &name]).assert_error(
        1,
        &[
            "requires authentication",
            &format!("capsule login {}", registry.addr),
        ],
    );
    env.run_with_stdin(
        &["login", "-u", "alice", "--password-stdin", &registry.addr],
        b"wrong\n",
    )
    .assert_error(1, &["login to", "refused the username or password"]);
    assert!(!config.exists(), "a refused login stored nothing");

    let login = env.run_with_stdin(
        &["login", "-u", "alice", "--password-stdin", &registry.addr],
        b"s3cret\n",
    );
    login.assert_clean_success();
    assert_eq!(login.stdout, "Login Succeeded\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config)
            .expect("config.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
    // Docker's format: base64("user:password") under auths.HOST.auth.
    assert_eq!(doc["auths"][&registry.addr]["auth"], "YWxpY2U6czNjcmV0");

    // On a terminal, what is not given is asked for, as docker login does (the
    // password with echo off; here both lines are typed ahead through a pseudo-terminal).
    env.run(&["logout", &registry.addr]).assert_clean_success();
    let typed = on_a_terminal(&env, &["login", &registry.addr], "alice\ns3cret\n");
    assert!(
        typed.contains("Username: ") && typed.contains("Password: "),
        "{typed}"
    );
    assert!(typed.contains("Login Succeeded"), "{typed}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
    assert_eq!(doc["auths"][&registry.addr]["auth"], "YWxpY2U6czNjcmV0");

    env.run(&["push", &name]).assert_clean_success();
    env.run(&["rmi", &name]).assert_code(0);
    env.run(&["pull", &name]).assert_clean_success();
    run_image(&env, &name, &[]).assert_code(0);

    // Docker's credentials file is honoured too (read only): a home that never logged
    // in pulls with DOCKER_CONFIG's.
    let docker = env.work().join("docker-config");
    std::fs::create_dir(&docker).expect("mkdir");
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
            registry.addr
        ),
    )
    .expect("docker config");
    let other = TestEnv::new();
    let other_certs = other.home().join("certs.d").join(&registry.addr);
    std::fs::create_dir_all(&other_certs).expect("certs.d");
    std::fs::copy(
        registry.ca.as_ref().expect("ca"),
        other_certs.join("ca.crt"),
    )
    .expect("ca");
    let pulled = capsule_tests::Run::of(
        other
            .capsule()
            .env("DOCKER_CONFIG", &docker)
            .args(["pull", &name]),
        None,
    );
    pulled.assert_clean_success();

    // Stored credentials the registry no longer accepts are named as such.
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6bm9wZQ=="}}}}}}"#,
            registry.addr
        ),
    )
    .expect("bad creds");
    env.run(&["push", &name])
        .assert_error(1, &["refused access", "stored credentials"]);

    let logout = env.run(&["logout", &registry.addr]);
    logout.assert_clean_success();
    assert_eq!(
        logout.stdout,
        format!("Removing login credentials for {}\n", registry.addr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
    assert!(doc["auths"].get(&registry.addr).is_none(), "{doc}");
    env.run(&["push", &name])
        .assert_error(1, &["requires authentication"]);
}

#[test]
fn registry_errors_are_one_clear_line() {
    let registry = Registry::start();
    let env = TestEnv::new();
    // An unknown image.
    env.run(&["pull", &format!("{}/nothing/here:1", registry.addr)])
        .assert_error(1, &["not found in registry", &registry.addr]);
    // An unqualified name stays local.
    env.run(&["pull", "app:1"])
        .assert_error(125, &["names no registry", "CAPSULE_DEFAULT_REGISTRY"]);
    // ... unless a default registry is configured.
    let name = format!("{}/library-app:3", registry.addr);
    build_image(&env, &name);
    env.run(&["push", &name]).assert_clean_success();
    let fresh = TestEnv::new();
    let pulled = capsule_tests::Run::of(
        fresh
            .capsule()
            .env("CAPSULE_DEFAULT_REGISTRY", &registry.addr)
            .args(["pull", "library-app:3"]),
        None,
    );
    pulled.assert_clean_success();
    fresh.run(&["run", "--rm", "library-app:3"]).assert_code(0);
    // Nothing listens: unreachable.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    env.run(&["pull", &format!("127.0.0.1:{closed}/app:1")])
        .assert_error(1, &["cannot reach registry", "refused"]);
    // Pushing what is not there says so before any network.
    env.run(&["push", "registry.invalid/app:1"])
        .assert_error(1, &["no local image", "capsule tag IMAGE"]);
    // Bad references.
    env.run(&["pull", "Bad/Name"])
        .assert_error(125, &["invalid image reference"]);
    env.run(&[
        "push",
        &format!("{}/app@sha256:{}", registry.addr, "a".repeat(64)),
    ])
    .assert_error(125, &["a push names a tag"]);
    env.run(&["login", "--password-stdin", &registry.addr])
        .assert_error(125, &["-u USER"]);
}

#[test]
fn a_cncf_wasm_artifact_pulls_and_runs() {
    let skopeo = tool("skopeo");
    let registry = Registry::start();
    let env = TestEnv::new();
    let module = std::fs::read(guests::ARGS).expect("guest");
    let config =
        br#"{"created":"2024-01-01T00:00:00Z","architecture":"wasm","os":"wasip1","layerDigests":[]}"#
            .to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/wasm", "digest": sha(&module), "size": module.len()}]
    }))
    .expect("json");
    let layout = env.work().join("artifact");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    for bytes in [&config, &module, &manifest] {
        std::fs::write(blobs.join(sha(bytes).trim_start_matches("sha256:")), bytes).expect("blob");
    }
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("layout");
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(&manifest), "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "1"}
            }]
        }))
        .expect("json"),
    )
    .expect("index.json");
    let name = format!("{}/artifact/args:1", registry.addr);
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
            .arg(format!("oci:{}:1", layout.display()))
            .arg(format!("docker://{name}")),
    );
    env.run(&["pull", &name]).assert_clean_success();
    assert_eq!(digests(&env, &name).1, sha(&manifest));
    let run = run_image(&env, &name, &["hi"]);
    run.assert_code(0);
    assert_eq!(run.stdout, "argc=2\nargv[0]=/module.wasm\nargv[1]=hi\n");
}

#[test]
fn bearer_token_authentication_for_login_push_and_pull() {
    let (registry, tokens) = Registry::start_with_token_auth("bob", "t0ken-pass");
    let env = TestEnv::new();
    let name = format!("{}/bearer/app:1", registry.addr);
    build_image(&env, &name);
    env.run(&["push", &name])
        .assert_error(1, &["requires authentication", "capsule login"]);
    env.run_with_stdin(
        &["login", "-u", "bob", "--password-stdin", &registry.addr],
        b"nope\n",
    )
    .assert_error(1, &["refused the username or password"]);
    env.run_with_stdin(
        &["login", "-u", "bob", "--password-stdin", &registry.addr],
        b"t0ken-pass\n",
    )
    .assert_clean_success();
    let before = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);
    env.run(&["push", &name]).assert_clean_success();
    assert!(
        tokens.issued.load(std::sync::atomic::Ordering::SeqCst) > before,
        "the push used tokens from the token service"
    );
    env.run(&["rmi", &name]).assert_code(0);
    env.run(&["pull", &name]).assert_clean_success();
    run_image(&env, &name, &[]).assert_code(0);
    assert!(
        registry.log().contains("\"PUT /v2/bearer/app/manifests/1"),
        "{}",
        registry.log()
    );
}

/// Runs `capsule ARGS` on a pseudo-terminal (util-linux's `script`) with `typed` as
/// what the user types; what the terminal showed.
fn on_a_terminal(env: &TestEnv, args: &[&str], typed: &str) -> String {
    let template = env.capsule();
    let mut line = capsule_tests::capsule_bin().display().to_string();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    let mut script = std::process::Command::new(capsule_tests::tool("script"));
    script
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("SHELL", "/bin/sh");
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            script.env(key, value);
        }
    }
    let out = capsule_tests::Proc::spawn_with_stdin(&mut script, typed.as_bytes()).wait();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{shown}");
    shown
}
