//! Docker Compose's interpolation, written by `pm export compose` into every
//! string of `compose.yaml` and undone by `pm audit` when it reads one back.
//! The YAML itself is [`super::yaml`]'s.
//!
//! Pure text in, text out.

/// Compose interpolates `$VAR` and `${VAR}` in every string; `$$` is a
/// literal `$`, so every `$` is doubled.
pub fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

/// What compose makes of a string with no variable in it: `$$` is `$`.
pub fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars() {
        assert_eq!(escape("echo $PORT ${X} $$"), "echo $$PORT $${X} $$$$");
        assert_eq!(escape("plain"), "plain");
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
