//! Parser directives: the `# escape=` and `# syntax=` lines at the top of a recipe.

use super::{Pos, RecipeError};

/// The parser directives at the top of a recipe.
pub(super) struct Directives {
    pub(super) escape: char,
    pub(super) syntax: Option<String>,
}

/// Reads the parser directives: `# name=value` lines before anything else. An unknown
/// directive, like any other line, ends them.
pub(super) fn directives(file: &str, lines: &[Vec<char>]) -> Result<Directives, RecipeError> {
    let err = |pos, message: String| RecipeError {
        file: file.to_owned(),
        pos,
        message,
    };
    let mut escape = None;
    let mut syntax = None;
    let mut check = false;
    for (index, line) in lines.iter().enumerate() {
        // A shebang on the first line is allowed before the directives.
        if index == 0 && line.starts_with(&['#', '!']) {
            continue;
        }
        let Some((name, value, value_col)) = directive(line) else {
            break;
        };
        let at = |col| Pos {
            line: index + 1,
            col,
        };
        let duplicate = match name.as_str() {
            "escape" => escape.is_some(),
            "syntax" => syntax.is_some(),
            "check" => check,
            _ => break,
        };
        if duplicate {
            let hash = line.iter().position(|&c| c == '#').unwrap_or(0);
            return Err(err(
                at(hash + 1),
                format!("only one '{name}' parser directive is allowed"),
            ));
        }
        match name.as_str() {
            "escape" => match value.as_str() {
                "\\" => escape = Some('\\'),
                "`" => escape = Some('`'),
                _ => {
                    return Err(err(
                        at(value_col),
                        format!("invalid escape character '{value}': expected '\\' or '`'"),
                    ));
                }
            },
            "syntax" => syntax = Some(value),
            _ => check = true,
        }
    }
    Ok(Directives {
        escape: escape.unwrap_or('\\'),
        syntax,
    })
}

/// Matches `^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, giving the lower-cased name,
/// the value and the value's 1-based column.
fn directive(line: &[char]) -> Option<(String, String, usize)> {
    let skip_ws = |mut i: usize| {
        while line.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if line.get(i) != Some(&'#') {
        return None;
    }
    i = skip_ws(i + 1);
    let start = i;
    if !line.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    while line.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
        i += 1;
    }
    let name: String = line[start..i].iter().collect();
    i = skip_ws(i);
    if line.get(i) != Some(&'=') {
        return None;
    }
    i = skip_ws(i + 1);
    let end = line.iter().rposition(|c| !c.is_whitespace())? + 1;
    if end <= i {
        return None;
    }
    let value = line[i..end].iter().collect();
    Some((name.to_ascii_lowercase(), value, i + 1))
}

#[cfg(test)]
mod tests {
    use crate::builder::recipe::test_support::{err, ok};

    #[test]
    fn directives() {
        let r = ok("# escape=`\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        let r = ok("#ESCAPE = `\n#  Syntax=x/y:1  \n# check=skip=all\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        assert_eq!(r.syntax.as_deref(), Some("x/y:1"));
        let r = ok("   # escape=`\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        let r = ok("#!/usr/bin/env capsule\n# escape=`\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        // After a comment, a blank line or an instruction, directives are comments.
        for text in [
            "# a comment\n# escape=`\nFROM scratch\n",
            "\n# escape=`\nFROM scratch\n",
            "FROM scratch\n# escape=`\n",
            "# unknown=x\n# escape=`\nFROM scratch\n",
            "#\n# escape=`\nFROM scratch\n",
        ] {
            let r = ok(text);
            assert_eq!(r.escape, '\\', "{text:?}");
        }
        // A directive inside an instruction is a comment too.
        let r = ok("FROM scratch\nRUN a \\\n# escape=`\n b\n");
        assert_eq!(r.escape, '\\');
        assert_eq!(r.instructions[1].text, "RUN a b");
        // An unknown directive is a comment and ends the directives.
        let r = ok("# foo=bar\n# syntax=x\nFROM scratch\n");
        assert_eq!(r.syntax, None);
        // A directive without value is a comment.
        let r = ok("# escape=\nFROM scratch\n");
        assert_eq!(r.escape, '\\');
    }

    #[test]
    fn directive_errors() {
        assert_eq!(
            err("# escape=x\nFROM scratch\n"),
            "Capsulefile:1:10: invalid escape character 'x': expected '\\' or '`'"
        );
        assert_eq!(
            err("#  escape =  ab \nFROM scratch\n"),
            "Capsulefile:1:14: invalid escape character 'ab': expected '\\' or '`'"
        );
        assert_eq!(
            err("# escape=`\n  # Escape=\\\nFROM scratch\n"),
            "Capsulefile:2:3: only one 'escape' parser directive is allowed"
        );
        assert_eq!(
            err("# syntax=a\n# syntax=b\nFROM scratch\n"),
            "Capsulefile:2:1: only one 'syntax' parser directive is allowed"
        );
    }
}
