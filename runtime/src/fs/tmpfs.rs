//! An in-memory filesystem with a byte cap (`--tmpfs /tmp:size=64m`). Nothing touches
//! the host; it disappears with the container.

use super::errno::{Errno, FsResult};
use super::layer::Kind;
use super::node::{Backend, DirEntry, OpenFile, OpenOptions, SetTime, Stat, Timestamp, now};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct Meta {
    ino: u64,
    mode: u32,
    nlink: u64,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
}

#[derive(Debug)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<String, NodeRef>),
    Symlink(String),
}

#[derive(Debug)]
struct Node {
    meta: Meta,
    body: Body,
}

type NodeRef = Arc<Mutex<Node>>;

fn lock(node: &NodeRef) -> MutexGuard<'_, Node> {
    node.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Node {
    fn kind(&self) -> Kind {
        match self.body {
            Body::File(_) => Kind::File,
            Body::Dir(_) => Kind::Dir,
            Body::Symlink(_) => Kind::Symlink,
        }
    }

    fn stat(&self) -> Stat {
        let size = match &self.body {
            Body::File(data) => data.len() as u64,
            Body::Dir(children) => children.len() as u64,
            Body::Symlink(target) => target.len() as u64,
        };
        Stat {
            kind: self.kind(),
            mode: self.meta.mode,
            size,
            ino: self.meta.ino,
            nlink: self.meta.nlink,
            atime: self.meta.atime,
            mtime: self.meta.mtime,
            ctime: self.meta.ctime,
        }
    }
}

/// Bytes in use against the cap, shared by the filesystem and its open files.
#[derive(Debug)]
struct Budget {
    used: AtomicU64,
    limit: u64,
}

impl Budget {
    /// Accounts for a file growing or shrinking from `old` to `new` bytes.
    fn resize(&self, old: u64, new: u64) -> FsResult<()> {
        if new <= old {
            self.used.fetch_sub(old - new, Ordering::Relaxed);
            return Ok(());
        }
        let grow = new - old;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(grow).filter(|total| *total <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| Errno::Nospc.into())
    }
}

/// The in-memory filesystem.
#[derive(Debug)]
pub struct TmpFs {
    root: NodeRef,
    budget: Arc<Budget>,
    next_ino: AtomicU64,
    device: u64,
}

impl TmpFs {
    /// An empty tmpfs holding at most `limit` bytes of file data.
    pub fn new(limit: u64, device: u64) -> Self {
        let t = now();
        let root = Arc::new(Mutex::new(Node {
            meta: Meta {
                ino: 1,
                mode: 0o1777,
                nlink: 2,
                atime: t,
                mtime: t,
                ctime: t,
            },
            body: Body::Dir(BTreeMap::new()),
        }));
        Self {
            root,
            budget: Arc::new(Budget {
                used: AtomicU64::new(0),
                limit,
            }),
            next_ino: AtomicU64::new(2),
            device,
        }
    }

    /// Bytes of file data in use.
    pub fn used(&self) -> u64 {
        self.budget.used.load(Ordering::Relaxed)
    }

    fn node(&self, path: &str) -> FsResult<NodeRef> {
        let mut current = self.root.clone();
        for name in path.split('/').filter(|c| !c.is_empty()) {
            let next = match &lock(&current).body {
                Body::Dir(children) => children.get(name).cloned().ok_or(Errno::Noent)?,
                _ => return Err(Errno::Notdir.into()),
            };
            current = next;
        }
        Ok(current)
    }

    /// The parent directory node and the final name.
    fn parent<'p>(&self, path: &'p str) -> FsResult<(NodeRef, &'p str)> {
        let (dir, name) = super::index::split(path);
        if name.is_empty() {
            return Err(Errno::Exist.into()); // the root itself
        }
        let parent = self.node(dir)?;
        if !matches!(lock(&parent).body, Body::Dir(_)) {
            return Err(Errno::Notdir.into());
        }
        Ok((parent, name))
    }

    fn new_node(&self, mode: u32, body: Body) -> NodeRef {
        let t = now();
        let nlink = if matches!(body, Body::Dir(_)) { 2 } else { 1 };
        Arc::new(Mutex::new(Node {
            meta: Meta {
                ino: self.next_ino.fetch_add(1, Ordering::Relaxed),
                mode,
                nlink,
                atime: t,
                mtime: t,
                ctime: t,
            },
            body,
        }))
    }

    /// Accounts for a link to `node` going away (unlink, or replaced by a rename).
    fn drop_link(&self, node: Option<NodeRef>) {
        let Some(node) = node else { return };
        let unlinked = {
            let mut guard = lock(&node);
            guard.meta.nlink = guard.meta.nlink.saturating_sub(1);
            guard.meta.ctime = now();
            guard.meta.nlink == 0 || matches!(guard.body, Body::Dir(_))
        };
        if unlinked && Arc::strong_count(&node) == 1 {
            release(&node, &self.budget);
        }
    }

    fn insert(&self, path: &str, node: NodeRef) -> FsResult<()> {
        let (parent, name) = self.parent(path)?;
        let mut parent = lock(&parent);
        let Body::Dir(children) = &mut parent.body else {
            return Err(Errno::Notdir.into());
        };
        if children.contains_key(name) {
            return Err(Errno::Exist.into());
        }
        children.insert(name.to_owned(), node);
        parent.meta.mtime = now();
        Ok(())
    }
}

