//! Races that lose nothing (issue 26 item 4): several processes at once run `stop`,
//! `kill`, `rm -f`, `start`, `restart`, `rename`, `cp` and `run -d` (with `rm -f`
//! during its start-up) on the same few detached containers, for a fixed number of
//! commands; every command that fails says so in one `capsule:` line, and afterwards no
//! supervisor runs for a container that is gone or stopped, `ps -a` lists exactly the
//! container directories, every record parses, and `system check` is clean.
//! `scripts/stress_lifecycle.py` is the long-running version of this test.

use capsule_tests::{Proc, TestEnv, guests};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// How many containers the workers share, how many workers, and how many commands each
/// runs.
const CONTAINERS: u64 = 3;
const WORKERS: u64 = 4;
const COMMANDS: u64 = 150;
/// The longest any one command may take (a stop waits at most its grace period and
/// three seconds, and a removal a few more).
const COMMAND_LIMIT: Duration = Duration::from_secs(40);

/// A small deterministic generator (SplitMix64): each worker's commands are the same
/// from run to run; their interleaving is not.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Waits for `child` at most [`COMMAND_LIMIT`]; kills it and reports a hang with
/// what it printed.
fn finish(child: Proc) -> Result<Output, String> {
    child.finish(COMMAND_LIMIT).map_err(|stuck| stuck.0)
}

/// How the commands of a worker ended, and what was wrong with them.
#[derive(Default)]
struct Outcomes {
    succeeded: u64,
    refused: u64,
    problems: Vec<String>,
}

impl Outcomes {
    /// Records a command's outcome: a failure must be exactly one `capsule:` line
    /// without a raw host error; a success says nothing on stderr.
    fn judge(&mut self, argv: &[String], result: Result<Output, String>) {
        match result.map(|out| (out.status.success(), judge(argv, &out))) {
            Err(e) => self.problems.push(format!("{argv:?}: {e}")),
            Ok((_, Some(problem))) => self.problems.push(problem),
            Ok((true, None)) => self.succeeded += 1,
            Ok((false, None)) => self.refused += 1,
        }
    }
}

/// Runs `capsule ARGS` to its end, at most [`COMMAND_LIMIT`] (a hang fails the test).
#[track_caller]
fn run(env: &TestEnv, args: &[&str]) -> Output {
    let child = Proc::spawn(env.capsule().args(args));
    finish(child).unwrap_or_else(|e| panic!("capsule {args:?}: {e}"))
}

