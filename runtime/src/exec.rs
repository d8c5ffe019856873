//! Running a module: link WASI, check imports, instantiate, call the entry, and turn
//! whatever happened into an [`ExitStatus`].

use crate::ending::{self, Ending};
use crate::engine::{Deadline, Engine, Interrupt, Interruption};
use crate::spec::{Entry, GuestPath, RunSpec, UnknownImports};
use crate::wasi::{self, WasiState};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use wasmtime::{ExternType, Linker, Module, Store, Val, ValType};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The guest returned from its entry (0) or called `proc_exit` with a status in
    /// `0..=255`.
    Exited(u8),
    /// The guest trapped.
    Trapped(TrapReport),
    /// The guest called `proc_exit` with a status outside `0..=255`.
    InvalidExit(u32),
    /// The guest was stopped from outside (`stop`, `kill`, `--timeout`).
    Interrupted(Interruption),
}

impl ExitStatus {
    /// Whether the guest exited with status 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited(0))
    }

    /// The exit status, if the guest exited normally.
    pub fn code(&self) -> Option<u8> {
        match self {
            ExitStatus::Exited(code) => Some(*code),
            _ => None,
        }
    }
}

/// A trap: its one-line reason and the wasm frames that led to it (innermost first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapReport {
    pub reason: String,
    pub frames: Vec<Frame>,
}

/// One wasm frame of a trap's backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The module's name for itself, if it has one.
    pub module: Option<String>,
    /// The function's index in the module.
    pub func_index: u32,
    /// The function's name from the name section, if present.
    pub func_name: Option<String>,
    /// Byte offset of the trapping instruction in the module, if known.
    pub offset: Option<usize>,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "{offset:#8x} - ")?,
            None => write!(f, "{:>8} - ", "?")?,
        }
        if let Some(module) = &self.module {
            write!(f, "{module}!")?;
        }
        match &self.func_name {
            Some(name) => f.write_str(name),
            None => write!(f, "<wasm function {}>", self.func_index),
        }
    }
}

/// What a run produced besides its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    pub status: ExitStatus,
    /// Values returned by an invoked export (`app.wasm#add`), formatted as wasm values.
    pub results: Vec<String>,
    /// Captured stdout and stderr when the run used [`Stdio::Capture`].
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `Some(limit)` when the guest did not succeed after the memory limit refused it
    /// memory (a `memory.grow` or `table.grow` past `--memory`, or a module whose
    /// initial memory is already past it): the run ended out of memory.
    pub out_of_memory: Option<u64>,
}

/// Errors that stop a module from running at all (as opposed to a guest failing, which
/// is an [`ExitStatus`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Wasi(#[from] wasi::WasiError),
    #[error("cannot read the program {path} in the container's filesystem: {source}")]
    Program {
        path: GuestPath,
        #[source]
        source: crate::fs::FsError,
    },
    #[error(transparent)]
    Command(#[from] crate::container::command::CommandError),
    #[error(transparent)]
    Module(#[from] crate::module::ModuleError),
    #[error("{name}: {reason}")]
    Compile { name: String, reason: String },
    #[error(
        "the module imports {} that Capsule does not provide: {}{}; to run it anyway with \
         stubs that trap when called, pass --unknown-imports trap",
        plural(names.len(), "item"),
        names.join(", "),
        preview0_hint(names)
    )]
    UnknownImports { names: Vec<String> },
    #[error("the module imports non-function items that cannot be stubbed: {}", names.join(", "))]
    UnknownNonFunctionImports { names: Vec<String> },
    #[error(
        "the module is a reactor (it has no _start); name the export to call as \
         MODULE#EXPORT (its exported functions: {})",
        if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
    )]
    Reactor { exports: Vec<String> },
    #[error(
        "the module has neither _start nor _initialize, so it is not a WASI command or reactor"
    )]
    NoEntry,
    #[error(
        "the module has no exported function '{name}' (its exported functions: {})",
        if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
    )]
    MissingExport { name: String, exports: Vec<String> },
    #[error("export '{name}' takes {expected} argument(s) but {given} were given")]
    ArgCount {
        name: String,
        expected: usize,
        given: usize,
    },
    #[error("argument '{value}' for export '{name}' is not a valid {ty}")]
    BadArg {
        name: String,
        value: String,
        ty: String,
    },
    #[error("export '{name}' takes a {ty} parameter, which cannot be given on the command line")]
    UnsupportedParam { name: String, ty: String },
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    #[error("cannot set up the WASI host: {0}")]
    Link(String),
    /// A program Capsule cannot run as it is (a component of a kind or WASI version it
    /// does not run), with what to do.
    #[error("{0}")]
    Unsupported(String),
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn preview0_hint(names: &[String]) -> &'static str {
    if names.iter().any(|n| n.starts_with("wasi_unstable::")) {
        " (wasi_unstable is the old preview0 ABI; rebuild for wasm32-wasip1)"
    } else {
        ""
    }
}

