//! A container's files as data: `diff` (its changes against its image), `commit` (a
//! new image from them) and `cp` (copying in and out through the container's own
//! filesystem, so a path or symlink can never lead out of it).
//!
//! A stopped container's filesystem is assembled here from its recorded spec. A
//! running one has one owner, the process that runs it: `cp` goes to it through the
//! control channel ([`super::control`]) and works on the filesystem the guest sees
//! (a file copied in is seen at once; one copied out is read with the guest's writes
//! held back), and `diff` and `commit` read the writable layer while the owner holds
//! the container's filesystem still, as `docker commit` pauses a container.

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
use std::rc::Rc;

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
    #[error("{path} in the container: {} ({errno})", errno.errno().describe())]
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
    /// A copy into a running container cut by its main program's end (a stop): what
    /// it made is undone, and the copy can be made again into the stopped container.
    #[error("the container stopped during the copy")]
    Cut,
}

fn spec_of(container: &Container) -> Result<&crate::spec::RunSpec, FilesError> {
    container.config.spec.as_ref().ok_or_else(|| {
        // Its creator holds the run lock until the spec is recorded.
        if container.lock_is_free() {
            ContainerError::Unrunnable {
                id: container.config.id.clone(),
            }
        } else {
            super::StateError::Creating(container.name().to_owned()).into()
        }
        .into()
    })
}

/// A copy that failed because `rm` took the container away meanwhile says so, not
/// which of its files went missing.
fn unless_removed<T>(
    container: &Container,
    result: Result<T, FilesError>,
) -> Result<T, FilesError> {
    match result {
        Err(
            FilesError::Guest { .. }
            | FilesError::Upper(_)
            | FilesError::Refused(_)
            | FilesError::RootFs(_),
        ) if container.is_removed() => Err(ContainerError::Removed {
            name: container.name().to_owned(),
            when: "(capsule rm) while it was being copied",
        }
        .into()),
        other => other,
    }
}

/// The container's changes against its image, sorted by path.
///
/// # Errors
/// [`FilesError`] when the writable layer or the image's layers cannot be read.
pub fn diff(container: &Container) -> Result<Vec<Change>, FilesError> {
    let spec = spec_of(container)?;
    let _still = hold_still(container)?;
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

/// How [`commit`] makes its image.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Every timestamp of the new layer (`SOURCE_DATE_EPOCH`): the same changes give
    /// the same layer.
    pub epoch: i64,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// Hold a running container's filesystem still while its changes are read.
    pub pause: bool,
}

