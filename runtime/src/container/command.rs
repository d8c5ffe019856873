//! How a container's program is found, as Docker and `execve` find it.
//!
//! - A name without a `/` (`python`) is looked up in the `PATH` of the container's
//!   environment (Docker's default `PATH` when it sets none); when no directory of it
//!   holds the name, a file of that name in the working directory is taken, as Capsule
//!   always has (`CMD ["app.wasm"]` beside `WORKDIR /app`).
//! - A relative path with a `/` is taken from the working directory.
//! - A file that starts with `#!` is a script: the line names its interpreter and at
//!   most one argument, and the interpreter runs with the script's path and the
//!   arguments after `argv[0]` (Linux's rules, including its limit of four
//!   interpreters deep and its 256-byte line). The interpreter may name an export of a
//!   reactor (`#!/usr/local/bin/python3.15.wasm#run`), as a program may.
//!
//! The lookup reads the container's own filesystem (its layers and mounts), never
//! the host's.

use crate::fs::Vfs;
use crate::fs::layer::Kind;
use crate::spec::{Entry, GuestPath, RunSpec};

/// Docker's `PATH` for a container whose image and flags set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `env` of `#!/usr/bin/env NAME`.
const ENV: &str = "/usr/bin/env";

/// How many `#!` interpreters deep a program may go (Linux's `BINPRM` recursion limit).
const MAX_INTERPRETERS: usize = 4;

/// How much of a script's first line is read (Linux's `BINPRM_BUF_SIZE`).
const LINE_MAX: usize = 256;

/// Why a program cannot be found or started as a script.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "{name}: not found in the container's PATH ({path}) nor in its working directory \
         {workdir}: name the program by its path in the image, or set PATH with -e"
    )]
    NotFound {
        name: String,
        path: String,
        workdir: GuestPath,
    },
    #[error("{0}: the program's path is not valid: {1}")]
    Path(String, String),
    #[error("{script}: its #! line names no interpreter")]
    NoInterpreter { script: GuestPath },
    #[error(
        "{script}: more than {MAX_INTERPRETERS} #! interpreters deep (an interpreter that is \
         itself a script, over and over)"
    )]
    TooDeep { script: GuestPath },
}

/// The program a container runs, found: the module's path, its arguments (`argv`,
/// `argv[0]` included) and the export an interpreter line named, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: GuestPath,
    pub args: Vec<String>,
    pub export: Option<String>,
}

/// Finds `spec`'s program in `vfs`: `spec.args[0]` through `PATH`, and each `#!`
/// interpreter in turn. `named` is where the program was named to be when it has a `/`
/// or is not on `PATH` (its path from the working directory).
///
/// # Errors
/// [`CommandError`] for a name found nowhere, a bad `#!` line or too many of them.
pub fn find(vfs: &Vfs, spec: &RunSpec, named: &GuestPath) -> Result<Found, CommandError> {
    let argv0 = spec.args.first().map_or("", String::as_str);
    let search = path_of(spec);
    let path = if argv0.is_empty() || argv0.contains('/') {
        named.clone()
    } else {
        match on_path(vfs, argv0, search) {
            Some(found) => found,
            None if is_file(vfs, named.as_str()) => named.clone(),
            None => {
                return Err(CommandError::NotFound {
                    name: argv0.to_owned(),
                    path: search.to_owned(),
                    workdir: spec.workdir.clone(),
                });
            }
        }
    };
    let mut found = Found {
        path,
        args: spec.args.clone(),
        export: None,
    };
    for _ in 0..=MAX_INTERPRETERS {
        let Some(line) = interpreter_line(vfs, &found.path) else {
            return Ok(found);
        };
        let (interpreter, argument) = split_line(&line);
        if interpreter.is_empty() {
            return Err(CommandError::NoInterpreter { script: found.path });
        }
        let (program, export) = crate::spec::split_program(interpreter);
        // `#!/usr/bin/env NAME`, in an image without `env`: the name is found on PATH,
        // as `env` would find it.
        let via_env = (program == ENV && !is_file(vfs, ENV))
            .then_some(argument)
            .flatten()
            .filter(|name| !name.contains([' ', '\t']))
            .and_then(|name| Some((name, on_path(vfs, name, search)?)));
        let (program, argument, interpreter_path) = match via_env {
            Some((name, path)) => (name, None, path),
            None => {
                let path = if program.starts_with('/') {
                    GuestPath::parse(program)
                } else {
                    GuestPath::parse(&format!("{}/{program}", spec.workdir))
                }
                .map_err(|e| CommandError::Path(program.to_owned(), e.to_string()))?;
                (program, argument, path)
            }
        };
        let mut args = vec![program.to_owned()];
        args.extend(argument.map(str::to_owned));
        args.push(found.path.as_str().to_owned());
        args.extend(found.args.into_iter().skip(1));
        found = Found {
            path: interpreter_path,
            args,
            export: export.map(str::to_owned),
        };
    }
    Err(CommandError::TooDeep { script: found.path })
}

