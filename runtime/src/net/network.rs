//! User-defined networks without namespaces: `$CAPSULE_HOME/networks/NAME.json` holds a
//! network's metadata, above all its subnet — a /24 of the loopback range
//! (`127.A.B.0/24`, chosen at random among 16,384 so that two homes on one machine
//! rarely meet). Each container on a network gets an address there ([`Attachment`]);
//! its listeners are bound on that address, and containers of the same network reach
//! it by name (see [`crate::wasi::p2::network`], the one gate a guest's sockets pass).
//!
//! Every change to the set of networks, and every address given to a container, happens
//! under one lock, `networks/.lock`: two `run --network n` at once never get the same
//! address, and `network rm` never removes a network a container being created joins.
//! A network appears whole or not at all (written to a temporary file, then renamed).

use crate::home::Home;
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// The lock every change to the networks is made under.
const LOCK: &str = ".lock";

/// The networks every home has: `none` (the default, nothing) and `host` (the host's
/// network, everything): as Docker's, they cannot be created or removed.
pub const PREDEFINED: [&str; 2] = ["none", "host"];

/// A /24 of the loopback range: `127.A.B.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet(Ipv4Addr);

impl Subnet {
    /// The network's own address, `127.A.B.0`.
    pub fn base(&self) -> Ipv4Addr {
        self.0
    }

    /// Whether `ip` is in the subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(ip) => ip,
                None => return false,
            },
        };
        ip.octets()[..3] == self.0.octets()[..3]
    }

    /// The `n`th host address (`127.A.B.n`).
    pub fn host(&self, n: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.0.octets();
        Ipv4Addr::new(a, b, c, n)
    }

    /// The gateway Docker would show: the first host address (nothing listens there).
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/24", self.0)
    }
}

impl std::str::FromStr for Subnet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a loopback /24 (127.A.B.0/24)");
        let (ip, prefix) = text.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let [a, _, _, d] = ip.octets();
        if prefix != "24" || a != 127 || d != 0 {
            return Err(bad());
        }
        Ok(Self(ip))
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A network's metadata (`NAME.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    pub subnet: Subnet,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Network {
    /// Docker's driver column: Capsule's networks live on the loopback interface.
    pub const DRIVER: &'static str = "loopback";

    /// The short ID `network ls` prints.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// A container's place on a network, as its config and run spec record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    pub subnet: Subnet,
    /// The container's address on it: its listeners are bound there.
    pub address: Ipv4Addr,
    /// `--network-alias` (compose: the service's name): names it is reached by besides
    /// its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// `--network NAME` with its `--network-alias`es, before an address is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkRequest {
    pub name: String,
    pub aliases: Vec<String>,
}

