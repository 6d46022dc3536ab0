//! A compose export: one `compose.yaml`, a service per process type. The
//! YAML is read with [`crate::syntax::yaml`] and compose's `$$` undone with
//! [`crate::syntax::compose`], the modules `pm export compose` writes with.

use serde_json::Value;

use super::super::{Process, Side, Stated, Var};
use super::{ExportFile, count, join_shown, scalar, strings};
use crate::error::{Error, Result};
use crate::syntax::compose::{restart_policy, unescape};
use crate::syntax::sh;
use crate::syntax::yaml::documents;

/// The names compose looks for, in its order; `pm export` writes the first.
pub const FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Reads the services of a compose export.
pub fn read(dir: &str, files: &[&ExportFile]) -> Result<Side> {
    let Some(file) = FILES
        .iter()
        .find_map(|name| files.iter().find(|f| f.name == *name))
    else {
        return Err(Error::File {
            path: join_shown(dir, "compose.yaml"),
            message: "not found".to_string(),
        });
    };
    let docs = documents(&file.text, &file.shown)?;
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
        if let Some(words) = strings(service.get("command"))
            && super::is_balancer(&words)
        {
            continue;
        }
        let command = match service.get("command") {
            Some(Value::String(s)) => unescape(s),
            Some(list @ Value::Array(_)) => {
                let words: Vec<String> = strings(Some(list))
                    .unwrap_or_default()
                    .iter()
                    .map(|w| unescape(w))
                    .collect();
                sh::command(&words)
            }
            _ => String::new(),
        };
        match service.get("environment") {
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let value = scalar(value).unwrap_or_default();
                    push_first(&mut side.env, key, &unescape(&value), &file.shown);
                }
            }
            Some(Value::Array(list)) => {
                for item in list.iter().filter_map(Value::as_str) {
                    let (key, value) = item.split_once('=').unwrap_or((item, ""));
                    push_first(&mut side.env, key, &unescape(value), &file.shown);
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
                Some(Value::Array(test)) => test
                    .iter()
                    .filter_map(scalar)
                    .map(|w| unescape(&w))
                    .collect::<Vec<_>>()
                    .join(" "),
                Some(other) => unescape(&scalar(other).unwrap_or_default()),
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
        let restart = restart_policy(&restart_text);
        processes.push(Process {
            name: name.clone(),
            command,
            file: file.shown.clone(),
            count: Stated::Yes(replicas),
            ready,
            ready_portable: true,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::read::parse_export;
    use crate::audit::read::tests::TRICKY;
    use crate::audit::read::tests::{env_of, file, pairs};
    use crate::model::Restart;
    use crate::syntax::{compose, yaml};

    #[test]
    fn the_file_the_export_writes_is_the_first_looked_for() {
        assert_eq!(FILES[0], crate::export::compose::FILE);
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

    /// A healthcheck is shown as compose runs it: `$$` is `$`.
    #[test]
    fn healthchecks_read_back_unescaped() {
        let text = "services:\n  web:\n    command: puma\n    healthcheck:\n      test: [\"CMD-SHELL\", \"nc -z 127.0.0.1 \\\"$$PORT\\\"\"]\n  worker:\n    command: sidekiq\n    healthcheck:\n      test: \"pgrep -f $$NAME\"\n";
        let side = parse_export("prod", &[file("compose.yaml", text)]).unwrap();
        let p = side.processes.unwrap();
        assert_eq!(
            p[0].ready,
            Stated::Yes("CMD-SHELL nc -z 127.0.0.1 \"$PORT\"".into())
        );
        assert_eq!(p[1].ready, Stated::Yes("pgrep -f $NAME".into()));
    }

    /// YAML as `pm export` writes it reads back to the exact commands and
    /// values, whatever they hold.
    #[test]
    fn yaml_written_by_the_export_reads_back() {
        for value in TRICKY {
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
        }
    }
}
