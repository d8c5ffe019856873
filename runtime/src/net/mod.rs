//! Published ports: `-p [IP:]HOST_PORT:CONTAINER_PORT[/tcp]` and `-P`, and the host
//! listeners behind them.
//!
//! A container has no network of its own and no way to open a socket: the only sockets
//! it ever holds are the listeners the host binds here, before the guest starts, and
//! the connections accepted on them ([`crate::wasi::p1`] hands them to the guest as
//! preopened descriptors). Binding defaults to `127.0.0.1`: a published port is
//! reachable from this machine only, unless the user names another address
//! (`0.0.0.0` exposes it to every network the host is on).

pub mod allow;
pub mod forward;
pub mod network;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

/// The address a port is published on when `-p` names none.
pub const DEFAULT_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Errors of port specs and listeners.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "invalid port spec '{spec}': {reason} (expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp], e.g. 8000:8000 or 127.0.0.1:8080:80)"
    )]
    Spec { spec: String, reason: String },
    #[error(
        "cannot publish {addr}: the port is already in use on the host (pick another host port, e.g. -p {other}:{container_port}, or stop what uses it)"
    )]
    InUse {
        addr: SocketAddr,
        other: u16,
        container_port: u16,
    },
    #[error(
        "{addr} is published twice (-p {port}:{first} and -p {port}:{second}): a host port takes one -p"
    )]
    Twice {
        addr: SocketAddr,
        port: u16,
        first: u16,
        second: u16,
    },
    #[error("cannot publish {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A `-p` flag as given: the host port is 0 for "any free port".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

/// A published port as recorded in a container's spec: the host address is fixed once
/// the container is created (an ephemeral port is chosen then), so `start` and restarts
/// bind the same address again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortBinding {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    /// Whether the host port was chosen by Capsule (`-P`, or `-p CONTAINER_PORT`).
    #[serde(default)]
    pub ephemeral: bool,
}

impl PortBinding {
    /// The host address to bind.
    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host_ip, self.host_port)
    }

    /// Docker's key for the container side: `8000/tcp`.
    pub fn container_key(&self) -> String {
        format!("{}/tcp", self.container_port)
    }

    /// The host side as Docker prints it: `127.0.0.1:8000`, `[::1]:8000`.
    pub fn host_text(&self) -> String {
        self.host_addr().to_string()
    }

    /// `ps`'s PORTS entry: `127.0.0.1:8000->8000/tcp`.
    pub fn ps_text(&self) -> String {
        format!("{}->{}", self.host_text(), self.container_key())
    }
}

fn spec_error(spec: &str, reason: impl Into<String>) -> NetError {
    NetError::Spec {
        spec: spec.to_owned(),
        reason: reason.into(),
    }
}

fn parse_port(spec: &str, text: &str, what: &str, zero_ok: bool) -> Result<u16, NetError> {
    if text.contains('-') {
        return Err(spec_error(spec, "port ranges are not supported"));
    }
    match text.parse::<u16>() {
        Ok(0) if !zero_ok => Err(spec_error(spec, format!("{what} 0 is not a port"))),
        Ok(port) => Ok(port),
        Err(_) => Err(spec_error(
            spec,
            format!("{what} '{text}' is not a number from 1 to 65535"),
        )),
    }
}

