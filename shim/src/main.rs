//! `containerd-shim-capsule-v1`: containerd's runtime `io.containerd.capsule.v1`, so that
//! containerd (and Kubernetes through a RuntimeClass) runs Capsule images with Capsule's
//! runtime — its filesystem, its WASI host, its limits.
//!
//! Built on runwasi's `containerd-shim-wasm`: runwasi speaks containerd's task API and
//! makes each task a Linux container (youki: namespaces, the cgroup with the spec's
//! resources, the rootfs containerd unpacked, the spec's mounts, rlimits); inside it,
//! [`task::run`] runs the entrypoint through Capsule's one runner
//! (`capsule_runtime::container::runner::Runner`). See docs/kubernetes.md.

#[cfg(target_os = "linux")]
mod task;

#[cfg(target_os = "linux")]
mod shim {
    use containerd_shim_wasm::sandbox::Sandbox;
    use containerd_shim_wasm::sandbox::context::RuntimeContext;
    use containerd_shim_wasm::shim::{Cli, Config, Shim, Version};

    /// The shim: its name makes containerd's runtime `io.containerd.capsule.v1`.
    #[derive(Debug)]
    pub struct CapsuleShim;

    impl Shim for CapsuleShim {
        fn name() -> &'static str {
            "capsule"
        }

        fn version() -> Version {
            Version {
                version: capsule_runtime::VERSION,
                revision: capsule_runtime::WASMTIME_VERSION,
            }
        }

        type Sandbox = CapsuleSandbox;
        // No `compiler()`: runwasi precompiles only layers that are wasm modules
        // themselves, and a Capsule image's modules are files inside its tar layers.
        // Compiled modules go to Capsule's own module cache instead (see `task`).
    }

    /// One task's runner, created by runwasi inside the task's container.
    #[derive(Debug, Default)]
    pub struct CapsuleSandbox;

    impl Sandbox for CapsuleSandbox {
        async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
            Ok(crate::task::run(ctx))
        }

        /// Every task is Capsule's to judge: a missing or unrunnable module ends the
        /// task with Capsule's one-line error on its stderr and exit code 126, rather
        /// than runwasi's refusal to create the container.
        async fn can_handle(&self, _ctx: &impl RuntimeContext) -> anyhow::Result<()> {
            Ok(())
        }
    }

    pub fn main() {
        // Opened here, before runwasi forks the processes that become containers: a
        // task's process keeps this handle after it is moved into the container's root.
        crate::task::open_module_cache();
        CapsuleShim::run(Config {
            default_log_level: "warn".to_owned(),
            ..Config::default()
        });
    }
}

#[cfg(target_os = "linux")]
fn main() {
    shim::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!(
        "containerd-shim-capsule-v1: containerd shims run on Linux only; build and install it on a Linux node"
    );
    std::process::exit(1);
}
