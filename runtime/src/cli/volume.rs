//! `capsule volume create|ls|inspect|rm|prune`.

use super::{Failure, exit};
use capsule_runtime::container::volumes::{self as container_volumes, VolumesInUse};
use capsule_runtime::home::Home;
use capsule_runtime::volume::{Volume, VolumeError, Volumes};
use std::io::Write;

fn open() -> Result<(Home, Volumes), Failure> {
    let home = super::container::home()?;
    let volumes = Volumes::open(&home).map_err(|e| Failure::new(exit::USAGE, e))?;
    Ok((home, volumes))
}

fn failure(e: VolumeError) -> Failure {
    let code = match e {
        // As Docker's volume verbs, an unknown or busy volume exits 1.
        VolumeError::NotFound(_) | VolumeError::InUse { .. } => 1,
        _ => exit::USAGE,
    };
    Failure::new(code, e)
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Set a label on the volume (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Only the local driver exists; accepted for Docker's scripts
    #[arg(
        short = 'd',
        long = "driver",
        value_name = "DRIVER",
        default_value = "local"
    )]
    driver: String,
    /// The volume's name (default: a random one)
    name: Option<String>,
}

/// `volume create [NAME]`: creates a volume, or finds it when it exists (as Docker).
pub fn create(args: &CreateArgs) -> Result<u8, Failure> {
    if args.driver != "local" {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!(
                "unknown volume driver '{}': Capsule keeps volumes with the local driver only",
                args.driver
            ),
        ));
    }
    if let Some(name) = &args.name
        && !capsule_runtime::spec::valid_volume_name(name)
    {
        return Err(failure(VolumeError::InvalidName(name.clone())));
    }
    let labels = super::output::labels(&args.label)?;
    let (_, volumes) = open()?;
    let lock = volumes.lock().map_err(failure)?;
    let (volume, _) = volumes
        .create(&lock, args.name.as_deref(), false, labels)
        .map_err(failure)?;
    println!("{}", volume.name());
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only print names
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Output format: table (default) or json (one object per line)
    #[arg(long = "format", value_name = "FORMAT")]
    format: Option<String>,
    /// Filter: dangling=true|false, name=TEXT, label=KEY[=VALUE]
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
}

fn matches(volume: &Volume, in_use: &VolumesInUse, filters: &[String]) -> Result<bool, Failure> {
    for filter in filters {
        let (key, value) = super::output::split_filter(filter)?;
        let ok = match key {
            "dangling" => {
                let dangling = in_use.users(volume.name()).is_empty();
                match value {
                    "true" | "1" => dangling,
                    "false" | "0" => !dangling,
                    _ => {
                        return Err(Failure::new(
                            exit::USAGE,
                            anyhow::anyhow!("invalid filter '{filter}': dangling is true or false"),
                        ));
                    }
                }
            }
            "name" => volume.name().contains(value),
            "label" => super::output::label_matches(&volume.meta.labels, value),
            _ => {
                return Err(Failure::new(
                    exit::USAGE,
                    anyhow::anyhow!("unknown filter '{key}' (known: dangling, name, label)"),
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `volume ls`.
pub fn ls(args: &LsArgs) -> Result<u8, Failure> {
    let json = super::output::wants_json(args.format.as_deref())?;
    for filter in &args.filter {
        let key = filter.split_once('=').map_or(filter.as_str(), |(k, _)| k);
        if !matches!(key, "dangling" | "name" | "label") {
            return Err(Failure::new(
                exit::USAGE,
                anyhow::anyhow!("unknown filter '{key}' (known: dangling, name, label)"),
            ));
        }
    }
    let (home, volumes) = open()?;
    let in_use = VolumesInUse::of(&home);
    let mut shown = Vec::new();
    for volume in volumes.list() {
        if matches(&volume, &in_use, &args.filter)? {
            shown.push(volume);
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for volume in &shown {
            let _ = writeln!(out, "{}", volume.name());
        }
    } else if json {
        for volume in &shown {
            let value = serde_json::json!({
                "Driver": "local",
                "Name": volume.name(),
                "Mountpoint": volume.mountpoint,
                "Scope": "local",
                "Labels": volume.meta.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            });
            let _ = writeln!(out, "{value}");
        }
    } else {
        let _ = writeln!(out, "DRIVER    VOLUME NAME");
        for volume in &shown {
            let _ = writeln!(out, "local     {}", volume.name());
        }
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Volumes to show
    #[arg(required = true)]
    volumes: Vec<String>,
}

/// `volume inspect`: Docker's fields, plus the containers that use each volume.
pub fn inspect(args: &InspectArgs) -> Result<u8, Failure> {
    let (home, volumes) = open()?;
    let in_use = VolumesInUse::of(&home);
    super::output::inspect_each(&args.volumes, |name| {
        let volume = volumes.get(name)?;
        Ok::<_, VolumeError>(serde_json::json!({
            "CreatedAt": volume.meta.created,
            "Driver": "local",
            "Labels": volume.meta.labels,
            "Mountpoint": volume.mountpoint,
            "Name": volume.name(),
            "Options": {},
            "Scope": "local",
            "Anonymous": volume.meta.anonymous,
            "UsedBy": in_use.users(volume.name()),
        }))
    })
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Accepted for Docker's scripts; a volume in use is never removed
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Volumes to remove
    #[arg(required = true)]
    volumes: Vec<String>,
}

/// `volume rm`: refused, naming a container, while any container uses the volume.
pub fn rm(args: &RmArgs) -> Result<u8, Failure> {
    let (home, volumes) = open()?;
    Ok(super::output::remove_each(
        &args.volumes,
        args.force,
        |name| container_volumes::remove(&home, &volumes, name),
        |e| matches!(e, VolumeError::NotFound(_)),
    ))
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove every unused volume, named ones too (default: anonymous ones only, as
    /// Docker 23 and later)
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Do not ask for confirmation (Capsule never asks; accepted for Docker's scripts)
    #[arg(short = 'f', long = "force")]
    force: bool,
}

/// `volume prune`: removes the volumes no container (running or stopped) uses.
pub fn prune(args: &PruneArgs) -> Result<u8, Failure> {
    let (home, volumes) = open()?;
    let removed = container_volumes::prune(&home, &volumes, args.all).map_err(failure)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Deleted Volumes:");
    let mut total = 0;
    for (name, size) in &removed {
        let _ = writeln!(out, "{name}");
        total += size;
    }
    let _ = writeln!(
        out,
        "\nTotal reclaimed space: {}",
        super::progress::human_size(total)
    );
    Ok(0)
}

/// The `Local Volumes` row of `system df`: how many, how many containers use, their
/// size, and the size of the unused ones.
pub(super) fn df_row(home: &Home) -> [String; 5] {
    let (mut total, mut active, mut size, mut unused) = (0usize, 0usize, 0u64, 0u64);
    if let Ok(volumes) = Volumes::open(home) {
        let in_use = VolumesInUse::of(home);
        for volume in volumes.list() {
            let bytes = volumes.size(volume.name());
            total += 1;
            size += bytes;
            if in_use.users(volume.name()).is_empty() {
                unused += bytes;
            } else {
                active += 1;
            }
        }
    }
    let pct = (unused * 100).checked_div(size).unwrap_or(0);
    [
        "Local Volumes".to_owned(),
        total.to_string(),
        active.to_string(),
        super::progress::human_size(size),
        format!("{} ({pct}%)", super::progress::human_size(unused)),
    ]
}
