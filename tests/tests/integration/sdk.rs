//! The SDK, embedded in this test process, over the same guest programs.

use capsule_sdk::{Capsule, Error, ErrorKind, ExitStatus, RunOptions};
use capsule_tests::guests;

fn capsule() -> (tempfile::TempDir, Capsule) {
    let home = tempfile::tempdir().expect("home");
    let capsule = Capsule::open(home.path()).expect("open capsule home");
    (home, capsule)
}

#[test]
fn runs_hello_world_with_captured_output() {
    let (_home, capsule) = capsule();
    let module = capsule.hello_world().expect("built-in module");
    let out = capsule.run(&module, RunOptions::new()).expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from Capsule!"));
    assert!(out.stderr.is_empty());
}

#[test]
fn passes_args_env_and_stdin_and_reports_status() {
    let (_home, capsule) = capsule();
    let args = capsule.module_from_file(guests::ARGS).expect("load");
    let out = capsule
        .run(&args, RunOptions::new().arg("ünï").arg("two"))
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "argc=3\nargv[0]={}\nargv[1]=ünï\nargv[2]=two\n",
            guests::ARGS
        )
    );

    let env = capsule.module_from_file(guests::ENV).expect("load");
    let out = capsule
        .run(&env, RunOptions::new().env("K", "v"))
        .expect("run");
    assert_eq!(out.stdout, b"K=v\n");

    let stdio = capsule.module_from_file(guests::STDIO).expect("load");
    let out = capsule
        .run(&stdio, RunOptions::new().stdin(b"piped in".to_vec()))
        .expect("run");
    assert_eq!(out.stdout, b"piped in");
    assert_eq!(out.stderr, b"stdio: copied 8 bytes\n");

    let exit = capsule.module_from_file(guests::EXIT).expect("load");
    let out = capsule
        .run(&exit, RunOptions::new().arg("42"))
        .expect("run");
    assert_eq!(out.status, ExitStatus::Exited(42));
    assert_eq!(out.status.code(), Some(42));
    let out = capsule
        .run(&exit, RunOptions::new().arg("1000"))
        .expect("run");
    assert_eq!(out.status, ExitStatus::InvalidExit(1000));
}

#[test]
fn traps_are_statuses_with_backtraces() {
    let (_home, capsule) = capsule();
    let trap = capsule.module_from_file(guests::TRAP).expect("load");
    let out = capsule.run(&trap, RunOptions::new()).expect("run");
    match out.status {
        ExitStatus::Trapped(report) => {
            assert!(report.reason.contains("unreachable"), "{}", report.reason);
            assert!(
                report
                    .frames
                    .iter()
                    .any(|f| f.func_name.as_deref() == Some("crash_here")),
                "{:?}",
                report.frames
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(out.stdout, b"about to trap\n");
}

#[test]
fn volumes_and_workdir() {
    let (_home, capsule) = capsule();
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("in.txt"), "hello volume").expect("write");
    let files = capsule.module_from_file(guests::FILES).expect("load");
    let options = RunOptions::new()
        .volume(&format!("{}:/data", dir.path().display()))
        .expect("volume")
        .workdir("/data")
        .expect("workdir")
        .arg("read")
        .arg("in.txt");
    let out = capsule.run(&files, options).expect("run");
    assert_eq!(out.stdout, b"hello volume");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let (home, capsule) = capsule();
    let kind = |r: Result<_, Error>| r.map(|_| ()).map_err(|e| e.kind());
    assert_eq!(
        kind(capsule.module_from_file("/no/such.wasm").map(drop)),
        Err(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(capsule.module_from_bytes("junk", b"junk").map(drop)),
        Err(ErrorKind::InvalidModule)
    );
    // A component that is no command compiles, and is refused when it would run.
    let component = capsule
        .module_from_bytes("component", b"(component)")
        .expect("an empty component compiles");
    assert_eq!(
        kind(capsule.run(&component, RunOptions::new()).map(drop)),
        Err(ErrorKind::CannotRun)
    );
    assert_eq!(
        kind(RunOptions::new().volume("/no/such/dir:/x").map(drop)),
        Err(ErrorKind::InvalidInput)
    );
    let imports = capsule
        .module_from_bytes(
            "imports",
            br#"(module (import "env" "f" (func)) (func (export "_start")))"#,
        )
        .expect("compiles");
    let err = capsule
        .run(&imports, RunOptions::new())
        .expect_err("unknown import");
    assert!(err.to_string().contains("env::f"), "{err}");
    drop(home);
}

#[test]
fn runs_an_image_built_by_the_cli_with_docker_rules() {
    let env = capsule_tests::TestEnv::new();
    env.write(
        "ctx/show.wasm",
        std::fs::read(guests::examples::SHOW).expect("guest"),
    );
    env.write("ctx/index.txt", "a.md\t10\t2\n");
    env.write("ctx/pages/a.md", "hello page\n");
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY show.wasm /app/show.wasm\nCOPY index.txt /app/data/\nCOPY pages/ /app/pages/\nENTRYPOINT [\"/app/show.wasm\"]\n",
    );
    env.run(&["build", "-t", "pages", "ctx"]).assert_code(0);

    let capsule = Capsule::open(env.home()).expect("open the CLI's home");
    let image = capsule.image("pages").expect("find the image");
    assert!(image.id().starts_with("sha256:"));
    let out = capsule
        .run_image(&image, RunOptions::new().arg("a.md"))
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("a.md: 2 words") && stdout.contains("hello page"),
        "{stdout}"
    );
    // The container is gone after the run (the names lock stays).
    let containers = env.home().join("containers");
    assert_eq!(
        std::fs::read_dir(&containers)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
                })
                .count()
            })
            .unwrap_or(0),
        0
    );

    // --entrypoint, and a program that is not in the image.
    let err = capsule
        .run_image(&image, RunOptions::new().entrypoint("/nope.wasm"))
        .expect_err("missing program");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("/nope.wasm"), "{err}");
    let err = capsule.image("nosuch").expect_err("no such image");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let hello = capsule.image("hello-world").expect("built in");
    let out = capsule.run_image(&hello, RunOptions::new()).expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from Capsule!"));
}

