//! A host directory mounted into a container (`-v HOST:GUEST[:ro]`), reached only
//! through a cap-std handle: every access is relative to the directory, `..` and
//! absolute symlinks cannot leave it, and Capsule never asks the host to follow a
//! symlink (the VFS reads links and resolves them in the container's tree).

use super::errno::{Errno, FsError, FsResult};
use super::layer::Kind;
use super::node::{Backend, DirEntry, OpenFile, OpenOptions, SetTime, Stat, Timestamp};
use super::sys;
use cap_fs_ext::{DirExt, OpenOptionsFollowExt, SystemTimeSpec};
use cap_std::fs::Dir;
use std::io;
use std::sync::Arc;

/// A mounted host directory.
#[derive(Debug)]
pub struct HostDir {
    dir: Dir,
    device: u64,
}

impl HostDir {
    /// Wraps an open directory handle; `device` tells this mount apart in `stat`.
    pub fn new(dir: Dir, device: u64) -> Self {
        Self { dir, device }
    }

    /// The path cap-std should see: `.` for the root.
    fn p(path: &str) -> &str {
        if path.is_empty() { "." } else { path }
    }
}

/// Whether the host can hold every component of `path` ([`sys::host_can_name`]).
fn host_can_name_all(path: &str) -> bool {
    !cfg!(windows) || path.split('/').all(sys::host_can_name)
}

/// `ENOENT` for a path the host cannot hold as the guest means it: it was never made.
fn findable(path: &str) -> FsResult<()> {
    if host_can_name_all(path) {
        Ok(())
    } else {
        Err(Errno::Noent.into())
    }
}

/// `EINVAL` for a path the host cannot hold as the guest means it.
fn creatable(path: &str) -> FsResult<()> {
    if host_can_name_all(path) {
        Ok(())
    } else {
        Err(Errno::Inval.into())
    }
}

/// The kind of a host file type (anything not a directory or symlink counts as a file).
pub(crate) fn kind_of(ft: cap_std::fs::FileType) -> Kind {
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::File
    }
}

/// Converts host metadata.
pub(crate) fn stat_of(meta: &cap_std::fs::Metadata) -> Stat {
    let kind = kind_of(meta.file_type());
    let time = |t: io::Result<cap_std::time::SystemTime>| -> Timestamp {
        t.ok()
            .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
            .map_or((0, 0), |d| {
                (
                    i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    d.subsec_nanos(),
                )
            })
    };
    let mode = sys::permission_bits(meta);
    let (ino, nlink, ctime) = sys::identity(meta);
    Stat {
        kind,
        mode,
        size: meta.len(),
        ino,
        nlink,
        atime: time(meta.accessed()),
        mtime: time(meta.modified()),
        ctime: ctime.unwrap_or_else(|| time(meta.modified())),
    }
}

pub(crate) fn spec(t: SetTime) -> Option<SystemTimeSpec> {
    match t {
        SetTime::Keep => None,
        SetTime::Now => Some(SystemTimeSpec::SymbolicNow),
        SetTime::At((secs, nanos)) => {
            let d = std::time::Duration::new(u64::try_from(secs).unwrap_or(0), nanos);
            Some(SystemTimeSpec::Absolute(
                cap_std::time::SystemTime::from_std(std::time::UNIX_EPOCH + d),
            ))
        }
    }
}

/// An open host file (a node: it survives renames and unlinks of its path).
#[derive(Debug)]
pub(crate) struct HostFile {
    file: std::fs::File,
    writable: bool,
}

impl HostFile {
    pub(crate) fn new(file: cap_std::fs::File, writable: bool) -> Self {
        Self {
            file: file.into_std(),
            writable,
        }
    }
}

impl OpenFile for HostFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> FsResult<usize> {
        Ok(super::sys::read_at(&self.file, buf, offset)?)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> FsResult<usize> {
        if !self.writable {
            return Err(Errno::Badf.into());
        }
        Ok(super::sys::write_at(&self.file, buf, offset)?)
    }

    fn stat(&self) -> FsResult<Stat> {
        let meta = cap_std::fs::Metadata::from_file(&self.file)?;
        Ok(stat_of(&meta))
    }

    fn set_len(&self, len: u64) -> FsResult<()> {
        if !self.writable {
            return Err(Errno::Badf.into());
        }
        Ok(self.file.set_len(len)?)
    }

    fn set_times(&self, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        let mut times = std::fs::FileTimes::new();
        let now = std::time::SystemTime::now();
        let to_std = |t: SetTime| match t {
            SetTime::Keep => None,
            SetTime::Now => Some(now),
            SetTime::At((s, n)) => Some(
                std::time::UNIX_EPOCH + std::time::Duration::new(u64::try_from(s).unwrap_or(0), n),
            ),
        };
        if let Some(a) = to_std(atime) {
            times = times.set_accessed(a);
        }
        if let Some(m) = to_std(mtime) {
            times = times.set_modified(m);
        }
        Ok(self.file.set_times(times)?)
    }

    fn sync(&self) -> FsResult<()> {
        Ok(self.file.sync_all()?)
    }
}

/// Opens a regular file under `dir` without following a final symlink.
pub(crate) fn open_file(
    dir: &Dir,
    path: &str,
    options: OpenOptions,
    mode: u32,
) -> FsResult<Arc<dyn OpenFile>> {
    open_host_file(dir, path, options, mode, true)
}