/// Runs `capsule ARGS`, asserts success, returns stdout.
#[track_caller]
fn ok(env: &TestEnv, args: &[&str]) -> String {
    let out = run(env, args);
    assert!(
        out.status.success(),
        "capsule {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What is wrong with a command's output, if anything.
fn judge(argv: &[String], out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("capsule: warning:"))
        .collect();
    let Some(code) = out.status.code() else {
        return Some(format!("{argv:?} was killed by a signal: {stderr}"));
    };
    let bad = stderr.contains("panicked")
        || stderr.to_lowercase().contains("backtrace")
        || if code == 0 {
            !lines.is_empty()
        } else {
            lines.len() != 1 || !lines[0].starts_with("capsule: ") || lines[0].contains("os error")
        };
    bad.then(|| format!("{argv:?} exited {code}: {stderr}"))
}

/// One worker: `COMMANDS` commands on the shared containers.
fn worker(env: &TestEnv, seed: u64, payload: &Path, out_dir: &Path) -> Outcomes {
    let mut rng = Rng(seed);
    let mut outcomes = Outcomes::default();
    let spawn = |argv: &[String]| Ok::<_, String>(Proc::spawn(env.capsule().args(argv)));
    let payload = payload.to_str().expect("a UTF-8 path").to_owned();
    for i in 0..COMMANDS {
        let slot = rng.below(CONTAINERS);
        let names = [format!("r{slot}"), format!("r{slot}-x")];
        let pick = usize::from(rng.below(2) == 1);
        let (name, other) = (names[pick].clone(), names[1 - pick].clone());
        let run_d = |name: &str| -> Vec<String> {
            ["run", "-d", "--name", name, "svc", "tick", "0", "100"]
                .map(str::to_owned)
                .to_vec()
        };
        let argv: Vec<String> = match rng.below(10) {
            0 => vec!["stop".into(), "-t".into(), "0".into(), name],
            1 => vec!["kill".into(), name],
            2 => vec!["rm".into(), "-f".into(), name],
            3 | 4 => vec!["start".into(), name],
            5 => vec!["restart".into(), "-t".into(), "0".into(), name],
            6 => vec!["rename".into(), name, other],
            7 if i % 2 == 0 => vec!["cp".into(), payload.clone(), format!("{name}:/payload")],
            7 => {
                let dest = out_dir.join(format!("out-{seed}-{i}"));
                vec![
                    "cp".into(),
                    format!("{name}:/service.wasm"),
                    dest.to_str().expect("a UTF-8 path").to_owned(),
                ]
            }
            8 => run_d(&name),
            _ => {
                // `rm -f` during `run -d`'s start-up.
                let run = run_d(&name);
                let rm: Vec<String> = vec!["rm".into(), "-f".into(), name];
                let runner = spawn(&run);
                std::thread::sleep(Duration::from_millis(rng.below(30)));
                let remover = spawn(&rm);
                outcomes.judge(&run, runner.and_then(finish));
                outcomes.judge(&rm, remover.and_then(finish));
                continue;
            }
        };
        outcomes.judge(&argv, spawn(&argv).and_then(finish));
    }
    outcomes
}

/// `{pid: container ID}` of the supervisors of `home`: `capsule __supervise ID` (from
/// `start`), and on Linux the `capsule run -d ...` child that became one (it holds its
/// container's `running.lock`).
fn supervisors(home: &Path) -> BTreeMap<u32, String> {
    let mut found = BTreeMap::new();
    let want = format!("CAPSULE_HOME={}", home.display());
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in proc_dir.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let id = if argv.len() >= 3 && argv[1] == b"__supervise" {
            String::from_utf8_lossy(argv[2]).into_owned()
        } else if argv.len() >= 3
            && argv[1] == b"run"
            && argv.iter().any(|a| *a == b"-d" || *a == b"--detach")
        {
            let Some(id) = locked_container(&entry.path(), home) else {
                continue;
            };
            id
        } else {
            continue;
        };
        // A zombie (ended, not yet reaped) runs nothing.
        let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        });
        let ours = std::fs::read(entry.path().join("environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == want.as_bytes()));
        if ours && !zombie {
            found.insert(pid, id);
        }
    }
    found
}

/// The ID of the container of `home` whose `running.lock` the process at `proc_entry`
/// holds open.
fn locked_container(proc_entry: &Path, home: &Path) -> Option<String> {
    let containers = home.join("containers");
    std::fs::read_dir(proc_entry.join("fd"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .find_map(|target| {
            let dir = target.parent()?;
            (target.file_name()? == "running.lock" && dir.parent()? == containers)
                .then(|| dir.file_name()?.to_str().map(str::to_owned))
                .flatten()
        })
}

/// What is wrong with the home now (empty: every invariant holds).
fn inconsistencies(env: &TestEnv) -> Vec<String> {
    let mut problems = Vec::new();
    let ps = run(env, &["ps", "-a", "--no-trunc", "--format", "json"]);
    if !ps.status.success() {
        return vec![format!(
            "ps -a failed: {}",
            String::from_utf8_lossy(&ps.stderr)
        )];
    }
    let listed: BTreeMap<String, serde_json::Value> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).expect("ps prints JSON");
            (entry["ID"].as_str().unwrap_or_default().to_owned(), entry)
        })
        .collect();
    let root = env.home().join("containers");
    let dirs: BTreeSet<String> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let hidden: Vec<&String> = dirs.iter().filter(|d| d.starts_with('.')).collect();
    if !hidden.is_empty() {
        problems.push(format!("left by an interrupted removal: {hidden:?}"));
    }
    let on_disk: BTreeSet<String> = dirs
        .iter()
        .filter(|d| !d.starts_with('.'))
        .cloned()
        .collect();
    let in_ps: BTreeSet<String> = listed.keys().cloned().collect();
    if on_disk != in_ps {
        problems.push(format!(
            "ps -a lists {in_ps:?}, the containers' directory holds {on_disk:?}"
        ));
    }
    for dir in &on_disk {
        for file in ["config.json", "state.json"] {
            let text = std::fs::read_to_string(root.join(dir).join(file)).unwrap_or_default();
            if serde_json::from_str::<serde_json::Value>(&text).is_err() {
                problems.push(format!("{dir}/{file} is missing or torn: {text:?}"));
            }
        }
    }
    let mut names = BTreeSet::new();
    for entry in listed.values() {
        if !names.insert(entry["Names"].to_string()) {
            problems.push(format!("the name {} is held twice", entry["Names"]));
        }
        if entry["State"] == "dead" {
            problems.push(format!("{} is dead", entry["Names"]));
        }
    }
    let running: BTreeSet<&String> = listed
        .iter()
        .filter(|(_, e)| e["State"] == "running" || e["State"] == "restarting")
        .map(|(id, _)| id)
        .collect();
    let supervised: Vec<String> = supervisors(env.home()).into_values().collect();
    for id in &supervised {
        if !running.contains(id) {
            problems.push(format!(
                "a supervisor runs for {id}, which is {}",
                listed
                    .get(id)
                    .map_or("gone".to_owned(), |e| e["State"].to_string())
            ));
        }
    }
    for id in running {
        let n = supervised.iter().filter(|s| *s == id).count();
        if n != 1 {
            problems.push(format!("{id} is running with {n} supervisors"));
        }
    }
    let check = run(env, &["system", "check"]);
    let said = String::from_utf8_lossy(&check.stdout);
    if !check.status.success() || !said.contains("ok:") {
        problems.push(format!(
            "system check: {said}{}",
            String::from_utf8_lossy(&check.stderr)
        ));
    }
    problems
}

