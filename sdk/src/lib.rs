//! Embed Capsule in a host application: run sandboxed WebAssembly (WASI preview1)
//! programs and images, with captured or streamed stdio, mounts, environment and
//! limits, and manage containers with Docker's lifecycle.
//!
//! A [`Capsule`] owns an engine and, usually, a Capsule home (its image store, volumes,
//! containers and compiled-module cache, shared with the `capsule` binary). An
//! in-memory one ([`Capsule::in_memory`]) writes nothing to disk and runs modules only.
//!
//! Run a module: compile it once, run it as often as needed; every run is a fresh
//! sandbox with its own arguments, environment, mounts and stdio.
//!
//! ```
//! use capsule_sdk::{Capsule, ExitStatus, RunOptions};
//!
//! # fn main() -> Result<(), capsule_sdk::Error> {
//! let capsule = Capsule::in_memory()?;
//! let module = capsule.module_from_bytes("exit-3", br#"
//!     (module
//!       (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
//!       (memory (export "memory") 1)
//!       (func (export "_start") (call $exit (i32.const 3))))
//! "#)?;
//! let out = capsule.run(&module, RunOptions::new())?;
//! assert_eq!(out.status, ExitStatus::Exited(3));
//! # Ok(())
//! # }
//! ```
//!
//! Images and containers live in a home. Import a module as an image, run it to its
//! end with its output captured ([`Capsule::run_image`]), or create a container and
//! drive it as `capsule` does ([`Capsule::create`], [`Container`]):
//!
//! ```
//! use capsule_sdk::{Capsule, RunOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = tempfile::tempdir()?;
//! let capsule = Capsule::open(home.path())?;
//! let image = capsule.image("hello-world")?;        // built in
//! let out = capsule.run_image(&image, RunOptions::new())?;
//! assert!(out.status.success());
//! assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from Capsule"));
//! # Ok(())
//! # }
//! ```
//!
//! Errors are one [`Error`] type with an [`ErrorKind`] to match on and the message the
//! `capsule` binary would print; a guest that fails is not an error but an
//! [`ExitStatus`].
//!
//! # Platforms
//!
//! The SDK builds for Linux, macOS and Windows, and promises the same behaviour on each
//! but for the following (every place is listed in the repository's
//! `docs/platforms.md`):
//!
//! | | Linux | macOS | Windows |
//! |---|---|---|---|
//! | modules, images, plugins, volumes, limits (`memory`, `fuel`, descriptors) | yes | yes | yes |
//! | detached containers ([`Container::start`]: a supervisor process, the `capsule` binary) | yes | yes | yes (a process of its own, no console) |
//! | [`Container::exec`] | yes | yes | yes, `stdin` at most 768 KiB |
//! | [`Container::stop`], [`Container::kill`] | signals | signals | a request file; `TerminateProcess` |
//! | symlinks a guest makes in a writable layer or a volume | yes | yes | with Developer Mode, else the guest gets `ENOTSUP` |
//! | a host file's link count and inode as a guest sees them | the host's | the host's | 1 and 0 |
//! | network addresses for containers (127.64–127.127) | yes | each needs a loopback alias | yes |
//! | the containerd shim (a separate binary) | yes | no | no |
//!
//! Verified: Linux natively by every test; Windows by running the `capsule` binary the
//! SDK drives under Wine (the SDK itself is compiled for Windows, not run); macOS
//! compiled. A hosted-CI workflow for native runs exists and is not run by the
//! project's own CI.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Test code may reach the host directly (see clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod compose;
mod container;
mod error;
pub mod plugin;
mod run;

pub use compose::ComposeProject;
pub use container::{Container, ContainerOptions, ContainerState, ExecOutput, LogLine};
pub use error::{Error, ErrorKind};
pub use plugin::{Plugin, PluginError, PluginHost, PluginManifest};
pub use run::{ExitStatus, Frame, Interruption, Output, RunOptions, Trap};

