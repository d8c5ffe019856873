//! `capsule run` over the C guest programs: arguments, environment, working directory,
//! exit codes, stdio, volumes and traps. Each guest program has a test named after it.

use capsule_tests::{TestEnv, guests};

#[test]
pub fn args() {
    let env = TestEnv::new();
    let run = env.run(&[
        "run",
        guests::ARGS,
        "plain",
        "héllo wörld",
        "日本語",
        "--flag",
        "-e",
        "",
        "a=b",
    ]);
    run.assert_clean_success();
    let expected = format!(
        "argc=8\nargv[0]={}\nargv[1]=plain\nargv[2]=héllo wörld\nargv[3]=日本語\nargv[4]=--flag\nargv[5]=-e\nargv[6]=\nargv[7]=a=b\n",
        guests::ARGS
    );
    assert_eq!(run.stdout, expected);
}

#[test]
pub fn env() {
    let env = TestEnv::new();
    let file = env.write(
        "vars.env",
        "# a comment\n\nFROM_FILE=file value\nOVERRIDE=from file\nCOPIED_IN_FILE\n",
    );
    let file = file.to_str().expect("utf-8 path");
    let run = capsule_tests::Run::of(
        env.capsule()
            .env("HOST_ONLY", "must not leak")
            .env("COPIED", "from host")
            .env("COPIED_IN_FILE", "host via file")
            .args([
                "run",
                "--env-file",
                file,
                "-e",
                "A=1",
                "-e",
                "EMPTY=",
                "-e",
                "EQ=x=y",
                "-e",
                "COPIED",
            ])
            .args([
                "-e",
                "NOT_ON_HOST",
                "-e",
                "OVERRIDE=from flag",
                "-e",
                "UNICODE=ünï",
            ])
            .arg(guests::ENV),
        None,
    );
    run.assert_clean_success();
    assert_eq!(
        run.stdout,
        "FROM_FILE=file value\nOVERRIDE=from flag\nCOPIED_IN_FILE=host via file\nA=1\nEMPTY=\nEQ=x=y\nCOPIED=from host\nUNICODE=ünï\n",
        "the guest sees exactly the variables it was given, in order, and nothing from the host"
    );
}

#[test]
fn env_lookup_by_name() {
    let env = TestEnv::new();
    let run = env.run(&["run", "-e", "SET=yes", guests::ENV, "SET", "HOME", "PATH"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "SET=yes\nHOME is unset\nPATH is unset\n");
}

#[test]
pub fn exit() {
    let env = TestEnv::new();
    for code in [0, 1, 3, 42, 125, 126, 127, 255] {
        let run = env.run(&["run", guests::EXIT, &code.to_string()]);
        run.assert_code(code);
        assert_eq!(run.stderr, "", "a guest's own exit status is not an error");
    }
}

#[test]
fn exit_status_outside_0_255_is_reported() {
    let env = TestEnv::new();
    env.run(&["run", guests::EXIT, "256"])
        .assert_error(134, &["proc_exit(256)", "0..=255"]);
    env.run(&["run", guests::EXIT, "-1"])
        .assert_error(134, &["proc_exit(4294967295)"]);
}

#[test]
pub fn stdio() {
    let env = TestEnv::new();
    let input = "first line\nsecond line — ünïcode\n".repeat(1000);
    let run = env.run_with_stdin(&["run", guests::STDIO], input.as_bytes());
    run.assert_code(0);
    assert_eq!(run.stdout, input, "stdin is copied to stdout byte for byte");
    assert_eq!(
        run.stderr,
        format!("stdio: copied {} bytes\n", input.len()),
        "stderr is separate"
    );
}

#[test]
fn stdin_closed_reads_as_empty() {
    let env = TestEnv::new();
    let run = env.run(&["run", guests::STDIO]);
    run.assert_code(0);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "stdio: copied 0 bytes\n");
}

