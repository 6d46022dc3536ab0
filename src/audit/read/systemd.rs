//! A systemd export: the units `APP-TYPE@.service` (a template per type)
//! and `APP-release.service`, the instances `APP.target` wants, and the
//! EnvironmentFile `APP.env`. Unit files and env files are read with
//! [`crate::syntax::systemd`], the module `pm export systemd` writes them with.
//!
//! systemd knows when a process started, not when it is ready, so the export
//! carries a type's readiness check where something waits for it: each unit
//! that comes after the type runs `pm probe` with the check on the type's
//! instances (`ExecStartPre=`), and a proxied type's balancer unit runs
//! `pm balance` with it. A type that nothing waits for has no place for its
//! check in systemd (not carried); one that is waited for without a probe
//! has none.

use std::collections::BTreeMap;

use super::super::{Process, Side, Stated, Var};
use super::ExportFile;
use crate::error::{Error, Result};
use crate::syntax::sh;
use crate::syntax::systemd::{self, exec_words, unit_entries};

/// Reads the units and env file of a systemd export.
pub fn read(dir: &str, app: Option<&str>, files: &[&ExportFile]) -> Result<Side> {
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
    let mut port_of_type: BTreeMap<u16, String> = BTreeMap::new();
    let target = app
        .as_ref()
        .and_then(|a| files.iter().find(|f| f.name == format!("{a}.target")))
        .or_else(|| files.iter().find(|f| f.name.ends_with(".target")));
    if let Some(target) = target {
        for (key, value) in unit_entries(&target.text) {
            if key == "Wants" || key == "Requires" {
                for unit in value.split_whitespace() {
                    if let Some((template, instance)) = unit
                        .strip_suffix(".service")
                        .and_then(|u| u.split_once('@'))
                    {
                        *counts.entry(type_of(template)).or_insert(0) += 1;
                        if let Ok(port) = instance.parse::<u16>() {
                            port_of_type.insert(port, type_of(template));
                        }
                    }
                }
            }
        }
    }

    // Readiness as the units that wait for a type carry it: the types they
    // come after, and the checks they probe those types with.
    let mut waited_for: Vec<String> = Vec::new();
    let mut carried: BTreeMap<String, String> = BTreeMap::new();
    for file in files.iter().filter(|f| f.name.ends_with(".service")) {
        for (key, value) in unit_entries(&file.text) {
            match key.as_str() {
                "After" => waited_for.extend(value.split_whitespace().filter_map(|unit| {
                    let (template, _) = unit.strip_suffix(".service")?.split_once('@')?;
                    Some(type_of(template))
                })),
                "ExecStartPre" | "ExecStart" => {
                    let Ok(words) = exec_words(&value) else {
                        continue;
                    };
                    if let Some((types, check)) = readiness(&words, &port_of_type) {
                        for t in types {
                            carried.entry(t).or_insert_with(|| check.clone());
                        }
                    }
                }
                _ => {}
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
        let entries = unit_entries(&file.text);
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
        let words = exec_words(exec).map_err(|message| Error::File {
            path: file.shown.clone(),
            message: format!("ExecStart=: {message}"),
        })?;
        if !template && super::is_balancer(&words) {
            continue;
        }
        let one_shot = !template || get("Type") == Some("oneshot");
        let restart_text = get("Restart").unwrap_or("no").to_string();
        let restart = systemd::restart_policy(&restart_text);
        processes.push(Process {
            name: name.clone(),
            command: sh::command(&words),
            file: file.shown.clone(),
            count: if target.is_some() {
                Stated::Yes(counts.get(&name).copied().unwrap_or(0))
            } else {
                Stated::NotCarried
            },
            ready: match carried.get(&name) {
                Some(check) => Stated::Yes(check.clone()),
                None if waited_for.contains(&name) => Stated::Absent,
                None => Stated::NotCarried,
            },
            ready_portable: true,
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

/// The types a `pm probe ... HOST:PORT...` (a unit waiting for them) or a
/// `pm balance LISTEN HOST:PORT... --interval ...` (a balancer probing
/// them) checks, and the check described as pm.toml says it (`http
/// /healthz`, `exec CMD`, `tcp`). None for any other command, and for a
/// balancer without a check (it only connects).
fn readiness(
    words: &[String],
    port_of_type: &BTreeMap<u16, String>,
) -> Option<(Vec<String>, String)> {
    let (pm, verb, rest) = match words {
        [pm, verb, rest @ ..] => (pm, verb.as_str(), rest),
        _ => return None,
    };
    if !(pm == "pm" || pm.ends_with("/pm")) || !matches!(verb, "probe" | "balance") {
        return None;
    }
    // A balancer's first word is where it listens.
    let rest = if verb == "balance" {
        rest.get(1..)?
    } else {
        rest
    };
    let mut check = None;
    let mut options = false;
    let mut types = Vec::new();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--http" => check = words.next().map(|path| format!("http {path}")),
            "--exec" => check = words.next().map(|command| format!("exec {command}")),
            "--interval" | "--timeout" | "--successes" | "--failures" => {
                options = true;
                words.next();
            }
            address => {
                let port = address
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok());
                if let Some(t) = port.and_then(|p| port_of_type.get(&p))
                    && !types.contains(t)
                {
                    types.push(t.clone());
                }
            }
        }
    }
    if verb == "balance" && !options && check.is_none() {
        return None;
    }
    Some((types, check.unwrap_or_else(|| "tcp".to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::read::parse_export;
    use crate::audit::read::tests::{env_of, file, pairs};
    use crate::export::MANIFEST;
    use crate::model::Restart;

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

    /// Readiness is carried by the units that wait for a type (`pm probe`)
    /// and by a proxied type's balancer (`pm balance` with a check).
    #[test]
    fn readiness_carried_by_probes_and_balancers() {
        let unit = |after: &str, pre: &str, command: &str| {
            format!(
                "[Unit]\nAfter={after}\n[Service]\n{pre}ExecStart=/bin/sh -c '{command}'\nRestart=on-failure\n"
            )
        };
        let files = vec![
            file(
                "a.target",
                "[Unit]\nWants=a-db@5000.service a-web@5100.service a-web@5101.service a-cache@5200.service a-worker@5300.service a-web-balancer.service\n",
            ),
            file("a-db@.service", &unit("", "", "postgres")),
            file("a-cache@.service", &unit("", "", "memcached")),
            file(
                "a-web@.service",
                &unit(
                    "a-db@5000.service a-cache@5200.service",
                    "ExecStartPre=/usr/bin/pm probe --exec 'pg_isready -p $$PORT' --interval 0.5 --timeout 2 127.0.0.1:5000\n",
                    "serve",
                ),
            ),
            file(
                "a-worker@.service",
                &unit("a-web@5100.service a-web@5101.service", "", "work"),
            ),
            file(
                "a-web-balancer.service",
                "[Service]\nExecStart=/usr/bin/pm balance 127.0.0.1:8080 127.0.0.1:5100 127.0.0.1:5101 --http /up --interval 1 --timeout 1\nRestart=always\n",
            ),
        ];
        let side = parse_export("prod", &files).unwrap();
        let ready: Vec<(String, Stated<String>)> = side
            .processes
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.ready))
            .collect();
        assert_eq!(
            ready,
            [
                ("db".into(), Stated::Yes("exec pg_isready -p $PORT".into())),
                ("cache".into(), Stated::Absent),
                ("web".into(), Stated::Yes("http /up".into())),
                ("worker".into(), Stated::NotCarried),
            ]
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
}
