//! Escape attempts: hostile guests and hostile layers that try to reach outside the
//! container. Each asserts that nothing outside was read or touched.
//!
//! The host side of every test keeps a secret OUTSIDE what the container is given
//! (`WORK/outside/secret.txt`, fresh random content per test) and mounts only
//! `WORK/vol`. The guest (`guests/c/escape.c`) then tries `..`, absolute, climbing and
//! chained symlinks, a symlink the host swaps while the guest reads through it, and
//! creations through all of these. Hostile layers are tars written here byte by byte,
//! so that entries a well-behaved tar writer would refuse to produce can be made too.

use capsule_tests::rawtar::{E, header, raw, tar, tar_body};
use capsule_tests::{Run, TestEnv, guests, names_in};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---- helpers --------------------------------------------------------------------------

/// Content no guest can guess: `TOP-SECRET-<random hex>`.
fn secret_content() -> String {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let random =
        std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("TOP-SECRET-{random:016x}")
}

/// The layout every guest escape test starts from: `WORK/outside/secret.txt` holding
/// the secret, and an empty `WORK/vol` to mount.
struct Layout {
    env: TestEnv,
    secret: String,
    secret_path: PathBuf,
    outside: PathBuf,
    vol: PathBuf,
}

impl Layout {
    fn new() -> Self {
        let env = TestEnv::new();
        let secret = secret_content();
        let secret_path = env.write("outside/secret.txt", &secret);
        let outside = env.work().join("outside");
        let vol = env.work().join("vol");
        std::fs::create_dir(&vol).expect("create the volume directory");
        Self {
            env,
            secret,
            secret_path,
            outside,
            vol,
        }
    }

    /// `-v WORK/vol:/vol`.
    fn volume(&self) -> String {
        format!("{}:/vol", utf8(&self.vol))
    }

    /// `capsule run -v WORK/vol:/vol escape ARGS...`
    fn escape(&self, args: &[&str]) -> Run {
        let volume = self.volume();
        let mut all = vec!["run", "-v", &volume, guests::ESCAPE];
        all.extend_from_slice(args);
        self.env.run(&all)
    }

    /// Asserts that the secret never reached the guest's output.
    #[track_caller]
    fn assert_no_secret(&self, run: &Run) {
        assert!(
            !run.stdout.contains(&self.secret) && !run.stderr.contains(&self.secret),
            "the guest read the secret outside its volume\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout,
            run.stderr
        );
    }

    /// Asserts that the secret file is still there, unchanged.
    #[track_caller]
    fn assert_secret_intact(&self) {
        let now = std::fs::read_to_string(&self.secret_path).expect("the secret file still exists");
        assert_eq!(
            now, self.secret,
            "the secret file outside the volume was changed"
        );
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Everything under `dir`, recursively, without following symlinks: relative path ->
/// `dir`, `file <content>` or `symlink -> <target>`.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("entry under its root")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.insert(rel, format!("symlink -> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".to_owned());
                walk(root, &path, out);
            } else {
                let content = std::fs::read(&path).expect("read file");
                out.insert(rel, format!("file {}", String::from_utf8_lossy(&content)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The `ATTEMPT <what>: <outcome>` lines of a guest run, as (what, outcome).
fn attempts(stdout: &str) -> Vec<(&str, &str)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ATTEMPT "))
        .map(|l| {
            l.rsplit_once(": ")
                .map_or((l, ""), |(what, outcome)| (what, outcome))
        })
        .collect()
}

/// The names of a `LIST <path>: a b c` line, sorted.
fn listed<'a>(stdout: &'a str, path: &str) -> Vec<&'a str> {
    let prefix = format!("LIST {path}:");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{stdout}"));
    let mut names: Vec<&str> = line.split_whitespace().collect();
    names.sort_unstable();
    names
}

/// Asserts that the attempt `what` was reported with exactly `outcome`.
#[track_caller]
fn assert_attempt(stdout: &str, what: &str, outcome: &str) {
    let found = attempts(stdout)
        .into_iter()
        .find(|(w, _)| *w == what)
        .map(|(_, o)| o);
    assert_eq!(
        found,
        Some(outcome),
        "attempt {what:?} should report {outcome:?}\n--- stdout\n{stdout}"
    );
}

/// The first bytes of the host's `/etc/passwd` (if it has one), to check that nothing
/// a guest printed came from it.
fn host_passwd_head() -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    let head: String = text.chars().take(24).collect();
    (!head.is_empty()).then_some(head)
}

// ---- a guest against its volume -------------------------------------------------------

