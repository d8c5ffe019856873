//! Sockets: the listeners the host bound for a container's published ports
//! ([`crate::net`]) and the connections accepted on them. A guest gets no other socket:
//! preview1 has no call that opens one (`sock_open`/`sock_connect` are not in it).
//!
//! What a guest sees follows the legacy preview1 host of record (wasi-common, behind
//! wasmtime's old `--tcplisten`; wasmtime-wasi 48 answers `ENOTSOCK` to every `sock_*`
//! call): filetype `SOCKET_STREAM`, rights `FD_READ | FD_WRITE` with no inheriting
//! rights, a filestat of zeros but the type, `fd_fdstat_set_flags` taking only
//! `NONBLOCK`, `sock_recv` taking `RECV_PEEK` and `RECV_WAITALL`, `sock_send` no flags.
//! One difference: a listener starts blocking (wasi-common's started non-blocking, as
//! the host socket it wrapped), as systemd hands sockets over, so that a plain
//! `accept` loop works; `NONBLOCK` makes every call answer `EAGAIN` instead of waiting.
//!
//! Host sockets are always non-blocking; a blocking call waits in `poll(2)` in slices,
//! so that a stopped container's guest is woken (`EINTR`) and then trapped.

use super::abi::{MAX_IO, Mem, R, fdflags, filetype, rights};
use crate::engine::Interrupt;
use crate::fs::Errno;
use crate::fs::errno::errno_of;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

/// `riflags`.
pub mod riflags {
    pub const RECV_PEEK: u16 = 1;
    pub const RECV_WAITALL: u16 = 2;
}

/// `sdflags`.
pub mod sdflags {
    pub const RD: u8 = 1;
    pub const WR: u8 = 2;
}

/// How long one wait in `poll(2)` lasts before the interrupt is looked at again.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

#[derive(Debug)]
enum Kind {
    Listener(TcpListener),
    Stream(TcpStream),
}

/// A socket descriptor.
#[derive(Debug)]
pub struct Socket {
    kind: Kind,
    nonblock: bool,
}

fn io(e: &std::io::Error) -> Errno {
    errno_of(e)
}

/// Which readiness a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