struct StoreData {
    wasi: WasiState,
    memory: MemoryLimiter,
}

/// The default of `--memory`: 4 GiB, what one 32-bit linear memory can address, so
/// ordinary guests run as under wasmtime, while memory64 or multi-memory guests and
/// tables are still bounded.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

/// Bytes a table element is counted as: wasmtime keeps a pointer per element.
const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

/// What a run in a container counts as it goes: the memory of every program in a
/// container together is held to the container's `--memory`, and `capsule stats` and
/// `top` read these while they run.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Bytes of linear memory and tables of every program of the container.
    pub container_memory: Arc<AtomicU64>,
    /// Bytes of linear memory and tables of this program.
    pub memory: Arc<AtomicU64>,
    /// Descriptors this program holds open.
    pub fds: Arc<AtomicUsize>,
    /// The container's freeze gate ([`crate::wasi::freeze`]).
    pub freeze: Arc<crate::wasi::freeze::Freeze>,
}

/// `--memory`: the bytes of all linear memories and tables of a run together — of all
/// the programs of its container, when the gauges are shared. A grow past it is
/// refused (`memory.grow` returns -1, `table.grow` -1), and remembered, so that a
/// guest dying after it is reported out of memory. What a program holds is given
/// back to its container when it ends.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: u64,
    /// This program's bytes.
    used: u64,
    /// The last grow allowed, taken back if wasmtime then fails it.
    pending: u64,
    refused: bool,
    /// The container's gauges, when the program runs in one.
    gauges: Option<Gauges>,
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        if let Some(gauges) = &self.gauges {
            gauges
                .container_memory
                .fetch_sub(self.used, Ordering::AcqRel);
            gauges.memory.store(0, Ordering::Release);
        }
    }
}

impl MemoryLimiter {
    /// A limit of `limit` bytes for one program alone.
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: 0,
            pending: 0,
            refused: false,
            gauges: None,
        }
    }

    /// A limit of `limit` bytes for all the programs sharing `gauges` together.
    pub(crate) fn shared(limit: u64, gauges: Gauges) -> Self {
        Self {
            gauges: Some(gauges),
            ..Self::new(limit)
        }
    }

    /// The spec's `--memory` (default [`DEFAULT_MEMORY_LIMIT`]), for this program alone
    /// or, with `gauges`, for all the programs of its container together.
    pub(crate) fn for_run(spec: &RunSpec, gauges: Option<&Gauges>) -> Self {
        let limit = spec.limits.memory.unwrap_or(DEFAULT_MEMORY_LIMIT);
        match gauges {
            Some(gauges) => Self::shared(limit, gauges.clone()),
            None => Self::new(limit),
        }
    }

    fn grow(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> bool {
        if maximum.is_some_and(|max| desired > max) {
            // Past the memory's own maximum: wasmtime refuses it anyway, not our limit.
            return false;
        }
        let delta = desired.saturating_sub(current);
        let limit = self.limit;
        let fits = |total: u64| total.checked_add(delta).filter(|t| *t <= limit);
        let allowed = match &self.gauges {
            Some(gauges) => gauges
                .container_memory
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, fits)
                .is_ok(),
            None => fits(self.used).is_some(),
        };
        if !allowed {
            self.refused = true;
            return false;
        }
        self.used += delta;
        self.pending = delta;
        if let Some(gauges) = &self.gauges {
            gauges.memory.store(self.used, Ordering::Release);
        }
        true
    }

    fn failed(&mut self) {
        self.used = self.used.saturating_sub(self.pending);
        if let Some(gauges) = &self.gauges {
            gauges
                .container_memory
                .fetch_sub(self.pending, Ordering::AcqRel);
            gauges.memory.store(self.used, Ordering::Release);
        }
        self.pending = 0;
    }

    /// Whether a grow was refused for the limit.
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current as u64, desired as u64, maximum.map(|m| m as u64)))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = |n: usize| (n as u64).saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(self.grow(bytes(current), bytes(desired), maximum.map(bytes)))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed();
        Ok(())
    }
}

