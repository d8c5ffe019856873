//! The builder (Docker's name for its image-building subsystem), behind `capsule build`:
//! a recipe in Dockerfile syntax ([`recipe`]) over a build context ([`context`]) becomes
//! an image, step by step, each step cached by key ([`cache`]).
//!
//! - `FROM` starts a stage from an image, an earlier stage or `scratch`.
//! - `COPY`/`ADD` write a layer of context files (or of another stage's files,
//!   `--from`), reproducibly ([`crate::image::layer_writer`]).
//! - `RUN ["/prog.wasm", ...]` runs a wasm program of the image being built, inside the
//!   sandbox, over the filesystem built so far; what it changes is the step's layer.
//! - Everything else changes the config and leaves an empty-layer history entry.
//!
//! The executor (`executor`) walks the stages and keys, caches and records each step;
//! one file per instruction family says what a step does: `copy` (COPY/ADD), `run`
//! (RUN, with `workdir` for its work directories), `metadata` (ARG, ENV, LABEL, WORKDIR,
//! EXPOSE, VOLUME, USER, STOPSIGNAL, SHELL, HEALTHCHECK, ENTRYPOINT, CMD); `image_config`
//! turns an image's config into a stage's state and the last state into the image.

pub mod cache;
pub mod context;
mod copy;
mod error;
mod executor;
pub mod ignore;
mod image_config;
mod metadata;
pub mod pattern;
pub mod recipe;
mod run;
mod run_mounts;
mod workdir;

pub use error::BuildError;
pub use image_config::SHELL_LABEL;

use crate::engine::FeatureSet;
use crate::home::Home;
use crate::image::reference::Reference;
use crate::image::{Image, ImageError, Images};
use crate::store::Digest;
use cache::BuildCache;
use context::Context;
use executor::Executor;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;
use workdir::TmpDir;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The recipe (`-f`); default `Capsulefile`, then `Dockerfile`, in the context.
    pub recipe: Option<PathBuf>,
    /// Names for the image.
    pub tags: Vec<Reference>,
    /// `--build-arg K=V`.
    pub build_args: Vec<(String, String)>,
    /// Rebuild every step.
    pub no_cache: bool,
    /// Stop after this stage.
    pub target: Option<String>,
    /// Timestamp of everything written (SOURCE_DATE_EPOCH).
    pub epoch: i64,
    /// WebAssembly features for RUN steps.
    pub features: FeatureSet,
}

/// How a step ended.
#[derive(Debug, Clone)]
pub enum StepOutcome {
    /// Reused from the cache.
    Cached,
    /// Done now, and why the cache could not serve it.
    Built { elapsed: Duration, reason: String },
    /// A `FROM`: where the stage starts.
    Base(String),
}

/// Receives the build's progress (the CLI draws it).
pub trait Observer {
    fn step_start(&mut self, number: usize, total: usize, text: &str);
    fn step_end(&mut self, number: usize, total: usize, text: &str, outcome: &StepOutcome);
    fn warn(&mut self, message: &str);
    /// Runs `f` (a RUN step's guest, which writes to the terminal) with any spinner
    /// out of the way.
    fn guest_output(&mut self, f: &mut dyn FnMut());
}

/// What the build made.
#[derive(Debug)]
pub struct Built {
    pub image: Image,
    pub steps: usize,
    pub cached: usize,
}

/// Builds an image.
///
/// # Errors
/// [`BuildError`]: recipe errors name file, line and column; nothing is named (and no
/// image is visible) unless the whole build succeeds.
pub fn build(
    home: &Home,
    images: &Images,
    options: &BuildOptions,
    observer: &mut dyn Observer,
) -> Result<Built, BuildError> {
    let context = Context::open(&options.context)?;
    // Hashes of this context's files from earlier builds (reused when unchanged).
    let hashes_dir = home.build_cache_dir().join("hashes");
    let hashes_name = format!(
        "{}.json",
        Digest::of(
            crate::ambient::canonicalize(&options.context)
                .unwrap_or_else(|_| options.context.clone())
                .display()
                .to_string()
                .as_bytes()
        )
        .hex()
    );
    if let Ok(text) = crate::ambient::read_text(&hashes_dir.join(&hashes_name)) {
        context.load_hashes(&text);
    }
    let (file, text) = read_recipe(options)?;
    let recipe = recipe::parse(&file, &text)?;
    let cache = BuildCache::open(&home.build_cache_dir()).map_err(|e| BuildError::Cache {
        what: "cannot open the build cache",
        source: e.into(),
    })?;
    let recipe_id = Digest::of(
        format!(
            "{}\0{file}\0{}",
            crate::ambient::canonicalize(&options.context)
                .unwrap_or_else(|_| options.context.clone())
                .display(),
            options.target.as_deref().unwrap_or("")
        )
        .as_bytes(),
    );
    let previous = cache.last_build(recipe_id.hex());
    TmpDir::clean_stale(&home.tmp_dir());
    let _gc = images.store().gc_lock(false).map_err(ImageError::from)?;
    let mut executor = Executor {
        home,
        images,
        options,
        observer,
        file,
        context,
        cache,
        global_args: BTreeMap::new(),
        used_args: HashSet::new(),
        stages: Vec::new(),
        records: Vec::new(),
        previous,
        total: 0,
        number: 0,
        cached: 0,
        rebuilt: None,
        runner: None,
        tmp: None,
    };
    let result = executor.run(&recipe.instructions);
    if let Some(bytes) = executor.context.hashes_to_save()
        && let Ok(dir) = crate::ambient::create_and_open_dir(&hashes_dir)
    {
        let _ = crate::store::write_atomically(&dir, &hashes_name, &bytes);
    }
    // Keep what ran for the next build's explanations, even when this one failed.
    let _ = executor
        .cache
        .save_build(recipe_id.hex(), &executor.records);
    let image = result?;
    for tag in &options.tags {
        images.set_name(&image, Some(tag))?;
    }
    if options.tags.is_empty() {
        images.set_name(&image, None)?;
    }
    let unused: Vec<&str> = options
        .build_args
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !executor.used_args.contains(*k))
        .collect();
    if !unused.is_empty() {
        executor.observer.warn(&format!(
            "build arguments not consumed by any ARG: {}",
            unused.join(", ")
        ));
    }
    Ok(Built {
        image,
        steps: executor.total,
        cached: executor.cached,
    })
}

fn read_recipe(options: &BuildOptions) -> Result<(String, String), BuildError> {
    let candidates: Vec<PathBuf> = match &options.recipe {
        Some(path) => vec![path.clone()],
        None => vec![
            options.context.join("Capsulefile"),
            options.context.join("Dockerfile"),
        ],
    };
    for path in &candidates {
        match crate::ambient::read_file(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| BuildError::NotUtf8 { path: path.clone() })?;
                return Ok((path.display().to_string(), text));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && options.recipe.is_none() => {}
            Err(e) => {
                return Err(BuildError::ReadRecipe {
                    path: path.clone(),
                    source: e,
                });
            }
        }
    }
    Err(BuildError::NoRecipe {
        context: options.context.clone(),
    })
}
