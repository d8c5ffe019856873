//! A loaded plugin and its calls: link once (WASI and the allowed host functions) into
//! an `InstancePre`, then give every call a fresh store and instance from the pool.

use super::host::IMPORT_MODULE;
use super::manifest::{PluginLimits, PluginManifest};
use super::pool::{NoSlot, PluginHost, TICK};
use super::{PluginError, pack, unpack};
use crate::ending::{self, Ending, first_line};
use crate::exec::MemoryLimiter;
use crate::fs::Vfs;
use crate::fs::hostdir::HostDir;
use crate::fs::tmpfs::TmpFs;
use crate::spec::GuestPath;
use crate::wasi::p1::WasiP1;
use crate::wasi::p1::stdio::{Capture, Input, LogSink, Output, Stream};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{
    Caller, Extern, ExternType, FuncType, InstancePre, Linker, Module, ModuleExport, Store, ValType,
};

/// The store data of one call.
pub(crate) struct CallState {
    wasi: WasiP1,
    limiter: MemoryLimiter,
    /// The call's stderr, kept (up to [`STDERR_KEPT`]) when output is not forwarded.
    stderr: Option<Capture>,
}

/// A plugin, ready to be called from any thread (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Plugin(Arc<Inner>);

struct Inner {
    name: String,
    host: PluginHost,
    pre: InstancePre<CallState>,
    /// Plugin functions (`(i32, i32) -> i64` exports), by name.
    functions: BTreeMap<String, ModuleExport>,
    /// Other exported functions, with their types, for a clear error.
    others: BTreeMap<String, String>,
    alloc: ModuleExport,
    memory: ModuleExport,
    initialize: Option<ModuleExport>,
    vfs: Arc<Vfs>,
    preopens: Vec<(String, String)>,
    args: Vec<String>,
    env: Vec<String>,
    limits: PluginLimits,
    forward_output: bool,
    discard: Arc<dyn LogSink>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.0.name)
            .field("functions", &self.0.functions.keys().collect::<Vec<_>>())
            .field("limits", &self.0.limits)
            .finish_non_exhaustive()
    }
}

/// Most bytes of a call's stderr kept to explain a trap (a Rust panic's message).
const STDERR_KEPT: usize = 4096;

/// A guest broke the ABI during a call.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AbiViolation(String);

/// A host function panicked.
#[derive(Debug, thiserror::Error)]
#[error("host function {0} panicked")]
struct HostPanicked(String);

/// Where discarded output goes.
#[derive(Debug)]
struct Discard;

