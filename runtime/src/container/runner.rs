//! The one runner: every guest Capsule runs — `capsule run`, a detached container's
//! supervisor, a build's `RUN`, the SDK — goes through [`Runner::run`]:
//! assemble the root filesystem ([`RootFs`]), turn it into a WASI world
//! ([`WasiState`]), find the compiled module (the module cache, by alias or by
//! content), and run it ([`exec::run_in`]) under the spec's limits.

use crate::engine::Interrupt;
use crate::engine::cache::Artifact;
use crate::engine::{CacheOutcome, Engine, EngineError, EngineOptions, FeatureSet, ModuleCache};
use crate::exec::{self, Gauges, RunError, RunOutput};
use crate::fs::Vfs;
use crate::fs::rootfs::RootFs;
use crate::module::WasmKind;
use crate::spec::{GuestPath, RunSpec};
use crate::wasi::{ComponentState, Stdio, WasiState};

/// Which module a run executes.
#[derive(Debug, Clone)]
pub enum Program {
    /// A module file's bytes (`capsule run app.wasm`, the SDK's modules): `name` is how
    /// errors and the compiled-module cache call it.
    Bytes { name: String, wasm: Vec<u8> },
    /// A module read from the container's root filesystem (an image's ENTRYPOINT).
    /// `image`, when set, is the ID of an image whose layers alone are the root (no
    /// mounts): the cache then finds the program by the image and its path, without
    /// reading and hashing it (see [`Runner::load_in_root`]).
    InRoot {
        path: GuestPath,
        image: Option<String>,
    },
    /// A module or component already compiled by this runner's engine (the SDK's
    /// modules).
    Compiled(Compiled),
}

/// Where a run happens: alone (the default: a root filesystem of its own, assembled
/// from the spec), as the main program of a container whose other programs share its
/// gauges, or beside a running one (`capsule exec`) in the filesystem it assembled.
#[derive(Debug, Clone, Default)]
pub struct Place {
    /// The container's gauges (its memory limit for all its programs together, its
    /// freeze gate) with this program's own.
    pub gauges: Option<Gauges>,
    /// The filesystem of the running container this program joins.
    pub beside: Option<std::sync::Arc<Vfs>>,
    /// Fires when a stop is asked for, before the grace period ends (the run's own
    /// interrupt fires after it): a program that can end cleanly (an HTTP service:
    /// no new requests, those in flight finish) does so then.
    pub stopping: Option<Interrupt>,
}

/// A program found and loaded in a root filesystem ([`Runner::load_in_root`]).
#[derive(Debug)]
pub struct Loaded {
    pub compiled: Compiled,
    /// Where it was found (through PATH and `#!` lines).
    pub path: GuestPath,
    /// The spec to run it with, when PATH or a `#!` line changed the command.
    pub spec: Option<RunSpec>,
}

/// An engine and the compiled-module cache, shared by every run of a process.
#[derive(Debug, Clone)]
pub struct Runner {
    engine: Engine,
    cache: Option<ModuleCache>,
}

impl Runner {
    /// A runner over `engine`, compiling through `cache` when given.
    pub fn new(engine: Engine, cache: Option<ModuleCache>) -> Self {
        Self { engine, cache }
    }

    /// A runner with an engine of its own for `features` (without fuel metering).
    ///
    /// # Errors
    /// [`EngineError`] when wasmtime refuses the features.
    pub fn with_features(
        features: FeatureSet,
        cache: Option<ModuleCache>,
    ) -> Result<Self, EngineError> {
        Self::with_options(
            &EngineOptions {
                features,
                fuel: false,
            },
            cache,
        )
    }

    /// A runner with an engine of its own built with `options`.
    ///
    /// # Errors
    /// [`EngineError`] when wasmtime refuses the options.
    pub fn with_options(
        options: &EngineOptions,
        cache: Option<ModuleCache>,
    ) -> Result<Self, EngineError> {
        Ok(Self::new(Engine::new(options)?, cache))
    }

