//! The differential harness: every conformance program runs once under wasmtime-wasi
//! (the reference, in this process, over a host directory preopened at `/work`) and
//! under Capsule (the real binary, its own WASI over its own filesystem) with its
//! scratch directory `/work` on each of Capsule's backends:
//!
//! - `host`: a host directory mounted with `-v`;
//! - `layered`: the container's own root, over a read-only tar layer that holds the
//!   program's starting files (`PROG /work seed`, see `check.h`), so that reads come
//!   from the layer, writes copy up and deletes leave whiteouts (the layer must not
//!   change);
//! - `layered-dir`: the same over the directory the tar was made from (`--layer DIR`);
//! - `image`: a container of an image built with the starting files under `/work`;
//!   its tree is read back from disk (the starting files with the container's
//!   writable layer applied as its OCI whiteouts say) and must also equal what the
//!   program listed;
//! - `tmpfs`: `--tmpfs /work`.
//!
//! Each Capsule run must agree with the one reference run on the exit code, stderr,
//! the transcript and the tree left behind. The tree is read from the host for the
//! reference and the `host` backend, and from the program's own `TREE` lines (it lists
//! the scratch directory at exit) for every run; where both exist they must be equal,
//! which checks the listing itself.
//!
//! Where Capsule deliberately differs, the difference is in [`FILESYSTEM_DIFFERENCES`]
//! (its filesystem's, in every world) or [`KNOWN_DIFFERENCES`] (its preview1 host's) with
//! the reason and the backends it occurs on (`docs/wasi.md` has the same table). A
//! difference not in the table fails the test; an entry that does not occur on one of
//! its backends fails it too, so the table stays true. Lines whose reference value
//! depends on the host's file system are in [`HOST_DEPENDENT`], pinned to Capsule's
//! value.
//!
//! The same runner serves each [`World`]: [`PREVIEW1`] runs the programs as preview1
//! modules (these tests, `conformance::NAME`), `conformance_p2` runs them as
//! `wasi:cli/command` components under wasmtime-wasi's preview2 host and Capsule's
//! component host, with tables of their own.

use capsule_tests::{Run, TestEnv};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// Where `/work` lives in a Capsule run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `-v HOST:/work`.
    Host,
    /// `/work` in the container's root, over a tar layer with the starting files
    /// (as an image's layers are).
    Layered,
    /// The same over a directory layer (`--layer DIR`), which is indexed differently.
    LayeredDir,
    /// A container of an image built with the starting files (`capsule build`,
    /// `capsule run IMAGE`); the tree is also read back from the container's writable
    /// layer on disk (OCI whiteouts) over the starting files.
    Image,
    /// `--tmpfs /work`.
    Tmpfs,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Host => "host",
            Backend::Layered => "layered",
            Backend::LayeredDir => "layered-dir",
            Backend::Image => "image",
            Backend::Tmpfs => "tmpfs",
        })
    }
}

use Backend::{Host, Image, Layered, LayeredDir, Tmpfs};
/// Every backend.
pub const ALL: &[Backend] = &[Host, Layered, LayeredDir, Image, Tmpfs];
/// The layered roots.
pub const LAYERED: &[Backend] = &[Layered, LayeredDir, Image];

/// One deliberate difference between the reference and Capsule.
#[derive(Debug)]
pub struct Known {
    pub program: &'static str,
    /// The backends it occurs on (it must occur on each of them).
    pub backends: &'static [Backend],
    /// The reference's transcript line, or `tree PATH: ENTRY` for the tree left behind.
    pub reference: &'static str,
    /// Capsule's.
    pub capsule: &'static str,
    pub why: &'static str,
}

pub const fn known(
    program: &'static str,
    backends: &'static [Backend],
    reference: &'static str,
    capsule: &'static str,
    why: &'static str,
) -> Known {
    Known {
        program,
        backends,
        reference,
        capsule,
        why,
    }
}

/// A line whose reference value depends on the host's file system: (program, Capsule's
/// line on every backend, the reference lines accepted in its place, why).
pub type HostDependent = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
);

