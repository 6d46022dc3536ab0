//! Fuzzes `pm::config::formation`: `Formation::parse_spec` on the whole
//! input, `Formation::parse_args` on its `\n`-separated lines, `merge`, and
//! `resolve(&["web", "worker", "all"])`.
//!
//! Invariants beyond "no panic":
//! - Ok: every named type is non-empty, trimmed, free of `,` and `=`, not
//!   the keyword `all`, and named once; every count (and `all`) is at most
//!   `MAX_COUNT`; a parsed formation is never empty; rendering it back as
//!   `NAME=N,...,all=N` parses to the same formation.
//! - `parse_args(&[s])` is `parse_spec(s)` for any non-blank `s`; when
//!   `parse_args` accepts several arguments, it equals the `merge` of each
//!   argument parsed alone.
//! - `resolve` either names an unknown type, or gives one count per name:
//!   each named type its count, every other one `all` (else 0); an empty
//!   formation gives 1 to each.
//! - Every error displays as one non-empty line (see `PM_FUZZ_LENIENT` in
//!   docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm::config::formation::{ALL, Formation, FormationError, MAX_COUNT};
use pm_fuzz::{is_one_line, lenient, text};

const NAMES: [&str; 3] = ["web", "worker", "all"];

fn check_error(e: &FormationError) {
    let shown = e.to_string();
    assert!(!shown.is_empty());
    assert!(
        lenient() || is_one_line(&shown),
        "multi-line error: {shown:?}"
    );
}

fn check_formation(f: &Formation) {
    assert!(!f.is_empty(), "a parsed formation is empty: {f:?}");
    for (i, (name, count)) in f.entries.iter().enumerate() {
        assert!(!name.is_empty());
        assert_eq!(name.as_str(), name.trim(), "untrimmed name");
        assert!(!name.contains([',', '=']), "name {name:?}");
        assert_ne!(name, ALL);
        assert!(*count <= MAX_COUNT);
        assert!(
            f.entries[..i].iter().all(|(n, _)| n != name),
            "{name:?} twice"
        );
    }
    if let Some(all) = f.all {
        assert!(all <= MAX_COUNT);
    }
    let mut items: Vec<String> = f.entries.iter().map(|(n, c)| format!("{n}={c}")).collect();
    if let Some(all) = f.all {
        items.push(format!("{ALL}={all}"));
    }
    let rendered = items.join(",");
    assert_eq!(
        Formation::parse_spec(&rendered).as_ref(),
        Ok(f),
        "round trip through {rendered:?}"
    );
    check_resolve(f);
}

fn check_resolve(f: &Formation) {
    match f.resolve(&NAMES) {
        Ok(counts) => {
            assert_eq!(counts.len(), NAMES.len());
            for (name, count) in NAMES.iter().zip(&counts) {
                let expected = if f.is_empty() {
                    1
                } else {
                    f.entries
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(f.all.unwrap_or(0), |(_, c)| *c)
                };
                assert_eq!(*count, expected, "count of {name}");
            }
        }
        Err(e) => {
            assert!(
                f.entries.iter().any(|(n, _)| !NAMES.contains(&n.as_str())),
                "resolve failed without an unknown name: {e}"
            );
            check_error(&e);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = text(data);

    let spec = Formation::parse_spec(&text);
    match &spec {
        Ok(f) => check_formation(f),
        Err(e) => check_error(e),
    }
    if !text.trim().is_empty() {
        assert_eq!(Formation::parse_args(&[text.to_string()]), spec);
    }

    // One argument per line (a final newline ends the last one).
    let args: Vec<String> = text.lines().map(str::to_string).collect();
    match Formation::parse_args(&args) {
        Ok(f) => {
            if f.is_empty() {
                assert!(args.is_empty());
                check_resolve(&f);
            } else {
                check_formation(&f);
            }
            let merged =
                args.iter().fold(Formation::default(), |acc, a| {
                    match Formation::parse_spec(a) {
                        Ok(one) => acc.merge(one),
                        Err(e) => panic!("parse_args accepted {a:?} that parse_spec rejects: {e}"),
                    }
                });
            assert_eq!(merged, f, "parse_args vs merge of parse_spec");
        }
        Err(e) => check_error(&e),
    }
});
