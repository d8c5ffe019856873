//! Plugins through the SDK (`capsule_sdk::plugin`), over the real plugins of
//! `examples/plugin-host/plugins/`: a Rust one on the guest crate (`rust/`), a C one
//! (`plugin_text.c`) and a misbehaving C one (`plugin_rogue.c`), both on
//! `capsule_plugin.h`.

use capsule_sdk::plugin::{HostError, Plugin, PluginError, PluginHost, PluginManifest};
use capsule_tests::{TestEnv, guests};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A host offering `kv.get` over a small map (a missing key is a host error) and
/// `kv.boom`, which panics.
fn host() -> PluginHost {
    let store: HashMap<Vec<u8>, Vec<u8>> = [
        (b"lang".to_vec(), b"rust".to_vec()),
        (b"city".to_vec(), b"Lisbon".to_vec()),
    ]
    .into();
    PluginHost::builder()
        .max_instances(16)
        .host_function("kv.get", move |key: &[u8]| {
            store.get(key).cloned().ok_or_else(|| {
                HostError::new(format!("no such key: {}", String::from_utf8_lossy(key)))
            })
        })
        .host_function("kv.boom", |_: &[u8]| panic!("the host function fails"))
        .build()
        .expect("plugin host")
}

fn kv() -> PluginManifest {
    PluginManifest::new().allow_host_function("kv.get")
}

fn rust_plugin(host: &PluginHost, manifest: &PluginManifest) -> Plugin {
    Plugin::from_file(host, guests::RUST_PLUGIN, manifest).expect("load the Rust plugin")
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("UTF-8 output")
}

