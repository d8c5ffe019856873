//! Published ports of a component that listens itself (a `wasi:cli/command` server on
//! a network): Docker's user-space proxy. The host listens on the published address and
//! each connection it accepts is joined to the container's listener on its network
//! address (`127.A.B.C:CONTAINER_PORT`), bytes copied both ways until either side
//! closes. Nothing is interpreted; the container sees connections from the host.

use super::Listener;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a connection to the container's listener may take (it is on loopback: a
/// listener that is not there yet refuses at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running proxies of a container's published ports; dropped, they stop (the
/// connections open go on until they close).
#[derive(Debug)]
pub struct Forwards {
    stop: Arc<AtomicBool>,
    wakers: Vec<SocketAddr>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Forwards {
    /// Proxies each published port's host listener to `address`, at its container port.
    ///
    /// # Errors
    /// The host's error when a listener cannot be switched to blocking mode.
    pub fn start(listeners: Vec<Listener>, address: std::net::IpAddr) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut wakers = Vec::new();
        let mut threads = Vec::new();
        for listener in listeners {
            listener.socket.set_nonblocking(false)?;
            let target = SocketAddr::new(address, listener.binding.container_port);
            wakers.push(listener.socket.local_addr()?);
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("forward {target}"))
                    .spawn(move || accept_loop(&listener.socket, target, &stop))?,
            );
        }
        Ok(Self {
            stop,
            wakers,
            threads,
        })
    }
}

impl Drop for Forwards {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Each accept loop is blocked in accept: one connection wakes it to see `stop`.
        for addr in &self.wakers {
            let _ = TcpStream::connect_timeout(addr, Duration::from_millis(200));
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((client, _)) => {
                let _ = std::thread::Builder::new()
                    .name(format!("forward {target}"))
                    .spawn(move || join(client, target));
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept on a published port failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Copies `client` ↔ the container's listener at `target` until both directions end.
fn join(client: TcpStream, target: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        // Nothing listens there (yet): the client sees its connection closed, as
        // Docker's proxy does.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || pipe(client_reader, server_writer));
    pipe(server, client);
    let _ = upstream.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
