//! The image examples of `examples/`, built and run exactly as `examples/README.md` tells
//! a user to: each context is copied from the repository, the example programs (built by
//! `build.rs` from `examples/guests`) are placed in its `bin/` as `examples/build.sh`
//! does, then `capsule build` and `capsule run` go through the real binary. The expected
//! outputs are the ones `examples/README.md` shows.

use capsule_tests::{TestEnv, guests};
use std::fs;
use std::path::{Path, PathBuf};

/// `capsule run catalog-app`, as shown in `examples/README.md`.
const CATALOG_REPORT: &str = "\
== Recipe Box ==
Three recipes, served from the app layer on top of catalog-base.
env APP_MODE=production
data_dir: data
  bread.txt     Country bread    116 bytes
  pancakes.txt  Pancakes         112 bytes
  soup.txt      Tomato soup      125 bytes
total: 3 files, 353 bytes
";

/// `capsule run pages`, as shown in `examples/README.md`.
const PAGES_LIST: &str = "\
pages in this image (from /app/data/index.txt):
  intro.md: 37 words
  layers.md: 25 words
  sandbox.md: 20 words
";

/// `examples/` in the repository.
pub(super) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Copies the build context `examples/<example>` to `<work>/<example>`, leaving out its
/// `bin/` (where `examples/build.sh` puts the programs; the tests put fresh ones there),
/// and returns the copy.
fn copy_context(env: &TestEnv, example: &str) -> PathBuf {
    let from = examples_dir().join(example);
    let to = env.work().join(example);
    copy_dir(&from, &to, &["bin"]);
    to
}

