//! The resolved model of the application: process types, formation, instances,
//! ports and environment. Every subcommand reads a `Plan`; nothing after the
//! Plan sees a raw Procfile or env-file string. Building it is pure.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::ConfigError;
use crate::config::pm_toml::{Audit, Check, ProcessSettings, Proxy, Settings, WatchGlobs};
use crate::config::ports;
use crate::config::value::Value;
use crate::model::{Restart, RestartSettings};

/// The name of the release-phase process type (Heroku's convention).
pub const RELEASE: &str = "release";

/// One process type with everything needed to run its instances.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    pub name: String,
    pub command: String,
    /// 0-based position in the Procfile: decides the port block.
    pub position: usize,
    /// How many instances run (the formation).
    pub count: u32,
    pub restart: RestartSettings,
    /// Sent first at shutdown, before the grace period ends in SIGKILL.
    pub stop_signal: Signal,
    /// Grace between the stop signal and SIGKILL.
    pub stop_timeout: Duration,
    pub pty: bool,
    /// Types whose instances must be ready before this one starts.
    pub depends_on: Vec<String>,
    pub proxy: Option<Proxy>,
    pub ready: Option<Check>,
    pub live: Option<Check>,
    /// Files whose changes restart it (`pm start` only).
    pub watch: Option<WatchGlobs>,
}

/// One process to run: `web.2` on its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Index into `Plan::types`.
    pub type_index: usize,
    /// 1-based instance number.
    pub number: u32,
    /// `web.2`: the value of PS and DYNO, and the output prefix.
    pub name: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where commands run.
    pub root: PathBuf,
    /// The Procfile as the user named it.
    pub procfile: String,
    pub types: Vec<ProcessSpec>,
    /// Variables from the env files, in order; applied on top of pm's own
    /// environment (later entries win). Address variables in them are
    /// expanded per runtime: see [`Plan::env`].
    pub env: Vec<(String, Value)>,
    /// Where each type is reached, by `Plan::types` index.
    pub addresses: Vec<Address>,
    pub base_port: u16,
    pub port_step: u16,
    /// Shutdown grace (-t).
    pub timeout: Duration,
    pub instances: Vec<InstanceSpec>,
    /// Lines of output kept per instance for `pm logs` and `pm attach`.
    pub scrollback: usize,
    /// pm.toml's `[audit]`: the differences `pm audit` expects.
    pub audit: Audit,
}

/// Where the other processes reach a process type (`PM_<TYPE>_HOST` and
/// `PM_<TYPE>_PORT`): one address per [`Engine`], derived from the type's
/// name, base port and proxy, so `pm start`, the exports and the audit agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `PM_STORE_HOST`, `PM_STORE_PORT`: the type's variable names.
    pub host_var: String,
    pub port_var: String,
    /// The host on this machine (`pm start`, `pm run`, systemd).
    pub host: String,
    /// On this machine: the proxy's port when the type is balanced, else
    /// instance 1's port.
    pub port: u16,
    /// The process type's name (a compose service, a Kubernetes Service).
    pub type_name: String,
    /// Instance 1's port: what every replica listens on in a container.
    pub base_port: u16,
    /// The proxy's port, when the type is balanced.
    pub proxy_port: Option<u16>,
}

/// Where a Plan runs, as far as addresses go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// `pm start`, `pm run` and systemd: every instance on this machine.
    Local,
    /// Docker Compose: a service per type on the project's network.
    Compose,
    /// Kubernetes: a Service per type, named after `app` (a DNS-1123 label).
    Kubernetes { app: String },
}

impl Engine {
    /// `PM_LISTEN_HOST`: where an instance binds.
    pub fn listen_host(&self) -> &'static str {
        match self {
            Engine::Local => LOCAL_HOST,
            Engine::Compose | Engine::Kubernetes { .. } => ANY_HOST,
        }
    }
}

/// The compose service that balances a proxied type: `web-balancer`.
pub fn balancer_service(type_name: &str) -> String {
    format!("{type_name}-balancer")
}

