//! The instructions that change the config only (and leave an empty-layer history
//! entry): ARG, ENV, LABEL, WORKDIR, EXPOSE, VOLUME, USER, STOPSIGNAL, SHELL,
//! HEALTHCHECK, ENTRYPOINT, CMD. Each returns the step's text; the argv of RUN, CMD and ENTRYPOINT is
//! made here too.

use super::cache::ExecConfig;
use super::error::{BuildError, at, failed};
use super::executor::{Executor, Stage};
use super::image_config::json_list;
use super::recipe::{Command, Pos, Word};
use crate::container::health::{self, Healthcheck};
use crate::spec::GuestPath;
use std::time::Duration;

impl Executor<'_> {
    /// ARG: a build argument, its default, or the global ARG of that name; in scope
    /// for the rest of the stage.
    pub(super) fn arg(
        &mut self,
        stage: &mut Stage,
        args: &[(String, Option<Word>)],
    ) -> Result<String, BuildError> {
        let mut parts = Vec::new();
        for (name, default) in args {
            let value = match self.build_arg(name) {
                Some(v) => Some(v),
                None => match default {
                    Some(word) => Some(self.expand(stage, word)?),
                    None => self.global_args.get(name).cloned().flatten(),
                },
            };
            match &value {
                Some(v) => {
                    stage.args.insert(name.clone(), v.clone());
                    parts.push(format!("{name}={v}"));
                }
                None => parts.push(name.clone()),
            }
        }
        Ok(format!("ARG {}", parts.join(" ")))
    }

    pub(super) fn env(
        &self,
        stage: &Stage,
        config: &mut ExecConfig,
        pairs: &[(String, Word)],
    ) -> Result<String, BuildError> {
        let mut parts = Vec::new();
        for (name, word) in pairs {
            // As in Docker, every value on the line sees the environment from
            // before the instruction (`ENV a=bye b=$a` gives b the old a).
            let value = self.expand(stage, word)?;
            config.set_env(name, &value);
            parts.push(format!("{name}={value}"));
        }
        Ok(format!("ENV {}", parts.join(" ")))
    }

    pub(super) fn label(
        &self,
        stage: &Stage,
        config: &mut ExecConfig,
        pairs: &[(Word, Word)],
        pos: Pos,
    ) -> Result<String, BuildError> {
        let mut parts = Vec::new();
        for (k, v) in pairs {
            let (k, v) = (self.expand(stage, k)?, self.expand(stage, v)?);
            // Capsule's own labels are checked here, not first when the image runs.
            crate::labels::RunLabels::from_labels([(k.as_str(), v.as_str())])
                .map_err(|e| at(&self.file, pos, format!("LABEL: {e}")))?;
            if k == health::LABEL {
                Healthcheck::from_label(&v)
                    .map_err(|e| at(&self.file, pos, format!("LABEL: {e} (write HEALTHCHECK)")))?;
            }
            parts.push(format!("{k}={v:?}"));
            config.labels.insert(k, v);
        }
        Ok(format!("LABEL {}", parts.join(" ")))
    }

    pub(super) fn workdir(
        &self,
        stage: &Stage,
        config: &mut ExecConfig,
        word: &Word,
    ) -> Result<String, BuildError> {
        let dir = self.expand(stage, word)?;
        let joined = if dir.starts_with('/') {
            dir.clone()
        } else {
            format!("{}/{dir}", config.workdir.as_deref().unwrap_or(""))
        };
        let path = GuestPath::parse(&joined).map_err(|e| failed(&self.file, word.pos, None, e))?;
        config.workdir = Some(path.to_string());
        Ok(format!("WORKDIR {path}"))
    }

    pub(super) fn expose(
        &self,
        stage: &Stage,
        config: &mut ExecConfig,
        words: &[Word],
    ) -> Result<String, BuildError> {
        let mut ports = Vec::new();
        for word in words {
            let port = self.expand(stage, word)?;
            let port = normalize_port(&port).ok_or_else(|| {
                at(
                    &self.file,
                    word.pos,
                    format!(
                        "EXPOSE '{port}': expected PORT, PORT/tcp, PORT/udp or a range like 8000-8010"
                    ),
                )
            })?;
            ports.push(port);
        }
        // A range is one key per port in the image's config, as Docker's.
        let mut exposed: std::collections::BTreeSet<String> = config.exposed.drain(..).collect();
        exposed.extend(ports.iter().flat_map(|port| expand_port_range(port)));
        config.exposed = exposed.into_iter().collect();
        Ok(format!("EXPOSE {}", ports.join(" ")))
    }

    pub(super) fn volume(
        &self,
        stage: &Stage,
        config: &mut ExecConfig,
        words: &[Word],
    ) -> Result<String, BuildError> {
        let mut paths = Vec::new();
        for word in words {
            let path = self.expand(stage, word)?;
            let path = GuestPath::parse(&path)
                .map_err(|e| failed(&self.file, word.pos, Some("VOLUME".to_owned()), e))?;
            if !config.volumes.contains(&path.to_string()) {
                config.volumes.push(path.to_string());
            }
            paths.push(path.to_string());
        }
        config.volumes.sort();
        Ok(format!("VOLUME {}", paths.join(" ")))
    }

    pub(super) fn user(
        &mut self,
        stage: &Stage,
        config: &mut ExecConfig,
        word: &Word,
        pos: Pos,
    ) -> Result<String, BuildError> {
        let user = self.expand(stage, word)?;
        self.observer.warn(&format!(
            "{}:{}: USER {user} is recorded in the image but has no effect: WASI programs have no users; access is what the container is granted",
            self.file, pos.line
        ));
        config.user = Some(user.clone());
        Ok(format!("USER {user}"))
    }

    pub(super) fn stop_signal(
        &self,
        stage: &Stage,
        config: &mut ExecConfig,
        word: &Word,
    ) -> Result<String, BuildError> {
        let signal = self.expand(stage, word)?;
        // Docker refuses a signal it does not know at build time, not at `stop`.
        crate::signal::parse(&signal)
            .map_err(|e| at(&self.file, word.pos, format!("STOPSIGNAL: {e}")))?;
        config.stop_signal = Some(signal.clone());
        Ok(format!("STOPSIGNAL {signal}"))
    }

    /// HEALTHCHECK: kept in the image's [`health::LABEL`] label (an OCI config has no
    /// field for it), so the next stage or image built on this one inherits it, a later
    /// HEALTHCHECK replaces it and `HEALTHCHECK NONE` turns it off.
    pub(super) fn healthcheck(config: &mut ExecConfig, check: &Healthcheck) -> String {
        config
            .labels
            .insert(health::LABEL.to_owned(), check.to_label());
        describe_healthcheck(check)
    }

    pub(super) fn shell(config: &mut ExecConfig, shell: &[String]) -> String {
        config.shell = Some(shell.to_vec());
        format!("SHELL {}", json_list(shell))
    }

    /// ENTRYPOINT: also clears a CMD inherited from the base (one set in this stage
    /// stays), as in Docker.
    pub(super) fn entrypoint(
        &self,
        stage: &Stage,
        config: &mut ExecConfig,
        command: &Command,
        pos: Pos,
    ) -> Result<String, BuildError> {
        let argv = self.argv(config, command, "ENTRYPOINT", pos)?;
        config.entrypoint = Some(argv.clone());
        if !stage.cmd_set_here {
            config.cmd = None;
        }
        Ok(format!("ENTRYPOINT {}", json_list(&argv)))
    }

    pub(super) fn cmd(
        &self,
        stage: &mut Stage,
        config: &mut ExecConfig,
        command: &Command,
        pos: Pos,
    ) -> Result<String, BuildError> {
        let argv = self.argv(config, command, "CMD", pos)?;
        config.cmd = Some(argv.clone());
        stage.cmd_set_here = true;
        Ok(format!("CMD {}", json_list(&argv)))
    }

    /// The argv of RUN/CMD/ENTRYPOINT: exec form as written; shell form only through
    /// the image's SHELL.
    pub(super) fn argv(
        &self,
        config: &ExecConfig,
        command: &Command,
        what: &str,
        pos: Pos,
    ) -> Result<Vec<String>, BuildError> {
        match command {
            Command::Exec(argv) if argv.is_empty() && what == "RUN" => Err(at(
                &self.file,
                pos,
                "RUN needs a program: RUN [\"/path/prog.wasm\", \"arg\"]",
            )),
            Command::Exec(argv) => Ok(argv.clone()),
            Command::Shell(line) => match &config.shell {
                Some(shell) => {
                    let mut argv = shell.clone();
                    argv.push(line.clone());
                    Ok(argv)
                }
                // An attempt at the exec form that is not valid JSON is shell form
                // (Docker's rule): say what is wrong with the array instead.
                None if line.trim_start().starts_with('[') => Err(at(
                    &self.file,
                    pos,
                    if line.trim_end().ends_with(']') {
                        format!(
                            "{what}: {line} is not a valid JSON array (each element a \"double-quoted\" string, separated by commas), so it would be shell form, which needs a shell that WebAssembly images do not have"
                        )
                    } else {
                        format!(
                            "{what}: the JSON array is not closed: end it with ']' (unclosed, it would be shell form, which needs a shell that WebAssembly images do not have)"
                        )
                    },
                )),
                None => Err(at(
                    &self.file,
                    pos,
                    format!(
                        "{what} in shell form needs a shell, and WebAssembly images have none: write the exec form, {what} [\"/path/in/image/prog.wasm\", \"arg\"], or set SHELL [\"/path/to/shell.wasm\", \"-c\"] to a shell module in the image"
                    ),
                )),
            },
        }
    }
}

