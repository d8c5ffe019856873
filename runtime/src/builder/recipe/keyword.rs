//! The instructions Capsule runs, by keyword, and the flags each accepts: what the
//! flag parser ([`super::flags`]) and the instruction parsers ([`super::line_parsers`])
//! both read.

/// The instructions Capsule runs, by keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    pub(super) fn parse(upper: &str) -> Option<Self> {
        Some(match upper {
            "ADD" => Self::Add,
            "ARG" => Self::Arg,
            "CMD" => Self::Cmd,
            "COPY" => Self::Copy,
            "ENTRYPOINT" => Self::Entrypoint,
            "ENV" => Self::Env,
            "EXPOSE" => Self::Expose,
            "FROM" => Self::From,
            "HEALTHCHECK" => Self::Healthcheck,
            "LABEL" => Self::Label,
            "RUN" => Self::Run,
            "SHELL" => Self::Shell,
            "STOPSIGNAL" => Self::StopSignal,
            "USER" => Self::User,
            "VOLUME" => Self::Volume,
            "WORKDIR" => Self::Workdir,
            _ => return None,
        })
    }

    /// The flags Capsule accepts, and those Docker knows but Capsule does not support.
    /// Only `--mount` may be given more than once.
    pub(super) fn flags(self) -> (&'static [&'static str], &'static [&'static str]) {
        const COPY: &[&str] = &["from", "chmod", "chown", "link"];
        match self {
            Self::From => (&["platform"], &[]),
            Self::Copy => (COPY, &["parents", "exclude"]),
            Self::Add => (
                COPY,
                &["checksum", "keep-git-dir", "parents", "exclude", "unpack"],
            ),
            Self::Run => (&["mount"], &["network", "security", "device"]),
            Self::Healthcheck => (
                &[
                    "interval",
                    "timeout",
                    "start-period",
                    "start-interval",
                    "retries",
                ],
                &[],
            ),
            _ => (&[], &[]),
        }
    }
}
