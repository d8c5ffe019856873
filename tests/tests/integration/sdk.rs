//! The SDK, embedded in this test process, over the same guest programs.

use capsule_sdk::{Capsule, Error, ExitStatus, RunOptions};
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
    assert!(matches!(
        capsule.module_from_file("/no/such.wasm"),
        Err(Error::Module(_))
    ));
    assert!(matches!(
        capsule.module_from_bytes("junk", b"junk"),
        Err(Error::Module(_))
    ));
    assert!(matches!(
        capsule.module_from_bytes("component", b"(component)"),
        Err(Error::Module(_))
    ));
    assert!(matches!(
        RunOptions::new().volume("/no/such/dir:/x"),
        Err(Error::Spec(_))
    ));
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
    assert!(matches!(err, Error::Program { .. }), "{err}");
    assert!(matches!(capsule.image("nosuch"), Err(Error::Image(_))));
    let hello = capsule.image("hello-world").expect("built in");
    let out = capsule.run_image(&hello, RunOptions::new()).expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from Capsule!"));
}
