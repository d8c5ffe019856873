//! The plugin engine and its pool: wasmtime's pooling allocator (instance slots whose
//! memories are reset from copy-on-write images), an epoch ticker for deadlines, and a
//! bound on the calls in flight.

use super::{HostFunctions, PluginError};
use crate::engine::{Engine, EngineOptions, ModuleCache};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often the epoch advances: the resolution of call deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Bytes of a slot's memory (and table) kept resident between calls and reset in place.
const KEEP_RESIDENT: usize = 1 << 20;

/// How to build a [`PluginHost`].
#[derive(Debug, Clone)]
pub struct PluginHostOptions {
    /// Instances alive at once (calls in flight, across all plugins of the host). A call
    /// past it waits for a slot, within its deadline (the wait counts toward it); a call
    /// from a host function (nested) that could only wait forever fails at once with
    /// [`PluginError::NestedCallDeadlock`]. Each slot reserves address space (not memory)
    /// for a 4 GiB linear memory and its guard. Default: 100.
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
///
/// A call past the pool waits for a slot, until its deadline at most. A *nested* call
/// (made on a thread that already holds a slot of this pool: a host function calling
/// back into a plugin) is different, because its thread's slot is released only once
/// the nested call returns. It takes a free slot ahead of the calls that hold none
/// (finishing it releases two), and it waits only while some slot is held by a call
/// that can still finish: when every slot is held by calls that are themselves waiting
/// for a nested slot (on a pool of one, a single nested call), nothing would ever be
/// released, and it fails at once instead of deadlocking.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Tells this pool from others in the threads' records of the slots they hold.
    id: u64,
    total: usize,
    state: Mutex<SlotState>,
    /// Signalled for calls that hold no slot.
    freed: Condvar,
    /// Signalled for nested calls, which go first.
    freed_nested: Condvar,
}

#[derive(Debug)]
struct SlotState {
    free: usize,
    /// Calls holding no slot waiting.
    plain_waiting: usize,
    /// Nested calls waiting.
    nested_waiting: usize,
    /// Slots held by the threads of the nested calls waiting: when they are all the
    /// slots, none will be released.
    held_by_waiting: usize,
}

/// Why [`Slots::acquire`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// The deadline passed while the call waited.
    Deadline,
    /// A nested call found every slot held by calls that wait for a slot themselves
    /// (its own thread's among them): waiting would never end.
    Nested {
        /// The slots of the pool.
        total: usize,
        /// How many of them the calling thread holds.
        held_here: usize,
    },
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The slots this thread holds, by pool id (a thread holds more than one when host
    /// functions call back into plugins).
    static HELD: RefCell<Vec<(u64, usize)>> = const { RefCell::new(Vec::new()) };
}