    /// This runner, or one sharing its cache with an engine for `features` when they
    /// differ (an image's labels may turn features on); fuel metering stays as it is.
    ///
    /// # Errors
    /// As [`Runner::with_features`].
    pub fn for_features(
        &self,
        features: FeatureSet,
    ) -> Result<std::borrow::Cow<'_, Self>, EngineError> {
        self.for_options(&EngineOptions {
            features,
            fuel: self.engine.fuel(),
        })
    }

    /// This runner, or one sharing its cache with an engine built with `options` when
    /// this one's differ (features, fuel metering for `--fuel`).
    ///
    /// # Errors
    /// As [`Runner::with_options`].
    pub fn for_options(
        &self,
        options: &EngineOptions,
    ) -> Result<std::borrow::Cow<'_, Self>, EngineError> {
        if *options == self.engine.options() {
            Ok(std::borrow::Cow::Borrowed(self))
        } else {
            Ok(std::borrow::Cow::Owned(Self::with_options(
                options,
                self.cache.clone(),
            )?))
        }
    }

    /// The engine runs use.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled-module cache, if there is one.
    pub fn cache(&self) -> Option<&ModuleCache> {
        self.cache.as_ref()
    }

    /// Compiles a module or a component, through the cache when there is one.
    fn compile_artifact<A: Artifact>(
        &self,
        name: &str,
        wasm: &[u8],
        before_compile: &mut dyn FnMut(),
    ) -> Result<A, RunError> {
        let compile_error = |e: &dyn std::fmt::Display| RunError::Compile {
            name: name.to_owned(),
            reason: e.to_string(),
        };
        match &self.cache {
            Some(cache) => {
                let (artifact, outcome) = cache
                    .load_or_compile_told(&self.engine, wasm, before_compile)
                    .map_err(|e| compile_error(&e))?;
                if let CacheOutcome::Rebuilt(reason) = outcome {
                    tracing::info!(%reason, "rebuilt a module cache entry");
                }
                Ok(artifact)
            }
            None => {
                before_compile();
                A::compile(&self.engine, wasm).map_err(|e| compile_error(&e))
            }
        }
    }

    /// Compiles wasm that may be a module (binary or text) or a component, through the
    /// cache when there is one.
    ///
    /// # Errors
    /// [`RunError::Module`] for bytes that are neither, [`RunError::Compile`] when
    /// wasmtime refuses them.
    pub fn compile(&self, name: &str, wasm: &[u8]) -> Result<Compiled, RunError> {
        let (wasm, kind) = crate::module::wasm_bytes(name, wasm)?;
        self.compile_binary(name, &wasm, kind, &mut || {})
    }

    /// Compiles binary wasm of a known kind.
    fn compile_binary(
        &self,
        name: &str,
        wasm: &[u8],
        kind: WasmKind,
        before_compile: &mut dyn FnMut(),
    ) -> Result<Compiled, RunError> {
        Ok(match kind {
            WasmKind::Module => {
                Compiled::Module(self.compile_artifact(name, wasm, before_compile)?)
            }
            WasmKind::Component => {
                Compiled::Component(self.compile_artifact(name, wasm, before_compile)?)
            }
        })
    }

    /// Finds the program at `path` in `vfs` as a run would (through PATH and `#!`
    /// lines) and loads it: by `image`'s alias in the cache when there is one (an
    /// image's layers never change, so the program at a path of an image without mounts
    /// is always the same module), else read, then compiled or found by its content.
    /// `before_compile` is told the program and its size just before a compile that
    /// the cache cannot spare.
    ///
    /// # Errors
    /// As [`Runner::run`] for a program that is not there or does not compile.
    pub fn load_in_root(
        &self,
        vfs: &Vfs,
        spec: &RunSpec,
        path: &GuestPath,
        image: Option<&str>,
        before_compile: &mut dyn FnMut(&GuestPath, u64),
    ) -> Result<Loaded, RunError> {
        let found = super::command::find(vfs, spec, path)?;
        let found_spec = (found.args != spec.args || found.export.is_some())
            .then(|| super::command::apply(spec, &found));
        let path = &found.path;
        let alias = image.map(|image| format!("image {image} program {path}"));
        if let (Some(cache), Some(alias)) = (&self.cache, &alias) {
            let cached = cache
                .load_alias(&self.engine, alias)
                .map(Compiled::Module)
                .or_else(|| {
                    cache
                        .load_alias(&self.engine, alias)
                        .map(Compiled::Component)
                });
            if let Some(compiled) = cached {
                return Ok(Loaded {
                    compiled,
                    path: found.path,
                    spec: found_spec,
                });
            }
        }
        let wasm = crate::fs::rootfs::read_file(vfs, path).map_err(|source| RunError::Program {
            path: path.clone(),
            source,
        })?;
        let (wasm, kind) = crate::module::wasm_bytes(path.as_str(), &wasm)?;
        let size = wasm.len() as u64;
        let compiled = self.compile_binary(path.as_str(), &wasm, kind, &mut || {
            before_compile(path, size);
        })?;
        if let (Some(cache), Some(alias)) = (&self.cache, &alias) {
            cache.set_alias(alias, &wasm);
        }
        Ok(Loaded {
            compiled,
            path: found.path,
            spec: found_spec,
        })
    }

    /// Runs `program` in the world `spec` describes, its standard streams as `stdio`
    /// says, until it ends or `interrupt` stops it.
    ///
    /// # Errors
    /// [`RunError`] when the guest cannot start; a guest that starts and then fails
    /// yields `Ok` with a non-success status.
    pub fn run(
        &self,
        spec: &RunSpec,
        program: &Program,
        stdio: &Stdio,
        interrupt: &Interrupt,
    ) -> Result<RunOutput, RunError> {
        self.run_observed(
            spec,
            program,
            stdio,
            interrupt,
            &Place::default(),
            &mut |_| {},
        )
    }

    /// As [`Runner::run`], in `place`, calling `on_start` with the guest's filesystem
    /// once the module is ready and its world set up, just before the guest's first
    /// instruction.
    ///
    /// # Errors
    /// As [`Runner::run`].
    pub fn run_observed(
        &self,
        spec: &RunSpec,
        program: &Program,
        stdio: &Stdio,
        interrupt: &Interrupt,
        place: &Place,
        on_start: &mut dyn FnMut(&std::sync::Arc<Vfs>),
    ) -> Result<RunOutput, RunError> {
        let fuel = spec.limits.fuel.is_some();
        if fuel != self.engine.fuel() {
            // `--fuel` needs an engine that meters it (and one that does not slows every
            // other run down): the same features, with or without fuel.
            if let Program::Compiled(_) = program {
                return Err(RunError::Link(
                    "a module compiled by an engine without fuel metering cannot run with \
                     --fuel (or one with it without)"
                        .to_owned(),
                ));
            }
            let options = EngineOptions {
                features: self.engine.features(),
                fuel,
            };
            let runner = self
                .for_options(&options)
                .map_err(|e| RunError::Link(e.to_string()))?;
            return runner.run_observed(spec, program, stdio, interrupt, place, on_start);
        }
        let root = match &place.beside {
            Some(vfs) => Root::Beside(vfs.clone()),
            None => Root::Own(RootFs::assemble(spec).map_err(crate::wasi::WasiError::from)?),
        };
        let mut found_spec = None;
        let loaded = match program {
            Program::Bytes { name, wasm } => self.compile(name, wasm)?,
            Program::Compiled(compiled) => compiled.clone(),
            Program::InRoot { path, image } => {
                let loaded =
                    self.load_in_root(root.vfs(), spec, path, image.as_deref(), &mut |_, _| {})?;
                found_spec = loaded.spec;
                loaded.compiled
            }
        };
        let spec = found_spec.as_ref().unwrap_or(spec);
        let module = match loaded {
            Compiled::Module(_) if spec.limits.network_host || !spec.limits.outbound.is_empty() => {
                return Err(RunError::Unsupported(
                    "--allow-outbound and --network host are for WASI 0.2 components: a WASI \
                     preview1 program has no call that opens a connection (it is handed its \
                     published ports, -p)"
                        .to_owned(),
                ));
            }
            Compiled::Module(module) => module,
            Compiled::Component(component) => {
                return self
                    .run_component(spec, &component, root, stdio, interrupt, place, on_start);
            }
        };
        let (world, captured) = match root {
            Root::Own(root) => {
                // Published ports are bound here, after the module is ready and just
                // before the guest starts, so a run that cannot start holds no port.
                let listeners =
                    crate::net::bind(&spec.ports).map_err(crate::wasi::WasiError::from)?;
                WasiState::new(root, spec, stdio, listeners)?
            }
            Root::Beside(vfs) => WasiState::beside(vfs, spec, stdio)?,
        };
        on_start(world.vfs());
        exec::run_in(
            &self.engine,
            &module,
            spec,
            world,
            captured,
            interrupt,
            place.gauges.as_ref(),
        )
    }
}

