//! Escaping for every syntax an export writes into: systemd unit settings,
//! systemd environment files, Docker Compose interpolation and `sh` words.
//! Pure functions; each one is tested by reading its output back with the
//! rules of the reader that will see it.

/// A systemd command-line word in single quotes, read back by systemd as
/// exactly `text`: C escapes for `\`, `'` and control characters (systemd
/// unescapes them inside quotes), `%%` for `%` (specifiers) and `$$` for `$`
/// (environment variable substitution). Unicode passes through as UTF-8.
pub fn systemd_word(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A value for a systemd setting that takes the rest of the line as a path
/// or name (`WorkingDirectory=`, `EnvironmentFile=`, `User=`): only
/// specifiers expand there, so `%` becomes `%%`. Line breaks and other
/// control characters cannot be written at all, nor leading or trailing
/// blanks, which systemd trims.
pub fn systemd_setting(text: &str) -> Option<String> {
    if text.chars().any(char::is_control) || text.trim() != text || text.is_empty() {
        return None;
    }
    Some(text.replace('%', "%%"))
}

/// A value in a systemd EnvironmentFile, double-quoted: inside double quotes
/// systemd keeps every byte (line breaks included) except that `\` escapes
/// one of `"`, `\`, `` ` `` and `$`.
pub fn systemd_env_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// True for a name systemd accepts as an environment variable.
pub fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compose interpolates `$VAR` and `${VAR}` in every string; `$$` is a literal `$`.
pub fn compose(text: &str) -> String {
    text.replace('$', "$$")
}

/// One `sh` word in single quotes.
pub fn sh_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
pub mod reader {
    //! Readers with the rules of the programs that read exports back, to
    //! prove the escaping round-trips.

    /// What systemd makes of an `ExecStart=` value: specifiers first, then
    /// splitting into words with quotes and C escapes, then `$$` → `$`.
    /// Fails on anything systemd would warn about.
    pub fn systemd_exec(line: &str) -> Result<Vec<String>, String> {
        // Specifiers: we write only `%%` and `%i`.
        let mut expanded = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('%') => expanded.push('%'),
                    Some('i') => expanded.push_str("INSTANCE"),
                    other => return Err(format!("unknown specifier %{other:?}")),
                }
            } else {
                expanded.push(c);
            }
        }
        let mut words = Vec::new();
        let mut chars = expanded.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut word = String::new();
            let mut quote: Option<char> = None;
            while let Some(c) = chars.next() {
                match (quote, c) {
                    (None, ' ' | '\t') => break,
                    (None, '\'' | '"') => quote = Some(c),
                    (Some(q), c) if c == q => quote = None,
                    (_, '\\') => {
                        let e = chars.next().ok_or("trailing backslash")?;
                        match e {
                            'n' => word.push('\n'),
                            't' => word.push('\t'),
                            'r' => word.push('\r'),
                            'a' => word.push('\x07'),
                            'b' => word.push('\x08'),
                            'f' => word.push('\x0c'),
                            'v' => word.push('\x0b'),
                            's' => word.push(' '),
                            '\\' | '\'' | '"' => word.push(e),
                            'x' => {
                                let hex: String =
                                    [chars.next(), chars.next()].into_iter().flatten().collect();
                                let n = u8::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                                if n == 0 || n >= 0x80 {
                                    return Err(format!("bad \\x{hex}"));
                                }
                                word.push(n as char);
                            }
                            other => return Err(format!("unknown escape \\{other}")),
                        }
                    }
                    (_, '\n') => return Err("line break".into()),
                    (_, c) => word.push(c),
                }
            }
            if quote.is_some() {
                return Err("unbalanced quoting".into());
            }
            // Variable substitution: `$$` is a literal `$`; a lone `$` is a variable.
            let mut out = String::new();
            let mut cs = word.chars().peekable();
            while let Some(c) = cs.next() {
                if c == '$' && cs.next() != Some('$') {
                    return Err(format!("variable reference in {word:?}"));
                }
                out.push(c);
            }
            words.push(out);
        }
        Ok(words)
    }

    /// What systemd makes of a `NAME="value"` line set of an EnvironmentFile.
    pub fn systemd_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (name, after) = rest.split_once("=\"").ok_or("no =\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (i, c) = chars.next().ok_or("unterminated")?;
                match c {
                    '"' => break i + 1,
                    '\\' => {
                        let (_, e) = chars.next().ok_or("trailing backslash")?;
                        match e {
                            '"' | '\\' | '`' | '$' => value.push(e),
                            '\n' => {}
                            e => {
                                value.push('\\');
                                value.push(e);
                            }
                        }
                    }
                    c => value.push(c),
                }
            };
            out.push((name.to_string(), value));
            rest = after[end..]
                .strip_prefix('\n')
                .ok_or("no line break after a value")?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::reader::*;
    use super::*;

    const NASTY: &[&str] = &[
        "echo hello",
        "echo 'single' \"double\" `tick`",
        "echo $HOME ${PORT} $$ $",
        "printf '100%% done %s\\n' %i %n",
        "back\\slash \\\\ \\n \\' \\\"",
        "line one\nline two\r\n\ttabbed",
        "unicode: héllo wörld ✓ 日本 🚀",
        "; && || | > < # comment",
        "bell\x07 escape\x1b[0m",
        "  leading and trailing  ",
        "yes",
        "~",
    ];

    #[test]
    fn systemd_words_round_trip() {
        for text in NASTY {
            let line = format!("/bin/sh -c {}", systemd_word(text));
            assert!(!line.contains('\n'), "{line}");
            let words = systemd_exec(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(words, ["/bin/sh", "-c", text], "{line}");
        }
    }

    #[test]
    fn systemd_word_escapes() {
        assert_eq!(systemd_word("a b"), "'a b'");
        assert_eq!(systemd_word("it's"), "'it\\'s'");
        assert_eq!(systemd_word("$PORT 5%"), "'$$PORT 5%%'");
        assert_eq!(systemd_word("a\\b\nc"), "'a\\\\b\\nc'");
        assert_eq!(systemd_word("\x1b"), "'\\x1b'");
        assert_eq!(systemd_word(""), "''");
    }

    #[test]
    fn systemd_env_values_round_trip() {
        let mut text = String::new();
        for (i, value) in NASTY.iter().enumerate() {
            text.push_str(&format!("V{i}={}\n", systemd_env_value(value)));
        }
        let read = systemd_env_file(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let expected: Vec<(String, String)> = NASTY
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("V{i}"), v.to_string()))
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn systemd_settings() {
        assert_eq!(
            systemd_setting("/srv/100%/app").as_deref(),
            Some("/srv/100%%/app")
        );
        assert_eq!(
            systemd_setting("/srv/my app").as_deref(),
            Some("/srv/my app")
        );
        assert_eq!(systemd_setting("/srv/a\nb"), None);
        assert_eq!(systemd_setting(" /srv"), None);
        assert_eq!(systemd_setting(""), None);
    }

    #[test]
    fn shell_names() {
        assert!(is_shell_name("DATABASE_URL"));
        assert!(is_shell_name("_x1"));
        assert!(!is_shell_name("1X"));
        assert!(!is_shell_name("A.B"));
        assert!(!is_shell_name(""));
    }

    #[test]
    fn compose_dollars() {
        assert_eq!(compose("echo $PORT ${X} $$"), "echo $$PORT $${X} $$$$");
        assert_eq!(compose("plain"), "plain");
    }

    #[test]
    fn sh_words() {
        assert_eq!(sh_word("/healthz"), "'/healthz'");
        assert_eq!(sh_word("it's"), "'it'\\''s'");
    }
}
