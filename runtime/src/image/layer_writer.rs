//! Writes layers reproducibly: the same entries always give the same bytes, so the
//! same build context gives the same layer digests and image digest on any machine.
//!
//! - Entries are sorted by path (bytewise, so parents come first), and every parent
//!   directory of an entry is present.
//! - One tar format (GNU headers, GNU long names); uid/gid 0, no user or group names,
//!   every timestamp is `SOURCE_DATE_EPOCH` (0 by default).
//! - Modes are fixed: directories 0755, files 0644 (0755 when executable on the host),
//!   symlinks 0777, unless `--chmod` says otherwise.
//! - gzip from a pinned `flate2`/`miniz_oxide` at level [`GZIP_LEVEL`] with an empty
//!   header (no name, mtime 0, OS "unknown"), as one gzip member per
//!   [`GZIP_CHUNK`] bytes of tar: members compress in parallel, and the bytes depend
//!   only on the input, never on the number of threads. RFC 1952 allows several
//!   members; every gzip reader Capsule, Docker, containerd, skopeo and umoci use reads
//!   them as one stream.
//!
//! While the gzip blob streams into the store, the uncompressed tar streams into the
//! layer cache, so a layer that was just built runs without being decompressed.

use super::ImageError;
use super::layers::{LayerCache, tar_header};
use super::oci::media;
use crate::store::{Digest, Store};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The gzip level of every layer Capsule writes (part of the reproducibility contract:
/// changing it changes every digest).
pub const GZIP_LEVEL: u32 = 6;

/// Uncompressed bytes per gzip member (part of the reproducibility contract too).
pub const GZIP_CHUNK: usize = 4 << 20;

/// gzip in fixed-size members, compressed on worker threads, written in order.
struct ParallelGz<W: Write> {
    sink: W,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
    threads: usize,
    members: usize,
}

impl<W: Write> ParallelGz<W> {
    fn new(sink: W) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        Self::with_threads(sink, threads)
    }

    fn with_threads(sink: W, threads: usize) -> Self {
        Self {
            sink,
            buf: Vec::with_capacity(GZIP_CHUNK),
            pending: std::collections::VecDeque::new(),
            threads,
            members: 0,
        }
    }

    fn member(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::new(GZIP_LEVEL),
            );
        gz.write_all(data)?;
        gz.finish()
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(GZIP_CHUNK));
        self.members += 1;
        if self.threads <= 1 {
            let member = Self::member(&chunk)?;
            return self.sink.write_all(&member);
        }
        while self.pending.len() >= self.threads {
            self.write_oldest()?;
        }
        self.pending
            .push_back(std::thread::spawn(move || Self::member(&chunk)));
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(handle) = self.pending.pop_front() {
            let member = handle
                .join()
                .map_err(|_| io::Error::other("a compression thread panicked"))??;
            self.sink.write_all(&member)?;
        }
        Ok(())
    }

    /// Compresses what is left and returns the sink.
    fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.members == 0 {
            self.send()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.sink.flush()?;
        Ok(self.sink)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZIP_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens the bytes of a planned file when the layer is written.
pub type Opener = Arc<dyn Fn() -> io::Result<Box<dyn Read>> + Send + Sync>;

/// An entry of a planned layer.
#[derive(Clone)]
pub enum Planned {
    Dir { mode: u32 },
    File { mode: u32, size: u64, open: Opener },
    Symlink { target: String },
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Planned::Dir { mode } => write!(f, "Dir({mode:o})"),
            Planned::File { mode, size, .. } => write!(f, "File({mode:o}, {size} bytes)"),
            Planned::Symlink { target } => write!(f, "Symlink({target})"),
        }
    }
}

/// A layer's entries, by relative path (no leading `/`), in the order they are
/// written.
#[derive(Debug, Default, Clone)]
pub struct LayerPlan {
    entries: BTreeMap<String, Planned>,
}

/// A layer written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// The compressed blob.
    pub digest: Digest,
    pub size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub media_type: &'static str,
}

