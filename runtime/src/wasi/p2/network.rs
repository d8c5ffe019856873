//! The one gate a component's network passes: every address wasmtime-wasi's sockets
//! are about to use, every address a listener is bound on, and every name the guest
//! looks up is decided here from the container's networks (`--network NAME`, each an
//! address on a loopback subnet), `--allow-outbound` ([`crate::net::allow`]) and
//! `--network host`. Deny by default: a refused use is `access-denied` in the guest and
//! one line on its stderr (the container's log) naming the address and the flag that
//! would allow it.
//!
//! - Connects and datagrams: to a peer's address on one of the container's networks,
//!   to an address the allow-list grants, or to an address a granted name resolved to.
//! - Listeners: a bind to the unspecified address (`0.0.0.0:PORT`, what servers do) is
//!   bound on the container's first network address instead ([`Gate::bind_address`]);
//!   explicit binds to other addresses are refused. Without a network a container
//!   listens only on its published ports.
//! - Names: containers on the container's networks by name, alias or ID
//!   ([`crate::container::networks::resolve`]); names the allow-list grants through the
//!   host's resolver; with `--network host`, every name.

use super::stdio::SharedOutput;
use crate::net::allow::AllowList;
use crate::net::network::Attachment;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use wasmtime_wasi::sockets::SocketAddrUse;

/// A container's network policy.
#[derive(Debug)]
pub struct Gate {
    host: bool,
    allow: AllowList,
    log: SharedOutput,
    networks: Vec<Attachment>,
    /// The home whose containers the network names are looked up among.
    home: Option<PathBuf>,
    /// Addresses that names the allow-list grants resolved to, and the names.
    learned: Mutex<HashMap<IpAddr, String>>,
}

/// What a name lookup gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The addresses, in order.
    Found(Vec<IpAddr>),
    /// Not a name on the container's networks, though it has some.
    Unknown,
    /// Nothing allows looking it up.
    Refused,
}

