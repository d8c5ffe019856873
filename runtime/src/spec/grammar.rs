//! Docker's grammar for what a run may use of the host, and the rules each value obeys:
//! sizes (`64m`), durations (`30s`, `1h30m`), `--memory`, `--fuel`, `--ulimit`,
//! `--storage-opt`, `--timeout`, `--stop-timeout`/`stop -t`, labels.
//!
//! Every front end decides with these functions, so each refuses the same values with
//! the same words: the `capsule` binary's flags, compose's keys (at load time), the
//! SDK's options ([`Limits::check`](super::Limits::check) when a run or container is
//! made) and the containerd shim's mount options.

use super::Limits;
use std::time::Duration;

/// The least `--memory` a guest may have: one WebAssembly page.
pub const MIN_MEMORY: u64 = 64 << 10;

/// Most descriptors `--ulimit nofile` may allow (Linux's default `nr_open`).
pub const MAX_NOFILE: u32 = 1 << 20;

/// The longest duration Capsule accepts anywhere (`--timeout`, `--stop-timeout`,
/// `stop -t`, compose's `timeout` and `stop_grace_period`, the SDK's): 10^9 seconds,
/// about 31 years. Longer ones are refused rather than wrapped or clamped.
pub const MAX_DURATION: Duration = Duration::from_secs(MAX_SECONDS);

/// [`MAX_DURATION`] in whole seconds.
pub const MAX_SECONDS: u64 = 1_000_000_000;

/// A value that breaks one of the rules above, named by the flag (or key, or option)
/// it was given with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "{flag}: invalid size '{text}': expected a number of bytes with an optional k, m or g suffix, e.g. 64m"
    )]
    Size { flag: String, text: String },
    #[error("{flag} {text} is too small: give at least 64k (one WebAssembly page)")]
    MemoryTooSmall { flag: String, text: String },
    #[error(
        "{flag}: invalid amount '{text}': expected a whole number of instructions above zero, e.g. 1000000000"
    )]
    Fuel { flag: String, text: String },
    #[error("{flag} {text}: Capsule enforces only nofile=N (descriptors open at once)")]
    UlimitName { flag: String, text: String },
    #[error(
        "{flag} {text}: expected nofile=N or nofile=SOFT:HARD with 1 <= SOFT <= HARD and SOFT at most {MAX_NOFILE}"
    )]
    Nofile { flag: String, text: String },
    #[error("{flag} {text}: Capsule knows only size=N (bytes the writable layer may hold)")]
    StorageName { flag: String, text: String },
    #[error(
        "{flag} {text}: invalid size '{value}': expected a number of bytes above zero with an optional k, m or g suffix, e.g. 100m"
    )]
    Storage {
        flag: String,
        text: String,
        value: String,
    },
    #[error(
        "{flag}: invalid duration '{text}': expected a number with a unit, e.g. 10s, 250ms, 2m, 1h30m"
    )]
    Duration { flag: String, text: String },
    #[error(
        "{flag} {text}: too long; the longest duration Capsule accepts is {MAX_SECONDS} seconds (about 31 years)"
    )]
    TooLong { flag: String, text: String },
    #[error("{flag} {text}: expected a whole number of seconds, e.g. 10")]
    Seconds { flag: String, text: String },
    #[error("{flag} must be more than zero (omit it for no timeout)")]
    Zero { flag: String },
    #[error("invalid label '{text}': expected KEY=VALUE")]
    Label { text: String },
}

/// Parses `64m`, `1g`, `4096`, `512k` (any case, an optional trailing `b`) into bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = match lower.trim_end_matches('b').char_indices().last() {
        Some((i, c @ ('k' | 'm' | 'g'))) => (&lower[..i], c),
        _ => (lower.trim_end_matches('b'), ' '),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => 0,
    };
    n.checked_mul(1 << shift)
}

