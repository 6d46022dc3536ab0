//! A systemd export: the units `APP-TYPE@.service` (a template per type)
//! and `APP-release.service`, the instances `APP.target` wants, and the
//! EnvironmentFile `APP.env`. Unit files and env files are read with
//! [`crate::syntax::systemd`], the module `pm export systemd` writes them with.

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
    let target = app
        .as_ref()
        .and_then(|a| files.iter().find(|f| f.name == format!("{a}.target")))
        .or_else(|| files.iter().find(|f| f.name.ends_with(".target")));
    if let Some(target) = target {
        for (key, value) in unit_entries(&target.text) {
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