impl LogSink for Discard {
    fn write(&self, _stream: Stream, _data: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

impl Plugin {
    /// Loads a plugin from module bytes (binary or WebAssembly text). `name` names it in
    /// errors and is its `argv[0]`.
    ///
    /// # Errors
    /// [`PluginError::Module`] for bytes that are not a module, [`PluginError::Compile`],
    /// and the load errors of [`Plugin::from_module`].
    pub fn load(
        host: &PluginHost,
        name: &str,
        bytes: &[u8],
        manifest: &PluginManifest,
    ) -> Result<Self, PluginError> {
        let wasm =
            crate::module::core_module_bytes(name, bytes).map_err(|e| PluginError::Module {
                plugin: name.to_owned(),
                reason: e.to_string(),
            })?;
        let module = host.compile(name, &wasm)?;
        Self::from_module(host, name, &module, manifest, &[])
    }

    /// Loads a plugin from a module file.
    ///
    /// # Errors
    /// [`PluginError::Module`] when the file cannot be read, else as [`Plugin::load`].
    pub fn load_file(
        host: &PluginHost,
        path: &Path,
        manifest: &PluginManifest,
    ) -> Result<Self, PluginError> {
        let name = path.display().to_string();
        let bytes = crate::module::read_file(path).map_err(|e| PluginError::Module {
            plugin: name.clone(),
            reason: e.to_string(),
        })?;
        Self::load(host, &name, &bytes, manifest)
    }

    /// Loads the program of an image (its entrypoint module, read from its layers) as a
    /// plugin; the image's `ENV` comes before the manifest's environment.
    ///
    /// # Errors
    /// [`PluginError::Image`] when the image has no usable program, else as
    /// [`Plugin::load`].
    pub fn load_image(
        host: &PluginHost,
        home: &crate::home::Home,
        reference: &str,
        manifest: &PluginManifest,
    ) -> Result<Self, PluginError> {
        let found = super::image::ImageModule::find(home, reference)?;
        let cached = match &host.0.cache {
            Some(cache) => cache.load_alias(host.engine(), &found.alias),
            None => None,
        };
        let module = match cached {
            Some(module) => module,
            None => {
                let wasm = found.read()?;
                let wasm = crate::module::core_module_bytes(&found.name, &wasm).map_err(|e| {
                    PluginError::Module {
                        plugin: found.name.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let module = host.compile(&found.name, &wasm)?;
                if let Some(cache) = &host.0.cache {
                    cache.set_alias(&found.alias, &wasm);
                }
                module
            }
        };
        Self::from_module(host, &found.name, &module, manifest, &found.env)
    }

    /// Links a compiled module under `manifest`: checks the ABI and every import,
    /// prepares its instances, opens its directories, and makes one instance to prove
    /// that it fits the pool and its limits.
    ///
    /// # Errors
    /// [`PluginError::Abi`], [`PluginError::NotAllowed`],
    /// [`PluginError::UnknownHostFunction`], [`PluginError::UnknownImport`],
    /// [`PluginError::Dir`], [`PluginError::Manifest`], [`PluginError::Instantiate`]
    /// (or a limit's error when the instance alone is past it).
    pub fn from_module(
        host: &PluginHost,
        name: &str,
        module: &Module,
        manifest: &PluginManifest,
        base_env: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let abi = |reason: String| PluginError::Abi {
            plugin: name.to_owned(),
            reason,
        };
        let engine = host.engine().wasmtime();
        let mut linker: Linker<CallState> = Linker::new(engine);
        crate::wasi::p1::add_to_linker(&mut linker, |s: &mut CallState| &mut s.wasi, None)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let host_type = FuncType::new(engine, [ValType::I32, ValType::I32], [ValType::I64]);
        for import in module.imports() {
            match import.module() {
                "wasi_snapshot_preview1" => {}
                IMPORT_MODULE => {
                    let function = import.name();
                    if !manifest.allowed_host_functions.contains(function) {
                        return Err(PluginError::NotAllowed {
                            plugin: name.to_owned(),
                            function: function.to_owned(),
                        });
                    }
                    let Some(f) = host.0.functions.get(function) else {
                        return Err(PluginError::UnknownHostFunction {
                            plugin: name.to_owned(),
                            function: function.to_owned(),
                            registered: host.0.functions.names(),
                        });
                    };
                    match import.ty() {
                        ExternType::Func(ty) if FuncType::eq(&ty, &host_type) => {}
                        other => {
                            return Err(abi(format!(
                                "it imports the host function '{function}' as {}, but host \
                                 functions take (i32, i32) and return i64",
                                describe(&other)
                            )));
                        }
                    }
                    define_host_function(&mut linker, function, f.clone())
                        .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
                }
                other => {
                    return Err(PluginError::UnknownImport {
                        plugin: name.to_owned(),
                        module: other.to_owned(),
                        name: import.name().to_owned(),
                    });
                }
            }
        }
        let pre = linker
            .instantiate_pre(module)
            .map_err(|e| PluginError::Instantiate {
                plugin: name.to_owned(),
                reason: first_line(&format!("{:#}", e.root_cause())),
            })?;

        let export = |export: &str| module.get_export_index(export);
        let memory = match module.get_export("memory") {
            Some(ExternType::Memory(_)) => export("memory"),
            _ => None,
        }
        .ok_or_else(|| abi("it does not export its memory as `memory`".to_owned()))?;
        let alloc_type = FuncType::new(engine, [ValType::I32], [ValType::I32]);
        let alloc = match module.get_export("capsule_alloc") {
            Some(ExternType::Func(ty)) if FuncType::eq(&ty, &alloc_type) => export("capsule_alloc"),
            Some(other) => {
                return Err(abi(format!(
                    "its capsule_alloc is {}, not a function taking i32 and returning i32",
                    describe(&other)
                )));
            }
            None => None,
        }
        .ok_or_else(|| abi("it does not export capsule_alloc(len: i32) -> i32".to_owned()))?;
        let initialize = match module.get_export("_initialize") {
            Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => {
                export("_initialize")
            }
            _ => None,
        };
        let mut functions = BTreeMap::new();
        let mut others = BTreeMap::new();
        for e in module.exports() {
            if let ExternType::Func(ty) = e.ty() {
                if e.name().starts_with('_') || e.name() == "capsule_alloc" {
                    continue;
                }
                if FuncType::eq(&ty, &host_type) {
                    if let Some(index) = export(e.name()) {
                        functions.insert(e.name().to_owned(), index);
                    }
                } else {
                    others.insert(e.name().to_owned(), describe(&ExternType::Func(ty)));
                }
            }
        }

        let (vfs, preopens) = filesystem(name, manifest)?;
        let plugin = Self(Arc::new(Inner {
            name: name.to_owned(),
            host: host.clone(),
            pre,
            functions,
            others,
            alloc,
            memory,
            initialize,
            vfs: Arc::new(vfs),
            preopens,
            args: vec![name.to_owned()],
            env: manifest.environ(base_env),
            limits: manifest.limits,
            forward_output: manifest.forward_output,
            discard: Arc::new(Discard),
        }));
        // One instance now: a module too big for the pool or its memory limit, or a
        // directory that is not one, fails the load instead of every call.
        let _slot = host
            .0
            .slots
            .acquire(None)
            .map_err(|e| plugin.no_slot("(load)", e))?;
        let mut store = plugin.store("(load)", None)?;
        if let Err(e) = plugin.0.pre.instantiate(&mut store) {
            return Err(plugin.failure("(load)", &store, &e));
        }
        drop(store);
        Ok(plugin)
    }

    /// The name it was loaded as.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Its plugin functions, sorted.
    pub fn functions(&self) -> Vec<String> {
        self.0.functions.keys().cloned().collect()
    }

    /// The limits of its calls.
    pub fn limits(&self) -> PluginLimits {
        self.0.limits
    }

    /// Calls `function` with `input` in a fresh instance and returns its output.
    ///
    /// # Errors
    /// [`PluginError::NoSuchFunction`]; the call's failure: [`PluginError::Trap`],
    /// [`PluginError::OutOfFuel`], [`PluginError::Deadline`],
    /// [`PluginError::OutOfMemory`], [`PluginError::Exited`], [`PluginError::HostPanic`],
    /// [`PluginError::Abi`]; the deadline passing while it waits for a slot
    /// ([`PluginError::Deadline`]); a nested call that could only wait forever
    /// ([`PluginError::NestedCallDeadlock`]); or the plugin's own [`PluginError::Guest`]
    /// error result.
    pub fn call(&self, function: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let inner = &*self.0;
        let Some(export) = inner.functions.get(function) else {
            if let Some(ty) = inner.others.get(function) {
                return Err(PluginError::Abi {
                    plugin: inner.name.clone(),
                    reason: format!(
                        "its export '{function}' is {ty}, but plugin functions take (i32, i32) \
                         and return i64"
                    ),
                });
            }
            return Err(PluginError::NoSuchFunction {
                plugin: inner.name.clone(),
                function: function.to_owned(),
                functions: self.functions(),
            });
        };
        // The deadline counts from now: waiting for a slot uses it up too.
        let until = inner
            .limits
            .deadline
            .and_then(|deadline| Instant::now().checked_add(deadline));
        let _slot = inner
            .host
            .0
            .slots
            .acquire(until)
            .map_err(|e| self.no_slot(function, e))?;
        let mut store = self.store(function, until)?;
        match self.run(&mut store, export, input) {
            Ok(output) => Ok(output),
            Err(e) => Err(self.failure(function, &store, &e)),
        }
    }

    /// Calls `function` with `input` encoded as JSON and decodes its output from JSON.
    ///
    /// # Errors
    /// [`PluginError::Json`] when either side is not the expected JSON, else as
    /// [`Plugin::call`].
    pub fn call_json<T: serde::Serialize + ?Sized, R: serde::de::DeserializeOwned>(
        &self,
        function: &str,
        input: &T,
    ) -> Result<R, PluginError> {
        let json = |what, source| PluginError::Json {
            plugin: self.0.name.clone(),
            function: function.to_owned(),
            what,
            source,
        };
        let bytes = serde_json::to_vec(input).map_err(|e| json("the input", e))?;
        let output = self.call(function, &bytes)?;
        serde_json::from_slice(&output).map_err(|e| json("the output", e))
    }

    /// A fresh store for one call, its limits set: it is interrupted at `until`.
    fn store(
        &self,
        function: &str,
        until: Option<Instant>,
    ) -> Result<Store<CallState>, PluginError> {
        let inner = &*self.0;
        let (stdout, stderr, kept) = if inner.forward_output {
            (Output::Stderr, Output::Stderr, None)
        } else {
            let kept = Capture::default();
            (
                Output::Sink {
                    sink: inner.discard.clone(),
                    stream: Stream::Stdout,
                },
                Output::Capture {
                    buf: kept.clone(),
                    limit: STDERR_KEPT,
                },
                Some(kept),
            )
        };
        let wasi = WasiP1::new(
            inner.args.clone(),
            inner.env.clone(),
            inner.vfs.clone(),
            &inner.preopens,
            Input::Bytes {
                data: Vec::new(),
                pos: 0,
            },
            stdout,
            stderr,
        )
        .map_err(|e| PluginError::Manifest {
            plugin: inner.name.clone(),
            reason: format!("{function}: cannot open its directories: {e}"),
        })?;
        let mut store = Store::new(
            inner.host.engine().wasmtime(),
            CallState {
                wasi,
                limiter: MemoryLimiter::new(inner.limits.memory),
                stderr: kept,
            },
        );
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(inner.limits.fuel.unwrap_or(u64::MAX))
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let ticks = match until {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                u64::try_from(left.as_nanos().div_ceil(TICK.as_nanos())).unwrap_or(u64::MAX / 2) + 1
            }
            None => u64::MAX / 2,
        };
        store.set_epoch_deadline(ticks.min(u64::MAX / 2));
        Ok(store)
    }

    /// Instantiates, initializes, passes the input, calls and reads the output.
    fn run(
        &self,
        store: &mut Store<CallState>,
        export: &ModuleExport,
        input: &[u8],
    ) -> wasmtime::Result<Vec<u8>> {
        let inner = &*self.0;
        let instance = inner.pre.instantiate(&mut *store)?;
        if let Some(init) = &inner.initialize {
            typed::<(), ()>(store, &instance, init)?.call(&mut *store, ())?;
        }
        let memory = instance
            .get_module_export(&mut *store, &inner.memory)
            .and_then(Extern::into_memory)
            .ok_or_else(|| wasmtime::Error::new(AbiViolation("no memory".into())))?;
        let len = i32::try_from(input.len()).map_err(|_| {
            wasmtime::Error::new(AbiViolation(format!(
                "an input of {} bytes is more than a wasm32 plugin can take",
                input.len()
            )))
        })?;
        let ptr = if input.is_empty() {
            0
        } else {
            let alloc = typed::<i32, i32>(store, &instance, &inner.alloc)?;
            let ptr = alloc.call(&mut *store, len)?;
            memory
                .write(&mut *store, ptr.cast_unsigned() as usize, input)
                .map_err(|_| {
                    wasmtime::Error::new(AbiViolation(format!(
                        "capsule_alloc({len}) returned {ptr:#x}, which is not {len} bytes of its memory"
                    )))
                })?;
            ptr
        };
        let packed =
            typed::<(i32, i32), i64>(store, &instance, export)?.call(&mut *store, (ptr, len))?;
        let (out_ptr, out_len, is_error) = unpack(packed.cast_unsigned());
        let bytes = memory
            .data(&*store)
            .get(out_ptr as usize..out_ptr as usize + out_len as usize)
            .ok_or_else(|| {
                wasmtime::Error::new(AbiViolation(format!(
                    "its result points at {out_len} bytes at {out_ptr:#x}, outside its memory"
                )))
            })?
            .to_vec();
        if is_error {
            return Err(wasmtime::Error::new(GuestError(
                String::from_utf8_lossy(&bytes).into_owned(),
            )));
        }
        Ok(bytes)
    }

    /// The error of a call that got no instance slot.
    fn no_slot(&self, function: &str, why: NoSlot) -> PluginError {
        let inner = &*self.0;
        match why {
            NoSlot::Deadline => PluginError::Deadline {
                plugin: inner.name.clone(),
                function: function.to_owned(),
                deadline: inner.limits.deadline.unwrap_or_default(),
            },
            NoSlot::Nested { total, held_here } => PluginError::NestedCallDeadlock {
                plugin: inner.name.clone(),
                function: function.to_owned(),
                max_instances: u32::try_from(total).unwrap_or(u32::MAX),
                held_by_caller: u32::try_from(held_here).unwrap_or(u32::MAX),
            },
        }
    }

    /// Turns the error that ended a call into its [`PluginError`].
    fn failure(
        &self,
        function: &str,
        store: &Store<CallState>,
        error: &wasmtime::Error,
    ) -> PluginError {
        let inner = &*self.0;
        let plugin = inner.name.clone();
        let function = function.to_owned();
        if let Some(GuestError(message)) = error.downcast_ref::<GuestError>() {
            return PluginError::Guest {
                plugin,
                function,
                message: message.clone(),
            };
        }
        if let Some(AbiViolation(reason)) = error.downcast_ref::<AbiViolation>() {
            return PluginError::Abi {
                plugin,
                reason: format!("{function}: {reason}"),
            };
        }
        if let Some(HostPanicked(host_function)) = error.downcast_ref::<HostPanicked>() {
            return PluginError::HostPanic {
                plugin,
                function,
                host_function: host_function.clone(),
            };
        }
        // What each ending means for a call, and how that differs from a run: see
        // `crate::ending`.
        let trap = match ending::classify(error) {
            Ending::Exit(status) => {
                return PluginError::Exited {
                    plugin,
                    function,
                    status,
                };
            }
            Ending::OutOfFuel => {
                return PluginError::OutOfFuel {
                    plugin,
                    function,
                    fuel: inner.limits.fuel.unwrap_or(u64::MAX),
                };
            }
            Ending::Interrupt => {
                return PluginError::Deadline {
                    plugin,
                    function,
                    deadline: inner.limits.deadline.unwrap_or_default(),
                };
            }
            _ if store.data().limiter.refused() => {
                return PluginError::OutOfMemory {
                    plugin,
                    function,
                    limit: inner.limits.memory,
                };
            }
            Ending::Host(reason) if function == "(load)" => {
                return PluginError::Instantiate { plugin, reason };
            }
            Ending::Host(reason) => {
                return PluginError::Trap {
                    plugin,
                    function,
                    reason,
                };
            }
            Ending::Trap(trap) => trap,
        };
        let mut reason = trap.to_string();
        // A Rust guest says why it panicked on stderr before it traps.
        if let Some(said) = last_stderr_line(store) {
            reason = format!("{reason} (stderr: {said})");
        }
        PluginError::Trap {
            plugin,
            function,
            reason,
        }
    }
}

/// The plugin's own error result.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GuestError(String);

/// The last line a call wrote to its (kept) stderr.
fn last_stderr_line(store: &Store<CallState>) -> Option<String> {
    let text = store.data().stderr.as_ref()?.contents();
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("note:"))
        .map(str::to_owned)
}

/// Defines the import `capsule_host::name` as a call of `f` under the ABI.
fn define_host_function(
    linker: &mut Linker<CallState>,
    name: &str,
    f: super::HostFn,
) -> wasmtime::Result<()> {
    let owned = name.to_owned();
    linker.func_wrap(
        IMPORT_MODULE,
        name,
        move |mut caller: Caller<'_, CallState>, ptr: i32, len: i32| -> wasmtime::Result<i64> {
            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                return Err(wasmtime::Error::new(AbiViolation(
                    "it calls a host function but exports no memory".into(),
                )));
            };
            let start = ptr.cast_unsigned() as usize;
            let input = memory
                .data(&caller)
                .get(start..start + len.cast_unsigned() as usize)
                .ok_or_else(|| {
                    wasmtime::Error::new(AbiViolation(format!(
                        "it passed {owned} {len} bytes at {ptr:#x}, outside its memory"
                    )))
                })?
                .to_vec();
            let (output, is_error) =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input))) {
                    Ok(Ok(output)) => (output, false),
                    Ok(Err(message)) => (message.into_bytes(), true),
                    Err(_) => return Err(wasmtime::Error::new(HostPanicked(owned.clone()))),
                };
            let out_len = u32::try_from(output.len())
                .ok()
                .filter(|&n| n <= 0x7fff_ffff)
                .ok_or_else(|| {
                    wasmtime::Error::new(AbiViolation(format!(
                        "{owned} returned {} bytes, more than a wasm32 plugin can take",
                        output.len()
                    )))
                })?;
            let out_ptr = if output.is_empty() {
                0
            } else {
                let alloc = caller
                    .get_export("capsule_alloc")
                    .and_then(Extern::into_func)
                    .ok_or_else(|| wasmtime::Error::new(AbiViolation("no capsule_alloc".into())))?
                    .typed::<i32, i32>(&caller)?;
                let out_ptr = alloc.call(&mut caller, out_len.cast_signed())?;
                memory
                    .write(&mut caller, out_ptr.cast_unsigned() as usize, &output)
                    .map_err(|_| {
                        wasmtime::Error::new(AbiViolation(format!(
                            "capsule_alloc({out_len}) returned {out_ptr:#x}, which is not \
                             {out_len} bytes of its memory"
                        )))
                    })?;
                out_ptr.cast_unsigned()
            };
            Ok(pack(out_ptr, out_len, is_error).cast_signed())
        },
    )?;
    Ok(())
}

