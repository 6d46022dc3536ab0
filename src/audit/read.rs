//! Reading production's side: env files, and directories written by
//! `pm export` (systemd, compose or kubernetes), into an audit [`Side`].
//!
//! The parsing functions take text and the name to show, and do no I/O; only
//! [`read_against`] touches the file system. The export layout is the one
//! `pm export` writes (see docs/parity.md), read liberally: a missing
//! manifest is replaced by looking at the files present, compose commands may
//! be strings or lists, Secrets may hold `stringData` or base64 `data`.
//! Values read back here are compared, never printed as they are.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use super::{Process, Side, Stated, Var};
use crate::config::{envfile, one_line};
use crate::error::{Error, Result, io_message};
use crate::model::Restart;
use crate::syntax::{compose, kubernetes, sh, systemd, yaml};

/// The manifest `pm export` writes last in its directory.
pub const MANIFEST: &str = ".pm-export.json";

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
            let earlier = side.env.clone();
            let lookup = |name: &str| -> Option<String> {
                earlier
                    .iter()
                    .rev()
                    .find(|v| v.name == name)
                    .map(|v| v.value.clone())
                    .or_else(|| std::env::var(name).ok())
            };
            let vars = envfile::parse_with_lookup(&text, shown, &lookup)?;
            side.env.extend(vars.into_iter().map(|(name, value)| Var {
                name,
                value,
                file: shown.clone(),
            }));
            side.env_files.push(shown.clone());
        }
    }
    Ok(side)
}

fn read_text(path: &Path, shown: &str) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::File {
        path: shown.to_string(),
        message: io_message(&e),
    })
}

