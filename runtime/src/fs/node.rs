//! What every filesystem backend speaks: metadata, open options, open files, and the
//! path-based operations the VFS calls after it has resolved a guest path.
//!
//! Paths given to a [`Backend`] are relative to the backend's root, already resolved:
//! no `.`, `..`, empty components or symlinks in the middle (the VFS walked them), `""`
//! for the root itself. A backend never follows a symlink on the host.

use super::errno::{Errno, FsResult};
use super::layer::Kind;
use std::fmt::Debug;
use std::sync::Arc;

/// A timestamp: seconds and nanoseconds since the epoch.
pub type Timestamp = (i64, u32);

/// Metadata of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
    pub ino: u64,
    pub nlink: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

/// A directory entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: Kind,
    pub ino: u64,
}

/// How to open a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub exclusive: bool,
    pub truncate: bool,
}

impl OpenOptions {
    /// Whether opening with these options may change the filesystem.
    pub fn mutates(&self) -> bool {
        self.write || self.create || self.truncate
    }
}

/// A new time for `set_times`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Keep,
    Now,
    At(Timestamp),
}

/// An open regular file: a node, not a path. It keeps working after the path it was
/// opened by is renamed or unlinked.
pub trait OpenFile: Send + Sync + Debug {
    /// Reads at an offset; 0 at or past the end.
    ///
    /// # Errors
    /// The backend's error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> FsResult<usize>;
    /// Writes at an offset, extending the file (with zeros) as needed.
    ///
    /// # Errors
    /// `EBADF` for a file not opened for writing, `ENOSPC`, the backend's error.
    fn write_at(&self, buf: &[u8], offset: u64) -> FsResult<usize>;
    /// Current metadata.
    ///
    /// # Errors
    /// The backend's error.
    fn stat(&self) -> FsResult<Stat>;
    /// Truncates or extends.
    ///
    /// # Errors
    /// `EBADF` when not writable, `ENOSPC`, the backend's error.
    fn set_len(&self, len: u64) -> FsResult<()>;
    /// Sets access and modification times.
    ///
    /// # Errors
    /// The backend's error.
    fn set_times(&self, atime: SetTime, mtime: SetTime) -> FsResult<()>;
    /// Flushes to stable storage where that means something.
    ///
    /// # Errors
    /// The backend's error.
    fn sync(&self) -> FsResult<()> {
        Ok(())
    }
}

/// A filesystem that can be mounted in a container: the overlay root, a host directory,
/// a tmpfs.
pub trait Backend: Send + Sync + Debug {
    /// Metadata without following a final symlink.
    ///
    /// # Errors
    /// `ENOENT`, `ENOTDIR`, the backend's error.
    fn stat(&self, path: &str) -> FsResult<Stat>;
    /// The kind of entry at `path`, without following a final symlink: all that path
    /// resolution needs. A backend that knows it without asking the host (the overlay
    /// mirrors its writable layer) answers from memory.
    ///
    /// # Errors
    /// As [`Backend::stat`].
    fn kind(&self, path: &str) -> FsResult<Kind> {
        self.stat(path).map(|stat| stat.kind)
    }
    /// A symlink's target.
    ///
    /// # Errors
    /// `EINVAL` when not a symlink.
    fn readlink(&self, path: &str) -> FsResult<String>;
    /// Entries of a directory, sorted by name, without `.` and `..`.
    ///
    /// # Errors
    /// `ENOTDIR`, the backend's error.
    fn list(&self, path: &str) -> FsResult<Vec<DirEntry>>;
    /// Opens (and maybe creates) a regular file.
    ///
    /// # Errors
    /// `EISDIR`, `EEXIST` with `exclusive`, `ENOENT` without `create`.
    fn open(&self, path: &str, options: OpenOptions, mode: u32) -> FsResult<Arc<dyn OpenFile>>;
    /// Creates a directory.
    ///
    /// # Errors
    /// `EEXIST`, the backend's error.
    fn mkdir(&self, path: &str, mode: u32) -> FsResult<()>;
    /// Removes a non-directory.
    ///
    /// # Errors
    /// `EISDIR` (as WASI reports for directories: callers map), `ENOENT`.
    fn unlink(&self, path: &str) -> FsResult<()>;
    /// Removes an empty directory.
    ///
    /// # Errors
    /// `ENOTEMPTY`, `ENOTDIR`, `ENOENT`.
    fn rmdir(&self, path: &str) -> FsResult<()>;
    /// Renames within this backend, replacing a file or an empty directory at `to`.
    ///
    /// # Errors
    /// `EISDIR`, `ENOTDIR`, `ENOTEMPTY`, `EINVAL` (a directory into itself).
    fn rename(&self, from: &str, to: &str) -> FsResult<()>;
    /// Creates a symlink at `path` holding `target`.
    ///
    /// # Errors
    /// `EEXIST`, the backend's error.
    fn symlink(&self, target: &str, path: &str) -> FsResult<()>;
    /// Creates a hardlink `to` of the file at `from`.
    ///
    /// # Errors
    /// `EEXIST`, `EPERM` for directories, `ENOTSUP` where the backend cannot.
    fn link(&self, from: &str, to: &str) -> FsResult<()>;
    /// Sets times on an entry (not following a final symlink).
    ///
    /// # Errors
    /// The backend's error.
    fn set_times(&self, path: &str, atime: SetTime, mtime: SetTime) -> FsResult<()>;
    /// A device number that tells this backend's entries apart from other mounts'.
    fn device(&self) -> u64;

    /// Whether this backend is a directory of the host's (whose changes the user sees).
    fn is_host(&self) -> bool {
        false
    }
}

/// `EROFS` for every mutation: used for read-only mounts, checked once in the VFS.
pub fn read_only() -> super::errno::FsError {
    Errno::Rofs.into()
}

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}