/// The invariants, given a supervisor that is ending a moment to end.
fn settled(env: &TestEnv) -> Vec<String> {
    let start = Instant::now();
    loop {
        let problems = inconsistencies(env);
        if problems.is_empty() || start.elapsed() > Duration::from_secs(15) {
            return problems;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lifecycle_verbs_racing_on_the_same_containers_lose_nothing() {
    let started = Instant::now();
    // Its containers are removed (`rm -f`) when it goes, pass or fail.
    let env = TestEnv::new();
    ok(&env, &["image", "import", guests::SERVICE, "-t", "svc"]);
    // Compiled once, before the race.
    ok(&env, &["run", "--rm", "svc", "tick", "1", "0"]);
    for slot in 0..CONTAINERS {
        ok(
            &env,
            &[
                "run",
                "-d",
                "--name",
                &format!("r{slot}"),
                "svc",
                "tick",
                "0",
                "100",
            ],
        );
    }
    let payload = env.write("payload.txt", "payload\n".repeat(100));
    let out_dir = env.work().join("out");
    std::fs::create_dir_all(&out_dir).expect("test");
    let (env_ref, payload_ref, out_ref) = (&env, payload.as_path(), out_dir.as_path());
    let outcomes: Vec<Outcomes> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|seed| scope.spawn(move || worker(env_ref, seed + 1, payload_ref, out_ref)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker"))
            .collect()
    });
    let succeeded: u64 = outcomes.iter().map(|o| o.succeeded).sum();
    let refused: u64 = outcomes.iter().map(|o| o.refused).sum();
    let problems: Vec<String> = outcomes.into_iter().flat_map(|o| o.problems).collect();
    eprintln!(
        "races: {succeeded} commands succeeded and {refused} were refused in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "commands that failed without one clear line:\n{}",
        problems.join("\n")
    );
    // A copy out is whole or not there.
    let size = std::fs::metadata(guests::SERVICE).expect("test").len();
    for copy in std::fs::read_dir(&out_dir)
        .expect("test")
        .filter_map(Result::ok)
    {
        let len = copy.metadata().expect("test").len();
        assert_eq!(len, size, "{} is {len} bytes", copy.path().display());
    }
    let problems = settled(&env);
    assert!(
        problems.is_empty(),
        "after the race:\n{}",
        problems.join("\n")
    );
    // Everything removed: no supervisor of the home is left, and nothing on disk.
    let ids = ok(&env, &["ps", "-aq", "--no-trunc"]);
    let ids: Vec<&str> = ids.lines().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        ok(&env, &args);
    }
    let start = Instant::now();
    while !supervisors(env.home()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "supervisors left after rm -f of every container: {:?}",
            supervisors(env.home())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let problems = inconsistencies(&env);
    assert!(
        problems.is_empty(),
        "after removing all:\n{}",
        problems.join("\n")
    );
    assert_eq!(ok(&env, &["ps", "-aq"]), "");
    eprintln!("races: {:.1} s", started.elapsed().as_secs_f64());
}
