//! Builds the guest programs under `guests/` to wasm32-wasi and generates
//! `guests.rs`: one constant per guest with the path of its `.wasm`, and a
//! `foreach_guest!` macro that the tests use to prove every guest has a test. The
//! conformance programs are also made into WASI 0.2 components (`conformance_p2`).
//!
//! C guests need clang, lld and wasi-libc. When they are missing this fails with the
//! command that installs them (`scripts/install-test-deps.sh`), never silently.

// A build script reads Cargo's variables and writes to OUT_DIR (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (it runs: apt-get install -y clang lld wasi-libc libclang-rt-N-dev-wasm32, where N is the major version of the installed clang: 14 on Debian 12, 19 on Debian 13)";

/// [`INSTALL_HINT`] with the package of the clang that is installed, when it runs.
fn install_hint(cc: &str) -> String {
    let major = Command::new(cc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let rest = text.split("clang version ").nth(1)?;
            let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!major.is_empty()).then_some(major)
        });
    match major {
        Some(n) => format!(
            "run scripts/install-test-deps.sh (it runs: apt-get install -y clang lld wasi-libc libclang-rt-{n}-dev-wasm32, the wasm32 runtime of the installed clang {n})"
        ),
        None => INSTALL_HINT.to_owned(),
    }
}

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("guests");
    fs::create_dir_all(&out).expect("create guests output directory");

    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("guests/errno_name.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../sdk/guest").display()
    );
    let c_dir = manifest.join("guests/c");
    println!("cargo:rerun-if-changed={}", c_dir.display());
    println!("cargo:rerun-if-env-changed=CAPSULE_GUEST_CC");
    let mut sources: Vec<PathBuf> = fs::read_dir(&c_dir)
        .expect("read guests/c")
        .map(|e| e.expect("read guests/c entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();

    let cc = env::var("CAPSULE_GUEST_CC").unwrap_or_else(|_| "clang".to_owned());
    check_toolchain(&cc, &out);

    let mut consts = String::new();
    let mut names = Vec::new();
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
        let stem = src
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("guest names are UTF-8");
        let wasm = out.join(format!("{stem}.wasm"));
        // A guest whose name starts with "reactor" is a WASI reactor (no _start), and so
        // is a plugin ("plugin...", written with sdk/guest/include/capsule_plugin.h).
        let reactor = stem.starts_with("reactor") || stem.starts_with("plugin");
        compile_c_as(&cc, src, &wasm, reactor);
        let ident = stem.to_uppercase().replace('-', "_");
        consts.push_str(&format!(
            "/// `guests/c/{stem}.c` built for wasm32-wasi.\npub const {ident}: &str = {:?};\n",
            wasm.display().to_string()
        ));
        names.push(stem.replace('-', "_"));
    }
    // The C plugins of examples/plugin-host (which its build.rs builds for users):
    // reactors on sdk/guest/include/capsule_plugin.h, tested like the guests above.
    let plugins_dir = manifest.join("../examples/plugin-host/plugins");
    println!("cargo:rerun-if-changed={}", plugins_dir.display());
    let mut plugins: Vec<PathBuf> = fs::read_dir(&plugins_dir)
        .expect("read examples/plugin-host/plugins")
        .map(|e| e.expect("read examples/plugin-host/plugins entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    plugins.sort();
    for src in &plugins {
        println!("cargo:rerun-if-changed={}", src.display());
        let stem = src
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("plugin names are UTF-8");
        let wasm = out.join(format!("{stem}.wasm"));
        compile_c_as(&cc, src, &wasm, true);
        consts.push_str(&format!(
            "/// `examples/plugin-host/plugins/{stem}.c` built for wasm32-wasi.\npub const {}: &str = {:?};\n",
            stem.to_uppercase(),
            wasm.display().to_string()
        ));
        names.push(stem.to_owned());
    }
    // Conformance programs: built the same way, listed separately (the differential
    // harness runs each under Capsule and under the reference).
    let conf_dir = manifest.join("guests/conformance");
    println!("cargo:rerun-if-changed={}", conf_dir.display());
    let mut conf: Vec<PathBuf> = fs::read_dir(&conf_dir)
        .expect("read guests/conformance")
        .map(|e| e.expect("read guests/conformance entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "c" || x == "h"))
        .collect();
    conf.sort();
    let mut conf_names = Vec::new();
    let mut conf_consts = String::new();
    let mut p2_consts = String::new();
    for src in conf
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
    {
        println!("cargo:rerun-if-changed={}", src.display());
        let stem = src
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("guest names are UTF-8");
        let wasm = out.join(format!("conformance-{stem}.wasm"));
        compile_c(&cc, src, &wasm);
        conf_consts.push_str(&format!("    /// `guests/conformance/{stem}.c` built for wasm32-wasi.\n    pub const {}: &str = {:?};\n", stem.to_uppercase(), wasm.display().to_string()));
        // The same module as a `wasi:cli/command` component, through the preview1
        // adapter: the preview2 conformance harness runs these.
        let component = out.join(format!("conformance-p2-{stem}.wasm"));
        componentize(&wasm, &component);
        p2_consts.push_str(&format!("    /// `guests/conformance/{stem}.c` built for wasm32-wasi, as a component (the preview1 adapter).\n    pub const {}: &str = {:?};\n", stem.to_uppercase(), component.display().to_string()));
        conf_names.push(stem.to_owned());
    }
    // The Rust conformance guest: Rust std over WASI, built by cargo for wasm32-wasip1.
    let rust_std = build_rust_guest(&manifest.join("guests/rust"), &out, "rust_std");
    conf_consts.push_str(&format!(
        "    /// `guests/rust/src/bin/rust_std.rs` built for wasm32-wasip1.\n    pub const RUST_STD: &str = {:?};\n",
        rust_std.display().to_string()
    ));
    conf_names.push("rust_std".to_owned());
    // The same guest built natively for WASI 0.2 (a component from the toolchain).
    let rust_std_p2 = build_rust_guest_for(
        &manifest.join("guests/rust"),
        &out,
        "rust_std",
        "wasm32-wasip2",
    );
    p2_consts.push_str(&format!(
        "    /// `guests/rust/src/bin/rust_std.rs` built for wasm32-wasip2.\n    pub const RUST_STD: &str = {:?};\n",
        rust_std_p2.display().to_string()
    ));
    let wasi_fuzz = build_rust_guest(&manifest.join("guests/rust"), &out, "wasi_fuzz");
    consts.push_str(&format!(
        "/// `guests/rust/src/bin/wasi_fuzz.rs` (the generated differential test) built for wasm32-wasip1.\npub const WASI_FUZZ: &str = {:?};\n",
        wasi_fuzz.display().to_string()
    ));
    // The Rust plugin of examples/plugin-host: a cdylib over the guest crate for plugin
    // authors (sdk/guest).
    let rust_plugin = build_rust_plugin(
        &manifest.join("../examples/plugin-host/plugins/rust"),
        &out,
        "rust_plugin",
    );
    consts.push_str(&format!(
        "/// `examples/plugin-host/plugins/rust` (a Rust plugin on sdk/guest) built for wasm32-wasip1.\npub const RUST_PLUGIN: &str = {:?};\n",
        rust_plugin.display().to_string()
    ));
    let rust_panic = build_rust_guest(&manifest.join("guests/rust"), &out, "rust_panic");
    consts.push_str(&format!(
        "/// `guests/rust/src/bin/rust_panic.rs` built for wasm32-wasip1.\npub const RUST_PANIC: &str = {:?};\n",
        rust_panic.display().to_string()
    ));
    for header in conf
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
    {
        println!("cargo:rerun-if-changed={}", header.display());
    }
    consts.push_str(
        "\n/// The conformance programs (`guests/conformance/*.c`).\npub mod conformance {\n",
    );
    consts.push_str(&conf_consts);
    consts.push_str("}\n\n/// Calls `$m!(name, PATH)` for every conformance program.\n#[macro_export]\nmacro_rules! foreach_conformance {\n    ($m:ident) => {\n");
    for name in &conf_names {
        consts.push_str(&format!(
            "        $m!({name}, $crate::guests::conformance::{});\n",
            name.to_uppercase()
        ));
    }
    consts.push_str("    };\n}\n");
    consts.push_str(
        "\n/// The conformance programs as `wasi:cli/command` components (WASI 0.2): the C \
         programs through the preview1 adapter, `rust_std` built for wasm32-wasip2.\npub mod conformance_p2 {\n",
    );
    consts.push_str(&p2_consts);
    consts.push_str("}\n\n/// Calls `$m!(name, PATH)` for every conformance program as a component.\n#[macro_export]\nmacro_rules! foreach_conformance_p2 {\n    ($m:ident) => {\n");
    for name in &conf_names {
        consts.push_str(&format!(
            "        $m!({name}, $crate::guests::conformance_p2::{});\n",
            name.to_uppercase()
        ));
    }
    consts.push_str("    };\n}\n");

    consts.push_str("\n/// Calls `$m!(name)` for every guest program (its file stem).\n#[macro_export]\nmacro_rules! foreach_guest {\n    ($m:ident) => {\n");
    for name in &names {
        consts.push_str(&format!("        $m!({name});\n"));
    }
    consts.push_str("    };\n}\n");

    // The programs of the image examples (`examples/guests`, which `examples/build.sh`
    // builds for users): Rust std guests, built the same way as `guests/rust`.
    let examples_dir = manifest.join("../examples/guests");
    consts.push_str("\n/// The programs of the image examples (`examples/guests/src/bin/`).\npub mod examples {\n");
    for bin in ["catalog", "mkindex", "show"] {
        let wasm = build_rust_guest(&examples_dir, &out, bin);
        consts.push_str(&format!(
            "    /// `examples/guests/src/bin/{bin}.rs` built for wasm32-wasip1.\n    pub const {}: &str = {:?};\n",
            bin.to_uppercase(),
            wasm.display().to_string()
        ));
    }
    // The library API example (`examples/library-api`, its own workspace, which
    // `examples/library-api/build.sh` builds for users).
    let library_api = build_rust_guest(
        &manifest.join("../examples/library-api"),
        &out,
        "library-api",
    );
    consts.push_str(&format!(
        "    /// `examples/library-api` built for wasm32-wasip1.\n    pub const LIBRARY_API: &str = {:?};\n",
        library_api.display().to_string()
    ));
    consts.push_str("}\n");
    consts.push_str(&build_components(&manifest, &out));
    fs::write(out.join("guests.rs"), consts).expect("write guests.rs");
}

/// A program the build runs from the machine: listed in `scripts/test-tools.txt`, which
/// `scripts/install-test-deps.sh` installs from (the `tools::` test holds every name
/// passed here to the list).
fn tool(name: &str) -> &str {
    name
}

/// The example WASI 0.2 components (`examples/components`), built by the project's own
/// `scripts/build-components.sh` (which installs what it needs: the wasm32-wasip2
/// target, componentize-py from PyPI, componentize-js from npm) into `OUT/components`.
/// Returns the `components` module of their paths.
fn build_components(manifest: &Path, out: &Path) -> String {
    let root = manifest.join("..");
    let script = root.join("scripts/build-components.sh");
    let dir = out.join("components");
    println!("cargo:rerun-if-changed={}", script.display());
    for example in [
        "hello",
        "http-rust",
        "kv",
        "notes-api",
        "http-python",
        "http-js",
        "wit",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join("examples/components").join(example).display()
        );
    }
    let output = Command::new(tool("bash"))
        .arg(&script)
        .arg(&dir)
        .env("COMPONENTS_TARGET_DIR", out.join("components-target"))
        .output()
        .unwrap_or_else(|e| panic!("\n\nCannot run {}: {e}\n\n", script.display()));
    if !output.status.success() {
        panic!(
            "\n\nBuilding the example components failed ({}):\n{}\nTo fix: run scripts/build-components.sh by hand and follow the line it ends with.\n\n",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut consts = String::from(
        "\n/// The example components (`examples/components`), WASI 0.2.\npub mod components {\n",
    );
    for (name, file) in [
        ("HELLO", "hello.wasm"),
        ("HTTP_RUST", "http-rust.wasm"),
        ("KV", "kv.wasm"),
        ("NOTES_API", "notes-api.wasm"),
        ("HTTP_PYTHON", "http-python.wasm"),
        ("HTTP_JS", "http-js.wasm"),
    ] {
        consts.push_str(&format!(
            "    /// `examples/components`' {file}.\n    pub const {name}: &str = {:?};\n",
            dir.join(file).display().to_string()
        ));
    }
    consts.push_str("}\n");
    consts
}

/// Builds one binary of the Rust guest crate for wasm32-wasip1, in a target directory of
/// its own under OUT_DIR, and returns the `.wasm` path.
fn build_rust_guest(crate_dir: &Path, out: &Path, bin: &str) -> PathBuf {
    build_rust_guest_for(crate_dir, out, bin, "wasm32-wasip1")
}

/// [`build_rust_guest`] for another WASI target (`wasm32-wasip2` gives a component).
fn build_rust_guest_for(crate_dir: &Path, out: &Path, bin: &str, target: &str) -> PathBuf {
    cargo_wasm(crate_dir, out, &["--bin", bin], bin, target)
}

/// Builds the `cdylib` of a Rust plugin crate (library `lib`) for wasm32-wasip1, as
/// [`build_rust_guest`] builds binaries.
fn build_rust_plugin(crate_dir: &Path, out: &Path, lib: &str) -> PathBuf {
    cargo_wasm(crate_dir, out, &["--lib"], lib, "wasm32-wasip1")
}

/// Runs `cargo build --release --target TARGET SELECT` on a guest crate and returns the
/// path of `NAME.wasm`.
fn cargo_wasm(crate_dir: &Path, out: &Path, select: &[&str], bin: &str, target: &str) -> PathBuf {
    println!("cargo:rerun-if-changed={}", crate_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        crate_dir.join("Cargo.toml").display()
    );
    let target_dir = out.join("rust-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(["build", "--quiet", "--release", "--target", target])
        .args(select)
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} to build the Rust guests: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains(target) && stderr.contains("target") {
            format!("\nTo fix: rustup target add {target} (scripts/install-test-deps.sh does it)")
        } else {
            String::new()
        };
        panic!("\n\nBuilding the Rust guest {bin} for {target} failed:\n{stderr}{hint}\n\n");
    }
    let wasm = target_dir
        .join(target)
        .join("release")
        .join(format!("{bin}.wasm"));
    assert!(wasm.is_file(), "{} was not produced", wasm.display());
    wasm
}

/// Turns the preview1 command module `module` into a `wasi:cli/command` component with
/// wasmtime's own preview1 adapter (the one of the wasmtime the tests run), as
/// `wasm-tools component new --adapt` does.
fn componentize(module: &Path, component: &Path) {
    let bytes = fs::read(module).unwrap_or_else(|e| panic!("read {}: {e}", module.display()));
    let encoded = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|encoder| {
            encoder.adapter(
                "wasi_snapshot_preview1",
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
            )
        })
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("{}: making a component failed: {e:?}", module.display()));
    fs::write(component, encoded).unwrap_or_else(|e| panic!("write {}: {e}", component.display()));
}

fn check_toolchain(cc: &str, out: &Path) {
    let probe = out.join("probe.c");
    fs::write(
        &probe,
        "#include <stdio.h>\nint main(void) { puts(\"ok\"); return 0; }\n",
    )
    .expect("write probe");
    let result = Command::new(cc)
        .args(["--target=wasm32-wasi", "--sysroot=/usr", "-O2"])
        .arg(&probe)
        .arg("-o")
        .arg(out.join("probe.wasm"))
        .output();
    match result {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "\n\nThe C toolchain for wasm32-wasi does not work ({cc} failed on a hello world):\n{}\nTo fix: {}\n\n",
            String::from_utf8_lossy(&o.stderr),
            install_hint(cc)
        ),
        Err(e) => panic!(
            "\n\nCannot run {cc} to build the C guest programs: {e}\nTo fix: {INSTALL_HINT}\n\n"
        ),
    }
}

fn compile_c(cc: &str, src: &Path, wasm: &Path) {
    compile_c_as(cc, src, wasm, false);
}

fn compile_c_as(cc: &str, src: &Path, wasm: &Path, reactor: bool) {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/guest/include");
    let output = Command::new(cc)
        .args(reactor.then_some("-mexec-model=reactor"))
        .arg("-I")
        .arg(include)
        .args([
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,--strip-debug",
        ])
        .arg(src)
        .arg("-o")
        .arg(wasm)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}; {INSTALL_HINT}"));
    if !output.status.success() {
        panic!(
            "{}: compile failed:\n{}",
            src.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
