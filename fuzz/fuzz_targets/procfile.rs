//! Fuzzes `pm::config::procfile::parse`.
//!
//! Invariants beyond "no panic":
//! - Ok: at least one type; every name is `[A-Za-z0-9_-]+` and unique; every
//!   command is non-empty, trimmed and on one line; lines are increasing and
//!   inside the file; there is exactly one type per significant line (not
//!   blank, not a comment); and rendering the types as `NAME: COMMAND` lines
//!   parses back to the same names and commands.
//! - Err: at least one error, at most one per significant line (or the single
//!   "no process types" error when there are none); each names the file, has
//!   a line inside the file (or none), and displays as one line starting
//!   with `FILE:`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm::config::procfile;
use pm_fuzz::{is_one_line, is_type_name, line_count, text};

const FILE: &str = "config/Procfile.dev";

fuzz_target!(|data: &[u8]| {
    let text = text(data);
    let lines = line_count(&text);
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let significant = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();

    match procfile::parse(&text, FILE) {
        Ok(p) => {
            assert!(!p.types.is_empty(), "Ok with no types");
            assert_eq!(p.types.len(), significant, "one type per significant line");
            let mut last_line = 0;
            for (i, t) in p.types.iter().enumerate() {
                assert!(is_type_name(&t.name), "bad name {:?}", t.name);
                assert!(procfile::is_valid_name(&t.name));
                assert!(!t.command.is_empty(), "empty command for {:?}", t.name);
                assert_eq!(t.command, t.command.trim(), "untrimmed command");
                assert!(!t.command.contains('\n'), "command spans lines");
                assert!(t.line > last_line && t.line <= lines, "line {}", t.line);
                last_line = t.line;
                assert!(
                    p.types[..i].iter().all(|u| u.name != t.name),
                    "duplicate name {:?}",
                    t.name
                );
            }
            let rendered: String = p
                .types
                .iter()
                .map(|t| format!("{}: {}\n", t.name, t.command))
                .collect();
            let again = match procfile::parse(&rendered, FILE) {
                Ok(again) => again,
                Err(e) => panic!("rendered Procfile {rendered:?} does not parse: {e:?}"),
            };
            let pairs = |p: &procfile::Procfile| -> Vec<(String, String)> {
                p.types
                    .iter()
                    .map(|t| (t.name.clone(), t.command.clone()))
                    .collect()
            };
            assert_eq!(pairs(&p), pairs(&again), "round trip");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "Err with no errors");
            assert!(
                errors.len() <= significant.max(1),
                "{} errors for {significant} significant lines",
                errors.len()
            );
            for e in &errors {
                assert_eq!(e.file, FILE);
                if let Some(line) = e.line {
                    assert!(line >= 1 && line <= lines, "error line {line} of {lines}");
                }
                assert!(!e.message.is_empty());
                let shown = e.to_string();
                assert!(is_one_line(&shown), "multi-line error: {shown:?}");
                assert!(shown.starts_with(&format!("{FILE}:")), "{shown:?}");
            }
        }
    }
});
