//! One read-only layer: the index of an OCI layer (a tar diff, or a directory while
//! testing), checked entry by entry, with file contents left where they are.
//!
//! A tar layer is never unpacked: its index records where each file's bytes start in
//! the (uncompressed) tar, and reads are positioned reads of the tar itself. A
//! directory layer records relative paths and opens them through a capability handle.
//!
//! Everything in a layer is hostile until checked. Refused, with the entry named:
//! absolute paths, `..` components, names that are not UTF-8, device nodes, FIFOs,
//! sparse files, setuid/setgid bits, hardlinks to entries outside the layer, and
//! sizes that run past the end of the tar. Symlinks are kept as text: whatever they
//! point at is resolved later inside the container's tree, never on the host.

use cap_std::fs::Dir;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// Prefix that marks a whiteout entry.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the marker that makes its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// The kind of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// Where a lower file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// No bytes (directories, symlinks, empty files).
    Empty,
    /// `len` bytes at `offset` in the layer's tar.
    TarRange { offset: u64, len: u64 },
    /// A file below the layer's directory.
    DirPath(String),
}

/// One entry of a layer, with the metadata the tar (or directory) recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits (`0o7777` at most; setuid/setgid are refused).
    pub mode: u32,
    /// Modification time, seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    pub size: u64,
    pub content: Content,
    /// The target of a symlink.
    pub link_target: Option<String>,
    /// Identity within the layer: hardlinks share it.
    pub link_id: u64,
}

impl Node {
    /// A directory no entry describes (a layer's root, a parent a tar left out):
    /// 0755, dated 0.
    pub fn implicit_dir() -> Self {
        Self {
            kind: Kind::Dir,
            mode: 0o755,
            mtime: (0, 0),
            size: 0,
            content: Content::Empty,
            link_target: None,
            link_id: 0,
        }
    }
}

/// An entry as the layer states it: a node, or a whiteout hiding what is below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Node(Node),
    Whiteout,
}

/// Why a layer was refused.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: entry '{entry}': {reason}")]
    BadEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}: cannot read it")]
    Io {
        layer: String,
        #[source]
        source: io::Error,
    },
}

/// Where a layer's file contents live.
#[derive(Debug, Clone)]
pub enum Source {
    Tar(Arc<File>),
    Dir(Arc<Dir>),
}

/// A checked, indexed layer.
#[derive(Debug)]
pub struct Layer {
    name: String,
    source: Source,
    /// Entries by path relative to the layer root (`a/b`), parents before children.
    entries: BTreeMap<String, Entry>,
    /// Directories this layer marks opaque.
    opaque: Vec<String>,
}

impl Layer {
    /// The layer's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its contents live.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Entries, parents before children.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Directories marked opaque in this layer.
    pub fn opaque_dirs(&self) -> &[String] {
        &self.opaque
    }

    /// Indexes an uncompressed tar file.
    ///
    /// # Errors
    /// [`LayerError`] naming the first entry that is refused, or the I/O failure.
    pub fn from_tar(name: &str, file: File) -> Result<Self, LayerError> {
        Self::index_tar(name, Arc::new(file))
    }

    /// Indexes a directory layer (see [`Layer::from_dir`]) or an uncompressed tar (see
    /// [`Layer::from_tar`]), as opened by [`Source::open`].
    ///
    /// # Errors
    /// [`LayerError`] naming the first entry that is refused, or the I/O failure.
    pub fn from_source(name: &str, source: Source) -> Result<Self, LayerError> {
        match source {
            Source::Tar(file) => Self::index_tar(name, file),
            Source::Dir(dir) => Self::index_dir(name, dir),
        }
    }