/// A writer the test can read while the guest writes to it.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn streamed_output_and_limits_end_runs_with_their_reasons() {
    let (_home, capsule) = capsule();
    let service = capsule.module_from_file(guests::SERVICE).expect("load");
    // stdout streamed to a writer, stderr still captured.
    let stdout = Shared::default();
    let out = capsule
        .run(
            &service,
            RunOptions::new()
                .args(["tick", "3", "1"])
                .stdout(stdout.clone()),
        )
        .expect("run");
    assert!(out.status.success(), "{:?}", out.status);
    assert!(out.stdout.is_empty(), "streamed, not captured");
    assert_eq!(
        String::from_utf8_lossy(&stdout.0.lock().expect("lock")),
        "tick 1\ntick 2\ntick 3\n"
    );
    // A wall-clock limit interrupts a guest that runs forever.
    let out = capsule
        .run(
            &service,
            RunOptions::new()
                .args(["spin"])
                .timeout(std::time::Duration::from_millis(300)),
        )
        .expect("run");
    assert!(
        matches!(
            out.status,
            ExitStatus::Interrupted(capsule_sdk::Interruption::Timeout(_))
        ),
        "{:?}",
        out.status
    );
    assert_eq!(out.status.exit_code(), 124);
    // Fuel: the same module, compiled again with metering.
    let out = capsule
        .run(&service, RunOptions::new().args(["spin"]).fuel(5_000_000))
        .expect("run");
    assert_eq!(
        out.status,
        ExitStatus::Interrupted(capsule_sdk::Interruption::OutOfFuel(5_000_000))
    );
    // Memory: the hog allocates until refused, then aborts.
    let hog = capsule.module_from_file(guests::HOG).expect("load");
    let out = capsule
        .run(
            &hog,
            RunOptions::new().args(["mem", "1"]).memory_limit(16 << 20),
        )
        .expect("run");
    assert_eq!(out.status, ExitStatus::OutOfMemory(16 << 20), "{out:?}");
    assert_eq!(out.status.exit_code(), 137);
}

#[test]
fn in_memory_runs_modules_and_writes_nothing() {
    let capsule = Capsule::in_memory().expect("in memory");
    assert_eq!(capsule.home(), None);
    let module = capsule.module_from_file(guests::ARGS).expect("load");
    let out = capsule
        .run(&module, RunOptions::new().arg("x"))
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("argv[1]=x"));
    let err = capsule.image("hello-world").expect_err("no home");
    assert_eq!(err.kind(), ErrorKind::NoHome, "{err}");
}

