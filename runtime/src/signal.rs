//! Signal names and numbers as Docker reads them (`STOPSIGNAL`, `--stop-signal`,
//! `kill -s`): a name with or without `SIG`, in any case (`TERM`, `SIGTERM`, `sigterm`),
//! `RTMIN+N`/`RTMAX-N`, or a number from 1 to 64. Linux's numbering, on every host:
//! the signal is data in the image config, read by whatever runs the image.

/// The standard signals, by number.
const NAMES: &[(&str, u8)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

const RTMIN: u8 = 34;
const RTMAX: u8 = 64;

/// The number of the signal `text` names, or an error that says what a signal looks like.
pub fn parse(text: &str) -> Result<u8, String> {
    let bad = || {
        format!(
            "invalid signal '{text}': give a name such as SIGTERM, TERM or SIGRTMIN+3, or a number from 1 to {RTMAX}"
        )
    };
    if let Ok(number) = text.parse::<u8>() {
        return if (1..=RTMAX).contains(&number) {
            Ok(number)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, number)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(number);
    }
    let offset = |rest: &str| -> Option<u8> {
        if rest.is_empty() {
            return Some(0);
        }
        rest.parse::<u8>().ok().filter(|n| *n <= RTMAX - RTMIN)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let rest = rest
            .strip_prefix('+')
            .unwrap_or(if rest.is_empty() { "" } else { "x" });
        return offset(rest).map(|n| RTMIN + n).ok_or_else(bad);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let rest = rest
            .strip_prefix('-')
            .unwrap_or(if rest.is_empty() { "" } else { "x" });
        return offset(rest).map(|n| RTMAX - n).ok_or_else(bad);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_numbers_and_realtime() {
        assert_eq!(parse("SIGTERM"), Ok(15));
        assert_eq!(parse("term"), Ok(15));
        assert_eq!(parse("SIGKILL"), Ok(9));
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("SIGRTMIN"), Ok(34));
        assert_eq!(parse("SIGRTMIN+3"), Ok(37));
        assert_eq!(parse("RTMAX-1"), Ok(63));
        assert_eq!(parse("64"), Ok(64));
    }

    #[test]
    fn refuses_what_is_not_a_signal() {
        for bad in [
            "",
            "BOGUS",
            "SIG",
            "0",
            "65",
            "-1",
            "SIGRTMIN+31",
            "RTMIN3",
            "RTMAX+1",
            "TERM ",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("invalid signal"), "{err}");
        }
    }
}
