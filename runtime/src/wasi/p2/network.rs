//! The one gate a component's sockets pass: every address wasmtime-wasi's sockets are
//! about to use is checked here against the container's network (`--network`,
//! `--allow-outbound`, [`crate::net::allow`]). Deny by default: a refused use is
//! `access-denied` in the guest and one line on its stderr (the container's log)
//! naming the address and the flag that would allow it.

use super::stdio::SharedOutput;
use crate::net::allow::AllowList;
use std::net::SocketAddr;
use wasmtime_wasi::sockets::SocketAddrUse;

/// A container's outbound network policy.
#[derive(Debug, Clone)]
pub struct Gate {
    host: bool,
    allow: AllowList,
    log: SharedOutput,
}

impl Gate {
    /// The policy `limits` give, logging refusals to `log`.
    pub fn new(limits: &crate::spec::Limits, log: SharedOutput) -> Self {
        // The rules were checked when the container was made; one that no longer
        // parses (a hand-edited config) allows nothing.
        let allow = AllowList::parse(&limits.outbound).unwrap_or_default();
        Self {
            host: limits.network_host,
            allow,
            log,
        }
    }

    /// Whether the guest may use `addr` so.
    pub fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        if self.host {
            return true;
        }
        let (scheme, what) = match usage {
            SocketAddrUse::TcpConnect => ("tcp", "connect to"),
            SocketAddrUse::UdpSend => ("udp", "send to"),
            SocketAddrUse::UdpReceive => ("udp", "receive from"),
            // The implicit bind before a connect or a send (an unspecified address,
            // port 0): the connect or send itself is checked.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind
                if addr.ip().is_unspecified() && addr.port() == 0 =>
            {
                return true;
            }
            // Listening on the host's addresses is inbound: published ports do that.
            SocketAddrUse::TcpBind
            | SocketAddrUse::UdpBind
            | SocketAddrUse::TcpListen
            | SocketAddrUse::TcpAccept => {
                self.refused(&format!(
                    "capsule: refused to bind {addr}: a container listens only on its published ports (-p), or with --network host"
                ));
                return false;
            }
        };
        let host = addr.ip().to_string();
        if self.allow.allows(scheme, &host, addr.port()) {
            return true;
        }
        let rule = match addr {
            SocketAddr::V4(_) => format!("{scheme}://{host}:{}", addr.port()),
            SocketAddr::V6(_) => format!("{scheme}://[{host}]:{}", addr.port()),
        };
        self.refused(&format!(
            "capsule: refused to {what} {addr}: allow it with --allow-outbound {rule}"
        ));
        false
    }

    fn refused(&self, line: &str) {
        use wasmtime_wasi::p2::OutputStream;
        let mut log = self.log.clone();
        let _ = log.write(bytes::Bytes::from(format!("{line}\n")));
    }
}
