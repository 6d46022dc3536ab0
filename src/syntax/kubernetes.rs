//! Kubernetes' expansion of `$(VAR)` in a container's command, args and env
//! values: the escape `pm export kubernetes` writes against it, and its
//! undoing when `pm audit` reads an object back. The base64 of a Secret's
//! `data`, as `pm audit` reads it. The YAML itself is
//! [`super::yaml`]'s.
//!
//! Pure text in, text out.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Kubernetes expands `$(VAR)` in a container's command, args and env values,
/// and reads `$$` as `$`: a `$` followed by `$` or `(` is doubled, so the
/// shell receives the exact text. Every other `$` is left alone.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '(')) {
            out.push('$');
        }
    }
    out
}

/// What Kubernetes makes of a string that references no variable it
/// knows: `$$` is `$`, and everything else (`$(X)` included) stays as
/// written. The reverse of [`escape`].
pub fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}

/// The longest DNS-1123 label.
pub const MAX_LABEL: usize = 63;

/// `text` as a DNS-1123 label: lowercased, every character other than a
/// letter or digit made `-`, runs of `-` made one, `-` and `.` trimmed from
/// both ends. Empty when nothing valid remains.
pub fn label(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_ascii_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// A name cut to [`MAX_LABEL`] characters, without a trailing `-`.
pub fn truncate(name: &str) -> String {
    let cut: String = name.chars().take(MAX_LABEL).collect();
    cut.trim_end_matches('-').to_string()
}

/// The name of a process type's objects (Deployment, Service): `APP-TYPE`,
/// where `app` is already a label.
pub fn object_name(app: &str, type_name: &str) -> String {
    truncate(&format!("{app}-{}", truncate(&label(type_name))))
}

/// Standard base64, read liberally: padding optional, stray low bits in
/// the last character accepted.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A value of a Secret's `data`: base64 (blanks and line breaks ignored) of
/// UTF-8 text; None when it is neither.
pub fn secret_value(data: &str) -> Option<String> {
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    String::from_utf8(BASE64.decode(compact).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kubernetes' own expansion (k8s.io/kubernetes third_party expansion),
    /// with every variable defined.
    fn expand(input: &str) -> String {
        let b = input.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' && i + 1 < b.len() {
                match b[i + 1] {
                    b'$' => {
                        out.push(b'$');
                        i += 2;
                    }
                    b'(' => match b[i + 2..].iter().position(|&c| c == b')') {
                        Some(end) => {
                            out.extend_from_slice(b"VALUE");
                            i += 2 + end + 1;
                        }
                        None => {
                            out.extend_from_slice(b"$(");
                            i += 2;
                        }
                    },
                    c => {
                        out.push(b'$');
                        out.push(c);
                        i += 2;
                    }
                }
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escaping_survives_expansion() {
        for text in [
            "echo $PORT",
            "echo $(PORT) $$ $",
            "$$$(X)$",
            "a $( b",
            "é$(✓)",
            "",
        ] {
            let written = escape(text);
            assert_eq!(expand(&written), text, "{text}");
            assert_eq!(unescape(&written), text, "{written}");
        }
        assert_eq!(escape("echo $PORT"), "echo $PORT");
        assert_eq!(escape("$(X) $$"), "$$(X) $$$");
    }

    #[test]
    fn object_names() {
        assert_eq!(label("My_App"), "my-app");
        assert_eq!(label("__"), "");
        assert_eq!(object_name("shop", "web_API"), "shop-web-api");
        assert_eq!(object_name("shop", &"x".repeat(80)).len(), MAX_LABEL);
    }

    #[test]
    fn secret_values() {
        assert_eq!(secret_value("aGVsbG8=").as_deref(), Some("hello"));
        assert_eq!(secret_value("aGVsbG8").as_deref(), Some("hello"));
        assert_eq!(secret_value("aGVs\nbG8h").as_deref(), Some("hello!"));
        assert_eq!(secret_value("").as_deref(), Some(""));
        assert_eq!(secret_value("a=b"), None);
        assert_eq!(secret_value("*"), None);
        assert_eq!(secret_value("%%%"), None);
        // Base64 of bytes that are not UTF-8.
        assert_eq!(secret_value("/w=="), None);
    }

    proptest::proptest! {
        #[test]
        fn secret_values_never_panic(text in "(?s).{0,80}") {
            let _ = secret_value(&text);
        }
    }
}
