//! The JSON (exec) form: a strict scanner for a JSON array of strings.

use super::lines::{Ch, starts_with};
use super::words::Word;
use super::{MAX_DEPTH, Parser, Pos, RecipeError, START};

/// How JSON arguments failed to parse.
pub(super) enum JsonError {
    /// Not a JSON array: shell form, for the instructions that allow it.
    Invalid,
    /// A JSON array with something other than strings, at this position.
    NotStrings(Pos),
}

/// Parses a JSON array of strings, giving each string with its position.
pub(super) fn json_array(src: &[Ch]) -> Result<Vec<(Pos, String)>, JsonError> {
    let mut json = Json { src, i: 0 };
    json.ws();
    if !json.eat('[') {
        return Err(JsonError::Invalid);
    }
    let mut items = Vec::new();
    let mut not_string = None;
    json.ws();
    if !json.eat(']') {
        loop {
            json.ws();
            let pos = json.src.get(json.i).map(|c| c.pos);
            if json.peek() == Some('"') {
                items.push((pos.unwrap_or(START), json.string()?));
            } else {
                json.value(0)?;
                not_string = not_string.or(pos);
            }
            json.ws();
            if json.eat(']') {
                break;
            }
            if !json.eat(',') {
                return Err(JsonError::Invalid);
            }
        }
    }
    json.ws();
    if json.i < src.len() {
        return Err(JsonError::Invalid);
    }
    match not_string {
        Some(pos) => Err(JsonError::NotStrings(pos)),
        None => Ok(items),
    }
}

/// A strict JSON reader over a logical line.
struct Json<'a> {
    src: &'a [Ch],
    i: usize,
}

impl Json<'_> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.i).map(|c| c.c)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        self.i += usize::from(c.is_some());
        c
    }

    fn eat(&mut self, c: char) -> bool {
        let ok = self.peek() == Some(c);
        self.i += usize::from(ok);
        ok
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.i += 1;
        }
    }

    /// Checks any JSON value without keeping it.
    fn value(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::Invalid);
        }
        match self.peek() {
            Some('"') => self.string().map(drop),
            Some('[') => self.sequence(']', depth, |json, depth| json.value(depth)),
            Some('{') => self.sequence('}', depth, |json, depth| {
                json.string()?;
                json.ws();
                if !json.eat(':') {
                    return Err(JsonError::Invalid);
                }
                json.ws();
                json.value(depth)
            }),
            Some('t') => self.keyword("true"),
            Some('f') => self.keyword("false"),
            Some('n') => self.keyword("null"),
            Some('-' | '0'..='9') => self.number(),
            _ => Err(JsonError::Invalid),
        }
    }

    /// `[...]` or `{...}` after its opening bracket, with `item` for each element.
    fn sequence(
        &mut self,
        close: char,
        depth: usize,
        item: impl Fn(&mut Self, usize) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.i += 1;
        self.ws();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            self.ws();
            item(self, depth + 1)?;
            self.ws();
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(',') {
                return Err(JsonError::Invalid);
            }
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), JsonError> {
        for c in word.chars() {
            if !self.eat(c) {
                return Err(JsonError::Invalid);
            }
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let digits = |json: &mut Self| {
            let start = json.i;
            while json.peek().is_some_and(|c| c.is_ascii_digit()) {
                json.i += 1;
            }
            if json.i == start {
                Err(JsonError::Invalid)
            } else {
                Ok(())
            }
        };
        self.eat('-');
        if !self.eat('0') {
            digits(self)?;
        }
        if self.eat('.') {
            digits(self)?;
        }
        if self.eat('e') || self.eat('E') {
            if !self.eat('+') {
                self.eat('-');
            }
            digits(self)?;
        }
        Ok(())
    }

    /// A string, with its escapes resolved. Invalid surrogates become U+FFFD, as in Go.
    fn string(&mut self) -> Result<String, JsonError> {
        if !self.eat('"') {
            return Err(JsonError::Invalid);
        }
        let mut out = String::new();
        loop {
            match self.bump().ok_or(JsonError::Invalid)? {
                '"' => return Ok(out),
                '\\' => match self.bump().ok_or(JsonError::Invalid)? {
                    c @ ('"' | '\\' | '/') => out.push(c),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let unit = self.hex4()?;
                        out.push(self.code_point(unit));
                    }
                    _ => return Err(JsonError::Invalid),
                },
                c if c < ' ' => return Err(JsonError::Invalid),
                c => out.push(c),
            }
        }
    }

    /// Completes a `\uXXXX` escape, reading the low half of a surrogate pair if it follows.
    fn code_point(&mut self, unit: u32) -> char {
        if (0xD800..0xDC00).contains(&unit) {
            let save = self.i;
            if self.eat('\\')
                && self.eat('u')
                && let Ok(low @ 0xDC00..0xE000) = self.hex4()
            {
                let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(c).unwrap_or('\u{fffd}');
            }
            self.i = save;
        }
        char::from_u32(unit).unwrap_or('\u{fffd}')
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = self
                .bump()
                .and_then(|c| c.to_digit(16))
                .ok_or(JsonError::Invalid)?;
            value = value * 16 + digit;
        }
        Ok(value)
    }
}

