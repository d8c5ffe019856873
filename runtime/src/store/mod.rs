//! The content store: an OCI image layout under the Capsule home (`oci-layout`,
//! `index.json`, `blobs/sha256/…`), the single source of truth for images.
//!
//! - A blob becomes visible only once its bytes are on disk and hash to its name: it
//!   is streamed into a temporary file in `blobs/sha256/` while being hashed, synced,
//!   checked against the expected digest and size when there is one, and renamed into
//!   place. A failure leaves nothing visible (and removes the temporary file).
//! - `index.json` changes under an exclusive lock on `index.lock` (other processes
//!   wait), written to a temporary file and renamed; readers take a shared lock.
//! - Everything is reached through cap-std handles on the store's directories.
//! - Blobs leave the store checked: [`Store::open_blob_checked`] fails at the end of a
//!   blob that is not the size and digest it should be.
//! - A store that holds blobs but lost `index.json` is never given a new, empty one
//!   (every image would look unused, and garbage collection would free them all):
//!   reading or changing the index fails with [`StoreError::IndexMissing`] until
//!   `system check --rebuild-index` rebuilds it ([`Store::replace_index`]).
//!
//! The images layer (`crate::image`) builds on top: manifests, configs, references and
//! the layer cache the filesystem reads.

mod atomic;
pub mod digest;
#[cfg(test)]
mod tests;

pub use atomic::{AtomicFile, write_atomically};
pub use digest::{Digest, DigestError};

use cap_std::fs::Dir;
use oci_spec::image::ImageIndex;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Opens (creating) the lock file `name` in `dir`, for reading and writing.
///
/// # Errors
/// The host's error.
pub fn open_lock_file(dir: &Dir, name: impl AsRef<Path>) -> io::Result<std::fs::File> {
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    dir.open_with(name, &options)
        .map(cap_std::fs::File::into_std)
}

/// Opens (creating) the lock file `name` in `dir` and takes it exclusively, waiting for
/// it; held until the file is closed.
///
/// # Errors
/// The host's error.
pub fn lock_exclusive(dir: &Dir, name: impl AsRef<Path>) -> io::Result<std::fs::File> {
    let file = open_lock_file(dir, name)?;
    file.lock()?;
    Ok(file)
}

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
const INDEX: &str = "index.json";
const INDEX_LOCK: &str = "index.lock";
const GC_LOCK: &str = "gc.lock";
const QUARANTINE: &str = "quarantine";

/// A held garbage-collection lock (see [`Store::gc_lock`]).
#[derive(Debug)]
pub struct GcLock(std::fs::File);

impl Drop for GcLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Errors of the store, each naming what it was about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {what}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("store at {path} is not an OCI image layout this Capsule understands: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("blob {expected}: the content hashes to {actual} instead; nothing was stored")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: expected {expected} bytes, got {actual}; nothing was stored")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} is not in the store")]
    MissingBlob(Digest),
    #[error(
        "blob {digest} in the store is damaged ({reason}): run capsule system check, then load or build the image again"
    )]
    Damaged { digest: Digest, reason: String },
    #[error("the store's index is invalid: {0}")]
    BadIndex(String),
    #[error(
        "{path} is missing but the store holds {blobs} blobs, so every image would look unused: nothing was changed; run capsule system check --rebuild-index to find the images again from their manifests"
    )]
    IndexMissing { path: PathBuf, blobs: usize },
}

/// A stored blob: its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    dir: Dir,
    blobs: Dir,
}

