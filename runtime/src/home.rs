//! The Capsule home: where Capsule keeps its state.
//!
//! ```text
//! store/               the OCI image layout: images (the source of truth)
//! containers/ID/       each container's writable layer and state
//! cache/modules/       compiled modules            (derived, safe to delete)
//! cache/layers/        layers, uncompressed, each with its size beside it
//!                      (derived from store blobs, checked before use)
//! cache/layer-index/   merged indexes of layer chains (derived)
//! cache/build/         the build cache: what each step produced
//! tmp/                 work in progress
//! ```
//!
//! `CAPSULE_HOME` names it; otherwise it is `capsule` under the platform's data directory
//! (`~/.local/share/capsule` on Linux, `~/Library/Application Support/capsule` on macOS,
//! `%APPDATA%\capsule` on Windows).

use std::path::{Path, PathBuf};

/// Environment variable that overrides the home's location.
pub const HOME_ENV: &str = "CAPSULE_HOME";

/// Environment variable that puts the compiled-module cache somewhere else than the
/// home (compiled code depends only on the module and the engine, so homes may share it).
pub const MODULE_CACHE_ENV: &str = "CAPSULE_MODULE_CACHE";

/// Errors locating the home.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// Neither `CAPSULE_HOME` nor a platform data directory is available.
    #[error("cannot find a place for Capsule's data: set {HOME_ENV} to a directory")]
    NoDataDir,
    /// `CAPSULE_HOME` is set but empty.
    #[error("{HOME_ENV} is set but empty: set it to a directory or unset it")]
    Empty,
}

/// The location of a Capsule home and the layout below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home named by `CAPSULE_HOME`, or the platform default.
    ///
    /// # Errors
    /// [`HomeError`] when neither is available.
    pub fn from_env() -> Result<Self, HomeError> {
        match crate::ambient::host_env_os(HOME_ENV) {
            Some(value) if value.is_empty() => Err(HomeError::Empty),
            Some(value) => Ok(Self::at(PathBuf::from(value))),
            None => crate::ambient::data_dir()
                .map(|dir| Self::at(dir.join("capsule")))
                .ok_or(HomeError::NoDataDir),
        }
    }

    /// A home at an explicit path (it is created when first written).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The home's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where merged layer indexes are saved.
    pub fn layer_index_dir(&self) -> PathBuf {
        self.root.join("cache").join("layer-index")
    }

    /// The image store: an OCI image layout, the single source of truth for images.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Where each layer is kept uncompressed, named by its diff_id: derived from the
    /// store's blobs (and rebuilt from them when missing).
    pub fn layer_tar_dir(&self) -> PathBuf {
        self.root.join("cache").join("layers")
    }

    /// Where the build cache keeps what each step produced, by cache key.
    pub fn build_cache_dir(&self) -> PathBuf {
        self.root.join("cache").join("build")
    }

    /// Where containers keep their writable layers and state.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Scratch space for work in progress (build steps); removed when done.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where compiled modules are cached: `$CAPSULE_MODULE_CACHE` when it is set and
    /// not empty (a directory several homes share, such as the tests'), else under the
    /// home.
    pub fn module_cache_dir(&self) -> PathBuf {
        match crate::ambient::host_env_os(MODULE_CACHE_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => self.root.join("cache").join("modules"),
        }
    }
}

/// What a directory of the home holds (`system df`, `builder prune`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirUsage {
    /// Bytes of the files anywhere below it.
    pub bytes: u64,
    /// Entries at its top.
    pub entries: usize,
}

/// What a host directory holds (nothing when it does not exist); entries that cannot
/// be read are not counted.
pub fn dir_usage(path: &Path) -> DirUsage {
    let Ok(dir) = crate::ambient::open_dir(path) else {
        return DirUsage::default();
    };
    let mut usage = DirUsage::default();
    let mut stack = vec![(dir, true)];
    while let Some((dir, is_top)) = stack.pop() {
        let Ok(entries) = dir.entries() else { continue };
        for entry in entries.flatten() {
            if is_top {
                usage.entries += 1;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if let Ok(sub) = entry.open_dir() {
                    stack.push((sub, false));
                }
            } else {
                usage.bytes += meta.len();
            }
        }
    }
    usage
}
