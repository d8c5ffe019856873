//! Capsule's own `wasi_snapshot_preview1`: all 46 functions, over the virtual
//! filesystem ([`crate::fs::Vfs`]).
//!
//! Each import is a small closure that borrows the guest's exported `memory` and the
//! store's [`WasiP1`] at once, calls the matching method, and turns its
//! `Result<(), Errno>` into the errno the guest receives. Guest mistakes (bad pointers,
//! bad descriptors) are errnos; only `proc_exit` and a missing `memory` end the run.

pub mod abi;
mod ctx;
mod random;
mod sockets;
pub mod stdio;

pub use ctx::{MAX_FDS, WasiP1};

use super::ProcExit;
use abi::Mem;
use wasmtime::{Caller, Extern, Linker};

const MODULE: &str = "wasi_snapshot_preview1";

fn memory<T>(caller: &mut Caller<'_, T>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(wasmtime::Error::msg(
            "the module calls WASI but exports no memory named `memory`",
        )),
    }
}

/// Defines one import: `func!(linker, state, freeze, "name", |ctx, mem, a: i32, ...| body)`.
/// A call that may change the filesystem passes the container's freeze gate
/// ([`super::freeze`]) for its duration: the gate is taken into the import when it is
/// defined, so a call pays the pass and nothing else, and a run without a container
/// (no gate) pays nothing.
macro_rules! func {
    ($linker:ident, $state:ident, $freeze:ident, $name:literal, |$ctx:ident, $mem:ident $(, $arg:ident : $ty:ty)*| $body:expr) => {
        let gate = $freeze.clone().filter(|_| CHANGES_FILES.contains(&$name));
        $linker.func_wrap(MODULE, $name, move |mut caller: Caller<'_, T>, $($arg: $ty),*| -> wasmtime::Result<i32> {
            // Looked up by name once per store (the lookup, a hash and a string
            // compare, was a third of the host's own time in a file-heavy guest).
            let memory = match $state(caller.data_mut()).memory {
                Some(memory) => memory,
                None => {
                    let memory = memory(&mut caller)?;
                    $state(caller.data_mut()).memory = Some(memory);
                    memory
                }
            };
            let (bytes, data) = memory.data_and_store_mut(&mut caller);
            #[allow(unused_variables, reason = "some calls touch no memory")]
            let $mem = &mut Mem(bytes);
            let $ctx: &mut WasiP1 = $state(data);
            let _pass = gate.as_deref().map(super::freeze::Freeze::enter);
            let result: abi::R<()> = $body;
            Ok(match result {
                Ok(()) => 0,
                Err(errno) => i32::from(errno.raw()),
            })
        })?;
    };
}

/// The calls that can change a file or directory: they wait while the container's
/// filesystem is frozen. (`fd_write` to a stream waits too: it cannot tell a file
/// from a pipe before it looks at the descriptor, and a freeze lasts a moment.)
const CHANGES_FILES: [&str; 15] = [
    "fd_allocate",
    "fd_datasync",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pwrite",
    "fd_sync",
    "fd_write",
    "path_create_directory",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
];

