//! The container's namespace: a root backend plus backends mounted at guest paths, and
//! the one place where guest paths are resolved.
//!
//! Resolution walks component by component. `..` pops one component and never climbs
//! above `/` (POSIX: `/..` is `/`); it crosses mount points in both directions because
//! the walk works on the guest path, not on host handles. Symlinks — in a layer, the
//! upper, a tmpfs or a host directory — are read with `readlink` and their targets
//! resolved here, inside the container's tree: an absolute target restarts at the
//! container's `/`, a relative one continues from the link's directory. More than
//! [`MAX_SYMLINKS`] links in one resolution is `ELOOP`. Read-only mounts refuse every
//! mutation here, before any backend sees it.

use super::errno::{Errno, FsResult};
use super::layer::Kind;
use super::node::{Backend, DirEntry, OpenFile, OpenOptions, SetTime, Stat};
use super::paths::{after_prefix, same};
use std::sync::Arc;

/// Most symlinks followed in one resolution (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;
/// Longest path accepted from a guest, in bytes.
pub const MAX_PATH: usize = 4096;
/// Longest single component, in bytes.
pub const MAX_NAME: usize = 255;

#[derive(Debug)]
struct MountPoint {
    /// Canonical guest path without the leading `/` (`""` for the root).
    path: String,
    backend: Arc<dyn Backend>,
    read_only: bool,
}

/// A resolved guest path: which mount, the path inside it, and the canonical guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    mount: usize,
    /// Where the path inside the mount starts in `path` (see [`Loc::rel`]).
    rel_start: usize,
    /// Canonical guest path without the leading `/`.
    pub path: String,
    /// The path ended with `/` (the entry must be a directory).
    pub trailing_slash: bool,
}

impl Loc {
    /// The path relative to its mount's root.
    pub fn rel(&self) -> &str {
        self.path.get(self.rel_start..).unwrap_or("")
    }
}

/// The namespace.
#[derive(Debug)]
pub struct Vfs {
    mounts: Vec<MountPoint>,
}

/// Appends one component to a canonical path.
fn push_component(path: &mut String, part: &str) {
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(part);
}

impl Vfs {
    /// A namespace whose `/` is `root`.
    pub fn new(root: Arc<dyn Backend>, read_only: bool) -> Self {
        Self {
            mounts: vec![MountPoint {
                path: String::new(),
                backend: root,
                read_only,
            }],
        }
    }