#[test]
fn calls_from_eight_threads_at_once_each_get_their_own_answer() {
    let host = host();
    let rust = rust_plugin(&host, &kv());
    let c = Plugin::from_file(&host, guests::PLUGIN_TEXT, &kv()).expect("load the C plugin");
    let start = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8i64)
        .map(|t| {
            let (rust, c, start) = (rust.clone(), c.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..50i64 {
                    let word = format!("thread{t}-call{i}");
                    assert_eq!(
                        text(rust.call("upper", word.as_bytes()).expect("upper")),
                        word.to_uppercase()
                    );
                    let sum: serde_json::Value = rust
                        .call_json("add", &serde_json::json!({"a": t * 1000, "b": i}))
                        .expect("add");
                    assert_eq!(sum, serde_json::json!({"sum": t * 1000 + i}));
                    let reversed: String = word.chars().rev().collect();
                    assert_eq!(
                        text(c.call("reverse", word.as_bytes()).expect("reverse")),
                        reversed
                    );
                    let key: &[u8] = if (t + i) % 2 == 0 { b"lang" } else { b"city" };
                    let want = if key == b"lang" { "rust" } else { "Lisbon" };
                    assert_eq!(
                        text(rust.call("lookup", key).expect("lookup")),
                        format!("rust:{want}")
                    );
                    assert_eq!(
                        text(c.call("lookup", key).expect("lookup")),
                        format!("c:{want}")
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a calling thread panicked");
    }
}

/// The C plugin (`examples/plugin-host/plugins/plugin_text.c`): every function, JSON
/// built by hand, a host function and its error, and an error result of its own.
#[test]
pub fn plugin_text() {
    let host = host();
    let c = Plugin::from_file(&host, guests::PLUGIN_TEXT, &kv()).expect("load the C plugin");
    assert_eq!(
        c.functions(),
        ["calls_seen", "count", "lookup", "refuse", "reverse"]
    );
    assert_eq!(
        text(c.call("reverse", b"stressed").expect("reverse")),
        "desserts"
    );
    assert_eq!(c.call("reverse", b"").expect("empty input"), b"");
    let counted: serde_json::Value = c
        .call_json("count", "not json: the plugin counts words")
        .map(|v: serde_json::Value| v)
        .unwrap_or_else(|e| panic!("count: {e}"));
    // call_json sends the string as JSON (quoted): 6 words, 35 bytes with the quotes.
    assert_eq!(counted, serde_json::json!({"words": 6, "bytes": 35}));
    assert_eq!(text(c.call("lookup", b"city").expect("lookup")), "c:Lisbon");
    match c.call("lookup", b"nope") {
        Err(PluginError::Guest { message, .. }) => assert_eq!(message, "kv.get: no such key: nope"),
        other => panic!("expected the host's error through the plugin, got {other:?}"),
    }
    match c.call("refuse", b"") {
        Err(PluginError::Guest {
            plugin,
            function,
            message,
        }) => {
            assert_eq!(message, "the C plugin refuses");
            assert_eq!(function, "refuse");
            assert!(plugin.ends_with("plugin_text.wasm"), "{plugin}");
        }
        other => panic!("expected the plugin's error result, got {other:?}"),
    }
}

/// The misbehaving plugin (`examples/plugin-host/plugins/plugin_rogue.c`): a loop,
/// endless allocation and a trap each fail their call only, with their reason, while
/// other calls (from other threads at the same time, and afterwards) are served.
#[test]
pub fn plugin_rogue() {
    let host = host();
    let manifest = PluginManifest::new()
        .deadline(Duration::from_millis(200))
        .memory(16 << 20);
    let rogue = Plugin::from_file(&host, guests::PLUGIN_ROGUE, &manifest).expect("load");
    let well = rust_plugin(&host, &kv());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = Arc::new(Mutex::new(0u32));
    // Well-behaved calls keep going on other threads while the rogue misbehaves.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (well, stop, served) = (well.clone(), stop.clone(), served.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    assert_eq!(well.call("echo", b"fine").expect("echo"), b"fine");
                    *served.lock().expect("lock") += 1;
                }
            })
        })
        .collect();
    for round in 0..2 {
        match rogue.call("misbehave", b"loop") {
            Err(PluginError::Deadline {
                deadline, function, ..
            }) => {
                assert_eq!(deadline, Duration::from_millis(200));
                assert_eq!(function, "misbehave");
            }
            other => panic!("round {round}: a loop must hit the deadline, got {other:?}"),
        }
        match rogue.call("misbehave", b"alloc") {
            Err(PluginError::OutOfMemory { limit, .. }) => assert_eq!(limit, 16 << 20),
            other => panic!("round {round}: endless allocation must run out, got {other:?}"),
        }
        match rogue.call("misbehave", b"trap") {
            Err(e @ PluginError::Trap { .. }) => {
                assert!(e.to_string().contains("unreachable"), "{e}");
            }
            other => panic!("round {round}: expected a trap, got {other:?}"),
        }
        assert_eq!(text(rogue.call("ok", b"").expect("ok")), "ok 1");
    }
    match rogue.call("misbehave", b"something else") {
        Err(PluginError::Guest { message, .. }) => {
            assert_eq!(message, "ask for loop, alloc or trap");
        }
        other => panic!("expected the plugin's error result, got {other:?}"),
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for worker in workers {
        worker.join().expect("a well-behaved caller failed");
    }
    assert!(*served.lock().expect("lock") > 0);
}