impl Address {
    /// The form that reaches the type on every engine, for a value to use
    /// instead of an address written by hand: `${PM_STORE_HOST}:${PM_STORE_PORT}`.
    pub fn form(&self) -> String {
        format!("${{{}}}:${{{}}}", self.host_var, self.port_var)
    }

    /// The host and port other processes reach the type at on `engine`.
    pub fn on(&self, engine: &Engine) -> (String, u16) {
        match engine {
            Engine::Local => (self.host.clone(), self.port),
            Engine::Compose => match self.proxy_port {
                Some(port) => (balancer_service(&self.type_name), port),
                None => (self.type_name.clone(), self.base_port),
            },
            Engine::Kubernetes { app } => (
                crate::syntax::kubernetes::object_name(app, &self.type_name),
                self.proxy_port.unwrap_or(self.base_port),
            ),
        }
    }
}

/// The variable that says where an instance binds ([`Engine::listen_host`]).
pub const LISTEN_HOST_VAR: &str = "PM_LISTEN_HOST";
/// Where an instance binds and is reached on this machine.
pub const LOCAL_HOST: &str = "127.0.0.1";
/// Where an instance binds in a container: every interface.
pub const ANY_HOST: &str = "0.0.0.0";

/// The address variable names of a type: `web-api` → `PM_WEB_API_HOST`,
/// `PM_WEB_API_PORT`.
pub fn address_vars(type_name: &str) -> (String, String) {
    let name: String = type_name
        .chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    (format!("PM_{name}_HOST"), format!("PM_{name}_PORT"))
}

/// The parts a Plan is built from, already parsed.
#[derive(Debug, Clone)]
pub struct PlanInputs {
    pub root: PathBuf,
    pub procfile: String,
    pub types: Vec<(String, String)>,
    pub counts: Vec<u32>,
    pub env: Vec<(String, Value)>,
    pub base_port: u16,
    pub port_step: u16,
    pub timeout: Duration,
    /// `--pty`: every type on a pseudo-terminal.
    pub pty: bool,
    /// `--max-restarts`: wins over pm.toml for every type.
    pub max_restarts: Option<u32>,
    /// pm.toml, validated (empty when there is none).
    pub settings: Settings,
}

impl Plan {
    /// Resolves instances and ports. Fails when a port would pass 65535.
    pub fn build(inputs: PlanInputs) -> Result<Plan, ConfigError> {
        let types: Vec<ProcessSpec> = inputs
            .types
            .into_iter()
            .zip(&inputs.counts)
            .enumerate()
            .map(|(position, ((name, command), &count))| {
                let own = inputs
                    .settings
                    .process
                    .get(&name)
                    .cloned()
                    .unwrap_or_default();
                let ProcessSettings {
                    restart,
                    max_restarts,
                    stop_signal,
                    stop_timeout,
                    pty,
                    depends_on,
                    proxy,
                    ready,
                    live,
                    watch,
                } = own;
                ProcessSpec {
                    restart: RestartSettings {
                        // The release phase runs once: a failure ends pm.
                        policy: if name == RELEASE {
                            Restart::Never
                        } else {
                            restart.unwrap_or(Restart::OnFailure)
                        },
                        max_restarts: inputs.max_restarts.or(max_restarts),
                    },
                    name,
                    command,
                    position,
                    count,
                    stop_signal: stop_signal.unwrap_or(Signal::SIGTERM),
                    stop_timeout: stop_timeout.unwrap_or(inputs.timeout),
                    pty: inputs.pty || pty.unwrap_or(false),
                    depends_on,
                    proxy,
                    ready,
                    live,
                    watch,
                }
            })
            .collect();
        let mut addresses: Vec<Address> = Vec::with_capacity(types.len());
        for spec in &types {
            let (host_var, port_var) = address_vars(&spec.name);
            if let Some(other) = addresses.iter().position(|a| a.host_var == host_var) {
                return Err(ConfigError::new(
                    inputs.procfile.clone(),
                    None,
                    format!(
                        "process types \"{}\" and \"{}\" both give the address variables {host_var} and {port_var} (rename one)",
                        types[other].name, spec.name
                    ),
                ));
            }
            let first = format!("{}.1", spec.name);
            let base_port =
                ports::port_for(inputs.base_port, inputs.port_step, spec.position, 1, &first)
                    .map_err(|e| ConfigError::new(inputs.procfile.clone(), None, e.to_string()))?;
            let (host, port) = match &spec.proxy {
                Some(proxy) => (reachable(&proxy.host), proxy.port),
                None => (LOCAL_HOST.to_string(), base_port),
            };
            addresses.push(Address {
                host_var,
                port_var,
                host,
                port,
                type_name: spec.name.clone(),
                base_port,
                proxy_port: spec.proxy.as_ref().map(|p| p.port),
            });
        }
        let mut instances = Vec::new();
        for (type_index, spec) in types.iter().enumerate() {
            for number in 1..=spec.count {
                let name = format!("{}.{}", spec.name, number);
                let port = ports::port_for(
                    inputs.base_port,
                    inputs.port_step,
                    spec.position,
                    number,
                    &name,
                )
                .map_err(|e| ConfigError::new(inputs.procfile.clone(), None, e.to_string()))?;
                instances.push(InstanceSpec {
                    type_index,
                    number,
                    name,
                    port,
                });
            }
        }
        Ok(Plan {
            root: inputs.root,
            procfile: inputs.procfile,
            types,
            env: inputs.env,
            addresses,
            base_port: inputs.base_port,
            port_step: inputs.port_step,
            timeout: inputs.timeout,
            instances,
            scrollback: inputs
                .settings
                .defaults
                .scrollback
                .unwrap_or(crate::config::pm_toml::DEFAULT_SCROLLBACK),
            audit: inputs.settings.audit,
        })
    }

