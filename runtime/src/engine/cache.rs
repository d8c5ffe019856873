//! The compiled-module cache: native code for a module, keyed by the module's sha256 and
//! the engine's compatibility tag, so that a second run skips Cranelift.
//!
//! An entry is one file, `<sha256>-<tag>.cwasm`: an 8-byte magic, the sha256 of the
//! payload, then wasmtime's serialized module. A loader checks the magic and the digest
//! before handing the payload to wasmtime, and wasmtime checks its own version and
//! settings; anything that fails is logged, recompiled and rewritten, never trusted.
//! Entries are written to a unique temporary name and renamed into place, so a reader
//! never sees half a file and two processes filling the same entry both succeed.
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

const MAGIC: &[u8; 8] = b"CAPSCW01";
const HEADER_LEN: usize = MAGIC.len() + 32;
const EXTENSION: &str = "cwasm";

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

/// A directory of compiled modules.
#[derive(Debug)]
pub struct ModuleCache {
    dir: Dir,
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
            dir,
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
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(wasmtime::Module, CacheOutcome), CacheError> {
        let name = Self::entry_name(engine, wasm);
        let outcome = match self.dir.read(&name) {
            Ok(bytes) => match load_entry(engine, &bytes) {
                Ok(module) => {
                    tracing::debug!(entry = %name, "module cache hit");
                    return Ok((module, CacheOutcome::Hit));
                }
                Err(reason) => {
                    tracing::warn!(entry = %name, %reason, "module cache entry unusable; recompiling");
                    CacheOutcome::Rebuilt(reason)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(entry = %name, "module cache miss");
                CacheOutcome::Miss
            }
            Err(e) => {
                tracing::warn!(entry = %name, error = %e, "module cache unreadable; recompiling");
                CacheOutcome::Rebuilt(format!("unreadable: {e}"))
            }
        };
        let module = compile(engine, wasm)?;
        match module.serialize() {
            Ok(payload) => {
                if let Err(e) = self.store(&name, &payload) {
                    tracing::warn!(entry = %name, error = %e, "could not write module cache entry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not serialize compiled module"),
        }
        Ok((module, outcome))
    }

    fn store(&self, name: &str, payload: &[u8]) -> io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&Sha256::digest(payload));
        bytes.extend_from_slice(payload);
        let result = self
            .dir
            .write(&tmp, &bytes)
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
            let sound = self.dir.read(&name).is_ok_and(|bytes| {
                bytes.len() >= HEADER_LEN
                    && &bytes[..MAGIC.len()] == MAGIC
                    && Sha256::digest(&bytes[HEADER_LEN..]).as_slice()
                        == &bytes[MAGIC.len()..HEADER_LEN]
            });
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
    wasmtime::Module::new(engine.wasmtime(), wasm)
        .map_err(|e| CacheError::Compile(format!("{e:#}")))
}

fn load_entry(engine: &Engine, bytes: &[u8]) -> Result<wasmtime::Module, String> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a Capsule cache entry (bad header)".to_owned());
    }
    let (digest, payload) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != digest {
        return Err("corrupt (digest mismatch)".to_owned());
    }
    // SAFETY: `Module::deserialize` trusts its input to be wasmtime's own output. This
    // payload was written by `Module::serialize` into the user's own Capsule home and its
    // sha256 (checked just above) matches what was written; wasmtime in turn checks that
    // it was produced by this wasmtime version with compatible settings.
    unsafe { wasmtime::Module::deserialize(engine.wasmtime(), payload) }
        .map_err(|e| format!("incompatible: {e:#}"))
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
