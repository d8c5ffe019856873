//! Plugins: untrusted WebAssembly modules loaded once and called many times, from many
//! threads, with bytes (or JSON values) in and out.
//!
//! A [`PluginHost`] is the engine plugins run on: a pool of instance slots (wasmtime's
//! pooling allocator, memories reset from copy-on-write images), the host functions the
//! application offers, and a bound on the calls in flight. A [`Plugin`] is a module
//! loaded under a [`PluginManifest`] that says what it may reach: host directories,
//! environment variables, host functions, and the limits of every call (fuel, deadline,
//! memory). Each call runs in a fresh instance, so it sees nothing another call wrote;
//! a call that traps, loops or runs out of memory fails alone, with a [`PluginError`]
//! that says which, and the plugin keeps serving.
//!
//! ```
//! use capsule_sdk::plugin::{Plugin, PluginHost, PluginManifest};
//!
//! # fn main() -> Result<(), capsule_sdk::plugin::PluginError> {
//! // A plugin that answers with its input (a real one is Rust or C built with
//! // sdk/guest; see docs/plugins.md).
//! const ECHO: &str = r#"(module
//!   (memory (export "memory") 1)
//!   (global $next (mut i32) (i32.const 1024))
//!   (func (export "capsule_alloc") (param $len i32) (result i32)
//!     (global.get $next)
//!     (global.set $next (i32.add (global.get $next) (local.get $len))))
//!   (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
//!     (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
//!             (i64.extend_i32_u (local.get $len)))))"#;
//!
//! let host = PluginHost::new()?;
//! let plugin = Plugin::from_bytes(&host, "echo", ECHO, &PluginManifest::new())?;
//! assert_eq!(plugin.call("echo", b"hello")?, b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! # The calling convention
//!
//! The module exports `memory`, `capsule_alloc(len: i32) -> i32` and each plugin
//! function as `name(ptr: i32, len: i32) -> i64`. The host writes the input into memory
//! from `capsule_alloc` and calls the function; its result packs a pointer (bits 63..32),
//! an error bit (bit 31: the bytes are a UTF-8 error message) and a length (bits 30..0).
//! Host functions are imported from the module `capsule_host` under their namespaced
//! names (`kv.get`), with the same types: the host's output is written into memory from
//! `capsule_alloc`, with the error bit set when the host function returned an error.
//! The Rust crate `capsule-plugin` (`sdk/guest`) and the C header
//! `sdk/guest/include/capsule_plugin.h` do all of this for plugin authors.
#![deny(missing_docs)]