/// Parses Docker's and Go's durations: `10` (seconds), `10s`, `1.5s`, `250ms`, `2m`,
/// `1h30m`, at most [`MAX_DURATION`].
///
/// # Errors
/// A message naming the text when it is not a duration or is too long.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration("", text).map_err(|e| e.to_string().trim_start_matches([':', ' ']).to_owned())
}

/// A duration as people write it: `250ms`, `10s`, `1.5s`, `2m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A duration given with `flag`: Go's syntax (see [`parse_duration`]), at most
/// [`MAX_DURATION`].
///
/// # Errors
/// [`LimitError::Duration`], [`LimitError::TooLong`].
pub fn duration(flag: &str, text: &str) -> Result<Duration, LimitError> {
    let bad = || LimitError::Duration {
        flag: flag.to_owned(),
        text: text.to_owned(),
    };
    let too_long = || LimitError::TooLong {
        flag: flag.to_owned(),
        text: text.to_owned(),
    };
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        let secs: u64 = text.parse().map_err(|_| too_long())?;
        return check_duration(flag, Duration::from_secs(secs)).map_err(|_| too_long());
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() {
        return Err(bad());
    }
    if total > MAX_DURATION.as_secs_f64() {
        return Err(too_long());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Checks a duration given as a value (the SDK's, a stored one).
///
/// # Errors
/// [`LimitError::TooLong`] past [`MAX_DURATION`].
pub fn check_duration(flag: &str, d: Duration) -> Result<Duration, LimitError> {
    if d > MAX_DURATION {
        return Err(LimitError::TooLong {
            flag: flag.to_owned(),
            text: format_duration(d),
        });
    }
    Ok(d)
}

/// A wall-clock limit (`--timeout`, compose's `timeout`): a duration above zero.
///
/// # Errors
/// As [`duration`]; [`LimitError::Zero`].
pub fn timeout(flag: &str, text: &str) -> Result<Duration, LimitError> {
    let d = duration(flag, text)?;
    if d.is_zero() {
        return Err(LimitError::Zero {
            flag: flag.to_owned(),
        });
    }
    Ok(d)
}

/// Whole seconds of a grace period (`stop -t`, `restart -t`, `--stop-timeout`,
/// `compose down -t`), at most [`MAX_SECONDS`].
///
/// # Errors
/// [`LimitError::Seconds`], [`LimitError::TooLong`].
pub fn seconds(flag: &str, text: &str) -> Result<u64, LimitError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LimitError::Seconds {
            flag: flag.to_owned(),
            text: text.to_owned(),
        });
    }
    match text.parse::<u64>() {
        Ok(secs) if secs <= MAX_SECONDS => Ok(secs),
        _ => Err(LimitError::TooLong {
            flag: flag.to_owned(),
            text: text.to_owned(),
        }),
    }
}

/// `--memory SIZE`: a size of at least [`MIN_MEMORY`].
///
/// # Errors
/// [`LimitError::Size`], [`LimitError::MemoryTooSmall`].
pub fn memory(flag: &str, text: &str) -> Result<u64, LimitError> {
    let bytes = parse_size(text).ok_or_else(|| LimitError::Size {
        flag: flag.to_owned(),
        text: text.to_owned(),
    })?;
    check_memory(flag, bytes, text)
}

