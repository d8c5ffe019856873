//! The generated differential test of WASI preview1: `guests/rust/src/bin/wasi_fuzz.rs`
//! draws a sequence of raw preview1 calls from a seed and runs it under Capsule (the
//! real binary) and under wasmtime-wasi (the reference, in this process, the scratch
//! directory preopened). Capsule runs it with its scratch directory on each of its
//! filesystems ([`Backend`]): a host directory (`-v`), tmpfs, and the layered root
//! (starting files in a read-only layer). Every line of the transcripts — each call's
//! errno and everything it returned, then the tree as the guest sees it — must agree,
//! and for a host directory the trees on the host too, except where [`KNOWN`] lists a
//! deliberate difference.
//!
//! The test command runs a fixed set of seeds. `scripts/fuzz-wasi.sh [SECONDS]` runs
//! random seeds for as long as asked (`CAPSULE_FUZZ_SECONDS`) and prints, for every
//! divergence, a minimal reproducer: the fewest steps of that seed that still diverge,
//! both transcripts, and the command that replays them.

use capsule_tests::reference::Reference;
use capsule_tests::{Run, TestEnv};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const STEPS: usize = 300;
/// Seeds the test command runs: each is a different sequence of calls.
const FIXED_SEEDS: std::ops::Range<u64> = 1..61;

/// A deliberate difference: a rule over one call's line that says when the two
/// results may differ, and why. Each rule names what the reference answers and what
/// Capsule answers (both, never "anything"), so a change on either side that the table
/// does not describe is a divergence.
struct Known {
    name: &'static str,
    why: &'static str,
    /// The backends it may occur on.
    backends: &'static [Backend],
    /// (call, reference result, Capsule result, Capsule's listing of the call's
    /// descriptor as its last read from cookie 0 gave it, when known) -> whether this
    /// difference is the known one.
    accepts: fn(&str, &str, &str, Option<&Listing>) -> bool,
    /// Given Capsule's result, whether the difference changed what later calls see (a
    /// directory removed in one runtime only): the comparison of that seed ends there,
    /// since everything after would differ as a consequence.
    ends_comparison: fn(&str) -> bool,
    /// Whether the fixed seeds meet this difference (the test then fails when they no
    /// longer do, so the table stays true); rare ones are met only by long runs.
    rare: bool,
}

/// The last component of a path as the guest wrote it (trailing slashes ignored).
fn last_component(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// The quoted paths of a call line (`"a/b"`; a long path is shown shortened).
fn paths_of(call: &str) -> Vec<&str> {
    call.split('"').skip(1).step_by(2).collect()
}

/// A number argument of a call line: `NAME=0x1f` or `NAME=31`.
fn arg_of(call: &str, name: &str) -> Option<u64> {
    let text = call.split(&format!("{name}=")).nth(1)?;
    let text = text.split([',', ')', ' ']).next()?;
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Whether a call's result is what a lookup that succeeded prints: `ok TYPE ...` (the
/// descriptor or the entry found) or `ok N "..."` (a link read).
fn looked_up(result: &str) -> bool {
    const TYPES: [&str; 8] = [
        "unknown", "blockdev", "chardev", "dir", "file", "dgram", "stream", "symlink",
    ];
    result.strip_prefix("ok ").is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_digit())
            || TYPES.iter().any(|t| rest.starts_with(&format!("{t} ")))
    })
}

/// `path_open`'s O_CREAT.
const O_CREAT: u64 = 1;

/// Whether a time shown in a filestat is one the guest set (a number; `other` is a
/// time the host chose).
fn set_time(shown: &str, field: &str) -> bool {
    shown
        .split(' ')
        .find_map(|w| w.strip_prefix(field))
        .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
}

