//! A real containerd for the shim tests: Debian's `containerd` (1.6) with its own root,
//! state, sockets and module cache in a temporary directory, the Capsule shim
//! (`containerd-shim-capsule-v1`) first on its `PATH`, and the CRI plugin off. Driven
//! with Debian's `ctr`. Stopped when dropped, after every task and container of its
//! namespace is removed, pass or fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How to install what these tests need.
pub const INSTALL: &str = "run scripts/install-test-deps.sh (apt-get install -y containerd protobuf-compiler libseccomp-dev)";

use crate::tool;

/// The shim binary under test, built next to the `capsule` binary (the tests' build
/// is of every binary of the workspace): `CAPSULE_SHIM_BIN` if set.
pub fn shim_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CAPSULE_SHIM_BIN") {
        return PathBuf::from(bin);
    }
    let capsule = crate::capsule_bin();
    let shim = capsule.with_file_name("containerd-shim-capsule-v1");
    assert!(
        shim.is_file(),
        "{} was not built (cargo build --workspace --bins; it needs protoc: {INSTALL})",
        shim.display()
    );
    shim
}

/// Numbers the namespaces of the containerds one test process starts (a task's cgroup
/// is `/NAMESPACE/ID` in the machine's cgroup hierarchies, shared by every containerd).
static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A running containerd.
#[derive(Debug)]
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    /// Its gRPC socket (`ctr -a`).
    pub socket: PathBuf,
    /// The namespace the tests use.
    pub namespace: String,
}

impl Containerd {
    /// Starts containerd (as root: it mounts snapshots and makes namespaces and
    /// cgroups; a test run by another user fails here, saying so).
    pub fn start() -> Self {
        let uid = rustix_uid();
        assert_eq!(
            uid, 0,
            "the containerd shim tests need root (containerd mounts and makes namespaces): run them as root, e.g. sudo -E env PATH=\"$PATH\" scripts/test.sh"
        );
        let containerd = tool("containerd");
        tool("ctr");
        let shim = shim_bin();
        let shim_dir = shim.parent().expect("shim directory").to_owned();
        // Short paths: unix socket addresses are at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("capsule-ctrd-")
            .tempdir_in("/tmp")
            .expect("containerd temp dir");
        let socket = dir.path().join("c.sock");
        for sub in ["root", "state", "module-cache"] {
            std::fs::create_dir(dir.path().join(sub)).expect("containerd dirs");
        }
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n[grpc]\n  address = \"{sock}\"\n\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\n[debug]\n  level = \"info\"\n\n[metrics]\n  address = \"\"\n",
            root = dir.path().join("root").display(),
            state = dir.path().join("state").display(),
            sock = socket.display(),
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write containerd config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log file");
        let path = std::env::join_paths(std::iter::once(shim_dir).chain(crate::path_dirs()))
            .expect("PATH");
        let child = Command::new(containerd)
            .arg("--config")
            .arg(&config_path)
            .env("PATH", path)
            // Shims inherit containerd's environment: the module cache of this test.
            .env("CAPSULE_MODULE_CACHE", dir.path().join("module-cache"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut me = Self {
            child,
            dir,
            socket,
            namespace: format!(
                "capsule-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ),
        };
        me.wait_ready();
        me
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("containerd exited ({status}):\n{}", self.log());
            }
            let answers = || {
                crate::process::try_output(
                    &mut self.ctr_command(&["version"]),
                    deadline.saturating_duration_since(Instant::now()),
                )
                .is_some_and(|out| out.status.success())
            };
            if self.socket.exists() && answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within 30 s:\n{}",
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What containerd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The temporary directory (root, state, module cache) of this containerd.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ctr -a SOCKET -n NAMESPACE ARGS`, as a command to adjust.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool("ctr"));
        cmd.arg("-a")
            .arg(&self.socket)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `ctr ARGS` to its end (at most [`crate::test_timeout`]).
    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> Output {
        crate::output(&mut self.ctr_command(args))
    }

    /// Runs `ctr ARGS`, asserts success, returns stdout.
    #[track_caller]
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The processes whose command line names this containerd's socket: its shims.
    pub fn shim_processes(&self) -> Vec<String> {
        let needle = self.socket.to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            if pid == self.child.id().to_string() {
                continue;
            }
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && cmdline.contains("containerd-shim") {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
        found
    }

    /// Removes every task and container of the namespace (best effort, each `ctr` at
    /// most a minute; nothing here panics: this runs while a test unwinds).
    fn clean(&self) {
        let ctr = |args: &[&str]| {
            crate::process::try_output(&mut self.ctr_command(args), Duration::from_secs(60))
        };
        let listed = |args: &[&str]| {
            ctr(args)
                .map(|out| {
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        for id in listed(&["task", "ls", "-q"]) {
            let _ = ctr(&["task", "kill", "-s", "SIGKILL", &id]);
        }
        for id in listed(&["task", "ls", "-q"]) {
            let _ = ctr(&["task", "delete", "-f", &id]);
        }
        for id in listed(&["containers", "ls", "-q"]) {
            let _ = ctr(&["containers", "delete", &id]);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.clean();
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The namespace's cgroup directories (`/NAMESPACE` in every hierarchy: the shim
        // removes each task's cgroup, not the parent it made) go once they are empty.
        let root = Path::new("/sys/fs/cgroup");
        let _ = std::fs::remove_dir(root.join(&self.namespace));
        for hierarchy in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(hierarchy.path().join(&self.namespace));
        }
        // Snapshots containerd left mounted would keep the directory from going.
        let _ = crate::process::try_output(
            Command::new(crate::tool("umount"))
                .arg("-R")
                .arg(self.dir.path().join("root")),
            Duration::from_secs(60),
        );
    }
}

fn rustix_uid() -> u32 {
    rustix::process::getuid().as_raw()
}