#[test]
fn fuel_deadline_and_memory_limits_hold_per_call() {
    let host = host();
    let metered = rust_plugin(&host, &kv().fuel(2_000_000));
    assert_eq!(
        metered
            .call_json::<_, u64>("work", &1000u64)
            .expect("small work"),
        (0..1000).sum::<u64>()
    );
    match metered.call_json::<_, u64>("work", &1_000_000_000u64) {
        Err(PluginError::OutOfFuel { fuel, function, .. }) => {
            assert_eq!((fuel, function.as_str()), (2_000_000, "work"));
        }
        other => panic!("expected to run out of fuel, got {other:?}"),
    }
    // Each call has its own fuel: the next one runs in full.
    assert_eq!(
        metered
            .call_json::<_, u64>("work", &1000u64)
            .expect("after"),
        (0..1000).sum::<u64>()
    );

    let timed = rust_plugin(&host, &kv().deadline(Duration::from_millis(50)));
    let started = std::time::Instant::now();
    match timed.call("spin", b"") {
        Err(PluginError::Deadline { deadline, .. }) => {
            assert_eq!(deadline, Duration::from_millis(50));
        }
        other => panic!("expected the deadline, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the deadline did not stop it"
    );
    assert_eq!(timed.call("echo", b"x").expect("after the deadline"), b"x");

    let small = rust_plugin(&host, &kv().memory(8 << 20));
    match small.call("hog", b"") {
        Err(PluginError::OutOfMemory { limit, .. }) => assert_eq!(limit, 8 << 20),
        other => panic!("expected out of memory, got {other:?}"),
    }
    assert_eq!(small.call("echo", b"y").expect("after"), b"y");

    // A module whose initial memory alone is past the limit is refused at load.
    let big = r#"(module (memory (export "memory") 100)
        (func (export "capsule_alloc") (param i32) (result i32) (i32.const 0)))"#;
    match Plugin::from_bytes(&host, "big", big, &PluginManifest::new().memory(1 << 20)) {
        Err(PluginError::OutOfMemory { limit, .. }) => assert_eq!(limit, 1 << 20),
        other => panic!("expected out of memory at load, got {other:?}"),
    }

    // A Rust panic is a trap whose reason carries the panic message.
    match small.call("panic", b"boom") {
        Err(PluginError::Trap { reason, .. }) => {
            assert!(reason.contains("asked to panic: boom"), "{reason}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn a_host_function_error_reaches_the_plugin_as_an_error_result() {
    let host = host();
    let rust = rust_plugin(&host, &kv());
    assert_eq!(
        text(rust.call("lookup", b"lang").expect("lookup")),
        "rust:rust"
    );
    match rust.call("lookup", b"missing") {
        Err(PluginError::Guest { message, .. }) => {
            assert_eq!(message, "kv.get: no such key: missing");
        }
        other => panic!("expected the host's error through the plugin, got {other:?}"),
    }
    // A host function that panics fails the call, not the host.
    let wat = r#"(module
        (import "capsule_host" "kv.boom" (func $boom (param i32 i32) (result i64)))
        (memory (export "memory") 1)
        (func (export "capsule_alloc") (param i32) (result i32) (i32.const 1024))
        (func (export "go") (param i32 i32) (result i64) (call $boom (i32.const 0) (i32.const 0))))"#;
    let boom = Plugin::from_bytes(
        &host,
        "boom",
        wat,
        &PluginManifest::new().allow_host_function("kv.boom"),
    )
    .expect("load");
    match boom.call("go", b"") {
        Err(PluginError::HostPanic { host_function, .. }) => assert_eq!(host_function, "kv.boom"),
        other => panic!("expected a host panic, got {other:?}"),
    }
    assert_eq!(
        text(rust.call("lookup", b"city").expect("after")),
        "rust:Lisbon"
    );
}

#[test]
fn a_plugin_importing_a_host_function_it_is_not_allowed_is_refused_at_load() {
    let host = host();
    let err = Plugin::from_file(&host, guests::RUST_PLUGIN, &PluginManifest::new())
        .expect_err("kv.get is not allowed");
    match &err {
        PluginError::NotAllowed { function, .. } => assert_eq!(function, "kv.get"),
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    assert!(err.to_string().contains("'kv.get'"), "{err}");
    // Allowed but not offered by this host.
    let bare = PluginHost::new().expect("host");
    let err = Plugin::from_file(&bare, guests::RUST_PLUGIN, &kv()).expect_err("no kv.get here");
    match err {
        PluginError::UnknownHostFunction { function, .. } => assert_eq!(function, "kv.get"),
        other => panic!("expected UnknownHostFunction, got {other:?}"),
    }
    // Imports from elsewhere are refused too.
    let wat = r#"(module (import "env" "secret" (func)) (memory (export "memory") 1)
        (func (export "capsule_alloc") (param i32) (result i32) (i32.const 0)))"#;
    match Plugin::from_bytes(&host, "env", wat, &PluginManifest::new()) {
        Err(PluginError::UnknownImport { import, .. }) => assert_eq!(import, "env::secret"),
        other => panic!("expected UnknownImport, got {other:?}"),
    }
}

#[test]
fn no_state_survives_from_one_call_to_the_next() {
    let host = host();
    let rust = rust_plugin(&host, &kv());
    let c = Plugin::from_file(&host, guests::PLUGIN_TEXT, &kv()).expect("load");
    for _ in 0..5 {
        // A global incremented by each call is 1 every time.
        assert_eq!(text(rust.call("calls", b"").expect("calls")), "1");
        assert_eq!(text(c.call("calls_seen", b"").expect("calls_seen")), "1");
        // Linear memory written by one call is not seen by the next.
        assert_eq!(
            rust.call("remember", b"secret of the last caller")
                .expect("remember"),
            b""
        );
    }
    // From many threads at once, too.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let rust = rust.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let mine = format!("thread {t}");
                    assert_eq!(
                        rust.call("remember", mine.as_bytes()).expect("remember"),
                        b""
                    );
                    assert_eq!(text(rust.call("calls", b"").expect("calls")), "1");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
}

#[test]
fn directories_and_environment_are_what_the_manifest_grants() {
    let env = TestEnv::new();
    env.write("ro/motd.txt", "read me");
    std::fs::create_dir_all(env.work().join("rw")).expect("rw dir");
    let outside = env.write("outside.txt", "not for plugins");
    let host = host();
    let rust = rust_plugin(
        &host,
        &kv()
            .dir_read_only(env.work().join("ro"), "/config")
            .dir(env.work().join("rw"), "/data")
            .env("GREETING", "hello plugin"),
    );
    assert_eq!(
        text(rust.call("env", b"GREETING").expect("env")),
        "hello plugin"
    );
    assert_eq!(
        text(rust.call("read_file", b"/config/motd.txt").expect("read")),
        "read me"
    );
    let written: usize = rust
        .call_json(
            "write_file",
            &serde_json::json!({"path": "/data/out.txt", "data": "kept"}),
        )
        .expect("write into the read-write directory");
    assert_eq!(written, 4);
    assert_eq!(
        std::fs::read_to_string(env.work().join("rw/out.txt")).expect("on the host"),
        "kept"
    );
    match rust.call_json::<_, usize>(
        "write_file",
        &serde_json::json!({"path": "/config/new.txt", "data": "x"}),
    ) {
        Err(PluginError::Guest { message, .. }) => {
            assert!(message.contains("/config/new.txt"), "{message}");
        }
        other => panic!("a read-only directory must refuse writes, got {other:?}"),
    }
    assert!(!env.work().join("ro/new.txt").exists());
    for path in [
        "/config/../outside.txt".to_owned(),
        outside.display().to_string(),
        "/etc/passwd".to_owned(),
    ] {
        match rust.call("read_file", path.as_bytes()) {
            Err(PluginError::Guest { .. }) => {}
            other => panic!("{path} must be out of reach, got {other:?}"),
        }
    }
    // Nothing granted: no files at all.
    let bare = rust_plugin(&host, &kv());
    assert!(bare.call("read_file", b"/config/motd.txt").is_err());
    match bare.call("env", b"GREETING") {
        Err(PluginError::Guest { .. }) => {}
        other => panic!("the environment must be empty, got {other:?}"),
    }
    // A directory that does not exist fails the load, naming it.
    let err = Plugin::from_file(
        &host,
        guests::RUST_PLUGIN,
        &kv().dir(env.work().join("missing"), "/m"),
    )
    .expect_err("missing directory");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn a_plugin_loads_from_an_image_and_compiled_plugins_are_cached() {
    let env = TestEnv::new();
    std::fs::copy(guests::RUST_PLUGIN, env.work().join("plugin.wasm")).expect("copy");
    env.write(
        "Capsulefile",
        "FROM scratch\nCOPY plugin.wasm /lib/plugin.wasm\nENV GREETING=from-the-image\nENTRYPOINT [\"/lib/plugin.wasm\"]\n",
    );
    env.run(&["build", "-t", "kv-plugin", "."]).assert_code(0);
    let capsule = capsule_sdk::Capsule::open(env.home()).expect("home");
    let image = capsule.image("kv-plugin").expect("image");
    let cache = env.work().join("cache");
    for _ in 0..2 {
        let host = PluginHost::builder()
            .module_cache(&cache)
            .host_function("kv.get", |_: &[u8]| Ok(b"v".to_vec()))
            .build()
            .expect("host");
        let plugin = Plugin::from_image(&host, &capsule, &image, &kv()).expect("from image");
        assert_eq!(text(plugin.call("lookup", b"k").expect("lookup")), "rust:v");
        assert_eq!(
            text(plugin.call("env", b"GREETING").expect("env")),
            "from-the-image"
        );
        assert!(
            plugin.name().contains("/lib/plugin.wasm"),
            "{}",
            plugin.name()
        );
    }
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one compiled plugin, reused by the second host"
    );
    // An image without a module where its ENTRYPOINT says is refused with the path.
    env.write(
        "empty/Capsulefile",
        "FROM scratch\nENTRYPOINT [\"/nope.wasm\"]\n",
    );
    env.run(&["build", "-t", "empty", "empty"]).assert_code(0);
    let empty = capsule.image("empty").expect("image");
    let host = PluginHost::new().expect("host");
    match Plugin::from_image(&host, &capsule, &empty, &PluginManifest::new()) {
        Err(e @ PluginError::Image { .. }) => assert!(e.to_string().contains("/nope.wasm"), "{e}"),
        other => panic!("expected an image error, got {other:?}"),
    }
}

#[test]
fn modules_that_are_not_plugins_and_unknown_functions_are_clear_errors() {
    let host = host();
    let hello = Plugin::from_bytes(
        &host,
        "hello",
        r#"(module (memory (export "memory") 1) (func (export "_start")))"#,
        &PluginManifest::new(),
    );
    match hello {
        Err(e @ PluginError::Abi { .. }) => assert!(e.to_string().contains("capsule_alloc"), "{e}"),
        other => panic!("expected an ABI error, got {other:?}"),
    }
    match Plugin::from_bytes(&host, "junk", b"\0asm junk", &PluginManifest::new()) {
        Err(PluginError::Module { .. }) => {}
        other => panic!("expected a module error, got {other:?}"),
    }
    let rust = rust_plugin(&host, &kv());
    match rust.call("nope", b"") {
        Err(PluginError::NoSuchFunction { functions, .. }) => {
            assert!(functions.contains(&"upper".to_owned()), "{functions:?}");
        }
        other => panic!("expected NoSuchFunction, got {other:?}"),
    }
    match rust.call_json::<_, serde_json::Value>("add", &"not a pair") {
        Err(PluginError::Guest { message, .. }) => assert!(message.contains("JSON"), "{message}"),
        other => panic!("expected the plugin to refuse the input, got {other:?}"),
    }
    match rust.call_json::<_, u64>("upper", &"x") {
        Err(e @ PluginError::Json { .. }) => assert!(e.to_string().contains("output"), "{e}"),
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

/// `examples/plugin-host`, as its README runs it (no arguments: the plugins its
/// build.rs built) and over the tests' build of the same three plugins.
#[test]
fn the_plugin_host_example_serves_three_plugins_and_contains_the_rogue() {
    let bin = capsule_tests::example_bin("capsule-example-plugin-host");
    let own: &[&str] = &[];
    let given = &[
        guests::RUST_PLUGIN,
        guests::PLUGIN_TEXT,
        guests::PLUGIN_ROGUE,
    ];
    for args in [own, given] {
        let out = capsule_tests::output(std::process::Command::new(&bin).args(args));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "arguments {args:?}\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in [
            "rust: upper(\"hello\") = \"HELLO\"",
            "c: reverse(\"hello\") = \"olleh\"",
            "rogue: misbehave(loop): contained: deadline",
            "rogue: misbehave(alloc): contained: out of memory",
            "rogue: misbehave(trap): contained: trap",
            "served 800 calls from 8 threads, all correct",
        ] {
            assert!(
                stdout.contains(needle),
                "arguments {args:?}: missing {needle:?} in:\n{stdout}"
            );
        }
    }
    let wrong = capsule_tests::output(std::process::Command::new(&bin).arg("one.wasm"));
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).starts_with("usage: "));
}

/// A plugin whose `echo` answers with its input.
const ECHO: &str = r#"(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "capsule_alloc") (param $len i32) (result i32)
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (local.get $len))))
  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "spin") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))"#;

