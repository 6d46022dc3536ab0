//! The resolved model of the application: process types, formation, instances,
//! ports and environment. Every subcommand reads a `Plan`; nothing after the
//! Plan sees a raw Procfile or env-file string. Building it is pure.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::ConfigError;
use crate::config::pm_toml::{Check, ProcessSettings, Proxy, Settings};
use crate::config::ports;
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
    /// environment (later entries win).
    pub env: Vec<(String, String)>,
    pub base_port: u16,
    pub port_step: u16,
    /// Shutdown grace (-t).
    pub timeout: Duration,
    pub instances: Vec<InstanceSpec>,
}

/// The parts a Plan is built from, already parsed.
#[derive(Debug, Clone)]
pub struct PlanInputs {
    pub root: PathBuf,
    pub procfile: String,
    pub types: Vec<(String, String)>,
    pub counts: Vec<u32>,
    pub env: Vec<(String, String)>,
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
                }
            })
            .collect();
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
            base_port: inputs.base_port,
            port_step: inputs.port_step,
            timeout: inputs.timeout,
            instances,
        })
    }

    /// The variables an instance gets on top of pm's environment: the env
    /// files' values, then PORT, PS and DYNO, which always win.
    pub fn instance_env(&self, instance: &InstanceSpec) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("PORT".into(), instance.port.to_string()));
        env.push(("PS".into(), instance.name.clone()));
        env.push(("DYNO".into(), instance.name.clone()));
        env
    }

    pub fn type_named(&self, name: &str) -> Option<&ProcessSpec> {
        self.types.iter().find(|t| t.name == name)
    }
}
