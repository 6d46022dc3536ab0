//! systemd: `APP.target`, a template unit `APP-TYPE@.service` per type whose
//! instances are named by their port (`PORT=%i`), `APP-release.service` as a
//! oneshot the others come after, `APP-TYPE-balancer.service` running
//! `pm balance` on a proxied type's address, and `APP.env` as their
//! EnvironmentFile. A unit whose dependency has a readiness check waits for
//! it with `pm probe` in `ExecStartPre=`, so it starts once every instance
//! of the dependency passes that check, as under `pm start`.

use std::fmt::Write as _;

use super::{
    Options, Rendered, base_port, dependencies, duration, probe_options, shared_env,
    waits_for_release,
};
use crate::error::{Error, Result};
use crate::plan::{Engine, LOCAL_HOST, Plan, ProcessSpec, RELEASE};
use crate::syntax::systemd::{env_value, is_env_name, restart, word};

/// Unit names allow ASCII letters, digits, `:`, `_`, `.` and `-` (and `@`
/// for templates, which the app name must not contain).
pub fn app_name(name: &str) -> Result<String> {
    super::clean(
        name,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "systemd unit",
    )
}

fn setting(what: &str, text: &str) -> Result<String> {
    crate::syntax::systemd::setting(text).ok_or_else(|| {
        Error::Invalid(format!(
            "{what} {text:?} cannot be written in a systemd unit (line break, control character or blank at either end)"
        ))
    })
}

pub fn render(plan: &Plan, options: &Options) -> Result<Vec<Rendered>> {
    let app = app_name(&options.app)?;
    let env_path = options.dir.join(format!("{app}.env"));
    let env_file = setting("the export directory", &env_path.display().to_string())?;
    let root = setting("the root directory", &plan.root.display().to_string())?;
    let user = match &options.user {
        Some(u) => Some(setting("--user", u)?),
        None => None,
    };
    let release = plan
        .types
        .iter()
        .find(|t| t.name == RELEASE)
        .filter(|t| t.count > 0);
    let release_unit = format!("{app}-{RELEASE}.service");
    let pm = pm_word(options)?;

    let mut files = Vec::new();

    let mut env = String::new();
    for (name, value) in shared_env(plan, &Engine::Local) {
        if !is_env_name(&name) {
            return Err(Error::Invalid(format!(
                "environment variable {name:?} is not a name systemd accepts"
            )));
        }
        let _ = writeln!(env, "{name}={}", env_value(&value));
    }
    files.push((format!("{app}.env"), env.into_bytes()));

    let mut target = String::new();
    let _ = writeln!(target, "[Unit]");
    let _ = writeln!(target, "Description={app}");
    if release.is_some() {
        let _ = writeln!(target, "Wants={release_unit}");
    }
    for instance in &plan.instances {
        let spec = &plan.types[instance.type_index];
        if spec.name != RELEASE {
            let _ = writeln!(
                target,
                "Wants={app}-{}@{}.service",
                spec.name, instance.port
            );
        }
    }
    for spec in balanced(plan) {
        let _ = writeln!(target, "Wants={}", balancer_unit(&app, spec));
    }
    let _ = writeln!(target, "\n[Install]\nWantedBy=multi-user.target");
    files.push((format!("{app}.target"), target.into_bytes()));

    for spec in &plan.types {
        let mut unit = String::new();
        let is_release = spec.name == RELEASE;
        let _ = writeln!(unit, "[Unit]");
        if is_release {
            let _ = writeln!(unit, "Description={app} {}", spec.name);
        } else {
            let _ = writeln!(unit, "Description={app} {} on port %i", spec.name);
        }
        let _ = writeln!(unit, "PartOf={app}.target");
        let mut after = Vec::new();
        if waits_for_release(plan, spec) {
            after.push(release_unit.clone());
            let _ = writeln!(unit, "Requires={release_unit}");
        }
        // The release unit is already required above: skip it here.
        let mut waits = Vec::new();
        for dep in dependencies(plan, spec)?
            .into_iter()
            .filter(|d| d.name != RELEASE)
        {
            let ports: Vec<u16> = plan
                .instances
                .iter()
                .filter(|i| plan.types[i.type_index].name == dep.name)
                .map(|i| i.port)
                .collect();
            after.extend(
                ports
                    .iter()
                    .map(|port| format!("{app}-{}@{port}.service", dep.name)),
            );
            // systemd knows when a process started, not when it is ready:
            // the dependency's own check, run by `pm probe`, says that.
            if let Some(check) = &dep.ready
                && !ports.is_empty()
            {
                let mut words = vec![pm.clone(), "probe".to_string()];
                words.extend(probe_options(Some(check), true).iter().map(|w| arg(w)));
                words.extend(ports.iter().map(|port| format!("{LOCAL_HOST}:{port}")));
                waits.push(words.join(" "));
            }
        }
        if !after.is_empty() {
            let _ = writeln!(unit, "After={}", after.join(" "));
        }
        let _ = writeln!(unit, "\n[Service]");
        if is_release {
            let _ = writeln!(unit, "Type=oneshot\nRemainAfterExit=yes");
        } else {
            let _ = writeln!(unit, "Type=simple");
        }
        let _ = writeln!(unit, "WorkingDirectory={root}");
        let _ = writeln!(unit, "EnvironmentFile={env_file}");
        if is_release {
            let _ = writeln!(unit, "Environment=PORT={}", base_port(plan, spec)?);
        } else {
            let _ = writeln!(unit, "Environment=PORT=%i");
        }
        for wait in &waits {
            let _ = writeln!(unit, "ExecStartPre={wait}");
        }
        let _ = writeln!(unit, "ExecStart=/bin/sh -c {}", word(&spec.command));
        if !is_release {
            let _ = writeln!(unit, "Restart={}", restart(spec.restart.policy));
        }
        let _ = writeln!(unit, "KillSignal={}", spec.stop_signal.as_str());
        let _ = writeln!(unit, "TimeoutStopSec={}", duration(spec.stop_timeout));
        if let Some(user) = &user {
            let _ = writeln!(unit, "User={user}");
        }
        files.push((unit_file(&app, spec), unit.into_bytes()));
    }
    for spec in balanced(plan) {
        let Some(proxy) = &spec.proxy else { continue };
        let listen = host_port(&proxy.host, proxy.port);
        let mut words = vec![pm.clone(), "balance".to_string(), arg(&listen)];
        words.extend(
            plan.instances
                .iter()
                .filter(|i| plan.types[i.type_index].name == spec.name)
                .map(|i| format!("{LOCAL_HOST}:{}", i.port)),
        );
        words.extend(
            probe_options(spec.ready.as_ref(), false)
                .iter()
                .map(|w| arg(w)),
        );
        let mut unit = String::new();
        let _ = writeln!(unit, "[Unit]");
        let _ = writeln!(unit, "Description={app} {} balancer on {listen}", spec.name);
        let _ = writeln!(unit, "PartOf={app}.target");
        let _ = writeln!(unit, "\n[Service]\nType=simple");
        let _ = writeln!(unit, "ExecStart={}", words.join(" "));
        let _ = writeln!(unit, "Restart=always");
        let _ = writeln!(unit, "TimeoutStopSec={}", duration(spec.stop_timeout));
        if let Some(user) = &user {
            let _ = writeln!(unit, "User={user}");
        }
        files.push((balancer_unit(&app, spec), unit.into_bytes()));
    }
    Ok(files)
}

