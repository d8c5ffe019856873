//! A host program that loads three plugins — a Rust one, a C one and a misbehaving one
//! — and serves calls to them from eight threads at once, showing that the misbehaving
//! plugin's loop, endless allocation and trap each fail only their own call.
//!
//! ```console
//! $ cargo run -p capsule-example-plugin-host -- RUST_PLUGIN.wasm C_PLUGIN.wasm ROGUE.wasm
//! ```
//!
//! The three plugins are the test plugins of `tests/guests` (`plugin/`, a Rust crate on
//! `sdk/guest`; `c/plugin_text.c` and `c/plugin_rogue.c` on
//! `sdk/guest/include/capsule_plugin.h`); the integration tests build them and run this
//! program over them (`tests/tests/integration/plugins.rs`).

use capsule_sdk::plugin::{HostError, Plugin, PluginError, PluginHost, PluginManifest};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [rust, c, rogue] = args.as_slice() else {
        eprintln!(
            "usage: capsule-example-plugin-host RUST_PLUGIN.wasm C_PLUGIN.wasm ROGUE_PLUGIN.wasm"
        );
        return ExitCode::from(2);
    };
    match serve(rust, c, rogue) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugin-host: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(rust: &str, c: &str, rogue: &str) -> Result<(), PluginError> {
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
    let rust = Plugin::from_file(&host, rust, &trusted)?;
    let c = Plugin::from_file(&host, c, &trusted)?;
    let rogue = Plugin::from_file(
        &host,
        rogue,
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