#[test]
pub fn files() {
    // A read-write volume: the guest's writes land on the host.
    let env = TestEnv::new();
    let data = env.work().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("existing.txt"), "from the host\n").expect("write");
    let volume = format!("{}:/data", data.display());

    let run = env.run(&[
        "run",
        "-v",
        &volume,
        guests::FILES,
        "write",
        "/data/new.txt",
        "written by the guest",
    ]);
    run.assert_clean_success();
    assert_eq!(
        std::fs::read_to_string(data.join("new.txt")).expect("guest wrote the file"),
        "written by the guest"
    );

    env.run(&[
        "run",
        "-v",
        &volume,
        guests::FILES,
        "append",
        "/data/existing.txt",
        "appended\n",
    ])
    .assert_code(0);
    assert_eq!(
        std::fs::read_to_string(data.join("existing.txt")).expect("read"),
        "from the host\nappended\n"
    );

    env.run(&["run", "-v", &volume, guests::FILES, "mkdir", "/data/sub"])
        .assert_code(0);
    assert!(data.join("sub").is_dir());

    let ls = env.run(&["run", "-v", &volume, guests::FILES, "ls", "/data"]);
    ls.assert_code(0);
    assert_eq!(ls.stdout, "existing.txt\nnew.txt\nsub\n");

    env.run(&["run", "-v", &volume, guests::FILES, "rm", "/data/new.txt"])
        .assert_code(0);
    assert!(!data.join("new.txt").exists());

    // Nothing outside the volume is visible.
    let outside = env.run(&["run", "-v", &volume, guests::FILES, "read", "/etc/passwd"]);
    outside.assert_code(1);
    assert!(
        outside
            .stdout
            .starts_with("error: open /etc/passwd: errno="),
        "{}",
        outside.stdout
    );
    let dotdot = env.run(&[
        "run",
        "-v",
        &volume,
        guests::FILES,
        "read",
        "/data/../../../../etc/passwd",
    ]);
    dotdot.assert_code(1);
    assert!(
        !dotdot.stdout.contains("root:"),
        "escaped the volume: {}",
        dotdot.stdout
    );
}

#[test]
fn read_only_volume_refuses_writes_and_keeps_host_files() {
    let env = TestEnv::new();
    let data = env.work().join("ro");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("keep.txt"), "original\n").expect("write");
    let volume = format!("{}:/ro:ro", data.display());

    let read = env.run(&["run", "-v", &volume, guests::FILES, "read", "/ro/keep.txt"]);
    read.assert_clean_success();
    assert_eq!(read.stdout, "original\n");

    // A read-only mount answers EROFS to every mutation, as POSIX does (wasmtime-wasi
    // answers EPERM under a read-only preopen).
    for (args, call) in [
        (vec!["write", "/ro/keep.txt", "clobbered"], "open"),
        (vec!["write", "/ro/new.txt", "new"], "open"),
        (vec!["append", "/ro/keep.txt", "more"], "open"),
        (vec!["mkdir", "/ro/dir"], "mkdir"),
        (vec!["rm", "/ro/keep.txt"], "unlink"),
    ] {
        let mut argv = vec!["run", "-v", &volume, guests::FILES];
        argv.extend(args.iter().copied());
        let run = env.run(&argv);
        run.assert_code(1);
        assert!(
            run.stdout.starts_with(&format!("error: {call} ")),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("errno=69 (EROFS)"),
            "expected EROFS for {args:?}: {}",
            run.stdout
        );
    }
    assert_eq!(
        std::fs::read_to_string(data.join("keep.txt")).expect("read"),
        "original\n"
    );
    let names: Vec<_> = std::fs::read_dir(&data)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("keep.txt")],
        "nothing was created on the host"
    );
}

#[test]
fn workdir_makes_relative_paths_resolve_inside_it() {
    let env = TestEnv::new();
    let data = env.work().join("app");
    std::fs::create_dir_all(data.join("conf")).expect("mkdir");
    std::fs::write(data.join("conf/settings.txt"), "relative works\n").expect("write");
    let volume = format!("{}:/app", data.display());

    let run = env.run(&[
        "run",
        "-v",
        &volume,
        "-w",
        "/app",
        guests::FILES,
        "read",
        "conf/settings.txt",
    ]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "relative works\n");

    let nested = env.run(&[
        "run",
        "-v",
        &volume,
        "--workdir",
        "/app/conf",
        guests::FILES,
        "read",
        "settings.txt",
    ]);
    nested.assert_clean_success();
    assert_eq!(nested.stdout, "relative works\n");

    // Absolute paths still resolve from the root.
    let abs = env.run(&[
        "run",
        "-v",
        &volume,
        "-w",
        "/app/conf",
        guests::FILES,
        "read",
        "/app/conf/settings.txt",
    ]);
    abs.assert_clean_success();

    // A relative write lands in the workdir on the host.
    env.run(&[
        "run",
        "-v",
        &volume,
        "-w",
        "/app",
        guests::FILES,
        "write",
        "out.txt",
        "x",
    ])
    .assert_code(0);
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).expect("read"),
        "x"
    );
}

