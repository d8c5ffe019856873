//! What a directory tree holds, for comparing the trees two runtimes left behind.

use std::collections::BTreeMap;
use std::path::Path;

/// The description of one file, as `check.h`'s `dump_tree` prints it: its whole contents
/// (bytes outside printable ASCII, `"` and `\` as `\xNN`), or past 256 bytes its size
/// and FNV-1a hash.
pub fn describe_file(bytes: &[u8]) -> String {
    if bytes.len() > 256 {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        return format!("file {} bytes fnv1a64={hash:016x}", bytes.len());
    }
    let mut text = String::new();
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    format!("file {} bytes: \"{text}\"", bytes.len())
}

/// Kind and whole content of every entry below a host directory, by relative path:
/// `dir`, `symlink -> TARGET`, or the file as [`describe_file`] says.
///
/// # Panics
/// When the tree cannot be read: a broken test.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
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
                describe_file(&std::fs::read(&path).expect("read"))
            };
            out.insert(rel, desc);
        }
    }
    out
}