    fn index_tar(name: &str, file: Arc<File>) -> Result<Self, LayerError> {
        let io_err = |source| LayerError::Io {
            layer: name.to_owned(),
            source,
        };
        let tar_len = file.metadata().map_err(io_err)?.len();
        let mut indexer = Indexer::new(name);
        let mut reader: &File = &file;
        reader.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries_with_seek().map_err(io_err)?;
        let mut next_link_id = 1u64;
        let mut by_path_link: HashMap<String, u64> = HashMap::new();
        // Where the next header starts, to name an entry the tar reader itself refuses.
        let mut next_header = 0u64;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let shown = raw_name_at(&file, next_header)
                        .unwrap_or_else(|| format!("at byte {next_header}"));
                    return Err(indexer.bad(&shown, &format!("unreadable tar header: {e}")));
                }
            };
            next_header = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
            let header = entry.header();
            let raw_path = entry.path_bytes();
            let path = indexer.check_path(&raw_path)?;
            let entry_type = header.entry_type();
            let mode = header.mode().map_err(io_err)?;
            let mtime = (
                i64::try_from(header.mtime().map_err(io_err)?).unwrap_or(i64::MAX),
                0,
            );
            let bad = |reason: &str| indexer.bad(&path, reason);
            if mode & 0o6000 != 0 {
                return Err(bad("setuid/setgid bits are not allowed in a layer"));
            }
            let mode = mode & 0o1777;
            let size = entry.size();
            let offset = entry.raw_file_position();
            if offset.checked_add(size).is_none_or(|end| end > tar_len) {
                return Err(bad(&format!(
                    "its size {size} runs past the end of the tar"
                )));
            }
            use tar::EntryType as T;
            match entry_type {
                T::Regular | T::Continuous => {
                    let link_id = next_link_id;
                    next_link_id += 1;
                    by_path_link.insert(path.clone(), link_id);
                    let content = if size == 0 {
                        Content::Empty
                    } else {
                        Content::TarRange { offset, len: size }
                    };
                    indexer.add(path, Kind::File, mode, mtime, size, content, None, link_id)?;
                }
                T::Directory => {
                    let link_id = next_link_id;
                    next_link_id += 1;
                    indexer.add_dir(path, mode, mtime, link_id)?;
                }
                T::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad("symlink without a target"))?;
                    let target = std::str::from_utf8(&target)
                        .map_err(|_| bad("symlink target is not UTF-8"))?
                        .to_owned();
                    let link_id = next_link_id;
                    next_link_id += 1;
                    indexer.add_symlink(path, mtime, target, link_id)?;
                }
                T::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad("hardlink without a target"))?;
                    let target = indexer
                        .check_path(&target)
                        .map_err(|_| bad("hardlink target is not a path inside the layer"))?;
                    let node = match indexer.entries.get(&target) {
                        Some(Entry::Node(node)) if node.kind == Kind::File => node.clone(),
                        _ => {
                            return Err(bad(&format!(
                                "hardlink to '{target}', which is not a file earlier in this layer"
                            )));
                        }
                    };
                    indexer.add(
                        path,
                        Kind::File,
                        node.mode,
                        node.mtime,
                        node.size,
                        node.content,
                        None,
                        node.link_id,
                    )?;
                }
                T::Char | T::Block => return Err(bad("device nodes are not allowed in a layer")),
                T::Fifo => return Err(bad("FIFOs are not allowed in a layer")),
                T::GNUSparse => return Err(bad("sparse files are not supported in a layer")),
                T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
                other => {
                    return Err(bad(&format!(
                        "unsupported tar entry type {:?}",
                        other.as_byte() as char
                    )));
                }
            }
        }
        Ok(indexer.finish(Source::Tar(file)))
    }

    /// Indexes a host directory as a layer (for `--layer DIR` and tests). Symlinks are
    /// recorded, never followed; special files are refused.
    ///
    /// # Errors
    /// [`LayerError`] naming the entry that is refused, or the I/O failure.
    pub fn from_dir(name: &str, dir: Dir) -> Result<Self, LayerError> {
        Self::index_dir(name, Arc::new(dir))
    }

    fn index_dir(name: &str, dir: Arc<Dir>) -> Result<Self, LayerError> {
        let mut indexer = Indexer::new(name);
        let mut link_id = 0u64;
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let io_err = |source| LayerError::Io {
                layer: name.to_owned(),
                source,
            };
            let read = if rel.is_empty() {
                dir.entries()
            } else {
                dir.read_dir(&rel)
            }
            .map_err(io_err)?;
            for item in read {
                let item = item.map_err(io_err)?;
                let file_name = item.file_name();
                let Some(file_name) = file_name.to_str() else {
                    return Err(indexer.bad(
                        &format!("{rel}/{}", file_name.to_string_lossy()),
                        "name is not UTF-8",
                    ));
                };
                let path = if rel.is_empty() {
                    file_name.to_owned()
                } else {
                    format!("{rel}/{file_name}")
                };
                let path = indexer.check_path(path.as_bytes())?;
                let meta = dir.symlink_metadata(&path).map_err(io_err)?;
                let mtime = meta
                    .modified()
                    .ok()
                    .map(|t| t.into_std())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or((0, 0), |d| {
                        (
                            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                            d.subsec_nanos(),
                        )
                    });
                let mode = crate::fs::sys::permission_bits(&meta);
                link_id += 1;
                let ft = meta.file_type();
                if ft.is_dir() {
                    indexer.add_dir(path.clone(), mode, mtime, link_id)?;
                    stack.push(path);
                } else if ft.is_symlink() {
                    let target = dir.read_link_contents(&path).map_err(io_err)?;
                    let target = target
                        .to_str()
                        .ok_or_else(|| indexer.bad(&path, "symlink target is not UTF-8"))?
                        .to_owned();
                    indexer.add_symlink(path, mtime, target, link_id)?;
                } else if ft.is_file() {
                    let content = if meta.len() == 0 {
                        Content::Empty
                    } else {
                        Content::DirPath(path.clone())
                    };
                    indexer.add(
                        path,
                        Kind::File,
                        mode & 0o1777,
                        mtime,
                        meta.len(),
                        content,
                        None,
                        link_id,
                    )?;
                } else {
                    return Err(indexer.bad(
                        &path,
                        "special files (devices, FIFOs, sockets) are not allowed in a layer",
                    ));
                }
            }
        }
        Ok(indexer.finish(Source::Dir(dir)))
    }

    /// Reads up to `buf.len()` bytes of a file's content at `pos`.
    ///
    /// # Errors
    /// The host's error.
    pub fn read_at(&self, content: &Content, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.source.read_at(content, pos, buf)
    }
}