/// A new image: the container's image with one more layer holding its changes
/// (whiteouts included; every timestamp `options.epoch`), its history saying
/// `options.created_by`. The image's configuration is kept. A running container's
/// filesystem is held still meanwhile unless `options.pause` is off.
///
/// # Errors
/// [`FilesError`] when the image or the changes cannot be read or the store written.
pub fn commit(
    container: &Container,
    images: &Images,
    options: &CommitOptions,
) -> Result<Image, FilesError> {
    let (epoch, created_by) = (options.epoch, options.created_by.as_str());
    let base = images.resolve(&container.config.image_id)?;
    let _still = if options.pause {
        hold_still(container)?
    } else {
        None
    };
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

/// While the returned connection is open, the process that runs `container` (if one
/// does) holds its filesystem still: no guest call that changes a file runs.
fn hold_still(container: &Container) -> Result<Option<super::control::Answer>, FilesError> {
    match super::control::call(&container.dir, super::control::Request::Freeze, &[], None) {
        Err(e) if e.is_not_running() => Ok(None),
        other => other.map_err(owner_err),
    }
}

fn owner_err(e: super::control::ControlError) -> FilesError {
    match e {
        super::control::ControlError::Refused(text) => FilesError::Refused(text),
        e => FilesError::Refused(crate::container::owner::line_of(&e)),
    }
}

/// A host path as the process that runs the container (whose current directory is
/// not ours) finds the same entry: absolute, ending in `/` when it names a directory
/// as such (`.`, `..`, `dir/`).
fn for_owner(host: &Path) -> Result<PathBuf, FilesError> {
    let absolute = crate::ambient::absolute(host).map_err(host_err(host))?;
    let text = host.as_os_str().as_encoded_bytes();
    let as_dir = host.file_name().is_none()
        || text.ends_with(b"/")
        || (cfg!(windows) && text.ends_with(b"\\"));
    if as_dir && !absolute.as_os_str().as_encoded_bytes().ends_with(b"/") {
        let mut text = absolute.into_os_string();
        text.push("/");
        return Ok(PathBuf::from(text));
    }
    Ok(absolute)
}

/// How a copy through a container's owner went; what was to be copied (`T`: a
/// [`CopyOut`] or a [`CopyIn`]) given back when it was not.
enum Through<T> {
    Done(u64),
    /// No process runs the container.
    NotRunning(T),
    /// A process ran it, but the copy was cut by its stop (its process ended in the
    /// middle of a copy out; the owner undid a copy in) or no guest runs now: nothing
    /// of the copy is left, and it can be made again.
    Cut(T),
}

/// Makes a copy through the container's owner with `attempt`, again after each time
/// a stop cuts it, once the process has ended (from the container's directory then,
/// or through the process of its restart). The count; or what was to be copied, given
/// back, and whether it was still being cut after [`CUTS`] tries.
fn through_owner<T>(
    container: &Container,
    what: T,
    mut attempt: impl FnMut(T) -> Result<Through<T>, FilesError>,
) -> Result<Result<u64, (T, bool)>, FilesError> {
    let mut what = what;
    let mut cuts = 0;
    loop {
        match attempt(what)? {
            Through::Done(count) => return Ok(Ok(count)),
            Through::NotRunning(back) => return Ok(Err((back, false))),
            Through::Cut(back) if cuts < CUTS => {
                cuts += 1;
                tracing::debug!(
                    container = container.name(),
                    "a copy was cut by the container's stop: making it again"
                );
                super::supervisor::wait_stopped(container, Some(CUT_WAIT));
                what = back;
            }
            Through::Cut(back) => return Ok(Err((back, true))),
        }
    }
}

/// `cp` out of a running container, through its owner: the owner sends a tar of what
/// it holds still, and this process writes it out (to a host path, as the owner's
/// files would be left half-written if its process ended meanwhile; or as it is).
fn copy_out_running<'a>(
    container: &Container,
    guest: &str,
    to: CopyOut<'a>,
) -> Result<Through<CopyOut<'a>>, FilesError> {
    use super::control::{ChunkReader, Reply, Request, call, read_line};
    let request = Request::CopyOut {
        guest: guest.to_owned(),
        host: None,
    };
    let answer = match call(&container.dir, request, &[], None) {
        Ok(Some(answer)) => answer,
        Ok(None) => return Ok(Through::NotRunning(to)),
        // No guest runs (any more): its files are its directory's.
        Err(e) if e.is_not_running() => return Ok(Through::NotRunning(to)),
        Err(e) => return Err(owner_err(e)),
    };
    let mut tar = ChunkReader::new(answer.stream);
    // The owner's last line: how its side of the copy ended.
    let status = |tar: &mut ChunkReader<_>| -> Result<u64, FilesError> {
        tar.drain().map_err(host_err(Path::new("-")))?;
        let status: Reply = read_line(tar.get_mut()).map_err(owner_err)?;
        match status.error {
            None => Ok(status.value.as_u64().unwrap_or(0)),
            Some(text) => Err(FilesError::Refused(text)),
        }
    };
    match to {
        CopyOut::Tar(out) => {
            std::io::copy(&mut tar, out).map_err(|e| {
                if tar.broken() {
                    FilesError::Refused(format!(
                        "container {} stopped while the archive was copied out: what was \
                         written is not whole; copy it again",
                        container.name()
                    ))
                } else {
                    host_err(Path::new("-"))(e)
                }
            })?;
            out.flush().map_err(host_err(Path::new("-")))?;
            status(&mut tar).map(Through::Done)
        }
        CopyOut::Path(host) => {
            let mut created = Created::default();
            let mut count = 0;
            let result = copy_out_from_tar(&mut tar, guest, host, &mut created, &mut count)
                .and_then(|()| status(&mut tar));
            match result {
                Ok(_) => Ok(Through::Done(count)),
                Err(e) => {
                    undo_out(created);
                    if tar.broken() {
                        Ok(Through::Cut(CopyOut::Path(host)))
                    } else {
                        Err(e)
                    }
                }
            }
        }
    }
}