/// A HEALTHCHECK as a recipe would write it (the step's text: its cache key and history
/// entry), every value given and exact: `HEALTHCHECK --interval=200ms --retries=2 CMD
/// ["/check.wasm"]`, `HEALTHCHECK CMD curl -f http://x/`, `HEALTHCHECK NONE`.
fn describe_healthcheck(check: &Healthcheck) -> String {
    if check.is_none() {
        return "HEALTHCHECK NONE".to_owned();
    }
    let mut text = "HEALTHCHECK".to_owned();
    for (flag, nanos) in [
        ("interval", check.interval),
        ("timeout", check.timeout),
        ("start-period", check.start_period),
        ("start-interval", check.start_interval),
    ] {
        if nanos != 0 {
            text.push_str(&format!(" --{flag}={}", exact_duration(nanos)));
        }
    }
    if check.retries != 0 {
        text.push_str(&format!(" --retries={}", check.retries));
    }
    match check.test.split_first() {
        Some((kind, [line])) if kind == "CMD-SHELL" => text.push_str(&format!(" CMD {line}")),
        Some((_, args)) => text.push_str(&format!(" CMD {}", json_list(args))),
        None => {}
    }
    text
}

/// A duration in its largest exact unit (`1500ms`, `2s`, `2m`), so that two different
/// durations never read alike.
fn exact_duration(nanos: u64) -> String {
    let d = Duration::from_nanos(nanos);
    if d.subsec_nanos() == 0 {
        match d.as_secs() {
            s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
            s if s.is_multiple_of(60) => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// `8000-8002/tcp` → `8000/tcp`, `8001/tcp`, `8002/tcp` (a normalized entry).
fn expand_port_range(port: &str) -> Vec<String> {
    let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    match num.split_once('-') {
        Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).map(|p| format!("{p}/{proto}")).collect(),
            _ => vec![port.to_owned()],
        },
        None => vec![port.to_owned()],
    }
}

fn normalize_port(port: &str) -> Option<String> {
    let (num, proto) = match port.split_once('/') {
        Some((n, p)) => (n, p.to_lowercase()),
        None => (port, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let valid = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match num.split_once('-') {
        Some((a, b)) => valid(a) && valid(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok(),
        None => valid(num),
    };
    ok.then(|| format!("{num}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthcheck_reads_as_written_and_exactly() {
        let check = Healthcheck {
            test: vec!["CMD".into(), "/check.wasm".into(), "-q".into()],
            interval: 200_000_000,
            timeout: 3_000_000_000,
            start_period: 120_000_000_000,
            start_interval: 1_500,
            retries: 2,
        };
        assert_eq!(
            describe_healthcheck(&check),
            "HEALTHCHECK --interval=200ms --timeout=3s --start-period=2m --start-interval=1500ns \
             --retries=2 CMD [\"/check.wasm\",\"-q\"]"
        );
        let shell = Healthcheck {
            test: vec!["CMD-SHELL".into(), "curl -f http://x/ || exit 1".into()],
            ..Healthcheck::default()
        };
        assert_eq!(
            describe_healthcheck(&shell),
            "HEALTHCHECK CMD curl -f http://x/ || exit 1"
        );
        let none = Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        };
        assert_eq!(describe_healthcheck(&none), "HEALTHCHECK NONE");
        for (nanos, text) in [
            (1_000_000, "1ms"),
            (1_500_000_000, "1500ms"),
            (7_200_000_000_000, "2h"),
            (90_000_000_000, "90s"),
            (2_000, "2us"),
        ] {
            assert_eq!(exact_duration(nanos), text);
        }
    }
}