/// The entries (`NAME:TYPE`) of a complete listing as the guest prints it (`ok NAME:TYPE
/// ... next=[..]`), with the cookies of the entries; `None` for another result.
fn listing(result: &str) -> Option<(Listing, Vec<u64>)> {
    let (names, nexts) = result
        .strip_prefix("ok ")
        .and_then(|rest| rest.rsplit_once("next=["))?;
    let nexts = nexts
        .trim_end_matches(']')
        .split(", ")
        .filter(|n| !n.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<u64>, _>>()
        .ok()?;
    Some((names.split_whitespace().map(str::to_owned).collect(), nexts))
}

/// Whether a read of a directory succeeded, as the guest prints it: a complete listing,
/// a full buffer (`ok full used=N`), or whether entries remained (`ok some`, `ok
/// empty`, from a cookie past 2).
fn read_a_listing(result: &str) -> bool {
    listing(result).is_some()
        || matches!(result, "ok some" | "ok empty")
        || result
            .strip_prefix("ok full used=")
            .is_some_and(|n| n.parse::<u64>().is_ok())
}

/// A directory listing: its entries, `NAME:TYPE`, each once.
type Listing = Vec<String>;

/// Whether `capsule` is a complete listing read from `cookie` of a snapshot: every
/// name once, the entries' cookies the ones after `cookie` in order and, when the
/// snapshot (what the descriptor's last read from cookie 0 listed) is known, its
/// entries but the first `cookie` of them.
fn snapshot_listing(call: &str, capsule: &str, snapshot: Option<&Listing>) -> bool {
    let (Some(cookie), Some((entries, nexts))) = (arg_of(call, "cookie"), listing(capsule)) else {
        return false;
    };
    let names: BTreeSet<&str> = entries
        .iter()
        .map(|e| e.rsplit_once(':').map_or(e.as_str(), |(name, _)| name))
        .collect();
    names.len() == entries.len()
        && nexts.len() == entries.len()
        && nexts
            .iter()
            .copied()
            .eq((cookie + 1)..=(cookie + entries.len() as u64))
        && snapshot.is_none_or(|all| {
            all.len() as u64 == cookie + entries.len() as u64
                && entries.iter().all(|e| all.contains(e))
        })
}

use Backend::{HostDir, Layers, Tmpfs};
const ALL: &[Backend] = &Backend::ALL;

/// Every difference the comparison accepts. The table of differences from wasmtime-wasi
/// in `docs/wasi.md` says the same in prose.
const KNOWN: &[Known] = &[
    Known {
        name: "escape",
        why: "a path that climbs above the directory descriptor it starts from: each of the \
              reference's directory descriptors is a sandbox of its own (ENOTCAPABLE/EPERM); \
              Capsule's sandbox is the container's whole tree, where `..` of a mount point is \
              its parent, and answers what the lookup there finds (the generator tags such \
              calls and gives the tag only to calls that change nothing: path_open without \
              O_CREAT or O_TRUNC, path_filestat_get, path_readlink)",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.ends_with("[escape]")
                && ["path_open(", "path_filestat_get(", "path_readlink("]
                    .iter()
                    .any(|c| call.starts_with(c))
                && matches!(reference, "ENOTCAPABLE" | "EPERM")
                && (looked_up(capsule)
                    || matches!(
                        capsule,
                        "ENOENT"
                            | "ENOTDIR"
                            | "EISDIR"
                            | "EINVAL"
                            | "ELOOP"
                            | "ENAMETOOLONG"
                            | "ENOTCAPABLE"
                    ))
        },
        ends_comparison: |_| false,
        rare: false,
    },
    Known {
        name: "rmdir of the scratch directory",
        why: "rmdir of a path naming the scratch directory itself: in Capsule it is a mount \
              point (EBUSY, as Linux), in the reference the preopen itself (EINVAL); the \
              conformance program fs_dirs pins the same pair",
        backends: &[HostDir, Tmpfs],
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_remove_directory(")
                && paths_of(call)
                    .iter()
                    .any(|p| matches!(last_component(p), "." | ".."))
                && capsule == "EBUSY"
                && reference == "EINVAL"
        },
        ends_comparison: |_| false,
        rare: true,
    },
    Known {
        name: "rmdir with a trailing slash",
        why: "POSIX and Linux remove a directory named `d/` (or find it not empty); the \
              reference answers EINVAL (the conformance program fs_dirs pins both answers)",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_remove_directory(")
                && call.contains("/\")")
                && reference == "EINVAL"
                && matches!(capsule, "ok" | "ENOTEMPTY")
        },
        ends_comparison: |capsule| capsule == "ok",
        rare: false,
    },
    Known {
        name: "readdir from a cookie after changes",
        why: "Capsule serves a directory's listing from a snapshot taken when it is read from \
              cookie 0, so cookies stay valid while the directory changes (no entry twice, none \
              skipped: a complete read from cookie N is every name once, with the cookies after \
              N); the reference lists the directory again on every call",
        backends: ALL,
        accepts: |call, reference, capsule, snapshot| {
            call.starts_with("fd_readdir(")
                && arg_of(call, "cookie").is_some_and(|c| c > 0)
                && read_a_listing(reference)
                && (snapshot_listing(call, capsule, snapshot)
                    || (!capsule.contains(" next=") && read_a_listing(capsule)))
        },
        ends_comparison: |_| false,
        rare: false,
    },
    Known {
        name: "O_CREAT of ..",
        why: "path_open with O_CREAT of a path ending in `..` (an existing directory): EISDIR as \
              Linux answers; the reference's cap-std refuses `..` there with EPERM",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_open(")
                && paths_of(call)
                    .first()
                    .is_some_and(|p| last_component(p) == "..")
                && arg_of(call, "oflags").is_some_and(|f| f & O_CREAT != 0)
                && reference == "EPERM"
                && capsule == "EISDIR"
        },
        ends_comparison: |_| false,
        rare: true,
    },
    Known {
        name: "set no times on a missing path",
        why: "path_filestat_set_times that changes neither time on a path that does not resolve: \
              Capsule reports the path's error (ENOENT, ENOTDIR, ELOOP); the reference succeeds, \
              as Linux's utimensat with two UTIME_OMITs does without looking at the path (a \
              documented Linux bug)",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_filestat_set_times(")
                && call.ends_with("fst=0x0)")
                && reference == "ok"
                && matches!(capsule, "ENOENT" | "ENOTDIR" | "ELOOP")
        },
        ends_comparison: |_| false,
        rare: false,
    },
    Known {
        name: "lstat of file/",
        why: "a path with a trailing slash (or `/.`) names a directory, following a symlink to get there \
              (POSIX, Linux): a file is ENOTDIR; a symlink is what it leads to, a directory \
              (ok dir), or ENOTDIR (a file), ENOENT (dangling), ELOOP (a loop); the reference's \
              lstat (no SYMLINK_FOLLOW) ignores the slash and reports the file or the symlink",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_filestat_get(")
                && call.contains("follow=0")
                && (call.contains("/\")") || call.contains("/.\")"))
                && ((reference.starts_with("ok file ") && capsule == "ENOTDIR")
                    || (reference.starts_with("ok symlink ")
                        && (capsule.starts_with("ok dir ")
                            || matches!(capsule, "ENOTDIR" | "ENOENT" | "ELOOP"))))
        },
        ends_comparison: |_| false,
        rare: false,
    },
    Known {
        name: "atime of reads",
        why: "whether a read updates a file's access time is the host mount's policy (relatime \
              on the reference's ext4, and so on a host directory mounted into Capsule); \
              Capsule's tmpfs and layers never update it on read, as noatime: Capsule shows \
              the time the guest set, the reference one the read set (times set explicitly \
              are the same in both)",
        backends: &[Tmpfs, Layers],
        accepts: |call, reference, capsule, _| {
            let without_atime = |s: &str| {
                s.split(' ')
                    .filter(|w| !w.starts_with("atim="))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            call.contains("filestat_get(")
                && without_atime(reference) == without_atime(capsule)
                && reference.contains(" atim=other ")
                && set_time(capsule, "atim=")
        },
        ends_comparison: |_| false,
        rare: false,
    },
    Known {
        name: "rmdir of ..",
        why: "rmdir of a path ending in `..`: ENOTEMPTY as Linux answers (the directory holds at \
              least the one the path came from); the reference answers EINVAL",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_remove_directory(")
                && call.ends_with("..\")")
                && reference == "EINVAL"
                && capsule == "ENOTEMPTY"
        },
        ends_comparison: |_| false,
        rare: false,
    },
    Known {
        name: "sync of a directory",
        why: "fd_sync/fd_datasync of a directory descriptor syncs it, as fsync(2) on Linux (how \
              a program makes a rename durable); the reference answers EBADF",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            (call.starts_with("fd_sync(") || call.starts_with("fd_datasync("))
                && reference == "EBADF"
                && capsule == "ok"
        },
        ends_comparison: |_| false,
        rare: false,
    },
    Known {
        name: "O_CREAT through a self-loop with a slash",
        why: "path_open with O_CREAT of a symlink whose target is itself with a trailing slash \
              (`a -> a/`): ELOOP, as Linux answers after following it 40 times; the reference \
              answers EISDIR",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_open(")
                && arg_of(call, "oflags").is_some_and(|f| f & O_CREAT != 0)
                && reference == "EISDIR"
                && capsule == "ELOOP"
        },
        ends_comparison: |_| false,
        rare: true,
    },
    Known {
        name: "directory mtime after a copy-up",
        why: "in the layered root, copying a lower file up into its directory creates an entry \
              in the writable layer's copy of that directory, which moves the directory's mtime \
              (as overlayfs does); the reference's directory keeps a time the guest set",
        backends: &[Layers],
        accepts: |call, reference, capsule, _| {
            call.contains("filestat_get(")
                && reference.starts_with("ok dir ")
                && set_time(reference, "mtim=")
                && capsule == "ok dir mtim=other"
        },
        ends_comparison: |_| false,
        rare: true,
    },
    Known {
        name: "link following a symlink",
        why: "path_link with LOOKUPFLAGS_SYMLINK_FOLLOW links the symlink's target, as Linux's \
              linkat(AT_SYMLINK_FOLLOW) does (or answers as it does: EEXIST, ENOENT, ENOTDIR, \
              EPERM for a directory, ELOOP); the reference refuses the flag (EINVAL)",
        backends: ALL,
        accepts: |call, reference, capsule, _| {
            call.starts_with("path_link(")
                && call.contains("follow=1")
                && reference == "EINVAL"
                && matches!(
                    capsule,
                    "ok" | "EEXIST" | "ENOENT" | "ENOTDIR" | "EPERM" | "ELOOP"
                )
        },
        ends_comparison: |capsule| capsule == "ok",
        rare: false,
    },
];

