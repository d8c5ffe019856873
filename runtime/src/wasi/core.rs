//! The world-neutral half of Capsule's WASI host: what a descriptor is and what each
//! filesystem call does, over the [`Vfs`], in host types only. It never touches guest
//! memory and knows nothing of preview1's descriptor numbers and rights or preview2's
//! resources: the adapters ([`super::p1`], [`super::p2`]) marshal their world's
//! arguments into these calls and their answers back out.
//!
//! Directories are named by [`Dir`] handles that follow renames: a directory open in
//! any world, renamed by any world, keeps naming the same directory. Every path goes
//! through [`Vfs::resolve`], so `..`, symlinks and mounts behave the same whichever
//! directory a call starts from.

use crate::fs::layer::Kind;
use crate::fs::{Errno, FsError, Loc, OpenFile, OpenOptions, SetTime, Stat, Vfs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A call's answer: a value or the errno the guest is told.
pub type R<T> = Result<T, Errno>;

fn errno(e: FsError) -> Errno {
    e.errno()
}

/// An open directory. Clones name the same directory; a rename of it or of a directory
/// above it, through any descriptor, moves every handle along.
#[derive(Debug, Clone)]
pub struct Dir(Arc<DirShared>);

#[derive(Debug)]
struct DirShared {
    loc: RwLock<Loc>,
    dev: u64,
}

impl Dir {
    /// Where the directory is now.
    pub fn loc(&self) -> Loc {
        self.0
            .loc
            .read()
            .map_or_else(|e| e.into_inner().clone(), |l| l.clone())
    }

    /// Its canonical guest path now, without the leading `/`.
    pub fn path(&self) -> String {
        self.with_path(str::to_owned)
    }

    /// Calls `f` with its canonical guest path now, without copying it.
    pub fn with_path<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        match self.0.loc.read() {
            Ok(loc) => f(&loc.path),
            Err(e) => f(&e.into_inner().path),
        }
    }

    /// The device it lives on.
    pub fn dev(&self) -> u64 {
        self.0.dev
    }

    fn moved_to(&self, loc: Loc) {
        match self.0.loc.write() {
            Ok(mut l) => *l = loc,
            Err(e) => *e.into_inner() = loc,
        }
    }
}

/// An open regular file and the mode it was opened in (what the host file allows,
/// whatever a world's rights say).
#[derive(Debug, Clone)]
pub struct File {
    pub file: Arc<dyn OpenFile>,
    pub read: bool,
    pub write: bool,
    pub dev: u64,
}

impl File {
    /// Reads at `pos` into `buf`: `EBADF` when not open for reading.
    pub fn read_at(&self, buf: &mut [u8], pos: u64) -> R<usize> {
        if !self.read {
            return Err(Errno::Badf);
        }
        self.file.read_at(buf, pos).map_err(errno)
    }

    /// Writes `buf` at `pos`, or at the end with `append` (every write of an
    /// `O_APPEND` descriptor goes to the end, Linux's rule): the bytes written and the
    /// position after them. `EBADF` when not open for writing.
    pub fn write_at(&self, buf: &[u8], pos: u64, append: bool) -> R<(usize, u64)> {
        if !self.write {
            return Err(Errno::Badf);
        }
        let pos = if append { self.size()? } else { pos };
        let n = self.file.write_at(buf, pos).map_err(errno)?;
        Ok((n, pos + n as u64))
    }

    /// Its size now.
    pub fn size(&self) -> R<u64> {
        Ok(self.file.stat().map_err(errno)?.size)
    }

    /// Its metadata now.
    pub fn stat(&self) -> R<Stat> {
        self.file.stat().map_err(errno)
    }

    /// Truncates or extends: `EINVAL` when not open for writing (Linux's answer).
    pub fn set_len(&self, size: u64) -> R<()> {
        if !self.write {
            return Err(Errno::Inval);
        }
        self.file.set_len(size).map_err(errno)
    }

    /// Sets its times.
    pub fn set_times(&self, atime: SetTime, mtime: SetTime) -> R<()> {
        self.file.set_times(atime, mtime).map_err(errno)
    }

    /// Flushes it.
    pub fn sync(&self) -> R<()> {
        self.file.sync().map_err(errno)
    }
}

/// What an open asks for, in the words every world shares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open {
    /// Follow a symlink in the last component.
    pub follow: bool,
    pub create: bool,
    pub exclusive: bool,
    pub truncate: bool,
    /// The path must name a directory.
    pub directory: bool,
    pub read: bool,
    pub write: bool,
}

/// What an open found.
#[derive(Debug)]
pub enum Opened {
    File(File),
    Dir(Dir),
}

