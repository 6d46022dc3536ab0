//! The Procfile parser: `NAME: COMMAND` lines in, process types out.
//!
//! It owns the Procfile grammar (SPEC §1) and every message about a malformed
//! Procfile. It takes the text and the file name to show in messages; it must
//! never read files, look at the environment or run anything, so `pm check`,
//! `pm start`, export, tests and fuzzing all share exactly the same rules.
//!
//! Grammar, line by line (a trailing `\r` is dropped, so CRLF files work, and a
//! UTF-8 byte order mark at the start of the file is ignored):
//! - a blank line, or a line whose first non-blank character is `#`, is ignored;
//! - otherwise the line is `NAME: COMMAND`: optional leading blanks, a NAME made
//!   of `[A-Za-z0-9_-]+`, a colon directly after it, then the command, which is
//!   everything after the first colon with surrounding whitespace trimmed (it may
//!   itself contain colons).
//!
//! All errors are collected, so a user fixes a Procfile in one round. Two
//! shapes from other formats get a hint instead of one error per line: a
//! `NAME:` line with indented lines under it (YAML), and a command ending in
//! `\` followed by continuation lines.

use std::collections::HashMap;

use super::ConfigError;

/// One process type: a line `NAME: COMMAND` of the Procfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessType {
    pub name: String,
    pub command: String,
    /// 1-based line in the Procfile.
    pub line: usize,
}

/// A parsed Procfile: its process types in file order.
///
/// File order matters: a type's position gives its port block (SPEC §1, Ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procfile {
    pub types: Vec<ProcessType>,
}

/// The longest piece of user text echoed back in a message; longer text is cut
/// so an error stays one readable line even for a pasted script.
const ECHO_MAX_CHARS: usize = 60;

/// Parses a Procfile. `file` is the name to show in messages (as the user
/// gave it). Returns every error found, each with its line, or the types.
pub fn parse(text: &str, file: &str) -> Result<Procfile, Vec<ConfigError>> {
    // A BOM is invisible in editors; treating it as part of the first name
    // would produce an error the user cannot see the reason for.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut types: Vec<ProcessType> = Vec::new();
    let mut errors = Vec::new();
    // The first line on which each name appeared, even when that line had
    // another problem, so a duplicate always points at the first definition.
    let mut first_line: HashMap<String, usize> = HashMap::new();

    // A `NAME:` line with nothing after it, and its indentation: the lines
    // indented under it are YAML (a docker-compose or process-compose file
    // given as a Procfile), not process types of their own.
    let mut yaml_parent: Option<(usize, String)> = None;
    // A command ending in `\`: the lines after it were meant as its
    // continuation, which a Procfile does not have.
    let mut continued = false;

    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let content = line.trim_start();
        if content.trim_end().is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if let Some((parent_indent, _)) = &yaml_parent {
            if indent > *parent_indent {
                continue;
            }
            yaml_parent = None;
        }
        if continued {
            continued = content.trim_end().ends_with('\\');
            continue;
        }
        let error = |message: String| ConfigError::new(file, Some(number), message);

        let Some((name, command)) = content.split_once(':') else {
            errors.push(error(malformed(line)));
            continue;
        };
        if name.is_empty() {
            errors.push(error(format!(
                "missing process type name before \":\" in {}",
                echo(line)
            )));
            continue;
        }
        if name.chars().any(char::is_whitespace) {
            // `web : cmd` is a near miss worth naming; `echo http://x` is not
            // an attempt at a name at all, so it gets the general message.
            let trimmed = name.trim_end();
            if is_valid_name(trimmed) {
                errors.push(error(format!(
                    "unexpected blank between process type name {} and \":\"",
                    echo(trimmed)
                )));
            } else {
                errors.push(error(malformed(line)));
            }
            continue;
        }
        if !is_valid_name(name) {
            errors.push(error(format!(
                "invalid process type name {} (only letters, digits, \"_\" and \"-\" are allowed)",
                echo(name)
            )));
            continue;
        }
        if let Some(&first) = first_line.get(name) {
            errors.push(error(format!(
                "duplicate process type \"{name}\" (first defined on line {first})"
            )));
            continue;
        }
        first_line.insert(name.to_string(), number);

        let command = command.trim();
        if command.is_empty() {
            let next_indented = text
                .split('\n')
                .skip(index + 1)
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .is_some_and(|l| l.len() - l.trim_start().len() > indent);
            if next_indented {
                errors.push(error(format!(
                    "process type \"{name}\" has an empty command, and the indented lines under it look like YAML (a Procfile has one \"NAME: COMMAND\" line per type)"
                )));
                yaml_parent = Some((indent, name.to_string()));
            } else {
                errors.push(error(format!(
                    "process type \"{name}\" has an empty command"
                )));
            }
            continue;
        }
        if command.ends_with('\\') && continues(text, index) {
            errors.push(error(format!(
                "the command of \"{name}\" ends with \"\\\" (a Procfile has no continuation lines: write the command on one line)"
            )));
            continued = true;
            continue;
        }
        types.push(ProcessType {
            name: name.to_string(),
            command: command.to_string(),
            line: number,
        });
    }

    // "No process types" is only news when nothing else went wrong: a file
    // whose every line is malformed already says so line by line.
    if types.is_empty() && errors.is_empty() {
        errors.push(ConfigError::new(file, None, "no process types defined"));
    }
    if errors.is_empty() {
        Ok(Procfile { types })
    } else {
        Err(errors)
    }
}

