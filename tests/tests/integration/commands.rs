//! How a program is found, wherever one is named (run, RUN, CMD): a name without a `/`
//! through the container's `PATH`, a `#!` script through its interpreter (Linux's
//! rules), and `RUN --mount` of the context, a cache and a tmpfs.

use capsule_tests::{TestEnv, guests};

/// `argv` as `guests/c/args.c` prints it.
fn argv_lines(argv: &[&str]) -> String {
    let mut text = format!("argc={}\n", argv.len());
    for (i, arg) in argv.iter().enumerate() {
        text.push_str(&format!("argv[{i}]={arg}\n"));
    }
    text
}

/// Each step's last line (a RUN shows its own line before its output, then its outcome).
fn steps(stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with('[')) {
        let number = line.split(']').next();
        match out.last_mut() {
            Some(last) if last.split(']').next() == number => *last = line.to_owned(),
            _ => out.push(line.to_owned()),
        }
    }
    out
}

#[test]
fn programs_are_found_on_path_and_scripts_run_their_interpreter() {
    let env = TestEnv::new();
    let args = std::fs::read(guests::ARGS).expect("args guest");
    env.write("ctx/args", &args);
    env.write("ctx/opt/args.wasm", &args);
    // One argument after the interpreter, spaces and all (Linux's rule).
    env.write("ctx/greet", "#!/usr/local/bin/args --flag one\nignored\n");
    env.write("ctx/nested", "#!/usr/local/bin/greet\n");
    env.write("ctx/viaenv", "#!/usr/bin/env args\n");
    env.write("ctx/loop", "#!/usr/local/bin/loop\n");
    env.write("ctx/blank", "#!  \n");
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\n\
         COPY args greet nested viaenv loop blank /usr/local/bin/\n\
         COPY opt/args.wasm /opt/tools/args.wasm\n\
         RUN [\"args\", \"in-recipe\"]\n\
         RUN [\"greet\", \"in-recipe\"]\n\
         CMD [\"greet\", \"x\"]\n",
    );
    let build = env.run(&["build", "-t", "cmds", "ctx"]);
    build.assert_code(0);
    // RUN found `args` on Docker's default PATH, and ran the script's interpreter.
    let log = format!("{}{}", build.stdout, build.stderr);
    assert!(
        log.contains(&argv_lines(&["args", "in-recipe"])),
        "RUN [\"args\"]:\n{log}"
    );
    assert!(
        log.contains(&argv_lines(&[
            "/usr/local/bin/args",
            "--flag one",
            "/usr/local/bin/greet",
            "in-recipe"
        ])),
        "RUN [\"greet\"]:\n{log}"
    );

    let run = env.run(&["run", "--rm", "cmds"]);
    run.assert_clean_success();
    assert_eq!(
        run.stdout,
        argv_lines(&[
            "/usr/local/bin/args",
            "--flag one",
            "/usr/local/bin/greet",
            "x"
        ])
    );
    // A script whose interpreter is a script: each adds its path.
    let run = env.run(&["run", "--rm", "cmds", "nested", "a b"]);
    run.assert_clean_success();
    assert_eq!(
        run.stdout,
        argv_lines(&[
            "/usr/local/bin/args",
            "--flag one",
            "/usr/local/bin/greet",
            "/usr/local/bin/nested",
            "a b"
        ])
    );
    // `#!/usr/bin/env NAME` in an image without env: NAME on PATH.
    let run = env.run(&["run", "--rm", "cmds", "viaenv", "b"]);
    run.assert_clean_success();
    assert_eq!(
        run.stdout,
        argv_lines(&["args", "/usr/local/bin/viaenv", "b"])
    );
    // PATH from -e, searched in order.
    let run = env.run(&[
        "run",
        "--rm",
        "-e",
        "PATH=/opt/tools:/usr/local/bin",
        "cmds",
        "args.wasm",
        "c",
    ]);
    run.assert_clean_success();
    assert_eq!(run.stdout, argv_lines(&["args.wasm", "c"]));

    // Found nowhere: Docker's 127, and the PATH that was searched.
    env.run(&["run", "--rm", "-e", "PATH=/nowhere", "cmds", "greet"])
        .assert_error(
            127,
            &[
                "greet: not found in the container's PATH (/nowhere)",
                "working directory /",
            ],
        );
    // A detached container records the same code.
    env.run(&["run", "-d", "--name", "lost", "cmds", "nosuch"]);
    let wait = env.run(&["wait", "lost"]);
    assert_eq!(wait.stdout.trim(), "127", "{wait:?}");
    // Scripts that cannot run: 126, one line each.
    env.run(&["run", "--rm", "cmds", "loop"]).assert_error(
        126,
        &["/usr/local/bin/loop: more than 4 #! interpreters deep"],
    );
    env.run(&["run", "--rm", "cmds", "blank"]).assert_error(
        126,
        &["/usr/local/bin/blank: its #! line names no interpreter"],
    );
}