#[test]
fn images_import_build_save_and_load_through_the_sdk() {
    let (home, capsule) = capsule();
    let image = capsule.import(guests::SERVICE, "svc:1").expect("import");
    let out = capsule
        .run_image(&image, RunOptions::new().args(["tick", "1", "0"]))
        .expect("run");
    assert_eq!(out.stdout, b"tick 1\n");
    // A recipe FROM it, built through the SDK.
    let context = home.path().join("ctx");
    std::fs::create_dir_all(&context).expect("ctx");
    std::fs::write(
        context.join("Capsulefile"),
        "FROM svc:1\nENV GREETING=built\nCMD [\"env\", \"GREETING\"]\n",
    )
    .expect("recipe");
    let built = capsule.build(&context, "svc:built").expect("build");
    let out = capsule.run_image(&built, RunOptions::new()).expect("run");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("built"),
        "{out:?}"
    );
    let err = capsule
        .build(home.path().join("nope"), "x:1")
        .expect_err("no context");
    assert_eq!(err.kind(), ErrorKind::Build, "{err}");
    // save, then load into another home: the same image.
    let archive = home.path().join("svc.tar");
    capsule.save(&built, &archive).expect("save");
    let (_other_home, other) = self::capsule();
    let loaded = other.load(&archive).expect("load");
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id(), built.id());
    assert_eq!(loaded[0].name(), "svc:built");
    // The loaded image's program compiled ahead, once: the other home's cache had none.
    assert!(
        other.compile_image(&loaded[0]).expect("compile"),
        "nothing was compiled"
    );
    assert!(!other.compile_image(&loaded[0]).expect("compile again"));
    let err = other
        .load(home.path().join("Capsulefile-missing.tar"))
        .expect_err("no archive");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[test]
