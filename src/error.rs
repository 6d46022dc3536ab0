//! The user-facing errors of pm, their one-line rendering and their exit
//! codes, and [`io_message`], the short form of an I/O error they quote.
//!
//! Every error names what was wrong and where (file:line, process name, socket
//! path). `main` prints each as `pm: <message>` on stderr; nothing else in pm
//! decides an exit code for an error.

use std::io;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more problems in the Procfile, env files or settings.
    #[error("{}", render_all(.0))]
    Config(Vec<ConfigError>),

    /// A formation, port or option value that cannot be used.
    #[error("{0}")]
    Invalid(String),

    /// A file or directory that cannot be used.
    #[error("{path}: {message}")]
    File { path: String, message: String },

    /// An operating-system failure while running (spawning, signals).
    #[error("{what}: {}", io_message(source))]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// `pm run` could not execute its command (127: not found, 126: not executable).
    #[error("{message}")]
    Exec { message: String, code: i32 },

    /// A bug in pm: should never happen.
    #[error("internal error: {0}")]
    Internal(String),
}

fn render_all(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// The process exit code for this error (see README: exit codes).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 70,
            Error::Exec { code, .. } => *code,
            _ => 1,
        }
    }

    /// The lines to print on stderr, each to be prefixed with `pm: `.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Config(errors) => errors.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }

    pub fn os(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Os {
            what: what.into(),
            source,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(vec![e])
    }
}

impl From<Vec<ConfigError>> for Error {
    fn from(e: Vec<ConfigError>) -> Self {
        Error::Config(e)
    }
}

/// `not found`, `permission denied`: the short form of an I/O error.
pub fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "not found".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::IsADirectory => "is a directory, not a file".into(),
        io::ErrorKind::InvalidData => "not valid UTF-8 text".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_lowercase(),
                None => text.to_lowercase(),
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