impl Socket {
    /// A listening socket (bound by the host), blocking for the guest.
    ///
    /// # Errors
    /// The host's error making the socket non-blocking.
    pub fn listener(socket: TcpListener) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            kind: Kind::Listener(socket),
            nonblock: false,
        })
    }

    pub fn filetype(&self) -> u8 {
        filetype::SOCKET_STREAM
    }

    pub fn fdflags(&self) -> u16 {
        if self.nonblock { fdflags::NONBLOCK } else { 0 }
    }

    /// (base, inheriting), as wasi-common reported them.
    pub fn rights(&self) -> (u64, u64) {
        (rights::FD_READ | rights::FD_WRITE, 0)
    }

    /// `fd_fdstat_set_flags`: only `NONBLOCK` may be set or cleared.
    pub fn set_flags(&mut self, flags: u16) -> R<()> {
        if flags & !fdflags::NONBLOCK != 0 {
            return Err(Errno::Inval);
        }
        self.nonblock = flags & fdflags::NONBLOCK != 0;
        Ok(())
    }

    /// The host descriptor `poll(2)` waits on.
    #[cfg(unix)]
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match &self.kind {
            Kind::Listener(l) => l.as_fd(),
            Kind::Stream(s) => s.as_fd(),
        }
    }

    /// The host socket `WSAPoll` waits on.
    #[cfg(windows)]
    pub fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        use std::os::windows::io::AsRawSocket;
        match &self.kind {
            Kind::Listener(l) => l.as_raw_socket(),
            Kind::Stream(s) => s.as_raw_socket(),
        }
    }

    /// Bytes ready to read, as a read event's `nbytes` (1 for a listener with a
    /// connection waiting, as wasi-common).
    pub fn ready_bytes(&self) -> u64 {
        #[cfg(unix)]
        if let Kind::Stream(_) = &self.kind {
            return rustix::io::ioctl_fionread(self.as_fd()).unwrap_or(0);
        }
        1
    }

    /// Runs `op` until it does not block, waiting between tries unless the descriptor
    /// is non-blocking.
    fn retry<T>(
        &self,
        interest: Interest,
        interrupt: &Interrupt,
        mut op: impl FnMut(&Self) -> std::io::Result<T>,
    ) -> R<T> {
        loop {
            match op(self) {
                Ok(value) => return Ok(value),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.nonblock {
                        return Err(Errno::Again);
                    }
                    self.wait(interest, interrupt)?;
                }
                Err(e) => return Err(io(&e)),
            }
        }
    }

    /// Waits until the socket is ready (or the guest is stopped: `EINTR`).
    fn wait(&self, interest: Interest, interrupt: &Interrupt) -> R<()> {
        loop {
            if interrupt.reason().is_some() {
                return Err(Errno::Intr);
            }
            #[cfg(unix)]
            {
                if wait_fds(&[(self.as_fd(), interest)], Some(WAIT_SLICE))?
                    .iter()
                    .any(|r| r.is_some())
                {
                    return Ok(());
                }
            }
            #[cfg(windows)]
            {
                if wait_sockets(&[(self.as_raw_socket(), interest)], Some(WAIT_SLICE))?
                    .iter()
                    .any(|r| r.is_some())
                {
                    return Ok(());
                }
            }
            #[cfg(not(any(unix, windows)))]
            {
                let _ = interest;
                std::thread::sleep(Duration::from_millis(5));
                return Ok(());
            }
        }
    }

    /// `sock_accept`: a new connection, with `flags` (only `NONBLOCK`) as its fdflags.
    pub fn accept(&self, flags: u16, interrupt: &Interrupt) -> R<Socket> {
        if flags & !fdflags::NONBLOCK != 0 {
            return Err(Errno::Inval);
        }
        let stream = match &self.kind {
            Kind::Listener(_) => self.retry(Interest::Read, interrupt, |s| match &s.kind {
                Kind::Listener(l) => l.accept().map(|(stream, _)| stream),
                Kind::Stream(_) => Err(std::io::ErrorKind::InvalidInput.into()),
            })?,
            // Linux's answer for accept on a connection.
            Kind::Stream(_) => return Err(Errno::Inval),
        };
        stream.set_nonblocking(true).map_err(|e| io(&e))?;
        Ok(Socket {
            kind: Kind::Stream(stream),
            nonblock: flags & fdflags::NONBLOCK != 0,
        })
    }

    fn stream(&self) -> R<&TcpStream> {
        match &self.kind {
            Kind::Stream(s) => Ok(s),
            // Linux's answer for reading or writing a listening socket.
            Kind::Listener(_) => Err(Errno::Notconn),
        }
    }

    /// `fd_read`/`sock_recv`: reads into the guest's iovecs. `RECV_PEEK` leaves the
    /// data queued (and fills the first iovec only, as wasi-common); `RECV_WAITALL`
    /// waits until every iovec is full or the peer has closed.
    pub fn recv(
        &self,
        mem: &mut Mem,
        iovs: &[(u32, u32)],
        flags: u16,
        interrupt: &Interrupt,
    ) -> R<u32> {
        if flags & !(riflags::RECV_PEEK | riflags::RECV_WAITALL) != 0 {
            return Err(Errno::Notsup);
        }
        let stream = self.stream()?;
        let iovs: Vec<(u32, u32)> = if flags & riflags::RECV_PEEK != 0 {
            iovs.iter()
                .copied()
                .filter(|(_, l)| *l > 0)
                .take(1)
                .collect()
        } else {
            iovs.to_vec()
        };
        let wanted = iovs
            .iter()
            .map(|(_, l)| *l as usize)
            .sum::<usize>()
            .min(MAX_IO);
        if wanted == 0 {
            return Ok(0);
        }
        let mut buf = vec![0u8; wanted];
        let mut got = 0usize;
        loop {
            let n = self.retry(Interest::Read, interrupt, |_| {
                if flags & riflags::RECV_PEEK != 0 {
                    stream.peek(&mut buf[got..])
                } else {
                    (&*stream).read(&mut buf[got..])
                }
            });
            let n = match n {
                Ok(n) => n,
                // Some data already arrived: a short read, the error comes next time.
                Err(_) if got > 0 => break,
                Err(e) => return Err(e),
            };
            got += n;
            if n == 0
                || got == wanted
                || flags & riflags::RECV_WAITALL == 0
                || flags & riflags::RECV_PEEK != 0
            {
                break;
            }
        }
        scatter(mem, &iovs, &buf[..got])?;
        Ok(got as u32)
    }

    /// `fd_write`/`sock_send`: writes the guest's iovecs (at most [`MAX_IO`] bytes).
    pub fn send(&self, mem: &mut Mem, iovs: &[(u32, u32)], interrupt: &Interrupt) -> R<u32> {
        let stream = self.stream()?;
        let data = mem.gather(iovs)?;
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.retry(Interest::Write, interrupt, |_| (&*stream).write(&data))?;
        Ok(n as u32)
    }

    /// `sock_shutdown`.
    pub fn shutdown(&self, how: u8) -> R<()> {
        let how = match how {
            sdflags::RD => Shutdown::Read,
            sdflags::WR => Shutdown::Write,
            h if h == sdflags::RD | sdflags::WR => Shutdown::Both,
            _ => return Err(Errno::Inval),
        };
        self.stream()?.shutdown(how).map_err(|e| io(&e))
    }
}

