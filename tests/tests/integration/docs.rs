//! The documentation stays true to the binary and to the repository: `docs/cli.md`
//! names every verb `capsule --help` lists, the README keeps the two commands at its
//! top, and every relative link in the README and `docs/` names a file that exists.

use capsule_tests::TestEnv;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The subcommands a `--help` text lists under `Commands:`.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_verb_is_in_the_cli_doc() {
    let env = TestEnv::new();
    let help = |args: &[&str]| {
        let mut args = args.to_vec();
        args.push("--help");
        let out = env.run(&args);
        out.assert_code(0);
        out.stdout
    };
    let doc = read(&root().join("docs/cli.md"));
    let top = commands(&help(&[]));
    assert!(top.len() > 30, "capsule --help lists only {top:?}");
    let mut verbs = Vec::new();
    for verb in &top {
        let subcommands = commands(&help(&[verb]));
        if subcommands.is_empty() {
            verbs.push(verb.clone());
        } else {
            verbs.extend(subcommands.iter().map(|sub| format!("{verb} {sub}")));
        }
    }
    let missing: Vec<&String> = verbs
        .iter()
        .filter(|verb| !doc.contains(&format!("| `capsule {verb}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/cli.md has no row for {missing:?} (regenerate its table of verbs)"
    );
}

#[test]
fn the_readme_starts_with_the_two_commands() {
    let readme = read(&root().join("README.md"));
    let top: Vec<&str> = readme.lines().take(30).collect();
    for line in [
        "cargo run --release -p capsule-runtime -- run hello-world",
        "scripts/test.sh",
        "`.ci/run` runs exactly `scripts/test.sh`.",
    ] {
        assert!(
            top.contains(&line),
            "the README's first 30 lines lack {line:?}"
        );
    }
}

/// Every `](target)` of a Markdown file that is not a URL or an anchor in the same page.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        if !target.contains("://") && !target.starts_with('#') && !target.starts_with("mailto:") {
            links.push(target.split('#').next().unwrap_or(target).to_owned());
        }
    }
    links
}

#[test]
fn relative_links_in_the_docs_name_files_that_exist() {
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("examples/README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("read docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    assert!(pages.len() >= 8, "found only {pages:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let dir = page.parent().expect("a page has a directory");
        for link in relative_links(&read(page)) {
            checked += 1;
            if !dir.join(&link).exists() {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(checked > 20, "checked only {checked} links");
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}