/// `..` and symlinks (absolute, climbing, chained, through directories, looping) out of
/// a mounted volume never reach the host file next to it, and writing through them
/// never creates or changes anything outside the volume. The links the guest made are
/// real escape routes on the host (the host follows them to the secret): Capsule
/// resolves them inside the container instead.
/// Absolute symlinks in the volume, made on the host: a guest may not make one
/// (`path_symlink` with an absolute target is EPERM, as wasmtime answers), but a volume
/// or an image can hold them, and following them must stay inside the container.
#[cfg(unix)]
fn plant_absolute_links(vol: &Path, links: &[(&str, &str)]) {
    for (name, target) in links {
        std::os::unix::fs::symlink(target, vol.join(name))
            .unwrap_or_else(|e| panic!("plant vol/{name} -> {target}: {e}"));
    }
}

#[test]
pub fn escape() {
    let t = Layout::new();
    let host_path = utf8(&t.secret_path);
    let work_before = names_in(t.env.work());
    let outside_before = tree(&t.outside);

    // `..` out of the volume, out of /, and to the host path through the volume.
    let run = t.escape(&["dotdot", "/vol", host_path]);
    run.assert_clean_success();
    t.assert_no_secret(&run);
    let tries = attempts(&run.stdout);
    assert_eq!(tries.len(), 7, "every attempt ran:\n{}", run.stdout);
    for (what, outcome) in &tries {
        assert_eq!(
            *outcome, "blocked (ENOENT)",
            "{what}: only the container's own (empty) tree is reachable\n{}",
            run.stdout
        );
    }
    assert_eq!(
        listed(&run.stdout, "/"),
        ["tmp", "vol"],
        "the container's /"
    );
    assert_eq!(
        listed(&run.stdout, "/vol/../../../../../.."),
        ["tmp", "vol"],
        "`..` stops at the container's /"
    );

    // Symlinks out of the volume: the relative ones the guest makes, the absolute ones
    // the host planted (the guest's own attempts at them are refused with EPERM).
    let planted_abs = format!("{}/planted-abs.txt", utf8(&t.outside));
    let planted = [
        ("good-abs", "/vol/inside.txt"),
        ("abs", host_path),
        ("chainabs", "/vol/chain1"),
        ("root", "/"),
        ("plant-abs", planted_abs.as_str()),
    ];
    #[cfg(unix)]
    plant_absolute_links(&t.vol, &planted);
    let run = t.escape(&["symlinks", "/vol", host_path]);
    run.assert_clean_success();
    t.assert_no_secret(&run);
    for line in run.stdout.lines().filter(|l| l.starts_with("SYMLINK ")) {
        let absolute = planted
            .iter()
            .any(|(name, _)| line.starts_with(&format!("SYMLINK /vol/{name} -> ")));
        let expected = if absolute {
            ": failed (EPERM)"
        } else {
            ": made"
        };
        assert!(line.ends_with(expected), "{line}\n{}", run.stdout);
    }
    // Controls: links that stay inside the volume work.
    assert_attempt(&run.stdout, "control: create DIR/inside.txt", "CREATED");
    let inside = "OPENED written by the escape guest";
    assert_attempt(&run.stdout, "control: link -> DIR/inside.txt", inside);
    assert_attempt(&run.stdout, "control: link -> inside.txt", inside);
    // Loops end.
    assert_attempt(&run.stdout, "self -> self", "blocked (ELOOP)");
    assert_attempt(&run.stdout, "ping -> pong -> ping", "blocked (ELOOP)");
    // Everything else is refused: the targets resolve inside the container, where the
    // host path does not exist.
    let tries = attempts(&run.stdout);
    assert_eq!(tries.len(), 17, "every attempt ran:\n{}", run.stdout);
    for (what, outcome) in tries {
        if what.starts_with("control: ") || outcome == "blocked (ELOOP)" {
            continue;
        }
        assert_eq!(outcome, "blocked (ENOENT)", "{what}\n{}", run.stdout);
    }
    assert_eq!(
        listed(&run.stdout, "/vol/up"),
        ["tmp", "vol"],
        "a link climbing out of the volume lands on the container's /"
    );

    // The links are real escape routes on the host: following them there reaches the
    // secret. Capsule did not follow them.
    #[cfg(unix)]
    for link in ["abs", "rel", "chain1"] {
        let through = std::fs::read_to_string(t.vol.join(link))
            .unwrap_or_else(|e| panic!("the host follows vol/{link}: {e}"));
        assert_eq!(
            through, t.secret,
            "vol/{link} points at the secret on the host"
        );
    }

    // Nothing was created or changed outside the volume.
    assert_eq!(
        names_in(t.env.work()),
        work_before,
        "nothing new next to the volume"
    );
    assert_eq!(
        tree(&t.outside),
        outside_before,
        "the outside directory is unchanged"
    );
    t.assert_secret_intact();
    let vol = tree(&t.vol);
    assert_eq!(
        vol.get("inside.txt").map(String::as_str),
        Some("file written by the escape guest"),
        "the one file the guest created is in the volume"
    );
    assert!(
        vol.values().filter(|v| v.starts_with("file ")).count() == 1,
        "no other file appeared in the volume: {vol:#?}"
    );
}

