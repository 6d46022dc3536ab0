//! Docker Compose's interpolation, written by `pm export compose` into every
//! string of `compose.yaml` and undone by `pm audit` when it reads one back,
//! and compose's spellings of a restart policy. The YAML itself is
//! [`super::yaml`]'s.
//!
//! Pure text in, text or values out.

use crate::model::Restart;

/// Compose interpolates `$VAR` and `${VAR}` in every string; `$$` is a
/// literal `$`, so every `$` is doubled.
pub fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

/// What compose makes of a string with no variable in it: `$$` is `$`.
pub fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}

/// The `restart:` value for a restart policy.
pub fn restart(policy: Restart) -> &'static str {
    match policy {
        Restart::OnFailure => "on-failure",
        Restart::Always => "always",
        Restart::Never => "no",
    }
}

/// The restart policy a `restart:` value (or a swarm `restart_policy`
/// `condition:`) means, in pm's terms; None for one pm has no word for.
pub fn restart_policy(value: &str) -> Option<Restart> {
    match value {
        "no" | "none" | "false" => Some(Restart::Never),
        "always" | "unless-stopped" | "any" => Some(Restart::Always),
        t if t.starts_with("on-failure") => Some(Restart::OnFailure),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars() {
        assert_eq!(escape("echo $PORT ${X} $$"), "echo $$PORT $${X} $$$$");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn restarts_round_trip() {
        for policy in [Restart::OnFailure, Restart::Always, Restart::Never] {
            assert_eq!(restart_policy(restart(policy)), Some(policy));
        }
        assert_eq!(restart_policy("on-failure:3"), Some(Restart::OnFailure));
        assert_eq!(restart_policy("unless-stopped"), Some(Restart::Always));
        assert_eq!(restart_policy("sometimes"), None);
    }

    /// What `escape` writes leaves nothing for compose to interpolate, and
    /// reads back as the same text.
    #[test]
    fn round_trip() {
        for text in ["echo $PORT ${X} $$ $", "$$$", "$", "a$", "plain", "é$✓", ""] {
            let written = escape(text);
            assert!(!written.replace("$$", "").contains('$'), "{written}");
            assert_eq!(unescape(&written), text, "{written}");
        }
    }
}
