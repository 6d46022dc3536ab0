//! Kubernetes: one object per file (`NN-<name>-<kind>.yaml`): a ConfigMap
//! with the shared env (addresses are the types' Services), a Secret with the
//! variables that look secret, per type a Deployment (release: a Job named
//! with a hash of its image and command, so a new release is a new Job), and
//! a Service (`APP-TYPE`, the type's balancer) for every type that is
//! reached, depended on, proxied, checked over tcp or http, or `web`. A
//! workload waits for its dependencies with init containers running
//! `pm probe` against their Services (a tcp connect, and an http check's
//! path: a Service routes only to ready pods, so an exec check stays in
//! its own pod). PS and DYNO are `TYPE.1` for a type with one replica,
//! else the pod's name. `NN` orders the deploy: `00` what the
//! release needs, `10` the release Job, `20` the Deployments that follow it
//! (docs/export.md has the `kubectl` sequence). Names are cleaned to
//! DNS-1123 labels.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Options, Rendered, base_port, dependencies, probe_options, seconds, shared_env,
    single_instance_name, waits_for_release,
};
use crate::config::pm_toml::{Check, Probe};
use crate::config::secret::is_secret;
use crate::error::{Error, Result};
use crate::plan::{Engine, Plan, ProcessSpec, RELEASE};
use crate::syntax::kubernetes::{self as k8s, escape, truncate};
use crate::syntax::yaml;

/// The longest DNS-1123 label.
const MAX_NAME: usize = k8s::MAX_LABEL;

fn dns_label(name: &str, what: &str) -> Result<String> {
    let lower = name.to_ascii_lowercase();
    super::clean(
        &lower,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        what,
    )
}

/// Where a file comes in the deploy: what the release needs, the release,
/// what follows it.
const BEFORE_RELEASE: &str = "00";
const RELEASE_STEP: &str = "10";
const AFTER_RELEASE: &str = "20";