/// The `PATH` of `spec`'s environment, or Docker's default.
fn path_of(spec: &RunSpec) -> &str {
    spec.env
        .vars()
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str())
}

/// `spec` with `found`'s program: the arguments and, when an interpreter line named
/// one, the export to call.
pub fn apply(spec: &RunSpec, found: &Found) -> RunSpec {
    let mut spec = spec.clone();
    spec.args.clone_from(&found.args);
    if let Some(export) = &found.export {
        spec.entry = Entry::Program(export.clone());
    }
    spec
}

/// The first directory of `search` that holds a file (or a link to one) `name`.
fn on_path(vfs: &Vfs, name: &str, search: &str) -> Option<GuestPath> {
    search
        .split(':')
        // An empty entry means the working directory to a shell; a container's PATH
        // is absolute, and a relative entry is skipped as Docker's lookup skips it.
        .filter(|dir| dir.starts_with('/'))
        .filter_map(|dir| GuestPath::parse(&format!("{}/{name}", dir.trim_end_matches('/'))).ok())
        .find(|candidate| is_file(vfs, candidate.as_str()))
}

fn is_file(vfs: &Vfs, path: &str) -> bool {
    vfs.resolve("", path, true)
        .and_then(|loc| vfs.kind(&loc))
        .is_ok_and(|kind| kind == Kind::File)
}

/// The text after `#!` on the first line of the file at `path`, when it starts so.
fn interpreter_line(vfs: &Vfs, path: &GuestPath) -> Option<String> {
    let loc = vfs.resolve("", path.as_str(), true).ok()?;
    let file = vfs
        .open(
            &loc,
            crate::fs::node::OpenOptions {
                read: true,
                ..Default::default()
            },
            0,
        )
        .ok()?;
    let mut head = [0u8; LINE_MAX];
    let mut len = 0;
    while len < head.len() {
        match file.read_at(&mut head[len..], len as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let rest = head[..len].strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    Some(String::from_utf8_lossy(line).into_owned())
}

/// The interpreter and its one optional argument: Linux takes the text after the
/// interpreter's name, trimmed, as one argument, spaces and all.
fn split_line(line: &str) -> (&str, Option<&str>) {
    let line = line.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
    match line.split_once([' ', '\t']) {
        Some((interpreter, argument)) => {
            let argument = argument.trim_matches(|c: char| c == ' ' || c == '\t');
            (interpreter, (!argument.is_empty()).then_some(argument))
        }
        None => (line, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_line;

    #[test]
    fn an_interpreter_line_has_one_argument_at_most() {
        assert_eq!(split_line("/bin/python"), ("/bin/python", None));
        assert_eq!(
            split_line(" /usr/bin/env  python3 -u \r"),
            ("/usr/bin/env", Some("python3 -u"))
        );
        assert_eq!(split_line("/a.wasm#run"), ("/a.wasm#run", None));
        assert_eq!(split_line("   "), ("", None));
    }
}
