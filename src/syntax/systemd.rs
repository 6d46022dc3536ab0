//! systemd's syntaxes, written by `pm export systemd` and read back by
//! `pm audit`: command-line words (`ExecStart=`), settings that take the rest
//! of the line, `Restart=` values, the `KEY=value` entries of a unit file,
//! and EnvironmentFile lines. Each writer's output is read back by the reader beside it in the
//! tests below, so the two cannot disagree.
//!
//! Pure text in, text or values out: nothing here does I/O or knows what an
//! export contains.

use crate::config::one_line;
use crate::error::{Error, Result};
use crate::model::Restart;

/// A systemd command-line word in single quotes, read back by systemd as
/// exactly `text`: C escapes for `\`, `'` and control characters (systemd
/// unescapes them inside quotes), `%%` for `%` (specifiers) and `$$` for `$`
/// (environment variable substitution). Unicode passes through as UTF-8.
pub fn word(text: &str) -> String {
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
pub fn setting(text: &str) -> Option<String> {
    if text.chars().any(char::is_control) || text.trim() != text || text.is_empty() {
        return None;
    }
    Some(text.replace('%', "%%"))
}

/// A value in a systemd EnvironmentFile, double-quoted: inside double quotes
/// systemd keeps every byte (line breaks included) except that `\` escapes
/// one of `"`, `\`, `` ` `` and `$`.
pub fn env_value(text: &str) -> String {
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
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `Restart=` value for a restart policy.
pub fn restart(policy: Restart) -> &'static str {
    match policy {
        Restart::OnFailure => "on-failure",
        Restart::Always => "always",
        Restart::Never => "no",
    }
}

/// The restart policy a `Restart=` value means, in pm's terms (every
/// `on-*` that restarts after a failure is on-failure); None for one pm has
/// no word for (`on-success`).
pub fn restart_policy(value: &str) -> Option<Restart> {
    match value {
        "no" => Some(Restart::Never),
        "always" => Some(Restart::Always),
        "on-failure" | "on-abnormal" | "on-abort" | "on-watchdog" => Some(Restart::OnFailure),
        _ => None,
    }
}

/// `KEY=value` entries of a unit file, continuation lines joined.
pub fn unit_entries(text: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if pending.is_empty() {
            let trimmed = line.trim_start();
            if trimmed.starts_with(['#', ';', '[']) || trimmed.is_empty() {
                continue;
            }
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        if let Some((key, value)) = pending.split_once('=') {
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
        pending.clear();
    }
    entries
}

/// The words of an `ExecStart=` value as systemd runs them: the `-@:+!`
/// prefixes dropped, `%%` read as `%`, quotes and C escapes undone, and
/// `$$` read as `$`.
pub fn exec_words(value: &str) -> std::result::Result<Vec<String>, String> {
    let value = value.trim_start_matches(['-', '@', ':', '+', '!']);
    let mut text = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        text.push(c);
        if c == '%' && chars.peek() == Some(&'%') {
            chars.next();
        }
    }
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                let unescaped = c_unescape(&mut chars)?;
                word.get_or_insert_with(String::new).push(unescaped);
            }
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_string());
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words.into_iter().map(|w| w.replace("$$", "$")).collect())
}

fn c_unescape(chars: &mut std::str::Chars<'_>) -> std::result::Result<char, String> {
    let Some(c) = chars.next() else {
        return Err("a backslash at the end".to_string());
    };
    let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> std::result::Result<char, String> {
        let digits: String = chars.by_ref().take(n).collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == n)
            .and_then(char::from_u32)
            .ok_or_else(|| format!("invalid escape with \"{}\"", one_line(&digits)))
    };
    Ok(match c {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        's' => ' ',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        '0'..='7' => {
            let rest: String = chars.by_ref().take(2).collect();
            let digits = format!("{c}{rest}");
            u32::from_str_radix(&digits, 8)
                .ok()
                .filter(|_| digits.len() == 3)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("invalid octal escape \"{}\"", one_line(&digits)))?
        }
        other => other,
    })
}

