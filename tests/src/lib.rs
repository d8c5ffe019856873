//! Helpers for Capsule's integration tests: the real `capsule` binary, a fresh
//! `CAPSULE_HOME` per test, and the guest programs built by `build.rs`.

// Test set-up reaches the host directly (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub mod containerd;
pub mod http;
pub mod process;
pub mod rawtar;
pub mod reference;
pub mod registry;
pub mod tree;
pub mod wine;

pub use process::{Proc, output, output_within, test_timeout, within};

/// Paths of the guest programs (`guests/c/*.c`), built to wasm32-wasi by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests/guests.rs"));
}

/// The `capsule` binary under test: `CAPSULE_BIN` if set, otherwise the workspace's
/// own, rebuilt first (once per test process) so that a test never runs a stale binary.
pub fn capsule_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CAPSULE_BIN") {
            return PathBuf::from(bin);
        }
        let (target, profile) = target_dir();
        let profile_dir = target.join(&profile);
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut build = Command::new(env!("CARGO"));
        // `--workspace --bins` selects the same packages as `cargo test --workspace`,
        // so features unify the same way and the binary reuses the tests' build of
        // wasmtime; `-p capsule-runtime` alone would compile a second variant of it.
        // The crash points (`CAPSULE_FAILPOINT`) are compiled into the tests' binary
        // only; they touch the runtime crate alone, so wasmtime's build is shared.
        build.current_dir(workspace).args([
            "build",
            "--quiet",
            "--workspace",
            "--bins",
            "--features",
            "capsule-runtime/failpoints",
        ]);
        build.args(profile_args(&profile));
        // A build from nothing compiles wasmtime: minutes on a small machine.
        let out = output_within(&mut build, Duration::from_secs(60 * 60));
        assert!(
            out.status.success(),
            "cargo build --workspace --bins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join(format!("capsule{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// The workspace's target directory (`target/<profile>/deps/<test>` → `target`) and
/// the tests' profile.
pub fn target_dir() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let target = profile_dir.parent().expect("target dir").to_path_buf();
    (target, profile)
}

/// The `cargo build` arguments that select `profile` (the tests' own).
pub fn profile_args(profile: &str) -> Vec<String> {
    match profile {
        "debug" => Vec::new(),
        "release" => vec!["--release".to_owned()],
        other => vec!["--profile".to_owned(), other.to_owned()],
    }
}

/// A binary of an example of the workspace (`examples/*`, built with the `capsule`
/// binary by [`capsule_bin`]), for example `capsule-example-plugin-host`.
pub fn example_bin(name: &str) -> PathBuf {
    let dir = capsule_bin()
        .parent()
        .expect("the capsule binary lives in target/<profile>");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// The compiled-module cache that tests opting in share across tests and runs
/// (`target/capsule-test-module-cache`): a module that takes minutes to compile
/// (CPython) is compiled once per machine, not once per test.
pub fn shared_module_cache() -> PathBuf {
    target_dir().0.join("capsule-test-module-cache")
}

/// A scratch world for one test: its own Capsule home and a work directory.
#[derive(Debug)]
pub struct TestEnv {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
    /// `CAPSULE_MODULE_CACHE` for every command, when the test shares the cache.
    module_cache: Option<PathBuf>,
}

/// A test that fails half-way (or forgets) leaves no supervisor running: the
/// containers of its home are removed (`rm -f`, which stops a running one) before the
/// home itself goes. Nothing here panics: this may run while a test unwinds.
impl Drop for TestEnv {
    fn drop(&mut self) {
        let listed = std::fs::read_dir(self.home().join("containers")).is_ok_and(|dir| {
            dir.filter_map(Result::ok)
                .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
        });
        if !listed {
            return;
        }
        let limit = Duration::from_secs(60);
        let Some(ps) = process::try_output(self.capsule().args(["ps", "-aq", "--no-trunc"]), limit)
        else {
            return;
        };
        for id in String::from_utf8_lossy(&ps.stdout).lines() {
            let _ = process::try_output(self.capsule().args(["rm", "-f", id]), limit);
        }
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// A fresh home and work directory.
    pub fn new() -> Self {
        Self {
            home: tempfile::Builder::new()
                .prefix("capsule-home-")
                .tempdir()
                .expect("temp home"),
            work: tempfile::Builder::new()
                .prefix("capsule-work-")
                .tempdir()
                .expect("temp work dir"),
            module_cache: None,
        }
    }

    /// A fresh home and work directory whose commands use the [`shared_module_cache`]
    /// (`CAPSULE_MODULE_CACHE`) instead of a cache in the fresh home.
    pub fn with_shared_module_cache() -> Self {
        let mut env = Self::new();
        env.module_cache = Some(shared_module_cache());
        env
    }

    /// The Capsule home this test uses.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A directory for the test's own files.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// Writes a file under the work directory (creating parents) and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.work.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// Compiles WebAssembly text to a `.wasm` file under the work directory.
    pub fn wat(&self, name: &str, text: &str) -> PathBuf {
        let wasm =
            wat::parse_str(text).unwrap_or_else(|e| panic!("test WAT {name} does not parse: {e}"));
        self.write(name, wasm)
    }

    /// A `capsule` command with this test's home, run from the work directory, with a
    /// clean environment (only PATH is kept) so nothing leaks in by accident.
    pub fn capsule(&self) -> Command {
        let mut cmd = Command::new(capsule_bin());
        cmd.env_clear()
            .env("CAPSULE_HOME", self.home.path())
            .current_dir(self.work.path())
            .stdin(Stdio::null());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        if let Some(cache) = &self.module_cache {
            cmd.env("CAPSULE_MODULE_CACHE", cache);
        }
        cmd
    }

    /// Runs `capsule ARGS` to completion (at most [`test_timeout`]).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.capsule().args(args), None)
    }

    /// Runs `capsule ARGS` to completion, at most `limit`.
    #[track_caller]
    pub fn run_within(&self, args: &[&str], limit: Duration) -> Run {
        Run::of_within(self.capsule().args(args), None, limit)
    }

    /// Runs `capsule ARGS` with bytes piped to its stdin.
    #[track_caller]
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        Run::of(self.capsule().args(args), Some(stdin))
    }
}

/// A finished `capsule` process.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Runs a prepared command, feeding `stdin` if given (at most [`test_timeout`]).
    ///
    /// # Panics
    /// As [`Run::of_within`].
    #[track_caller]
    pub fn of(cmd: &mut Command, stdin: Option<&[u8]>) -> Self {
        Self::of_within(cmd, stdin, test_timeout())
    }

    /// Runs a prepared command, feeding `stdin` if given, for at most `limit`: its
    /// output is read while it runs, stdin is written on a thread of its own (a child
    /// that writes much before it reads cannot deadlock the test; one that exits
    /// without reading it all is an outcome, not a failure).
    ///
    /// # Panics
    /// When the command cannot start or does not end within `limit`: it is killed and
    /// the message has the command, how long it ran and what it printed so far.
    #[track_caller]
    pub fn of_within(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Self {
        let proc = match stdin {
            Some(bytes) => Proc::spawn_with_stdin(cmd, bytes),
            None => Proc::spawn(cmd),
        };
        proc.wait_within(limit).into()
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts success (exit 0) and an empty stderr.
    #[track_caller]
    pub fn assert_clean_success(&self) -> &Self {
        self.assert_code(0);
        assert_eq!(self.stderr, "", "stderr should be empty");
        self
    }

    /// Asserts a Capsule error: the given exit code, and exactly one line on stderr that
    /// starts with `capsule:` and contains every one of `needles`; nothing on stdout and
    /// no panic.
    #[track_caller]
    pub fn assert_error(&self, code: i32, needles: &[&str]) -> &Self {
        self.assert_code(code);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got:\n{}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("capsule: "),
            "error line should start with 'capsule: ': {}",
            lines[0]
        );
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "error line should mention {needle:?}: {}",
                lines[0]
            );
        }
        assert!(
            !self.stderr.contains("panicked"),
            "capsule panicked: {}",
            self.stderr
        );
        self
    }
}

