//! A container's files as data: `diff` (its changes against its image), `commit` (a
//! new image from them) and `cp` (copying in and out through the container's own
//! filesystem, so a path or symlink can never lead out of it). All work on a stopped
//! container: they assemble its filesystem from its recorded spec.

use super::{Container, ContainerError};
use crate::fs::Vfs;
use crate::fs::changes::{Change, list_upper};
use crate::fs::layer::Kind;
use crate::fs::node::OpenOptions;
use crate::fs::rootfs::RootFs;
use crate::image::layer_writer::LayerPlan;
use crate::image::{Image, ImageError, Images};
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::Dir;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Errors of `diff`, `commit` and `cp`.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot assemble the container's filesystem")]
    RootFs(#[from] crate::fs::rootfs::RootFsError),
    #[error("cannot read the container's writable layer")]
    Upper(#[source] std::io::Error),
    #[error("{path} in the container: {errno}")]
    Guest {
        path: String,
        errno: crate::fs::FsError,
    },
    #[error("{path}: {source}")]
    Host {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

fn spec_of(container: &Container) -> Result<&crate::spec::RunSpec, FilesError> {
    container.config.spec.as_ref().ok_or_else(|| {
        ContainerError::Unrunnable {
            id: container.config.id.clone(),
        }
        .into()
    })
}

/// The container's changes against its image, sorted by path.
///
/// # Errors
/// [`FilesError`] when the writable layer or the image's layers cannot be read.
pub fn diff(container: &Container) -> Result<Vec<Change>, FilesError> {
    let spec = spec_of(container)?;
    let entries = list_upper(&container.dir.join("upper")).map_err(FilesError::Upper)?;
    let lower = if spec.layers.is_empty() {
        None
    } else {
        Some(crate::fs::rootfs::open_lower(
            &spec.layers,
            spec.layer_index_cache.as_deref(),
            spec.layer_chain_id.as_deref(),
        )?)
    };
    Ok(crate::fs::changes::changes(&entries, lower.as_ref()))
}

/// A new image: the container's image with one more layer holding its changes
/// (whiteouts included; every timestamp `epoch`, so the same changes give the same
/// layer), its history saying `created_by`. The image's configuration is kept.
///
/// # Errors
/// [`FilesError`] when the image or the changes cannot be read or the store written.
pub fn commit(
    container: &Container,
    images: &Images,
    epoch: i64,
    created_by: &str,
) -> Result<Image, FilesError> {
    let base = images.resolve(&container.config.image_id)?;
    let upper = container.dir.join("upper");
    let entries = list_upper(&upper).map_err(FilesError::Upper)?;
    let plan = LayerPlan::of_upper(&upper, &entries).map_err(FilesError::Upper)?;
    let mut layers = base.layers.clone();
    let mut history = base.config.history().clone().unwrap_or_default();
    let mut entry = oci_spec::image::HistoryBuilder::default()
        .created(crate::image::oci::rfc3339(epoch))
        .created_by(created_by.to_owned());
    if entries.is_empty() {
        entry = entry.empty_layer(true);
    } else {
        let written = plan.write(images.store(), images.layer_cache(), epoch)?;
        layers.push(crate::image::LayerRef {
            digest: written.digest,
            size: written.size,
            media_type: written.media_type.to_owned(),
            diff_id: written.diff_id,
        });
    }
    history.push(entry.build().map_err(|source| ImageError::Make {
        what: "cannot make the history entry",
        source,
    })?);
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = crate::image::archive::image_config(
        base.config.config().clone().unwrap_or_default(),
        &diff_ids,
        history,
        epoch,
    )?;
    Ok(images.write_image(&config, &layers)?)
}

fn guest_err(path: &str) -> impl Fn(crate::fs::FsError) -> FilesError + '_ {
    move |errno| FilesError::Guest {
        path: path.to_owned(),
        errno,
    }
}

fn host_err(path: &Path) -> impl Fn(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Host {
        path: path.to_owned(),
        source,
    }
}

/// Names inside a container come from the guest: only plain names are copied out.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Copies `guest` (a file, a directory with everything below it, or a symlink, copied
/// as a symlink) out of the container to `host`: into it when it is an existing
/// directory, else as it. Paths resolve inside the container; nothing is followed on
/// the host (an existing host symlink at a destination is refused): every entry is
/// made or opened by name in the directory handle above it, without following a
/// symlink, so one put there meanwhile cannot redirect the write.
///
/// # Errors
/// [`FilesError`].
pub fn copy_out(container: &Container, guest: &str, host: &Path) -> Result<u64, FilesError> {
    let root = RootFs::assemble(spec_of(container)?)?;
    let vfs = root.vfs();
    let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
    vfs.stat(&loc).map_err(guest_err(guest))?;
    let name = guest
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| plain_name(n))
        .unwrap_or("root");
    let (dir, dest_name, dest) = if host.file_name().is_none() {
        // `.`, `..`, `/`: a directory, the copy goes into it.
        let dir = crate::ambient::open_dir(host).map_err(host_err(host))?;
        (dir, OsString::from(name), host.join(name))
    } else {
        let (parent, host_name) = crate::ambient::open_parent(host).map_err(host_err(host))?;
        match parent.open_dir_nofollow(&host_name) {
            Ok(inside) => (inside, OsString::from(name), host.join(name)),
            Err(_) => (parent, host_name, host.to_owned()),
        }
    };
    let mut count = 0;
    copy_out_entry(vfs, guest, &dir, &dest_name, &dest, &mut count)?;
    Ok(count)
}

/// Copies `guest` to the entry `name` of the host directory `dir` (`dest` is its path,
/// for messages).
fn copy_out_entry(
    vfs: &Vfs,
    guest: &str,
    dir: &Dir,
    name: &OsStr,
    dest: &Path,
    count: &mut u64,
) -> Result<(), FilesError> {
    let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
    let stat = vfs.stat(&loc).map_err(guest_err(guest))?;
    if let Ok(meta) = dir.symlink_metadata(name)
        && meta.file_type().is_symlink()
    {
        return Err(FilesError::Refused(format!(
            "{} is a symlink on the host: refusing to write through it",
            dest.display()
        )));
    }
    match stat.kind {
        Kind::Dir => {
            match dir.create_dir(name) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && dir.symlink_metadata(name).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(host_err(dest)(e)),
            }
            let inside = dir.open_dir_nofollow(name).map_err(host_err(dest))?;
            for entry in vfs.list(&loc).map_err(guest_err(guest))? {
                if !plain_name(&entry.name) {
                    continue;
                }
                let child = format!("{}/{}", guest.trim_end_matches('/'), entry.name);
                copy_out_entry(
                    vfs,
                    &child,
                    &inside,
                    OsStr::new(&entry.name),
                    &dest.join(&entry.name),
                    count,
                )?;
            }
        }
        Kind::Symlink => {
            let target = vfs.readlink(&loc).map_err(guest_err(guest))?;
            #[cfg(unix)]
            dir.symlink_contents(&target, name)
                .map_err(host_err(dest))?;
            #[cfg(not(unix))]
            return Err(FilesError::Refused(format!(
                "{guest} is a symlink to {target}; this host cannot make symlinks"
            )));
        }
        Kind::File => {
            let file = vfs
                .open(
                    &loc,
                    OpenOptions {
                        read: true,
                        ..Default::default()
                    },
                    0,
                )
                .map_err(guest_err(guest))?;
            let mut options = cap_std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            options.follow(FollowSymlinks::No);
            let mut out = dir.open_with(name, &options).map_err(host_err(dest))?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut pos = 0u64;
            loop {
                let n = file.read_at(&mut buf, pos).map_err(guest_err(guest))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(host_err(dest))?;
                pos += n as u64;
            }
        }
    }
    *count += 1;
    Ok(())
}

