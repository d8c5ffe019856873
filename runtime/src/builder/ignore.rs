//! `.capsuleignore` rules: the `.dockerignore` syntax and semantics of moby's patternmatcher.
//!
//! One pattern per line; lines starting with `#` are comments; other lines are trimmed and
//! blank ones skipped. A pattern is cleaned like Go's `filepath.Clean` (leading `/` and
//! `./`, empty and `.` components dropped, `..` resolved lexically) and uses the syntax of
//! [`Pattern`]. A leading `!` makes an exception that re-includes what it matches.
//!
//! A rule applies to a path when it matches the path or one of the path's parent
//! directories, and the last rule that applies decides: so `build` excludes everything
//! under `build/`, and `build` followed by `!build/keep.txt` keeps that one file.

use super::pattern::Pattern;

/// An error in an ignore file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct IgnoreError {
    /// The file name given to [`IgnoreRules::parse`].
    pub file: String,
    /// The 1-based line of the faulty pattern.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The parsed rules of an ignore file, in file order.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    /// A `!` rule: re-includes what it matches.
    exception: bool,
}

impl IgnoreRules {
    /// Parses the text of an ignore file. `file` is the name used in errors.
    ///
    /// # Errors
    /// A malformed glob, a lone `!`, or a pattern whose `..` leaves the context.
    pub fn parse(file: &str, text: &str) -> Result<Self, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            let err = |reason: String| IgnoreError {
                file: file.to_owned(),
                line: index + 1,
                reason,
            };
            // As in Docker, only a `#` in the first column starts a comment.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (pattern, exception) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), true),
                None => (line, false),
            };
            if pattern.is_empty() {
                return Err(err("'!' needs a pattern to re-include".to_owned()));
            }
            let Some(cleaned) = clean(pattern).map_err(|reason| err(reason.to_owned()))? else {
                // `.` or `/`: the context itself, which is never a candidate path.
                continue;
            };
            let pattern = Pattern::new(&cleaned).map_err(|e| err(e.to_string()))?;
            rules.push(Rule { pattern, exception });
        }
        Ok(Self { rules })
    }

    /// Whether the `/`-separated relative path (no leading `/`) is excluded from the context.
    pub fn is_excluded(&self, path: &str) -> bool {
        self.deciding_rule(path)
            .is_some_and(|i| !self.rules[i].exception)
    }

    /// Whether walking can skip directory `dir` entirely: it is excluded and no exception
    /// pattern could re-include anything below it.
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        let Some(decider) = self.deciding_rule(dir) else {
            return false;
        };
        if self.rules[decider].exception {
            return false;
        }
        // Every rule that applies to `dir` applies to what is below it too, so only a later
        // exception can change the verdict for a path below.
        !self.rules[decider + 1..]
            .iter()
            .any(|rule| rule.exception && rule.pattern.may_match_below(dir))
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The index of the last rule matching `path` or one of its parents.
    ///
    /// This gives the same verdict as moby's `MatchesOrParentMatches`, which walks the
    /// rules forwards and skips those that cannot change its current answer.
    fn deciding_rule(&self, path: &str) -> Option<usize> {
        let path = path.trim_start_matches("./");
        if path.split('/').all(|c| c.is_empty() || c == ".") {
            return None;
        }
        self.rules
            .iter()
            .rposition(|rule| rule.pattern.matches_self_or_parent(path))
    }
}