/// One entry of a directory listing: `.` and `..` first, then the entries in the
/// filesystem's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub ino: u64,
    pub kind: Kind,
}

/// The clocks a guest can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time since the Unix epoch.
    Realtime,
    /// Time since the world was made.
    Monotonic,
}

/// The core of one guest's WASI world: its filesystem and what is open in it.
#[derive(Debug)]
pub struct Core {
    vfs: Arc<Vfs>,
    started: Instant,
    /// Every directory handle made, so that a rename can move those below it.
    dirs: Mutex<Vec<Weak<DirShared>>>,
    /// Descriptors open, for `capsule stats` (shared with whoever watches).
    open: Arc<AtomicUsize>,
}

/// The directory part of a path (ignoring trailing slashes): `.` for a single name.
pub fn parent_of(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((parent, _)) => parent,
        None => ".",
    }
}

/// A path without its trailing slashes (unless it is nothing but slashes).
pub fn strip_slashes(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => path,
        trimmed => trimmed,
    }
}

/// The last component of a path, ignoring trailing slashes.
pub fn last_component(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

impl Core {
    /// A core over `vfs`, nothing open yet.
    pub fn new(vfs: Arc<Vfs>) -> Self {
        Self {
            vfs,
            started: Instant::now(),
            dirs: Mutex::new(Vec::new()),
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The filesystem the guest sees.
    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    // ---- counting ---------------------------------------------------------------------

    /// Keeps the number of open descriptors in `open` from now on, starting at `now`.
    pub fn count_open_in(&mut self, open: Arc<AtomicUsize>, now: usize) {
        open.store(now, Ordering::Relaxed);
        self.open = open;
    }

    /// One more descriptor is open.
    pub fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// One descriptor fewer.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many are open.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    // ---- clocks -----------------------------------------------------------------------

    /// A clock's reading in nanoseconds.
    pub fn now(&self, clock: Clock) -> R<u64> {
        match clock {
            Clock::Realtime => {
                let d = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| Errno::Overflow)?;
                u64::try_from(d.as_nanos()).map_err(|_| Errno::Overflow)
            }
            Clock::Monotonic => {
                u64::try_from(self.started.elapsed().as_nanos()).map_err(|_| Errno::Overflow)
            }
        }
    }

    // ---- directories ------------------------------------------------------------------

    /// A handle on the directory at `loc`.
    fn dir_at(&self, loc: Loc) -> Dir {
        let dev = self.vfs.device(&loc);
        let dir = Dir(Arc::new(DirShared {
            loc: RwLock::new(loc),
            dev,
        }));
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        if dirs.len() >= 64 && dirs.len().is_power_of_two() {
            dirs.retain(|d| d.strong_count() > 0);
        }
        dirs.push(Arc::downgrade(&dir.0));
        dir
    }

    /// A handle on the directory at the absolute guest path `path` (a preopen).
    ///
    /// # Errors
    /// The filesystem's error; `ENOTDIR` when it is not a directory.
    pub fn open_root(&self, path: &str) -> Result<Dir, FsError> {
        let loc = self.vfs.resolve("", path, true)?;
        if self.vfs.stat(&loc)?.kind != Kind::Dir {
            return Err(Errno::Notdir.into());
        }
        Ok(self.dir_at(loc))
    }

    /// Resolves a guest path relative to a directory. A path that starts with `/` names
    /// no file below the directory: `EPERM`, as WASI's path resolution says and
    /// wasmtime answers (wasi-libc never passes one: it resolves `/x` against the
    /// preopens itself, so only raw callers see this).
    pub fn resolve(&self, dir: &Dir, path: &str, follow: bool) -> R<Loc> {
        if path.contains('\0') {
            return Err(Errno::Inval);
        }
        if path.starts_with('/') {
            return Err(Errno::Perm);
        }
        dir.with_path(|base| self.vfs.resolve(base, path, follow))
            .map_err(errno)
    }

    /// Checks that the directory a path's last component would live in exists (the
    /// errors of resolving it: ENOENT, ENOTDIR, ELOOP...). With `whole_if_slash`, a
    /// path ending in `/` must itself be a directory (as the reference resolves a
    /// link's source).
    pub fn parent_dir(&self, dir: &Dir, path: &str, whole_if_slash: bool) -> R<()> {
        if path.is_empty() {
            // The empty path names nothing, before anything else is looked at.
            return Err(Errno::Noent);
        }
        let parent = if whole_if_slash && path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{}/", parent_of(path))
        };
        let loc = self.resolve(dir, &parent, true)?;
        self.vfs.stat(&loc).map_err(errno)?;
        Ok(())
    }

    /// A directory's own metadata.
    pub fn stat_dir(&self, dir: &Dir) -> R<Stat> {
        self.vfs.stat(&dir.loc()).map_err(errno)
    }

    /// Sets a directory's own times.
    pub fn set_dir_times(&self, dir: &Dir, atime: SetTime, mtime: SetTime) -> R<()> {
        self.vfs.set_times(&dir.loc(), atime, mtime).map_err(errno)
    }

    /// The listing of a directory as it is now: `.` and `..` first. A directory removed
    /// while open lists only those two, with no inode (Linux lists nothing more; the
    /// reference still shows `.` and `..`).
    pub fn list(&self, dir: &Dir) -> R<Vec<Entry>> {
        let loc = dir.loc();
        let dot = |name: &str, ino| Entry {
            name: name.to_owned(),
            ino,
            kind: Kind::Dir,
        };
        match self.vfs.stat(&loc) {
            Ok(stat) => {
                let parent_ino = {
                    let parent = loc.path.rsplit_once('/').map_or("", |(p, _)| p);
                    self.vfs
                        .resolve("", &format!("/{parent}"), true)
                        .and_then(|l| self.vfs.stat(&l))
                        .map_or(stat.ino, |s| s.ino)
                };
                let mut listing = vec![dot(".", stat.ino), dot("..", parent_ino)];
                for entry in self.vfs.list(&loc).map_err(errno)? {
                    listing.push(Entry {
                        name: entry.name,
                        ino: entry.ino,
                        kind: entry.kind,
                    });
                }
                Ok(listing)
            }
            Err(e) if e.errno() == Errno::Noent => Ok(vec![dot(".", 0), dot("..", 0)]),
            Err(e) => Err(e.errno()),
        }
    }

    // ---- paths ------------------------------------------------------------------------

    /// Checks an open's flags alone, before anything is looked at: `O_DIRECTORY` with
    /// `O_CREAT`, `O_EXCL` or `O_TRUNC` is `EINVAL` (as the reference).
    pub fn check_open(&self, how: &Open) -> R<()> {
        if how.directory && (how.create || how.exclusive || how.truncate) {
            return Err(Errno::Inval);
        }
        Ok(())
    }

    /// Opens (or creates) `path` below `dir`. The caller checked [`Core::check_open`]
    /// and that it has room for one more descriptor, before any side effect.
    pub fn open(&self, dir: &Dir, path: &str, how: Open) -> R<Opened> {
        self.check_open(&how)?;
        let Open {
            follow,
            create,
            exclusive,
            truncate,
            directory,
            read,
            write,
        } = how;
        if create && path.ends_with('/') && !matches!(last_component(path), "." | "..") {
            // O_CREAT with `name/` is EISDIR whatever `name` is (Linux, the
            // reference), once its directory resolved.
            self.parent_dir(dir, path, false)?;
            return Err(Errno::Isdir);
        }
        // O_CREAT|O_EXCL never follows a symlink in the last component: the link
        // itself exists (POSIX: EEXIST).
        let loc = self.resolve(dir, path, follow && !(create && exclusive))?;
        // The kind is all this needs: from memory where the backend keeps it (the
        // overlay), not a host `stat` before the host `open`.
        let kind = match self.vfs.kind(&loc) {
            Ok(kind) => Some(kind),
            Err(e) if e.errno() == Errno::Noent => None,
            Err(e) if create && loc.trailing_slash && e.errno() == Errno::Notdir => None,
            Err(e) => return Err(e.errno()),
        };
        // With O_EXCL, an existing `./` or `../` is EEXIST before it is EISDIR.
        if kind.is_some() && create && exclusive {
            return Err(Errno::Exist);
        }
        if create && loc.trailing_slash {
            return Err(Errno::Isdir);
        }
        if let Some(kind) = kind {
            match kind {
                // Not following a symlink in the last component: ELOOP, as POSIX's
                // O_NOFOLLOW (and the reference) say, with or without O_DIRECTORY.
                Kind::Symlink => return Err(Errno::Loop),
                Kind::Dir => {
                    if write {
                        return Err(Errno::Isdir);
                    }
                    return Ok(Opened::Dir(self.dir_at(loc)));
                }
                Kind::File if directory => return Err(Errno::Notdir),
                Kind::File => {}
            }
        } else if !create {
            return Err(Errno::Noent);
        }
        let options = OpenOptions {
            read,
            write,
            create,
            exclusive,
            truncate,
        };
        let file = self.vfs.open(&loc, options, 0o644).map_err(errno)?;
        let dev = self.vfs.device(&loc);
        Ok(Opened::File(File {
            file,
            read,
            write,
            dev,
        }))
    }

    /// Makes a directory. mkdir never follows its last component, trailing slash or
    /// not: `link/` where `link` is a symlink (even a dangling one) is EEXIST, as on
    /// Linux.
    pub fn mkdir(&self, dir: &Dir, path: &str) -> R<()> {
        let loc = self.resolve(dir, strip_slashes(path), false)?;
        self.vfs.mkdir(&loc, 0o755).map_err(errno)
    }

    /// The metadata of `path` below `dir`, with its device.
    pub fn stat_at(&self, dir: &Dir, path: &str, follow: bool) -> R<(u64, Stat)> {
        let loc = self.resolve(dir, path, follow)?;
        let stat = self.vfs.stat(&loc).map_err(errno)?;
        Ok((self.vfs.device(&loc), stat))
    }

    /// Sets the times of `path` below `dir`.
    pub fn set_times_at(
        &self,
        dir: &Dir,
        path: &str,
        follow: bool,
        atime: SetTime,
        mtime: SetTime,
    ) -> R<()> {
        let loc = self.resolve(dir, path, follow)?;
        self.vfs.stat(&loc).map_err(errno)?;
        self.vfs.set_times(&loc, atime, mtime).map_err(errno)
    }

    /// Makes `new_path` below `new_dir` a hard link to `old_path` below `old_dir`.
    pub fn link(
        &self,
        old_dir: &Dir,
        old_path: &str,
        follow: bool,
        new_dir: &Dir,
        new_path: &str,
    ) -> R<()> {
        // Both paths' directories resolve first, then the names are looked at.
        self.parent_dir(old_dir, old_path, true)?;
        self.parent_dir(new_dir, new_path, false)?;
        if new_path.ends_with('/') {
            // A new name with a trailing slash never gets a link: an existing directory
            // is EEXIST and a file ENOTDIR, before the source is looked at (as the
            // reference); a missing one is ENOENT once the source is found.
            let to = self.resolve(new_dir, new_path, false)?;
            // The directory's own self (`./`): the reference looks at the source first
            // there (ENOENT for a missing one), then answers EEXIST.
            if to.path == new_dir.path() {
                let from = self.resolve(old_dir, old_path, follow)?;
                self.vfs.stat(&from).map_err(errno)?;
                return Err(Errno::Exist);
            }
            return Err(match self.vfs.stat(&to) {
                Ok(_) => Errno::Exist,
                Err(e) if e.errno() == Errno::Notdir => Errno::Notdir,
                Err(_) => {
                    let from = self.resolve(old_dir, old_path, follow)?;
                    self.vfs.stat(&from).map_err(errno)?;
                    Errno::Noent
                }
            });
        }
        let from = self.resolve(old_dir, old_path, follow)?;
        let source = self.vfs.stat(&from).map_err(errno)?;
        let to = self.resolve(new_dir, new_path, false)?;
        // Linux's order: an existing new name is EEXIST, then a directory source EPERM.
        if self.vfs.stat(&to).is_ok() || self.vfs.is_mount_point(&to.path) {
            return Err(Errno::Exist);
        }
        if source.kind == Kind::Dir {
            return Err(Errno::Perm);
        }
        self.vfs.link(&from, &to).map_err(errno)
    }

    /// The target of the symlink at `path` below `dir`.
    pub fn readlink(&self, dir: &Dir, path: &str) -> R<String> {
        let loc = self.resolve(dir, path, false)?;
        if loc.trailing_slash {
            // `name/` must be a directory, and a directory is not a symlink.
            self.vfs.stat(&loc).map_err(errno)?;
            return Err(Errno::Inval);
        }
        self.vfs.readlink(&loc).map_err(errno)
    }

    /// Removes the empty directory at `path` below `dir`.
    pub fn rmdir(&self, dir: &Dir, path: &str) -> R<()> {
        // `d/.` must resolve before it is refused: ENOENT when `d` is missing.
        let loc = self.resolve(dir, path, false)?;
        match last_component(path) {
            "." => return Err(Errno::Inval),
            // The parent holds at least the directory the path came from (Linux).
            ".." => return Err(Errno::Notempty),
            _ => {}
        }
        self.vfs.rmdir(&loc).map_err(errno)
    }

    /// Renames `old` below `old_dir` to `new` below `new_dir`; open directories at or
    /// below the old name follow it.
    pub fn rename(&self, old_dir: &Dir, old: &str, new_dir: &Dir, new: &str) -> R<()> {
        // Both paths' directories resolve first (as Linux and the reference), then the
        // names: `.` or `..` last is EBUSY, Linux's answer, once the parents are found.
        self.parent_dir(old_dir, old, false)?;
        self.parent_dir(new_dir, new, false)?;
        if [old, new]
            .iter()
            .any(|p| matches!(last_component(p), "." | ".."))
        {
            return Err(Errno::Busy);
        }
        // rename never follows a symlink in either last place, trailing slash or not;
        // a trailing slash only says both ends must be directories (POSIX).
        let (old_name, new_name) = (strip_slashes(old), strip_slashes(new));
        let slash = old_name.len() < old.len() || new_name.len() < new.len();
        let from = self.resolve(old_dir, old_name, false)?;
        let source = self.vfs.stat(&from).map_err(errno)?;
        if slash && source.kind != Kind::Dir {
            return Err(Errno::Notdir);
        }
        let to = self.resolve(new_dir, new_name, false)?;
        if from.path.starts_with(&format!("{}/", to.path))
            || (to.path.is_empty() && !from.path.is_empty())
        {
            // The new name is an ancestor of the old one (Linux: ENOTEMPTY).
            return Err(Errno::Notempty);
        }
        self.vfs.rename(&from, &to).map_err(errno)?;
        if source.kind == Kind::Dir {
            self.renamed(&from.path, &to.path);
        }
        Ok(())
    }

    /// Directory handles name directories, not paths: after a rename, those at or
    /// below the old path follow it to the new one.
    fn renamed(&self, from: &str, to: &str) {
        if from.is_empty() {
            return;
        }
        let dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        for dir in dirs.iter().filter_map(Weak::upgrade) {
            let dir = Dir(dir);
            let path = dir.path();
            let moved = if path == from {
                to.to_owned()
            } else if let Some(rest) = path.strip_prefix(from).and_then(|r| r.strip_prefix('/')) {
                format!("{to}/{rest}")
            } else {
                continue;
            };
            if let Ok(loc) = self.vfs.resolve("", &format!("/{moved}"), false) {
                dir.moved_to(loc);
            }
        }
    }

    /// Makes `path` below `dir` a symlink to `target`.
    pub fn symlink(&self, target: &str, dir: &Dir, path: &str) -> R<()> {
        if target.contains('\0') {
            return Err(Errno::Inval);
        }
        if target.starts_with('/') {
            // An absolute target: WASI's filesystem refuses to make one (a link that
            // points outside any directory a descriptor grants), as wasmtime does.
            // Links an image already holds are still followed inside the container.
            // Refused before the new name is looked at, as the reference refuses it.
            return Err(Errno::Perm);
        }
        if target.is_empty() {
            // An empty target names nothing: ENOENT once the new name's directory
            // resolved (as Linux's symlinkat, which looks at the name only after).
            self.parent_dir(dir, path, true)?;
            return Err(Errno::Noent);
        }
        let loc = self.resolve(dir, path, false)?;
        self.vfs.symlink(target, &loc).map_err(errno)
    }

    /// Removes the file (or symlink) at `path` below `dir`.
    pub fn unlink(&self, dir: &Dir, path: &str) -> R<()> {
        let loc = self.resolve(dir, path, false)?;
        self.vfs.unlink(&loc).map_err(errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tmpfs::TmpFs;

    fn core() -> Core {
        let root: Arc<dyn crate::fs::Backend> = Arc::new(TmpFs::new(1 << 20, 1));
        Core::new(Arc::new(Vfs::new(root, false)))
    }

    #[test]
    fn an_open_directory_follows_a_rename_of_its_parent() {
        let core = core();
        let root = core.open_root("/").expect("root");
        core.mkdir(&root, "a").expect("mkdir a");
        core.mkdir(&root, "a/b").expect("mkdir a/b");
        let Ok(Opened::Dir(b)) = core.open(
            &root,
            "a/b",
            Open {
                read: true,
                ..Open::default()
            },
        ) else {
            panic!("open a/b as a directory");
        };
        core.rename(&root, "a", &root, "c").expect("rename");
        assert_eq!(b.path(), "c/b");
        core.mkdir(&b, "d").expect("mkdir through the moved handle");
        assert!(core.stat_at(&root, "c/b/d", true).is_ok());
    }

    #[test]
    fn directory_flags_with_create_are_refused_before_the_path_is_looked_at() {
        let core = core();
        let root = core.open_root("/").expect("root");
        let how = Open {
            create: true,
            directory: true,
            ..Open::default()
        };
        assert_eq!(
            core.open(&root, "missing/x", how).map(|_| ()),
            Err(Errno::Inval)
        );
    }
}
