//! The WASI world a guest sees: Capsule's own preview1 host ([`p1`]) over a root
//! filesystem assembled by [`crate::fs::rootfs`].
//!
//! [`WasiState::new`] turns that filesystem plus arguments into the guest's world.
//! Preopens follow what wasi-libc (and Rust std over it) can use. wasi-libc starts
//! every program in `/` and resolves `data.txt` exactly like `/data.txt`, against the
//! preopen with the longest matching prefix, `.` and `/` both counting as the empty
//! prefix. So fd 3 is `/`; when the workdir is not `/`, each top-level entry of the
//! root is preopened as `/NAME` and the workdir last as `.`: relative paths then land
//! in the workdir and absolute paths under existing top-level directories still
//! resolve from the root. (A path to a top-level name created later, written
//! absolutely, lands in the workdir: a preview1 limit, documented in `docs/wasi.md`.)

pub mod core;
pub mod freeze;
pub mod p1;
pub mod p2;

use crate::fs::FsError;
use crate::fs::layer::Kind;
use crate::fs::rootfs::{RootFs, RootFsError, Scratch};
use crate::spec::RunSpec;
use p1::WasiP1;
use p1::stdio::{Capture, Input, Output};
pub use p1::stdio::{LogSink, Stream};
use std::sync::Arc;

/// The guest called `proc_exit(status)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest called proc_exit({0})")]
pub struct ProcExit(pub u32);

/// Where the guest's standard streams go.
#[derive(Debug, Clone)]
pub enum Stdio {
    /// The host process's own stdin, stdout and stderr.
    Inherit,
    /// No stdin; stdout and stderr both to the host's stderr (a build step's log, which
    /// must not mix with what the build prints on stdout).
    Log,
    /// stdin from bytes; stdout and stderr collected in memory, each up to `limit` bytes
    /// (a write past it fails with `ENOSPC`).
    Capture { stdin: Vec<u8>, limit: usize },
    /// stdout and stderr into a container's log (which may echo them); stdin from the
    /// host's when `stdin` is set (`run -i`), else empty.
    Logged { sink: Arc<dyn LogSink>, stdin: bool },
    /// stdin from bytes; stdout and stderr handed to `sink` write by write (an
    /// embedder streaming a guest's output).
    Streamed {
        stdin: Vec<u8>,
        sink: Arc<dyn LogSink>,
    },
    /// Host files or pipes (`capsule exec`: the client's own, passed over the control
    /// channel); no stdin when `stdin` is `None`.
    Files {
        stdin: Option<Arc<std::fs::File>>,
        stdout: Arc<std::fs::File>,
        stderr: Arc<std::fs::File>,
    },
}

/// Captured output, read after the run.
#[derive(Debug, Clone)]
pub struct Captured {
    stdout: Capture,
    stderr: Capture,
}

impl Captured {
    /// What the guest wrote to stdout and stderr.
    pub fn contents(&self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout.contents(), self.stderr.contents())
    }
}

