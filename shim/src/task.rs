//! One task's process: `containerd-shim-capsule-v1 --capsule-task BUNDLE FD`, spawned
//! by [`crate::instance`] with the task's standard streams and the start pipe's read
//! end inherited as descriptor FD.
//!
//! It reads the bundle's spec, takes the identity the spec gives the process (rlimits,
//! user and groups, capabilities, no new privileges), prepares the run ([`crate::spec`]),
//! then waits for containerd's start (a byte on the pipe; end of file means the task was
//! deleted unstarted) and runs the entrypoint through Capsule's one runner. Signals:
//! SIGTERM, SIGINT, SIGHUP and SIGQUIT (`ctr task kill`, a Pod's deletion) interrupt the
//! guest, which exits 128 + the signal; SIGKILL ends the process.

use capsule_runtime::ambient;
use capsule_runtime::container::runner::{Program, Runner};
use capsule_runtime::container::supervisor;
use capsule_runtime::engine::{FeatureSet, Interrupt, Interruption, ModuleCache};
use capsule_runtime::exec::ExitStatus;
use capsule_runtime::exit;
use capsule_runtime::spec::RunSpec;
use capsule_runtime::wasi::Stdio;
use oci_spec_runtime::runtime::{PosixRlimitType, Process, Spec};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The first argument that makes the shim binary a task process.
pub const TASK_FLAG: &str = "--capsule-task";

/// Where compiled modules are kept on the node unless `CAPSULE_MODULE_CACHE` (in
/// containerd's environment, which its shims inherit) names another directory.
pub const DEFAULT_MODULE_CACHE: &str = "/var/lib/containerd-shim-capsule/module-cache";

/// Whether containerd has started the task (a stop signal before that ends it at once).
static STARTED: AtomicBool = AtomicBool::new(false);

/// The exit code of a task whose module could not start (Capsule's `CANNOT_START`).
const CANNOT_START: i32 = exit::CANNOT_RUN as i32;

/// The task process: returns its exit code.
pub fn main() -> i32 {
    let mut args = std::env::args_os().skip(2);
    let (Some(bundle), Some(start)) = (
        args.next().map(PathBuf::from),
        args.next()
            .and_then(|fd| fd.to_str()?.parse::<i32>().ok())
            .filter(|fd| *fd > 2),
    ) else {
        eprintln!("capsule: {TASK_FLAG} needs the bundle directory and the start pipe");
        return CANNOT_START;
    };
    // SAFETY: the instance passed the start pipe's read end under this number, and
    // nothing else in this process owns it.
    let start = unsafe { OwnedFd::from_raw_fd(start) };
    // Everything this process opens with its own identity comes first: the module
    // cache, the rootfs and the bind mounts (as runc mounts them before the user
    // changes, so the spec's user sees inside what the permissions allow). Then the
    // spec's identity, while this process has one thread (capabilities are set per
    // thread), then the signal handlers, before anything slow.
    let cache = open_module_cache();
    let prepared = prepare(&bundle);
    let interrupt = Interrupt::new();
    let signal = forward_signals(&interrupt);
    if !wait_for_start(start) {
        return CANNOT_START;
    }
    STARTED.store(true, Ordering::SeqCst);
    match prepared {
        Ok((memory_limit, mut run, program)) => {
            run.limits.memory =
                memory_limit.map(|limit| crate::spec::guest_memory(limit, used_memory()));
            execute(&run, &program, cache, &interrupt, &signal)
        }
        Err(message) => {
            eprintln!("capsule: {message}");
            CANNOT_START
        }
    }
}

