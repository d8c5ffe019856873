//! The OCI runtime spec of a task, as Capsule runs it: what maps to a Capsule
//! [`RunSpec`] and what does not.
//!
//! - `process.args` (`argv[0]` is the module's path in the image, `/app.wasm` or
//!   `/app.wasm#export`), `process.env`, `process.cwd`.
//! - `root.path` (containerd's snapshot of the image's layers, mounted by the shim) is
//!   the guest's `/`, through Capsule's capability filesystem; `root.readonly` makes it
//!   refuse writes.
//! - `mounts`: a bind mount of a host directory is a Capsule mount at its destination
//!   (`ro` read-only); a `tmpfs` one an in-memory filesystem (`size=`). The kernel's
//!   filesystems (`proc`, `sysfs`, `devpts`, `mqueue`, `cgroup`, and the tmpfs at
//!   `/dev`) have nothing to show a WASI guest and are left out, as are bind mounts of
//!   single files (Kubernetes' `/etc/hosts`, `/etc/resolv.conf`, termination log):
//!   Capsule mounts directories.
//! - `linux.resources.memory.limit`: Capsule's `--memory`, less what the task process
//!   itself holds (read when it runs, [`guest_memory`]); the cgroup (see `instance`)
//!   limits the whole process as well.
//! - `process.rlimits`, `process.user`, `process.capabilities`,
//!   `process.noNewPrivileges`: applied to the task process by `task`.

use capsule_runtime::container::runner::Program;
use capsule_runtime::spec::{Entry, GuestPath, Mount, RunSpec, Tmpfs};
use oci_spec_runtime::runtime::Spec;
use std::path::{Path, PathBuf};

/// Memory of the task process kept for the run itself rather than the guest.
pub const RUN_HEADROOM: u64 = 16 << 20;

/// The run spec and program of the task in `bundle`, or a one-line reason it cannot run.
///
/// # Errors
/// No command, an invalid environment variable or path.
pub fn run_spec(spec: &Spec, bundle: &Path) -> Result<(RunSpec, Program), String> {
    let process = spec
        .process()
        .as_ref()
        .ok_or("the spec has no process: containerd gives every task one")?;
    let args = process.args().clone().unwrap_or_default();
    let Some(argv0) = args.first() else {
        return Err(
            "the container has no command: give the image an ENTRYPOINT or CMD, or name the module (ctr run IMAGE ID /app.wasm)"
                .to_owned(),
        );
    };
    let cwd = process.cwd().to_str().unwrap_or("/");
    let workdir = GuestPath::parse(cwd).map_err(|e| format!("the working directory {cwd}: {e}"))?;
    let (path, export) = capsule_runtime::spec::split_program(argv0);
    let mut run = RunSpec::new(path);
    run.args.extend(args.iter().skip(1).cloned());
    if let Some(export) = export {
        run.entry = Entry::Program(export.to_owned());
    }
    for var in process.env().iter().flatten() {
        match var.split_once('=') {
            Some((key, value)) if !key.is_empty() => run.env.set(key, value),
            _ => {
                return Err(format!(
                    "invalid environment variable '{var}': expected KEY=VALUE"
                ));
            }
        }
    }
    let full = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", workdir.as_str().trim_end_matches('/'))
    };
    let program = Program::InRoot {
        path: GuestPath::parse(&full).map_err(|e| format!("the module {full}: {e}"))?,
        image: None,
    };
    run.workdir = workdir;

    let root = spec.root().as_ref();
    let rootfs = root.map_or_else(|| PathBuf::from("rootfs"), |r| r.path().clone());
    run.mounts.push(Mount {
        host: if rootfs.is_absolute() {
            rootfs
        } else {
            bundle.join(rootfs)
        },
        guest: GuestPath::root(),
        read_only: root.and_then(|r| r.readonly()).unwrap_or(false),
    });
    for mount in spec.mounts().iter().flatten() {
        let Some(guest) = mount.destination().to_str() else {
            continue;
        };
        let options = mount.options().clone().unwrap_or_default();
        let has = |o: &str| options.iter().any(|x| x == o);
        let kind = mount.typ().as_deref().unwrap_or("");
        let guest_path =
            || GuestPath::parse(guest).map_err(|e| format!("the mount at {guest}: {e}"));
        if kind == "bind" || has("bind") || has("rbind") {
            let Some(source) = mount.source() else {
                continue;
            };
            // Capsule mounts directories; a file bind (Kubernetes' /etc/hosts and the
            // like) is left out, as a source that is gone is.
            if !capsule_runtime::ambient::is_dir(source) {
                continue;
            }
            run.mounts.push(Mount {
                host: source.clone(),
                guest: guest_path()?,
                read_only: has("ro"),
            });
        } else if kind == "tmpfs" && guest != "/dev" && !guest.starts_with("/dev/") {
            let size = options
                .iter()
                .find_map(|o| o.strip_prefix("size="))
                .map(parse_size)
                .transpose()?
                .unwrap_or(Tmpfs::DEFAULT_SIZE);
            run.tmpfs.push(Tmpfs {
                guest: guest_path()?,
                size,
            });
        }
    }
    Ok((run, program))
}

