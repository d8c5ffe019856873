//! A container's state as data, with Docker's rules: `created` → `running` →
//! `exited` (with its code), `restarting` between runs of a restart policy, and `dead`
//! when the process that ran it died without saying how it ended. Written atomically to
//! `state.json` in the container's directory by the process that runs the container.

use serde::{Deserialize, Serialize};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Restarting,
    Exited,
    Dead,
}

impl Status {
    /// Docker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// What `state.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The process running the guest (the supervisor, or a foreground `capsule run`).
    #[serde(default)]
    pub pid: Option<u32>,
    /// The exit code of the last run: the guest's status, or Capsule's code for a trap
    /// (134), a kill (137) or a timeout (124).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// RFC 3339.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// How many times the restart policy restarted it.
    #[serde(default)]
    pub restart_count: u32,
    /// Why the last run ended other than by exiting (a trap, a kill, a timeout, out of
    /// memory, a set-up error).
    #[serde(default)]
    pub error: Option<String>,
    /// The last run ended because a memory grow went past `--memory`.
    #[serde(default)]
    pub oom_killed: bool,
    /// `stop` or `kill` asked for it to end: the restart policy does not restart it,
    /// and `unless-stopped` stays stopped.
    #[serde(default)]
    pub stopped_by_user: bool,
}

impl State {
    /// A container that was created and never started.
    pub fn created() -> Self {
        Self {
            status: Status::Created,
            pid: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            error: None,
            oom_killed: false,
            stopped_by_user: false,
        }
    }

    /// Whether the state says a process is running it (the caller checks that the
    /// process still lives: see [`super::Container::state`]).
    pub fn is_active(&self) -> bool {
        matches!(self.status, Status::Running | Status::Restarting)
    }
}

/// Why a verb cannot act on a container in its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(
        "container {0} is still being created: start it once its capsule create or run has returned"
    )]
    Creating(String),
    #[error(
        "container {0} is running: stop it first (capsule stop {0}), or remove it anyway with capsule rm -f {0}"
    )]
    RemoveRunning(String),
}

/// Docker's rule for `start`: not while it runs.
///
/// # Errors
/// [`StateError::AlreadyRunning`].
pub fn can_start(name: &str, state: &State) -> Result<(), StateError> {
    if state.is_active() {
        return Err(StateError::AlreadyRunning(name.to_owned()));
    }
    Ok(())
}

/// `kill` needs a running container (`stop` of a stopped one is a no-op in Docker).
///
/// # Errors
/// [`StateError::NotRunning`].
pub fn can_kill(name: &str, state: &State) -> Result<(), StateError> {
    if !state.is_active() {
        return Err(StateError::NotRunning(name.to_owned()));
    }
    Ok(())
}

/// `rm` without `-f` refuses a running container.
///
/// # Errors
/// [`StateError::RemoveRunning`].
pub fn can_remove(name: &str, state: &State, force: bool) -> Result<(), StateError> {
    if state.is_active() && !force {
        return Err(StateError::RemoveRunning(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_docker() {
        let mut state = State::created();
        assert!(can_start("c", &state).is_ok());
        assert!(can_kill("c", &state).is_err());
        assert!(can_remove("c", &state, false).is_ok());
        state.status = Status::Running;
        assert_eq!(
            can_start("c", &state),
            Err(StateError::AlreadyRunning("c".into()))
        );
        assert!(can_kill("c", &state).is_ok());
        assert!(can_remove("c", &state, false).is_err());
        assert!(can_remove("c", &state, true).is_ok());
        state.status = Status::Exited;
        assert!(can_start("c", &state).is_ok());
    }

    #[test]
    fn state_round_trips_and_old_files_read() {
        let state = State::created();
        let json = serde_json::to_string(&state).expect("test");
        assert_eq!(serde_json::from_str::<State>(&json).expect("test"), state);
        let old: State =
            serde_json::from_str(r#"{"status":"exited","exit_code":3}"#).expect("test");
        assert_eq!(old.status, Status::Exited);
        assert_eq!(old.exit_code, Some(3));
    }
}
