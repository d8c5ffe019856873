//! The compiled-module cache: native code for a module, keyed by the module's sha256 and
//! the engine's compatibility tag, so that a second run skips Cranelift.
//!
//! An entry is one file, `<sha256>-<tag>.cwasm`: wasmtime's serialized module, then the
//! sha256 of those bytes and an 8-byte magic as a trailer. A loader checks the magic and
//! the digest (through a small buffer, so the check costs no memory; `<entry>.verified`
//! remembers a check of that very file, unchanged since) before handing the file to
//! wasmtime, which maps it instead of copying it: the code and the initial memory image
//! are pages of the file, loaded only where touched. wasmtime in turn checks its own
//! version and settings; anything that fails is logged, recompiled and rewritten, never
//! trusted. Entries are written to a unique temporary name and renamed into place, so a
//! reader never sees half a file, a mapped file is never changed under a running
//! module, and two processes filling the same entry both succeed.
//!
//! An alias (`<sha256 of a name>.alias`, holding a module's sha256) lets a caller that
//! knows a module by a stable name (an image's ID and the program's path in it) find
//! the entry without reading and hashing the module.
#![allow(
    unsafe_code,
    reason = "wasmtime's Module::deserialize is unsafe; see SAFETY below"
)]

use super::Engine;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"CAPSCW02";
const TRAILER_LEN: usize = 32 + MAGIC.len();
const EXTENSION: &str = "cwasm";
const ALIAS_EXTENSION: &str = "alias";
const VERIFIED_EXTENSION: &str = "verified";

/// What the cache did for one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A valid entry was loaded; nothing was compiled.
    Hit,
    /// No entry existed; the module was compiled and stored.
    Miss,
    /// An entry existed but was unusable (the reason says why); it was rebuilt.
    Rebuilt(String),
    /// The cache was not used (disabled, or it could not be opened).
    Bypassed,
}

/// Errors that stop a module from being compiled at all. Failures of the cache itself
/// (unwritable directory, corrupt entry) are not errors: they are logged and bypassed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Cranelift or the validator rejected the module.
    #[error("{0}")]
    Compile(String),
}

/// Number of entries and bytes they take, for `capsule info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
}

/// A directory of compiled modules (cheap to clone: clones share the handle).
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: std::sync::Arc<Dir>,
    path: PathBuf,
}

