//! `containerd-shim-capsule-v1` under a real containerd (Debian's 1.6, its own root,
//! state and socket, stopped at the end): an image saved by `capsule save` is imported
//! with `ctr image import` and run with `ctr run --runtime io.containerd.capsule.v1`;
//! checked from outside — what `ctr` prints and exits with, files on the host through
//! a bind mount, the task's cgroup, `ctr task kill`, and that nothing is left after the
//! deletes.

use capsule_tests::containerd::Containerd;
use capsule_tests::{Proc, TestEnv, guests};
use std::process::Output;
use std::time::{Duration, Instant};

const RUNTIME: &str = "io.containerd.capsule.v1";

/// Builds the image of `env`'s `ctx/` as `tag` with capsule, saves it, imports it into
/// `containerd`, and returns its name there (`docker.io/library/TAG`).
fn build_and_import(containerd: &Containerd, env: &TestEnv, tag: &str) -> String {
    env.run(&["build", "-t", tag, "ctx"]).assert_code(0);
    env.run(&["save", "-o", "image.tar", tag]).assert_code(0);
    let archive = env.work().join("image.tar");
    let out = containerd.ctr_ok(&[
        "image",
        "import",
        "--all-platforms",
        archive.to_str().expect("utf-8 path"),
    ]);
    let name = format!("docker.io/library/{tag}");
    let listed = containerd.ctr_ok(&["image", "ls", "-q"]);
    assert!(
        listed.lines().any(|l| l == name),
        "ctr image import did not name the image {name}:\n{out}\nimages:\n{listed}"
    );
    name
}

/// The test image: the service, env and hog guests, a data file, ENV, ENTRYPOINT and
/// a CMD that ticks three times and exits 7.
fn import_image(containerd: &Containerd) -> String {
    let env = TestEnv::new();
    env.write(
        "ctx/service.wasm",
        std::fs::read(guests::SERVICE).expect("service guest"),
    );
    env.write(
        "ctx/env.wasm",
        std::fs::read(guests::ENV).expect("env guest"),
    );
    env.write(
        "ctx/hog.wasm",
        std::fs::read(guests::HOG).expect("hog guest"),
    );
    env.write("ctx/data/motd.txt", "from the image\n");
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY service.wasm /bin/service.wasm\nCOPY env.wasm /bin/env.wasm\nCOPY hog.wasm /bin/hog.wasm\nCOPY data /data\nENV GREETING=from-the-image\nENTRYPOINT [\"/bin/service.wasm\"]\nCMD [\"tick\", \"3\", \"1\", \"7\"]\n",
    );
    build_and_import(containerd, &env, "shimapp:1")
}

/// An image whose config names a user (`USER 1000:1000`): ctr gives the task's process
/// that user.
fn import_user_image(containerd: &Containerd) -> String {
    let env = TestEnv::new();
    env.write(
        "ctx/service.wasm",
        std::fs::read(guests::SERVICE).expect("service guest"),
    );
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY service.wasm /bin/service.wasm\nUSER 1000:1000\nENTRYPOINT [\"/bin/service.wasm\"]\n",
    );
    build_and_import(containerd, &env, "shimuser:1")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "ctr run exited {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `ctr run --rm --runtime io.containerd.capsule.v1 [FLAGS] IMAGE ID [ARGS]`.
fn run(containerd: &Containerd, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Output {
    let mut all = vec!["run", "--rm", "--runtime", RUNTIME];
    all.extend_from_slice(flags);
    all.push(image);
    all.push(id);
    all.extend_from_slice(args);
    containerd.ctr(&all)
}

/// The cgroup directories of the namespace's tasks (ctr's `cgroupsPath` is
/// `/NAMESPACE/ID`): one per cgroup v1 hierarchy, or the v2 one.
fn namespace_cgroups(containerd: &Containerd) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(&containerd.namespace)];
    if let Ok(hierarchies) = std::fs::read_dir(root) {
        dirs.extend(
            hierarchies
                .flatten()
                .map(|h| h.path().join(&containerd.namespace)),
        );
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

/// Nothing of the namespace's tasks is left: no task, no container, no shim process,
/// no bundle in containerd's state, no task cgroup, no active snapshot.
#[track_caller]
fn assert_nothing_left(containerd: &Containerd) {
    assert_eq!(containerd.ctr_ok(&["task", "ls", "-q"]), "", "tasks left");
    assert_eq!(
        containerd.ctr_ok(&["containers", "ls", "-q"]),
        "",
        "containers left"
    );
    // A shim exits once its last task is deleted; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !containerd.shim_processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        containerd.shim_processes(),
        Vec::<String>::new(),
        "shims left"
    );
    let bundles = containerd
        .dir()
        .join("state/io.containerd.runtime.v2.task")
        .join(&containerd.namespace);
    let left: Vec<_> = std::fs::read_dir(&bundles)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "bundles left in {}: {left:?}",
        bundles.display()
    );
    for dir in namespace_cgroups(containerd) {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "cgroups left in {}: {left:?}",
            dir.display()
        );
    }
    let snapshots = containerd.ctr_ok(&["snapshots", "ls"]);
    assert!(
        !snapshots.lines().any(|l| l.contains("Active")),
        "active snapshots left:\n{snapshots}"
    );
}