/// Runs a compiled module in a WASI world made for `spec` (the one runner,
/// [`crate::container::runner`], assembles both), until it ends or `interrupt` (or the
/// spec's `--timeout`) stops it, within the spec's `--memory` (default
/// [`DEFAULT_MEMORY_LIMIT`]) and `--fuel` (the engine must meter fuel exactly when the
/// spec asks for it).
///
/// # Errors
/// [`RunError`] when the module cannot start; a guest that starts and then fails yields
/// `Ok` with a non-success [`ExitStatus`].
pub fn run_in(
    engine: &Engine,
    module: &Module,
    spec: &RunSpec,
    mut wasi: WasiState,
    captured: Option<wasi::Captured>,
    interrupt: &Interrupt,
    gauges: Option<&Gauges>,
) -> Result<RunOutput, RunError> {
    let mut linker: Linker<StoreData> = Linker::new(engine.wasmtime());
    wasi::add_to_linker(
        &mut linker,
        |d: &mut StoreData| &mut d.wasi,
        gauges.map(|g| g.freeze.clone()),
    )
    .map_err(|e| RunError::Link(format!("{e:#}")))?;
    if let Some(gauges) = gauges {
        wasi.share(gauges);
    }
    let memory = MemoryLimiter::for_run(spec, gauges);
    let mut store = Store::new(engine.wasmtime(), StoreData { wasi, memory });
    store.limiter(|d: &mut StoreData| &mut d.memory);
    arm(&mut store, engine, spec, interrupt)?;
    store.data_mut().wasi.set_interrupt(interrupt.clone());

    check_imports(&mut linker, &mut store, module, spec.unknown_imports)?;

    let _deadline = spec
        .limits
        .timeout
        .map(|timeout| Deadline::start(interrupt, timeout));
    let (status, results) = match instantiate_and_call(&linker, &mut store, module, spec) {
        Ok(results) => (ExitStatus::Exited(0), results),
        Err(Outcome::Status(status)) => (status, Vec::new()),
        Err(Outcome::Error(RunError::Instantiate(reason))) if store.data().memory.refused => {
            // Its initial memories or tables alone are past the limit.
            let status = ExitStatus::Trapped(TrapReport {
                reason: format!("cannot instantiate the module: {reason}"),
                frames: Vec::new(),
            });
            (status, Vec::new())
        }
        Err(Outcome::Error(e)) => return Err(e),
    };
    Ok(finish(
        spec,
        status,
        results,
        store.data().memory.refused,
        captured,
    ))
}

