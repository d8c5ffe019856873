//! Logical lines: continuations joined, comments and blank lines dropped, each char kept
//! with its position in the file.

use super::{Parser, Pos, RecipeError};

/// A char of a logical line, with its position in the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ch {
    pub(super) c: char,
    pub(super) pos: Pos,
}

fn is_blank(line: &[char]) -> bool {
    line.iter().all(|c| c.is_whitespace())
}

fn is_comment(line: &[char]) -> bool {
    line.iter().find(|c| !c.is_whitespace()) == Some(&'#')
}

pub(super) fn trim(src: &[Ch]) -> &[Ch] {
    let start = src
        .iter()
        .position(|c| !c.c.is_whitespace())
        .unwrap_or(src.len());
    let end = src
        .iter()
        .rposition(|c| !c.c.is_whitespace())
        .map_or(start, |k| k + 1);
    src.get(start..end).unwrap_or_default()
}

pub(super) fn starts_with(src: &[Ch], prefix: &str) -> bool {
    let mut src = src.iter();
    prefix.chars().all(|p| src.next().is_some_and(|c| c.c == p))
}

pub(super) fn string_of(src: &[Ch]) -> String {
    src.iter().map(|c| c.c).collect()
}

/// The position of the first char of `src`, or `fallback` when it is empty.
pub(super) fn start(src: &[Ch], fallback: Pos) -> Pos {
    src.first().map_or(fallback, |c| c.pos)
}

/// The position just after the last char of `line`: where a missing argument would be.
pub(super) fn end_pos(line: &[Ch], fallback: Pos) -> Pos {
    line.last().map_or(fallback, after)
}

/// The position just after `ch`.
pub(super) fn after(ch: &Ch) -> Pos {
    Pos {
        line: ch.pos.line,
        col: ch.pos.col + 1,
    }
}

/// The text of arguments with runs of whitespace outside quotes collapsed to one space.
pub(super) fn collapse(src: &[Ch], escape: char) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut escaped = false;
    let mut space = false;
    for &Ch { c, .. } in src {
        if quote.is_none() && !escaped && c.is_whitespace() {
            space = true;
            continue;
        }
        if std::mem::take(&mut space) {
            out.push(' ');
        }
        out.push(c);
        if escaped {
            escaped = false;
        } else if c == escape && quote != Some('\'') {
            escaped = true;
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        }
    }
    out
}