/// A WASI world the programs run in, with its own tables: the reference for it is
/// chosen by the program itself (a core module runs under wasmtime-wasi's preview1, a
/// component under its preview2 host), Capsule's by `capsule run`.
#[derive(Debug)]
pub struct World {
    pub name: &'static str,
    /// Deliberate differences: [`FILESYSTEM_DIFFERENCES`] and the world's own table
    /// ([`KNOWN_DIFFERENCES`] for preview1).
    pub known: &'static [&'static [Known]],
    /// Bugs not yet fixed ([`KNOWN_BUGS`]).
    pub bugs: &'static [Known],
    /// Lines that depend on the host's file system ([`HOST_DEPENDENT`]).
    pub host_dependent: &'static [HostDependent],
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The programs as preview1 core modules.
pub const PREVIEW1: World = World {
    name: "preview1",
    known: &[FILESYSTEM_DIFFERENCES, KNOWN_DIFFERENCES],
    bugs: KNOWN_BUGS,
    host_dependent: HOST_DEPENDENT,
};

/// Deliberate differences of Capsule's filesystem itself: the world-neutral core that
/// its preview1 and preview2 hosts share answers them, so they show in both worlds
/// (through the preview1 adapter, a component's calls reach the same core).
pub const FILESYSTEM_DIFFERENCES: &[Known] = &[
    known(
        "fs_dirs",
        ALL,
        "rmdir b/ trailing slash: -1 EINVAL",
        "rmdir b/ trailing slash: 0",
        "POSIX and Linux remove a directory named with a trailing slash; the reference refuses",
    ),
    known(
        "fs_dirs",
        ALL,
        "list scratch: dot=1 dotdot=1 entries=4: b file l p",
        "list scratch: dot=1 dotdot=1 entries=3: file l p",
        "follows from the line above: b was removed",
    ),
    known(
        "fs_dirs",
        ALL,
        "tree b: dir",
        "tree b: <absent>",
        "rmdir b/ removed it (trailing slash, as POSIX)",
    ),
    known(
        "fs_dirs",
        &[Host, Tmpfs],
        "rmdir scratch itself: -1 EINVAL",
        "rmdir scratch itself: -1 EBUSY",
        "the scratch directory is a mount point in Capsule (EBUSY, as Linux), the preopen itself in the reference",
    ),
    known(
        "fs_dirs",
        LAYERED,
        "rmdir scratch itself: -1 EINVAL",
        "rmdir scratch itself: -1 ENOTEMPTY",
        "in the layered root /work is an ordinary directory, not a preopen or a mount point: \
         Linux's answer for a non-empty one",
    ),
    known(
        "fs_rename",
        LAYERED,
        "rename scratch root: -1 EBUSY",
        "rename scratch root: -1 EINVAL",
        "in the layered root /work is an ordinary directory: renaming it into itself (/work/x) \
         is Linux's EINVAL; the reference refuses to rename its preopen",
    ),
    known(
        "fs_stat",
        ALL,
        "stat empty path: -1 ENOTCAPABLE",
        "stat empty path: 0",
        "wasi-libc maps \"\" to the preopen with the empty prefix: Capsule preopens the container's / \
         (so \"\" is /), the reference only the scratch directory",
    ),
    known(
        "fs_symlinks",
        ALL,
        "types dirlink/: stat=dir lstat=symlink",
        "types dirlink/: stat=dir lstat=dir",
        "a trailing slash resolves the symlink, as POSIX and Linux do",
    ),
];

/// Deliberate differences of Capsule's preview1 host (rights, which preview2 has not):
/// transcript lines and tree entries alike.
pub const KNOWN_DIFFERENCES: &[Known] = &[
    known(
        "raw_calls",
        ALL,
        "fd_fdstat_set_rights drop write: ENOTSUP",
        "fd_fdstat_set_rights drop write: ok",
        "Capsule narrows rights as preview1 documents; the reference refuses every call",
    ),
    known(
        "raw_calls",
        ALL,
        "write after dropping FD_WRITE: 1",
        "write after dropping FD_WRITE: EBADF",
        "follows from the narrowed rights (Capsule answers ENOTCAPABLE; wasi-libc's write() reports it as EBADF)",
    ),
    known(
        "raw_calls",
        ALL,
        "fd_fdstat_set_rights widen again: ENOTSUP",
        "fd_fdstat_set_rights widen again: ENOTCAPABLE",
        "rights can only be narrowed",
    ),
    known(
        "raw_rights",
        ALL,
        "narrowing: fd_fdstat_set_rights ok for 0 of 13",
        "narrowing: fd_fdstat_set_rights ok for 13 of 13",
        "Capsule narrows rights as preview1 documents; the reference refuses every call",
    ),
    known(
        "raw_rights",
        ALL,
        "narrowing: refused with ENOTCAPABLE: none",
        "narrowing: refused with ENOTCAPABLE: path_create_directory path_open creat path_open \
         path_filestat_get path_filestat_set_times path_link source path_link target path_readlink \
         path_remove_directory path_rename source path_rename target path_symlink path_unlink_file",
        "follows from the narrowed rights: each path_* call needs its right (the reference never \
         narrows, so every call is allowed)",
    ),
    known(
        "raw_calls",
        ALL,
        "tree raw.txt: file 10 bytes: \"z123456789\"",
        "tree raw.txt: file 10 bytes: \"0123456789\"",
        "the write after narrowing the rights was refused",
    ),
];