/// `cp` into a running container, through its owner.
fn copy_in_running<'a>(
    container: &Container,
    from: CopyIn<'a>,
    guest: &str,
) -> Result<Through<CopyIn<'a>>, FilesError> {
    use super::control::{Request, connect};
    let Some(connection) = connect(&container.dir).map_err(owner_err)? else {
        return Ok(Through::NotRunning(from));
    };
    let (host, body, from_path) = match from {
        CopyIn::Path(host) => {
            plain_host_name(host)?;
            (Some(for_owner(host)?), None, Some(host))
        }
        CopyIn::Tar(input) => (None, Some(input), None),
    };
    let request = Request::CopyIn {
        guest: guest.to_owned(),
        host,
    };
    match connection.send(request, &[], body) {
        Ok(answer) => Ok(Through::Done(answer.value.as_u64().unwrap_or(0))),
        // No guest runs (any more): a path is copied again; a tar stream has been
        // read, and is not there to copy again.
        Err(e) if e.is_not_running() => match from_path {
            Some(host) => Ok(Through::Cut(CopyIn::Path(host))),
            None => Err(FilesError::Refused(format!(
                "container {} stopped while the archive was copied in: nothing of it was \
                 kept; copy it again",
                container.name()
            ))),
        },
        Err(e) => Err(owner_err(e)),
    }
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

/// What a copy has created so far, undone when it fails, so that a copy either
/// completes or leaves nothing of itself behind (an existing file it replaces is
/// replaced whole or not at all: each file is written under a temporary name and
/// renamed over its destination).
#[derive(Debug)]
struct Created<P> {
    /// In the order made: children after their directory.
    entries: Vec<(P, bool)>,
}

impl<P> Default for Created<P> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<P> Created<P> {
    fn add(&mut self, path: P, is_dir: bool) {
        self.entries.push((path, is_dir));
    }

    /// Removes what was created, the last first.
    fn undo(self, mut remove: impl FnMut(&P, bool)) {
        for (path, is_dir) in self.entries.iter().rev() {
            remove(path, *is_dir);
        }
    }
}

/// A fresh temporary name for a file being copied to `name`.
fn temp_name(name: &str) -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    let tag: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(".{name}.capsule-cp-{tag}")
}

/// Where a copy from the container goes: a host path, or a tar stream (`cp C:/x -`).
pub enum CopyOut<'a> {
    Path(&'a Path),
    Tar(&'a mut dyn Write),
}

impl std::fmt::Debug for CopyOut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::Tar(_) => f.write_str("Tar"),
        }
    }
}

/// Where a copy into the container comes from: a host path, or a tar stream (`cp -
/// C:/dir`, extracted into the directory).
pub enum CopyIn<'a> {
    Path(&'a Path),
    Tar(&'a mut dyn Read),
}

impl std::fmt::Debug for CopyIn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::Tar(_) => f.write_str("Tar"),
        }
    }
}

/// Copies `guest` (a file, a directory with everything below it, or a symlink, copied
/// as a symlink) out of the container to `host`: into it when it is an existing
/// directory, else as it; or as a tar archive whose one top entry is its name. Paths
/// resolve inside the container; nothing is followed on the host below the directory
/// the user named (an existing host symlink at a destination is refused): every entry
/// is made or opened by name in the handle of the directory above it, without
/// following a symlink, so one put there meanwhile cannot redirect the write. A copy
/// that fails leaves nothing it made.
///
/// # Errors
/// [`FilesError`].
pub fn copy_out(container: &Container, guest: &str, to: CopyOut<'_>) -> Result<u64, FilesError> {
    let to = match through_owner(container, to, |to| copy_out_running(container, guest, to))? {
        Ok(count) => return Ok(count),
        Err((_, true)) => {
            return Err(FilesError::Refused(format!(
                "container {} kept stopping while {guest} was copied out: nothing of it \
                 was kept; copy it again",
                container.name()
            )));
        }
        Err((to, false)) => to,
    };
    let root = RootFs::assemble(spec_of(container)?)?;
    unless_removed(container, copy_out_vfs(root.vfs(), guest, to))
}

/// How long a copy cut by its container's stop waits for the process to end (it
/// ends within milliseconds; one restarting the container runs on), and how many
/// times it is made again before it goes to the container's directory (`cp` in) or
/// gives up (`cp` out).
const CUT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const CUTS: u32 = 2;

/// That `guest` is there to copy out.
///
/// # Errors
/// [`FilesError::Guest`] when it is not.
pub fn check_guest_path(vfs: &Vfs, guest: &str) -> Result<(), FilesError> {
    let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
    vfs.stat(&loc).map_err(guest_err(guest))?;
    Ok(())
}

