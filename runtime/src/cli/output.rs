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