/// Bugs the harness found in Capsule's own backends, not yet fixed: the same shape as
/// [`KNOWN_DIFFERENCES`], and as strict (each must occur exactly so on its backends,
/// so the entry fails the test once the bug is fixed and must then be deleted). They
/// are not deliberate; they are listed so that the rest of each program keeps being
/// compared meanwhile.
pub const KNOWN_BUGS: &[Known] = &[];

/// Transcript lines whose reference value depends on the host's file system, so they
/// cannot be compared with a reference run: (program, Capsule's line on every backend,
/// the reference lines accepted in its place, why). Capsule's line is pinned.
pub const HOST_DEPENDENT: &[HostDependent] = &[
    (
        "fs_dirs",
        "readdir while changing: no name twice = yes",
        &["readdir while changing: no name twice = no"],
        "the reference's fd_readdir cookies are indexes into a fresh host listing, so whether an \
         entry repeats after creations depends on the host's readdir order (ext4 hashes names with \
         a per-file-system seed; tmpfs lists the newest first). Capsule serves a snapshot taken at \
         cookie 0 on every backend",
    ),
    (
        "fs_dirs",
        "readdir while changing: every file that existed throughout was seen = yes",
        &["readdir while changing: every file that existed throughout was seen = no"],
        "as above: in the reference, deleting entries shifts the indexes of the ones after them",
    ),
];

/// A run's transcript without its `TREE` lines, and the tree those lines describe.
fn split(stdout: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut lines = Vec::new();
    let mut tree = BTreeMap::new();
    for line in stdout.lines() {
        match line.strip_prefix("TREE\t") {
            Some(rest) => {
                let (path, desc) = rest.split_once('\t').unwrap_or((rest, "<malformed>"));
                tree.insert(path.to_owned(), desc.to_owned());
            }
            None => lines.push(line.to_owned()),
        }
    }
    (lines, tree)
}

/// Every entry of `a` and `b` that differs, as (path, entry in a, entry in b).
fn tree_diff<'a>(
    a: &'a BTreeMap<String, String>,
    b: &'a BTreeMap<String, String>,
) -> Vec<(&'a str, &'a str, &'a str)> {
    a.keys()
        .chain(b.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|path| {
            let (x, y) = (
                a.get(path).map_or("<absent>", String::as_str),
                b.get(path).map_or("<absent>", String::as_str),
            );
            (x != y).then_some((path.as_str(), x, y))
        })
        .collect()
}

/// The lines that differ between two transcripts, aligned on their longest common
/// subsequence (so one extra or missing line does not shift every line after it):
/// (reference line number, reference line, Capsule line), with `<missing>` where one
/// side has no counterpart.
fn line_diff<'a>(theirs: &'a [String], ours: &'a [String]) -> Vec<(usize, &'a str, &'a str)> {
    let (n, m) = (theirs.len(), ours.len());
    // lcs[i][j]: the longest common subsequence of theirs[i..] and ours[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if theirs[i] == ours[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (mut gone, mut added): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    let mut flush = |gone: &mut Vec<usize>, added: &mut Vec<usize>, at: usize| {
        // A changed stretch: pair its lines in order.
        for k in 0..gone.len().max(added.len()) {
            let t = gone.get(k).map_or("<missing>", |&x| theirs[x].as_str());
            let o = added.get(k).map_or("<missing>", |&y| ours[y].as_str());
            out.push((gone.get(k).map_or(at, |&x| x + 1), t, o));
        }
        gone.clear();
        added.clear();
    };
    while i < n || j < m {
        if i < n && j < m && theirs[i] == ours[j] {
            flush(&mut gone, &mut added, i + 1);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(j);
            j += 1;
        } else {
            gone.push(i);
            i += 1;
        }
    }
    flush(&mut gone, &mut added, n + 1);
    out
}

