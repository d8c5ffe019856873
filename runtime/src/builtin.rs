//! Modules built into the `capsule` binary, so that they run offline on a fresh install.

/// The hello-world module (`runtime/assets/hello-world.wat`), compiled at build time.
pub const HELLO_WORLD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello-world.wasm"));

/// The built-in module with this name, if there is one.
pub fn lookup(name: &str) -> Option<&'static [u8]> {
    match name {
        "hello-world" | "hello-world:latest" => Some(HELLO_WORLD),
        _ => None,
    }
}
