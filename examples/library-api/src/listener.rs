//! Where the listening socket comes from.
//!
//! Under WASI preview1 a program cannot open a socket: the host opens the listener before
//! the program starts and hands it over as an open descriptor, the way systemd socket
//! activation does. `LISTEN_FDS=N` says how many listeners there are and
//! `LISTEN_FDNAMES=a:b` may name them; systemd puts them at descriptors 3, 4, ...; a WASI
//! host has its preopened directories there first, so the first listener's number may be
//! given as `LISTEN_FDS_START` (Capsule gives it). Without it, the descriptors from 3 up
//! are asked (`fd_fdstat_get`) and the stream sockets among them are the listeners, in
//! order. Of several listeners, the one `LISTEN_FDNAMES` names `$LIBRARY_PORT` (Capsule
//! names them by container port; default 8000) is taken, else the first.
//!
//! Natively (and under WASI preview2, where a program may bind) `--bind ADDR` binds.

use std::net::TcpListener;

/// A listener and a line that says where it came from.
pub fn bind(addr: &str) -> Result<(TcpListener, String), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let shown = listener
        .local_addr()
        .map_or_else(|_| addr.to_owned(), |a| a.to_string());
    Ok((listener, format!("listening on {shown}")))
}

/// The listener the host handed over.
#[cfg(all(target_os = "wasi", target_env = "p1"))]
pub fn inherited() -> Result<(TcpListener, String), String> {
    use std::os::wasi::io::FromRawFd;

    let count = env_number("LISTEN_FDS")?;
    let start = env_number("LISTEN_FDS_START")?;
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    if count == Some(0) {
        return Err(no_listener("LISTEN_FDS is 0"));
    }
    // Several listeners: the one whose name (Capsule names them by container port) is
    // $LIBRARY_PORT, 8000 by default; else the first.
    let wanted = std::env::var("LIBRARY_PORT").unwrap_or_else(|_| "8000".to_owned());
    let index = names.iter().position(|n| *n == wanted).unwrap_or(0);
    let fd = match start {
        Some(first) => {
            let fd = u32::try_from(first)
                .ok()
                .and_then(|f| f.checked_add(u32::try_from(index).ok()?))
                .ok_or_else(|| format!("LISTEN_FDS_START={first} is not a descriptor"))?;
            if !wasi::is_stream_socket(fd) {
                return Err(format!(
                    "LISTEN_FDS_START={first}, but descriptor {fd} is not a listening stream socket"
                ));
            }
            fd
        }
        None => {
            // Preopened directories come first; stop after a run of closed descriptors.
            let mut sockets = Vec::new();
            let mut closed = 0;
            for fd in 3u32..1024 {
                match wasi::fd_filetype(fd) {
                    Some(wasi::FILETYPE_SOCKET_STREAM) => {
                        sockets.push(fd);
                        closed = 0;
                    }
                    Some(_) => closed = 0,
                    None => {
                        closed += 1;
                        if closed == 16 {
                            break;
                        }
                    }
                }
            }
            let found = sockets.get(index).or(sockets.first()).copied();
            found.ok_or_else(|| {
                no_listener(&match count {
                    Some(n) => {
                        format!("LISTEN_FDS={n}, but no descriptor from 3 up is a stream socket")
                    }
                    None => "LISTEN_FDS is not set and no descriptor from 3 up is a stream socket"
                        .to_owned(),
                })
            })?
        }
    };
    let name = names
        .get(index)
        .filter(|n| !n.is_empty())
        .map_or(String::new(), |n| format!(" ({n})"));
    // SAFETY: `fd` is an open stream socket (checked above) that nothing else in this
    // program owns: the host opened it for this program and the listener takes it over.
    let listener = unsafe { TcpListener::from_raw_fd(fd as i32) };
    Ok((
        listener,
        format!("listening on the socket the host opened, descriptor {fd}{name}"),
    ))
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn env_number(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(None),
    }
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn no_listener(why: &str) -> String {
    format!(
        "no listening socket: {why}. Run it with a published port (capsule run -p 8000:8000 IMAGE), or pass --bind ADDR where the host lets programs bind"
    )
}

/// Without a handed-over socket there is nothing to inherit: `--bind` is needed.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub fn inherited() -> Result<(TcpListener, String), String> {
    Err("no listening socket: pass --bind ADDR (for example --bind 127.0.0.1:8000)".to_owned())
}

/// The one WASI preview1 call std does not offer: the type of a descriptor.
#[cfg(all(target_os = "wasi", target_env = "p1"))]
mod wasi {
    /// `filetype::socket_stream`.
    pub const FILETYPE_SOCKET_STREAM: u8 = 6;

    /// `fdstat` of WASI preview1: 24 bytes, aligned to 8.
    #[repr(C)]
    struct Fdstat {
        filetype: u8,
        flags: u16,
        rights_base: u64,
        rights_inheriting: u64,
    }

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        #[link_name = "fd_fdstat_get"]
        fn fd_fdstat_get(fd: u32, out: *mut Fdstat) -> i32;
    }

    /// The file type of an open descriptor, `None` when it is not open.
    pub fn fd_filetype(fd: u32) -> Option<u8> {
        let mut stat = Fdstat {
            filetype: 0,
            flags: 0,
            rights_base: 0,
            rights_inheriting: 0,
        };
        // SAFETY: `stat` is a valid, writable `fdstat` for the call to fill.
        let errno = unsafe { fd_fdstat_get(fd, &mut stat) };
        (errno == 0).then_some(stat.filetype)
    }

    pub fn is_stream_socket(fd: u32) -> bool {
        fd_filetype(fd) == Some(FILETYPE_SOCKET_STREAM)
    }
}