/// Creating files through `..` and through a link to `/` lands in the container's own
/// root (POSIX: `/..` is `/`), never on the host; a link to the host directory next to
/// the volume leads nowhere.
#[test]
fn write_outside() {
    let t = Layout::new();
    let work_before = names_in(t.env.work());
    let outside_before = tree(&t.outside);
    let parent = t.env.work().parent().expect("the work dir has a parent");
    // Where each attempt would land if it were followed on the host.
    let host_targets = [
        parent.join("outside.txt"),
        PathBuf::from("/outside.txt"),
        PathBuf::from("/x"),
        t.outside.join("planted.txt"),
    ];
    let existed: Vec<bool> = host_targets.iter().map(|p| p.exists()).collect();

    // The link to `/` is planted by the host (a guest may not make an absolute one).
    #[cfg(unix)]
    plant_absolute_links(&t.vol, &[("out", "/")]);
    let run = t.escape(&["write-outside", "/vol"]);
    run.assert_clean_success();
    t.assert_no_secret(&run);
    // `..` cannot go above the container's /, so these create files in its root...
    assert_attempt(&run.stdout, "create /../outside.txt", "CREATED");
    assert_attempt(&run.stdout, "create DIR/../../outside.txt", "CREATED");
    assert_attempt(&run.stdout, "create DIR/out/../../x", "CREATED");
    assert_eq!(
        listed(&run.stdout, "/"),
        ["outside.txt", "tmp", "vol", "x"],
        "the creations landed in the container's own /"
    );
    // ... and `../outside` from the volume is /outside in the container: missing.
    assert_attempt(
        &run.stdout,
        "create DIR/outdir/planted.txt (outdir -> ../outside)",
        "blocked (ENOENT)",
    );
    assert_eq!(listed(&run.stdout, "/vol"), ["out", "outdir"]);

    // The host: only the two links in the volume are new.
    assert_eq!(
        names_in(&t.vol),
        ["out", "outdir"],
        "the volume holds only the links"
    );
    assert_eq!(
        names_in(t.env.work()),
        work_before,
        "nothing new next to the volume"
    );
    assert_eq!(
        tree(&t.outside),
        outside_before,
        "the outside directory is unchanged"
    );
    t.assert_secret_intact();
    for (path, existed) in host_targets.iter().zip(existed) {
        if !existed {
            assert!(
                std::fs::symlink_metadata(path).is_err(),
                "{} appeared on the host",
                path.display()
            );
        }
    }
}