impl LayerPlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory, keeping one already planned there (and what is below it).
    pub fn add_dir_entry(&mut self, path: &str, mode: u32) {
        self.add(path, Planned::Dir { mode });
    }

    /// Adds an entry at `path` (relative, `/`-separated), creating missing parents as
    /// 0755 directories. A file or symlink replaces whatever was planned at its path
    /// (and below it); a directory keeps what is below it.
    pub fn add(&mut self, path: &str, entry: Planned) {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return;
        }
        let mut parent = String::new();
        for part in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Planned::Dir { .. }) => {}
                _ => {
                    self.entries
                        .insert(parent.clone(), Planned::Dir { mode: 0o755 });
                }
            }
        }
        if !matches!(entry, Planned::Dir { .. }) {
            let prefix = format!("{path}/");
            let below: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for key in below {
                self.entries.remove(&key);
            }
        }
        self.entries.insert(path.to_owned(), entry);
    }

    /// The plan of a writable layer (see [`crate::fs::changes::list_upper`]): its
    /// entries as they are, whiteouts and opaque markers as the empty files OCI layers
    /// hold them as; files are read from `upper` when the layer is written.
    ///
    /// # Errors
    /// The host's error opening `upper`.
    pub fn of_upper(
        upper: &std::path::Path,
        entries: &[crate::fs::changes::UpperEntry],
    ) -> std::io::Result<Self> {
        use crate::fs::changes::UpperKind;
        let mut plan = Self::new();
        if entries.is_empty() {
            return Ok(plan);
        }
        let root = std::sync::Arc::new(crate::ambient::open_dir(upper)?);
        for entry in entries {
            let rel = entry.path.as_str();
            match &entry.kind {
                UpperKind::Dir { .. } => plan.add_dir_entry(rel, 0o755),
                UpperKind::Symlink { target } => plan.add(
                    rel,
                    Planned::Symlink {
                        target: target.clone(),
                    },
                ),
                UpperKind::File { mode, size } => {
                    let dir = root.clone();
                    let path = rel.to_owned();
                    plan.add(
                        rel,
                        Planned::File {
                            mode: normal_file_mode(*mode),
                            size: *size,
                            open: std::sync::Arc::new(move || {
                                Ok(Box::new(dir.open(&path)?) as Box<dyn std::io::Read>)
                            }),
                        },
                    );
                }
                UpperKind::Whiteout { mode } | UpperKind::Opaque { mode } => plan.add(
                    rel,
                    Planned::File {
                        mode: normal_file_mode(*mode),
                        size: 0,
                        open: std::sync::Arc::new(|| {
                            Ok(Box::new(std::io::empty()) as Box<dyn std::io::Read>)
                        }),
                    },
                ),
            }
        }
        Ok(plan)
    }

    /// The planned entries, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Planned)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Writes the layer as tar+gzip into the store (and the uncompressed tar into
    /// `cache`), every timestamp set to `epoch`.
    ///
    /// # Errors
    /// [`ImageError`] when a source cannot be read, changed size while being read, or
    /// the store cannot be written; nothing is published then.
    pub fn write(
        &self,
        store: &Store,
        cache: &LayerCache,
        epoch: i64,
    ) -> Result<WrittenLayer, ImageError> {
        let blob = store.blob_writer()?;
        let gz = ParallelGz::new(blob);
        let mut uncompressed = cache.writer()?;
        let mut tar = tar::Builder::new(Tee {
            hasher: Sha256::new(),
            a: gz,
            b: &mut uncompressed,
        });
        let io = |what: &'static str| move |source| ImageError::Io { what, source };
        let mtime = u64::try_from(epoch).unwrap_or(0);
        for (path, entry) in &self.entries {
            match entry {
                Planned::Dir { mode } => {
                    let mut header = tar_header(tar::EntryType::Directory, *mode, 0, mtime);
                    tar.append_data(&mut header, format!("{path}/"), io::empty())
                        .map_err(io("cannot write a layer"))?;
                }
                Planned::File { mode, size, open } => {
                    let mut header = tar_header(tar::EntryType::Regular, *mode, *size, mtime);
                    let reader = open().map_err(|source| ImageError::Source {
                        path: path.clone(),
                        source,
                    })?;
                    let mut exact = Exact {
                        inner: reader,
                        left: *size,
                        path,
                    };
                    tar.append_data(&mut header, path, &mut exact)
                        .map_err(|source| ImageError::Source {
                            path: path.clone(),
                            source,
                        })?;
                    exact.check_end()?;
                    crate::failpoint::hit("layer-write");
                }
                Planned::Symlink { target } => {
                    let mut header = tar_header(tar::EntryType::Symlink, 0o777, 0, mtime);
                    tar.append_link(&mut header, path, target)
                        .map_err(io("cannot write a layer"))?;
                }
            }
        }
        let tee = tar.into_inner().map_err(io("cannot write a layer"))?;
        let diff_id = Digest::from_hasher(tee.hasher);
        let blob = tee
            .a
            .finish()
            .map_err(io("cannot compress a layer"))?
            .finish(None)?;
        uncompressed.publish(&diff_id)?;
        Ok(WrittenLayer {
            digest: blob.digest,
            size: blob.size,
            diff_id,
            media_type: media::LAYER_GZIP,
        })
    }
}

/// Writes to two sinks, hashing what passes.
struct Tee<A: Write, B: Write> {
    hasher: Sha256,
    a: A,
    b: B,
}

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.a.write_all(buf)?;
        self.b.write_all(buf)?;
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
}

/// Reads exactly the size the header promised: a file that grew or shrank while the
/// layer was written fails the write rather than corrupting the tar.
struct Exact<'a> {
    inner: Box<dyn Read>,
    left: u64,
    path: &'a str,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being copied",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl Exact<'_> {
    fn check_end(&mut self) -> Result<(), ImageError> {
        let mut probe = [0u8; 1];
        match self.inner.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(ImageError::Source {
                path: self.path.to_owned(),
                source: io::Error::other("the file grew while it was being copied"),
            }),
            Err(source) => Err(ImageError::Source {
                path: self.path.to_owned(),
                source,
            }),
        }
    }
}

