//! A container's root: the merged read-only layers ([`LowerStack`]) under a writable
//! upper directory on the host, overlayfs-style but Capsule's own.
//!
//! - The upper is exactly the container's change set in OCI form: new and modified
//!   entries as themselves, deletions as `.wh.NAME` files, directories that replace
//!   lower ones with a `.wh..wh..opq` marker. `diff` reads it; `commit` tars it as is.
//! - The first mutation of a lower entry copies it up (parents first, keeping mode and
//!   mtime); the copy is written in the work directory and renamed into place, so a
//!   crash never leaves half a file in the upper.
//! - What the upper holds is mirrored in memory, so a lookup of a lower path is hash
//!   probes, not host syscalls. Capsule is the upper's only writer while the container
//!   runs.
//! - Guest names starting with `.wh.` are refused (`EINVAL`): they would be read back
//!   as whiteouts.
//! - Host calls go through kept handles of the upper's directories ([`DirHandles`]):
//!   an entry is stat'ed, opened, created or removed as one component relative to its
//!   directory's handle, without following a symlink, so a guest `stat` costs one
//!   `statx` and an `unlink` one `unlinkat`, not a walk from the upper's root each time.

use super::errno::{Errno, FsResult};
use super::hostdir::{create_file, kind_of, open_known_file, spec, stat_of};
use super::layer::{Kind, OPAQUE_MARKER, WHITEOUT_PREFIX};
use super::lower::{FIRST_DYNAMIC_INO, LowerEntry, LowerStack, join, split};
use super::node::{Backend, DirEntry, OpenFile, OpenOptions, SetTime, Stat};
use super::paths::{PathMap, PathSet};
use cap_fs_ext::DirExt;
use cap_std::fs::Dir;
use std::io::Write;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// Maps of names and of open files: foldhash, as [`PathMap`] (the guest chooses the keys).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The writable layer and its scratch space inside a container's directory.
const UPPER: &str = "upper";
const WORK: &str = "work";

/// Most directory handles of the upper kept open at once.
const DIR_HANDLES: usize = 256;

/// The upper's contents, mirrored.
#[derive(Debug, Default)]
struct UpperState {
    present: PathMap<Kind>,
    whiteouts: PathSet,
    opaque: PathSet,
    inos: PathMap<u64>,
    dirs: DirHandles,
    /// Lower files open read-only, by path: when one is copied up, they read the
    /// upper copy from then on (one file, as POSIX sees it; overlayfs before 4.19 kept
    /// serving the stale lower data).
    open_lowers: HashMap<String, Vec<Weak<Redirect>>>,
}

/// Where a read-only descriptor of a lower file reads once the file is copied up.
type Redirect = OnceLock<Arc<dyn OpenFile>>;

/// Open handles of the upper's directories, keyed by upper-relative path, the least
/// recently used closed first when there are [`DIR_HANDLES`]. A handle names a
/// directory node, not a path, so the handles at and below a path are dropped whenever
/// the directory there may stop being the one the path names: `rmdir` of it and
/// `rename` from or onto it (which covers every ancestor, since only those two move or
/// remove a directory). Capsule is the upper's only writer while the container runs;
/// every handle was reached from the upper's own handle through directory entries
/// opened without following symlinks.
#[derive(Debug, Default)]
struct DirHandles {
    map: PathMap<(Arc<Dir>, u64)>,
    clock: u64,
}

impl DirHandles {
    fn get(&mut self, path: &str) -> Option<Arc<Dir>> {
        self.clock += 1;
        let now = self.clock;
        self.map.get_mut(path).map(|(dir, used)| {
            *used = now;
            dir.clone()
        })
    }

    fn insert(&mut self, path: String, dir: Arc<Dir>) {
        if self.map.len() >= DIR_HANDLES {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(path, _)| path.clone());
            if let Some(oldest) = oldest {
                self.map.remove(&oldest);
            }
        }
        self.clock += 1;
        self.map.insert(path, (dir, self.clock));
    }

    /// Drops the handles of `path` and of every directory below it.
    fn forget(&mut self, path: &str) {
        if path.is_empty() {
            self.map.clear();
            return;
        }
        let prefix = format!("{path}/");
        self.map
            .retain(|key, _| key != path && !key.starts_with(&prefix));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// A directory of the upper: its root, or a kept handle.
enum Handle<'a> {
    Root(&'a Dir),
    Kept(Arc<Dir>),
}

impl Deref for Handle<'_> {
    type Target = Dir;

    fn deref(&self) -> &Dir {
        match self {
            Handle::Root(dir) => dir,
            Handle::Kept(dir) => dir,
        }
    }
}

/// Where a path currently lives.
#[derive(Debug)]
enum Found {
    Upper(Kind),
    Lower(LowerEntry),
    Missing,
}

impl Found {
    fn kind(&self) -> Option<Kind> {
        match self {
            Found::Upper(kind) => Some(*kind),
            Found::Lower(entry) => Some(entry.node.kind),
            Found::Missing => None,
        }
    }
}

/// The overlay filesystem.
#[derive(Debug)]
pub struct Overlay {
    lower: Arc<LowerStack>,
    upper: OnceLock<Dir>,
    work: OnceLock<Dir>,
    /// Where `upper/` and `work/` are created on first use (a container that never
    /// writes never creates them); `None` when they were given open.
    home: Option<Dir>,
    state: Mutex<UpperState>,
    next_ino: AtomicU64,
    tmp_counter: AtomicU64,
    device: u64,
    /// `--storage-opt size=N`, when given.
    quota: Option<Arc<Quota>>,
}

