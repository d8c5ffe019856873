//! Words and variables: quotes and escapes resolved, `$VAR` and `${VAR...}` kept for
//! the executor to expand in scope (BuildKit's shell lexer).

use std::fmt;

use super::lines::{Ch, start, trim};
use super::{MAX_DEPTH, Parser, Pos, RecipeError, START};

/// A word whose quotes are resolved; variables are expanded later, in scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Where the word starts.
    pub pos: Pos,
    /// Literal text and variable references, in order.
    pub parts: Vec<Part>,
}

/// A piece of a [`Word`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Lit(String),
    /// `$name` / `${name}` / `${name:-word}` / `${name:+word}` / `${name-word}` /
    /// `${name+word}` / `${name:?msg}` / `${name?msg}`
    Var {
        /// The variable name.
        name: String,
        /// What to do with its value.
        op: VarOp,
    },
}

/// How a variable reference uses the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarOp {
    /// `$name` or `${name}`: the value, or nothing if unset.
    Plain,
    /// `${name:-word}` (`if_empty`) or `${name-word}`: `word` if unset (or empty).
    Default {
        /// The replacement.
        word: Word,
        /// Whether an empty value counts as unset (the `:` forms).
        if_empty: bool,
    },
    /// `${name:+word}` (`if_empty`) or `${name+word}`: `word` if set (and not empty),
    /// else nothing.
    Alternate {
        /// The replacement.
        word: Word,
        /// Whether an empty value counts as unset (the `:` forms).
        if_empty: bool,
    },
    /// `${name:?message}` (`if_empty`) or `${name?message}`: an error if unset (or empty).
    Required {
        /// The error message.
        message: Word,
        /// Whether an empty value counts as unset (the `:` forms).
        if_empty: bool,
    },
}

impl Word {
    /// Expands variables with `lookup`; unset plain variables expand to "" (as Docker does).
    /// Errors (e.g. `${X:?must be set}` with X unset) name the word's position.
    ///
    /// # Errors
    /// A [`VarOp::Required`] variable that is unset (or empty, for `:?`).
    pub fn expand(
        &self,
        file: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, RecipeError> {
        let mut out = String::new();
        for part in &self.parts {
            let (name, op) = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Var { name, op } => (name, op),
            };
            let value = lookup(name);
            let is_set =
                |if_empty: bool| value.as_ref().is_some_and(|v| !(if_empty && v.is_empty()));
            match op {
                VarOp::Plain => out.push_str(value.as_deref().unwrap_or("")),
                VarOp::Default { word, if_empty } => {
                    if is_set(*if_empty) {
                        out.push_str(value.as_deref().unwrap_or(""));
                    } else {
                        out.push_str(&word.expand(file, lookup)?);
                    }
                }
                VarOp::Alternate { word, if_empty } => {
                    if is_set(*if_empty) {
                        out.push_str(&word.expand(file, lookup)?);
                    }
                }
                VarOp::Required { message, if_empty } => {
                    if is_set(*if_empty) {
                        out.push_str(value.as_deref().unwrap_or(""));
                    } else {
                        let message = message.expand(file, lookup)?;
                        let message = match (message.is_empty(), if_empty) {
                            (false, _) => format!("{name}: {message}"),
                            (true, true) => format!("{name}: variable is not set or empty"),
                            (true, false) => format!("{name}: variable is not set"),
                        };
                        return Err(RecipeError {
                            file: file.to_owned(),
                            pos: self.pos,
                            message,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The literal text when the word has no variables.
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var { .. } => return None,
            }
        }
        Some(out)
    }
}

/// Shows the word with quotes resolved and variables as `${...}`, for messages.
impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(s) => f.write_str(s)?,
                Part::Var { name, op } => match op {
                    VarOp::Plain => write!(f, "${{{name}}}")?,
                    VarOp::Default { word, if_empty } => {
                        write!(f, "${{{name}{}-{word}}}", colon(*if_empty))?;
                    }
                    VarOp::Alternate { word, if_empty } => {
                        write!(f, "${{{name}{}+{word}}}", colon(*if_empty))?;
                    }
                    VarOp::Required { message, if_empty } => {
                        write!(f, "${{{name}{}?{message}}}", colon(*if_empty))?;
                    }
                },
            }
        }
        Ok(())
    }
}

fn colon(if_empty: bool) -> &'static str {
    if if_empty { ":" } else { "" }
}