#[test]
fn containerd_runs_a_saved_capsule_image_through_the_shim() {
    let containerd = Containerd::start();
    let image = import_image(&containerd);

    // The image's ENTRYPOINT and CMD: its output reaches ctr, its exit code is ctr's.
    let out = run(&containerd, &[], &image, "cmd", &[]);
    assert_exit(&out, 7);
    assert_eq!(text(&out.stdout), "tick 1\ntick 2\ntick 3\n");
    assert_eq!(text(&out.stderr), "started\n");

    // Arguments replace the command; the image's ENV and ctr's --env reach the guest.
    let out = run(
        &containerd,
        &["--env", "EXTRA=from ctr"],
        &image,
        "env",
        &["/bin/env.wasm", "GREETING", "EXTRA", "HOME_MISSING"],
    );
    assert_exit(&out, 0);
    assert_eq!(
        text(&out.stdout),
        "GREETING=from-the-image\nEXTRA=from ctr\nHOME_MISSING is unset\n"
    );

    // A bind mount: the guest reads and appends to a host file, in the working
    // directory ctr gives (a relative path).
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("count.txt"), "run\n").expect("seed");
    let mount = format!(
        "type=bind,src={},dst=/mnt/host,options=rbind:rw",
        host.path().display()
    );
    let out = run(
        &containerd,
        &["--mount", &mount, "--cwd", "/mnt/host"],
        &image,
        "bind",
        &["/bin/service.wasm", "count", "count.txt", "5"],
    );
    assert_exit(&out, 5);
    assert_eq!(text(&out.stdout), "runs 2\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("count.txt")).expect("host file"),
        "run\nrun\n"
    );
    // Read-only, the kernel refuses the write and the guest says so.
    let read_only = format!(
        "type=bind,src={},dst=/mnt/host,options=rbind:ro",
        host.path().display()
    );
    let out = run(
        &containerd,
        &["--mount", &read_only],
        &image,
        "bind-ro",
        &["/bin/service.wasm", "count", "/mnt/host/count.txt", "0"],
    );
    assert_exit(&out, 3);
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("count.txt")).expect("host file"),
        "run\nrun\n"
    );

    // The spec's user (ctr takes the image's USER): as 1000:1000 the guest may not
    // open the root-owned (0700) directory the bind mount shows.
    let user_image = import_user_image(&containerd);
    let out = run(
        &containerd,
        &["--mount", &mount],
        &user_image,
        "user",
        &["/bin/service.wasm", "count", "/mnt/host/count.txt", "0"],
    );
    assert_exit(&out, 3);
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );

    // No Linux container around the task: its root is Capsule's, so `..` cannot climb
    // from the rootfs to the host's directories.
    let outside = tempfile::tempdir().expect("outside dir");
    let target = format!("/../../../../..{}/escaped", outside.path().display());
    let out = run(
        &containerd,
        &[],
        &image,
        "escape",
        &["/bin/service.wasm", "write", &target, "out"],
    );
    assert_exit(&out, 3);
    assert!(
        !outside.path().join("escaped").exists(),
        "the guest wrote outside its rootfs"
    );

    // The container's pseudo-filesystems are not the guest's.
    let out = run(
        &containerd,
        &[],
        &image,
        "hidden",
        &["/bin/service.wasm", "count", "/proc/self/environ", "0"],
    );
    assert_exit(&out, 3);
    assert!(
        text(&out.stderr).contains("No such file or directory"),
        "{}",
        text(&out.stderr)
    );

    // linux.resources.memory.limit (ctr's --memory-limit) is Capsule's --memory as
    // well as the cgroup's: malloc fails inside the guest below the limit, and the
    // task ends out of memory.
    let out = run(
        &containerd,
        &["--memory-limit", "134217728"],
        &image,
        "memory",
        &["/bin/hog.wasm", "mem", "8"],
    );
    assert_exit(&out, 137);
    let got: u64 = text(&out.stdout)
        .strip_prefix("malloc failed after ")
        .and_then(|rest| rest.strip_suffix(" MiB\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("hog said: {}", text(&out.stdout)));
    assert!((8..128).contains(&got), "{got} MiB under a 128 MiB limit");
    assert!(
        text(&out.stderr)
            .contains("capsule: guest ran out of memory: the container's memory limit"),
        "{}",
        text(&out.stderr)
    );

    // A module that is not there: Capsule's one-line error, the exit code of a run
    // that could not start.
    let out = run(&containerd, &[], &image, "missing", &["/bin/nope.wasm"]);
    assert_exit(&out, 126);
    assert!(
        text(&out.stderr).starts_with("capsule: ") && text(&out.stderr).contains("/bin/nope.wasm"),
        "{}",
        text(&out.stderr)
    );

    assert_nothing_left(&containerd);
}

/// Starts `ctr run --rm` of a guest that runs until stopped, waits (at most 60 s) for
/// its first line of output, and returns the `ctr` process.
fn start_forever(
    containerd: &Containerd,
    image: &str,
    id: &str,
    args: &[&str],
    first_line: &str,
) -> Proc {
    let mut all = vec!["run", "--rm", "--runtime", RUNTIME, image, id];
    all.extend_from_slice(args);
    let mut child = Proc::spawn(&mut containerd.ctr_command(&all));
    child.wait_for_output(
        &format!("{id}'s first line"),
        Duration::from_secs(60),
        |out, _| out.contains('\n'),
    );
    let stdout = child.stdout();
    assert!(
        stdout.starts_with(first_line),
        "{id} did not start: {stdout:?}"
    );
    child
}

/// Waits for `ctr run` to end (at most 20 s) and returns its exit code.
fn wait_exit(child: Proc) -> Option<i32> {
    child.wait_within(Duration::from_secs(20)).status.code()
}

#[test]
fn ctr_task_kill_stops_a_running_guest_and_delete_leaves_nothing() {
    let containerd = Containerd::start();
    let image = import_image(&containerd);

    // A guest asleep between ticks: SIGTERM interrupts it; the task exits 128 + 15.
    let ticking = start_forever(
        &containerd,
        &image,
        "ticking",
        &["/bin/service.wasm", "tick", "0", "100"],
        "tick 1\n",
    );
    // Its process is in the cgroup the spec names, which has the spec's limits.
    let tasks = containerd.ctr_ok(&["task", "ls"]);
    let pid = tasks
        .lines()
        .find_map(|l| l.strip_prefix("ticking "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no ticking task:\n{tasks}"))
        .to_owned();
    let groups: Vec<_> = namespace_cgroups(&containerd)
        .into_iter()
        .map(|d| d.join("ticking"))
        .filter(|d| d.is_dir())
        .collect();
    assert!(!groups.is_empty(), "no cgroup for the task");
    for group in &groups {
        let procs = std::fs::read_to_string(group.join("cgroup.procs")).expect("cgroup.procs");
        assert!(
            procs.lines().any(|p| p == pid),
            "task {pid} not in {}: {procs}",
            group.display()
        );
    }
    containerd.ctr_ok(&["task", "kill", "ticking"]);
    assert_eq!(wait_exit(ticking), Some(143));

    // A guest spinning without calling the host (it prints nothing: wait for its
    // task to run): interrupted at its next loop back-edge.
    let mut spin = Proc::spawn(&mut containerd.ctr_command(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        &image,
        "spin",
        "/bin/service.wasm",
        "spin",
    ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = containerd.ctr_ok(&["task", "ls"]);
        if tasks
            .lines()
            .any(|l| l.starts_with("spin ") && l.contains("RUNNING"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "spin never ran:\n{tasks}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The task's process installs its handlers before it waits for start, so one
    // signal is enough; it is repeated only in case `ctr task ls` said RUNNING before
    // the shim recorded the start.
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        let _ = containerd.ctr(&["task", "kill", "--signal", "SIGINT", "spin"]);
        std::thread::sleep(Duration::from_millis(300));
        if let Some(status) = spin.try_wait() {
            break status.code();
        }
        assert!(Instant::now() < deadline, "spin did not stop on SIGINT");
    };
    assert_eq!(code, Some(130));

    // SIGKILL needs no help from the shim.
    let killed = start_forever(
        &containerd,
        &image,
        "killed",
        &["/bin/service.wasm", "tick", "0", "100"],
        "tick 1\n",
    );
    containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "killed"]);
    assert_eq!(wait_exit(killed), Some(137));

    // A detached task, stopped and deleted by hand: `ctr task delete` and
    // `ctr container delete` leave nothing behind.
    containerd.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        &image,
        "detached",
        "/bin/service.wasm",
        "tick",
        "0",
        "100",
    ]);
    containerd.ctr_ok(&["task", "kill", "detached"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = containerd.ctr_ok(&["task", "ls"]);
        if tasks
            .lines()
            .any(|l| l.starts_with("detached ") && l.contains("STOPPED"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "detached never stopped:\n{tasks}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    containerd.ctr_ok(&["task", "delete", "detached"]);
    containerd.ctr_ok(&["container", "delete", "detached"]);

    assert_nothing_left(&containerd);
}

/// A Pod's containers share one shim process (the sandbox's): many tasks with the same
/// `io.kubernetes.cri.sandbox-id`, created and started two at a time through
/// containerd's API by `capsule-shim-stress` (the benchmark's client), all run, exit 0
/// with their output, and leave nothing behind.
#[test]
fn tasks_of_one_sandbox_share_one_shim() {
    let containerd = Containerd::start();
    let image = import_image(&containerd);
    // The spec ctr gives a container of the image is the client's base spec.
    let out = run(
        &containerd,
        &[],
        &image,
        "spec-source",
        &["/bin/service.wasm", "tick", "2", "0"],
    );
    assert_exit(&out, 0);
    containerd.ctr_ok(&[
        "container",
        "create",
        "--runtime",
        RUNTIME,
        &image,
        "spec-source",
        "/bin/service.wasm",
        "tick",
        "2",
        "0",
    ]);
    let info: serde_json::Value =
        serde_json::from_str(&containerd.ctr_ok(&["containers", "info", "spec-source"]))
            .expect("ctr containers info is JSON");
    containerd.ctr_ok(&["containers", "delete", "spec-source"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, info["Spec"].to_string()).expect("spec file");

    let stress = capsule_tests::containerd::shim_bin().with_file_name("capsule-shim-stress");
    let out = capsule_tests::output(
        std::process::Command::new(&stress)
            .args([
                "--address",
                containerd.socket.to_str().expect("utf-8 socket"),
            ])
            .args(["--namespace", &containerd.namespace, "--image", &image])
            .args([
                "--runtime",
                RUNTIME,
                "--spec",
                spec.to_str().expect("utf-8"),
            ])
            .args(["--count", "8", "--parallel", "2", "--expect", "tick 2\n"]),
    );
    assert!(
        out.status.success(),
        "capsule-shim-stress failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("8 tasks through io.containerd.capsule.v1"),
        "{}",
        text(&out.stdout)
    );
    assert_nothing_left(&containerd);
}

#[test]
fn containerd_runs_a_component_image_through_the_shim() {
    let containerd = Containerd::start();
    let env = TestEnv::new();
    env.write(
        "ctx/hello.wasm",
        std::fs::read(guests::components::HELLO).expect("hello component"),
    );
    env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY hello.wasm /hello.wasm\nENTRYPOINT [\"/hello.wasm\"]\n",
    );
    let image = build_and_import(&containerd, &env, "shimcomponent:1");
    // A WASI 0.2 command: its output reaches ctr, its exit code is ctr's.
    let out = run(
        &containerd,
        &[],
        &image,
        "component",
        &["/hello.wasm", "--ls", "/", "--exit", "4"],
    );
    assert_exit(&out, 4);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("hello from a component") && stdout.contains("hello.wasm"),
        "{stdout}"
    );
    assert_nothing_left(&containerd);
}
