//! Every guest program built by `build.rs` must have a test named after it (in `run.rs`,
//! `escape.rs` or `hostcalls.rs`): adding a guest without one is a compile error here, as in
//! wasmtime's test-programs.

mod tested {
    #[allow(unused_imports, reason = "re-exported only for the check below")]
    pub use super::super::containers::*;
    #[allow(unused_imports, reason = "re-exported only for the check below")]
    pub use super::super::escape::*;
    #[allow(unused_imports, reason = "re-exported only for the check below")]
    pub use super::super::hostcalls::*;
    #[allow(unused_imports, reason = "re-exported only for the check below")]
    pub use super::super::limits::*;
    #[allow(unused_imports, reason = "re-exported only for the check below")]
    pub use super::super::plugins::*;
    #[allow(unused_imports, reason = "re-exported only for the check below")]
    pub use super::super::ports::*;
    pub use super::super::reactors::*;
    #[allow(unused_imports, reason = "re-exported only for the check below")]
    pub use super::super::run::*;
}

macro_rules! assert_guest_tested {
    ($name:ident) => {
        #[allow(unused_imports, reason = "the import is the check")]
        use tested::$name as _;
    };
}

capsule_tests::foreach_guest!(assert_guest_tested);