/// What a run ended with, as reported: the fuel it had, whether `--memory` was why.
fn finish(
    spec: &RunSpec,
    status: ExitStatus,
    results: Vec<String>,
    memory_refused: bool,
    captured: Option<wasi::Captured>,
) -> RunOutput {
    let memory_limit = spec.limits.memory.unwrap_or(DEFAULT_MEMORY_LIMIT);
    let status = match status {
        // The trap does not know how much fuel the run had.
        ExitStatus::Interrupted(Interruption::OutOfFuel(_)) => {
            ExitStatus::Interrupted(Interruption::OutOfFuel(spec.limits.fuel.unwrap_or(0)))
        }
        status => status,
    };
    let out_of_memory = (memory_refused && !status.success()).then_some(memory_limit);
    let (stdout, stderr) = captured.map(|c| c.contents()).unwrap_or_default();
    RunOutput {
        status,
        results,
        stdout,
        stderr,
        out_of_memory,
    }
}

/// The limits every run's store has: `--fuel`, and the epoch callback that ends the
/// guest when `interrupt` fires (a stop, `--timeout`).
fn arm<T: 'static>(
    store: &mut Store<T>,
    engine: &Engine,
    spec: &RunSpec,
    interrupt: &Interrupt,
) -> Result<(), RunError> {
    interrupt.attach(engine.wasmtime());
    let watched = interrupt.clone();
    arm_with(store, engine, spec, move |_| watched.reason())
}

/// As [`arm`], with the guest ended when `reason` gives one (checked at each epoch
/// tick; the interrupts that can fire must have the engine attached).
pub(crate) fn arm_with<T: 'static>(
    store: &mut Store<T>,
    engine: &Engine,
    spec: &RunSpec,
    reason: impl Fn(&T) -> Option<Interruption> + Send + Sync + 'static,
) -> Result<(), RunError> {
    match (spec.limits.fuel, engine.fuel()) {
        (Some(fuel), true) => store
            .set_fuel(fuel)
            .map_err(|e| RunError::Link(format!("{e:#}")))?,
        (None, false) => {}
        (Some(_), false) | (None, true) => {
            return Err(RunError::Link(
                "the engine meters fuel exactly when --fuel is given; this run and its engine disagree"
                    .to_owned(),
            ));
        }
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |store| match reason(store.data()) {
        Some(why) => Err(wasmtime::Error::new(Interrupted(why))),
        None => Ok(wasmtime::UpdateDeadline::Continue(1)),
    });
    Ok(())
}

/// A component's store data: its WASI 0.2 world, its share of `--memory`, and its
/// outgoing `wasi:http` requests (through the container's network gate).
struct ComponentData {
    wasi: wasi::ComponentState,
    memory: MemoryLimiter,
    http: wasmtime_wasi_http::WasiHttpCtx,
    hooks: wasi::p2::http_out::Outgoing,
}

impl wasi::p2::HasWasiP2 for ComponentData {
    fn p2(&mut self) -> &mut wasi::p2::WasiP2 {
        self.wasi.ctx()
    }
}

impl wasmtime_wasi_http::WasiHttpView for ComponentData {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: self.wasi.ctx().table(),
            hooks: &mut self.hooks,
        }
    }
}

