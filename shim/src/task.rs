//! One containerd task, run inside the Linux container runwasi made for it: the OCI
//! runtime spec as the container shows it becomes a Capsule [`RunSpec`], and Capsule's
//! one runner runs the entrypoint.
//!
//! What runwasi hands over and what the container itself shows:
//! - `process.args`, `process.env`: given by runwasi ([`RuntimeContext`]); `argv[0]` is
//!   the module's path in the image (`/app.wasm`, or `/app.wasm#export`).
//! - `process.cwd`: the directory youki moved the process to.
//! - `root` and `mounts`: the container's `/` (containerd's snapshot of the image's
//!   layers, with every bind mount, volume and tmpfs of the spec mounted by youki) is
//!   the guest's `/` through Capsule's capability filesystem (a host directory at `/`),
//!   with `/proc`, `/sys` and `/dev` hidden under empty in-memory mounts that hold
//!   nothing (size 0), and Capsule's own `/tmp`. A read-only root or mount stays read-only: the kernel refuses writes.
//! - `linux.resources.memory.limit`: Capsule's `--memory` (the guest's memories and
//!   tables may not grow past it): the task's cgroup limit less what the process
//!   already uses and 16 MiB for the run itself, read when the container shows its
//!   cgroup (`/sys/fs/cgroup`); the cgroup limits the whole task process anyway.
//! - `process.rlimits` `RLIMIT_NOFILE`: Capsule's `--ulimit nofile` (youki applied it).
//! - Signals: SIGTERM, SIGINT, SIGHUP and SIGQUIT (`ctr task kill`, a Pod's deletion)
//!   interrupt the guest, which exits 128 + the signal; SIGKILL ends the process.

use capsule_runtime::container::runner::{Program, Runner};
use capsule_runtime::container::supervisor;
use capsule_runtime::engine::{FeatureSet, Interrupt, Interruption, ModuleCache};
use capsule_runtime::exec::ExitStatus;
use capsule_runtime::spec::{Entry, GuestPath, Mount, RunSpec, Tmpfs};
use capsule_runtime::wasi::Stdio;
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

/// Where compiled modules are kept on the node unless `CAPSULE_MODULE_CACHE` (in
/// containerd's environment, which its shims inherit) names another directory.
pub const DEFAULT_MODULE_CACHE: &str = "/var/lib/containerd-shim-capsule/module-cache";

/// The exit code of a task whose module could not start (Capsule's `CANNOT_START`).
const CANNOT_START: i32 = supervisor::code::CANNOT_START;

/// Paths of the container's pseudo-filesystems, which a guest does not see.
const HIDDEN: [&str; 3] = ["/proc", "/sys", "/dev"];

static MODULE_CACHE: OnceLock<Option<ModuleCache>> = OnceLock::new();

/// Opens the node's module cache while its path is still reachable (before the task's
/// process is moved into the container's root); without one, modules are compiled at
/// every start.
pub fn open_module_cache() {
    MODULE_CACHE.get_or_init(|| {
        let path = std::env::var_os(capsule_runtime::home::MODULE_CACHE_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_MODULE_CACHE), PathBuf::from);
        match ModuleCache::open(&path) {
            Ok(cache) => Some(cache),
            Err(e) => {
                eprintln!(
                    "containerd-shim-capsule-v1: module cache {} unavailable ({e}); modules are compiled at every start",
                    path.display()
                );
                None
            }
        }
    });
}

/// Runs the task's entrypoint to its end and returns the task's exit code.
pub fn run(ctx: &impl RuntimeContext) -> i32 {
    // First of all: until the handlers are installed the process (the first of its PID
    // namespace) ignores a stop signal.
    let interrupt = Interrupt::new();
    let signal = forward_signals(&interrupt);
    match prepare(ctx) {
        Ok((spec, program)) => execute(&spec, &program, &interrupt, &signal),
        Err(message) => {
            eprintln!("capsule: {message}");
            CANNOT_START
        }
    }
}

/// The run spec and program of the task, or a one-line reason it cannot start.
fn prepare(ctx: &impl RuntimeContext) -> Result<(RunSpec, Program), String> {
    let args = ctx.args();
    let Some(argv0) = args.first() else {
        return Err(
            "the container has no command: give the image an ENTRYPOINT or CMD, or name the module (ctr run IMAGE ID /app.wasm)"
                .to_owned(),
        );
    };
    let workdir = std::env::current_dir()
        .ok()
        .and_then(|dir| GuestPath::parse(dir.to_str()?).ok())
        .unwrap_or_else(GuestPath::root);
    let (path, export) = capsule_runtime::spec::split_program(argv0);
    let mut spec = RunSpec::new(path);
    spec.args.extend(args.iter().skip(1).cloned());
    if let Some(export) = export {
        spec.entry = Entry::Program(export.to_owned());
    }
    for var in ctx.envs() {
        match var.split_once('=') {
            Some((key, value)) if !key.is_empty() => spec.env.set(key, value),
            _ => {
                return Err(format!(
                    "invalid environment variable '{var}': expected KEY=VALUE"
                ));
            }
        }
    }
    let program = match ctx.entrypoint().source {
        // An image whose layers are wasm modules (runwasi's OCI artifacts).
        Source::Oci([layer]) => Program::Bytes {
            name: path.to_owned(),
            wasm: layer.layer.clone(),
        },
        Source::Oci(layers) => {
            return Err(format!(
                "the image has {} wasm layers; Capsule runs one module per container",
                layers.len()
            ));
        }
        Source::File(_) => {
            let full = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("{}/{path}", workdir.as_str())
            };
            Program::InRoot {
                path: GuestPath::parse(&full).map_err(|e| e.to_string())?,
                alias: None,
            }
        }
    };
    spec.workdir = workdir;
    spec.mounts.push(Mount {
        host: PathBuf::from("/"),
        guest: GuestPath::root(),
        read_only: false,
    });
    for hidden in HIDDEN {
        if std::path::Path::new(hidden).exists() {
            spec.tmpfs.push(Tmpfs {
                guest: GuestPath::parse(hidden).map_err(|e| e.to_string())?,
                size: 0,
            });
        }
    }
    spec.limits.memory = cgroup_memory_limit();
    spec.limits.nofile = nofile_limit();
    Ok((spec, program))
}