use capsule_runtime::plugin as rt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What went wrong loading or calling a plugin. Every variant names the plugin; call
/// failures name the function too. A failed call leaves the plugin usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin engine could not be set up.
    #[error("cannot set up the plugin engine: {reason}")]
    Engine {
        /// wasmtime's reason.
        reason: String,
    },
    /// The module could not be read, is not a WebAssembly module, or does not compile.
    #[error("plugin {plugin}: {reason}")]
    Module {
        /// The plugin's name.
        plugin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The image has no usable program, or the store cannot be read.
    #[error("plugin from image {image}: {reason}")]
    Image {
        /// The image reference.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// The module breaks the plugin calling convention.
    #[error("plugin {plugin}: not a Capsule plugin: {reason} (see docs/plugins.md for the ABI)")]
    Abi {
        /// The plugin's name.
        plugin: String,
        /// What it got wrong.
        reason: String,
    },
    /// The plugin imports a host function its manifest does not allow: it is refused
    /// at load.
    #[error(
        "plugin {plugin} imports the host function '{function}', which its manifest does not \
         allow (allow it in the manifest, or remove the import)"
    )]
    NotAllowed {
        /// The plugin's name.
        plugin: String,
        /// The host function's namespaced name.
        function: String,
    },
    /// The plugin imports a host function the host does not provide: it is refused at
    /// load.
    #[error(
        "plugin {plugin} imports the host function '{function}', which this host does not provide"
    )]
    UnknownHostFunction {
        /// The plugin's name.
        plugin: String,
        /// The host function's namespaced name.
        function: String,
    },
    /// The plugin imports something that is neither WASI nor a host function.
    #[error("plugin {plugin} imports {import}, which plugins cannot have")]
    UnknownImport {
        /// The plugin's name.
        plugin: String,
        /// `module::name` of the import.
        import: String,
    },
    /// The manifest is wrong (a directory that cannot be opened, a relative guest
    /// path, a host function name without a namespace).
    #[error("plugin {plugin}: {reason}")]
    Manifest {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin has no such function.
    #[error("plugin {plugin} has no function '{function}' (its functions: {})", functions.join(", "))]
    NoSuchFunction {
        /// The plugin's name.
        plugin: String,
        /// The function asked for.
        function: String,
        /// The functions it has.
        functions: Vec<String>,
    },
    /// The instance could not be made.
    #[error("plugin {plugin}: cannot instantiate: {reason}")]
    Instantiate {
        /// The plugin's name.
        plugin: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The call trapped (`unreachable`, a bad memory access, a Rust panic, ...).
    #[error("plugin {plugin}: {function} trapped: {reason}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// The trap, and the last line the plugin wrote to stderr if any.
        reason: String,
    },
    /// The call used up its fuel.
    #[error("plugin {plugin}: {function} ran out of fuel (its limit is {fuel})")]
    OutOfFuel {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// The limit.
        fuel: u64,
    },
    /// The call ran past its deadline.
    #[error("plugin {plugin}: {function} did not finish within its deadline of {deadline:?}")]
    Deadline {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// The limit.
        deadline: Duration,
    },
    /// The call needed memory past its limit and failed.
    #[error("plugin {plugin}: {function} ran out of memory (its limit is {limit} bytes)")]
    OutOfMemory {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A call from inside another plugin call (a host function calling back into a
    /// plugin) needed an instance while every one of the host's instances was held by
    /// calls waiting for a nested call (on a host of one instance, its own caller's):
    /// it fails at once instead of waiting forever. Raise
    /// [`PluginHostBuilder::max_instances`] above the depth of nested calls.
    #[error(
        "plugin {plugin}: {function} was called from inside another plugin call (a host \
         function calling back into a plugin), but all {max_instances} instance slot(s) of \
         the host are held by calls that wait for a nested call ({held_by_caller} by this \
         call's own thread), so none would ever be free: raise max_instances above the \
         depth of nested calls"
    )]
    NestedCallDeadlock {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// The host's instances.
        max_instances: u32,
        /// How many of them the calls of the calling thread hold.
        held_by_caller: u32,
    },
    /// The call ended its instance with WASI `proc_exit`.
    #[error("plugin {plugin}: {function} exited with status {status} instead of returning")]
    Exited {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// Its exit status.
        status: u32,
    },
    /// A host function panicked during the call.
    #[error("plugin {plugin}: {function}: the host function '{host_function}' panicked")]
    HostPanic {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// The host function that panicked.
        host_function: String,
    },
    /// The plugin returned an error result.
    #[error("plugin {plugin}: {function} returned an error: {message}")]
    Guest {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// The plugin's message.
        message: String,
    },
    /// The input could not be encoded, or the output decoded, as JSON.
    #[error("plugin {plugin}: {function}: {reason}")]
    Json {
        /// The plugin's name.
        plugin: String,
        /// The function called.
        function: String,
        /// Which side, and serde's reason.
        reason: String,
    },
}

