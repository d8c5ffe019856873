//! The WASI world a guest sees: Capsule's own preview1 host ([`p1`]) over the layered
//! virtual filesystem ([`crate::fs`]).
//!
//! [`build`] turns a [`RunSpec`] into that world:
//! - `/` is an in-memory filesystem when there are no layers, or the layers stacked
//!   under a temporary writable upper (`--layer DIR_OR_TAR`, lowest first);
//! - each `-v HOST:GUEST[:ro]` mounts a host directory, each `--tmpfs` an in-memory
//!   one, and `/tmp` is a 64 MiB tmpfs unless something else is mounted there;
//! - preopens follow what wasi-libc (and Rust std over it) can use. wasi-libc starts
//!   every program in `/` and resolves `data.txt` exactly like `/data.txt`, against the
//!   preopen with the longest matching prefix, `.` and `/` both counting as the empty
//!   prefix. So fd 3 is `/`; when the workdir is not `/`, each top-level entry of the
//!   root is preopened as `/NAME` and the workdir last as `.`: relative paths then land
//!   in the workdir and absolute paths under existing top-level directories still
//!   resolve from the root. (A path to a top-level name created later, written
//!   absolutely, lands in the workdir: a preview1 limit, documented in the README.)

pub mod p1;

use crate::fs::hostdir::HostDir;
use crate::fs::layer::{Kind, Layer, Source};
use crate::fs::lower::LowerStack;
use crate::fs::overlay::Overlay;
use crate::fs::tmpfs::TmpFs;
use crate::fs::{Backend, FsError, Vfs};
use crate::spec::{GuestPath, RunSpec};
use p1::WasiP1;
use p1::stdio::{Capture, Input, Output};
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
    #[error("cannot mount {host} at {guest}")]
    Mount {
        host: String,
        guest: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Layer(#[from] crate::fs::layer::LayerError),
    #[error("cannot open layer {path}")]
    LayerOpen {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the container's writable layer")]
    Upper(#[source] std::io::Error),
    #[error("working directory {workdir} {}", workdir_problem(*errno))]
    Workdir {
        workdir: GuestPath,
        errno: crate::fs::Errno,
    },
    #[error("cannot set up the guest's filesystem")]
    Fs(#[from] FsError),
}

/// The per-run WASI state kept in the wasmtime store, and what must live as long.
#[derive(Debug)]
pub struct WasiState {
    ctx: WasiP1,
    /// The temporary upper of a `--layer` run, removed when the run ends.
    _scratch: Option<Scratch>,
}

/// A temporary directory that is removed when dropped.
#[derive(Debug)]
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = crate::ambient::remove_dir_all(&self.0);
    }
}

impl WasiState {
    /// Reads a whole file of the guest's world (following symlinks inside it), for
    /// instance the module an image names as its entrypoint.
    ///
    /// # Errors
    /// The errno of the lookup or read (`ENOENT`, `EISDIR`, ...).
    pub fn read_file(&self, path: &GuestPath) -> Result<Vec<u8>, FsError> {
        let vfs = self.ctx.vfs();
        let loc = vfs.resolve("", path.as_str(), true)?;
        if vfs.stat(&loc)?.kind != Kind::File {
            return Err(crate::fs::Errno::Isdir.into());
        }
        let file = vfs.open(
            &loc,
            crate::fs::node::OpenOptions {
                read: true,
                ..Default::default()
            },
            0,
        )?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read_at(&mut buf, out.len() as u64)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
}

fn workdir_problem(errno: crate::fs::Errno) -> String {
    match errno {
        crate::fs::Errno::Noent => {
            "does not exist in the mounted volume (create it, or choose another -w)".to_owned()
        }
        crate::fs::Errno::Notdir => "is not a directory (ENOTDIR)".to_owned(),
        crate::fs::Errno::Rofs => "does not exist and the mount is read-only (EROFS)".to_owned(),
        other => format!("cannot be used ({other})"),
    }
}

const DEV_ROOT: u64 = 1;

/// Most bytes of file data an in-memory root (a run without layers) holds: a guest
/// that writes more (or seeks to a huge offset and writes) gets ENOSPC, not the host's
/// memory.
pub const ROOT_TMPFS_SIZE: u64 = 1 << 30;

/// Builds the guest's world for a run.
///
/// # Errors
/// [`WasiError`] when a layer, mount or the workdir cannot be set up.
pub fn build(spec: &RunSpec, stdio: &Stdio) -> Result<(WasiState, Option<Captured>), WasiError> {
    let (root, scratch): (Arc<dyn Backend>, _) = if spec.layers.is_empty() {
        (Arc::new(TmpFs::new(ROOT_TMPFS_SIZE, DEV_ROOT)), None)
    } else {
        let lower = lower_stack(spec)?;
        let (dir, scratch) = match &spec.upper {
            Some(dir) => (dir.clone(), None),
            None => {
                let dir = crate::ambient::scratch_dir().map_err(WasiError::Upper)?;
                (dir.clone(), Some(Scratch(dir)))
            }
        };
        // `upper/` and `work/` are made inside it on the first write.
        let dir = crate::ambient::create_and_open_dir(&dir).map_err(WasiError::Upper)?;
        let overlay = Overlay::in_dir(Arc::new(lower), dir, DEV_ROOT)?;
        (Arc::new(overlay), scratch)
    };
    let mut vfs = Vfs::new(root, false);
    let mut device = DEV_ROOT + 1;
    if !spec.mounts.iter().any(|m| m.guest.as_str() == "/tmp")
        && !spec.tmpfs.iter().any(|t| t.guest.as_str() == "/tmp")
    {
        vfs.mount(
            "/tmp",
            Arc::new(TmpFs::new(crate::spec::Tmpfs::DEFAULT_SIZE, device)),
            false,
        );
        device += 1;
    }
    for tmpfs in &spec.tmpfs {
        vfs.mount(
            tmpfs.guest.as_str(),
            Arc::new(TmpFs::new(tmpfs.size, device)),
            false,
        );
        device += 1;
    }
    for mount in &spec.mounts {
        let dir = crate::ambient::open_dir(&mount.host).map_err(|source| WasiError::Mount {
            host: mount.host.display().to_string(),
            guest: mount.guest.to_string(),
            source,
        })?;
        vfs.mount(
            mount.guest.as_str(),
            Arc::new(HostDir::new(dir, device)),
            mount.read_only,
        );
        device += 1;
    }

    let mut preopens = vec![("/".to_owned(), String::new())];
    if !spec.workdir.is_root() {
        let workdir_err = |e: FsError| WasiError::Workdir {
            workdir: spec.workdir.clone(),
            errno: e.errno(),
        };
        ensure_dir(&vfs, &spec.workdir).map_err(workdir_err)?;
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

    let (stdin, stdout, stderr, captured) = match stdio {
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
    };
    let env = spec
        .env
        .vars()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let ctx = WasiP1::new(
        spec.args.clone(),
        env,
        Arc::new(vfs),
        &preopens,
        stdin,
        stdout,
        stderr,
    )?;
    Ok((
        WasiState {
            ctx,
            _scratch: scratch,
        },
        captured,
    ))
}

fn lower_stack(spec: &RunSpec) -> Result<LowerStack, WasiError> {
    open_lower(
        &spec.layers,
        spec.layer_index_cache.as_deref(),
        spec.layer_chain_id.as_deref(),
    )
}

/// The merged lower stack of `layers` (lowest first): loaded from the saved index of
/// this exact chain when there is one (named `chain_id`, or for tars by their file
/// identity; a directory can change without its own mtime changing), else indexed,
/// checked, merged and saved in `index_cache` for next time.
///
/// # Errors
/// [`WasiError`] when a layer cannot be opened or is refused.
pub fn open_lower(
    layers: &[std::path::PathBuf],
    index_cache: Option<&std::path::Path>,
    chain_id: Option<&str>,
) -> Result<LowerStack, WasiError> {
    let mut sources = Vec::new();
    for path in layers {
        let source = Source::open(path).map_err(|source| WasiError::LayerOpen {
            path: path.display().to_string(),
            source,
        })?;
        sources.push(source);
    }
    let cache = index_cache
        .and_then(|dir| {
            chain_id
                .map(str::to_owned)
                .or_else(|| chain_key(layers))
                .map(|key| (dir, key))
        })
        .and_then(|(dir, key)| {
            crate::ambient::create_and_open_dir(dir)
                .ok()
                .map(|dir| (dir, format!("{key}.idx")))
        });
    if let Some((dir, name)) = &cache
        && let Ok(map) = dir
            .open(name)
            .and_then(|f| crate::fs::map_file(&f.into_std()))
    {
        match LowerStack::from_saved(crate::fs::index::Buffer::Mapped(map), sources.clone()) {
            Ok(stack) => {
                tracing::debug!(index = %name, "layer index loaded");
                return Ok(stack);
            }
            Err(e) => {
                tracing::warn!(index = %name, error = %e, "saved layer index unusable; rebuilding")
            }
        }
    }
    let mut indexed = Vec::new();
    for (path, source) in layers.iter().zip(sources) {
        indexed.push(Arc::new(Layer::from_source(
            &path.display().to_string(),
            source,
        )?));
    }
    let stack = LowerStack::new(indexed);
    if let Some((dir, name)) = &cache {
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        let saved = dir
            .write(&tmp, stack.index().as_bytes())
            .and_then(|()| dir.rename(&tmp, dir, name));
        match saved {
            Ok(()) => tracing::debug!(index = %name, "layer index saved"),
            Err(e) => {
                let _ = dir.remove_file(&tmp);
                tracing::warn!(error = %e, "could not save the layer index");
            }
        }
    }
    Ok(stack)
}

/// Identifies a chain of tar layers by each file's path, size, modification time and
/// inode; `None` when a layer is a directory or cannot be examined.
fn chain_key(layers: &[std::path::PathBuf]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"capsule layer index v1\0");
    for path in layers {
        let identity = crate::ambient::file_identity(path)?;
        hasher.update(identity.as_bytes());
        hasher.update(b"\0");
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Creates the workdir (and its parents) where the filesystem allows, as Docker does;
/// inside a mounted host directory it must already exist.
fn ensure_dir(vfs: &Vfs, dir: &GuestPath) -> Result<(), FsError> {
    let mut path = String::new();
    for part in dir.as_str().split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        let loc = vfs.resolve("", &path, true)?;
        match vfs.stat(&loc) {
            Ok(stat) if stat.kind == Kind::Dir => {}
            Ok(_) => return Err(crate::fs::Errno::Notdir.into()),
            Err(e)
                if e.errno() == crate::fs::Errno::Noent
                    && !vfs.is_read_only(&loc)
                    && !vfs.is_host(&loc) =>
            {
                vfs.mkdir(&loc, 0o755)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Adds `wasi_snapshot_preview1` to a linker whose store data holds a [`WasiState`].
///
/// # Errors
/// wasmtime's error if the definitions clash with ones already in the linker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::Linker<T>,
    state: impl Fn(&mut T) -> &mut WasiState + Copy + Send + Sync + 'static,
) -> wasmtime::Result<()> {
    p1::add_to_linker(linker, move |t| &mut state(t).ctx)
}