/// [`copy_out`] from the filesystem `vfs`.
///
/// # Errors
/// [`FilesError`].
pub fn copy_out_vfs(vfs: &Vfs, guest: &str, to: CopyOut<'_>) -> Result<u64, FilesError> {
    check_guest_path(vfs, guest)?;
    let name = copy_name(guest);
    let mut count = 0;
    let host = match to {
        CopyOut::Path(host) => host,
        CopyOut::Tar(out) => {
            let mut tar = tar::Builder::new(out);
            tar.follow_symlinks(false);
            copy_out_tar(vfs, guest, name, &mut tar, &mut count)?;
            tar.into_inner()
                .and_then(|out| out.flush())
                .map_err(host_err(Path::new("-")))?;
            return Ok(count);
        }
    };
    let (dir, dest_name, dest) = open_destination(host, name)?;
    let mut created = Created::default();
    let result = copy_out_entry(
        vfs,
        guest,
        &dir,
        &dest_name,
        &dest,
        &mut created,
        &mut count,
    );
    if result.is_err() {
        undo_out(created);
    }
    result.map(|()| count)
}

/// Removes what a copy out that failed made on the host.
fn undo_out(created: Created<(Rc<Dir>, OsString)>) {
    created.undo(|(dir, name), is_dir| {
        let _ = if is_dir {
            dir.remove_dir(name)
        } else {
            dir.remove_file_or_symlink(name)
        };
    });
}

/// The name a copy of `guest` takes (in a host directory, or as the tar's first
/// entry): its last name, `root` for `/` or a name that is not plain.
fn copy_name(guest: &str) -> &str {
    guest
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| plain_name(n))
        .unwrap_or("root")
}

/// The host directory a copy out goes in, the name it takes there and its path (for
/// messages): inside `host` when that is a directory (a name ending in `/`, or none:
/// `.`, `/`, is a directory the user named, opened as named), else `host` itself, made
/// in the directory above it. `host` as the last name is never followed: a symlink
/// there is refused by [`copy_out_entry`].
fn open_destination(host: &Path, name: &str) -> Result<(Rc<Dir>, OsString, PathBuf), FilesError> {
    let into = |dir: Dir| (Rc::new(dir), OsString::from(name), host.join(name));
    let named_as_dir = host.as_os_str().as_encoded_bytes().ends_with(b"/");
    if host.file_name().is_none() || named_as_dir {
        match crate::ambient::open_dir(host) {
            Ok(dir) => return Ok(into(dir)),
            Err(e) if host.file_name().is_some() && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(host_err(host)(e)),
        }
    }
    let (parent, host_name) = crate::ambient::open_parent(host).map_err(host_err(host))?;
    match parent.open_dir_nofollow(&host_name) {
        Ok(inside) => Ok(into(inside)),
        // A directory that cannot be opened (its permissions) is not copied over.
        Err(e)
            if parent
                .symlink_metadata(&host_name)
                .is_ok_and(|m| m.is_dir()) =>
        {
            Err(host_err(host)(e))
        }
        Err(_) => Ok((Rc::new(parent), host_name, host.to_owned())),
    }
}

/// Reads a container's file from its start.
struct GuestReader {
    file: std::sync::Arc<dyn crate::fs::node::OpenFile>,
    pos: u64,
}

impl Read for GuestReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .file
            .read_at(buf, self.pos)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn open_for_reading(
    vfs: &Vfs,
    loc: &crate::fs::Loc,
    guest: &str,
) -> Result<GuestReader, FilesError> {
    let file = vfs
        .open(
            loc,
            OpenOptions {
                read: true,
                ..Default::default()
            },
            0,
        )
        .map_err(guest_err(guest))?;
    Ok(GuestReader { file, pos: 0 })
}

fn copy_out_tar(
    vfs: &Vfs,
    guest: &str,
    name: &str,
    tar: &mut tar::Builder<&mut dyn Write>,
    count: &mut u64,
) -> Result<(), FilesError> {
    let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
    let stat = vfs.stat(&loc).map_err(guest_err(guest))?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(stat.mode & 0o7777);
    header.set_mtime(u64::try_from(stat.mtime.0).unwrap_or(0));
    let written = match stat.kind {
        Kind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{name}/"), std::io::empty())
        }
        Kind::Symlink => {
            let target = vfs.readlink(&loc).map_err(guest_err(guest))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, name, target)
        }
        Kind::File => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(stat.size);
            let reader = open_for_reading(vfs, &loc, guest)?;
            // At most the size the header says, even if the file grows meanwhile.
            tar.append_data(&mut header, name, reader.take(stat.size))
        }
    };
    written.map_err(host_err(Path::new("-")))?;
    *count += 1;
    if stat.kind == Kind::Dir {
        for entry in vfs.list(&loc).map_err(guest_err(guest))? {
            if !plain_name(&entry.name) {
                continue;
            }
            let child = format!("{}/{}", guest.trim_end_matches('/'), entry.name);
            copy_out_tar(vfs, &child, &format!("{name}/{}", entry.name), tar, count)?;
        }
    }
    Ok(())
}

