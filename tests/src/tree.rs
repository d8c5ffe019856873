//! What a directory tree holds, for comparing the trees two runtimes left behind.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Kind and whole content of every entry below `root`, by relative path: `dir`,
/// `symlink -> TARGET`, or `file N bytes: ...` (the bytes themselves when short and
/// printable, otherwise their SHA-256).
///
/// # Panics
/// When the tree cannot be read: a broken test.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("below root")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let desc = if meta.file_type().is_symlink() {
                format!(
                    "symlink -> {}",
                    std::fs::read_link(&path).expect("readlink").display()
                )
            } else if meta.is_dir() {
                stack.push(path);
                "dir".to_owned()
            } else {
                let bytes = std::fs::read(&path).expect("read");
                match std::str::from_utf8(&bytes) {
                    Ok(text) if bytes.len() <= 64 && !text.contains('\0') => {
                        format!("file {} bytes: {text:?}", bytes.len())
                    }
                    _ => format!(
                        "file {} bytes, sha256 {:x}",
                        bytes.len(),
                        Sha256::digest(&bytes)
                    ),
                }
            };
            out.insert(rel, desc);
        }
    }
    out
}