/// Cleans a pattern (or a path of the context) like Go's `filepath.Clean` and drops the
/// leading `/`. `None` means it names the context itself.
pub(super) fn clean(pattern: &str) -> Result<Option<String>, &'static str> {
    let mut out: Vec<&str> = Vec::new();
    for comp in pattern.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err("the pattern leaves the build context with '..'");
                }
            }
            _ => out.push(comp),
        }
    }
    Ok((!out.is_empty()).then(|| out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(".capsuleignore", text).expect("valid ignore file")
    }

    fn err(text: &str) -> IgnoreError {
        IgnoreRules::parse(".capsuleignore", text).expect_err("invalid ignore file")
    }

    #[test]
    fn empty() {
        let r = rules("");
        assert!(r.is_empty());
        assert!(!r.is_excluded("a"));
        assert!(!r.can_skip_dir("a"));
        let r = rules("# only a comment\n\n   \n");
        assert!(r.is_empty());
        assert!(IgnoreRules::default().is_empty());
    }

    #[test]
    fn simple_excludes() {
        let r = rules("*.log\ntarget\n");
        assert!(!r.is_empty());
        assert!(r.is_excluded("a.log"));
        assert!(!r.is_excluded("dir/a.log"));
        assert!(r.is_excluded("target"));
        assert!(r.is_excluded("target/debug/x"));
        assert!(!r.is_excluded("src/target"));
        assert!(!r.is_excluded("main.rs"));
    }

    #[test]
    fn comments_whitespace_and_crlf() {
        let r = rules("\u{feff}# comment\r\n  a.txt  \r\n\t\r\n #notacomment\r\n");
        assert!(r.is_excluded("a.txt"));
        assert!(r.is_excluded("#notacomment"));
        assert!(!r.is_excluded("# comment"));
    }

    #[test]
    fn cleaning() {
        let r = rules("/abs\n./dot\nx//y/\na/../b\nc/./d\n/\n.\n");
        assert!(r.is_excluded("abs"));
        assert!(r.is_excluded("dot"));
        assert!(r.is_excluded("x/y"));
        assert!(r.is_excluded("b"));
        assert!(!r.is_excluded("a"));
        assert!(r.is_excluded("c/d"));
        assert!(!r.is_excluded("other"));
    }

    #[test]
    fn exceptions() {
        let r = rules("*.md\n!README.md\n");
        assert!(r.is_excluded("CHANGES.md"));
        assert!(!r.is_excluded("README.md"));
        // The last matching rule wins.
        let r = rules("!README.md\n*.md\n");
        assert!(r.is_excluded("README.md"));
        let r = rules("*\n!src\n");
        assert!(r.is_excluded("Cargo.lock"));
        assert!(!r.is_excluded("src"));
        assert!(!r.is_excluded("src/main.rs"));
        assert!(!r.is_excluded("src/a/b.rs"));
        let r = rules("  ! keep.txt \n");
        assert!(!r.is_excluded("keep.txt"));
    }

    #[test]
    fn parents() {
        let r = rules("docs\n!docs/keep.md\n");
        assert!(r.is_excluded("docs"));
        assert!(r.is_excluded("docs/a.md"));
        assert!(!r.is_excluded("docs/keep.md"));
        assert!(!r.is_excluded("docs/keep.md/inner"));
        // A rule on a parent applies to everything below it, even with a later exception
        // for a sibling.
        let r = rules("a/b\n!a/c\n");
        assert!(r.is_excluded("a/b/c"));
        assert!(!r.is_excluded("a/c/b"));
        // An exception of a parent re-includes the children.
        let r = rules("a/b\n!a\n");
        assert!(!r.is_excluded("a/b/c"));
        let r = rules("!a\na/b\n");
        assert!(r.is_excluded("a/b/c"));
        assert!(!r.is_excluded("a/c"));
    }

    #[test]
    fn double_star_rules() {
        let r = rules("**/*.tmp\n**/node_modules\n");
        assert!(r.is_excluded("x.tmp"));
        assert!(r.is_excluded("a/b/x.tmp"));
        assert!(r.is_excluded("node_modules/p/index.js"));
        assert!(r.is_excluded("web/node_modules/p/index.js"));
        assert!(!r.is_excluded("web/src/index.js"));
        let r = rules("logs/**\n!logs/**/keep\n");
        assert!(!r.is_excluded("logs"));
        assert!(r.is_excluded("logs/a"));
        assert!(!r.is_excluded("logs/a/keep"));
        assert!(!r.is_excluded("logs/keep"));
    }

    #[test]
    fn paths_are_normalised() {
        let r = rules("a/b\n");
        assert!(r.is_excluded("./a/b"));
        assert!(r.is_excluded("a/b/"));
        assert!(!r.is_excluded(""));
        assert!(!r.is_excluded("."));
    }

    #[test]
    fn can_skip_dir() {
        let r = rules("target\n");
        assert!(r.can_skip_dir("target"));
        assert!(r.can_skip_dir("target/debug"));
        assert!(!r.can_skip_dir("src"));

        let r = rules("target\n!target/keep\n");
        assert!(!r.can_skip_dir("target"));
        assert!(r.is_excluded("target"));
        assert!(r.can_skip_dir("target/debug"));

        let r = rules("*\n!**/*.rs\n");
        assert!(!r.can_skip_dir("anything"));
        assert!(r.is_excluded("anything"));
        assert!(!r.is_excluded("anything/x.rs"));

        // An exception before the deciding exclusion does not count.
        let r = rules("!target/keep\ntarget\n");
        assert!(r.can_skip_dir("target"));
        assert!(r.is_excluded("target/keep"));

        // Exceptions that cannot reach below the directory do not prevent skipping.
        let r = rules("build\n!*.md\n");
        assert!(r.can_skip_dir("build"));
        assert!(!r.is_excluded("x.md"));

        // A directory that is not excluded is walked.
        let r = rules("*.o\n");
        assert!(!r.can_skip_dir("src"));
        assert!(!r.can_skip_dir(""));
    }

    /// `can_skip_dir` must never hide a path that `is_excluded` keeps.
    #[test]
    fn skipping_is_sound() {
        let files = [
            "a", "a/b", "a/b/c", "a/b/c.md", "a/x.md", "b/a", "b/a/c", "keep", "a/keep",
            "a/b/keep", "c.md",
        ];
        let dirs = ["a", "a/b", "b", "b/a"];
        let sets = [
            "a\n!a/b/keep\n",
            "*\n!**/keep\n",
            "a\n!*.md\n",
            "a\n!a/*.md\n",
            "**/b\n!a/b/c\n",
            "a/**\n!a/b\n",
            "*/a\n!b\n",
            "!keep\na\n",
        ];
        for set in sets {
            let r = rules(set);
            for dir in dirs {
                if !r.can_skip_dir(dir) {
                    continue;
                }
                assert!(r.is_excluded(dir), "{set:?} {dir}");
                for f in files {
                    if f.starts_with(&format!("{dir}/")) {
                        assert!(r.is_excluded(f), "{set:?}: skipping {dir} hides {f}");
                    }
                }
            }
        }
    }

    #[test]
    fn errors() {
        let e = err("ok\n\n[abc\n");
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            ".capsuleignore:3: invalid pattern '[abc': '[' without a matching ']'"
        );
        let e = err("!\n");
        assert_eq!(
            e.to_string(),
            ".capsuleignore:1: '!' needs a pattern to re-include"
        );
        let e = err("a\n../secret\n");
        assert_eq!(
            e.to_string(),
            ".capsuleignore:2: the pattern leaves the build context with '..'"
        );
        assert_eq!(err("a/../../b").line, 1);
        assert_eq!(err("/../b").line, 1);
        assert_eq!(err("x\\").line, 1);
    }
}
