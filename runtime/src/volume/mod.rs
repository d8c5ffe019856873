//! Named volumes, as Docker's `local` driver keeps them: `$CAPSULE_HOME/volumes/NAME/`
//! holds `volume.json` (the volume's metadata) and `_data/` (its content, mounted into
//! containers as a host directory).
//!
//! Every change to the set of volumes (create, seed, remove) happens under one lock,
//! `volumes/.lock`, so that two `run -v same:/x` at once do not both create or seed the
//! volume, and `volume rm` cannot remove a volume while a container that uses it is
//! being created. A volume appears whole or not at all: it is made in a temporary
//! directory and renamed into place, seeded in a staging directory that replaces the
//! empty `_data/`, and renamed out of the way before it is deleted.
//!
//! Whether a volume is in use (by a container, running or stopped) is the containers'
//! business: see [`crate::container::volumes`].

use crate::fs::hostdir::HostDir;
use crate::fs::layer::Kind;
use crate::fs::node::{Backend, OpenOptions, SetTime};
use crate::fs::{FsError, Vfs};
use crate::home::Home;
use crate::spec::GuestPath;
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

/// The metadata file of a volume.
const META: &str = "volume.json";
/// The directory that holds a volume's content.
pub const DATA: &str = "_data";
/// The lock every change to the volumes is made under.
const LOCK: &str = ".lock";
/// Where a volume is filled before it replaces the empty `_data/`.
const SEED: &str = ".seed";

/// A volume a container mounts, as its config records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeUse {
    /// The volume's name (64 hex digits for an anonymous one).
    pub name: String,
    /// Where the container sees it.
    pub destination: GuestPath,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Made for this container (`-v /path`, an image's `VOLUME`): `rm -v` removes it.
    #[serde(default)]
    pub anonymous: bool,
}

/// A volume's metadata (`volume.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// Made without a name, for one container.
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A volume of a home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub meta: VolumeMeta,
    /// The host directory that holds its content.
    pub mountpoint: PathBuf,
}

impl Volume {
    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }
}