/// The reference's outcome, compared against every backend.
struct Reference {
    code: i32,
    /// What Capsule must print on stderr: the guest's own, and when the guest trapped,
    /// Capsule's line saying why (its backtrace after that is not compared).
    stderr: String,
    trapped: bool,
    lines: Vec<String>,
    /// The tree left on the host.
    tree: BTreeMap<String, String>,
    /// The tree the program listed: the same as `tree` unless the program trapped
    /// before it listed it.
    listed: BTreeMap<String, String>,
}

/// One Capsule run on one backend.
struct Outcome {
    run: Run,
    /// The tree it left: read from disk (`on_disk`; compared with the reference's tree
    /// on the host) or what the program listed (compared with what it listed under the
    /// reference).
    tree: BTreeMap<String, String>,
    on_disk: bool,
    /// What the program listed where `tree` was read from disk (the `image` backend):
    /// the two must agree too (as `disk PATH: ENTRY` against `listed PATH: ENTRY` in
    /// the tables).
    listed: Option<BTreeMap<String, String>>,
}

/// Compares one Capsule run with the reference; returns what is wrong.
fn compare(
    world: &World,
    name: &str,
    backend: Backend,
    reference: &Reference,
    outcome: &Outcome,
) -> Vec<String> {
    let Outcome {
        run: capsule,
        tree,
        on_disk,
        listed,
    } = outcome;
    let mut problems = Vec::new();
    if capsule.code != Some(reference.code) {
        problems.push(format!(
            "exit code {:?}, the reference's {}\n--- capsule stderr\n{}",
            capsule.code, reference.code, capsule.stderr
        ));
    }
    // After a trap, Capsule prints the backtrace: its frames are not the reference's
    // business.
    let stderr = match capsule.stderr.find("wasm backtrace:\n") {
        Some(at) if reference.trapped => &capsule.stderr[..at],
        _ => capsule.stderr.as_str(),
    };
    if stderr != reference.stderr {
        problems.push(format!(
            "stderr differs\n--- reference\n{}--- capsule\n{}",
            reference.stderr, capsule.stderr
        ));
    }
    let (ours, _) = split(&capsule.stdout);
    let mut theirs = reference.lines.clone();
    for (program, pinned, accepted, _) in world.host_dependent.iter().filter(|e| e.0 == name) {
        if !ours.iter().any(|l| l == pinned) {
            problems.push(format!("{program}: Capsule must print {pinned:?}"));
        }
        for line in &mut theirs {
            if accepted.contains(&line.as_str()) {
                (*pinned).clone_into(line);
            }
        }
    }
    let entries: Vec<&Known> = world
        .known
        .iter()
        .copied()
        .flatten()
        .chain(world.bugs)
        .filter(|k| k.program == name && k.backends.contains(&backend))
        .collect();
    let mut seen = BTreeSet::new();
    let mut lookup = |t: &str, o: &str, what: String| match entries
        .iter()
        .position(|k| k.reference == t && k.capsule == o)
    {
        Some(i) => {
            seen.insert(i);
        }
        None => problems.push(what),
    };
    for (line, t, o) in line_diff(&theirs, &ours) {
        lookup(
            t,
            o,
            format!("line {line}:\n  reference: {t}\n  capsule:   {o}"),
        );
    }
    let theirs = if *on_disk {
        &reference.tree
    } else {
        &reference.listed
    };
    for (path, t, o) in tree_diff(theirs, tree) {
        lookup(
            &format!("tree {path}: {t}"),
            &format!("tree {path}: {o}"),
            format!("tree entry {path}:\n  reference: {t}\n  capsule:   {o}"),
        );
    }
    for (path, d, l) in listed
        .as_ref()
        .map(|l| tree_diff(tree, l))
        .unwrap_or_default()
    {
        lookup(
            &format!("disk {path}: {d}"),
            &format!("listed {path}: {l}"),
            format!(
                "the container's writable layer on disk, over the image's layer, disagrees \
                 with the program's listing at {path}:\n  on disk: {d}\n  listed:  {l}"
            ),
        );
    }
    for (i, k) in entries.iter().enumerate() {
        if !seen.contains(&i) {
            problems.push(format!(
                "the known difference {:?} ({}) no longer occurs on {backend}: remove it from the table",
                k.reference, k.why
            ));
        }
    }
    problems
}