/// Whether the line after line `index` (0-based), skipping blanks and
/// comments, was meant to continue it: it is not a `NAME: COMMAND` line.
fn continues(text: &str, index: usize) -> bool {
    text.split('\n')
        .skip(index + 1)
        .map(|l| l.strip_suffix('\r').unwrap_or(l).trim())
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|next| {
            !next
                .split_once(':')
                .is_some_and(|(name, command)| is_valid_name(name) && !command.trim().is_empty())
        })
}

/// Whether `name` is a valid process type name: `[A-Za-z0-9_-]+`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn malformed(line: &str) -> String {
    format!("expected \"NAME: COMMAND\", found {}", echo(line.trim()))
}

/// Quotes user text for a message: cut to [`ECHO_MAX_CHARS`] characters and
/// escaped like a Rust string, so quotes and control characters cannot break
/// the one-line message.
pub(crate) fn echo(text: &str) -> String {
    let mut chars = text.char_indices();
    match chars.nth(ECHO_MAX_CHARS) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn types(text: &str) -> Vec<(String, String, usize)> {
        match parse(text, "Procfile") {
            Ok(p) => p
                .types
                .into_iter()
                .map(|t| (t.name, t.command, t.line))
                .collect(),
            Err(e) => panic!("unexpected errors: {e:?}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text, "Procfile") {
            Ok(p) => panic!("expected errors, got {p:?}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn t(name: &str, command: &str, line: usize) -> (String, String, usize) {
        (name.to_string(), command.to_string(), line)
    }

    #[test]
    fn basic_types_in_file_order() {
        assert_eq!(
            types("web: bundle exec rails s\nworker: sidekiq\n"),
            vec![
                t("web", "bundle exec rails s", 1),
                t("worker", "sidekiq", 2)
            ]
        );
    }

    #[test]
    fn space_after_colon_is_optional_and_command_is_trimmed() {
        assert_eq!(
            types("web:run\nb:   run  it  \t\n"),
            vec![t("web", "run", 1), t("b", "run  it", 2)]
        );
    }

    #[test]
    fn command_may_contain_colons() {
        assert_eq!(
            types("web: python -m http.server --bind 127.0.0.1:$PORT\n"),
            vec![t("web", "python -m http.server --bind 127.0.0.1:$PORT", 1)]
        );
        assert_eq!(types("a::b:c"), vec![t("a", ":b:c", 1)]);
    }

    #[test]
    fn name_charset() {
        assert_eq!(
            types("Web_2-x: a\n9: b\n_: c\n-: d"),
            vec![
                t("Web_2-x", "a", 1),
                t("9", "b", 2),
                t("_", "c", 3),
                t("-", "d", 4)
            ]
        );
    }

    #[test]
    fn blank_and_comment_lines_are_ignored_and_lines_counted() {
        let text = "\n# comment: not a type\n   \t\n   # indented: comment\nweb: a\n\n\tworker: b # not a comment\n";
        assert_eq!(
            types(text),
            vec![t("web", "a", 5), t("worker", "b # not a comment", 7)]
        );
    }

    #[test]
    fn leading_blanks_before_name_are_allowed() {
        assert_eq!(types("  \tweb: a"), vec![t("web", "a", 1)]);
    }

    #[test]
    fn crlf_and_bom_are_accepted() {
        assert_eq!(
            types("\u{feff}web: a\r\nworker: b\r\n\r\n# c\r\n"),
            vec![t("web", "a", 1), t("worker", "b", 2)]
        );
    }

    #[test]
    fn no_trailing_newline() {
        assert_eq!(types("web: a"), vec![t("web", "a", 1)]);
    }

    #[test]
    fn malformed_line() {
        assert_eq!(
            errors("web: a\nfoo bar\n"),
            vec![r#"Procfile:2: expected "NAME: COMMAND", found "foo bar""#]
        );
    }

    #[test]
    fn malformed_line_with_colon_later() {
        assert_eq!(
            errors("echo http://example.com\n"),
            vec![r#"Procfile:1: expected "NAME: COMMAND", found "echo http://example.com""#]
        );
    }

    #[test]
    fn long_echoed_text_is_truncated() {
        let long = "x".repeat(100);
        assert_eq!(
            errors(&format!("web: a\n{long}\n")),
            vec![format!(
                r#"Procfile:2: expected "NAME: COMMAND", found "{}"..."#,
                "x".repeat(60)
            )]
        );
    }

    #[test]
    fn echoed_text_is_escaped() {
        assert_eq!(
            errors("say \"hi\"\u{7}\n"),
            vec![r#"Procfile:1: expected "NAME: COMMAND", found "say \"hi\"\u{7}""#]
        );
    }

    #[test]
    fn invalid_name() {
        assert_eq!(
            errors("web.1: a\n"),
            vec![
                r#"Procfile:1: invalid process type name "web.1" (only letters, digits, "_" and "-" are allowed)"#
            ]
        );
        assert_eq!(
            errors("wéb: a\n"),
            vec![
                r#"Procfile:1: invalid process type name "wéb" (only letters, digits, "_" and "-" are allowed)"#
            ]
        );
    }

    #[test]
    fn blank_before_colon() {
        assert_eq!(
            errors("web : a\n"),
            vec![r#"Procfile:1: unexpected blank between process type name "web" and ":""#]
        );
    }

    #[test]
    fn missing_name() {
        assert_eq!(
            errors("  : a\n"),
            vec![r#"Procfile:1: missing process type name before ":" in "  : a""#]
        );
    }

    #[test]
    fn empty_command() {
        assert_eq!(
            errors("a: x\nb: y\nc: z\nweb:   \n"),
            vec![r#"Procfile:4: process type "web" has an empty command"#]
        );
        assert_eq!(
            errors("web:"),
            vec![r#"Procfile:1: process type "web" has an empty command"#]
        );
    }

    #[test]
    fn duplicate_name() {
        assert_eq!(
            errors("web: a\nworker: b\nweb: c\n"),
            vec![r#"Procfile:3: duplicate process type "web" (first defined on line 1)"#]
        );
    }

    #[test]
    fn duplicate_of_a_definition_with_an_empty_command() {
        assert_eq!(
            errors("web:\nweb: a\n"),
            vec![
                r#"Procfile:1: process type "web" has an empty command"#,
                r#"Procfile:2: duplicate process type "web" (first defined on line 1)"#,
            ]
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        assert_eq!(
            types("web: a\nWeb: b"),
            vec![t("web", "a", 1), t("Web", "b", 2)]
        );
    }

    #[test]
    fn no_process_types() {
        assert_eq!(errors(""), vec!["Procfile: no process types defined"]);
        assert_eq!(
            errors("# only\n\n  \r\n"),
            vec!["Procfile: no process types defined"]
        );
    }

    #[test]
    fn every_error_is_collected() {
        assert_eq!(
            errors("web: a\nbad line\nweb: b\nworker:\nx.y: z\n"),
            vec![
                r#"Procfile:2: expected "NAME: COMMAND", found "bad line""#,
                r#"Procfile:3: duplicate process type "web" (first defined on line 1)"#,
                r#"Procfile:4: process type "worker" has an empty command"#,
                r#"Procfile:5: invalid process type name "x.y" (only letters, digits, "_" and "-" are allowed)"#,
            ]
        );
    }

    #[test]
    fn errors_carry_file_and_line() {
        let Err(errors) = parse("\n\nnope\n", "config/Procfile.dev") else {
            panic!("expected an error");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, "config/Procfile.dev");
        assert_eq!(errors[0].line, Some(3));
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{1,12}"
    }

    fn command_strategy() -> impl Strategy<Value = String> {
        // Any printable text without line breaks that starts and ends with a
        // non-blank character, since the parser trims the command.
        "[!-~]([ -~]{0,30}[!-~])?"
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = parse(&text, "Procfile");
        }

        #[test]
        fn never_panics_on_near_valid_text(
            lines in prop::collection::vec(
                prop_oneof![
                    "[ \t]{0,2}[A-Za-z0-9_.:# -]{0,10}:[ ]{0,2}[ -~]{0,10}",
                    "[ \t#:\r]{0,4}",
                    "[a-z]{1,5}",
                    "\u{feff}?[a-z]{1,3}:[^\n]{0,5}",
                ],
                0..8,
            ),
            crlf in any::<bool>(),
        ) {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            match parse(&text, "Procfile") {
                Ok(p) => {
                    for t in &p.types {
                        prop_assert!(is_valid_name(&t.name));
                        prop_assert!(!t.command.is_empty());
                        prop_assert!(t.line >= 1 && t.line <= lines.len());
                    }
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for e in &errors {
                        prop_assert_eq!(&e.file, "Procfile");
                        prop_assert!(!e.message.contains('\n'));
                        if let Some(line) = e.line {
                            prop_assert!(line >= 1 && line <= lines.len());
                        }
                    }
                }
            }
        }

        #[test]
        fn round_trip(
            entries in prop::collection::btree_map(name_strategy(), command_strategy(), 1..8),
            blanks in prop::collection::vec(0usize..3, 8),
            indent in "[ \t]{0,2}",
            space in "[ ]{0,2}",
            crlf in any::<bool>(),
        ) {
            let newline = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            let mut expected = Vec::new();
            let mut line = 0;
            for (i, (name, command)) in entries.iter().enumerate() {
                for _ in 0..blanks[i] {
                    text.push_str("# filler: comment");
                    text.push_str(newline);
                    line += 1;
                }
                line += 1;
                text.push_str(&format!("{indent}{name}:{space}{command}{newline}"));
                expected.push(ProcessType { name: name.clone(), command: command.clone(), line });
            }
            prop_assert_eq!(parse(&text, "Procfile"), Ok(Procfile { types: expected }));
        }
    }
}
