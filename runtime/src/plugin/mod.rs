//! Plugins: untrusted WebAssembly modules that a host application loads once and then
//! calls many times, from many threads, with bytes in and bytes out.
//!
//! A [`PluginHost`] owns a wasmtime engine of its own (the pooling allocator with
//! copy-on-write memory images, fuel metering, epoch interruption), the host functions
//! the embedder registered ([`HostFunctions`]) and a bound on the calls in flight. A
//! [`Plugin`] is a module linked once into a wasmtime `InstancePre` under a
//! [`PluginManifest`] (directories, environment, allowed host functions, limits). Every
//! call gets a fresh `Store` and a fresh instance from the pool: memory and globals
//! start from the module's image, so a call sees nothing a previous call wrote. A call
//! that traps, loops past its deadline or fuel, or runs out of memory fails alone, with
//! a [`PluginError`] variant that says which; the plugin and the pool keep serving.
//!
//! # The calling convention (ABI)
//!
//! All values are wasm32 `i32`/`i64`; a *packed result* is a `u64` (an `i64` in wasm)
//! holding a pointer and a length into the guest's memory, and an error bit:
//!
//! ```text
//! bits 63..32  pointer          bit 31  1 = error (the bytes are a UTF-8 message)
//! bits 30..0   length (bytes, < 2 GiB)
//! ```
//!
//! A plugin module:
//!
//! - exports its linear memory as `memory`;
//! - exports `capsule_alloc(len: i32) -> i32`, which returns a pointer to `len` writable
//!   bytes (it is never freed: the instance is thrown away after the call);
//! - exports each plugin function as `name(ptr: i32, len: i32) -> i64`: the host
//!   allocates the input with `capsule_alloc`, writes it there, calls the function, and
//!   reads the packed result (an error result becomes [`PluginError::Guest`]);
//! - may export `_initialize` (a WASI reactor, as `clang -mexec-model=reactor` and
//!   Rust `cdylib`s make): it runs before every call, in that call's fresh instance;
//! - may import `wasi_snapshot_preview1` (Capsule's own WASI host: the manifest's
//!   directories as preopens, its environment, no stdin, output discarded or forwarded to
//!   the host's stderr) and host functions from the module `capsule_host`, each named by
//!   its namespaced name (`kv.get`) and typed `(ptr: i32, len: i32) -> i64`: the host
//!   reads the input from the guest's memory, runs the embedder's closure, copies its
//!   output into memory from the guest's `capsule_alloc` and returns a packed result,
//!   with the error bit set when the closure returned an error (the guest decides what
//!   to do with it). Any other import refuses the plugin at load.
//!
//! A plugin importing a host function that its manifest does not allow (or that the host
//! does not provide) is refused when it is loaded, naming the function
//! ([`PluginError::NotAllowed`], [`PluginError::UnknownHostFunction`]): a plugin that
//! loaded can call everything it imports.
//!
//! `sdk/guest` is a Rust crate for plugin authors (`capsule-plugin`) and
//! `sdk/guest/include/capsule_plugin.h` the same for C; `docs/plugins.md` shows both.

mod call;
mod host;
mod image;
mod manifest;
mod pool;

pub use call::Plugin;
pub use host::{HostFn, HostFunctions, IMPORT_MODULE};
pub use image::ImageModule;
pub use manifest::{DirGrant, PluginLimits, PluginManifest};
pub use pool::{PluginHost, PluginHostOptions};

use std::time::Duration;

