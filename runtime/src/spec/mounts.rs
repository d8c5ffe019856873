//! Docker's grammar for what a guest is given — `-v HOST:GUEST[:ro]`, `--mount
//! type=...,source=...,target=...`, `--tmpfs PATH[:size=N]`, `-e K=V`, `--env-file`,
//! `PATH#EXPORT` programs, UTF-8 arguments — parsed and checked into the run spec's
//! data ([`super`]) before a module is touched. The limits' grammar is
//! [`super::grammar`].

use super::grammar::parse_size;
use super::{Env, GuestPath, Mount, MountFlag, MountRequest, MountSource, SpecError, Tmpfs};
use std::path::Path;

/// Refuses two mounts (`-v`, `--mount`, `--tmpfs`) at the same guest path, naming both,
/// as Docker does ("Duplicate mount point"); the default `/tmp` tmpfs gives way to
/// either.
///
/// # Errors
/// [`SpecError::DuplicateMount`].
pub fn check_mount_points(mounts: &[MountRequest], tmpfs: &[Tmpfs]) -> Result<(), SpecError> {
    let named = mounts
        .iter()
        .map(|m| (&m.guest, m.flag.clone()))
        .chain(
            tmpfs
                .iter()
                .map(|t| (&t.guest, format!("--tmpfs {}", t.guest.as_str()))),
        )
        .collect::<Vec<_>>();
    for (i, (guest, second)) in named.iter().enumerate() {
        if let Some((_, first)) = named[..i].iter().find(|(g, _)| g == guest) {
            return Err(SpecError::DuplicateMount {
                guest: guest.as_str().to_owned(),
                first: first.clone(),
                second: second.clone(),
            });
        }
    }
    Ok(())
}

impl Mount {
    /// Parses Docker's `-v HOST:GUEST[:ro|:rw]` for a host directory and checks that
    /// HOST is one (for embedders, which have no named volumes).
    ///
    /// # Errors
    /// As [`MountRequest::parse_volume`] and [`MountRequest::bind`]; a named or
    /// anonymous volume is [`SpecError::Volume`].
    pub fn parse_volume(spec: &str) -> Result<Self, SpecError> {
        let request = MountRequest::parse_volume(spec)?;
        match &request.source {
            MountSource::Bind(_) => request.bind(),
            MountSource::Volume(_) => Err(SpecError::Volume {
                spec: spec.to_owned(),
                reason:
                    "named and anonymous volumes need a container; give a host path such as ./data"
                        .to_owned(),
            }),
        }
    }
}

/// Why nothing is mounted at `/`: the root is the image's (Docker refuses it too).
pub const ROOT_MOUNT: &str = "nothing can be mounted at / (it is the image's root): mount below it";

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (at least two
/// characters), here at most 128.
pub fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && (2..=128).contains(&name.len())
}

/// The message for a name that is not a volume name.
pub fn volume_name_rule(name: &str) -> String {
    format!(
        "invalid volume name '{name}': use 2 to 128 letters, digits, '_', '.' and '-', starting with a letter or digit"
    )
}