/// `linux.resources.memory.limit`, when the spec sets one.
pub fn memory_limit(spec: &Spec) -> Option<u64> {
    let limit = spec
        .linux()
        .as_ref()?
        .resources()
        .as_ref()?
        .memory()
        .as_ref()?
        .limit()?;
    u64::try_from(limit).ok().filter(|l| *l > 0)
}

/// What of a `limit`-byte memory limit the guest may have when the task process already
/// holds `used` bytes (wasmtime, Capsule): the guest's `memory.grow` fails before the
/// cgroup's OOM killer would end the task.
pub fn guest_memory(limit: u64, used: u64) -> u64 {
    limit.saturating_sub(used + RUN_HEADROOM)
}

/// A tmpfs `size=` option, in the grammar of `--tmpfs PATH:size=N` (bytes, or with a
/// `k`, `m` or `g` suffix).
fn parse_size(text: &str) -> Result<u64, String> {
    capsule_runtime::spec::parse_size(text).ok_or_else(|| {
        format!("tmpfs size '{text}' is not a size: use bytes, or a number with k, m or g")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).expect("a spec")
    }

    #[test]
    fn maps_process_root_and_mounts() {
        let host = tempfile::tempdir().expect("tempdir");
        let file = host.path().join("hosts");
        std::fs::write(&file, "").expect("file");
        let s = spec(serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/app.wasm#serve", "a", "b"],
                "env": ["PATH=/bin", "GREETING=hi=there"],
                "cwd": "/work",
            },
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["size=65536k"]},
                {"destination": "/data", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]},
                {"destination": "/etc/hosts", "type": "bind", "source": file, "options": ["rbind"]},
                {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]},
            ],
        }));
        let (run, program) = run_spec(&s, Path::new("/bundle")).expect("maps");
        assert_eq!(run.args, ["/bin/app.wasm", "a", "b"]);
        assert_eq!(run.entry, Entry::Program("serve".to_owned()));
        assert_eq!(run.workdir.as_str(), "/work");
        let Program::InRoot { path, .. } = program else {
            panic!("not a program in the root")
        };
        assert_eq!(path.as_str(), "/bin/app.wasm");
        let mounts: Vec<_> = run
            .mounts
            .iter()
            .map(|m| (m.host.clone(), m.guest.as_str().to_owned(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                (PathBuf::from("/bundle/rootfs"), "/".to_owned(), true),
                (host.path().to_path_buf(), "/data".to_owned(), true),
            ]
        );
        let tmpfs: Vec<_> = run
            .tmpfs
            .iter()
            .map(|t| (t.guest.as_str().to_owned(), t.size))
            .collect();
        assert_eq!(tmpfs, [("/scratch".to_owned(), 2 << 20)]);
    }

    #[test]
    fn a_relative_module_is_found_from_the_working_directory() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["app.wasm"], "cwd": "/srv/"},
            "root": {"path": "/abs/rootfs"},
        }));
        let (run, program) = run_spec(&s, Path::new("/bundle")).expect("maps");
        let Program::InRoot { path, .. } = program else {
            panic!("not a program in the root")
        };
        assert_eq!(path.as_str(), "/srv/app.wasm");
        assert_eq!(run.mounts[0].host, PathBuf::from("/abs/rootfs"));
        assert!(!run.mounts[0].read_only);
    }

    #[test]
    fn refuses_what_cannot_run() {
        let no_args = spec(serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/"},
        }));
        let e = run_spec(&no_args, Path::new("/b")).expect_err("refused");
        assert!(e.contains("no command"), "{e}");
        let bad_env = spec(serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["/a.wasm"], "env": ["=x"], "cwd": "/"},
        }));
        let e = run_spec(&bad_env, Path::new("/b")).expect_err("refused");
        assert!(e.contains("'=x'"), "{e}");
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert!(parse_size("12q").is_err());
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn memory_limit_leaves_room_for_the_run() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.1.0",
            "linux": {"resources": {"memory": {"limit": 134217728}}},
        }));
        assert_eq!(memory_limit(&s), Some(128 << 20));
        assert_eq!(guest_memory(128 << 20, 20 << 20), 92 << 20);
        assert_eq!(guest_memory(8 << 20, 20 << 20), 0);
        let none = spec(serde_json::json!({"ociVersion": "1.1.0"}));
        assert_eq!(memory_limit(&none), None);
    }
}
