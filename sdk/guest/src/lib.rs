//! Write [Capsule](https://example.invalid/capsule) plugins in Rust.
//!
//! A plugin is a `cdylib` built for `wasm32-wasip1`. Each plugin function takes bytes and
//! returns bytes or an error message; [`export!`] makes it callable by the host, and
//! [`host_fn!`] declares a host function the plugin calls (its manifest must allow it).
//! With the `json` feature (on by default), [`export_json!`] and [`host_fn_json!`] do the
//! same with serde values.
//!
//! ```ignore
//! // Cargo.toml: [lib] crate-type = ["cdylib"]; [dependencies] capsule-plugin = { path = ... }
//! capsule_plugin::export! {
//!     fn upper(input: &[u8]) -> Result<Vec<u8>, String> {
//!         Ok(input.to_ascii_uppercase())
//!     }
//! }
//! capsule_plugin::host_fn!(fn kv_get = "kv.get");
//! capsule_plugin::export! {
//!     fn lookup(key: &[u8]) -> Result<Vec<u8>, String> {
//!         kv_get(key) // an error from the host comes back as Err(message)
//!     }
//! }
//! ```
//!
//! The ABI underneath (`docs/plugins.md`): the crate exports `capsule_alloc(len) -> ptr`;
//! a plugin function is `name(ptr: i32, len: i32) -> i64`, its result a pointer in the
//! high 32 bits, bit 31 set for an error, the length in bits 30..0. Host functions are
//! imported from the module `capsule_host` under their namespaced names, with the same
//! types. Every call runs in a fresh instance, so nothing here is ever freed.

#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "json")]
    pub use serde_json;
}

/// Gives the host `len` bytes to write a plugin function's input (or a host function's
/// output) into. Never freed: the instance ends with the call.
#[unsafe(no_mangle)]
pub extern "C" fn capsule_alloc(len: usize) -> *mut u8 {
    let mut buffer = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(len.max(1)));
    buffer.as_mut_ptr()
}

/// Packs a result for the host: pointer, error bit, length.
#[doc(hidden)]
pub fn __pack(result: Result<Vec<u8>, String>) -> u64 {
    let (bytes, error) = match result {
        Ok(bytes) => (bytes, 0u64),
        Err(message) => (message.into_bytes(), 1u64),
    };
    let bytes = std::mem::ManuallyDrop::new(bytes);
    let len = bytes.len().min(0x7fff_ffff) as u64;
    ((bytes.as_ptr() as usize as u64) << 32) | (error << 31) | len
}

/// The input the host wrote at `ptr`.
///
/// # Safety
/// `ptr` and `len` are what the host passed to a plugin function.
#[doc(hidden)]
pub unsafe fn __input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: the host wrote `len` bytes at `ptr`, from `capsule_alloc`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// Unpacks a host function's result.
///
/// # Safety
/// `packed` is what a host function returned.
#[doc(hidden)]
pub unsafe fn __unpack(packed: u64) -> Result<Vec<u8>, String> {
    let ptr = (packed >> 32) as usize as *const u8;
    let len = (packed & 0x7fff_ffff) as usize;
    // SAFETY: the host wrote `len` bytes at `ptr`, from `capsule_alloc`.
    let bytes = unsafe { __input(ptr, len) }.to_vec();
    if packed & (1 << 31) != 0 {
        Err(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        Ok(bytes)
    }
}

/// Exports plugin functions: each `fn name(input: &[u8]) -> Result<Vec<u8>, String>` is
/// callable by the host as `name`; an `Err` reaches the host as the call's error.
#[macro_export]
macro_rules! export {
    ($(fn $name:ident($input:ident: &[u8]) -> Result<Vec<u8>, String> $body:block)*) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $name(ptr: *const u8, len: usize) -> u64 {
                // SAFETY: the host passes the input it wrote.
                let $input: &[u8] = unsafe { $crate::__input(ptr, len) };
                let result: Result<Vec<u8>, String> = (|| $body)();
                $crate::__pack(result)
            }
        )*
    };
}

/// Exports plugin functions over JSON: each `fn name(arg: A) -> Result<R, String>`
/// (`A: Deserialize`, `R: Serialize`) is callable by the host as `name` with JSON bytes.
#[cfg(feature = "json")]
#[macro_export]
macro_rules! export_json {
    ($(fn $name:ident($arg:ident: $ty:ty) -> Result<$out:ty, String> $body:block)*) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $name(ptr: *const u8, len: usize) -> u64 {
                // SAFETY: the host passes the input it wrote.
                let input: &[u8] = unsafe { $crate::__input(ptr, len) };
                let result = $crate::__private::serde_json::from_slice::<$ty>(input)
                    .map_err(|e| format!("the input is not the expected JSON: {e}"))
                    .and_then(|$arg: $ty| -> Result<$out, String> { $body })
                    .and_then(|out| {
                        $crate::__private::serde_json::to_vec(&out).map_err(|e| e.to_string())
                    });
                $crate::__pack(result)
            }
        )*
    };
}

/// Declares a host function: `host_fn!(fn kv_get = "kv.get");` makes
/// `fn kv_get(input: &[u8]) -> Result<Vec<u8>, String>`, which calls the host's `kv.get`
/// (an `Err` is the host function's error message).
#[macro_export]
macro_rules! host_fn {
    ($vis:vis fn $rust:ident = $name:literal) => {
        $vis fn $rust(input: &[u8]) -> Result<Vec<u8>, String> {
            #[link(wasm_import_module = "capsule_host")]
            unsafe extern "C" {
                #[link_name = $name]
                fn import(ptr: *const u8, len: usize) -> u64;
            }
            // SAFETY: the import follows the plugin ABI; the host reads `input` only.
            unsafe { $crate::__unpack(import(input.as_ptr(), input.len())) }
        }
    };
}

/// Declares a host function over JSON: `host_fn_json!(fn add = "math.add", A => R);`
/// makes `fn add(arg: &A) -> Result<R, String>`.
#[cfg(feature = "json")]
#[macro_export]
macro_rules! host_fn_json {
    ($vis:vis fn $rust:ident = $name:literal, $arg:ty => $out:ty) => {
        $vis fn $rust(arg: &$arg) -> Result<$out, String> {
            $crate::host_fn!(fn raw = $name);
            let input = $crate::__private::serde_json::to_vec(arg).map_err(|e| e.to_string())?;
            let output = raw(&input)?;
            $crate::__private::serde_json::from_slice(&output)
                .map_err(|e| format!("{} returned unexpected JSON: {e}", $name))
        }
    };
}
