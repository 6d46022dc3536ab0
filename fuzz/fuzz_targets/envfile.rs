//! Fuzzes `pm::config::envfile::parse_with_lookup` (and `parse`).
//!
//! The lookup is deterministic: names starting with `L` resolve to `<NAME>`,
//! every other name is unset.
//!
//! Invariants beyond "no panic":
//! - Differential against dotenvy alone (pm must not parse dotenv syntax
//!   itself): pm accepts the file exactly when dotenvy 0.15.7 accepts it (BOM
//!   stripped, final newline added, as pm documents), with the same keys in
//!   the same order; when the text has no `$`, with the same values too.
//! - Ok: every key is dotenvy's `[A-Za-z_][A-Za-z0-9_.]*`.
//! - lookup is only asked about names written in the file.
//! - Err: the error names the file, has a line inside the file, and displays
//!   as one line starting with `FILE:LINE: `.
//! - `parse` (the process-environment lookup) agrees with the above on
//!   whether the file is accepted.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use pm::config::envfile;
use pm_fuzz::{is_one_line, line_count, text};

const FILE: &str = "config/.env.local";

fn lookup(name: &str) -> Option<String> {
    name.starts_with('L').then(|| format!("<{name}>"))
}

/// dotenvy alone, on the text as pm says it reads it.
fn dotenvy_alone(text: &str) -> Result<Vec<(String, String)>, ()> {
    let mut text = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    dotenvy::from_read_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ())
}

fn is_dotenvy_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fuzz_target!(|data: &[u8]| {
    let text = text(data);
    let lines = line_count(&text);
    let asked = RefCell::new(Vec::<String>::new());
    let recording = |name: &str| {
        asked.borrow_mut().push(name.to_string());
        lookup(name)
    };
    let result = envfile::parse_with_lookup(&text, FILE, &recording);
    for name in asked.borrow().iter() {
        assert!(
            text.contains(name.as_str()),
            "lookup asked for {name:?}, not in the text"
        );
    }

    // No `$`: no process environment can be involved, values are comparable.
    let reference = dotenvy_alone(&text);
    match (&result, &reference) {
        (Ok(vars), Ok(expected)) => {
            let keys =
                |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            assert_eq!(keys(vars), keys(expected), "keys differ from dotenvy's");
            if !text.contains('$') {
                assert_eq!(vars, expected, "values differ from dotenvy's");
            }
        }
        (Err(_), Err(())) => {}
        (Ok(vars), Err(())) => panic!("pm accepts what dotenvy rejects: {vars:?}"),
        (Err(e), Ok(expected)) => panic!("pm rejects what dotenvy accepts ({expected:?}): {e}"),
    }

    match &result {
        Ok(vars) => {
            for (key, _) in vars {
                assert!(is_dotenvy_key(key), "bad key {key:?}");
            }
        }
        Err(e) => {
            assert_eq!(e.file, FILE);
            let line = e.line.expect("env file errors carry a line");
            assert!(line >= 1 && line <= lines, "error line {line} of {lines}");
            assert!(!e.message.is_empty());
            let shown = e.to_string();
            assert!(is_one_line(&shown), "multi-line error: {shown:?}");
            assert!(shown.starts_with(&format!("{FILE}:{line}: ")), "{shown:?}");
        }
    }

    let with_env = envfile::parse(&text, FILE);
    assert_eq!(
        with_env.is_ok(),
        result.is_ok(),
        "parse and parse_with_lookup disagree"
    );
});