use capsule_runtime::container::{Compiled, Program, Runner};
use capsule_runtime::engine::{Engine, EngineOptions, FeatureSet, Interrupt, ModuleCache};
use capsule_runtime::home::Home;
use capsule_runtime::image::Images;
use capsule_runtime::spec::{Entry, RunSpec};
use capsule_runtime::wasi::Stdio;
use error::map;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An engine, and the Capsule home it works in (none for an in-memory one).
///
/// `Capsule` is `Send + Sync`: share one between threads (runs on it are independent).
#[derive(Debug)]
pub struct Capsule {
    runner: Runner,
    /// The fuel-metering runner (`RunOptions::fuel`), made on first use and kept: an
    /// engine is too dear to make for every run.
    metered: std::sync::OnceLock<Runner>,
    home: Option<Home>,
    supervisor: Option<PathBuf>,
}

impl Capsule {
    /// Opens the home named by `CAPSULE_HOME`, or the platform's default (where the
    /// `capsule` binary keeps its images).
    ///
    /// # Errors
    /// [`ErrorKind::Io`] when the home cannot be used.
    pub fn open_default() -> Result<Self, Error> {
        let home = Home::from_env().map_err(|e| map::home(&e))?;
        Self::open(home.root())
    }

    /// Opens (creating if needed) a Capsule home at `path`.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] when the home cannot be created or opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let home = Home::at(path.as_ref());
        let cache_dir = home.module_cache_dir();
        let cache = ModuleCache::open(&cache_dir).map_err(|e| {
            map::io(
                &format!("cannot open the module cache at {}", cache_dir.display()),
                &e,
            )
        })?;
        let engine = Engine::new(&EngineOptions::default()).map_err(|e| map::engine(&e))?;
        Ok(Self {
            runner: Runner::new(engine, Some(cache)),
            metered: std::sync::OnceLock::new(),
            home: Some(home),
            supervisor: find_supervisor(),
        })
    }

    /// An engine without a home: modules compile in memory and run; nothing is
    /// written to disk. Images and containers need a home ([`ErrorKind::NoHome`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] only if the engine is misconfigured.
    pub fn in_memory() -> Result<Self, Error> {
        let engine = Engine::new(&EngineOptions::default()).map_err(|e| map::engine(&e))?;
        Ok(Self {
            runner: Runner::new(engine, None),
            metered: std::sync::OnceLock::new(),
            home: None,
            supervisor: None,
        })
    }

    /// The `capsule` binary that supervises detached containers
    /// ([`Container::start`]). Default: `CAPSULE_BIN`, else `capsule` beside this
    /// program, else on `PATH`.
    pub fn supervisor(mut self, capsule_binary: impl Into<PathBuf>) -> Self {
        self.supervisor = Some(capsule_binary.into());
        self
    }

    /// The home's directory (`None` in memory).
    pub fn home(&self) -> Option<&Path> {
        self.home.as_ref().map(Home::root)
    }

    pub(crate) fn home_ref(&self) -> Option<&Home> {
        self.home.as_ref()
    }

    pub(crate) fn module_cache(&self) -> Option<&ModuleCache> {
        self.runner.cache()
    }

    fn need_home(&self) -> Result<&Home, Error> {
        self.home.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::NoHome,
                "this Capsule is in memory: images and containers need a home (Capsule::open)",
            )
        })
    }

    fn images(&self) -> Result<Images, Error> {
        Images::open(self.need_home()?).map_err(|e| map::image(&e))
    }

    /// Loads and compiles a module file (binary `.wasm` or text `.wat`) or a WASI 0.2
    /// component (a `wasi:cli/command`); with a home, through its compiled-module cache.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for a missing file, [`ErrorKind::InvalidModule`] for
    /// garbage, [`ErrorKind::Compile`] when it does not validate.
    pub fn module_from_file(&self, path: impl AsRef<Path>) -> Result<Module, Error> {
        let path = path.as_ref();
        let bytes = capsule_runtime::module::read_file(path).map_err(|e| map::module(&e))?;
        self.module_from_bytes(&path.display().to_string(), &bytes)
    }

    /// Compiles a module from bytes (binary or WebAssembly text). `name` is used in
    /// messages and as `argv[0]`.
    ///
    /// # Errors
    /// As [`Capsule::module_from_file`].
    pub fn module_from_bytes(&self, name: &str, bytes: &[u8]) -> Result<Module, Error> {
        let (wasm, _) =
            capsule_runtime::module::wasm_bytes(name, bytes).map_err(|e| map::module(&e))?;
        let inner = self.compile(&self.runner, name, &wasm)?;
        Ok(Module {
            name: name.to_owned(),
            inner,
            wasm: wasm.into_owned().into(),
            metered: Arc::default(),
        })
    }

    fn compile(&self, runner: &Runner, name: &str, wasm: &[u8]) -> Result<Compiled, Error> {
        runner.compile(name, wasm).map_err(|e| map::run(&e))
    }

    /// The built-in hello-world module.
    ///
    /// # Errors
    /// [`ErrorKind::Compile`] only if the engine is misconfigured.
    pub fn hello_world(&self) -> Result<Module, Error> {
        self.module_from_bytes("hello-world", capsule_runtime::builtin::HELLO_WORLD)
    }

    /// Runs a module in a fresh sandbox and returns how it ended, with its output.
    ///
    /// A guest that traps or exits non-zero is not an error: look at
    /// [`Output::status`]. Errors are for runs that cannot start.
    ///
    /// ```
    /// # fn main() -> Result<(), capsule_sdk::Error> {
    /// use capsule_sdk::{Capsule, ExitStatus, Interruption, RunOptions};
    /// let capsule = Capsule::in_memory()?;
    /// let spin = capsule.module_from_bytes("spin", "(module (func (export \"_start\") (loop (br 0))))".as_bytes())?;
    /// let out = capsule.run(&spin, RunOptions::new().fuel(1_000_000))?;
    /// assert_eq!(out.status, ExitStatus::Interrupted(Interruption::OutOfFuel(1_000_000)));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::CannotRun`] (unresolved imports, missing export, unusable mount).
    pub fn run(&self, module: &Module, options: RunOptions) -> Result<Output, Error> {
        options.limits.check().map_err(|e| map::limit(&e))?;
        let mut spec = RunSpec::new(module.name.clone());
        spec.args.extend(options.args.iter().cloned());
        for (k, v) in &options.env {
            spec.env.set(k.clone(), v.clone());
        }
        spec.mounts = options.mounts.clone();
        if let Some(dir) = options.workdir.clone() {
            spec.workdir = dir;
        }
        if let Some(export) = options.export.clone() {
            spec.entry = Entry::Export(export);
        }
        spec.limits = options.limits.clone();
        if spec.limits.fuel.is_none() {
            let program = Program::Compiled(module.inner.clone());
            return self.run_program(&self.runner, &spec, &program, options);
        }
        // Fuel metering changes the compiled code: the module is compiled again once
        // (and cached apart) with the metering engine.
        let runner = self.metered_runner()?;
        let same_engine = |m: &Compiled| {
            capsule_runtime::wasmtime::Engine::same(m.engine(), runner.engine().wasmtime())
        };
        let program = match module.metered.get().filter(|m| same_engine(m)) {
            Some(compiled) => compiled.clone(),
            None => {
                let compiled = self.compile(runner, &module.name, &module.wasm)?;
                // Kept for the next run (unless one was kept already, by another thread
                // or for another Capsule's engine).
                let _ = module.metered.set(compiled.clone());
                compiled
            }
        };
        self.run_program(runner, &spec, &Program::Compiled(program), options)
    }

    fn metered_runner(&self) -> Result<&Runner, Error> {
        if let Some(runner) = self.metered.get() {
            return Ok(runner);
        }
        let runner = self
            .runner
            .for_options(&EngineOptions {
                features: self.runner.engine().features(),
                fuel: true,
            })
            .map(std::borrow::Cow::into_owned)
            .map_err(|e| map::engine(&e))?;
        Ok(self.metered.get_or_init(|| runner))
    }

    fn run_program(
        &self,
        runner: &Runner,
        spec: &RunSpec,
        program: &Program,
        options: RunOptions,
    ) -> Result<Output, Error> {
        let streams = options
            .streamed()
            .then(|| Arc::new(run::Streams::new(&options)));
        let stdio = match &streams {
            Some(streams) => Stdio::Streamed {
                stdin: options.stdin,
                sink: streams.clone(),
            },
            None => Stdio::Capture {
                stdin: options.stdin,
                limit: options.output_limit,
            },
        };
        let out = runner
            .run(spec, program, &stdio, &Interrupt::new())
            .map_err(|e| map::run(&e))?;
        Ok(run::output(out, streams.as_deref()))
    }
}

