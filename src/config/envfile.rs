//! Env files (`.env`), parsed by the `dotenvy` crate's iterator. Pure: the
//! text comes in, the variables go out; pm's own environment is never
//! modified (dotenvy's `load` functions would do that, so they are not used).
//!
//! Expansion of `${VAR}` and `$VAR` is dotenvy's: a reference resolves to pm's
//! own environment first, then to the lines above it in the same file; an
//! unknown name expands to the empty string; single-quoted values are not
//! expanded. Variables of an earlier env file are not visible to a later one
//! (each file is expanded on its own); the merged result still applies later
//! files over earlier ones.
//!
//! dotenvy reports no line numbers, so this module finds the failing line.

use super::ConfigError;

/// The variables of one env file, in file order (a key defined twice appears
/// twice; the caller applies them in order, so the last one wins).
pub fn parse(text: &str, file: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => vars.push(pair),
            Err(dotenvy::Error::LineParse(line, index)) => {
                let first = line.split('\n').next().unwrap_or("").trim_end_matches('\r');
                let number = locate(text, first);
                let shown: String = first.chars().take(60).collect();
                let ellipsis = if shown.len() < first.len() { "..." } else { "" };
                return Err(ConfigError::new(
                    file,
                    number,
                    format!(
                        "cannot parse \"{}{ellipsis}\" at character {} (expected KEY=VALUE, with quotes closed)",
                        shown.escape_debug(),
                        index + 1
                    ),
                ));
            }
            Err(e) => return Err(ConfigError::new(file, None, e.to_string())),
        }
    }
    Ok(vars)
}

/// The 1-based line where `first` (the start of the failing logical line)
/// stands in `text`.
fn locate(text: &str, first: &str) -> Option<usize> {
    let wanted = first.trim();
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    // dotenvy reports either the whole line or only the part after `KEY=`.
    lines
        .iter()
        .position(|l| l.trim() == wanted)
        .or_else(|| {
            lines
                .iter()
                .position(|l| !wanted.is_empty() && l.contains(wanted))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text, ".env").unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn syntax() {
        let text = "# comment\nA=1\nexport B=\"two words\"\nC=\"quoted # not a comment\"\nD='single $A'\nE=${A}x\nF=$A\nG=${PM_TEST_SURELY_UNDEFINED}\nH=\"line1\\nline2\"\nI=\"multi\nline\"\nJ= spaced \nK=value # trailing comment\nA=again\n";
        assert_eq!(
            vars(text),
            pairs(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "quoted # not a comment"),
                ("D", "single $A"),
                ("E", "1x"),
                ("F", "1"),
                ("G", ""),
                ("H", "line1\nline2"),
                ("I", "multi\nline"),
                ("J", "spaced"),
                ("K", "value"),
                ("A", "again"),
            ])
        );
    }

    #[test]
    fn unquoted_spaces_are_an_error_with_its_line() {
        let e = parse("A=1\nB=two words\n", ".env").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn crlf_and_empty() {
        assert_eq!(vars("A=1\r\nB=2\r\n"), pairs(&[("A", "1"), ("B", "2")]));
        assert_eq!(vars(""), pairs(&[]));
    }

    #[test]
    fn expansion_prefers_the_environment() {
        // PATH is always set for the tests; dotenvy looks at it first.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(vars("PATH=mine\nX=${PATH}\n")[1].1, path);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("A=1\nB=2\nnot a line\n", ".env").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(
            e.to_string(),
            ".env:3: cannot parse \"not a line\" at character 5 (expected KEY=VALUE, with quotes closed)"
        );
        let e = parse("A=\"multi\nline\"\nB=ok\nbad line\n", ".env").unwrap_err();
        assert_eq!(e.line, Some(4));
        let e = parse("A=1\nB=\"never closed\nC=3\n", ".env").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text, ".env");
        }

        #[test]
        fn simple_values_round_trip(vars in proptest::collection::vec(("[A-Z_][A-Z0-9_]{0,10}", "[a-z0-9./:-]{0,20}"), 0..10)) {
            let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            prop_assert_eq!(parse(&text, ".env").unwrap(), vars);
        }
    }
}
