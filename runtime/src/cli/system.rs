//! The system commands: `system df` (disk usage) and `system check` (integrity).

use super::Failure;
use super::images::{fail, open};
use super::output::print_table;
use super::progress::{self, human_size};
use capsule_runtime::builder::cache::{self as build_cache, BuildCache};
use capsule_runtime::container::ImagesInUse;
use capsule_runtime::engine::ModuleCache;
use capsule_runtime::home::dir_usage;
use capsule_runtime::image::check::ImageHealth;
use std::io::Write;

pub fn system_df() -> Result<u8, Failure> {
    let (home, images) = open()?;
    let in_use = ImagesInUse::of(&home);
    let usage = images.usage(|id| in_use.contains(id)).map_err(fail)?;
    // Running containers are active; the writable layers of the others are
    // reclaimable (container prune).
    let (mut containers, mut running, mut container_bytes, mut stopped_bytes) = (0, 0, 0, 0);
    for container in capsule_runtime::container::Container::list(&home) {
        let bytes = dir_usage(&container.dir).bytes;
        containers += 1;
        container_bytes += bytes;
        if container.state().is_active() && !container.lock_is_free() {
            running += 1;
        } else {
            stopped_bytes += bytes;
        }
    }
    let build_cache = build_cache::usage(&home, &images);
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
            usage.images.to_string(),
            usage.active.to_string(),
            human_size(usage.size),
            format!(
                "{} ({}%)",
                human_size(usage.reclaimable),
                pct(usage.reclaimable, usage.size)
            ),
        ],
        [
            "Containers".to_owned(),
            containers.to_string(),
            running.to_string(),
            human_size(container_bytes),
            format!(
                "{} ({}%)",
                human_size(stopped_bytes),
                pct(stopped_bytes, container_bytes)
            ),
        ],
        super::volume::df_row(&home),
        [
            "Build Cache".to_owned(),
            build_cache.steps.to_string(),
            "0".to_owned(),
            human_size(build_cache.bytes),
            human_size(build_cache.bytes),
        ],
    ];
    let mut out = std::io::stdout().lock();
    print_table(&mut out, &rows);
    if usage.unreferenced > 0 {
        let _ = writeln!(
            out,
            "\n{} of blobs are not used by any image (capsule image prune frees them)",
            human_size(usage.unreferenced)
        );
    }
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
    let total: u64 = blobs.iter().map(|b| b.size).sum();
    let bar = progress::Bytes::new("Checking blobs", Some(total));
    let corrupt = store.check_blobs(&blobs, |n| bar.add(n)).map_err(fail)?;
    bar.finish(&format!("{} blobs, {}", blobs.len(), human_size(total)));
    for (digest, moved) in &corrupt {
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
    if let Ok(cache) = ModuleCache::open(&home.module_cache_dir()) {
        damaged_other.extend(
            cache
                .check()
                .0
                .into_iter()
                .map(|name| format!("cache/modules/{name}")),
        );
    }
    if capsule_runtime::ambient::is_dir(&home.build_cache_dir())
        && let Ok(cache) = BuildCache::open(&home.build_cache_dir())
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
    let checked = match images.check_images(&home.layer_index_dir()) {
        Ok(checked) => checked,
        Err(e) => {
            let _ = writeln!(out, "index: {e}");
            return Ok(1);
        }
    };
    let mut broken = 0;
    let mut damaged_indexes = 0;
    for image in &checked.images {
        let name = &image.name;
        match &image.health {
            ImageHealth::Complete {
                saved_index_damaged: false,
            } => {}
            ImageHealth::Complete {
                saved_index_damaged: true,
            } => {
                damaged_indexes += 1;
                let _ = writeln!(
                    out,
                    "damaged: the saved layer index of image {name} (removed; rebuilt when next used)"
                );
            }
            ImageHealth::Broken(e) => {
                broken += 1;
                let _ = writeln!(out, "image {name} ({}) is broken: {e}", image.digest);
            }
        }
    }
    // Containers whose record cannot be read: not repaired here, since their writable
    // layer may hold what the user wants (capsule cp needs the record, though).
    let damaged_containers = capsule_runtime::container::Damaged::list(&home);
    for damaged in &damaged_containers {
        let _ = writeln!(
            out,
            "damaged: container {} ({}; remove it with capsule rm -f {} or capsule container prune)",
            damaged.id,
            damaged.reason,
            capsule_runtime::container::short_id(&damaged.id)
        );
    }
    let derived = damaged_layers.len() + damaged_indexes + damaged_other.len();
    if corrupt.is_empty() && broken == 0 && derived == 0 && damaged_containers.is_empty() {
        let _ = writeln!(
            out,
            "ok: {} blobs verified, {} images complete, {cached} cached layers verified",
            blobs.len(),
            checked.listed
        );
        Ok(0)
    } else if corrupt.is_empty() && broken == 0 {
        if derived > 0 {
            let _ = writeln!(
                out,
                "{derived} damaged derived file(s) removed: they are rebuilt from the store when next used"
            );
        }
        if !damaged_containers.is_empty() {
            let _ = writeln!(
                out,
                "{} damaged container record(s): remove them (capsule container prune)",
                damaged_containers.len()
            );
        }
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

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only dangling ones
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Remove unused anonymous volumes too (with -a, unused named ones as well)
    #[arg(long = "volumes")]
    volumes: bool,
    /// Do not ask for confirmation
    #[arg(short = 'f', long = "force")]
    force: bool,
}

/// `system prune`: stopped containers, then dangling (or, with `-a`, unused) images,
/// the build cache, and with `--volumes` unused volumes, as Docker's.
pub fn system_prune(args: &PruneArgs) -> Result<u8, Failure> {
    let mut what = vec!["all stopped containers".to_owned()];
    if args.volumes {
        what.push("all volumes not used by at least one container".to_owned());
    }
    what.push(if args.all {
        "all images without at least one container associated to them".to_owned()
    } else {
        "all dangling images".to_owned()
    });
    what.push("all build cache".to_owned());
    if !super::output::confirmed(args.force, "system prune", &what.join(", "))? {
        return Ok(0);
    }
    let (home, images) = open()?;
    let mut out = std::io::stdout().lock();
    let removed = capsule_runtime::container::prune_stopped(&home);
    if !removed.is_empty() {
        let _ = writeln!(out, "Deleted Containers:");
        for id in &removed {
            let _ = writeln!(out, "{id}");
        }
        let _ = writeln!(out);
    }
    let mut freed = 0u64;
    if args.volumes {
        let volumes = capsule_runtime::volume::Volumes::open(&home).map_err(fail)?;
        let removed =
            capsule_runtime::container::volumes::prune(&home, &volumes, args.all).map_err(fail)?;
        if !removed.is_empty() {
            let _ = writeln!(out, "Deleted Volumes:");
            for (name, size) in &removed {
                let _ = writeln!(out, "{name}");
                freed += size;
            }
            let _ = writeln!(out);
        }
    }
    let in_use = ImagesInUse::of(&home);
    let prunable = images
        .prunable(args.all, |id| in_use.contains(id))
        .map_err(fail)?;
    if !prunable.is_empty() {
        let _ = writeln!(out, "Deleted Images:");
        for (image, names) in prunable {
            for name in &names {
                let _ = writeln!(out, "untagged: {name}");
            }
            images.remove_image(&image).map_err(fail)?;
            let _ = writeln!(out, "deleted: {}", image.id());
        }
        let _ = writeln!(out);
    }
    freed += build_cache::prune(&home, &images).map_err(fail)?;
    freed += images.collect_garbage(true).map_err(fail)?.unwrap_or(0);
    let _ = writeln!(out, "Total reclaimed space: {}", human_size(freed));
    Ok(0)
}
