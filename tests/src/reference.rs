//! The reference WASI implementation for differential tests: wasmtime-wasi's preview1,
//! run in this process over a host directory preopened at a guest path.

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
        let engine = Engine::new(&Config::new()).expect("reference engine");
        let module = Module::from_file(&engine, wasm).expect("reference compiles the guest");
        Self { engine, module }
    }

    /// As [`run`], with the module compiled once.
    ///
    /// # Panics
    /// As [`run`].
    pub fn run(&self, args: &[&str], host_dir: &Path, guest_dir: &str) -> ReferenceRun {
        run_module(&self.engine, &self.module, args, host_dir, guest_dir)
    }
}

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
    let instance = linker
        .instantiate(&mut store, module)
        .expect("instantiate under the reference");
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .expect("_start");
    let code = match start.call(&mut store, ()) {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => panic!("the reference trapped: {e:?}"),
        },
    };
    ReferenceRun {
        code,
        stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
    }
}
