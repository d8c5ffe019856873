//! The outbound allow-list (`--allow-outbound`), in Spin's `allowed_outbound_hosts`
//! syntax: `SCHEME://HOST:PORT`.
//!
//! - SCHEME: `tcp`, `udp`, `http`, `https`, any other name, or `*` for all;
//! - HOST: a name (`db`, `api.example.com`), `*.example.com` (its subdomains, not the
//!   name itself), an IPv4 or bracketed IPv6 address, a CIDR (`10.0.0.0/8`,
//!   `[fd00::]/8`), or `*` for every host;
//! - PORT: a number, a range (`8000..8080` as Spin writes it, or `8000-8080`), or `*`;
//!   `http` and `https` default to 80 and 443, other schemes must name one.
//!
//! Parsing refuses anything else with one line saying what is wrong. Matching is
//! deny-by-default: an empty list allows nothing. This module only decides; the
//! runtime's one gate (sockets, name lookups, outgoing HTTP) asks it.

use std::net::IpAddr;

/// A rule that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--allow-outbound {rule:?}: {reason} (write SCHEME://HOST:PORT, e.g. tcp://db:5432, https://*.example.com, tcp://10.0.0.0/8:*)"
)]
pub struct AllowError {
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Name(String),
    /// `*.example.com`: `.example.com`, matched as a suffix.
    Subdomains(String),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    Any,
    Range(u16, u16),
}

/// One `SCHEME://HOST:PORT` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None` for `*`.
    scheme: Option<String>,
    host: Host,
    ports: Ports,
    text: String,
}

/// The rules a container was given; an empty list allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule>,
}

impl std::str::FromStr for Rule {
    type Err = AllowError;

    fn from_str(text: &str) -> Result<Self, AllowError> {
        let fail = |reason: &str| AllowError {
            rule: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| fail("no scheme"))?;
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-'
                }) =>
            {
                Some(s.to_owned())
            }
            _ => return Err(fail("the scheme is not a lowercase name or *")),
        };
        if rest.contains('/') && !looks_like_cidr(rest) {
            return Err(fail("a rule names a host and a port, not a path"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| fail("no host"))?;
        let host = parse_host(host).map_err(|reason| fail(&reason))?;
        let ports = match (port, scheme.as_deref()) {
            (Some(port), _) => parse_ports(port).map_err(|reason| fail(&reason))?,
            (None, Some("http")) => Ports::Range(80, 80),
            (None, Some("https")) => Ports::Range(443, 443),
            (None, _) => return Err(fail("no port: name one, a range, or *")),
        };
        Ok(Rule {
            scheme,
            host,
            ports,
            text: text.to_owned(),
        })
    }
}

fn looks_like_cidr(rest: &str) -> bool {
    // `10.0.0.0/8:*`, `[fd00::]/8:443`: one slash, followed by digits.
    rest.split_once('/').is_some_and(|(_, after)| {
        after
            .split(':')
            .next()
            .is_some_and(|bits| !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// `host:port`, `[v6]:port`, `[v6]/bits:port`, or a host alone.
fn split_host_port(rest: &str) -> Option<(&str, Option<&str>)> {
    if rest.is_empty() {
        return None;
    }
    if rest.starts_with('[') {
        let close = rest.find(']')?;
        let after = &rest[close + 1..];
        // A CIDR's bits may follow the bracket.
        let (host_end, tail) = match after.strip_prefix('/') {
            Some(bits) => {
                let len = bits.find(':').unwrap_or(bits.len());
                (close + 2 + len, &bits[len..])
            }
            None => (close + 1, after),
        };
        let host = &rest[..host_end];
        return match tail.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if tail.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, Some(port))),
        Some(_) => None,
        None => Some((rest, None)),
    }
}

/// `host` as an address when it is an address literal: `10.0.0.1`, `::1` or `[::1]` (as
/// a URI or a rule writes an IPv6 address).
pub fn address_literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host == "*" {
        return Ok(Host::Any);
    }
    if let Some((addr, bits)) = host.split_once('/') {
        let addr: IpAddr =
            address_literal(addr).ok_or_else(|| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("/{bits} is not a prefix length of 0 to {max}"))?;
        return Ok(Host::Cidr(addr, bits));
    }
    if let Some(addr) = address_literal(host) {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(Host::Cidr(addr, bits));
    }
    if let Some(domain) = host.strip_prefix("*.") {
        check_name(domain)?;
        return Ok(Host::Subdomains(format!(
            ".{}",
            domain.to_ascii_lowercase()
        )));
    }
    if host.contains('*') {
        return Err("a wildcard stands alone (*) or leads a domain (*.example.com)".to_owned());
    }
    check_name(host)?;
    Ok(Host::Name(host.to_ascii_lowercase()))
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a host name"))
    }
}

