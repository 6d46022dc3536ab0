//! The shared vocabulary: the words config, plan, supervisor, export, audit,
//! health and process all speak (restart policies, exit statuses, signal
//! names), and how pm's messages spell an exit or a duration.
//!
//! This module is a leaf: it imports nothing from pm, so every other module
//! may use it without an arrow pointing up. It holds plain values and the pure
//! functions that read or describe them; it must never do I/O, hold state or
//! decide policy.

use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;

/// When an instance that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// A non-zero exit or a death by signal is restarted; exit 0 is done.
    OnFailure,
    /// Every exit is restarted.
    Always,
    /// Nothing is restarted; a failure is given up at once.
    Never,
}

impl Restart {
    /// The policy as pm.toml spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Never => "never",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSettings {
    pub policy: Restart,
    /// Restarts in a row before giving up; `None` is unlimited.
    pub max_restarts: Option<u32>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(Signal),
}

impl ExitStatus {
    /// The code a shell would report: the exit code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(sig) => 128 + sig as i32,
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

/// `exited with code 1` or `killed by SIGTERM`.
pub struct How(pub ExitStatus);

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ExitStatus::Code(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signal(sig) => write!(f, "killed by {}", sig.as_str()),
        }
    }
}

/// `2s`, `0.5s`, `1.25s`.
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            let text = format!("{:.3}", self.0.as_secs_f64());
            write!(f, "{}s", text.trim_end_matches('0'))
        }
    }
}

/// A number the user gave, shown short: `1e308` and `1e-300`, never their
/// hundreds of digits.
pub struct Number(pub f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        if text.len() > 16 {
            write!(f, "{:e}", self.0)
        } else {
            f.write_str(&text)
        }
    }
}

/// Parses a signal name as users write it: `TERM`, `SIGTERM`, `term`, or `15`.
pub fn parse_signal(name: &str) -> Option<Signal> {
    let trimmed = name.trim();
    if let Ok(n) = trimmed.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = trimmed.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_codes() {
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        assert_eq!(ExitStatus::Signal(Signal::SIGTERM).shell_code(), 143);
        assert_eq!(ExitStatus::Signal(Signal::SIGKILL).shell_code(), 137);
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Code(1).success());
    }

    #[test]
    fn exits_and_durations_as_messages_say_them() {
        assert_eq!(How(ExitStatus::Code(1)).to_string(), "exited with code 1");
        assert_eq!(
            How(ExitStatus::Signal(Signal::SIGTERM)).to_string(),
            "killed by SIGTERM"
        );
        assert_eq!(Secs(Duration::from_secs(2)).to_string(), "2s");
        assert_eq!(Secs(Duration::from_millis(500)).to_string(), "0.5s");
        assert_eq!(Secs(Duration::from_millis(1250)).to_string(), "1.25s");
    }

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGINT"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("quit"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal(""), None);
    }

    #[test]
    fn numbers_are_shown_short() {
        assert_eq!(Number(1e308).to_string(), "1e308");
        assert_eq!(Number(1e-300).to_string(), "1e-300");
        assert_eq!(Number(2.5).to_string(), "2.5");
        assert_eq!(Number(86_400.0).to_string(), "86400");
    }
}
