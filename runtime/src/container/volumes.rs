//! Containers and volumes: the one rule every command that removes volumes (`volume
//! rm`, `volume prune`, `rm -v`) applies — a volume is in use while any container,
//! running or stopped, mounts it — and the mounts of a new container: host
//! directories checked, volumes created and, when new and empty, filled from the
//! image's content at their path (as Docker does).
//!
//! A container's volumes are attached and recorded in its config under the volumes'
//! lock, and removals check for users under the same lock, so `volume rm` never
//! removes a volume that a container being created is about to mount.

use crate::fs::rootfs::RootFs;
use crate::home::Home;
use crate::spec::{GuestPath, Mount, MountRequest, MountSource, RunSpec, SpecError};
use crate::volume::{VolumeError, VolumeUse, Volumes, VolumesLock};
use std::collections::HashMap;

/// Which volumes containers use.
#[derive(Debug, Default)]
pub struct VolumesInUse {
    /// Volume name → the names of the containers that mount it.
    users: HashMap<String, Vec<String>>,
}

impl VolumesInUse {
    /// The containers of a home (see [`super::Container::list`]) by volume.
    pub fn of(home: &Home) -> Self {
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for container in super::Container::list(home) {
            for volume in &container.config.volumes {
                users
                    .entry(volume.name.clone())
                    .or_default()
                    .push(container.config.name.clone());
            }
        }
        Self { users }
    }