/// The namespace of a plugin: an empty read-only `/` with the manifest's directories
/// mounted, each a preopen.
fn filesystem(
    plugin: &str,
    manifest: &PluginManifest,
) -> Result<(Vfs, Vec<(String, String)>), PluginError> {
    let mut vfs = Vfs::new(Arc::new(TmpFs::new(0, 1)), true);
    let mut preopens = Vec::new();
    for (device, grant) in (2..).zip(&manifest.dirs) {
        let guest = GuestPath::parse(&grant.guest).map_err(|e| PluginError::Manifest {
            plugin: plugin.to_owned(),
            reason: e.to_string(),
        })?;
        let dir = crate::ambient::open_dir(&grant.host).map_err(|source| PluginError::Dir {
            plugin: plugin.to_owned(),
            host: grant.host.display().to_string(),
            guest: guest.to_string(),
            source,
        })?;
        vfs.mount(
            guest.as_str(),
            Arc::new(HostDir::new(dir, device)),
            grant.read_only,
        );
        preopens.push((
            guest.as_str().to_owned(),
            guest.as_str().trim_start_matches('/').to_owned(),
        ));
    }
    Ok((vfs, preopens))
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |types: &mut dyn Iterator<Item = ValType>| {
                types.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            format!(
                "a function taking ({}) and returning ({})",
                list(&mut f.params()),
                list(&mut f.results())
            )
        }
        ExternType::Memory(_) => "a memory".to_owned(),
        ExternType::Table(_) => "a table".to_owned(),
        ExternType::Global(_) => "a global".to_owned(),
        ExternType::Tag(_) => "a tag".to_owned(),
    }
}

/// The function `index` names in `instance`, typed without checking its type again: a
/// plugin's exports are checked once, when it is loaded ([`Plugin`]'s `functions`
/// take (i32, i32) and return i64, `capsule_alloc` takes and returns i32,
/// `_initialize` takes and returns nothing), and a check per call cost a tenth of a
/// pooled call.
#[allow(
    unsafe_code,
    reason = "TypedFunc::new_unchecked: the export's type was checked when the plugin was loaded"
)]
fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &mut Store<CallState>,
    instance: &wasmtime::Instance,
    index: &ModuleExport,
) -> wasmtime::Result<wasmtime::TypedFunc<P, R>> {
    let func = instance
        .get_module_export(&mut *store, index)
        .and_then(Extern::into_func)
        .ok_or_else(|| wasmtime::Error::new(AbiViolation("an export is missing".into())))?;
    debug_assert!(func.typed::<P, R>(&*store).is_ok(), "checked at load");
    // SAFETY: `index` is an export of the module `instance` was made from, whose type
    // was checked against `P -> R` when the plugin was loaded (see above).
    Ok(unsafe { wasmtime::TypedFunc::new_unchecked(&*store, func) })
}
