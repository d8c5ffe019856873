//! The layer cache: each layer of the store kept as an uncompressed tar named by its
//! diff_id, which the filesystem indexes and reads in place.
//!
//! It is derived data. A missing entry is rebuilt from the store's blob (gunzipped or
//! un-zstd'ed while hashed); an entry becomes visible only once its content hashes to
//! the diff_id the image's config promises (temporary file, then rename).
//!
//! Beside each `DIFFID.tar` lies `DIFFID.size`: the size it was written with and the
//! sha256 of its content (the diff_id itself, except for the tar Capsule makes of a wasm
//! artifact's module). An entry is used only when its size matches the record (a stat
//! and a small read, cheap enough for every run); one without a record is hashed
//! against its diff_id once, and one that fails either check is rebuilt from the blob.
//! `system check` ([`LayerCache::check`]) hashes every entry against its record.

use super::ImageError;
use super::oci::Compression;
use crate::store::{AtomicFile, CopyError, Digest, Store, copy_checked};
use cap_std::fs::Dir;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The cache directory.
#[derive(Debug)]
pub struct LayerCache {
    path: PathBuf,
    dir: Dir,
}

impl LayerCache {
    /// Opens (creating) the cache at `path`.
    ///
    /// # Errors
    /// [`ImageError::Io`].
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let dir = crate::ambient::create_and_open_dir(path).map_err(|source| ImageError::Io {
            what: "cannot open the layer cache",
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            dir,
        })
    }

    fn name(diff_id: &Digest) -> String {
        format!("{}.tar", diff_id.hex())
    }

    fn size_name(diff_id: &Digest) -> String {
        format!("{}.size", diff_id.hex())
    }

    /// The record beside a cached tar: its size and the digest of its content.
    fn record(&self, diff_id: &Digest) -> Option<(u64, Digest)> {
        let text = self.dir.read_to_string(Self::size_name(diff_id)).ok()?;
        let mut words = text.split_whitespace();
        let size = words.next()?.parse().ok()?;
        let digest = words.next()?.parse().ok()?;
        Some((size, digest))
    }

    /// Whether the cached tar of `diff_id` is whole: its size matches its record, or
    /// (no record, as in caches from before records) its content hashes to `diff_id`,
    /// which is then recorded.
    fn is_whole(&self, diff_id: &Digest) -> bool {
        let Ok(meta) = self.dir.metadata(Self::name(diff_id)) else {
            return false;
        };
        match self.record(diff_id) {
            Some((size, _)) => size == meta.len(),
            None => {
                let whole = self.content_digest(diff_id).ok().as_ref() == Some(diff_id);
                if whole {
                    let _ = self.write_record(diff_id, meta.len(), diff_id);
                }
                whole
            }
        }
    }

    /// The sha256 of the cached tar of `diff_id`.
    fn content_digest(&self, diff_id: &Digest) -> io::Result<Digest> {
        let mut file = self.dir.open(Self::name(diff_id))?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher)?;
        Ok(Digest::from_hasher(hasher))
    }

    fn write_record(&self, diff_id: &Digest, size: u64, content: &Digest) -> io::Result<()> {
        crate::store::write_atomically(
            &self.dir,
            &Self::size_name(diff_id),
            format!("{size} {content}\n").as_bytes(),
        )
    }

    /// Forgets a cached layer (it is rebuilt from its blob when next needed).
    fn discard(&self, diff_id: &Digest) {
        let _ = self.dir.remove_file(Self::name(diff_id));
        let _ = self.dir.remove_file(Self::size_name(diff_id));
    }

    /// Hashes every cached layer against its record and removes those that do not
    /// match it or lack one (the next run rebuilds them from the blob).
    /// Returns the diff_ids it removed and how many it checked.
    pub fn check(&self) -> (Vec<Digest>, usize) {
        let mut removed = Vec::new();
        let mut checked = 0;
        let Ok(entries) = self.dir.entries() else {
            return (removed, 0);
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".tar")) else {
                continue;
            };
            let Ok(diff_id) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            checked += 1;
            let sound = match (entry.metadata(), self.record(&diff_id)) {
                (Ok(meta), Some((size, content))) => {
                    size == meta.len()
                        && self.content_digest(&diff_id).ok().as_ref() == Some(&content)
                }
                _ => false,
            };
            if !sound {
                self.discard(&diff_id);
                removed.push(diff_id);
            }
        }
        removed.sort();
        (removed, checked)
    }

    /// Where the uncompressed tar of `diff_id` is (whether or not it exists yet).
    pub fn path_of(&self, diff_id: &Digest) -> PathBuf {
        self.path.join(Self::name(diff_id))
    }

    /// A temporary file that [`CacheWriter::publish`] names after its content.
    ///
    /// # Errors
    /// [`ImageError::Io`].
    pub fn writer(&self) -> Result<CacheWriter<'_>, ImageError> {
        let file = AtomicFile::create(&self.dir, "layer").map_err(|source| ImageError::Io {
            what: "cannot write to the layer cache",
            source,
        })?;
        Ok(CacheWriter {
            cache: self,
            file: io::BufWriter::with_capacity(256 * 1024, file),
            written: 0,
            hasher: None,
        })
    }

    /// The uncompressed tar of a layer, made from its blob when it is not cached yet.
    ///
    /// # Errors
    /// [`ImageError::LayerDigest`] when the blob does not decompress to `diff_id`,
    /// [`ImageError::Store`] when the blob is missing, [`ImageError::Io`].
    pub fn ensure(
        &self,
        store: &Store,
        blob: &Digest,
        blob_size: u64,
        media_type: &str,
        diff_id: &Digest,
    ) -> Result<PathBuf, ImageError> {
        let name = Self::name(diff_id);
        if self.is_whole(diff_id) {
            return Ok(self.path.join(name));
        }
        if self.dir.exists(&name) {
            tracing::warn!(%diff_id, "cached layer is damaged; rebuilding it from its blob");
            self.discard(diff_id);
        }
        if media_type == super::oci::media::WASM_LAYER {
            // A CNCF wasm artifact: the blob is the module itself, checked as it is
            // copied (its diff_id is derived from the blob's digest, not its content).
            let mut blob_file = store.open_blob_checked(blob, blob_size)?;
            let mut writer = self.writer()?;
            writer.hasher = Some(Sha256::new());
            write_artifact_tar(&mut blob_file, blob_size, &mut writer)
                .map_err(|source| super::damaged_or(source, "cannot write to the layer cache"))?;
            writer.publish(diff_id)?;
            return Ok(self.path.join(name));
        }
        let compression =
            Compression::of_layer(media_type).ok_or_else(|| ImageError::LayerMediaType {
                blob: blob.clone(),
                media_type: media_type.to_owned(),
            })?;
        let file =
            io::BufReader::with_capacity(256 * 1024, store.open_blob_checked(blob, blob_size)?);
        let mut reader: Box<dyn Read> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => {
                Box::new(ruzstd::decoding::StreamingDecoder::new(file).map_err(|e| {
                    ImageError::Decompress {
                        blob: blob.clone(),
                        what: "is not valid zstd",
                        source: e.into(),
                    }
                })?)
            }
        };
        let mut writer = self.writer()?;
        let mut hasher = Sha256::new();
        copy_checked(&mut reader, &mut writer, &mut |chunk| hasher.update(chunk)).map_err(|e| {
            match e {
                CopyError::Read(e) => match super::damaged_or(e, "cannot read a layer") {
                    ImageError::Io { source, .. } => ImageError::Decompress {
                        blob: blob.clone(),
                        what: "cannot be decompressed",
                        source: source.into(),
                    },
                    damaged => damaged,
                },
                CopyError::Write(source) => ImageError::Io {
                    what: "cannot write to the layer cache",
                    source,
                },
            }
        })?;
        let actual = Digest::from_hasher(hasher);
        if &actual != diff_id {
            return Err(ImageError::LayerDigest {
                blob: blob.clone(),
                expected: diff_id.clone(),
                actual,
            });
        }
        writer.publish(diff_id)?;
        Ok(self.path.join(name))
    }

    /// Removes cached layers whose diff_id is not in `keep` (after garbage collection);
    /// returns the bytes freed.
    pub fn retain(&self, keep: &std::collections::HashSet<Digest>) -> u64 {
        let mut freed = 0;
        let Ok(entries) = self.dir.entries() else {
            return 0;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A temporary file: a run may be writing it right now (runs do not
                // take the GC lock), so only one untouched for an hour is stale.
                let stale = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .map(cap_std::time::SystemTime::into_std)
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if stale {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    if self.dir.remove_file(name).is_ok() {
                        freed += size;
                    }
                }
                continue;
            }
            let Some(hex) = name
                .strip_suffix(".tar")
                .or_else(|| name.strip_suffix(".size"))
            else {
                continue;
            };
            let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if !keep.contains(&digest) {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if self.dir.remove_file(name).is_ok() {
                    freed += size;
                }
            }
        }
        freed
    }

    /// Total size of the cache.
    pub fn size(&self) -> u64 {
        let Ok(entries) = self.dir.entries() else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

/// A cache entry being written.
#[derive(Debug)]
pub struct CacheWriter<'a> {
    cache: &'a LayerCache,
    file: io::BufWriter<AtomicFile<'a>>,
    written: u64,
    /// Hashes the content when it is not the diff_id the caller hashed (an artifact).
    hasher: Option<Sha256>,
}