/// An open tmpfs file: the node itself, so it outlives renames and unlinks.
#[derive(Debug)]
struct TmpFile {
    node: NodeRef,
    budget: Arc<Budget>,
    writable: bool,
}

impl OpenFile for TmpFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> FsResult<usize> {
        let node = lock(&self.node);
        let Body::File(data) = &node.body else {
            return Err(Errno::Isdir.into());
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> FsResult<usize> {
        if !self.writable {
            return Err(Errno::Badf.into());
        }
        let mut node = lock(&self.node);
        let Body::File(data) = &mut node.body else {
            return Err(Errno::Isdir.into());
        };
        if buf.is_empty() {
            // Writing nothing has no other effect (POSIX): no growth past the end, no
            // new mtime.
            return Ok(0);
        }
        let start = usize::try_from(offset).map_err(|_| Errno::Fbig)?;
        let end = start.checked_add(buf.len()).ok_or(Errno::Fbig)?;
        if end > data.len() {
            self.budget.resize(data.len() as u64, end as u64)?;
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        let t = now();
        node.meta.mtime = t;
        node.meta.ctime = t;
        Ok(buf.len())
    }

    fn stat(&self) -> FsResult<Stat> {
        Ok(lock(&self.node).stat())
    }

    fn set_len(&self, len: u64) -> FsResult<()> {
        if !self.writable {
            return Err(Errno::Badf.into());
        }
        let mut node = lock(&self.node);
        let Body::File(data) = &mut node.body else {
            return Err(Errno::Isdir.into());
        };
        let len_usize = usize::try_from(len).map_err(|_| Errno::Fbig)?;
        self.budget.resize(data.len() as u64, len)?;
        data.resize(len_usize, 0);
        node.meta.mtime = now();
        Ok(())
    }

    fn set_times(&self, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        apply_times(&mut lock(&self.node).meta, atime, mtime);
        Ok(())
    }
}

fn release(node: &NodeRef, budget: &Budget) {
    if let Body::File(data) = &mut lock(node).body {
        let _ = budget.resize(data.len() as u64, 0);
        *data = Vec::new();
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let unlinked = lock(&self.node).meta.nlink == 0;
        if unlinked && Arc::strong_count(&self.node) == 1 {
            release(&self.node, &self.budget);
        }
    }
}

fn apply_times(meta: &mut Meta, atime: SetTime, mtime: SetTime) {
    let t = now();
    match atime {
        SetTime::Keep => {}
        SetTime::Now => meta.atime = t,
        SetTime::At(v) => meta.atime = v,
    }
    match mtime {
        SetTime::Keep => {}
        SetTime::Now => meta.mtime = t,
        SetTime::At(v) => meta.mtime = v,
    }
    meta.ctime = t;
}

impl Backend for TmpFs {
    fn stat(&self, path: &str) -> FsResult<Stat> {
        Ok(lock(&self.node(path)?).stat())
    }

    fn readlink(&self, path: &str) -> FsResult<String> {
        match &lock(&self.node(path)?).body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::Inval.into()),
        }
    }

    fn list(&self, path: &str) -> FsResult<Vec<DirEntry>> {
        let node = self.node(path)?;
        let node = lock(&node);
        let Body::Dir(children) = &node.body else {
            return Err(Errno::Notdir.into());
        };
        Ok(children
            .iter()
            .map(|(name, child)| {
                let child = lock(child);
                DirEntry {
                    name: name.clone(),
                    kind: child.kind(),
                    ino: child.meta.ino,
                }
            })
            .collect())
    }

    fn open(&self, path: &str, options: OpenOptions, mode: u32) -> FsResult<Arc<dyn OpenFile>> {
        let node = match self.node(path) {
            Ok(node) => {
                if options.create && options.exclusive {
                    return Err(Errno::Exist.into());
                }
                node
            }
            Err(e) if e.errno() == Errno::Noent && options.create => {
                let node = self.new_node(mode, Body::File(Vec::new()));
                self.insert(path, node.clone())?;
                node
            }
            Err(e) => return Err(e),
        };
        {
            let mut guard = lock(&node);
            let truncated = match &mut guard.body {
                Body::File(data) => {
                    if options.truncate {
                        self.budget.resize(data.len() as u64, 0)?;
                        data.clear();
                    }
                    options.truncate
                }
                Body::Dir(_) => return Err(Errno::Isdir.into()),
                Body::Symlink(_) => return Err(Errno::Loop.into()),
            };
            if truncated {
                // O_TRUNC of an existing file marks it modified, even an empty one
                // (POSIX).
                let t = now();
                guard.meta.mtime = t;
                guard.meta.ctime = t;
            }
        }
        Ok(Arc::new(TmpFile {
            node,
            budget: self.budget.clone(),
            writable: options.write,
        }))
    }

