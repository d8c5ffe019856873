//! The build context: the directory `capsule build` reads `COPY` sources from, seen
//! through a capability handle (nothing outside it is reachable) and filtered by
//! `.capsuleignore` (or `.dockerignore`).

use super::ignore::IgnoreRules;
use super::pattern::Pattern;
use cap_std::fs::Dir;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file, directory or symlink of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64, mode: u32 },
    Symlink { target: String },
}

/// An open build context.
#[derive(Debug)]
pub struct Context {
    path: PathBuf,
    dir: Arc<Dir>,
    ignore: IgnoreRules,
    /// Which ignore file was used, for messages.
    pub ignore_file: Option<&'static str>,
    hashes: std::sync::Mutex<HashCache>,
}

/// Content hashes of context files from earlier builds, trusted only for a file whose
/// size, mtime and inode are unchanged and whose mtime was at least [`RACY_NS`] older
/// than the moment it was hashed (git's rule against "racily clean" files: a write in
/// the same mtime tick as the hash could otherwise go unseen).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct HashCache {
    files: std::collections::HashMap<String, HashRecord>,
    #[serde(skip)]
    changed: bool,
    /// Files this build hashed or reused: only they are saved.
    #[serde(skip)]
    used: std::collections::HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct HashRecord {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    hashed_at_ns: i128,
    sha256: String,
}

/// How much older than the moment of hashing a file's mtime must be for its hash to
/// be reused.
pub const RACY_NS: i128 = 2_000_000_000;