impl PortRequest {
    /// Parses Docker's `-p`: `CONTAINER_PORT`, `HOST_PORT:CONTAINER_PORT`,
    /// `IP:HOST_PORT:CONTAINER_PORT`, `IP::CONTAINER_PORT` (an IPv6 address in
    /// brackets), each optionally with `/tcp`.
    ///
    /// # Errors
    /// [`NetError::Spec`] naming what is wrong.
    pub fn parse(spec: &str) -> Result<Self, NetError> {
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((rest, proto)) => (rest, proto),
            None => (spec, "tcp"),
        };
        match proto {
            "tcp" => {}
            "udp" | "sctp" => {
                return Err(spec_error(
                    spec,
                    format!("only tcp ports can be published ({proto} is not supported)"),
                ));
            }
            other => return Err(spec_error(spec, format!("unknown protocol '{other}'"))),
        }
        // An IPv6 address is written in brackets: [::1]:8000:80.
        let (ip, ports) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, ports) = after
                .split_once("]:")
                .ok_or_else(|| spec_error(spec, "an IPv6 address in [ ] must be followed by :"))?;
            let ip = ip
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| spec_error(spec, format!("'{ip}' is not an IPv6 address")))?;
            (Some(IpAddr::V6(ip)), ports)
        } else {
            match rest.matches(':').count() {
                0 | 1 => (None, rest),
                2 => {
                    let (ip, ports) = rest.split_once(':').unwrap_or(("", rest));
                    let ip = ip
                        .parse::<IpAddr>()
                        .map_err(|_| spec_error(spec, format!("'{ip}' is not an IP address")))?;
                    (Some(ip), ports)
                }
                _ => return Err(spec_error(spec, "too many ':'")),
            }
        };
        let (host_port, container_port) = match ports.split_once(':') {
            Some((host, container)) => {
                let host = if host.is_empty() && ip.is_some() {
                    0
                } else {
                    parse_port(spec, host, "host port", false)?
                };
                (host, parse_port(spec, container, "container port", false)?)
            }
            None if ip.is_some() => return Err(spec_error(spec, "missing the container port")),
            None => (0, parse_port(spec, ports, "container port", false)?),
        };
        Ok(Self {
            host_ip: ip.unwrap_or(DEFAULT_HOST_IP),
            host_port,
            container_port,
        })
    }
}

/// Parses an image's `EXPOSE` entry (`8000/tcp`, `8000`, a range `8000-8010/tcp`, as
/// Docker's `nat.ParsePortRange`) into the TCP ports `-P` publishes.
///
/// # Errors
/// Why the entry cannot be published: another protocol (Capsule publishes TCP only), or
/// not a port.
pub fn exposed_ports(entry: &str) -> Result<Vec<u16>, String> {
    let (ports, proto) = entry.split_once('/').unwrap_or((entry, "tcp"));
    let port = |text: &str| text.parse::<u16>().ok().filter(|p| *p != 0);
    let range = match ports.split_once('-') {
        Some((first, last)) => port(first).zip(port(last)).filter(|(a, b)| a <= b),
        None => port(ports).map(|p| (p, p)),
    };
    let Some((first, last)) = range else {
        return Err(format!(
            "the image exposes '{entry}', which is not a port or a range of ports"
        ));
    };
    if !proto.eq_ignore_ascii_case("tcp") {
        return Err(format!(
            "the image exposes {entry}: only TCP ports can be published ({proto} is not supported), so -P leaves it out"
        ));
    }
    Ok((first..=last).collect())
}

/// Checks `requests` (and `-P`'s `exposed` container ports, on ephemeral ports of
/// `127.0.0.1`) against the host: each address must be free, and an ephemeral port is
/// chosen now. Returns the bindings to record. Nothing stays bound.
///
/// # Errors
/// [`NetError::InUse`] for a port already in use (a host address given twice
/// included), [`NetError::Bind`] for another refusal (an address the host does not
/// have).
pub fn allocate(requests: &[PortRequest], exposed: &[u16]) -> Result<Vec<PortBinding>, NetError> {
    // The same host address twice is the user's slip, not a port in use.
    for (i, a) in requests.iter().enumerate() {
        if a.host_port == 0 {
            continue;
        }
        if let Some(b) = requests[i + 1..]
            .iter()
            .find(|b| b.host_port == a.host_port && b.host_ip == a.host_ip)
        {
            return Err(NetError::Twice {
                addr: SocketAddr::new(a.host_ip, a.host_port),
                port: a.host_port,
                first: a.container_port,
                second: b.container_port,
            });
        }
    }
    let mut bindings: Vec<PortBinding> = Vec::new();
    let mut held = Vec::new();
    let mut all: Vec<PortRequest> = requests.to_vec();
    for port in exposed {
        if !all.iter().any(|r| r.container_port == *port) {
            all.push(PortRequest {
                host_ip: DEFAULT_HOST_IP,
                host_port: 0,
                container_port: *port,
            });
        }
    }
    for request in all {
        let listener = bind_addr(
            SocketAddr::new(request.host_ip, request.host_port),
            request.container_port,
        )?;
        let actual = listener
            .local_addr()
            .map_err(|source| NetError::Bind {
                addr: SocketAddr::new(request.host_ip, request.host_port),
                source,
            })?
            .port();
        bindings.push(PortBinding {
            host_ip: request.host_ip,
            host_port: actual,
            container_port: request.container_port,
            ephemeral: request.host_port == 0,
        });
        // Held until all are checked, so two ephemeral ports differ.
        held.push(listener);
    }
    Ok(bindings)
}

