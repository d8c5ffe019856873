//! The differential harness: every conformance program runs under Capsule (the real
//! binary, its own WASI over the VFS, the scratch directory mounted with `-v`) and under
//! wasmtime-wasi (the reference, in this process, the scratch directory preopened), and
//! the two must agree on the exit code, the transcript and the tree left behind.
//!
//! Where Capsule deliberately differs, the line pair is listed in [`KNOWN_DIFFERENCES`]
//! with the reason (the same table is in the README). A difference not in the table
//! fails the test; an entry that no longer differs fails it too, so the table stays true.

use capsule_tests::{Run, TestEnv};
use std::collections::BTreeMap;
use std::path::Path;

/// (program, reference line, Capsule line, why Capsule differs).
pub const KNOWN_DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    (
        "fs_dirs",
        "rmdir b/ trailing slash: -1 EINVAL",
        "rmdir b/ trailing slash: 0",
        "POSIX and Linux remove a directory named with a trailing slash; the reference refuses",
    ),
    (
        "fs_dirs",
        "list scratch: dot=1 dotdot=1 entries=4: b file l p",
        "list scratch: dot=1 dotdot=1 entries=3: file l p",
        "follows from the line above: b was removed",
    ),
    (
        "fs_dirs",
        "rmdir scratch itself: -1 EINVAL",
        "rmdir scratch itself: -1 EBUSY",
        "the scratch directory is a mount point in Capsule (EBUSY, as Linux), the preopen itself in the reference",
    ),
    (
        "fs_stat",
        "stat empty path: -1 ENOTCAPABLE",
        "stat empty path: 0",
        "wasi-libc maps \"\" to the preopen with the empty prefix: Capsule preopens the container's / \
         (so \"\" is /), the reference only the scratch directory",
    ),
    (
        "fs_symlinks",
        "symlink abs: -1 EPERM",
        "symlink abs: 0",
        "absolute symlink targets are allowed: they resolve inside the container's tree, never on the host",
    ),
    (
        "fs_symlinks",
        "readlink abs equals target: no",
        "readlink abs equals target: yes",
        "follows from the absolute symlink existing",
    ),
    (
        "fs_symlinks",
        "open abs: -1 ENOENT",
        "open abs 11: target data",
        "follows from the absolute symlink existing (it points inside the container)",
    ),
    (
        "fs_symlinks",
        "types abs: stat=ENOENT lstat=ENOENT",
        "types abs: stat=file lstat=symlink",
        "follows from the absolute symlink existing",
    ),
    (
        "fs_symlinks",
        "types dirlink/: stat=dir lstat=symlink",
        "types dirlink/: stat=dir lstat=dir",
        "a trailing slash resolves the symlink, as POSIX and Linux do",
    ),
    (
        "raw_calls",
        "fd_fdstat_set_rights drop write: ENOTSUP",
        "fd_fdstat_set_rights drop write: ok",
        "Capsule narrows rights as preview1 documents; the reference refuses every call",
    ),
    (
        "raw_calls",
        "write after dropping FD_WRITE: 1",
        "write after dropping FD_WRITE: EBADF",
        "follows from the narrowed rights (Capsule answers ENOTCAPABLE; wasi-libc's write() reports it as EBADF)",
    ),
    (
        "raw_calls",
        "fd_fdstat_set_rights widen again: ENOTSUP",
        "fd_fdstat_set_rights widen again: ENOTCAPABLE",
        "rights can only be narrowed",
    ),
    (
        "fs_symlinks",
        "symlink absolute outside: -1 EPERM",
        "symlink absolute outside: 0",
        "absolute targets are stored; following one stays inside the container (the open still fails)",
    ),
];

/// (program, path, reference entry, Capsule entry, why): differences in the trees left
/// behind that follow from [`KNOWN_DIFFERENCES`].
pub const KNOWN_TREE_DIFFERENCES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "fs_dirs",
        "b",
        "dir",
        "<absent>",
        "rmdir b/ removed it (trailing slash, as POSIX)",
    ),
    (
        "raw_calls",
        "raw.txt",
        "file 10 bytes: \"z123456789\"",
        "file 10 bytes: \"0123456789\"",
        "the write after narrowing the rights was refused",
    ),
    (
        "fs_symlinks",
        "abs",
        "<absent>",
        "symlink -> /work/target.txt",
        "absolute symlinks are allowed",
    ),
    (
        "fs_symlinks",
        "absout",
        "<absent>",
        "symlink -> /etc/passwd",
        "absolute symlinks are allowed; on the host this link is inert text (Capsule never follows it on the host)",
    ),
];

