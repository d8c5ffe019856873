//! The build cache, like Docker's: each step's key is its parent's key plus the
//! instruction plus, for `COPY`/`ADD`, the content and metadata of its inputs; the
//! state a step produced (layers and config) is kept by key. Beyond Docker, each
//! build's step records are kept per recipe, so that a miss can say why: which file,
//! argument or instruction changed.

use super::error::BuildError;
use crate::home::{Home, dir_usage};
use crate::image::{ImageError, Images};
use crate::store::Digest;
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A layer of a build state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub diff_id: String,
}

/// The runtime configuration being built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecConfig {
    pub env: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub exposed: Vec<String>,
    pub volumes: Vec<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub shell: Option<Vec<String>>,
}

impl ExecConfig {
    /// Sets an environment variable, keeping the order of first definition.
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.env.push((key.to_owned(), value.to_owned())),
        }
    }

    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One history entry of the image being built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub created_by: String,
    pub empty_layer: bool,
}

/// What a stage looks like after a step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub layers: Vec<CachedLayer>,
    pub config: ExecConfig,
    pub history: Vec<HistoryEntry>,
}

/// A step of the last build of a recipe, kept to explain the next build's misses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub stage: usize,
    pub index: usize,
    /// The instruction after expansion.
    pub text: String,
    pub parent: String,
    pub key: String,
    /// Input name → content digest (files of a COPY, build arguments of a RUN).
    pub inputs: BTreeMap<String, String>,
}

/// The cache directory.
#[derive(Debug)]
pub struct BuildCache {
    dir: Dir,
}

impl BuildCache {
    /// Opens (creating) the cache.
    ///
    /// # Errors
    /// The host's error.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let dir = crate::ambient::create_and_open_dir(path)?;
        dir.create_dir_all("steps")?;
        dir.create_dir_all("recipes")?;
        Ok(Self { dir })
    }

    /// The state a step with this key produced, if cached.
    pub fn get(&self, key: &Digest) -> Option<State> {
        let text = self
            .dir
            .read_to_string(format!("steps/{}.json", key.hex()))
            .ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records what a step produced.
    ///
    /// # Errors
    /// The host's error.
    pub fn put(&self, key: &Digest, state: &State) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        let steps = self.dir.open_dir("steps")?;
        crate::store::write_atomically(&steps, &format!("{}.json", key.hex()), &bytes)
    }

    /// The step records of the last build of a recipe.
    pub fn last_build(&self, recipe_id: &str) -> Vec<StepRecord> {
        self.dir
            .read_to_string(format!("recipes/{recipe_id}.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Removes step and recipe records that do not parse (`system check`; a build
    /// treats them as misses anyway). Returns the files removed and how many were
    /// checked.
    pub fn check(&self) -> (Vec<String>, usize) {
        let mut removed = Vec::new();
        let mut checked = 0;
        for (sub, step) in [("steps", true), ("recipes", false)] {
            let Ok(dir) = self.dir.open_dir(sub) else {
                continue;
            };
            let Ok(entries) = dir.entries() else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".json") {
                    continue;
                }
                checked += 1;
                let sound = dir.read_to_string(&name).is_ok_and(|text| {
                    if step {
                        serde_json::from_str::<State>(&text).is_ok()
                    } else {
                        serde_json::from_str::<Vec<StepRecord>>(&text).is_ok()
                    }
                });
                if !sound && dir.remove_file(&name).is_ok() {
                    removed.push(format!("{sub}/{name}"));
                }
            }
        }
        removed.sort();
        (removed, checked)
    }

    /// Records this build's steps for the next one.
    ///
    /// # Errors
    /// The host's error.
    pub fn save_build(&self, recipe_id: &str, steps: &[StepRecord]) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(steps).map_err(std::io::Error::other)?;
        let recipes = self.dir.open_dir("recipes")?;
        crate::store::write_atomically(&recipes, &format!("{recipe_id}.json"), &bytes)
    }
}

/// What the build cache takes (`system df`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Cached steps.
    pub steps: usize,
    /// Bytes of the cache's records and of the uncompressed layers it keeps.
    pub bytes: u64,
}

/// What the build cache of a home takes; the uncompressed layer cache counts as build
/// cache, as in `docker system df`.
pub fn usage(home: &Home, images: &Images) -> CacheUsage {
    let dir = home.build_cache_dir();
    CacheUsage {
        steps: dir_usage(&dir.join("steps")).entries,
        bytes: dir_usage(&dir).bytes + images.layer_cache().size(),
    }
}

/// `builder prune`: forgets every build step (the next build rebuilds them) and frees
/// the layers only the build cache used; returns the bytes freed. Waits for running
/// builds, which hold the store's GC lock shared.
///
/// # Errors
/// [`BuildError::Prune`] when the cache cannot be removed; [`BuildError::Image`] from
/// the lock or garbage collection.
pub fn prune(home: &Home, images: &Images) -> Result<u64, BuildError> {
    let cache = home.build_cache_dir();
    let bytes = dir_usage(&cache).bytes;
    {
        let _lock = images.store().gc_lock(true).map_err(ImageError::from)?;
        if crate::ambient::is_dir(&cache) {
            crate::ambient::remove_dir_all(&cache).map_err(|source| BuildError::Prune {
                path: cache,
                source,
            })?;
        }
    }
    let freed = images.collect_garbage(true)?.unwrap_or(0);
    Ok(bytes + freed)
}

/// Why a step missed the cache, compared with the same step of the last build.
pub fn explain_miss(
    previous: Option<&StepRecord>,
    current: &StepRecord,
    parent_rebuilt: Option<&str>,
    no_cache: bool,
) -> String {
    if no_cache {
        return "--no-cache".to_owned();
    }
    let Some(previous) = previous else {
        return "first build of this step".to_owned();
    };
    if let Some(step) = parent_rebuilt {
        return format!("an earlier step changed ({step})");
    }
    if previous.text != current.text {
        return format!("instruction changed (was: {})", previous.text);
    }
    if previous.parent != current.parent {
        return "the steps before it changed".to_owned();
    }
    let mut changes = Vec::new();
    for (name, digest) in &current.inputs {
        match previous.inputs.get(name) {
            None => changes.push(format!("{name} added")),
            Some(old) if old != digest => changes.push(format!("{name} changed")),
            Some(_) => {}
        }
    }
    for name in previous.inputs.keys() {
        if !current.inputs.contains_key(name) {
            changes.push(format!("{name} removed"));
        }
    }
    if changes.is_empty() {
        return if previous.key == current.key {
            "its cached result is gone (pruned)".to_owned()
        } else {
            "its inputs changed".to_owned()
        };
    }
    let more = changes.len().saturating_sub(3);
    changes.truncate(3);
    let mut text = changes.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}