/// Copies `guest` to the entry `name` of the host directory `dir` (`dest` is its path,
/// for messages), made or opened by name in `dir` without following a symlink.
fn copy_out_entry(
    vfs: &Vfs,
    guest: &str,
    dir: &Rc<Dir>,
    name: &OsStr,
    dest: &Path,
    created: &mut Created<(Rc<Dir>, OsString)>,
    count: &mut u64,
) -> Result<(), FilesError> {
    let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
    let stat = vfs.stat(&loc).map_err(guest_err(guest))?;
    let place = HostPlace { dir, name, dest };
    match stat.kind {
        Kind::Dir => {
            let inside = place.make_dir(guest, created)?;
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
                    created,
                    count,
                )?;
            }
        }
        Kind::Symlink => {
            let target = vfs.readlink(&loc).map_err(guest_err(guest))?;
            place.make_symlink(guest, &target, created)?;
        }
        Kind::File => {
            let mut reader = open_for_reading(vfs, &loc, guest)?;
            place.write_file(created, |buf| {
                let n = reader
                    .file
                    .read_at(buf, reader.pos)
                    .map_err(guest_err(guest))?;
                reader.pos += n as u64;
                Ok(n)
            })?;
        }
    }
    *count += 1;
    Ok(())
}

/// Writes the tar `archive` of `guest` (as [`copy_out_tar`] makes it, its first entry
/// named by [`copy_name`]) to `host` as [`copy_out_vfs`] would copy `guest` there: each
/// entry made by name in its directory without following a symlink, each file under a
/// temporary name until whole. Nothing in it is trusted: an entry that is not a plain
/// name below one already made is refused, as is a file shorter than its header says.
fn copy_out_from_tar(
    archive: &mut dyn Read,
    guest: &str,
    host: &Path,
    created: &mut Created<(Rc<Dir>, OsString)>,
    count: &mut u64,
) -> Result<(), FilesError> {
    let name = copy_name(guest);
    let (top, top_name, top_dest) = open_destination(host, name)?;
    let garbled = |what: String| FilesError::Refused(format!("the copy of {guest} {what}"));
    let broken = |e: std::io::Error| garbled(format!("broke off: {e}"));
    // The directories made so far, by their path in the archive.
    let mut dirs: std::collections::HashMap<String, (Rc<Dir>, PathBuf)> =
        std::collections::HashMap::new();
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| garbled("held a name that is not UTF-8".to_owned()))?;
        let path = path.strip_suffix('/').unwrap_or(&path).to_owned();
        let (dir, entry_name, dest) = if path == name {
            (Rc::clone(&top), top_name.clone(), top_dest.clone())
        } else {
            let below = path
                .rsplit_once('/')
                .filter(|(_, leaf)| plain_name(leaf))
                .and_then(|(parent, leaf)| dirs.get(parent).map(|d| (d, leaf)));
            let Some(((dir, parent_dest), leaf)) = below else {
                return Err(garbled(format!("held {path}, outside what it copies")));
            };
            (Rc::clone(dir), OsString::from(leaf), parent_dest.join(leaf))
        };
        let entry_guest = format!("{}{}", guest.trim_end_matches('/'), &path[name.len()..]);
        let place = HostPlace {
            dir: &dir,
            name: &entry_name,
            dest: &dest,
        };
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                let inside = place.make_dir(&entry_guest, created)?;
                dirs.insert(path, (inside, dest.clone()));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .and_then(|t| String::from_utf8(t.into_owned()).ok())
                    .ok_or_else(|| garbled(format!("held a symlink {path} without a target")))?;
                place.make_symlink(&entry_guest, &target, created)?;
            }
            tar::EntryType::Regular => {
                let size = entry.header().size().map_err(broken)?;
                let mut written = 0u64;
                place.write_file(created, |buf| {
                    let n = entry.read(buf).map_err(broken)?;
                    written += n as u64;
                    if n == 0 && written < size {
                        return Err(garbled(format!("broke off in {path}")));
                    }
                    Ok(n)
                })?;
            }
            other => return Err(garbled(format!("held {path} of kind {other:?}"))),
        }
        *count += 1;
    }
    Ok(())
}

/// An entry to make on the host: `name` in `dir`, `dest` its path (for messages).
/// It is made by name in `dir`, never through a symlink there.
struct HostPlace<'p> {
    dir: &'p Rc<Dir>,
    name: &'p OsStr,
    dest: &'p Path,
}

