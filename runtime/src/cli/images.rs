//! The image commands, with Docker's names, flags and columns: `images`, `tag`, `rmi`,
//! `inspect`, `history`, `image prune`, `image import`, `save`, `load`, `system df`,
//! `system check`.

use super::progress::{self, human_age, human_size};
use super::{Failure, exit};
use capsule_runtime::container::{ImagesInUse, now};
use capsule_runtime::home::Home;
use capsule_runtime::image::archive::{self, ImportOptions};
use capsule_runtime::image::reference::Reference;
use capsule_runtime::image::{Image, ImageError, Images};
use capsule_runtime::store::Digest;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

fn fail(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(exit::USAGE, e)
}

fn open() -> Result<(Home, Images), Failure> {
    let home = Home::from_env().map_err(fail)?;
    let images = Images::open(&home).map_err(fail)?;
    Ok((home, images))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Show only image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Output format: table (default) or json (one object per line, like docker)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Show full image IDs
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only images whose name matches this repository (or repository:tag)
    reference: Option<String>,
}

pub fn images(args: &ImagesArgs) -> Result<u8, Failure> {
    let (_, images) = open()?;
    let listed = images.list().map_err(fail)?;
    let now = now();
    let mut out = std::io::stdout().lock();
    let filter = args.reference.as_deref();
    let rows: Vec<_> = listed
        .into_iter()
        .filter(|l| {
            filter.is_none_or(|f| {
                l.name
                    .as_ref()
                    .is_some_and(|n| n.repository == f || n.name().as_deref() == Some(f))
            })
        })
        .collect();
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for row in &rows {
            if seen.insert(row.image.id().clone()) {
                let _ = writeln!(out, "{}", id_text(&row.image, args.no_trunc));
            }
        }
        return Ok(0);
    }
    match args.format {
        Format::Json => {
            for row in &rows {
                let (repo, tag) = repo_tag(row.name.as_ref());
                let value = serde_json::json!({
                    "ID": id_text(&row.image, args.no_trunc),
                    "Repository": repo,
                    "Tag": tag,
                    "Digest": row.image.manifest_digest.to_string(),
                    "CreatedAt": row.image.created().map(capsule_runtime::image::oci::rfc3339),
                    "CreatedSince": human_age(row.image.created(), now),
                    "Size": human_size(row.image.size()),
                    "SizeBytes": row.image.size(),
                });
                let _ = writeln!(out, "{value}");
            }
        }
        Format::Table => {
            let mut table = vec![[
                "REPOSITORY".to_owned(),
                "TAG".to_owned(),
                "IMAGE ID".to_owned(),
                "CREATED".to_owned(),
                "SIZE".to_owned(),
            ]];
            for row in &rows {
                let (repo, tag) = repo_tag(row.name.as_ref());
                table.push([
                    repo,
                    tag,
                    id_text(&row.image, args.no_trunc),
                    human_age(row.image.created(), now),
                    human_size(row.image.size()),
                ]);
            }
            print_table(&mut out, &table);
        }
    }
    Ok(0)
}

fn repo_tag(name: Option<&Reference>) -> (String, String) {
    match name {
        Some(n) => (
            n.repository.clone(),
            n.tag.clone().unwrap_or_else(|| "<none>".to_owned()),
        ),
        None => ("<none>".to_owned(), "<none>".to_owned()),
    }
}

fn id_text(image: &Image, no_trunc: bool) -> String {
    if no_trunc {
        image.id().to_string()
    } else {
        image.short_id().to_owned()
    }
}

/// Columns padded to the widest cell plus three spaces, as docker prints them.
fn print_table<const N: usize>(out: &mut impl Write, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The image to name (name[:tag], or ID)
    source: String,
    /// The new name, name[:tag]
    target: String,
}

pub fn tag(args: &TagArgs) -> Result<u8, Failure> {
    let (_, images) = open()?;
    let image = images.resolve(&args.source).map_err(not_found)?;
    let target = Reference::parse(&args.target).map_err(fail)?;
    if target.digest.is_some() {
        return Err(fail(anyhow::anyhow!(
            "'{}' has a digest; a new name is name[:tag]",
            args.target
        )));
    }
    images.set_name(&image, Some(&target)).map_err(fail)?;
    Ok(0)
}