/// Runs a `wasi:cli/command` component as [`run_in`] runs a module: the same limits,
/// the same statuses (`wasi:cli/exit`'s code, or 1 when `run` returns an error).
///
/// # Errors
/// As [`run_in`]; a component that is not a command, or imports what Capsule does not
/// provide, is refused before it starts.
pub fn run_component_in(
    engine: &Engine,
    component: &wasmtime::component::Component,
    spec: &RunSpec,
    mut wasi: wasi::ComponentState,
    captured: Option<wasi::Captured>,
    interrupt: &Interrupt,
    gauges: Option<&Gauges>,
) -> Result<RunOutput, RunError> {
    use wasmtime::component::Linker;
    let mut linker: Linker<ComponentData> = Linker::new(engine.wasmtime());
    wasi::p2::add_to_linker(&mut linker).map_err(|e| RunError::Link(format!("{e:#}")))?;
    // `wasi:http` as `wasmtime run -S http` links it: outgoing requests, gated.
    wasi::p2::http_out::add_to_linker(&mut linker).map_err(|e| RunError::Link(format!("{e:#}")))?;
    if let Some(gauges) = gauges {
        wasi.share(gauges);
    }
    let memory = MemoryLimiter::for_run(spec, gauges);
    crate::component::check_command(engine, component)?;
    crate::component::check_imports(engine, &mut linker, component, spec.unknown_imports)?;
    let stopping = {
        let interrupt = interrupt.clone();
        std::sync::Arc::new(move || interrupt.reason().is_some())
    };
    let hooks = wasi::p2::http_out::Outgoing::new(wasi.ctx().gate().clone()).until(stopping);
    let data = ComponentData {
        wasi,
        memory,
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        hooks,
    };
    let mut store = Store::new(engine.wasmtime(), data);
    store.limiter(|d: &mut ComponentData| &mut d.memory);
    arm(&mut store, engine, spec, interrupt)?;
    let _deadline = spec
        .limits
        .timeout
        .map(|timeout| Deadline::start(interrupt, timeout));
    let status = match crate::component::run_command(&linker, &mut store, component) {
        Ok(status) => status,
        Err(error) => match guest_failure(error, false) {
            Outcome::Status(status) => status,
            Outcome::Error(e) => return Err(e),
        },
    };
    Ok(finish(
        spec,
        status,
        Vec::new(),
        store.data().memory.refused,
        captured,
    ))
}

pub(crate) enum Outcome {
    Status(ExitStatus),
    Error(RunError),
}

impl From<RunError> for Outcome {
    fn from(e: RunError) -> Self {
        Outcome::Error(e)
    }
}

fn instantiate_and_call(
    linker: &Linker<StoreData>,
    store: &mut Store<StoreData>,
    module: &Module,
    spec: &RunSpec,
) -> Result<Vec<String>, Outcome> {
    let exports = exported_functions(module);
    let has = |name: &str| exports.iter().any(|e| e == name);
    // Decide what to call before running any guest code.
    let (init, target) = match &spec.entry {
        Entry::Start if has("_start") => (None, "_start".to_owned()),
        Entry::Start if has("_initialize") => {
            let exports = exports
                .iter()
                .filter(|e| !e.starts_with('_'))
                .cloned()
                .collect();
            return Err(RunError::Reactor { exports }.into());
        }
        Entry::Start => return Err(RunError::NoEntry.into()),
        Entry::Export(name) | Entry::Program(name) if !has(name) => {
            return Err(RunError::MissingExport {
                name: name.clone(),
                exports,
            }
            .into());
        }
        Entry::Export(name) | Entry::Program(name) => {
            (has("_initialize").then_some("_initialize"), name.clone())
        }
    };

    let instance = linker
        .instantiate(&mut *store, module)
        .map_err(|e| guest_failure(e, true))?;
    if let Some(init) = init {
        let func = instance
            .get_func(&mut *store, init)
            .ok_or(RunError::NoEntry)?;
        func.call(&mut *store, &[], &mut [])
            .map_err(|e| guest_failure(e, false))?;
    }
    let func = instance
        .get_func(&mut *store, &target)
        .ok_or_else(|| RunError::MissingExport {
            name: target.clone(),
            exports: exports.clone(),
        })?;
    let ty = func.ty(&*store);
    // An export without parameters sees the arguments only as its argv; one with
    // parameters takes them from the arguments after argv[0] (argv holds them too).
    let takes_params = ty.params().len() > 0;
    let params = match spec.entry {
        Entry::Export(_) | Entry::Program(_) if takes_params => {
            parse_params(&target, ty.params(), spec.args.get(1..).unwrap_or_default())?
        }
        _ => Vec::new(),
    };
    let mut results: Vec<Val> = ty
        .results()
        .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
        .collect();
    func.call(&mut *store, &params, &mut results)
        .map_err(|e| guest_failure(e, false))?;
    if let (Entry::Program(_), false, [Val::I32(status)]) =
        (&spec.entry, takes_params, results.as_slice())
    {
        // A program's exit status, as main's return value is a command's.
        let status = *status as u32;
        return Err(Outcome::Status(match u8::try_from(status) {
            Ok(code) => ExitStatus::Exited(code),
            Err(_) => ExitStatus::InvalidExit(status),
        }));
    }
    Ok(results.iter().map(format_val).collect())
}