/// The builder of a [`Word`]'s parts, merging adjacent literals.
#[derive(Default)]
struct Parts(Vec<Part>);

impl Parts {
    fn lit(&mut self, c: char) {
        if let Some(Part::Lit(s)) = self.0.last_mut() {
            s.push(c);
        } else {
            self.0.push(Part::Lit(c.to_string()));
        }
    }
}

struct WordParser<'a> {
    parser: &'a Parser<'a>,
    src: &'a [Ch],
    i: usize,
    /// Whether quotes are syntax (recipe words) or literal (JSON elements).
    quotes: bool,
    depth: usize,
}

impl WordParser<'_> {
    fn bump(&mut self) -> Option<Ch> {
        let ch = self.src.get(self.i).copied();
        self.i += usize::from(ch.is_some());
        ch
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.i).map(|c| c.c)
    }

    /// Parses up to the end, or when `open` (the position of a `${`) is given, up to the
    /// `}` closing it.
    fn parts(&mut self, open: Option<Pos>) -> Result<Vec<Part>, RecipeError> {
        let escape = self.parser.escape;
        let mut parts = Parts::default();
        while let Some(ch) = self.bump() {
            match ch.c {
                '}' if open.is_some() => return Ok(parts.0),
                c if c == escape => {
                    if self.quotes {
                        // An escape at the very end escapes nothing and is dropped.
                        if let Some(next) = self.bump() {
                            parts.lit(next.c);
                        }
                    } else {
                        match self.peek() {
                            Some(next) if next == '$' || (next == '}' && open.is_some()) => {
                                self.i += 1;
                                parts.lit(next);
                            }
                            _ => parts.lit(c),
                        }
                    }
                }
                '\'' if self.quotes => loop {
                    match self.bump() {
                        None => return Err(self.parser.err(ch.pos, "unterminated single quote")),
                        Some(Ch { c: '\'', .. }) => break,
                        Some(next) => parts.lit(next.c),
                    }
                },
                '"' if self.quotes => self.double(ch.pos, &mut parts)?,
                '$' => self.dollar(ch.pos, &mut parts)?,
                c => parts.lit(c),
            }
        }
        match open {
            Some(pos) => Err(self.parser.err(pos, "unterminated '${': expected '}'")),
            None => Ok(parts.0),
        }
    }

    /// The rest of a double-quoted string: the escape character escapes only `"`, `$` and
    /// itself; variables are expanded.
    fn double(&mut self, open: Pos, parts: &mut Parts) -> Result<(), RecipeError> {
        let escape = self.parser.escape;
        loop {
            let Some(ch) = self.bump() else {
                return Err(self.parser.err(open, "unterminated double quote"));
            };
            match ch.c {
                '"' => return Ok(()),
                '$' => self.dollar(ch.pos, parts)?,
                c if c == escape => match self.peek() {
                    Some(next) if next == '"' || next == '$' || next == escape => {
                        self.i += 1;
                        parts.lit(next);
                    }
                    _ => parts.lit(c),
                },
                c => parts.lit(c),
            }
        }
    }

    /// After a `$` at `open`.
    fn dollar(&mut self, open: Pos, parts: &mut Parts) -> Result<(), RecipeError> {
        match self.peek() {
            Some('{') => {
                self.i += 1;
                self.braced(open, parts)
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name = self.name();
                parts.0.push(Part::Var {
                    name,
                    op: VarOp::Plain,
                });
                Ok(())
            }
            _ => {
                parts.lit('$');
                Ok(())
            }
        }
    }

    /// After a `${` at `open`.
    fn braced(&mut self, open: Pos, parts: &mut Parts) -> Result<(), RecipeError> {
        let err = |pos, message: &str| self.parser.err(pos, message);
        const UNTERMINATED: &str = "unterminated '${': expected '}'";
        let name = self.name();
        if name.is_empty() {
            return Err(match self.bump() {
                None => err(open, UNTERMINATED),
                Some(ch) => err(
                    ch.pos,
                    &format!("invalid variable name in '${{': unexpected '{}'", ch.c),
                ),
            });
        }
        let unsupported = |ch: Ch, op: &str| {
            err(
                ch.pos,
                &format!(
                    "unsupported '{op}' in '${{{name}...}}': expected '}}' or one of :-, -, :+, +, \
                     :?, ? (as in ${{{name}:-default}})"
                ),
            )
        };
        let (op, if_empty) = match self.bump() {
            None => return Err(err(open, UNTERMINATED)),
            Some(Ch { c: '}', .. }) => {
                parts.0.push(Part::Var {
                    name,
                    op: VarOp::Plain,
                });
                return Ok(());
            }
            Some(colon @ Ch { c: ':', .. }) => match self.bump() {
                Some(Ch {
                    c: op @ ('-' | '+' | '?'),
                    ..
                }) => (op, true),
                Some(other) => return Err(unsupported(other, &format!(":{}", other.c))),
                None => return Err(unsupported(colon, ":")),
            },
            Some(Ch {
                c: op @ ('-' | '+' | '?'),
                ..
            }) => (op, false),
            Some(other) => return Err(unsupported(other, &other.c.to_string())),
        };
        if self.depth >= MAX_DEPTH {
            return Err(err(open, "variable substitutions are nested too deeply"));
        }
        let pos = self.src.get(self.i).map_or(open, |c| c.pos);
        self.depth += 1;
        let inner = self.parts(Some(open))?;
        self.depth -= 1;
        let word = Word { pos, parts: inner };
        let op = match op {
            '-' => VarOp::Default { word, if_empty },
            '+' => VarOp::Alternate { word, if_empty },
            _ => VarOp::Required {
                message: word,
                if_empty,
            },
        };
        parts.0.push(Part::Var { name, op });
        Ok(())
    }

    /// Reads `[A-Za-z_][A-Za-z0-9_]*`, possibly empty.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            let ok =
                c == '_' || c.is_ascii_alphabetic() || (!name.is_empty() && c.is_ascii_digit());
            if !ok {
                break;
            }
            name.push(c);
            self.i += 1;
        }
        name
    }
}