/// Runs `program` under `spec` with the process's standard streams (containerd's
/// FIFOs), interrupted by the signals a task is stopped with.
fn execute(spec: &RunSpec, program: &Program, interrupt: &Interrupt, signal: &AtomicI32) -> i32 {
    let cache = MODULE_CACHE.get().cloned().flatten();
    let runner = match Runner::with_features(FeatureSet::default(), cache) {
        Ok(runner) => runner,
        Err(e) => {
            eprintln!("capsule: {e}");
            return CANNOT_START;
        }
    };
    match runner.run(spec, program, &Stdio::Inherit, interrupt) {
        Ok(output) => {
            let by_signal = signal.load(Ordering::SeqCst);
            if let (Some(limit), false) = (output.out_of_memory, output.status.success()) {
                if spec.limits.memory.is_some() {
                    eprintln!(
                        "capsule: guest ran out of memory: the container's memory limit (linux.resources.memory.limit) leaves the guest {limit} bytes"
                    );
                } else {
                    eprintln!(
                        "capsule: {}",
                        supervisor::out_of_memory_message(limit, false)
                    );
                }
                return supervisor::output_exit_code(&output);
            }
            match &output.status {
                ExitStatus::Interrupted(Interruption::Killed) if by_signal > 0 => 128 + by_signal,
                ExitStatus::Trapped(trap) => {
                    eprintln!("capsule: guest trapped: {}", trap.reason);
                    supervisor::output_exit_code(&output)
                }
                ExitStatus::InvalidExit(status) => {
                    eprintln!(
                        "capsule: guest called proc_exit({status}), outside the exit statuses 0..=255 a process can report"
                    );
                    supervisor::output_exit_code(&output)
                }
                _ => supervisor::output_exit_code(&output),
            }
        }
        Err(e) => {
            eprintln!("capsule: {e}");
            CANNOT_START
        }
    }
}

/// Interrupts the guest on SIGTERM, SIGINT, SIGHUP or SIGQUIT (the process is the
/// first of its PID namespace: without handlers the kernel would drop them), and
/// records which one came.
fn forward_signals(interrupt: &Interrupt) -> std::sync::Arc<AtomicI32> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let received = std::sync::Arc::new(AtomicI32::new(0));
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT]) {
        Ok(mut signals) => {
            let interrupt = interrupt.clone();
            let received = received.clone();
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    received.store(signal, Ordering::SeqCst);
                    interrupt.interrupt(Interruption::Killed);
                }
            });
        }
        Err(e) => {
            eprintln!("capsule: cannot handle stop signals ({e}); only SIGKILL stops this task")
        }
    }
    received
}

/// The memory limit of the task's cgroup (`linux.resources.memory.limit`), when the
/// container shows its cgroup filesystem: cgroup v2 `memory.max`, v1
/// `memory.limit_in_bytes`; none for "max" and v1's "unlimited" (close to 2^63).
fn cgroup_memory_limit() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            candidates.push(
                PathBuf::from("/sys/fs/cgroup")
                    .join(path)
                    .join("memory.max"),
            );
            candidates.push(PathBuf::from("/sys/fs/cgroup/memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            let v1 = PathBuf::from("/sys/fs/cgroup/memory");
            candidates.push(v1.join(path).join("memory.limit_in_bytes"));
            candidates.push(v1.join("memory.limit_in_bytes"));
        }
    }
    let read = |file: &std::path::Path| -> Option<u64> {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    };
    candidates.iter().find_map(|file| {
        let limit = read(file).filter(|limit| *limit < 1 << 60)?;
        // What the process already holds (wasmtime, Capsule, the shim) and room for
        // what the run itself needs (compiled code, stacks) are not the guest's: the
        // guest's memory.grow fails before the kernel's OOM killer would end the task.
        let usage_name = if file.ends_with("memory.max") {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        let usage = read(&file.with_file_name(usage_name)).unwrap_or(0);
        Some(limit.saturating_sub(usage + RUN_HEADROOM))
    })
}

/// Memory of the task's cgroup kept for the run itself rather than the guest.
const RUN_HEADROOM: u64 = 16 << 20;

/// The soft `RLIMIT_NOFILE` youki set from the spec's `process.rlimits`.
fn nofile_limit() -> Option<u32> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current.and_then(|n| u32::try_from(n).ok())
}
