//! The WASI preview1 host a guest sees.
//!
//! Today this is wasmtime-wasi's preview1 over host preopens: each `-v` mount is a
//! preopened directory at its guest path. This module is the seam where Capsule's own
//! WASI host over its layered filesystem replaces it; nothing outside it names
//! wasmtime-wasi.
//!
//! Two decisions live here:
//! - `proc_exit` is Capsule's own, so that every status in `0..=255` reaches the caller
//!   as a [`ProcExit`] and larger ones are reported instead of silently truncated.
//! - The working directory. wasi-libc (and so Rust std) starts every program in `/` and
//!   resolves a relative path exactly like the absolute one, against the preopen with
//!   the longest matching prefix, where `.` and `/` both count as the empty prefix. So a
//!   workdir inside a mount is also preopened as `.`, last, which makes relative paths
//!   land in it. (With a mount at `/` that would capture absolute paths too, so there
//!   relative paths keep resolving from `/`.)

use crate::spec::{GuestPath, Mount, RunSpec};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The guest called `proc_exit(status)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest called proc_exit({0})")]
pub struct ProcExit(pub u32);

/// Where the guest's standard streams go.
#[derive(Debug, Clone)]
pub enum Stdio {
    /// The host process's own stdin, stdout and stderr.
    Inherit,
    /// stdin from bytes; stdout and stderr collected in memory, each up to `limit` bytes
    /// (a guest writing more gets an error on the write that overflows).
    Capture { stdin: Vec<u8>, limit: usize },
}

/// Captured output pipes, read after the run.
#[derive(Debug, Clone)]
pub struct Captured {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Captured {
    /// What the guest wrote to stdout and stderr.
    pub fn contents(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.stdout.contents().to_vec(),
            self.stderr.contents().to_vec(),
        )
    }
}

/// Errors setting up the guest's WASI context.
#[derive(Debug, thiserror::Error)]
pub enum WasiError {
    #[error("cannot mount {host} at {guest}: {reason}")]
    Preopen {
        host: String,
        guest: String,
        reason: String,
    },
    #[error(
        "working directory {0} is outside every volume; until images arrive a guest's \
         filesystem is only its -v mounts, so mount a directory there (-v DIR:{0})"
    )]
    WorkdirOutsideMounts(GuestPath),
    #[error("working directory {workdir} does not exist in the volume mounted from {host}")]
    WorkdirMissing { workdir: GuestPath, host: String },
}

/// The per-run WASI state kept in the wasmtime store.
pub struct WasiState {
    ctx: WasiP1Ctx,
}

impl std::fmt::Debug for WasiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiState").finish_non_exhaustive()
    }
}

/// Builds the WASI state for a run.
///
/// # Errors
/// [`WasiError`] when a mount cannot be opened or the workdir is not reachable.
pub fn build(spec: &RunSpec, stdio: &Stdio) -> Result<(WasiState, Option<Captured>), WasiError> {
    let mut builder = WasiCtxBuilder::new();
    builder.args(&spec.args);
    builder.envs(spec.env.vars());

    let captured = match stdio {
        Stdio::Inherit => {
            builder.inherit_stdio();
            None
        }
        Stdio::Capture { stdin, limit } => {
            let captured = Captured {
                stdout: MemoryOutputPipe::new(*limit),
                stderr: MemoryOutputPipe::new(*limit),
            };
            builder.stdin(MemoryInputPipe::new(stdin.clone()));
            builder.stdout(captured.stdout.clone());
            builder.stderr(captured.stderr.clone());
            Some(captured)
        }
    };

    let mut mounts: Vec<&Mount> = spec.mounts.iter().collect();
    mounts.sort_by(|a, b| a.guest.cmp(&b.guest));
    for mount in &mounts {
        preopen(
            &mut builder,
            &mount.host,
            mount.guest.as_str(),
            mount.read_only,
        )?;
    }

    if !spec.workdir.is_root() {
        let (mount, rest) = mounts
            .iter()
            .rev()
            .find_map(|m| spec.workdir.strip_prefix(&m.guest).map(|rest| (*m, rest)))
            .ok_or_else(|| WasiError::WorkdirOutsideMounts(spec.workdir.clone()))?;
        let host = mount.host.join(rest);
        if !crate::ambient::is_dir(&host) {
            return Err(WasiError::WorkdirMissing {
                workdir: spec.workdir.clone(),
                host: mount.host.display().to_string(),
            });
        }
        if !mounts.iter().any(|m| m.guest.is_root()) {
            preopen(&mut builder, &host, ".", mount.read_only)?;
        }
    }

    Ok((
        WasiState {
            ctx: builder.build_p1(),
        },
        captured,
    ))
}

fn preopen(
    builder: &mut WasiCtxBuilder,
    host: &std::path::Path,
    guest: &str,
    read_only: bool,
) -> Result<(), WasiError> {
    let perms = if read_only {
        FsPerms::ReadOnly
    } else {
        FsPerms::ReadWrite
    };
    builder
        .preopened_dir(host, guest, perms)
        .map(|_| ())
        .map_err(|e| WasiError::Preopen {
            host: host.display().to_string(),
            guest: guest.to_owned(),
            reason: format!("{e:#}"),
        })
}

/// Adds `wasi_snapshot_preview1` to a linker whose store data holds a [`WasiState`].
///
/// # Errors
/// wasmtime's error if the definitions clash with ones already in the linker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::Linker<T>,
    state: impl Fn(&mut T) -> &mut WasiState + Copy + Send + Sync + 'static,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, move |t| &mut state(t).ctx)?;
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "proc_exit",
        |status: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::new(ProcExit(status.cast_unsigned())))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
