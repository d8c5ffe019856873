//! The SDK's one error type: a kind to match on and the one-line message the `capsule`
//! binary would print. The runtime's own error types stay inside.

use std::fmt;

/// What kind of thing went wrong. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An image, container, file or program that does not exist.
    NotFound,
    /// An argument, option, path or name that is not valid.
    InvalidInput,
    /// Bytes that are not a WebAssembly module Capsule can run (garbage, a component,
    /// a truncated file).
    InvalidModule,
    /// A module that does not validate or compile.
    Compile,
    /// A run that could not start (an unresolved import, a missing export, an unusable
    /// mount, an image without a command or of another platform).
    CannotRun,
    /// A clash with what exists: a name in use, a container in the wrong state.
    Conflict,
    /// The operation needs a Capsule home, and this is an in-memory [`crate::Capsule`].
    NoHome,
    /// Detached containers need the `capsule` binary to supervise them, and it was
    /// not found (see [`crate::Capsule::supervisor`]).
    NoSupervisor,
    /// A recipe that does not build.
    Build,
    /// The host's input/output failed (a store that cannot be written, a disk full).
    Io,
}

/// An error from the SDK: its [`ErrorKind`] and a message that says what was wrong and,
/// where there is one, what to do.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// An error of `kind` whose message is `error`'s, with its causes after it.
    pub(crate) fn from_source(kind: ErrorKind, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Self::new(kind, message)
    }

    /// What kind of error it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message alone (also what `Display` shows).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Maps the runtime's errors to SDK errors (crate-private: no runtime type appears in
/// the SDK's API).
pub(crate) mod map {
    use super::{Error, ErrorKind};
    use capsule_runtime::container::{ContainerError, PrepareError};
    use capsule_runtime::image::ImageError;

    pub fn home(e: &capsule_runtime::home::HomeError) -> Error {
        Error::from_source(ErrorKind::Io, e)
    }

    pub fn engine(e: &capsule_runtime::engine::EngineError) -> Error {
        Error::from_source(ErrorKind::InvalidInput, e)
    }

    pub fn module(e: &capsule_runtime::module::ModuleError) -> Error {
        use capsule_runtime::module::ModuleError;
        let kind = match e {
            ModuleError::NotFound { .. } => ErrorKind::NotFound,
            ModuleError::Read { .. } => ErrorKind::Io,
            _ => ErrorKind::InvalidModule,
        };
        Error::from_source(kind, e)
    }

    pub fn spec(e: &capsule_runtime::spec::SpecError) -> Error {
        Error::from_source(ErrorKind::InvalidInput, e)
    }

    pub fn limit(e: &capsule_runtime::spec::grammar::LimitError) -> Error {
        Error::from_source(ErrorKind::InvalidInput, e)
    }

    pub fn run(e: &capsule_runtime::exec::RunError) -> Error {
        use capsule_runtime::exec::RunError;
        let kind = match e {
            RunError::Compile { name, reason } => {
                let mut error = Error::from_source(ErrorKind::Compile, e);
                error.message = format!("{name}: does not compile: {reason}");
                return error;
            }
            RunError::Module(e) => return module(e),
            RunError::Program { .. }
            | RunError::Command(capsule_runtime::container::command::CommandError::NotFound {
                ..
            }) => ErrorKind::NotFound,
            _ => ErrorKind::CannotRun,
        };
        Error::from_source(kind, e)
    }

    pub fn image(e: &ImageError) -> Error {
        let kind = match e {
            ImageError::NotFound(_) => ErrorKind::NotFound,
            ImageError::Io { .. } | ImageError::Write { .. } | ImageError::Store(_) => {
                ErrorKind::Io
            }
            ImageError::Conflict(_) => ErrorKind::Conflict,
            _ => ErrorKind::InvalidInput,
        };
        Error::from_source(kind, e)
    }

    pub fn prepare(e: &PrepareError) -> Error {
        let kind = match e {
            PrepareError::Platform { .. }
            | PrepareError::NoCommand(_)
            | PrepareError::Path { .. }
            | PrepareError::Label { .. } => ErrorKind::CannotRun,
            PrepareError::Container(ContainerError::NameTaken { .. }) | PrepareError::Ports(_) => {
                ErrorKind::Conflict
            }
            _ => ErrorKind::InvalidInput,
        };
        Error::from_source(kind, e)
    }

    pub fn container(e: &ContainerError) -> Error {
        let kind = match e {
            ContainerError::NotFound(_) | ContainerError::Removed { .. } => ErrorKind::NotFound,
            ContainerError::Ambiguous(_)
            | ContainerError::InvalidName(_)
            | ContainerError::SameName(_) => ErrorKind::InvalidInput,
            ContainerError::NameTaken { .. }
            | ContainerError::State(_)
            | ContainerError::Owner(_) => ErrorKind::Conflict,
            ContainerError::Unrunnable { .. } | ContainerError::Start { .. } => {
                ErrorKind::CannotRun
            }
            ContainerError::Io { .. } => ErrorKind::Io,
        };
        Error::from_source(kind, e)
    }

    pub fn build(e: &capsule_runtime::builder::BuildError) -> Error {
        Error::from_source(ErrorKind::Build, e)
    }

    pub fn io(what: &str, e: &std::io::Error) -> Error {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        Error::new(kind, format!("{what}: {e}"))
    }
}
