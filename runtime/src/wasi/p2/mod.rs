//! Capsule's WASI 0.2 world for components: `wasi:filesystem/types` and `preopens`
//! are Capsule's own ([`filesystem`]), over the same world-neutral core as preview1
//! ([`crate::wasi::core`]) and so over the same layers, writable layer, volumes, tmpfs
//! and quotas; io, clocks, random, cli and sockets are wasmtime-wasi's.
//!
//! Sockets are wasmtime-wasi's, with three calls of Capsule's own in front of them —
//! `tcp-socket.start-bind`, `udp-socket.start-bind` (a listener is bound on the
//! container's network address) and `ip-name-lookup` (names resolve from the
//! container's networks and allow-list) — and every address they use passes
//! [`network::Gate`].

pub mod filesystem;
pub mod http_out;
pub mod network;
mod sockets_gate;
pub mod stdio;

use crate::fs::FsError;
use crate::wasi::core::{Core, Dir};
use crate::wasi::freeze::Freeze;
use crate::wasi::p1::stdio::{Input, Output};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// One component's WASI world.
pub struct WasiP2 {
    core: Core,
    table: ResourceTable,
    ctx: WasiCtx,
    /// The preopened directories and the names the guest sees them by.
    preopens: Vec<(Dir, String)>,
    /// Most descriptors open at once (`--ulimit nofile`).
    max_fds: usize,
    /// The container's freeze gate, passed by every call that changes files.
    freeze: Option<Arc<Freeze>>,
    /// The container's network policy.
    gate: Arc<network::Gate>,
    /// The addresses Capsule resolved for each open `resolve-address-stream` (by
    /// resource index), handed out by `resolve-next-address`.
    lookups: std::collections::HashMap<u32, std::collections::VecDeque<std::net::IpAddr>>,
}

impl std::fmt::Debug for WasiP2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiP2")
            .field("core", &self.core)
            .field("preopens", &self.preopens.len())
            .finish_non_exhaustive()
    }
}

impl WasiP2 {
    /// A world with `args`, `env`, the namespace `vfs`, `preopens` as (guest name,
    /// canonical guest path) pairs and these streams, within `spec`'s limits (`--ulimit
    /// nofile`) and network policy (its networks, `--allow-outbound`, `--network host`).
    ///
    /// # Errors
    /// The filesystem's error when a preopen does not resolve to a directory.
    pub fn new(
        args: &[String],
        env: &[(String, String)],
        vfs: Arc<crate::fs::Vfs>,
        preopens: &[(String, String)],
        streams: (Input, Output, Output),
        spec: &crate::spec::RunSpec,
    ) -> Result<Self, FsError> {
        let limits = &spec.limits;
        let core = Core::new(vfs);
        let preopens = preopens
            .iter()
            .map(|(name, path)| Ok((core.open_root(&format!("/{path}"))?, name.clone())))
            .collect::<Result<Vec<_>, FsError>>()?;
        let (stdin, stdout, stderr) = streams;
        let stderr = stdio::SharedOutput::new(stderr);
        let mut builder = WasiCtx::builder();
        builder
            .args(args)
            .envs(env)
            .stdin(stdio::SharedInput::new(stdin))
            .stdout(stdio::SharedOutput::new(stdout))
            .stderr(stderr.clone())
            // Sockets and lookups exist; what they may reach is the gate's decision
            // (Capsule's `resolve-addresses` asks it before wasmtime-wasi's runs).
            .allow_ip_name_lookup(true)
            .allow_tcp(true)
            .allow_udp(true);
        let gate = Arc::new(network::Gate::new(spec, stderr));
        let check = gate.clone();
        builder.socket_addr_check(move |addr, usage| {
            let allowed = check.allows(addr, usage);
            Box::pin(async move { allowed })
        });
        Ok(Self {
            core,
            table: ResourceTable::new(),
            ctx: builder.build(),
            preopens,
            max_fds: limits
                .nofile
                .map_or(crate::wasi::p1::MAX_FDS, |nofile| nofile as usize),
            freeze: None,
            gate,
            lookups: std::collections::HashMap::new(),
        })
    }

    /// The filesystem the guest sees.
    pub fn vfs(&self) -> &Arc<crate::fs::Vfs> {
        self.core.vfs()
    }

    /// Counts the guest's open descriptors in `open`.
    pub fn count_open_in(&mut self, open: Arc<std::sync::atomic::AtomicUsize>) {
        let now = self.core.open_count();
        self.core.count_open_in(open, now);
    }

    /// The resource table (shared with `wasi:http`).
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The container's network policy (outgoing HTTP asks it too).
    pub fn gate(&self) -> &Arc<network::Gate> {
        &self.gate
    }

    /// Makes the guest's changes to files pass `freeze`.
    pub fn set_freeze(&mut self, freeze: Option<Arc<Freeze>>) {
        self.freeze = freeze;
    }
}

impl WasiView for WasiP2 {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// Store data that holds a component's [`WasiP2`].
pub trait HasWasiP2: Send + 'static {
    fn p2(&mut self) -> &mut WasiP2;
}

/// Adds WASI 0.2 (`wasi:cli/command`'s imports) to a component linker whose store
/// data holds a [`WasiP2`].
///
/// # Errors
/// wasmtime's error if the definitions clash with ones already in the linker.
pub fn add_to_linker<T: HasWasiP2>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, random, sockets, sync};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};

    let l = linker;
    macro_rules! with {
        ($view:ident) => {
            |t: &mut T| t.p2().$view()
        };
    }
    // io: wasmtime-wasi's streams and pollables, in the resource table.
    sync::io::error::add_to_linker::<T, HasIo>(l, |t| &mut t.p2().table)?;
    sync::io::poll::add_to_linker::<T, HasIo>(l, |t| &mut t.p2().table)?;
    sync::io::streams::add_to_linker::<T, HasIo>(l, |t| &mut t.p2().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, with!(clocks))?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, with!(clocks))?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.p2().ctx.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.p2().ctx.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.p2().ctx.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::environment::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, with!(cli))?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, with!(sockets))?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, with!(sockets))?;
    let options = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<T, WasiSockets>(l, &options, with!(sockets))?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, with!(sockets))?;
    sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, with!(sockets))?;
    sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, with!(sockets))?;
    sync::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, with!(sockets))?;
    sockets_gate::add_to_linker(l)?;
    // The filesystem: Capsule's own.
    filesystem::bindings::wasi::filesystem::types::add_to_linker::<T, HasSelf<WasiP2>>(l, |t| {
        t.p2()
    })?;
    filesystem::bindings::wasi::filesystem::preopens::add_to_linker::<T, HasSelf<WasiP2>>(
        l,
        |t| t.p2(),
    )?;
    Ok(())
}

struct HasIo;

impl wasmtime::component::HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}