fn parse_ports(port: &str) -> Result<Ports, String> {
    if port == "*" {
        return Ok(Ports::Any);
    }
    let number = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{s:?} is not a port (1 to 65535)"))
    };
    let range = port.split_once("..").or_else(|| port.split_once('-'));
    match range {
        Some((low, high)) => {
            let (low, high) = (number(low)?, number(high)?);
            if low > high {
                return Err(format!("the range {port} runs backwards"));
            }
            Ok(Ports::Range(low, high))
        }
        None => {
            let p = number(port)?;
            Ok(Ports::Range(p, p))
        }
    }
}

fn in_cidr(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    let to_bits = |a: IpAddr| match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32),
        IpAddr::V6(v6) => (u128::from(v6), 128u32),
    };
    // An IPv4 address written as IPv4-mapped IPv6 is the same host.
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let ((a, width), (n, net_width)) = (to_bits(addr), to_bits(net));
    if width != net_width {
        return false;
    }
    let bits = u32::from(bits);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (n >> shift)
}

impl Rule {
    fn scheme_matches(&self, scheme: &str) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
    }

    fn port_matches(&self, port: u16) -> bool {
        match self.ports {
            Ports::Any => true,
            Ports::Range(low, high) => (low..=high).contains(&port),
        }
    }

    /// Whether the rule allows `scheme` to `host` (a name or an address) on `port`.
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme_matches(scheme) && self.port_matches(port) && self.host_matches(host)
    }

    /// Whether the rule's host is `host` (a name or an address), whatever the scheme
    /// and port.
    fn host_matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match (&self.host, address_literal(&host)) {
            (Host::Any, _) => true,
            (Host::Cidr(net, bits), Some(addr)) => in_cidr(addr, *net, *bits),
            (Host::Name(name), None) => *name == host,
            (Host::Subdomains(suffix), None) => host.ends_with(suffix.as_str()),
            _ => false,
        }
    }

    /// The rule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl AllowList {
    /// Reads every rule; the first that cannot be read is the error.
    ///
    /// # Errors
    /// [`AllowError`] naming the rule and what is wrong with it.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Self, AllowError> {
        Ok(Self {
            rules: rules
                .iter()
                .map(|r| r.as_ref().parse())
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule that allows `scheme` to `host` (a name, or an address) on `port`, if
    /// one does.
    pub fn allowing(&self, scheme: &str, host: &str, port: u16) -> Option<&Rule> {
        self.rules.iter().find(|r| r.allows(scheme, host, port))
    }

    /// Whether any rule allows it.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.allowing(scheme, host, port).is_some()
    }

    /// Whether some rule names the host `name` (or a pattern it matches), on any
    /// scheme and port: the names a guest may look up.
    pub fn names(&self, name: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.host_matches(name) && !matches!(r.host, Host::Cidr(..)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> AllowList {
        AllowList::parse(rules).expect("the rules parse")
    }

    #[test]
    fn address_literals_are_bare_or_bracketed() {
        assert_eq!(
            address_literal("[::1]"),
            Some(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]))
        );
        assert_eq!(address_literal("::1"), address_literal("[::1]"));
        assert_eq!(
            address_literal("10.0.0.1"),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
        assert_eq!(address_literal("db"), None);
        assert_eq!(address_literal("[db]"), None);
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let empty = AllowList::default();
        assert!(empty.is_empty());
        assert!(!empty.allows("tcp", "127.0.0.1", 80));
    }

    #[test]
    fn names_a_guest_may_look_up_are_the_rules_hosts() {
        let l = list(&[
            "tcp://db:5432",
            "https://*.example.com",
            "tcp://10.0.0.0/8:*",
        ]);
        assert!(l.names("db"));
        assert!(l.names("DB."));
        assert!(l.names("api.example.com"));
        assert!(!l.names("example.com"));
        assert!(!l.names("other"));
        assert!(!AllowList::default().names("db"));
        assert!(list(&["*://*:*"]).names("anything"));
    }

    #[test]
    fn hosts_ports_and_schemes_each_allowed_and_refused() {
        let l = list(&["tcp://db:5432"]);
        assert!(l.allows("tcp", "db", 5432));
        assert!(
            l.allows("tcp", "DB.", 5432),
            "names compare without case or root dot"
        );
        assert!(!l.allows("tcp", "db", 5433), "another port");
        assert!(!l.allows("udp", "db", 5432), "another scheme");
        assert!(!l.allows("tcp", "db2", 5432), "another host");
    }

    #[test]
    fn wildcards_for_hosts_ports_and_schemes() {
        let l = list(&[
            "https://*.example.com",
            "tcp://cache:*",
            "*://10.1.0.0/16:8000..8080",
        ]);
        assert!(l.allows("https", "api.example.com", 443));
        assert!(l.allows("https", "a.b.example.com", 443));
        assert!(
            !l.allows("https", "example.com", 443),
            "*. is subdomains only"
        );
        assert!(
            !l.allows("https", "api.example.com", 80),
            "https defaults to 443"
        );
        assert!(!l.allows("https", "evilexample.com", 443));
        assert!(l.allows("tcp", "cache", 1) && l.allows("tcp", "cache", 65535));
        assert!(l.allows("udp", "10.1.200.3", 8000) && l.allows("tcp", "10.1.0.1", 8080));
        assert!(!l.allows("tcp", "10.2.0.1", 8000), "outside the CIDR");
        assert!(!l.allows("tcp", "10.1.0.1", 8081), "outside the range");
        assert!(
            l.allows("tcp", "::ffff:10.1.2.3", 8000),
            "IPv4-mapped IPv6 is the same host"
        );
    }

    #[test]
    fn addresses_and_ipv6() {
        let l = list(&[
            "tcp://127.0.0.1:9000",
            "tcp://[::1]:9000",
            "udp://[fd00::]/8:53",
        ]);
        assert!(l.allows("tcp", "127.0.0.1", 9000));
        assert!(l.allows("tcp", "::1", 9000) && l.allows("tcp", "[::1]", 9000));
        assert!(l.allows("udp", "fd12::1", 53));
        assert!(!l.allows("udp", "fe80::1", 53));
        assert!(
            !l.allows("tcp", "localhost", 9000),
            "an address rule matches addresses"
        );
        let any = list(&["*://*:*"]);
        assert!(any.allows("tcp", "anything", 1));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (rule, reason) in [
            ("db:5432", "no scheme"),
            ("tcp://db", "no port"),
            ("tcp://db:0", "not a port"),
            ("tcp://db:70000", "not a port"),
            ("tcp://db:9000..8000", "backwards"),
            ("tcp://a*b:1", "wildcard"),
            ("tcp://10.0.0.0/33:1", "prefix length"),
            ("http://example.com/path", "not a path"),
            ("TCP://db:1", "lowercase"),
            ("tcp://:1", "no host"),
            ("tcp://bad host:1", "not a host name"),
        ] {
            let err = AllowList::parse(&[rule]).expect_err(rule);
            assert!(err.to_string().contains(reason), "{rule}: {err}");
            assert!(err.to_string().contains("SCHEME://HOST:PORT"), "{err}");
        }
    }
}