impl ModuleCache {
    /// Opens (creating if needed) the cache at `path`.
    ///
    /// # Errors
    /// The host's error creating or opening the directory.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = crate::ambient::create_and_open_dir(path)?;
        Ok(Self {
            dir: std::sync::Arc::new(dir),
            path: path.to_owned(),
        })
    }

    /// Where the cache lives, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry file name for a module under an engine.
    pub fn entry_name(engine: &Engine, wasm: &[u8]) -> String {
        format!(
            "{}-{}.{EXTENSION}",
            hex(&Sha256::digest(wasm)),
            engine.compatibility_tag()
        )
    }

    /// Loads the compiled form of `wasm` from the cache, or compiles and stores it.
    ///
    /// # Errors
    /// [`CacheError::Compile`] when the module does not compile. Cache trouble is not an
    /// error: it is logged and the module is compiled anyway.
    pub fn load_or_compile<A: Artifact>(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(A, CacheOutcome), CacheError> {
        self.load_or_compile_told(engine, wasm, &mut || {})
    }

    /// As [`ModuleCache::load_or_compile`], calling `before_compile` when the cache has
    /// no usable entry and the module is about to be compiled (for progress).
    ///
    /// # Errors
    /// As [`ModuleCache::load_or_compile`].
    pub fn load_or_compile_told<A: Artifact>(
        &self,
        engine: &Engine,
        wasm: &[u8],
        before_compile: &mut dyn FnMut(),
    ) -> Result<(A, CacheOutcome), CacheError> {
        let name = Self::entry_name(engine, wasm);
        let outcome = match self.load(engine, &name) {
            Ok(module) => return Ok((module, CacheOutcome::Hit)),
            Err(outcome) => outcome,
        };
        before_compile();
        let module = A::compile(engine, wasm)?;
        match module.serialize() {
            Ok(payload) => {
                if let Err(e) = self.store(&name, payload) {
                    tracing::warn!(entry = %name, error = %e, "could not write module cache entry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not serialize compiled module"),
        }
        Ok((module, outcome))
    }

    /// The module an alias names, when the alias and its entry under `engine` are both
    /// present and sound; `None` otherwise (then read the module and call
    /// [`ModuleCache::load_or_compile`] and [`ModuleCache::set_alias`]).
    pub fn load_alias<A: Artifact>(&self, engine: &Engine, alias: &str) -> Option<A> {
        let file = alias_file(alias);
        let text = self.dir.read_to_string(&file).ok()?;
        // `DIGEST` names a module, `DIGEST component` a component.
        let (digest, component) = match text.trim().split_once(' ') {
            Some((digest, "component")) => (digest, true),
            Some(_) => return None,
            None => (text.trim(), false),
        };
        if component != A::COMPONENT {
            return None;
        }
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            tracing::warn!(alias = %file, "module cache alias unusable; ignoring it");
            return None;
        }
        let name = format!(
            "{}-{}.{EXTENSION}",
            digest.to_ascii_lowercase(),
            engine.compatibility_tag()
        );
        self.load(engine, &name).ok()
    }

    /// Records that `alias` names the module `wasm` (written to a temporary file and
    /// renamed; a failure is logged, never an error).
    pub fn set_alias(&self, alias: &str, wasm: &[u8]) {
        let file = alias_file(alias);
        let mut digest = hex(&Sha256::digest(wasm));
        if crate::module::kind_of(wasm) == Some(Ok(crate::module::WasmKind::Component)) {
            digest.push_str(" component");
        }
        if let Err(e) = self.write_atomically(&file, digest.as_bytes()) {
            tracing::warn!(alias = %file, error = %e, "could not write module cache alias");
        }
    }

    /// Loads an entry; on failure, what the cache will report after rebuilding it.
    fn load<A: Artifact>(&self, engine: &Engine, name: &str) -> Result<A, CacheOutcome> {
        match self.dir.open(name) {
            Ok(file) => match self.load_entry(engine, name, file.into_std()) {
                Ok(module) => {
                    tracing::debug!(entry = %name, "module cache hit");
                    Ok(module)
                }
                Err(reason) => {
                    tracing::warn!(entry = %name, %reason, "module cache entry unusable; recompiling");
                    Err(CacheOutcome::Rebuilt(reason))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(entry = %name, "module cache miss");
                Err(CacheOutcome::Miss)
            }
            Err(e) => {
                tracing::warn!(entry = %name, error = %e, "module cache unreadable; recompiling");
                Err(CacheOutcome::Rebuilt(format!("unreadable: {e}")))
            }
        }
    }

    /// Checks an entry's trailer and (unless this very file was checked before) its
    /// digest, then hands the file to wasmtime. Hashing a large entry costs a good part
    /// of a start-up (CPython's is 245 MB), so a check is remembered in
    /// `<entry>.verified` as the file's identity (device, inode, size, modification and
    /// change times): a file rewritten in place or replaced is checked again.
    fn load_entry<A: Artifact>(
        &self,
        engine: &Engine,
        name: &str,
        file: std::fs::File,
    ) -> Result<A, String> {
        let meta = file.metadata().map_err(|e| format!("unreadable: {e}"))?;
        let identity = file_identity(&meta);
        let verified = identity.as_ref().is_some_and(|id| {
            self.dir.read_to_string(check_record(name)).ok().as_ref() == Some(id)
        });
        let module = load_entry(engine, file, meta.len(), !verified)?;
        if !verified && let Some(id) = identity {
            self.record_check(name, &id);
        }
        Ok(module)
    }

    /// Writes an entry, and the record of its check: the bytes were just made here, so
    /// the first load need not hash them again (CPython's entry is 245 MB).
    fn store(&self, name: &str, mut payload: Vec<u8>) -> io::Result<()> {
        let digest = Sha256::digest(&payload);
        payload.extend_from_slice(&digest);
        payload.extend_from_slice(MAGIC);
        self.write_atomically(name, &payload)?;
        let identity = self
            .dir
            .open(name)
            .and_then(|file| file.into_std().metadata())
            .ok()
            .and_then(|meta| file_identity(&meta));
        if let Some(id) = identity {
            self.record_check(name, &id);
        }
        Ok(())
    }

    /// Remembers that the entry `name`, the file of identity `id`, was checked (a
    /// failure is logged: the next load checks it again).
    fn record_check(&self, name: &str, id: &str) {
        if let Err(e) = self.write_atomically(&check_record(name), id.as_bytes()) {
            tracing::debug!(entry = %name, error = %e, "could not record the entry's check");
        }
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let result = self
            .dir
            .write(&tmp, bytes)
            .and_then(|()| self.dir.rename(&tmp, &self.dir, name));
        if result.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        result
    }

    /// Checks every entry's header and payload digest (`system check`; wasmtime's own
    /// version check still happens on load) and removes those that fail, which the next
    /// run recompiles. Returns the names removed and how many entries were checked.
    pub fn check(&self) -> (Vec<String>, usize) {
        let mut removed = Vec::new();
        let mut checked = 0;
        let Ok(entries) = self.dir.entries() else {
            return (removed, 0);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(EXTENSION) {
                continue;
            }
            checked += 1;
            let sound = self
                .dir
                .open(&name)
                .map(cap_std::fs::File::into_std)
                .is_ok_and(|file| check_entry(file).is_ok());
            if !sound && self.dir.remove_file(&name).is_ok() {
                removed.push(name);
            }
        }
        removed.sort();
        (removed, checked)
    }

    /// Counts entries and their bytes.
    ///
    /// # Errors
    /// The host's error listing the directory.
    pub fn stats(&self) -> io::Result<CacheStats> {
        let mut stats = CacheStats::default();
        for entry in self.dir.entries()? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(EXTENSION) {
                continue;
            }
            stats.entries += 1;
            stats.bytes += entry.metadata()?.len();
        }
        Ok(stats)
    }
}

/// Compiles without the cache.
///
/// # Errors
/// [`CacheError::Compile`] with wasmtime's reason.
pub fn compile(engine: &Engine, wasm: &[u8]) -> Result<wasmtime::Module, CacheError> {
    <wasmtime::Module as Artifact>::compile(engine, wasm)
}

/// `component`, compiled by another engine, loaded into `engine` (one that differs only
/// in how it allocates instances, say), without compiling it again.
///
/// # Errors
/// wasmtime's reason when the engines' compiled code is not compatible.
pub fn transfer_component(
    component: &wasmtime::component::Component,
    engine: &Engine,
) -> Result<wasmtime::component::Component, String> {
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    // SAFETY: the bytes are wasmtime's own serialization of a component this process
    // compiled and holds; wasmtime checks that they fit `engine`.
    unsafe { wasmtime::component::Component::deserialize(engine.wasmtime(), &bytes) }
        .map_err(|e| format!("{e:#}"))
}

/// What the cache holds compiled: a core module or a component. Both serialize to
/// wasmtime's own format; an entry's name is the digest of the wasm it came from, so
/// the two kinds never share one.
pub trait Artifact: Sized {
    /// Whether this is the component kind.
    const COMPONENT: bool;

    /// Compiles `wasm`.
    ///
    /// # Errors
    /// [`CacheError::Compile`] with wasmtime's reason.
    fn compile(engine: &Engine, wasm: &[u8]) -> Result<Self, CacheError>;

    /// wasmtime's serialized form.
    ///
    /// # Errors
    /// wasmtime's error.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;

    /// Loads a serialized artifact from `file` (the payload, then a trailer wasmtime's
    /// reader does not look at).
    ///
    /// # Safety
    /// As `wasmtime::Module::deserialize_open_file`: the file must be wasmtime's own
    /// output and stay unchanged while the artifact lives.
    ///
    /// # Errors
    /// wasmtime's error for a file of another version or settings.
    unsafe fn deserialize_open_file(engine: &Engine, file: std::fs::File)
    -> wasmtime::Result<Self>;
}

impl Artifact for wasmtime::Module {
    const COMPONENT: bool = false;

    fn compile(engine: &Engine, wasm: &[u8]) -> Result<Self, CacheError> {
        wasmtime::Module::new(engine.wasmtime(), wasm)
            .map_err(|e| CacheError::Compile(format!("{e:#}")))
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::Module::serialize(self)
    }

    unsafe fn deserialize_open_file(
        engine: &Engine,
        file: std::fs::File,
    ) -> wasmtime::Result<Self> {
        // SAFETY: the caller's promise, as this function's.
        unsafe { wasmtime::Module::deserialize_open_file(engine.wasmtime(), file) }
    }
}

impl Artifact for wasmtime::component::Component {
    const COMPONENT: bool = true;

    fn compile(engine: &Engine, wasm: &[u8]) -> Result<Self, CacheError> {
        wasmtime::component::Component::new(engine.wasmtime(), wasm)
            .map_err(|e| CacheError::Compile(format!("{e:#}")))
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::component::Component::serialize(self)
    }

    unsafe fn deserialize_open_file(
        engine: &Engine,
        mut file: std::fs::File,
    ) -> wasmtime::Result<Self> {
        // wasmtime maps components only from a path; read the entry instead (a copy
        // in memory, of what is at most a few tens of megabytes).
        use std::io::{Read, Seek};
        let mut bytes = Vec::new();
        file.rewind()?;
        file.read_to_end(&mut bytes)?;
        // SAFETY: the caller's promise, as this function's; the bytes are a copy, so
        // they cannot change while the component lives.
        unsafe { wasmtime::component::Component::deserialize(engine.wasmtime(), &bytes) }
    }
}

/// Compares the sha256 of the first `payload_len` bytes with `digest`, through a small
/// buffer: the payload is never all in memory.
fn check_payload(file: &mut std::fs::File, payload_len: u64, digest: &[u8]) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("unreadable: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = payload_len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        file.read_exact(&mut buf[..want])
            .map_err(|e| format!("unreadable: {e}"))?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    if hasher.finalize().as_slice() != digest {
        return Err("corrupt (digest mismatch)".to_owned());
    }
    Ok(())
}

/// The file that remembers the check of the entry `name`.
fn check_record(name: &str) -> String {
    format!("{name}.{VERIFIED_EXTENSION}")
}

fn alias_file(alias: &str) -> String {
    format!(
        "{}.{ALIAS_EXTENSION}",
        hex(&Sha256::digest(alias.as_bytes()))
    )
}

/// What identifies one file's contents as long as nobody rewrites it (Unix only).
#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    Some(format!(
        "{} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

#[cfg(not(unix))]
fn file_identity(_meta: &std::fs::Metadata) -> Option<String> {
    None
}

/// Reads an entry's trailer: the payload's length and its sha256.
fn read_trailer(file: &mut std::fs::File, len: u64) -> Result<(u64, [u8; 32]), String> {
    use std::io::{Read, Seek, SeekFrom};
    let bad_trailer = || "not a Capsule cache entry (bad trailer)".to_owned();
    let payload_len = len
        .checked_sub(TRAILER_LEN as u64)
        .ok_or_else(bad_trailer)?;
    let mut trailer = [0u8; TRAILER_LEN];
    file.seek(SeekFrom::Start(payload_len))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(|e| format!("unreadable: {e}"))?;
    let (digest, magic) = trailer.split_at(32);
    if magic != MAGIC {
        return Err(bad_trailer());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest);
    Ok((payload_len, out))
}

/// Checks an entry's trailer and the digest of its payload (as a load does the first
/// time), without handing it to wasmtime.
fn check_entry(mut file: std::fs::File) -> Result<(), String> {
    let len = file
        .metadata()
        .map_err(|e| format!("unreadable: {e}"))?
        .len();
    let (payload_len, digest) = read_trailer(&mut file, len)?;
    check_payload(&mut file, payload_len, &digest)
}

/// Checks an entry's trailer and, if `check_digest`, its digest, then hands the file to
/// wasmtime.
fn load_entry<A: Artifact>(
    engine: &Engine,
    mut file: std::fs::File,
    len: u64,
    check_digest: bool,
) -> Result<A, String> {
    let (payload_len, digest) = read_trailer(&mut file, len)?;
    if check_digest {
        check_payload(&mut file, payload_len, &digest)?;
    }
    // SAFETY: `Module::deserialize_open_file` trusts the file to be wasmtime's own output
    // and to stay unchanged while the module lives. This file was written by
    // `Module::serialize` (plus the trailer, which wasmtime's ELF reader does not look
    // at) into the user's own Capsule home, and its sha256 matches what was written
    // (checked just above, or by an earlier load of this very file, unchanged since:
    // same inode, size and times); entries are only ever replaced by renaming a new file over the
    // name, never rewritten in place, so the mapped file does not change. wasmtime checks
    // that it was produced by this wasmtime version with compatible settings.
    unsafe { A::deserialize_open_file(engine, file) }.map_err(|e| format!("incompatible: {e:#}"))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
