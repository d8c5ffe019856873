//! The read-only part of a container's root: a stack of layers merged top-down into one
//! index, built once per chain of layers and shared by every container over it.
//!
//! Merging applies OCI semantics: a higher layer's entry replaces a lower one at the
//! same path (a non-directory replacing a directory hides the directory's subtree), a
//! whiteout `.wh.NAME` removes NAME and its subtree from the layers below, and an
//! opaque marker `.wh..wh..opq` empties its directory of everything from below. The
//! result is flattened into a [`FlatIndex`]: a lookup is one binary search and a
//! listing one contiguous run, no call walks the layers, and the index can be saved
//! and loaded again without rebuilding it.

use super::index::{Buffer, FlatIndex, IndexError};
// The merged entry and the path split live in the index, below this module; they are
// re-exported here, where the overlay and the builder look for them.
pub use super::index::{LowerEntry, split};
use super::layer::{Content, Entry, Kind, Layer, Node, Source};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The merged, immutable view of a stack of layers: where each layer's bytes are, and
/// the flat index of what the merge left visible.
#[derive(Debug)]
pub struct LowerStack {
    sources: Vec<Source>,
    index: FlatIndex,
    /// Directories the layers do not have, learned by lookups: nothing below one is in
    /// the layers (every entry's parent is a directory of the index), so a path there
    /// is answered without searching the index: a container's own files, under
    /// directories of its own, are looked up several times per call. The layers never
    /// change, so what it learns stays true.
    absent: std::sync::Mutex<super::paths::PathSet>,
}

/// Most directories [`LowerStack`] remembers as absent.
const ABSENT_DIRS: usize = 4096;

/// The merge in progress (maps), before it is flattened.
struct Merge {
    entries: HashMap<String, LowerEntry>,
    children: HashMap<String, BTreeSet<String>>,
}

/// Inode numbers at or above this are free for the writable parts of a container.
pub const FIRST_DYNAMIC_INO: u64 = 1 << 40;

impl LowerStack {
    /// Merges layers, lowest first.
    pub fn new(layers: Vec<Arc<Layer>>) -> Self {
        let merge = Merge::run(&layers);
        let index = FlatIndex::build(
            merge.entries.iter().map(|(k, v)| (k.as_str(), v)),
            layers.len(),
        );
        Self {
            sources: layers.iter().map(|l| l.source().clone()).collect(),
            index,
            absent: std::sync::Mutex::default(),
        }
    }

    /// A stack from a saved index and the sources of its layers, lowest first.
    ///
    /// # Errors
    /// [`IndexError`] when the saved bytes are damaged or name a layer that is missing.
    pub fn from_saved(bytes: Buffer, sources: Vec<Source>) -> Result<Self, IndexError> {
        let index = FlatIndex::from_buffer(bytes, sources.len())?;
        Ok(Self {
            sources,
            index,
            absent: std::sync::Mutex::default(),
        })
    }

    /// The flat index, to save.
    pub fn index(&self) -> &FlatIndex {
        &self.index
    }

    /// The entry at a path relative to the root (`""` is the root).
    pub fn get(&self, path: &str) -> Option<LowerEntry> {
        let (parent, _) = split(path);
        if parent.is_empty() {
            return self.index.get(path);
        }
        let Ok(mut absent) = self.absent.lock() else {
            return self.index.get(path);
        };
        if absent.contains(parent) {
            return None;
        }
        let found = self.index.get(path);
        if found.is_none() && absent.len() < ABSENT_DIRS && self.index.get(parent).is_none() {
            absent.insert(parent.to_owned());
        }
        found
    }

    /// A directory's entries as (name, kind, inode), sorted.
    pub fn list<'a>(&'a self, path: &'a str) -> impl Iterator<Item = (&'a str, Kind, u64)> + 'a {
        self.index.list(path)
    }

    /// Names in a directory, sorted.
    pub fn children<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.index.children(path)
    }

    /// Reads an entry's bytes.
    ///
    /// # Errors
    /// The host's error.
    pub fn read_at(&self, entry: &LowerEntry, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.sources.get(entry.layer) {
            Some(source) => source.read_at(&entry.node.content, pos, buf),
            None if entry.node.content == Content::Empty => Ok(0),
            None => Err(std::io::Error::other("layer index names a missing layer")),
        }
    }
}

impl Merge {
    fn run(layers: &[Arc<Layer>]) -> Self {
        let mut stack = Self {
            entries: HashMap::new(),
            children: HashMap::new(),
        };
        stack.entries.insert(
            String::new(),
            LowerEntry {
                node: Node::implicit_dir(),
                layer: 0,
                ino: 1,
            },
        );
        let mut next_ino = 2u64;
        let mut link_inos: HashMap<(usize, u64), u64> = HashMap::new();
        for (index, layer) in layers.iter().enumerate() {
            for dir in layer.opaque_dirs() {
                if let Some(children) = stack.children.remove(dir) {
                    for child in children {
                        stack.remove_subtree(&join(dir, &child));
                    }
                }
            }
            for (path, entry) in layer.entries() {
                match entry {
                    Entry::Whiteout => stack.remove_subtree(path),
                    Entry::Node(node) => {
                        let (parent, name) = split(path);
                        if !stack
                            .entries
                            .get(parent)
                            .is_some_and(|p| p.node.kind == Kind::Dir)
                        {
                            // The parent was replaced by a non-directory in this layer.
                            continue;
                        }
                        if let Some(old) = stack.entries.get(path)
                            && (old.node.kind != Kind::Dir || node.kind != Kind::Dir)
                        {
                            stack.remove_subtree(path);
                        }
                        let ino = if node.link_id == 0 {
                            None
                        } else {
                            link_inos.get(&(index, node.link_id)).copied()
                        };
                        let ino = ino.unwrap_or_else(|| {
                            let ino = next_ino;
                            next_ino += 1;
                            if node.link_id != 0 {
                                link_inos.insert((index, node.link_id), ino);
                            }
                            ino
                        });
                        stack
                            .children
                            .entry(parent.to_owned())
                            .or_default()
                            .insert(name.to_owned());
                        stack.entries.insert(
                            path.to_owned(),
                            LowerEntry {
                                node: node.clone(),
                                layer: index,
                                ino,
                            },
                        );
                    }
                }
            }
        }
        stack
    }

    fn remove_subtree(&mut self, path: &str) {
        if path.is_empty() {
            return;
        }
        if self.entries.remove(path).is_none() {
            return;
        }
        let (parent, name) = split(path);
        if let Some(siblings) = self.children.get_mut(parent) {
            siblings.remove(name);
        }
        if let Some(children) = self.children.remove(path) {
            for child in children {
                self.remove_subtree(&join(path, &child));
            }
        }
    }
}

/// Joins a directory path and a name (`""` is the root).
/// Normalises a `/`-separated path below a root: empty and `.` components dropped, `..`
/// resolved lexically; `None` when it climbs above the root.
pub fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}