/// What went wrong loading or calling a plugin. Call failures name the plugin and the
/// function; a failed call leaves the plugin usable.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// wasmtime refused the plugin engine's configuration.
    #[error("cannot set up the plugin engine: {0}")]
    Engine(String),
    /// The bytes are not a WebAssembly module (or a file cannot be read).
    #[error("plugin {plugin}: {reason}")]
    Module { plugin: String, reason: String },
    /// wasmtime rejected the module.
    #[error("plugin {plugin}: does not compile: {reason}")]
    Compile { plugin: String, reason: String },
    /// The image has no usable program, or the store cannot be read.
    #[error("plugin from image {image}: {reason}")]
    Image { image: String, reason: String },
    /// The module does not follow the plugin ABI (missing `memory` or `capsule_alloc`,
    /// a function of the wrong type, a result outside its memory).
    #[error("plugin {plugin}: not a Capsule plugin: {reason} (see docs/plugins.md for the ABI)")]
    Abi { plugin: String, reason: String },
    /// The plugin imports a host function its manifest does not allow.
    #[error(
        "plugin {plugin} imports the host function '{function}', which its manifest does not \
         allow (allow it in the manifest, or remove the import)"
    )]
    NotAllowed { plugin: String, function: String },
    /// The plugin imports a host function nobody registered.
    #[error(
        "plugin {plugin} imports the host function '{function}', which this host does not \
         provide (registered: {})",
        if registered.is_empty() { "none".to_owned() } else { registered.join(", ") }
    )]
    UnknownHostFunction {
        plugin: String,
        function: String,
        registered: Vec<String>,
    },
    /// The plugin imports something that is neither WASI nor a host function.
    #[error(
        "plugin {plugin} imports {module}::{name}, which plugins cannot have (only \
         wasi_snapshot_preview1 and capsule_host functions)"
    )]
    UnknownImport {
        plugin: String,
        module: String,
        name: String,
    },
    /// A directory of the manifest cannot be opened.
    #[error("plugin {plugin}: cannot open the directory {host} (for {guest}): {source}")]
    Dir {
        plugin: String,
        host: String,
        guest: String,
        #[source]
        source: std::io::Error,
    },
    /// The manifest itself is wrong (a guest path that is not absolute, ...).
    #[error("plugin {plugin}: bad manifest: {reason}")]
    Manifest { plugin: String, reason: String },
    /// The plugin has no such function.
    #[error(
        "plugin {plugin} has no function '{function}' (its functions: {})",
        if functions.is_empty() { "none".to_owned() } else { functions.join(", ") }
    )]
    NoSuchFunction {
        plugin: String,
        function: String,
        functions: Vec<String>,
    },
    /// The instance could not be made (a memory or table too large for the pool, ...).
    #[error("plugin {plugin}: cannot instantiate: {reason}")]
    Instantiate { plugin: String, reason: String },
    /// The call trapped (`unreachable`, a bad memory access, a Rust panic, a stack
    /// overflow, ...).
    #[error("plugin {plugin}: {function} trapped: {reason}")]
    Trap {
        plugin: String,
        function: String,
        reason: String,
    },
    /// The call used up its fuel.
    #[error("plugin {plugin}: {function} ran out of fuel (its limit is {fuel})")]
    OutOfFuel {
        plugin: String,
        function: String,
        fuel: u64,
    },
    /// The call ran past its deadline.
    #[error("plugin {plugin}: {function} did not finish within its deadline of {deadline:?}")]
    Deadline {
        plugin: String,
        function: String,
        deadline: Duration,
    },
    /// The call asked for memory past its limit and then failed.
    #[error("plugin {plugin}: {function} ran out of memory (its limit is {limit} bytes)")]
    OutOfMemory {
        plugin: String,
        function: String,
        limit: u64,
    },
    /// A call made from inside another call on the same thread (a host function calling
    /// back into a plugin) needed an instance slot while every slot of the host was
    /// held by calls waiting for one the same way (on a pool of one, by its own caller):
    /// none would ever be released, so it fails at once instead of waiting forever.
    #[error(
        "plugin {plugin}: {function} was called from inside another plugin call (a host \
         function calling back into a plugin), but all {max_instances} instance slot(s) of \
         the host are held by calls that wait for a nested call ({held_by_caller} by this \
         call's own thread), so none would ever be free: raise max_instances above the \
         depth of nested calls"
    )]
    NestedCallDeadlock {
        plugin: String,
        function: String,
        max_instances: u32,
        held_by_caller: u32,
    },
    /// The call ended the instance with WASI `proc_exit`.
    #[error("plugin {plugin}: {function} exited with status {status} instead of returning")]
    Exited {
        plugin: String,
        function: String,
        status: u32,
    },
    /// A host function panicked while the plugin called it.
    #[error("plugin {plugin}: {function}: the host function '{host_function}' panicked")]
    HostPanic {
        plugin: String,
        function: String,
        host_function: String,
    },
    /// The plugin returned an error result (the message is its own).
    #[error("plugin {plugin}: {function} returned an error: {message}")]
    Guest {
        plugin: String,
        function: String,
        message: String,
    },
    /// The input could not be encoded, or the output decoded, as JSON.
    #[error("plugin {plugin}: {function}: {what} is not the expected JSON: {source}")]
    Json {
        plugin: String,
        function: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Packs a pointer, a length and the error bit into an ABI result.
///
/// # Panics
/// Never: a length of 2 GiB or more is clamped (no wasm32 guest can hold one).
pub fn pack(ptr: u32, len: u32, error: bool) -> u64 {
    (u64::from(ptr) << 32) | (u64::from(error) << 31) | u64::from(len & 0x7fff_ffff)
}

/// Splits an ABI result into pointer, length and the error bit.
pub fn unpack(packed: u64) -> (u32, u32, bool) {
    let ptr = (packed >> 32) as u32;
    let len = (packed & 0x7fff_ffff) as u32;
    (ptr, len, packed & (1 << 31) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for (ptr, len, err) in [
            (0, 0, false),
            (u32::MAX, 0x7fff_ffff, true),
            (1024, 5, false),
        ] {
            assert_eq!(unpack(pack(ptr, len, err)), (ptr, len, err));
        }
        assert_eq!(pack(1, 2, false), (1 << 32) | 2);
        assert_eq!(pack(1, 2, true), (1 << 32) | (1 << 31) | 2);
    }
}
