//! A mistake in the command line itself (an unknown flag, a missing value) as one line,
//! like every other error: what clap found, its tip, and which `--help` to read.
//! Help and version output, asked for, stay as clap prints them.

use clap::CommandFactory as _;
use std::ffi::OsString;

/// One line for clap's usage error `rendered`, given the command line `args`
/// (program name first): `capsule: unexpected argument '-1' found (tip: ...; see
/// capsule stop --help)`.
pub(super) fn one_line(rendered: &str, args: &[OsString]) -> String {
    let mut message = String::new();
    let mut details = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if let Some(first) = line.strip_prefix("error: ") {
            message = first.trim_end_matches(':').to_owned();
            if first.ends_with(':') {
                message.push(':');
            }
        } else if !line.is_empty() {
            details.push(line.to_owned());
        }
    }
    if message.is_empty() {
        message = "invalid command line".to_owned();
    }
    // "the following required arguments were not provided:" lists them on the next lines.
    let (inline, tips): (Vec<_>, Vec<_>) =
        details.into_iter().partition(|d| !d.starts_with("tip:"));
    if !inline.is_empty() {
        message = format!("{message} {}", inline.join(", "));
    }
    let mut notes = tips;
    notes.push(format!("see {} --help", verb_path(args)));
    format!("capsule: {message} ({})", notes.join("; "))
}

/// `capsule`, `capsule run`, `capsule volume create`: the subcommands `args` names,
/// as far as they are real ones.
fn verb_path(args: &[OsString]) -> String {
    let mut command = super::Cli::command();
    let mut path = vec!["capsule".to_owned()];
    for arg in args.iter().skip(1) {
        let Some(arg) = arg.to_str() else { break };
        if arg.starts_with('-') {
            break;
        }
        let Some(sub) = command
            .get_subcommands()
            .find(|s| s.get_name() == arg || s.get_all_aliases().any(|a| a == arg))
            .cloned()
        else {
            break;
        };
        path.push(sub.get_name().to_owned());
        command = sub;
    }
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use std::ffi::OsString;

    fn args(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn clap_errors_become_one_line_naming_the_verb() {
        let rendered = "error: unexpected argument '-1' found\n\n  tip: to pass '-1' as a value, use '-- -1'\n\nUsage: capsule stop [OPTIONS] <CONTAINERS>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered, &args("capsule stop -t -1 x")),
            "capsule: unexpected argument '-1' found (tip: to pass '-1' as a value, use '-- -1'; see capsule stop --help)"
        );
        let rendered = "error: the following required arguments were not provided:\n  <NAME>\n\nUsage: capsule volume create <NAME>\n";
        assert_eq!(
            one_line(rendered, &args("capsule volume create")),
            "capsule: the following required arguments were not provided: <NAME> (see capsule volume create --help)"
        );
        let rendered = "error: a value is required for '--memory <SIZE>' but none was supplied\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered, &args("capsule run --memory")),
            "capsule: a value is required for '--memory <SIZE>' but none was supplied (see capsule run --help)"
        );
        assert_eq!(
            one_line(
                "error: unrecognized subcommand 'bogus'\n",
                &args("capsule bogus")
            ),
            "capsule: unrecognized subcommand 'bogus' (see capsule --help)"
        );
    }
}