impl HostPlace<'_> {
    fn symlink_refused(&self) -> FilesError {
        FilesError::Refused(format!(
            "{} is a symlink on the host: refusing to write through it",
            self.dest.display()
        ))
    }

    /// What is there now; a symlink is refused.
    fn existing(&self) -> Result<Option<cap_std::fs::Metadata>, FilesError> {
        let existing = self.dir.symlink_metadata(self.name).ok();
        if existing
            .as_ref()
            .is_some_and(|m| m.file_type().is_symlink())
        {
            return Err(self.symlink_refused());
        }
        Ok(existing)
    }

    /// The directory (`guest`'s copy), made or kept when one is there; opened.
    fn make_dir(
        &self,
        guest: &str,
        created: &mut Created<(Rc<Dir>, OsString)>,
    ) -> Result<Rc<Dir>, FilesError> {
        let (dir, name, dest) = (self.dir, self.name, self.dest);
        self.existing()?;
        match dir.create_dir(name) {
            Ok(()) => created.add((Rc::clone(dir), name.to_owned()), true),
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && dir.symlink_metadata(name).is_ok_and(|m| m.is_dir()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(FilesError::Refused(format!(
                    "{} is not a directory on the host: cannot copy the directory {guest} over it",
                    dest.display()
                )));
            }
            Err(e) => return Err(host_err(dest)(e)),
        }
        // Opened by name without following: a symlink swapped in since it was made
        // is refused, and the entries below go in this directory, wherever it moves.
        match dir.open_dir_nofollow(name) {
            Ok(inside) => Ok(Rc::new(inside)),
            Err(_)
                if dir
                    .symlink_metadata(name)
                    .is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                Err(self.symlink_refused())
            }
            Err(e) => Err(host_err(dest)(e)),
        }
    }

    /// A symlink to `target` (`guest`'s copy), as it is in the container: an absolute
    /// target stays absolute.
    fn make_symlink(
        &self,
        guest: &str,
        target: &str,
        created: &mut Created<(Rc<Dir>, OsString)>,
    ) -> Result<(), FilesError> {
        self.existing()?;
        crate::fs::sys::symlink(self.dir, target, self.name).map_err(|e| {
            if e.kind() == std::io::ErrorKind::Unsupported {
                FilesError::Refused(format!(
                    "{guest} is a symlink to {target}; this host cannot make symlinks"
                ))
            } else {
                host_err(self.dest)(e)
            }
        })?;
        created.add((Rc::clone(self.dir), self.name.to_owned()), false);
        Ok(())
    }

    /// A file of what `read` gives until it gives 0 bytes. Written under a temporary
    /// name in the directory and renamed over the entry (which replaces a symlink put
    /// there meanwhile, never follows it): a copy that fails (a full disk) leaves no
    /// part of the file, and an existing file whole.
    fn write_file(
        &self,
        created: &mut Created<(Rc<Dir>, OsString)>,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, FilesError>,
    ) -> Result<(), FilesError> {
        let existing = self.existing()?;
        let mut out = crate::store::AtomicFile::create(self.dir, &self.name.to_string_lossy())
            .map_err(host_err(self.dest))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(host_err(self.dest))?;
        }
        out.commit(self.name).map_err(host_err(self.dest))?;
        if existing.is_none() {
            created.add((Rc::clone(self.dir), self.name.to_owned()), false);
        }
        Ok(())
    }
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
/// it; or extracts a tar stream into `guest`, which must be a directory. Writes go to
/// the container's writable layer (or the volume mounted there); every path resolves
/// inside the container, so a symlink in it cannot lead out. A copy that fails (its
/// writable layer full: `--storage-opt size`) leaves nothing it made. Each host entry
/// is opened once, by name in the handle of the directory above it and without
/// following a symlink (one is copied as a symlink), its kind read from what was
/// opened: anything but a file, a directory or a symlink is refused.
///
/// # Errors
/// [`FilesError`].
pub fn copy_in(container: &Container, from: CopyIn<'_>, guest: &str) -> Result<u64, FilesError> {
    // Still cut after the tries (a container restarting on a policy): into its
    // directory, as before a restart.
    let from = match through_owner(container, from, |from| {
        copy_in_running(container, from, guest)
    })? {
        Ok(count) => return Ok(count),
        Err((from, _)) => from,
    };
    let root = RootFs::assemble(spec_of(container)?)?;
    unless_removed(container, copy_in_vfs(root.vfs(), from, guest, &|| false))
}

/// The name a host entry copied in takes.
fn plain_host_name(host: &Path) -> Result<&str, FilesError> {
    host.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| plain_name(n))
        .ok_or_else(|| {
            FilesError::Refused(format!("{}: not a file or directory name", host.display()))
        })
}

