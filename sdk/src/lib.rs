//! Embed Capsule in a host application.
//!
//! A [`Capsule`] owns an engine and a Capsule home (its image store and compiled-module
//! cache). Load a [`Module`] once, then [`Capsule::run`] it as often as needed: each run
//! is a fresh sandbox with its own arguments, environment, mounts and captured stdio.
//! Or find an [`Image`] in the store and [`Capsule::run_image`] it: a container from the
//! image's config, removed when the run ends.
//!
//! ```no_run
//! use capsule_sdk::{Capsule, RunOptions};
//!
//! # fn main() -> Result<(), capsule_sdk::Error> {
//! let capsule = Capsule::open_default()?;
//! let image = capsule.image("library-api")?;
//! let out = capsule.run_image(&image, RunOptions::new().arg("--selftest"))?;
//! assert!(out.status.success());
//! # Ok(())
//! # }
//! ```
//!
//! ```no_run
//! use capsule_sdk::{Capsule, RunOptions};
//!
//! # fn main() -> Result<(), capsule_sdk::Error> {
//! let capsule = Capsule::open_default()?;
//! let module = capsule.module_from_file("app.wasm")?;
//! let out = capsule.run(&module, RunOptions::new().arg("--selftest").stdin(b"input".to_vec()))?;
//! assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod plugin;

use capsule_runtime::container::{Program, Runner};
use capsule_runtime::engine::{Engine, EngineOptions, Interrupt, ModuleCache};

use capsule_runtime::home::Home;
use capsule_runtime::spec::{Entry, GuestPath, Mount, RunSpec};
use capsule_runtime::wasi::Stdio;
use std::path::{Path, PathBuf};

pub use capsule_runtime::exec::{ExitStatus, Frame, TrapReport};
pub use plugin::{Plugin, PluginError, PluginHost, PluginManifest};