impl Gate {
    /// The policy `spec` gives, logging refusals to `log`.
    pub fn new(spec: &crate::spec::RunSpec, log: SharedOutput) -> Self {
        // The rules were checked when the container was made; one that no longer
        // parses (a hand-edited config) allows nothing.
        let allow = AllowList::parse(&spec.limits.outbound).unwrap_or_default();
        Self {
            host: spec.limits.network_host,
            allow,
            log,
            networks: spec.networks.clone(),
            home: spec.home.clone(),
            learned: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the guest may use everything (`--network host`).
    pub fn is_host(&self) -> bool {
        self.host
    }

    fn on_my_networks(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|a| a.subnet.contains(ip))
    }

    fn is_mine(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.networks.iter().any(|a| IpAddr::V4(a.address) == ip)
    }

    /// The address a guest's bind of `requested` is made on: the unspecified IPv4
    /// address becomes the container's first network address (its listeners live
    /// there); anything else is bound as asked, and checked.
    pub fn bind_address(&self, requested: SocketAddr) -> SocketAddr {
        match (requested, self.networks.first()) {
            (SocketAddr::V4(v4), Some(first)) if !self.host && v4.ip().is_unspecified() => {
                SocketAddr::new(IpAddr::V4(first.address), v4.port())
            }
            _ => requested,
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
            // A datagram from an address the container may not reach is dropped
            // silently (one line each would let a peer flood the log).
            SocketAddrUse::UdpReceive => return self.reaches("udp", addr),
            // The implicit bind before a connect or a send (an unspecified address,
            // port 0): the connect or send itself is checked.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind
                if addr.ip().is_unspecified() && addr.port() == 0 =>
            {
                return true;
            }
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind | SocketAddrUse::TcpListen => {
                if self.is_mine(addr.ip()) {
                    return true;
                }
                self.refused(&if self.networks.is_empty() {
                    format!(
                        "capsule: refused to listen on {addr}: a container without a network listens only on its published ports (-p); join one with --network NAME, or use --network host"
                    )
                } else {
                    format!(
                        "capsule: refused to listen on {addr}: a container listens on its network address ({}) or on 0.0.0.0, which is bound there",
                        self.networks[0].address
                    )
                });
                return false;
            }
            // The listener is on the container's own address: who may connect there is
            // each client's gate's question.
            SocketAddrUse::TcpAccept => return true,
        };
        if self.reaches(scheme, addr) {
            return true;
        }
        let host = addr.ip().to_string();
        let rule = match addr {
            SocketAddr::V4(_) => format!("{scheme}://{host}:{}", addr.port()),
            SocketAddr::V6(_) => format!("{scheme}://[{host}]:{}", addr.port()),
        };
        self.refused(&format!(
            "capsule: refused to {what} {addr}: allow it with --allow-outbound {rule}"
        ));
        false
    }

    /// Whether the container reaches `addr` by `scheme`: on its networks, or granted.
    fn reaches(&self, scheme: &str, addr: SocketAddr) -> bool {
        if self.on_my_networks(addr.ip()) {
            return true;
        }
        if self
            .allow
            .allows(scheme, &addr.ip().to_string(), addr.port())
        {
            return true;
        }
        let learned = self
            .learned
            .lock()
            .ok()
            .and_then(|l| l.get(&addr.ip()).cloned());
        learned.is_some_and(|name| self.allow.allows(scheme, &name, addr.port()))
    }

    /// Whether an outgoing HTTP request to `scheme://host:port` is allowed; a refusal
    /// is logged.
    pub fn allows_request(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.route_request(scheme, host, port).is_some()
    }

    /// Where an outgoing HTTP request to `scheme://host:port` may go: `None` when it is
    /// refused (and logged); else the addresses of the peers on the container's
    /// networks that `host` names (empty: connect to `host` as written — an address,
    /// or a name the host's resolver answers).
    pub fn route_request(&self, scheme: &str, host: &str, port: u16) -> Option<Vec<IpAddr>> {
        let literal = crate::net::allow::address_literal(host);
        if literal.is_none()
            && !self.networks.is_empty()
            && let Some(peers) = self.lookup_on_networks(host)
            && !peers.is_empty()
        {
            return Some(peers);
        }
        if self.host
            || self.allow.allows(scheme, host, port)
            || literal.is_some_and(|ip| self.on_my_networks(ip))
        {
            return Some(Vec::new());
        }
        self.refused(&format!(
            "capsule: refused the request to {scheme}://{host}:{port}: allow it with --allow-outbound {scheme}://{host}:{port}"
        ));
        None
    }

    fn lookup_on_networks(&self, name: &str) -> Option<Vec<IpAddr>> {
        let home = self.home.as_ref()?;
        let home = crate::home::Home::at(home.clone());
        Some(crate::container::networks::resolve(
            &home,
            &self.networks,
            name,
        ))
    }

    /// What the guest's lookup of `name` gives. An address literal is the caller's to
    /// parse; names of the container's networks come first, then names the allow-list
    /// grants (through the host's resolver, whose answers are remembered so that a
    /// connect to them is allowed), then, with `--network host`, any name.
    pub fn lookup(&self, name: &str) -> Lookup {
        let name = name.trim_end_matches('.');
        if let Some(found) = self.lookup_on_networks(name)
            && !found.is_empty()
        {
            return Lookup::Found(found);
        }
        if self.host || self.allow.names(name) {
            use std::net::ToSocketAddrs;
            let found: Vec<IpAddr> = match (name, 0).to_socket_addrs() {
                Ok(addrs) => addrs.map(|a| a.ip().to_canonical()).collect(),
                Err(_) => Vec::new(),
            };
            if let Ok(mut learned) = self.learned.lock() {
                for ip in &found {
                    learned.insert(*ip, name.to_ascii_lowercase());
                }
            }
            return if found.is_empty() {
                Lookup::Unknown
            } else {
                Lookup::Found(found)
            };
        }
        if self.networks.is_empty() {
            self.refused(&format!(
                "capsule: refused to look up {name}: allow it with --allow-outbound tcp://{name}:PORT, or join its network with --network NAME"
            ));
            Lookup::Refused
        } else {
            let on: Vec<&str> = self.networks.iter().map(|a| a.network.as_str()).collect();
            self.refused(&format!(
                "capsule: cannot resolve {name}: no container of that name or alias on network {}",
                on.join(", ")
            ));
            Lookup::Unknown
        }
    }

    fn refused(&self, line: &str) {
        use wasmtime_wasi::p2::OutputStream;
        let mut log = self.log.clone();
        let _ = log.write(bytes::Bytes::from(format!("{line}\n")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::network::Subnet;
    use crate::wasi::p1::stdio::{Capture, Output};
    use std::net::Ipv4Addr;

    fn gate(networks: &[(&str, &str, [u8; 4])], outbound: &[&str]) -> (Gate, Capture) {
        let mut spec = crate::spec::RunSpec::new("t");
        spec.limits.outbound = outbound.iter().map(|r| (*r).to_owned()).collect();
        spec.networks = networks
            .iter()
            .map(|(name, subnet, ip)| Attachment {
                network: (*name).to_owned(),
                subnet: subnet.parse::<Subnet>().expect("subnet"),
                address: Ipv4Addr::from(*ip),
                aliases: Vec::new(),
            })
            .collect();
        let buf = Capture::default();
        let log = SharedOutput::new(Output::Capture {
            buf: buf.clone(),
            limit: 1 << 20,
        });
        (Gate::new(&spec, log), buf)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    fn log(buf: &Capture) -> String {
        String::from_utf8(buf.contents()).expect("utf-8")
    }

    #[test]
    fn a_container_listens_only_on_its_own_network_address() {
        let (g, buf) = gate(&[("app", "127.70.1.0/24", [127, 70, 1, 5])], &[]);
        // 0.0.0.0:P is bound on its address; that, and only that, is allowed.
        let bound = g.bind_address(addr("0.0.0.0:5432"));
        assert_eq!(bound, addr("127.70.1.5:5432"));
        assert!(g.allows(bound, SocketAddrUse::TcpBind));
        assert!(g.allows(bound, SocketAddrUse::TcpListen));
        assert!(g.allows(addr("127.70.1.5:53"), SocketAddrUse::UdpBind));
        // A peer's address, the host's loopback, another network: refused and logged.
        for other in [
            "127.70.1.6:5432",
            "127.0.0.1:5432",
            "127.71.1.5:5432",
            "[::1]:5432",
        ] {
            assert_eq!(g.bind_address(addr(other)), addr(other), "left as asked");
            assert!(!g.allows(addr(other), SocketAddrUse::TcpBind), "{other}");
        }
        assert!(!g.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
        assert!(log(&buf).contains("capsule: refused to listen on 127.0.0.1:5432"));
        // The implicit bind before a connect is the connect's question.
        assert!(g.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        // Without a network, nothing is bound anywhere.
        let (none, buf) = gate(&[], &[]);
        assert_eq!(none.bind_address(addr("0.0.0.0:80")), addr("0.0.0.0:80"));
        assert!(!none.allows(addr("0.0.0.0:80"), SocketAddrUse::TcpBind));
        assert!(log(&buf).contains("listens only on its published ports"));
    }

    #[test]
    fn connects_reach_the_networks_and_the_allow_list_only() {
        let (g, buf) = gate(
            &[("app", "127.70.1.0/24", [127, 70, 1, 5])],
            &["tcp://10.0.0.0/8:443", "udp://127.0.0.53:53"],
        );
        assert!(g.allows(addr("127.70.1.9:80"), SocketAddrUse::TcpConnect));
        assert!(g.allows(addr("[::ffff:127.70.1.9]:80"), SocketAddrUse::TcpConnect));
        assert!(g.allows(addr("10.1.2.3:443"), SocketAddrUse::TcpConnect));
        assert!(!g.allows(addr("10.1.2.3:80"), SocketAddrUse::TcpConnect));
        assert!(g.allows(addr("127.0.0.53:53"), SocketAddrUse::UdpSend));
        assert!(!g.allows(addr("127.0.0.53:53"), SocketAddrUse::TcpConnect));
        assert!(!g.allows(addr("127.70.2.9:80"), SocketAddrUse::TcpConnect));
        assert!(!g.allows(addr("127.0.0.1:80"), SocketAddrUse::UdpReceive));
        let log = log(&buf);
        assert!(log.contains(
            "capsule: refused to connect to 127.70.2.9:80: allow it with --allow-outbound tcp://127.70.2.9:80"
        ));
        // A dropped datagram is not logged (a peer could flood the log).
        assert!(!log.contains("receive"), "{log}");
    }

    #[test]
    fn names_resolve_from_the_allow_list_and_connects_to_them_follow_the_rule() {
        let (g, buf) = gate(&[], &["tcp://localhost:8000"]);
        let Lookup::Found(found) = g.lookup("localhost") else {
            panic!("localhost is granted");
        };
        let v4 = found
            .iter()
            .find(|ip| ip.is_ipv4())
            .expect("an IPv4 address");
        assert!(g.allows(SocketAddr::new(*v4, 8000), SocketAddrUse::TcpConnect));
        assert!(!g.allows(SocketAddr::new(*v4, 8001), SocketAddrUse::TcpConnect));
        assert_eq!(g.lookup("example.invalid"), Lookup::Refused);
        assert!(log(&buf).contains(
            "capsule: refused to look up example.invalid: allow it with --allow-outbound tcp://example.invalid:PORT"
        ));
        // With --network host, everything (no lookups here: the answer is the host's).
        let mut spec = crate::spec::RunSpec::new("t");
        spec.limits.network_host = true;
        let host = Gate::new(
            &spec,
            SharedOutput::new(Output::Capture {
                buf: Capture::default(),
                limit: 0,
            }),
        );
        assert!(host.allows(addr("127.0.0.1:22"), SocketAddrUse::TcpBind));
        assert_eq!(host.bind_address(addr("0.0.0.0:80")), addr("0.0.0.0:80"));
    }
}
