//! `capsule network create|ls|inspect|rm|prune`.

use super::{Failure, exit};
use capsule_runtime::container::networks as container_networks;
use capsule_runtime::home::Home;
use capsule_runtime::net::network::{Network, NetworkError, Networks, PREDEFINED};
use std::collections::BTreeMap;
use std::io::Write;

fn open() -> Result<(Home, Networks), Failure> {
    let home = super::container::home()?;
    let networks = Networks::open(&home).map_err(|e| Failure::new(exit::USAGE, e))?;
    Ok((home, networks))
}

fn failure(e: NetworkError) -> Failure {
    let code = match e {
        // As Docker's network verbs, an unknown, existing or busy network exits 1.
        NetworkError::NotFound(_) | NetworkError::InUse { .. } | NetworkError::Exists(_) => 1,
        _ => exit::USAGE,
    };
    Failure::new(code, e)
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Set a label on the network (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Only the loopback driver exists (bridge is accepted and means it, for Docker's
    /// scripts)
    #[arg(
        short = 'd',
        long = "driver",
        value_name = "DRIVER",
        default_value = "loopback"
    )]
    driver: String,
    /// The network's name
    name: String,
}

/// `network create NAME`: a network with a loopback subnet of its own.
pub fn create(args: &CreateArgs) -> Result<u8, Failure> {
    if !matches!(args.driver.as_str(), "loopback" | "bridge") {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!(
                "unknown network driver '{}': Capsule's networks use the loopback driver (bridge is accepted as its name)",
                args.driver
            ),
        ));
    }
    let labels = super::output::labels(&args.label)?;
    let (_, networks) = open()?;
    let lock = networks.lock().map_err(failure)?;
    let network = networks
        .create(&lock, &args.name, labels)
        .map_err(failure)?;
    println!("{}", network.id);
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only print IDs
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Output format: table (default) or json (one object per line)
    #[arg(long = "format", value_name = "FORMAT")]
    format: Option<String>,
    /// Filter: name=TEXT, label=KEY[=VALUE], driver=DRIVER, dangling=true|false
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
}

/// A row of `network ls`: a user-defined network, or one of the predefined ones.
struct Row {
    id: String,
    name: String,
    driver: &'static str,
    labels: BTreeMap<String, String>,
    dangling: bool,
}