    /// Mounts a backend at an absolute guest path (replacing an earlier mount there).
    pub fn mount(&mut self, guest: &str, backend: Arc<dyn Backend>, read_only: bool) {
        let path = guest.trim_matches('/').to_owned();
        self.mounts.retain(|m| m.path != path);
        self.mounts.push(MountPoint {
            path,
            backend,
            read_only,
        });
        // Longest paths first, so the first prefix match is the innermost mount.
        self.mounts.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then_with(|| a.path.cmp(&b.path))
        });
    }

    /// The mount holding a canonical path, and the path inside it (a slice of `path`).
    fn mount_of<'p>(&self, path: &'p str) -> (usize, &'p str) {
        for (index, mount) in self.mounts.iter().enumerate() {
            if mount.path.is_empty() {
                return (index, path);
            }
            if let Some(rest) = after_prefix(path, &mount.path) {
                if rest.is_empty() {
                    return (index, "");
                }
                if let Some(rest) = rest.strip_prefix('/') {
                    return (index, rest);
                }
            }
        }
        (self.mounts.len() - 1, path)
    }

    fn loc(&self, path: String, trailing_slash: bool) -> Loc {
        let (mount, rel) = self.mount_of(&path);
        // `rel` is the end of `path` (mount_of slices it).
        let rel_start = path.len() - rel.len();
        Loc {
            mount,
            rel_start,
            path,
            trailing_slash,
        }
    }

    fn backend(&self, loc: &Loc) -> &dyn Backend {
        self.mounts[loc.mount].backend.as_ref()
    }

    fn writable(&self, loc: &Loc) -> FsResult<&dyn Backend> {
        let mount = &self.mounts[loc.mount];
        if mount.read_only {
            return Err(Errno::Rofs.into());
        }
        Ok(mount.backend.as_ref())
    }

    pub fn is_mount_point(&self, path: &str) -> bool {
        self.mounts.iter().any(|m| same(&m.path, path))
    }

    /// Resolves `path` (absolute, or relative to the canonical directory `base`).
    /// With `follow`, a symlink in the last component is followed too. The last
    /// component need not exist; every earlier one must be a directory.
    ///
    /// # Errors
    /// `ENOENT`, `ENOTDIR`, `ELOOP`, `ENAMETOOLONG`.
    pub fn resolve(&self, base: &str, path: &str, follow: bool) -> FsResult<Loc> {
        if path.is_empty() {
            return Err(Errno::Noent.into());
        }
        if path.len() > MAX_PATH {
            return Err(Errno::Nametoolong.into());
        }
        if path
            .as_bytes()
            .split(|b| *b == b'/')
            .any(|part| part.len() > MAX_NAME)
        {
            return Err(Errno::Nametoolong.into());
        }
        let mut trailing_slash = path.ends_with('/');
        let mut follow = follow || trailing_slash;
        // The walk keeps one string: the canonical path reached so far (components
        // joined by `/`, no leading `/`), and what is left to walk. Only a symlink
        // makes a new "left to walk" (its target, then the rest).
        let mut reached = String::with_capacity(base.len() + path.len() + 1);
        if !path.starts_with('/') {
            for part in base.split('/').filter(|c| !c.is_empty()) {
                push_component(&mut reached, part);
            }
        }
        let mut left: std::borrow::Cow<'_, str> = std::borrow::Cow::Borrowed(path);
        let mut at = 0;
        let mut links = 0;
        while at < left.len() {
            let end = left[at..]
                .bytes()
                .position(|b| b == b'/')
                .map_or(left.len(), |i| at + i);
            let part = &left[at..end];
            at = end + 1;
            match part {
                "" | "." => continue,
                ".." => {
                    let parent = reached.bytes().rposition(|b| b == b'/').unwrap_or(0);
                    reached.truncate(parent);
                    continue;
                }
                _ => {}
            }
            // Only trailing slashes may follow the last component: `a/.` names `a`'s
            // own directory entry `.`, so `a` must exist and be a directory (POSIX),
            // and a symlink at `a` is followed.
            let last = left
                .get(at..)
                .is_none_or(|rest| rest.bytes().all(|b| b == b'/'));
            let before = reached.len();
            push_component(&mut reached, part);
            if last && !follow {
                break;
            }
            let (mount, rel) = self.mount_of(&reached);
            let backend = self.mounts[mount].backend.as_ref();
            let kind = match backend.kind(rel) {
                Ok(kind) => kind,
                Err(e) if e.errno() == Errno::Noent && last => break,
                Err(e) => return Err(e),
            };
            match kind {
                Kind::Symlink if !self.is_mount_point(&reached) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::Loop.into());
                    }
                    let target = backend.readlink(rel)?;
                    if target.is_empty() {
                        return Err(Errno::Noent.into());
                    }
                    reached.truncate(before);
                    if target.starts_with('/') {
                        reached.clear();
                    }
                    // A link in the last place whose target ends with `/` names a
                    // directory: `open(link, O_CREAT)` must not create a file there.
                    if last && target.ends_with('/') {
                        trailing_slash = true;
                        follow = true;
                    }
                    let rest = left.get(at..).unwrap_or("");
                    left = std::borrow::Cow::Owned(format!("{target}/{rest}"));
                    at = 0;
                }
                Kind::Dir => {}
                _ if !last => return Err(Errno::Notdir.into()),
                _ => {}
            }
        }
        Ok(self.loc(reached, trailing_slash))
    }

    /// Metadata of a resolved location (a symlink itself if it was not followed).
    ///
    /// # Errors
    /// The backend's error; `ENOTDIR` for a non-directory named with a trailing `/`.
    pub fn stat(&self, loc: &Loc) -> FsResult<Stat> {
        let stat = self.backend(loc).stat(loc.rel())?;
        if loc.trailing_slash && stat.kind != Kind::Dir {
            return Err(Errno::Notdir.into());
        }
        Ok(stat)
    }

    /// The kind of entry at a resolved location, from memory where the backend can
    /// (the overlay): for callers that need no more than the kind.
    ///
    /// # Errors
    /// As [`Vfs::stat`].
    pub fn kind(&self, loc: &Loc) -> FsResult<Kind> {
        let kind = self.backend(loc).kind(loc.rel())?;
        if loc.trailing_slash && kind != Kind::Dir {
            return Err(Errno::Notdir.into());
        }
        Ok(kind)
    }

    /// The device number of a location's mount.
    pub fn device(&self, loc: &Loc) -> u64 {
        self.backend(loc).device()
    }

    /// A symlink's target.
    ///
    /// # Errors
    /// `EINVAL` when not a symlink.
    pub fn readlink(&self, loc: &Loc) -> FsResult<String> {
        self.backend(loc).readlink(loc.rel())
    }

    /// A directory's entries, with mount points below it shown as directories.
    ///
    /// # Errors
    /// `ENOTDIR`, `ENOENT`.
    pub fn list(&self, loc: &Loc) -> FsResult<Vec<DirEntry>> {
        let mut entries = self.backend(loc).list(loc.rel())?;
        for mount in &self.mounts {
            let Some((parent, name)) = mount
                .path
                .rsplit_once('/')
                .or_else(|| (!mount.path.is_empty()).then_some(("", mount.path.as_str())))
            else {
                continue;
            };
            if parent != loc.path {
                continue;
            }
            let ino = mount.backend.stat("").map(|s| s.ino).unwrap_or(1);
            match entries.iter_mut().find(|e| e.name == name) {
                Some(entry) => {
                    entry.kind = Kind::Dir;
                    entry.ino = ino;
                }
                None => entries.push(DirEntry {
                    name: name.to_owned(),
                    kind: Kind::Dir,
                    ino,
                }),
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Opens a regular file.
    ///
    /// # Errors
    /// `EROFS` for a mutation on a read-only mount, `EISDIR`, `ENOENT`, `EEXIST`.
    pub fn open(&self, loc: &Loc, options: OpenOptions, mode: u32) -> FsResult<Arc<dyn OpenFile>> {
        if loc.trailing_slash {
            return Err(match self.backend(loc).kind(loc.rel()) {
                Ok(Kind::Dir) => Errno::Isdir,
                Ok(_) => Errno::Notdir,
                Err(_) if options.create => Errno::Isdir,
                Err(e) => e.errno(),
            }
            .into());
        }
        let backend = if options.mutates() {
            self.writable(loc)?
        } else {
            self.backend(loc)
        };
        backend.open(loc.rel(), options, mode)
    }

    /// Creates a directory.
    ///
    /// # Errors
    /// `EEXIST`, `EROFS`, the backend's error.
    pub fn mkdir(&self, loc: &Loc, mode: u32) -> FsResult<()> {
        if self.is_mount_point(&loc.path) || loc.path.is_empty() {
            return Err(Errno::Exist.into());
        }
        self.writable(loc)?.mkdir(loc.rel(), mode)
    }

    /// Removes a non-directory.
    ///
    /// # Errors
    /// `EISDIR`, `ENOENT`, `EROFS`, `ENOTDIR` for a trailing slash.
    pub fn unlink(&self, loc: &Loc) -> FsResult<()> {
        if self.is_mount_point(&loc.path) || loc.path.is_empty() {
            return Err(Errno::Isdir.into());
        }
        let backend = self.writable(loc)?;
        if loc.trailing_slash {
            return Err(if backend.kind(loc.rel())? == Kind::Dir {
                Errno::Isdir
            } else {
                Errno::Notdir
            }
            .into());
        }
        backend.unlink(loc.rel())
    }

    /// Removes an empty directory.
    ///
    /// # Errors
    /// `ENOTEMPTY`, `ENOTDIR`, `EBUSY` for a mount point or `/`, `EROFS`.
    pub fn rmdir(&self, loc: &Loc) -> FsResult<()> {
        if self.is_mount_point(&loc.path) || loc.path.is_empty() {
            return Err(Errno::Busy.into());
        }
        if self
            .mounts
            .iter()
            .any(|m| m.path.starts_with(&format!("{}/", loc.path)))
        {
            return Err(Errno::Notempty.into());
        }
        self.writable(loc)?.rmdir(loc.rel())
    }

    /// Renames within one mount.
    ///
    /// # Errors
    /// `EXDEV` across mounts, `EBUSY` for mount points, `EROFS`, the backend's error.
    pub fn rename(&self, from: &Loc, to: &Loc) -> FsResult<()> {
        if self.is_mount_point(&from.path)
            || self.is_mount_point(&to.path)
            || from.path.is_empty()
            || to.path.is_empty()
        {
            return Err(Errno::Busy.into());
        }
        if from.mount != to.mount {
            return Err(Errno::Xdev.into());
        }
        let backend = self.writable(from)?;
        if (from.trailing_slash || to.trailing_slash) && backend.kind(from.rel())? != Kind::Dir {
            return Err(Errno::Notdir.into());
        }
        backend.rename(from.rel(), to.rel())
    }

    /// Creates a symlink holding `target` (stored as given; resolved only when used).
    ///
    /// # Errors
    /// `EEXIST`, `ENOENT` for an empty target, `EROFS`, the backend's error.
    pub fn symlink(&self, target: &str, loc: &Loc) -> FsResult<()> {
        if self.is_mount_point(&loc.path) || loc.path.is_empty() {
            return Err(Errno::Exist.into());
        }
        if target.is_empty() {
            // As Linux (and the reference, over the host): an empty target is ENOENT.
            return Err(Errno::Noent.into());
        }
        if loc.trailing_slash {
            // `name/` must be a directory: an existing one is EEXIST, an existing
            // non-directory ENOTDIR, a missing one ENOENT (as Linux answers).
            return Err(match self.backend(loc).stat(loc.rel()) {
                Ok(s) if s.kind == Kind::Dir => Errno::Exist,
                Ok(_) => Errno::Notdir,
                Err(e) => e.errno(),
            }
            .into());
        }
        self.writable(loc)?.symlink(target, loc.rel())
    }

    /// Creates a hardlink within one mount.
    ///
    /// # Errors
    /// `EXDEV` across mounts, `EPERM` for directories, `EROFS`.
    pub fn link(&self, from: &Loc, to: &Loc) -> FsResult<()> {
        if from.mount != to.mount {
            return Err(Errno::Xdev.into());
        }
        if self.is_mount_point(&to.path) || to.path.is_empty() {
            return Err(Errno::Exist.into());
        }
        self.writable(from)?.link(from.rel(), to.rel())
    }

    /// Sets times on an entry.
    ///
    /// # Errors
    /// `EROFS`, the backend's error.
    pub fn set_times(&self, loc: &Loc, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        self.writable(loc)?.set_times(loc.rel(), atime, mtime)
    }

    /// Whether a location lies in a mounted host directory.
    pub fn is_host(&self, loc: &Loc) -> bool {
        self.mounts[loc.mount].backend.is_host()
    }

    /// Whether a location's mount is read-only.
    pub fn is_read_only(&self, loc: &Loc) -> bool {
        self.mounts[loc.mount].read_only
    }
}