#[test]
fn workdir_outside_volumes_is_created_in_the_root() {
    let env = TestEnv::new();
    let run = env.run(&[
        "run",
        "-w",
        "/srv/app",
        guests::FILES,
        "write",
        "made-here.txt",
        "x",
    ]);
    run.assert_clean_success();
    let ls = env.run(&["run", "-w", "/srv/app", guests::FILES, "ls", "/srv"]);
    ls.assert_clean_success();
    assert_eq!(
        ls.stdout, "app\n",
        "the workdir exists, like Docker's WORKDIR"
    );
}

#[test]
pub fn trap() {
    let env = TestEnv::new();
    let run = env.run(&["run", guests::TRAP]);
    run.assert_code(134);
    assert_eq!(
        run.stdout, "about to trap\n",
        "output before the trap is kept"
    );
    let mut lines = run.stderr.lines();
    let first = lines.next().expect("a reason line");
    assert!(
        first.starts_with("capsule: guest trapped: wasm trap: "),
        "{first}"
    );
    assert!(first.contains("unreachable"), "{first}");
    assert_eq!(lines.next(), Some("wasm backtrace:"));
    let frames: Vec<&str> = lines.collect();
    assert!(
        frames.iter().any(|f| f.contains("crash_here")),
        "backtrace names the trapping function:\n{}",
        run.stderr
    );
    assert!(
        frames.iter().any(|f| f.contains("guest_work")),
        "and its caller:\n{}",
        run.stderr
    );
    assert!(
        frames.iter().any(|f| f.contains("_start")),
        "down to _start:\n{}",
        run.stderr
    );
}

#[test]
fn rust_std_relative_paths_resolve_in_the_workdir() {
    let env = TestEnv::new();
    let app = env.work().join("app");
    std::fs::create_dir(&app).expect("mkdir");
    let volume = format!("{}:/app", app.display());
    let run = env.run(&[
        "run",
        "-v",
        &volume,
        "-w",
        "/app",
        guests::conformance::RUST_STD,
        "/app",
        "relative",
    ]);
    run.assert_clean_success();
    assert!(
        run.stdout
            .contains("read_to_string: ok \"hello from rust\\n\""),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(app.join("renamed.txt"))
            .expect("the guest's relative writes landed in the workdir"),
        "hello from rust\nmore\n"
    );
    assert!(app.join("hard.txt").is_file());
}

/// `shutdown(3)`: descriptor 3 is Capsule's root preopen, a directory, so the socket
/// call answers ENOTSOCK (57), not EBADF: the descriptor exists. (wasmtime has no
/// preopen at 3 here and answers EBADF; that difference is expected.)
#[test]
fn sock_shutdown_on_the_root_preopen_is_enotsock() {
    let env = TestEnv::new();
    let wasm = env.wat(
        "shutdown.wat",
        r#"(module
            (import "wasi_snapshot_preview1" "sock_shutdown" (func $shutdown (param i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start")
                ;; fd 3 must be a preopen, else exit 100
                (if (i32.ne (call $prestat (i32.const 3) (i32.const 0)) (i32.const 0))
                    (then (call $exit (i32.const 100))))
                (call $exit (call $shutdown (i32.const 3) (i32.const 3)))))"#,
    );
    let run = env.run(&["run", wasm.to_str().expect("utf-8 path")]);
    run.assert_code(57);
    // And a descriptor that does not exist is EBADF (8).
    let wasm = env.wat(
        "shutdown_bad.wat",
        r#"(module
            (import "wasi_snapshot_preview1" "sock_shutdown" (func $shutdown (param i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start") (call $exit (call $shutdown (i32.const 77) (i32.const 3)))))"#,
    );
    env.run(&["run", wasm.to_str().expect("utf-8 path")])
        .assert_code(8);
}

/// At the 1,024-descriptor limit `open(O_CREAT)` answers EMFILE and creates nothing on
/// the host: the limit is checked before any side effect.
#[test]
pub fn emfile() {
    let env = TestEnv::new();
    let dir = env.work().join("data");
    std::fs::create_dir(&dir).expect("mkdir");
    let volume = format!("{}:/data", dir.display());
    let run = env.run(&["run", "-v", &volume, capsule_tests::guests::EMFILE, "/data"]);
    run.assert_clean_success();
    assert!(
        run.stdout.contains("limit reached after") && run.stdout.contains(": EMFILE"),
        "the guest should reach the descriptor limit:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("create at the limit: EMFILE"),
        "{}",
        run.stdout
    );
    assert!(
        !dir.join("fresh").exists(),
        "a refused open(O_CREAT) left a file behind"
    );
}