/// A plugin whose `through` passes its input to the host function `IMPORT` and returns
/// the host's answer (or error) as its own.
fn through(import: &str) -> String {
    format!(
        r#"(module
  (import "capsule_host" "{import}" (func $host (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "capsule_alloc") (param $len i32) (result i32)
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (local.get $len))))
  (func (export "through") (param i32 i32) (result i64)
    (call $host (local.get 0) (local.get 1))))"#
    )
}

/// A host of one instance whose `test.hold` blocks the call that makes it until the
/// returned sender sends (or is dropped); the receiver hears when a call holds it.
fn holding_host() -> (
    PluginHost,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (holding, released) = (Mutex::new(holding), Mutex::new(released));
    let host = PluginHost::builder()
        .max_instances(1)
        .host_function("test.hold", move |_: &[u8]| {
            holding
                .lock()
                .map_err(|_| HostError::new("poisoned"))?
                .send(())
                .map_err(|_| HostError::new("nobody listens"))?;
            let _ = released
                .lock()
                .map_err(|_| HostError::new("poisoned"))?
                .recv_timeout(Duration::from_secs(60));
            Ok(Vec::new())
        })
        .build()
        .expect("plugin host");
    (host, held, release)
}

/// Calls `function` of `plugin` on a thread of its own; its result and how long it
/// took, or `None` when it has not ended within `patience`.
fn call_within(
    plugin: &Plugin,
    function: &'static str,
    patience: Duration,
) -> Option<(Result<Vec<u8>, PluginError>, Duration)> {
    let (done, outcome) = std::sync::mpsc::channel();
    let plugin = plugin.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let result = plugin.call(function, b"input");
        let _ = done.send((result, start.elapsed()));
    });
    outcome.recv_timeout(patience).ok()
}