impl Slots {
    pub(crate) fn new(count: usize) -> Self {
        Self {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            total: count,
            state: Mutex::new(SlotState {
                free: count,
                plain_waiting: 0,
                nested_waiting: 0,
                held_by_waiting: 0,
            }),
            freed: Condvar::new(),
            freed_nested: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Slots of this pool the current thread holds.
    fn held_here(&self) -> usize {
        HELD.with(|held| {
            held.borrow()
                .iter()
                .find(|(id, _)| *id == self.id)
                .map_or(0, |&(_, count)| count)
        })
    }

    fn record_held(&self, taken: bool) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            match held.iter().position(|(id, _)| *id == self.id) {
                Some(i) if taken => held[i].1 += 1,
                Some(i) => {
                    held[i].1 -= 1;
                    if held[i].1 == 0 {
                        held.swap_remove(i);
                    }
                }
                None if taken => held.push((self.id, 1)),
                None => {}
            }
        });
    }

    /// Takes a slot, waiting for one if all are in use, until `until` at most.
    ///
    /// # Errors
    /// [`NoSlot::Deadline`] when `until` passes first; [`NoSlot::Nested`] at once for a
    /// nested call that could only wait forever (see [`Slots`]).
    pub(crate) fn acquire(&self, until: Option<Instant>) -> Result<SlotGuard<'_>, NoSlot> {
        let held_here = self.held_here();
        let nested = held_here > 0;
        let mut state = self.lock();
        if nested {
            if state.free == 0 && state.held_by_waiting + held_here >= self.total {
                return Err(NoSlot::Nested {
                    total: self.total,
                    held_here,
                });
            }
            state.nested_waiting += 1;
            state.held_by_waiting += held_here;
        } else {
            state.plain_waiting += 1;
        }
        let taken = loop {
            // Nested calls go first: a call holding no slot leaves the free ones to
            // them.
            let available = if nested {
                state.free > 0
            } else {
                state.free > state.nested_waiting
            };
            if available {
                state.free -= 1;
                break Ok(());
            }
            let freed = if nested {
                &self.freed_nested
            } else {
                &self.freed
            };
            state = match until {
                None => freed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(until) => {
                    let now = Instant::now();
                    if now >= until {
                        break Err(NoSlot::Deadline);
                    }
                    freed
                        .wait_timeout(state, until - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        };
        if nested {
            state.nested_waiting -= 1;
            state.held_by_waiting -= held_here;
            // A slot freed while it waited (and not taken by it) may now be a plain
            // call's: its release woke only nested calls.
            if state.free > state.nested_waiting {
                self.freed.notify_one();
            }
        } else {
            state.plain_waiting -= 1;
        }
        drop(state);
        taken?;
        self.record_held(true);
        Ok(SlotGuard {
            slots: self,
            _not_send: PhantomData,
        })
    }

    /// The calls waiting: (holding no slot, nested).
    #[cfg(test)]
    fn waiting(&self) -> (usize, usize) {
        let state = self.lock();
        (state.plain_waiting, state.nested_waiting)
    }

    fn release(&self) {
        let mut state = self.lock();
        state.free += 1;
        if state.nested_waiting > 0 {
            self.freed_nested.notify_one();
        } else {
            self.freed.notify_one();
        }
        drop(state);
        self.record_held(false);
    }
}

/// A slot taken; given back when dropped (after the call's store is gone). It stays on
/// the thread that took it, whose record of held slots tells nested calls.
#[derive(Debug)]
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
    _not_send: PhantomData<*const ()>,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slots.release();
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

#[cfg(test)]
mod tests {
    use super::{NoSlot, Slots};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Long enough for a test never to wait this long when the pool works.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// Waits until `slots` has `plain` calls holding no slot and `nested` nested calls
    /// waiting.
    fn until_waiting(slots: &Slots, plain: usize, nested: usize) {
        let start = Instant::now();
        while slots.waiting() != (plain, nested) {
            assert!(
                start.elapsed() < PATIENCE,
                "never {plain} plain and {nested} nested calls waiting: {:?}",
                slots.waiting()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_call_past_the_pool_waits_until_its_deadline_and_no_longer() {
        let slots = Arc::new(Slots::new(1));
        let held = slots.acquire(None).expect("a free slot");
        let other = slots.clone();
        let waited = std::thread::spawn(move || {
            let start = Instant::now();
            let result = other
                .acquire(Some(start + Duration::from_millis(100)))
                .map(drop);
            (result, start.elapsed())
        })
        .join()
        .expect("the waiting thread");
        assert_eq!(waited.0, Err(NoSlot::Deadline));
        assert!(waited.1 >= Duration::from_millis(100), "{:?}", waited.1);
        assert!(waited.1 < Duration::from_secs(5), "{:?}", waited.1);
        assert_eq!(slots.waiting(), (0, 0));
        drop(held);
        // The slot given back is free again, deadline or not.
        drop(slots.acquire(Some(Instant::now())).expect("the slot again"));
    }

    #[test]
    fn a_waiting_call_gets_the_slot_that_is_given_back() {
        let slots = Arc::new(Slots::new(1));
        let held = slots.acquire(None).expect("a free slot");
        let released = Arc::new(AtomicBool::new(false));
        let (other, seen) = (slots.clone(), released.clone());
        let waiter = std::thread::spawn(move || {
            let slot = other.acquire(Some(Instant::now() + PATIENCE)).map(drop);
            (slot, seen.load(Ordering::SeqCst))
        });
        until_waiting(&slots, 1, 0);
        released.store(true, Ordering::SeqCst);
        drop(held);
        let (slot, after_release) = waiter.join().expect("the waiting thread");
        assert_eq!(slot, Ok(()));
        assert!(after_release, "the waiter got a slot while none was free");
    }

    /// Runs `f` on a thread of its own; its result, or a panic naming `what` when it
    /// has not returned within [`PATIENCE`] (a deadlock).
    fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(f());
        });
        result
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("{what} did not return: deadlocked"))
    }

    #[test]
    fn a_nested_call_on_a_pool_of_one_fails_at_once() {
        let slots = Arc::new(Slots::new(1));
        let other = slots.clone();
        let (nested, elapsed, after) = within("a nested call on a pool of one", move || {
            let outer = other.acquire(None).expect("a free slot");
            let start = Instant::now();
            // No deadline: only the pool can end it.
            let nested = other.acquire(None).map(drop);
            let elapsed = start.elapsed();
            let waiting = other.waiting();
            drop(outer);
            // The thread holds nothing now: its next call is not nested and gets the
            // slot.
            let after = other.acquire(None).map(drop);
            (nested, elapsed, (waiting, after))
        });
        assert_eq!(
            nested,
            Err(NoSlot::Nested {
                total: 1,
                held_here: 1
            })
        );
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(after, ((0, 0), Ok(())));
        drop(slots.acquire(None).expect("the slot, free again"));
    }

    #[test]
    fn a_nested_call_waits_while_a_slot_is_held_by_a_call_that_can_finish() {
        let slots = Arc::new(Slots::new(2));
        let outer = slots.acquire(None).expect("a free slot");
        let (taken, take) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let ended = Arc::new(AtomicBool::new(false));
        let (other, flag) = (slots.clone(), ended.clone());
        let running = std::thread::spawn(move || {
            let slot = other.acquire(None).expect("the second slot");
            taken.send(()).expect("send");
            let _ = released.recv_timeout(PATIENCE);
            flag.store(true, Ordering::SeqCst);
            drop(slot);
        });
        take.recv_timeout(PATIENCE).expect("the other call runs");
        let (nested_tx, nested_rx) = mpsc::channel();
        let scope_result = std::thread::scope(|scope| {
            // The nested call runs on this thread (it holds `outer`): from a scoped
            // thread we watch it wait, then end the other call.
            scope.spawn(|| {
                until_waiting(&slots, 0, 1);
                release.send(()).expect("send");
            });
            let nested = slots.acquire(Some(Instant::now() + PATIENCE)).map(drop);
            nested_tx.send(ended.load(Ordering::SeqCst)).expect("send");
            nested
        });
        assert_eq!(scope_result, Ok(()));
        assert!(
            nested_rx.recv().expect("recv"),
            "the nested call got a slot before the other call gave one back"
        );
        running.join().expect("the other call");
        drop(outer);
    }

    #[test]
    fn when_every_slot_is_held_by_nested_waiters_the_last_one_fails_and_the_rest_go_on() {
        let slots = Arc::new(Slots::new(2));
        let both = Arc::new(std::sync::Barrier::new(2));
        let (first_tx, first_rx) = mpsc::channel();
        let (s1, b1) = (slots.clone(), both.clone());
        // First thread: one slot, then a nested call that waits.
        let first = std::thread::spawn(move || {
            let outer = s1.acquire(None).expect("a slot");
            b1.wait();
            let nested = s1.acquire(Some(Instant::now() + PATIENCE)).map(drop);
            first_tx.send(()).expect("send");
            drop(outer);
            nested
        });
        let outer = slots.acquire(None).expect("the other slot");
        both.wait();
        until_waiting(&slots, 0, 1);
        // This thread's nested call would make both slots held by waiters: it fails at
        // once. (Were it to wait, the first nested call would give up at its deadline
        // and this one would get a slot: the test fails instead of hanging.)
        let start = Instant::now();
        assert_eq!(
            slots.acquire(None).map(drop),
            Err(NoSlot::Nested {
                total: 2,
                held_here: 1
            })
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        // The first nested call still waits, and gets the slot this call gives back.
        assert!(
            first_rx.try_recv().is_err(),
            "the first nested call did not wait"
        );
        drop(outer);
        first_rx
            .recv_timeout(PATIENCE)
            .expect("the first nested call gets the slot");
        assert_eq!(first.join().expect("first thread"), Ok(()));
        assert_eq!(slots.waiting(), (0, 0));
    }

    #[test]
    fn nested_calls_get_a_freed_slot_before_calls_that_hold_none() {
        let slots = Arc::new(Slots::new(2));
        let released = Arc::new(AtomicBool::new(false));
        // One call that will end, and one whose host function nests.
        let ending = slots.acquire(None).expect("a slot");
        let (got_tx, got_rx) = mpsc::channel();
        let (end_tx, end_rx) = mpsc::channel::<()>();
        let (s, r) = (slots.clone(), released.clone());
        let nesting = std::thread::spawn(move || {
            let outer = s.acquire(None).expect("a slot");
            let nested = s.acquire(Some(Instant::now() + PATIENCE));
            got_tx
                .send((nested.is_ok(), r.load(Ordering::SeqCst)))
                .expect("send");
            // Both slots are kept until the test has looked.
            let _ = end_rx.recv_timeout(PATIENCE);
            drop(nested);
            drop(outer);
        });
        // Only once it waits does a call that holds nothing join.
        until_waiting(&slots, 0, 1);
        let s = slots.clone();
        let plain =
            std::thread::spawn(move || s.acquire(Some(Instant::now() + PATIENCE)).map(drop));
        until_waiting(&slots, 1, 1);
        released.store(true, Ordering::SeqCst);
        drop(ending);
        let (nested, after_release) = got_rx.recv_timeout(PATIENCE).expect("the nested call");
        assert!(nested, "the nested call got no slot");
        assert!(
            after_release,
            "the nested call got a slot while none was free"
        );
        // The nested call took the freed slot: the plain call still waits.
        until_waiting(&slots, 1, 0);
        end_tx.send(()).expect("send");
        nesting.join().expect("the nesting thread");
        assert_eq!(plain.join().expect("the plain call"), Ok(()));
    }

    #[test]
    fn slots_held_in_one_pool_do_not_make_calls_to_another_nested() {
        let (a, b) = (Slots::new(1), Arc::new(Slots::new(1)));
        let in_a = a.acquire(None).expect("a's slot");
        // Not nested for b: it gets b's free slot.
        let in_b = b.acquire(None).expect("b's slot");
        drop(in_b);
        // b full from another thread: this call waits (it is not nested for b) and
        // ends at its deadline.
        let (held_tx, held_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let other = b.clone();
        let holder = std::thread::spawn(move || {
            let slot = other.acquire(None).expect("b's slot");
            held_tx.send(()).expect("send");
            let _ = done_rx.recv_timeout(PATIENCE);
            drop(slot);
        });
        held_rx.recv_timeout(PATIENCE).expect("b is held");
        let result = b.acquire(Some(Instant::now() + Duration::from_millis(50)));
        assert_eq!(result.map(drop), Err(NoSlot::Deadline));
        done_tx.send(()).expect("send");
        holder.join().expect("holder");
        drop(in_a);
    }
}