/// The task's memory limit, run spec and program, with its directories open and the
/// spec's identity taken; or a one-line reason it cannot run.
fn prepare(bundle: &Path) -> Result<(Option<u64>, RunSpec, Program), String> {
    let spec =
        Spec::load(bundle.join("config.json")).map_err(|e| format!("the task's spec: {e}"))?;
    let (mut run, program) = crate::spec::run_spec(&spec, bundle)?;
    for mount in &run.mounts {
        capsule_runtime::ambient::preopen_dir(&mount.host).map_err(|e| {
            format!(
                "cannot open {} for {}: {e}",
                mount.host.display(),
                mount.guest
            )
        })?;
    }
    make_mount_points(&run);
    if let Some(process) = spec.process() {
        take_identity(process)?;
    }
    run.limits.nofile = nofile_limit();
    Ok((crate::spec::memory_limit(&spec), run, program))
}

/// Makes the directories the spec mounts on in the writable rootfs, as runc does for a
/// mount point the image lacks: through a handle on the rootfs, so that a symlink in the
/// image cannot lead outside it (the handle [`prepare`] opened). A read-only root is
/// left as it is.
fn make_mount_points(run: &RunSpec) {
    let Some(root) = run
        .mounts
        .first()
        .filter(|m| m.guest.is_root() && !m.read_only)
    else {
        return;
    };
    let Ok(dir) = capsule_runtime::ambient::open_dir(&root.host) else {
        return;
    };
    let guests = run.mounts.iter().skip(1).map(|m| &m.guest);
    for guest in guests.chain(run.tmpfs.iter().map(|t| &t.guest)) {
        // A failure is the run's to report, when it cannot find the mount point.
        let _ = dir.create_dir_all(guest.as_str().trim_start_matches('/'));
    }
}

/// Blocks until the instance says start (true) or drops the pipe (false).
fn wait_for_start(start: OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    matches!(std::fs::File::from(start).read(&mut byte), Ok(1))
}

/// The node's module cache; without one, modules are compiled at every start.
fn open_module_cache() -> Option<ModuleCache> {
    let path = ambient::host_env_os(capsule_runtime::home::MODULE_CACHE_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_MODULE_CACHE), PathBuf::from);
    match ModuleCache::open(&path) {
        Ok(cache) => Some(cache),
        Err(e) => {
            eprintln!(
                "capsule: module cache {} unavailable ({e}); the module is compiled for this run",
                path.display()
            );
            None
        }
    }
}

/// Applies the spec's `rlimits`, `user`, `capabilities` and `noNewPrivileges` to this
/// process, in the order runc does: limits, groups and user, then capabilities.
fn take_identity(process: &Process) -> Result<(), String> {
    for rlimit in process.rlimits().iter().flatten() {
        let Some(resource) = rlimit_resource(rlimit.typ()) else {
            continue;
        };
        let limit = libc::rlimit {
            rlim_cur: rlimit.soft(),
            rlim_max: rlimit.hard(),
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(format!(
                "cannot set {:?} to {}/{}: {}",
                rlimit.typ(),
                rlimit.soft(),
                rlimit.hard(),
                std::io::Error::last_os_error()
            ));
        }
    }
    use caps::CapSet;
    let wanted = |set: &Option<oci_spec_runtime::runtime::Capabilities>| -> caps::CapsHashSet {
        set.iter()
            .flatten()
            .filter_map(|c| c.to_string().parse().ok())
            .collect()
    };
    let capabilities = process.capabilities().as_ref();
    if let Some(capabilities) = capabilities {
        // The bounding set can only lose capabilities, and only while this process
        // still has CAP_SETPCAP: before it changes user.
        let bounding = wanted(capabilities.bounding());
        for cap in caps::read(None, CapSet::Bounding).unwrap_or_default() {
            if !bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| format!("cannot drop {cap} from the bounding set: {e}"))?;
            }
        }
    }
    let user = process.user();
    if let Some(umask) = user.umask() {
        // SAFETY: umask only sets the process's mask.
        unsafe { libc::umask(umask as libc::mode_t) };
    }
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // SAFETY: setgroups reads `groups.len()` ids; setgid/setuid change this process's
    // identity, in that order (a user that is not root could not change its group).
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0
            || libc::setgid(user.gid()) != 0
            || libc::setuid(user.uid()) != 0
        {
            return Err(format!(
                "cannot run as user {}:{}: {}",
                user.uid(),
                user.gid(),
                std::io::Error::last_os_error()
            ));
        }
    }
    // A user that is not root has lost every capability with setuid, fewer than the
    // spec grants: a WebAssembly runner needs none. Root keeps the spec's sets.
    if let Some(capabilities) = capabilities.filter(|_| user.uid() == 0) {
        caps::set(None, CapSet::Effective, &wanted(capabilities.effective()))
            .and_then(|()| {
                caps::set(
                    None,
                    CapSet::Inheritable,
                    &wanted(capabilities.inheritable()),
                )
            })
            .and_then(|()| caps::set(None, CapSet::Permitted, &wanted(capabilities.permitted())))
            .and_then(|()| caps::set(None, CapSet::Ambient, &wanted(capabilities.ambient())))
            .map_err(|e| format!("cannot set the process's capabilities: {e}"))?;
    }
    // Whatever the spec says: a WebAssembly runner executes nothing, so it never needs
    // to gain privileges.
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("cannot set no_new_privs: {e}"))?;
    Ok(())
}

