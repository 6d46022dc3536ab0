//! Kubernetes' expansion of `$(VAR)` in a container's command, args and env
//! values, and the escape `pm export kubernetes` writes against it. The YAML
//! itself is [`super::yaml`]'s.
//!
//! Pure text in, text out.

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
            assert_eq!(expand(&escape(text)), text, "{text}");
        }
        assert_eq!(escape("echo $PORT"), "echo $PORT");
        assert_eq!(escape("$(X) $$"), "$$(X) $$$");
    }
}
