//! Reactor programs named `PATH#EXPORT` wherever a program is named: a module file, an
//! image's ENTRYPOINT and CMD, `--entrypoint`, a recipe's RUN, and the SDK. An export
//! without parameters gets the arguments as its argv; one with parameters takes them
//! from the arguments (argv holds them too).

use capsule_sdk::{Capsule, ExitStatus, RunOptions};
use capsule_tests::{TestEnv, guests};

/// A context whose image runs `guests/c/reactor.c` at /app/r.wasm, `#run` as ENTRYPOINT.
fn build_reactor_image(env: &TestEnv, tag: &str) -> capsule_tests::Run {
    env.write(
        "ctx/r.wasm",
        std::fs::read(guests::REACTOR).expect("reactor guest"),
    );
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\n\
         COPY r.wasm /app/r.wasm\n\
         RUN [\"/app/r.wasm#run\", \"from-recipe\"]\n\
         ENTRYPOINT [\"/app/r.wasm#run\"]\n\
         CMD [\"default-arg\"]\n",
    );
    env.run(&["build", "-t", tag, "ctx"])
}

fn argv_lines(who: &str, argv: &[&str]) -> String {
    let mut text = format!("{who} initialized=1 argc={}\n", argv.len());
    for (i, arg) in argv.iter().enumerate() {
        text.push_str(&format!("argv[{i}]={arg}\n"));
    }
    text
}

/// The guest's name is its test (`guests.rs` checks every guest has one).
#[test]
pub fn reactor() {
    let env = TestEnv::new();
    let build = build_reactor_image(&env, "r");
    build.assert_code(0);
    // RUN called the export with its argument as argv.
    let log = format!("{}{}", build.stdout, build.stderr);
    assert!(
        log.contains("run initialized=1 argc=2") && log.contains("argv[1]=from-recipe"),
        "RUN [\"/app/r.wasm#run\", \"from-recipe\"] output:\n{log}"
    );

    // ENTRYPOINT + CMD; arguments replace CMD; the program is argv[0] without #EXPORT,
    // and run's i32 result is the exit status, not printed.
    let run = env.run(&["run", "--rm", "r"]);
    run.assert_clean_success();
    assert_eq!(
        run.stdout,
        argv_lines("run", &["/app/r.wasm", "default-arg"])
    );
    let run = env.run(&["run", "--rm", "r", "a", "-c", "b c"]);
    run.assert_clean_success();
    assert_eq!(
        run.stdout,
        argv_lines("run", &["/app/r.wasm", "a", "-c", "b c"])
    );
    let run = env.run(&["run", "--rm", "r", "exit=7"]);
    run.assert_code(7);
    assert_eq!(run.stdout, argv_lines("run", &["/app/r.wasm", "exit=7"]));

    // --entrypoint names another export; the image's CMD is dropped.
    let other = env.run(&["run", "--rm", "--entrypoint", "/app/r.wasm#other", "r"]);
    other.assert_clean_success();
    assert_eq!(other.stdout, argv_lines("other", &["/app/r.wasm"]));
    let other = env.run(&["run", "--rm", "--entrypoint", "/app/r.wasm#other", "r", "x"]);
    assert_eq!(other.stdout, argv_lines("other", &["/app/r.wasm", "x"]));
    // An export with parameters takes them from the arguments, and argv holds them.
    let add = env.run(&[
        "run",
        "--rm",
        "--entrypoint",
        "/app/r.wasm#add",
        "r",
        "2",
        "40",
    ]);
    add.assert_clean_success();
    assert_eq!(
        add.stdout,
        format!("{}42\n", argv_lines("add", &["/app/r.wasm", "2", "40"]))
    );
    env.run(&["run", "--rm", "--entrypoint", "/app/r.wasm#add", "r", "2"])
        .assert_error(126, &["'add' takes 2 argument(s) but 1"]);
    // A missing export names the ones there are.
    env.run(&["run", "--rm", "--entrypoint", "/app/r.wasm#nope", "r"])
        .assert_error(126, &["'nope'", "run", "other", "add"]);
    // A relative program resolves against WORKDIR as a plain one does.
    let relative = env.run(&[
        "run",
        "--rm",
        "-w",
        "/app",
        "--entrypoint",
        "r.wasm#other",
        "r",
    ]);
    assert_eq!(relative.stdout, argv_lines("other", &["r.wasm"]));
    // The cache knows the image's program by the image and its path; a mount over
    // that path shows another program, and that one runs.
    env.write(
        "other-app/r.wasm",
        std::fs::read(guests::ARGS).expect("args guest"),
    );
    let mount = format!("{}:/app:ro", env.work().join("other-app").display());
    let shadowed = env.run(&[
        "run",
        "--rm",
        "-v",
        &mount,
        "--entrypoint",
        "/app/r.wasm",
        "r",
        "x",
    ]);
    shadowed.assert_clean_success();
    assert_eq!(shadowed.stdout, "argc=2\nargv[0]=/app/r.wasm\nargv[1]=x\n");
    // Without #EXPORT a reactor is refused with the exports to choose from.
    env.run(&["run", "--rm", "--entrypoint", "/app/r.wasm", "r"])
        .assert_error(126, &["reactor", "MODULE#EXPORT"]);

    // A module file on the command line: results are printed, as wasmtime run --invoke
    // prints them.
    let file = env.write("r.wasm", std::fs::read(guests::REACTOR).expect("guest"));
    let file = file.to_str().expect("utf-8");
    let direct = env.run(&["run", &format!("{file}#run"), "a", "b"]);
    direct.assert_clean_success();
    assert_eq!(
        direct.stdout,
        format!("{}0\n", argv_lines("run", &[file, "a", "b"]))
    );
}