/// One line of a transcript: `#STEP CALL = RESULT`.
fn split(line: &str) -> (&str, &str) {
    line.split_once(" = ").unwrap_or((line, ""))
}

fn call_of(line: &str) -> &str {
    let (head, _) = split(line);
    head.split_once(' ').map_or(head, |(_, call)| call)
}

/// Where the scratch directory lives in the container: each of Capsule's filesystems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// A host directory mounted with `-v` (compared on the host too).
    HostDir,
    /// `--tmpfs /work`: Capsule's in-memory filesystem.
    Tmpfs,
    /// `/work` in the container's layered root: its starting files in a read-only
    /// layer, every change copied up into the writable layer or whited out.
    Layers,
}

impl Backend {
    const ALL: [Backend; 3] = [Backend::HostDir, Backend::Tmpfs, Backend::Layers];

    fn name(self) -> &'static str {
        match self {
            Backend::HostDir => "a host directory",
            Backend::Tmpfs => "tmpfs",
            Backend::Layers => "the layered root",
        }
    }

    fn flags(self) -> &'static str {
        match self {
            Backend::HostDir => "-v DIR:/work",
            Backend::Tmpfs => "--tmpfs /work",
            Backend::Layers => "--layer DIR (DIR/work holds the starting files)",
        }
    }
}