fn nanos(time: std::time::SystemTime) -> i128 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// Why the context could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {path}: {what}")]
    Io {
        path: String,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Ignore(#[from] super::ignore::IgnoreError),
}

impl Context {
    /// Opens the context directory and reads its ignore file.
    ///
    /// # Errors
    /// [`ContextError`] when it is not a readable directory or the ignore file is bad.
    pub fn open(path: &Path) -> Result<Self, ContextError> {
        let io = |what: &str| {
            let path = path.display().to_string();
            let what = what.to_owned();
            move |source| ContextError::Io { path, what, source }
        };
        let dir = crate::ambient::open_dir(path).map_err(io("cannot open it as a directory"))?;
        let mut ignore = IgnoreRules::default();
        let mut ignore_file = None;
        for name in [".capsuleignore", ".dockerignore"] {
            match dir.read_to_string(name) {
                Ok(text) => {
                    ignore = IgnoreRules::parse(name, &text)?;
                    ignore_file = Some(name);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&format!("cannot read {name}"))(e)),
            }
        }
        Ok(Self {
            path: path.to_owned(),
            dir: Arc::new(dir),
            ignore,
            ignore_file,
            hashes: std::sync::Mutex::new(HashCache::default()),
        })
    }

    /// Reuses the hashes an earlier build saved (see [`HashCache`]).
    pub fn load_hashes(&self, text: &str) {
        if let Ok(cache) = serde_json::from_str::<HashCache>(text)
            && let Ok(mut hashes) = self.hashes.lock()
        {
            *hashes = cache;
        }
    }

    /// The hashes to save for the next build, when any changed.
    pub fn hashes_to_save(&self) -> Option<Vec<u8>> {
        let mut hashes = self.hashes.lock().ok()?;
        let used = std::mem::take(&mut hashes.used);
        let before = hashes.files.len();
        hashes.files.retain(|path, _| used.contains(path));
        if !hashes.changed && hashes.files.len() == before {
            return None;
        }
        serde_json::to_vec(&*hashes).ok()
    }

    /// The context's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a relative path is excluded by the ignore file.
    pub fn is_ignored(&self, path: &str) -> bool {
        !path.is_empty() && self.ignore.is_excluded(path)
    }

    /// The entry at a relative path (`""` is the root), not following a final symlink;
    /// `None` when it does not exist or is ignored.
    ///
    /// # Errors
    /// The host's error other than not-found.
    pub fn stat(&self, path: &str) -> io::Result<Option<Entry>> {
        if self.is_ignored(path) {
            return Ok(None);
        }
        let target = if path.is_empty() { "." } else { path };
        let meta = match self.dir.symlink_metadata(target) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else if meta.file_type().is_symlink() {
            let target = self.dir.read_link_contents(target)?;
            EntryKind::Symlink {
                target: target
                    .to_str()
                    .ok_or_else(|| {
                        io::Error::other(format!("symlink {path}: target is not UTF-8"))
                    })?
                    .to_owned(),
            }
        } else if meta.is_file() {
            EntryKind::File {
                size: meta.len(),
                mode: crate::fs::sys::permission_bits(&meta),
            }
        } else {
            return Err(io::Error::other(format!(
                "{path} is not a file, directory or symlink"
            )));
        };
        Ok(Some(Entry {
            path: path.to_owned(),
            kind,
        }))
    }

    /// Everything below a directory (not including it), sorted, ignored entries left
    /// out (and ignored directories not walked).
    ///
    /// # Errors
    /// The host's error.
    pub fn walk(&self, dir: &str) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(current) = stack.pop() {
            let handle = if current.is_empty() {
                self.dir.try_clone()?
            } else {
                self.dir.open_dir(&current)?
            };
            let mut names = Vec::new();
            for entry in handle.entries()? {
                let name = entry?.file_name();
                let name = name
                    .into_string()
                    .map_err(|n| io::Error::other(format!("{n:?}: file name is not UTF-8")))?;
                names.push(name);
            }
            names.sort();
            for name in names {
                let path = if current.is_empty() {
                    name
                } else {
                    format!("{current}/{name}")
                };
                if self.is_ignored(&path) {
                    if self.ignore.can_skip_dir(&path) {
                        continue;
                    }
                    // An exception below may re-include something: walk on, skip it.
                    if self.dir.symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                        stack.push(path);
                    }
                    continue;
                }
                if let Some(entry) = self.stat(&path)? {
                    if entry.kind == EntryKind::Dir {
                        stack.push(path);
                    }
                    out.push(entry);
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Paths of the context that match a glob, sorted.
    ///
    /// # Errors
    /// The host's error.
    pub fn glob(&self, pattern: &Pattern) -> io::Result<Vec<Entry>> {
        Ok(self
            .walk("")?
            .into_iter()
            .filter(|e| pattern.matches(&e.path))
            .collect())
    }

    /// sha256 of a file's content.
    ///
    /// # Errors
    /// The host's error.
    pub fn hash_file(&self, path: &str) -> io::Result<String> {
        let mut file = self.dir.open(path)?;
        let meta = file.metadata()?;
        let identity = (
            meta.len(),
            meta.modified().map(|t| nanos(t.into_std())).unwrap_or(0),
            crate::fs::sys::identity(&meta).0,
        );
        if let Ok(mut hashes) = self.hashes.lock()
            && let Some(record) = hashes.files.get(path).cloned()
            && (record.size, record.mtime_ns, record.ino) == identity
            && record.mtime_ns + RACY_NS < record.hashed_at_ns
        {
            hashes.used.insert(path.to_owned());
            return Ok(record.sha256);
        }
        let hashed_at_ns = nanos(std::time::SystemTime::now());
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let sha256: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Ok(mut hashes) = self.hashes.lock() {
            hashes.files.insert(
                path.to_owned(),
                HashRecord {
                    size: identity.0,
                    mtime_ns: identity.1,
                    ino: identity.2,
                    hashed_at_ns,
                    sha256: sha256.clone(),
                },
            );
            hashes.changed = true;
            hashes.used.insert(path.to_owned());
        }
        Ok(sha256)
    }

    /// Copies `source` (a directory of the context, `""` its root, with everything
    /// below it that the ignore file does not leave out) into the new directory `to`:
    /// what a `RUN --mount=type=bind` step sees. Each entry is read through the
    /// context's handle and written through the handle of `to`, never by path.
    ///
    /// # Errors
    /// The host's error.
    pub fn export(&self, source: &str, to: &Path) -> io::Result<()> {
        let dest = crate::ambient::create_and_open_dir(to)?;
        let prefix = if source.is_empty() {
            String::new()
        } else {
            format!("{source}/")
        };
        for entry in self.walk(source)? {
            let Some(rel) = entry.path.strip_prefix(&prefix) else {
                continue;
            };
            match &entry.kind {
                EntryKind::Dir => dest.create_dir(rel)?,
                EntryKind::File { mode, .. } => {
                    let mut from = self.dir.open(&entry.path)?;
                    let mut file = dest.create(rel)?;
                    io::copy(&mut from, &mut file)?;
                    crate::fs::sys::set_permission_bits(&dest, rel, *mode)?;
                }
                EntryKind::Symlink { target } => crate::fs::sys::symlink(&dest, target, rel)?,
            }
        }
        Ok(())
    }

    /// Opens a file for the layer writer.
    pub fn opener(&self, path: &str) -> crate::image::layer_writer::Opener {
        let dir = self.dir.clone();
        let path = path.to_owned();
        Arc::new(move || Ok(Box::new(dir.open(&path)?) as Box<dyn Read>))
    }
}