/// The directories of `PATH`, in order.
pub fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// The list of programs outside the workspace that tests may run, with the Debian package
/// of each (`scripts/test-tools.txt`, which `scripts/install-test-deps.sh` installs).
pub const TEST_TOOLS: &str = include_str!("../../scripts/test-tools.txt");

/// `(program, package)` for each entry of [`TEST_TOOLS`].
pub fn listed_tools() -> Vec<(&'static str, &'static str)> {
    TEST_TOOLS
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .collect()
}

/// The program `name` from `PATH`, or a panic naming the command that installs it (a
/// missing tool is a loud failure, never a skip). `name` must be listed in
/// `scripts/test-tools.txt`, so that the install script installs it on a fresh machine:
/// an unlisted name panics here, on the developer's machine too.
pub fn tool(name: &str) -> PathBuf {
    let Some((_, package)) = listed_tools().into_iter().find(|(p, _)| *p == name) else {
        panic!(
            "{name} is not listed in scripts/test-tools.txt: a test may only run a program \
             that scripts/install-test-deps.sh installs; add `{name} <debian-package>` there"
        )
    };
    path_dirs()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing: run scripts/install-test-deps.sh (apt-get install -y {package})"
            )
        })
}

/// The names directly in `dir`, sorted.
///
/// # Panics
/// When `dir` cannot be listed.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A loopback port that was free a moment ago (bound and let go): another process may
/// take it before the test uses it. Only for a test that must name a host port before
/// Capsule runs (a compose file's fixed port, a port given and then found bound); every
/// other test publishes with `-p 127.0.0.1::GUEST_PORT` and reads the port Capsule
/// picked back with [`Containers::host_port`]. Each use says why it needs one.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").port()
}

