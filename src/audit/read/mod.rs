//! Reading production's side: env files, and directories written by
//! `pm export` (systemd, compose or kubernetes), into an audit [`Side`].
//! One module per format (`env`, `systemd`, `compose`, `kubernetes`) turns
//! its files into a `Side`; the syntax of each (quoting, escaping, YAML) is
//! read with [`crate::syntax`], the module `pm export` writes it with.
//!
//! The parsing functions take text and the name to show, and do no I/O; only
//! [`read_against`] and [`read_export_dir`] touch the file system. The export
//! layout is the one `pm export` writes (see docs/parity.md), read liberally:
//! a missing manifest is replaced by looking at the files present, compose
//! commands may be strings or lists, Secrets may hold `stringData` or base64
//! `data`. Values read back here are compared, never printed as they are.

mod compose;
mod env;
mod kubernetes;
mod systemd;

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::Side;
use crate::config::one_line;
use crate::error::{Error, Result, io_message};
use crate::export::{Format, MANIFEST};
use crate::input;

/// Reads every `--against` argument, in order (a later one wins for a
/// variable or process type that several define).
pub fn read_against(paths: &[(std::path::PathBuf, String)]) -> Result<Side> {
    let mut side = Side {
        processes: None,
        ..Side::default()
    };
    for (path, shown) in paths {
        let meta = fs::metadata(path).map_err(|e| Error::File {
            path: shown.clone(),
            message: io_message(&e),
        })?;
        if meta.is_dir() {
            let export = read_export_dir(path, shown)?;
            side.env.extend(export.env);
            side.env_files.extend(export.env_files);
            let processes = side.processes.get_or_insert_with(Vec::new);
            for p in export.processes.unwrap_or_default() {
                processes.retain(|o| o.name != p.name);
                processes.push(p);
            }
            side.process_files.extend(export.process_files);
        } else {
            let text = read_text(path, shown)?;
            let vars = env::read(&text, shown, &side.env)?;
            side.env.extend(vars);
            side.env_files.push(shown.clone());
        }
    }
    Ok(side)
}

fn read_text(path: &Path, shown: &str) -> Result<String> {
    input::read(path).map_err(|e| Error::File {
        path: shown.to_string(),
        message: e.to_string(),
    })
}

/// One file of an export directory: its name in the directory, the name to
/// show, and its text.
pub struct ExportFile {
    pub name: String,
    pub shown: String,
    pub text: String,
}

