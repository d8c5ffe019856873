//! What a container changed: its writable layer, read back. The upper directory holds
//! exactly the changes in OCI whiteout form (new and copied-up entries as themselves,
//! deletions as `.wh.NAME`, a directory that replaces a lower one marked by
//! `.wh..wh..opq`), so one walk of it lists them; a build's `RUN` layer, `diff` and
//! `commit` all read this list.

use super::lower::{LowerStack, join};
use cap_std::fs::Dir;
use std::path::Path;

/// The OCI whiteout prefix.
pub const WHITEOUT: &str = ".wh.";
/// The OCI opaque-directory marker.
pub const OPAQUE: &str = ".wh..wh..opq";

/// One entry of the writable layer, as a layer tar would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperKind {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
    },
    Symlink {
        target: String,
    },
    /// `.wh.NAME`: the lower entry `NAME` was deleted (an empty file in a layer tar).
    Whiteout {
        mode: u32,
    },
    /// `.wh..wh..opq` in a directory: the lower directory's contents are hidden.
    Opaque {
        mode: u32,
    },
}

/// An entry of the writable layer at `path` (relative to the root, `/`-separated; for
/// whiteouts and opaque markers, the path of the marker file itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpperEntry {
    pub path: String,
    pub kind: UpperKind,
}

/// Lists the writable layer rooted at `upper` (depth first, names sorted); an upper
/// that was never created (nothing written) is empty.
///
/// # Errors
/// The host's error, or a name that is not UTF-8.
pub fn list_upper(upper: &Path) -> std::io::Result<Vec<UpperEntry>> {
    if !crate::ambient::is_dir(upper) {
        return Ok(Vec::new());
    }
    let root = crate::ambient::open_dir(upper)?;
    let mut out = Vec::new();
    walk(&root, "", &mut out)?;
    Ok(out)
}

fn walk(root: &Dir, dir: &str, out: &mut Vec<UpperEntry>) -> std::io::Result<()> {
    let handle = if dir.is_empty() {
        root.try_clone()?
    } else {
        root.open_dir(dir)?
    };
    let mut names = Vec::new();
    for entry in handle.entries()? {
        let name = entry?
            .file_name()
            .into_string()
            .map_err(|n| std::io::Error::other(format!("{n:?}: name is not UTF-8")))?;
        names.push(name);
    }
    names.sort();
    for name in names {
        let rel = join(dir, &name);
        let meta = root.symlink_metadata(&rel)?;
        let kind = if name == OPAQUE {
            UpperKind::Opaque {
                mode: mode_of(&meta),
            }
        } else if name.starts_with(WHITEOUT) {
            UpperKind::Whiteout {
                mode: mode_of(&meta),
            }
        } else if meta.is_dir() {
            UpperKind::Dir {
                mode: mode_of(&meta),
            }
        } else if meta.file_type().is_symlink() {
            UpperKind::Symlink {
                target: root
                    .read_link_contents(&rel)?
                    .to_string_lossy()
                    .into_owned(),
            }
        } else {
            UpperKind::File {
                mode: mode_of(&meta),
                size: meta.len(),
            }
        };
        let is_dir = matches!(kind, UpperKind::Dir { .. });
        out.push(UpperEntry {
            path: rel.clone(),
            kind,
        });
        if is_dir {
            walk(root, &rel, out)?;
        }
    }
    Ok(())
}

fn mode_of(meta: &cap_std::fs::Metadata) -> u32 {
    super::sys::permission_bits(meta)
}

/// How a path changed, as `docker diff` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// A change, at an absolute guest path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

/// The container's changes against its image's layers, sorted by path: an entry of the
/// writable layer is `A` where the image has nothing and `C` where it has something; a
/// whiteout is `D`; an opaque directory's hidden lower entries are `D` too.
pub fn changes(upper: &[UpperEntry], lower: Option<&LowerStack>) -> Vec<Change> {
    let in_lower = |path: &str| lower.is_some_and(|l| l.get(path).is_some());
    let mut out = Vec::new();
    for entry in upper {
        let (dir, name) = super::index::split(&entry.path);
        match entry.kind {
            UpperKind::Whiteout { .. } => {
                let deleted = join(dir, name.trim_start_matches(WHITEOUT));
                out.push(Change {
                    path: format!("/{deleted}"),
                    kind: ChangeKind::Deleted,
                });
            }
            UpperKind::Opaque { .. } => {
                if let Some(lower) = lower {
                    for child in lower.children(dir) {
                        let path = join(dir, child);
                        if !upper.iter().any(|e| e.path == path) {
                            out.push(Change {
                                path: format!("/{path}"),
                                kind: ChangeKind::Deleted,
                            });
                        }
                    }
                }
            }
            _ => out.push(Change {
                path: format!("/{}", entry.path),
                kind: if in_lower(&entry.path) {
                    ChangeKind::Changed
                } else {
                    ChangeKind::Added
                },
            }),
        }
    }
    out.sort();
    out.dedup();
    out
}