/// A host entry opened to be copied into a container: opened once, by name in the
/// directory handle above it and without following a symlink, its kind taken from the
/// handle, so it cannot be swapped for a symlink between a check and the open.
enum HostEntry {
    Dir(Dir),
    File(cap_std::fs::File),
    Symlink(PathBuf),
}

/// Opens the entry `name` of `dir` (see [`HostEntry`]); anything but a regular file,
/// a directory or a symlink (a FIFO, a device) is refused.
fn open_host_entry(dir: &Dir, name: &OsStr) -> std::io::Result<HostEntry> {
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true);
    options.follow(FollowSymlinks::No);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading would wait for a writer: it is refused below.
        use cap_std::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed());
    }
    let file = match dir.open_with(name, &options) {
        Ok(file) => file,
        Err(e) => {
            return if dir
                .symlink_metadata(name)
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                dir.read_link_contents(name).map(HostEntry::Symlink)
            } else {
                Err(e)
            };
        }
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        Ok(HostEntry::Dir(Dir::from_std_file(file.into_std())))
    } else if meta.is_file() {
        Ok(HostEntry::File(file))
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file, a directory or a symlink",
        ))
    }
}

/// Copies `host` (a file, a directory with everything below it, symlinks as symlinks)
/// into the container at `guest`: into it when it is an existing directory, else as
/// it. Writes go to the container's writable layer (or the volume mounted there);
/// every path resolves inside the container, so a symlink in it cannot lead out.
///
/// # Errors
/// [`FilesError`].
pub fn copy_in(container: &Container, host: &Path, guest: &str) -> Result<u64, FilesError> {
    let root = RootFs::assemble(spec_of(container)?)?;
    let vfs = root.vfs();
    let name = host
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| plain_name(n))
        .ok_or_else(|| {
            FilesError::Refused(format!("{}: not a file or directory name", host.display()))
        })?
        .to_owned();
    let (parent, host_name) = crate::ambient::open_parent(host).map_err(host_err(host))?;
    let entry = open_host_entry(&parent, &host_name).map_err(host_err(host))?;
    let target = match vfs.resolve("", guest, true).and_then(|l| vfs.stat(&l)) {
        Ok(stat) if stat.kind == Kind::Dir => format!("{}/{name}", guest.trim_end_matches('/')),
        _ => guest.to_owned(),
    };
    let mut count = 0;
    copy_in_entry(vfs, host, entry, &target, &mut count)?;
    Ok(count)
}