#[test]
fn a_call_waiting_for_an_instance_ends_at_its_deadline() {
    let (host, held, release) = holding_host();
    let holder = Plugin::from_bytes(
        &host,
        "holder",
        through("test.hold"),
        &PluginManifest::new()
            .allow_host_function("test.hold")
            .no_deadline(),
    )
    .expect("load the holder");
    let waiter = Plugin::from_bytes(
        &host,
        "waiter",
        ECHO,
        &PluginManifest::new().deadline(Duration::from_millis(200)),
    )
    .expect("load the waiter");
    let holding = {
        let holder = holder.clone();
        std::thread::spawn(move || holder.call("through", b""))
    };
    held.recv_timeout(Duration::from_secs(30))
        .expect("the holder runs");
    // The only instance is the holder's: the call waits, and ends at its deadline with
    // the error of a call that ran past it.
    let waited = call_within(&waiter, "echo", Duration::from_secs(10));
    let _ = release.send(());
    let (result, elapsed) =
        waited.expect("a call waiting for an instance did not end at its deadline");
    match result {
        Err(PluginError::Deadline {
            plugin,
            function,
            deadline,
        }) => {
            assert_eq!(
                (plugin.as_str(), function.as_str(), deadline),
                ("waiter", "echo", Duration::from_millis(200))
            );
        }
        other => panic!("expected the deadline, got {other:?}"),
    }
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(
        holding.join().expect("the holder's thread").expect("hold"),
        b""
    );
    // Its instance free again, the same call runs.
    assert_eq!(waiter.call("echo", b"x").expect("echo"), b"x");

    // The time waited counts toward the deadline: a call that waits 700 ms of its
    // 1 s and then loops ends at 1 s, not 1.7 s.
    let spinner = Plugin::from_bytes(
        &host,
        "spinner",
        ECHO,
        &PluginManifest::new().deadline(Duration::from_secs(1)),
    )
    .expect("load the spinner");
    let holding = std::thread::spawn(move || holder.call("through", b""));
    held.recv_timeout(Duration::from_secs(30))
        .expect("the holder runs again");
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let result = spinner.call("spin", b"");
        let _ = done.send((result, start.elapsed()));
    });
    std::thread::sleep(Duration::from_millis(700));
    release.send(()).expect("release the holder");
    let (result, elapsed) = outcome
        .recv_timeout(Duration::from_secs(10))
        .expect("the spinning call ends");
    assert!(
        matches!(result, Err(PluginError::Deadline { .. })),
        "{result:?}"
    );
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1500),
        "the deadline restarted when the call got its instance: {elapsed:?}"
    );
    assert_eq!(
        holding.join().expect("the holder's thread").expect("hold"),
        b""
    );
}

