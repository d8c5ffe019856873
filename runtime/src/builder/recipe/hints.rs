//! Messages for unknown instructions, with a suggestion when one is close.

use super::SUPPORTED;
use super::lines::{Ch, string_of};

/// The message for an unknown keyword, with a suggestion when one is close.
pub(super) fn unknown_instruction(written: &str, upper: &str, rest: &[Ch]) -> String {
    match upper {
        "ONBUILD" => {
            return "ONBUILD is not supported by Capsule: Capsule has no build triggers".to_owned();
        }
        "MAINTAINER" => {
            let who = string_of(rest);
            let who = if who.is_empty() { "..." } else { who.as_str() };
            return format!(
                "MAINTAINER is deprecated and not supported by Capsule: use LABEL maintainer=\"{who}\""
            );
        }
        _ => {}
    }
    let mut message = format!(
        "unknown instruction '{written}': expected one of {}",
        SUPPORTED.join(", ")
    );
    let best = SUPPORTED
        .iter()
        .map(|k| (edit_distance(upper, k), k))
        .min_by_key(|&(d, _)| d);
    if let Some((_, keyword)) = best.filter(|&(d, _)| d <= 2) {
        message.push_str(&format!(" (did you mean {keyword}?)"));
    }
    message
}

/// Levenshtein distance, in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::recipe::test_support::{err, one_err};

    #[test]
    fn unknown_and_unsupported_instructions() {
        let list = "expected one of ADD, ARG, CMD, COPY, ENTRYPOINT, ENV, EXPOSE, FROM, \
                    HEALTHCHECK, LABEL, RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR";
        assert_eq!(
            one_err("COPPY a b"),
            format!("Capsulefile:2:1: unknown instruction 'COPPY': {list} (did you mean COPY?)")
        );
        assert_eq!(
            one_err("  workdri /x"),
            format!(
                "Capsulefile:2:3: unknown instruction 'workdri': {list} (did you mean WORKDIR?)"
            )
        );
        assert_eq!(
            one_err("ENTRYPIONT x"),
            format!(
                "Capsulefile:2:1: unknown instruction 'ENTRYPIONT': {list} (did you mean ENTRYPOINT?)"
            )
        );
        assert_eq!(
            one_err("FROBNICATE x"),
            format!("Capsulefile:2:1: unknown instruction 'FROBNICATE': {list}")
        );
        assert_eq!(
            one_err("CMD[\"x\"]"),
            format!("Capsulefile:2:1: unknown instruction 'CMD[\"x\"]': {list}")
        );
        assert_eq!(
            err("RUNN x"),
            format!("Capsulefile:1:1: unknown instruction 'RUNN': {list} (did you mean RUN?)")
        );
        assert_eq!(
            one_err("HEALTHCHEK CMD x"),
            format!(
                "Capsulefile:2:1: unknown instruction 'HEALTHCHEK': {list} (did you mean HEALTHCHECK?)"
            )
        );
        assert_eq!(
            one_err("onbuild RUN x"),
            "Capsulefile:2:1: ONBUILD is not supported by Capsule: Capsule has no build triggers"
        );
        assert_eq!(
            one_err("MAINTAINER Jane <jane@example.com>"),
            "Capsulefile:2:1: MAINTAINER is deprecated and not supported by Capsule: use LABEL \
             maintainer=\"Jane <jane@example.com>\""
        );
        assert_eq!(
            one_err("MAINTAINER"),
            "Capsulefile:2:1: MAINTAINER is deprecated and not supported by Capsule: use LABEL \
             maintainer=\"...\""
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("COPPY", "COPY"), 1);
        assert_eq!(edit_distance("", "RUN"), 3);
        assert_eq!(edit_distance("ENV", "ENV"), 0);
        assert_eq!(edit_distance("ARG", "ADD"), 2);
    }
}
