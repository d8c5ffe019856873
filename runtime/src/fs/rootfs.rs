//! A container's root filesystem, assembled from a [`RunSpec`]: `/` is an in-memory
//! filesystem when there are no layers, or the layers stacked under a writable layer
//! (kept in the spec's `upper` directory, or a temporary one removed after the run);
//! each `-v HOST:GUEST[:ro]` mounts a host directory, each `--tmpfs` an in-memory one,
//! and `/tmp` is a 64 MiB tmpfs unless something else is mounted there. The workdir is
//! created where the filesystem allows, as Docker does. With `--read-only`
//! ([`RunSpec::read_only`]) `/` refuses every change (EROFS) while mounts and `/tmp`
//! stay writable.

use crate::fs::hostdir::HostDir;
use crate::fs::layer::{Kind, Layer, Source};
use crate::fs::lower::LowerStack;
use crate::fs::overlay::Overlay;
use crate::fs::tmpfs::TmpFs;
use crate::fs::{Backend, Errno, FsError, Vfs};
use crate::spec::{GuestPath, RunSpec};
use std::sync::Arc;

/// Errors assembling a root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootFsError {
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
    /// The container's directory (the writable layer's) is gone.
    #[error("the container was removed (capsule rm) meanwhile")]
    Removed,
    #[error("working directory {workdir} {}", workdir_problem(*errno))]
    Workdir { workdir: GuestPath, errno: Errno },
    #[error("cannot set up the guest's filesystem")]
    Fs(#[from] FsError),
}

/// A root filesystem and what must live as long as it.
#[derive(Debug)]
pub struct RootFs {
    vfs: Vfs,
    /// The temporary writable layer of a run without a container directory.
    scratch: Option<Scratch>,
}

/// A temporary directory that is removed when dropped.
#[derive(Debug)]
pub struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = crate::ambient::remove_dir_all(&self.0);
    }
}

/// The device number of `/`; mounts get the following ones.
const DEV_ROOT: u64 = 1;

/// Most bytes of file data an in-memory root (a run without layers) holds: a guest
/// that writes more (or seeks to a huge offset and writes) gets ENOSPC, not the host's
/// memory.
pub const ROOT_TMPFS_SIZE: u64 = 1 << 30;