/// The starting files of the layered runs: names the generator uses, so that calls
/// meet lower files and directories (copy-up, whiteouts, renames of lower
/// directories).
fn seed_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("d/b")).expect("mkdir");
    std::fs::write(dir.join("a"), "lower a").expect("write");
    std::fs::write(dir.join("d/e"), "lower d/e").expect("write");
    std::os::unix::fs::symlink("d", dir.join("l1")).expect("symlink");
}

/// How often each known difference was met, by backend and its two results
/// (`Backend: REFERENCE -> CAPSULE`).
type Fired = BTreeMap<&'static str, BTreeMap<String, usize>>;

/// How two runs of one seed (or of some of its steps) differ.
#[derive(Debug)]
struct Divergence {
    /// The step whose line differs first (for the tree: the last step).
    step: Option<usize>,
    what: String,
}

struct Harness {
    env: TestEnv,
    reference: Reference,
    /// How often each known difference was met.
    fired: RefCell<Fired>,
}

impl Harness {
    fn new() -> Self {
        Self {
            env: TestEnv::new(),
            reference: Reference::new(capsule_tests::guests::WASI_FUZZ),
            fired: RefCell::default(),
        }
    }

    fn args(seed: u64, keep: Option<&[usize]>) -> Vec<String> {
        let mut args = vec!["/work".to_owned(), seed.to_string(), STEPS.to_string()];
        if let Some(keep) = keep {
            args.push(
                keep.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        args
    }

    /// Runs the steps under both runtimes over fresh scratch directories and returns
    /// both transcripts and the first unexplained difference, if any.
    fn compare(
        &self,
        backend: Backend,
        seed: u64,
        keep: Option<&[usize]>,
    ) -> (String, String, Option<Divergence>) {
        let scratch = tempfile::Builder::new()
            .prefix("wasi-fuzz-")
            .tempdir_in(self.env.work())
            .expect("scratch");
        let ours_dir = scratch.path().join("capsule");
        let theirs_dir = scratch.path().join("reference");
        std::fs::create_dir(&ours_dir).expect("mkdir");
        std::fs::create_dir(&theirs_dir).expect("mkdir");
        let args = Self::args(seed, keep);
        let mut capsule = self.env.capsule();
        capsule.args(["run", "-w", "/work"]);
        match backend {
            Backend::HostDir => {
                capsule
                    .arg("-v")
                    .arg(format!("{}:/work", ours_dir.display()));
            }
            Backend::Tmpfs => {
                capsule.args(["--tmpfs", "/work"]);
            }
            Backend::Layers => {
                // The lower layer holds /work and its starting files; the reference
                // starts from a copy of the same files.
                let layer = scratch.path().join("layer");
                seed_tree(&layer.join("work"));
                seed_tree(&theirs_dir);
                capsule.arg("--layer").arg(&layer);
            }
        }
        let ours = Run::of(
            capsule.arg(capsule_tests::guests::WASI_FUZZ).args(&args),
            None,
        );
        let mut argv = vec![capsule_tests::guests::WASI_FUZZ];
        argv.extend(args.iter().map(String::as_str));
        let theirs = self.reference.run(&argv, &theirs_dir, "/work");
        let divergence = (|| {
            if ours.code != Some(theirs.code) || ours.stderr != theirs.stderr {
                return Some(Divergence {
                    step: None,
                    what: format!(
                        "exit {:?} vs the reference's {}; stderr {:?} vs {:?}",
                        ours.code, theirs.code, ours.stderr, theirs.stderr
                    ),
                });
            }
            // The transcripts end with the tree as each guest saw it.
            match compare_lines(
                backend,
                &theirs.stdout,
                &ours.stdout,
                &mut self.fired.borrow_mut(),
            ) {
                Err(d) => Some(d),
                // The trees differ as a consequence of a known difference.
                Ok(Some(_)) => None,
                // A host directory is also compared as the host sees it.
                Ok(None) if backend == Backend::HostDir => compare_trees(&theirs_dir, &ours_dir),
                Ok(None) => None,
            }
        })();
        (theirs.stdout, ours.stdout, divergence)
    }

    /// The fewest steps of `seed` (up to and including `last`) that still diverge, by
    /// delta debugging: drop chunks of steps while the runs still differ.
    fn minimise(&self, backend: Backend, seed: u64, last: usize) -> Vec<usize> {
        let mut keep: Vec<usize> = (0..=last).collect();
        // Still the same divergence: at the same step (the last one kept).
        let diverges = |keep: &[usize]| {
            self.compare(backend, seed, Some(keep))
                .2
                .is_some_and(|d| d.step.is_none_or(|s| s == last))
        };
        let mut chunk = keep.len().div_ceil(2);
        while chunk >= 1 {
            let mut start = 0;
            let mut shrunk = false;
            while start < keep.len() {
                let end = (start + chunk).min(keep.len());
                let candidate: Vec<usize> =
                    keep[..start].iter().chain(&keep[end..]).copied().collect();
                if !candidate.is_empty() && diverges(&candidate) {
                    keep = candidate;
                    shrunk = true;
                } else {
                    start = end;
                }
            }
            if !shrunk {
                if chunk == 1 {
                    break;
                }
                chunk = chunk.div_ceil(2);
            }
        }
        keep
    }

    /// A report of one divergent seed, shrunk to a minimal reproducer.
    fn report(&self, backend: Backend, seed: u64, divergence: &Divergence) -> String {
        let last = divergence.step.unwrap_or(STEPS - 1);
        let keep = self.minimise(backend, seed, last);
        let (theirs, ours, minimal) = self.compare(backend, seed, Some(&keep));
        let keep_arg = keep
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "seed {seed} on {}: {}\n  minimal reproducer ({} of {} steps): {}\n  replay: capsule run -w /work {} {} /work {seed} {STEPS} {keep_arg}\n--- reference\n{theirs}--- capsule\n{ours}",
            backend.name(),
            divergence.what,
            keep.len(),
            last + 1,
            minimal.map_or_else(|| "(no longer diverges when shrunk)".to_owned(), |d| d.what),
            backend.flags(),
            capsule_tests::guests::WASI_FUZZ,
        )
    }
}

/// Compares two transcripts line by line. `Ok(ended)`: they agree, up to the line
/// where a known difference that ends the comparison occurred (`ended` names it);
/// `fired` counts every known difference met, by its two results.
fn compare_lines(
    backend: Backend,
    theirs: &str,
    ours: &str,
    fired: &mut Fired,
) -> Result<Option<&'static str>, Divergence> {
    let (t, o): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), ours.lines().collect());
    // What each descriptor's last read from cookie 0 listed in Capsule's run.
    let mut snapshots: BTreeMap<String, Listing> = BTreeMap::new();
    for i in 0..t.len().max(o.len()) {
        let (tl, ol) = (
            t.get(i).copied().unwrap_or("<missing>"),
            o.get(i).copied().unwrap_or("<missing>"),
        );
        let (call, (_, tr), (_, or)) = (call_of(tl), split(tl), split(ol));
        if tl != ol {
            let step = tl
                .strip_prefix('#')
                .and_then(|s| s.split_once(' '))
                .and_then(|(n, _)| n.parse().ok());
            let snapshot = call
                .strip_prefix("fd_readdir(")
                .and_then(|rest| rest.split(',').next())
                .and_then(|descriptor| snapshots.get(descriptor));
            let known = KNOWN.iter().find(|k| {
                call == call_of(ol)
                    && k.backends.contains(&backend)
                    && (k.accepts)(call, tr, or, snapshot)
            });
            let Some(known) = known else {
                return Err(Divergence {
                    step,
                    what: format!("line {}:\n  reference: {tl}\n  capsule:   {ol}", i + 1),
                });
            };
            *fired
                .entry(known.name)
                .or_default()
                .entry(format!("{backend:?}: {tr} -> {or}"))
                .or_default() += 1;
            if (known.ends_comparison)(or) {
                return Ok(Some(known.name));
            }
        }
        track_snapshots(&mut snapshots, call_of(ol), or);
    }
    Ok(None)
}