/// Adds every `wasi_snapshot_preview1` import to a linker whose store data holds a
/// [`WasiP1`].
///
/// # Errors
/// wasmtime's error if a name is already defined.
#[allow(clippy::too_many_lines, reason = "one line per WASI function")]
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    state: impl Fn(&mut T) -> &mut WasiP1 + Copy + Send + Sync + 'static,
    freeze: Option<std::sync::Arc<super::freeze::Freeze>>,
) -> wasmtime::Result<()> {
    let u = |x: i32| x.cast_unsigned();
    let u64_ = |x: i64| x.cast_unsigned();
    let u16_ = |x: i32| x.cast_unsigned() as u16;
    let u8_ = |x: i32| x.cast_unsigned() as u8;

    func!(linker, state, freeze, "args_get", |c, m, a: i32, b: i32| c
        .args_get(m, u(a), u(b)));
    func!(
        linker,
        state,
        freeze,
        "args_sizes_get",
        |c, m, a: i32, b: i32| c.args_sizes_get(m, u(a), u(b))
    );
    func!(
        linker,
        state,
        freeze,
        "environ_get",
        |c, m, a: i32, b: i32| c.environ_get(m, u(a), u(b))
    );
    func!(
        linker,
        state,
        freeze,
        "environ_sizes_get",
        |c, m, a: i32, b: i32| c.environ_sizes_get(m, u(a), u(b))
    );
    func!(
        linker,
        state,
        freeze,
        "clock_res_get",
        |c, m, id: i32, out: i32| c.clock_res_get(m, u(id), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "clock_time_get",
        |c, m, id: i32, p: i64, out: i32| c.clock_time_get(m, u(id), u64_(p), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_advise",
        |c, m, fd: i32, o: i64, l: i64, a: i32| c.fd_advise(u(fd), u64_(o), u64_(l), u8_(a))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_allocate",
        |c, m, fd: i32, o: i64, l: i64| c.fd_allocate(u(fd), u64_(o), u64_(l))
    );
    func!(linker, state, freeze, "fd_close", |c, m, fd: i32| c
        .fd_close(u(fd)));
    func!(linker, state, freeze, "fd_datasync", |c, m, fd: i32| c
        .fd_datasync(u(fd)));
    func!(
        linker,
        state,
        freeze,
        "fd_fdstat_get",
        |c, m, fd: i32, out: i32| c.fd_fdstat_get(m, u(fd), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_fdstat_set_flags",
        |c, m, fd: i32, f: i32| c.fd_fdstat_set_flags(u(fd), u16_(f))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_fdstat_set_rights",
        |c, m, fd: i32, b: i64, i: i64| c.fd_fdstat_set_rights(u(fd), u64_(b), u64_(i))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_filestat_get",
        |c, m, fd: i32, out: i32| c.fd_filestat_get(m, u(fd), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_filestat_set_size",
        |c, m, fd: i32, s: i64| c.fd_filestat_set_size(u(fd), u64_(s))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_filestat_set_times",
        |c, m, fd: i32, a: i64, mt: i64, f: i32| c.fd_filestat_set_times(
            u(fd),
            u64_(a),
            u64_(mt),
            u16_(f)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "fd_pread",
        |c, m, fd: i32, iov: i32, n: i32, off: i64, out: i32| c.fd_pread(
            m,
            u(fd),
            u(iov),
            u(n),
            u64_(off),
            u(out)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "fd_prestat_get",
        |c, m, fd: i32, out: i32| c.fd_prestat_get(m, u(fd), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_prestat_dir_name",
        |c, m, fd: i32, p: i32, l: i32| c.fd_prestat_dir_name(m, u(fd), u(p), u(l))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_pwrite",
        |c, m, fd: i32, iov: i32, n: i32, off: i64, out: i32| c.fd_pwrite(
            m,
            u(fd),
            u(iov),
            u(n),
            u64_(off),
            u(out)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "fd_read",
        |c, m, fd: i32, iov: i32, n: i32, out: i32| c.fd_read(m, u(fd), u(iov), u(n), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_readdir",
        |c, m, fd: i32, b: i32, l: i32, ck: i64, out: i32| c.fd_readdir(
            m,
            u(fd),
            u(b),
            u(l),
            u64_(ck),
            u(out)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "fd_renumber",
        |c, m, from: i32, to: i32| c.fd_renumber(u(from), u(to))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_seek",
        |c, m, fd: i32, off: i64, w: i32, out: i32| c.fd_seek(m, u(fd), off, u8_(w), u(out))
    );
    func!(linker, state, freeze, "fd_sync", |c, m, fd: i32| c
        .fd_sync(u(fd)));
    func!(
        linker,
        state,
        freeze,
        "fd_tell",
        |c, m, fd: i32, out: i32| c.fd_tell(m, u(fd), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "fd_write",
        |c, m, fd: i32, iov: i32, n: i32, out: i32| c.fd_write(m, u(fd), u(iov), u(n), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "path_create_directory",
        |c, m, fd: i32, p: i32, l: i32| c.path_create_directory(m, u(fd), u(p), u(l))
    );
    func!(
        linker,
        state,
        freeze,
        "path_filestat_get",
        |c, m, fd: i32, f: i32, p: i32, l: i32, out: i32| c.path_filestat_get(
            m,
            u(fd),
            u(f),
            u(p),
            u(l),
            u(out)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "path_filestat_set_times",
        |c, m, fd: i32, f: i32, p: i32, l: i32, a: i64, mt: i64, fl: i32| c
            .path_filestat_set_times(m, u(fd), u(f), u(p), u(l), u64_(a), u64_(mt), u16_(fl))
    );
    func!(
        linker,
        state,
        freeze,
        "path_link",
        |c, m, ofd: i32, f: i32, op: i32, ol: i32, nfd: i32, np: i32, nl: i32| c.path_link(
            m,
            u(ofd),
            u(f),
            u(op),
            u(ol),
            u(nfd),
            u(np),
            u(nl)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "path_open",
        |c, m, fd: i32, df: i32, p: i32, l: i32, of: i32, rb: i64, ri: i64, ff: i32, out: i32| c
            .path_open(
                m,
                u(fd),
                u(df),
                u(p),
                u(l),
                u16_(of),
                u64_(rb),
                u64_(ri),
                u16_(ff),
                u(out)
            )
    );
    func!(
        linker,
        state,
        freeze,
        "path_readlink",
        |c, m, fd: i32, p: i32, l: i32, b: i32, bl: i32, out: i32| c.path_readlink(
            m,
            u(fd),
            u(p),
            u(l),
            u(b),
            u(bl),
            u(out)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "path_remove_directory",
        |c, m, fd: i32, p: i32, l: i32| c.path_remove_directory(m, u(fd), u(p), u(l))
    );
    func!(
        linker,
        state,
        freeze,
        "path_rename",
        |c, m, fd: i32, op: i32, ol: i32, nfd: i32, np: i32, nl: i32| c.path_rename(
            m,
            u(fd),
            u(op),
            u(ol),
            u(nfd),
            u(np),
            u(nl)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "path_symlink",
        |c, m, op: i32, ol: i32, fd: i32, np: i32, nl: i32| c.path_symlink(
            m,
            u(op),
            u(ol),
            u(fd),
            u(np),
            u(nl)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "path_unlink_file",
        |c, m, fd: i32, p: i32, l: i32| c.path_unlink_file(m, u(fd), u(p), u(l))
    );
    func!(
        linker,
        state,
        freeze,
        "poll_oneoff",
        |c, m, s: i32, e: i32, n: i32, out: i32| c.poll_oneoff(m, u(s), u(e), u(n), u(out))
    );
    func!(linker, state, freeze, "proc_raise", |c, m, sig: i32| c
        .proc_raise(u(sig)));
    func!(linker, state, freeze, "sched_yield", |c, m| c.sched_yield());
    func!(
        linker,
        state,
        freeze,
        "random_get",
        |c, m, b: i32, l: i32| c.random_get(m, u(b), u(l))
    );
    func!(
        linker,
        state,
        freeze,
        "sock_accept",
        |c, m, fd: i32, f: i32, out: i32| c.sock_accept(m, u(fd), u16_(f), u(out))
    );
    func!(
        linker,
        state,
        freeze,
        "sock_recv",
        |c, m, fd: i32, iov: i32, n: i32, f: i32, out: i32, oflags: i32| c.sock_recv(
            m,
            u(fd),
            u(iov),
            u(n),
            u16_(f),
            u(out),
            u(oflags)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "sock_send",
        |c, m, fd: i32, iov: i32, n: i32, f: i32, out: i32| c.sock_send(
            m,
            u(fd),
            u(iov),
            u(n),
            u16_(f),
            u(out)
        )
    );
    func!(
        linker,
        state,
        freeze,
        "sock_shutdown",
        |c, m, fd: i32, h: i32| c.sock_shutdown(u(fd), u8_(h))
    );

    linker.func_wrap(MODULE, "proc_exit", |status: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(ProcExit(status.cast_unsigned())))
    })?;
    Ok(())
}

/// Names of the functions [`add_to_linker`] defines (all 46 of preview1).
pub const FUNCTIONS: [&str; 46] = [
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "sched_yield",
    "random_get",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];
