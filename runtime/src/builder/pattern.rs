//! Glob patterns over `/`-separated relative paths.
//!
//! The syntax is Go's `filepath.Match` (as used by Docker for `.dockerignore` and `COPY`
//! sources) with Unix escaping, plus `**` as a whole path component:
//!
//! - `*` matches any run of characters other than `/`, `?` exactly one such character;
//! - `[a-z0-9]` matches one character of a class, `[!x]` or `[^x]` one character outside it;
//! - `\` makes the next character literal;
//! - `**` matches zero or more whole components. A trailing `**` (as in `dir/**`) matches
//!   one or more, so it names everything inside `dir` but not `dir` itself, as in Docker.
//!
//! A `/` always separates components, and empty components (`a//b`, a leading or trailing
//! `/`) are ignored, in patterns and in paths alike. Matching takes at most
//! O(pattern length × path length) steps: there is no exponential backtracking.

/// An error in the syntax of a glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern '{pattern}': {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A compiled glob over `/`-separated relative paths: `*` (any run of non-`/` chars), `?`
/// (one non-`/` char), `[a-z]`, `[!x]`/`[^x]`, `\` escapes (Unix semantics), and `**` as a
/// whole path component matching zero or more components.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    comps: Vec<Comp>,
}

/// One component of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Comp {
    /// `**`: zero or more path components.
    Many,
    /// A pattern for exactly one path component.
    Seg(Vec<Tok>),
}

