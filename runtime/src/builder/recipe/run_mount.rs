//! `RUN --mount=...`: BuildKit's mounts for one step, in its CSV syntax
//! (`type=bind,source=wheels,target=/wheels`), with its keys and its defaults: a bind
//! mount is read-only unless `rw`, and its source is the build context's root unless
//! `source` names a directory or file in it; a cache mount is read-write and kept
//! between builds by `id` (the target when no id is given); a tmpfs is empty memory.

/// What a mount gives the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A directory or file of the build context (BuildKit's default type).
    Bind {
        /// Relative to the context's root; `.` when not given.
        source: String,
        /// `rw`: the step may write to it; the writes are thrown away afterwards.
        read_write: bool,
    },
    /// A directory kept between builds (a package manager's download cache).
    Cache {
        /// The cache's name: `id`, or the target when not given.
        id: String,
        /// `sharing=locked` or `private`: one build at a time uses it.
        locked: bool,
    },
    /// An empty in-memory directory, `size` bytes at most.
    Tmpfs { size: Option<u64> },
}

/// One `--mount` of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountKind,
    /// Where the step sees it: absolute, or relative to the working directory.
    pub target: String,
    /// The mount as written (after `--mount=`), shown in the step's text and its key.
    pub text: String,
}

/// Parses the value of one `--mount` flag.
///
/// # Errors
/// One line saying what is wrong and what to write.
pub fn parse(value: &str) -> Result<RunMount, String> {
    let mut kind = None;
    let mut target = None;
    let mut source = None;
    let mut id = None;
    let mut read_write = None;
    let mut locked = false;
    let mut size = None;
    for field in value.split(',') {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let needs = |v: Option<&str>| -> Result<String, String> {
            match v {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                _ => Err(format!("--mount key '{key}' needs a value: {key}=...")),
            }
        };
        let flag = |v: Option<&str>| -> Result<bool, String> {
            match v.map(str::to_ascii_lowercase).as_deref() {
                None | Some("true" | "1") => Ok(true),
                Some("false" | "0") => Ok(false),
                Some(other) => Err(format!("--mount {key}={other}: expected true or false")),
            }
        };
        match key.as_str() {
            "" => {
                return Err(
                    "--mount has an empty field: write key=value pairs separated by commas"
                        .to_owned(),
                );
            }
            "type" => {
                kind = Some(match needs(val)?.as_str() {
                    t @ ("bind" | "cache" | "tmpfs") => t.to_owned(),
                    t @ ("secret" | "ssh") => {
                        return Err(format!(
                            "--mount type={t} is not supported by Capsule (builds run without secrets or agents): copy what the step needs into the context"
                        ));
                    }
                    other => {
                        return Err(format!(
                            "unsupported mount type '{other}': expected bind, cache or tmpfs"
                        ));
                    }
                });
            }
            "target" | "dst" | "destination" => target = Some(needs(val)?),
            "source" | "src" => source = Some(needs(val)?),
            "from" => {
                return Err(
                    "--mount from= is not supported by Capsule yet: COPY --from the stage into this one, or bind a directory of the context".to_owned(),
                );
            }
            "id" => id = Some(needs(val)?),
            "readonly" | "ro" => read_write = Some(!flag(val)?),
            "readwrite" | "rw" => read_write = Some(flag(val)?),
            "sharing" => {
                locked = match needs(val)?.as_str() {
                    "shared" => false,
                    "locked" | "private" => true,
                    other => {
                        return Err(format!(
                            "--mount sharing={other}: expected shared, private or locked"
                        ));
                    }
                }
            }
            // Owners and modes have no meaning under WASI, as for COPY --chown.
            "mode" | "uid" | "gid" => {
                needs(val)?;
            }
            "size" => {
                let text = needs(val)?;
                size = Some(crate::spec::grammar::parse_size(&text).ok_or_else(|| {
                    format!(
                        "--mount size={text}: expected a number with an optional k, m or g suffix"
                    )
                })?);
            }
            other => {
                return Err(format!(
                    "unexpected key '{other}' in '{}': RUN --mount takes type, target, source, id, rw, sharing and size",
                    field.trim()
                ));
            }
        }
    }
    let kind = kind.unwrap_or_else(|| "bind".to_owned());
    let Some(target) = target else {
        return Err(format!(
            "--mount type={kind} needs a target: --mount=type={kind},target=/path"
        ));
    };
    let only = |what: &str, present: bool| {
        if present {
            Err(format!("--mount type={kind} takes no {what}"))
        } else {
            Ok(())
        }
    };
    let kind = match kind.as_str() {
        "bind" => {
            only("id", id.is_some())?;
            only("size", size.is_some())?;
            MountKind::Bind {
                source: source.unwrap_or_else(|| ".".to_owned()),
                read_write: read_write.unwrap_or(false),
            }
        }
        "cache" => {
            only("source (a cache starts empty)", source.is_some())?;
            only("size", size.is_some())?;
            if read_write == Some(false) {
                return Err("--mount type=cache,ro: a cache mount is always writable".to_owned());
            }
            MountKind::Cache {
                id: id.unwrap_or_else(|| target.clone()),
                locked,
            }
        }
        _ => {
            only("source", source.is_some())?;
            only("id", id.is_some())?;
            MountKind::Tmpfs { size }
        }
    };
    Ok(RunMount {
        kind,
        target,
        text: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::{MountKind, parse};

    #[test]
    fn bind_is_the_default_and_read_only() {
        let m = parse("target=/wheels,source=.wheels").expect("valid");
        assert_eq!(m.target, "/wheels");
        assert_eq!(
            m.kind,
            MountKind::Bind {
                source: ".wheels".to_owned(),
                read_write: false
            }
        );
        let m = parse("type=bind,dst=/src,rw").expect("valid");
        assert_eq!(
            m.kind,
            MountKind::Bind {
                source: ".".to_owned(),
                read_write: true
            }
        );
    }

    #[test]
    fn a_cache_is_named_by_its_target_unless_given_an_id() {
        let m = parse("type=cache,target=/root/.cache/pip").expect("valid");
        assert_eq!(
            m.kind,
            MountKind::Cache {
                id: "/root/.cache/pip".to_owned(),
                locked: false
            }
        );
        let m = parse("type=cache,id=pip,target=/c,sharing=locked").expect("valid");
        assert_eq!(
            m.kind,
            MountKind::Cache {
                id: "pip".to_owned(),
                locked: true
            }
        );
        assert_eq!(
            parse("type=tmpfs,target=/t,size=1m").expect("valid").kind,
            MountKind::Tmpfs {
                size: Some(1 << 20)
            }
        );
    }

    #[test]
    fn mistakes_say_what_to_write() {
        for (value, expected) in [
            (
                "type=bind",
                "--mount type=bind needs a target: --mount=type=bind,target=/path",
            ),
            (
                "type=nfs,target=/x",
                "unsupported mount type 'nfs': expected bind, cache or tmpfs",
            ),
            (
                "type=secret,id=x",
                "--mount type=secret is not supported by Capsule",
            ),
            (
                "target=/x,colour=red",
                "unexpected key 'colour' in 'colour=red'",
            ),
            (
                "target=/x,source=",
                "--mount key 'source' needs a value: source=...",
            ),
            (
                "type=cache,target=/x,source=a",
                "--mount type=cache takes no source",
            ),
            (
                "target=/x,sharing=sometimes",
                "--mount sharing=sometimes: expected shared",
            ),
            (
                "target=/x,from=build",
                "--mount from= is not supported by Capsule yet",
            ),
            ("target=/x,,", "--mount has an empty field"),
        ] {
            let error = parse(value).expect_err(value);
            assert!(error.starts_with(expected), "{value}: {error}");
        }
    }
}