/// A short, stable hash (FNV-1a, 64 bits) of a release's image and command,
/// as 10 hex digits: the same release keeps its Job, a new one gets a new Job.
fn release_hash(image: &str, command: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in image.bytes().chain([0]).chain(command.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", hash >> 24)
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
        // The kubelet expands `$(VAR)` in an exec probe's command as in a
        // container's: escaped, so the shell gets the check as written.
        Probe::Exec(command) => json!({"exec": {"command": ["/bin/sh", "-c", escape(command)]}}),
        // Never reached: `export::portable` drops log checks first.
        Probe::Log(_) => json!({"exec": {"command": ["true"]}}),
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
        "env": instance_env(spec, port),
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

/// A container's own variables: PORT, and PS and DYNO (`TYPE.1` for a type
/// with one replica, else the pod's name, from the downward API).
fn instance_env(spec: &ProcessSpec, port: u16) -> Value {
    let name = match single_instance_name(spec) {
        Some(name) => json!({"value": escape(&name)}),
        None => json!({"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
    };
    let mut env = vec![json!({"name": "PORT", "value": port.to_string()})];
    for var in ["PS", "DYNO"] {
        let mut item = name.clone();
        item["name"] = json!(var);
        env.push(item);
    }
    json!(env)
}

fn file(step: &str, name: &str, kind: &str, object: &Value) -> Result<Rendered> {
    Ok((
        format!("{step}-{name}-{}.yaml", kind.to_ascii_lowercase()),
        yaml::write(object)?.into_bytes(),
    ))
}

/// The init containers that hold a workload until each type it depends on
/// answers at its Service. A ClusterIP Service routes only to ready pods,
/// so a Service that accepts a TCP connection has a pod whose own
/// readinessProbe passes, whatever its kind: an `exec` check (which could
/// never pass from another pod, as `pg_isready` on a Unix socket) and a
/// `tcp` one are waited for so; an `http` check is also asked over the
/// Service. A type without a check: its port accepting connections. `pm
/// probe` is on the image, as pm is, so no other image is pulled.
fn waits(plan: &Plan, spec: &ProcessSpec, engine: &Engine, image: &str) -> Result<Vec<Value>> {
    let mut containers = Vec::new();
    for dep in dependencies(plan, spec)? {
        if dep.name == RELEASE || dep.count == 0 {
            continue;
        }
        let Some(address) = plan.addresses.iter().find(|a| a.type_name == dep.name) else {
            continue;
        };
        let (host, port) = address.on(engine);
        let mut command = vec!["pm".to_string(), "probe".to_string()];
        command.extend(probe_options(dep.ready.as_ref(), false));
        command.push(format!("{host}:{port}"));
        let component = truncate(&dns_label(&dep.name, "Kubernetes")?);
        containers.push(json!({
            "name": truncate(&format!("wait-{component}")),
            "image": image,
            "command": command.iter().map(|w| escape(w)).collect::<Vec<_>>(),
        }));
    }
    Ok(containers)
}

/// Whether a type gets a Service: other types reach it (an address in an
/// env value, or a dependency), or it is proxied, checked over the network,
/// or `web`.
fn has_service(plan: &Plan, index: usize, reached: &[usize]) -> bool {
    let spec = &plan.types[index];
    spec.name != RELEASE
        && (reached.contains(&index)
            || plan.types.iter().any(|t| t.depends_on.contains(&spec.name))
            || spec.proxy.is_some()
            || spec.name == "web"
            || spec
                .ready
                .as_ref()
                .is_some_and(|c| matches!(c.probe, Probe::Tcp | Probe::Http(_))))
}

pub fn render(plan: &Plan, options: &Options) -> Result<Vec<Rendered>> {
    let app = app_name(&options.app)?;
    let image = options.image.clone().unwrap_or_default();
    let mut files = Vec::new();

    let mut data = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let engine = Engine::Kubernetes { app: app.clone() };
    for (name, value) in shared_env(plan, &engine) {
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
    files.push(file(BEFORE_RELEASE, &env_name, "ConfigMap", &config_map)?);
    let secret_name = format!("{app}-secret");
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "labels": {"app.kubernetes.io/name": app}},
        "type": "Opaque",
        "stringData": secrets,
    });
    files.push(file(BEFORE_RELEASE, &secret_name, "Secret", &secret)?);

    let reached = plan.reached_types();
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    for (index, spec) in plan.types.iter().enumerate() {
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
        let init = waits(plan, spec, &engine, &image)?;
        if spec.name == RELEASE {
            let hash = release_hash(&image, &spec.command);
            let job_name = format!(
                "{}-{hash}",
                truncate(&name[..name.len().min(MAX_NAME - 11)])
            );
            let mut job_meta = meta.clone();
            job_meta["name"] = json!(job_name);
            let mut pod = json!({
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": grace,
                "containers": [container(spec, &component, port, &image, &app, false)],
            });
            if !init.is_empty() {
                pod["initContainers"] = json!(init);
            }
            let job = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": job_meta,
                "spec": {
                    "backoffLimit": 0,
                    // A release left out of the formation is written but not run.
                    "suspend": spec.count == 0,
                    "template": {
                        "metadata": {"labels": labels(&app, &component)},
                        "spec": pod,
                    },
                },
            });
            // A release that does not run is nothing to wait for.
            let step = if spec.count > 0 {
                RELEASE_STEP
            } else {
                BEFORE_RELEASE
            };
            files.push(file(step, &job_name, "Job", &job)?);
            continue;
        }
        let mut pod = json!({
            "terminationGracePeriodSeconds": grace,
            "containers": [container(spec, &component, port, &image, &app, true)],
        });
        if !init.is_empty() {
            pod["initContainers"] = json!(init);
        }
        // What the release needs comes before it; everything else after.
        let release_runs = plan.types.iter().any(|t| t.name == RELEASE && t.count > 0);
        let step = if release_runs && !waits_for_release(plan, spec) {
            BEFORE_RELEASE
        } else {
            AFTER_RELEASE
        };
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
                    "spec": pod,
                },
            },
        });
        files.push(file(step, &name, "Deployment", &deployment)?);
        if has_service(plan, index, &reached) {
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
            files.push(file(BEFORE_RELEASE, &name, "Service", &service)?);
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
