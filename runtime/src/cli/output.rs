//! What the commands share on the terminal: Docker's table layout, and its
//! confirmation before removing things.

use super::{Failure, exit};
use std::io::{IsTerminal, Write};

/// Columns padded to the widest cell plus three spaces, as docker prints them.
pub fn print_table<const N: usize>(out: &mut impl Write, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// Docker's confirmation before removing `what`: `-f` skips it; without a terminal
/// to ask on, the command refuses rather than guess.
pub fn confirmed(force: bool, command: &str, what: &str) -> Result<bool, Failure> {
    if force {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!(
                "{command} removes {what}: confirm with -f (stdin is not a terminal to ask)"
            ),
        ));
    }
    eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `--format`: `table` (the default) or `json` (one object per line, as Docker's
/// `--format json`); whether it is JSON.
pub fn wants_json(format: Option<&str>) -> Result<bool, Failure> {
    match format {
        None | Some("table") => Ok(false),
        Some("json" | "{{json .}}") => Ok(true),
        Some(other) => Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("unknown --format '{other}' (known: table, json)"),
        )),
    }
}

/// A `--filter KEY=VALUE`, split; one error line for anything else.
pub fn split_filter(filter: &str) -> Result<(&str, &str), Failure> {
    filter.split_once('=').ok_or_else(|| {
        Failure::new(
            exit::USAGE,
            anyhow::anyhow!("invalid filter '{filter}': expected KEY=VALUE"),
        )
    })
}

/// Docker's `label=KEY` (present) or `label=KEY=VALUE` (equal) filter.
pub fn label_matches(labels: &std::collections::BTreeMap<String, String>, value: &str) -> bool {
    match value.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(value),
    }
}

/// `--label KEY=VALUE` flags as a map (`KEY` alone is an empty value).
pub fn labels(flags: &[String]) -> Result<std::collections::BTreeMap<String, String>, Failure> {
    flags
        .iter()
        .map(|l| capsule_runtime::spec::grammar::label(l))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::new(exit::USAGE, e))
}

/// The `rm` of volumes and networks: removes each of `names`, printing the name of
/// each removed and a line for each that was not (`force`: none for one that is not
/// there, as Docker); 1 when any was not removed.
pub fn remove_each<E: std::fmt::Display>(
    names: &[String],
    force: bool,
    remove: impl Fn(&str) -> Result<(), E>,
    not_found: impl Fn(&E) -> bool,
) -> u8 {
    let mut failed = false;
    for name in names {
        match remove(name) {
            Ok(()) => println!("{name}"),
            Err(e) if force && not_found(&e) => {}
            Err(e) => {
                eprintln!("capsule: {e}");
                failed = true;
            }
        }
    }
    u8::from(failed)
}

/// The `inspect` of volumes and networks: a JSON array of what `show` gives for each of
/// `names`, a line for each it cannot show; 1 when any was not shown.
pub fn inspect_each<E: std::fmt::Display>(
    names: &[String],
    show: impl Fn(&str) -> Result<serde_json::Value, E>,
) -> Result<u8, Failure> {
    let mut shown = Vec::new();
    let mut failed = false;
    for name in names {
        match show(name) {
            Ok(value) => shown.push(value),
            Err(e) => {
                eprintln!("capsule: {e}");
                failed = true;
            }
        }
    }
    let text = serde_json::to_string_pretty(&shown).map_err(|e| Failure::new(exit::USAGE, e))?;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(u8::from(failed))
}
