//! What other processes ask of a running container through its owner
//! ([`super::control`]): run another program in it (`exec`), list its programs
//! (`top`), read its usage (`stats`). Each is refused with Docker's words when the
//! container does not run.

use super::control::{
    self, BorrowedFd, ControlError, ExecEnd, ExecRequest, ProgramInfo, Request, Usage,
};
use super::{Container, ContainerError, StateError};

/// The standard streams an `exec`'d program gets: the caller's own descriptors
/// (a terminal, pipes, files), passed to the owner.
#[derive(Debug, Clone, Copy)]
pub struct Streams<'a> {
    /// `None`: no stdin (Docker's `exec` without `-i`).
    pub stdin: Option<BorrowedFd<'a>>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
}

fn not_running(container: &Container) -> ContainerError {
    StateError::NotRunning(container.name().to_owned()).into()
}

fn owner_error(e: ControlError) -> ContainerError {
    match e {
        ControlError::Refused(reason) => ContainerError::Owner(reason),
        ControlError::NotRunning(text) => ContainerError::Owner(text),
        ControlError::Io(source) => ContainerError::Io {
            what: "cannot talk to the process that runs the container".to_owned(),
            source,
        },
        ControlError::Garbled(text) => ContainerError::Owner(format!(
            "the process that runs the container answered what this Capsule cannot read: {text}"
        )),
    }
}

fn ask(
    container: &Container,
    request: Request,
    fds: &[BorrowedFd<'_>],
) -> Result<control::Answer, ContainerError> {
    if !container.state().is_active() {
        return Err(not_running(container));
    }
    match control::call(&container.dir, request, fds, None) {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(not_running(container)),
        Err(e) if e.is_not_running() => Err(not_running(container)),
        Err(e) => Err(owner_error(e)),
    }
}

/// Runs `request`'s program in the running `container` with `streams`, until it
/// ends; how it ended. `on_started` is called with its number once it runs.
///
/// # Errors
/// [`StateError::NotRunning`] for a container that does not run; the owner's refusal;
/// the host's error. A container that stops while the program runs ends it: its exit
/// is then 137, with the reason.
pub fn exec(
    container: &Container,
    request: ExecRequest,
    streams: Streams<'_>,
) -> Result<ExecEnd, ContainerError> {
    let mut fds = Vec::with_capacity(3);
    fds.extend(streams.stdin);
    fds.push(streams.stdout);
    fds.push(streams.stderr);
    let interactive = streams.stdin.is_some();
    let mut answer = ask(
        container,
        Request::Exec(ExecRequest {
            interactive,
            ..request
        }),
        &fds,
    )?;
    match control::read_line::<ExecEnd>(&mut answer.stream) {
        Ok(end) => Ok(end),
        Err(ControlError::Garbled(_)) => Ok(ExecEnd {
            exit: i32::from(crate::exit::KILLED),
            error: Some(format!(
                "container {} stopped while the program ran",
                container.name()
            )),
        }),
        Err(e) => Err(owner_error(e)),
    }
}

/// Runs `request`'s program in the running `container` with `stdin` as its whole
/// input, its stdout and stderr written to `stdout` and `stderr` as they come back
/// over the connection: `exec` where descriptors cannot pass to another process
/// (Windows), and the SDK's captured `exec` everywhere.
///
/// # Errors
/// As [`exec`].
pub fn exec_streamed(
    container: &Container,
    request: ExecRequest,
    stdin: &[u8],
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> Result<ExecEnd, ContainerError> {
    use base64::Engine as _;
    let input =
        (!stdin.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(stdin));
    let mut answer = ask(
        container,
        Request::Exec(ExecRequest {
            interactive: false,
            streamed: true,
            input,
            ..request
        }),
        &[],
    )?;
    let stopped = || ExecEnd {
        exit: i32::from(crate::exit::KILLED),
        error: Some(format!(
            "container {} stopped while the program ran",
            container.name()
        )),
    };
    match control::read_frames(&mut answer.stream, stdout, stderr) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(stopped()),
        Err(source) => {
            return Err(ContainerError::Io {
                what: "cannot read the program's output".to_owned(),
                source,
            });
        }
    }
    match control::read_line::<ExecEnd>(&mut answer.stream) {
        Ok(end) => Ok(end),
        Err(ControlError::Garbled(_)) => Ok(stopped()),
        Err(e) => Err(owner_error(e)),
    }
}

/// The programs running in `container`, its own first.
///
/// # Errors
/// As [`exec`].
pub fn top(container: &Container) -> Result<Vec<ProgramInfo>, ContainerError> {
    let answer = ask(container, Request::Top, &[])?;
    serde_json::from_value(answer.value)
        .map_err(|e| owner_error(ControlError::Garbled(e.to_string())))
}

/// What `container` uses now.
///
/// # Errors
/// As [`exec`].
pub fn stats(container: &Container) -> Result<Usage, ContainerError> {
    let answer = ask(container, Request::Stats, &[])?;
    serde_json::from_value(answer.value)
        .map_err(|e| owner_error(ControlError::Garbled(e.to_string())))
}
