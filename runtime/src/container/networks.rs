//! Containers and networks: the rule every command that removes networks (`network
//! rm`, `network prune`, `compose down`) applies — a network is in use while any
//! container, running or stopped, is on it — the addresses given to a new container
//! (under the networks' lock, so two containers never get the same one), and the names
//! a container's guest resolves (its peers' names and aliases on its networks).

use crate::home::Home;
use crate::net::network::{
    Attachment, NetworkError, NetworkRequest, Networks, NetworksLock, free_address,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// The containers of a home by network: name → (container name, attachment).
fn members(home: &Home) -> HashMap<String, Vec<(String, Attachment)>> {
    let mut members: HashMap<String, Vec<(String, Attachment)>> = HashMap::new();
    for container in super::Container::list(home) {
        for attachment in container.config.spec.iter().flat_map(|s| &s.networks) {
            members
                .entry(attachment.network.clone())
                .or_default()
                .push((container.config.name.clone(), attachment.clone()));
        }
    }
    members
}

/// The names of the containers on network `name`.
pub fn users(home: &Home, name: &str) -> Vec<String> {
    members(home)
        .remove(name)
        .unwrap_or_default()
        .into_iter()
        .map(|(container, _)| container)
        .collect()
}

/// The containers on network `name`, with their attachments (`network inspect`).
pub fn containers_on(home: &Home, name: &str) -> Vec<(String, Attachment)> {
    let mut on = members(home).remove(name).unwrap_or_default();
    on.sort_by(|a, b| a.0.cmp(&b.0));
    on
}

/// Removes a network unless a container is on it.
///
/// # Errors
/// [`NetworkError::InUse`] naming a container on it, [`NetworkError::NotFound`],
/// the host's error.
pub fn remove(home: &Home, networks: &Networks, name: &str) -> Result<String, NetworkError> {
    let lock = networks.lock()?;
    let network = networks.get(name)?;
    if let Some(container) = users(home, &network.name).first() {
        return Err(NetworkError::InUse {
            name: network.name,
            container: container.clone(),
        });
    }
    networks.remove(&lock, &network.name)?;
    Ok(network.name)
}

/// Removes every network no container is on, those `keep` does not keep; returns
/// their names.
///
/// # Errors
/// The host's error taking the lock; a network that cannot be removed is skipped.
pub fn prune(
    home: &Home,
    networks: &Networks,
    keep: &dyn Fn(&crate::net::network::Network) -> bool,
) -> Result<Vec<String>, NetworkError> {
    let lock = networks.lock()?;
    let members = members(home);
    let mut removed = Vec::new();
    for network in networks.list() {
        if members.contains_key(&network.name) || keep(&network) {
            continue;
        }
        match networks.remove(&lock, &network.name) {
            Ok(()) => removed.push(network.name),
            Err(e) => tracing::warn!(network = %network.name, error = %e, "cannot remove network"),
        }
    }
    Ok(removed)
}

/// The addresses of a new container on the networks it asks for, given under the
/// networks' lock; the caller records them in the container's spec before it drops
/// the returned lock.
///
/// # Errors
/// [`NetworkError::NotFound`] for a network that does not exist,
/// [`NetworkError::Full`], the host's error.
pub fn attach(
    home: &Home,
    requests: &[NetworkRequest],
) -> Result<(Vec<Attachment>, Option<NetworksLock>), NetworkError> {
    if requests.is_empty() {
        return Ok((Vec::new(), None));
    }
    let networks = Networks::open(home)?;
    let lock = networks.lock()?;
    let members = members(home);
    let mut attachments: Vec<Attachment> = Vec::new();
    for request in requests {
        let network = networks.get(&request.name)?;
        if attachments.iter().any(|a| a.network == network.name) {
            continue;
        }
        let used: Vec<Ipv4Addr> = members
            .get(&network.name)
            .into_iter()
            .flatten()
            .map(|(_, a)| a.address)
            .collect();
        let address = free_address(&network, &used)?;
        // The host must have the address: every 127/8 address is loopback on Linux
        // and Windows; macOS has only 127.0.0.1 unless an alias is added.
        if let Err(e) = std::net::TcpListener::bind((address, 0)) {
            return Err(NetworkError::NoAddress {
                network: network.name.clone(),
                address,
                reason: e.to_string(),
            });
        }
        attachments.push(Attachment {
            network: network.name.clone(),
            subnet: network.subnet,
            address,
            aliases: request.aliases.clone(),
        });
    }
    Ok((attachments, Some(lock)))
}

/// What `name` resolves to for a guest on the networks `on` (a container reaches
/// itself by its own name too): the addresses of the containers on those networks named
/// `name` (their name, an alias, or a prefix of their ID of at least 12 digits), in the
/// order of `on`. Reads the containers' configs only: a lookup changes nothing.
pub fn resolve(home: &Home, on: &[Attachment], name: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    let configs = super::Container::configs(home);
    for mine in on {
        for config in &configs {
            let Some(spec) = &config.spec else { continue };
            for theirs in spec.networks.iter().filter(|a| a.network == mine.network) {
                let id_match = name.len() >= 12 && config.id.starts_with(name);
                if config.name == name || id_match || theirs.aliases.iter().any(|a| a == name) {
                    let ip = IpAddr::V4(theirs.address);
                    if !found.contains(&ip) {
                        found.push(ip);
                    }
                }
            }
        }
    }
    found
}
