//! Bad input gets one clear line on stderr, a documented non-zero exit, and no panic.

use capsule_tests::{TestEnv, guests};

#[test]
fn missing_module_file() {
    let env = TestEnv::new();
    env.run(&["run", "no-such-module.wasm"])
        .assert_error(127, &["no-such-module.wasm", "no such file"]);
}

#[test]
fn file_that_is_not_wasm() {
    let env = TestEnv::new();
    let text = env.write("notes.txt", "just some notes\n");
    env.run(&["run", text.to_str().expect("utf-8")])
        .assert_error(126, &["notes.txt", "not a WebAssembly module"]);
    let elf = env.write(
        "program",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".as_slice(),
    );
    env.run(&["run", elf.to_str().expect("utf-8")])
        .assert_error(126, &["not a WebAssembly module"]);
    let empty = env.write("empty.wasm", b"");
    env.run(&["run", empty.to_str().expect("utf-8")])
        .assert_error(126, &["not a WebAssembly module"]);
    let truncated = env.write("trunc.wasm", b"\0asm\x01\0\0\0\x01\x05");
    env.run(&["run", truncated.to_str().expect("utf-8")])
        .assert_error(126, &["trunc.wasm"]);
    let bad_text = env.write("bad.wat", "(module (func (i32.frobnicate)))");
    env.run(&["run", bad_text.to_str().expect("utf-8")])
        .assert_error(126, &["invalid WebAssembly text"]);
}

#[test]
fn component_that_is_not_a_command_is_refused_naming_its_exports() {
    let env = TestEnv::new();
    let component = env.wat("component.wasm", "(component)");
    env.run(&["run", component.to_str().expect("utf-8")])
        .assert_error(
            126,
            &[
                "component",
                "not a wasi:cli/command",
                "exports no wasi:cli/run",
            ],
        );
}

/// A `wasi:cli/command` component (its `run` returns `ok`) that also imports `import`.
fn command_importing(import: &str) -> String {
    format!(
        r#"(component
  (import "{import}" (instance (export "f" (func))))
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $r (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $r)))"#
    )
}

#[test]
fn component_importing_an_unknown_interface_is_refused_naming_it_or_stubbed() {
    let env = TestEnv::new();
    let component = env.wat("acme.wasm", &command_importing("acme:thing/api@1.0.0"));
    let path = component.to_str().expect("utf-8");
    env.run(&["run", path]).assert_error(
        126,
        &[
            "acme:thing/api@1.0.0",
            "Capsule does not provide",
            "--unknown-imports trap",
        ],
    );
    // As for modules: stubs that trap when called, so a component that never calls
    // them runs.
    env.run(&["run", "--unknown-imports", "trap", path])
        .assert_clean_success();
}

#[test]
fn wasi_0_3_component_gets_one_clear_line() {
    let env = TestEnv::new();
    let component = env.wat("p3.wasm", &command_importing("wasi:cli/environment@0.3.0"));
    env.run(&["run", component.to_str().expect("utf-8")])
        .assert_error(
            126,
            &[
                "WASI 0.3 (async)",
                "not support",
                "wasi:cli/environment@0.3.0",
            ],
        );
}

#[test]
fn malformed_component_gets_one_clear_error_and_leaves_nothing() {
    let env = TestEnv::new();
    // A component's header (layer 1), then garbage.
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    bytes.extend_from_slice(b"\x07garbage that is no section");
    let path = env.write("broken.wasm", &bytes);
    env.run(&["run", path.to_str().expect("utf-8")])
        .assert_error(126, &["broken.wasm"]);
    let ps = env.run(&["ps", "-a", "-q"]);
    ps.assert_clean_success();
    assert_eq!(
        ps.stdout, "",
        "a run that could not start leaves no container"
    );
}

#[test]
fn bad_env_syntax() {
    let env = TestEnv::new();
    env.run(&["run", "-e", "=value", guests::ENV])
        .assert_error(125, &["invalid environment variable '=value'"]);
    let file = env.write("bad.env", "GOOD=1\nBAD KEY=2\n");
    env.run(&[
        "run",
        "--env-file",
        file.to_str().expect("utf-8"),
        guests::ENV,
    ])
    .assert_error(125, &["bad.env:2", "BAD KEY=2"]);
    env.run(&["run", "--env-file", "missing.env", guests::ENV])
        .assert_error(125, &["missing.env", "cannot read env file"]);
}

#[test]
fn bad_volume_syntax_and_missing_host_paths() {
    let env = TestEnv::new();
    let dir = env.work().display().to_string();
    env.run(&["run", "-v", &dir, guests::FILES, "ls", "/"])
        .assert_error(125, &["invalid volume", "missing ':GUEST'"]);
    env.run(&[
        "run",
        "-v",
        &format!("{dir}:relative"),
        guests::FILES,
        "ls",
        "/",
    ])
    .assert_error(125, &["must be absolute"]);
    env.run(&[
        "run",
        "-v",
        &format!("{dir}:/a/../b"),
        guests::FILES,
        "ls",
        "/",
    ])
    .assert_error(125, &["'..' is not allowed"]);
    env.run(&[
        "run",
        "-v",
        "/no/such/capsule/dir:/data",
        guests::FILES,
        "ls",
        "/",
    ])
    .assert_error(125, &["/no/such/capsule/dir", "does not exist"]);
    let file = env.write("plain.txt", "x");
    env.run(&[
        "run",
        "-v",
        &format!("{}:/data", file.display()),
        guests::FILES,
        "ls",
        "/",
    ])
    .assert_error(125, &["not a directory"]);
    env.run(&["run", "-v", "books:/data", guests::FILES, "ls", "/"])
        .assert_error(125, &["named volume"]);
}