/// Errors creating, seeding or removing volumes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{}", crate::spec::volume_name_rule(.0))]
    InvalidName(String),
    #[error("no such volume: {0} (capsule volume ls lists them)")]
    NotFound(String),
    #[error(
        "volume {name} is in use by container {container}: remove the container first (capsule rm {container})"
    )]
    InUse { name: String, container: String },
    #[error(
        "volume {0} is damaged (its volume.json is missing or unreadable): move its directory out of the volumes directory, or remove it"
    )]
    Damaged(String),
    #[error("cannot fill volume {name} from {path} in the image")]
    Seed {
        name: String,
        path: GuestPath,
        #[source]
        source: FsError,
    },
    #[error("cannot read the image to fill volume {name}")]
    Image {
        name: String,
        #[source]
        source: Box<crate::fs::rootfs::RootFsError>,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> VolumeError {
    let what = what.into();
    move |source| VolumeError::Io { what, source }
}

/// The volumes of a home.
#[derive(Debug)]
pub struct Volumes {
    root: PathBuf,
    dir: Dir,
}

/// Proof that this process holds the volumes' lock (released when dropped).
#[derive(Debug)]
pub struct VolumesLock(#[allow(dead_code)] std::fs::File);

/// A new volume's name: 64 random hex digits, as Docker names anonymous volumes.
fn random_name() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Volumes {
    /// The volumes of `home` (`volumes/` is created when missing).
    ///
    /// # Errors
    /// The host's error.
    pub fn open(home: &Home) -> Result<Self, VolumeError> {
        let root = home.root().join("volumes");
        let dir = crate::ambient::create_and_open_dir(&root)
            .map_err(io_error(format!("cannot open {}", root.display())))?;
        Ok(Self { root, dir })
    }

    /// Takes the lock every change to the volumes is made under (waiting for it).
    ///
    /// # Errors
    /// The host's error.
    pub fn lock(&self) -> Result<VolumesLock, VolumeError> {
        crate::store::lock_exclusive(&self.dir, LOCK)
            .map(VolumesLock)
            .map_err(io_error("cannot lock the volumes"))
    }

    /// The volume named `name`.
    ///
    /// # Errors
    /// [`VolumeError::NotFound`] (also for a name that cannot be a volume's).
    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        if !crate::spec::valid_volume_name(name) {
            return Err(VolumeError::NotFound(name.to_owned()));
        }
        let meta = self
            .dir
            .read_to_string(format!("{name}/{META}"))
            .ok()
            .and_then(|text| serde_json::from_str::<VolumeMeta>(&text).ok())
            .filter(|meta| meta.name == name)
            .ok_or_else(|| VolumeError::NotFound(name.to_owned()))?;
        Ok(Volume {
            meta,
            mountpoint: self.root.join(name).join(DATA),
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Volume> {
        let Ok(entries) = self.dir.entries() else {
            return Vec::new();
        };
        let mut out: Vec<Volume> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .filter_map(|name| self.get(&name).ok())
            .collect();
        out.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        out
    }

    /// Creates the volume `name` (with a random name when `None`), or finds it when it
    /// exists (as `docker volume create` and `-v NAME:/path` do); `true` when created.
    /// An `anonymous` volume is one made for a container (`-v /path`, an image's
    /// `VOLUME`): `rm -v` and `volume prune` remove it.
    ///
    /// # Errors
    /// [`VolumeError::InvalidName`], the host's error.
    pub fn create(
        &self,
        _lock: &VolumesLock,
        name: Option<&str>,
        anonymous: bool,
        labels: BTreeMap<String, String>,
    ) -> Result<(Volume, bool), VolumeError> {
        let name = match name {
            Some(name) => {
                if !crate::spec::valid_volume_name(name) {
                    return Err(VolumeError::InvalidName(name.to_owned()));
                }
                if let Ok(volume) = self.get(name) {
                    return Ok((volume, false));
                }
                name.to_owned()
            }
            None => random_name().map_err(io_error("cannot name a new volume"))?,
        };
        let what = || format!("cannot create volume {name}");
        let meta = VolumeMeta {
            name: name.clone(),
            created: crate::image::oci::rfc3339(crate::time::now()),
            anonymous,
            labels,
        };
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| io_error(what())(io::Error::other(e)))?;
        // Volumes appear by rename, whole: a directory of this name without readable
        // metadata was not made by Capsule, or was damaged; it is not overwritten.
        if self.dir.symlink_metadata(&name).is_ok() {
            return Err(VolumeError::Damaged(name));
        }
        let tmp = format!(".new-{name}-{}", std::process::id());
        let made = (|| {
            self.dir.create_dir(&tmp)?;
            self.dir.create_dir(format!("{tmp}/{DATA}"))?;
            self.dir.write(format!("{tmp}/{META}"), &json)?;
            self.dir.rename(&tmp, &self.dir, &name)
        })();
        if let Err(e) = made {
            let _ = self.dir.remove_dir_all(&tmp);
            return Err(io_error(what())(e));
        }
        Ok((self.get(&name)?, true))
    }

    /// Removes a volume and its content. Whether a container uses it is the caller's
    /// question ([`crate::container::volumes::remove`] asks it).
    ///
    /// # Errors
    /// [`VolumeError::NotFound`], the host's error.
    pub fn remove(&self, _lock: &VolumesLock, name: &str) -> Result<(), VolumeError> {
        self.get(name)?;
        // Renamed out of the way first, so that a removal cut short never leaves
        // half a volume under its name.
        let doomed = format!(".rm-{name}-{}", std::process::id());
        self.dir
            .rename(name, &self.dir, &doomed)
            .map_err(io_error(format!("cannot remove volume {name}")))?;
        self.dir
            .remove_dir_all(&doomed)
            .map_err(io_error(format!("cannot remove volume {name}")))
    }

    /// Removes what creations and removals cut short left behind (`.new-*`, `.rm-*`):
    /// under the lock, nothing else is making or removing a volume.
    pub fn remove_leftovers(&self, _lock: &VolumesLock) {
        let Ok(entries) = self.dir.entries() else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if (name.starts_with(".new-") || name.starts_with(".rm-"))
                && let Err(e) = self.dir.remove_dir_all(&name)
            {
                tracing::warn!(entry = %name, error = %e, "cannot remove a leftover");
            }
        }
    }

    /// Whether a volume holds nothing (Docker fills only an empty volume from the
    /// image).
    ///
    /// # Errors
    /// The host's error.
    pub fn is_empty(&self, name: &str) -> Result<bool, VolumeError> {
        let mut entries = self
            .dir
            .read_dir(format!("{name}/{DATA}"))
            .map_err(io_error(format!("cannot read volume {name}")))?;
        Ok(entries.next().is_none())
    }

    /// Bytes of file content a volume holds (symlinks and directories count nothing).
    pub fn size(&self, name: &str) -> u64 {
        fn walk(dir: &Dir) -> u64 {
            let Ok(entries) = dir.entries() else {
                return 0;
            };
            let mut total = 0;
            for entry in entries.flatten() {
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    if let Ok(sub) = entry.open_dir() {
                        total += walk(&sub);
                    }
                } else if ft.is_file() {
                    total += entry.metadata().map_or(0, |m| m.len());
                }
            }
            total
        }
        self.dir
            .open_dir(format!("{name}/{DATA}"))
            .map_or(0, |d| walk(&d))
    }

    /// Fills an empty volume with what `source` (an image's root filesystem) holds at
    /// `path`, as Docker does for a new volume: files with their content and mode,
    /// directories, and symlinks as symlinks (never followed). Nothing is copied when
    /// `path` is missing or not a directory in the image. The copy is made in a
    /// staging directory that then replaces the empty `_data/`; returns the number of
    /// entries copied.
    ///
    /// # Errors
    /// [`VolumeError::Seed`] for an error reading the image or writing the copy.
    pub fn seed(
        &self,
        _lock: &VolumesLock,
        name: &str,
        source: &Vfs,
        path: &GuestPath,
    ) -> Result<u64, VolumeError> {
        let seed_err = |source: FsError| VolumeError::Seed {
            name: name.to_owned(),
            path: path.clone(),
            source,
        };
        let Ok(loc) = source.resolve("", path.as_str(), true) else {
            return Ok(0);
        };
        if !matches!(source.kind(&loc), Ok(Kind::Dir)) {
            return Ok(0);
        }
        let volume = self
            .dir
            .open_dir(name)
            .map_err(io_error(format!("cannot open volume {name}")))?;
        if volume.symlink_metadata(SEED).is_ok() {
            volume
                .remove_dir_all(SEED)
                .map_err(io_error(format!("cannot clean volume {name}")))?;
        }
        volume
            .create_dir(SEED)
            .map_err(io_error(format!("cannot fill volume {name}")))?;
        let staging = volume
            .open_dir(SEED)
            .map_err(io_error(format!("cannot fill volume {name}")))?;
        let target = HostDir::new(staging, 0);
        let mut copied = 0;
        let result = copy_tree(source, &loc.path, &target, "", &mut copied);
        if let Err(e) = result {
            let _ = volume.remove_dir_all(SEED);
            return Err(seed_err(e));
        }
        // The directory keeps the image's mode.
        if let Ok(stat) = source.stat(&loc) {
            let _ = set_mode(&volume, SEED, stat.mode);
        }
        let swapped = volume
            .remove_dir(DATA)
            .and_then(|()| volume.rename(SEED, &volume, DATA));
        if let Err(e) = swapped {
            let _ = volume.remove_dir_all(SEED);
            let _ = volume.create_dir(DATA);
            return Err(io_error(format!("cannot fill volume {name}"))(e));
        }
        Ok(copied)
    }
}

#[cfg(unix)]
fn set_mode(dir: &Dir, name: &str, mode: u32) -> io::Result<()> {
    use cap_std::fs::PermissionsExt;
    dir.set_permissions(name, cap_std::fs::Permissions::from_mode(mode & 0o7777))
}

#[cfg(not(unix))]
fn set_mode(_dir: &Dir, _name: &str, _mode: u32) -> io::Result<()> {
    Ok(())
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Copies the directory `from` (a canonical guest path without the leading `/`) of
/// `source` into `to` (relative to `target`'s root).
fn copy_tree(
    source: &Vfs,
    from: &str,
    target: &HostDir,
    to: &str,
    copied: &mut u64,
) -> Result<(), FsError> {
    let dir = source.resolve("", &format!("/{from}"), false)?;
    for entry in source.list(&dir)? {
        if entry.name == "." || entry.name == ".." {
            continue;
        }
        let child = join(from, &entry.name);
        let dest = join(to, &entry.name);
        let loc = source.resolve("", &format!("/{child}"), false)?;
        let stat = source.stat(&loc)?;
        match stat.kind {
            Kind::Dir => {
                // Owner access is kept so the copy can be filled (and later used).
                target.mkdir(&dest, (stat.mode & 0o7777) | 0o700)?;
                copy_tree(source, &child, target, &dest, copied)?;
            }
            Kind::Symlink => {
                let link = source.readlink(&loc)?;
                target.symlink(&link, &dest)?;
            }
            Kind::File => {
                let input = source.open(
                    &loc,
                    OpenOptions {
                        read: true,
                        ..Default::default()
                    },
                    0,
                )?;
                let output = target.open(
                    &dest,
                    OpenOptions {
                        write: true,
                        create: true,
                        exclusive: true,
                        ..Default::default()
                    },
                    stat.mode & 0o7777,
                )?;
                let mut buf = vec![0u8; 256 * 1024];
                let mut offset = 0u64;
                loop {
                    let n = input.read_at(&mut buf, offset)?;
                    if n == 0 {
                        break;
                    }
                    let mut done = 0;
                    while done < n {
                        done += output.write_at(&buf[done..n], offset + done as u64)?;
                    }
                    offset += n as u64;
                }
                output.set_times(SetTime::Keep, SetTime::At(stat.mtime))?;
            }
        }
        *copied += 1;
    }
    Ok(())
}
