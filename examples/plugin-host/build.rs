//! Builds the three plugins this example serves, so that `cargo run -p
//! capsule-example-plugin-host` needs nothing else: `plugins/rust` (a Rust `cdylib` on
//! the guest crate `sdk/guest`) with cargo for `wasm32-wasip1`, and `plugins/*.c` (on
//! `sdk/guest/include/capsule_plugin.h`) with clang for `wasm32-wasi` as reactors. The
//! program embeds them (`CAPSULE_EXAMPLE_PLUGIN_*`, paths under `OUT_DIR`).
//!
//! A missing tool fails the build with the command that installs it, never silently.
//! `CAPSULE_GUEST_CC` names another C compiler, as for the tests' guests.
// A build script reads Cargo's variables and writes to OUT_DIR (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const C_TOOLCHAIN: &str = "install clang, lld and wasi-libc: apt-get install -y clang lld wasi-libc libclang-rt-N-dev-wasm32, N the major version of clang (14 on Debian 12, 19 on Debian 13); or run scripts/install-test-deps.sh, which does it";
const RUST_TARGET: &str = "rustup target add wasm32-wasip1";

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\n\nexamples/plugin-host: {message}\n");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?).join("plugins");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let plugins = manifest.join("plugins");
    let guest = manifest.join("../../sdk/guest");
    for watched in [
        plugins.join("plugin_text.c"),
        plugins.join("plugin_rogue.c"),
        plugins.join("rust/src"),
        plugins.join("rust/Cargo.toml"),
        guest.join("src"),
        guest.join("include"),
        guest.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    println!("cargo:rerun-if-env-changed=CAPSULE_GUEST_CC");

    let rust = build_rust(&plugins.join("rust"), &out)?;
    let cc = env::var("CAPSULE_GUEST_CC").unwrap_or_else(|_| "clang".to_owned());
    let include = guest.join("include");
    let text = build_c(&cc, &include, &plugins.join("plugin_text.c"), &out)?;
    let rogue = build_c(&cc, &include, &plugins.join("plugin_rogue.c"), &out)?;
    for (name, path) in [("RUST", rust), ("TEXT", text), ("ROGUE", rogue)] {
        println!(
            "cargo:rustc-env=CAPSULE_EXAMPLE_PLUGIN_{name}={}",
            path.display()
        );
    }
    Ok(())
}

/// `cargo build --release --target wasm32-wasip1 --lib` of the Rust plugin, in a target
/// directory under `OUT_DIR`; the path of `rust_plugin.wasm`.
fn build_rust(crate_dir: &Path, out: &Path) -> Result<PathBuf, String> {
    let target_dir = out.join("rust-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip1"])
        .arg("--lib")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's settings are for the host, not for the plugin.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .map_err(|e| format!("cannot run {cargo} to build the Rust plugin: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip1") && stderr.contains("target") {
            format!("\nTo fix: {RUST_TARGET}")
        } else {
            String::new()
        };
        return Err(format!(
            "building the Rust plugin ({}) for wasm32-wasip1 failed:\n{stderr}{hint}",
            crate_dir.display()
        ));
    }
    let wasm = target_dir.join("wasm32-wasip1/release/rust_plugin.wasm");
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!("{} was not produced", wasm.display()))
    }
}

/// A C plugin built as a WASI reactor; the path of `STEM.wasm`.
fn build_c(cc: &str, include: &Path, src: &Path, out: &Path) -> Result<PathBuf, String> {
    let stem = src
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("{}: not a UTF-8 file name", src.display()))?;
    let wasm = out.join(format!("{stem}.wasm"));
    let output = Command::new(cc)
        .args([
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-mexec-model=reactor",
        ])
        .arg("-I")
        .arg(include)
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-Wl,--strip-debug"])
        .arg(src)
        .arg("-o")
        .arg(&wasm)
        .output()
        .map_err(|e| {
            format!("cannot run {cc} to build the C plugins: {e}\nTo fix: {C_TOOLCHAIN}")
        })?;
    if output.status.success() {
        Ok(wasm)
    } else {
        Err(format!(
            "{cc} could not build {} for wasm32-wasi:\n{}\nTo fix (when the toolchain is what is missing): {C_TOOLCHAIN}",
            src.display(),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