impl From<rt::PluginError> for PluginError {
    fn from(e: rt::PluginError) -> Self {
        use rt::PluginError as R;
        match e {
            R::Engine(reason) => Self::Engine { reason },
            R::Module { plugin, reason } => Self::Module { plugin, reason },
            R::Compile { plugin, reason } => Self::Module {
                plugin,
                reason: format!("does not compile: {reason}"),
            },
            R::Image { image, reason } => Self::Image { image, reason },
            R::Abi { plugin, reason } => Self::Abi { plugin, reason },
            R::NotAllowed { plugin, function } => Self::NotAllowed { plugin, function },
            R::UnknownHostFunction {
                plugin, function, ..
            } => Self::UnknownHostFunction { plugin, function },
            R::UnknownImport {
                plugin,
                module,
                name,
            } => Self::UnknownImport {
                plugin,
                import: format!("{module}::{name}"),
            },
            R::Dir {
                plugin,
                host,
                guest,
                source,
            } => Self::Manifest {
                plugin,
                reason: format!("cannot open the directory {host} (for {guest}): {source}"),
            },
            R::Manifest { plugin, reason } => Self::Manifest { plugin, reason },
            R::NoSuchFunction {
                plugin,
                function,
                functions,
            } => Self::NoSuchFunction {
                plugin,
                function,
                functions,
            },
            R::Instantiate { plugin, reason } => Self::Instantiate { plugin, reason },
            R::Trap {
                plugin,
                function,
                reason,
            } => Self::Trap {
                plugin,
                function,
                reason,
            },
            R::OutOfFuel {
                plugin,
                function,
                fuel,
            } => Self::OutOfFuel {
                plugin,
                function,
                fuel,
            },
            R::Deadline {
                plugin,
                function,
                deadline,
            } => Self::Deadline {
                plugin,
                function,
                deadline,
            },
            R::OutOfMemory {
                plugin,
                function,
                limit,
            } => Self::OutOfMemory {
                plugin,
                function,
                limit,
            },
            R::NestedCallDeadlock {
                plugin,
                function,
                max_instances,
                held_by_caller,
            } => Self::NestedCallDeadlock {
                plugin,
                function,
                max_instances,
                held_by_caller,
            },
            R::Exited {
                plugin,
                function,
                status,
            } => Self::Exited {
                plugin,
                function,
                status,
            },
            R::HostPanic {
                plugin,
                function,
                host_function,
            } => Self::HostPanic {
                plugin,
                function,
                host_function,
            },
            R::Guest {
                plugin,
                function,
                message,
            } => Self::Guest {
                plugin,
                function,
                message,
            },
            R::Json {
                plugin,
                function,
                what,
                source,
            } => Self::Json {
                plugin,
                function,
                reason: format!("{what} is not the expected JSON: {source}"),
            },
        }
    }
}

/// The error a host function returns; the plugin receives its message as an error
/// result (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    message: String,
}

impl HostError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

impl From<String> for HostError {
    fn from(message: String) -> Self {
        Self { message }
    }
}

impl From<&str> for HostError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// The engine plugins run on: a pool of instances, the host functions, the limit of
/// calls in flight. Cheap to clone; plugins keep their host alive.
#[derive(Debug, Clone)]
pub struct PluginHost {
    inner: rt::PluginHost,
}

impl PluginHost {
    /// A host with the defaults of [`PluginHostBuilder`]: no host functions, 100
    /// instances at once, nothing cached on disk.
    ///
    /// # Errors
    /// [`PluginError::Engine`] when the engine cannot be set up.
    pub fn new() -> Result<Self, PluginError> {
        Self::builder().build()
    }

    /// Starts configuring a host.
    pub fn builder() -> PluginHostBuilder {
        PluginHostBuilder::default()
    }
}

/// Configures a [`PluginHost`].
///
/// ```
/// use capsule_sdk::plugin::{HostError, PluginHost};
///
/// # fn main() -> Result<(), capsule_sdk::plugin::PluginError> {
/// let host = PluginHost::builder()
///     .max_instances(16)
///     .host_function("text.shout", |input: &[u8]| Ok(input.to_ascii_uppercase()))
///     .host_function_json("math.div", |(a, b): (i64, i64)| {
///         a.checked_div(b).ok_or_else(|| HostError::new("division by zero"))
///     })
///     .build()?;
/// # let _ = host;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct PluginHostBuilder {
    max_instances: Option<u32>,
    cache: Option<capsule_runtime::engine::ModuleCache>,
    cache_error: Option<(PathBuf, String)>,
    functions: rt::HostFunctions,
}