/// Where the `capsule` binary is: `CAPSULE_BIN`, beside this program, or on `PATH`.
fn find_supervisor() -> Option<PathBuf> {
    let name = format!("capsule{}", std::env::consts::EXE_SUFFIX);
    if let Some(path) = capsule_runtime::ambient::host_env_os("CAPSULE_BIN") {
        return Some(PathBuf::from(path));
    }
    let beside = capsule_runtime::ambient::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)));
    if let Some(path) = beside.filter(|p| capsule_runtime::ambient::is_file(p)) {
        return Some(path);
    }
    std::env::split_paths(&capsule_runtime::ambient::host_env_os("PATH")?)
        .map(|dir| dir.join(&name))
        .find(|p| capsule_runtime::ambient::is_file(p))
}

/// Images: find, import, load, save, build.
impl Capsule {
    /// Finds an image in the store by `name[:tag]`, `name@sha256:…` or ID (the built-in
    /// `hello-world` is added to the store when first asked for).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is no such image, [`ErrorKind::NoHome`] in
    /// memory.
    pub fn image(&self, reference: &str) -> Result<Image, Error> {
        let images = self.images()?;
        let inner = match images.resolve(reference) {
            Ok(image) => image,
            Err(capsule_runtime::image::ImageError::NotFound(name)) => {
                capsule_runtime::builtin::ensure_image(&images, reference)
                    .map_err(|e| map::image(&e))?
                    .ok_or_else(|| {
                        map::image(&capsule_runtime::image::ImageError::NotFound(name))
                    })?
            }
            Err(e) => return Err(map::image(&e)),
        };
        Ok(Image {
            name: reference.to_owned(),
            inner,
        })
    }

