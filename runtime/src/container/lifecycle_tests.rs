//! Tests of the lifecycle verbs, on containers in a temporary home. A running container
//! is played by this process: a thread holds the container's run lock, as its
//! supervisor would, for a child process (`sleep`) recorded as the container's pid, and
//! lets go of it (recording how the run ended) when the child ends.

use super::{grace, kill, lost_to_another_start, remove, start, stop, wait};
use crate::container::state::{State, StateError, Status};
use crate::container::supervisor::DEFAULT_STOP_TIMEOUT;
use crate::container::{Container, ContainerError, NewContainer};
use crate::home::Home;
use crate::spec::grammar::MAX_DURATION;
use std::time::Duration;

/// A temporary home (removed when the first value is dropped).
fn home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().expect("temporary home");
    let home = Home::at(dir.path().join("home"));
    (dir, home)
}

/// A created container, its creation over (its creator lets go of the run lock once
/// the spec is recorded; these have none, so it is let go here).
fn create(home: &Home, name: &str, stop_timeout: Option<u64>) -> Container {
    let mut container = Container::create(
        home,
        NewContainer {
            name: Some(name.to_owned()),
            image: "scratch".to_owned(),
            stop_timeout,
            ..NewContainer::default()
        },
    )
    .expect("create a container");
    container.unlock_running();
    container
}

fn exited(container: &Container, code: i32) {
    let mut state = State::created();
    state.status = Status::Exited;
    state.exit_code = Some(code);
    container.write_state(&state).expect("write the state");
}

#[test]
fn grace_is_the_explicit_one_else_the_containers_else_ten_seconds_and_never_past_the_limit() {
    let (_dir, home) = home();
    let plain = create(&home, "plain", None);
    assert_eq!(
        grace(&plain, None),
        Duration::from_secs(DEFAULT_STOP_TIMEOUT)
    );
    assert_eq!(DEFAULT_STOP_TIMEOUT, 10, "Docker's default");
    assert_eq!(grace(&plain, Some(3)), Duration::from_secs(3));
    assert_eq!(grace(&plain, Some(0)), Duration::ZERO);

    let own = create(&home, "own", Some(25));
    assert_eq!(grace(&own, None), Duration::from_secs(25));
    assert_eq!(grace(&own, Some(2)), Duration::from_secs(2));
    assert_eq!(grace(&own, Some(0)), Duration::ZERO);

    // A record written before the limit was checked may hold more: bounded.
    let huge = create(&home, "huge", Some(u64::MAX));
    assert_eq!(grace(&huge, None), MAX_DURATION);
    assert_eq!(grace(&huge, Some(1)), Duration::from_secs(1));
    assert_eq!(grace(&plain, Some(u64::MAX)), MAX_DURATION);
    assert_eq!(
        grace(&plain, Some(MAX_DURATION.as_secs() + 1)),
        MAX_DURATION
    );
    assert_eq!(
        grace(&plain, Some(MAX_DURATION.as_secs())),
        MAX_DURATION,
        "the limit itself is allowed"
    );
}

#[cfg(unix)]
mod running {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const SIGTERM: i32 = 15;
    const SIGKILL: i32 = 9;

    /// A container "running": its run lock held by a thread of this process for a
    /// child process, recorded as the container's pid.
    pub(super) struct Run {
        pub(super) pid: u32,
        /// Set just before the lock is let go.
        pub(super) released: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<ExitStatus>>,
    }

    impl Run {
        /// Runs `command` (`sh -c`) as `container`'s process; when it ends, records
        /// `exit_code` (137 if a signal ended it) and lets go of the lock.
        pub(super) fn start(container: &Container, command: &str, exit_code: i32) -> Self {
            let lock = container.open_run_lock().expect("open the run lock");
            lock.try_lock().expect("take the run lock");
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .spawn()
                .expect("start sh");
            let pid = child.id();
            let mut state = State::created();
            state.status = Status::Running;
            state.pid = Some(pid);
            container.write_state(&state).expect("write the state");
            let dir = container.dir.clone();
            let released = Arc::new(AtomicBool::new(false));
            let flag = released.clone();
            let thread = std::thread::spawn(move || {
                let status = child.wait().expect("wait for the child");
                state.status = Status::Exited;
                state.exit_code = Some(if status.signal().is_some() {
                    137
                } else {
                    exit_code
                });
                // Gone after `rm -f`: nothing to record then.
                if let Ok(json) = serde_json::to_vec(&state) {
                    let _ = crate::container::write_unsynced(&dir, "state.json", &json);
                }
                flag.store(true, Ordering::SeqCst);
                drop(lock);
                status
            });
            Self {
                pid,
                released,
                thread: Some(thread),
            }
        }