/// One element of a component pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`
    One,
    /// `*` (runs of stars are collapsed)
    Star,
    /// `[...]`: inclusive ranges, possibly negated.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Tok {
    fn matches(&self, c: char) -> bool {
        match self {
            Tok::Lit(l) => *l == c,
            Tok::One => true,
            Tok::Star => false,
            Tok::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Pattern {
    /// Compiles a pattern.
    ///
    /// # Errors
    /// A `[` without its `]`, an empty or malformed class (`[]`, `[a-]`), or a trailing `\`.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: pattern.to_owned(),
            reason: reason.to_owned(),
        };
        let mut comps = Vec::new();
        let mut toks = Vec::new();
        // The component as written, to recognise `**` (and not `\*\*` or `[*]*`).
        let mut raw = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '/' {
                push_comp(&mut comps, &mut toks, &mut raw);
                continue;
            }
            raw.push(c);
            match c {
                '\\' => match chars.next() {
                    Some('/') => push_comp(&mut comps, &mut toks, &mut raw),
                    Some(e) => {
                        raw.push(e);
                        toks.push(Tok::Lit(e));
                    }
                    None => return Err(err("trailing '\\' escapes nothing")),
                },
                '*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                }
                '?' => toks.push(Tok::One),
                '[' => {
                    let class = parse_class(&mut chars, &mut raw).map_err(err)?;
                    toks.push(class);
                }
                _ => toks.push(Tok::Lit(c)),
            }
        }
        push_comp(&mut comps, &mut toks, &mut raw);
        // A trailing `**` needs at least one component: `dir/**` is what is inside `dir`.
        if comps.len() > 1 && comps.last() == Some(&Comp::Many) {
            comps.insert(comps.len() - 1, Comp::Seg(vec![Tok::Star]));
        }
        Ok(Self {
            text: pattern.to_owned(),
            comps,
        })
    }

    /// Whether the whole of `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let states = self.run(components(path), |_| false);
        states.last().copied().unwrap_or(false)
    }

    /// Whether `path` or one of its parent directories matches: the test Docker applies
    /// to each `.dockerignore` pattern.
    pub fn matches_self_or_parent(&self, path: &str) -> bool {
        let end = self.comps.len();
        let mut hit = false;
        let states = self.run(components(path), |states| {
            hit = states.get(end).copied().unwrap_or(false);
            hit
        });
        hit || states.get(end).copied().unwrap_or(false)
    }

    /// Whether some path strictly below directory `dir` (`dir/...`) could match: used to
    /// decide whether walking into `dir` can find matches. It may err towards `true`.
    pub fn may_match_below(&self, dir: &str) -> bool {
        let states = self.run(components(dir), |_| false);
        // Any remaining component (a segment or `**`) can consume at least one more name.
        let end = self.comps.len();
        states.iter().take(end).any(|&s| s)
    }

    /// Whether `pattern` contains an unescaped `*`, `?` or `[`.
    pub fn has_wildcards(pattern: &str) -> bool {
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '*' | '?' | '[' => return true,
                _ => {}
            }
        }
        false
    }

    /// The pattern as given to [`Pattern::new`].
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Runs the component automaton over `names`. `state[j]` means the first `j` pattern
    /// components have matched the names consumed so far. `after_prefix` sees the states
    /// after each name but the last and stops the run when it returns true.
    fn run<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
        mut after_prefix: impl FnMut(&[bool]) -> bool,
    ) -> Vec<bool> {
        let n = self.comps.len();
        let mut cur = vec![false; n + 1];
        cur[0] = true;
        self.close(&mut cur);
        let mut names = names.peekable();
        let mut chars = Vec::new();
        while let Some(name) = names.next() {
            chars.clear();
            chars.extend(name.chars());
            let mut next = vec![false; n + 1];
            for (j, comp) in self.comps.iter().enumerate() {
                if !cur[j] {
                    continue;
                }
                match comp {
                    Comp::Many => next[j] = true,
                    Comp::Seg(toks) => {
                        if match_segment(toks, &chars) {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            self.close(&mut next);
            cur = next;
            if !cur.iter().any(|&s| s) || (names.peek().is_some() && after_prefix(&cur)) {
                break;
            }
        }
        cur
    }

    /// Adds the states reachable by letting `**` match nothing.
    fn close(&self, states: &mut [bool]) {
        for (j, comp) in self.comps.iter().enumerate() {
            if states[j] && *comp == Comp::Many {
                states[j + 1] = true;
            }
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The non-empty components of a `/`-separated path.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

fn push_comp(comps: &mut Vec<Comp>, toks: &mut Vec<Tok>, raw: &mut String) {
    if raw == "**" {
        // `a/**/**/b` is the same as `a/**/b`.
        if comps.last() != Some(&Comp::Many) {
            comps.push(Comp::Many);
        }
    } else if !raw.is_empty() {
        comps.push(Comp::Seg(std::mem::take(toks)));
    }
    toks.clear();
    raw.clear();
}

/// Parses a class after its `[`, with Go's rules: `]` closes it unless first, `-` may not
/// start or end a range, `\` escapes.
fn parse_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    raw: &mut String,
) -> Result<Tok, &'static str> {
    const UNCLOSED: &str = "'[' without a matching ']'";
    let mut negated = false;
    if let Some(&c @ ('^' | '!')) = chars.peek() {
        raw.push(c);
        chars.next();
        negated = true;
    }
    let mut ranges = Vec::new();
    loop {
        if !ranges.is_empty() && chars.peek() == Some(&']') {
            raw.push(']');
            chars.next();
            return Ok(Tok::Class { negated, ranges });
        }
        let lo = class_char(chars, raw)?;
        let hi = if chars.peek() == Some(&'-') {
            raw.push('-');
            chars.next();
            class_char(chars, raw)?
        } else {
            lo
        };
        ranges.push((lo, hi));
        if chars.peek().is_none() {
            return Err(UNCLOSED);
        }
    }
}

fn class_char(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    raw: &mut String,
) -> Result<char, &'static str> {
    match chars.next() {
        None => Err("'[' without a matching ']'"),
        Some(c @ (']' | '-')) => {
            raw.push(c);
            Err("bad character range in '[...]' ('-' or ']' out of place, or empty class)")
        }
        Some('\\') => {
            raw.push('\\');
            let c = chars.next().ok_or("'[' without a matching ']'")?;
            raw.push(c);
            Ok(c)
        }
        Some(c) => {
            raw.push(c);
            Ok(c)
        }
    }
}

/// Matches one component with the classic single-restart wildcard algorithm: on a mismatch
/// only the most recent `*` is extended, which is enough because a later star can absorb
/// anything an earlier one could.
fn match_segment(toks: &[Tok], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    // Token index after the last star, and the name index it was tried at.
    let mut restart: Option<(usize, usize)> = None;
    while n < name.len() {
        match toks.get(t) {
            Some(Tok::Star) => {
                t += 1;
                restart = Some((t, n));
                continue;
            }
            Some(tok) if tok.matches(name[n]) => {
                t += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match restart {
            Some((rt, rn)) => {
                t = rt;
                n = rn + 1;
                restart = Some((rt, rn + 1));
            }
            None => return false,
        }
    }
    toks[t.min(toks.len())..]
        .iter()
        .all(|tok| *tok == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> Pattern {
        Pattern::new(p).expect("valid pattern")
    }

    fn m(p: &str, path: &str) -> bool {
        pat(p).matches(path)
    }

    #[test]
    fn literals() {
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
        assert!(!m("abc", "ab"));
        assert!(m("a/b/c", "a/b/c"));
        assert!(!m("a/b", "a/b/c"));
        assert!(!m("a/b/c", "a/b"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("héllo/wörld", "héllo/wörld"));
    }

    #[test]
    fn star_and_question_mark() {
        assert!(m("*", "abc"));
        assert!(!m("*", ""), "an empty path has no component");
        assert!(!m("*", "a/b"));
        assert!(m("a*", "a"));
        assert!(m("a*", "abc"));
        assert!(m("*c", "abc"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(m("*.go", "main.go"));
        assert!(!m("*.go", "src/main.go"));
        assert!(m("*/*.go", "src/main.go"));
        assert!(m("?", "a"));
        assert!(m("?", "é"));
        assert!(!m("?", ""));
        assert!(!m("?", "ab"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(m("*.*", ".hidden"));
        assert!(m("***", "abc"));
    }

    #[test]
    fn classes() {
        assert!(m("[abc]", "b"));
        assert!(!m("[abc]", "d"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[!a-c]", "d"));
        assert!(!m("[!a-c]", "a"));
        assert!(m("[^a-c]", "d"));
        assert!(!m("[^a-c]", "b"));
        assert!(m("[a-cx-z]", "y"));
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(m("[a\\-z]", "-"));
        assert!(!m("[a\\-z]", "b"));
        assert!(m("[é]", "é"));
        assert!(m("[!!]", "a"));
        assert!(!m("[z-a]", "m"));
        assert!(m("file[0-9].txt", "file7.txt"));
        assert!(!m("file[0-9].txt", "file.txt"));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?b", "a?b"));
        assert!(!m("a\\?b", "axb"));
        assert!(m("\\[x]", "[x]"));
        assert!(m("\\a", "a"));
        assert!(m("a\\/b", "a/b"));
        assert!(!Pattern::has_wildcards("\\*\\?\\["));
        assert!(Pattern::has_wildcards("a*"));
        assert!(Pattern::has_wildcards("a?"));
        assert!(Pattern::has_wildcards("[ab]"));
        assert!(Pattern::has_wildcards("\\\\*"));
        assert!(!Pattern::has_wildcards("plain/path.txt"));
        assert!(!Pattern::has_wildcards(""));
    }

    #[test]
    fn double_star() {
        assert!(m("**", ""));
        assert!(m("**", "a"));
        assert!(m("**", "a/b/c"));
        assert!(m("**/*.go", "main.go"));
        assert!(m("**/*.go", "a/b/main.go"));
        assert!(!m("**/*.go", "a/b/main.rs"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/b"));
        assert!(m("a/**/b", "a/x/y/z/b"));
        assert!(!m("a/**/b", "a/x/y/z/c"));
        assert!(!m("a/**/b", "b"));
        assert!(m("a/**", "a/x"));
        assert!(m("a/**", "a/x/y"));
        assert!(!m("a/**", "a"));
        assert!(!m("a/**", "b/x"));
        assert!(m("a/**/**/b", "a/b"));
        assert!(m("**/x/**/y", "x/y"));
        assert!(m("**/x/**/y", "p/x/q/r/y"));
        assert!(!m("**/x/**/y", "p/q/y"));
        // `**` inside a component is just `*`.
        assert!(m("a**b", "axxb"));
        assert!(!m("a**b", "ax/xb"));
        // Escaped stars are literal.
        assert!(m("\\*\\*", "**"));
        assert!(!m("\\*\\*", "a"));
    }

    #[test]
    fn empty_components_are_ignored() {
        assert!(m("/a/b/", "a/b"));
        assert!(m("a//b", "a/b"));
        assert!(m("a/b", "a//b/"));
    }

    #[test]
    fn matches_self_or_parent() {
        let p = pat("a/b");
        assert!(p.matches_self_or_parent("a/b"));
        assert!(p.matches_self_or_parent("a/b/c/d"));
        assert!(!p.matches_self_or_parent("a"));
        assert!(!p.matches_self_or_parent("a/c/b"));
        let p = pat("*.log");
        assert!(p.matches_self_or_parent("x.log/inner"));
        assert!(!p.matches_self_or_parent("dir/x.log"));
        let p = pat("**/tmp");
        assert!(p.matches_self_or_parent("a/tmp/b"));
        assert!(p.matches_self_or_parent("tmp"));
    }

    #[test]
    fn may_match_below() {
        assert!(pat("a/b").may_match_below("a"));
        assert!(!pat("a/b").may_match_below("a/b"));
        assert!(!pat("a/b").may_match_below("c"));
        assert!(pat("a/b").may_match_below(""));
        assert!(pat("*/b").may_match_below("x"));
        assert!(pat("**/b").may_match_below("x/y/z"));
        assert!(pat("a/**").may_match_below("a"));
        assert!(pat("a/**").may_match_below("a/b/c"));
        assert!(!pat("a/**").may_match_below("b"));
        assert!(!pat("a").may_match_below("a"));
        assert!(!pat("*.txt").may_match_below("dir"));
        assert!(pat("**").may_match_below("anything"));
    }

    #[test]
    fn errors() {
        for (p, reason) in [
            ("[", "'[' without a matching ']'"),
            ("a[b", "'[' without a matching ']'"),
            ("[a-", "'[' without a matching ']'"),
            ("[a-]", "bad character range"),
            ("[]", "bad character range"),
            ("[]a]", "bad character range"),
            ("[-a]", "bad character range"),
            ("[!]", "bad character range"),
            ("[\\", "'[' without a matching ']'"),
            ("abc\\", "trailing '\\'"),
        ] {
            let e = Pattern::new(p).expect_err(p);
            assert_eq!(e.pattern, p);
            assert!(e.reason.contains(reason), "{p}: {}", e.reason);
        }
        let e = Pattern::new("x[").expect_err("x[");
        assert_eq!(
            e.to_string(),
            "invalid pattern 'x[': '[' without a matching ']'"
        );
    }

    #[test]
    fn as_str_and_display() {
        let p = pat("a/**/*.rs");
        assert_eq!(p.as_str(), "a/**/*.rs");
        assert_eq!(p.to_string(), "a/**/*.rs");
    }

    #[test]
    fn no_exponential_blowup() {
        let name = "a".repeat(200);
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*b", &name));
        let path = vec!["a"; 200].join("/");
        assert!(!m("**/a/**/a/**/a/**/a/**/a/**/b", &path));
        assert!(m("**/a/**/a/**/a/**/a/**/a", &path));
    }

    /// Checks the matcher against a naive recursive one on generated inputs.
    #[test]
    fn agrees_with_naive_matcher() {
        fn naive_seg(p: &[char], s: &[char]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some(('*', rest)) => (0..=s.len()).any(|k| naive_seg(rest, &s[k..])),
                Some(('?', rest)) => !s.is_empty() && naive_seg(rest, &s[1..]),
                Some((c, rest)) => s.first() == Some(c) && naive_seg(rest, &s[1..]),
            }
        }
        fn naive(p: &[&str], s: &[&str]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((&"**", rest)) => (0..=s.len()).any(|k| naive(rest, &s[k..])),
                Some((c, rest)) => {
                    let pc: Vec<char> = c.chars().collect();
                    let sc: Vec<char> = s.first().map(|x| x.chars().collect()).unwrap_or_default();
                    !s.is_empty() && naive_seg(&pc, &sc) && naive(rest, &s[1..])
                }
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let pieces = ["a", "b", "*", "?", "**"];
        for _ in 0..3000 {
            let comps: Vec<String> = (0..1 + rand(3))
                .map(|_| {
                    if rand(4) == 0 {
                        "**".to_owned()
                    } else {
                        (0..1 + rand(3)).map(|_| pieces[rand(4)]).collect()
                    }
                })
                .collect();
            // Leave out a trailing `**`, whose one-or-more rule the naive matcher lacks.
            if comps.len() > 1 && comps.last().is_some_and(|c| c == "**") {
                continue;
            }
            let path: Vec<String> = (0..rand(4))
                .map(|_| (0..1 + rand(3)).map(|_| ["a", "b"][rand(2)]).collect())
                .collect();
            let p = comps.join("/");
            let s = path.join("/");
            let pv: Vec<&str> = comps.iter().map(String::as_str).collect();
            let sv: Vec<&str> = path.iter().map(String::as_str).collect();
            assert_eq!(m(&p, &s), naive(&pv, &sv), "pattern {p:?} path {s:?}");
        }
    }
}