/// The error the epoch callback ends an interrupted guest with.
#[derive(Debug, thiserror::Error)]
#[error("guest {0}")]
struct Interrupted(Interruption);

/// What an error from instantiating or calling guest code means for a run (see
/// [`crate::ending`] for how this differs from a plugin call).
pub(crate) fn guest_failure(error: wasmtime::Error, instantiating: bool) -> Outcome {
    if let Some(Interrupted(why)) = error.downcast_ref::<Interrupted>() {
        return Outcome::Status(ExitStatus::Interrupted(*why));
    }
    let frames: Vec<Frame> = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .map(|f| Frame {
                    module: f.module().name().map(str::to_owned),
                    func_index: f.func_index(),
                    func_name: f.func_name().map(demangle),
                    offset: f.module_offset(),
                })
                .collect()
        })
        .unwrap_or_default();
    // wasmtime's Display for a trap already reads "wasm trap: ...".
    let reason = match ending::classify(&error) {
        Ending::Exit(status) => {
            return Outcome::Status(match u8::try_from(status) {
                Ok(code) => ExitStatus::Exited(code),
                Err(_) => ExitStatus::InvalidExit(status),
            });
        }
        Ending::OutOfFuel => {
            return Outcome::Status(ExitStatus::Interrupted(Interruption::OutOfFuel(0)));
        }
        Ending::Interrupt => wasmtime::Trap::Interrupt.to_string(),
        Ending::Trap(trap) => trap.to_string(),
        Ending::Host(reason) if instantiating && frames.is_empty() => {
            return Outcome::Error(RunError::Instantiate(reason));
        }
        // A host function failed in a way that is not a WASI errno (a stub for an
        // unknown import, a host fault): the guest's run ends as a trap would.
        Ending::Host(reason) => reason,
    };
    Outcome::Status(ExitStatus::Trapped(TrapReport { reason, frames }))
}

/// Rust symbol names (legacy and v0 mangling) as people read them; others unchanged.
fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(demangled) => format!("{demangled:#}"),
        Err(_) => name.to_owned(),
    }
}

fn check_imports(
    linker: &mut Linker<StoreData>,
    store: &mut Store<StoreData>,
    module: &Module,
    policy: UnknownImports,
) -> Result<(), RunError> {
    let mut missing_funcs = Vec::new();
    let mut missing_other = Vec::new();
    for import in module.imports() {
        if linker.get_by_import(&mut *store, &import).is_some() {
            continue;
        }
        let name = format!("{}::{}", import.module(), import.name());
        match import.ty() {
            ExternType::Func(_) => missing_funcs.push(name),
            _ => missing_other.push(name),
        }
    }
    if !missing_other.is_empty() {
        return Err(RunError::UnknownNonFunctionImports {
            names: missing_other,
        });
    }
    if missing_funcs.is_empty() {
        return Ok(());
    }
    match policy {
        UnknownImports::Refuse => Err(RunError::UnknownImports {
            names: missing_funcs,
        }),
        UnknownImports::Trap => {
            tracing::debug!(imports = ?missing_funcs, "linking unknown imports to trapping stubs");
            linker
                .define_unknown_imports_as_traps(module)
                .map_err(|e| RunError::Link(format!("{e:#}")))
        }
    }
}

fn exported_functions(module: &Module) -> Vec<String> {
    module
        .exports()
        .filter(|e| matches!(e.ty(), ExternType::Func(_)))
        .map(|e| e.name().to_owned())
        .collect()
}