fn join_shown(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Reads an export directory: the manifest (if any) says the format and
/// the app; without one, the files present decide.
pub fn read_export_dir(dir: &Path, shown: &str) -> Result<Side> {
    let entries = fs::read_dir(dir).map_err(|e| Error::File {
        path: shown.to_string(),
        message: io_message(&e),
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::File {
            path: shown.to_string(),
            message: io_message(&e),
        })?;
        if entry.path().is_file()
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    let mut files = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let shown_name = join_shown(shown, &name);
        let wanted = name == MANIFEST
            || [".env", ".service", ".target", ".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext));
        if !wanted {
            continue;
        }
        let text = read_text(&path, &shown_name)?;
        files.push(ExportFile {
            name,
            shown: shown_name,
            text,
        });
    }
    parse_export(shown, &files)
}

/// Reads an export from its files (pure).
pub fn parse_export(dir: &str, files: &[ExportFile]) -> Result<Side> {
    let mut app = None;
    let mut format = None;
    if let Some(manifest) = files.iter().find(|f| f.name == MANIFEST) {
        let value: Value = serde_json::from_str(&manifest.text).map_err(|e| Error::File {
            path: manifest.shown.clone(),
            message: format!("invalid manifest: {}", one_line(&e.to_string())),
        })?;
        app = value.get("app").and_then(Value::as_str).map(str::to_string);
        let named = value.get("format").and_then(Value::as_str);
        format = match named.and_then(Format::from_name) {
            Some(format) => Some(format),
            None => {
                return Err(Error::File {
                    path: manifest.shown.clone(),
                    message: format!(
                        "unknown export format {} (expected systemd, compose or kubernetes)",
                        named.map_or("(none)".to_string(), |f| format!("\"{}\"", one_line(f)))
                    ),
                });
            }
        };
    }
    let format = match format {
        Some(format) => format,
        None => detect(files).ok_or_else(|| Error::File {
            path: dir.to_string(),
            message: "not a pm export directory (no .pm-export.json, compose.yaml, \
                      systemd units or Kubernetes YAML found)"
                .to_string(),
        })?,
    };
    let files: Vec<&ExportFile> = files.iter().filter(|f| f.name != MANIFEST).collect();
    let mut side = match format {
        Format::Systemd => systemd::read(dir, app.as_deref(), &files),
        Format::Compose => compose::read(dir, &files),
        Format::Kubernetes => kubernetes::read(dir, app.as_deref(), &files),
    }?;
    // The addresses are the engine's own, written by the export for each
    // engine (`pm start` computes its own): not the app's env to compare.
    side.env.retain(|v| !is_address_name(&v.name));
    // A variable missing from an export that carries no env at all is
    // missing from the directory.
    if side.env_files.is_empty() {
        side.env_files.push(dir.to_string());
    }
    Ok(side)
}

/// `PM_<TYPE>_HOST`, `PM_<TYPE>_PORT` and `PM_LISTEN_HOST`: what an export
/// writes for its engine's addresses.
fn is_address_name(name: &str) -> bool {
    name == crate::plan::LISTEN_HOST_VAR
        || name.strip_prefix("PM_").is_some_and(|rest| {
            rest.len() > 5 && (rest.ends_with("_HOST") || rest.ends_with("_PORT"))
        })
}

/// Whether a command line is pm's balancer (`pm balance ...`, pm by any
/// path): the part of an export that runs `proxy`, not a process type.
fn is_balancer(words: &[String]) -> bool {
    matches!(words, [pm, balance, ..] if balance == "balance"
        && (pm == "pm" || pm.ends_with("/pm")))
}

fn detect(files: &[ExportFile]) -> Option<Format> {
    if files
        .iter()
        .any(|f| compose::FILES.contains(&f.name.as_str()))
    {
        Some(Format::Compose)
    } else if files.iter().any(|f| f.name.ends_with(".service")) {
        Some(Format::Systemd)
    } else if files
        .iter()
        .any(|f| f.name.ends_with(".yaml") || f.name.ends_with(".yml"))
    {
        Some(Format::Kubernetes)
    } else {
        None
    }
}

// ---------------------------------------------------------------- YAML values

/// A scalar as text: YAML may read `1` or `true` where a string was meant.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value?.as_array()?.iter().map(scalar).collect()
}

fn count(value: Option<&Value>) -> Option<u32> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings that YAML could read as something else, or not at all.
    pub(super) const TRICKY: [&str; 6] = [
        "echo 'single' \"double\" $$HOME 100% #not-a-comment: x",
        "line one\nline two\ttab",
        "- starts with a dash",
        "yes",
        "",
        "  padded  ",
    ];

    pub(super) fn file(name: &str, text: &str) -> ExportFile {
        ExportFile {
            name: name.to_string(),
            shown: format!("prod/{name}"),
            text: text.to_string(),
        }
    }

    pub(super) fn env_of(side: &Side) -> Vec<(String, String)> {
        side.merged_env()
            .into_iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    }

    pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn bad_exports_are_located_errors() {
        let err = parse_export("prod", &[file("compose.yaml", "services: [\n")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("prod/compose.yaml: invalid YAML: "),
            "{err}"
        );
        assert!(!err.to_string().contains('\n'));
        let err = parse_export("prod", &[file(MANIFEST, r#"{"format":"nomad"}"#)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prod/.pm-export.json: unknown export format \"nomad\" (expected systemd, compose or kubernetes)"
        );
        let err = parse_export("prod", &[file("notes.json", "{}")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("prod: not a pm export directory"),
            "{err}"
        );
    }

    proptest::proptest! {
        #[test]
        fn readers_never_panic(text in "(?s).{0,80}") {
            for name in ["compose.yaml", "a.yaml", "a.service", MANIFEST] {
                let _ = parse_export("prod", &[file(name, &text)]);
            }
        }
    }
}
