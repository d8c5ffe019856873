//! The plugin benchmark (`scripts/bench.sh plugins`; not a test): calls per second and
//! per-call latency of a trivial plugin call through Capsule's pool, from 1 and 8
//! threads, against plain wasmtime instantiating the module per request
//! (`Linker::instantiate` + call, no pool); a Rust plugin's call through the pool; and
//! the memory of 1,000 instances alive at once.
//!
//! ```console
//! $ capsule-plugin-bench [RUST_PLUGIN.wasm]
//! ```

use capsule_sdk::plugin::{Plugin, PluginHost, PluginManifest};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The trivial plugin: returns its input.
const ECHO: &str = r#"(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "capsule_alloc") (param $len i32) (result i32)
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (local.get $len))))
  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))"#;

/// A plugin whose `wait` blocks in the host function `bench.wait`: instances stay alive.
const WAITER: &str = r#"(module
  (import "capsule_host" "bench.wait" (func $wait (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "capsule_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wait") (param i32 i32) (result i64) (call $wait (i32.const 0) (i32.const 0))))"#;

const INPUT: &[u8] = b"hello, plugin";
const CALLS: usize = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rust_plugin = std::env::args().nth(1);
    let host = PluginHost::builder().max_instances(64).build()?;
    let echo = Plugin::from_bytes(&host, "echo", ECHO, &PluginManifest::new())?;

    println!(
        "trivial call (echo of {} bytes), {CALLS} calls per thread:",
        INPUT.len()
    );
    let pool_one = latencies(CALLS, || {
        let out = echo.call("echo", INPUT).expect("call");
        assert_eq!(out, INPUT);
    });
    report("capsule pool, 1 thread", &pool_one);
    let pool_eight = throughput(8, CALLS, {
        let echo = echo.clone();
        move || {
            let out = echo.call("echo", INPUT).expect("call");
            assert_eq!(out, INPUT);
        }
    });
    println!("  capsule pool, 8 threads:        {pool_eight:>10.0} calls/s");

    let plain = Plain::new(ECHO)?;
    let plain_one = latencies(CALLS, || plain.call());
    report("wasmtime instantiate per call, 1 thread", &plain_one);
    let plain = Arc::new(plain);
    let plain_eight = throughput(8, CALLS, {
        let plain = plain.clone();
        move || plain.call()
    });
    println!("  wasmtime instantiate per call, 8 threads: {plain_eight:>10.0} calls/s");
    println!(
        "  median: pool {:.2} us vs instantiate {:.2} us: {:.1}x",
        median(&pool_one).as_secs_f64() * 1e6,
        median(&plain_one).as_secs_f64() * 1e6,
        median(&plain_one).as_secs_f64() / median(&pool_one).as_secs_f64()
    );

    if let Some(path) = rust_plugin {
        let host = PluginHost::builder()
            .max_instances(64)
            .host_function("kv.get", |k: &[u8]| Ok(k.to_vec()))
            .build()?;
        let rust = Plugin::from_file(
            &host,
            &path,
            &PluginManifest::new().allow_host_function("kv.get"),
        )?;
        println!("Rust plugin (std, WASI, _initialize per call), echo:");
        let one = latencies(CALLS, || {
            assert_eq!(rust.call("echo", INPUT).expect("call"), INPUT);
        });
        report("capsule pool, 1 thread", &one);
        let eight = throughput(8, CALLS, {
            let rust = rust.clone();
            move || assert_eq!(rust.call("echo", INPUT).expect("call"), INPUT)
        });
        println!("  capsule pool, 8 threads:        {eight:>10.0} calls/s");
    }

    memory_of_live_instances(1000)?;
    Ok(())
}

/// 1,000 calls in flight at once, each blocked in a host function: the process's
/// resident memory then, less before.
fn memory_of_live_instances(count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let inside = Arc::new(Barrier::new(count + 1));
    let release = Arc::new(Barrier::new(count + 1));
    let host = PluginHost::builder()
        .max_instances(u32::try_from(count)?)
        .host_function("bench.wait", {
            let (inside, release) = (inside.clone(), release.clone());
            move |_: &[u8]| {
                inside.wait();
                release.wait();
                Ok(Vec::new())
            }
        })
        .build()?;
    let waiter = Plugin::from_bytes(
        &host,
        "waiter",
        WAITER,
        &PluginManifest::new().allow_host_function("bench.wait"),
    )?;
    // The threads first, so that their stacks are not counted as instances.
    let started = Arc::new(Barrier::new(count + 1));
    let go = Arc::new(Barrier::new(count + 1));
    let threads: Vec<_> = (0..count)
        .map(|_| {
            let (waiter, started, go) = (waiter.clone(), started.clone(), go.clone());
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    started.wait();
                    go.wait();
                    waiter.call("wait", b"").expect("wait")
                })
                .expect("thread")
        })
        .collect();
    started.wait();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    go.wait();
    inside.wait();
    let during = rss_kib();
    release.wait();
    for thread in threads {
        thread.join().map_err(|_| "a waiting thread panicked")?;
    }
    let grew = during.saturating_sub(before);
    println!(
        "{count} instances alive at once: RSS {before} KiB -> {during} KiB, +{grew} KiB ({:.1} KiB per instance)",
        grew as f64 / count as f64
    );
    Ok(())
}

// The benchmark reads its own resident size from /proc (see clippy.toml).
#[allow(clippy::disallowed_methods)]
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Plain wasmtime: the module compiled once, a store and `Linker::instantiate` per call.
struct Plain {
    engine: wasmtime::Engine,
    module: wasmtime::Module,
    linker: wasmtime::Linker<()>,
}

impl Plain {
    fn new(wat: &str) -> wasmtime::Result<Self> {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wat)?;
        let linker = wasmtime::Linker::new(&engine);
        Ok(Self {
            engine,
            module,
            linker,
        })
    }

    fn call(&self) {
        let mut store = wasmtime::Store::new(&self.engine, ());
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .expect("instantiate");
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "capsule_alloc")
            .expect("alloc");
        let memory = instance.get_memory(&mut store, "memory").expect("memory");
        let echo = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "echo")
            .expect("echo");
        let len = INPUT.len() as i32;
        let ptr = alloc.call(&mut store, len).expect("alloc");
        memory
            .write(&mut store, ptr as usize, INPUT)
            .expect("write");
        let packed = echo.call(&mut store, (ptr, len)).expect("call") as u64;
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0x7fff_ffff) as usize);
        let out = memory.data(&store)[out_ptr..out_ptr + out_len].to_vec();
        assert_eq!(out, INPUT);
    }
}

fn latencies(calls: usize, mut call: impl FnMut()) -> Vec<Duration> {
    for _ in 0..calls / 10 {
        call();
    }
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        call();
        times.push(start.elapsed());
    }
    times.sort();
    times
}

fn throughput(
    threads: usize,
    calls: usize,
    call: impl Fn() + Send + Sync + Clone + 'static,
) -> f64 {
    let start_line = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (call, start_line) = (call.clone(), start_line.clone());
            std::thread::spawn(move || {
                start_line.wait();
                for _ in 0..calls {
                    call();
                }
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().expect("thread");
    }
    (threads * calls) as f64 / start.elapsed().as_secs_f64()
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn report(what: &str, sorted: &[Duration]) {
    let total: Duration = sorted.iter().sum();
    let p99 = sorted[sorted.len() * 99 / 100];
    println!(
        "  {what}: median {:.2} us, p99 {:.2} us, {:.0} calls/s",
        median(sorted).as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        sorted.len() as f64 / total.as_secs_f64()
    );
}