impl Source {
    /// Opens a layer's source by host path: a directory, or an uncompressed tar.
    ///
    /// # Errors
    /// The host's error.
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        if crate::ambient::is_dir(path) {
            Ok(Source::Dir(Arc::new(crate::ambient::open_dir(path)?)))
        } else {
            Ok(Source::Tar(Arc::new(crate::ambient::open_file(path)?)))
        }
    }

    /// Reads up to `buf.len()` bytes of a file's content at `pos`.
    ///
    /// # Errors
    /// The host's error.
    pub fn read_at(&self, content: &Content, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        match (content, self) {
            (Content::Empty, _) => Ok(0),
            (Content::TarRange { offset, len }, Source::Tar(file)) => {
                if pos >= *len {
                    return Ok(0);
                }
                let want = usize::try_from((*len - pos).min(buf.len() as u64)).unwrap_or(buf.len());
                crate::fs::sys::read_at(file, &mut buf[..want], offset + pos)
            }
            (Content::DirPath(path), Source::Dir(dir)) => {
                let mut file = dir.open(path)?;
                file.seek(SeekFrom::Start(pos))?;
                file.read(buf)
            }
            _ => Err(io::Error::other("layer content does not match its source")),
        }
    }
}

/// The name field of the tar header at `offset`, if it can be read.
fn raw_name_at(file: &File, offset: u64) -> Option<String> {
    let mut name = [0u8; 100];
    let n = crate::fs::sys::read_at(file, &mut name, offset).ok()?;
    let end = name[..n].iter().position(|b| *b == 0).unwrap_or(n);
    (end > 0).then(|| String::from_utf8_lossy(&name[..end]).into_owned())
}

/// Builds a layer's index: collects its entries, checking each, and the directories it
/// marks opaque.
struct Indexer {
    layer: String,
    entries: BTreeMap<String, Entry>,
    opaque: Vec<String>,
}