impl PluginHostBuilder {
    /// Instances alive at once, across all plugins of the host (default 100): a call
    /// past it waits for one to end, within its deadline (the wait counts toward it,
    /// and a call that waits past it fails with [`PluginError::Deadline`]). A call from
    /// a host function (nested) that could only wait forever, because every instance
    /// is held by calls waiting for nested ones (on a host of one instance, any nested
    /// call), fails at once with [`PluginError::NestedCallDeadlock`]. Each instance
    /// reserves address space for a 4 GiB memory (not memory itself).
    pub fn max_instances(mut self, count: u32) -> Self {
        self.max_instances = Some(count);
        self
    }

    /// Caches compiled plugins in `dir` (Capsule's module cache format), so that a
    /// later process loads them without compiling. Default: no cache, nothing written.
    pub fn module_cache(mut self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        match capsule_runtime::engine::ModuleCache::open(dir) {
            Ok(cache) => self.cache = Some(cache),
            Err(e) => self.cache_error = Some((dir.to_owned(), e.to_string())),
        }
        self
    }

    /// Caches compiled plugins in the module cache of a Capsule home (none for an
    /// in-memory one).
    pub fn module_cache_of(mut self, capsule: &crate::Capsule) -> Self {
        self.cache = capsule.module_cache().cloned();
        self
    }

    /// Offers a host function under a namespaced name (`namespace.function`): bytes
    /// from the plugin in, bytes back or a [`HostError`] whose message the plugin
    /// receives as an error result. Only plugins whose manifest allows `name` may
    /// import it. A panic in `function` fails the plugin's call with
    /// [`PluginError::HostPanic`].
    pub fn host_function<F>(mut self, name: &str, function: F) -> Self
    where
        F: Fn(&[u8]) -> Result<Vec<u8>, HostError> + Send + Sync + 'static,
    {
        self.functions.register(
            name,
            Arc::new(move |input: &[u8]| function(input).map_err(|e| e.message)),
        );
        self
    }

    /// Offers a host function over JSON: the plugin's bytes are decoded as `A`, and the
    /// `R` returned is encoded back (bytes that are not an `A` are an error result for
    /// the plugin).
    pub fn host_function_json<A, R, F>(self, name: &str, function: F) -> Self
    where
        A: serde::de::DeserializeOwned,
        R: serde::Serialize,
        F: Fn(A) -> Result<R, HostError> + Send + Sync + 'static,
    {
        let owned = name.to_owned();
        self.host_function(name, move |input: &[u8]| {
            let arg: A = serde_json::from_slice(input).map_err(|e| {
                HostError::new(format!("{owned}: the input is not the expected JSON: {e}"))
            })?;
            let out = function(arg)?;
            serde_json::to_vec(&out).map_err(|e| HostError::new(format!("{owned}: {e}")))
        })
    }

    /// Builds the host.
    ///
    /// # Errors
    /// [`PluginError::Engine`] when the engine cannot be set up;
    /// [`PluginError::Manifest`] for a host function name without a namespace or a
    /// module cache directory that cannot be opened.
    pub fn build(self) -> Result<PluginHost, PluginError> {
        if let Some((dir, reason)) = self.cache_error {
            return Err(PluginError::Manifest {
                plugin: "(host)".to_owned(),
                reason: format!("cannot open the module cache {}: {reason}", dir.display()),
            });
        }
        let defaults = rt::PluginHostOptions::default();
        let options = rt::PluginHostOptions {
            max_instances: self.max_instances.unwrap_or(defaults.max_instances),
            cache: self.cache,
        };
        Ok(PluginHost {
            inner: rt::PluginHost::new(options, self.functions)?,
        })
    }
}

