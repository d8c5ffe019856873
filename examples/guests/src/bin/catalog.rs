//! `catalog`: the app of the layered-app example.
//!
//! Reads a config file (`--config PATH`, `key = value` lines), lists the `*.txt` files of
//! the data directory it names, and prints a report. The base image holds this program;
//! the app image adds the config and the data on top of it.

use std::fs;
use std::process::ExitCode;

const USAGE: &str = "\
Usage: catalog --config PATH

Prints a report of the *.txt files of a data directory.

The config file holds `key = value` lines (values may be \"quoted\", # starts a comment):
  title     the report's title            (default: Catalog)
  greeting  a line printed under it       (default: none)
  data_dir  the directory to list; a relative path is relative to the working
            directory                     (default: data)

The report also shows the APP_MODE environment variable.
Exit status: 0 ok, 1 the data directory cannot be read, 2 bad usage or config.";

/// What the config file says.
struct Config {
    title: String,
    greeting: Option<String>,
    data_dir: String,
}

/// One listed file.
struct Entry {
    name: String,
    first_line: String,
    bytes: u64,
}

fn main() -> ExitCode {
    let path = match parse_args(std::env::args().skip(1)) {
        Ok(Some(path)) => path,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("catalog: {msg} (try --help)");
            return ExitCode::from(2);
        }
    };
    let config = match load_config(&path) {
        Ok(config) => config,
        Err(msg) => {
            eprintln!("catalog: {msg}");
            return ExitCode::from(2);
        }
    };
    let (entries, skipped) = match scan(&config.data_dir) {
        Ok(found) => found,
        Err(msg) => {
            eprintln!("catalog: {msg}");
            return ExitCode::from(1);
        }
    };
    report(&config, &entries, &skipped);
    ExitCode::SUCCESS
}

/// `Ok(None)` for `--help`, otherwise the config path.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<String>, String> {
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" => match args.next() {
                Some(path) => config = Some(path),
                None => return Err("--config needs a PATH".to_owned()),
            },
            _ => match arg.strip_prefix("--config=") {
                Some(path) => config = Some(path.to_owned()),
                None => return Err(format!("unexpected argument {arg:?}")),
            },
        }
    }
    config
        .map(Some)
        .ok_or_else(|| "no config file given: pass --config PATH".to_owned())
}

fn load_config(path: &str) -> Result<Config, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read the config file {path}: {e}"))?;
    let mut config = Config {
        title: "Catalog".to_owned(),
        greeting: None,
        data_dir: "data".to_owned(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{path}:{}", n + 1);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{at}: expected `key = value`, found {line:?}"))?;
        let value = parse_value(value.trim()).map_err(|msg| format!("{at}: {msg}"))?;
        match key.trim() {
            "title" => config.title = value,
            "greeting" => config.greeting = Some(value),
            "data_dir" => config.data_dir = value,
            other => eprintln!("catalog: {at}: unknown key {other:?} (ignored)"),
        }
    }
    Ok(config)
}

/// A value: `"quoted"` (with `\"` and `\\` escapes) or bare; either may be followed by a
/// `# comment`.
fn parse_value(raw: &str) -> Result<String, String> {
    let Some(quoted) = raw.strip_prefix('"') else {
        let bare = raw.split('#').next().unwrap_or_default().trim();
        return Ok(bare.to_owned());
    };
    let mut value = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let rest = chars.as_str().trim();
                if rest.is_empty() || rest.starts_with('#') {
                    return Ok(value);
                }
                return Err(format!("unexpected text after the closing quote: {rest:?}"));
            }
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(c @ ('"' | '\\')) => value.push(c),
                _ => return Err("unknown escape in a quoted value".to_owned()),
            },
            c => value.push(c),
        }
    }
    Err("a quoted value is missing its closing quote".to_owned())
}

/// The `*.txt` files of `dir`, sorted by name, and the names of everything else in it.
fn scan(dir: &str) -> Result<(Vec<Entry>, Vec<String>), String> {
    let listing = fs::read_dir(dir).map_err(|e| format!("cannot list {dir}: {e}"))?;
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for item in listing {
        let item = item.map_err(|e| format!("cannot list {dir}: {e}"))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        let is_file = fs::metadata(&path).is_ok_and(|m| m.is_file());
        if !is_file || !name.ends_with(".txt") {
            skipped.push(if is_file { name } else { format!("{name}/") });
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        entries.push(Entry {
            first_line: first_line(&bytes),
            bytes: bytes.len() as u64,
            name,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    skipped.sort();
    Ok((entries, skipped))
}

/// The first line of a file, shortened to 48 characters.
fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return "(empty)".to_owned();
    }
    if line.chars().count() > 48 {
        let cut: String = line.chars().take(47).collect();
        return format!("{cut}…");
    }
    line.to_owned()
}

fn report(config: &Config, entries: &[Entry], skipped: &[String]) {
    println!("== {} ==", config.title);
    if let Some(greeting) = &config.greeting {
        println!("{greeting}");
    }
    let mode = std::env::var("APP_MODE").unwrap_or_else(|_| "(unset)".to_owned());
    println!("env APP_MODE={mode}");
    println!("data_dir: {}", config.data_dir);
    let name_width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let line_width = entries
        .iter()
        .map(|e| e.first_line.chars().count())
        .max()
        .unwrap_or(0);
    for e in entries {
        println!(
            "  {:<name_width$}  {:<line_width$}  {:>5} bytes",
            e.name, e.first_line, e.bytes
        );
    }
    if !skipped.is_empty() {
        println!("  skipped (not *.txt files): {}", skipped.join(", "));
    }
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    let files = if entries.len() == 1 { "file" } else { "files" };
    println!("total: {} {files}, {total} bytes", entries.len());
}
