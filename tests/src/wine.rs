//! The Windows build of `capsule` (`x86_64-pc-windows-gnu`, linked with mingw-w64) run
//! under Wine, for the cross-platform tests (`windows`): the binary is built once per
//! test process (the same command as `scripts/check-targets.sh`, so after it this is a
//! no-op), and runs in a Wine prefix kept beside the build
//! (`target/capsule-test-wine/prefix`, made once per machine with `wineboot`), with
//! Wine's own gaps filled as [`GAPS`] says.
//!
//! Paths given to the Windows binary are Windows paths: the host's `/` is Wine's drive
//! `Z:` ([`windows_path`]), the prefix's `drive_c` its `C:`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The Windows target the binary is built for.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// Lines of a conformance program's transcript on one backend that differ from Linux
/// for a listed reason: (program, backend, labels). A line's label is its text up to
/// the first `:` (`TREE\tPATH` for a line of the tree it lists); `*` is the whole
/// program (it stops early).
pub type Lines = (&'static str, &'static str, &'static [&'static str]);

/// One thing Wine cannot do that the Windows build needs (Wine's gap, not Capsule's
/// or Windows'), how the tests meet it, and the conformance lines it makes differ.
/// The `windows` tests check that each entry still occurs, so the table stays true.
#[derive(Debug)]
pub struct Gap {
    pub what: &'static str,
    pub met_by: &'static str,
    pub differs: &'static [Lines],
}

/// Every gap of Wine's the tests meet (Wine 8.0, Debian 12).
pub const GAPS: &[Gap] = &[
    Gap {
        what: "no bcryptprimitives.dll (ProcessPrng), which Rust's std (1.78 and later) \
               takes its randomness from on every Windows it supports: the binary does not \
               load (status c0000135)",
        met_by: "a stand-in DLL over RtlGenRandom (scripts/cross/wine/bcryptprimitives.c), \
                 built with mingw-w64 into the prefix's system32",
        differs: &[],
    },
    Gap {
        what: "CreateSymbolicLinkW is a stub: it reports success and makes nothing",
        met_by: "Capsule checks that a symlink it made is there and otherwise answers the \
                 guest ENOTSUP (as on Windows without Developer Mode); the lines that make \
                 or follow a symlink in the writable layer differ (expected failures)",
        differs: &[
            ("fs_symlinks", "layered", &["*"]),
            ("fs_symlinks", "host", &["*"]),
            // It needs a symlink on a volume to go on.
            ("fs_stat", "host", &["*"]),
            (
                "raw_edges",
                "host",
                &["path_symlink nested rel", "TREE\tdir/rel"],
            ),
            ("raw_rights", "host", &["*"]),
            (
                "rust_std",
                "host",
                &[
                    "symlink",
                    "read_link",
                    "read through link",
                    "symlink_metadata is_symlink",
                    "TREE\tlink.txt",
                ],
            ),
            (
                "fs_stat",
                "layered",
                &[
                    "utimensat NOFOLLOW on symlink",
                    "symlink mtime is 1500000000",
                ],
            ),
            (
                "raw_edges",
                "layered",
                &["path_symlink nested rel", "TREE\tdir/rel"],
            ),
            // It needs a symlink to go on.
            ("raw_rights", "layered", &["*"]),
            (
                "rust_std",
                "layered",
                &[
                    "symlink",
                    "read_link",
                    "read through link",
                    "symlink_metadata is_symlink",
                    "TREE\tlink.txt",
                ],
            ),
        ],
    },
    Gap {
        what: "no POSIX delete semantics: a file deleted while a handle to it is open \
               keeps its name until the handle closes (Windows 10 1809 and later delete \
               it at once on NTFS)",
        met_by: "an expected failure of that one line on a volume (the writable layer \
                 keeps its own record of what was deleted)",
        differs: &[("fs_rename", "host", &["file2 after unlink"])],
    },
];

/// The Windows binary and the prefix it runs in.
#[derive(Debug)]
pub struct Wine {
    pub exe: PathBuf,
    pub prefix: PathBuf,
}

/// `path` (absolute, on the host) as the Windows binary under Wine sees it: `Z:\...`.
pub fn windows_path(path: &Path) -> String {
    let text = path.display().to_string();
    assert!(text.starts_with('/'), "not an absolute path: {text}");
    format!("Z:{}", text.replace('/', "\\"))
}