#[test]
fn a_failing_reactor_program_in_run_fails_the_build() {
    let env = TestEnv::new();
    env.write(
        "ctx/r.wasm",
        std::fs::read(guests::REACTOR).expect("reactor guest"),
    );
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY r.wasm /app/r.wasm\nRUN [\"/app/r.wasm#run\", \"exit=3\"]\n",
    );
    let build = env.run(&["build", "-t", "bad", "ctx"]);
    build.assert_code(1);
    assert!(
        build.stderr.contains("exited with status 3"),
        "{}",
        build.stderr
    );
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY r.wasm /app/r.wasm\nRUN [\"/app/r.wasm#missing\"]\n",
    );
    let build = env.run(&["build", "-t", "bad", "ctx"]);
    assert_ne!(build.code, Some(0));
    assert!(
        build.stderr.contains("'missing'") && build.stderr.contains("other"),
        "{}",
        build.stderr
    );
}

#[test]
fn the_sdk_runs_reactor_programs_of_images() {
    let env = TestEnv::new();
    build_reactor_image(&env, "r").assert_code(0);
    let capsule = Capsule::open(env.home()).expect("open the CLI's home");
    let image = capsule.image("r").expect("find the image");
    let out = capsule
        .run_image(&image, RunOptions::new().arg("one").arg("two"))
        .expect("run");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        argv_lines("run", &["/app/r.wasm", "one", "two"])
    );
    assert!(out.results.is_empty(), "{:?}", out.results);
    let out = capsule
        .run_image(&image, RunOptions::new().arg("exit=5"))
        .expect("run");
    assert_eq!(out.status, ExitStatus::Exited(5));
    let out = capsule
        .run_image(
            &image,
            RunOptions::new().entrypoint("/app/r.wasm#other").arg("z"),
        )
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        argv_lines("other", &["/app/r.wasm", "z"])
    );
    let err = capsule
        .run_image(&image, RunOptions::new().entrypoint("/app/r.wasm#nope"))
        .expect_err("missing export");
    assert!(err.to_string().contains("'nope'"), "{err}");

    // A module with an export and no parameters gets the arguments as argv.
    let module = capsule.module_from_file(guests::REACTOR).expect("load");
    let out = capsule
        .run(&module, RunOptions::new().export("other").arg("q"))
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        argv_lines("other", &[guests::REACTOR, "q"])
    );
}

/// Imports a function Capsule does not provide (never called) and uses a tail call.
const NEEDS_LABELS: &str = r#"
(module
  (import "host" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $seven (result i32) (i32.const 7))
  (func $tail (result i32) (return_call $seven))
  (func (export "_start") (call $exit (call $tail))))
"#;

#[test]
fn image_labels_say_how_its_program_runs() {
    let env = TestEnv::new();
    env.wat("ctx/m.wasm", NEEDS_LABELS);
    let recipe = |labels: &str| {
        env.write(
            "ctx/Capsulefile",
            format!("FROM scratch\nCOPY m.wasm /m.wasm\n{labels}ENTRYPOINT [\"/m.wasm\"]\n"),
        );
    };
    recipe("");
    env.run(&["build", "-t", "plain", "ctx"]).assert_code(0);
    env.run(&["run", "--rm", "plain"])
        .assert_error(126, &["host::call", "--unknown-imports trap"]);

    recipe("LABEL io.capsule.unknown-imports=trap\n");
    env.run(&["build", "-t", "trap", "ctx"]).assert_code(0);
    env.run(&["run", "--rm", "trap"]).assert_code(7);
    // The flag still wins over the label.
    env.run(&["run", "--rm", "--unknown-imports", "refuse", "trap"])
        .assert_error(126, &["host::call"]);

    // Features: the label turns tail calls off, so the module no longer validates;
    // -W turns them back on.
    recipe(
        "LABEL io.capsule.unknown-imports=trap io.capsule.wasm-features=\"exceptions, tail-call=n\"\n",
    );
    env.run(&["build", "-t", "notail", "ctx"]).assert_code(0);
    let refused = env.run(&["run", "--rm", "notail"]);
    refused.assert_code(126);
    assert!(refused.stderr.contains("tail"), "{}", refused.stderr);
    env.run(&["run", "--rm", "-W", "tail-call=y", "notail"])
        .assert_code(7);

    // Values Capsule does not understand are refused when the recipe is built.
    for bad in [
        "LABEL io.capsule.unknown-imports=yes\n",
        "LABEL io.capsule.wasm-features=teleport\n",
        "LABEL io.capsule.wasm-features=\"simd=maybe\"\n",
    ] {
        recipe(bad);
        let build = env.run(&["build", "-t", "bad", "ctx"]);
        build.assert_code(1);
        assert!(
            build.stderr.contains("io.capsule.") && build.stderr.contains("LABEL"),
            "{bad}: {}",
            build.stderr
        );
    }
}
