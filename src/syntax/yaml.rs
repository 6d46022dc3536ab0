//! YAML, the syntax of compose files and Kubernetes objects: written by
//! `pm export` with serde-saphyr, and read back by `pm audit` with the same
//! crate, so every string pm writes reads back as itself.
//!
//! Pure text in, text or values out: what the documents mean is for the
//! export and the audit.

use serde::Serialize;
use serde_json::Value;

use crate::config::one_line;
use crate::error::{Error, Result};

/// YAML with serde-saphyr: flow-free block style, strings never in block
/// scalars (double quotes keep every byte), YAML 1.1 spellings quoted.
pub fn write<T: Serialize>(value: &T) -> Result<String> {
    let options = serde_saphyr::ser_options! {
        prefer_block_scalars: false,
    };
    let mut text = serde_saphyr::to_string_with_options(value, options)
        .map_err(|e| Error::Internal(format!("YAML: {e}")))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Every document of a YAML stream but empty ones; `shown` names the file
/// in the one-line error.
pub fn documents(text: &str, shown: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::File {
        path: shown.to_string(),
        message: format!(
            "invalid YAML: {}",
            one_line(e.to_string().lines().next().unwrap_or("unreadable"))
        ),
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write` must quote what a YAML 1.1 reader would take for something
    /// other than a string, and `documents` read back every string exactly.
    #[test]
    fn yaml_strings_round_trip() {
        let tricky = [
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "true",
            "False",
            "1.0",
            "0x10",
            "012",
            "1e3",
            "~",
            "null",
            "Null",
            ":",
            "- x",
            "#x",
            "a: b",
            "a #b",
            "'",
            "\"",
            "",
            " ",
            "\n",
            "a\nb\n",
            "\t",
            "@x",
            "`x",
            "!x",
            "&x",
            "*x",
            "%x",
            "{x}",
            "[x]",
            "|",
            ">",
            "?",
            "1:20",
            "2001-12-14",
            ".inf",
            ".NaN",
            "<<",
            "=",
            "é ✓ 🚀",
            "\\",
            "x\\n",
            "\x1b",
            "$PORT",
            "100%",
        ];
        let value: Vec<(String, Vec<String>)> = tricky
            .iter()
            .map(|s| (s.to_string(), vec![s.to_string()]))
            .collect();
        let map: std::collections::BTreeMap<String, Vec<String>> = value.into_iter().collect();
        let text = write(&map).unwrap();
        let back = documents(&text, "t.yaml").unwrap();
        assert_eq!(back, [serde_json::to_value(&map).unwrap()], "{text}");
        for line in text.lines() {
            // Every plain scalar that YAML 1.1 could read as another type is quoted.
            for word in [
                "yes", "no", "on", "off", "y", "n", "~", "null", "1.0", "0x10",
            ] {
                assert_ne!(line.trim(), format!("- {word}"), "{text}");
            }
        }
    }
}