/// The host swaps `vol/swing` between a directory holding `secret` = "benign" and
/// symlinks to the directory next to the volume (whose `secret` is the real one), as
/// fast as it can, while the guest reads `vol/swing/secret` 2000 times. A
/// check-then-open race in Capsule would show the real secret; the guest must only
/// ever see "benign" or an error.
#[cfg(unix)]
#[test]
fn symlink_swap_race() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let t = Layout::new();
    std::fs::write(t.outside.join("secret"), &t.secret).expect("write the outside secret");
    let swing = t.vol.join("swing");
    let parked = t.vol.join("parked");
    let tmp = t.vol.join(".swing.tmp");
    std::fs::create_dir(&swing).expect("create swing");
    std::fs::write(swing.join("secret"), "benign").expect("write the benign secret");
    let outside_abs = t.outside.clone();
    let outside_climb = PathBuf::from(format!("../../../../../../../..{}", utf8(&t.outside)));
    // What `swing` may point at while it is a symlink: the outside directory through an
    // absolute host path, a relative path out of the volume, a climbing path, and the
    // benign directory.
    let targets = [
        outside_abs.as_path(),
        Path::new("../outside"),
        outside_climb.as_path(),
        Path::new("parked"),
    ];
    // Each of the hostile targets really leads to the secret on the host.
    for target in &targets[..3] {
        std::os::unix::fs::symlink(target, &tmp).expect("make a probe link");
        let through = std::fs::read_to_string(tmp.join("secret")).expect("host follows the probe");
        assert_eq!(
            through,
            t.secret,
            "{} leads to the secret on the host",
            target.display()
        );
        std::fs::remove_file(&tmp).expect("remove the probe link");
    }

    // The race must really happen: the link changes while the guest runs, and some
    // opens get through it to the benign file (a Capsule that refused every open would
    // pass the safety checks without testing anything). Under a loaded machine one run
    // can miss it, so up to five runs are made; every run is held to the safety checks.
    let mut exercised = false;
    let mut last = String::new();
    for _attempt in 0..5 {
        let stop = AtomicBool::new(false);
        let swaps = AtomicU64::new(0);
        let swaps_during = AtomicU64::new(0);
        let replace_link = |target: &Path| {
            std::os::unix::fs::symlink(target, &tmp).expect("make the new link");
            std::fs::rename(&tmp, &swing).expect("atomically replace swing");
        };
        let run = std::thread::scope(|scope| {
            let swapper = scope.spawn(|| {
                let mut swing_is_dir = true;
                let mut step = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    if swing_is_dir {
                        // The directory moves away; a link to outside takes its place.
                        std::fs::rename(&swing, &parked).expect("park the benign directory");
                        replace_link(targets[step % 3]);
                        swing_is_dir = false;
                    } else if step.is_multiple_of(5) {
                        // Back to the real directory.
                        std::fs::remove_file(&swing).expect("remove the swing link");
                        std::fs::rename(&parked, &swing).expect("restore the benign directory");
                        swing_is_dir = true;
                    } else {
                        // Atomic replace of one link by another.
                        replace_link(targets[step % targets.len()]);
                    }
                    step += 1;
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            });
            // The swapper stops when this closure ends, by a panic too (a run that
            // fails its deadline): the scope would otherwise wait for it for ever.
            struct StopOnDrop<'a>(&'a AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _stop = StopOnDrop(&stop);
            while swaps.load(Ordering::Relaxed) == 0 && !swapper.is_finished() {
                std::thread::yield_now();
            }
            let before = swaps.load(Ordering::Relaxed);
            let run = t.escape(&["loop", "/vol", "2000"]);
            swaps_during.store(swaps.load(Ordering::Relaxed) - before, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            if let Err(panic) = swapper.join() {
                std::panic::resume_unwind(panic);
            }
            run
        });

        run.assert_clean_success();
        t.assert_no_secret(&run);
        assert!(
            !run.stdout.contains("LEAK"),
            "the guest read something other than the benign file through the swapped link \
             ({} swaps):\n{}",
            swaps.load(Ordering::Relaxed),
            run.stdout
        );
        assert!(
            run.stdout.ends_with("done 2000\n"),
            "the guest finished its loop:\n{}",
            run.stdout
        );
        // The race was real: the link changed while the guest ran, and the guest did get
        // through it to the benign file (a Capsule that refused every open would pass the
        // checks above without testing anything).
        let stats = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("stats "))
            .unwrap_or_else(|| panic!("no stats line:\n{}", run.stdout));
        let count = |key: &str| -> u64 {
            stats
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {stats:?}"))
        };
        let during = swaps_during.load(Ordering::Relaxed);
        assert_eq!(count("leaks"), 0, "{stats}");
        // Put the benign directory back for the next attempt.
        if std::fs::symlink_metadata(&swing).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&swing).expect("remove the swing link");
            std::fs::rename(&parked, &swing).expect("restore the benign directory");
        }
        if during >= 10 && count("opened") > 0 {
            exercised = true;
            break;
        }
        last = format!("{stats}, {during} swaps");
    }
    assert!(
        exercised,
        "in five runs the race was never exercised (the link changed fewer than 10 times \
         while the guest ran, or no open got through to the benign file); last: {last}"
    );
    t.assert_secret_intact();
    assert_eq!(
        std::fs::read_to_string(t.outside.join("secret")).expect("outside secret"),
        t.secret
    );
}

// ---- cp and the host's special files --------------------------------------------------

/// `capsule cp HOST CONTAINER:PATH` opens each host entry once, by name in its
/// directory's handle and without following a symlink, and takes its kind from the
/// opened handle (issue 24): a FIFO is refused at once, naming it. Before, the kind was
/// checked by path and the file then opened by path (following a symlink swapped in
/// meanwhile), and the open of a FIFO waited for a writer forever.
#[test]
fn cp_in_takes_the_kind_from_the_opened_entry_and_refuses_a_fifo() {
    let t = Layout::new();
    t.env
        .run(&["image", "import", guests::SERVICE, "-t", "svc"])
        .assert_code(0);
    t.env
        .run(&["create", "--name", "box", "svc", "env", "X"])
        .assert_code(0);
    let fifo = t.env.work().join("fifo");
    let made = capsule_tests::output(
        std::process::Command::new(capsule_tests::tool("python3")).args([
            "-c",
            "import os, sys; os.mkfifo(sys.argv[1])",
            utf8(&fifo),
        ]),
    );
    assert!(
        made.status.success(),
        "python3 could not make the FIFO: {made:?}"
    );
    // Waiting on the FIFO for a writer would be the bug: 30 s is plenty otherwise.
    let run = Run::of_within(
        t.env.capsule().args(["cp", utf8(&fifo), "box:/fifo"]),
        None,
        std::time::Duration::from_secs(30),
    );
    run.assert_error(
        1,
        &[utf8(&fifo), "not a regular file, a directory or a symlink"],
    );
    // Nothing was made in the container.
    assert_eq!(t.env.run(&["diff", "box"]).stdout, "");
}

