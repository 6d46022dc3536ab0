//! `sh`, which every export runs a command through (`/bin/sh -c COMMAND`):
//! single-quoted words for what pm writes into a shell command, and the
//! command an argument list runs, for reading exports back.
//!
//! Pure text in, text out: nothing here runs a shell.

/// One `sh` word in single quotes.
pub fn word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The command a `/bin/sh -c COMMAND` argument list runs; any other list
/// is shown as its words joined by blanks.
pub fn command(words: &[String]) -> String {
    match words {
        [sh, c, command] if sh.ends_with("sh") && c == "-c" => command.clone(),
        other => other.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(word("/healthz"), "'/healthz'");
        assert_eq!(word("it's"), "'it'\\''s'");
    }

    #[test]
    fn commands() {
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command(&words(&["/bin/sh", "-c", "echo 'a b'"])),
            "echo 'a b'"
        );
        assert_eq!(command(&words(&["sh", "-c", "x"])), "x");
        assert_eq!(
            command(&words(&["sidekiq", "-q", "default"])),
            "sidekiq -q default"
        );
        assert_eq!(command(&words(&["/bin/sh", "-c"])), "/bin/sh -c");
    }
}