/// [`copy_in`] into the filesystem `vfs`. `cut` is asked before each entry and each
/// chunk of a file: when it says so, what the copy made is undone and
/// [`FilesError::Cut`] returned.
///
/// # Errors
/// [`FilesError`].
pub fn copy_in_vfs(
    vfs: &Vfs,
    from: CopyIn<'_>,
    guest: &str,
    cut: &dyn Fn() -> bool,
) -> Result<u64, FilesError> {
    let host = match from {
        CopyIn::Path(host) => host,
        CopyIn::Tar(input) => {
            let is_dir = vfs
                .resolve("", guest, true)
                .and_then(|l| vfs.stat(&l))
                .is_ok_and(|stat| stat.kind == Kind::Dir);
            if !is_dir {
                return Err(FilesError::Refused(format!(
                    "{guest} in the container is not a directory: a tar archive from stdin is extracted into an existing directory"
                )));
            }
            let mut created = Created::default();
            let mut count = 0;
            let mut input = Counted {
                inner: input,
                bytes: 0,
            };
            let result = copy_in_tar(vfs, &mut input, guest, cut, &mut created, &mut count);
            if result.is_ok() && input.bytes == 0 {
                return Err(FilesError::Refused(
                    "stdin is empty: cp - reads a tar archive from stdin".to_owned(),
                ));
            }
            if result.is_err() {
                undo_in(vfs, created);
            }
            return result.map(|()| count);
        }
    };
    let name = plain_host_name(host)?.to_owned();
    let (parent, host_name) = crate::ambient::open_parent(host).map_err(host_err(host))?;
    let entry = open_host_entry(&parent, &host_name).map_err(host_err(host))?;
    let target = match vfs.resolve("", guest, true).and_then(|l| vfs.stat(&l)) {
        Ok(stat) if stat.kind == Kind::Dir => format!("{}/{name}", guest.trim_end_matches('/')),
        _ => guest.to_owned(),
    };
    let mut count = 0;
    let mut created = Created::default();
    let result = copy_in_entry(vfs, host, entry, &target, cut, &mut created, &mut count);
    if result.is_err() {
        undo_in(vfs, created);
    }
    result.map(|()| count)
}

fn undo_in(vfs: &Vfs, created: Created<String>) {
    created.undo(|path, is_dir| {
        if let Ok(loc) = vfs.resolve("", path, false) {
            let _ = if is_dir {
                vfs.rmdir(&loc)
            } else {
                vfs.unlink(&loc)
            };
        }
    });
}

/// The guest path a tar entry's path names under `dir`: plain names only (a leading
/// `/` or `./` is dropped, as tar does); `None` for the archive's root itself.
fn tar_entry_path(dir: &str, path: &Path) -> Result<Option<String>, FilesError> {
    let mut out = dir.trim_end_matches('/').to_owned();
    let mut any = false;
    for part in path.components() {
        match part {
            std::path::Component::Normal(name) => {
                let name = name.to_str().filter(|n| plain_name(n)).ok_or_else(|| {
                    FilesError::Refused(format!(
                        "the archive's entry {} has a name that is not a plain file name",
                        path.display()
                    ))
                })?;
                out.push('/');
                out.push_str(name);
                any = true;
            }
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            _ => {
                return Err(FilesError::Refused(format!(
                    "the archive's entry {} leads out of the directory it is extracted to: refusing the archive",
                    path.display()
                )));
            }
        }
    }
    Ok(any.then_some(out))
}

fn copy_in_tar(
    vfs: &Vfs,
    input: &mut dyn Read,
    dir: &str,
    cut: &dyn Fn() -> bool,
    created: &mut Created<String>,
    count: &mut u64,
) -> Result<(), FilesError> {
    let stdin = Path::new("stdin");
    let damaged = |e: std::io::Error| {
        FilesError::Refused(format!(
            "the tar archive on stdin is damaged or cut off: {e}"
        ))
    };
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        if cut() {
            return Err(FilesError::Cut);
        }
        let path = entry.path().map_err(damaged)?.into_owned();
        let Some(guest) = tar_entry_path(dir, &path)? else {
            continue;
        };
        let loc = vfs.resolve("", &guest, false).map_err(guest_err(&guest))?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        match entry.header().entry_type() {
            tar::EntryType::Directory => match vfs.mkdir(&loc, mode | 0o700) {
                Ok(()) => created.add(guest, true),
                Err(e) if e.errno() == crate::fs::Errno::Exist => {}
                Err(e) => return Err(guest_err(&guest)(e)),
            },
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(damaged)?
                    .ok_or_else(|| damaged(std::io::Error::other("a symlink without a target")))?
                    .to_string_lossy()
                    .into_owned();
                write_guest_symlink(vfs, &target, &guest, created)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(damaged)?;
                let mut data = Whole {
                    inner: &mut entry,
                    left: size,
                    path: &path,
                };
                write_guest_file(vfs, &mut data, stdin, &guest, mode, cut, created)?;
            }
            other => {
                return Err(FilesError::Refused(format!(
                    "the archive's entry {} is a {other:?}: only files, directories and symlinks can be copied in",
                    path.display()
                )));
            }
        }
        *count += 1;
    }
    Ok(())
}

