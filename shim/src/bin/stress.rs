//! `capsule-shim-stress`: containerd task throughput through a shim, measured the way
//! runwasi's stress test measures its shims (`crates/stress-test`, containerd mode), so
//! that the numbers compare with the ones runwasi reports.
//!
//! Untimed set-up: the image's config is read from containerd's content store, one
//! overlayfs snapshot per task is prepared (under a lease) from the image's chain ID, and
//! a "pause" task of the same sandbox is created (not started) so that the shim process
//! is running before the clock starts; every task carries the sandbox's
//! `io.kubernetes.cri.sandbox-id` annotation, so one shim serves them all, as one shim
//! serves a Pod under Kubernetes.
//!
//! Timed, from the first task's create to the last task's removal: every task's
//! container is created, its task created and started (`--parallel` tasks at a time in
//! these steps), waited for, its exit code and output checked, then task and container
//! deleted. Throughput is tasks / elapsed. Each step's median is printed too.
//!
//! The spec is containerd's own (`--spec FILE`: the `Spec` of a container `ctr run`
//! made, with its namespaces, cgroup, masked paths and mounts), each task in a cgroup of
//! its own: more work per task than runwasi's stress test, whose spec has no `linux`
//! section (and which youki 0.6 refuses for an image without `/dev`).

// A benchmark harness, not the shim: it reads its spec and writes its report by path
// (see clippy.toml).
#[allow(clippy::disallowed_methods)]
#[cfg(target_os = "linux")]
#[path = "../stress.rs"]
mod stress;

#[cfg(target_os = "linux")]
fn main() {
    stress::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("capsule-shim-stress: containerd shims run on Linux only");
    std::process::exit(1);
}