    fn mkdir(&self, path: &str, mode: u32) -> FsResult<()> {
        let node = self.new_node(mode, Body::Dir(BTreeMap::new()));
        self.insert(path, node)
    }

    fn unlink(&self, path: &str) -> FsResult<()> {
        let (parent, name) = self.parent(path)?;
        let mut parent = lock(&parent);
        let Body::Dir(children) = &mut parent.body else {
            return Err(Errno::Notdir.into());
        };
        let child = children.get(name).ok_or(Errno::Noent)?;
        let is_dir = matches!(lock(child).body, Body::Dir(_));
        if is_dir {
            return Err(Errno::Isdir.into());
        }
        let removed = children.remove(name);
        parent.meta.mtime = now();
        drop(parent);
        self.drop_link(removed);
        Ok(())
    }

    fn rmdir(&self, path: &str) -> FsResult<()> {
        let (parent, name) = self.parent(path)?;
        let mut parent = lock(&parent);
        let Body::Dir(children) = &mut parent.body else {
            return Err(Errno::Notdir.into());
        };
        let child = children.get(name).ok_or(Errno::Noent)?;
        match &lock(child).body {
            Body::Dir(grandchildren) if grandchildren.is_empty() => {}
            Body::Dir(_) => return Err(Errno::Notempty.into()),
            _ => return Err(Errno::Notdir.into()),
        }
        children.remove(name);
        parent.meta.mtime = now();
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> FsResult<()> {
        if from == to {
            return Ok(());
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(Errno::Inval.into());
        }
        let node = self.node(from)?;
        let is_dir = matches!(lock(&node).body, Body::Dir(_));
        match self.node(to) {
            // Two names of one file: POSIX says rename does nothing.
            Ok(existing) if Arc::ptr_eq(&existing, &node) => return Ok(()),
            Ok(existing) => {
                let existing = lock(&existing);
                match (&existing.body, is_dir) {
                    (Body::Dir(_), false) => return Err(Errno::Isdir.into()),
                    (Body::Dir(c), true) if !c.is_empty() => return Err(Errno::Notempty.into()),
                    (Body::File(_) | Body::Symlink(_), true) => return Err(Errno::Notdir.into()),
                    _ => {}
                }
            }
            Err(e) if e.errno() == Errno::Noent => {}
            Err(e) => return Err(e),
        }
        let (to_parent, to_name) = self.parent(to)?;
        let (from_parent, from_name) = self.parent(from)?;
        if Arc::ptr_eq(&to_parent, &from_parent) {
            let mut parent = lock(&from_parent);
            let Body::Dir(children) = &mut parent.body else {
                return Err(Errno::Notdir.into());
            };
            let moved = children.remove(from_name).ok_or(Errno::Noent)?;
            let replaced = children.insert(to_name.to_owned(), moved);
            parent.meta.mtime = now();
            drop(parent);
            self.drop_link(replaced);
        } else {
            let moved = {
                let mut parent = lock(&from_parent);
                parent.meta.mtime = now();
                let Body::Dir(children) = &mut parent.body else {
                    return Err(Errno::Notdir.into());
                };
                children.remove(from_name).ok_or(Errno::Noent)?
            };
            let mut parent = lock(&to_parent);
            let Body::Dir(children) = &mut parent.body else {
                return Err(Errno::Notdir.into());
            };
            let replaced = children.insert(to_name.to_owned(), moved);
            parent.meta.mtime = now();
            drop(parent);
            self.drop_link(replaced);
        }
        Ok(())
    }

    fn symlink(&self, target: &str, path: &str) -> FsResult<()> {
        let node = self.new_node(0o777, Body::Symlink(target.to_owned()));
        self.insert(path, node)
    }

    fn link(&self, from: &str, to: &str) -> FsResult<()> {
        let node = self.node(from)?;
        if matches!(lock(&node).body, Body::Dir(_)) {
            return Err(Errno::Perm.into());
        }
        self.insert(to, node.clone())?;
        lock(&node).meta.nlink += 1;
        Ok(())
    }

    fn set_times(&self, path: &str, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        apply_times(&mut lock(&self.node(path)?).meta, atime, mtime);
        Ok(())
    }

    fn device(&self) -> u64 {
        self.device
    }
}