/// Kind and content of every entry below a directory, for comparing trees.
fn tree(root: &Path) -> BTreeMap<String, String> {
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
                let bytes = std::fs::read(&path).expect("read");
                format!(
                    "file {} bytes: {:?}",
                    bytes.len(),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
                )
            };
            out.insert(rel, desc);
        }
    }
    out
}

fn differential(name: &str, wasm: &str) {
    let env = TestEnv::new();
    let capsule_dir = env.work().join("capsule");
    let reference_dir = env.work().join("reference");
    std::fs::create_dir(&capsule_dir).expect("mkdir");
    std::fs::create_dir(&reference_dir).expect("mkdir");

    let volume = format!("{}:/work", capsule_dir.display());
    let capsule = Run::of(
        env.capsule().args(["run", "-v", &volume, wasm, "/work"]),
        None,
    );
    let reference = capsule_tests::reference::run(wasm, &[wasm, "/work"], &reference_dir, "/work");

    assert_eq!(
        capsule.code,
        Some(reference.code),
        "{name}: exit codes differ\n--- capsule stderr\n{}",
        capsule.stderr
    );
    assert_eq!(capsule.stderr, reference.stderr, "{name}: stderr differs");

    let ours: Vec<&str> = capsule.stdout.lines().collect();
    let theirs: Vec<&str> = reference.stdout.lines().collect();
    let mut unexplained = Vec::new();
    let mut explained = Vec::new();
    for i in 0..ours.len().max(theirs.len()) {
        let (o, t) = (
            ours.get(i).copied().unwrap_or("<missing>"),
            theirs.get(i).copied().unwrap_or("<missing>"),
        );
        if o == t {
            continue;
        }
        match KNOWN_DIFFERENCES
            .iter()
            .find(|(p, r, c, _)| *p == name && *r == t && *c == o)
        {
            Some(entry) => explained.push(entry.1),
            None => unexplained.push(format!(
                "line {}:\n  reference: {t}\n  capsule:   {o}",
                i + 1
            )),
        }
    }
    for (program, reference_line, _, _) in KNOWN_DIFFERENCES.iter().filter(|(p, ..)| *p == name) {
        assert!(
            explained.contains(reference_line),
            "{program}: the known difference for {reference_line:?} no longer occurs; remove it from the table"
        );
    }
    assert!(
        unexplained.is_empty(),
        "{name}: {} unexplained difference(s):\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    let (ours, theirs) = (tree(&capsule_dir), tree(&reference_dir));
    let mut tree_unexplained = Vec::new();
    let mut tree_explained = Vec::new();
    for path in ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (o, t) = (
            ours.get(path).map_or("<absent>", String::as_str),
            theirs.get(path).map_or("<absent>", String::as_str),
        );
        if o == t {
            continue;
        }
        match KNOWN_TREE_DIFFERENCES
            .iter()
            .find(|(p, entry, r, c, _)| *p == name && entry == path && *r == t && *c == o)
        {
            Some(known) => tree_explained.push(known.1),
            None => tree_unexplained.push(format!("{path}:\n  reference: {t}\n  capsule:   {o}")),
        }
    }
    for (program, path, ..) in KNOWN_TREE_DIFFERENCES.iter().filter(|(p, ..)| *p == name) {
        assert!(
            tree_explained.contains(path),
            "{program}: the known tree difference at {path} no longer occurs"
        );
    }
    assert!(
        tree_unexplained.is_empty(),
        "{name}: the trees left behind differ:\n{}",
        tree_unexplained.join("\n")
    );
}

macro_rules! differential_test {
    ($name:ident, $path:expr) => {
        #[test]
        fn $name() {
            differential(stringify!($name), $path);
        }
    };
}

capsule_tests::foreach_conformance!(differential_test);
