//! The lifecycle verbs of a container, shared by the `capsule` binary and the SDK:
//! start under a supervisor of its own, stop with a grace period, kill, wait, remove.
//! Each checks the container's state first (`state::can_*`), so both front ends refuse
//! the same things with the same words.

use super::supervisor::{self, DEFAULT_STOP_TIMEOUT};
use super::{Container, ContainerError, StateError, state};
use crate::home::Home;
use crate::spec::grammar::MAX_DURATION;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts a created or exited container detached: `supervisor_exe` is the `capsule`
/// binary that runs it (`capsule __supervise ID`). Returns once the guest is about to
/// run, or with the reason it could not start.
///
/// # Errors
/// [`ContainerError::State`] when it runs already (another `start` won a race with
/// this one) or is still being created, or why the supervisor or the guest could not
/// start.
pub fn start(
    home: &Home,
    container: &Container,
    supervisor_exe: &Path,
) -> Result<(), ContainerError> {
    state::can_start(container.name(), &container.state())?;
    if container.config.spec.is_none() {
        // `create` holds the run lock until it has recorded the spec; a record without
        // one whose lock is free was left by another version.
        return Err(if container.lock_is_free() {
            ContainerError::Unrunnable {
                id: container.config.id.clone(),
            }
        } else {
            StateError::Creating(container.name().to_owned()).into()
        });
    }
    match supervisor::spawn_detached(home, container, supervisor_exe) {
        // Its supervisor found the run lock taken: another process started it since
        // the state was read. Said as when the state shows it, not as a failure of
        // this start ("could not start: container x is already running").
        Err(ContainerError::Start { reason, .. }) if lost_to_another_start(&reason) => {
            Err(StateError::AlreadyRunning(container.name().to_owned()).into())
        }
        other => other,
    }
}

/// Whether a supervisor's reason for not starting is that another process runs the
/// container ([`StateError::AlreadyRunning`], under whatever name it had then).
pub fn lost_to_another_start(reason: &str) -> bool {
    reason
        .strip_prefix("container ")
        .and_then(|rest| rest.strip_suffix(" is already running"))
        .is_some_and(super::valid_name)
}

/// The grace period of a stop: `explicit`, else the container's `--stop-timeout`, else
/// Docker's 10 s; never more than [`MAX_DURATION`] (a record written before the limit
/// was checked may hold more).
pub fn grace(container: &Container, explicit: Option<u64>) -> Duration {
    Duration::from_secs(
        explicit
            .or(container.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT),
    )
    .min(MAX_DURATION)
}

/// Stops a container: the guest runs on for `grace`, then is interrupted (exit 137);
/// a process that does not end is killed. Nothing to do when it is not running.
///
/// # Errors
/// The host's error asking it or recording its state.
pub fn stop(container: &mut Container, grace: Duration) -> Result<(), ContainerError> {
    let stopped = (|| {
        if supervisor::request_stop(container, grace)?
            && !supervisor::wait_stopped(
                container,
                Some(grace.saturating_add(Duration::from_secs(3))),
            )
        {
            supervisor::force_kill(container)?;
        }
        Ok(())
    })();
    match stopped {
        // Removed meanwhile (`rm -f`, which stops it first): nothing runs it any more,
        // and the file the request or the state would have gone in is gone.
        Err(_) if container.is_removed() => Ok(()),
        other => other,
    }
}

/// Kills a running container at once (exit 137).
///
/// # Errors
/// [`ContainerError::State`] when it is not running; as [`stop`].
pub fn kill(container: &mut Container) -> Result<(), ContainerError> {
    state::can_kill(container.name(), &container.state())?;
    stop(container, Duration::ZERO)
}

/// Waits until no process runs the container; its exit code.
///
/// # Errors
/// [`ContainerError::Removed`] when it was removed (`rm -f`) before its end could be
/// read.
pub fn wait(container: &Container) -> Result<i32, ContainerError> {
    // The last state seen while it ran: `rm -f` records the exit and then removes the
    // container, and the exit may only be seen on the way.
    let mut seen = None;
    while !supervisor::wait_stopped(container, Some(Duration::from_millis(50))) {
        if let Some(state) = container.recorded_state() {
            seen = Some(state);
        }
    }
    match container.recorded_state().or(seen) {
        Some(state) if !state.is_active() => Ok(state.exit_code.unwrap_or(0)),
        _ if !crate::ambient::is_dir(&container.dir) => Err(ContainerError::Removed {
            name: container.name().to_owned(),
            when: "(capsule rm -f) before its end could be read: its exit code went with it",
        }),
        _ => Ok(container.state().exit_code.unwrap_or(0)),
    }
}

/// Removes a container (`force`: a running one is killed first) and, with `volumes`,
/// its anonymous volumes; returns the volumes removed.
///
/// # Errors
/// [`ContainerError::State`] for a running container without `force`; the host's
/// error removing it or its volumes.
pub fn remove(
    home: &Home,
    mut container: Container,
    force: bool,
    volumes: bool,
) -> Result<Vec<String>, ContainerError> {
    state::can_remove(container.name(), &container.state(), force)?;
    hold_for_removal(&mut container, force)?;
    let name = container.name().to_owned();
    let used = container.config.volumes.clone();
    container.remove().map_err(|source| ContainerError::Io {
        what: format!("cannot remove {name}"),
        source,
    })?;
    if !volumes {
        return Ok(Vec::new());
    }
    super::volumes::remove_anonymous(home, &used).map_err(|e| ContainerError::Io {
        what: format!("{name} removed, but not its volumes: {e}"),
        source: std::io::Error::other(e.to_string()),
    })
}

/// How long [`hold_for_removal`] waits for a container's run lock.
const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// Takes the container's run lock for its removal, which keeps it until the directory
/// is gone ([`Container::remove`]): no process runs the container while its directory
/// goes, and none can start it meanwhile (a supervisor that comes up finds the lock
/// taken). A process that runs it is stopped first (`force`; without it, a container
/// that was started since its state was read is refused as running); one that is
/// still being created, or started and not yet running, is waited for.
///
/// # Errors
/// [`ContainerError::NotFound`] when another process removed it first;
/// [`StateError::RemoveRunning`] without `force`; as [`stop`].
fn hold_for_removal(container: &mut Container, force: bool) -> Result<(), ContainerError> {
    let start = Instant::now();
    loop {
        match container.lock_running() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(_) if container.is_removed() => {
                return Err(ContainerError::NotFound(container.name().to_owned()));
            }
            Err(e) => return Err(e),
        }
        let running = container
            .recorded_state()
            .is_some_and(|state| state.is_active());
        if running && !force {
            return Err(StateError::RemoveRunning(container.name().to_owned()).into());
        }
        if start.elapsed() > HOLD_LIMIT {
            return Err(ContainerError::Io {
                what: format!("cannot remove {}", container.name()),
                source: std::io::Error::other(format!(
                    "another process has held it for {}s",
                    HOLD_LIMIT.as_secs()
                )),
            });
        }
        if running {
            stop(container, Duration::ZERO)?;
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
