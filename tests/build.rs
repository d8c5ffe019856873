//! Builds the guest programs under `guests/` to wasm32-wasi and generates
//! `guests.rs`: one constant per guest with the path of its `.wasm`, and a
//! `foreach_guest!` macro that the tests use to prove every guest has a test.
//!
//! C guests need clang, lld and wasi-libc. When they are missing this fails with the
//! command that installs them (`scripts/install-test-deps.sh`), never silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (it runs: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32)";

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("guests");
    fs::create_dir_all(&out).expect("create guests output directory");

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
        compile_c(&cc, src, &wasm);
        let ident = stem.to_uppercase().replace('-', "_");
        consts.push_str(&format!(
            "/// `guests/c/{stem}.c` built for wasm32-wasi.\npub const {ident}: &str = {:?};\n",
            wasm.display().to_string()
        ));
        names.push(stem.replace('-', "_"));
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
        conf_names.push(stem.to_owned());
    }
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

    consts.push_str("\n/// Calls `$m!(name)` for every guest program (its file stem).\n#[macro_export]\nmacro_rules! foreach_guest {\n    ($m:ident) => {\n");
    for name in &names {
        consts.push_str(&format!("        $m!({name});\n"));
    }
    consts.push_str("    };\n}\n");
    fs::write(out.join("guests.rs"), consts).expect("write guests.rs");
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
            "\n\nThe C toolchain for wasm32-wasi does not work ({cc} failed on a hello world):\n{}\nTo fix: {INSTALL_HINT}\n\n",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "\n\nCannot run {cc} to build the C guest programs: {e}\nTo fix: {INSTALL_HINT}\n\n"
        ),
    }
}

fn compile_c(cc: &str, src: &Path, wasm: &Path) {
    let output = Command::new(cc)
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