impl MountRequest {
    /// Parses Docker's `-v SOURCE:GUEST[:ro|:rw]` or `-v GUEST` (an anonymous volume).
    /// SOURCE is a host path when it holds a `/` or `\` or starts with `.`, otherwise
    /// a volume name. Pure: the host is not looked at.
    ///
    /// The guest path is the last `:`-separated part that starts with `/`, so Windows
    /// host paths (`C:\data:/data`) work.
    ///
    /// # Errors
    /// [`SpecError::Volume`] for bad syntax or a bad volume name.
    pub fn parse_volume(spec: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::Volume {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, read_only) = if let Some(rest) = spec.strip_suffix(":ro") {
            (rest, true)
        } else if let Some(rest) = spec.strip_suffix(":rw") {
            (rest, false)
        } else {
            (spec, false)
        };
        let flag = format!("-v {spec}");
        if rest.starts_with('/') && !rest.contains(':') {
            let guest = GuestPath::parse(rest).map_err(|e| bad(&e.to_string()))?;
            if guest.is_root() {
                return Err(bad(ROOT_MOUNT));
            }
            return Ok(Self {
                source: MountSource::Volume(None),
                guest,
                read_only,
                no_copy: false,
                flag,
            });
        }
        let (host, guest) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("missing ':GUEST'"))?;
        // HOST:/GUEST:MODE with a mode other than ro/rw.
        if !guest.starts_with('/')
            && let Some((_, maybe_guest)) = host.rsplit_once(':')
            && maybe_guest.starts_with('/')
        {
            return Err(bad(&format!(
                "unknown mode '{guest}' (valid modes: ro, rw)"
            )));
        }
        if host.is_empty() {
            return Err(bad("the host path is empty"));
        }
        if !guest.starts_with('/') {
            return Err(bad("the guest path must be absolute"));
        }
        let guest = GuestPath::parse(guest).map_err(|e| bad(&e.to_string()))?;
        let source = if host.contains('/') || host.contains('\\') || host.starts_with('.') {
            // A host directory at `/` is a module run's whole root (as wasmtime's
            // `--dir HOST::/`); an image's container refuses it when it is prepared.
            MountSource::Bind(host.to_owned())
        } else if guest.is_root() {
            return Err(bad(ROOT_MOUNT));
        } else if valid_volume_name(host) {
            MountSource::Volume(Some(host.to_owned()))
        } else {
            return Err(bad(&format!(
                "{} (or give a host path such as ./{host})",
                volume_name_rule(host)
            )));
        };
        Ok(Self {
            source,
            guest,
            read_only,
            no_copy: false,
            flag,
        })
    }

    /// Parses Docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`
    /// (also `src`, `dst`/`destination`, `ro`, `readonly=true|false`, `tmpfs-size=N`,
    /// `volume-nocopy`). The type defaults to `volume`; a volume without a source is a
    /// new anonymous one. Pure: the host is not looked at.
    ///
    /// # Errors
    /// [`SpecError::MountFlag`] naming what is wrong.
    pub fn parse_mount(spec: &str) -> Result<MountFlag, SpecError> {
        let bad = |reason: String| SpecError::MountFlag {
            spec: spec.to_owned(),
            reason,
        };
        let mut kind = None;
        let mut source = None;
        let mut target = None;
        let mut read_only = false;
        let mut no_copy = false;
        let mut tmpfs_size = None;
        let flag_bool = |key: &str, value: Option<&str>| match value {
            None | Some("1" | "true") => Ok(true),
            Some("0" | "false") => Ok(false),
            Some(other) => Err(bad(format!("{key}={other}: expected true or false"))),
        };
        for field in spec.split(',') {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (field.trim(), None),
            };
            let needs = |value: Option<&str>| {
                value
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("'{key}' needs a value ({key}=...)")))
            };
            match key.to_ascii_lowercase().as_str() {
                "type" => kind = Some(needs(value)?),
                "source" | "src" => source = Some(needs(value)?),
                "target" | "destination" | "dst" => target = Some(needs(value)?),
                "readonly" | "ro" => read_only = flag_bool(key, value)?,
                "volume-nocopy" => no_copy = flag_bool(key, value)?,
                "tmpfs-size" => {
                    let text = needs(value)?;
                    tmpfs_size = Some(parse_size(&text).ok_or_else(|| {
                        bad(format!(
                            "tmpfs-size={text}: expected a number with an optional k, m or g suffix"
                        ))
                    })?)
                }
                "tmpfs-mode" | "consistency" | "bind-propagation" => {
                    needs(value)?;
                }
                "" => return Err(bad("an empty field".to_owned())),
                other => {
                    return Err(bad(format!(
                        "unknown field '{other}' (known: type, source, target, readonly, tmpfs-size, volume-nocopy)"
                    )));
                }
            }
        }
        let target = target.ok_or_else(|| bad("target=PATH is required".to_owned()))?;
        let guest = GuestPath::parse(&target).map_err(|e| bad(e.to_string()))?;
        if guest.is_root() {
            return Err(bad(ROOT_MOUNT.to_owned()));
        }
        let flag = format!("--mount {spec}");
        let kind = kind.unwrap_or_else(|| "volume".to_owned());
        if kind != "tmpfs" && tmpfs_size.is_some() {
            return Err(bad("tmpfs-size is only for type=tmpfs".to_owned()));
        }
        if kind != "volume" && no_copy {
            return Err(bad("volume-nocopy is only for type=volume".to_owned()));
        }
        let source = match kind.as_str() {
            "bind" => MountSource::Bind(
                source.ok_or_else(|| bad("type=bind needs source=HOST_PATH".to_owned()))?,
            ),
            "volume" => match source {
                Some(name) if !valid_volume_name(&name) => {
                    return Err(bad(volume_name_rule(&name)));
                }
                name => MountSource::Volume(name),
            },
            "tmpfs" => {
                if source.is_some() {
                    return Err(bad("type=tmpfs takes no source".to_owned()));
                }
                if read_only {
                    return Err(bad(
                        "a read-only tmpfs would stay empty; drop readonly".to_owned()
                    ));
                }
                return Ok(MountFlag::Tmpfs(Tmpfs {
                    guest,
                    size: tmpfs_size.unwrap_or(Tmpfs::DEFAULT_SIZE),
                }));
            }
            other => {
                return Err(bad(format!(
                    "unknown type '{other}' (known: bind, volume, tmpfs)"
                )));
            }
        };
        Ok(MountFlag::Mount(Self {
            source,
            guest,
            read_only,
            no_copy,
            flag,
        }))
    }

    /// A bind mount's host directory, checked: it must exist and be a directory.
    ///
    /// # Errors
    /// [`SpecError::VolumeMissing`], [`SpecError::VolumeNotDir`];
    /// [`SpecError::Volume`] when this is not a bind mount.
    pub fn bind(&self) -> Result<Mount, SpecError> {
        let spec = self
            .flag
            .strip_prefix("-v ")
            .unwrap_or(&self.flag)
            .to_owned();
        let MountSource::Bind(host) = &self.source else {
            return Err(SpecError::Volume {
                spec,
                reason: "not a host directory".to_owned(),
            });
        };
        let host_abs = crate::ambient::canonicalize(Path::new(host)).map_err(|_| {
            SpecError::VolumeMissing {
                spec: spec.clone(),
                host: host.clone(),
            }
        })?;
        if !crate::ambient::is_dir(&host_abs) {
            return Err(SpecError::VolumeNotDir {
                spec,
                host: host.clone(),
            });
        }
        Ok(Mount {
            host: host_abs,
            guest: self.guest.clone(),
            read_only: self.read_only,
        })
    }
}