/// Errors from the SDK. Each names what was wrong; the source is kept.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Home(#[from] capsule_runtime::home::HomeError),
    #[error(transparent)]
    Engine(#[from] capsule_runtime::engine::EngineError),
    #[error("cannot open the module cache at {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Module(#[from] capsule_runtime::module::ModuleError),
    #[error("{name}: does not compile")]
    Compile {
        name: String,
        #[source]
        source: capsule_runtime::engine::CacheError,
    },
    #[error(transparent)]
    Spec(#[from] capsule_runtime::spec::SpecError),
    #[error(transparent)]
    Run(#[from] capsule_runtime::exec::RunError),
    #[error(transparent)]
    Image(#[from] capsule_runtime::image::ImageError),
    #[error(transparent)]
    Container(#[from] capsule_runtime::container::PrepareError),
    #[error(transparent)]
    ContainerState(#[from] capsule_runtime::container::ContainerError),
    #[error(transparent)]
    Wasi(#[from] capsule_runtime::wasi::WasiError),
    #[error("image {image}: cannot read {path} in the image: {errno}")]
    Program {
        image: String,
        path: String,
        errno: capsule_runtime::fs::FsError,
    },
}

/// An engine plus a Capsule home.
#[derive(Debug)]
pub struct Capsule {
    runner: Runner,
    cache: ModuleCache,
    home: Home,
}

impl Capsule {
    /// Opens the home named by `CAPSULE_HOME`, or the platform's default.
    ///
    /// # Errors
    /// [`Error::Home`] or [`Error::Cache`] when the home cannot be used.
    pub fn open_default() -> Result<Self, Error> {
        Self::open(Home::from_env()?.root())
    }

    /// Opens (creating if needed) a Capsule home at `path`.
    ///
    /// # Errors
    /// [`Error::Cache`] when the home cannot be created or opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let home = Home::at(path.as_ref());
        let cache_dir = home.module_cache_dir();
        let cache = ModuleCache::open(&cache_dir).map_err(|source| Error::Cache {
            path: cache_dir,
            source,
        })?;
        let engine = Engine::new(&EngineOptions::default())?;
        Ok(Self {
            runner: Runner::new(engine, Some(cache.clone())),
            cache,
            home,
        })
    }

    /// Loads and compiles a module file (binary `.wasm` or text `.wat`), using the cache.
    ///
    /// # Errors
    /// [`Error::Module`] for a missing file, a component or garbage; [`Error::Compile`]
    /// when it does not validate.
    pub fn module_from_file(&self, path: impl AsRef<Path>) -> Result<Module, Error> {
        let path = path.as_ref();
        let bytes = capsule_runtime::module::read_file(path)?;
        self.module_from_bytes(&path.display().to_string(), &bytes)
    }

    /// Compiles a module from bytes (binary or text), using the cache. `name` is used in
    /// messages and as `argv[0]`.
    ///
    /// # Errors
    /// As [`Capsule::module_from_file`].
    pub fn module_from_bytes(&self, name: &str, bytes: &[u8]) -> Result<Module, Error> {
        self.module_with(self.runner.engine(), name, bytes)
    }

    fn module_with(&self, engine: &Engine, name: &str, bytes: &[u8]) -> Result<Module, Error> {
        let wasm = capsule_runtime::module::core_module_bytes(name, bytes)?;
        let (inner, _) = self
            .cache
            .load_or_compile(engine, &wasm)
            .map_err(|source| Error::Compile {
                name: name.to_owned(),
                source,
            })?;
        Ok(Module {
            name: name.to_owned(),
            inner,
        })
    }

    /// The built-in hello-world module.
    ///
    /// # Errors
    /// [`Error::Compile`] only if the engine is misconfigured.
    pub fn hello_world(&self) -> Result<Module, Error> {
        self.module_from_bytes("hello-world", capsule_runtime::builtin::HELLO_WORLD)
    }

    /// Runs a module in a fresh sandbox and returns its status and captured output.
    ///
    /// A guest that traps or exits non-zero is not an error: look at
    /// [`Output::status`]. Errors are for runs that cannot start.
    ///
    /// # Errors
    /// [`Error::Run`] (unresolved imports, missing export, unusable mount).
    pub fn run(&self, module: &Module, options: RunOptions) -> Result<Output, Error> {
        let mut spec = RunSpec::new(module.name.clone());
        spec.args.extend(options.args);
        for (k, v) in options.env {
            spec.env.set(k, v);
        }
        spec.mounts = options.mounts;
        if let Some(dir) = options.workdir {
            spec.workdir = dir;
        }
        if let Some(export) = options.export {
            spec.entry = Entry::Export(export);
        }
        let stdio = Stdio::Capture {
            stdin: options.stdin,
            limit: options.output_limit,
        };
        let out = self.runner.run(
            &spec,
            &Program::Compiled(module.inner.clone()),
            &stdio,
            &Interrupt::new(),
        )?;
        Ok(Output {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
            results: out.results,
        })
    }
}

impl Capsule {
    /// Finds an image in the store by `name[:tag]`, `name@sha256:…` or ID (the built-in
    /// `hello-world` is added to the store when first asked for).
    ///
    /// # Errors
    /// [`Error::Image`] when there is no such image or the store cannot be read.
    pub fn image(&self, reference: &str) -> Result<Image, Error> {
        let images = capsule_runtime::image::Images::open(&self.home)?;
        let inner = match images.resolve(reference) {
            Ok(image) => image,
            Err(capsule_runtime::image::ImageError::NotFound(name)) => {
                capsule_runtime::builtin::ensure_image(&images, reference)?
                    .ok_or(capsule_runtime::image::ImageError::NotFound(name))?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Image {
            name: reference.to_owned(),
            inner,
        })
    }

    /// Runs an image as a container with Docker's rules (ENTRYPOINT + CMD; arguments
    /// from [`RunOptions::arg`] replace CMD; ENV, then [`RunOptions::env`]; WORKDIR
    /// unless [`RunOptions::workdir`]), on the image's layers under a writable layer
    /// that is removed when the run ends. Output is captured as for [`Capsule::run`].
    ///
    /// # Errors
    /// [`Error::Container`] for an image without a command or of another platform,
    /// [`Error::Program`] when its program is not in the image, and as
    /// [`Capsule::run`].
    pub fn run_image(&self, image: &Image, options: RunOptions) -> Result<Output, Error> {
        let images = capsule_runtime::image::Images::open(&self.home)?;
        let overrides = capsule_runtime::container::Overrides {
            entrypoint: options.entrypoint,
            args: options.args,
            env: options.env,
            workdir: options.workdir,
            mounts: options.mounts,
            rm: true,
            ..Default::default()
        };
        let prepared = capsule_runtime::container::prepare(
            &self.home,
            &images,
            &image.inner,
            &image.name,
            overrides,
        )?;
        let result = (|| {
            let stdio = Stdio::Capture {
                stdin: options.stdin,
                limit: options.output_limit,
            };
            // The image's labels may set wasm features: then the run needs an engine
            // of its own with them.
            let runner = self.runner.for_features(prepared.features)?;
            let program = Program::InRoot {
                path: prepared.program.clone(),
                alias: prepared.cache_alias.clone(),
            };
            let out = runner
                .run(&prepared.spec, &program, &stdio, &Interrupt::new())
                .map_err(|e| match e {
                    capsule_runtime::exec::RunError::Program { path, source } => Error::Program {
                        image: image.name.clone(),
                        path: path.to_string(),
                        errno: source,
                    },
                    e => Error::Run(e),
                })?;
            Ok(Output {
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
                results: out.results,
            })
        })();
        // As `run --rm`: the anonymous volumes of the image's VOLUMEs go with it.
        let volumes = prepared.container.config.volumes.clone();
        if prepared.container.remove().is_ok() {
            let _ = capsule_runtime::container::volumes::remove_anonymous(&self.home, &volumes);
        }
        result
    }
}

/// An image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    name: String,
    inner: capsule_runtime::image::Image,
}

impl Image {
    /// The reference it was found by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its ID (`sha256:…` of its config).
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }
}

/// A compiled module, ready to run any number of times.
#[derive(Debug, Clone)]
pub struct Module {
    name: String,
    inner: capsule_runtime::wasmtime::Module,
}

impl Module {
    /// The name given when it was loaded.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How to run a module. Defaults: no arguments beyond `argv[0]`, empty environment, no
/// mounts, workdir `/`, empty stdin, 16 MiB of captured output per stream.
#[derive(Debug, Clone)]
pub struct RunOptions {
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    workdir: Option<GuestPath>,
    export: Option<String>,
    entrypoint: Option<String>,
    stdin: Vec<u8>,
    output_limit: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            workdir: None,
            export: None,
            entrypoint: None,
            stdin: Vec::new(),
            output_limit: 16 << 20,
        }
    }
}

impl RunOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an argument (after `argv[0]`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Bytes the guest reads from stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    /// Most bytes kept of stdout and of stderr each (default 16 MiB).
    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// Calls an export instead of `_start` (after `_initialize`, for reactors). An export
    /// without parameters gets the arguments as its argv; one with parameters takes them
    /// from the arguments, exactly as many as it has.
    pub fn export(mut self, name: impl Into<String>) -> Self {
        self.export = Some(name.into());
        self
    }

    /// For [`Capsule::run_image`]: run this program (a path in the image) instead of
    /// the image's ENTRYPOINT, without its CMD (`--entrypoint`). `PATH#EXPORT` calls an
    /// export of a reactor, as in an image's ENTRYPOINT.
    pub fn entrypoint(mut self, path: impl Into<String>) -> Self {
        self.entrypoint = Some(path.into());
        self
    }

    /// Mounts a host directory at a guest path, in Docker's `-v` syntax
    /// (`HOST:GUEST[:ro]`).
    ///
    /// # Errors
    /// [`Error::Spec`] for bad syntax or a host path that is not a directory.
    pub fn volume(mut self, spec: &str) -> Result<Self, Error> {
        self.mounts.push(Mount::parse_volume(spec)?);
        Ok(self)
    }

    /// The guest's working directory (absolute).
    ///
    /// # Errors
    /// [`Error::Spec`] for a relative path or `..`.
    pub fn workdir(mut self, dir: &str) -> Result<Self, Error> {
        self.workdir = Some(GuestPath::parse(dir)?);
        Ok(self)
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Values returned by an export called with [`RunOptions::export`].
    pub results: Vec<String>,
}