/// Opens a file that the caller knows is a regular file (the overlay's mirror of its
/// writable layer says so), as [`open_file`] but without the `fstat` that rules out a
/// directory: one host call.
pub(crate) fn open_known_file(
    dir: &Dir,
    path: &str,
    options: OpenOptions,
    mode: u32,
) -> FsResult<Arc<dyn OpenFile>> {
    open_host_file(dir, path, options, mode, false)
}

fn open_host_file(
    dir: &Dir,
    path: &str,
    options: OpenOptions,
    mode: u32,
    check_dir: bool,
) -> FsResult<Arc<dyn OpenFile>> {
    let mut o = cap_std::fs::OpenOptions::new();
    o.read(true)
        .write(options.write || options.truncate)
        .truncate(options.truncate);
    if options.create && options.exclusive {
        o.create_new(true);
    } else if options.create {
        o.create(true);
    }
    o.follow(cap_fs_ext::FollowSymlinks::No);
    sys::set_create_mode(&mut o, mode);
    let file = match dir.open_with(path, &o) {
        Ok(file) => file,
        // A directory cannot be opened for writing; report it as POSIX does.
        Err(e) if options.write && dir.symlink_metadata(path).is_ok_and(|m| m.is_dir()) => {
            let _ = e;
            return Err(Errno::Isdir.into());
        }
        Err(e) => return Err(e.into()),
    };
    if check_dir && file.metadata()?.is_dir() {
        return Err(Errno::Isdir.into());
    }
    Ok(Arc::new(HostFile::new(file, options.write)))
}

/// Creates a new regular file `name` in `dir` (where the caller knows nothing is)
/// with `O_CREAT|O_EXCL`: what it opens is the file it made, so no `fstat` is needed
/// to rule out a directory. If something is there after all, opens as [`open_file`].
pub(crate) fn create_file(
    dir: &Dir,
    name: &str,
    options: OpenOptions,
    mode: u32,
) -> FsResult<Arc<dyn OpenFile>> {
    let mut o = cap_std::fs::OpenOptions::new();
    o.read(true)
        .write(options.write || options.truncate)
        .create_new(true);
    o.follow(cap_fs_ext::FollowSymlinks::No);
    sys::set_create_mode(&mut o, mode);
    match dir.open_with(name, &o) {
        Ok(file) => Ok(Arc::new(HostFile::new(file, options.write))),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !options.exclusive => {
            open_file(dir, name, options, mode)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn list_dir(
    dir: &Dir,
    path: &str,
    skip: impl Fn(&str) -> bool,
) -> FsResult<Vec<DirEntry>> {
    let read = if path.is_empty() {
        dir.entries()?
    } else {
        dir.read_dir(path)?
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if skip(name) {
            continue;
        }
        let meta = entry.metadata()?;
        let stat = stat_of(&meta);
        out.push(DirEntry {
            name: name.to_owned(),
            kind: stat.kind,
            ino: stat.ino,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(crate) fn set_mode(dir: &Dir, path: &str, mode: u32) -> FsResult<()> {
    Ok(sys::set_permission_bits(dir, path, mode)?)
}

impl Backend for HostDir {
    fn stat(&self, path: &str) -> FsResult<Stat> {
        findable(path)?;
        let mut stat = stat_of(&self.dir.symlink_metadata(Self::p(path))?);
        stat.ino = stat.ino.max(1);
        Ok(stat)
    }

    fn readlink(&self, path: &str) -> FsResult<String> {
        findable(path)?;
        let target = self.dir.read_link_contents(Self::p(path))?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| FsError::from(Errno::Ilseq))
    }

    fn list(&self, path: &str) -> FsResult<Vec<DirEntry>> {
        findable(path)?;
        list_dir(&self.dir, path, |_| false)
    }

    fn open(&self, path: &str, options: OpenOptions, mode: u32) -> FsResult<Arc<dyn OpenFile>> {
        if options.create {
            creatable(path)?;
        } else {
            findable(path)?;
        }
        open_file(&self.dir, Self::p(path), options, mode)
    }

    fn mkdir(&self, path: &str, mode: u32) -> FsResult<()> {
        creatable(path)?;
        self.dir.create_dir(path)?;
        set_mode(&self.dir, path, mode)
    }

    fn unlink(&self, path: &str) -> FsResult<()> {
        findable(path)?;
        if self.dir.symlink_metadata(path)?.is_dir() {
            return Err(Errno::Isdir.into());
        }
        Ok(self.dir.remove_file(path)?)
    }

    fn rmdir(&self, path: &str) -> FsResult<()> {
        findable(path)?;
        if !self.dir.symlink_metadata(path)?.is_dir() {
            return Err(Errno::Notdir.into());
        }
        Ok(self.dir.remove_dir(path)?)
    }

    fn rename(&self, from: &str, to: &str) -> FsResult<()> {
        findable(from)?;
        creatable(to)?;
        Ok(sys::rename(&self.dir, from, to)?)
    }

    fn symlink(&self, target: &str, path: &str) -> FsResult<()> {
        creatable(path)?;
        Ok(sys::symlink(&self.dir, target, path)?)
    }

    fn link(&self, from: &str, to: &str) -> FsResult<()> {
        findable(from)?;
        creatable(to)?;
        if self.dir.symlink_metadata(from)?.is_dir() {
            return Err(Errno::Perm.into());
        }
        Ok(self.dir.hard_link(from, &self.dir, to)?)
    }

    fn set_times(&self, path: &str, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        findable(path)?;
        Ok(self
            .dir
            .set_symlink_times(Self::p(path), spec(atime), spec(mtime))?)
    }

    fn device(&self) -> u64 {
        self.device
    }

    fn is_host(&self) -> bool {
        true
    }
}