/// `capsule cp CONTAINER:DIR HOST` makes each host entry by name in the handle of the
/// directory it made above it, never by a path it resolves again: while the copy runs,
/// the host moves the directory it is filling (`dest/sub`) away and puts a symlink to
/// `WORK/outside` in its place. The files still to come must land in the moved
/// directory, none through the symlink. Before, each file's directory was opened again
/// by path, so every file after the swap was written into `WORK/outside`. A symlink
/// already at a destination inside the tree is refused, writing nothing through it.
#[cfg(unix)]
#[test]
fn cp_out_never_writes_through_a_host_symlink_swapped_in_below_its_destination() {
    const FILES: usize = 400;
    // The files copied into a directory (not a temporary file being written).
    let copied = |dir: &Path| names_in(dir).iter().filter(|n| n.starts_with('f')).count();
    let t = Layout::new();
    t.env
        .run(&["image", "import", guests::SERVICE, "-t", "svc"])
        .assert_code(0);
    t.env
        .run(&["create", "--name", "box", "svc", "env", "X"])
        .assert_code(0);
    for i in 0..FILES {
        t.env
            .write(&format!("src/tree/sub/f{i:04}"), format!("file {i}"));
    }
    let src = t.env.work().join("src/tree");
    t.env.run(&["cp", utf8(&src), "box:/tree"]).assert_code(0);
    let outside_before = names_in(&t.outside);

    // A symlink already inside an existing destination is refused, nothing written.
    let into = t.env.work().join("into");
    std::fs::create_dir_all(into.join("tree")).expect("create into/tree");
    std::os::unix::fs::symlink(&t.outside, into.join("tree/sub")).expect("plant a link");
    t.env
        .run(&["cp", "box:/tree", utf8(&into)])
        .assert_error(1, &["symlink on the host"]);
    assert_eq!(
        names_in(&t.outside),
        outside_before,
        "cp wrote through the link"
    );
    assert_eq!(names_in(&into), ["tree"], "a refused copy left something");
    assert_eq!(
        names_in(&into.join("tree")),
        ["sub"],
        "a refused copy left something"
    );

    // The swap, as soon as the copy has written its first file into `dest/sub`.
    let mut exercised = false;
    for attempt in 0..5 {
        let dest = t.env.work().join(format!("dest{attempt}"));
        let sub = dest.join("sub");
        // Made beforehand, exchanged with `dest/sub` in one step: `dest/sub` is never
        // missing, it is a directory and then the link.
        let parked = t.env.work().join(format!("parked{attempt}"));
        std::os::unix::fs::symlink(&t.outside, &parked).expect("make the link");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (run, left_at_swap) = std::thread::scope(|scope| {
            let swapper = scope.spawn(|| {
                let start = std::time::Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && start.elapsed() < std::time::Duration::from_secs(60)
                {
                    if std::fs::read_dir(&sub).is_ok_and(|mut d| d.next().is_some()) {
                        rustix::fs::renameat_with(
                            rustix::fs::CWD,
                            &parked,
                            rustix::fs::CWD,
                            &sub,
                            rustix::fs::RenameFlags::EXCHANGE,
                        )
                        .expect("exchange dest/sub with the link");
                        return Some(FILES.saturating_sub(copied(&parked)));
                    }
                    std::thread::yield_now();
                }
                None
            });
            let run = t.env.run(&["cp", "box:/tree", utf8(&dest)]);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let left = swapper
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (run, left)
        });
        let leaked: Vec<String> = names_in(&t.outside)
            .into_iter()
            .filter(|n| !outside_before.contains(n))
            .collect();
        assert!(
            leaked.is_empty(),
            "cp wrote {} files ({:?}, ...) through the symlink swapped in at {} ({} were still \
             to come)\n{}",
            leaked.len(),
            leaked.first(),
            sub.display(),
            left_at_swap.unwrap_or(0),
            run.stderr
        );
        t.assert_secret_intact();
        run.assert_code(0);
        if left_at_swap.is_some() {
            // Every file is in the directory the copy made, wherever it was moved.
            assert_eq!(copied(&parked), FILES, "{}", run.stderr);
        }
        if left_at_swap.is_some_and(|left| left > 0) {
            exercised = true;
            break;
        }
    }
    assert!(
        exercised,
        "in five copies the directory was never swapped while files were still to come"
    );
}

// ---- hostile layers -------------------------------------------------------------------

/// Runs `capsule run --layer WORK/<file> ARGS...`.
fn run_with_layer(env: &TestEnv, layer: &Path, args: &[&str]) -> Run {
    let mut all = vec!["run", "--layer", utf8(layer)];
    all.extend_from_slice(args);
    env.run(&all)
}

