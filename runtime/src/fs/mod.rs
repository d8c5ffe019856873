//! The layered virtual filesystem a container sees as `/`.
//!
//! - [`layer`]: one checked, indexed layer (a tar never unpacked, or a directory).
//! - [`lower`]: layers merged top-down, once per chain, shared by containers.
//! - [`index`]: the merged index as one flat, sorted buffer: saved, mapped, searched.
//! - [`overlay`]: the writable upper over the lower stack (copy-up, whiteouts).
//! - [`tmpfs`], [`hostdir`]: other backends to mount.
//! - [`vfs`]: the namespace: mounts and path resolution (`..`, symlinks, limits).
//! - [`rootfs`]: a container's root assembled from a run spec (layers, upper, mounts).
//! - [`changes`]: the writable layer read back: its entries, and `A`/`C`/`D` changes.
//! - `paths`: maps and sets keyed by guest paths, compared inline.
//! - [`node`]: the [`Backend`] trait every filesystem implements, and its values.
//! - [`errno`]: errors as errno values, with the host cause kept.
//! - `sys`: the one place for Unix/other differences; `mapped`: read-only file maps.
//!
//! `docs/architecture.md` (*The filesystem*) lists the properties this meets, and
//! `docs/security.md` what it confines.

pub mod changes;
pub mod errno;
pub mod hostdir;
pub mod index;
pub mod layer;
pub mod lower;
mod mapped;
pub mod node;
pub mod overlay;
pub(crate) mod paths;
pub mod rootfs;
pub(crate) mod sys;
pub mod tmpfs;
pub mod vfs;

pub use errno::{Errno, FsError, FsResult};
pub use mapped::map as map_file;
pub use node::{Backend, DirEntry, OpenFile, OpenOptions, SetTime, Stat};
pub use vfs::{Loc, Vfs};

#[cfg(test)]
mod tests;
