//! Module shapes: reactors and `FILE#EXPORT`, unknown imports, wasm features, text.

use capsule_tests::TestEnv;

const REACTOR: &str = r#"
(module
  (global $base (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $base (i32.const 40)))
  (func (export "answer") (result i32) (i32.add (global.get $base) (i32.const 2)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "mul64") (param i64 f64) (result f64) (f64.mul (f64.convert_i64_s (local.get 0)) (local.get 1)))
  (memory (export "memory") 1))
"#;

#[test]
fn reactor_exports_are_called_after_initialize() {
    let env = TestEnv::new();
    let wasm = env.wat("reactor.wasm", REACTOR);
    let module = wasm.to_str().expect("utf-8");
    let answer = env.run(&["run", &format!("{module}#answer")]);
    answer.assert_clean_success();
    assert_eq!(answer.stdout, "42\n", "_initialize ran before the export");
    let add = env.run(&["run", &format!("{module}#add"), "2", "-5"]);
    add.assert_clean_success();
    assert_eq!(add.stdout, "-3\n");
    let mul = env.run(&["run", &format!("{module}#mul64"), "3", "1.5"]);
    mul.assert_clean_success();
    assert_eq!(mul.stdout, "4.5\n");

    env.run(&["run", module])
        .assert_error(126, &["reactor", "MODULE#EXPORT", "answer", "add"]);
    env.run(&["run", &format!("{module}#nope")])
        .assert_error(126, &["no exported function 'nope'", "answer"]);
    env.run(&["run", &format!("{module}#add"), "1"])
        .assert_error(126, &["takes 2 argument(s) but 1"]);
    env.run(&["run", &format!("{module}#add"), "1", "two"])
        .assert_error(126, &["'two'", "i32"]);
}

const UNKNOWN_IMPORTS: &str = r#"
(module
  (import "env" "host_log" (func $log (param i32)))
  (import "env" "host_clock" (func $clock (result i64)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7)))
  (func (export "calls_missing") (call $log (i32.const 1))))
"#;

#[test]
fn unknown_imports_are_named_or_stubbed() {
    let env = TestEnv::new();
    let wasm = env.wat("imports.wasm", UNKNOWN_IMPORTS);
    let module = wasm.to_str().expect("utf-8");
    env.run(&["run", module]).assert_error(
        126,
        &["env::host_log", "env::host_clock", "--unknown-imports trap"],
    );

    // With stubs the module runs as long as it never calls them.
    let run = env.run(&["run", "--unknown-imports", "trap", module]);
    run.assert_code(7);
    assert_eq!(run.stderr, "");
    // ... and a call into a stub is a trap that names the import.
    let called = env.run(&[
        "run",
        "--unknown-imports",
        "trap",
        &format!("{module}#calls_missing"),
    ]);
    called.assert_code(134);
    assert!(
        called.stderr.contains("env::host_log") || called.stderr.contains("host_log"),
        "{}",
        called.stderr
    );
}

#[test]
fn preview0_modules_get_a_hint() {
    let env = TestEnv::new();
    let wasm = env.wat(
        "old.wasm",
        r#"(module (import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (func (export "_start")))"#,
    );
    env.run(&["run", wasm.to_str().expect("utf-8")])
        .assert_error(126, &["wasi_unstable::fd_write", "preview0"]);
}

const MODERN: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (tag $oops (param i32))
  (memory $a 1)
  (memory $b 1)
  ;; tail calls
  (func $count (param $n i32) (param $acc i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (local.get $acc))
      (else (return_call $count (i32.sub (local.get $n) (i32.const 1)) (i32.add (local.get $acc) (i32.const 1))))))
  ;; multi-value
  (func $pair (result i32 i32) (i32.const 3) (i32.const 4))
  ;; exceptions: throw and catch a tagged value
  (func $catch (result i32)
    (block $handler (result i32)
      (try_table (catch $oops $handler)
        (throw $oops (i32.const 5)))
      (i32.const 0)))
  (func (export "_start")
    (local $sum i32)
    ;; multi-memory and bulk memory: fill one memory, copy into the other
    (memory.fill $a (i32.const 0) (i32.const 9) (i32.const 16))
    (memory.copy $b $a (i32.const 100) (i32.const 0) (i32.const 16))
    ;; SIMD: add two vectors and take a lane
    (local.set $sum
      (i32x4.extract_lane 0 (i32x4.add (v128.load $b (i32.const 100)) (v128.const i32x4 1 1 1 1))))
    ;; 0x09090909 + 1 = 151587082; reduce everything to a small exit code
    (call $exit
      (i32.add
        (i32.add (call $count (i32.const 1000000) (i32.const 0)) (i32.const -1000000))
        (i32.add
          (i32.add (call $pair))
          (i32.add (call $catch) (i32.rem_u (local.get $sum) (i32.const 7)))))))
  (export "memory" (memory $a)))
"#;

#[test]
fn finished_wasm_proposals_are_on_and_can_be_turned_off() {
    let env = TestEnv::new();
    let wasm = env.wat("modern.wasm", MODERN);
    let module = wasm.to_str().expect("utf-8");
    // 0 (tail calls) + 7 (multi-value) + 5 (exceptions) + 151587082 % 7 (simd) = 12 + 4
    let expected = 12 + 151_587_082 % 7;
    env.run(&["run", module]).assert_code(expected);
    // Each refusal names the feature that was turned off (in wasmtime's words).
    for (feature, refusal) in [
        ("tail-call", "tail calls support is not enabled"),
        ("exceptions", "exceptions proposal not enabled"),
        ("multi-memory", "multiple memories"),
        ("simd", "SIMD support is not enabled"),
    ] {
        env.run(&["run", "-W", &format!("{feature}=n"), module])
            .assert_error(126, &[module, refusal]);
    }
    env.run(&["run", "-W", "tail-call=maybe", module])
        .assert_error(125, &["tail-call", "y or n"]);
    env.run(&["run", "--wasm", "warp-drive=y", module])
        .assert_error(125, &["unknown wasm feature 'warp-drive'"]);
}

#[test]
fn text_modules_run_directly() {
    let env = TestEnv::new();
    let wat = env.write(
        "exit.wat",
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32))) (func (export "_start") (call $e (i32.const 9))))"#,
    );
    env.run(&["run", wat.to_str().expect("utf-8")])
        .assert_code(9);
}

#[test]
fn integer_divide_by_zero_is_a_trap_with_backtrace() {
    let env = TestEnv::new();
    let wasm = env.wat(
        "div.wasm",
        r#"(module (func $f (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
             (func (export "_start") (drop (call $f (i32.const 0)))))"#,
    );
    let run = env.run(&["run", wasm.to_str().expect("utf-8")]);
    run.assert_code(134);
    assert!(
        run.stderr
            .starts_with("capsule: guest trapped: wasm trap: integer divide by zero"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("wasm backtrace:"), "{}", run.stderr);
}

#[test]
fn rust_panics_trap_with_demangled_names() {
    let env = TestEnv::new();
    let ok = env.run(&["run", capsule_tests::guests::RUST_PANIC, "1", "2"]);
    ok.assert_clean_success();
    assert_eq!(ok.stdout, "processed 2\n");
    let run = env.run(&["run", capsule_tests::guests::RUST_PANIC]);
    run.assert_code(134);
    assert!(
        run.stderr.contains("the invariant does not hold"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("capsule: guest trapped: wasm trap: wasm `unreachable`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("rust_panic::check_invariant"),
        "demangled names:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("rust_panic::process"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("_ZN") && !run.stderr.contains("_RNv"),
        "no mangled names:\n{}",
        run.stderr
    );
}