/// Hostile tar layers are refused before the guest runs: exit 125, one `capsule:` line
/// naming the layer and the offending entry.
#[test]
fn hostile_tar_layers_are_refused() {
    let env = TestEnv::new();
    let lying_size = {
        // The header claims 1 MiB, the tar ends after 512 bytes of body.
        tar_body(&[E::Raw {
            name: b"big",
            flag: b'0',
            mode: 0o644,
            size: 1 << 20,
            body: &[7u8; 512],
            link: b"",
        }])
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "absolute.tar",
            tar(&[E::File("/etc/evil", b"evil")]),
            "/etc/evil",
        ),
        (
            "dotdot.tar",
            tar(&[E::File("a/../../evil", b"evil")]),
            "a/../../evil",
        ),
        (
            "dotdot-leading.tar",
            tar(&[E::File("../evil", b"evil")]),
            "../evil",
        ),
        (
            "char.tar",
            tar(&[raw(b"dev/tty0", b'3', 0o600)]),
            "dev/tty0",
        ),
        ("block.tar", tar(&[raw(b"dev/sda", b'4', 0o600)]), "dev/sda"),
        (
            "fifo.tar",
            tar(&[raw(b"run/pipe", b'6', 0o600)]),
            "run/pipe",
        ),
        (
            "setuid.tar",
            tar(&[E::Raw {
                name: b"bin/su",
                flag: b'0',
                mode: 0o4755,
                size: 4,
                body: b"\0asm",
                link: b"",
            }]),
            "bin/su",
        ),
        (
            "setgid.tar",
            tar(&[E::Raw {
                name: b"bin/sg",
                flag: b'0',
                mode: 0o2755,
                size: 4,
                body: b"\0asm",
                link: b"",
            }]),
            "bin/sg",
        ),
        (
            "hardlink-host.tar",
            tar(&[E::Hardlink("stolen", "/etc/passwd")]),
            "stolen",
        ),
        (
            "hardlink-up.tar",
            tar(&[E::Hardlink("climbed", "../../etc/passwd")]),
            "climbed",
        ),
        (
            "hardlink-later.tar",
            tar(&[E::Hardlink("forward", "later"), E::File("later", b"x")]),
            "forward",
        ),
        (
            "hardlink-dir.tar",
            tar(&[E::Dir("d/"), E::Hardlink("to-dir", "d")]),
            "to-dir",
        ),
        (
            "hardlink-symlink.tar",
            tar(&[
                E::Symlink("sym", "/etc/passwd"),
                E::Hardlink("to-sym", "sym"),
            ]),
            "to-sym",
        ),
        ("lying-size.tar", lying_size, "big"),
    ];
    for (file, bytes, entry) in &cases {
        let path = env.write(file, bytes);
        let run = run_with_layer(&env, &path, &[guests::ARGS]);
        let needle = format!("entry '{entry}'");
        run.assert_error(125, &[file, &needle]);
    }

    // A name that is not UTF-8: refused, one line (the name shown lossily).
    let path = env.write("non-utf8.tar", tar(&[raw(b"bad\xff\xfename", b'0', 0o644)]));
    let run = run_with_layer(&env, &path, &[guests::ARGS]);
    run.assert_error(125, &["non-utf8.tar", "UTF-8"]);
}