#[test]
fn bad_workdir() {
    let env = TestEnv::new();
    let dir = format!("{}:/data", env.work().display());
    env.run(&["run", "-w", "relative", guests::FILES, "ls", "."])
        .assert_error(125, &["must be absolute"]);
    env.write("plain", "x");
    let over_file = format!("{}:/mnt", env.work().display());
    env.run(&[
        "run",
        "-v",
        &over_file,
        "-w",
        "/mnt/plain",
        guests::FILES,
        "ls",
        ".",
    ])
    .assert_error(125, &["/mnt/plain", "ENOTDIR"]);
    env.run(&[
        "run",
        "-v",
        &dir,
        "-w",
        "/data/missing",
        guests::FILES,
        "ls",
        ".",
    ])
    .assert_error(125, &["does not exist"]);
}

#[test]
fn unknown_flags_and_missing_module_argument() {
    let env = TestEnv::new();
    let run = env.run(&["run", "--bogus", "x.wasm"]);
    run.assert_code(125);
    assert!(run.stderr.contains("--bogus"), "{}", run.stderr);
    env.run(&["run"]).assert_code(125);
    env.run(&["frobnicate"]).assert_code(125);
}

#[test]
fn guest_arguments_that_look_like_flags_go_to_the_guest() {
    let env = TestEnv::new();
    let run = env.run(&["run", guests::ARGS, "--help", "-v", "x:y"]);
    run.assert_clean_success();
    assert!(
        run.stdout
            .contains("argv[1]=--help\nargv[2]=-v\nargv[3]=x:y\n"),
        "{}",
        run.stdout
    );
}

/// A home with the `service` guest as image `svc`.
fn with_svc() -> capsule_tests::Containers {
    capsule_tests::Containers::new(&[(guests::SERVICE, "svc")])
}

/// Issue 31: `create` with a module file says that it needs an image and how to make
/// one, whichever way the file is named.
#[test]
fn create_with_a_module_file_says_how_to_make_an_image() {
    let env = with_svc();
    let module = env.env.work().join("tool.wasm");
    std::fs::copy(guests::SERVICE, &module).expect("test");
    for target in [
        module.to_str().expect("utf-8"),
        "./tool.wasm",
        "tool.wasm",
        "gone.wasm",
    ] {
        env.env
            .run(&["create", target])
            .assert_error(125, &["from an image", "capsule image import", target]);
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// Issue 31: flags that misled: a name too long is said to be too long; `--rm` with a
/// restart policy is refused in the foreground too; `-p=SPEC` is `-p SPEC`.
#[test]
fn names_rm_with_restart_and_the_equals_form_of_publish() {
    let env = with_svc();
    let long = "n".repeat(129);
    env.env
        .run(&["create", "--name", &long, "svc"])
        .assert_error(125, &["129 characters", "at most 128"]);
    env.ok(&["create", "--name", &"n".repeat(128), "svc"]);
    env.env
        .run(&["run", "--rm", "--restart", "always", "svc", "env", "X"])
        .assert_error(125, &["--rm and --restart cannot be combined"]);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
    // `-p=VALUE` is `-p VALUE`: the address given is recorded, the port left to
    // Capsule shows as Docker's "".
    env.ok(&["create", "--name", "eq", "-p=127.0.0.2::80", "svc"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "eq"])).expect("JSON");
    assert_eq!(
        inspect[0]["HostConfig"]["PortBindings"]["80/tcp"][0],
        serde_json::json!({"HostIp": "127.0.0.2", "HostPort": ""})
    );
}

/// Issue 31: `restart` of a `--rm` container (removed when it stops) and `start`
/// losing a race to `rm -f` say that the container was removed, not which file in
/// its directory could not be opened.
#[test]
fn restart_and_start_of_a_removed_container_say_so() {
    let env = with_svc();
    env.ok(&[
        "run", "-d", "--rm", "--name", "gone", "svc", "tick", "0", "100",
    ]);
    env.env
        .run(&["restart", "-t", "0", "gone"])
        .assert_error(1, &["gone was removed", "--rm"]);
    for round in 0..8u64 {
        env.ok(&["create", "--name", "racer", "svc", "tick", "0", "50"]);
        let start = capsule_tests::Proc::spawn(env.env.capsule().args(["start", "racer"]));
        std::thread::sleep(std::time::Duration::from_millis(10 * (round % 4)));
        env.ok(&["rm", "-f", "racer"]);
        let out = start.wait();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success()
                || (stderr.lines().count() == 1
                    && (stderr.contains("racer was removed")
                        || stderr.contains("no such container: racer"))),
            "round {round}: {stderr}"
        );
        assert!(!stderr.contains(".log"), "round {round}: {stderr}");
    }
    let check = env.env.run(&["system", "check"]);
    check.assert_code(0);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    let left = std::fs::read_dir(env.env.home().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "container directories left");
}