/// What a plugin may reach, and the limits of each of its calls. The default reaches
/// nothing: no directories, an empty environment, no host functions, output discarded;
/// calls unmetered, with a 10 s deadline and 64 MiB of memory.
///
/// ```
/// use capsule_sdk::plugin::PluginManifest;
/// use std::time::Duration;
///
/// let manifest = PluginManifest::new()
///     .dir_read_only("/srv/templates", "/templates")
///     .env("LANG", "C.UTF-8")
///     .allow_host_function("kv.get")
///     .fuel(10_000_000)
///     .deadline(Duration::from_millis(50))
///     .memory(16 << 20);
/// # let _ = manifest;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginManifest {
    inner: rt::PluginManifest,
}

impl PluginManifest {
    /// A manifest that reaches nothing, with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets the plugin read and write the host directory `host` at `guest` (absolute).
    pub fn dir(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.inner.dirs.push(rt::DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only: false,
        });
        self
    }

    /// Lets the plugin read (only) the host directory `host` at `guest` (absolute).
    pub fn dir_read_only(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.inner.dirs.push(rt::DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only: true,
        });
        self
    }

    /// Sets an environment variable the plugin sees.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.env.push((key.into(), value.into()));
        self
    }

    /// Lets the plugin import the host function `name` (`namespace.function`).
    pub fn allow_host_function(mut self, name: impl Into<String>) -> Self {
        self.inner.allowed_host_functions.insert(name.into());
        self
    }

    /// Fuel per call (wasmtime units, about one per instruction); default unmetered.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.inner.limits.fuel = Some(fuel);
        self
    }

    /// Wall-clock time per call (to within about a millisecond), from when it is made:
    /// time waiting for an instance counts; default 10 s.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.inner.limits.deadline = Some(deadline);
        self
    }

    /// No deadline: a call may run as long as its fuel lasts.
    pub fn no_deadline(mut self) -> Self {
        self.inner.limits.deadline = None;
        self
    }

    /// Bytes of memory (linear memories and tables) an instance may have; default
    /// 64 MiB.
    pub fn memory(mut self, bytes: u64) -> Self {
        self.inner.limits.memory = bytes;
        self
    }

    /// Sends the plugin's stdout and stderr to the host's stderr (default: discarded).
    pub fn forward_output(mut self, forward: bool) -> Self {
        self.inner.forward_output = forward;
        self
    }
}

/// A loaded plugin: call it from any thread, as often as needed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Plugin {
    inner: rt::Plugin,
}

impl Plugin {
    /// Loads a plugin from module bytes (binary, or WebAssembly text). `name` names it
    /// in errors.
    ///
    /// # Errors
    /// [`PluginError::Module`] for bytes that are not a module; the load errors of
    /// [`Plugin::from_file`].
    pub fn from_bytes(
        host: &PluginHost,
        name: &str,
        bytes: impl AsRef<[u8]>,
        manifest: &PluginManifest,
    ) -> Result<Self, PluginError> {
        Ok(Self {
            inner: rt::Plugin::load(&host.inner, name, bytes.as_ref(), &manifest.inner)?,
        })
    }

    /// Loads a plugin from a module file.
    ///
    /// # Errors
    /// [`PluginError::Module`] when the file cannot be read or compiled;
    /// [`PluginError::Abi`] when it is not a plugin; [`PluginError::NotAllowed`] when it
    /// imports a host function its manifest does not allow,
    /// [`PluginError::UnknownHostFunction`] one the host does not offer,
    /// [`PluginError::UnknownImport`] anything else; [`PluginError::Manifest`] for a
    /// directory that cannot be opened; [`PluginError::OutOfMemory`] or
    /// [`PluginError::Instantiate`] when an instance does not fit its limits.
    pub fn from_file(
        host: &PluginHost,
        path: impl AsRef<Path>,
        manifest: &PluginManifest,
    ) -> Result<Self, PluginError> {
        Ok(Self {
            inner: rt::Plugin::load_file(&host.inner, path.as_ref(), &manifest.inner)?,
        })
    }