/// Copies `data` into the guest's iovecs, in order.
fn scatter(mem: &mut Mem, iovs: &[(u32, u32)], mut data: &[u8]) -> R<()> {
    for (buf, len) in iovs.iter().copied() {
        if data.is_empty() {
            break;
        }
        let n = (len as usize).min(data.len());
        mem.write(buf, &data[..n])?;
        data = &data[n..];
    }
    Ok(())
}

/// What `poll(2)` said of one descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// The peer hung up or the socket failed.
    pub hangup: bool,
}

/// One `poll(2)` over host descriptors, for at most `timeout` (`None`: until one is
/// ready). Returns, for each, whether it is ready.
///
/// # Errors
/// `EIO` when the host's poll fails (other than `EINTR`, which reports nothing ready).
#[cfg(unix)]
pub fn wait_fds(
    fds: &[(std::os::fd::BorrowedFd<'_>, Interest)],
    timeout: Option<Duration>,
) -> R<Vec<Option<Ready>>> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut polls: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, interest)| {
            let flags = match interest {
                Interest::Read => PollFlags::IN,
                Interest::Write => PollFlags::OUT,
            };
            PollFd::from_borrowed_fd(*fd, flags)
        })
        .collect();
    let timeout = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match rustix::event::poll(&mut polls, timeout.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(vec![None; fds.len()]),
        Err(_) => return Err(Errno::Io),
    }
    Ok(polls
        .iter()
        .map(|p| {
            let r = p.revents();
            let hangup = r.intersects(PollFlags::HUP | PollFlags::ERR);
            (r.intersects(PollFlags::IN | PollFlags::OUT) || hangup || r.contains(PollFlags::NVAL))
                .then_some(Ready { hangup })
        })
        .collect())
}

