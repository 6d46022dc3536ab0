//! A kubernetes export: a ConfigMap and a Secret holding the env, and per
//! process type a Deployment (release: a Job) whose first container runs it.
//! The YAML is read with [`crate::syntax::yaml`], and Secret `data` and the
//! `$$` in commands and env values undone with [`crate::syntax::kubernetes`],
//! the modules `pm export kubernetes` writes with.

use serde_json::Value;

use super::super::{Process, Side, Stated, Var};
use super::{ExportFile, count, scalar, strings};
use crate::config::one_line;
use crate::error::{Error, Result};
use crate::syntax::kubernetes::{secret_value, unescape};
use crate::syntax::sh;
use crate::syntax::yaml::documents;

/// Reads the objects of a kubernetes export, whichever files hold them.
pub fn read(dir: &str, app: Option<&str>, files: &[&ExportFile]) -> Result<Side> {
    let mut side = Side::default();
    let mut processes: Vec<Process> = Vec::new();
    let mut container_env: Vec<Var> = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.name.ends_with(".yaml") || f.name.ends_with(".yml"))
    {
        let mut objects = Vec::new();
        for doc in documents(&file.text, &file.shown)? {
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
                            let decoded = secret_value(&encoded).ok_or_else(|| Error::File {
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
                                    value: unescape(&value),
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

/// Words as the kubelet runs them (Kubernetes expands `$(VAR)` and `$$`
/// in a container's command and args, and in an exec probe's command).
fn unescaped(words: &[String]) -> Vec<String> {
    words.iter().map(|w| unescape(w)).collect()
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
        format!("exec {}", sh::command(&unescaped(&command)))
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
    let words = unescaped(&words);
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
        ready_portable: true,
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
    use crate::audit::read::parse_export;
    use crate::audit::read::tests::TRICKY;
    use crate::audit::read::tests::{env_of, file, pairs};
    use crate::syntax::{kubernetes, yaml};

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
    fn secret_data_that_is_not_base64_is_a_located_error() {
        let secret = "kind: Secret\ndata:\n  A: '%%%'\n";
        let err = parse_export("prod", &[file("s.yaml", secret)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prod/s.yaml: Secret data \"A\" is not base64-encoded UTF-8 text"
        );
    }

    /// YAML as `pm export` writes it reads back to the exact values and
    /// commands, whatever they hold.
    #[test]
    fn yaml_written_by_the_export_reads_back() {
        for value in TRICKY {
            let deployment = serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "shop-web", "annotations": {"pm/process-type": "web"}},
                "spec": {"template": {"spec": {"containers": [{
                    "name": "web",
                    "command": ["/bin/sh", "-c", kubernetes::escape(value)],
                    "env": [{"name": "V", "value": kubernetes::escape(value)}],
                }]}}},
            });
            let text = yaml::write(&deployment).unwrap();
            let side = parse_export("prod", &[file("shop-web.yaml", &text)]).unwrap();
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
}