/// The plugin a host function calls back into, set once it is loaded.
type Inner = Arc<std::sync::OnceLock<Plugin>>;

/// A host of `instances` instances whose host function `plugins.call` calls the
/// `echo` of the plugin set in the returned cell, and the errors that call got.
fn nesting_host(instances: u32) -> (PluginHost, Inner, Arc<Mutex<Vec<PluginError>>>) {
    let inner = Arc::new(std::sync::OnceLock::<Plugin>::new());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (cell, seen) = (inner.clone(), errors.clone());
    let host = PluginHost::builder()
        .max_instances(instances)
        .host_function("plugins.call", move |input: &[u8]| {
            let plugin = cell
                .get()
                .ok_or_else(|| HostError::new("no inner plugin"))?;
            plugin.call("echo", input).map_err(|e| {
                let message = e.to_string();
                if let Ok(mut seen) = seen.lock() {
                    seen.push(e);
                }
                HostError::new(message)
            })
        })
        .build()
        .expect("plugin host");
    (host, inner, errors)
}

#[test]
fn a_host_function_calling_a_plugin_on_a_host_of_one_instance_fails_instead_of_deadlocking() {
    let (host, inner, errors) = nesting_host(1);
    let echo = Plugin::from_bytes(&host, "inner", ECHO, &PluginManifest::new()).expect("inner");
    inner.set(echo.clone()).expect("set once");
    // No deadline: nothing but the pool could end the wait.
    let outer = Plugin::from_bytes(
        &host,
        "outer",
        through("plugins.call"),
        &PluginManifest::new()
            .allow_host_function("plugins.call")
            .no_deadline(),
    )
    .expect("outer");
    let (result, elapsed) = call_within(&outer, "through", Duration::from_secs(10))
        .expect("a nested call on a host of one instance deadlocked");
    match result {
        Err(PluginError::Guest { message, .. }) => {
            assert!(message.contains("raise max_instances"), "{message}");
            assert!(message.contains("plugin inner: echo"), "{message}");
        }
        other => panic!("expected the nested call's error through the plugin, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    match errors.lock().expect("errors").as_slice() {
        [
            PluginError::NestedCallDeadlock {
                plugin,
                function,
                max_instances,
                held_by_caller,
            },
        ] => assert_eq!(
            (
                plugin.as_str(),
                function.as_str(),
                *max_instances,
                *held_by_caller
            ),
            ("inner", "echo", 1, 1)
        ),
        other => panic!("expected one NestedCallDeadlock, got {other:?}"),
    }
    // The host goes on serving, the inner plugin too when called from the top.
    assert_eq!(echo.call("echo", b"top").expect("top-level call"), b"top");

    // With an instance to spare, the same nested call works.
    let (host, inner, errors) = nesting_host(2);
    inner
        .set(Plugin::from_bytes(&host, "inner", ECHO, &PluginManifest::new()).expect("inner"))
        .expect("set once");
    let outer = Plugin::from_bytes(
        &host,
        "outer",
        through("plugins.call"),
        &PluginManifest::new().allow_host_function("plugins.call"),
    )
    .expect("outer");
    for _ in 0..3 {
        assert_eq!(outer.call("through", b"nested").expect("nested"), b"nested");
    }
    assert!(errors.lock().expect("errors").is_empty());
}

#[test]
fn memory_a_call_dirtied_past_the_resident_budget_is_zero_for_the_next_call_on_its_slot() {
    // One instance: every call reuses the same slot. `mark` writes a marker at each
    // offset of its input (little-endian u32s) and answers with the 8 bytes at the
    // first; `peek` answers with the 8 bytes at the offset of its input, and `pages`
    // with the pages the call started with.
    // `grows` starts with 1 page and grows to 64 (4 MiB); `big` starts with 64 pages,
    // with an image byte string at 2 MiB.
    let module = |pages: u32, data: &str| {
        format!(
            r#"(module
  (memory (export "memory") {pages})
  {data}
  (global $next (mut i32) (i32.const 1024))
  (global $start_pages (mut i32) (i32.const 0))
  (func (export "capsule_alloc") (param $len i32) (result i32)
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (local.get $len))))
  (func $grow
    (global.set $start_pages (memory.size))
    (if (i32.lt_u (memory.size) (i32.const 64))
      (then (drop (memory.grow (i32.sub (i32.const 64) (memory.size)))))))
  (func (export "mark") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32)
    (local $first i32)
    (call $grow)
    (local.set $first (i32.load (local.get $ptr)))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (i64.store (i32.load (local.get $ptr)) (i64.const 0x4b52414d4b52414d))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 4)))
        (br $each)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $first)) (i64.const 32))
            (i64.const 8)))
  (func (export "peek") (param $ptr i32) (param $len i32) (result i64)
    (call $grow)
    (i64.or (i64.shl (i64.extend_i32_u (i32.load (local.get $ptr))) (i64.const 32))
            (i64.const 8)))
  (func (export "pages") (param i32 i32) (result i64)
    (call $grow)
    (i32.store (i32.const 16) (global.get $start_pages))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 4))))"#
        )
    };
    let host = PluginHost::builder()
        .max_instances(1)
        .build()
        .expect("plugin host");
    let grows = Plugin::from_bytes(&host, "grows", module(1, ""), &PluginManifest::new())
        .expect("load grows");
    let image = r#"(data (i32.const 0x200000) "image 2M")"#;
    let big =
        Plugin::from_bytes(&host, "big", module(64, image), &PluginManifest::new()).expect("big");
    // Within the 1 MiB kept resident, past it (3 MiB, 4 MiB - 8), and at the image
    // data beyond it (2 MiB).
    let offsets: [u32; 4] = [0x8_0000, 0x30_0000, 0x3f_fff8, 0x20_0000];
    let input: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
    for round in 0..3 {
        for (plugin, start_pages) in [(&grows, 1u32), (&big, 64)] {
            assert_eq!(
                plugin.call("pages", b"").expect("pages"),
                start_pages.to_le_bytes(),
                "round {round}: {} did not start from its image",
                plugin.name()
            );
            // The marker is where `peek` looks, within a call.
            assert_eq!(plugin.call("mark", &input).expect("mark"), b"MARKMARK");
            for offset in offsets {
                let want: &[u8] = if plugin.name() == "big" && offset == 0x20_0000 {
                    b"image 2M"
                } else {
                    &[0; 8]
                };
                assert_eq!(
                    plugin.call("peek", &offset.to_le_bytes()).expect("peek"),
                    want,
                    "round {round}: {} sees the previous call's marker at {offset:#x}",
                    plugin.name()
                );
            }
        }
    }
}