    /// Makes a one-layer image of a module file (`capsule image import FILE -t TAG`):
    /// the module at `/NAME.wasm`, its entrypoint.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use capsule_sdk::{Capsule, RunOptions};
    /// let dir = tempfile::tempdir()?;
    /// let capsule = Capsule::open(dir.path().join("home"))?;
    /// let wasm = dir.path().join("seven.wat");
    /// std::fs::write(&wasm, r#"(module
    ///     (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    ///     (memory (export "memory") 1)
    ///     (func (export "_start") (call $exit (i32.const 7))))"#)?;
    /// let image = capsule.import(&wasm, "seven:1")?;
    /// assert_eq!(capsule.image("seven:1")?.id(), image.id());
    /// assert_eq!(capsule.run_image(&image, RunOptions::new())?.status.code(), Some(7));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] / [`ErrorKind::InvalidModule`] for the file,
    /// [`ErrorKind::InvalidInput`] for a bad tag.
    pub fn import(&self, module: impl AsRef<Path>, tag: &str) -> Result<Image, Error> {
        let path = module.as_ref();
        let reference = capsule_runtime::image::reference::Reference::parse(tag)
            .map_err(|e| Error::from_source(ErrorKind::InvalidInput, &e))?;
        let bytes = capsule_runtime::module::read_file(path).map_err(|e| map::module(&e))?;
        let (wasm, _) = capsule_runtime::module::wasm_bytes(&path.display().to_string(), &bytes)
            .map_err(|e| map::module(&e))?;
        let images = self.images()?;
        let inner = capsule_runtime::image::archive::import_file(
            &images,
            path,
            wasm.into_owned(),
            0,
            Some(&reference),
        )
        .map_err(|e| map::image(&e))?;
        Ok(Image {
            name: tag.to_owned(),
            inner,
        })
    }

    /// Builds an image from a context directory and its `Capsulefile` (or
    /// `Dockerfile`), as `capsule build -t TAG CONTEXT` does, with the build cache.
    ///
    /// # Errors
    /// [`ErrorKind::Build`] naming the recipe's file, line and column, or the step that
    /// failed.
    pub fn build(&self, context: impl AsRef<Path>, tag: &str) -> Result<Image, Error> {
        let reference = capsule_runtime::image::reference::Reference::parse(tag)
            .map_err(|e| Error::from_source(ErrorKind::InvalidInput, &e))?;
        let home = self.need_home()?;
        let images = self.images()?;
        let options = capsule_runtime::builder::BuildOptions {
            context: context.as_ref().to_owned(),
            tags: vec![reference],
            features: FeatureSet::default(),
            ..Default::default()
        };
        let built = capsule_runtime::builder::build(home, &images, &options, &mut Quiet)
            .map_err(|e| map::build(&e))?;
        Ok(Image {
            name: tag.to_owned(),
            inner: built.image,
        })
    }