        /// Whether the child still runs.
        pub(super) fn alive(&self) -> bool {
            !self.released.load(Ordering::SeqCst)
        }

        /// How the child ended (after it was made to).
        pub(super) fn ended(mut self) -> ExitStatus {
            self.thread
                .take()
                .expect("joined once")
                .join()
                .expect("the lock holder")
        }
    }

    impl Drop for Run {
        fn drop(&mut self) {
            if let Some(thread) = self.thread.take() {
                // A test that failed halfway: end the child so the thread ends.
                if let Some(pid) = i32::try_from(self.pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                let _ = thread.join();
            }
        }
    }

    /// The grace period the last stop request asked for.
    fn requested_grace(container: &Container) -> Option<String> {
        std::fs::read_to_string(container.dir.join("stop-request")).ok()
    }

    #[test]
    fn start_refuses_a_running_container_and_does_not_start_a_supervisor() {
        let (dir, home) = home();
        let container = create(&home, "web", None);
        let run = Run::start(&container, "sleep 60", 0);
        let missing = dir.path().join("no-capsule-here");
        match start(&home, &container, &missing) {
            Err(ContainerError::State(StateError::AlreadyRunning(name))) => assert_eq!(name, "web"),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        assert!(
            !container.dir.join("supervisor.log").exists(),
            "a supervisor was started for a running container"
        );
        assert!(run.alive());

        // Exited, or recorded as running by a process that is gone (dead), it may be
        // started: the verb goes on to the supervisor (which is missing here).
        let other = create(&home, "other", None);
        exited(&other, 0);
        let err = start(&home, &other, &missing).expect_err("no supervisor binary");
        assert!(!matches!(err, ContainerError::State(_)), "{err:?}");
        let dead = create(&home, "dead", None);
        let mut state = State::created();
        state.status = Status::Running;
        state.pid = Some(run.pid);
        dead.write_state(&state).expect("write the state");
        assert_eq!(dead.state().status, Status::Dead);
        let err = start(&home, &dead, &missing).expect_err("no supervisor binary");
        assert!(!matches!(err, ContainerError::State(_)), "{err:?}");
        // The pid a dead container recorded is not signalled.
        assert!(
            run.alive(),
            "the recorded pid of a dead container was signalled"
        );
    }

    #[test]
    fn kill_needs_a_running_container_and_ends_its_process() {
        let (_dir, home) = home();
        let mut created = create(&home, "created", None);
        match kill(&mut created) {
            Err(ContainerError::State(StateError::NotRunning(name))) => {
                assert_eq!(name, "created");
            }
            other => panic!("expected NotRunning, got {other:?}"),
        }
        let mut done = create(&home, "done", None);
        exited(&done, 2);
        assert!(matches!(
            kill(&mut done),
            Err(ContainerError::State(StateError::NotRunning(_)))
        ));
        assert_eq!(
            done.state().exit_code,
            Some(2),
            "kill changed an exited one"
        );

        let mut web = create(&home, "web", None);
        let run = Run::start(&web, "sleep 60", 0);
        kill(&mut web).expect("kill");
        assert!(
            run.released.load(Ordering::SeqCst),
            "kill returned while the process still held the container"
        );
        assert_eq!(requested_grace(&web).as_deref(), Some("0"));
        assert_eq!(run.ended().signal(), Some(SIGTERM));
        assert_eq!(web.state().status, Status::Exited);
    }

    #[test]
    fn stop_asks_with_its_grace_does_nothing_when_not_running_and_kills_what_does_not_stop() {
        let (_dir, home) = home();
        let mut created = create(&home, "created", None);
        stop(&mut created, Duration::from_secs(1)).expect("stop of a created one");
        assert_eq!(created.state(), State::created());
        assert_eq!(requested_grace(&created), None);

        let mut web = create(&home, "web", None);
        let run = Run::start(&web, "sleep 60", 0);
        stop(&mut web, Duration::from_millis(1500)).expect("stop");
        assert!(run.released.load(Ordering::SeqCst));
        assert_eq!(requested_grace(&web).as_deref(), Some("1500"));
        assert_eq!(run.ended().signal(), Some(SIGTERM));

        // A process that ignores the request is killed once the grace (and 3 s more)
        // have passed, and the container is recorded as killed.
        let mut stubborn = create(&home, "stubborn", None);
        let ready = stubborn.dir.join("ignoring");
        let run = Run::start(
            &stubborn,
            &format!(
                "trap '' TERM; : > '{}'; while :; do sleep 1; done",
                ready.display()
            ),
            0,
        );
        // Asked before the shell ignores TERM, it would stop at once.
        let waiting = std::time::Instant::now();
        while !ready.exists() {
            assert!(waiting.elapsed() < Duration::from_secs(30), "sh never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = std::time::Instant::now();
        stop(&mut stubborn, Duration::ZERO).expect("stop");
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert_eq!(run.ended().signal(), Some(SIGKILL));
        let state = stubborn.state();
        assert_eq!(
            (state.status, state.exit_code, state.stopped_by_user),
            (Status::Exited, Some(137), true)
        );
        assert!(
            state.error.as_deref().is_some_and(|e| e.contains("killed")),
            "{state:?}"
        );
    }

    #[test]
    fn remove_refuses_a_running_container_without_force_and_stops_it_with() {
        let (_dir, home) = home();
        let web = create(&home, "web", None);
        let dir = web.dir.clone();
        let run = Run::start(&web, "sleep 60", 0);
        match remove(&home, web, false, false) {
            Err(ContainerError::State(StateError::RemoveRunning(name))) => assert_eq!(name, "web"),
            other => panic!("expected RemoveRunning, got {other:?}"),
        }
        assert!(dir.is_dir(), "refused, yet removed");
        assert!(run.alive(), "refused, yet stopped");

        let web = Container::find(&home, "web").expect("still there");
        assert_eq!(
            remove(&home, web, true, true).expect("rm -f"),
            Vec::<String>::new()
        );
        assert!(!dir.exists());
        assert_eq!(run.ended().signal(), Some(SIGTERM));
        assert!(matches!(
            Container::find(&home, "web"),
            Err(ContainerError::NotFound(_))
        ));

        let idle = create(&home, "idle", None);
        let dir = idle.dir.clone();
        remove(&home, idle, false, false).expect("rm of a created one");
        assert!(!dir.exists());
    }

    #[test]
    fn wait_returns_the_exit_code_once_the_run_ends_or_says_it_was_removed() {
        let (_dir, home) = home();
        let done = create(&home, "done", None);
        exited(&done, 3);
        assert_eq!(wait(&done).expect("wait"), 3);

        let web = create(&home, "web", None);
        let run = Run::start(&web, "sleep 0.3", 7);
        assert_eq!(wait(&web).expect("wait"), 7);
        assert!(
            run.released.load(Ordering::SeqCst),
            "wait returned while it ran"
        );
        assert!(run.ended().success());

        let gone = create(&home, "gone", None);
        let other = Container::find(&home, "gone").expect("find");
        gone.remove().expect("remove");
        match wait(&other) {
            Err(ContainerError::Removed { name, .. }) => assert_eq!(name, "gone"),
            other => panic!("expected Removed, got {other:?}"),
        }
    }
}

#[test]
fn a_start_lost_to_another_is_told_from_other_failures() {
    assert!(lost_to_another_start("container web is already running"));
    assert!(lost_to_another_start("container web-2 is already running"));
    assert!(!lost_to_another_start("guest trapped: unreachable"));
    assert!(!lost_to_another_start(
        "container web could not start: container web is already running"
    ));
}