    /// The address variables of every type, and `PM_LISTEN_HOST`, with
    /// their values on this machine.
    pub fn address_env(&self) -> Vec<(String, String)> {
        self.address_env_on(&Engine::Local)
    }

    /// The address variables of every type, and `PM_LISTEN_HOST`, with
    /// their values on `engine`.
    pub fn address_env_on(&self, engine: &Engine) -> Vec<(String, String)> {
        let mut env = Vec::with_capacity(self.addresses.len() * 2 + 1);
        for a in &self.addresses {
            let (host, port) = a.on(engine);
            env.push((a.host_var.clone(), host));
            env.push((a.port_var.clone(), port.to_string()));
        }
        env.push((
            LISTEN_HOST_VAR.to_string(),
            engine.listen_host().to_string(),
        ));
        env
    }

    /// Whether `name` is an address variable of this Plan.
    pub fn is_address_var(&self, name: &str) -> bool {
        name == LISTEN_HOST_VAR
            || self
                .addresses
                .iter()
                .any(|a| a.host_var == name || a.port_var == name)
    }

    /// The env files' variables with address variables expanded for this
    /// machine, followed by the address variables themselves, which win
    /// over a variable of the same name from an env file.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.env_files_env();
        env.extend(self.address_env());
        env
    }

    /// The env files' variables alone, address variables expanded for this
    /// machine.
    pub fn env_files_env(&self) -> Vec<(String, String)> {
        self.env_files_env_on(&Engine::Local)
    }

    /// The env files' variables alone, address variables expanded for
    /// `engine`.
    pub fn env_files_env_on(&self, engine: &Engine) -> Vec<(String, String)> {
        let addresses = self.address_env_on(engine);
        let lookup = |name: &str| {
            addresses
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.expand(lookup)))
            .collect()
    }

    /// The types a type reaches by its address variables: those whose
    /// `PM_<T>_HOST` or `PM_<T>_PORT` an env value uses, by index.
    pub fn reached_types(&self) -> Vec<usize> {
        let mut reached: Vec<usize> = Vec::new();
        for (_, value) in &self.env {
            for var in value.vars() {
                if let Some(t) = self
                    .addresses
                    .iter()
                    .position(|a| a.host_var == var || a.port_var == var)
                    && !reached.contains(&t)
                {
                    reached.push(t);
                }
            }
        }
        reached.sort_unstable();
        reached
    }

    /// Env variables whose text names another type's address on this
    /// machine by hand (`redis://127.0.0.1:5000` where 5000 is `store`'s
    /// address port): (variable, type index), one per variable, by the
    /// variable's last definition. Such a value reaches nothing in a
    /// container, and pm never rewrites it (it may be meant for a browser).
    pub fn loopback_references(&self) -> Vec<(String, usize)> {
        let mut last: Vec<(&str, &Value)> = Vec::new();
        for (name, value) in &self.env {
            match last.iter_mut().find(|(n, _)| *n == name.as_str()) {
                Some(entry) => entry.1 = value,
                None => last.push((name.as_str(), value)),
            }
        }
        let mut found = Vec::new();
        for (name, value) in last {
            if name == "PORT" {
                continue;
            }
            let hit = value.parts().iter().find_map(|part| match part {
                crate::config::value::Part::Text(text) => loopback_ports(text)
                    .into_iter()
                    .find_map(|port| self.addresses.iter().position(|a| a.port == port)),
                crate::config::value::Part::Var(_) => None,
            });
            if let Some(t) = hit {
                found.push((name.to_string(), t));
            }
        }
        found
    }

    /// The variables an instance gets on top of pm's environment: the env
    /// files' values, the address variables, then PORT, PS and DYNO, which
    /// always win.
    pub fn instance_env(&self, instance: &InstanceSpec) -> Vec<(String, String)> {
        let mut env = self.env();
        env.push(("PORT".into(), instance.port.to_string()));
        env.push(("PS".into(), instance.name.clone()));
        env.push(("DYNO".into(), instance.name.clone()));
        env
    }

    pub fn type_named(&self, name: &str) -> Option<&ProcessSpec> {
        self.types.iter().find(|t| t.name == name)
    }
}

