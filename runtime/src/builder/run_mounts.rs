//! `RUN --mount`: what each mount of a step is made of.
//!
//! - `type=bind`: a copy of a directory of the build context (what the ignore file
//!   leaves in it, as BuildKit filters its context), made in the step's work directory
//!   and mounted read-only unless `rw` (then the step's writes to it are thrown away
//!   with the copy). Its content keys the step: a changed file misses the cache.
//! - `type=cache`: a directory of Capsule's home kept between builds by its id, mounted
//!   read-write; it is not part of the layer nor of the key. `sharing=locked` (and
//!   `private`) lets one build at a time use it.
//! - `type=tmpfs`: an empty in-memory directory.

use super::error::{BuildError, at};
use super::executor::Executor;
use super::recipe::{MountKind, Pos, RunMount};
use crate::spec::{GuestPath, Mount, RunSpec, Tmpfs};
use sha2::{Digest as _, Sha256};
use std::path::Path;

impl Executor<'_> {
    /// The context's path of a bind mount's `source` (`""` for its root), checked to
    /// stay inside the context.
    fn bind_source(&self, source: &str, pos: Pos) -> Result<String, BuildError> {
        match super::ignore::clean(source) {
            Ok(path) => Ok(path.unwrap_or_default()),
            Err(_) => Err(at(
                &self.file,
                pos,
                format!(
                    "RUN --mount source={source} is outside the build context: name a directory inside it"
                ),
            )),
        }
    }

    /// The name (for the cache's reasons) and content hash of what a bind mount of
    /// `source` shows the step: every path, kind, mode and file hash below it.
    pub(super) fn bind_source_hash(
        &self,
        source: &str,
        pos: Pos,
    ) -> Result<(String, String), BuildError> {
        let path = self.bind_source(source, pos)?;
        let fail =
            |e: std::io::Error| at(&self.file, pos, format!("RUN --mount source={source}: {e}"));
        let entry = self.context.stat(&path).map_err(fail)?;
        match entry.map(|e| e.kind) {
            Some(super::context::EntryKind::Dir) => {}
            Some(_) => {
                return Err(at(
                    &self.file,
                    pos,
                    format!(
                        "RUN --mount source={source} is a file: Capsule binds directories; bind the directory that holds it"
                    ),
                ));
            }
            None => {
                return Err(at(
                    &self.file,
                    pos,
                    format!(
                        "RUN --mount source={source} is not in the build context{}",
                        self.context
                            .ignore_file
                            .map(|f| format!(" (or {f} leaves it out)"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
        let mut hasher = Sha256::new();
        for entry in self.context.walk(&path).map_err(fail)? {
            hasher.update(entry.path.as_bytes());
            hasher.update([0]);
            match &entry.kind {
                super::context::EntryKind::Dir => hasher.update(b"dir"),
                super::context::EntryKind::File { mode, .. } => {
                    let sha = self.context.hash_file(&entry.path).map_err(fail)?;
                    hasher.update(format!("file {mode:o} {sha}").as_bytes());
                }
                super::context::EntryKind::Symlink { target } => {
                    hasher.update(format!("symlink {target}").as_bytes());
                }
            }
            hasher.update([b'\n']);
        }
        let name = if path.is_empty() {
            ".".to_owned()
        } else {
            path
        };
        Ok((name, format!("sha256:{:x}", hasher.finalize())))
    }

    /// Adds the step's mounts to `spec`, their bind copies made under `scratch`.
    /// Returns the locks of locked caches, to hold while the step runs.
    pub(super) fn stage_mounts(
        &self,
        spec: &mut RunSpec,
        mounts: &[RunMount],
        scratch: &Path,
        pos: Pos,
    ) -> Result<Vec<std::fs::File>, BuildError> {
        let mut locks = Vec::new();
        for (i, mount) in mounts.iter().enumerate() {
            let target = if mount.target.starts_with('/') {
                mount.target.clone()
            } else {
                format!("{}/{}", spec.workdir, mount.target)
            };
            let guest = GuestPath::parse(&target).map_err(|e| {
                at(
                    &self.file,
                    pos,
                    format!("RUN --mount target={}: {e}", mount.target),
                )
            })?;
            if guest.is_root() {
                return Err(at(
                    &self.file,
                    pos,
                    "RUN --mount target=/: a mount cannot replace the root: mount it below, e.g. target=/src",
                ));
            }
            match &mount.kind {
                MountKind::Bind { source, read_write } => {
                    let path = self.bind_source(source, pos)?;
                    let host = scratch.join(format!("mount-{i}"));
                    self.context.export(&path, &host).map_err(|e| {
                        at(&self.file, pos, format!("RUN --mount source={source}: {e}"))
                    })?;
                    spec.mounts.push(Mount {
                        host,
                        guest,
                        read_only: !read_write,
                    });
                }
                MountKind::Cache { id, locked } => {
                    let digest = format!("{:x}", Sha256::digest(id.as_bytes()));
                    let host = self
                        .home
                        .build_cache_dir()
                        .join("mounts")
                        .join(&digest[..32]);
                    crate::ambient::create_and_open_dir(&host).map_err(|e| {
                        at(
                            &self.file,
                            pos,
                            format!("RUN --mount type=cache,id={id}: {e}"),
                        )
                    })?;
                    if *locked {
                        let lock = crate::ambient::open_lock_file(&host.with_extension("lock"))
                            .and_then(|file| file.lock().map(|()| file))
                            .map_err(|e| {
                                at(
                                    &self.file,
                                    pos,
                                    format!("RUN --mount type=cache,id={id}: cannot lock it: {e}"),
                                )
                            })?;
                        locks.push(lock);
                    }
                    spec.mounts.push(Mount {
                        host,
                        guest,
                        read_only: false,
                    });
                }
                MountKind::Tmpfs { size } => spec.tmpfs.push(Tmpfs {
                    guest,
                    size: size.unwrap_or(Tmpfs::DEFAULT_SIZE),
                }),
            }
        }
        Ok(locks)
    }
}