/// Runs the program `name` (`wasm`, a module or a component of `world`) under the
/// reference and on every backend, and fails with every difference not in `world`'s
/// tables and every entry of them that did not occur.
pub fn differential(world: &World, name: &str, wasm: &str) {
    let env = TestEnv::new();
    let work = |dir: &str| {
        let path = env.work().join(dir);
        std::fs::create_dir_all(&path).expect("mkdir");
        path
    };

    // The one reference run; its listing of its own tree must match the host's (unless
    // it trapped before listing it).
    let reference_dir = work("reference");
    // A trap is an outcome here (the preview1 adapter traps on a few calls): Capsule
    // must trap there too, with the same reason.
    let run = capsule_tests::reference::Reference::new(wasm).run_or_trap(
        &[wasm, "/work", "seeded"],
        &reference_dir,
        "/work",
    );
    let (lines, listed) = split(&run.stdout);
    let tree = capsule_tests::tree::snapshot(&reference_dir);
    let wrong: Vec<_> = tree_diff(&tree, &listed);
    assert!(
        wrong.is_empty() || run.trap.is_some(),
        "{name} ({world}): the program's TREE listing disagrees with the host under the \
         reference (path, on the host, listed): {wrong:#?}"
    );
    let reference = Reference {
        code: run.code,
        stderr: match &run.trap {
            Some(reason) => format!("{}capsule: guest trapped: {reason}\n", run.stderr),
            None => run.stderr,
        },
        trapped: run.trap.is_some(),
        lines,
        tree,
        listed,
    };

    let mut problems = Vec::new();
    let (seed_dir, seed_tar) = seed_layer(&env, &format!("{name} ({world})"), wasm);
    let seeded = capsule_tests::tree::snapshot(&seed_dir);
    let mut image_listing = None;
    for backend in ALL.iter().copied() {
        let (capsule, tree, on_disk) = match backend {
            Host => {
                let dir = work("host");
                let volume = format!("{}:/work", dir.display());
                let run = env.run(&["run", "-v", &volume, wasm, "/work", "seeded"]);
                let (_, listed) = split(&run.stdout);
                let tree = capsule_tests::tree::snapshot(&dir);
                let wrong = tree_diff(&tree, &listed);
                if !wrong.is_empty() && !reference.trapped {
                    problems.push(format!(
                        "{backend}: the program's TREE listing disagrees with the host directory \
                         (path, on the host, listed): {wrong:#?}"
                    ));
                }
                (run, tree, true)
            }
            Layered | LayeredDir => {
                let layer = if backend == Layered {
                    &seed_tar
                } else {
                    &seed_dir
                };
                let layer = layer.display().to_string();
                let run = env.run(&["run", "--layer", &layer, wasm, "/work"]);
                let (_, listed) = split(&run.stdout);
                (run, listed, false)
            }
            Image => {
                let (run, listed, on_disk) = image_run(&env, name, wasm, &seed_dir);
                // A program that trapped listed nothing to check the disk against.
                image_listing = (!reference.trapped).then_some(listed);
                (run, on_disk, true)
            }
            Tmpfs => {
                let run = env.run(&["run", "--tmpfs", "/work", wasm, "/work", "seeded"]);
                let (_, listed) = split(&run.stdout);
                (run, listed, false)
            }
        };
        let outcome = Outcome {
            run: capsule,
            tree,
            on_disk,
            listed: image_listing.take(),
        };
        for problem in compare(world, name, backend, &reference, &outcome) {
            problems.push(format!("{backend}: {problem}"));
        }
    }
    let after = capsule_tests::tree::snapshot(&seed_dir);
    if after != seeded {
        problems.push(format!(
            "the layers changed under the container (path, before, after): {:#?}",
            tree_diff(&seeded, &after)
        ));
    }
    assert!(
        problems.is_empty(),
        "{name} ({world}): {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The program's starting files (`PROG /work seed`, run by Capsule into a host
/// directory): that directory as a layer (with them under `work/`), and the same as an
/// uncompressed tar layer.
pub fn seed_layer(
    env: &TestEnv,
    name: &str,
    wasm: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = env.work().join("seed");
    std::fs::create_dir_all(dir.join("work")).expect("mkdir seed/work");
    let volume = format!("{}:/work", dir.join("work").display());
    let seed = env.run(&["run", "-v", &volume, wasm, "/work", "seed"]);
    assert!(
        seed.code == Some(0) && seed.stdout.is_empty() && seed.stderr.is_empty(),
        "{name}: creating the starting files failed: {seed:?}"
    );
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all("work", dir.join("work"))
        .expect("tar the starting files");
    let bytes = builder.into_inner().expect("finish the layer");
    (dir, env.write("seed.tar", bytes))
}

/// Copies a directory tree (symlinks as symlinks).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src).expect("lstat");
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).expect("readlink"), &dst)
                .expect("symlink");
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// The `image` backend: builds an image whose layer holds the starting files under
/// `/work` and the program, runs a container of it (kept), and returns the run, the
/// tree the program listed, and the tree on disk: the starting files with the
/// container's writable layer (`containers/ID/upper`) applied as OCI whiteouts say
/// (`.wh.NAME` deletes NAME, `.wh..wh..opq` hides everything below from the layers).
fn image_run(
    env: &TestEnv,
    name: &str,
    wasm: &str,
    seed_dir: &Path,
) -> (Run, BTreeMap<String, String>, BTreeMap<String, String>) {
    let ctx = env.work().join("image-ctx");
    copy_tree(&seed_dir.join("work"), &ctx.join("work"));
    std::fs::copy(wasm, ctx.join("prog.wasm")).expect("copy the program");
    std::fs::write(
        ctx.join("Capsulefile"),
        "FROM scratch\nCOPY work /work/\nCOPY prog.wasm /prog.wasm\nENTRYPOINT [\"/prog.wasm\"]\n",
    )
    .expect("write the Capsulefile");
    let ctx_arg = ctx.display().to_string();
    let build = env.run(&["build", "-t", "conformance", &ctx_arg]);
    assert_eq!(
        build.code,
        Some(0),
        "{name}: building the image failed: {build:?}"
    );
    let run = env.run(&["run", "conformance", "/work"]);
    let (_, listed) = split(&run.stdout);
    let containers: Vec<_> = std::fs::read_dir(env.home().join("containers"))
        .expect("the containers directory")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(containers.len(), 1, "{name}: one container: {containers:?}");
    let mut tree = capsule_tests::tree::snapshot(&seed_dir.join("work"));
    let upper = containers[0].join("upper/work");
    if upper.is_dir() {
        apply_upper(&upper, "", &mut tree);
    }
    (run, listed, tree)
}