/// A reader that counts what it reads.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A tar entry's data, which must be as long as its header says.
struct Whole<'a, R> {
    inner: R,
    left: u64,
    path: &'a Path,
}

impl<R: Read> Read for Whole<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the tar archive is damaged or cut off: it ends in the middle of {}",
                    self.path.display()
                ),
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// Splits a guest path into its directory and its last name.
fn split_guest(guest: &str) -> (&str, &str) {
    match guest.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("/", guest),
    }
}

/// Writes `input` to the file `guest` under a temporary name, then renames it into
/// place: a write that fails (the layer is full) leaves no part of it.
fn write_guest_file(
    vfs: &Vfs,
    input: &mut dyn Read,
    host: &Path,
    guest: &str,
    mode: u32,
    cut: &dyn Fn() -> bool,
    created: &mut Created<String>,
) -> Result<(), FilesError> {
    let (dir, name) = split_guest(guest);
    let temp = format!("{}/{}", dir.trim_end_matches('/'), temp_name(name));
    let temp_loc = vfs.resolve("", &temp, false).map_err(guest_err(guest))?;
    let file = vfs
        .open(
            &temp_loc,
            OpenOptions {
                write: true,
                create: true,
                exclusive: true,
                ..Default::default()
            },
            mode,
        )
        .map_err(guest_err(guest))?;
    let written = (|| {
        let mut buf = vec![0u8; 256 * 1024];
        let mut pos = 0u64;
        loop {
            if cut() {
                return Err(FilesError::Cut);
            }
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
        drop(file);
        let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
        let existed = vfs.stat(&loc).is_ok();
        vfs.rename(&temp_loc, &loc).map_err(guest_err(guest))?;
        if !existed {
            created.add(guest.to_owned(), false);
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = vfs.unlink(&temp_loc);
    }
    written
}

/// Makes the symlink `guest` (replacing what is there) under a temporary name first.
fn write_guest_symlink(
    vfs: &Vfs,
    target: &str,
    guest: &str,
    created: &mut Created<String>,
) -> Result<(), FilesError> {
    let (dir, name) = split_guest(guest);
    let temp = format!("{}/{}", dir.trim_end_matches('/'), temp_name(name));
    let temp_loc = vfs.resolve("", &temp, false).map_err(guest_err(guest))?;
    vfs.symlink(target, &temp_loc).map_err(guest_err(guest))?;
    let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
    let existed = vfs.stat(&loc).is_ok();
    if let Err(e) = vfs.rename(&temp_loc, &loc) {
        let _ = vfs.unlink(&temp_loc);
        return Err(guest_err(guest)(e));
    }
    if !existed {
        created.add(guest.to_owned(), false);
    }
    Ok(())
}

/// Copies the opened host entry `entry` (`host` is its path, for messages) to `guest`.
fn copy_in_entry(
    vfs: &Vfs,
    host: &Path,
    entry: HostEntry,
    guest: &str,
    cut: &dyn Fn() -> bool,
    created: &mut Created<String>,
    count: &mut u64,
) -> Result<(), FilesError> {
    if cut() {
        return Err(FilesError::Cut);
    }
    match entry {
        HostEntry::Dir(dir) => {
            let loc = vfs.resolve("", guest, false).map_err(guest_err(guest))?;
            match vfs.mkdir(&loc, 0o755) {
                Ok(()) => created.add(guest.to_owned(), true),
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
                copy_in_entry(
                    vfs,
                    &child,
                    entry,
                    &format!("{guest}/{name}"),
                    cut,
                    created,
                    count,
                )?;
            }
        }
        HostEntry::Symlink(target) => {
            write_guest_symlink(vfs, &target.to_string_lossy(), guest, created)?;
        }
        HostEntry::File(input) => {
            let mut input = input.into_std();
            write_guest_file(vfs, &mut input, host, guest, 0o644, cut, created)?;
        }
    }
    *count += 1;
    Ok(())
}