/// Follows the descriptors of Capsule's run through one call: a complete read from
/// cookie 0 records what the descriptor lists; a descriptor opened anew into a slot,
/// closed, or renumbered takes its record with it.
fn track_snapshots(snapshots: &mut BTreeMap<String, Listing>, call: &str, result: &str) {
    let ok = result.starts_with("ok");
    if let Some(rest) = call.strip_prefix("fd_readdir(") {
        let descriptor = rest.split(',').next().unwrap_or_default().to_owned();
        if arg_of(call, "cookie") == Some(0) {
            match listing(result) {
                Some((entries, _)) => {
                    snapshots.insert(descriptor, entries);
                }
                None => {
                    snapshots.remove(&descriptor);
                }
            }
        }
    } else if call.starts_with("path_open(") && !call.ends_with("[escape]") {
        // `-> sN`: the slot holds the new descriptor when the open succeeded.
        if let Some(slot) = call.rsplit("-> ").next().filter(|_| ok) {
            snapshots.remove(slot);
        }
    } else if let Some(rest) = call.strip_prefix("fd_close(") {
        snapshots.remove(rest.trim_end_matches(')'));
    } else if let Some(rest) = call.strip_prefix("fd_renumber(") {
        let (from, to) = rest
            .trim_end_matches(')')
            .split_once(", ")
            .unwrap_or_default();
        if ok && from != to {
            let moved = snapshots.remove(from);
            snapshots.remove(to);
            if let Some(entries) = moved {
                snapshots.insert(to.to_owned(), entries);
            }
        }
    }
}

