//! Pure parsers for pm's inputs: Procfile, env files, formation, ports.
//!
//! Every parser takes text (and the path to name in messages), performs no I/O,
//! and returns typed values or every located error it found. The same functions
//! serve `pm check`, `pm start`, export, unit tests, property tests and fuzzing.

pub mod envfile;
pub mod formation;
pub mod pm_toml;
pub mod ports;
pub mod procfile;

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
        match self.line {
            _ if self.file.is_empty() => write!(f, "{}", self.message),
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}