/// The proxied types that run: each gets a balancer unit.
fn balanced(plan: &Plan) -> impl Iterator<Item = &ProcessSpec> {
    plan.types
        .iter()
        .filter(|t| t.proxy.is_some() && t.count > 0 && t.name != RELEASE)
}

/// `APP-web-balancer.service`: a plain unit, so it never collides with a
/// type's template (`APP-web-balancer@.service`).
pub fn balancer_unit(app: &str, spec: &ProcessSpec) -> String {
    format!("{app}-{}-balancer.service", spec.name)
}

/// `host:port`, with an IPv6 host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// pm's path as the first word of a command line.
fn pm_word(options: &Options) -> Result<String> {
    let path = options.pm_path.display().to_string();
    setting("--pm-path", &path)?;
    Ok(arg(&path))
}

/// A command-line word: as it is when systemd reads it so, else quoted.
fn arg(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@=,+-[]".contains(c));
    if plain { text.to_string() } else { word(text) }
}

fn unit_file(app: &str, spec: &ProcessSpec) -> String {
    if spec.name == RELEASE {
        format!("{app}-{RELEASE}.service")
    } else {
        format!("{app}-{}@.service", spec.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        assert_eq!(app_name("my app").ok().as_deref(), Some("my-app"));
        assert_eq!(app_name("a@b").ok().as_deref(), Some("a-b"));
        assert_eq!(app_name("App_1.x").ok().as_deref(), Some("App_1.x"));
        assert!(app_name("@@").is_err());
    }
}
