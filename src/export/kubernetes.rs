//! Kubernetes: one object per file (`<name>-<kind>.yaml`): a ConfigMap with
//! the shared env, a Secret with the variables that look secret, per type a
//! Deployment (release: a Job), and a Service for `web` and each proxied
//! type. Names are cleaned to DNS-1123 labels.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Options, Rendered, base_port, seconds, shared_env};
use crate::config::pm_toml::{Check, Probe};
use crate::config::secret::is_secret;
use crate::error::{Error, Result};
use crate::plan::{Plan, ProcessSpec, RELEASE};
use crate::syntax::kubernetes::escape;
use crate::syntax::yaml;

/// The longest DNS-1123 label.
const MAX_NAME: usize = 63;

fn dns_label(name: &str, what: &str) -> Result<String> {
    let lower = name.to_ascii_lowercase();
    super::clean(
        &lower,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        what,
    )
}

fn truncate(name: &str) -> String {
    let cut: String = name.chars().take(MAX_NAME).collect();
    cut.trim_end_matches('-').to_string()
}

/// The app as a DNS-1123 label; names must start with a letter for a
/// Service (DNS-1035), so a leading digit gets `app-` in front.
pub fn app_name(name: &str) -> Result<String> {
    let cleaned = dns_label(name, "Kubernetes")?;
    let cleaned = if cleaned.starts_with(|c: char| c.is_ascii_digit()) {
        format!("app-{cleaned}")
    } else {
        cleaned
    };
    Ok(truncate(&cleaned))
}

fn probe(check: &Check, port: u16, liveness: bool) -> Value {
    let mut probe = match &check.probe {
        Probe::Tcp => json!({"tcpSocket": {"port": port}}),
        Probe::Http(path) => json!({"httpGet": {"path": path, "port": port}}),
        Probe::Exec(command) => json!({"exec": {"command": ["/bin/sh", "-c", command]}}),
    };
    if let Value::Object(map) = &mut probe {
        map.insert("periodSeconds".into(), json!(seconds(check.interval, 1)));
        map.insert("timeoutSeconds".into(), json!(seconds(check.timeout, 1)));
        map.insert("failureThreshold".into(), json!(check.failures.max(1)));
        // Kubernetes requires 1 for liveness.
        let successes = if liveness { 1 } else { check.successes.max(1) };
        map.insert("successThreshold".into(), json!(successes));
    }
    probe
}

fn labels(app: &str, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
    })
}

fn metadata(name: &str, app: &str, component: &str, spec: &ProcessSpec) -> Value {
    json!({
        "name": name,
        "labels": labels(app, component),
        "annotations": {"pm/process-type": spec.name},
    })
}

fn container(
    spec: &ProcessSpec,
    component: &str,
    port: u16,
    image: &str,
    app: &str,
    probes: bool,
) -> Value {
    let mut c = json!({
        "name": component,
        "image": image,
        "command": ["/bin/sh", "-c", escape(&spec.command)],
        "env": [{"name": "PORT", "value": port.to_string()}],
        "envFrom": [
            {"configMapRef": {"name": format!("{app}-env")}},
            {"secretRef": {"name": format!("{app}-secret")}},
        ],
        "ports": [{"containerPort": port}],
    });
    if probes && let Value::Object(map) = &mut c {
        if let Some(check) = &spec.ready {
            map.insert("readinessProbe".into(), probe(check, port, false));
        }
        if let Some(check) = &spec.live {
            map.insert("livenessProbe".into(), probe(check, port, true));
        }
    }
    c
}

fn file(name: &str, kind: &str, object: &Value) -> Result<Rendered> {
    Ok((
        format!("{name}-{}.yaml", kind.to_ascii_lowercase()),
        yaml::write(object)?.into_bytes(),
    ))
}

pub fn render(plan: &Plan, options: &Options) -> Result<Vec<Rendered>> {
    let app = app_name(&options.app)?;
    let image = options.image.clone().unwrap_or_default();
    let mut files = Vec::new();

    let mut data = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for (name, value) in shared_env(plan) {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::Invalid(format!(
                "environment variable {name:?} is not a valid ConfigMap key"
            )));
        }
        if is_secret(&name, &value) {
            secrets.insert(name, value);
        } else {
            data.insert(name, value);
        }
    }
    let env_name = format!("{app}-env");
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": env_name, "labels": {"app.kubernetes.io/name": app}},
        "data": data,
    });
    files.push(file(&env_name, "ConfigMap", &config_map)?);
    let secret_name = format!("{app}-secret");
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "labels": {"app.kubernetes.io/name": app}},
        "type": "Opaque",
        "stringData": secrets,
    });
    files.push(file(&secret_name, "Secret", &secret)?);

    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    for spec in &plan.types {
        let component = truncate(&dns_label(&spec.name, "Kubernetes")?);
        let name = truncate(&format!("{app}-{component}"));
        if let Some(other) = taken.insert(name.clone(), &spec.name) {
            return Err(Error::Invalid(format!(
                "process types \"{other}\" and \"{}\" both become \"{name}\" in Kubernetes",
                spec.name
            )));
        }
        let port = base_port(plan, spec)?;
        let meta = metadata(&name, &app, &component, spec);
        let grace = seconds(spec.stop_timeout, 0);
        if spec.name == RELEASE {
            let job = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": meta,
                "spec": {
                    "backoffLimit": 0,
                    // A release left out of the formation is written but not run.
                    "suspend": spec.count == 0,
                    "template": {
                        "metadata": {"labels": labels(&app, &component)},
                        "spec": {
                            "restartPolicy": "Never",
                            "terminationGracePeriodSeconds": grace,
                            "containers": [container(spec, &component, port, &image, &app, false)],
                        },
                    },
                },
            });
            files.push(file(&name, "Job", &job)?);
            continue;
        }
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": spec.count,
                "selector": {"matchLabels": labels(&app, &component)},
                "template": {
                    "metadata": {
                        "labels": labels(&app, &component),
                        "annotations": {"pm/process-type": spec.name},
                    },
                    "spec": {
                        "terminationGracePeriodSeconds": grace,
                        "containers": [container(spec, &component, port, &image, &app, true)],
                    },
                },
            },
        });
        files.push(file(&name, "Deployment", &deployment)?);
        if spec.proxy.is_some() || spec.name == "web" {
            let published = spec.proxy.as_ref().map_or(port, |p| p.port);
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(&name, &app, &component, spec),
                "spec": {
                    "selector": labels(&app, &component),
                    "ports": [{"port": published, "targetPort": port, "protocol": "TCP"}],
                },
            });
            files.push(file(&name, "Service", &service)?);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(app_name("My_App").ok().as_deref(), Some("my-app"));
        assert_eq!(app_name("2048").ok().as_deref(), Some("app-2048"));
        assert!(app_name("___").is_err());
        assert_eq!(app_name(&"a".repeat(80)).unwrap().len(), 63);
    }
}