impl RootFs {
    /// Assembles the root filesystem `spec` describes.
    ///
    /// # Errors
    /// [`RootFsError`] when a layer, mount or the workdir cannot be set up.
    pub fn assemble(spec: &RunSpec) -> Result<Self, RootFsError> {
        let (root, scratch) = root_backend(spec, spec.upper.as_deref())?;
        // Where each mount (host directory or tmpfs) is seen.
        let targets: Vec<&GuestPath> = spec
            .mounts
            .iter()
            .map(|m| &m.guest)
            .chain(spec.tmpfs.iter().map(|t| &t.guest))
            .collect();
        let workdir = spec.workdir.as_str();
        let in_a_mount = workdir == "/tmp"
            || workdir.starts_with("/tmp/")
            || targets
                .iter()
                .any(|guest| spec.workdir.strip_prefix(guest).is_some());
        // `--read-only` keeps the guest from writing to `/`; the workdir is made
        // before it is (as Docker makes it before the root is remounted read-only).
        let make_workdir = spec.read_only && !spec.workdir.is_root() && !in_a_mount;
        // A mount whose parent directory the image lacks (`-v x:/lib/app` without
        // `/lib`) is reached through that parent: it is made in the writable layer,
        // as Docker makes a mount point's missing directories. A parent inside another
        // mount is that mount's business, and one that cannot be made (a file is
        // there) leaves the mount unreachable, as before.
        let parents: Vec<GuestPath> = targets
            .iter()
            .filter_map(|target| {
                let (parent, _) = target.as_str().rsplit_once('/')?;
                let parent = GuestPath::parse(parent).ok()?;
                let inside_another = targets
                    .iter()
                    .any(|other| other != target && parent.strip_prefix(other).is_some());
                (!parent.is_root() && parent.as_str() != "/tmp" && !inside_another)
                    .then_some(parent)
            })
            .collect();
        if make_workdir || !parents.is_empty() {
            let writable = Vfs::new(root.clone(), false);
            if make_workdir {
                ensure_dir(&writable, &spec.workdir).map_err(|e| RootFsError::Workdir {
                    workdir: spec.workdir.clone(),
                    errno: e.errno(),
                })?;
            }
            for parent in &parents {
                let _ = ensure_dir(&writable, parent);
            }
        }
        let mut vfs = Vfs::new(root, spec.read_only);
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
            let dir =
                crate::ambient::open_dir(&mount.host).map_err(|source| RootFsError::Mount {
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
        if !spec.workdir.is_root() {
            ensure_dir(&vfs, &spec.workdir).map_err(|e| RootFsError::Workdir {
                workdir: spec.workdir.clone(),
                errno: e.errno(),
            })?;
        }
        Ok(Self { vfs, scratch })
    }

    /// The image's own filesystem, read-only and without mounts (not even `/tmp`):
    /// `spec`'s layers over a temporary writable layer that nothing writes to. For
    /// reading what an image holds at a path (filling a new volume from it).
    ///
    /// # Errors
    /// [`RootFsError`] when a layer cannot be opened.
    pub fn of_image(spec: &RunSpec) -> Result<Self, RootFsError> {
        let (root, scratch) = root_backend(spec, None)?;
        Ok(Self {
            vfs: Vfs::new(root, true),
            scratch,
        })
    }

    /// The namespace.
    pub fn vfs(&self) -> &Vfs {
        &self.vfs
    }

    /// The namespace and the guard of its temporary writable layer, which must live as
    /// long as the namespace is used.
    pub fn into_parts(self) -> (Vfs, Option<Scratch>) {
        (self.vfs, self.scratch)
    }

    /// Reads a whole file (following symlinks inside the root), for instance the module
    /// an image names as its entrypoint.
    ///
    /// # Errors
    /// The errno of the lookup or read (`ENOENT`, `EISDIR`, ...).
    pub fn read_file(&self, path: &GuestPath) -> Result<Vec<u8>, FsError> {
        read_file(&self.vfs, path)
    }
}

/// Reads a whole file of `vfs` (following symlinks inside it).
///
/// # Errors
/// The filesystem's error; `EISDIR` for anything but a file.
pub fn read_file(vfs: &Vfs, path: &GuestPath) -> Result<Vec<u8>, FsError> {
    {
        let loc = vfs.resolve("", path.as_str(), true)?;
        if vfs.stat(&loc)?.kind != Kind::File {
            return Err(Errno::Isdir.into());
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

/// `/` of `spec`: an in-memory filesystem without layers, else its layers under the
/// writable layer kept in `upper` (a temporary one, removed with the guard, when
/// `None`).
fn root_backend(
    spec: &RunSpec,
    upper: Option<&std::path::Path>,
) -> Result<(Arc<dyn Backend>, Option<Scratch>), RootFsError> {
    if spec.layers.is_empty() {
        // `--storage-opt size` bounds the in-memory root as it bounds an upper.
        let size = spec.limits.storage.unwrap_or(ROOT_TMPFS_SIZE);
        return Ok((Arc::new(TmpFs::new(size, DEV_ROOT)), None));
    }
    let lower = open_lower(
        &spec.layers,
        spec.layer_index_cache.as_deref(),
        spec.layer_chain_id.as_deref(),
    )?;
    let (dir, scratch) = match upper {
        Some(dir) => (dir.to_path_buf(), None),
        None => {
            let dir = crate::ambient::scratch_dir().map_err(RootFsError::Upper)?;
            (dir.clone(), Some(Scratch(dir)))
        }
    };
    // `upper/` and `work/` are made inside it on the first write. The directory itself
    // exists (the container's, or the scratch just made) and is opened, never made: a
    // container removed meanwhile (`rm -f` racing `cp` or its supervisor's start) must
    // not come back as a directory without its record.
    let dir = crate::ambient::open_dir(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            RootFsError::Removed
        } else {
            RootFsError::Upper(e)
        }
    })?;
    let mut overlay = Overlay::in_dir(Arc::new(lower), dir, DEV_ROOT)?;
    if let Some(limit) = spec.limits.storage {
        overlay = overlay.with_quota(limit)?;
    }
    Ok((Arc::new(overlay), scratch))
}

fn workdir_problem(errno: Errno) -> String {
    match errno {
        Errno::Noent => {
            "does not exist in the mounted volume (create it, or choose another -w)".to_owned()
        }
        Errno::Notdir => "is not a directory (ENOTDIR)".to_owned(),
        Errno::Rofs => "does not exist and the mount is read-only (EROFS)".to_owned(),
        other => format!("cannot be used ({other})"),
    }
}

/// The merged lower stack of `layers` (lowest first): loaded from the saved index of
/// this exact chain when there is one (named `chain_id`, or for tars by their file
/// identity; a directory can change without its own mtime changing), else indexed,
/// checked, merged and saved in `index_cache` for next time.
///
/// # Errors
/// [`RootFsError`] when a layer cannot be opened or is refused.
pub fn open_lower(
    layers: &[std::path::PathBuf],
    index_cache: Option<&std::path::Path>,
    chain_id: Option<&str>,
) -> Result<LowerStack, RootFsError> {
    let mut sources = Vec::new();
    for path in layers {
        let source = Source::open(path).map_err(|source| RootFsError::LayerOpen {
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
            Ok(_) => return Err(Errno::Notdir.into()),
            Err(e)
                if e.errno() == Errno::Noent && !vfs.is_read_only(&loc) && !vfs.is_host(&loc) =>
            {
                vfs.mkdir(&loc, 0o755)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
