//! Every guest program built by `build.rs` must have a test named after it in `run.rs`:
//! adding a guest without one is a compile error here, as in wasmtime's test-programs.

macro_rules! assert_guest_tested {
    ($name:ident) => {
        #[allow(unused_imports, reason = "the import is the check")]
        use super::run::$name as _;
    };
}

capsule_tests::foreach_guest!(assert_guest_tested);