    /// The names of the containers that mount the volume.
    pub fn users(&self, name: &str) -> &[String] {
        self.users.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Removes a volume unless a container uses it.
///
/// # Errors
/// [`VolumeError::InUse`] naming a container that uses it, [`VolumeError::NotFound`],
/// the host's error.
pub fn remove(home: &Home, volumes: &Volumes, name: &str) -> Result<(), VolumeError> {
    let lock = volumes.lock()?;
    volumes.get(name)?;
    if let Some(container) = VolumesInUse::of(home).users(name).first() {
        return Err(VolumeError::InUse {
            name: name.to_owned(),
            container: container.clone(),
        });
    }
    volumes.remove(&lock, name)
}

/// Removes the volumes no container uses — only anonymous ones unless `all` (as
/// Docker 23 and later do) — and returns each one removed with the bytes it held.
///
/// # Errors
/// The host's error taking the lock; a volume that cannot be removed is skipped.
pub fn prune(home: &Home, volumes: &Volumes, all: bool) -> Result<Vec<(String, u64)>, VolumeError> {
    let lock = volumes.lock()?;
    volumes.remove_leftovers(&lock);
    let in_use = VolumesInUse::of(home);
    let mut removed = Vec::new();
    for volume in volumes.list() {
        let name = volume.name();
        if !(all || volume.meta.anonymous) || !in_use.users(name).is_empty() {
            continue;
        }
        let size = volumes.size(name);
        match volumes.remove(&lock, name) {
            Ok(()) => removed.push((name.to_owned(), size)),
            Err(e) => tracing::warn!(volume = %name, error = %e, "cannot remove volume"),
        }
    }
    Ok(removed)
}

/// Removes a removed container's anonymous volumes (`rm -v`, `run --rm`) that no
/// other container uses; returns the names removed.
///
/// # Errors
/// The first error; the volumes before it are removed.
pub fn remove_anonymous(home: &Home, used: &[VolumeUse]) -> Result<Vec<String>, VolumeError> {
    let mut removed = Vec::new();
    if !used.iter().any(|v| v.anonymous) {
        return Ok(removed);
    }
    let volumes = Volumes::open(home)?;
    for volume in used.iter().filter(|v| v.anonymous) {
        match remove(home, &volumes, &volume.name) {
            Ok(()) => removed.push(volume.name.clone()),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Checks the host directories of bind mounts before anything is created; `None`
/// for each volume.
///
/// # Errors
/// [`SpecError::VolumeMissing`], [`SpecError::VolumeNotDir`].
pub fn check_binds(requests: &[MountRequest]) -> Result<Vec<Option<Mount>>, SpecError> {
    requests
        .iter()
        .map(|r| match r.source {
            MountSource::Bind(_) => r.bind().map(Some),
            MountSource::Volume(_) => Ok(None),
        })
        .collect()
}

/// A new container's volume mounts, attached under the volumes' lock, which must be
/// held until the container's config records [`Attached::volumes`].
#[derive(Debug)]
pub struct Attached {
    /// Every mount of the requests in order (bind mounts as checked, volumes at their
    /// `_data/` directory), then the anonymous volumes of the image's `VOLUME`s.
    pub mounts: Vec<Mount>,
    pub volumes: Vec<VolumeUse>,
    /// Volumes this call created (removed again by [`Attached::undo`]).
    created: Vec<String>,
    home: Home,
    lock: VolumesLock,
}

impl Attached {
    /// Removes the volumes this call created (the container could not be made).
    pub fn undo(self) {
        if let Ok(volumes) = Volumes::open(&self.home) {
            for name in &self.created {
                let _ = volumes.remove(&self.lock, name);
            }
        }
    }
}

/// Creates (or finds) the volumes `requests` name, an anonymous volume for each of
/// `image_volumes` that nothing else is mounted at, and fills each new or empty one
/// from `image` (a spec whose layers are the image's; `None`: nothing to fill from)
/// unless the request says `volume-nocopy`. `binds` are [`check_binds`]' answers for
/// `requests`; `taken` are other guest paths mounted (tmpfs) that an image's `VOLUME`
/// gives way to.
///
/// # Errors
/// [`VolumeError`]; volumes created before the error are removed again.
pub fn attach(
    home: &Home,
    requests: &[MountRequest],
    binds: Vec<Option<Mount>>,
    image_volumes: &[GuestPath],
    taken: &[GuestPath],
    image: Option<&RunSpec>,
) -> Result<Attached, VolumeError> {
    let volumes = Volumes::open(home)?;
    let lock = volumes.lock()?;
    let mut attached = Attached {
        mounts: Vec::new(),
        volumes: Vec::new(),
        created: Vec::new(),
        home: home.clone(),
        lock,
    };
    let mut root: Option<RootFs> = None;
    let mut wanted: Vec<(Option<&str>, GuestPath, bool, bool)> = Vec::new();
    for (request, bind) in requests.iter().zip(binds) {
        if let Some(mount) = bind {
            attached.mounts.push(mount);
            continue;
        }
        if let MountSource::Volume(name) = &request.source {
            wanted.push((
                name.as_deref(),
                request.guest.clone(),
                request.read_only,
                request.no_copy,
            ));
        }
    }
    for path in image_volumes {
        if requests.iter().any(|r| &r.guest == path) || taken.contains(path) {
            continue;
        }
        wanted.push((None, path.clone(), false, false));
    }
    for (name, guest, read_only, no_copy) in wanted {
        let result = (|| {
            let (volume, created) = volumes.create(
                &attached.lock,
                name,
                name.is_none(),
                std::collections::BTreeMap::new(),
            )?;
            if created {
                attached.created.push(volume.name().to_owned());
            }
            if let Some(image) = image
                && !no_copy
                && volumes.is_empty(volume.name())?
            {
                if root.is_none() {
                    root = Some(
                        RootFs::of_image(image).map_err(|source| VolumeError::Image {
                            name: volume.name().to_owned(),
                            source: Box::new(source),
                        })?,
                    );
                }
                if let Some(root) = &root {
                    let n = volumes.seed(&attached.lock, volume.name(), root.vfs(), &guest)?;
                    tracing::debug!(volume = %volume.name(), entries = n, "volume filled from the image");
                }
            }
            Ok::<_, VolumeError>(volume)
        })();
        let volume = match result {
            Ok(volume) => volume,
            Err(e) => {
                attached.undo();
                return Err(e);
            }
        };
        attached.mounts.push(Mount {
            host: volume.mountpoint.clone(),
            guest: guest.clone(),
            read_only,
        });
        attached.volumes.push(VolumeUse {
            name: volume.name().to_owned(),
            destination: guest,
            read_only,
            anonymous: volume.meta.anonymous,
        });
    }
    Ok(attached)
}