impl Indexer {
    fn new(layer: &str) -> Self {
        Self {
            layer: layer.to_owned(),
            entries: BTreeMap::new(),
            opaque: Vec::new(),
        }
    }

    fn bad(&self, entry: &str, reason: &str) -> LayerError {
        LayerError::BadEntry {
            layer: self.layer.clone(),
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// Normalises a path from a layer: strips `./` and trailing `/`, refuses absolute
    /// paths, `..`, empty components in the middle, NUL and non-UTF-8 names.
    fn check_path(&self, raw: &[u8]) -> Result<String, LayerError> {
        let shown = String::from_utf8_lossy(raw).into_owned();
        let text = std::str::from_utf8(raw).map_err(|_| self.bad(&shown, "name is not UTF-8"))?;
        if text.starts_with('/') || text.starts_with('\\') {
            return Err(self.bad(&shown, "absolute paths are not allowed in a layer"));
        }
        if text.contains('\0') || text.contains('\\') {
            return Err(self.bad(&shown, "names may not contain NUL or backslash"));
        }
        let mut parts = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(self.bad(&shown, "'..' components are not allowed in a layer")),
                _ => parts.push(part),
            }
        }
        Ok(parts.join("/"))
    }

    /// Adds a directory.
    fn add_dir(
        &mut self,
        path: String,
        mode: u32,
        mtime: (i64, u32),
        link_id: u64,
    ) -> Result<(), LayerError> {
        self.add(
            path,
            Kind::Dir,
            mode,
            mtime,
            0,
            Content::Empty,
            None,
            link_id,
        )
    }

    /// Adds a symlink, refusing an empty target or one with a NUL byte.
    fn add_symlink(
        &mut self,
        path: String,
        mtime: (i64, u32),
        target: String,
        link_id: u64,
    ) -> Result<(), LayerError> {
        if target.is_empty() || target.contains('\0') {
            return Err(self.bad(&path, "symlink target is empty or has a NUL byte"));
        }
        let len = target.len() as u64;
        self.add(
            path,
            Kind::Symlink,
            0o777,
            mtime,
            len,
            Content::Empty,
            Some(target),
            link_id,
        )
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per entry kind, all fields named"
    )]
    fn add(
        &mut self,
        path: String,
        kind: Kind,
        mode: u32,
        mtime: (i64, u32),
        size: u64,
        content: Content,
        link_target: Option<String>,
        link_id: u64,
    ) -> Result<(), LayerError> {
        if path.is_empty() {
            // The layer's root directory itself: only a directory may stand there.
            return if kind == Kind::Dir {
                Ok(())
            } else {
                Err(self.bad(".", "the layer root must be a directory"))
            };
        }
        let (parent, name) = super::index::split(&path);
        if name == OPAQUE_MARKER {
            self.opaque.push(parent.to_owned());
            self.ensure_parents(&path);
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(self.bad(&path, "whiteout without a name"));
            }
            let target = if parent.is_empty() {
                hidden.to_owned()
            } else {
                format!("{parent}/{hidden}")
            };
            self.ensure_parents(&path);
            self.entries.insert(target, Entry::Whiteout);
            return Ok(());
        }
        self.ensure_parents(&path);
        self.entries.insert(
            path,
            Entry::Node(Node {
                kind,
                mode,
                mtime,
                size,
                content,
                link_target,
                link_id,
            }),
        );
        Ok(())
    }

    /// Tars may omit parent directories; they exist implicitly (0755, epoch mtime).
    fn ensure_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            match self.entries.get(parent) {
                Some(Entry::Node(node)) if node.kind == Kind::Dir => {}
                _ => {
                    self.entries
                        .insert(parent.to_owned(), Entry::Node(Node::implicit_dir()));
                }
            }
            end += i + 1;
        }
    }

    fn finish(self, source: Source) -> Layer {
        Layer {
            name: self.layer,
            source,
            entries: self.entries,
            opaque: self.opaque,
        }
    }
}