impl Parser<'_> {
    pub(super) fn not_strings(&self, upper: &str, pos: Pos) -> RecipeError {
        self.err(
            pos,
            format!("{upper}: a JSON array must contain only strings"),
        )
    }

    /// The arguments as JSON words, if they are a JSON array; `None` for shell form.
    pub(super) fn json_words(
        &self,
        upper: &str,
        args: &[Ch],
    ) -> Result<Option<Vec<Word>>, RecipeError> {
        if !starts_with(args, "[") {
            return Ok(None);
        }
        match json_array(args) {
            Ok(items) => items
                .iter()
                .map(|(pos, s)| self.json_word(s, *pos))
                .collect::<Result<_, _>>()
                .map(Some),
            Err(JsonError::NotStrings(pos)) => Err(self.not_strings(upper, pos)),
            Err(JsonError::Invalid) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::builder::recipe::test_support::{kind, one_err};
    use crate::builder::recipe::{Command, Kind};

    #[test]
    fn malformed_json_is_shell_form() {
        for args in [
            "[ -f /x ] && echo yes",
            "[\"a\" \"b\"]",
            "[\"a\",]",
            "['a']",
            "[\"a\"] && more",
            "[\"\\x\"]",
            "[\"a\tb\"]",
            "[\"unterminated]",
            "[",
            "[1,",
            "[01]",
        ] {
            assert_eq!(
                kind(&format!("RUN {args}")),
                Kind::Run(Command::Shell(args.to_owned()), vec![]),
                "{args}"
            );
            assert_eq!(
                kind(&format!("CMD {args}")),
                Kind::Cmd(Command::Shell(args.to_owned())),
                "{args}"
            );
        }
    }

    #[test]
    fn json_arrays_of_non_strings() {
        assert_eq!(
            one_err("CMD [\"a\", 1]"),
            "Capsulefile:2:11: CMD: a JSON array must contain only strings"
        );
        for value in [
            "1.5e3",
            "-0",
            "true",
            "false",
            "null",
            "[\"x\", []]",
            "{\"k\": [1]}",
            "{}",
        ] {
            assert!(
                one_err(&format!("RUN [{value}]"))
                    .ends_with("RUN: a JSON array must contain only strings"),
                "{value}"
            );
        }
        assert_eq!(
            one_err("COPY [\"a\", {}]"),
            "Capsulefile:2:12: COPY: a JSON array must contain only strings"
        );
        assert_eq!(
            one_err("VOLUME [null]"),
            "Capsulefile:2:9: VOLUME: a JSON array must contain only strings"
        );
        assert_eq!(
            one_err("SHELL [\"sh\", false]"),
            "Capsulefile:2:14: SHELL: a JSON array must contain only strings"
        );
        // Deep nesting is refused, not overflowed.
        let deep = format!("RUN [{}]", "[".repeat(10_000));
        assert_eq!(
            kind(&deep),
            Kind::Run(Command::Shell(deep[4..].to_owned()), vec![])
        );
    }
}