fn not_found(e: ImageError) -> Failure {
    match e {
        ImageError::NotFound(_) => Failure::new(1, e),
        other => fail(other),
    }
}

#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Remove the image even if it has several names or containers use it
    #[arg(short, long)]
    force: bool,
    /// Images to remove (name[:tag] removes that name; an ID removes the image)
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn rmi(args: &RmiArgs) -> Result<u8, Failure> {
    let (home, images) = open()?;
    let mut out = std::io::stdout().lock();
    let in_use = ImagesInUse::of(&home);
    let mut failed = false;
    for target in &args.images {
        let result = (|| -> Result<(), Failure> {
            let image = match images.resolve(target) {
                Ok(image) => image,
                Err(ImageError::NotFound(_)) => {
                    // A broken image (a blob missing or quarantined) is not listed, but
                    // its name can still be removed.
                    if let Ok(name) = Reference::parse(target)
                        && images.remove_name(&name).is_ok()
                    {
                        let _ = writeln!(out, "Untagged: {name}");
                        return Ok(());
                    }
                    return Err(not_found(ImageError::NotFound(target.clone())));
                }
                Err(e) => return Err(not_found(e)),
            };
            let names = images.names_of(&image).map_err(fail)?;
            let by_name = Reference::parse(target).ok().filter(|r| {
                names
                    .iter()
                    .any(|n| n.repository == r.repository && n.tag == r.tag)
            });
            let removing_image = match &by_name {
                Some(_) => names.len() <= 1,
                None => true,
            };
            if by_name.is_none() && names.len() > 1 && !args.force {
                return Err(Failure::new(
                    1,
                    anyhow::anyhow!(
                        "image {} is referenced by several names ({}): remove them by name, or use -f",
                        image.short_id(),
                        names
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let users = in_use.users(&image.id().to_string());
            if removing_image && !args.force && !users.is_empty() {
                return Err(Failure::new(
                    1,
                    anyhow::anyhow!(
                        "image {} is used by container {}: remove the container first (its files are under {}), or use -f",
                        target,
                        users
                            .iter()
                            .map(|c| c.get(..12).unwrap_or(c))
                            .collect::<Vec<_>>()
                            .join(", "),
                        home.containers_dir().display()
                    ),
                ));
            }
            match by_name {
                Some(name) if !removing_image => {
                    images.remove_name(&name).map_err(fail)?;
                    let _ = writeln!(out, "Untagged: {name}");
                }
                _ => {
                    for name in &names {
                        let _ = writeln!(out, "Untagged: {name}");
                    }
                    images.remove_image(&image).map_err(fail)?;
                    let _ = writeln!(out, "Deleted: {}", image.id());
                }
            }
            Ok(())
        })();
        if let Err(failure) = result {
            eprintln!("capsule: {:#}", failure.error);
            failed = true;
        }
    }
    // Free the blobs now unless a build or load holds the store (then: next prune).
    images.collect_garbage(false).map_err(fail)?;
    Ok(if failed { 1 } else { 0 })
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Images to inspect
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn inspect(args: &InspectArgs) -> Result<u8, Failure> {
    let (_, images) = open()?;
    let mut out = Vec::new();
    let mut failed = false;
    for target in &args.images {
        match images.resolve(target) {
            Ok(image) => {
                let names = images.names_of(&image).map_err(fail)?;
                out.push(inspect_json(&image, &names));
            }
            Err(e) => {
                eprintln!("capsule: {e}");
                failed = true;
            }
        }
    }
    let text = serde_json::to_string_pretty(&out).map_err(fail)?;
    println!("{text}");
    Ok(if failed { 1 } else { 0 })
}

fn inspect_json(image: &Image, names: &[Reference]) -> serde_json::Value {
    let config = image.config.config().clone().unwrap_or_default();
    let mut exposed = config.exposed_ports().clone().unwrap_or_default();
    exposed.sort();
    let mut volumes = config.volumes().clone().unwrap_or_default();
    volumes.sort();
    let labels: std::collections::BTreeMap<_, _> = config
        .labels()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    serde_json::json!({
        "Id": image.id().to_string(),
        "RepoTags": names.iter().filter_map(Reference::name).collect::<Vec<_>>(),
        "RepoDigests": names.iter().map(|n| format!("{}@{}", n.repository, image.manifest_digest)).collect::<Vec<_>>(),
        "Created": image.config.created(),
        "Config": {
            "User": config.user(),
            "Env": config.env(),
            "Entrypoint": config.entrypoint(),
            "Cmd": config.cmd(),
            "WorkingDir": config.working_dir().clone().unwrap_or_default(),
            "Labels": labels,
            "ExposedPorts": exposed.iter().map(|p| (p.clone(), serde_json::json!({}))).collect::<serde_json::Map<_, _>>(),
            "Volumes": volumes.iter().map(|v| (v.clone(), serde_json::json!({}))).collect::<serde_json::Map<_, _>>(),
            "StopSignal": config.stop_signal(),
        },
        "Architecture": image.config.architecture().to_string(),
        "Os": image.config.os().to_string(),
        "Size": image.size(),
        "RootFS": {
            "Type": "layers",
            "Layers": image.diff_ids().iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "Manifest": {
            "Digest": image.manifest_digest.to_string(),
            "Layers": image.layers.iter().map(|l| serde_json::json!({
                "Digest": l.digest.to_string(),
                "MediaType": l.media_type,
                "Size": l.size,
            })).collect::<Vec<_>>(),
        },
    })
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Do not truncate the CREATED BY column
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Print sizes in bytes and dates as RFC 3339
    #[arg(short = 'H', long = "human", default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// The image
    image: String,
}

pub fn history(args: &HistoryArgs) -> Result<u8, Failure> {
    let (_, images) = open()?;
    let image = images.resolve(&args.image).map_err(not_found)?;
    let history = image.config.history().clone().unwrap_or_default();
    let now = now();
    // Each non-empty history entry owns the next layer, in order.
    let mut layer_sizes = image.layers.iter().map(|l| l.size);
    let mut rows = Vec::new();
    for entry in &history {
        let size = if entry.empty_layer().unwrap_or(false) {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let created = entry
            .created()
            .as_deref()
            .and_then(capsule_runtime::image::oci::parse_rfc3339);
        let created_by = entry.created_by().clone().unwrap_or_default();
        let created_by = if args.no_trunc || created_by.chars().count() <= 45 {
            created_by
        } else {
            format!("{}…", created_by.chars().take(44).collect::<String>())
        };
        rows.push((
            created,
            created_by,
            size,
            entry.comment().clone().unwrap_or_default(),
        ));
    }
    let mut table = vec![[
        "IMAGE".to_owned(),
        "CREATED".to_owned(),
        "CREATED BY".to_owned(),
        "SIZE".to_owned(),
        "COMMENT".to_owned(),
    ]];
    let count = rows.len();
    for (i, (created, created_by, size, comment)) in rows.into_iter().rev().enumerate() {
        table.push([
            if i == 0 {
                id_text(&image, args.no_trunc)
            } else {
                "<missing>".to_owned()
            },
            if args.human {
                human_age(created, now)
            } else {
                created
                    .map(capsule_runtime::image::oci::rfc3339)
                    .unwrap_or_default()
            },
            created_by,
            if args.human {
                human_size(size)
            } else {
                size.to_string()
            },
            comment,
        ]);
    }
    if count == 0 {
        table.push([
            id_text(&image, args.no_trunc),
            String::new(),
            String::new(),
            human_size(image.size()),
            String::new(),
        ]);
    }
    print_table(&mut std::io::stdout().lock(), &table);
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove every image without a container, not only dangling (unnamed) ones
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn prune(args: &PruneArgs) -> Result<u8, Failure> {
    let (home, images) = open()?;
    let what = if args.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images without at least one container associated to them"
    };
    if !confirmed(args.force, "image prune", what)? {
        return Ok(0);
    }
    let in_use = ImagesInUse::of(&home);
    let mut out = std::io::stdout().lock();
    for (image, names) in images.distinct().map_err(fail)? {
        // The same rule as rmi: an image a container uses stays, named or not.
        let remove = !in_use.contains(&image.id().to_string()) && (args.all || names.is_empty());
        if remove {
            for name in &names {
                let _ = writeln!(out, "untagged: {name}");
            }
            images.remove_image(&image).map_err(fail)?;
            let _ = writeln!(out, "deleted: {}", image.id());
        }
    }
    let freed = images.collect_garbage(true).map_err(fail)?.unwrap_or(0);
    let _ = writeln!(out, "\nTotal reclaimed space: {}", human_size(freed));
    Ok(0)
}

/// Docker's confirmation before removing `what`: `-f` skips it; without a terminal
/// to ask on, the command refuses rather than guess.
fn confirmed(force: bool, command: &str, what: &str) -> Result<bool, Failure> {
    if force {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(fail(anyhow::anyhow!(
            "{command} removes {what}: confirm with -f (stdin is not a terminal to ask)"
        )));
    }
    eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Name for the image, name[:tag]
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tag: Option<String>,
    /// The module (.wasm, or .wat text)
    file: PathBuf,
    /// Name for the image (docker import's positional form)
    reference: Option<String>,
}

pub fn import(args: &ImportArgs) -> Result<u8, Failure> {
    let (_, images) = open()?;
    let name = args.tag.as_ref().or(args.reference.as_ref());
    let reference = name
        .map(|n| Reference::parse(n))
        .transpose()
        .map_err(fail)?;
    let display = args.file.display().to_string();
    let bytes = capsule_runtime::module::read_file(&args.file).map_err(|e| {
        let code = if matches!(e, capsule_runtime::module::ModuleError::NotFound { .. }) {
            exit::NOT_FOUND
        } else {
            exit::USAGE
        };
        Failure::new(code, e)
    })?;
    let wasm = capsule_runtime::module::core_module_bytes(&display, &bytes)
        .map_err(|e| Failure::new(exit::CANNOT_RUN, e))?;
    let stem = args
        .file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && !s.contains(['/', '\\']))
        .unwrap_or("app");
    let image = archive::import_module(
        &images,
        wasm.into_owned(),
        &ImportOptions {
            path: format!("/{stem}.wasm"),
            epoch: source_date_epoch().map_err(fail)?,
            created_by: format!("capsule image import {stem}.wasm"),
        },
    )
    .map_err(fail)?;
    images.set_name(&image, reference.as_ref()).map_err(fail)?;
    println!("{}", image.id());
    Ok(0)
}

/// `SOURCE_DATE_EPOCH` (0 when unset), the timestamp of everything Capsule writes into
/// an image.
///
/// # Errors
/// When it is set but is not a number of seconds.
pub fn source_date_epoch() -> anyhow::Result<i64> {
    match capsule_runtime::ambient::host_env("SOURCE_DATE_EPOCH") {
        None => Ok(0),
        Some(v) if v.is_empty() => Ok(0),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                anyhow::anyhow!("SOURCE_DATE_EPOCH='{v}' is not a number of seconds since 1970")
            }),
    }
}

#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to this file (default: stdout when it is not a terminal)
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Images to save
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(args: &SaveArgs) -> Result<u8, Failure> {
    let (_, images) = open()?;
    let mut selected: Vec<(Image, Vec<Reference>)> = Vec::new();
    for target in &args.images {
        let image = images.resolve(target).map_err(not_found)?;
        // A name saves that name; an ID saves every name of the image.
        let names = match Reference::parse(target) {
            Ok(r) if images.names_of(&image).map_err(fail)?.contains(&r) => vec![r],
            _ => images.names_of(&image).map_err(fail)?,
        };
        match selected
            .iter_mut()
            .find(|(i, _)| i.manifest_digest == image.manifest_digest)
        {
            Some((_, existing)) => existing.extend(names),
            None => selected.push((image, names)),
        }
    }
    let total: u64 = selected.iter().map(|(i, _)| i.size()).sum();
    match &args.output {
        Some(path) => {
            let (file, tmp) = capsule_runtime::ambient::create_temp_beside(path)
                .map_err(|e| fail(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
            let bar = progress::Bytes::new(&format!("Saving to {}", path.display()), Some(total));
            let result = archive::save(&images, &selected, std::io::BufWriter::new(&file), &|n| {
                bar.add(n)
            })
            .map_err(fail)
            .and_then(|()| file.sync_all().map_err(fail))
            .and_then(|()| {
                std::fs::rename(&tmp, path)
                    .map_err(|e| fail(anyhow::anyhow!("cannot write {}: {e}", path.display())))
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
            bar.finish(&format!(
                "{} image(s), {}",
                selected.len(),
                human_size(total)
            ));
        }
        None => {
            if std::io::stdout().is_terminal() {
                return Err(fail(anyhow::anyhow!(
                    "refusing to write an archive to a terminal: use -o FILE or redirect stdout"
                )));
            }
            let stdout = std::io::stdout().lock();
            archive::save(&images, &selected, std::io::BufWriter::new(stdout), &|_| {})
                .map_err(fail)?;
        }
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from this file (default: stdin)
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print only the loaded names
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(args: &LoadArgs) -> Result<u8, Failure> {
    let (_, images) = open()?;
    let loaded = match &args.input {
        Some(path) => {
            let file = capsule_runtime::ambient::open_file(path)
                .map_err(|e| fail(anyhow::anyhow!("cannot open {}: {e}", path.display())))?;
            let total = file.metadata().ok().map(|m| m.len());
            let bar = (!args.quiet)
                .then(|| progress::Bytes::new(&format!("Loading {}", path.display()), total));
            let loaded = archive::load(&images, std::io::BufReader::new(file), &|n| {
                if let Some(bar) = &bar {
                    bar.add(n);
                }
            })
            .map_err(|e| {
                fail(anyhow::Error::from(e).context(format!("cannot load {}", path.display())))
            })?;
            if let Some(bar) = bar {
                bar.finish(&format!("{} image(s)", loaded.images.len()));
            }
            loaded
        }
        None => {
            if std::io::stdin().is_terminal() {
                return Err(fail(anyhow::anyhow!(
                    "no archive: use -i FILE or pipe one to stdin"
                )));
            }
            archive::load(&images, std::io::stdin().lock(), &|_| {}).map_err(fail)?
        }
    };
    let mut out = std::io::stdout().lock();
    for (image, names) in &loaded.images {
        if names.is_empty() {
            let _ = writeln!(out, "Loaded image ID: {}", image.id());
        }
        for name in names {
            let _ = writeln!(out, "Loaded image: {name}");
        }
    }
    Ok(0)
}

pub fn system_df() -> Result<u8, Failure> {
    let (home, images) = open()?;
    let distinct = images.distinct().map_err(fail)?;
    let in_use = ImagesInUse::of(&home);
    let mut blobs = std::collections::HashMap::new();
    let mut active_blobs = std::collections::HashSet::new();
    for (image, _) in &distinct {
        let active = in_use.contains(&image.id().to_string());
        for blob in image.blobs() {
            if active {
                active_blobs.insert(blob.digest.clone());
            }
            blobs.insert(blob.digest, blob.size);
        }
    }
    let total: u64 = blobs.values().sum();
    let active: u64 = blobs
        .iter()
        .filter(|(d, _)| active_blobs.contains(*d))
        .map(|(_, s)| s)
        .sum();
    let active_images = distinct
        .iter()
        .filter(|(i, _)| in_use.contains(&i.id().to_string()))
        .count();
    let containers = dir_size(&home.containers_dir());
    let build_cache = dir_size(&home.build_cache_dir()).0 + images.layer_cache().size();
    let stored: u64 = images
        .store()
        .blobs()
        .map_err(fail)?
        .iter()
        .map(|b| b.size)
        .sum();
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let rows = [
        [
            "TYPE".to_owned(),
            "TOTAL".to_owned(),
            "ACTIVE".to_owned(),
            "SIZE".to_owned(),
            "RECLAIMABLE".to_owned(),
        ],
        [
            "Images".to_owned(),
            distinct.len().to_string(),
            active_images.to_string(),
            human_size(total),
            format!(
                "{} ({}%)",
                human_size(total - active),
                pct(total - active, total)
            ),
        ],
        [
            "Containers".to_owned(),
            in_use.containers().to_string(),
            "0".to_owned(),
            human_size(containers.0),
            format!("{} (100%)", human_size(containers.0)),
        ],
        super::volume::df_row(&home),
        [
            "Build Cache".to_owned(),
            dir_size(&home.build_cache_dir().join("steps"))
                .1
                .to_string(),
            "0".to_owned(),
            human_size(build_cache),
            human_size(build_cache),
        ],
    ];
    let mut out = std::io::stdout().lock();
    print_table(&mut out, &rows);
    if stored > total {
        let _ = writeln!(
            out,
            "\n{} of blobs are not used by any image (capsule image prune frees them)",
            human_size(stored - total)
        );
    }
    Ok(0)
}

/// Bytes and entries below a host directory (0 when it does not exist).
fn dir_size(path: &std::path::Path) -> (u64, usize) {
    let Ok(dir) = capsule_runtime::ambient::open_dir(path) else {
        return (0, 0);
    };
    let mut bytes = 0;
    let mut top = 0;
    let mut stack = vec![(dir, true)];
    while let Some((dir, is_top)) = stack.pop() {
        let Ok(entries) = dir.entries() else { continue };
        for entry in entries.flatten() {
            if is_top {
                top += 1;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if let Ok(sub) = entry.open_dir() {
                    stack.push((sub, false));
                }
            } else {
                bytes += meta.len();
            }
        }
    }
    (bytes, top)
}

#[derive(Debug, clap::Args)]
pub struct BuilderPruneArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    force: bool,
}

/// `builder prune`: forget every build step (the next build rebuilds them) and free the
/// layers only the build cache used.
pub fn builder_prune(args: &BuilderPruneArgs) -> Result<u8, Failure> {
    let (home, images) = open()?;
    if !confirmed(args.force, "builder prune", "all build cache")? {
        return Ok(0);
    }
    let cache = home.build_cache_dir();
    let (bytes, _) = dir_size(&cache);
    {
        // Not while a build runs: it holds the lock shared.
        let _lock = images.store().gc_lock(true).map_err(fail)?;
        if capsule_runtime::ambient::is_dir(&cache) {
            capsule_runtime::ambient::remove_dir_all(&cache)
                .map_err(|e| fail(anyhow::anyhow!("cannot remove {}: {e}", cache.display())))?;
        }
    }
    let freed = images.collect_garbage(true).map_err(fail)?.unwrap_or(0);
    println!("Total reclaimed space: {}", human_size(bytes + freed));
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Rebuild the store's index from the image manifests among the blobs (after
    /// index.json was lost or damaged): images it does not list come back as
    /// recovered:DIGEST; a damaged index is kept as index.json.damaged
    #[arg(long = "rebuild-index")]
    rebuild_index: bool,
}

pub fn system_check(args: &CheckArgs) -> Result<u8, Failure> {
    let (home, images) = open()?;
    let store = images.store();
    let mut out = std::io::stdout().lock();
    if args.rebuild_index {
        let rebuilt = images.rebuild_index().map_err(fail)?;
        let added = rebuilt.recovered;
        if let Some(kept) = rebuilt.damaged_kept_as {
            let _ = writeln!(out, "kept the damaged index as {}", kept.display());
        }
        for (image, name) in &added {
            let _ = writeln!(
                out,
                "recovered: {} (image {}) as {name}",
                image.manifest_digest,
                image.short_id()
            );
        }
        let _ = writeln!(
            out,
            "index rebuilt: {} image(s) recovered; name them with capsule tag recovered:TAG NAME",
            added.len()
        );
    }
    let blobs = store.blobs().map_err(fail)?;
    let mut corrupt: Vec<Digest> = Vec::new();
    let total: u64 = blobs.iter().map(|b| b.size).sum();
    let bar = progress::Bytes::new("Checking blobs", Some(total));
    for blob in &blobs {
        if !store.verify_blob(&blob.digest).map_err(fail)? {
            corrupt.push(blob.digest.clone());
        }
        bar.add(blob.size);
    }
    bar.finish(&format!("{} blobs, {}", blobs.len(), human_size(total)));
    for digest in &corrupt {
        let moved = store.quarantine_blob(digest).map_err(fail)?;
        let _ = writeln!(
            out,
            "corrupt: {digest} (content does not hash to its name; moved to {})",
            moved.display()
        );
    }
    // Derived data: every cached layer must hash to its diff_id.
    let (damaged_layers, cached) = images.layer_cache().check();
    for diff_id in &damaged_layers {
        let _ = writeln!(
            out,
            "damaged: cached layer {diff_id} (removed; rebuilt from its blob when next used)"
        );
    }
    // The other derived files: compiled modules and build-cache records.
    let mut damaged_other = Vec::new();
    if let Ok(cache) = capsule_runtime::engine::ModuleCache::open(&home.module_cache_dir()) {
        damaged_other.extend(
            cache
                .check()
                .0
                .into_iter()
                .map(|name| format!("cache/modules/{name}")),
        );
    }
    if capsule_runtime::ambient::is_dir(&home.build_cache_dir())
        && let Ok(cache) = capsule_runtime::build::cache::BuildCache::open(&home.build_cache_dir())
    {
        damaged_other.extend(
            cache
                .check()
                .0
                .into_iter()
                .map(|name| format!("cache/build/{name}")),
        );
    }
    for name in &damaged_other {
        let _ = writeln!(out, "damaged: {name} (removed; rebuilt when next needed)");
    }
    // Every image must find every blob it names.
    let index = match store.index() {
        Ok(index) => index,
        Err(e) => {
            let _ = writeln!(out, "index: {e}");
            return Ok(1);
        }
    };
    let mut broken = 0;
    let mut damaged_indexes = 0;
    for desc in index.manifests() {
        let name = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get(capsule_runtime::image::oci::ANNOTATION_IMAGE_NAME))
            .cloned()
            .unwrap_or_else(|| "<none>".to_owned());
        let Ok(digest) = desc.digest().to_string().parse::<Digest>() else {
            continue;
        };
        let image = images.load(&digest).and_then(|image| {
            image
                .blobs()
                .into_iter()
                .find(|b| !store.has_blob(&b.digest))
                .map_or(Ok(image), |b| {
                    Err(ImageError::BlobMissing {
                        blob: b.digest.clone(),
                    })
                })
        });
        match image {
            Ok(image) => {
                if !saved_layer_index_is_sound(&home, &images, &image) {
                    damaged_indexes += 1;
                    let _ = writeln!(
                        out,
                        "damaged: the saved layer index of image {name} (removed; rebuilt when next used)"
                    );
                }
            }
            Err(e) => {
                broken += 1;
                let _ = writeln!(out, "image {name} ({digest}) is broken: {e}");
            }
        }
    }
    let derived = damaged_layers.len() + damaged_indexes + damaged_other.len();
    if corrupt.is_empty() && broken == 0 && derived == 0 {
        let _ = writeln!(
            out,
            "ok: {} blobs verified, {} images complete, {cached} cached layers verified",
            blobs.len(),
            index.manifests().len()
        );
        Ok(0)
    } else if corrupt.is_empty() && broken == 0 {
        let _ = writeln!(
            out,
            "{derived} damaged derived file(s) removed: they are rebuilt from the store when next used"
        );
        Ok(1)
    } else {
        let _ = writeln!(
            out,
            "{} corrupt blob(s) quarantined, {broken} broken image(s): remove them (capsule rmi) and build or load them again",
            corrupt.len()
        );
        Ok(1)
    }
}

/// Whether the saved merged index of an image's layer chain (if there is one) is the
/// one its layers give; a damaged one is removed (the next run rebuilds it).
fn saved_layer_index_is_sound(home: &Home, images: &Images, image: &Image) -> bool {
    let Some(chain) = capsule_runtime::image::oci::chain_id(&image.diff_ids()) else {
        return true;
    };
    let name = format!("{}.idx", chain.hex());
    let Ok(dir) = capsule_runtime::ambient::open_dir(&home.layer_index_dir()) else {
        return true;
    };
    let Ok(saved) = dir.read(&name) else {
        return true;
    };
    let sound = images
        .rootfs(image)
        .ok()
        .and_then(|(paths, _)| capsule_runtime::fs::rootfs::open_lower(&paths, None, None).ok())
        .is_some_and(|fresh| fresh.index().as_bytes() == saved.as_slice());
    if !sound {
        let _ = dir.remove_file(&name);
    }
    sound
}
