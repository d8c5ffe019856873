//! `show`: the app of the multi-stage example.
//!
//! Lists the pages of `/app/data/index.txt` (written by `mkindex` in the builder stage),
//! then prints the page named by its argument, from `/app/pages/`.

use std::fs;
use std::path::{Component, Path};
use std::process::ExitCode;

const INDEX: &str = "/app/data/index.txt";
const PAGES: &str = "/app/pages";

const USAGE: &str = "\
Usage: show [PAGE]
       show --exists PATH

Lists the pages of /app/data/index.txt, then prints /app/pages/PAGE if PAGE is given
(exit 1 if there is no such page). --exists prints yes or no: whether PATH exists in
the container.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["-h" | "--help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["--exists", path] => {
            let exists = fs::symlink_metadata(path).is_ok();
            println!("{}", if exists { "yes" } else { "no" });
            ExitCode::SUCCESS
        }
        [] => run(None),
        [page] if !page.starts_with('-') => run(Some(page)),
        _ => {
            eprintln!("show: unexpected arguments {args:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(page: Option<&str>) -> ExitCode {
    let index = match fs::read_to_string(INDEX) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("show: cannot read the index {INDEX}: {e}");
            return ExitCode::from(1);
        }
    };
    println!("pages in this image (from {INDEX}):");
    for (n, line) in index.lines().enumerate() {
        let mut fields = line.split('\t');
        let (Some(path), Some(_bytes), Some(words), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            eprintln!("show: {INDEX}:{}: malformed entry {line:?}", n + 1);
            return ExitCode::from(1);
        };
        println!("  {path}: {words} words");
    }
    let Some(page) = page else {
        return ExitCode::SUCCESS;
    };
    // A page is a relative path below /app/pages: no `..`, no absolute paths.
    let inside = Path::new(page)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let text = if inside {
        fs::read_to_string(Path::new(PAGES).join(page)).ok()
    } else {
        None
    };
    let Some(text) = text else {
        eprintln!("show: no page named {page:?} in {PAGES}");
        return ExitCode::from(1);
    };
    println!();
    println!("--- {page}");
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    ExitCode::SUCCESS
}