impl Write for CacheWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl CacheWriter<'_> {
    /// Names the written tar after `diff_id` (the caller hashed what it wrote).
    ///
    /// # Errors
    /// [`ImageError::Io`].
    pub fn publish(self, diff_id: &Digest) -> Result<(), ImageError> {
        let io = |source| ImageError::Io {
            what: "cannot write to the layer cache",
            source,
        };
        let CacheWriter {
            cache,
            file,
            written,
            hasher,
        } = self;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        // The size record first: a tar without one is hashed before use, never trusted.
        cache
            .write_record(
                diff_id,
                written,
                &hasher.map_or_else(|| diff_id.clone(), Digest::from_hasher),
            )
            .and_then(|()| file.commit(LayerCache::name(diff_id)))
            .map_err(io)
    }
}

/// Where a CNCF wasm artifact's module appears in its container.
pub const ARTIFACT_MODULE_PATH: &str = "/module.wasm";

/// The one header format of every tar Capsule writes (layers, archives): GNU, owned
/// by uid/gid 0 without names.
pub(super) fn tar_header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header
}

/// The uncompressed tar of an artifact's module layer: one file at
/// [`ARTIFACT_MODULE_PATH`].
pub(super) fn write_artifact_tar(
    module: &mut crate::store::CheckedBlob,
    size: u64,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut header = tar_header(tar::EntryType::Regular, 0o755, size, 0);
    // Read to the end: the checked blob fails there unless it is whole.
    tar.append_data(&mut header, &ARTIFACT_MODULE_PATH[1..], module)?;
    tar.finish()
}