/// Applies one directory of a writable layer (`dir`, at `rel` below /work) to `tree`.
fn apply_upper(dir: &Path, rel: &str, tree: &mut BTreeMap<String, String>) {
    let join = |name: &str| {
        if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        }
    };
    let below = |tree: &mut BTreeMap<String, String>, path: &str| {
        let prefix = format!("{path}/");
        tree.retain(|k, _| !k.starts_with(&prefix));
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the writable layer")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.iter().any(|n| n == ".wh..wh..opq") {
        if rel.is_empty() {
            tree.clear();
        } else {
            below(tree, rel);
        }
    }
    for hidden in names.iter().filter_map(|n| n.strip_prefix(".wh.")) {
        if hidden != ".wh..opq" {
            tree.remove(&join(hidden));
            below(tree, &join(hidden));
        }
    }
    for name in names.iter().filter(|n| !n.starts_with(".wh.")) {
        let path = dir.join(name);
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let key = join(name);
        if meta.file_type().is_symlink() {
            below(tree, &key);
            let target = std::fs::read_link(&path).expect("readlink");
            tree.insert(key, format!("symlink -> {}", target.display()));
        } else if meta.is_dir() {
            if tree.get(&key).is_some_and(|d| d != "dir") {
                tree.remove(&key);
            }
            tree.insert(key.clone(), "dir".to_owned());
            apply_upper(&path, &key, tree);
        } else {
            below(tree, &key);
            tree.insert(
                key,
                capsule_tests::tree::describe_file(&std::fs::read(&path).expect("read")),
            );
        }
    }
}

macro_rules! differential_test {
    ($name:ident, $path:expr) => {
        #[test]
        fn $name() {
            differential(&PREVIEW1, stringify!($name), $path);
        }
    };
}

capsule_tests::foreach_conformance!(differential_test);
