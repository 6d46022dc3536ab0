//! Docker Compose: one `compose.yaml`, a service per process type keyed by
//! its Procfile name, every replica with the type's base port as PORT and
//! the addresses of the compose network in its env (PS and DYNO: `TYPE.1`
//! for a type with one replica, else the type's name). A proxied type gets a
//! `TYPE-balancer` service running `pm balance` over the type's replicas
//! (the service name resolves to each of them), and only that service
//! publishes a host port: never one port for several replicas. Every
//! string goes through compose's interpolation escape (`$` → `$$`) and is
//! serialized by [`crate::syntax::yaml`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Options, Rendered, base_port, dependencies, duration, probe_options, shared_env,
    single_instance_name, waits_for_release,
};
use crate::config::pm_toml::{Check, Probe};
use crate::error::{Error, Result};
use crate::model::Restart;
use crate::plan::{ANY_HOST, Engine, Plan, RELEASE, balancer_service};
use crate::syntax::compose::{self, escape as esc};
use crate::syntax::{sh, yaml};

pub const FILE: &str = "compose.yaml";

/// Project names: lowercase letters, digits, `-` and `_`, starting with a
/// letter or digit.
pub fn app_name(name: &str) -> Result<String> {
    let lower = name.to_ascii_lowercase();
    let cleaned = super::clean(
        &lower,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "Compose project",
    )?;
    let cleaned = cleaned.trim_start_matches(['_', '-']).to_string();
    if cleaned.is_empty() {
        return Err(Error::Invalid(format!(
            "--app {name:?}: no character valid in a Compose project name remains"
        )));
    }
    Ok(cleaned)
}

/// The shell command a check runs inside the container (before compose escaping).
pub fn check_command(probe: &Probe) -> String {
    match probe {
        Probe::Tcp => "nc -z 127.0.0.1 \"$PORT\" || exit 1".to_string(),
        Probe::Http(path) => {
            let url = format!("http://127.0.0.1:\"$PORT\"{}", sh::word(path));
            format!("curl -fsS -o /dev/null {url} || wget -q -O /dev/null {url} || exit 1")
        }
        Probe::Exec(command) => command.clone(),
        // Never reached: `export::portable` drops log checks first.
        Probe::Log(_) => "true".to_string(),
    }
}

/// How long a container may take to pass its check the first time. Under
/// `pm start` a readiness check that has not passed yet only means "not
/// ready yet" (a database's first start may take long); compose counts
/// failures from the start unless they fall in `start_period`, where a
/// first success still counts at once.
pub const START_PERIOD: std::time::Duration = std::time::Duration::from_secs(300);

fn healthcheck(check: &Check) -> Value {
    json!({
        "test": ["CMD-SHELL", esc(&check_command(&check.probe))],
        "interval": duration(check.interval),
        "timeout": duration(check.timeout),
        "retries": check.failures,
        "start_period": duration(START_PERIOD),
    })
}

pub fn render(plan: &Plan, options: &Options) -> Result<Vec<Rendered>> {
    let app = app_name(&options.app)?;
    let image = options.image.clone().unwrap_or_default();
    let env = shared_env(plan, &Engine::Compose);
    let release = plan
        .types
        .iter()
        .find(|t| t.name == RELEASE)
        .filter(|t| t.count > 0);
    let mut services = BTreeMap::new();
    for spec in &plan.types {
        let is_release = spec.name == RELEASE;
        let port = base_port(plan, spec)?;
        let mut environment: BTreeMap<String, Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(esc(v))))
            .collect();
        environment.insert("PORT".into(), Value::String(port.to_string()));
        // The index of a replica of several is in no file: the type's name.
        let instance = single_instance_name(spec).unwrap_or_else(|| spec.name.clone());
        for var in ["PS", "DYNO"] {
            environment.insert(var.into(), Value::String(esc(&instance)));
        }
        let mut service = json!({
            "image": esc(&image),
            "command": ["/bin/sh", "-c", esc(&spec.command)],
            "environment": environment,
            "deploy": {"replicas": spec.count},
            "restart": compose::restart(if is_release { Restart::Never } else { spec.restart.policy }),
            "stop_signal": spec.stop_signal.as_str(),
            "stop_grace_period": duration(spec.stop_timeout),
        });
        let mut depends = BTreeMap::new();
        if let Some(release) = release.filter(|_| waits_for_release(plan, spec)) {
            depends.insert(
                release.name.clone(),
                json!({"condition": "service_completed_successfully"}),
            );
        }
        for dep in dependencies(plan, spec)? {
            let condition = if dep.name == RELEASE {
                "service_completed_successfully"
            } else if dep.ready.is_some() {
                "service_healthy"
            } else {
                "service_started"
            };
            depends.insert(dep.name.clone(), json!({"condition": condition}));
        }
        if let Value::Object(map) = &mut service {
            if let Some(check) = &spec.ready {
                map.insert("healthcheck".into(), healthcheck(check));
            }
            if !depends.is_empty() {
                map.insert("depends_on".into(), json!(depends));
            }
        }
        if let Some(proxy) = spec.proxy.as_ref().filter(|_| !is_release) {
            let name = balancer_service(&spec.name);
            if plan.type_named(&name).is_some() {
                return Err(Error::Invalid(format!(
                    "process type \"{name}\" has the name of the compose service balancing \"{}\" (rename one)",
                    spec.name
                )));
            }
            let mut command = vec![
                "pm".to_string(),
                "balance".to_string(),
                format!("{ANY_HOST}:{}", proxy.port),
                format!("{}:{port}", spec.name),
            ];
            command.extend(probe_options(spec.ready.as_ref(), false));
            let balancer = json!({
                "image": esc(&image),
                "command": command.iter().map(|w| esc(w)).collect::<Vec<_>>(),
                // Stopped with the type, and gone when it is scaled to 0.
                "deploy": {"replicas": u32::from(spec.count > 0)},
                "restart": "always",
                "stop_grace_period": duration(spec.stop_timeout),
                "ports": [{
                    "target": proxy.port,
                    "published": proxy.port.to_string(),
                    "host_ip": proxy.host,
                }],
            });
            services.insert(name, balancer);
        }
        services.insert(spec.name.clone(), service);
    }
    let file = json!({ "name": app, "services": services });
    Ok(vec![(FILE.to_string(), yaml::write(&file)?.into_bytes())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        assert_eq!(app_name("My App").ok().as_deref(), Some("my-app"));
        assert_eq!(app_name("_x_").ok().as_deref(), Some("x_"));
        assert!(app_name("___").is_err());
    }

    #[test]
    fn check_commands() {
        assert_eq!(
            check_command(&Probe::Http("/it's".into())),
            "curl -fsS -o /dev/null http://127.0.0.1:\"$PORT\"'/it'\\''s' || wget -q -O /dev/null http://127.0.0.1:\"$PORT\"'/it'\\''s' || exit 1"
        );
        assert_eq!(
            esc(&check_command(&Probe::Tcp)),
            "nc -z 127.0.0.1 \"$$PORT\" || exit 1"
        );
    }
}
