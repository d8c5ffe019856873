//! `containerd-shim-capsule-v1`: containerd's runtime `io.containerd.capsule.v1`, so that
//! containerd (and Kubernetes through a RuntimeClass) runs Capsule images with Capsule's
//! runtime — its filesystem, its WASI host, its limits.
//!
//! runwasi's shim kit (`containerd-shimkit`) speaks containerd's task API, mounts each
//! task's rootfs (containerd's snapshot of the image) and runs one shim process per
//! sandbox. Each task is an [`instance::CapsuleInstance`]: a process of this binary
//! (`--capsule-task`, [`task`]) placed in the spec's cgroup, which runs the entrypoint
//! through Capsule's one runner with the rootfs as the guest's `/`. Isolation is
//! Capsule's own — the guest sees only what the spec gives it, through Capsule's
//! capability filesystem — so there is no Linux container (namespaces, pivot_root,
//! masked paths) per task. See docs/kubernetes.md.

// Test code may reach the host directly (see clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

#[cfg(target_os = "linux")]
mod exits;
#[cfg(target_os = "linux")]
mod instance;
#[cfg(target_os = "linux")]
mod spec;
#[cfg(target_os = "linux")]
mod task;

#[cfg(target_os = "linux")]
fn main() {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(task::TASK_FLAG)) {
        std::process::exit(task::main());
    }
    containerd_shimkit::sandbox::cli::shim_main::<instance::CapsuleInstance>(
        "capsule",
        containerd_shimkit::sandbox::cli::Version {
            version: capsule_runtime::VERSION,
            revision: capsule_runtime::WASMTIME_VERSION,
        },
        Some(containerd_shimkit::Config {
            default_log_level: "warn".to_owned(),
            ..containerd_shimkit::Config::default()
        }),
    );
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!(
        "containerd-shim-capsule-v1: containerd shims run on Linux only; build and install it on a Linux node"
    );
    std::process::exit(1);
}
