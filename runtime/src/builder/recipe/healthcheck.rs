//! `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D]
//! [--retries=N] CMD command` and `HEALTHCHECK NONE`, read as Docker reads them: the
//! exec form (`CMD ["prog", "arg"]`) is the test `["CMD", "prog", "arg"]`, the shell form
//! (`CMD prog arg`) is `["CMD-SHELL", "prog arg"]`, `NONE` is `["NONE"]` (which turns a
//! base image's check off). Flags and command are literal: Docker expands no variables
//! in them.

use super::flags::Flag;
use super::json::{JsonError, json_array};
use super::lines::{Ch, start, starts_with, string_of, trim};
use super::{Parser, Pos, RecipeError};
use crate::container::health::Healthcheck;
use crate::spec::grammar;
use std::time::Duration;

/// What a HEALTHCHECK looks like, for messages.
const USAGE: &str = "HEALTHCHECK [--interval=30s] [--timeout=30s] [--start-period=0s] \
                     [--start-interval=5s] [--retries=3] CMD [\"/app/check.wasm\", \"arg\"], \
                     or HEALTHCHECK NONE";

/// The shortest duration Docker takes for a check's timing (0 means the default).
pub(crate) const MIN_DURATION: Duration = Duration::from_millis(1);

impl Parser<'_> {
    pub(super) fn healthcheck(
        &self,
        flags: &[Flag],
        args: &[Ch],
        end: Pos,
    ) -> Result<Healthcheck, RecipeError> {
        if args.is_empty() {
            return Err(self.err(end, format!("HEALTHCHECK needs CMD or NONE: {USAGE}")));
        }
        let first = &args[..self.word_len(args)?];
        let rest = trim(&args[first.len()..]);
        match string_of(first).to_ascii_uppercase().as_str() {
            "NONE" => {
                if let Some(flag) = flags.first() {
                    return Err(self.err(
                        flag.pos(),
                        "HEALTHCHECK NONE takes no flags: it turns the base image's check off",
                    ));
                }
                if !rest.is_empty() {
                    return Err(self.err(
                        start(rest, end),
                        format!(
                            "HEALTHCHECK NONE takes no arguments, found '{}'",
                            string_of(rest)
                        ),
                    ));
                }
                Ok(Healthcheck {
                    test: vec!["NONE".to_owned()],
                    ..Healthcheck::default()
                })
            }
            "CMD" => Ok(Healthcheck {
                test: self.health_test(rest, end)?,
                interval: self.health_duration(flags, "interval")?,
                timeout: self.health_duration(flags, "timeout")?,
                start_period: self.health_duration(flags, "start-period")?,
                start_interval: self.health_duration(flags, "start-interval")?,
                retries: self.health_retries(flags)?,
            }),
            _ => Err(self.err(
                start(first, end),
                format!(
                    "HEALTHCHECK expects CMD or NONE, found '{}': {USAGE}",
                    string_of(first)
                ),
            )),
        }
    }

    /// The test of `CMD ...`: the exec form as `CMD`, the shell form as `CMD-SHELL`.
    fn health_test(&self, command: &[Ch], end: Pos) -> Result<Vec<String>, RecipeError> {
        let needs =
            "HEALTHCHECK CMD needs a command, e.g. HEALTHCHECK CMD [\"/app/check.wasm\", \"-q\"]";
        if command.is_empty() {
            return Err(self.err(end, needs));
        }
        let at = start(command, end);
        if !starts_with(command, "[") {
            return Ok(vec!["CMD-SHELL".to_owned(), string_of(command)]);
        }
        match json_array(command) {
            Ok(items) if items.is_empty() => Err(self.err(at, needs)),
            Ok(items) => Ok(std::iter::once("CMD".to_owned())
                .chain(items.into_iter().map(|(_, s)| s))
                .collect()),
            Err(JsonError::NotStrings(pos)) => Err(self.not_strings("HEALTHCHECK", pos)),
            // `[ -f /tmp/ok ]` is a shell command; `["a"] ["b"]`, `["a"] CMD ["b"]` or
            // `["a" "b"]` is a broken exec form, which Docker would run as a shell line.
            Err(JsonError::Invalid) if !starts_like_json(command) => {
                Ok(vec!["CMD-SHELL".to_owned(), string_of(command)])
            }
            Err(JsonError::Invalid) => Err(self.err(
                at,
                "HEALTHCHECK CMD takes one command: this is not one JSON array (each element a \
                 \"double-quoted\" string, separated by commas, nothing after the ']'), e.g. \
                 HEALTHCHECK CMD [\"/app/check.wasm\", \"-q\"]",
            )),
        }
    }

    /// A timing flag in nanoseconds (0: not given, the default).
    fn health_duration(&self, flags: &[Flag], name: &str) -> Result<u64, RecipeError> {
        let Some((text, pos)) = self.flag_literal(flags, name)? else {
            return Ok(0);
        };
        let d = grammar::duration(&format!("HEALTHCHECK --{name}"), &text)
            .map_err(|e| self.err(pos, e.to_string()))?;
        if !d.is_zero() && d < MIN_DURATION {
            return Err(self.err(
                pos,
                format!("HEALTHCHECK --{name}={text}: at least 1ms (or 0 for the default)"),
            ));
        }
        Ok(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// `--retries=N`, at least 1 (0: not given, the default).
    fn health_retries(&self, flags: &[Flag]) -> Result<u32, RecipeError> {
        let Some((text, pos)) = self.flag_literal(flags, "retries")? else {
            return Ok(0);
        };
        text.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            self.err(
                pos,
                format!(
                    "invalid HEALTHCHECK --retries '{text}': expected a number of failed checks \
                     in a row, at least 1"
                ),
            )
        })
    }
}