/// A GNU sparse entry (type `S`, GNU magic, one data block of 512 bytes at offset 3584
/// of a 4096-byte file), followed by its data and the end-of-archive blocks.
fn gnu_sparse_tar(name: &[u8]) -> Vec<u8> {
    let mut h = header(name, b'S', 0o644, 512, b"");
    h[257..265].copy_from_slice(b"ustar  \0");
    let field = |h: &mut [u8; 512], at: usize, v: u64| {
        h[at..at + 12].copy_from_slice(format!("{v:011o}\0").as_bytes());
    };
    field(&mut h, 386, 3584); // sparse[0].offset
    field(&mut h, 398, 512); // sparse[0].numbytes
    field(&mut h, 483, 4096); // realsize
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(&[b'd'; 512]);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Sparse entries are refused like the others: exit 125, one line naming the entry.
#[test]
fn sparse_tar_layer_is_refused_naming_the_entry() {
    let env = TestEnv::new();
    let path = env.write("sparse.tar", gnu_sparse_tar(b"holes"));
    let run = run_with_layer(&env, &path, &[guests::ARGS]);
    run.assert_error(125, &["sparse.tar", "entry 'holes'", "sparse"]);
}

/// A sparse type flag on a plain ustar header (no GNU sparse map) is refused by the tar
/// reader before Capsule's own checks; the message still names the entry (read from
/// the raw header) and says it once.
#[test]
fn malformed_sparse_tar_layer_is_refused_naming_the_entry() {
    let env = TestEnv::new();
    let path = env.write("sparse.tar", tar(&[raw(b"holes", b'S', 0o644)]));
    let run = run_with_layer(&env, &path, &[guests::ARGS]);
    run.assert_error(125, &["sparse.tar", "entry 'holes'"]);
}

/// Symlinks in a layer are data, whatever they point at: the layer is accepted, and the
/// links resolve inside the container (an absolute `/etc/passwd` is the layer's own),
/// never on the host. Hardlinks to an earlier file of the same layer are accepted too.
#[test]
fn layer_symlinks_resolve_inside_the_container() {
    let env = TestEnv::new();
    let path = env.write(
        "links.tar",
        tar(&[
            E::Dir("etc/"),
            E::File("etc/passwd", b"layer passwd"),
            E::Symlink("link", "/etc/passwd"),
            E::Symlink("climb", "../../../../etc/passwd"),
            E::Symlink("shadow", "../../../../etc/shadow"),
            E::Symlink("hostroot", "/"),
            E::Hardlink("copy", "etc/passwd"),
        ]),
    );
    run_with_layer(&env, &path, &[guests::ARGS, "ok"]).assert_clean_success();

    let host_passwd = host_passwd_head();
    let read = |guest_path: &str| {
        let run = run_with_layer(&env, &path, &[guests::FILES, "read", guest_path]);
        if let Some(head) = &host_passwd {
            assert!(
                !run.stdout.contains(head.as_str()),
                "reading {guest_path} returned the host's /etc/passwd:\n{}",
                run.stdout
            );
        }
        run
    };
    for through in ["/link", "/climb", "/hostroot/etc/passwd", "/copy"] {
        let run = read(through);
        run.assert_clean_success();
        assert_eq!(
            run.stdout, "layer passwd",
            "{through} reads the layer's own file"
        );
    }
    let run = read("/shadow");
    run.assert_code(1);
    assert_eq!(
        run.stdout, "error: open /shadow: errno=44 (ENOENT)\n",
        "the layer has no /etc/shadow, and the host's is not reached"
    );
}

/// A guest writing through a layer's symlinks (to `/etc`, to a climbing path, to the
/// host's own work directory by its absolute path) creates nothing on the host: the
/// targets resolve inside the container, where those directories do not exist. An
/// entry stored under a symlink (`link` -> `/etc`, then `link/evil`) is the layer's
/// own data and lands nowhere on the host either.
#[test]
fn writes_through_layer_symlinks_stay_inside() {
    let env = TestEnv::new();
    let work = utf8(env.work()).to_owned();
    let name = format!("planted-{}", secret_content());
    let path = env.write(
        "links.tar",
        tar(&[
            E::Symlink("etclink", "/etc"),
            E::Symlink("climb", "../../../../../../../../etc"),
            E::Symlink("hostwork", &work),
            E::Symlink("link", "/etc"),
            E::File("link/evil", b"under link"),
        ]),
    );
    let host_targets = [
        PathBuf::from("/etc").join(&name),
        PathBuf::from("/etc/evil"),
        env.work().join(&name),
    ];
    let existed: Vec<bool> = host_targets.iter().map(|p| p.exists()).collect();
    for dir in ["/etclink", "/climb", "/hostwork"] {
        let target = format!("{dir}/{name}");
        let run = run_with_layer(&env, &path, &[guests::FILES, "write", &target, "pwned"]);
        run.assert_code(1);
        assert_eq!(
            run.stdout,
            format!("error: open {target}: errno=44 (ENOENT)\n"),
            "{dir} resolves inside the container, where its target does not exist"
        );
    }
    let run = run_with_layer(&env, &path, &[guests::FILES, "read", "/link/evil"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "under link", "the layer's own entry");
    for (path, existed) in host_targets.iter().zip(existed) {
        if !existed {
            assert!(
                std::fs::symlink_metadata(path).is_err(),
                "{} appeared on the host",
                path.display()
            );
        }
    }
    assert_eq!(
        names_in(env.work()),
        ["links.tar"],
        "nothing new in the work dir"
    );
}

/// A directory layer holding symlinks to the host's /etc (absolute and climbing):
/// the links are recorded, never followed on the host, and resolve inside the
/// container, where there is no /etc.
#[cfg(unix)]
#[test]
fn layer_directory_symlink_to_host_etc() {
    let env = TestEnv::new();
    let layer = env.work().join("layer");
    std::fs::create_dir(&layer).expect("create the layer directory");
    std::fs::write(layer.join("hello.txt"), "from the layer").expect("write a layer file");
    std::os::unix::fs::symlink("/etc", layer.join("hostetc")).expect("link to /etc");
    std::os::unix::fs::symlink("../../../../../../../../etc", layer.join("climbetc"))
        .expect("climbing link to /etc");
    let secret = secret_content();
    let secret_path = env.write("outside/secret.txt", &secret);
    std::os::unix::fs::symlink(&secret_path, layer.join("secret")).expect("link to the secret");

    let host_passwd = host_passwd_head();
    let run = run_with_layer(&env, &layer, &[guests::FILES, "read", "/hello.txt"]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "from the layer", "the layer itself is readable");
    for guest_path in ["/hostetc/passwd", "/climbetc/passwd", "/secret"] {
        let run = run_with_layer(&env, &layer, &[guests::FILES, "read", guest_path]);
        run.assert_code(1);
        assert!(
            run.stdout
                .starts_with(&format!("error: open {guest_path}: ")),
            "{guest_path} does not resolve on the host:\n{}",
            run.stdout
        );
        assert!(!run.stdout.contains(&secret), "{}", run.stdout);
        if let Some(head) = &host_passwd {
            assert!(!run.stdout.contains(head.as_str()), "{}", run.stdout);
        }
    }
    assert_eq!(
        std::fs::read_to_string(&secret_path).expect("secret"),
        secret,
        "the secret is unchanged"
    );
}

/// A guest that tries to exhaust the host meets a limit each time, with the errno a
/// POSIX program expects.
#[test]
fn limits_stop_a_guest_with_the_posix_errno() {
    let env = TestEnv::new();
    let run = env.run(&["run", guests::ESCAPE, "limits", "/tmp"]);
    run.assert_clean_success();
    for line in [
        "LIMIT descriptors: stopped after about 1024 at EMFILE",
        "LIMIT long path: ENAMETOOLONG",
        "LIMIT long name: ENAMETOOLONG",
        "LIMIT 15 links: opened",
        "LIMIT 45 links: ELOOP",
        "LIMIT tmpfs: 64 MiB then ENOSPC",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{}",
            run.stdout
        );
    }
}

/// A guest passing hostile arguments to WASI calls (pointers at the end of the address
/// space, absurd counts, lengths past its memory) gets an errno, never a crash or a
/// host allocation of gigabytes.
#[test]
fn hostile_wasi_arguments_get_an_errno() {
    let env = TestEnv::new();
    let wasm = env.wat(
        "hostile-abi.wasm",
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func $expect (param $got i32) (param $want i32) (param $step i32)
            (if (i32.ne (local.get $got) (local.get $want)) (then (call $exit (local.get $step)))))
          (func (export "_start")
            ;; 2,000,000 iovecs: EINVAL (28), not a 16 MB allocation per call
            (call $expect (call $fd_write (i32.const 1) (i32.const 0) (i32.const 2000000) (i32.const 8)) (i32.const 28) (i32.const 1))
            ;; argv pointer at the very end of the address space: EFAULT (21)
            (call $expect (call $args_get (i32.const -16) (i32.const 64)) (i32.const 21) (i32.const 2))
            ;; 100,000 subscriptions: EINVAL
            (call $expect (call $poll (i32.const 0) (i32.const 0) (i32.const 100000) (i32.const 8)) (i32.const 28) (i32.const 3))
            ;; a path running past the end of memory: EFAULT
            (call $expect (call $path_open (i32.const 3) (i32.const 0) (i32.const 65000) (i32.const 100000)
                                (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 16)) (i32.const 21) (i32.const 4))
            ;; a random_get buffer past the end of memory: EFAULT
            (call $expect (call $random (i32.const 65500) (i32.const 100)) (i32.const 21) (i32.const 5))
            ;; an empty iovec still works after all that: nothing written, no error
            (i32.store (i32.const 100) (i32.const 0))
            (i32.store (i32.const 104) (i32.const 0))
            (call $expect (call $fd_write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 8)) (i32.const 0) (i32.const 6))
            (call $exit (i32.const 0))))"#,
    );
    let run = env.run(&["run", wasm.to_str().expect("utf-8")]);
    run.assert_clean_success();
}

/// A sparse write at a huge offset in the in-memory root is ENOSPC, not a host
/// allocation of that size.
#[test]
fn huge_sparse_writes_in_memory_are_refused() {
    let env = TestEnv::new();
    let wasm = env.wat(
        "sparse.wasm",
        r#"(module
          (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 200) "big")
          (func (export "_start")
            (local $e i32)
            ;; open /big for writing (creat), rights FD_WRITE
            (local.set $e (call $path_open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 3)
                                (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)))
            (if (local.get $e) (then (call $exit (i32.const 100))))
            ;; one byte at offset 1 TiB
            (i32.store (i32.const 100) (i32.const 200))
            (i32.store (i32.const 104) (i32.const 1))
            (call $exit (call $pwrite (i32.load (i32.const 16)) (i32.const 100) (i32.const 1) (i64.const 1099511627776) (i32.const 8)))))"#,
    );
    // ENOSPC is 51.
    env.run(&["run", wasm.to_str().expect("utf-8")])
        .assert_code(51);
}
