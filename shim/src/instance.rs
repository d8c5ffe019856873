//! One containerd task in the shim: a task process (`--capsule-task`, [`crate::task`])
//! in the spec's cgroup.
//!
//! - create: the cgroup is made (youki's cgroup managers: v1, v2 or systemd, as
//!   containerd's `SystemdCgroup` option says) with the spec's resources, the task
//!   process spawned with the task's standard streams and a start pipe, and put in the
//!   cgroup. The process reads the spec and prepares the run while it waits.
//! - start: one byte on the start pipe.
//! - kill: the signal to the process (not once it has exited: its PID may be reused).
//! - delete: the cgroup is removed (containerd unmounts the rootfs and removes the
//!   bundle).

use crate::exits;
use chrono::{DateTime, Utc};
use containerd_shimkit::sandbox::sync::WaitableCell;
use containerd_shimkit::sandbox::{Error, Instance, InstanceConfig};
use futures_util::FutureExt;
use libcgroups::common::{
    AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager,
};
use oci_spec_runtime::runtime::Spec;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A task of the shim.
pub struct CapsuleInstance {
    id: String,
    pid: u32,
    /// The start pipe's write end, until start.
    start: Mutex<Option<OwnedFd>>,
    /// Set once the process has been reaped: its PID is no longer its own.
    exit: WaitableCell<(u32, DateTime<Utc>)>,
    cgroup: Option<Mutex<AnyCgroupManager>>,
}

impl std::fmt::Debug for CapsuleInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapsuleInstance")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// This binary, for the task processes; `/proc/self/exe` if its path is unknown.
fn task_program() -> &'static Path {
    static PROGRAM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| {
        capsule_runtime::ambient::current_exe()
            .unwrap_or_else(|_| std::path::PathBuf::from("/proc/self/exe"))
    })
}

fn other(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Others(format!("{what}: {e}"))
}

/// The manager of the task's cgroup, when the spec names one.
fn cgroup_manager(spec: &Spec, id: &str, systemd: bool) -> Result<Option<AnyCgroupManager>, Error> {
    let Some(path) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) else {
        return Ok(None);
    };
    create_cgroup_manager(CgroupConfig {
        cgroup_path: path.clone(),
        systemd_cgroup: systemd,
        container_name: id.to_owned(),
    })
    .map(Some)
    .map_err(|e| other(&format!("cgroup {}", path.display()), e))
}

/// Puts process `pid` in the cgroup (which makes it, as youki does) and applies the
/// spec's resources to it.
fn join_cgroup(cgroup: &AnyCgroupManager, spec: &Spec, pid: u32) -> Result<(), Error> {
    cgroup
        .add_task(nix::unistd::Pid::from_raw(pid as i32))
        .map_err(|e| other("putting the task in its cgroup", e))?;
    if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        cgroup
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: spec.process().as_ref().and_then(|p| p.oom_score_adj()),
                freezer_state: None,
            })
            .map_err(|e| other("applying the spec's resources to the task's cgroup", e))?;
    }
    Ok(())
}

/// A standard stream of the task: containerd's FIFO or file, else nothing.
fn stdio(path: &Path) -> Result<Stdio, Error> {
    if path.as_os_str().is_empty() {
        return Ok(Stdio::null());
    }
    // Read and write, as the shim kit opens them: a FIFO opened so never blocks.
    let file = capsule_runtime::ambient::open_read_write(path)
        .map_err(|e| other(&format!("opening {}", path.display()), e))?;
    Ok(Stdio::from(file))
}

impl Instance for CapsuleInstance {
    async fn new(id: String, cfg: &InstanceConfig) -> Result<Self, Error> {
        let spec = Spec::load(cfg.bundle.join("config.json"))?;
        let cgroup = cgroup_manager(&spec, &id, cfg.config.systemd_cgroup)?;
        let (start_read, start_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| other("pipe", e))?;
        exits::watch().map_err(Error::Others)?;
        let mut command = Command::new(task_program());
        command
            .arg(crate::task::TASK_FLAG)
            .arg(&cfg.bundle)
            .arg(start_read.as_raw_fd().to_string())
            .current_dir(&cfg.bundle)
            .stdin(stdio(&cfg.stdin)?)
            .stdout(stdio(&cfg.stdout)?)
            .stderr(stdio(&cfg.stderr)?);
        // The read end is inherited by number rather than moved to a fixed descriptor
        // in a pre-exec hook: without a hook the standard library spawns with
        // posix_spawn (a vfork, no copy of the shim's page tables), which halves the
        // shim's cost per task. A task spawned at the same moment on another thread may
        // inherit this read end too; it only ever holds it.
        rustix::io::fcntl_setfd(&start_read, rustix::io::FdFlags::empty())
            .map_err(|e| other("pipe", e))?;
        let child = command
            .spawn()
            .map_err(|e| other("starting the task process", e))?;
        drop(start_read);
        let pid = child.id();
        // The shim kit's reaper collects the process; `exits` gives its code.
        drop(child);
        let exited = exits::exit_of(pid as i32);
        if let Some(cgroup) = &cgroup
            && let Err(e) = join_cgroup(cgroup, &spec, pid)
        {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let _ = cgroup.remove();
            return Err(e);
        }
        let exit = WaitableCell::new();
        let cell = exit.clone();
        tokio::spawn(async move {
            // A lost exit (the watcher gone) is reported as a kill, as runwasi does.
            let code = exited
                .await
                .unwrap_or(i32::from(capsule_runtime::exit::KILLED));
            let _ = cell.set((code as u32, Utc::now()));
        });
        Ok(Self {
            id,
            pid,
            start: Mutex::new(Some(start_write)),
            exit,
            cgroup: cgroup.map(Mutex::new),
        })
    }

    async fn start(&self) -> Result<u32, Error> {
        let pipe = self
            .start
            .lock()
            .map_err(|_| other("start", "poisoned"))?
            .take()
            .ok_or_else(|| {
                Error::FailedPrecondition(format!("task {} already started", self.id))
            })?;
        // A process that already ended (its spec could not run) reports that through
        // its exit code; the byte has nobody to read it.
        let _ = rustix::io::write(&pipe, &[1]);
        Ok(self.pid)
    }

    async fn kill(&self, signal: u32) -> Result<(), Error> {
        if self.exit.wait().now_or_never().is_some() {
            return Ok(());
        }
        let signal = i32::try_from(signal)
            .ok()
            .and_then(rustix::process::Signal::from_named_raw)
            .ok_or_else(|| Error::InvalidArgument(format!("signal {signal}")))?;
        let pid = rustix::process::Pid::from_raw(self.pid as i32)
            .ok_or_else(|| other("pid", self.pid))?;
        match rustix::process::kill_process(pid, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(other(&format!("signalling task {}", self.id), e)),
        }
    }

    async fn delete(&self) -> Result<(), Error> {
        // Unstarted, the process ends at the pipe's end of file.
        if let Ok(mut start) = self.start.lock() {
            start.take();
        }
        if let Some(cgroup) = &self.cgroup {
            // Its process is gone (containerd deletes exited tasks); wait for the
            // reaper so the cgroup is empty.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.exit.wait()).await;
            let cgroup = cgroup.lock().map_err(|_| other("cgroup", "poisoned"))?;
            cgroup
                .remove()
                .map_err(|e| other(&format!("removing task {}'s cgroup", self.id), e))?;
        }
        Ok(())
    }

    async fn wait(&self) -> (u32, DateTime<Utc>) {
        *self.exit.wait().await
    }
}