/// A test home for container tests: images imported from guests, and every container
/// removed (its process ended) when it is dropped, pass or fail, so no detached
/// container outlives its test.
#[derive(Debug)]
pub struct Containers {
    pub env: TestEnv,
}

impl Containers {
    /// A fresh home with each `(guest module, image name)` imported.
    pub fn new(images: &[(&str, &str)]) -> Self {
        let env = TestEnv::new();
        for (guest, name) in images {
            env.run(&["image", "import", guest, "-t", name])
                .assert_code(0);
        }
        Self { env }
    }

    /// Runs `capsule ARGS`, asserts success, returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.env.run(args);
        run.assert_code(0);
        run.stdout
    }

    /// The host port Capsule published the container's `guest_port` on (`capsule port
    /// NAME GUEST_PORT`, which prints `IP:PORT`): how a test finds the port it left to
    /// Capsule to pick (`-p 127.0.0.1::GUEST_PORT`, `-P`).
    #[track_caller]
    pub fn host_port(&self, name: &str, guest_port: u16) -> u16 {
        let out = self.ok(&["port", name, &guest_port.to_string()]);
        out.trim()
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .filter(|port| *port != 0)
            .unwrap_or_else(|| panic!("capsule port {name} {guest_port} printed {out:?}"))
    }

    /// The first answer of container `name` to `GET path` on the host port `port`,
    /// waiting for it to serve (at most 60 s: its first start may compile the
    /// program); a panic with the container's log if it never answers.
    #[track_caller]
    pub fn wait_http(&self, name: &str, port: u16, path: &str) -> http::Resp {
        let start = std::time::Instant::now();
        loop {
            if let Ok(resp) = http::try_http(port, "GET", path, &[], None) {
                return resp;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let logs = self.env.run(&["logs", name]);
                panic!(
                    "{name} never answered on 127.0.0.1:{port}; logs:\n{}{}",
                    logs.stdout, logs.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `State` object of `capsule inspect NAME`.
    #[track_caller]
    pub fn state(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let value: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
        value[0]["State"].clone()
    }

    /// Waits until `check` holds on the container's state (at most 30 s).
    #[track_caller]
    pub fn wait_for(&self, name: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let start = std::time::Instant::now();
        loop {
            // Not there yet (another process is still creating it) reads as null.
            let out = self.env.run(&["inspect", "--type", "container", name]);
            let state = if out.code == Some(0) {
                serde_json::from_str::<serde_json::Value>(&out.stdout)
                    .map(|v| v[0]["State"].clone())
                    .unwrap_or_default()
            } else {
                serde_json::Value::Null
            };
            if check(&state) {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{name} never became {what}: {state}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