/// The host to reach a listener bound to `host` on this machine: a
/// wildcard bind is reached on the loopback address.
fn reachable(host: &str) -> String {
    match host {
        "" | "0.0.0.0" | "::" | "[::]" => LOCAL_HOST.to_string(),
        other => other.to_string(),
    }
}

/// The ports of every `LOOPBACK:PORT` in `text`, for the loopback hosts a
/// hand-written local address uses.
fn loopback_ports(text: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for host in ["127.0.0.1:", "localhost:", "[::1]:", "0.0.0.0:"] {
        let mut rest = text;
        while let Some(at) = rest.find(host) {
            let before = &rest[..at];
            let after = &rest[at + host.len()..];
            // `x127.0.0.1` or `mylocalhost` is another host.
            let starts_here = !before
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if starts_here && let Ok(port) = digits.parse::<u16>() {
                ports.push(port);
            }
            rest = after;
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_written_by_hand() {
        assert_eq!(loopback_ports("redis://127.0.0.1:5000/0"), [5000]);
        assert_eq!(
            loopback_ports("a=localhost:1,b=[::1]:2,c=0.0.0.0:3"),
            [1, 2, 3]
        );
        assert!(loopback_ports("http://mylocalhost:5000 http://10.127.0.0.1:80").is_empty());
        assert!(loopback_ports("127.0.0.1:x").is_empty());
    }

    #[test]
    fn an_address_per_engine() {
        let a = Address {
            host_var: "PM_WEB_HOST".into(),
            port_var: "PM_WEB_PORT".into(),
            host: LOCAL_HOST.into(),
            port: 8080,
            type_name: "web_api".into(),
            base_port: 5100,
            proxy_port: Some(8080),
        };
        assert_eq!(a.on(&Engine::Local), ("127.0.0.1".into(), 8080));
        assert_eq!(a.form(), "${PM_WEB_HOST}:${PM_WEB_PORT}");
        assert_eq!(a.on(&Engine::Compose), ("web_api-balancer".into(), 8080));
        let k = Engine::Kubernetes { app: "shop".into() };
        assert_eq!(a.on(&k), ("shop-web-api".into(), 8080));
        let plain = Address {
            proxy_port: None,
            port: 5100,
            ..a
        };
        assert_eq!(plain.on(&Engine::Compose), ("web_api".into(), 5100));
        assert_eq!(plain.on(&k), ("shop-web-api".into(), 5100));
        assert_eq!(Engine::Compose.listen_host(), "0.0.0.0");
        assert_eq!(Engine::Local.listen_host(), "127.0.0.1");
    }
}