impl Parser<'_> {
    /// Joins continuation lines and drops comments and blank lines: one entry per
    /// instruction, trimmed and non-empty.
    pub(super) fn logical_lines(&self, lines: &[Vec<char>]) -> Result<Vec<Vec<Ch>>, RecipeError> {
        let mut out = Vec::new();
        let mut rest = lines.iter().enumerate();
        while let Some((index, line)) = rest.next() {
            if is_blank(line) || is_comment(line) {
                continue;
            }
            let mut joined = Vec::new();
            let mut continued = self.push_line(&mut joined, line, index + 1);
            while let Some(escape_pos) = continued {
                let Some((index, line)) = rest.next() else {
                    return Err(self.err(
                        escape_pos,
                        "unexpected end of file after a line continuation",
                    ));
                };
                if is_blank(line) || is_comment(line) {
                    continue;
                }
                continued = self.push_line(&mut joined, line, index + 1);
            }
            let joined = trim(&joined);
            if !joined.is_empty() {
                out.push(joined.to_vec());
            }
        }
        Ok(out)
    }

    /// Appends a physical line without its continuation escape; returns the escape's
    /// position if the line continues. As in BuildKit, the escape character must be the last
    /// one other than spaces and tabs, and not itself escaped.
    fn push_line(&self, joined: &mut Vec<Ch>, line: &[char], number: usize) -> Option<Pos> {
        let last = line.iter().rposition(|&c| c != ' ' && c != '\t');
        let continued =
            last.filter(|&k| line[k] == self.escape && (k == 0 || line[k - 1] != self.escape));
        let len = continued.unwrap_or(line.len());
        joined.extend(line[..len].iter().enumerate().map(|(k, &c)| Ch {
            c,
            pos: Pos {
                line: number,
                col: k + 1,
            },
        }));
        continued.map(|k| Pos {
            line: number,
            col: k + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::builder::recipe::test_support::{err, kind, lit, lits, ok, one, one_err, pos};
    use crate::builder::recipe::{Command, Kind};

    #[test]
    fn comments_and_blank_lines() {
        let r = ok("\n# c1\n  # c2\nFROM scratch\n\n\t\n# c3\nRUN x # not a comment\n");
        assert_eq!(r.instructions.len(), 2);
        assert_eq!(r.instructions[1].pos, pos(8, 1));
        assert_eq!(
            r.instructions[1].kind,
            Kind::Run(Command::Shell("x # not a comment".to_owned()), vec![])
        );
    }

    #[test]
    fn continuations() {
        let r =
            ok("FROM scratch\nRUN apt-get update && \\\n    apt-get install -y \\\n      curl\n");
        let i = &r.instructions[1];
        assert_eq!(i.pos, pos(2, 1));
        assert_eq!(
            i.kind,
            Kind::Run(
                Command::Shell("apt-get update &&     apt-get install -y       curl".to_owned()),
                vec![]
            )
        );
        assert_eq!(i.text, "RUN apt-get update && apt-get install -y curl");
        // The escape joins directly, and may be followed by spaces and tabs.
        assert_eq!(
            kind("RUN ab\\ \t\ncd"),
            Kind::Run(Command::Shell("abcd".to_owned()), vec![])
        );
        // Comment and blank lines inside an instruction are dropped.
        let i = one("RUN a \\\n# comment\n   # indented comment\n\n   \\\n b");
        assert_eq!(
            i.kind,
            Kind::Run(Command::Shell("a     b".to_owned()), vec![])
        );
        assert_eq!(i.text, "RUN a b");
        // An escaped escape at the end does not continue the line.
        let r = ok("FROM scratch\nRUN echo \\\\\nRUN two\n");
        assert_eq!(r.instructions.len(), 3);
        assert_eq!(
            r.instructions[1].kind,
            Kind::Run(Command::Shell("echo \\\\".to_owned()), vec![])
        );
        // A line of only the escape joins too.
        let r = ok("FROM scratch\n\\\nRUN x\n");
        assert_eq!(r.instructions[1].text, "RUN x");
        // The next instruction starts after the joined lines.
        let r = ok("FROM scratch\nENV A=1 \\\n  B=2\nRUN x\n");
        assert_eq!(r.instructions[2].pos, pos(4, 1));
    }

    #[test]
    fn positions_through_continuations() {
        // The error is reported where the bad flag is, on the third line.
        assert_eq!(
            one_err("COPY \\\n  --chmod=644 \\\n    --frm=x a b"),
            "Capsulefile:4:5: unknown flag '--frm' for COPY: expected one of --from, \
             --chmod, --chown, --link"
        );
        match kind("COPY a \\\n\n# c\n     b") {
            Kind::Copy(c) => {
                assert_eq!(c.sources[0].pos, pos(2, 6));
                assert_eq!(c.dest.pos, pos(5, 6));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            one_err("ENV A=\"x \\\n  y"),
            "Capsulefile:2:7: unterminated double quote"
        );
    }

    #[test]
    fn continuation_at_end_of_file() {
        let message = "unexpected end of file after a line continuation";
        assert_eq!(
            err("FROM scratch\nRUN a \\"),
            format!("Capsulefile:2:7: {message}")
        );
        assert_eq!(
            err("FROM scratch\nRUN a \\\n\n# comment\n   \n"),
            format!("Capsulefile:2:7: {message}")
        );
        assert_eq!(
            err("FROM scratch\nRUN a \\\n  b \\  \n"),
            format!("Capsulefile:3:5: {message}")
        );
    }

    #[test]
    fn backtick_escape_and_windows_paths() {
        let r = ok("\
# escape=`

FROM mcr.microsoft.com/windows/servercore
COPY testfile.txt c:\\
RUN dir c:\\ `
    && echo `\"done`\"
ENV P=C:\\Program` Files\\app
");
        assert_eq!(r.escape, '`');
        let copy = match &r.instructions[1].kind {
            Kind::Copy(c) => c.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(lits(&copy.sources), ["testfile.txt"]);
        assert_eq!(lit(&copy.dest), "c:\\");
        assert_eq!(r.instructions[2].pos, pos(5, 1));
        assert_eq!(
            r.instructions[2].kind,
            Kind::Run(
                Command::Shell("dir c:\\     && echo `\"done`\"".to_owned()),
                vec![]
            )
        );
        assert_eq!(r.instructions[2].text, "RUN dir c:\\ && echo `\"done`\"");
        match &r.instructions[3].kind {
            Kind::Env(pairs) => {
                assert_eq!(pairs[0].0, "P");
                assert_eq!(lit(&pairs[0].1), "C:\\Program Files\\app");
            }
            other => panic!("{other:?}"),
        }
        // With the default escape, the same recipe continues lines by mistake, as in Docker.
        assert_eq!(
            err("FROM x\nCOPY testfile.txt c:\\\nRUN dir c:\\\n"),
            "Capsulefile:3:11: unexpected end of file after a line continuation"
        );
    }

    #[test]
    fn line_endings_and_bom() {
        let r = ok("\u{feff}# escape=`\r\nFROM scratch\r\nRUN a `\r\n  b\r\n");
        assert_eq!(r.escape, '`');
        assert_eq!(r.instructions[0].pos, pos(2, 1));
        assert_eq!(
            r.instructions[1].kind,
            Kind::Run(Command::Shell("a   b".to_owned()), vec![])
        );
        let r = ok("\u{feff}FROM scratch");
        assert_eq!(r.instructions[0].pos, pos(1, 1));
    }
}
