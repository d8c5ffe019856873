//! The reference WASI implementation for differential tests: wasmtime-wasi's preview1,
//! run in this process over a host directory preopened at a guest path. A run is
//! bounded by [`crate::test_timeout`] (an epoch deadline interrupts a guest that does
//! not end), so a stuck guest fails its test instead of hanging it.

use std::path::Path;
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// What a reference run produced.
#[derive(Debug)]
pub struct ReferenceRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `wasm` under wasmtime-wasi with `args` (argv[0] included), no environment, empty
/// stdin, and `host_dir` preopened read-write at `guest_dir`.
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
    module: Module,
}

impl Reference {
    /// Compiles `wasm` for the reference.
    ///
    /// # Panics
    /// When the guest does not compile: a broken test.
    pub fn new(wasm: &str) -> Self {
        let engine = Engine::new(Config::new().epoch_interruption(true)).expect("reference engine");
        let module = Module::from_file(&engine, wasm).expect("reference compiles the guest");
        Self { engine, module }
    }

    /// As [`run`], with the module compiled once.
    ///
    /// # Panics
    /// As [`run`].
    #[track_caller]
    pub fn run(&self, args: &[&str], host_dir: &Path, guest_dir: &str) -> ReferenceRun {
        run_module(&self.engine, &self.module, args, host_dir, guest_dir)
    }
}

#[track_caller]
fn run_module(
    engine: &Engine,
    module: &Module,
    args: &[&str],
    host_dir: &Path,
    guest_dir: &str,
) -> ReferenceRun {
    let mut linker: Linker<WasiP1Ctx> = Linker::new(engine);
    p1::add_to_linker_sync(&mut linker, |ctx| ctx).expect("link preview1");
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
    let ctx = builder.build_p1();
    let mut store = Store::new(engine, ctx);
    // One tick of the engine's epoch interrupts the guest: the watchdog ticks it when
    // the run has not ended within the limit (and ends as soon as the run does).
    store.set_epoch_deadline(1);
    let limit = crate::test_timeout();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
                engine.increment_epoch();
            }
        })
    };
    let instance = linker
        .instantiate(&mut store, module)
        .expect("instantiate under the reference");
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .expect("_start");
    let result = start.call(&mut store, ());
    let _ = done.send(());
    let _ = watchdog.join();
    let code = match result {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
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
            None => panic!("the reference trapped: {e:?}"),
        },
    };
    ReferenceRun {
        code,
        stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
    }
}