impl Env {
    /// Applies one `-e` value: `KEY=VALUE` sets, `KEY` copies the host's value (and is
    /// ignored when the host has none, as Docker does).
    ///
    /// # Errors
    /// [`SpecError::Env`] for an empty key or a NUL byte.
    pub fn apply_flag(&mut self, flag: &str) -> Result<(), SpecError> {
        let (key, value) = match flag.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (flag, None),
        };
        if key.is_empty() || flag.contains('\0') {
            return Err(SpecError::Env(flag.to_owned()));
        }
        if let Some(value) = value.or_else(|| crate::ambient::host_env(key)) {
            self.set(key, value);
        }
        Ok(())
    }

    /// Applies an env file in Docker's format: one `KEY=VALUE` or `KEY` per line, `#`
    /// comments and blank lines ignored, values taken literally (no quotes, no
    /// expansion). Leading white space before the key is ignored.
    ///
    /// # Errors
    /// [`SpecError::EnvFileLine`] naming the file and line.
    pub fn apply_file(&mut self, file: &str, text: &str) -> Result<(), SpecError> {
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = line.split_once('=').map_or(line, |(k, _)| k);
            if key.chars().any(char::is_whitespace) {
                return Err(SpecError::EnvFileLine {
                    file: file.to_owned(),
                    line: index + 1,
                    text: raw.to_owned(),
                });
            }
            self.apply_flag(line).map_err(|_| SpecError::EnvFileLine {
                file: file.to_owned(),
                line: index + 1,
                text: raw.to_owned(),
            })?;
        }
        Ok(())
    }

    /// Reads and applies an env file from the host.
    ///
    /// # Errors
    /// [`SpecError::EnvFileRead`] or [`SpecError::EnvFileLine`].
    pub fn apply_file_at(&mut self, path: &Path) -> Result<(), SpecError> {
        let file = path.display().to_string();
        let bytes = crate::ambient::read_file(path).map_err(|e| SpecError::EnvFileRead {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| SpecError::EnvFileRead {
            file: file.clone(),
            reason: "not valid UTF-8".to_owned(),
        })?;
        self.apply_file(&file, &text)
    }
}

/// Splits a program named as `PATH#EXPORT` into the path and the export; a name
/// without a `#`, or whose text after the last `#` is empty or holds a `/`, is a path
/// alone. (So a program path with a `#` in its last component is read as naming an
/// export: write such a file name without `#`.)
pub fn split_program(program: &str) -> (&str, Option<&str>) {
    match program.rsplit_once('#') {
        Some((path, export)) if !path.is_empty() && !export.is_empty() && !export.contains('/') => {
            (path, Some(export))
        }
        _ => (program, None),
    }
}

impl Tmpfs {
    /// Parses `PATH[:size=N[k|m|g]]` as Docker's `--tmpfs` does.
    ///
    /// # Errors
    /// [`SpecError::Tmpfs`] for a relative path or a bad size.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::Tmpfs {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (path, options) = spec.split_once(':').unwrap_or((spec, ""));
        let guest = GuestPath::parse(path).map_err(|e| bad(&e.to_string()))?;
        if guest.is_root() {
            return Err(bad(ROOT_MOUNT));
        }
        let mut size = Self::DEFAULT_SIZE;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some(("size", value)) => {
                    size = parse_size(value).ok_or_else(|| {
                        bad("size must be a number with an optional k, m or g suffix")
                    })?
                }
                Some(("mode", _)) => {}
                _ => return Err(bad(&format!("unknown option '{option}' (known: size=N)"))),
            }
        }
        Ok(Self { guest, size })
    }
}

/// Converts host arguments to the UTF-8 strings WASI passes.
///
/// # Errors
/// [`SpecError::ArgNotUtf8`] naming the first bad one (1-based, after the module).
pub fn utf8_args(args: &[std::ffi::OsString]) -> Result<Vec<String>, SpecError> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            a.to_str()
                .map(str::to_owned)
                .ok_or(SpecError::ArgNotUtf8 { index: i + 1 })
        })
        .collect()
}