    /// Loads the program of an image in a Capsule home's store (its ENTRYPOINT, else
    /// its CMD) as a plugin. The image's `ENV` comes before the manifest's environment;
    /// its filesystem is not the plugin's (the manifest's directories are).
    ///
    /// # Errors
    /// [`PluginError::Image`] when the image has no usable program, else as
    /// [`Plugin::from_file`].
    pub fn from_image(
        host: &PluginHost,
        capsule: &crate::Capsule,
        image: &crate::Image,
        manifest: &PluginManifest,
    ) -> Result<Self, PluginError> {
        let Some(home) = capsule.home_ref() else {
            return Err(PluginError::Image {
                image: image.name().to_owned(),
                reason: "this Capsule is in memory: images need a home (Capsule::open)".to_owned(),
            });
        };
        Ok(Self {
            inner: rt::Plugin::load_image(
                &host.inner,
                home,
                &image.inner.id().to_string(),
                &manifest.inner,
            )?,
        })
    }

    /// The name it was loaded as.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Its functions (exports of the plugin type), sorted.
    pub fn functions(&self) -> Vec<String> {
        self.inner.functions()
    }

    /// Calls `function` with `input` in a fresh instance and returns its output.
    ///
    /// ```
    /// use capsule_sdk::plugin::{HostError, Plugin, PluginError, PluginHost, PluginManifest};
    ///
    /// # fn main() -> Result<(), PluginError> {
    /// // A plugin whose `shout` passes its input to the host function `text.shout` and
    /// // returns the host's answer (or error) as its own.
    /// const SHOUT: &str = r#"(module
    ///   (import "capsule_host" "text.shout" (func $shout (param i32 i32) (result i64)))
    ///   (memory (export "memory") 1)
    ///   (global $next (mut i32) (i32.const 1024))
    ///   (func (export "capsule_alloc") (param $len i32) (result i32)
    ///     (global.get $next)
    ///     (global.set $next (i32.add (global.get $next) (local.get $len))))
    ///   (func (export "shout") (param i32 i32) (result i64)
    ///     (call $shout (local.get 0) (local.get 1))))"#;
    ///
    /// let host = PluginHost::builder()
    ///     .host_function("text.shout", |input: &[u8]| {
    ///         if input.is_empty() {
    ///             return Err(HostError::new("nothing to shout"));
    ///         }
    ///         Ok(input.to_ascii_uppercase())
    ///     })
    ///     .build()?;
    ///
    /// // Without the host function in its manifest, the plugin does not load.
    /// let refused = Plugin::from_bytes(&host, "shout", SHOUT, &PluginManifest::new());
    /// assert!(matches!(refused, Err(PluginError::NotAllowed { function, .. }) if function == "text.shout"));
    ///
    /// let manifest = PluginManifest::new().allow_host_function("text.shout");
    /// let plugin = Plugin::from_bytes(&host, "shout", SHOUT, &manifest)?;
    /// assert_eq!(plugin.call("shout", b"hello")?, b"HELLO");
    /// match plugin.call("shout", b"") {
    ///     Err(PluginError::Guest { message, .. }) => assert_eq!(message, "nothing to shout"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`PluginError::NoSuchFunction`]; how the call failed
    /// ([`PluginError::Trap`], [`PluginError::OutOfFuel`], [`PluginError::Deadline`],
    /// [`PluginError::OutOfMemory`], [`PluginError::Exited`],
    /// [`PluginError::HostPanic`], [`PluginError::Abi`]); the deadline passing while it
    /// waits for an instance ([`PluginError::Deadline`]); a nested call that could only
    /// wait forever ([`PluginError::NestedCallDeadlock`]); or the plugin's own error
    /// result, [`PluginError::Guest`].
    pub fn call(&self, function: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        Ok(self.inner.call(function, input)?)
    }

    /// Calls `function` with `input` as JSON and decodes its JSON output.
    ///
    /// # Errors
    /// [`PluginError::Json`] when either side is not the expected JSON, else as
    /// [`Plugin::call`].
    pub fn call_json<T, R>(&self, function: &str, input: &T) -> Result<R, PluginError>
    where
        T: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        Ok(self.inner.call_json(function, input)?)
    }
}
