//! Crash points for the crash-consistency tests: with the `failpoints` feature (built
//! only for the integration tests), a process whose `CAPSULE_FAILPOINT` names a point
//! dies there at once, as if killed (no destructor runs, nothing is cleaned up).
//! Without the feature [`hit`] is empty.
//!
//! The points: `layer-write` (a layer half written, after its first file), `load` (an
//! archive half loaded, after its first blob), `prune` (after the first blob removed),
//! and the name of a file the store writes atomically (`index.json`: the new index
//! synced beside the old one, not yet renamed over it).

/// Dies here when `CAPSULE_FAILPOINT` is `point` (only with the `failpoints` feature).
#[inline]
pub fn hit(point: &str) {
    #[cfg(feature = "failpoints")]
    if crate::ambient::host_env_os("CAPSULE_FAILPOINT").is_some_and(|p| p == point) {
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = point;
}