/// Errors creating, finding or removing networks.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "invalid network name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 128 characters"
    )]
    InvalidName(String),
    #[error("network {0} already exists (capsule network ls lists them)")]
    Exists(String),
    #[error(
        "{0} is a pre-defined network: it cannot be created or removed (create one with another name)"
    )]
    Predefined(String),
    #[error(
        "no such network: {0} (capsule network ls lists them; capsule network create {0} makes it)"
    )]
    NotFound(String),
    #[error(
        "network {name} is in use by container {container}: remove the container first (capsule rm -f {container})"
    )]
    InUse { name: String, container: String },
    #[error(
        "network {0} is full: its 253 addresses are given to containers (remove some, or use another network)"
    )]
    Full(String),
    #[error(
        "no free loopback subnet left for a new network: remove unused networks (capsule network prune)"
    )]
    NoSubnet,
    #[error(
        "network {0} is damaged (its file is unreadable): remove {0}.json from the networks directory"
    )]
    Damaged(String),
    /// The host has no such loopback address (macOS has only 127.0.0.1 unless told).
    #[error(
        "this host has no loopback address {address} for network {network} ({reason}): add it (macOS: sudo ifconfig lo0 alias {address} up), or publish ports instead (-p)"
    )]
    NoAddress {
        network: String,
        address: std::net::Ipv4Addr,
        reason: String,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetworkError {
    let what = what.into();
    move |source| NetworkError::Io { what, source }
}

/// Whether `name` may name a network or be an alias on one: letters, digits, `_`, `.`
/// and `-`, starting with a letter or digit, at most 128 characters (Docker's rule).
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 128
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The networks of a home.
#[derive(Debug)]
pub struct Networks {
    root: PathBuf,
    dir: Dir,
}

/// Proof that this process holds the networks' lock (released when dropped).
#[derive(Debug)]
pub struct NetworksLock(#[allow(dead_code)] std::fs::File);

impl Networks {
    /// The networks of `home` (`networks/` is created when missing).
    ///
    /// # Errors
    /// The host's error.
    pub fn open(home: &Home) -> Result<Self, NetworkError> {
        let root = home.root().join("networks");
        let dir = crate::ambient::create_and_open_dir(&root)
            .map_err(io_error(format!("cannot open {}", root.display())))?;
        Ok(Self { root, dir })
    }

    /// Where the networks are kept.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Takes the lock every change to the networks is made under (waiting for it).
    ///
    /// # Errors
    /// The host's error.
    pub fn lock(&self) -> Result<NetworksLock, NetworkError> {
        crate::store::lock_exclusive(&self.dir, LOCK)
            .map(NetworksLock)
            .map_err(io_error("cannot lock the networks"))
    }

    /// The network named `name`, or whose ID starts with `name`.
    ///
    /// # Errors
    /// [`NetworkError::NotFound`], [`NetworkError::Damaged`].
    pub fn get(&self, name: &str) -> Result<Network, NetworkError> {
        if valid_name(name) {
            match self.dir.read_to_string(format!("{name}.json")) {
                Ok(text) => {
                    return serde_json::from_str::<Network>(&text)
                        .ok()
                        .filter(|n| n.name == name)
                        .ok_or_else(|| NetworkError::Damaged(name.to_owned()));
                }
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error(format!("cannot read network {name}"))(e));
                }
                Err(_) => {}
            }
        }
        let by_id: Vec<Network> = if name.len() >= 3 && name.bytes().all(|b| b.is_ascii_hexdigit())
        {
            self.list()
                .into_iter()
                .filter(|n| n.id.starts_with(name))
                .collect()
        } else {
            Vec::new()
        };
        match <[Network; 1]>::try_from(by_id) {
            Ok([network]) => Ok(network),
            Err(_) => Err(NetworkError::NotFound(name.to_owned())),
        }
    }

    /// Every network, by name (damaged files left out).
    pub fn list(&self) -> Vec<Network> {
        let Ok(entries) = self.dir.entries() else {
            return Vec::new();
        };
        let mut out: Vec<Network> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|file| file.strip_suffix(".json").map(str::to_owned))
            .filter(|name| valid_name(name))
            .filter_map(|name| {
                let text = self.dir.read_to_string(format!("{name}.json")).ok()?;
                serde_json::from_str::<Network>(&text)
                    .ok()
                    .filter(|n| n.name == name)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Creates the network `name` with a free loopback subnet.
    ///
    /// # Errors
    /// [`NetworkError::InvalidName`], [`NetworkError::Predefined`],
    /// [`NetworkError::Exists`], [`NetworkError::NoSubnet`], the host's error.
    pub fn create(
        &self,
        _lock: &NetworksLock,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Network, NetworkError> {
        if PREDEFINED.contains(&name) {
            return Err(NetworkError::Predefined(name.to_owned()));
        }
        if !valid_name(name) {
            return Err(NetworkError::InvalidName(name.to_owned()));
        }
        if self.dir.symlink_metadata(format!("{name}.json")).is_ok() {
            return Err(NetworkError::Exists(name.to_owned()));
        }
        let taken: Vec<Subnet> = self.list().iter().map(|n| n.subnet).collect();
        let subnet = free_subnet(&taken)?;
        let network = Network {
            name: name.to_owned(),
            id: random_id().map_err(io_error(format!("cannot create network {name}")))?,
            created: crate::image::oci::rfc3339(crate::time::now()),
            subnet,
            labels,
        };
        let json = serde_json::to_vec_pretty(&network)
            .map_err(|e| io_error(format!("cannot create network {name}"))(io::Error::other(e)))?;
        crate::store::write_atomically(&self.dir, &format!("{name}.json"), &json)
            .map_err(io_error(format!("cannot create network {name}")))?;
        Ok(network)
    }

    /// Removes a network. Whether a container is on it is the caller's question
    /// ([`crate::container::networks::remove`] asks it).
    ///
    /// # Errors
    /// [`NetworkError::NotFound`], [`NetworkError::Predefined`], the host's error.
    pub fn remove(&self, _lock: &NetworksLock, name: &str) -> Result<(), NetworkError> {
        if PREDEFINED.contains(&name) {
            return Err(NetworkError::Predefined(name.to_owned()));
        }
        let network = self.get(name)?;
        self.dir
            .remove_file(format!("{}.json", network.name))
            .map_err(io_error(format!("cannot remove network {name}")))
    }
}

/// 64 random hex digits.
fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A random loopback /24 in 127.64.0.0–127.127.255.0 that `taken` does not hold.
fn free_subnet(taken: &[Subnet]) -> Result<Subnet, NetworkError> {
    const FIRST: u32 = 64 << 8;
    const COUNT: u32 = 64 << 8;
    let mut seed = [0u8; 4];
    getrandom::fill(&mut seed)
        .map_err(|e| io_error("cannot pick a subnet")(io::Error::other(e.to_string())))?;
    let start = u32::from_le_bytes(seed) % COUNT;
    (0..COUNT)
        .map(|i| FIRST + (start + i) % COUNT)
        .map(|n| {
            let [_, _, a, b] = n.to_be_bytes();
            Subnet(Ipv4Addr::new(127, a, b, 0))
        })
        .find(|s| !taken.contains(s))
        .ok_or(NetworkError::NoSubnet)
}

/// The first free host address of `subnet` (`.2` to `.254`; `.1` is the gateway) that
/// `used` does not hold.
pub fn free_address(network: &Network, used: &[Ipv4Addr]) -> Result<Ipv4Addr, NetworkError> {
    (2..=254)
        .map(|n| network.subnet.host(n))
        .find(|ip| !used.contains(ip))
        .ok_or_else(|| NetworkError::Full(network.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        for good in ["a", "db", "shop_default", "x.y-z", "A1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "-a", ".a", "../x", "a/b", "a b", &"a".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn subnets_are_loopback_24s() {
        let s: Subnet = "127.70.3.0/24".parse().expect("subnet");
        assert_eq!(s.to_string(), "127.70.3.0/24");
        assert!(s.contains("127.70.3.9".parse().expect("ip")));
        assert!(s.contains("::ffff:127.70.3.9".parse().expect("ip")));
        assert!(!s.contains("127.70.4.9".parse().expect("ip")));
        assert!(!s.contains("127.0.0.1".parse().expect("ip")));
        assert_eq!(s.gateway(), Ipv4Addr::new(127, 70, 3, 1));
        for bad in ["10.0.0.0/24", "127.0.0.0/16", "127.1.2.3/24", "x"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_subnet_avoids_taken_ones() {
        let mut taken = Vec::new();
        for _ in 0..200 {
            let s = free_subnet(&taken).expect("free");
            let [a, b, _, d] = s.base().octets();
            assert_eq!((a, d), (127, 0));
            assert!((64..128).contains(&b), "{s}");
            assert!(!taken.contains(&s));
            taken.push(s);
        }
    }

    #[test]
    fn addresses_skip_the_gateway_and_used_ones() {
        let network = Network {
            name: "n".into(),
            id: "0".repeat(64),
            created: String::new(),
            subnet: "127.80.1.0/24".parse().expect("subnet"),
            labels: BTreeMap::new(),
        };
        assert_eq!(
            free_address(&network, &[]).expect("ip"),
            Ipv4Addr::new(127, 80, 1, 2)
        );
        let used: Vec<Ipv4Addr> = (2..=254).map(|n| network.subnet.host(n)).collect();
        assert!(matches!(
            free_address(&network, &used),
            Err(NetworkError::Full(_))
        ));
    }
}
