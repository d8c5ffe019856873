//! The reference WASI implementation for differential tests: wasmtime-wasi, run in this
//! process over a host directory preopened at a guest path: its preview1 for a core
//! module, its own preview2 host (`wasi:cli/command`) for a component. A run is
//! bounded by [`crate::test_timeout`] (an epoch deadline interrupts a guest that does
//! not end), so a stuck guest fails its test instead of hanging it.

use std::path::Path;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What a reference run produced.
#[derive(Debug)]
pub struct ReferenceRun {
    /// The exit code; [`TRAP_EXIT`] when the guest trapped.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Why the guest trapped, as wasmtime words it (`wasm \`unreachable\` instruction
    /// executed`), when it did ([`Reference::run_or_trap`] only).
    pub trap: Option<String>,
}

/// The exit code of a run that trapped: 128 + SIGABRT, as wasmtime's CLI and Capsule
/// exit.
pub const TRAP_EXIT: i32 = 134;

/// Runs `wasm` (a core module or a component) under wasmtime-wasi with `args` (argv[0]
/// included), no environment, empty stdin, and `host_dir` preopened read-write at
/// `guest_dir`.
///
/// # Panics
/// When the reference itself cannot be set up: that is a broken test, not a result.
#[track_caller]
pub fn run(wasm: &str, args: &[&str], host_dir: &Path, guest_dir: &str) -> ReferenceRun {
    Reference::new(wasm).run(args, host_dir, guest_dir)
}

/// One guest compiled once for the reference, to run many times (the generated
/// differential test runs it hundreds of times).
#[derive(Debug)]
pub struct Reference {
    engine: Engine,
    guest: Guest,
}

/// A compiled guest of either world.
#[derive(Debug)]
enum Guest {
    /// A preview1 core module, run by `_start` under wasmtime-wasi's preview1.
    Module(Module),
    /// A `wasi:cli/command` component, run by `wasi:cli/run` under wasmtime-wasi's
    /// preview2 host.
    Component(Component),
}

/// Whether `bytes` are a component: the binary format's layer (bytes 6..8) is 1 for
/// components and 0 for core modules.
fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(6..8) == Some(&[1, 0])
}

impl Reference {
    /// Compiles `wasm` (a core module or a component) for the reference.
    ///
    /// # Panics
    /// When the guest does not compile: a broken test.
    pub fn new(wasm: &str) -> Self {
        let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("read {wasm}: {e}"));
        let engine = Engine::new(
            Config::new()
                .epoch_interruption(true)
                .wasm_component_model(true),
        )
        .expect("reference engine");
        let guest = if is_component(&bytes) {
            Guest::Component(
                Component::new(&engine, &bytes).expect("reference compiles the component"),
            )
        } else {
            Guest::Module(Module::new(&engine, &bytes).expect("reference compiles the guest"))
        };
        Self { engine, guest }
    }

    /// As [`run`], with the guest compiled once.
    ///
    /// # Panics
    /// As [`run`], and when the guest traps.
    #[track_caller]
    pub fn run(&self, args: &[&str], host_dir: &Path, guest_dir: &str) -> ReferenceRun {
        let run = self.run_or_trap(args, host_dir, guest_dir);
        if let Some(trap) = &run.trap {
            panic!(
                "{args:?}: the reference trapped: {trap}\n--- stdout so far\n{}\n--- stderr so far\n{}",
                run.stdout, run.stderr
            );
        }
        run
    }

    /// As [`Reference::run`], with a trap as an outcome: [`TRAP_EXIT`] and the reason
    /// (the preview1 adapter traps on a few calls it refuses, and the preview2 harness
    /// needs Capsule to trap there too).
    ///
    /// # Panics
    /// When the reference cannot be set up or the guest does not end in time.
    #[track_caller]
    pub fn run_or_trap(&self, args: &[&str], host_dir: &Path, guest_dir: &str) -> ReferenceRun {
        let stdout = MemoryOutputPipe::new(16 << 20);
        let stderr = MemoryOutputPipe::new(16 << 20);
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(args)
            .stdin(MemoryInputPipe::new(Vec::<u8>::new()))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        builder
            .preopened_dir(host_dir, guest_dir, FsPerms::ReadWrite)
            .expect("preopen the scratch directory");
        // One tick of the engine's epoch interrupts the guest: the watchdog ticks it when
        // the run has not ended within the limit (and ends as soon as the run does).
        let limit = crate::test_timeout();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let watchdog = {
            let engine = self.engine.clone();
            std::thread::spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    finished.recv_timeout(limit)
                {
                    engine.increment_epoch();
                }
            })
        };
        let result = match &self.guest {
            Guest::Module(module) => run_module(&self.engine, module, builder.build_p1()),
            Guest::Component(component) => run_component(&self.engine, component, builder.build()),
        };
        let _ = done.send(());
        let _ = watchdog.join();
        let (code, trap) = match result {
            Ok(code) => (code, None),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => (exit.0, None),
                None if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                    panic!(
                        "{:?} did not end under the reference within {} s ({} sets the bound): \
                         interrupted\n--- stdout so far\n{}\n--- stderr so far\n{}",
                        args,
                        limit.as_secs_f32(),
                        crate::process::TIMEOUT_VAR,
                        String::from_utf8_lossy(&stdout.contents()),
                        String::from_utf8_lossy(&stderr.contents())
                    )
                }
                None => match e.downcast_ref::<wasmtime::Trap>() {
                    Some(trap) => (TRAP_EXIT, Some(trap.to_string())),
                    None => panic!("the reference failed: {e:?}"),
                },
            },
        };
        ReferenceRun {
            code,
            stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
            trap,
        }
    }
}

/// Runs a preview1 module's `_start`: its exit code when it returns (0), or the error
/// (an exit, a trap) for [`Reference::run`] to tell apart.
fn run_module(engine: &Engine, module: &Module, ctx: WasiP1Ctx) -> wasmtime::Result<i32> {
    let mut linker: Linker<WasiP1Ctx> = Linker::new(engine);
    p1::add_to_linker_sync(&mut linker, |ctx| ctx).expect("link preview1");
    let mut store = Store::new(engine, ctx);
    store.set_epoch_deadline(1);
    let instance = linker
        .instantiate(&mut store, module)
        .expect("instantiate under the reference");
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .expect("_start");
    start.call(&mut store, ()).map(|()| 0)
}

/// The store's state of a component run: wasmtime-wasi's context and the resources the
/// guest holds.
struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// Runs a `wasi:cli/command` component's `wasi:cli/run`: 0 when it returns `ok`, 1 when
/// it returns `err` (as wasmtime's CLI does), or the error (an exit, a trap).
fn run_component(engine: &Engine, component: &Component, ctx: WasiCtx) -> wasmtime::Result<i32> {
    let mut linker = wasmtime::component::Linker::<P2State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("link preview2");
    let mut store = Store::new(
        engine,
        P2State {
            ctx,
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(1);
    let command = Command::instantiate(&mut store, component, &linker)
        .expect("instantiate the component under the reference");
    let result = command.wasi_cli_run().call_run(&mut store)?;
    Ok(if result.is_ok() { 0 } else { 1 })
}