fn compare_trees(theirs: &Path, ours: &Path) -> Option<Divergence> {
    let (t, o) = (
        capsule_tests::tree::snapshot(theirs),
        capsule_tests::tree::snapshot(ours),
    );
    let paths: BTreeSet<&String> = t.keys().chain(o.keys()).collect();
    let diffs: Vec<String> = paths
        .into_iter()
        .filter(|p| t.get(*p) != o.get(*p))
        .map(|p| {
            format!(
                "  {p}: reference {} / capsule {}",
                t.get(p).map_or("<absent>", String::as_str),
                o.get(p).map_or("<absent>", String::as_str)
            )
        })
        .collect();
    (!diffs.is_empty()).then(|| Divergence {
        step: None,
        what: format!("the trees left behind differ:\n{}", diffs.join("\n")),
    })
}

/// Seeds to run: the fixed set, or random ones for `CAPSULE_FUZZ_SECONDS` seconds.
fn seeds() -> (Box<dyn Iterator<Item = u64>>, Option<Duration>) {
    match std::env::var("CAPSULE_FUZZ_SECONDS") {
        Ok(secs) => {
            let secs: u64 = secs
                .parse()
                .expect("CAPSULE_FUZZ_SECONDS is a number of seconds");
            let start = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mut state = start;
            let random = std::iter::repeat_with(move || {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                state >> 16
            });
            (Box::new(random), Some(Duration::from_secs(secs)))
        }
        Err(_) => (Box::new(FIXED_SEEDS), None),
    }
}