/// systemd's EnvironmentFile syntax: `KEY=value` lines, `#` and `;`
/// comments, single quotes literal, double quotes where `\` escapes
/// `"`, `\`, `` ` `` and `$` (and keeps itself before anything else), a
/// backslash-newline joins lines, and an unquoted value loses its trailing
/// blanks.
pub fn env_file(text: &str, file: &str) -> Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    loop {
        // Start of a line: blanks, then a comment, a key or nothing.
        while chars
            .peek()
            .is_some_and(|c| *c == ' ' || *c == '\t' || *c == '\r')
        {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '\n' {
            chars.next();
            line += 1;
            continue;
        }
        if first == '#' || first == ';' {
            for c in chars.by_ref() {
                if c == '\n' {
                    line += 1;
                    break;
                }
            }
            continue;
        }
        let start = line;
        let mut key = String::new();
        let mut found_eq = false;
        while let Some(&c) = chars.peek() {
            if c == '\n' {
                break;
            }
            chars.next();
            if c == '=' {
                found_eq = true;
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_string();
        if !found_eq || key.is_empty() {
            return Err(Error::File {
                path: format!("{file}:{start}"),
                message: "expected KEY=value".to_string(),
            });
        }
        let unterminated = || Error::File {
            path: format!("{file}:{start}"),
            message: format!("unterminated quote in the value of \"{}\"", one_line(&key)),
        };
        let mut value = String::new();
        // The length of `value` that trailing blanks may not cut into
        // (quoted or escaped text).
        let mut keep = 0;
        let mut at_start = true;
        while let Some(c) = chars.next() {
            match c {
                '\n' => {
                    line += 1;
                    break;
                }
                ' ' | '\t' if at_start => {}
                '\'' if at_start => {
                    loop {
                        match chars.next() {
                            None => return Err(unterminated()),
                            Some('\'') => break,
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                value.push(c);
                            }
                        }
                    }
                    // systemd is back before a value: blanks are skipped
                    // and a quote may open again (`'a''b'` is `ab`).
                    keep = value.len();
                    at_start = true;
                }
                '"' if at_start => {
                    loop {
                        match chars.next() {
                            None => return Err(unterminated()),
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some('\n') => line += 1,
                                Some(c) if matches!(c, '"' | '\\' | '`' | '$') => value.push(c),
                                Some(c) => {
                                    value.push('\\');
                                    value.push(c);
                                }
                                None => {}
                            },
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                value.push(c);
                            }
                        }
                    }
                    keep = value.len();
                    at_start = true;
                }
                '\\' => {
                    match chars.next() {
                        Some('\n') => line += 1,
                        Some(c) => value.push(c),
                        None => {}
                    }
                    keep = value.len();
                    at_start = false;
                }
                c => {
                    value.push(c);
                    at_start = false;
                }
            }
        }
        let trimmed_len = value[keep..].trim_end().len() + keep;
        value.truncate(trimmed_len);
        vars.push((key, value));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
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

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// What `word` writes is read back as the same word, on one line, with
    /// nothing left for systemd to expand (`%` specifiers, `$` variables).
    #[test]
    fn words_round_trip() {
        for text in NASTY {
            let line = format!("/bin/sh -c {}", word(text));
            assert!(!line.contains('\n'), "{line}");
            let bare = line.replace("%%", "").replace("$$", "");
            assert!(!bare.contains('%'), "unescaped specifier in {line}");
            assert!(!bare.contains('$'), "variable reference in {line}");
            let words = exec_words(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(words, ["/bin/sh", "-c", text], "{line}");
        }
    }

    #[test]
    fn word_escapes() {
        assert_eq!(word("a b"), "'a b'");
        assert_eq!(word("it's"), "'it\\'s'");
        assert_eq!(word("$PORT 5%"), "'$$PORT 5%%'");
        assert_eq!(word("a\\b\nc"), "'a\\\\b\\nc'");
        assert_eq!(word("\x1b"), "'\\x1b'");
        assert_eq!(word(""), "''");
    }

    #[test]
    fn env_values_round_trip() {
        let mut text = String::new();
        for (i, value) in NASTY.iter().enumerate() {
            text.push_str(&format!("V{i}={}\n", env_value(value)));
        }
        let read = env_file(&text, "APP.env").unwrap_or_else(|e| panic!("{text}: {e}"));
        let expected: Vec<(String, String)> = NASTY
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("V{i}"), v.to_string()))
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn restarts_round_trip() {
        for policy in [Restart::OnFailure, Restart::Always, Restart::Never] {
            assert_eq!(restart_policy(restart(policy)), Some(policy));
        }
        assert_eq!(restart_policy("on-abnormal"), Some(Restart::OnFailure));
        assert_eq!(restart_policy("on-success"), None);
    }

    #[test]
    fn settings() {
        assert_eq!(setting("/srv/100%/app").as_deref(), Some("/srv/100%%/app"));
        assert_eq!(setting("/srv/my app").as_deref(), Some("/srv/my app"));
        assert_eq!(setting("/srv/a\nb"), None);
        assert_eq!(setting(" /srv"), None);
        assert_eq!(setting(""), None);
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("DATABASE_URL"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A.B"));
        assert!(!is_env_name(""));
    }

    #[test]
    fn environment_files() {
        let text = "# c\n; c\nH=\"a\" 'b' c\nA=\"x \\\"q\\\" \\$HOME \\\\ \\n\"\n  B = plain value  \nC='it''s'\nD=\"multi\nline\"\nE=a\\\nb\nF=\nG=\"#not comment\"\n";
        assert_eq!(
            env_file(text, "APP.env").unwrap(),
            pairs(&[
                ("H", "abc"),
                ("A", "x \"q\" $HOME \\ \\n"),
                ("B", "plain value"),
                ("C", "its"),
                ("D", "multi\nline"),
                ("E", "ab"),
                ("F", ""),
                ("G", "#not comment"),
            ])
        );
        let err = env_file("A=1\nB=\"open\n", "prod/APP.env").unwrap_err();
        assert_eq!(
            err.to_string(),
            "prod/APP.env:2: unterminated quote in the value of \"B\""
        );
        let err = env_file("A=1\nnot a line\n", "prod/APP.env").unwrap_err();
        assert_eq!(err.to_string(), "prod/APP.env:2: expected KEY=value");
    }

    #[test]
    fn exec_start_words() {
        let table: [(&str, &[&str]); 6] = [
            ("/bin/sh -c 'echo hi'", &["/bin/sh", "-c", "echo hi"]),
            (
                "/bin/sh -c 'echo \\'q\\' $$PORT 100%% \\\\'",
                &["/bin/sh", "-c", "echo 'q' $PORT 100% \\"],
            ),
            ("-/bin/sh -c \"a  b\"", &["/bin/sh", "-c", "a  b"]),
            (
                "/usr/bin/env a\\sb \\x41\\101",
                &["/usr/bin/env", "a b", "AA"],
            ),
            ("x ''", &["x", ""]),
            ("%%i", &["%i"]),
        ];
        for (value, words) in table {
            assert_eq!(exec_words(value).unwrap(), words, "{value}");
        }
        assert!(exec_words("/bin/sh -c 'open").is_err());
    }

    #[test]
    fn unit_file_entries() {
        let text = "[Unit]\nDescription=x\n# ExecStart=no\n[Service]\nExecStart=/bin/sh -c \\\n  'a b'\nRestart=always\n";
        let entries = unit_entries(text);
        assert_eq!(
            entries.iter().find(|(k, _)| k == "ExecStart").unwrap().1,
            "/bin/sh -c    'a b'"
        );
    }

    proptest::proptest! {
        #[test]
        fn readers_never_panic(text in "(?s).{0,80}") {
            let _ = env_file(&text, "APP.env");
            let _ = exec_words(&text);
            let _ = unit_entries(&text);
        }
    }
}