fn check_memory(flag: &str, bytes: u64, text: &str) -> Result<u64, LimitError> {
    if bytes < MIN_MEMORY {
        return Err(LimitError::MemoryTooSmall {
            flag: flag.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(bytes)
}

/// `--fuel N`: a whole number above zero.
///
/// # Errors
/// [`LimitError::Fuel`].
pub fn fuel(flag: &str, text: &str) -> Result<u64, LimitError> {
    match text.parse::<u64>() {
        Ok(fuel) if fuel > 0 => Ok(fuel),
        _ => Err(LimitError::Fuel {
            flag: flag.to_owned(),
            text: text.to_owned(),
        }),
    }
}

/// `--ulimit nofile=N` or `nofile=SOFT:HARD` (Docker's; the soft limit is the one a
/// process meets): the soft limit.
///
/// # Errors
/// [`LimitError::UlimitName`] for another limit, [`LimitError::Nofile`].
pub fn ulimit(flag: &str, text: &str) -> Result<u32, LimitError> {
    let (name, value) = text.split_once('=').unwrap_or((text, ""));
    if name != "nofile" {
        return Err(LimitError::UlimitName {
            flag: flag.to_owned(),
            text: text.to_owned(),
        });
    }
    let (soft, hard) = value.split_once(':').unwrap_or((value, value));
    match (soft.parse::<u32>(), hard.parse::<u32>()) {
        (Ok(soft), Ok(hard)) => check_nofile(flag, soft, text).and_then(|soft| {
            if soft <= hard {
                Ok(soft)
            } else {
                Err(LimitError::Nofile {
                    flag: flag.to_owned(),
                    text: text.to_owned(),
                })
            }
        }),
        _ => Err(LimitError::Nofile {
            flag: flag.to_owned(),
            text: text.to_owned(),
        }),
    }
}

/// A number of descriptors given as a value (compose's `nofile`, the SDK's
/// `max_open_files`): in `1..=MAX_NOFILE`.
///
/// # Errors
/// [`LimitError::Nofile`].
pub fn nofile(flag: &str, n: u32) -> Result<u32, LimitError> {
    check_nofile(flag, n, &n.to_string())
}

fn check_nofile(flag: &str, n: u32, text: &str) -> Result<u32, LimitError> {
    if (1..=MAX_NOFILE).contains(&n) {
        Ok(n)
    } else {
        Err(LimitError::Nofile {
            flag: flag.to_owned(),
            text: text.to_owned(),
        })
    }
}

/// `--storage-opt size=N`: bytes above zero.
///
/// # Errors
/// [`LimitError::StorageName`] for another option, [`LimitError::Storage`].
pub fn storage_opt(flag: &str, text: &str) -> Result<u64, LimitError> {
    let (name, value) = text.split_once('=').unwrap_or((text, ""));
    if name != "size" {
        return Err(LimitError::StorageName {
            flag: flag.to_owned(),
            text: text.to_owned(),
        });
    }
    storage_size(flag, text, value)
}

/// A storage size above zero (`value`, given as `text` with `flag`).
fn storage_size(flag: &str, text: &str, value: &str) -> Result<u64, LimitError> {
    match parse_size(value) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(LimitError::Storage {
            flag: flag.to_owned(),
            text: text.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// A storage size alone (compose's `storage = "10m"`).
///
/// # Errors
/// [`LimitError::Storage`].
pub fn storage(flag: &str, text: &str) -> Result<u64, LimitError> {
    storage_size(flag, text, text)
}

/// `--label KEY=VALUE` (`KEY` alone is an empty value).
///
/// # Errors
/// [`LimitError::Label`] for an empty key.
pub fn label(text: &str) -> Result<(String, String), LimitError> {
    let (k, v) = text.split_once('=').unwrap_or((text, ""));
    if k.is_empty() {
        return Err(LimitError::Label {
            text: text.to_owned(),
        });
    }
    Ok((k.to_owned(), v.to_owned()))
}

impl Limits {
    /// Checks limits given as values (the SDK's options, a container's overrides) by
    /// the rules the flags obey: memory at least [`MIN_MEMORY`], fuel and storage above
    /// zero, nofile in `1..=MAX_NOFILE`, a timeout above zero and at most
    /// [`MAX_DURATION`].
    ///
    /// # Errors
    /// The [`LimitError`] of the first that breaks its rule.
    pub fn check(&self) -> Result<(), LimitError> {
        if let Some(bytes) = self.memory {
            check_memory("memory", bytes, &bytes.to_string())?;
        }
        if let Some(units) = self.fuel {
            fuel("fuel", &units.to_string())?;
        }
        if let Some(n) = self.nofile {
            nofile("nofile", n)?;
        }
        if let Some(bytes) = self.storage {
            storage("storage", &bytes.to_string())?;
        }
        if let Some(d) = self.timeout {
            if d.is_zero() {
                return Err(LimitError::Zero {
                    flag: "timeout".to_owned(),
                });
            }
            check_duration("timeout", d)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("64MB"), Some(64 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1q"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999999999g"), None);
        assert_eq!(parse_size("17179869184g"), None, "overflows u64");
    }

    #[test]
    fn durations_have_a_maximum() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("t", "1000000000s"), Ok(MAX_DURATION));
        for long in [
            "1000000001",
            "18446744073709551615",
            "99999999999999999999",
            "300000h",
        ] {
            let e = duration("--timeout", long).expect_err(long);
            assert!(matches!(e, LimitError::TooLong { .. }), "{long}: {e}");
            assert!(e.to_string().contains("1000000000 seconds"), "{e}");
        }
        for bad in ["", "x", "10y", "1.2.3s", "-5s"] {
            assert!(
                matches!(duration("t", bad), Err(LimitError::Duration { .. })),
                "{bad}"
            );
        }
        assert!(
            parse_duration("lots")
                .expect_err("bad")
                .starts_with("invalid duration 'lots'")
        );
        assert_eq!(seconds("-t", "0"), Ok(0));
        assert_eq!(seconds("-t", "1000000000"), Ok(MAX_SECONDS));
        assert!(matches!(
            seconds("-t", "18446744073709551615"),
            Err(LimitError::TooLong { .. })
        ));
        assert!(matches!(
            seconds("-t", "100000000000000000000"),
            Err(LimitError::TooLong { .. })
        ));
        assert!(matches!(
            seconds("-t", "-1"),
            Err(LimitError::Seconds { .. })
        ));
        assert!(matches!(
            timeout("--timeout", "0s"),
            Err(LimitError::Zero { .. })
        ));
    }

    #[test]
    fn limits_as_values_obey_the_flags_rules() {
        assert_eq!(Limits::default().check(), Ok(()));
        let refused = [
            Limits {
                memory: Some(0),
                ..Limits::default()
            },
            Limits {
                memory: Some(MIN_MEMORY - 1),
                ..Limits::default()
            },
            Limits {
                fuel: Some(0),
                ..Limits::default()
            },
            Limits {
                nofile: Some(0),
                ..Limits::default()
            },
            Limits {
                nofile: Some(MAX_NOFILE + 1),
                ..Limits::default()
            },
            Limits {
                storage: Some(0),
                ..Limits::default()
            },
            Limits {
                timeout: Some(Duration::ZERO),
                ..Limits::default()
            },
            Limits {
                timeout: Some(Duration::MAX),
                ..Limits::default()
            },
        ];
        for limits in refused {
            assert!(limits.check().is_err(), "{limits:?}");
        }
        let fine = Limits {
            memory: Some(MIN_MEMORY),
            fuel: Some(1),
            nofile: Some(MAX_NOFILE),
            storage: Some(1),
            timeout: Some(MAX_DURATION),
            ..Limits::default()
        };
        assert_eq!(fine.check(), Ok(()));
    }

    #[test]
    fn flags() {
        assert_eq!(memory("--memory", "64k"), Ok(64 << 10));
        assert!(
            memory("--memory", "1k")
                .expect_err("small")
                .to_string()
                .starts_with("--memory 1k is too small")
        );
        assert_eq!(ulimit("--ulimit", "nofile=10:20"), Ok(10));
        assert!(ulimit("--ulimit", "nofile=20:10").is_err());
        assert!(ulimit("--ulimit", "nproc=5").is_err());
        assert_eq!(storage_opt("--storage-opt", "size=1m"), Ok(1 << 20));
        assert!(storage_opt("--storage-opt", "size=0").is_err());
        assert_eq!(label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(label("a"), Ok(("a".into(), String::new())));
        assert!(label("=x").is_err());
    }
}
