//! The image commands, with Docker's names, flags and columns: `images`, `tag`, `rmi`,
//! `inspect`, `history`, `image prune`, `image import`, `save`, `load`. The rules they
//! apply (what `rmi` and `image prune` may remove) are the library's
//! ([`capsule_runtime::image::removal`]).

use super::output::{confirmed, print_table};
use super::progress::{self, human_age, human_size};
use super::{Failure, exit};
use capsule_runtime::container::ImagesInUse;
use capsule_runtime::home::Home;
use capsule_runtime::image::archive;
use capsule_runtime::image::reference::Reference;
use capsule_runtime::image::removal::{Removal, removal};
use capsule_runtime::image::{Image, ImageError, Images};
use capsule_runtime::time::now;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

pub(super) fn fail(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(exit::USAGE, e)
}

pub(super) fn open() -> Result<(Home, Images), Failure> {
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
            let users = in_use.users(&image.id().to_string());
            let removal = removal(
                target,
                &image,
                names,
                users,
                home.containers_dir(),
                args.force,
            )
            .map_err(|e| Failure::new(1, e))?;
            match removal {
                Removal::Untag(name) => {
                    images.remove_name(&name).map_err(fail)?;
                    let _ = writeln!(out, "Untagged: {name}");
                }
                Removal::Delete(names) => {
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
            eprintln!("capsule: {}", failure.line());
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
    let prunable = images
        .prunable(args.all, |id| in_use.contains(id))
        .map_err(fail)?;
    for (image, names) in prunable {
        for name in &names {
            let _ = writeln!(out, "untagged: {name}");
        }
        images.remove_image(&image).map_err(fail)?;
        let _ = writeln!(out, "deleted: {}", image.id());
    }
    let freed = images.collect_garbage(true).map_err(fail)?.unwrap_or(0);
    let _ = writeln!(out, "\nTotal reclaimed space: {}", human_size(freed));
    Ok(0)
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
    let (home, images) = open()?;
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
    let (wasm, _) = capsule_runtime::module::wasm_bytes(&display, &bytes)
        .map_err(|e| Failure::new(exit::CANNOT_RUN, e))?;
    let image = archive::import_file(
        &images,
        &args.file,
        wasm.into_owned(),
        source_date_epoch().map_err(fail)?,
        reference.as_ref(),
    )
    .map_err(fail)?;
    println!("{}", image.id());
    let name = name.map_or_else(|| image.id().to_string(), ToOwned::to_owned);
    super::warm::compile_ahead(&home, &images, &image, &name, false);
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
            let bar = progress::Bytes::new(&format!("Saving to {}", path.display()), Some(total));
            archive::save_to_file(&images, &selected, path, &|n| bar.add(n)).map_err(fail)?;
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
    let (home, images) = open()?;
    let loaded = match &args.input {
        Some(path) => {
            if capsule_runtime::ambient::is_dir(path) {
                return Err(fail(anyhow::anyhow!(
                    "cannot load {}: it is a directory; -i takes an archive file (made by capsule save or docker save)",
                    path.display()
                )));
            }
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
    drop(out);
    for (image, names) in &loaded.images {
        let name = names
            .first()
            .map_or_else(|| image.id().to_string(), ToString::to_string);
        super::warm::compile_ahead(&home, &images, image, &name, args.quiet);
    }
    Ok(0)
}
