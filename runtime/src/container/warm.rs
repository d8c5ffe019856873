//! An image's program compiled when the image arrives (`build`, `load`, `pull`), so
//! that its first `run` does not wait for Cranelift.
//!
//! The program is the one `capsule run IMAGE` starts (ENTRYPOINT + CMD through PATH and
//! `#!` lines, exactly as [`super::prepare`] and [`Runner::load_in_root`] find it), with
//! the engine the image's labels ask for, into the home's module cache under the same
//! names a run looks for: a run after it finds the module by the image's ID and the
//! program's path, without reading it. CPython's 99 MB module takes 34 s of two cores to
//! compile; that wait now comes with the verb that brought the image, with progress,
//! once per module and machine (an image built `FROM` another shares its module and
//! finds it by content).
//!
//! Why not a faster first tier: wasmtime 48's baseline compiler (Winch) refuses the
//! exceptions proposal CPython's module is built with, and Cranelift's fastest settings
//! (no optimisation, the single-pass register allocator) still take 18 s for it and make
//! a 70% larger, slower artifact. Why not native code shipped in the image (as runwasi
//! can): loading compiled code trusts it as native code, outside the sandbox, and an
//! image from a registry is hostile until checked; wasm can be validated, native code
//! cannot.

use super::prepare::{ImageCommand, Overrides, PrepareError};
use super::runner::Runner;
use crate::engine::ModuleCache;
use crate::fs::rootfs::RootFs;
use crate::home::Home;
use crate::image::{Image, Images};
use crate::spec::GuestPath;
use std::time::{Duration, Instant};

/// What [`warm`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warmed {
    /// The module the image runs, as found in it.
    pub program: GuestPath,
    /// How long Cranelift took; `None` when the cache already held it.
    pub compiled: Option<Duration>,
}

/// Why an image's program was not compiled ahead (its run will say the same).
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error(transparent)]
    Command(#[from] PrepareError),
    #[error("{0}")]
    Layers(String),
    #[error("{0}")]
    Program(#[from] crate::exec::RunError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("the module cache {path} cannot be opened: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Compiles the program `capsule run IMAGE` would start into the home's module cache,
/// unless it is there already. `before_compile` is told the program's path and size
/// just before Cranelift starts (for progress). `Ok(None)`: the image names no command.
///
/// # Errors
/// [`WarmError`] when the command, its program or its layers cannot be found, or the
/// program does not compile.
pub fn warm(
    home: &Home,
    images: &Images,
    image: &Image,
    name: &str,
    before_compile: &mut dyn FnMut(&GuestPath, u64),
) -> Result<Option<Warmed>, WarmError> {
    let command = match ImageCommand::of(image, name, &Overrides::default()) {
        Ok(command) => command,
        Err(PrepareError::NoCommand(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let spec = command
        .spec(home, images, image)
        .map_err(|e| WarmError::Layers(e.to_string()))?;
    let root = RootFs::of_image(&spec).map_err(|e| WarmError::Layers(e.to_string()))?;
    let cache_dir = home.module_cache_dir();
    let cache = ModuleCache::open(&cache_dir).map_err(|source| WarmError::Cache {
        path: cache_dir.display().to_string(),
        source,
    })?;
    let runner = Runner::with_features(command.features, Some(cache))?;
    let mut started = None;
    let loaded = runner.load_in_root(
        root.vfs(),
        &spec,
        &command.program_path,
        Some(&image.id().to_string()),
        &mut |path, size| {
            before_compile(path, size);
            started = Some(Instant::now());
        },
    )?;
    Ok(Some(Warmed {
        program: loaded.path,
        compiled: started.map(|at| at.elapsed()),
    }))
}
