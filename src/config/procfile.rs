//! The Procfile parser: `NAME: COMMAND` per line. Pure: never reads a file.

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessType {
    pub name: String,
    pub command: String,
    /// 1-based line in the Procfile.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procfile {
    pub types: Vec<ProcessType>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Shortens echoed input so an error stays one readable line.
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out.escape_debug().to_string()
}

/// Parses a Procfile, returning every error found (each with its line).
pub fn parse(text: &str, file: &str) -> Result<Procfile, Vec<ConfigError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut types: Vec<ProcessType> = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let content = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = content.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            errors.push(ConfigError::new(
                file,
                Some(line),
                format!("expected \"NAME: COMMAND\", found \"{}\"", shown(trimmed)),
            ));
            continue;
        };
        let name = name.trim_end();
        if !valid_name(name) {
            errors.push(ConfigError::new(
                file,
                Some(line),
                format!(
                    "invalid process type name \"{}\" (use letters, digits, \"_\" and \"-\")",
                    shown(name)
                ),
            ));
            continue;
        }
        let command = command.trim();
        if command.is_empty() {
            errors.push(ConfigError::new(
                file,
                Some(line),
                format!("process type \"{name}\" has an empty command"),
            ));
            continue;
        }
        if let Some(first) = types.iter().find(|t| t.name == name) {
            errors.push(ConfigError::new(
                file,
                Some(line),
                format!(
                    "duplicate process type \"{name}\" (first defined on line {})",
                    first.line
                ),
            ));
            continue;
        }
        types.push(ProcessType {
            name: name.to_string(),
            command: command.to_string(),
            line,
        });
    }
    if types.is_empty() && errors.is_empty() {
        errors.push(ConfigError::new(file, None, "no process types defined"));
    }
    if errors.is_empty() {
        Ok(Procfile { types })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(text: &str) -> Vec<(String, String, usize)> {
        parse(text, "Procfile")
            .unwrap()
            .types
            .into_iter()
            .map(|t| (t.name, t.command, t.line))
            .collect()
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text, "Procfile")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn rules() {
        let text = "\u{feff}# comment\n\nweb: bundle exec rails s -p $PORT\r\n  worker:./work --queue=a:b  \n   # indented comment\nclock:echo tick\nrel-ease_2: x\n";
        assert_eq!(
            names(text),
            vec![
                ("web".into(), "bundle exec rails s -p $PORT".into(), 3),
                ("worker".into(), "./work --queue=a:b".into(), 4),
                ("clock".into(), "echo tick".into(), 6),
                ("rel-ease_2".into(), "x".into(), 7),
            ]
        );
    }

    #[test]
    fn every_error_with_its_line() {
        assert_eq!(
            errors("web: a\nnot a process\nweb: b\nbad name: c\nempty:   \nwörk: d\n"),
            vec![
                "Procfile:2: expected \"NAME: COMMAND\", found \"not a process\"",
                "Procfile:3: duplicate process type \"web\" (first defined on line 1)",
                "Procfile:4: invalid process type name \"bad name\" (use letters, digits, \"_\" and \"-\")",
                "Procfile:5: process type \"empty\" has an empty command",
                "Procfile:6: invalid process type name \"wörk\" (use letters, digits, \"_\" and \"-\")",
            ]
        );
        assert_eq!(errors(""), vec!["Procfile: no process types defined"]);
        assert_eq!(
            errors("# only\n\n  \n"),
            vec!["Procfile: no process types defined"]
        );
        assert_eq!(
            errors(": x\n"),
            vec![
                "Procfile:1: invalid process type name \"\" (use letters, digits, \"_\" and \"-\")"
            ]
        );
    }

    #[test]
    fn long_lines_are_shortened_in_messages() {
        let e = errors(&"x".repeat(500));
        assert!(e[0].len() < 120, "{e:?}");
        assert!(e[0].ends_with("...\""), "{e:?}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text, "Procfile");
        }

        #[test]
        fn round_trip(types in proptest::collection::btree_map("[A-Za-z0-9_-]{1,12}", "[ -~]{1,40}", 1..8)) {
            let types: Vec<(String, String)> = types
                .into_iter()
                .map(|(n, c)| (n, c.trim().to_string()))
                .filter(|(_, c)| !c.is_empty())
                .collect();
            prop_assume!(!types.is_empty());
            let text: String = types.iter().map(|(n, c)| format!("{n}: {c}\n")).collect();
            let parsed = parse(&text, "Procfile").unwrap();
            let back: Vec<(String, String)> =
                parsed.types.into_iter().map(|t| (t.name, t.command)).collect();
            prop_assert_eq!(back, types);
        }
    }
}