fn bind_addr(addr: SocketAddr, container_port: u16) -> Result<TcpListener, NetError> {
    TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            NetError::InUse {
                addr,
                other: addr.port().wrapping_add(1).max(1024),
                container_port,
            }
        } else {
            NetError::Bind { addr, source }
        }
    })
}

/// A bound listener for one published port, handed to the guest.
#[derive(Debug)]
pub struct Listener {
    pub binding: PortBinding,
    pub socket: TcpListener,
}

/// Binds every published port, in order.
///
/// # Errors
/// As [`allocate`]; nothing stays bound after an error.
pub fn bind(ports: &[PortBinding]) -> Result<Vec<Listener>, NetError> {
    ports
        .iter()
        .map(|binding| {
            let socket = bind_addr(binding.host_addr(), binding.container_port)?;
            socket
                .set_nonblocking(true)
                .map_err(|source| NetError::Bind {
                    addr: binding.host_addr(),
                    source,
                })?;
            Ok(Listener {
                binding: *binding,
                socket,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortRequest {
        PortRequest::parse(s).expect("a valid spec")
    }

    #[test]
    fn parses_docker_forms() {
        assert_eq!(
            p("8000:80"),
            PortRequest {
                host_ip: DEFAULT_HOST_IP,
                host_port: 8000,
                container_port: 80
            }
        );
        assert_eq!(p("80").host_port, 0);
        assert_eq!(p("80/tcp").container_port, 80);
        let all = p("0.0.0.0:8080:80");
        assert_eq!(all.host_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!((all.host_port, all.container_port), (8080, 80));
        assert_eq!(p("127.0.0.1::80").host_port, 0);
        let v6 = p("[::1]:8000:80");
        assert_eq!(v6.host_ip, "::1".parse::<IpAddr>().expect("an address"));
    }

    #[test]
    fn refuses_bad_specs() {
        for bad in [
            "",
            "x",
            "80/udp",
            "0",
            "70000:80",
            "a:b:c:d",
            "8000-8010:80",
            "1.2.3:80:80",
            ":80",
            "80:",
            "[::1]80",
        ] {
            let err = PortRequest::parse(bad).expect_err("refused").to_string();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
    }

    #[test]
    fn exposed_entries() {
        assert_eq!(exposed_ports("8000/tcp"), Ok(vec![8000]));
        assert_eq!(exposed_ports("8000"), Ok(vec![8000]));
        assert_eq!(exposed_ports("8000-8002/tcp"), Ok(vec![8000, 8001, 8002]));
        assert!(exposed_ports("8002-8000/tcp").is_err());
        assert!(exposed_ports("0/tcp").is_err());
        assert!(exposed_ports("53/udp").is_err_and(|e| e.contains("udp")));
        assert!(exposed_ports("x").is_err());
    }

    #[test]
    fn allocate_finds_a_port_in_use() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let err = allocate(&[p(&format!("{port}:80"))], &[]).expect_err("in use");
        assert!(matches!(err, NetError::InUse { .. }), "{err}");
        let ok = allocate(&[p("80")], &[81]).expect("free ports");
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(|b| b.ephemeral && b.host_port != 0));
        assert_ne!(ok[0].host_port, ok[1].host_port);
        assert!(bind(&ok).is_ok());
    }
}