impl Parser<'_> {
    /// Splits arguments into words and resolves each.
    pub(super) fn words(&self, args: &[Ch]) -> Result<Vec<Word>, RecipeError> {
        self.split_words(args)?
            .into_iter()
            .map(|w| self.word(w, START))
            .collect()
    }

    /// Splits at whitespace outside quotes and `${...}` and not escaped.
    pub(super) fn split_words<'s>(&self, mut src: &'s [Ch]) -> Result<Vec<&'s [Ch]>, RecipeError> {
        let mut words = Vec::new();
        loop {
            src = trim(src);
            if src.is_empty() {
                return Ok(words);
            }
            let len = self.word_len(src)?;
            let (word, tail) = src.split_at(len);
            words.push(word);
            src = tail;
        }
    }

    /// The length of the first word of `src`.
    pub(super) fn word_len(&self, src: &[Ch]) -> Result<usize, RecipeError> {
        Ok(self.find_top(src, ' ')?.unwrap_or(src.len()))
    }

    /// The index of the first `target` outside quotes and `${...}` and not escaped. A
    /// `target` of `' '` finds any whitespace.
    pub(super) fn find_top(&self, src: &[Ch], target: char) -> Result<Option<usize>, RecipeError> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Single,
            Double,
            Brace,
        }
        let hit = |c: char| {
            if target == ' ' {
                c.is_whitespace()
            } else {
                c == target
            }
        };
        let mut stack: Vec<(State, Pos)> = Vec::new();
        let mut i = 0;
        while let Some(&Ch { c, pos }) = src.get(i) {
            let brace_next = src.get(i + 1).is_some_and(|n| n.c == '{');
            match stack.last().map(|s| s.0) {
                Some(State::Single) => {
                    if c == '\'' {
                        stack.pop();
                    }
                }
                Some(State::Double) => {
                    if c == self.escape {
                        i += 1;
                    } else if c == '"' {
                        stack.pop();
                    } else if c == '$' && brace_next {
                        stack.push((State::Brace, pos));
                        i += 1;
                    }
                }
                state => {
                    if state.is_none() && hit(c) {
                        return Ok(Some(i));
                    }
                    if c == self.escape {
                        i += 1;
                    } else if c == '\'' {
                        stack.push((State::Single, pos));
                    } else if c == '"' {
                        stack.push((State::Double, pos));
                    } else if c == '$' && brace_next {
                        stack.push((State::Brace, pos));
                        i += 1;
                    } else if c == '}' && state.is_some() {
                        stack.pop();
                    }
                }
            }
            i += 1;
        }
        match stack.last() {
            None => Ok(None),
            Some((State::Single, pos)) => Err(self.err(*pos, "unterminated single quote")),
            Some((State::Double, pos)) => Err(self.err(*pos, "unterminated double quote")),
            Some((State::Brace, pos)) => Err(self.err(*pos, "unterminated '${': expected '}'")),
        }
    }

    /// Resolves a word written in a recipe: quotes, escapes and variables. Whitespace in
    /// it is literal. `fallback` is the position of an empty word.
    pub(super) fn word(&self, src: &[Ch], fallback: Pos) -> Result<Word, RecipeError> {
        let mut parser = WordParser {
            parser: self,
            src,
            i: 0,
            quotes: true,
            depth: 0,
        };
        Ok(Word {
            pos: start(src, fallback),
            parts: parser.parts(None)?,
        })
    }

    /// Resolves an element of a JSON array: variables only, no quotes; the escape character
    /// only escapes `$` (and `}` inside `${...}`).
    pub(super) fn json_word(&self, s: &str, pos: Pos) -> Result<Word, RecipeError> {
        let src: Vec<Ch> = s.chars().map(|c| Ch { c, pos }).collect();
        let mut parser = WordParser {
            parser: self,
            src: &src,
            i: 0,
            quotes: false,
            depth: 0,
        };
        Ok(Word {
            pos,
            parts: parser.parts(None)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::recipe::test_support::{
        FILE, env_err, env_word, expand, lit, lit_word, one_err, pos,
    };

    #[test]
    fn quotes_and_escapes() {
        let cases = [
            ("plain", "plain"),
            ("\"a b\"", "a b"),
            ("'a b'", "a b"),
            ("'$HOME'", "$HOME"),
            ("\\$HOME", "$HOME"),
            ("a\\ b", "a b"),
            ("\\\"", "\""),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\\\b\"", "a\\b"),
            ("\"a\\$b\"", "a$b"),
            ("\"a\\nb\"", "a\\nb"),
            ("'a\\'", "a\\"),
            ("\"\"", ""),
            ("''", ""),
            ("a\"b c\"'d e'f", "ab cd ef"),
            ("\"it's\"", "it's"),
            ("'say \"hi\"'", "say \"hi\""),
            ("$", "$"),
            ("a$", "a$"),
            ("$1", "$1"),
            ("$-x", "$-x"),
            ("\"$\"", "$"),
            ("x=y", "x=y"),
            ("é\\€", "é€"),
        ];
        for (written, expected) in cases {
            let word = env_word(written);
            assert_eq!(word.literal().as_deref(), Some(expected), "{written}");
            assert_eq!(word.pos, pos(2, 7), "{written}");
        }
    }

    #[test]
    fn quote_errors() {
        assert_eq!(
            env_err("\"abc"),
            "Capsulefile:2:7: unterminated double quote"
        );
        assert_eq!(
            env_err("ab'c"),
            "Capsulefile:2:9: unterminated single quote"
        );
        assert_eq!(
            env_err("a${B"),
            "Capsulefile:2:8: unterminated '${': expected '}'"
        );
        assert_eq!(
            env_err("\"${B:-x\""),
            "Capsulefile:2:14: unterminated double quote"
        );
        assert_eq!(
            one_err("COPY \"a b /c"),
            "Capsulefile:2:6: unterminated double quote"
        );
        assert_eq!(
            one_err("WORKDIR '/a"),
            "Capsulefile:2:9: unterminated single quote"
        );
    }

    #[test]
    fn variables() {
        let var = |name: &str, op: VarOp| Part::Var {
            name: name.to_owned(),
            op,
        };
        let w = env_word("$A/${B}x$_c1-");
        assert_eq!(
            w.parts,
            vec![
                var("A", VarOp::Plain),
                Part::Lit("/".to_owned()),
                var("B", VarOp::Plain),
                Part::Lit("x".to_owned()),
                var("_c1", VarOp::Plain),
                Part::Lit("-".to_owned()),
            ]
        );
        assert_eq!(w.literal(), None);
        let w = env_word("${A:-d f}");
        assert_eq!(
            w.parts,
            vec![var(
                "A",
                VarOp::Default {
                    word: lit_word(2, 12, "d f"),
                    if_empty: true
                }
            )]
        );
        let ops = [
            ("${A-w}", "-", false),
            ("${A:+w}", "+", true),
            ("${A+w}", "+", false),
            ("${A:?w}", "?", true),
            ("${A?w}", "?", false),
        ];
        for (written, op, if_empty) in ops {
            let Part::Var { op: got, .. } = &env_word(written).parts[0] else {
                panic!("{written}");
            };
            let (word, got_empty) = match (op, got) {
                ("-", VarOp::Default { word, if_empty }) => (word, if_empty),
                ("+", VarOp::Alternate { word, if_empty }) => (word, if_empty),
                ("?", VarOp::Required { message, if_empty }) => (message, if_empty),
                _ => panic!("{written}: {got:?}"),
            };
            assert_eq!(lit(word), "w", "{written}");
            assert_eq!(*got_empty, if_empty, "{written}");
        }
        // Variables in double quotes are variables; in single quotes, text.
        assert_eq!(env_word("\"$A\"").literal(), None);
        assert_eq!(env_word("'${A}'").literal().as_deref(), Some("${A}"));
    }

    #[test]
    fn variable_expansion() {
        let vars = [("SET", "v"), ("EMPTY", ""), ("SP", "a b")];
        let cases = [
            ("$SET", "v"),
            ("${SET}x", "vx"),
            ("$UNSET", ""),
            ("a${UNSET}b", "ab"),
            ("${SET:-d}", "v"),
            ("${EMPTY:-d}", "d"),
            ("${UNSET:-d}", "d"),
            ("${SET-d}", "v"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${SET:+a}", "a"),
            ("${EMPTY:+a}", ""),
            ("${UNSET:+a}", ""),
            ("${SET+a}", "a"),
            ("${EMPTY+a}", "a"),
            ("${UNSET+a}", ""),
            ("${SET:?m}", "v"),
            ("${EMPTY?m}", ""),
            ("${UNSET:-${SET}-x}", "v-x"),
            ("${UNSET:-${ALSO:-deep}}", "deep"),
            ("${UNSET:-\"q } \"}", "q } "),
            ("${UNSET:-a\\}b}", "a}b"),
            ("${UNSET:-'$SET'}", "$SET"),
            ("\"$SP\"", "a b"),
            ("$SET$SET", "vv"),
            ("$SET-1", "v-1"),
            ("${SET}1", "v1"),
            ("\\${SET}", "${SET}"),
        ];
        for (written, expected) in cases {
            let word = env_word(written);
            assert_eq!(
                expand(&word, &vars).expect("expands").as_str(),
                expected,
                "{written}"
            );
        }
        // A literal word expands to itself.
        assert_eq!(expand(&env_word("abc"), &[]).expect("expands"), "abc");
    }

    #[test]
    fn required_variables() {
        let vars = [("EMPTY", "")];
        let cases = [
            ("${X:?must be set}", "X: must be set"),
            ("${X?must be set}", "X: must be set"),
            ("${EMPTY:?\"needed\"}", "EMPTY: needed"),
            ("${X:?}", "X: variable is not set or empty"),
            ("${X?}", "X: variable is not set"),
            ("a${X:?set X to $EMPTY-something}", "X: set X to -something"),
        ];
        for (written, message) in cases {
            let word = env_word(written);
            let e = expand(&word, &vars).expect_err(written);
            assert_eq!(e.to_string(), format!("Capsulefile:2:7: {message}"));
            assert_eq!(e.pos, pos(2, 7));
            assert_eq!(e.file, FILE);
        }
    }

    #[test]
    fn variable_errors() {
        assert_eq!(
            env_err("${1}"),
            "Capsulefile:2:9: invalid variable name in '${': unexpected '1'"
        );
        assert_eq!(
            env_err("${}"),
            "Capsulefile:2:9: invalid variable name in '${': unexpected '}'"
        );
        assert_eq!(
            env_err("${A%.txt}"),
            "Capsulefile:2:10: unsupported '%' in '${A...}': expected '}' or one of :-, -, \
             :+, +, :?, ? (as in ${A:-default})"
        );
        assert!(env_err("${A:1}").starts_with("Capsulefile:2:11: unsupported ':1' in '${A...}'"));
        assert!(env_err("${A/x/y}").starts_with("Capsulefile:2:10: unsupported '/'"));
        assert!(env_err("${A#x}").starts_with("Capsulefile:2:10: unsupported '#'"));
        let deep = format!("{}x{}", "${A:-".repeat(40), "}".repeat(40));
        assert_eq!(
            env_err(&deep),
            "Capsulefile:2:167: variable substitutions are nested too deeply"
        );
    }

    #[test]
    fn word_display() {
        assert_eq!(
            env_word("a$B${C:-d}${E+f}${G?h}'$'").to_string(),
            "a${B}${C:-d}${E+f}${G?h}$"
        );
    }
}
