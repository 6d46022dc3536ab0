//! Policy: the supervisor's state machine. It owns every instance, its spec
//! (type, number, name, port) and its state, and decides what happens next
//! (spawn, signal, restart, give up, stop everything, exit with which code)
//! from events and the current time. It also decides what a control request
//! means: which instances a target names, what a scale changes, which
//! dependencies come along.
//!
//! It never touches a process or a clock: inputs carry `now`, outputs are
//! [`Action`]s that the runtime carries out. So every rule is tested as a
//! table, without processes and without sleeping. It never mutates the
//! [`Plan`] either: it copies the instances out of it, and a scale changes
//! its own list only.
//!
//! One file per job, each an `impl Supervisor` block with its own tests:
//! `lifecycle` (start, spawn, exit, backoff), `deps` (who waits for whom),
//! `shutdown` (waves, grace, SIGKILL, the exit code), `rolling` (rolling
//! restarts and the balancer's rotation), `targets` (`pm restart` and `pm
//! stop` of named instances), `scale` (`pm scale`), `health` (check verdicts
//! and their thresholds), `wait` (what a waiting client waits for), `console` (what `pm logs` and
//! `pm attach` name). `event` is the wording of pm's own lines, `policy`
//! the restart decision.

pub mod console;
pub mod deps;
pub mod event;
pub mod health;
pub mod lifecycle;
pub mod policy;
pub mod rolling;
pub mod scale;
pub mod shutdown;
pub mod targets;
pub mod wait;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use event::Event;

use rolling::Roll;
pub use scale::Scaled;
pub use targets::{Restarting, Stopping};
pub use wait::{Goal, Progress};

use crate::model::{ExitStatus, RestartSettings};
use crate::plan::{InstanceSpec, Plan, RELEASE};

/// How long Killing waits for processes to vanish after SIGKILL before pm
/// exits anyway (a process stuck in the kernel cannot be waited for forever).
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// Without a readiness check, an instance that has run this long without
/// exiting counts as ready for the types that depend on it.
pub const SETTLE: Duration = Duration::from_millis(500);

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start instance `id`; answer with `spawned` or `spawn_failed`.
    Spawn(usize),
    /// Send a signal to instance `id`'s process group.
    Signal(usize, Signal),
    /// Send a signal to everything else pm started that is still alive: the
    /// groups of instances that already exited, and adopted orphans.
    SignalStragglers(Signal),
    /// SIGKILL every process group and every descendant pm knows.
    KillAll,
    /// Print a `system` line.
    Say(Event),
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the types it depends on, or for the release phase.
    Waiting,
    /// About to be spawned.
    Pending,
    Running {
        pid: i32,
        since: Instant,
        stop: Stop,
    },
    /// Waiting to be restarted.
    Backoff { until: Instant },
    /// Ended and will not run again; not a failure.
    Exited(ExitStatus),
    /// Failed and given up.
    Failed(ExitStatus),
    /// Stopped by pm (shutdown) or on request (`pm stop`).
    Stopped,
}

/// How far the stopping of a running instance has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nobody asked it to stop.
    No,
    /// Its stop signal went out; SIGKILL follows at `kill_at`.
    Signalled { kill_at: Instant },
    /// SIGKILL went out: only its reaping is left.
    Killed,
}

impl State {
    pub fn is_running(&self) -> bool {
        matches!(self, State::Running { .. })
    }

    /// Running and not asked to stop.
    pub fn is_live(&self) -> bool {
        matches!(self, State::Running { stop: Stop::No, .. })
    }
}

/// What a user asked to happen once a running instance has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// `pm restart`: start it again at once.
    Restart,
    /// `pm stop`: leave it stopped.
    Stop,
    /// `pm scale` down: stop it and drop it from the formation.
    Retire,
}

#[derive(Debug, Clone)]
pub struct Instance {
    /// What it is: its type, number, name and port.
    pub spec: InstanceSpec,
    pub state: State,
    /// Restarts since pm started.
    pub restarts: u32,
    /// Restarts in the current crash loop.
    pub in_a_row: u32,
    /// Set by a control request, acted on when the instance exits.
    pub intent: Option<Intent>,
    /// Scaled away: no longer part of the formation.
    pub retired: bool,
    /// The readiness check of the current run passes (false without a check).
    pub ready: bool,
    /// The current run has been ready at least once (liveness counts from then).
    pub was_ready: bool,
    /// Runs started so far: a waiting client tells a new run from the old.
    pub runs: u32,
    /// Spawns that failed in a row (no process ran).
    pub spawn_failures: u32,
}