/// Copies a directory tree, leaving out the entries named in `skip` at every level.
pub(super) fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst, skip);
        } else {
            fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

/// Puts a built example program at `context/bin/<name>`, as `examples/build.sh` does.
fn install(context: &Path, wasm: &str, name: &str) {
    let bin = context.join("bin");
    fs::create_dir_all(&bin).expect("create bin/");
    fs::copy(wasm, bin.join(name)).unwrap_or_else(|e| panic!("copy {wasm}: {e}"));
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// `capsule build -t TAG CONTEXT`, which must succeed.
fn build(env: &TestEnv, tag: &str, context: &Path) {
    env.run(&["build", "-t", tag, path_str(context)])
        .assert_code(0);
}

#[test]
fn layered_app_adds_data_and_config_on_top_of_its_base_image() {
    let env = TestEnv::new();
    let base = copy_context(&env, "layered-app/base");
    let app = copy_context(&env, "layered-app/app");
    install(&base, guests::examples::CATALOG, "catalog.wasm");
    assert!(
        app.join("data/draft.txt.bak").is_file(),
        "the context holds the file that .capsuleignore leaves out"
    );

    build(&env, "catalog-base", &base);
    build(&env, "catalog-app", &app);

    // ENTRYPOINT and the program from the base, data and config from the app's layers,
    // CMD, ENV and WORKDIR from the app (APP_MODE overrides the base's, `data` is
    // relative to /srv).
    let run = env.run(&["run", "catalog-app"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, CATALOG_REPORT);
    assert!(
        !run.stdout.contains("draft"),
        "data/*.bak is in .capsuleignore: COPY data/ must leave it out\n{}",
        run.stdout
    );

    // Arguments replace CMD and keep the ENTRYPOINT.
    let missing = env.run(&["run", "catalog-app", "--config", "/etc/missing.toml"]);
    missing.assert_code(2);
    assert_eq!(missing.stdout, "");
    assert!(
        missing
            .stderr
            .contains("catalog: cannot read the config file /etc/missing.toml"),
        "{}",
        missing.stderr
    );

    // The base alone has the program but neither CMD nor config.
    let bare = env.run(&["run", "catalog-base"]);
    bare.assert_code(2);
    assert!(
        bare.stderr.contains("catalog: no config file given"),
        "{}",
        bare.stderr
    );
    let no_config = env.run(&["run", "catalog-base", "--config", "/etc/catalog.toml"]);
    no_config.assert_code(2);
    assert!(
        no_config
            .stderr
            .contains("cannot read the config file /etc/catalog.toml"),
        "the app's layers are not in the base: {}",
        no_config.stderr
    );
}

#[test]
fn multi_stage_build_keeps_the_index_and_pages_but_not_the_tool() {
    let env = TestEnv::new();
    let context = copy_context(&env, "multi-stage");
    install(&context, guests::examples::MKINDEX, "mkindex.wasm");
    install(&context, guests::examples::SHOW, "show.wasm");

    // The builder stage RUNs mkindex; the final stage copies its output.
    build(&env, "pages", &context);

    let list = env.run(&["run", "pages"]);
    list.assert_clean_success();
    assert_eq!(list.stdout, PAGES_LIST);

    let intro = env.run(&["run", "pages", "intro.md"]);
    intro.assert_clean_success();
    let page = fs::read_to_string(examples_dir().join("multi-stage/pages/intro.md"))
        .expect("read pages/intro.md");
    assert_eq!(intro.stdout, format!("{PAGES_LIST}\n--- intro.md\n{page}"));

    let missing = env.run(&["run", "pages", "missing.md"]);
    missing.assert_code(1);
    assert_eq!(missing.stdout, PAGES_LIST);
    assert!(
        missing
            .stderr
            .contains("show: no page named \"missing.md\" in /app/pages"),
        "{}",
        missing.stderr
    );

    // Only what the final stage copied is in the image: no build tool, no sources.
    for (path, expected) in [
        ("/app/show.wasm", "yes\n"),
        ("/app/data/index.txt", "yes\n"),
        ("/app/pages/sandbox.md", "yes\n"),
        ("/tools/mkindex.wasm", "no\n"),
        ("/tools", "no\n"),
        ("/src/pages", "no\n"),
        ("/out/index.txt", "no\n"),
    ] {
        let run = env.run(&["run", "pages", "--exists", path]);
        run.assert_clean_success();
        assert_eq!(run.stdout, expected, "--exists {path}");
    }
}

/// `capsule run python-app`, as shown in `examples/README.md`.
const PYTHON_APP_REPORT: &str = r#"{
  "python": "3.15.0",
  "items": 5,
  "total_grams": 3050,
  "shelves": {
    "cans": [
      "beans",
      "tomatoes"
    ],
    "dry": [
      "flour",
      "rice"
    ],
    "sweet": [
      "honey"
    ]
  }
}
"#;

#[test]
fn python_base_image_and_an_app_on_it() {
    // CPython's module takes minutes to compile: every test that runs it shares one
    // module cache (target/capsule-test-module-cache), so it is compiled once.
    let env = TestEnv::with_shared_module_cache();
    let context = super::django::python_base_context();
    // Its RUN compiles CPython's module when the shared cache does not hold it yet:
    // minutes on a small machine, so more than the default bound.
    env.run_within(
        &["build", "-t", "python:3.15", path_str(&context)],
        std::time::Duration::from_secs(30 * 60),
    )
    .assert_code(0);

    // As Docker's python image: `python` found on the image's PATH (a #! bootstrap over
    // the reactor), no --unknown-imports, no -W flags: the image's labels say what
    // CPython needs.
    let answer = env.run(&["run", "--rm", "python:3.15", "python", "-c", "print(6*7)"]);
    answer.assert_clean_success();
    assert_eq!(answer.stdout, "42\n");
    // argv, the environment and the exit status, as CPython's command line sets them.
    let argv = env.run(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "python:3.15",
        "python",
        "-c",
        "import os, sys; print(sys.argv, os.environ['GREETING'], sys.prefix, sys.executable); sys.exit(3)",
        "a b",
        "-x",
    ]);
    argv.assert_code(3);
    assert_eq!(
        argv.stdout,
        "['-c', 'a b', '-x'] hi /usr/local /usr/local/bin/python\n"
    );
    let error = env.run(&["run", "--rm", "python:3.15", "python3", "-c", "1/0"]);
    error.assert_code(1);
    assert!(
        error
            .stderr
            .starts_with("Traceback (most recent call last):\n")
            && error
                .stderr
                .ends_with("ZeroDivisionError: division by zero\n"),
        "{}",
        error.stderr
    );
    // -m, PYTHONPATH (after the script's directory), site-packages, PYTHONUNBUFFERED
    // (stdout and stderr interleaved in order through one pipe) and
    // PYTHONDONTWRITEBYTECODE.
    let module = env.run_with_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "python:3.15",
            "python",
            "-m",
            "json.tool",
            "--compact",
        ],
        b"{\"a\": [1, 2]}",
    );
    module.assert_clean_success();
    assert_eq!(module.stdout, "{\"a\":[1,2]}\n");
    env.write(
        "pylib/greet.py",
        "def hello():\n    return 'hello from PYTHONPATH'\n",
    );
    env.write(
        "pylib/main.py",
        "import sys, greet, pip\nprint(sys.path[0], sys.path[1], greet.hello(), pip.__file__, sys.dont_write_bytecode)\n",
    );
    let lib = env.work().join("pylib");
    let lib_mount = format!("{}:/lib/app", lib.display());
    let path = env.run(&[
        "run",
        "--rm",
        "-v",
        &lib_mount,
        "-e",
        "PYTHONPATH=/lib/app",
        "-e",
        "PYTHONDONTWRITEBYTECODE=1",
        "python:3.15",
        "python",
        "/lib/app/main.py",
    ]);
    path.assert_clean_success();
    assert_eq!(
        path.stdout,
        "/lib/app /lib/app hello from PYTHONPATH /usr/local/lib/python3.15/site-packages/pip/__init__.py True\n"
    );
    let order = "import sys\nfor i in range(3):\n    print('out', i)\n    print('err', i, file=sys.stderr)\n";
    // One file for stdout and stderr, as a terminal or `2>&1` gives.
    let merged_path = env.work().join("merged.txt");
    let merged = std::fs::File::create(&merged_path).expect("create merged.txt");
    let status = capsule_tests::Proc::spawn_with_own_stdio(
        env.capsule()
            .args([
                "run",
                "--rm",
                "-e",
                "PYTHONUNBUFFERED=1",
                "python:3.15",
                "python",
                "-c",
                order,
            ])
            .stdout(merged.try_clone().expect("clone"))
            .stderr(merged),
    )
    .wait()
    .status;
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&merged_path).expect("read merged.txt"),
        "out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"
    );
    // /bin/sh, the image's shell written in Python (what shell-form RUN and CMD run):
    // each Python program of the line in turn, found on PATH through its #! line.
    let shell = env.run(&[
        "run",
        "--rm",
        "python:3.15",
        "/bin/sh",
        "-c",
        "X=1 python -c 'import os; print(os.environ[\"X\"])' && pip --version; false || echo $?",
    ]);
    shell.assert_clean_success();
    assert!(
        shell
            .stdout
            .starts_with("1\npip 26.3 from /usr/local/lib/python3.15/site-packages/pip")
            && shell.stdout.ends_with("1\n"),
        "{}",
        shell.stdout
    );
    // A program that binds a port the container does not publish is told which flag.
    let unpublished = env.run(&[
        "run",
        "--rm",
        "python:3.15",
        "python",
        "-c",
        "import socket; socket.socket().bind(('0.0.0.0', 9999))",
    ]);
    unpublished.assert_code(1);
    assert!(
        unpublished
            .stderr
            .contains("port 9999 is not published: run the container with -p 9999"),
        "{}",
        unpublished.stderr
    );
    // The label is what lets CPython's host::call import go unprovided: a user who
    // asks for the default refusal gets it, naming the import.
    env.run(&[
        "run",
        "--rm",
        "--unknown-imports",
        "refuse",
        "python:3.15",
        "python",
        "-c",
        "pass",
    ])
    .assert_error(126, &["host::call"]);

    // The app: FROM python:3.15, WORKDIR /code, COPY . /code/, CMD ["python", "app.py"].
    let app = copy_context(&env, "python/app");
    build(&env, "python-app", &app);
    let run = env.run(&["run", "--rm", "python-app"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, PYTHON_APP_REPORT);
    let inspect = env.run(&["inspect", "python-app"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    let config = &v[0]["Config"];
    assert_eq!(config["WorkingDir"], "/code");
    assert_eq!(config["Cmd"], serde_json::json!(["python", "app.py"]));
    assert!(config["Entrypoint"].is_null(), "{config}");
    assert_eq!(config["Labels"]["io.capsule.unknown-imports"], "trap");
    let env_list: Vec<&str> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    for var in ["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"] {
        assert!(env_list.contains(&var), "{env_list:?}");
    }
}

/// The python image's `/bin/sh` (a shell written in Python) on the host's CPython, over
/// the image's real bootstrap and a stand-in module: every line of its self-check (the
/// syntax it runs, what it refuses, what it keeps apart between commands). The image
/// test above runs it for real under Capsule.
#[test]
fn the_python_image_shell_passes_its_self_check() {
    let base = examples_dir().join("python/base");
    let out = capsule_tests::output(
        std::process::Command::new(capsule_tests::tool("python3"))
            .arg(base.join("tests/sh_selfcheck.py"))
            .arg(base.join("python3.15")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.ends_with("all passed\n"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
