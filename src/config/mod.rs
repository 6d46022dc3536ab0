//! Pure parsers for pm's inputs: Procfile, env files, formation, ports.
//!
//! Every parser takes text (and the path to name in messages), performs no I/O,
//! and returns typed values or every located error it found. The same functions
//! serve `pm check`, `pm start`, export, unit tests, property tests and fuzzing.

pub mod command;
pub mod envfile;
pub mod formation;
pub mod pm_toml;
pub mod ports;
pub mod procfile;
pub mod secret;
pub mod value;

use std::fmt;

/// An error in one of pm's input files, located by file and (when known) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the user named it (e.g. `Procfile`, `.env`, `config/Procfile.dev`);
    /// empty for a problem that belongs to no file (a formation, a flag).
    pub file: String,
    /// 1-based line number, when the error belongs to one line.
    pub line: Option<usize>,
    /// What is wrong, one line, lowercase, names in double quotes.
    pub message: String,
}

impl ConfigError {
    pub fn new(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = one_line(&self.message);
        match self.line {
            _ if self.file.is_empty() => write!(f, "{message}"),
            Some(line) => write!(f, "{}:{}: {message}", one_line(&self.file), line),
            None => write!(f, "{}: {message}", one_line(&self.file)),
        }
    }
}

/// Escapes control characters (a newline in a quoted name, an escape
/// sequence) so that a message always stays on one line, whatever user text
/// it quotes.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_on_one_line() {
        let e = ConfigError::new(
            "pm.toml",
            Some(2),
            "unknown signal \"A\nB\" for stop_signal",
        );
        assert_eq!(
            e.to_string(),
            "pm.toml:2: unknown signal \"A\\nB\" for stop_signal"
        );
        assert_eq!(one_line("a\rb\u{1b}[1m"), "a\\rb\\u{1b}[1m");
        assert_eq!(one_line("plain"), "plain");
        let f = formation::Formation::parse_spec("a\nb=x").unwrap_err();
        assert!(!f.to_string().contains('\n'), "{f}");
    }
}
