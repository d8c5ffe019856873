//! Progress for long work: bars and spinners on a terminal, plain lines otherwise (so
//! logs and CI output stay readable). Everything goes to stderr.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Whether stderr is a terminal (and `CAPSULE_PROGRESS=plain` does not say otherwise).
pub fn interactive() -> bool {
    capsule_runtime::ambient::host_env_os("CAPSULE_PROGRESS").is_none_or(|v| v != "plain")
        && std::io::stderr().is_terminal()
}

/// A byte-count bar (`save`, `load`).
#[derive(Debug)]
pub struct Bytes {
    bar: Option<ProgressBar>,
    label: String,
}

impl Bytes {
    pub fn new(label: &str, total: Option<u64>) -> Self {
        let bar = interactive().then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
            } else {
                "{spinner} {msg} {bytes} {bytes_per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        // Without a terminal only the summary line is printed when the work is done:
        // a failure then leaves exactly its one error line.
        Self {
            bar,
            label: label.to_owned(),
        }
    }

    pub fn add(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Ends the bar with a summary line.
    pub fn finish(self, summary: &str) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        let _ = writeln!(std::io::stderr(), "{}: {summary}", self.label);
    }
}

/// One build step: a spinner while it runs on a terminal, then one line.
#[derive(Debug)]
pub struct Step {
    bar: Option<ProgressBar>,
}

impl Step {
    pub fn start(line: &str) -> Self {
        let bar = interactive().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                bar.set_style(style);
            }
            bar.set_message(line.to_owned());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Self { bar }
    }

    /// Prints a line above the spinner (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// Hides the spinner while a guest writes to the terminal.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    pub fn finish(self, line: &str) {
        self.clear();
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// Ends the step without a line (the caller says what happened).
    pub fn clear(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `bytes` in the largest of `units` units it reaches, each `base` times the one
/// before: the value and the unit's index.
fn scaled(bytes: u64, base: f64, units: usize) -> (f64, usize) {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= base && unit < units - 1 {
        value /= base;
        unit += 1;
    }
    (value, unit)
}

/// Docker's human sizes: decimal units, three significant digits (`1.23MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let (value, unit) = scaled(bytes, 1000.0, UNITS.len());
    if unit == 0 {
        format!("{bytes}B")
    } else {
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
        // Three significant digits.
        let digits: usize = text.chars().filter(char::is_ascii_digit).count();
        let text = if digits > 3 && text.contains('.') {
            let int_len = text.split('.').next().map_or(0, str::len);
            let keep = 3usize.saturating_sub(int_len);
            if keep == 0 {
                format!("{value:.0}")
            } else {
                format!("{value:.keep$}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_owned()
            }
        } else {
            text
        };
        format!("{text}{}", UNITS[unit])
    }
}

/// A byte count in binary units: `1.5MiB` with `decimals` 2 and no `separator`, as
/// Docker's `stats` prints it; `1.5 MiB` with 1 and `" "`, as `info` does.
pub fn binary_size(bytes: u64, decimals: usize, separator: &str) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (value, unit) = scaled(bytes, 1024.0, UNITS.len());
    if unit == 0 {
        return format!("{bytes}{separator}B");
    }
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{separator}{}", UNITS[unit])
}

/// Docker's "CREATED" column: `3 seconds ago`, `2 hours ago`, `56 years ago`.
pub fn human_age(created: Option<i64>, now: i64) -> String {
    let Some(created) = created else {
        return "N/A".to_owned();
    };
    let secs = (now - created).max(0);
    let (n, unit) = match secs {
        s if s < 60 => {
            return if s <= 1 {
                "Less than a second ago".to_owned()
            } else {
                format!("{s} seconds ago")
            };
        }
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 * 2 => (s / 3600, "hour"),
        s if s < 86_400 * 14 => (s / 86_400, "day"),
        s if s < 86_400 * 60 => (s / (86_400 * 7), "week"),
        s if s < 86_400 * 365 * 2 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    if n == 1 {
        let article = if unit == "hour" { "An" } else { "A" };
        format!("{article} {unit} ago")
    } else {
        format!("{n} {unit}s ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_234), "1.23kB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_000_000), "1MB");
    }

    #[test]
    fn ages_like_docker() {
        assert_eq!(human_age(Some(0), 30), "30 seconds ago");
        assert_eq!(human_age(Some(0), 7200), "2 hours ago");
        assert_eq!(human_age(Some(0), 1_700_000_000), "53 years ago");
    }
}