impl Instance {
    fn new(spec: InstanceSpec, state: State) -> Instance {
        Instance {
            spec,
            state,
            restarts: 0,
            in_a_row: 0,
            intent: None,
            retired: false,
            ready: false,
            was_ready: false,
            runs: 0,
            spawn_failures: 0,
        }
    }

    /// Still part of the formation: neither scaled away nor being retired.
    fn active(&self) -> bool {
        !self.retired && self.intent != Some(Intent::Retire)
    }
}

#[derive(Debug, Clone)]
struct TypeRules {
    name: String,
    /// Its position in the Procfile: decides its port block.
    position: usize,
    restart: RestartSettings,
    stop_signal: Signal,
    stop_timeout: Duration,
    is_release: bool,
    /// Types (by index) that must be ready before this one starts.
    deps: Vec<usize>,
    /// Types (by index) that depend on this one: they stop first.
    dependents: Vec<usize>,
    /// Readiness comes from a check (else from running for `SETTLE`).
    checked: bool,
    /// Balanced by the proxy: `pm restart` goes one instance at a time.
    rolling: bool,
    /// The release type or one of the types it depends on (transitively):
    /// these may run during the release phase.
    before_release: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The release instance runs; nothing else has started.
    Release,
    Running,
    /// Stop signals sent; waiting for everything to exit.
    Stopping {
        code: i32,
        until: Instant,
    },
    /// SIGKILL sent to everything; waiting for the last reaps.
    Killing {
        code: i32,
        until: Instant,
    },
}

pub struct Supervisor {
    instances: Vec<Instance>,
    types: Vec<TypeRules>,
    /// The port arithmetic for instances a scale adds.
    base_port: u16,
    port_step: u16,
    phase: Phase,
    actions: Vec<Action>,
    /// Per type.
    rolls: Vec<Roll>,
    /// The stop signal went to what pm started besides the instances.
    stragglers_signalled: bool,
    /// The shutdown grace (-t): what belongs to no type (stragglers) gets
    /// this long after its stop signal.
    grace: Duration,
}

impl Supervisor {
    pub fn new(plan: &Plan) -> Supervisor {
        let index = |name: &String| plan.types.iter().position(|t| &t.name == name);
        let mut types: Vec<TypeRules> = plan
            .types
            .iter()
            .map(|t| TypeRules {
                name: t.name.clone(),
                position: t.position,
                restart: t.restart,
                stop_signal: t.stop_signal,
                stop_timeout: t.stop_timeout,
                is_release: t.name == RELEASE,
                deps: t.depends_on.iter().filter_map(index).collect(),
                dependents: Vec::new(),
                checked: t.ready.is_some() || t.proxy.is_some(),
                rolling: t.proxy.is_some(),
                before_release: false,
            })
            .collect();
        for i in 0..types.len() {
            for d in types[i].deps.clone() {
                types[d].dependents.push(i);
            }
        }
        // Mark the release type and everything it needs (cycles were
        // refused when pm.toml was read; `seen` guards anyway).
        let mut stack: Vec<usize> = (0..types.len()).filter(|&i| types[i].is_release).collect();
        while let Some(i) = stack.pop() {
            if !types[i].before_release {
                types[i].before_release = true;
                stack.extend(types[i].deps.iter().copied());
            }
        }
        let instances = plan
            .instances
            .iter()
            .map(|spec| Instance::new(spec.clone(), State::Pending))
            .collect();
        let rolls = vec![Roll::default(); types.len()];
        Supervisor {
            instances,
            types,
            base_port: plan.base_port,
            port_step: plan.port_step,
            phase: Phase::Running,
            actions: Vec::new(),
            rolls,
            stragglers_signalled: false,
            grace: plan.timeout,
        }
    }

    /// Every instance, by id; one scaled away stays (marked `retired`).
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The name of process type `t`.
    pub fn type_name(&self, t: usize) -> &str {
        &self.types[t].name
    }

    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn say(&mut self, event: Event) {
        self.actions.push(Action::Say(event));
    }

    fn type_of(&self, id: usize) -> &TypeRules {
        &self.types[self.instances[id].spec.type_index]
    }

    fn name(&self, id: usize) -> String {
        self.instances[id].spec.name.clone()
    }

