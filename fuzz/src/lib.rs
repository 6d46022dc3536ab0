//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Each target turns libFuzzer's bytes into text, runs one of pm's pure
//! parsers (`pm::config::*`) on it, and asserts cheap invariants on the
//! result. A failed assertion is a finding, exactly like a panic inside pm.

use std::borrow::Cow;
use std::sync::OnceLock;

/// The fuzzer's bytes as text. Invalid UTF-8 is replaced (U+FFFD), so every
/// input reaches the parser and the mutator can still work on raw bytes.
pub fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Whether `PM_FUZZ_LENIENT=1` is set: it turns off the "message is one
/// line" checks that a known finding breaks (see docs/fuzzing.md), so a run
/// can look past it for other problems. Off by default.
pub fn lenient() -> bool {
    static LENIENT: OnceLock<bool> = OnceLock::new();
    *LENIENT.get_or_init(|| std::env::var_os("PM_FUZZ_LENIENT").is_some_and(|v| v == "1"))
}

/// A message meant for one terminal line: no line break, and no other
/// control character either (a raw `\r` or ESC from a config file would let
/// the file rewrite what the terminal shows). pm escapes echoed user text
/// like a Rust string, which never leaves a control character.
pub fn is_one_line(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Number of lines `str::split('\n')` sees, the way pm's parsers count.
pub fn line_count(text: &str) -> usize {
    text.split('\n').count()
}

/// `[A-Za-z0-9_-]+`, the Procfile name grammar, written independently of pm.
pub fn is_type_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
