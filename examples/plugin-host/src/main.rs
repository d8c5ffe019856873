//! A host program that loads three plugins — a Rust one, a C one and a misbehaving one
//! — and serves calls to them from eight threads at once, showing that the misbehaving
//! plugin's loop, endless allocation and trap each fail only their own call.
//!
//! ```console
//! $ cargo run -p capsule-example-plugin-host
//! $ cargo run -p capsule-example-plugin-host -- RUST_PLUGIN.wasm C_PLUGIN.wasm ROGUE.wasm
//! ```
//!
//! Without arguments it serves its own plugins, `plugins/` beside this crate (`rust/`, a
//! Rust crate on `sdk/guest`; `plugin_text.c` and `plugin_rogue.c` on
//! `sdk/guest/include/capsule_plugin.h`), which `build.rs` builds and this program
//! embeds. With three arguments it loads those files instead, in the same roles; the
//! integration tests run it so (`tests/tests/integration/plugins.rs`).

use capsule_sdk::plugin::{HostError, Plugin, PluginError, PluginHost, PluginManifest};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The plugins `build.rs` built, embedded.
const RUST_PLUGIN: &[u8] = include_bytes!(env!("CAPSULE_EXAMPLE_PLUGIN_RUST"));
const TEXT_PLUGIN: &[u8] = include_bytes!(env!("CAPSULE_EXAMPLE_PLUGIN_TEXT"));
const ROGUE_PLUGIN: &[u8] = include_bytes!(env!("CAPSULE_EXAMPLE_PLUGIN_ROGUE"));

/// Where a plugin comes from: embedded, or a file named on the command line.
enum Source<'a> {
    Embedded(&'a str, &'static [u8]),
    File(&'a str),
}

impl Source<'_> {
    fn load(&self, host: &PluginHost, manifest: &PluginManifest) -> Result<Plugin, PluginError> {
        match self {
            Source::Embedded(name, bytes) => Plugin::from_bytes(host, name, bytes, manifest),
            Source::File(path) => Plugin::from_file(host, path, manifest),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sources = match args.as_slice() {
        [] => [
            Source::Embedded("rust_plugin.wasm", RUST_PLUGIN),
            Source::Embedded("plugin_text.wasm", TEXT_PLUGIN),
            Source::Embedded("plugin_rogue.wasm", ROGUE_PLUGIN),
        ],
        [rust, c, rogue] => [Source::File(rust), Source::File(c), Source::File(rogue)],
        _ => {
            eprintln!(
                "usage: capsule-example-plugin-host [RUST_PLUGIN.wasm C_PLUGIN.wasm ROGUE_PLUGIN.wasm] (no arguments: the example's own plugins)"
            );
            return ExitCode::from(2);
        }
    };
    match serve(&sources) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugin-host: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve([rust, c, rogue]: &[Source<'_>; 3]) -> Result<(), PluginError> {
    // The host offers one function, kv.get, over a small table.
    let table: HashMap<String, String> = [("lang", "rust"), ("city", "Lisbon")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let host = PluginHost::builder()
        .max_instances(16)
        .host_function("kv.get", move |key: &[u8]| {
            let key = String::from_utf8_lossy(key);
            table
                .get(key.as_ref())
                .map(|v| v.as_bytes().to_vec())
                .ok_or_else(|| HostError::new(format!("no such key: {key}")))
        })
        .build()?;

    // The well-behaved plugins may call kv.get; the rogue may call nothing, and gets a
    // short deadline and little memory.
    let trusted = PluginManifest::new().allow_host_function("kv.get");
    let rust = rust.load(&host, &trusted)?;
    let c = c.load(&host, &trusted)?;
    let rogue = rogue.load(
        &host,
        &PluginManifest::new()
            .deadline(Duration::from_millis(100))
            .memory(16 << 20),
    )?;

    let upper = rust.call("upper", b"hello")?;
    println!(
        "rust: upper(\"hello\") = {:?}",
        String::from_utf8_lossy(&upper)
    );
    let sum: serde_json::Value = rust.call_json("add", &serde_json::json!({"a": 2, "b": 40}))?;
    println!("rust: add(2, 40) = {sum}");
    let reversed = c.call("reverse", b"hello")?;
    println!(
        "c: reverse(\"hello\") = {:?}",
        String::from_utf8_lossy(&reversed)
    );
    let looked_up = c.call("lookup", b"city")?;
    println!(
        "c: lookup(\"city\") = {:?}",
        String::from_utf8_lossy(&looked_up)
    );

    // Eight threads call all three plugins at once; every fourth call asks the rogue to
    // misbehave. The others must all be answered, and answered right.
    let correct = Arc::new(AtomicU32::new(0));
    let contained = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (rust, c, rogue) = (rust.clone(), c.clone(), rogue.clone());
            let (correct, contained) = (correct.clone(), contained.clone());
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..100 {
                    let word = format!("t{t}-{i}");
                    let ok = match i % 4 {
                        0 => rust
                            .call("upper", word.as_bytes())
                            .map(|o| o == word.to_uppercase().as_bytes()),
                        1 => c
                            .call("reverse", word.as_bytes())
                            .map(|o| o == word.chars().rev().collect::<String>().as_bytes()),
                        2 => rogue.call("ok", b"").map(|o| o == b"ok 1"),
                        _ => {
                            let how: &[u8] = [b"loop".as_slice(), b"alloc", b"trap"][(t + i) % 3];
                            match rogue.call("misbehave", how) {
                                Err(
                                    PluginError::Deadline { .. }
                                    | PluginError::OutOfMemory { .. }
                                    | PluginError::Trap { .. },
                                ) => {
                                    contained.fetch_add(1, Ordering::Relaxed);
                                    Ok(true)
                                }
                                other => Err(format!("the rogue was not contained: {other:?}")),
                            }?;
                            continue;
                        }
                    }
                    .map_err(|e| e.to_string())?;
                    if !ok {
                        return Err(format!("thread {t}: call {i} got a wrong answer"));
                    }
                    correct.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a serving thread panicked".to_owned()),
        }
    }
    if let Some(first) = failures.first() {
        return Err(PluginError::Guest {
            plugin: "(example)".to_owned(),
            function: "serve".to_owned(),
            message: first.clone(),
        });
    }

    // Each kind of misbehaviour, one more time, with its reason.
    for how in ["loop", "alloc", "trap"] {
        let reason = match rogue.call("misbehave", how.as_bytes()) {
            Err(PluginError::Deadline { deadline, .. }) => format!("deadline ({deadline:?})"),
            Err(PluginError::OutOfMemory { limit, .. }) => format!("out of memory ({limit} bytes)"),
            Err(PluginError::Trap { reason, .. }) => format!("trap ({reason})"),
            other => format!("NOT contained: {other:?}"),
        };
        println!("rogue: misbehave({how}): contained: {reason}");
    }
    let ok = rogue.call("ok", b"")?;
    println!(
        "rogue: ok() = {:?} (the pool keeps serving)",
        String::from_utf8_lossy(&ok)
    );
    println!(
        "served {} calls from 8 threads, all correct; {} misbehaving calls contained",
        correct.load(Ordering::Relaxed) + contained.load(Ordering::Relaxed),
        contained.load(Ordering::Relaxed)
    );
    Ok(())
}