    fn is_release(&self, id: usize) -> bool {
        self.type_of(id).is_release
    }

    /// The next time `tick` has something to do.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        let someone_waits = self.instances.iter().any(|i| i.state == State::Waiting);
        match self.phase {
            Phase::Release | Phase::Running => {
                for inst in &self.instances {
                    let rules = &self.types[inst.spec.type_index];
                    match inst.state {
                        State::Backoff { until } => consider(until),
                        State::Running {
                            stop: Stop::Signalled { kill_at },
                            ..
                        } => consider(kill_at),
                        // An unchecked dependency becomes ready by running
                        // for a moment: wake up then.
                        State::Running {
                            since,
                            stop: Stop::No,
                            ..
                        } if someone_waits
                            && !rules.checked
                            && !rules.dependents.is_empty()
                            && since + SETTLE > now =>
                        {
                            consider(since + SETTLE)
                        }
                        _ => {}
                    }
                }
            }
            Phase::Stopping { until, .. } => {
                consider(until);
                for inst in &self.instances {
                    if let State::Running {
                        stop: Stop::Signalled { kill_at },
                        ..
                    } = inst.state
                    {
                        consider(kill_at);
                    }
                }
            }
            Phase::Killing { until, .. } => consider(until),
        }
        next
    }

    /// Acts on every deadline that has passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Release | Phase::Running => {
                self.restart_due(now);
                self.kill_overdue(now);
                self.after_change(now);
            }
            Phase::Stopping { code, until } => self.tick_stopping(code, until, now),
            Phase::Killing { .. } => {}
        }
        self.take()
    }
}

/// Plans and supervisors for the tests of every job.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::config::pm_toml::{ProcessSettings, Proxy, Settings};
    use crate::plan::PlanInputs;
    use std::path::PathBuf;

    pub fn plan(types: &[(&str, u32)], max_restarts: Option<u32>) -> Plan {
        build(types, max_restarts, Default::default())
    }

    pub fn build(types: &[(&str, u32)], max_restarts: Option<u32>, settings: Settings) -> Plan {
        Plan::build(PlanInputs {
            root: PathBuf::from("/"),
            procfile: "Procfile".into(),
            types: types
                .iter()
                .map(|(n, _)| (n.to_string(), format!("run {n}")))
                .collect(),
            counts: types.iter().map(|(_, c)| *c).collect(),
            env: Vec::new(),
            base_port: 5000,
            port_step: 100,
            timeout: Duration::from_secs(5),
            pty: false,
            max_restarts,
            settings,
        })
        .unwrap()
    }

    /// A plan whose types have these dependencies and proxies.
    pub fn plan_deps(types: &[(&str, u32)], deps: &[(&str, &[&str])], proxied: &[&str]) -> Plan {
        let mut settings = Settings::default();
        for (name, on) in deps {
            settings
                .process
                .entry(name.to_string())
                .or_default()
                .depends_on = on.iter().map(|d| d.to_string()).collect();
        }
        for name in proxied {
            let entry: &mut ProcessSettings = settings.process.entry(name.to_string()).or_default();
            entry.proxy = Some(Proxy {
                host: "127.0.0.1".into(),
                port: 8080,
            });
        }
        build(types, None, settings)
    }

    pub fn spawns(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    pub fn said(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say(e) => Some(e.to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn signals(actions: &[Action]) -> Vec<(usize, Signal)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Signal(id, sig) => Some((*id, *sig)),
                _ => None,
            })
            .collect()
    }

    /// Starts every instance with pids 100, 101, ...
    pub fn started(types: &[(&str, u32)], max: Option<u32>, t0: Instant) -> Supervisor {
        let mut sup = Supervisor::new(&plan(types, max));
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
        }
        sup
    }

    /// Starts every instance (pids 100 + id), each wave of dependencies
    /// SETTLE after the one it waits for.
    pub fn all_running(plan: &Plan, t0: Instant) -> Supervisor {
        let mut sup = Supervisor::new(plan);
        let mut now = t0;
        let mut next = spawns(&sup.start(now));
        while !next.is_empty() {
            for id in next {
                sup.spawned(id, 100 + id as i32, now);
            }
            now += SETTLE;
            next = spawns(&sup.tick(now));
        }
        assert!(sup.instances().iter().all(|i| i.state.is_running()));
        sup
    }
}
