//! The plugin engine and its pool: wasmtime's pooling allocator (instance slots whose
//! memories are reset from copy-on-write images), an epoch ticker for deadlines, and a
//! bound on the calls in flight.

use super::{HostFunctions, PluginError};
use crate::engine::{Engine, EngineOptions, ModuleCache};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often the epoch advances: the resolution of call deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Bytes of a slot's memory (and table) kept resident between calls and reset in place.
const KEEP_RESIDENT: usize = 1 << 20;

/// How to build a [`PluginHost`].
#[derive(Debug, Clone)]
pub struct PluginHostOptions {
    /// Instances alive at once (calls in flight, across all plugins of the host). A call
    /// past it waits for a slot. Each slot reserves address space (not memory) for a
    /// 4 GiB linear memory and its guard. Default: 100.
    pub max_instances: u32,
    /// Where compiled plugins are cached across processes (Capsule's module cache);
    /// `None` compiles every load (nothing is written to disk).
    pub cache: Option<ModuleCache>,
}

impl Default for PluginHostOptions {
    fn default() -> Self {
        Self {
            max_instances: 100,
            cache: None,
        }
    }
}

/// An engine for plugins, their host functions and the pool of instance slots. Cheap
/// to clone (clones share everything); plugins keep their host alive.
#[derive(Debug, Clone)]
pub struct PluginHost(pub(crate) Arc<HostInner>);

#[derive(Debug)]
pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) cache: Option<ModuleCache>,
    pub(crate) functions: HostFunctions,
    pub(crate) slots: Slots,
    _ticker: Ticker,
}

impl PluginHost {
    /// Builds a host offering `functions` to its plugins.
    ///
    /// # Errors
    /// [`PluginError::Engine`] when wasmtime refuses the configuration (for example a
    /// pool larger than the address space); [`PluginError::Manifest`] for a host
    /// function name without a namespace.
    pub fn new(options: PluginHostOptions, functions: HostFunctions) -> Result<Self, PluginError> {
        for name in functions.names() {
            super::host::check_name(&name).map_err(|reason| PluginError::Manifest {
                plugin: "(host)".to_owned(),
                reason,
            })?;
        }
        let instances = options.max_instances.max(1);
        let engine = Engine::with_config(
            &EngineOptions {
                fuel: true,
                ..EngineOptions::default()
            },
            |config| {
                let mut pool = wasmtime::PoolingAllocationConfig::new();
                pool.total_core_instances(instances)
                    .total_memories(instances)
                    .total_tables(instances)
                    .total_stacks(instances)
                    .total_gc_heaps(instances)
                    .max_unused_warm_slots(instances)
                    // A slot is reset by copying back only the pages a call dirtied
                    // (PAGEMAP_SCAN on Linux 6.7+, else the lowest bytes with memset),
                    // instead of unmapping them: the next call takes no page faults.
                    .linear_memory_keep_resident(KEEP_RESIDENT)
                    .table_keep_resident(KEEP_RESIDENT)
                    .pagemap_scan(wasmtime::Enabled::Auto);
                config
                    .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
                    .memory_init_cow(true);
            },
        )
        .map_err(|e| PluginError::Engine(e.to_string()))?;
        let ticker = Ticker::start(engine.wasmtime().clone()).map_err(|e| {
            PluginError::Engine(format!("cannot start the thread that times deadlines: {e}"))
        })?;
        Ok(Self(Arc::new(HostInner {
            engine,
            cache: options.cache,
            functions,
            slots: Slots::new(instances as usize),
            _ticker: ticker,
        })))
    }

    /// The engine plugins are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// Compiles a core module through the cache, if there is one.
    pub(crate) fn compile(
        &self,
        plugin: &str,
        wasm: &[u8],
    ) -> Result<wasmtime::Module, PluginError> {
        let error = |reason: String| PluginError::Compile {
            plugin: plugin.to_owned(),
            reason,
        };
        match &self.0.cache {
            Some(cache) => cache
                .load_or_compile(&self.0.engine, wasm)
                .map(|(module, _)| module)
                .map_err(|e| error(e.to_string())),
            None => crate::engine::cache::compile(&self.0.engine, wasm)
                .map_err(|e| error(e.to_string())),
        }
    }
}

/// A counting semaphore over the pool's instance slots: a call holds one while its
/// instance lives, so the pooling allocator never runs out under load.
#[derive(Debug)]
pub(crate) struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(count: usize) -> Self {
        Self {
            free: Mutex::new(count),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting for one if all are in use.
    pub(crate) fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        SlotGuard(self)
    }
}

/// A slot taken; given back when dropped (after the call's store is gone).
#[derive(Debug)]
pub(crate) struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut free = self
            .0
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *free += 1;
        self.0.freed.notify_one();
    }
}

/// Advances the engine's epoch every [`TICK`] until dropped.
#[derive(Debug)]
struct Ticker {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Ticker {
    fn start(engine: wasmtime::Engine) -> std::io::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("capsule-plugin-epoch".to_owned())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(TICK)
                {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop: Some(stop) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