fn copy_in_entry(
    vfs: &Vfs,
    host: &Path,
    entry: HostEntry,
    guest: &str,
    count: &mut u64,
) -> Result<(), FilesError> {
    let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
    match entry {
        HostEntry::Dir(dir) => {
            match vfs.mkdir(&loc, 0o755) {
                Ok(()) => {}
                Err(e) if e.errno() == crate::fs::Errno::Exist => {}
                Err(e) => return Err(guest_err(guest)(e)),
            }
            let mut names: Vec<_> = dir
                .entries()
                .map_err(host_err(host))?
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            for name in names {
                let child = host.join(&name);
                let entry = open_host_entry(&dir, OsStr::new(&name)).map_err(host_err(&child))?;
                copy_in_entry(vfs, &child, entry, &format!("{guest}/{name}"), count)?;
            }
        }
        HostEntry::Symlink(target) => {
            let _ = vfs.unlink(&loc);
            vfs.symlink(&target.to_string_lossy(), &loc)
                .map_err(guest_err(guest))?;
        }
        HostEntry::File(mut input) => {
            let file = vfs
                .open(
                    &loc,
                    OpenOptions {
                        write: true,
                        create: true,
                        truncate: true,
                        ..Default::default()
                    },
                    0o644,
                )
                .map_err(guest_err(guest))?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut pos = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(host_err(host))?;
                if n == 0 {
                    break;
                }
                let mut done = 0;
                while done < n {
                    done += file
                        .write_at(&buf[done..n], pos + done as u64)
                        .map_err(guest_err(guest))?;
                }
                pos += n as u64;
            }
        }
    }
    *count += 1;
    Ok(())
}