#[test]
fn generated_preview1_calls_agree_with_the_reference() {
    let harness = Harness::new();
    let (seeds, budget) = seeds();
    let started = Instant::now();
    let mut ran = 0;
    let mut reports = Vec::new();
    let mut seen_calls = 0usize;
    for seed in seeds {
        if budget.is_some_and(|b| started.elapsed() > b) {
            break;
        }
        for backend in Backend::ALL {
            let (theirs, _, divergence) = harness.compare(backend, seed, None);
            seen_calls += theirs.lines().count();
            ran += 1;
            if let Some(d) = divergence {
                let report = harness.report(backend, seed, &d);
                eprintln!("{report}");
                reports.push(report);
            }
        }
        if reports.len() >= 5 {
            break;
        }
    }
    let fired = harness.fired.borrow().clone();
    eprintln!(
        "wasi_fuzz: {ran} runs (seeds x backends), {seen_calls} lines compared; known differences met:"
    );
    for known in KNOWN {
        let met = fired.get(known.name);
        eprintln!(
            "  {:>4}  {}: {}",
            met.map_or(0, |m| m.values().sum::<usize>()),
            known.name,
            known.why
        );
        for (pair, n) in met.into_iter().flatten() {
            eprintln!("          {n:>4}  {pair}");
        }
    }
    // The table stays true: on the fixed seeds every known difference still occurs
    // (one that no longer does is removed, so it cannot hide a regression later).
    if budget.is_none() && reports.is_empty() {
        for known in KNOWN.iter().filter(|k| !k.rare) {
            assert!(
                fired.contains_key(known.name),
                "the known difference {:?} no longer occurs on the fixed seeds: remove it from KNOWN (and docs/wasi.md)",
                known.name
            );
        }
    }
    // The generator must really exercise the host: most lines are calls that ran.
    assert!(
        seen_calls >= ran * STEPS / 2,
        "too few calls were compared ({seen_calls} over {ran} runs): is the generator broken?"
    );
    assert!(
        reports.is_empty(),
        "{} seed(s) diverge from the reference:\n\n{}",
        reports.len(),
        reports.join("\n\n")
    );
}