/// Issue 31: an OS error is printed once, not once by the error and again as its
/// cause.
#[test]
fn os_errors_are_printed_once() {
    let env = with_svc();
    env.ok(&["create", "--name", "c", "svc"]);
    let run = env.env.run(&["cp", "no-such-file", "c:/x"]);
    run.assert_error(1, &["no-such-file", "(os error 2)"]);
    assert_eq!(run.stderr.matches("os error").count(), 1, "{}", run.stderr);
}

/// Issue 31: `load` of a compressed save loads it (as `docker load` does); a
/// directory, a cut-off archive and a JSON document that is not one each say what they
/// are.
#[test]
fn load_says_what_is_wrong_with_its_input() {
    let env = with_svc();
    env.ok(&["save", "-o", "svc.tar", "svc"]);
    let tar = std::fs::read(env.env.work().join("svc.tar")).expect("test");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).expect("test");
    env.env.write("svc.tar.gz", gz.finish().expect("test"));
    let fresh = capsule_tests::TestEnv::new();
    let load = fresh.run(&[
        "load",
        "-i",
        env.env.work().join("svc.tar.gz").to_str().expect("utf-8"),
    ]);
    load.assert_code(0);
    assert!(
        load.stdout.contains("Loaded image: svc:latest"),
        "{}",
        load.stdout
    );
    env.env
        .run(&["load", "-i", env.env.work().to_str().expect("utf-8")])
        .assert_error(125, &["is a directory"]);
    // Cut inside the first blob's data.
    env.env.write("cut.tar", &tar[..tar.len() / 2]);
    env.env
        .run(&["load", "-i", "cut.tar"])
        .assert_error(125, &["truncated"]);
    env.env.write("notjson.tar", "{not json");
    let run = env.env.run(&["load", "-i", "notjson.tar"]);
    run.assert_code(125);
    assert!(!run.stderr.contains("invalid type"), "{}", run.stderr);
    assert!(
        run.stderr.contains("not a tar archive") || run.stderr.contains("ends in the middle"),
        "{}",
        run.stderr
    );
}

/// Issue 31, a second hostile pass: what it found each says what is wrong — a
/// container whose record is damaged (for every verb but rm), `cp` with no path
/// after `C:`, `cp -` with nothing on stdin, a directory copied over a file, `load`
/// of an empty file.
#[test]
fn second_hostile_pass_finds_say_what_is_wrong() {
    let env = with_svc();
    let id = env.ok(&["create", "--name", "c", "svc", "env", "X"]);
    let id = id.trim();
    let short = &id[..12];
    env.env
        .run(&["cp", "c:", "out"])
        .assert_error(125, &["'c:' names no path", "c:/"]);
    env.env
        .run_with_stdin(&["cp", "-", "c:/"], b"")
        .assert_error(1, &["stdin is empty"]);
    let file = env.env.write("plain", "x");
    env.env
        .run(&["cp", "c:/", file.to_str().expect("utf-8")])
        .assert_error(1, &["not a directory on the host"]);
    assert_eq!(std::fs::read_to_string(&file).expect("test"), "x");
    env.env.write("empty.tar", "");
    env.env
        .run(&["load", "-i", "empty.tar"])
        .assert_error(125, &["holds nothing"]);
    std::fs::write(
        env.env
            .home()
            .join("containers")
            .join(id)
            .join("config.json"),
        "{bad",
    )
    .expect("test");
    for verb in [
        &["inspect"][..],
        &["logs"],
        &["start"],
        &["diff"],
        &["wait"],
    ] {
        let mut args = verb.to_vec();
        args.push(short);
        env.env
            .run(&args)
            .assert_error(1, &["record is damaged", "capsule rm -f"]);
    }
    env.ok(&["rm", "-f", short]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// A mistake in the command line itself is one line too, naming the `--help` to read;
/// help that was asked for stays whole.
#[test]
fn command_line_mistakes_are_one_line_naming_the_verb() {
    let env = TestEnv::new();
    env.run(&["logs", "--tail", "-1", "x"])
        .assert_error(125, &["unexpected argument '-1'", "capsule logs --help"]);
    env.run(&["run", "--memory"])
        .assert_error(125, &["--memory", "capsule run --help"]);
    env.run(&["volume", "create", "--bogus"])
        .assert_error(125, &["'--bogus'", "capsule volume create --help"]);
    env.run(&["bogus"])
        .assert_error(125, &["unrecognized subcommand 'bogus'", "capsule --help"]);
    env.run(&["run"])
        .assert_error(125, &["required arguments", "capsule run --help"]);
    let help = env.run(&["run", "--help"]);
    help.assert_code(0);
    assert!(help.stdout.lines().count() > 10, "{}", help.stdout);
}