/// The Windows `capsule.exe`, built first (once per test process) so that a test never
/// runs a stale one. The command, flags and environment are `scripts/check-targets.sh`'s,
/// so that after the test command's check this builds nothing.
pub fn windows_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let (target, profile) = crate::target_dir();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        crate::tool("x86_64-w64-mingw32-gcc");
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(workspace)
            .env(
                "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS",
                "-D warnings",
            )
            .args([
                "build",
                "--quiet",
                "--locked",
                "-p",
                "capsule-runtime",
                "-p",
                "capsule-sdk",
                "--lib",
                "--bins",
                "--target",
                TARGET,
            ]);
        build.args(crate::profile_args(&profile));
        let out = crate::output_within(&mut build, Duration::from_secs(60 * 60));
        assert!(
            out.status.success(),
            "cargo build --target {TARGET} failed (rustup target add {TARGET}; \
             scripts/install-test-deps.sh installs mingw-w64):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = target.join(TARGET).join(&profile).join("capsule.exe");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

impl Wine {
    /// The Windows binary and its prefix, ready (once per test process).
    pub fn get() -> &'static Wine {
        static WINE: OnceLock<Wine> = OnceLock::new();
        WINE.get_or_init(|| {
            let exe = windows_bin().to_path_buf();
            let (target, _) = crate::target_dir();
            let prefix = target.join("capsule-test-wine/prefix");
            if !prefix.join("system.reg").is_file() {
                make_prefix(&prefix);
            }
            let wine = Wine { exe, prefix };
            wine.fill_gaps();
            wine
        })
    }

    /// The environment every Wine command gets: the prefix, no debug output, no
    /// installers for .NET or HTML (not needed, and they would ask).
    pub fn env(cmd: &mut Command, prefix: &Path) {
        cmd.env_clear()
            .env("WINEPREFIX", prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("HOME", prefix.parent().unwrap_or(prefix));
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
    }

    /// `wine capsule.exe` with `home` (a host path) as its `CAPSULE_HOME`, run from
    /// `cwd`, with a clean environment. Run it with [`Wine::run`]: the first Wine
    /// command of a session starts Wine's own services, which keep its stdout and
    /// stderr open long after it ended.
    pub fn capsule(&self, home: &Path, cwd: &Path) -> Command {
        let mut cmd = Command::new(crate::tool("wine"));
        Self::env(&mut cmd, &self.prefix);
        cmd.arg(&self.exe)
            .env("CAPSULE_HOME", windows_path(home))
            .current_dir(cwd)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a Wine command to its end (at most [`crate::test_timeout`]) with its stdout
    /// and stderr in files of `scratch` rather than pipes: Wine's services, started by
    /// whichever command comes first, inherit them and outlive it.
    #[track_caller]
    pub fn run(cmd: &mut Command, scratch: &Path) -> crate::Run {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (out, err) = (
            scratch.join(format!("wine-{n}.out")),
            scratch.join(format!("wine-{n}.err")),
        );
        cmd.stdout(std::fs::File::create(&out).expect("create the stdout file"))
            .stderr(std::fs::File::create(&err).expect("create the stderr file"));
        let status = crate::Proc::spawn_with_own_stdio(cmd)
            .wait_within(crate::test_timeout())
            .status;
        let read = |path: &Path| {
            String::from_utf8_lossy(&std::fs::read(path).expect("read the output file"))
                .into_owned()
        };
        crate::Run {
            code: status.code(),
            stdout: read(&out),
            stderr: read(&err),
        }
    }

    /// The prefix's `C:\` on the host.
    pub fn drive_c(&self) -> PathBuf {
        self.prefix.join("drive_c")
    }

    /// [`GAPS`]: Wine's missing `bcryptprimitives.dll` stood in for (rebuilt each test
    /// process, so the prefix always has this source's build).
    fn fill_gaps(&self) {
        let dll = self.drive_c().join("windows/system32/bcryptprimitives.dll");
        if !is_wine_builtin(&dll) {
            let source = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scripts/cross/wine/bcryptprimitives.c");
            build_stand_in(&source, &dll);
        }
    }
}

/// Whether `dll` in a prefix is one of Wine's own (`wineboot` puts a placeholder
/// marked so in the prefix for each DLL Wine has).
pub fn is_wine_builtin(dll: &Path) -> bool {
    std::fs::read(dll).is_ok_and(|bytes| {
        bytes
            .windows(b"Wine builtin DLL".len())
            .any(|w| w == b"Wine builtin DLL")
    })
}

/// Builds the stand-in `bcryptprimitives.dll` (GAPS) into `dll`.
pub fn build_stand_in(source: &Path, dll: &Path) {
    let tmp = dll.with_extension("dll.tmp");
    let mut cc = Command::new(crate::tool("x86_64-w64-mingw32-gcc"));
    cc.args(["-shared", "-O2", "-o"])
        .arg(&tmp)
        .arg(source)
        .arg("-ladvapi32");
    let out = crate::output_within(&mut cc, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "building the stand-in bcryptprimitives.dll failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, dll).expect("install the stand-in bcryptprimitives.dll");
}

/// Makes a Wine prefix at `prefix` (`wineboot -i` in a directory beside it, renamed
/// into place when done, so an interrupted one is never taken for a prefix).
pub fn make_prefix(prefix: &Path) {
    let parent = prefix.parent().expect("prefix parent");
    std::fs::create_dir_all(parent).expect("mkdir the Wine directory");
    let tmp = parent.join(format!(
        "{}.tmp-{}",
        prefix
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("prefix"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    // What an interrupted run left (not one another test process is making now).
    let stem = format!(
        "{}.tmp-",
        prefix
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("prefix")
    );
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if entry.file_name().to_string_lossy().starts_with(&stem)
            && old.is_some_and(|age| age > Duration::from_secs(600))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let mut boot = Command::new(crate::tool("wineboot"));
    Wine::env(&mut boot, &tmp);
    boot.arg("-i").stdin(Stdio::null());
    let out = Wine::run(&mut boot, parent);
    // The registry (system.reg) is written as the Wine server exits: wait for it
    // (it exits a few seconds after its last client).
    let mut wait = Command::new(crate::tool("wineserver"));
    Wine::env(&mut wait, &tmp);
    wait.arg("-w").stdin(Stdio::null());
    let waited = Wine::run(&mut wait, parent);
    assert!(
        out.code == Some(0) && waited.code == Some(0) && tmp.join("system.reg").is_file(),
        "wineboot -i failed ({:?}, then wineserver -w {:?}):\n{}{}",
        out.code,
        waited.code,
        out.stderr,
        waited.stderr
    );
    if std::fs::rename(&tmp, prefix).is_err() {
        // Another test process made it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