fn rlimit_resource(typ: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    Some(match typ {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// What the task already holds of its memory limit: its cgroup's usage when the
/// process can read it (the cgroup counts all of the task), else its resident size.
fn used_memory() -> u64 {
    let read = |file: &Path| -> Option<u64> { ambient::read_text(file).ok()?.trim().parse().ok() };
    let from_cgroup = ambient::read_text(Path::new("/proc/self/cgroup"))
        .ok()
        .and_then(|groups| {
            groups.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let path = path.trim_start_matches('/');
                if controllers.is_empty() {
                    read(
                        &Path::new("/sys/fs/cgroup")
                            .join(path)
                            .join("memory.current"),
                    )
                } else if controllers.split(',').any(|c| c == "memory") {
                    read(
                        &Path::new("/sys/fs/cgroup/memory")
                            .join(path)
                            .join("memory.usage_in_bytes"),
                    )
                } else {
                    None
                }
            })
        });
    from_cgroup.unwrap_or_else(|| {
        let pages = ambient::read_text(Path::new("/proc/self/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        pages * 4096
    })
}

/// Runs `program` under `spec` with the process's standard streams (containerd's
/// FIFOs), interrupted by the signals a task is stopped with.
fn execute(
    spec: &RunSpec,
    program: &Program,
    cache: Option<ModuleCache>,
    interrupt: &Interrupt,
    signal: &AtomicI32,
) -> i32 {
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
                return i32::from(exit::of_output(&output));
            }
            match &output.status {
                ExitStatus::Interrupted(Interruption::Killed) if by_signal > 0 => 128 + by_signal,
                ExitStatus::Trapped(trap) => {
                    eprintln!("capsule: guest trapped: {}", trap.reason);
                    i32::from(exit::of_output(&output))
                }
                ExitStatus::InvalidExit(status) => {
                    eprintln!(
                        "capsule: guest called proc_exit({status}), outside the exit statuses 0..=255 a process can report"
                    );
                    i32::from(exit::of_output(&output))
                }
                _ => i32::from(exit::of_output(&output)),
            }
        }
        Err(e) => {
            eprintln!("capsule: {e}");
            CANNOT_START
        }
    }
}

/// Interrupts the guest on SIGTERM, SIGINT, SIGHUP or SIGQUIT, and records which one
/// came.
fn forward_signals(interrupt: &Interrupt) -> std::sync::Arc<AtomicI32> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let received = std::sync::Arc::new(AtomicI32::new(0));
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT]) {
        Ok(mut signals) => {
            let interrupt = interrupt.clone();
            let received = received.clone();
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    // A task stopped before containerd started it has nothing to
                    // interrupt: it ends as a signalled process would.
                    if !STARTED.load(Ordering::SeqCst) {
                        std::process::exit(128 + signal);
                    }
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

/// The soft `RLIMIT_NOFILE` the spec's `process.rlimits` set.
fn nofile_limit() -> Option<u32> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current.and_then(|n| u32::try_from(n).ok())
}
