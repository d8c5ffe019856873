//! Docker Compose's variable substitution in string values: `$VAR`, `${VAR}`,
//! `${VAR:-default}` (unset or empty), `${VAR-default}` (unset), `${VAR:?error}` and
//! `${VAR?error}` (required), and `$$` for a literal `$`.

use std::collections::{BTreeMap, BTreeSet};

/// Why a value could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error("required variable {name} is missing: {message}")]
    Required { name: String, message: String },
    #[error(
        "invalid substitution '{text}': expected ${{NAME}}, ${{NAME:-default}} or ${{NAME:?error}}"
    )]
    Syntax { text: String },
}

/// Substitutes the variables of `vars` in `text`.
///
/// # Errors
/// [`InterpolateError`] for a required variable that is missing, or bad syntax.
pub fn interpolate(
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, InterpolateError> {
    interpolate_noting(text, vars, &mut BTreeSet::new())
}

/// [`interpolate`], noting in `unset` each variable used without a default that is
/// not set (Compose warns of them: they become empty strings).
///
/// # Errors
/// As [`interpolate`].
pub fn interpolate_noting(
    text: &str,
    vars: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            // The matching brace: a default may hold `${...}` itself.
            let mut depth = 0usize;
            let end = body
                .char_indices()
                .find(|&(_, c)| match c {
                    '{' => {
                        depth += 1;
                        false
                    }
                    '}' if depth == 0 => true,
                    '}' => {
                        depth -= 1;
                        false
                    }
                    _ => false,
                })
                .map(|(i, _)| i)
                .ok_or_else(|| InterpolateError::Syntax {
                    text: format!("${{{body}"),
                })?;
            out.push_str(&expand(&body[..end], vars, unset)?);
            rest = &body[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                match vars.get(&after[..len]) {
                    Some(value) => out.push_str(value),
                    None => {
                        unset.insert(after[..len].to_owned());
                    }
                }
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn expand(
    body: &str,
    vars: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, InterpolateError> {
    let syntax = || InterpolateError::Syntax {
        text: format!("${{{body}}}"),
    };
    let split = body.find([':', '-', '?']).unwrap_or(body.len());
    let (name, op) = body.split_at(split);
    if !valid_name(name) {
        return Err(syntax());
    }
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let required = |message: &str| InterpolateError::Required {
        name: name.to_owned(),
        message: if message.is_empty() {
            "set it in the environment or in .env".to_owned()
        } else {
            message.to_owned()
        },
    };
    match op {
        "" => {
            if value.is_none() {
                unset.insert(name.to_owned());
            }
            Ok(value.cloned().unwrap_or_default())
        }
        _ if op.starts_with(":-") => Ok(if set_nonempty {
            value.cloned().unwrap_or_default()
        } else {
            interpolate_noting(&op[2..], vars, unset)?
        }),
        _ if op.starts_with('-') => Ok(match value {
            Some(v) => v.clone(),
            None => interpolate_noting(&op[1..], vars, unset)?,
        }),
        _ if op.starts_with(":?") => {
            if set_nonempty {
                Ok(value.cloned().unwrap_or_default())
            } else {
                Err(required(&op[2..]))
            }
        }
        _ if op.starts_with('?') => match value {
            Some(v) => Ok(v.clone()),
            None => Err(required(&op[1..])),
        },
        _ => Err(syntax()),
    }
}

/// Reads a `.env` file: `KEY=VALUE` lines, `#` comments, optional quotes around the
/// value, `export ` prefixes tolerated.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("A", "1"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn compose_rules() {
        let v = vars();
        let i = |t: &str| interpolate(t, &v);
        assert_eq!(i("x$A-${A}y").as_deref(), Ok("x1-1y"));
        assert_eq!(i("${NOPE:-d}").as_deref(), Ok("d"));
        assert_eq!(i("${EMPTY:-d}").as_deref(), Ok("d"));
        assert_eq!(i("${EMPTY-d}").as_deref(), Ok(""));
        assert_eq!(i("${NOPE-${A}}").as_deref(), Ok("1"));
        assert_eq!(i("$$A").as_deref(), Ok("$A"));
        assert_eq!(i("cost: 5$").as_deref(), Ok("cost: 5$"));
        assert!(matches!(
            i("${NOPE:?set NOPE}"),
            Err(InterpolateError::Required { .. })
        ));
        assert!(matches!(
            i("${EMPTY:?x}"),
            Err(InterpolateError::Required { .. })
        ));
        assert_eq!(i("${EMPTY?x}").as_deref(), Ok(""));
        assert!(matches!(i("${A"), Err(InterpolateError::Syntax { .. })));
        assert!(matches!(i("${1A}"), Err(InterpolateError::Syntax { .. })));
        let mut unset = BTreeSet::new();
        interpolate_noting("$A ${NOPE} $GONE ${NOPE2:-d} ${NOPE3-x}", &v, &mut unset)
            .expect("substitutes");
        assert_eq!(
            unset.into_iter().collect::<Vec<_>>(),
            ["GONE", "NOPE"],
            "only variables without a default"
        );
    }

    #[test]
    fn dotenv_lines() {
        let env = parse_dotenv("# c\nA=1\nexport B = \"two words\"\n\nC='x'\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x");
    }
}