    /// Compiles the program [`Capsule::run_image`] would start for `image` into the
    /// home's compiled-module cache, as `capsule build`, `load` and `pull` do at their
    /// end, so that its first run does not wait for the compiler (CPython's 99 MB
    /// module takes about 34 s of two cores). Returns whether it compiled anything
    /// (`false`: the cache had it, or the image names no command).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidModule`] when the program does not compile, the kinds of
    /// [`Capsule::run_image`] when its command or program cannot be found.
    pub fn compile_image(&self, image: &Image) -> Result<bool, Error> {
        use capsule_runtime::container::warm::{self, WarmError};
        let home = self.need_home()?;
        let images = self.images()?;
        match warm::warm(home, &images, &image.inner, &image.name, &mut |_, _| {}) {
            Ok(warmed) => Ok(warmed.is_some_and(|w| w.compiled.is_some())),
            Err(WarmError::Command(e)) => Err(map::prepare(&e)),
            Err(WarmError::Program(e)) => Err(map::run(&e)),
            Err(WarmError::Engine(e)) => Err(map::engine(&e)),
            Err(e @ (WarmError::Layers(_) | WarmError::Cache { .. })) => {
                Err(Error::from_source(ErrorKind::Io, &e))
            }
        }
    }

    /// Loads the images of an archive written by `capsule save` (or `docker save`, an
    /// OCI layout tar) and returns them.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming what is wrong with the archive.
    pub fn load(&self, archive: impl AsRef<Path>) -> Result<Vec<Image>, Error> {
        let path = archive.as_ref();
        let file = capsule_runtime::ambient::open_file(path)
            .map_err(|e| map::io(&format!("cannot open {}", path.display()), &e))?;
        let images = self.images()?;
        let loaded =
            capsule_runtime::image::archive::load(&images, std::io::BufReader::new(file), &|_| {})
                .map_err(|e| map::image(&e))?;
        Ok(loaded
            .images
            .into_iter()
            .map(|(inner, names)| Image {
                name: names
                    .first()
                    .map_or_else(|| inner.id().to_string(), ToString::to_string),
                inner,
            })
            .collect())
    }

    /// Writes `image` (with its name) as an archive that `capsule load`, `docker load`
    /// and OCI tools read.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] when the file cannot be written (nothing is left behind).
    pub fn save(&self, image: &Image, archive: impl AsRef<Path>) -> Result<(), Error> {
        let images = self.images()?;
        let names = capsule_runtime::image::reference::Reference::parse(&image.name)
            .ok()
            .into_iter()
            .collect();
        capsule_runtime::image::archive::save_to_file(
            &images,
            &[(image.inner.clone(), names)],
            archive.as_ref(),
            &|_| {},
        )
        .map_err(|e| map::image(&e))
    }

    /// Runs an image to its end as a container with Docker's rules (`ENTRYPOINT` +
    /// `CMD`; [`RunOptions::arg`] replaces `CMD`; `ENV`, then [`RunOptions::env`];
    /// `WORKDIR` unless [`RunOptions::workdir`]), on the image's layers under a writable
    /// layer that is removed when the run ends (`capsule run --rm`). Output is
    /// captured or streamed as for [`Capsule::run`].
    ///
    /// # Errors
    /// [`ErrorKind::CannotRun`] for an image without a command or of another platform,
    /// [`ErrorKind::NotFound`] when its program is not in the image, and as
    /// [`Capsule::run`].
    pub fn run_image(&self, image: &Image, options: RunOptions) -> Result<Output, Error> {
        let home = self.need_home()?;
        let images = self.images()?;
        let overrides = capsule_runtime::container::Overrides {
            entrypoint: options.entrypoint.clone(),
            args: options.args.clone(),
            env: options.env.clone(),
            workdir: options.workdir.clone(),
            mounts: options.mounts.clone(),
            limits: options.limits.clone(),
            rm: true,
            ..Default::default()
        };
        let prepared = capsule_runtime::container::prepare(
            home,
            &images,
            &image.inner,
            &image.name,
            overrides,
        )
        .map_err(|e| map::prepare(&e))?;
        let result = (|| {
            // The image's labels may turn wasm features on, and fuel changes the code.
            let runner = self
                .runner
                .for_options(&EngineOptions {
                    features: prepared.features,
                    fuel: prepared.spec.limits.fuel.is_some(),
                })
                .map_err(|e| map::engine(&e))?;
            let program = Program::InRoot {
                path: prepared.program.clone(),
                image: prepared.cache_image.clone(),
            };
            self.run_program(&runner, &prepared.spec, &program, options)
        })();
        // As `run --rm`: the anonymous volumes of the image's VOLUMEs go with it.
        let volumes = prepared.container.config.volumes.clone();
        if prepared.container.remove().is_ok() {
            let _ = capsule_runtime::container::volumes::remove_anonymous(home, &volumes);
        }
        result
    }
}

