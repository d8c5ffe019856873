//! Build-time assets: the built-in hello-world module (compiled from its WAT source) and
//! the wasmtime version that Cargo.lock resolved, for `capsule version` and `capsule info`.

// A build script reads Cargo's variables and writes to OUT_DIR (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let wat_path = manifest_dir.join("assets/hello-world.wat");
    println!("cargo:rerun-if-changed={}", wat_path.display());
    let wasm = wat::parse_file(&wat_path).unwrap_or_else(|e| panic!("assets/hello-world.wat: {e}"));
    fs::write(out_dir.join("hello-world.wasm"), wasm).expect("write hello-world.wasm");

    let lock_path = manifest_dir.join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let version = fs::read_to_string(&lock_path)
        .ok()
        .and_then(|lock| locked_version(&lock, "wasmtime"))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CAPSULE_WASMTIME_VERSION={version}");
}

/// The version of `name` in a Cargo.lock (`name = "x"` followed by `version = "y"`).
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines
                .next()?
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}