impl Store {
    /// Opens the store at `root`, creating an empty OCI layout when there is none.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created or read,
    /// [`StoreError::Layout`] when it holds another layout version.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let io_err = |what| {
            move |source| StoreError::Io {
                path: root.to_owned(),
                what,
                source,
            }
        };
        let dir = crate::ambient::create_and_open_dir(root).map_err(io_err("cannot open"))?;
        match dir.read_to_string(LAYOUT_FILE) {
            Ok(text) => {
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| StoreError::Layout {
                        path: root.to_owned(),
                        reason: e.to_string(),
                    })?;
                if value["imageLayoutVersion"] != "1.0.0" {
                    return Err(StoreError::Layout {
                        path: root.to_owned(),
                        reason: format!("oci-layout says {text}"),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomically(&dir, LAYOUT_FILE, LAYOUT.as_bytes())
                    .map_err(io_err("cannot write oci-layout"))?;
            }
            Err(e) => return Err(io_err("cannot read oci-layout")(e)),
        }
        dir.create_dir_all("blobs/sha256")
            .map_err(io_err("cannot create blobs/sha256"))?;
        let blobs = dir
            .open_dir("blobs/sha256")
            .map_err(io_err("cannot open blobs/sha256"))?;
        let store = Self {
            root: root.to_owned(),
            dir,
            blobs,
        };
        if !store.dir.exists(INDEX) && store.blobs()?.is_empty() {
            // A new store. A store with blobs but no index lost it: leave that to
            // `system check --rebuild-index` (an empty index would free every blob).
            store.update_index(|_| ())?;
        }
        Ok(store)
    }

    /// Where the store is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, what: &'static str) -> impl FnOnce(io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: self.root.clone(),
            what,
            source,
        }
    }

    /// Stores a blob from a reader and returns its digest and size.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn put_blob(&self, reader: impl Read) -> Result<Blob, StoreError> {
        self.put(reader, None)
    }

    /// Stores a blob that must hash to `digest` and be `size` bytes long.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] or [`StoreError::SizeMismatch`] (nothing is
    /// stored), or [`StoreError::Io`].
    pub fn put_blob_verified(
        &self,
        reader: impl Read,
        digest: &Digest,
        size: u64,
    ) -> Result<Blob, StoreError> {
        self.put(reader, Some((digest, size)))
    }

    fn put(
        &self,
        mut reader: impl Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<Blob, StoreError> {
        let mut writer = self.blob_writer()?;
        copy_checked(&mut reader, &mut writer, &mut |_| {}).map_err(|e| match e {
            CopyError::Read(e) => self.io("cannot read the blob's content")(e),
            CopyError::Write(e) => self.io("cannot write a blob")(e),
        })?;
        writer.finish(expected)
    }

    /// A writer that stores a blob as it is written: [`BlobWriter::finish`] checks and
    /// publishes it; dropping it unfinished stores nothing.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the temporary file cannot be created.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>, StoreError> {
        let file = AtomicFile::create(&self.blobs, "blob")
            .map_err(self.io("cannot create a temporary blob"))?;
        Ok(BlobWriter {
            store: self,
            file: io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.exists(digest.hex())
    }

    /// Opens a stored blob for reading.
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`], [`StoreError::Io`].
    pub fn open_blob(&self, digest: &Digest) -> Result<std::fs::File, StoreError> {
        match self.blobs.open(digest.hex()) {
            Ok(file) => Ok(file.into_std()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::MissingBlob(digest.clone()))
            }
            Err(e) => Err(self.io("cannot open a blob")(e)),
        }
    }

    /// Opens a stored blob for reading, checked as it is read: a read that reaches the
    /// end fails with [`StoreError::Damaged`] (as an [`io::Error`] of kind
    /// `InvalidData` wrapping it; see [`StoreError::from_io`]) unless the blob was
    /// exactly `size` bytes that hash to `digest`. Whoever copies a blob out of the
    /// store with it never hands out damaged bytes without an error.
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`], [`StoreError::Io`].
    pub fn open_blob_checked(&self, digest: &Digest, size: u64) -> Result<CheckedBlob, StoreError> {
        let file = self.open_blob(digest)?;
        Ok(CheckedBlob {
            file,
            digest: digest.clone(),
            size,
            read: 0,
            hasher: Some(Sha256::new()),
        })
    }

    /// Reads a whole (small) blob, checking that it still hashes to its name.
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`], [`StoreError::DigestMismatch`] for a corrupt blob.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(self.io("cannot read a blob"))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Re-hashes a stored blob: whether it still matches its name (`system check`).
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`], [`StoreError::Io`].
    pub fn verify_blob(&self, digest: &Digest) -> Result<bool, StoreError> {
        let mut file = self.open_blob(digest)?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).map_err(self.io("cannot read a blob"))?;
        Ok(&Digest::from_hasher(hasher) == digest)
    }

    /// Re-hashes `blobs` (as [`Store::blobs`] lists them) and moves each that no longer
    /// matches its name to quarantine; `done` is told each blob's size once it is
    /// checked. Returns the corrupt blobs and where each went.
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`], [`StoreError::Io`].
    pub fn check_blobs(
        &self,
        blobs: &[Blob],
        done: impl Fn(u64),
    ) -> Result<Vec<(Digest, PathBuf)>, StoreError> {
        let mut corrupt = Vec::new();
        for blob in blobs {
            if !self.verify_blob(&blob.digest)? {
                corrupt.push(blob.digest.clone());
            }
            done(blob.size);
        }
        corrupt
            .into_iter()
            .map(|digest| {
                let moved = self.quarantine_blob(&digest)?;
                Ok((digest, moved))
            })
            .collect()
    }

    /// Moves a blob out of `blobs/` into `quarantine/` (a corrupt blob is kept for
    /// inspection, but no longer served).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn quarantine_blob(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        self.dir
            .create_dir_all(QUARANTINE)
            .map_err(self.io("cannot create quarantine/"))?;
        let quarantine = self
            .dir
            .open_dir(QUARANTINE)
            .map_err(self.io("cannot open quarantine/"))?;
        self.blobs
            .rename(digest.hex(), &quarantine, digest.hex())
            .map_err(self.io("cannot move a blob to quarantine/"))?;
        Ok(self.root.join(QUARANTINE).join(digest.hex()))
    }

    /// Removes a blob (garbage collection; the caller holds [`Store::gc_lock`]).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn remove_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        match self.blobs.remove_file(digest.hex()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(self.io("cannot remove a blob")(e))
            }
            _ => Ok(()),
        }
    }

    /// Takes the garbage-collection lock: shared by work that writes blobs before an
    /// image refers to them (a build, a load), exclusive for collection. Held until
    /// the returned guard is dropped.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn gc_lock(&self, exclusive: bool) -> Result<GcLock, StoreError> {
        let file = self.open_lock(GC_LOCK)?;
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(self.io("cannot lock gc.lock"))?;
        Ok(GcLock(file))
    }

    /// Takes the garbage-collection lock exclusively if no one holds it.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn try_gc_lock(&self) -> Result<Option<GcLock>, StoreError> {
        let file = self.open_lock(GC_LOCK)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(GcLock(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(self.io("cannot lock gc.lock")(e)),
        }
    }

    /// Removes temporary blobs and index files left by killed processes. Every blob
    /// writer holds the shared GC lock, so under the exclusive one (`_proof`) any
    /// temporary blob is stale; temporary indexes are removed under the index lock.
    /// Returns the bytes freed.
    pub fn remove_stale_temps(&self, _proof: &GcLock) -> u64 {
        let mut freed = 0;
        let Ok(entries) = self.blobs.entries() else {
            return 0;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(".blob-") && name.ends_with(".tmp") {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if self.blobs.remove_file(&name).is_ok() {
                    freed += size;
                }
            }
        }
        // A new index.json is written beside the old one under the exclusive index lock,
        // so under that lock every temporary index is a killed writer's.
        if let Ok(lock) = self.lock_file()
            && lock.lock().is_ok()
        {
            for entry in self.dir.entries().into_iter().flatten().flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name.starts_with(&format!(".{INDEX}-")) && name.ends_with(".tmp") {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    if self.dir.remove_file(&name).is_ok() {
                        freed += size;
                    }
                }
            }
            let _ = lock.unlock();
        }
        freed
    }

    /// Every stored blob with its size (temporary files are not blobs).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn blobs(&self) -> Result<Vec<Blob>, StoreError> {
        let mut out = Vec::new();
        for entry in self.blobs.entries().map_err(self.io("cannot list blobs"))? {
            let entry = entry.map_err(self.io("cannot list blobs"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            let size = entry
                .metadata()
                .map_err(self.io("cannot stat a blob"))?
                .len();
            out.push(Blob { digest, size });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// The current `index.json` (under a shared lock).
    ///
    /// # Errors
    /// [`StoreError::BadIndex`], [`StoreError::Io`].
    pub fn index(&self) -> Result<ImageIndex, StoreError> {
        let lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(self.io("cannot lock index.json"))?;
        let result = match self.read_index() {
            Err(StoreError::IndexMissing { blobs: 0, .. }) => Ok(ImageIndex::default()),
            other => other,
        };
        let _ = lock.unlock();
        result
    }

    /// Changes `index.json` under an exclusive lock: reads it, lets `change` edit it,
    /// and writes it back atomically. Concurrent callers (in any process) serialise.
    ///
    /// # Errors
    /// [`StoreError::BadIndex`], [`StoreError::Io`].
    pub fn update_index<R>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> R,
    ) -> Result<R, StoreError> {
        let lock = self.lock_file()?;
        lock.lock().map_err(self.io("cannot lock index.json"))?;
        let result = (|| {
            let mut index = match self.read_index() {
                Ok(index) => index,
                Err(StoreError::IndexMissing { blobs: 0, .. }) => ImageIndex::default(),
                Err(e) => return Err(e),
            };
            let out = change(&mut index);
            let text = index
                .to_string_pretty()
                .map_err(|e| StoreError::BadIndex(e.to_string()))?;
            write_atomically(&self.dir, INDEX, text.as_bytes())
                .map_err(self.io("cannot write index.json"))?;
            Ok(out)
        })();
        let _ = lock.unlock();
        result
    }

    fn lock_file(&self) -> Result<std::fs::File, StoreError> {
        self.open_lock(INDEX_LOCK)
    }

    /// Opens (creating) a lock file of the store.
    fn open_lock(&self, name: &str) -> Result<std::fs::File, StoreError> {
        open_lock_file(&self.dir, name).map_err(|source| StoreError::Io {
            path: self.root.join(name),
            what: "cannot open a lock file",
            source,
        })
    }

    fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let text = match self.dir.read_to_string(INDEX) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::IndexMissing {
                    path: self.root.join(INDEX),
                    blobs: self.blobs()?.len(),
                });
            }
            Err(e) => return Err(self.io("cannot read index.json")(e)),
        };
        // serde_json's error says where; oci-spec's only that it failed.
        serde_json::from_str::<ImageIndex>(&text).map_err(|e| {
            StoreError::BadIndex(format!(
                "{}: {e}; repair it, or run capsule system check --rebuild-index to rebuild it from the manifests in the store (do not delete it: without an index every image looks unused)",
                self.root.join(INDEX).display()
            ))
        })
    }

    /// Replaces `index.json` with `index` under the exclusive lock, keeping an unreadable
    /// one beside it as `index.json.damaged` (`system check --rebuild-index`).
    /// Returns where the damaged one was kept, if it was.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn replace_index(
        &self,
        rebuild: impl FnOnce(Option<ImageIndex>) -> ImageIndex,
    ) -> Result<Option<PathBuf>, StoreError> {
        let lock = self.lock_file()?;
        lock.lock().map_err(self.io("cannot lock index.json"))?;
        let result = (|| {
            let (current, kept) = match self.read_index() {
                Ok(index) => (Some(index), None),
                Err(StoreError::IndexMissing { .. }) => (None, None),
                Err(StoreError::BadIndex(_)) => {
                    let damaged = format!("{INDEX}.damaged");
                    self.dir
                        .rename(INDEX, &self.dir, &damaged)
                        .map_err(self.io("cannot keep the damaged index.json"))?;
                    (None, Some(self.root.join(damaged)))
                }
                Err(e) => return Err(e),
            };
            let index = rebuild(current);
            let text = index
                .to_string_pretty()
                .map_err(|e| StoreError::BadIndex(e.to_string()))?;
            write_atomically(&self.dir, INDEX, text.as_bytes())
                .map_err(self.io("cannot write index.json"))?;
            Ok(kept)
        })();
        let _ = lock.unlock();
        result
    }
}

/// A blob being read out of the store, hashed and counted as it goes (see
/// [`Store::open_blob_checked`]).
#[derive(Debug)]
pub struct CheckedBlob {
    file: std::fs::File,
    digest: Digest,
    size: u64,
    read: u64,
    hasher: Option<Sha256>,
}

impl CheckedBlob {
    fn damaged(&self, reason: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            StoreError::Damaged {
                digest: self.digest.clone(),
                reason,
            },
        )
    }
}

impl Read for CheckedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(0);
        };
        // Read at most one byte past the promised size, to notice a longer blob.
        let left = self.size.saturating_sub(self.read) + 1;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n > 0 {
            self.read += n as u64;
            if self.read > self.size {
                return Err(self.damaged(format!("longer than its {} bytes", self.size)));
            }
            hasher.update(&buf[..n]);
            return Ok(n);
        }
        if self.read != self.size {
            return Err(self.damaged(format!("{} bytes instead of {}", self.read, self.size)));
        }
        let hasher = self.hasher.take().unwrap_or_default();
        let actual = Digest::from_hasher(hasher);
        if actual != self.digest {
            return Err(self.damaged(format!("its content hashes to {actual}")));
        }
        Ok(0)
    }
}

impl StoreError {
    /// The [`StoreError`] an [`io::Error`] carries (from a [`CheckedBlob`]), if any.
    pub fn from_io(error: &io::Error) -> Option<&StoreError> {
        error.get_ref()?.downcast_ref::<StoreError>()
    }
}

/// Which side of a copy failed.
#[derive(Debug)]
pub enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `reader` into `writer` in 256 KiB reads, feeding each chunk to `inspect`
/// (a hasher), and says which side failed; returns the bytes copied.
///
/// # Errors
/// [`CopyError`] with the side that failed.
pub fn copy_checked(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    inspect: &mut dyn FnMut(&[u8]),
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        inspect(&buf[..n]);
        writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// A blob being written: hashed as it goes, published by [`BlobWriter::finish`].
#[derive(Debug)]
pub struct BlobWriter<'a> {
    store: &'a Store,
    file: io::BufWriter<AtomicFile<'a>>,
    hasher: Sha256,
    size: u64,
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl<'a> BlobWriter<'a> {
    /// Syncs the blob, checks it against `expected` (digest and size) when given, and
    /// publishes it under its digest.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] or [`StoreError::SizeMismatch`] (nothing is
    /// stored), or [`StoreError::Io`].
    pub fn finish(self, expected: Option<(&Digest, u64)>) -> Result<Blob, StoreError> {
        self.finish_staged(expected)?.publish()
    }

    /// Syncs and checks the blob like [`BlobWriter::finish`] but does not publish it
    /// yet: a pull verifies every blob of an image first and publishes them together,
    /// so a failure leaves nothing in the store.
    ///
    /// # Errors
    /// As [`BlobWriter::finish`].
    pub fn finish_staged(
        self,
        expected: Option<(&Digest, u64)>,
    ) -> Result<StagedBlob<'a>, StoreError> {
        let BlobWriter {
            store,
            file,
            hasher,
            size,
        } = self;
        let file = file
            .into_inner()
            .map_err(|e| store.io("cannot write a blob")(e.into_error()))?;
        file.sync().map_err(store.io("cannot sync a blob"))?;
        let digest = Digest::from_hasher(hasher);
        if let Some((want, want_size)) = expected {
            if &digest != want {
                return Err(StoreError::DigestMismatch {
                    expected: want.clone(),
                    actual: digest,
                });
            }
            if size != want_size {
                return Err(StoreError::SizeMismatch {
                    digest,
                    expected: want_size,
                    actual: size,
                });
            }
        }
        Ok(StagedBlob {
            store,
            file,
            blob: Blob { digest, size },
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }
}

/// A blob written and verified but not yet visible (see [`BlobWriter::finish_staged`]);
/// dropping it stores nothing.
#[derive(Debug)]
pub struct StagedBlob<'a> {
    store: &'a Store,
    file: AtomicFile<'a>,
    blob: Blob,
}

impl StagedBlob<'_> {
    /// The blob it will be.
    pub fn blob(&self) -> &Blob {
        &self.blob
    }

    /// Opens the staged bytes for reading (a config checked before publishing).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn open(&self) -> Result<std::fs::File, StoreError> {
        self.file
            .reopen()
            .map_err(self.store.io("cannot open a staged blob"))
    }

    /// Makes the blob visible under its digest.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn publish(self) -> Result<Blob, StoreError> {
        let StagedBlob { store, file, blob } = self;
        if store.blobs.exists(blob.digest.hex()) {
            // Content-addressed: the same name means the same bytes.
            file.discard()
                .map_err(store.io("cannot remove a temporary blob"))?;
        } else {
            file.commit(blob.digest.hex())
                .map_err(store.io("cannot publish a blob"))?;
        }
        Ok(blob)
    }
}