/// Each known difference accepts its two answers only: for a line of the kind the
/// generator prints, the documented pair is accepted, and neither the pair reversed
/// (Capsule answering as the reference, the reference as Capsule) nor another answer
/// on either side is.
#[test]
fn each_known_difference_accepts_only_its_documented_pair() {
    // (rule, backend, call, reference, Capsule) as the fixed seeds meet them.
    let cases: &[(&str, Backend, &str, &str, &str)] = &[
        (
            "escape",
            Tmpfs,
            "path_filestat_get(scratch, follow=1, \"../d\") [escape]",
            "EPERM",
            "ENOENT",
        ),
        (
            "rmdir of the scratch directory",
            Tmpfs,
            "path_remove_directory(scratch, \".\")",
            "EINVAL",
            "EBUSY",
        ),
        (
            "rmdir with a trailing slash",
            Layers,
            "path_remove_directory(scratch, \"b/\")",
            "EINVAL",
            "ok",
        ),
        (
            "readdir from a cookie after changes",
            Tmpfs,
            "fd_readdir(s1, buf=4096, cookie=2)",
            "ok a:dir b:file l1:dir l2:file next=[3, 4, 5, 6]",
            "ok a:dir l2:file next=[3, 4]",
        ),
        (
            "O_CREAT of ..",
            HostDir,
            "path_open(scratch, follow=1, \"d/..\", oflags=0x1, base=0x2, inh=0x0, fdflags=0x0) -> s1",
            "EPERM",
            "EISDIR",
        ),
        (
            "set no times on a missing path",
            Layers,
            "path_filestat_set_times(scratch, follow=0, \"d/d\", 1000000000, 0, fst=0x0)",
            "ok",
            "ENOENT",
        ),
        (
            "lstat of file/",
            HostDir,
            "path_filestat_get(scratch, follow=0, \"a/\")",
            "ok file nlink=1 size=40 atim=other mtim=other",
            "ENOTDIR",
        ),
        (
            "atime of reads",
            Tmpfs,
            "path_filestat_get(scratch, follow=1, \"a\")",
            "ok file nlink=1 size=40 atim=other mtim=other",
            "ok file nlink=1 size=40 atim=1000000000 mtim=other",
        ),
        (
            "rmdir of ..",
            Layers,
            "path_remove_directory(scratch, \"d/..\")",
            "EINVAL",
            "ENOTEMPTY",
        ),
        ("sync of a directory", Tmpfs, "fd_sync(s2)", "EBADF", "ok"),
        (
            "O_CREAT through a self-loop with a slash",
            Tmpfs,
            "path_open(scratch, follow=1, \"c/\", oflags=0x1, base=0x2, inh=0x0, fdflags=0x0) -> s0",
            "EISDIR",
            "ELOOP",
        ),
        (
            "directory mtime after a copy-up",
            Layers,
            "path_filestat_get(scratch, follow=1, \"d\")",
            "ok dir mtim=2000000123",
            "ok dir mtim=other",
        ),
        (
            "link following a symlink",
            HostDir,
            "path_link(scratch, follow=1, \"l1\", scratch, \"x\")",
            "EINVAL",
            "ok",
        ),
    ];
    // What Capsule listed from cookie 0 before the readdir case's read from cookie 2:
    // its listing is that snapshot but the first two entries.
    let (snapshot, _) =
        listing("ok .:dir ..:dir a:dir l2:file next=[1, 2, 3, 4]").expect("a listing");
    let matching = |backend: Backend, call: &str, reference: &str, capsule: &str| {
        KNOWN
            .iter()
            .filter(|k| {
                k.backends.contains(&backend)
                    && (k.accepts)(call, reference, capsule, Some(&snapshot))
            })
            .map(|k| k.name)
            .collect::<Vec<_>>()
    };
    let named: BTreeSet<&str> = cases.iter().map(|c| c.0).collect();
    for known in KNOWN {
        assert!(
            named.contains(known.name),
            "{:?} has no case here: add one",
            known.name
        );
    }
    for &(name, backend, call, reference, capsule) in cases {
        assert_eq!(
            matching(backend, call, reference, capsule),
            [name],
            "{name}: its own pair"
        );
        assert!(
            matching(backend, call, capsule, reference).is_empty(),
            "{name}: the pair reversed is accepted"
        );
        for other in ["EIO", "ENOTSUP", "ok other"] {
            assert!(
                matching(backend, call, reference, other).is_empty(),
                "{name}: Capsule answering {other:?} is accepted"
            );
            assert!(
                matching(backend, call, other, capsule).is_empty(),
                "{name}: the reference answering {other:?} is accepted"
            );
        }
        let elsewhere: Vec<Backend> = Backend::ALL
            .into_iter()
            .filter(|b| {
                !KNOWN
                    .iter()
                    .any(|k| k.name == name && k.backends.contains(b))
            })
            .collect();
        for backend in elsewhere {
            assert!(
                matching(backend, call, reference, capsule).is_empty(),
                "{name}: accepted on {backend:?}, which it does not occur on"
            );
        }
    }
}