fn matches(row: &Row, filters: &[String]) -> Result<bool, Failure> {
    for filter in filters {
        let (key, value) = super::output::split_filter(filter)?;
        let ok = match key {
            "name" => row.name.contains(value),
            "label" => super::output::label_matches(&row.labels, value),
            "driver" => row.driver == value,
            "id" => row.id.starts_with(value),
            "dangling" => match value {
                "true" | "1" => row.dangling,
                "false" | "0" => !row.dangling,
                _ => {
                    return Err(Failure::new(
                        exit::USAGE,
                        anyhow::anyhow!("invalid filter '{filter}': dangling is true or false"),
                    ));
                }
            },
            _ => {
                return Err(Failure::new(
                    exit::USAGE,
                    anyhow::anyhow!(
                        "unknown filter '{key}' (known: name, label, driver, id, dangling)"
                    ),
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The predefined networks' IDs: fixed, so scripts may keep them.
fn predefined_id(name: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("capsule network {name}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `network ls`: the predefined none and host, then the user-defined networks.
pub fn ls(args: &LsArgs) -> Result<u8, Failure> {
    let json = super::output::wants_json(args.format.as_deref())?;
    for filter in &args.filter {
        super::output::split_filter(filter)?;
    }
    let (home, networks) = open()?;
    let mut rows: Vec<Row> = PREDEFINED
        .iter()
        .map(|name| Row {
            id: predefined_id(name),
            name: (*name).to_owned(),
            driver: if *name == "host" { "host" } else { "null" },
            labels: BTreeMap::new(),
            dangling: false,
        })
        .collect();
    for network in networks.list() {
        rows.push(Row {
            dangling: container_networks::users(&home, &network.name).is_empty(),
            id: network.id,
            name: network.name,
            driver: Network::DRIVER,
            labels: network.labels,
        });
    }
    let mut out = std::io::stdout().lock();
    for row in &rows {
        if !matches(row, &args.filter)? {
            continue;
        }
        if args.quiet {
            let _ = writeln!(out, "{}", &row.id[..12]);
        } else if json {
            let value = serde_json::json!({
                "ID": &row.id[..12],
                "Name": row.name,
                "Driver": row.driver,
                "Scope": "local",
                "Labels": row.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            });
            let _ = writeln!(out, "{value}");
        } else {
            if std::ptr::eq(row, &rows[0]) {
                let _ = writeln!(
                    out,
                    "{:<14}{:<20}{:<10}SCOPE",
                    "NETWORK ID", "NAME", "DRIVER"
                );
            }
            let _ = writeln!(
                out,
                "{:<14}{:<20}{:<10}local",
                &row.id[..12],
                row.name,
                row.driver
            );
        }
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Networks to show
    #[arg(required = true)]
    networks: Vec<String>,
}

/// `network inspect`: Docker's fields, with the containers on each network.
pub fn inspect(args: &InspectArgs) -> Result<u8, Failure> {
    let (home, networks) = open()?;
    super::output::inspect_each(&args.networks, |name| {
        let network = networks.get(name)?;
        let containers: serde_json::Map<String, serde_json::Value> =
            container_networks::containers_on(&home, &network.name)
                .into_iter()
                .map(|(container, a)| {
                    let value = serde_json::json!({
                        "Name": container,
                        "IPv4Address": format!("{}/24", a.address),
                        "Aliases": a.aliases,
                    });
                    (container, value)
                })
                .collect();
        Ok::<_, NetworkError>(serde_json::json!({
            "Name": network.name,
            "Id": network.id,
            "Created": network.created,
            "Scope": "local",
            "Driver": Network::DRIVER,
            "IPAM": {
                "Driver": "default",
                "Config": [{
                    "Subnet": network.subnet.to_string(),
                    "Gateway": network.subnet.gateway().to_string(),
                }],
            },
            "Internal": true,
            "Containers": containers,
            "Labels": network.labels,
        }))
    })
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Do not complain about networks that do not exist
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Networks to remove
    #[arg(required = true)]
    networks: Vec<String>,
}

/// `network rm`: refused, naming a container, while any container is on the network.
pub fn rm(args: &RmArgs) -> Result<u8, Failure> {
    let (home, networks) = open()?;
    Ok(super::output::remove_each(
        &args.networks,
        args.force,
        |name| container_networks::remove(&home, &networks, name).map(drop),
        |e| matches!(e, NetworkError::NotFound(_)),
    ))
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation (Capsule never asks; accepted for Docker's scripts)
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Only networks with this label (label=KEY[=VALUE]), or without it (label!=...)
    #[arg(long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
}

/// `network prune`: removes the networks no container (running or stopped) is on.
pub fn prune(args: &PruneArgs) -> Result<u8, Failure> {
    let mut wanted: Vec<(bool, String)> = Vec::new();
    for filter in &args.filter {
        let (key, value) = super::output::split_filter(filter)?;
        match key {
            "label" => wanted.push((true, value.to_owned())),
            "label!" => wanted.push((false, value.to_owned())),
            _ => {
                return Err(Failure::new(
                    exit::USAGE,
                    anyhow::anyhow!("unknown filter '{key}' (known: label, label!)"),
                ));
            }
        }
    }
    let (home, networks) = open()?;
    let keep = |network: &Network| {
        wanted
            .iter()
            .any(|(with, label)| super::output::label_matches(&network.labels, label) != *with)
    };
    let removed = container_networks::prune(&home, &networks, &keep).map_err(failure)?;
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        let _ = writeln!(out, "Deleted Networks:");
        for name in &removed {
            let _ = writeln!(out, "{name}");
        }
    }
    Ok(0)
}