#[test]
fn run_mounts_bind_the_context_keep_a_cache_and_key_the_step() {
    let env = TestEnv::new();
    env.write(
        "ctx/files.wasm",
        std::fs::read(guests::FILES).expect("files guest"),
    );
    env.write("ctx/wheels/a.whl", "first\n");
    env.write("ctx/wheels/secret.key", "hidden\n");
    env.write("ctx/.capsuleignore", "wheels/*.key\n");
    let recipe = "FROM scratch\n\
         COPY files.wasm /bin/files.wasm\n\
         RUN --mount=type=bind,source=wheels,target=/wheels [\"/bin/files.wasm\", \"ls\", \"/wheels\"]\n\
         RUN --mount=type=bind,source=wheels,target=/wheels [\"/bin/files.wasm\", \"write\", \"/wheels/new\", \"x\"]\n\
         RUN --mount=type=bind,source=wheels,target=/wheels,rw [\"/bin/files.wasm\", \"write\", \"/wheels/new\", \"x\"]\n\
         RUN --mount=type=cache,target=/cache [\"/bin/files.wasm\", \"append\", \"/cache/log\", \"run\"]\n\
         RUN --mount=type=cache,target=/cache [\"/bin/files.wasm\", \"read\", \"/cache/log\"]\n\
         RUN --mount=type=tmpfs,target=/scratch [\"/bin/files.wasm\", \"write\", \"/scratch/t\", \"x\"]\n\
         CMD [\"/bin/files.wasm\", \"ls\", \"/\"]\n";
    // The read-only bind refuses the write: that step fails, naming the errno.
    env.write("ctx/Capsulefile", recipe);
    let failed = env.run(&["build", "-t", "mounts", "ctx"]);
    failed.assert_code(1);
    let log = format!("{}{}", failed.stdout, failed.stderr);
    // The ignore file applies to what the bind shows, as BuildKit's context.
    assert!(
        log.contains("a.whl\n") && !log.contains("secret.key"),
        "{log}"
    );
    assert!(
        log.contains("EROFS"),
        "a read-only bind is written to:\n{log}"
    );

    let recipe = recipe.replace(
        "RUN --mount=type=bind,source=wheels,target=/wheels [\"/bin/files.wasm\", \"write\", \"/wheels/new\", \"x\"]\n",
        "",
    );
    env.write("ctx/Capsulefile", &recipe);
    let first = env.run(&["build", "-t", "mounts", "ctx"]);
    first.assert_code(0);
    let log = format!("{}{}", first.stdout, first.stderr);
    assert!(log.contains("\nrun["), "the cache was read back:\n{log}");
    // Nothing a mount holds is in the image; the rw bind's write went with its copy.
    let ls = env.run(&["run", "--rm", "mounts"]);
    ls.assert_clean_success();
    assert_eq!(ls.stdout, "bin\ntmp\n", "{ls:?}");
    assert!(
        !env.work().join("ctx/wheels/new").exists(),
        "a rw bind wrote into the context"
    );

    // Unchanged: every step cached. A changed file under the bind misses that step,
    // named by the mount; the cache keeps what the last run appended.
    let again = env.run(&["build", "-t", "mounts", "ctx"]);
    again.assert_code(0);
    assert!(
        steps(&again.stderr)
            .iter()
            .skip(1)
            .all(|s| s.ends_with("CACHED")),
        "{}",
        again.stderr
    );
    env.write("ctx/wheels/a.whl", "second\n");
    let changed = env.run(&["build", "-t", "mounts", "ctx"]);
    changed.assert_code(0);
    let s = steps(&changed.stderr);
    assert!(s[1].ends_with("CACHED"), "{}", changed.stderr);
    assert!(
        s[2].contains("rebuilt: mount /wheels of the context's wheels changed"),
        "{}",
        changed.stderr
    );
    // An ignored file changing is not seen.
    env.write("ctx/wheels/secret.key", "other\n");
    let ignored = env.run(&["build", "-t", "mounts", "ctx"]);
    assert!(
        steps(&ignored.stderr)
            .iter()
            .skip(1)
            .all(|s| s.ends_with("CACHED")),
        "{}",
        ignored.stderr
    );
    // --no-cache runs the cache step again: it sees both appends.
    let nocache = env.run(&["build", "--no-cache", "-t", "mounts", "ctx"]);
    nocache.assert_code(0);
    let log = format!("{}{}", nocache.stdout, nocache.stderr);
    assert!(log.contains("runrun") || log.contains("run\nrun"), "{log}");

    // A source outside the context, or missing, is one line at its position.
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nRUN --mount=source=../..,target=/x [\"/bin/files.wasm\"]\n",
    );
    let outside = env.run(&["build", "ctx"]);
    outside.assert_code(1);
    assert!(
        outside.stderr.ends_with(
            "Capsulefile:2:1: RUN --mount source=../.. is outside the build context: name a directory inside it\n"
        ),
        "{}",
        outside.stderr
    );
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nRUN --mount=source=nothere,target=/x [\"/bin/files.wasm\"]\n",
    );
    let missing = env.run(&["build", "ctx"]);
    missing.assert_code(1);
    assert!(
        missing.stderr.ends_with(
            "RUN --mount source=nothere is not in the build context (or .capsuleignore leaves it out)\n"
        ),
        "{}",
        missing.stderr
    );
}