/// Windows' `poll(2)`: one `WSAPoll` over host sockets, for at most `timeout`
/// (`None`: until one is ready). Returns, for each, whether it is ready.
///
/// # Errors
/// `EIO` when the host's poll fails.
#[cfg(windows)]
#[allow(unsafe_code, reason = "WSAPoll over a slice this function owns")]
pub fn wait_sockets(
    sockets: &[(std::os::windows::io::RawSocket, Interest)],
    timeout: Option<Duration>,
) -> R<Vec<Option<Ready>>> {
    use windows_sys::Win32::Networking::WinSock::{
        POLLERR, POLLHUP, POLLNVAL, POLLRDNORM, POLLWRNORM, SOCKET, WSAPOLLFD, WSAPoll,
    };
    let mut polls: Vec<WSAPOLLFD> = sockets
        .iter()
        .map(|(socket, interest)| WSAPOLLFD {
            fd: *socket as SOCKET,
            events: match interest {
                Interest::Read => POLLRDNORM,
                Interest::Write => POLLWRNORM,
            },
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
    let count = u32::try_from(polls.len()).map_err(|_| Errno::Inval)?;
    // SAFETY: `polls` is a live, exclusively borrowed array of `count` entries.
    if unsafe { WSAPoll(polls.as_mut_ptr(), count, ms) } < 0 {
        return Err(Errno::Io);
    }
    Ok(polls
        .iter()
        .map(|p| {
            let r = p.revents;
            let hangup = r & (POLLHUP | POLLERR) != 0;
            (r & (POLLRDNORM | POLLWRNORM | POLLNVAL) != 0 || hangup).then_some(Ready { hangup })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Interruption;

    /// A listener as the guest gets it, and a client connected to it.
    fn pair() -> (Socket, Socket, TcpStream) {
        let host = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = host.local_addr().expect("addr");
        let listener = Socket::listener(host).expect("listener");
        let client = TcpStream::connect(addr).expect("connect");
        let conn = listener
            .accept(0, &Interrupt::new())
            .expect("accept blocks until the client is there");
        (listener, conn, client)
    }

    #[test]
    fn recv_flags_as_wasi_common() {
        let (_l, conn, mut client) = pair();
        let none = Interrupt::new();
        let mut memory = vec![0u8; 64];
        client.write_all(b"hello world").expect("send");
        let mut mem = Mem(&mut memory);
        // PEEK fills the first iovec and leaves the data queued.
        let n = conn
            .recv(&mut mem, &[(0, 5), (8, 8)], riflags::RECV_PEEK, &none)
            .expect("peek");
        assert_eq!((n, &mem.0[..5]), (5, &b"hello"[..]));
        // WAITALL waits until every iovec is full.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            client.write_all(b"!!").expect("send more");
            client
        });
        let n = conn
            .recv(&mut mem, &[(16, 6), (32, 7)], riflags::RECV_WAITALL, &none)
            .expect("waitall");
        assert_eq!(n, 13);
        assert_eq!(&mem.0[16..22], b"hello ");
        assert_eq!(&mem.0[32..39], b"world!!");
        let client = writer.join().expect("writer");
        assert_eq!(conn.recv(&mut mem, &[(0, 4)], 4, &none), Err(Errno::Notsup));
        drop(client);
        // The peer closed: 0, end of stream.
        assert_eq!(conn.recv(&mut mem, &[(0, 4)], 0, &none), Ok(0));
    }

    #[test]
    fn nonblocking_shutdown_and_refusals() {
        let (listener, mut conn, mut client) = pair();
        let none = Interrupt::new();
        let mut memory = vec![0u8; 16];
        let mut mem = Mem(&mut memory);
        assert_eq!(conn.set_flags(fdflags::APPEND), Err(Errno::Inval));
        conn.set_flags(fdflags::NONBLOCK).expect("nonblock");
        assert_eq!(conn.fdflags(), fdflags::NONBLOCK);
        assert_eq!(conn.recv(&mut mem, &[(0, 4)], 0, &none), Err(Errno::Again));
        assert_eq!(conn.accept(0, &none).err(), Some(Errno::Inval));
        assert_eq!(
            listener.recv(&mut mem, &[(0, 4)], 0, &none),
            Err(Errno::Notconn)
        );
        assert_eq!(listener.shutdown(sdflags::WR), Err(Errno::Notconn));
        assert_eq!(conn.shutdown(0), Err(Errno::Inval));
        mem.write(0, b"bye").expect("guest data");
        assert_eq!(conn.send(&mut mem, &[(0, 3)], &none), Ok(3));
        conn.shutdown(sdflags::WR).expect("shutdown");
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("the peer sees the end");
        assert_eq!(got, b"bye");
        assert_eq!(
            listener.accept(fdflags::APPEND, &none).err(),
            Some(Errno::Inval)
        );
    }

    #[test]
    fn a_stopped_guest_is_woken_from_accept() {
        let host = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listener = Socket::listener(host).expect("listener");
        let interrupt = Interrupt::new();
        let stopper = interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            stopper.interrupt(Interruption::Killed);
        });
        assert_eq!(listener.accept(0, &interrupt).err(), Some(Errno::Intr));
    }
}