/// Errors setting up the guest's world.
#[derive(Debug, thiserror::Error)]
pub enum WasiError {
    #[error(transparent)]
    RootFs(#[from] RootFsError),
    #[error("cannot set up the guest's filesystem")]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ports(#[from] crate::net::NetError),
    #[error("cannot connect the guest's standard streams")]
    Stdio(#[source] std::io::Error),
}

/// The per-run WASI state kept in the wasmtime store, and what must live as long.
#[derive(Debug)]
pub struct WasiState {
    ctx: WasiP1,
    /// The temporary writable layer of a run without a container directory, removed
    /// when the run ends.
    _scratch: Option<Scratch>,
}

impl WasiState {
    /// The filesystem the guest sees.
    pub fn vfs(&self) -> &Arc<crate::fs::Vfs> {
        self.ctx.vfs()
    }

    /// Counts the guest's open descriptors in `gauges`.
    pub fn share(&mut self, gauges: &crate::exec::Gauges) {
        self.ctx.count_open_in(gauges.fds.clone());
    }

    /// Lets `interrupt` wake the guest from a `poll_oneoff` sleep.
    pub fn set_interrupt(&mut self, interrupt: crate::engine::Interrupt) {
        self.ctx.set_interrupt(interrupt);
    }

    /// Turns a root filesystem and the spec's arguments, environment and workdir into
    /// the guest's WASI world, with its standard streams connected as `stdio` says and
    /// `listeners` (the spec's published ports, bound) as listening sockets.
    ///
    /// The listeners come right after the preopened directories (never before them:
    /// wasi-libc looks for preopens from fd 3 up to the first `EBADF`, which a socket
    /// answers), in the order of the spec's ports, and the guest is told where, as
    /// systemd's socket activation does: `LISTEN_FDS` (how many), `LISTEN_FDNAMES`
    /// (their container ports, `:`-separated) and `LISTEN_FDS_START` (the first one's
    /// descriptor: in WASI it is not 3).
    ///
    /// # Errors
    /// [`WasiError`] when the root cannot be listed for the preopens.
    pub fn new(
        root: RootFs,
        spec: &RunSpec,
        stdio: &Stdio,
        listeners: Vec<crate::net::Listener>,
    ) -> Result<(Self, Option<Captured>), WasiError> {
        let (vfs, scratch) = root.into_parts();
        Self::with_vfs(Arc::new(vfs), scratch, spec, stdio, listeners)
    }

    /// A world over the filesystem of a container that runs already (`capsule exec`),
    /// with the spec's arguments, environment and workdir and no listeners.
    ///
    /// # Errors
    /// As [`WasiState::new`].
    pub fn beside(
        vfs: Arc<crate::fs::Vfs>,
        spec: &RunSpec,
        stdio: &Stdio,
    ) -> Result<(Self, Option<Captured>), WasiError> {
        Self::with_vfs(vfs, None, spec, stdio, Vec::new())
    }

    fn with_vfs(
        vfs: Arc<crate::fs::Vfs>,
        scratch: Option<Scratch>,
        spec: &RunSpec,
        stdio: &Stdio,
        listeners: Vec<crate::net::Listener>,
    ) -> Result<(Self, Option<Captured>), WasiError> {
        let preopens = preopens(&vfs, spec)?;
        let (stdin, stdout, stderr, captured) = streams(stdio).map_err(WasiError::Stdio)?;
        let mut env: Vec<String> = spec
            .env
            .vars()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !listeners.is_empty() {
            const VARS: [&str; 4] = [
                "LISTEN_FDS=",
                "LISTEN_FDNAMES=",
                "LISTEN_FDS_START=",
                "LISTEN_PID=",
            ];
            env.retain(|var| !VARS.iter().any(|v| var.starts_with(v)));
            let names: Vec<String> = listeners
                .iter()
                .map(|l| l.binding.container_port.to_string())
                .collect();
            env.push(format!("LISTEN_FDS={}", listeners.len()));
            env.push(format!("LISTEN_FDNAMES={}", names.join(":")));
            env.push(format!("LISTEN_FDS_START={}", 3 + preopens.len()));
        }
        let mut ctx = WasiP1::new(
            spec.args.clone(),
            env,
            vfs,
            &preopens,
            stdin,
            stdout,
            stderr,
        )?;
        ctx.add_listeners(listeners.into_iter().map(|l| l.socket))
            .map_err(FsError::from)?;
        if let Some(nofile) = spec.limits.nofile {
            ctx.set_max_fds(nofile as usize);
        }
        Ok((
            Self {
                ctx,
                _scratch: scratch,
            },
            captured,
        ))
    }
}

/// The directories a guest gets preopened, as (guest name, canonical guest path)
/// pairs, in order: `/`, and when the workdir is not `/`, each top-level directory and
/// the workdir as `.` (see the module's documentation).
fn preopens(vfs: &crate::fs::Vfs, spec: &RunSpec) -> Result<Vec<(String, String)>, WasiError> {
    let mut preopens = vec![("/".to_owned(), String::new())];
    if !spec.workdir.is_root() {
        let root = vfs.resolve("", "/", true)?;
        for entry in vfs.list(&root)? {
            if entry.kind == Kind::Dir {
                preopens.push((format!("/{}", entry.name), entry.name));
            }
        }
        preopens.push((
            ".".to_owned(),
            spec.workdir.as_str().trim_start_matches('/').to_owned(),
        ));
    }
    Ok(preopens)
}

/// A component's WASI 0.2 world ([`p2`]), kept in its store, and what must live as
/// long.
#[derive(Debug)]
pub struct ComponentState {
    ctx: p2::WasiP2,
    _scratch: Option<Scratch>,
}

impl ComponentState {
    /// As [`WasiState::new`], for a component (published ports are not handed to
    /// components: they bind their own sockets).
    ///
    /// # Errors
    /// As [`WasiState::new`].
    pub fn new(
        root: RootFs,
        spec: &RunSpec,
        stdio: &Stdio,
    ) -> Result<(Self, Option<Captured>), WasiError> {
        let (vfs, scratch) = root.into_parts();
        Self::with_vfs(Arc::new(vfs), scratch, spec, stdio)
    }

    /// As [`WasiState::beside`], for a component.
    ///
    /// # Errors
    /// As [`WasiState::new`].
    pub fn beside(
        vfs: Arc<crate::fs::Vfs>,
        spec: &RunSpec,
        stdio: &Stdio,
    ) -> Result<(Self, Option<Captured>), WasiError> {
        Self::with_vfs(vfs, None, spec, stdio)
    }

    fn with_vfs(
        vfs: Arc<crate::fs::Vfs>,
        scratch: Option<Scratch>,
        spec: &RunSpec,
        stdio: &Stdio,
    ) -> Result<(Self, Option<Captured>), WasiError> {
        let preopens = preopens(&vfs, spec)?;
        let (stdin, stdout, stderr, captured) = streams(stdio).map_err(WasiError::Stdio)?;
        let streams = (stdin, stdout, stderr);
        let ctx = p2::WasiP2::new(&spec.args, spec.env.vars(), vfs, &preopens, streams, spec)?;
        Ok((
            Self {
                ctx,
                _scratch: scratch,
            },
            captured,
        ))
    }

    /// The filesystem the guest sees.
    pub fn vfs(&self) -> &Arc<crate::fs::Vfs> {
        self.ctx.vfs()
    }

    /// Counts the guest's open descriptors in `gauges` and makes its changes to files
    /// pass the container's freeze gate.
    pub fn share(&mut self, gauges: &crate::exec::Gauges) {
        self.ctx.count_open_in(gauges.fds.clone());
        self.ctx.set_freeze(Some(gauges.freeze.clone()));
    }

    /// The WASI 0.2 world itself.
    pub fn ctx(&mut self) -> &mut p2::WasiP2 {
        &mut self.ctx
    }
}

/// One of the guest's output streams into `sink`.
fn sink_output(sink: &Arc<dyn LogSink>, stream: Stream) -> Output {
    Output::Sink {
        sink: sink.clone(),
        stream,
    }
}

fn streams(stdio: &Stdio) -> std::io::Result<(Input, Output, Output, Option<Captured>)> {
    Ok(match stdio {
        Stdio::Inherit => (Input::Inherit, Output::Stdout, Output::Stderr, None),
        Stdio::Log => (
            Input::Bytes {
                data: Vec::new(),
                pos: 0,
            },
            Output::Stderr,
            Output::Stderr,
            None,
        ),
        Stdio::Logged { sink, stdin } => (
            if *stdin {
                Input::Inherit
            } else {
                Input::Bytes {
                    data: Vec::new(),
                    pos: 0,
                }
            },
            sink_output(sink, Stream::Stdout),
            sink_output(sink, Stream::Stderr),
            None,
        ),
        Stdio::Streamed { stdin, sink } => (
            Input::Bytes {
                data: stdin.clone(),
                pos: 0,
            },
            sink_output(sink, Stream::Stdout),
            sink_output(sink, Stream::Stderr),
            None,
        ),
        Stdio::Files {
            stdin,
            stdout,
            stderr,
        } => {
            // Each stream its own descriptor (a `dup`), closed with the guest's world.
            let file = |f: &Arc<std::fs::File>| f.try_clone();
            let stdin = stdin.as_ref().map(file).transpose()?;
            (
                stdin.map_or(
                    Input::Bytes {
                        data: Vec::new(),
                        pos: 0,
                    },
                    Input::File,
                ),
                Output::File(file(stdout)?),
                Output::File(file(stderr)?),
                None,
            )
        }
        Stdio::Capture { stdin, limit } => {
            let captured = Captured {
                stdout: Capture::default(),
                stderr: Capture::default(),
            };
            (
                Input::Bytes {
                    data: stdin.clone(),
                    pos: 0,
                },
                Output::Capture {
                    buf: captured.stdout.clone(),
                    limit: *limit,
                },
                Output::Capture {
                    buf: captured.stderr.clone(),
                    limit: *limit,
                },
                Some(captured),
            )
        }
    })
}

/// Adds `wasi_snapshot_preview1` to a linker whose store data holds a [`WasiState`];
/// with `freeze`, the guest's changes to files pass that gate (its container's).
///
/// # Errors
/// wasmtime's error if the definitions clash with ones already in the linker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::Linker<T>,
    state: impl Fn(&mut T) -> &mut WasiState + Copy + Send + Sync + 'static,
    freeze: Option<Arc<freeze::Freeze>>,
) -> wasmtime::Result<()> {
    p1::add_to_linker(linker, move |t| &mut state(t).ctx, freeze)
}