/// `--storage-opt size=N`: the bytes of file data the writable layer may hold. Writes
/// that grow a file, `ftruncate` up and copy-ups take room; truncating, unlinking a
/// file's last name and renaming over it give it back. Directories, symlinks and
/// whiteouts are not counted. Approximate where POSIX is subtle: a file unlinked while
/// open keeps what it is written afterwards counted until the container restarts (the
/// upper is measured again when it is mounted).
#[derive(Debug)]
struct Quota {
    limit: u64,
    used: AtomicU64,
}

impl Quota {
    /// Takes up to `bytes` of room; returns how much it got.
    fn reserve_upto(&self, bytes: u64) -> u64 {
        let mut got = 0;
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                got = bytes.min(self.limit.saturating_sub(used));
                Some(used + got)
            });
        got
    }

    /// Takes exactly `bytes`, or nothing and `ENOSPC`.
    fn reserve(&self, bytes: u64) -> FsResult<()> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| Errno::Nospc.into())
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

impl Overlay {
    /// An overlay of `lower` under the host directories `upper` (the change set) and
    /// `work` (scratch space on the same host filesystem). An existing upper is loaded
    /// as it is, so a stopped container restarts with its changes.
    ///
    /// # Errors
    /// The host's error reading the upper.
    pub fn new(lower: Arc<LowerStack>, upper: Dir, work: Dir, device: u64) -> FsResult<Self> {
        let mut state = UpperState::default();
        state.present.insert(String::new(), Kind::Dir);
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            let read = if dir.is_empty() {
                upper.entries()?
            } else {
                upper.read_dir(&dir)?
            };
            for entry in read {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name == OPAQUE_MARKER {
                    state.opaque.insert(dir.clone());
                } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                    state.whiteouts.insert(join(&dir, hidden));
                } else {
                    let path = join(&dir, name);
                    let kind = stat_of(&entry.metadata()?).kind;
                    if kind == Kind::Dir {
                        stack.push(path.clone());
                    }
                    state.present.insert(path, kind);
                }
            }
        }
        Ok(Self {
            lower,
            upper: OnceLock::from(upper),
            work: OnceLock::from(work),
            home: None,
            state: Mutex::new(state),
            next_ino: AtomicU64::new(FIRST_DYNAMIC_INO),
            tmp_counter: AtomicU64::new(0),
            device,
            quota: None,
        })
    }

    /// An overlay whose writable layer lives in `dir/upper` (with scratch space in
    /// `dir/work`): loaded when it exists, created on the first write otherwise.
    ///
    /// # Errors
    /// The host's error reading an existing upper.
    pub fn in_dir(lower: Arc<LowerStack>, dir: Dir, device: u64) -> FsResult<Self> {
        if dir.exists(UPPER) {
            let upper = dir.open_dir(UPPER)?;
            dir.create_dir_all(WORK)?;
            let work = dir.open_dir(WORK)?;
            return Self::new(lower, upper, work, device);
        }
        let mut state = UpperState::default();
        state.present.insert(String::new(), Kind::Dir);
        Ok(Self {
            lower,
            upper: OnceLock::new(),
            work: OnceLock::new(),
            home: Some(dir),
            state: Mutex::new(state),
            next_ino: AtomicU64::new(FIRST_DYNAMIC_INO),
            tmp_counter: AtomicU64::new(0),
            device,
            quota: None,
        })
    }

    /// Limits the writable layer to `limit` bytes of file data (`--storage-opt size`):
    /// a write past it answers `ENOSPC`. What the upper already holds (a container run
    /// before) is measured now and counts.
    ///
    /// # Errors
    /// The host's error measuring the upper.
    pub fn with_quota(mut self, limit: u64) -> FsResult<Self> {
        let mut used = 0u64;
        if let Some(upper) = self.upper.get() {
            let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
            for (path, kind) in st.present.iter() {
                if *kind == Kind::File {
                    let stat = stat_of(&upper.symlink_metadata(path)?);
                    // Each name of a file with several counts its share.
                    used = used.saturating_add(stat.size / stat.nlink.max(1));
                }
            }
        }
        self.quota = Some(Arc::new(Quota {
            limit,
            used: AtomicU64::new(used),
        }));
        Ok(self)
    }

    /// Bytes of file data the writable layer holds, as its quota counts them (`None`
    /// without a quota).
    pub fn quota_used(&self) -> Option<u64> {
        self.quota.as_ref().map(|q| q.used.load(Ordering::Relaxed))
    }

    /// The size of the upper file at `path` when its last name goes (unlink, renamed
    /// over), for the quota; 0 without a quota or when other names keep it.
    fn size_freed(&self, st: &mut UpperState, path: &str) -> u64 {
        if self.quota.is_none() || st.present.get(path) != Some(&Kind::File) {
            return 0;
        }
        let Ok((dir, name)) = self.entry(st, path) else {
            return 0;
        };
        match dir.symlink_metadata(name) {
            Ok(meta) => {
                let stat = stat_of(&meta);
                if stat.nlink <= 1 { stat.size } else { 0 }
            }
            Err(_) => 0,
        }
    }

    /// The size of the upper file at `path` that opening it with `options` truncates
    /// away, for the quota; 0 without a quota or truncation.
    fn size_truncated(&self, st: &mut UpperState, path: &str, options: OpenOptions) -> u64 {
        if self.quota.is_none() || !options.truncate {
            return 0;
        }
        let Ok((dir, name)) = self.entry(st, path) else {
            return 0;
        };
        dir.symlink_metadata(name).map_or(0, |meta| meta.len())
    }

    fn release(&self, bytes: u64) {
        if let Some(quota) = &self.quota {
            quota.release(bytes);
        }
    }

    fn upper(&self) -> FsResult<&Dir> {
        Self::lazy(&self.upper, self.home.as_ref(), UPPER)
    }

    fn work(&self) -> FsResult<&Dir> {
        Self::lazy(&self.work, self.home.as_ref(), WORK)
    }

    fn lazy<'a>(cell: &'a OnceLock<Dir>, home: Option<&Dir>, name: &str) -> FsResult<&'a Dir> {
        if let Some(dir) = cell.get() {
            return Ok(dir);
        }
        let home = home.ok_or(Errno::Io)?;
        home.create_dir_all(name)?;
        let dir = home.open_dir(name)?;
        Ok(cell.get_or_init(|| dir))
    }

    /// How many directory handles of the upper are kept open.
    #[cfg(test)]
    pub(crate) fn kept_dir_handles(&self) -> usize {
        self.state().dirs.len()
    }

    fn state(&self) -> MutexGuard<'_, UpperState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The handle of the upper's directory `dir`: kept, or opened from its nearest kept
    /// ancestor (one `openat2` beneath it, not following a symlink in the last
    /// component) and kept.
    fn dir_handle(&self, st: &mut UpperState, dir: &str) -> FsResult<Handle<'_>> {
        if dir.is_empty() {
            return Ok(Handle::Root(self.upper()?));
        }
        if let Some(kept) = st.dirs.get(dir) {
            return Ok(Handle::Kept(kept));
        }
        let mut ancestor = split(dir).0;
        let from = loop {
            if ancestor.is_empty() {
                break Handle::Root(self.upper()?);
            }
            if let Some(kept) = st.dirs.get(ancestor) {
                break Handle::Kept(kept);
            }
            ancestor = split(ancestor).0;
        };
        let rest = if ancestor.is_empty() {
            dir
        } else {
            &dir[ancestor.len() + 1..]
        };
        let opened = Arc::new(from.open_dir_nofollow(rest)?);
        st.dirs.insert(dir.to_owned(), opened.clone());
        Ok(Handle::Kept(opened))
    }

    /// The handle of `path`'s directory in the upper and `path`'s last component: one
    /// plain name (never `.`, `..` or empty — the VFS resolved those), which a host call
    /// relative to the handle cannot leave the directory by.
    fn entry<'p>(&self, st: &mut UpperState, path: &'p str) -> FsResult<(Handle<'_>, &'p str)> {
        let (parent, name) = split(path);
        if matches!(name, "" | "." | "..") {
            return Err(Errno::Inval.into());
        }
        // A name the host cannot hold was never made (check_name): nothing is there.
        if !super::sys::host_can_name(name) {
            return Err(Errno::Noent.into());
        }
        Ok((self.dir_handle(st, parent)?, name))
    }

    /// Where `path` lives, applying whiteouts, opaque directories and upper
    /// non-directories that hide what is below them.
    fn locate(&self, st: &UpperState, path: &str) -> Found {
        if let Some(kind) = st.present.get(path) {
            return Found::Upper(*kind);
        }
        if self.lower_hidden(st, path) {
            return Found::Missing;
        }
        self.lower.get(path).map_or(Found::Missing, Found::Lower)
    }

    /// Whether the lower entry at `path` (if any) is hidden by the upper.
    fn lower_hidden(&self, st: &UpperState, path: &str) -> bool {
        if st.whiteouts.contains(path) {
            return true;
        }
        let mut current = path;
        while !current.is_empty() {
            let (parent, _) = split(current);
            match st.present.get(parent) {
                Some(Kind::Dir) if st.opaque.contains(parent) => return true,
                Some(Kind::Dir) => {}
                Some(_) => return true,
                None if st.whiteouts.contains(parent) => return true,
                None => {}
            }
            current = parent;
        }
        false
    }

    /// Whether removing the upper's entry at `path` would let a lower one show.
    fn lower_visible(&self, st: &UpperState, path: &str) -> bool {
        self.lower.get(path).is_some() && !self.lower_hidden(st, path)
    }

    fn ino(&self, st: &mut UpperState, path: &str) -> u64 {
        if let Some(ino) = st.inos.get(path) {
            return *ino;
        }
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        st.inos.insert(path.to_owned(), ino);
        ino
    }

    /// Whether two existing names are links to one file: both in the writable layer
    /// with one inode number (hard links made in the container share one), or both in
    /// the layers with one (hard links of a layer share one).
    fn same_file(&self, st: &mut UpperState, a: &str, b: &str) -> bool {
        match (self.locate(st, a), self.locate(st, b)) {
            (Found::Lower(x), Found::Lower(y)) => x.ino == y.ino,
            (Found::Upper(_), Found::Upper(_)) => self.ino(st, a) == self.ino(st, b),
            _ => false,
        }
    }

    fn check_name(path: &str) -> FsResult<()> {
        let name = split(path).1;
        if name.starts_with(WHITEOUT_PREFIX) || !super::sys::host_can_name(name) {
            return Err(Errno::Inval.into());
        }
        Ok(())
    }

    /// Makes sure `dir` exists in the upper as a directory, copying up its ancestors.
    fn ensure_upper_dir(&self, st: &mut UpperState, dir: &str) -> FsResult<()> {
        match st.present.get(dir) {
            Some(Kind::Dir) => return Ok(()),
            Some(_) => return Err(Errno::Notdir.into()),
            None => {}
        }
        let (parent, _) = split(dir);
        self.ensure_upper_dir(st, parent)?;
        let (mode, mtime, ino) = match self.locate(st, dir) {
            Found::Lower(entry) if entry.node.kind == Kind::Dir => {
                (entry.node.mode, entry.node.mtime, entry.ino)
            }
            Found::Lower(_) | Found::Upper(_) => return Err(Errno::Notdir.into()),
            Found::Missing => return Err(Errno::Noent.into()),
        };
        let (parent, name) = self.entry(st, dir)?;
        parent.create_dir(name)?;
        super::sys::set_dir_permission_bits(&parent, name, mode)?;
        parent.set_symlink_times(name, None, spec(SetTime::At(mtime)))?;
        st.present.insert(dir.to_owned(), Kind::Dir);
        st.inos.insert(dir.to_owned(), ino);
        Ok(())
    }

    /// Copies a lower file or symlink up (no-op when the upper already has it).
    fn copy_up(&self, st: &mut UpperState, path: &str) -> FsResult<()> {
        let entry = match self.locate(st, path) {
            Found::Upper(_) => return Ok(()),
            Found::Missing => return Err(Errno::Noent.into()),
            Found::Lower(entry) => entry.clone(),
        };
        if entry.node.kind == Kind::Dir {
            return self.ensure_upper_dir(st, path);
        }
        let (parent, _) = split(path);
        self.ensure_upper_dir(st, parent)?;
        let size = if entry.node.kind == Kind::File {
            entry.node.size
        } else {
            0
        };
        if let Some(quota) = &self.quota {
            quota.reserve(size)?;
        }
        let tmp = format!(
            "copyup-{}",
            self.tmp_counter.fetch_add(1, Ordering::Relaxed)
        );
        let result = (|| -> FsResult<()> {
            match entry.node.kind {
                Kind::Symlink => {
                    let target = entry.node.link_target.clone().unwrap_or_default();
                    super::sys::symlink(self.work()?, &target, &tmp)?;
                }
                _ => {
                    let mut out = self.work()?.create(&tmp)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut pos = 0u64;
                    loop {
                        let n = self.lower.read_at(&entry, pos, &mut buf)?;
                        if n == 0 {
                            break;
                        }
                        out.write_all(&buf[..n])?;
                        pos += n as u64;
                    }
                    // By its descriptor (`fchmod`), not by path (see
                    // `sys::set_dir_permission_bits`).
                    super::sys::set_open_file_permission_bits(&out, entry.node.mode)?;
                    drop(out);
                    self.work()?
                        .set_times(&tmp, None, spec(SetTime::At(entry.node.mtime)))?;
                }
            }
            let (parent, name) = self.entry(st, path)?;
            self.work()?.rename(&tmp, &parent, name)?;
            Ok(())
        })();
        if result.is_err() {
            self.release(size);
            let _ = self.work()?.remove_file(&tmp);
        }
        result?;
        st.present.insert(path.to_owned(), entry.node.kind);
        st.inos.insert(path.to_owned(), entry.ino);
        // Descriptors still reading the lower file read the copy from now on.
        let live: Vec<Arc<Redirect>> = st
            .open_lowers
            .remove(path)
            .unwrap_or_default()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        if !live.is_empty() && entry.node.kind == Kind::File {
            let (dir, name) = self.entry(st, path)?;
            let read_only = OpenOptions {
                read: true,
                write: false,
                create: false,
                exclusive: false,
                truncate: false,
            };
            // The copy is made; a descriptor that cannot follow it keeps the lower data.
            if let Ok(file) = open_known_file(&dir, name, read_only, 0) {
                let file = self.upper_file(st, path, file);
                for redirect in live {
                    let _ = redirect.set(file.clone());
                }
            }
        }
        Ok(())
    }

    /// Copies a whole lower directory subtree up, so that it can be renamed as a unit.
    fn copy_up_tree(&self, st: &mut UpperState, path: &str) -> FsResult<()> {
        self.ensure_upper_dir(st, path)?;
        let children: Vec<String> = self.lower.children(path).map(str::to_owned).collect();
        for name in children {
            let child = join(path, &name);
            match self.locate(st, &child) {
                Found::Lower(entry) if entry.node.kind == Kind::Dir => {
                    self.copy_up_tree(st, &child)?
                }
                Found::Lower(_) => self.copy_up(st, &child)?,
                Found::Upper(Kind::Dir) => self.copy_up_tree(st, &child)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn add_whiteout(&self, st: &mut UpperState, path: &str) -> FsResult<()> {
        let (parent, _) = split(path);
        self.ensure_upper_dir(st, parent)?;
        let (dir, name) = self.entry(st, path)?;
        dir.write(format!("{WHITEOUT_PREFIX}{name}"), b"")?;
        st.whiteouts.insert(path.to_owned());
        Ok(())
    }

    /// Before creating `path` in the upper: drops a whiteout there. Returns whether
    /// there was one (a new directory must then be opaque).
    fn clear_whiteout(&self, st: &mut UpperState, path: &str) -> FsResult<bool> {
        if !st.whiteouts.remove(path) {
            return Ok(false);
        }
        let (dir, name) = self.entry(st, path)?;
        dir.remove_file(format!("{WHITEOUT_PREFIX}{name}"))?;
        Ok(true)
    }

    fn make_opaque(&self, st: &mut UpperState, dir: &str) -> FsResult<()> {
        self.dir_handle(st, dir)?.write(OPAQUE_MARKER, b"")?;
        st.opaque.insert(dir.to_owned());
        Ok(())
    }

    /// Prepares the parent of a new entry and clears a whiteout at its path.
    fn prepare_create(&self, st: &mut UpperState, path: &str) -> FsResult<bool> {
        Self::check_name(path)?;
        if self.locate(st, path).kind().is_some() {
            return Err(Errno::Exist.into());
        }
        let (parent, _) = split(path);
        self.ensure_upper_dir(st, parent)?;
        let had_whiteout = self.clear_whiteout(st, path)?;
        Ok(had_whiteout || self.lower_visible(st, path))
    }

    /// Removes `path` from the upper mirror (and everything below it).
    fn forget_subtree(st: &mut UpperState, path: &str) {
        let prefix = format!("{path}/");
        st.present
            .retain(|p, _| p != path && !p.starts_with(&prefix));
        st.whiteouts.retain(|p| !p.starts_with(&prefix));
        st.opaque.retain(|p| p != path && !p.starts_with(&prefix));
        st.dirs.forget(path);
    }

    /// Moves mirror entries from `from` to `to` after a rename in the upper.
    fn move_subtree(st: &mut UpperState, from: &str, to: &str) {
        let prefix = format!("{from}/");
        let rename = |p: &str| -> Option<String> {
            if p == from {
                Some(to.to_owned())
            } else {
                p.strip_prefix(&prefix).map(|rest| format!("{to}/{rest}"))
            }
        };
        rekey_map(&mut st.present, &rename);
        rekey_map(&mut st.inos, &rename);
        rekey_set(&mut st.whiteouts, &rename);
        rekey_set(&mut st.opaque, &rename);
        st.dirs.forget(from);
        st.dirs.forget(to);
    }

    fn merged_list(&self, st: &mut UpperState, path: &str) -> FsResult<Vec<DirEntry>> {
        let mut entries: Vec<DirEntry> = Vec::new();
        let mut seen = HashSet::default();
        // Before the first write the writable layer is empty (and not created).
        if st.present.get(path) == Some(&Kind::Dir) && self.upper.get().is_some() {
            // Kinds from the directory entries themselves and inode numbers from the
            // overlay's own table: no host call per entry.
            let dir = self.dir_handle(st, path)?;
            for entry in dir.entries()? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(WHITEOUT_PREFIX) {
                    continue;
                }
                let kind = kind_of(entry.file_type()?);
                let ino = self.ino(st, &join(path, name));
                seen.insert(name.to_owned());
                entries.push(DirEntry {
                    name: name.to_owned(),
                    kind,
                    ino,
                });
            }
        }
        let opaque = st.opaque.contains(path) || self.lower_hidden(st, path);
        if !opaque {
            // The directory itself is visible, so a lower child shows unless the upper
            // has an entry of that name or a whiteout for it: two probes, no lookup.
            for (name, kind, ino) in self.lower.list(path) {
                if seen.contains(name) {
                    continue;
                }
                let child = join(path, name);
                if st.whiteouts.contains(&child) || st.present.contains_key(&child) {
                    continue;
                }
                entries.push(DirEntry {
                    name: name.to_owned(),
                    kind,
                    ino,
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

/// Renames the keys `rename` maps, keeping their values.
fn rekey_map<V>(map: &mut PathMap<V>, rename: &impl Fn(&str) -> Option<String>) {
    let moved: Vec<(String, String)> = map
        .keys()
        .filter_map(|k| rename(k).map(|n| (k.clone(), n)))
        .collect();
    for (old, new) in moved {
        if let Some(value) = map.remove(&old) {
            map.insert(new, value);
        }
    }
}

/// Renames the members `rename` maps.
fn rekey_set(set: &mut PathSet, rename: &impl Fn(&str) -> Option<String>) {
    let moved: Vec<(String, String)> = set
        .iter()
        .filter_map(|k| rename(k).map(|n| (k.clone(), n)))
        .collect();
    for (old, new) in moved {
        set.remove(&old);
        set.insert(new);
    }
}

/// An open lower file: reads the layer's bytes directly.
#[derive(Debug)]
struct LowerFile {
    lower: Arc<LowerStack>,
    entry: LowerEntry,
    device: u64,
    redirect: Arc<Redirect>,
}

impl OpenFile for LowerFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> FsResult<usize> {
        if let Some(upper) = self.redirect.get() {
            return upper.read_at(buf, offset);
        }
        Ok(self.lower.read_at(&self.entry, offset, buf)?)
    }

    fn write_at(&self, _: &[u8], _: u64) -> FsResult<usize> {
        Err(Errno::Badf.into())
    }

    fn stat(&self) -> FsResult<Stat> {
        let _ = self.device;
        if let Some(upper) = self.redirect.get() {
            return upper.stat();
        }
        Ok(lower_stat(&self.entry))
    }

    fn set_len(&self, _: u64) -> FsResult<()> {
        Err(Errno::Badf.into())
    }

    fn set_times(&self, _: SetTime, _: SetTime) -> FsResult<()> {
        // Times of a file opened read-only from a lower layer: a real overlay would copy
        // it up; WASI callers use path_filestat_set_times for that, which does.
        Err(Errno::Badf.into())
    }
}

fn lower_stat(entry: &LowerEntry) -> Stat {
    Stat {
        kind: entry.node.kind,
        mode: entry.node.mode,
        size: entry.node.size,
        ino: entry.ino,
        nlink: 1,
        atime: entry.node.mtime,
        mtime: entry.node.mtime,
        ctime: entry.node.mtime,
    }
}

/// A file of the writable layer, open: the host file, reporting the inode number the
/// overlay gave its name (so `fstat` and `stat` agree; the host's own number means
/// nothing in the container).
#[derive(Debug)]
struct UpperFile {
    file: Arc<dyn OpenFile>,
    ino: u64,
    quota: Option<Arc<Quota>>,
}

impl OpenFile for UpperFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> FsResult<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> FsResult<usize> {
        let Some(quota) = &self.quota else {
            return self.file.write_at(buf, offset);
        };
        // Only growth takes room; a write that does not fit is cut to what does, as a
        // full disk cuts it, and a write with no room at all answers ENOSPC.
        let size = self.file.stat()?.size;
        let end = offset.saturating_add(buf.len() as u64);
        let growth = end.saturating_sub(size);
        let granted = quota.reserve_upto(growth);
        let allowed_end = end - (growth - granted);
        if allowed_end <= offset && !buf.is_empty() {
            quota.release(granted);
            return Err(Errno::Nospc.into());
        }
        let len = usize::try_from(allowed_end - offset).unwrap_or(buf.len());
        let written = self.file.write_at(&buf[..len.min(buf.len())], offset);
        // Room reserved but not written (a short write, an error) is given back.
        let reached = offset.saturating_add(*written.as_ref().unwrap_or(&0) as u64);
        quota.release(allowed_end.saturating_sub(reached.max(size)).min(granted));
        written
    }

    fn stat(&self) -> FsResult<Stat> {
        Ok(Stat {
            ino: self.ino,
            ..self.file.stat()?
        })
    }

    fn set_len(&self, len: u64) -> FsResult<()> {
        let Some(quota) = &self.quota else {
            return self.file.set_len(len);
        };
        let size = self.file.stat()?.size;
        if len > size {
            quota.reserve(len - size)?;
        }
        let result = self.file.set_len(len);
        match (&result, len > size) {
            (Ok(()), false) => quota.release(size - len),
            (Err(_), true) => quota.release(len - size),
            _ => {}
        }
        result
    }

    fn set_times(&self, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        self.file.set_times(atime, mtime)
    }

    fn sync(&self) -> FsResult<()> {
        self.file.sync()
    }
}

impl Overlay {
    fn upper_file(
        &self,
        st: &mut UpperState,
        path: &str,
        file: Arc<dyn OpenFile>,
    ) -> Arc<dyn OpenFile> {
        Arc::new(UpperFile {
            file,
            ino: self.ino(st, path),
            quota: self.quota.clone(),
        })
    }
}

impl Backend for Overlay {
    fn stat(&self, path: &str) -> FsResult<Stat> {
        let mut st = self.state();
        match self.locate(&st, path) {
            // The root before the first write: the writable layer is not created yet.
            Found::Upper(_) if path.is_empty() && self.upper.get().is_none() => {
                let ino = self.ino(&mut st, path);
                Ok(match self.lower.get(path) {
                    Some(entry) => Stat {
                        ino,
                        ..lower_stat(&entry)
                    },
                    None => Stat {
                        kind: Kind::Dir,
                        mode: 0o755,
                        size: 0,
                        ino,
                        nlink: 1,
                        atime: (0, 0),
                        mtime: (0, 0),
                        ctime: (0, 0),
                    },
                })
            }
            Found::Upper(_) => {
                let meta = if path.is_empty() {
                    self.upper()?.dir_metadata()?
                } else {
                    let (dir, name) = self.entry(&mut st, path)?;
                    dir.symlink_metadata(name)?
                };
                let mut stat = stat_of(&meta);
                stat.ino = self.ino(&mut st, path);
                Ok(stat)
            }
            Found::Lower(entry) => Ok(lower_stat(&entry)),
            Found::Missing => Err(Errno::Noent.into()),
        }
    }

    fn kind(&self, path: &str) -> FsResult<Kind> {
        let st = self.state();
        self.locate(&st, path)
            .kind()
            .ok_or_else(|| Errno::Noent.into())
    }

    fn readlink(&self, path: &str) -> FsResult<String> {
        let mut st = self.state();
        match self.locate(&st, path) {
            Found::Upper(Kind::Symlink) => {
                let (dir, name) = self.entry(&mut st, path)?;
                let target = dir.read_link_contents(name)?;
                target
                    .into_os_string()
                    .into_string()
                    .map_err(|_| Errno::Ilseq.into())
            }
            Found::Lower(entry) if entry.node.kind == Kind::Symlink => {
                Ok(entry.node.link_target.clone().unwrap_or_default())
            }
            Found::Missing => Err(Errno::Noent.into()),
            _ => Err(Errno::Inval.into()),
        }
    }

    fn list(&self, path: &str) -> FsResult<Vec<DirEntry>> {
        let mut st = self.state();
        match self.locate(&st, path).kind() {
            Some(Kind::Dir) => self.merged_list(&mut st, path),
            Some(_) => Err(Errno::Notdir.into()),
            None => Err(Errno::Noent.into()),
        }
    }

    fn open(&self, path: &str, options: OpenOptions, mode: u32) -> FsResult<Arc<dyn OpenFile>> {
        let mut st = self.state();
        match self.locate(&st, path) {
            Found::Upper(Kind::File) => {
                if options.create && options.exclusive {
                    return Err(Errno::Exist.into());
                }
                let truncated = self.size_truncated(&mut st, path, options);
                let (dir, name) = self.entry(&mut st, path)?;
                let file = open_known_file(
                    &dir,
                    name,
                    OpenOptions {
                        create: false,
                        ..options
                    },
                    mode,
                )?;
                self.release(truncated);
                Ok(self.upper_file(&mut st, path, file))
            }
            Found::Lower(entry) if entry.node.kind == Kind::File => {
                if options.create && options.exclusive {
                    return Err(Errno::Exist.into());
                }
                if !options.mutates() {
                    let redirect = Arc::new(Redirect::new());
                    let waiting = st.open_lowers.entry(path.to_owned()).or_default();
                    waiting.retain(|w| w.strong_count() > 0);
                    waiting.push(Arc::downgrade(&redirect));
                    return Ok(Arc::new(LowerFile {
                        lower: self.lower.clone(),
                        entry: entry.clone(),
                        device: self.device,
                        redirect,
                    }));
                }
                self.copy_up(&mut st, path)?;
                let truncated = self.size_truncated(&mut st, path, options);
                let (dir, name) = self.entry(&mut st, path)?;
                let file = open_known_file(
                    &dir,
                    name,
                    OpenOptions {
                        create: false,
                        ..options
                    },
                    mode,
                )?;
                self.release(truncated);
                Ok(self.upper_file(&mut st, path, file))
            }
            Found::Upper(Kind::Dir) | Found::Lower(_)
                if self.locate(&st, path).kind() == Some(Kind::Dir) =>
            {
                Err(Errno::Isdir.into())
            }
            Found::Upper(_) | Found::Lower(_) => Err(Errno::Loop.into()),
            Found::Missing if options.create => {
                self.prepare_create(&mut st, path)?;
                let (dir, name) = self.entry(&mut st, path)?;
                let file = create_file(&dir, name, options, mode)?;
                st.present.insert(path.to_owned(), Kind::File);
                Ok(self.upper_file(&mut st, path, file))
            }
            Found::Missing => Err(Errno::Noent.into()),
        }
    }

    fn mkdir(&self, path: &str, mode: u32) -> FsResult<()> {
        let mut st = self.state();
        let hides_lower = self.prepare_create(&mut st, path)?;
        let (dir, name) = self.entry(&mut st, path)?;
        dir.create_dir(name)?;
        super::sys::set_dir_permission_bits(&dir, name, mode)?;
        st.present.insert(path.to_owned(), Kind::Dir);
        if hides_lower {
            self.make_opaque(&mut st, path)?;
        }
        Ok(())
    }

    fn unlink(&self, path: &str) -> FsResult<()> {
        let mut st = self.state();
        match self.locate(&st, path) {
            Found::Missing => return Err(Errno::Noent.into()),
            Found::Upper(Kind::Dir) => return Err(Errno::Isdir.into()),
            Found::Lower(entry) if entry.node.kind == Kind::Dir => return Err(Errno::Isdir.into()),
            Found::Upper(_) => {
                let freed = self.size_freed(&mut st, path);
                let (dir, name) = self.entry(&mut st, path)?;
                dir.remove_file(name)?;
                self.release(freed);
                st.present.remove(path);
                st.inos.remove(path);
            }
            Found::Lower(_) => {}
        }
        if self.lower_visible(&st, path) {
            self.add_whiteout(&mut st, path)?;
        }
        Ok(())
    }

    fn rmdir(&self, path: &str) -> FsResult<()> {
        if path.is_empty() {
            return Err(Errno::Busy.into());
        }
        let mut st = self.state();
        match self.locate(&st, path).kind() {
            None => return Err(Errno::Noent.into()),
            Some(Kind::Dir) => {}
            Some(_) => return Err(Errno::Notdir.into()),
        }
        if !self.merged_list(&mut st, path)?.is_empty() {
            return Err(Errno::Notempty.into());
        }
        if st.present.get(path) == Some(&Kind::Dir) {
            // Only whiteouts and an opaque marker can be left inside.
            let inside = self.dir_handle(&mut st, path)?;
            for entry in inside.entries()? {
                inside.remove_file(entry?.file_name())?;
            }
            drop(inside);
            // No handle of ours stays open on it: Windows removes a directory only
            // once every handle to it is closed.
            st.dirs.forget(path);
            let (dir, name) = self.entry(&mut st, path)?;
            dir.remove_dir(name)?;
            Self::forget_subtree(&mut st, path);
            st.inos.remove(path);
        }
        if self.lower_visible(&st, path) {
            self.add_whiteout(&mut st, path)?;
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> FsResult<()> {
        Self::check_name(to)?;
        if from == to {
            return Ok(());
        }
        if from.is_empty() || to.is_empty() || to.starts_with(&format!("{from}/")) {
            return Err(Errno::Inval.into());
        }
        let mut st = self.state();
        let from_kind = self.locate(&st, from).kind().ok_or(Errno::Noent)?;
        let to_kind = self.locate(&st, to).kind();
        match (from_kind, to_kind) {
            (Kind::Dir, Some(Kind::Dir)) if !self.merged_list(&mut st, to)?.is_empty() => {
                return Err(Errno::Notempty.into());
            }
            (Kind::Dir, Some(Kind::Dir)) => {}
            (Kind::Dir, Some(_)) => return Err(Errno::Notdir.into()),
            (_, Some(Kind::Dir)) => return Err(Errno::Isdir.into()),
            _ => {}
        }
        if to_kind.is_some() && from_kind != Kind::Dir && self.same_file(&mut st, from, to) {
            // Two names of one file: POSIX says rename does nothing.
            return Ok(());
        }
        // A file of the upper renamed over gives its room back.
        let freed = self.size_freed(&mut st, to);
        // Bring the source up whole, and make room at the destination.
        if from_kind == Kind::Dir {
            self.copy_up_tree(&mut st, from)?;
        } else {
            self.copy_up(&mut st, from)?;
        }
        if to_kind == Some(Kind::Dir) {
            drop(st);
            self.rmdir(to)?;
            st = self.state();
        }
        let (to_parent, _) = split(to);
        self.ensure_upper_dir(&mut st, to_parent)?;
        let to_hides_lower = self.clear_whiteout(&mut st, to)? || self.lower_visible(&st, to);
        // A destination file that exists only in the lower is shadowed by the rename.
        if to_kind.is_some() && from_kind != Kind::Dir {
            st.present.remove(to);
            Self::forget_subtree(&mut st, to);
        }
        // No handle of ours stays open in what moves (Windows refuses to move a
        // directory with handles open below it).
        st.dirs.forget(from);
        let (from_dir, from_name) = self.entry(&mut st, from)?;
        let (to_dir, to_name) = self.entry(&mut st, to)?;
        from_dir.rename(from_name, &to_dir, to_name)?;
        drop((from_dir, to_dir));
        self.release(freed);
        Self::move_subtree(&mut st, from, to);
        if from_kind == Kind::Dir && to_hides_lower {
            self.make_opaque(&mut st, to)?;
        }
        if self.lower_visible(&st, from) {
            self.add_whiteout(&mut st, from)?;
        }
        Ok(())
    }

    fn symlink(&self, target: &str, path: &str) -> FsResult<()> {
        let mut st = self.state();
        self.prepare_create(&mut st, path)?;
        let (dir, name) = self.entry(&mut st, path)?;
        super::sys::symlink(&dir, target, name)?;
        st.present.insert(path.to_owned(), Kind::Symlink);
        Ok(())
    }

    fn link(&self, from: &str, to: &str) -> FsResult<()> {
        let mut st = self.state();
        match self.locate(&st, from).kind() {
            None => return Err(Errno::Noent.into()),
            Some(Kind::Dir) => return Err(Errno::Perm.into()),
            Some(_) => {}
        }
        self.prepare_create(&mut st, to)?;
        self.copy_up(&mut st, from)?;
        let (from_dir, from_name) = self.entry(&mut st, from)?;
        let (to_dir, to_name) = self.entry(&mut st, to)?;
        from_dir.hard_link(from_name, &to_dir, to_name)?;
        drop((from_dir, to_dir));
        let kind = st.present.get(from).copied().unwrap_or(Kind::File);
        st.present.insert(to.to_owned(), kind);
        // Two names of one file: one inode number.
        let ino = self.ino(&mut st, from);
        st.inos.insert(to.to_owned(), ino);
        Ok(())
    }

    fn set_times(&self, path: &str, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        let mut st = self.state();
        match self.locate(&st, path) {
            Found::Missing => return Err(Errno::Noent.into()),
            Found::Lower(entry) if entry.node.kind == Kind::Dir => {
                self.ensure_upper_dir(&mut st, path)?
            }
            Found::Lower(_) => self.copy_up(&mut st, path)?,
            Found::Upper(_) => {}
        }
        if path.is_empty() {
            return Ok(self
                .upper()?
                .set_symlink_times(".", spec(atime), spec(mtime))?);
        }
        let (dir, name) = self.entry(&mut st, path)?;
        Ok(dir.set_symlink_times(name, spec(atime), spec(mtime))?)
    }

    fn device(&self) -> u64 {
        self.device
    }
}

#[cfg(test)]
mod quota_tests {
    use super::*;

    fn overlay(dir: &std::path::Path, limit: u64) -> Overlay {
        let home = crate::ambient::open_dir(dir).expect("open dir");
        Overlay::in_dir(Arc::new(LowerStack::new(Vec::new())), home, 1)
            .expect("overlay")
            .with_quota(limit)
            .expect("quota")
    }

    fn create(overlay: &Overlay, path: &str) -> Arc<dyn OpenFile> {
        let options = OpenOptions {
            read: true,
            write: true,
            create: true,
            exclusive: false,
            truncate: false,
        };
        overlay.open(path, options, 0o644).expect("create")
    }

    fn nospc<T: std::fmt::Debug>(result: FsResult<T>) -> bool {
        matches!(result.map_err(|e| e.errno()), Err(Errno::Nospc))
    }

    #[test]
    fn writes_past_the_quota_are_cut_then_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let overlay = overlay(dir.path(), 100);
        let file = create(&overlay, "a");
        assert_eq!(file.write_at(&[1; 60], 0).expect("write"), 60);
        // Rewriting what exists takes no room.
        assert_eq!(file.write_at(&[2; 60], 0).expect("rewrite"), 60);
        // A write that partly fits is cut short, the next one refused.
        assert_eq!(file.write_at(&[3; 60], 60).expect("short write"), 40);
        assert!(nospc(file.write_at(&[4; 1], 100)));
        assert_eq!(overlay.quota_used(), Some(100));
        // A second file finds no room; a sparse write far out neither.
        let other = create(&overlay, "b");
        assert!(nospc(other.write_at(&[5; 1], 0)));
        assert!(nospc(other.set_len(10)));
    }

    #[test]
    fn truncating_unlinking_and_renaming_over_give_room_back() {
        let dir = tempfile::tempdir().expect("dir");
        let overlay = overlay(dir.path(), 100);
        let a = create(&overlay, "a");
        a.write_at(&[1; 80], 0).expect("write");
        a.set_len(30).expect("truncate");
        assert_eq!(overlay.quota_used(), Some(30));
        overlay.unlink("a").expect("unlink");
        assert_eq!(overlay.quota_used(), Some(0));
        let b = create(&overlay, "b");
        b.write_at(&[1; 70], 0).expect("write b");
        let c = create(&overlay, "c");
        c.write_at(&[1; 30], 0).expect("write c");
        assert_eq!(overlay.quota_used(), Some(100));
        overlay.rename("c", "b").expect("rename over");
        assert_eq!(overlay.quota_used(), Some(30));
        // O_TRUNC on open.
        let options = OpenOptions {
            read: false,
            write: true,
            create: false,
            exclusive: false,
            truncate: true,
        };
        overlay.open("b", options, 0).expect("open O_TRUNC");
        assert_eq!(overlay.quota_used(), Some(0));
    }

    #[test]
    fn what_the_upper_holds_counts_when_mounted_again() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let overlay = overlay(dir.path(), 1000);
            create(&overlay, "a").write_at(&[1; 300], 0).expect("write");
            overlay.mkdir("d", 0o755).expect("mkdir");
            create(&overlay, "d/b")
                .write_at(&[1; 200], 0)
                .expect("write");
            overlay.link("a", "d/a2").expect("link");
        }
        let overlay = overlay(dir.path(), 1000);
        // A hard link's two names count the file once.
        assert_eq!(overlay.quota_used(), Some(500));
        let file = create(&overlay, "c");
        assert_eq!(file.write_at(&[1; 600], 0).expect("write"), 500);
    }
}