fn containers_have_dockers_lifecycle_through_the_sdk() {
    let (_home, capsule) = capsule();
    let capsule = capsule.supervisor(capsule_tests::capsule_bin());
    let image = capsule.import(guests::SERVICE, "svc").expect("import");
    let web = capsule
        .create(
            &image,
            capsule_sdk::ContainerOptions::new()
                .name("web")
                .args(["tick", "0", "20"])
                .volume("data:/data")
                .expect("volume")
                .label("team", "sdk"),
        )
        .expect("create");
    assert_eq!(web.name().expect("name"), "web");
    assert_eq!(web.state().expect("state").status, "created");
    web.start().expect("start");
    let state = web.state().expect("state");
    assert!(state.running, "{state:?}");
    let err = web.start().expect_err("already running");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // The same name again is a conflict, and the home lists one container.
    let err = capsule
        .create(&image, capsule_sdk::ContainerOptions::new().name("web"))
        .expect_err("name taken");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(capsule.containers().expect("list").len(), 1);
    // Its log fills while it runs: one entry per line.
    let start = std::time::Instant::now();
    while web.logs().expect("logs").len() < 3 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "no logs"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let logs = web.logs().expect("logs");
    assert_eq!(logs[0].text, "tick 1\n");
    assert!(!logs[0].stderr);
    // Found by name from another handle; stopped with a short grace; exit 137.
    let found = capsule.container("web").expect("find");
    assert_eq!(found.id(), web.id());
    found
        .stop(Some(std::time::Duration::from_millis(100)))
        .expect("stop");
    let waited = web.clone();
    let code = capsule_tests::within(capsule_tests::test_timeout(), "web.wait()", move || {
        waited.wait()
    });
    assert_eq!(code.expect("wait"), 137);
    let state = web.state().expect("state");
    assert!(!state.running && state.status == "exited", "{state:?}");
    let err = web.kill().expect_err("not running");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // A one-shot container runs to its end.
    let job = capsule
        .create(
            &image,
            capsule_sdk::ContainerOptions::new().args(["tick", "2", "0", "5"]),
        )
        .expect("create");
    job.start().expect("start");
    let waited = job.clone();
    let code = capsule_tests::within(capsule_tests::test_timeout(), "job.wait()", move || {
        waited.wait()
    });
    assert_eq!(code.expect("wait"), 5);
    job.remove(false).expect("remove");
    // A running container is removed only with force.
    web.start().expect("start again");
    let err = web.clone().remove(false).expect_err("running");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    web.clone().remove(true).expect("remove -f");
    assert_eq!(
        capsule.container("web").expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    assert!(capsule.containers().expect("list").is_empty());
}

/// The SDK refuses the limits `capsule run` refuses, with the same rule (the library's
/// `spec::grammar`) and `ErrorKind::InvalidInput`, before anything runs or is created.
#[test]
fn refuses_the_limits_the_cli_refuses() {
    use capsule_sdk::ContainerOptions;
    use std::time::Duration;
    let (_home, capsule) = capsule();
    let hello = capsule.hello_world().expect("built-in module");
    let refused = [
        ("memory_limit(0)", RunOptions::new().memory_limit(0)),
        ("memory_limit(1024)", RunOptions::new().memory_limit(1024)),
        ("fuel(0)", RunOptions::new().fuel(0)),
        ("max_open_files(0)", RunOptions::new().max_open_files(0)),
        (
            "max_open_files(2^21)",
            RunOptions::new().max_open_files(1 << 21),
        ),
        ("timeout(0)", RunOptions::new().timeout(Duration::ZERO)),
        ("timeout(MAX)", RunOptions::new().timeout(Duration::MAX)),
    ];
    for (what, options) in refused {
        let err = capsule.run(&hello, options).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
    }
    let err = capsule
        .run(&hello, RunOptions::new().memory_limit(0))
        .expect_err("memory 0");
    assert!(err.to_string().contains("too small"), "{err}");
    // The smallest values the flags accept run.
    let out = capsule
        .run(
            &hello,
            RunOptions::new()
                .memory_limit(64 << 10)
                .fuel(1_000_000_000)
                .max_open_files(16),
        )
        .expect("run");
    assert!(out.status.success(), "{:?}", out.status);

    let image = capsule.import(guests::SERVICE, "svc").expect("import");
    let refused = [
        ("memory_limit(0)", ContainerOptions::new().memory_limit(0)),
        ("fuel(0)", ContainerOptions::new().fuel(0)),
        (
            "stop_timeout(MAX)",
            ContainerOptions::new().stop_timeout(Duration::MAX),
        ),
        (
            "timeout(MAX)",
            ContainerOptions::new().timeout(Duration::MAX),
        ),
    ];
    for (what, options) in refused {
        let err = capsule.create(&image, options).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
    }
    assert!(
        capsule.containers().expect("list").is_empty(),
        "nothing was created"
    );
}

/// Compose through the SDK: the same reading and checking of the file, and the same
/// `up`, `ps` and `down` as `capsule compose`.
#[test]
fn compose_projects_through_the_sdk() {
    use std::time::Duration;
    let (_home, capsule) = capsule();
    let capsule = capsule.supervisor(capsule_tests::capsule_bin());
    capsule.import(guests::SERVICE, "svc").expect("import");
    let dir = tempfile::tempdir().expect("project dir");
    let file = dir.path().join("compose.toml");
    std::fs::write(
        &file,
        "[services.a]\nimage = \"svc\"\ncommand = \"tick 0 50\"\n[services.b]\nimage = \"svc\"\ncommand = \"tick 0 50\"\ndepends_on = [\"a\"]\n",
    )
    .expect("write");
    let project = capsule.compose(&file, Some("sdkdemo")).expect("load");
    assert_eq!(project.name(), "sdkdemo");
    let up = project.up(&[]).expect("up");
    let names: Vec<String> = up.iter().map(|c| c.name().expect("name")).collect();
    assert_eq!(names, ["sdkdemo-a-1", "sdkdemo-b-1"]);
    assert!(up.iter().all(|c| c.state().expect("state").running));
    // Unchanged: the same containers, left running.
    let again = project.up(&["b"]).expect("up again");
    let ids =
        |cs: &[capsule_sdk::Container]| cs.iter().map(|c| c.id().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&up));
    assert_eq!(project.ps().expect("ps").len(), 2);
    let err = project.up(&["nope"]).expect_err("unknown service");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    project
        .down(Some(Duration::from_millis(100)), false)
        .expect("down");
    assert!(project.ps().expect("ps").is_empty());
    assert!(capsule.containers().expect("list").is_empty());
    // The file is checked as `compose config` checks it.
    std::fs::write(&file, "[services.a]\nimage = \"svc\"\nmemory = \"1q\"\n").expect("write");
    let err = capsule.compose(&file, None).expect_err("bad size");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("compose.toml:3:10"), "{err}");
    let err = capsule
        .compose(dir.path().join("missing.toml"), None)
        .expect_err("no file");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