/// Containers: create, find, list.
impl Capsule {
    /// Creates a container from `image` (`capsule create`): its writable layer, volumes
    /// and configuration are made; [`Container::start`] runs it.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] for a name in use or a port taken,
    /// [`ErrorKind::CannotRun`] for an image that cannot run, [`ErrorKind::InvalidInput`]
    /// for bad options.
    pub fn create(&self, image: &Image, options: ContainerOptions) -> Result<Container, Error> {
        let home = self.need_home()?;
        let images = self.images()?;
        let prepared = capsule_runtime::container::prepare(
            home,
            &images,
            &image.inner,
            &image.name,
            options.overrides(),
        )
        .map_err(|e| map::prepare(&e))?;
        Ok(Container {
            home: home.clone(),
            id: prepared.container.config.id.clone(),
            supervisor: self.supervisor.clone(),
        })
    }

    /// Loads a compose project from its file (`compose.toml`), every service checked
    /// as `capsule compose config` checks it; `name` overrides the project's name
    /// (`-p`).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for a missing file, [`ErrorKind::InvalidInput`] naming
    /// the file, line and column of what is wrong.
    pub fn compose(
        &self,
        file: impl AsRef<Path>,
        name: Option<&str>,
    ) -> Result<ComposeProject, Error> {
        let home = self.need_home()?;
        let project = capsule_runtime::compose::Project::load(file.as_ref(), name)
            .map_err(|e| compose::compose_error(&e))?;
        Ok(ComposeProject {
            project,
            home: home.clone(),
            supervisor: self.supervisor.clone(),
        })
    }

    /// Finds a container by name, ID or unique ID prefix.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is none.
    pub fn container(&self, reference: &str) -> Result<Container, Error> {
        let home = self.need_home()?;
        let found = capsule_runtime::container::Container::find(home, reference)
            .map_err(|e| map::container(&e))?;
        Ok(Container {
            home: home.clone(),
            id: found.config.id.clone(),
            supervisor: self.supervisor.clone(),
        })
    }

    /// Every container of the home, oldest first (`capsule ps -a`).
    ///
    /// # Errors
    /// [`ErrorKind::NoHome`] in memory.
    pub fn containers(&self) -> Result<Vec<Container>, Error> {
        let home = self.need_home()?;
        Ok(capsule_runtime::container::Container::list(home)
            .into_iter()
            .map(|c| Container {
                home: home.clone(),
                id: c.config.id.clone(),
                supervisor: self.supervisor.clone(),
            })
            .collect())
    }
}

/// A build that prints nothing (the SDK's caller decides what to show).
struct Quiet;

impl capsule_runtime::builder::Observer for Quiet {
    fn step_start(&mut self, _: usize, _: usize, _: &str) {}
    fn step_end(&mut self, _: usize, _: usize, _: &str, _: &capsule_runtime::builder::StepOutcome) {
    }
    fn warn(&mut self, _: &str) {}
    fn guest_output(&mut self, f: &mut dyn FnMut()) {
        f();
    }
}

/// An image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    name: String,
    inner: capsule_runtime::image::Image,
}

impl Image {
    /// The reference it was found or made by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its ID (`sha256:…` of its config).
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }
}

/// A compiled module, ready to run any number of times (cheap to clone).
#[derive(Debug, Clone)]
pub struct Module {
    name: String,
    inner: Compiled,
    /// Its bytes, to compile again for fuel metering.
    wasm: Arc<[u8]>,
    /// Its fuel-metered compilation, made on the first run with fuel and kept.
    metered: Arc<std::sync::OnceLock<Compiled>>,
}

impl Module {
    /// The name given when it was loaded.
    pub fn name(&self) -> &str {
        &self.name
    }
}