fn parse_params(
    name: &str,
    types: impl ExactSizeIterator<Item = ValType>,
    args: &[String],
) -> Result<Vec<Val>, RunError> {
    if types.len() != args.len() {
        return Err(RunError::ArgCount {
            name: name.to_owned(),
            expected: types.len(),
            given: args.len(),
        });
    }
    types
        .zip(args)
        .map(|(ty, arg)| {
            let bad = || RunError::BadArg {
                name: name.to_owned(),
                value: arg.clone(),
                ty: ty.to_string(),
            };
            Ok(match ty {
                ValType::I32 => Val::I32(parse_int::<i32, u32>(arg).ok_or_else(bad)?),
                ValType::I64 => Val::I64(parse_int::<i64, u64>(arg).ok_or_else(bad)?),
                ValType::F32 => Val::F32(arg.parse::<f32>().map_err(|_| bad())?.to_bits()),
                ValType::F64 => Val::F64(arg.parse::<f64>().map_err(|_| bad())?.to_bits()),
                other => {
                    return Err(RunError::UnsupportedParam {
                        name: name.to_owned(),
                        ty: other.to_string(),
                    });
                }
            })
        })
        .collect()
}

/// Parses a signed value, or an unsigned one reinterpreted (`4294967295` as i32 is -1).
fn parse_int<S: std::str::FromStr + TryFrom<i128>, U: std::str::FromStr + Into<u128>>(
    s: &str,
) -> Option<S> {
    if let Ok(v) = s.parse::<S>() {
        return Some(v);
    }
    let wide: u128 = s.parse::<U>().ok()?.into();
    let bits = std::mem::size_of::<U>() * 8;
    let signed = if wide >> (bits - 1) == 1 {
        wide as i128 - (1i128 << bits)
    } else {
        wide as i128
    };
    S::try_from(signed).ok()
}

fn format_val(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(bits) => f32::from_bits(*bits).to_string(),
        Val::F64(bits) => f64::from_bits(*bits).to_string(),
        Val::V128(x) => format!("{:#034x}", x.as_u128()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Gauges, MemoryLimiter};
    use std::sync::atomic::Ordering;

    #[test]
    fn the_memory_limiter_counts_every_memory_and_remembers_a_refusal() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.grow(0, 512 << 10, None));
        assert!(limiter.grow(0, 256 << 10, None), "a second memory");
        // Past a memory's own maximum: refused, but not by the limit.
        assert!(!limiter.grow(256 << 10, 512 << 10, Some(256 << 10)));
        assert!(!limiter.refused);
        assert!(!limiter.grow(512 << 10, 1 << 20, None));
        assert!(limiter.refused);
        assert_eq!(limiter.used, 768 << 10);
        // A grow wasmtime fails after it was allowed is taken back.
        assert!(limiter.grow(256 << 10, 512 << 10, None));
        limiter.failed();
        assert_eq!(limiter.used, 768 << 10);
    }

    #[test]
    fn programs_sharing_gauges_share_one_limit_and_give_back_what_they_held() {
        let gauges = Gauges::default();
        let mut first = MemoryLimiter::shared(1 << 20, gauges.clone());
        let second_gauges = Gauges {
            memory: std::sync::Arc::default(),
            ..gauges.clone()
        };
        let mut second = MemoryLimiter::shared(1 << 20, second_gauges.clone());
        assert!(first.grow(0, 768 << 10, None));
        assert!(!second.grow(0, 512 << 10, None), "past the shared limit");
        assert!(second.refused);
        assert!(second.grow(0, 256 << 10, None));
        assert_eq!(gauges.container_memory.load(Ordering::SeqCst), 1 << 20);
        assert_eq!(second_gauges.memory.load(Ordering::SeqCst), 256 << 10);
        drop(first);
        assert_eq!(gauges.container_memory.load(Ordering::SeqCst), 256 << 10);
        assert!(second.grow(256 << 10, 768 << 10, None), "room given back");
    }
}