/// Whether `[...` starts a JSON array of strings (`["` or `[]`), not a shell test.
fn starts_like_json(command: &[Ch]) -> bool {
    command
        .iter()
        .skip(1)
        .find(|c| !c.c.is_whitespace())
        .is_some_and(|c| matches!(c.c, '"' | ']'))
}

#[cfg(test)]
mod tests {
    use crate::builder::recipe::Kind;
    use crate::builder::recipe::test_support::{kind, ok, one, one_err};
    use crate::container::health::Healthcheck;

    fn check(text: &str) -> Healthcheck {
        match kind(text) {
            Kind::Healthcheck(check) => check,
            other => panic!("{other:?}"),
        }
    }

    fn test(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exec_shell_and_none_forms() {
        assert_eq!(
            check("HEALTHCHECK CMD [\"/service.wasm\", \"exists\", \"/tmp/ok\"]").test,
            test(&["CMD", "/service.wasm", "exists", "/tmp/ok"])
        );
        assert_eq!(
            check("healthcheck cmd curl -f http://localhost/ || exit 1").test,
            test(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"])
        );
        // A shell test that starts with `[` is shell form, as in Docker.
        assert_eq!(
            check("HEALTHCHECK CMD [ -f /tmp/ok ]").test,
            test(&["CMD-SHELL", "[ -f /tmp/ok ]"])
        );
        // Variables are not expanded (Docker expands none in HEALTHCHECK).
        assert_eq!(
            check("HEALTHCHECK CMD [\"$CHECK\"]").test,
            test(&["CMD", "$CHECK"])
        );
        let none = check("HEALTHCHECK none");
        assert_eq!(none.test, test(&["NONE"]));
        assert!(none.is_none());
        let i = one("HEALTHCHECK   --retries=2   CMD   [\"/c\"]");
        assert_eq!(i.keyword, "HEALTHCHECK");
        assert_eq!(i.text, "HEALTHCHECK --retries=2 CMD [\"/c\"]");
    }

    #[test]
    fn flags_set_the_timing() {
        let c = check(
            "HEALTHCHECK --interval=200ms --timeout=2s --start-period=1m --start-interval=1.5s \
             --retries=5 CMD [\"/c\"]",
        );
        assert_eq!(
            c,
            Healthcheck {
                test: test(&["CMD", "/c"]),
                interval: 200_000_000,
                timeout: 2_000_000_000,
                start_period: 60_000_000_000,
                start_interval: 1_500_000_000,
                retries: 5,
            }
        );
        // Not given, or 0: Docker's defaults.
        let c = check("HEALTHCHECK --interval=0s CMD [\"/c\"]");
        assert_eq!((c.interval, c.retries), (0, 0));
        assert_eq!(c.interval(), crate::container::health::DEFAULT_INTERVAL);
        // Continued lines and a later HEALTHCHECK parse alike.
        let r = ok("FROM x\nHEALTHCHECK --interval=1s \\\n  CMD [\"/a\"]\nHEALTHCHECK NONE\n");
        assert_eq!(r.instructions.len(), 3);
    }

    #[test]
    fn bad_input_is_one_error_where_it_is() {
        for (text, expected) in [
            (
                "HEALTHCHECK",
                "Capsulefile:2:12: HEALTHCHECK needs CMD or NONE: HEALTHCHECK [--interval=30s]",
            ),
            (
                "HEALTHCHECK --interval=1s",
                "Capsulefile:2:26: HEALTHCHECK needs CMD or NONE",
            ),
            (
                "HEALTHCHECK /check.wasm",
                "Capsulefile:2:13: HEALTHCHECK expects CMD or NONE, found '/check.wasm'",
            ),
            (
                "HEALTHCHECK [\"/check.wasm\"]",
                "Capsulefile:2:13: HEALTHCHECK expects CMD or NONE, found '[\"/check.wasm\"]'",
            ),
            (
                "HEALTHCHECK CMD",
                "Capsulefile:2:16: HEALTHCHECK CMD needs a command, e.g.",
            ),
            (
                "HEALTHCHECK CMD []",
                "Capsulefile:2:17: HEALTHCHECK CMD needs a command",
            ),
            (
                "HEALTHCHECK --intervl=1s CMD [\"/c\"]",
                "Capsulefile:2:13: unknown flag '--intervl' for HEALTHCHECK: expected one of \
                 --interval, --timeout, --start-period, --start-interval, --retries",
            ),
            (
                "HEALTHCHECK --interval=1s --interval=2s CMD [\"/c\"]",
                "Capsulefile:2:27: duplicate flag '--interval'",
            ),
            (
                "HEALTHCHECK --interval=soon CMD [\"/c\"]",
                "Capsulefile:2:24: HEALTHCHECK --interval: invalid duration 'soon': expected a \
                 number with a unit",
            ),
            (
                "HEALTHCHECK --timeout=-1s CMD [\"/c\"]",
                "Capsulefile:2:23: HEALTHCHECK --timeout: invalid duration '-1s'",
            ),
            (
                "HEALTHCHECK --start-period=10ns CMD [\"/c\"]",
                "Capsulefile:2:28: HEALTHCHECK --start-period=10ns: at least 1ms (or 0 for the \
                 default)",
            ),
            (
                "HEALTHCHECK --interval CMD [\"/c\"]",
                "Capsulefile:2:13: flag '--interval' needs a value: --interval=...",
            ),
            (
                "HEALTHCHECK --interval=$I CMD [\"/c\"]",
                "Capsulefile:2:24: flag '--interval' cannot use variables in Capsule",
            ),
            (
                "HEALTHCHECK --retries=0 CMD [\"/c\"]",
                "Capsulefile:2:23: invalid HEALTHCHECK --retries '0': expected a number of \
                 failed checks in a row, at least 1",
            ),
            (
                "HEALTHCHECK --retries=three CMD [\"/c\"]",
                "Capsulefile:2:23: invalid HEALTHCHECK --retries 'three'",
            ),
            (
                "HEALTHCHECK CMD [\"/a\"] CMD [\"/b\"]",
                "Capsulefile:2:17: HEALTHCHECK CMD takes one command: this is not one JSON array",
            ),
            (
                "HEALTHCHECK CMD [\"/a\"] [\"/b\"]",
                "Capsulefile:2:17: HEALTHCHECK CMD takes one command",
            ),
            (
                "HEALTHCHECK CMD [\"/a\", 1]",
                "Capsulefile:2:24: HEALTHCHECK: a JSON array must contain only strings",
            ),
            (
                "HEALTHCHECK NONE CMD [\"/c\"]",
                "Capsulefile:2:18: HEALTHCHECK NONE takes no arguments, found 'CMD [\"/c\"]'",
            ),
            (
                "HEALTHCHECK --retries=2 NONE",
                "Capsulefile:2:13: HEALTHCHECK NONE takes no flags: it turns the base image's \
                 check off",
            ),
        ] {
            let e = one_err(text);
            assert!(e.starts_with(expected), "{text}: {e}");
            assert_eq!(e.lines().count(), 1, "{text}: {e}");
        }
    }
}