impl Runner {
    /// The rest of [`Runner::run_observed`] for a component.
    #[allow(clippy::too_many_arguments, reason = "run_observed's own, passed on")]
    fn run_component(
        &self,
        spec: &RunSpec,
        component: &wasmtime::component::Component,
        root: Root,
        stdio: &Stdio,
        interrupt: &Interrupt,
        place: &Place,
        on_start: &mut dyn FnMut(&std::sync::Arc<Vfs>),
    ) -> Result<RunOutput, RunError> {
        if crate::serve::is_service(&self.engine, component) {
            let (vfs, _scratch) = match root {
                Root::Own(root) => {
                    let (vfs, scratch) = root.into_parts();
                    (std::sync::Arc::new(vfs), scratch)
                }
                Root::Beside(vfs) => (vfs, None),
            };
            on_start(&vfs);
            return crate::serve::serve(
                &self.engine,
                component,
                spec,
                vfs,
                stdio,
                interrupt,
                place,
            );
        }
        // A command component listens itself, on its network address: a published port
        // is proxied there (Docker's user-space proxy).
        let _forwards = match (spec.ports.is_empty(), spec.networks.first()) {
            (true, _) => None,
            (false, None) => {
                return Err(RunError::Unsupported(
                    "a wasi:cli/command component listens on its network address: join a \
                     network to publish its ports (capsule network create NET, then \
                     capsule run --network NET -p ...)"
                        .to_owned(),
                ));
            }
            (false, Some(network)) => {
                let listeners =
                    crate::net::bind(&spec.ports).map_err(crate::wasi::WasiError::from)?;
                Some(
                    crate::net::forward::Forwards::start(listeners, network.address.into())
                        .map_err(|e| RunError::Link(format!("cannot publish the ports: {e}")))?,
                )
            }
        };
        let (world, captured) = match root {
            Root::Own(root) => ComponentState::new(root, spec, stdio)?,
            Root::Beside(vfs) => ComponentState::beside(vfs, spec, stdio)?,
        };
        on_start(world.vfs());
        exec::run_component_in(
            &self.engine,
            component,
            spec,
            world,
            captured,
            interrupt,
            place.gauges.as_ref(),
        )
    }
}

/// What a run executes, compiled: a core module (WASI preview1) or a component
/// (WASI 0.2).
#[derive(Debug, Clone)]
pub enum Compiled {
    Module(wasmtime::Module),
    Component(wasmtime::component::Component),
}

impl Compiled {
    /// The engine it was compiled by.
    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Compiled::Module(m) => m.engine(),
            Compiled::Component(c) => c.engine(),
        }
    }
}

/// The filesystem a run assembled, or the one of the container it joins.
enum Root {
    Own(RootFs),
    Beside(std::sync::Arc<Vfs>),
}

impl Root {
    fn vfs(&self) -> &Vfs {
        match self {
            Root::Own(root) => root.vfs(),
            Root::Beside(vfs) => vfs,
        }
    }
}