/// The three layouts `pm export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Systemd,
    Compose,
    Kubernetes,
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
        format = match value.get("format").and_then(Value::as_str) {
            Some("systemd") => Some(Format::Systemd),
            Some("compose") => Some(Format::Compose),
            Some("kubernetes") => Some(Format::Kubernetes),
            other => {
                return Err(Error::File {
                    path: manifest.shown.clone(),
                    message: format!(
                        "unknown export format {} (expected systemd, compose or kubernetes)",
                        other.map_or("(none)".to_string(), |f| format!("\"{}\"", one_line(f)))
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
        Format::Systemd => systemd(dir, app.as_deref(), &files),
        Format::Compose => compose(dir, &files),
        Format::Kubernetes => kubernetes(dir, app.as_deref(), &files),
    }?;
    // A variable missing from an export that carries no env at all is
    // missing from the directory.
    if side.env_files.is_empty() {
        side.env_files.push(dir.to_string());
    }
    Ok(side)
}

const COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

fn detect(files: &[ExportFile]) -> Option<Format> {
    if files
        .iter()
        .any(|f| COMPOSE_FILES.contains(&f.name.as_str()))
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

// ---------------------------------------------------------------- systemd

fn systemd(dir: &str, app: Option<&str>, files: &[&ExportFile]) -> Result<Side> {
    let app = app.map(str::to_string).or_else(|| {
        files
            .iter()
            .find_map(|f| f.name.strip_suffix(".target"))
            .or_else(|| files.iter().find_map(|f| f.name.strip_suffix(".env")))
            .map(str::to_string)
    });
    let prefix = app.as_ref().map(|a| format!("{a}-")).unwrap_or_default();
    let type_of = |unit: &str| -> String {
        unit.strip_prefix(prefix.as_str())
            .unwrap_or(unit)
            .to_string()
    };

    let mut side = Side::default();
    let env_file = app
        .as_ref()
        .and_then(|a| files.iter().find(|f| f.name == format!("{a}.env")))
        .or_else(|| files.iter().find(|f| f.name.ends_with(".env")));
    if let Some(file) = env_file {
        side.env = systemd::env_file(&file.text, &file.shown)?
            .into_iter()
            .map(|(name, value)| Var {
                name,
                value,
                file: file.shown.clone(),
            })
            .collect();
        side.env_files.push(file.shown.clone());
    }

    // Instances wanted by the target: `APP-web@5000.service`.
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let target = app
        .as_ref()
        .and_then(|a| files.iter().find(|f| f.name == format!("{a}.target")))
        .or_else(|| files.iter().find(|f| f.name.ends_with(".target")));
    if let Some(target) = target {
        for (key, value) in systemd::unit_entries(&target.text) {
            if key == "Wants" || key == "Requires" {
                for unit in value.split_whitespace() {
                    if let Some((template, _instance)) = unit
                        .strip_suffix(".service")
                        .and_then(|u| u.split_once('@'))
                    {
                        *counts.entry(type_of(template)).or_insert(0) += 1;
                    }
                }
            }
        }
    }

    let mut processes = Vec::new();
    for file in files.iter().filter(|f| f.name.ends_with(".service")) {
        let stem = file.name.trim_end_matches(".service");
        let (name, template) = match stem.strip_suffix('@') {
            Some(template) => (type_of(template), true),
            None if stem.contains('@') => continue,
            None => (type_of(stem), false),
        };
        let entries = systemd::unit_entries(&file.text);
        let get = |key: &str| {
            entries
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let Some(exec) = get("ExecStart") else {
            return Err(Error::File {
                path: file.shown.clone(),
                message: "no ExecStart= line".to_string(),
            });
        };
        let words = systemd::exec_words(exec).map_err(|message| Error::File {
            path: file.shown.clone(),
            message: format!("ExecStart=: {message}"),
        })?;
        let one_shot = !template || get("Type") == Some("oneshot");
        let restart_text = get("Restart").unwrap_or("no").to_string();
        let restart = match restart_text.as_str() {
            "no" => Some(Restart::Never),
            "always" => Some(Restart::Always),
            "on-failure" | "on-abnormal" | "on-abort" | "on-watchdog" => Some(Restart::OnFailure),
            _ => None,
        };
        processes.push(Process {
            name: name.clone(),
            command: sh::command(&words),
            file: file.shown.clone(),
            count: if target.is_some() {
                Stated::Yes(counts.get(&name).copied().unwrap_or(0))
            } else {
                Stated::NotCarried
            },
            ready: Stated::NotCarried,
            live: Stated::NotCarried,
            restart: match restart {
                Some(r) => Stated::Yes((r, format!("Restart={restart_text}"))),
                None => Stated::NotCarried,
            },
            one_shot,
            settings_file: None,
        });
    }
    side.process_files = vec![dir.to_string()];
    side.processes = Some(processes);
    Ok(side)
}

// ---------------------------------------------------------------- YAML

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

// ---------------------------------------------------------------- compose

fn compose(dir: &str, files: &[&ExportFile]) -> Result<Side> {
    let Some(file) = COMPOSE_FILES
        .iter()
        .find_map(|name| files.iter().find(|f| f.name == *name))
    else {
        return Err(Error::File {
            path: join_shown(dir, "compose.yaml"),
            message: "not found".to_string(),
        });
    };
    let docs = yaml::documents(&file.text, &file.shown)?;
    let Some(services) = docs
        .first()
        .and_then(|d| d.get("services"))
        .and_then(Value::as_object)
    else {
        return Err(Error::File {
            path: file.shown.clone(),
            message: "no services: mapping".to_string(),
        });
    };
    let mut side = Side::default();
    let mut processes = Vec::new();
    for (name, service) in services {
        let command = match service.get("command") {
            Some(Value::String(s)) => compose::unescape(s),
            Some(list @ Value::Array(_)) => {
                let words: Vec<String> = strings(Some(list))
                    .unwrap_or_default()
                    .iter()
                    .map(|w| compose::unescape(w))
                    .collect();
                sh::command(&words)
            }
            _ => String::new(),
        };
        match service.get("environment") {
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let value = scalar(value).unwrap_or_default();
                    push_first(&mut side.env, key, &compose::unescape(&value), &file.shown);
                }
            }
            Some(Value::Array(list)) => {
                for item in list.iter().filter_map(Value::as_str) {
                    let (key, value) = item.split_once('=').unwrap_or((item, ""));
                    push_first(&mut side.env, key, &compose::unescape(value), &file.shown);
                }
            }
            _ => {}
        }
        let replicas = count(service.get("deploy").and_then(|d| d.get("replicas")))
            .or_else(|| count(service.get("scale")))
            .unwrap_or(1);
        let health = service
            .get("healthcheck")
            .filter(|h| h.get("disable").and_then(Value::as_bool) != Some(true));
        let ready = match health {
            Some(h) => Stated::Yes(match h.get("test") {
                Some(Value::Array(test)) => {
                    test.iter().filter_map(scalar).collect::<Vec<_>>().join(" ")
                }
                Some(other) => scalar(other).unwrap_or_default(),
                None => "healthcheck".to_string(),
            }),
            None => Stated::Absent,
        };
        let restart_text = service
            .get("restart")
            .and_then(scalar)
            .or_else(|| {
                service
                    .get("deploy")
                    .and_then(|d| d.get("restart_policy"))
                    .and_then(|p| p.get("condition"))
                    .and_then(scalar)
            })
            .unwrap_or_else(|| "no".to_string());
        let restart = match restart_text.as_str() {
            "no" | "none" | "false" => Some(Restart::Never),
            "always" | "unless-stopped" | "any" => Some(Restart::Always),
            t if t.starts_with("on-failure") => Some(Restart::OnFailure),
            _ => None,
        };
        processes.push(Process {
            name: name.clone(),
            command,
            file: file.shown.clone(),
            count: Stated::Yes(replicas),
            ready,
            // Compose has one healthcheck, and does not restart on it.
            live: Stated::NotCarried,
            restart: match restart {
                Some(r) => Stated::Yes((r, format!("restart: {restart_text}"))),
                None => Stated::NotCarried,
            },
            one_shot: name == crate::plan::RELEASE,
            settings_file: None,
        });
    }
    side.env_files.push(file.shown.clone());
    side.process_files.push(file.shown.clone());
    side.processes = Some(processes);
    Ok(side)
}

/// Adds a variable unless an earlier one has its name: every service
/// carries the same env, and PORT differs per service (it is not compared).
fn push_first(env: &mut Vec<Var>, name: &str, value: &str, file: &str) {
    if !env.iter().any(|v| v.name == name) {
        env.push(Var {
            name: name.to_string(),
            value: value.to_string(),
            file: file.to_string(),
        });
    }
}

// ---------------------------------------------------------------- kubernetes

fn kubernetes(dir: &str, app: Option<&str>, files: &[&ExportFile]) -> Result<Side> {
    let mut side = Side::default();
    let mut processes: Vec<Process> = Vec::new();
    let mut container_env: Vec<Var> = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.name.ends_with(".yaml") || f.name.ends_with(".yml"))
    {
        let mut objects = Vec::new();
        for doc in yaml::documents(&file.text, &file.shown)? {
            // A `kind: List` holds its objects in `items`.
            match doc.get("items").and_then(Value::as_array) {
                Some(items) if doc.get("kind").and_then(Value::as_str) == Some("List") => {
                    objects.extend(items.iter().cloned());
                }
                _ => objects.push(doc),
            }
        }
        for object in objects {
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
            match kind {
                "ConfigMap" => {
                    if let Some(data) = object.get("data").and_then(Value::as_object) {
                        for (key, value) in data {
                            push_var(&mut side, key, &scalar(value).unwrap_or_default(), file);
                        }
                    }
                }
                "Secret" => {
                    if let Some(data) = object.get("stringData").and_then(Value::as_object) {
                        for (key, value) in data {
                            push_var(&mut side, key, &scalar(value).unwrap_or_default(), file);
                        }
                    }
                    if let Some(data) = object.get("data").and_then(Value::as_object) {
                        for (key, value) in data {
                            let encoded = scalar(value).unwrap_or_default();
                            let decoded =
                                kubernetes::secret_value(&encoded).ok_or_else(|| Error::File {
                                    path: file.shown.clone(),
                                    message: format!(
                                        "Secret data \"{}\" is not base64-encoded UTF-8 text",
                                        one_line(key)
                                    ),
                                })?;
                            push_var(&mut side, key, &decoded, file);
                        }
                    }
                }
                "Deployment" | "StatefulSet" | "Job" => {
                    let process = workload(&object, kind, app, file)?;
                    if let Some(container) = first_container(&object)
                        && let Some(env) = container.get("env").and_then(Value::as_array)
                    {
                        for item in env {
                            if let (Some(name), Some(value)) = (
                                item.get("name").and_then(Value::as_str),
                                item.get("value").and_then(scalar),
                            ) && !container_env.iter().any(|v| v.name == name)
                            {
                                container_env.push(Var {
                                    name: name.to_string(),
                                    value,
                                    file: file.shown.clone(),
                                });
                            }
                        }
                    }
                    processes.retain(|p| p.name != process.name);
                    processes.push(process);
                }
                _ => {}
            }
        }
    }
    // Env set on a container comes after the ConfigMap and Secret, as
    // Kubernetes lets it win over `envFrom`.
    side.env.extend(container_env);
    side.process_files = vec![dir.to_string()];
    side.processes = Some(processes);
    Ok(side)
}

fn push_var(side: &mut Side, key: &str, value: &str, file: &ExportFile) {
    side.env.push(Var {
        name: key.to_string(),
        value: value.to_string(),
        file: file.shown.clone(),
    });
    if !side.env_files.contains(&file.shown) {
        side.env_files.push(file.shown.clone());
    }
}

fn first_container(object: &Value) -> Option<&Value> {
    object
        .pointer("/spec/template/spec/containers")?
        .as_array()?
        .first()
}

fn probe(container: Option<&Value>, key: &str) -> Stated<String> {
    let Some(probe) = container.and_then(|c| c.get(key)) else {
        return Stated::Absent;
    };
    let text = if let Some(path) = probe.pointer("/httpGet/path").and_then(scalar) {
        format!("http {path}")
    } else if probe.get("tcpSocket").is_some() {
        "tcp".to_string()
    } else if let Some(command) = strings(probe.pointer("/exec/command")) {
        format!("exec {}", sh::command(&command))
    } else {
        "probe".to_string()
    };
    Stated::Yes(text)
}

fn workload(object: &Value, kind: &str, app: Option<&str>, file: &ExportFile) -> Result<Process> {
    let metadata_name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let app = app.map(str::to_string).or_else(|| {
        object
            .pointer("/metadata/labels/app.kubernetes.io~1name")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let name = object
        .pointer("/metadata/annotations/pm~1process-type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            app.as_ref()
                .and_then(|a| metadata_name.strip_prefix(&format!("{a}-")))
                .unwrap_or(metadata_name)
                .to_string()
        });
    let container = first_container(object);
    let Some(container) = container else {
        return Err(Error::File {
            path: file.shown.clone(),
            message: format!("{kind} \"{}\" has no container", one_line(metadata_name)),
        });
    };
    let mut words = strings(container.get("command")).unwrap_or_default();
    words.extend(strings(container.get("args")).unwrap_or_default());
    let one_shot = kind == "Job";
    Ok(Process {
        name,
        command: sh::command(&words),
        file: file.shown.clone(),
        count: if one_shot {
            Stated::NotCarried
        } else {
            Stated::Yes(count(object.pointer("/spec/replicas")).unwrap_or(1))
        },
        ready: probe(Some(container), "readinessProbe"),
        live: probe(Some(container), "livenessProbe"),
        // A Deployment's pods always restart; Kubernetes has no other policy
        // for them, so pm's is not carried.
        restart: Stated::NotCarried,
        one_shot,
        settings_file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> ExportFile {
        ExportFile {
            name: name.to_string(),
            shown: format!("prod/{name}"),
            text: text.to_string(),
        }
    }

    fn env_of(side: &Side) -> Vec<(String, String)> {
        side.merged_env()
            .into_iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn systemd_files() -> Vec<ExportFile> {
        vec![
            file(
                MANIFEST,
                r#"{"app":"shop","format":"systemd","files":["shop.env","shop.target","shop-web@.service","shop-release.service"]}"#,
            ),
            file(
                "shop.env",
                "DATABASE_URL=\"postgres://u:p@db/app\"\nRAILS_ENV=\"production\"\n",
            ),
            file(
                "shop.target",
                "[Unit]\nWants=shop-web@5000.service shop-web@5001.service\nWants=shop-release.service\n",
            ),
            file(
                "shop-web@.service",
                "[Service]\nEnvironment=PORT=%i\nExecStart=/bin/sh -c 'bundle exec puma -p $${PORT}'\nRestart=on-failure\n",
            ),
            file(
                "shop-release.service",
                "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'rake db:migrate'\n",
            ),
        ]
    }

    #[test]
    fn systemd_export() {
        let side = parse_export("prod", &systemd_files()).unwrap();
        assert_eq!(
            env_of(&side),
            pairs(&[
                ("DATABASE_URL", "postgres://u:p@db/app"),
                ("RAILS_ENV", "production")
            ])
        );
        let processes = side.processes.unwrap();
        let summary: Vec<(String, String, Stated<u32>, bool)> = processes
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.command.clone(),
                    p.count.clone(),
                    p.one_shot,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "web".into(),
                    "bundle exec puma -p ${PORT}".into(),
                    Stated::Yes(2),
                    false
                ),
                (
                    "release".into(),
                    "rake db:migrate".into(),
                    Stated::Yes(0),
                    true
                ),
            ]
        );
        assert_eq!(processes[0].ready, Stated::NotCarried);
        assert_eq!(
            processes[0].restart,
            Stated::Yes((Restart::OnFailure, "Restart=on-failure".into()))
        );
        assert_eq!(
            processes[1].restart,
            Stated::Yes((Restart::Never, "Restart=no".into()))
        );
    }

    #[test]
    fn systemd_without_a_manifest() {
        let files: Vec<ExportFile> = systemd_files().into_iter().skip(1).collect();
        let side = parse_export("prod", &files).unwrap();
        let names: Vec<String> = side
            .processes
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["web", "release"]);
    }

    #[test]
    fn compose_export() {
        let text = r#"
name: shop
services:
  web:
    image: shop:latest
    command: ["/bin/sh", "-c", "bundle exec puma -p $${PORT}"]
    environment:
      PORT: "5000"
      PRICE: "$$5"
      DEBUG: 0
    deploy:
      replicas: 3
    healthcheck:
      test: ["CMD-SHELL", "curl -f http://localhost:5000/up"]
    restart: on-failure
  worker:
    command: sidekiq
    environment:
      - PORT=5100
      - PRICE=$$5
    restart: unless-stopped
"#;
        let side = parse_export("prod", &[file("compose.yaml", text)]).unwrap();
        assert_eq!(
            env_of(&side),
            pairs(&[("DEBUG", "0"), ("PORT", "5000"), ("PRICE", "$5")])
        );
        let p = side.processes.unwrap();
        assert_eq!(p[0].command, "bundle exec puma -p ${PORT}");
        assert_eq!(p[0].count, Stated::Yes(3));
        assert_eq!(
            p[0].ready,
            Stated::Yes("CMD-SHELL curl -f http://localhost:5000/up".into())
        );
        assert_eq!(p[0].live, Stated::NotCarried);
        assert_eq!(p[1].command, "sidekiq");
        assert_eq!(p[1].count, Stated::Yes(1));
        assert_eq!(p[1].ready, Stated::Absent);
        assert_eq!(
            p[1].restart,
            Stated::Yes((Restart::Always, "restart: unless-stopped".into()))
        );
    }

    #[test]
    fn kubernetes_export() {
        let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-env\ndata:\n  RAILS_ENV: production\n  WORKERS: \"2\"\n";
        let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-secret\ntype: Opaque\nstringData:\n  API_TOKEN: abc\ndata:\n  DATABASE_URL: cG9zdGdyZXM6Ly91OnBAZGIvYXBw\n";
        let web = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-web-app
  annotations:
    pm/process-type: web_app
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          command: ["/bin/sh", "-c", "puma -p $PORT"]
          env: [{name: PORT, value: "5000"}]
          readinessProbe:
            httpGet: {path: /healthz, port: 5000}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: shop-release
  labels: {app.kubernetes.io/name: shop}
spec:
  template:
    spec:
      containers:
        - name: release
          command: ["/bin/sh", "-c"]
          args: ["rake db:migrate"]
"#;
        let side = parse_export(
            "prod",
            &[
                file("shop-env.yaml", config),
                file("shop-secret.yaml", secret),
                file("shop-web.yaml", web),
            ],
        )
        .unwrap();
        assert_eq!(
            env_of(&side),
            pairs(&[
                ("RAILS_ENV", "production"),
                ("WORKERS", "2"),
                ("API_TOKEN", "abc"),
                ("DATABASE_URL", "postgres://u:p@db/app"),
                ("PORT", "5000"),
            ])
        );
        let p = side.processes.unwrap();
        assert_eq!(
            p.iter()
                .map(|p| (p.name.as_str(), p.command.as_str(), p.one_shot))
                .collect::<Vec<_>>(),
            [
                ("web_app", "puma -p $PORT", false),
                ("release", "rake db:migrate", true)
            ]
        );
        assert_eq!(p[0].count, Stated::Yes(2));
        assert_eq!(p[0].ready, Stated::Yes("http /healthz".into()));
        assert_eq!(p[0].live, Stated::Absent);
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
        let secret = "kind: Secret\ndata:\n  A: '%%%'\n";
        let err = parse_export("prod", &[file("s.yaml", secret)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prod/s.yaml: Secret data \"A\" is not base64-encoded UTF-8 text"
        );
    }

    /// YAML as `pm export` writes it reads back to
    /// the exact commands and values, whatever they hold.
    #[test]
    fn yaml_written_by_serde_saphyr_reads_back() {
        let tricky = [
            "echo 'single' \"double\" $$HOME 100% #not-a-comment: x",
            "line one\nline two\ttab",
            "- starts with a dash",
            "yes",
            "",
            "  padded  ",
        ];
        for value in tricky {
            let compose = serde_json::json!({
                "name": "shop",
                "services": {
                    "web": {
                        "command": ["/bin/sh", "-c", compose::escape(value)],
                        "environment": {"V": compose::escape(value)},
                    }
                }
            });
            let text = yaml::write(&compose).unwrap();
            let side = parse_export("prod", &[file("compose.yaml", &text)]).unwrap();
            assert_eq!(side.processes.unwrap()[0].command, value, "{text}");
            assert_eq!(side.env[0].value, value, "{text}");

            let config = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "shop-env"},
                "data": {"V": value},
            });
            let text = yaml::write(&config).unwrap();
            let side = parse_export("prod", &[file("shop-env.yaml", &text)]).unwrap();
            assert_eq!(side.env[0].value, value, "{text}");
        }
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