/// The mode a host file gets in a layer: 0755 when any execute bit is set, else 0644.
pub fn normal_file_mode(host_mode: u32) -> u32 {
    if host_mode & 0o111 != 0 { 0o755 } else { 0o644 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(data: &'static [u8]) -> Opener {
        Arc::new(move || Ok(Box::new(io::Cursor::new(data)) as Box<dyn Read>))
    }

    fn plan() -> LayerPlan {
        let mut plan = LayerPlan::new();
        // Added out of order, without parents.
        plan.add(
            "z/last.txt",
            Planned::File {
                mode: 0o644,
                size: 4,
                open: bytes(b"last"),
            },
        );
        plan.add(
            "a/b/c.txt",
            Planned::File {
                mode: 0o755,
                size: 3,
                open: bytes(b"abc"),
            },
        );
        plan.add(
            "a-b",
            Planned::Symlink {
                target: "a/b".to_owned(),
            },
        );
        plan.add(
            &format!("long/{}", "n".repeat(150)),
            Planned::File {
                mode: 0o644,
                size: 0,
                open: bytes(b""),
            },
        );
        plan
    }

    fn write(plan: &LayerPlan, epoch: i64) -> (WrittenLayer, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let cache = LayerCache::open(&dir.path().join("layers")).expect("cache");
        let layer = plan.write(&store, &cache, epoch).expect("write");
        let mut blob = Vec::new();
        store
            .open_blob(&layer.digest)
            .expect("blob")
            .read_to_end(&mut blob)
            .expect("read");
        let tar = std::fs::read(cache.path_of(&layer.diff_id)).expect("uncompressed copy");
        assert_eq!(
            Digest::of(&tar),
            layer.diff_id,
            "the cached tar is the diff_id's"
        );
        (layer, blob)
    }

    #[test]
    fn the_same_plan_gives_the_same_bytes_and_a_fixed_format() {
        let (a, blob) = write(&plan(), 1_700_000_000);
        let (b, _) = write(&plan(), 1_700_000_000);
        assert_eq!(a, b);
        let (c, _) = write(&plan(), 0);
        assert_ne!(a.digest, c.digest, "timestamps come from the epoch");

        // An empty gzip header: no name, mtime 0, OS unknown.
        assert_eq!(&blob[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
        assert_eq!(blob[9], 255);

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
        let mut names = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let header = entry.header();
            assert_eq!(header.uid().expect("uid"), 0);
            assert_eq!(header.gid().expect("gid"), 0);
            assert_eq!(header.mtime().expect("mtime"), 1_700_000_000);
            assert_eq!(header.username().expect("user"), Some(""));
            names.push(entry.path().expect("path").display().to_string());
        }
        // Sorted by path (directories written with a trailing '/'), parents first.
        let long = format!("long/{}", "n".repeat(150));
        assert_eq!(
            names,
            [
                "a/",
                "a-b",
                "a/b/",
                "a/b/c.txt",
                "long/",
                long.as_str(),
                "z/",
                "z/last.txt"
            ]
        );
    }

    #[test]
    fn a_file_that_changes_size_fails_the_write_and_stores_nothing() {
        let mut plan = LayerPlan::new();
        plan.add(
            "grew",
            Planned::File {
                mode: 0o644,
                size: 2,
                open: bytes(b"three"),
            },
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let cache = LayerCache::open(&dir.path().join("layers")).expect("cache");
        let err = plan.write(&store, &cache, 0).expect_err("grew");
        assert!(err.to_string().contains("grew"), "{err}");
        assert!(store.blobs().expect("blobs").is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("layers"))
                .expect("dir")
                .count(),
            0
        );
    }

    #[test]
    fn gzip_members_do_not_depend_on_the_number_of_threads() {
        // 10 MiB of pseudo-random bytes: three members.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let data: Vec<u8> = (0..10 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let compress = |threads| {
            let mut gz = ParallelGz::with_threads(Vec::new(), threads);
            for chunk in data.chunks(100_000) {
                gz.write_all(chunk).expect("write");
            }
            gz.finish().expect("finish")
        };
        let one = compress(1);
        assert_eq!(one, compress(4));
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(one.as_slice())
            .read_to_end(&mut back)
            .expect("gunzip");
        assert!(back == data, "round trip");
        // Nothing in, one empty member out.
        let empty = ParallelGz::with_threads(Vec::new(), 2)
            .finish()
            .expect("finish");
        assert_eq!(&empty[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn a_file_replaces_a_planned_directory_and_its_contents() {
        let mut plan = LayerPlan::new();
        plan.add(
            "d/x",
            Planned::File {
                mode: 0o644,
                size: 0,
                open: bytes(b""),
            },
        );
        plan.add(
            "d",
            Planned::Symlink {
                target: "elsewhere".to_owned(),
            },
        );
        let names: Vec<&str> = plan.entries().map(|(n, _)| n).collect();
        assert_eq!(names, ["d"]);
    }
}
