//! The rule that keeps the test command passing on a fresh machine: every program
//! outside the workspace that a test runs is listed in `scripts/test-tools.txt`, which
//! `scripts/install-test-deps.sh` installs. `capsule_tests::tool` enforces it at run
//! time; this test enforces it on the sources, so that a new `Command::new("…")` fails
//! here, on the developer's machine, before a fresh machine finds it.

use std::path::{Path, PathBuf};

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the tests' sources") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            // The guests are programs under test, not test drivers.
            if path.file_name().is_some_and(|n| n == "guests") {
                continue;
            }
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every string literal that follows `pattern` in `text`, with its line number.
fn literals_after(text: &str, pattern: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(pattern) {
            rest = &rest[at + pattern.len()..];
            if let Some(quoted) = rest.strip_prefix('"')
                && let Some(end) = quoted.find('"')
            {
                found.push((number + 1, quoted[..end].to_owned()));
            }
        }
    }
    found
}

#[test]
fn every_program_a_test_runs_is_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed: Vec<&str> = capsule_tests::listed_tools()
        .into_iter()
        .map(|(program, _)| program)
        .collect();
    let mut sources = Vec::new();
    rust_sources(&root.join("src"), &mut sources);
    rust_sources(&root.join("tests"), &mut sources);
    sources.push(root.join("build.rs"));
    assert!(sources.len() > 20, "found only {} sources", sources.len());

    let mut problems = Vec::new();
    let mut named = 0;
    for path in &sources {
        let text = std::fs::read_to_string(path).expect("read a source");
        if path.ends_with("tools.rs") {
            continue;
        }
        let shown = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        for (line, program) in literals_after(&text, "Command::new(") {
            problems.push(format!(
                "{shown}:{line}: Command::new(\"{program}\"): run it as Command::new(capsule_tests::tool(\"{program}\")) and list it in scripts/test-tools.txt"
            ));
        }
        for (line, program) in literals_after(&text, "tool(") {
            named += 1;
            if !listed.contains(&program.as_str()) {
                problems.push(format!(
                    "{shown}:{line}: tool(\"{program}\") is not listed in scripts/test-tools.txt, so scripts/install-test-deps.sh does not install it"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "programs the tests run that a fresh machine would not have:\n{}",
        problems.join("\n")
    );
    assert!(
        named >= 10,
        "only {named} tool(\"…\") calls found: is the scan broken?"
    );
}

/// The install script installs from the list rather than keeping its own.
#[test]
fn the_install_script_reads_the_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = std::fs::read_to_string(root.join("scripts/install-test-deps.sh"))
        .expect("read scripts/install-test-deps.sh");
    assert!(
        script.contains("test-tools.txt"),
        "scripts/install-test-deps.sh does not read scripts/test-tools.txt"
    );
}
