//! The runtime: the actor that owns the supervisor and carries out its
//! actions with real processes.
//!
//! One task owns all state. It `select!`s over OS signals (shutdown requests
//! and SIGCHLD), relay events and the supervisor's next deadline; it never
//! sleeps, so a second Ctrl-C is answered at once. SIGCHLD leads to
//! [`process::reap`], the only `waitpid(-1)` in pm.

pub mod relay;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, watch};

use crate::config::formation::MAX_COUNT;
use crate::config::pm_toml::Check;
use crate::config::ports;
use crate::control::protocol::{Command, InstanceInfo, Reply};
use crate::health::{self, Kind, Verdict};
use crate::supervisor::{Event, Intent, Phase, State};

use crate::error::{Error, Result};
use crate::model::ExitStatus;
use crate::output::{Clock, Framer, OutputTx};
use crate::plan::Plan;
use crate::process::{self, Guardian, SpawnSpec};
use crate::signals::{SignalEvent, Signals};
use crate::supervisor::{Action, Supervisor};
use relay::RelayEvent;

/// Messages from other tasks and threads to the runtime.
#[derive(Debug)]
pub enum Message {
    Relay(RelayEvent),
    /// Nobody reads pm's stdout any more.
    BrokenPipe,
    /// A request from the control socket, with where to send the reply.
    Control(Command, oneshot::Sender<Reply>),
    /// A health check of the run `pid` reached a verdict.
    Health {
        pid: i32,
        verdict: Verdict,
    },
    /// An `exec` probe of the run `instance_pid` asks for its command to be
    /// started; the reply carries the probe's pid and, later, its status.
    Exec {
        instance_pid: i32,
        command: String,
        reply: oneshot::Sender<ExecStarted>,
    },
}

/// The answer to [`Message::Exec`].
pub type ExecStarted = std::io::Result<(i32, oneshot::Receiver<ExitStatus>)>;

/// How output is shown: computed once from the flags and the terminal.
#[derive(Debug, Clone, Copy)]
pub struct OutputStyle {
    pub color: bool,
    pub timestamps: bool,
    pub width: usize,
}

/// One run of one instance, from spawn until its exit has been handled.
struct Run {
    id: usize,
    exit: Option<ExitStatus>,
    output_open: bool,
    drain: UnboundedSender<()>,
    /// Its health check tasks, aborted when the run ends.
    checks: Vec<tokio::task::AbortHandle>,
}

/// A balanced type's listener, bound before anything starts: (type index,
/// address as shown, the socket).
pub type ProxyListener = (usize, String, std::net::TcpListener);

/// A process type's load balancer.
struct Balancer {
    type_index: usize,
    address: String,
    listener: Option<std::net::TcpListener>,
    rotation: watch::Sender<Vec<u16>>,
}

pub struct Runtime {
    plan: Plan,
    sup: Supervisor,
    guardian: Guardian,
    out: OutputTx,
    style: OutputStyle,
    system: Framer,
    clock: Clock,
    messages_tx: UnboundedSender<Message>,
    messages: UnboundedReceiver<Message>,
    runs: HashMap<i32, Run>,
    /// Process groups pm started that may still have members.
    groups: BTreeSet<i32>,
    /// Relays whose output has not ended yet.
    open_relays: usize,
    /// Set once stragglers are being signaled; new orphans get it too.
    straggler_signal: Option<Signal>,
    signaled: HashSet<(i32, Signal)>,
    /// The control socket, served once the runtime runs.
    control: Option<std::os::unix::net::UnixListener>,
    balancers: Vec<Balancer>,
    /// Where the balancers run (their own threads).
    proxy_runtime: Option<tokio::runtime::Handle>,
    /// Running `exec` probes: where their exit status goes.
    probes: HashMap<i32, oneshot::Sender<ExitStatus>>,
}

impl Runtime {
    pub fn new(
        plan: Plan,
        guardian: Guardian,
        out: OutputTx,
        style: OutputStyle,
        messages_tx: UnboundedSender<Message>,
        messages: UnboundedReceiver<Message>,
    ) -> Runtime {
        let sup = Supervisor::new(&plan);
        Runtime {
            plan,
            sup,
            guardian,
            out,
            style,
            system: Framer::system(style.width, style.color, style.timestamps),
            clock: Clock::default(),
            messages_tx,
            messages,
            runs: HashMap::new(),
            groups: BTreeSet::new(),
            open_relays: 0,
            straggler_signal: None,
            signaled: HashSet::new(),
            control: None,
            balancers: Vec::new(),
            proxy_runtime: None,
            probes: HashMap::new(),
        }
    }

    /// Balances each proxied type over its listener (bound by the caller,
    /// so that a port in use fails before anything starts).
    pub fn with_proxies(
        mut self,
        proxies: Option<(Vec<ProxyListener>, tokio::runtime::Handle)>,
    ) -> Runtime {
        let Some((listeners, handle)) = proxies else {
            return self;
        };
        self.proxy_runtime = Some(handle);
        for (type_index, address, listener) in listeners {
            let (rotation, _) = watch::channel(Vec::new());
            self.balancers.push(Balancer {
                type_index,
                address,
                listener: Some(listener),
                rotation,
            });
        }
        self
    }

    /// Serves `pm ps`, `pm restart`, `pm stop` and `pm scale` on this socket.
    pub fn with_control(mut self, listener: std::os::unix::net::UnixListener) -> Runtime {
        self.control = Some(listener);
        self
    }

    /// A channel for messages to a runtime that does not exist yet (the
    /// output writer needs a sender before the runtime is built).
    pub fn channel() -> (UnboundedSender<Message>, UnboundedReceiver<Message>) {
        mpsc::unbounded_channel()
    }

    /// Supervises until everything has ended; returns pm's exit code.
    pub async fn run(mut self) -> Result<i32> {
        let mut signals =
            Signals::install().map_err(|e| Error::os("cannot install signal handlers", e))?;
        if let Some(listener) = self.control.take() {
            tokio::spawn(crate::control::server::serve(
                listener,
                self.messages_tx.clone(),
            ));
        }
        if let Some(handle) = &self.proxy_runtime {
            for b in &mut self.balancers {
                if let Some(listener) = b.listener.take() {
                    handle.spawn(crate::proxy::serve(listener, b.rotation.subscribe()));
                }
            }
        }
        let listening: Vec<Event> = self
            .balancers
            .iter()
            .map(|b| Event::ProxyListening {
                name: self.plan.types[b.type_index].name.clone(),
                address: b.address.clone(),
            })
            .collect();
        for event in listening {
            self.say(&event.to_string());
        }
        let actions = self.sup.start(Instant::now());
        self.apply(actions);
        let code = loop {
            // Reap first: a child may have ended before the handlers existed.
            self.reap();
            let now = Instant::now();
            if let Some(code) = self.sup.finished(|| self.descendants_left(), now) {
                break code;
            }
            let deadline = self.sup.next_deadline(now);
            tokio::select! {
                biased;
                signal = signals.recv() => match signal {
                    SignalEvent::Shutdown(sig) => {
                        let actions = self.sup.shutdown(sig, Instant::now());
                        self.apply(actions);
                    }
                    SignalEvent::Child => self.reap(),
                },
                Some(message) = self.messages.recv() => self.on_message(message),
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let actions = self.sup.tick(Instant::now());
                    self.apply(actions);
                }
            }
        };
        self.wait_for_relays().await;
        self.guardian.release();
        Ok(code)
    }

    fn on_message(&mut self, message: Message) {
        match message {
            Message::Relay(RelayEvent::Drained(pid)) => self.output_done(pid, false),
            Message::Relay(RelayEvent::Closed(pid)) => {
                self.open_relays = self.open_relays.saturating_sub(1);
                self.output_done(pid, true);
            }
            Message::BrokenPipe => {
                let actions = self.sup.shutdown(Signal::SIGPIPE, Instant::now());
                self.apply(actions);
            }
            Message::Control(command, reply) => {
                let answer = self.control(command);
                let _ = reply.send(answer);
            }
            Message::Health { pid, verdict } => {
                let Some(id) = self.live_run(pid) else {
                    return;
                };
                let now = Instant::now();
                let actions = match verdict {
                    Verdict::Ready => self.sup.ready_changed(id, true, String::new(), now),
                    Verdict::Unready(reason) => self.sup.ready_changed(id, false, reason, now),
                    Verdict::LiveFailed(reason) => self.sup.live_failed(id, reason, now),
                };
                self.apply(actions);
            }
            Message::Exec {
                instance_pid,
                command,
                reply,
            } => {
                let _ = reply.send(self.start_probe(instance_pid, &command));
            }
        }
    }

    /// The instance id of a run that has not exited yet.
    fn live_run(&self, pid: i32) -> Option<usize> {
        self.runs
            .get(&pid)
            .filter(|run| run.exit.is_none())
            .map(|run| run.id)
    }

    /// Starts an `exec` probe for the run `instance_pid`, with its env.
    fn start_probe(&mut self, instance_pid: i32, command: &str) -> ExecStarted {
        let stopping = !matches!(self.sup.phase(), Phase::Release | Phase::Running);
        let Some(id) = self.live_run(instance_pid).filter(|_| !stopping) else {
            return Err(std::io::Error::other("the process is stopping"));
        };
        let env = self.plan.instance_env(&self.plan.instances[id]);
        let pid = process::spawn_quiet(command, &self.plan.root, &env)?;
        self.groups.insert(pid);
        self.guardian.watch(pid);
        let (tx, rx) = oneshot::channel();
        self.probes.insert(pid, tx);
        Ok((pid, rx))
    }

    /// Publishes each balanced type's instances in rotation.
    fn update_rotations(&self) {
        for b in &self.balancers {
            let mut ports: Vec<(u32, u16)> = (0..self.sup.instances().len())
                .filter(|&id| {
                    self.plan.instances[id].type_index == b.type_index && self.sup.in_rotation(id)
                })
                .map(|id| (self.plan.instances[id].number, self.plan.instances[id].port))
                .collect();
            ports.sort_unstable();
            let ports: Vec<u16> = ports.into_iter().map(|(_, port)| port).collect();
            b.rotation.send_if_modified(|current| {
                let changed = *current != ports;
                if changed {
                    *current = ports;
                }
                changed
            });
        }
    }

    /// Answers one control request.
    fn control(&mut self, command: Command) -> Reply {
        let now = Instant::now();
        if self.sup.phase() == Phase::Release && command != Command::Ps {
            return Reply::error(
                "the release phase is running: nothing else can change until it has completed",
            );
        }
        match command {
            Command::Ps => Reply::instances(self.ps(now)),
            Command::Restart { targets } => match self.targets(&targets) {
                Ok((ids, names)) => {
                    let actions = self.sup.restart(&ids, now);
                    self.apply(actions);
                    let balanced = ids.iter().any(|&id| {
                        self.plan.types[self.plan.instances[id].type_index]
                            .proxy
                            .is_some()
                    });
                    let how = if balanced {
                        " (balanced instances one at a time, each once the one before is ready)"
                    } else {
                        ""
                    };
                    Reply::message(format!("restarting {}{how}", names.join(", ")))
                }
                Err(e) => Reply::error(e),
            },
            Command::Stop { targets } => match self.targets(&targets) {
                Ok((ids, names)) => {
                    let actions = self.sup.stop(&ids, false, now);
                    self.apply(actions);
                    Reply::message(format!("stopping {}", names.join(", ")))
                }
                Err(e) => Reply::error(e),
            },
            Command::Scale { formation } => match self.scale(&formation, now) {
                Ok(text) => Reply::message(text),
                Err(e) => Reply::error(e),
            },
        }
    }

    fn ps(&self, now: Instant) -> Vec<InstanceInfo> {
        // In Procfile order, then by number, whatever order scaling added them in.
        let mut ids: Vec<usize> = (0..self.sup.instances().len()).collect();
        ids.sort_by_key(|&id| {
            let spec = &self.plan.instances[id];
            (spec.type_index, spec.number)
        });
        ids.into_iter()
            .map(|id| (id, &self.sup.instances()[id]))
            .filter(|(_, inst)| !inst.retired)
            .map(|(id, inst)| {
                let spec = &self.plan.instances[id];
                let (pid, uptime, state) = match inst.state {
                    State::Running {
                        pid,
                        since,
                        kill_at,
                        ..
                    } => (
                        Some(pid),
                        Some(now.saturating_duration_since(since).as_secs_f64()),
                        if kill_at.is_some() {
                            "stopping"
                        } else if self.sup.health(id) == Some("ready") {
                            "ready"
                        } else {
                            "running"
                        },
                    ),
                    State::Waiting | State::Pending => (None, None, "starting"),
                    State::Backoff { .. } => (None, None, "backing-off"),
                    State::Exited(_) => (None, None, "exited"),
                    State::Failed(_) => (None, None, "failed"),
                    State::Stopped => (None, None, "stopped"),
                };
                InstanceInfo {
                    name: inst.name.clone(),
                    type_name: self.plan.types[spec.type_index].name.clone(),
                    index: spec.number,
                    pid,
                    state: state.to_string(),
                    restarts: inst.restarts,
                    uptime_s: uptime.map(|u| (u * 10.0).round() / 10.0),
                    port: spec.port,
                    health: self.sup.health(id).map(str::to_string),
                }
            })
            .collect()
    }

    /// Instance ids for `web` (every instance) or `web.2`.
    fn targets(
        &self,
        targets: &[String],
    ) -> std::result::Result<(Vec<usize>, Vec<String>), String> {
        if targets.is_empty() {
            return Err("no target given (expected a process type like \"web\" or an instance like \"web.2\")".into());
        }
        let mut ids = Vec::new();
        for target in targets {
            let found: Vec<usize> = self
                .sup
                .instances()
                .iter()
                .enumerate()
                .filter(|(id, inst)| {
                    !inst.retired
                        && (inst.name == *target
                            || self.plan.types[self.plan.instances[*id].type_index].name == *target)
                })
                .map(|(id, _)| id)
                .collect();
            if found.is_empty() {
                let known: Vec<&str> = self.plan.types.iter().map(|t| t.name.as_str()).collect();
                return Err(format!(
                    "no process or instance \"{}\" is running here (process types: {})",
                    crate::config::one_line(target),
                    known.join(", ")
                ));
            }
            for id in found {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let names = ids
            .iter()
            .map(|&id| self.sup.instances()[id].name.clone())
            .collect();
        Ok((ids, names))
    }

    /// Brings each named type to its count: new instances get the ports
    /// `pm start` would give them; the highest-numbered ones go first.
    fn scale(
        &mut self,
        formation: &std::collections::BTreeMap<String, u32>,
        now: Instant,
    ) -> std::result::Result<String, String> {
        if formation.is_empty() {
            return Err("empty formation (expected NAME=COUNT...)".into());
        }
        for (name, &count) in formation {
            let Some(spec) = self.plan.type_named(name) else {
                let known: Vec<&str> = self.plan.types.iter().map(|t| t.name.as_str()).collect();
                return Err(format!(
                    "unknown process type \"{name}\" (known: {})",
                    known.join(", ")
                ));
            };
            if name == crate::plan::RELEASE {
                return Err("\"release\" runs once before the others; it cannot be scaled".into());
            }
            if count > MAX_COUNT {
                return Err(format!(
                    "count {count} for \"{name}\" is above the limit of {MAX_COUNT}"
                ));
            }
            ports::port_for(
                self.plan.base_port,
                self.plan.port_step,
                spec.position,
                count.max(1),
                name,
            )
            .map_err(|e| e.to_string())?;
        }
        let (target, pulled) = self.with_dependencies(formation)?;
        let mut changes = Vec::new();
        for (name, &count) in &target {
            let Some(type_index) = self.plan.types.iter().position(|t| t.name == *name) else {
                continue;
            };
            let position = self.plan.types[type_index].position;
            for number in 1..=count {
                let existing = self
                    .plan
                    .instances
                    .iter()
                    .position(|i| i.type_index == type_index && i.number == number);
                match existing {
                    // Scaled away, or still stopping from a scale down.
                    Some(id)
                        if self.sup.instances()[id].retired
                            || self.sup.instances()[id].intent == Some(Intent::Retire) =>
                    {
                        let actions = self.sup.restart(&[id], now);
                        self.apply(actions);
                    }
                    Some(_) => {}
                    None => {
                        let name = format!("{name}.{number}");
                        let port = ports::port_for(
                            self.plan.base_port,
                            self.plan.port_step,
                            position,
                            number,
                            &name,
                        )
                        .map_err(|e| e.to_string())?;
                        self.plan.instances.push(crate::plan::InstanceSpec {
                            type_index,
                            number,
                            name: name.clone(),
                            port,
                        });
                        let actions = self.sup.add_instance(name, type_index, port, now);
                        self.apply(actions);
                    }
                }
            }
            let extra: Vec<usize> = self
                .plan
                .instances
                .iter()
                .enumerate()
                .filter(|(id, i)| {
                    i.type_index == type_index
                        && i.number > count
                        && !self.sup.instances()[*id].retired
                })
                .map(|(id, _)| id)
                .collect();
            let actions = self.sup.stop(&extra, true, now);
            self.apply(actions);
            changes.push(format!("{name}={count}"));
        }
        let also = if pulled.is_empty() {
            String::new()
        } else {
            format!(
                " ({} started too: what the scaled types depend on)",
                pulled.join(", ")
            )
        };
        Ok(format!("scaled to {}{also}", changes.join(", ")))
    }

    /// The formation of a `pm scale`, with what it needs: a type that will
    /// run starts what it depends on when none of it runs (as `pm start`
    /// does), and a dependency cannot go to 0 under a type that runs.
    fn with_dependencies(
        &self,
        formation: &std::collections::BTreeMap<String, u32>,
    ) -> std::result::Result<(std::collections::BTreeMap<String, u32>, Vec<String>), String> {
        let active = |t: usize| {
            self.sup
                .instances()
                .iter()
                .filter(|i| i.type_index == t && !i.retired && i.intent != Some(Intent::Retire))
                .count()
        };
        let index = |name: &str| self.plan.types.iter().position(|t| t.name == name);
        let mut target = formation.clone();
        let mut pulled = Vec::new();
        let mut stack: Vec<String> = target
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, _)| name.clone())
            .collect();
        while let Some(name) = stack.pop() {
            let Some(t) = index(&name) else { continue };
            for dep in &self.plan.types[t].depends_on {
                match target.get(dep) {
                    Some(0) => {
                        return Err(format!(
                            "\"{name}\" depends on \"{dep}\", which cannot be scaled to 0 while {name} runs"
                        ));
                    }
                    Some(_) => {}
                    None if index(dep).is_some_and(|d| active(d) == 0) => {
                        target.insert(dep.clone(), 1);
                        pulled.push(dep.clone());
                        stack.push(dep.clone());
                    }
                    None => {}
                }
            }
        }
        for (name, _) in target.iter().filter(|(_, n)| **n == 0) {
            for (u, spec) in self.plan.types.iter().enumerate() {
                let runs = target.get(&spec.name).map_or(active(u) > 0, |&n| n > 0);
                if runs && spec.depends_on.contains(name) {
                    return Err(format!(
                        "\"{}\" depends on \"{name}\", which cannot be scaled to 0 while {} runs",
                        spec.name, spec.name
                    ));
                }
            }
        }
        Ok((target, pulled))
    }

    /// A run's output is drained (or closed): if the process was reaped too,
    /// its exit is now handed to the supervisor.
    fn output_done(&mut self, pid: i32, closed: bool) {
        let Some(run) = self.runs.get_mut(&pid) else {
            return;
        };
        if closed {
            run.output_open = false;
        }
        if let Some(status) = run.exit {
            self.finish_run(pid, status);
        }
    }

    fn reap(&mut self) {
        for (pid, status) in process::reap() {
            if let Some(probe) = self.probes.remove(&pid) {
                let _ = probe.send(status);
                continue;
            }
            match self.runs.get_mut(&pid) {
                Some(run) => {
                    run.exit = Some(status);
                    if run.output_open && run.drain.send(()).is_ok() {
                        // The relay answers with Drained; the exit waits.
                        continue;
                    }
                    self.finish_run(pid, status);
                }
                None => {
                    // An adopted orphan (or the guardian): reaped, nothing more.
                    debug(format_args!("reaped {pid} ({status:?})"));
                }
            }
        }
        self.forget_empty_groups();
        if let Some(sig) = self.straggler_signal {
            self.signal_stragglers(sig);
        }
    }

    fn finish_run(&mut self, pid: i32, status: ExitStatus) {
        let Some(run) = self.runs.remove(&pid) else {
            return;
        };
        for check in &run.checks {
            check.abort();
        }
        let actions = self.sup.exited(run.id, status, Instant::now());
        self.apply(actions);
    }

    fn forget_empty_groups(&mut self) {
        let live: HashSet<i32> = self.runs.keys().copied().collect();
        let empty: Vec<i32> = self
            .groups
            .iter()
            .copied()
            .filter(|pgid| !live.contains(pgid) && !process::group_alive(*pgid))
            .collect();
        for pgid in empty {
            self.groups.remove(&pgid);
            self.guardian.forget(pgid);
        }
    }

    /// Whether anything pm started is still alive, apart from the guardian.
    fn descendants_left(&self) -> bool {
        let guardian = self.guardian.pid();
        if cfg!(target_os = "linux") {
            process::children().into_iter().any(|pid| pid != guardian)
        } else {
            self.groups.iter().any(|pgid| process::group_alive(*pgid))
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn(id) => queue.extend(self.spawn(id)),
                Action::Signal(id, sig) => {
                    // Out of the rotation before the signal can reach it.
                    self.update_rotations();
                    let current = self
                        .runs
                        .iter()
                        .find(|(_, run)| run.id == id && run.exit.is_none());
                    if let Some((&pid, _)) = current {
                        process::signal_group(pid, sig);
                    }
                }
                Action::SignalStragglers(sig) => {
                    self.straggler_signal = Some(sig);
                    self.signal_stragglers(sig);
                }
                Action::KillAll => {
                    for &pgid in &self.groups {
                        process::signal_group(pgid, Signal::SIGKILL);
                    }
                    self.straggler_signal = Some(Signal::SIGKILL);
                    self.signal_stragglers(Signal::SIGKILL);
                }
                Action::Say(event) => self.say(&event.to_string()),
            }
        }
        self.update_rotations();
    }

    /// Signals what pm started that is not a running instance: the groups of
    /// instances that already exited (their background jobs) and orphans
    /// adopted as subreaper. Each gets a given signal once.
    fn signal_stragglers(&mut self, sig: Signal) {
        let running: HashSet<i32> = self
            .runs
            .iter()
            .filter(|(_, run)| run.exit.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        let groups: Vec<i32> = self
            .groups
            .iter()
            .copied()
            .filter(|pgid| !running.contains(pgid))
            .collect();
        for pgid in groups {
            if self.signaled.insert((-pgid, sig)) {
                process::signal_group(pgid, sig);
            }
        }
        let guardian = self.guardian.pid();
        for pid in process::children() {
            if pid != guardian && !running.contains(&pid) && self.signaled.insert((pid, sig)) {
                process::signal_pid(pid, sig);
            }
        }
    }

    fn spawn(&mut self, id: usize) -> Vec<Action> {
        let instance = &self.plan.instances[id];
        let spec = &self.plan.types[instance.type_index];
        let env = self.plan.instance_env(instance);
        let result = process::spawn(&SpawnSpec {
            command: &spec.command,
            cwd: &self.plan.root,
            env: &env,
            pty: spec.pty,
        });
        let now = Instant::now();
        match result {
            Ok(spawned) => {
                let pid = spawned.pid;
                self.groups.insert(pid);
                self.guardian.watch(pid);
                let framer = Framer::new(
                    &instance.name,
                    self.style.width,
                    self.style.color.then_some(id),
                    self.style.timestamps,
                );
                let (drain_tx, drain_rx) = mpsc::unbounded_channel();
                tokio::spawn(relay::relay(
                    pid,
                    spawned.output,
                    framer,
                    self.out.clone(),
                    drain_rx,
                    self.messages_tx.clone(),
                ));
                self.open_relays += 1;
                let mut checks = Vec::new();
                let ready = spec.ready.clone().or_else(|| {
                    // A balanced type without a readiness check joins the
                    // rotation once its port accepts connections.
                    spec.proxy.as_ref().map(|_| Check::tcp())
                });
                for (kind, check) in [(Kind::Ready, ready), (Kind::Live, spec.live.clone())] {
                    if let Some(check) = check {
                        let watch = health::Watch {
                            pid,
                            port: instance.port,
                            kind,
                            check,
                        };
                        let task = tokio::spawn(health::watch(watch, self.messages_tx.clone()));
                        checks.push(task.abort_handle());
                    }
                }
                self.runs.insert(
                    pid,
                    Run {
                        id,
                        exit: None,
                        output_open: true,
                        drain: drain_tx,
                        checks,
                    },
                );
                self.sup.spawned(id, pid, now)
            }
            Err(error) => self.sup.spawn_failed(id, error.to_string(), now),
        }
    }

    fn say(&mut self, text: &str) {
        let mut buf = Vec::new();
        self.system.line(text, &mut self.clock, &mut buf);
        self.out.send_now(buf);
    }

    /// After the last exit: let every relay read to the end of its output so
    /// no line is lost, but never wait forever for a pipe some stray process
    /// still holds open.
    async fn wait_for_relays(&mut self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.open_relays > 0 {
            match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                Ok(Some(Message::Relay(RelayEvent::Closed(_)))) => self.open_relays -= 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// Developer diagnostics on stderr, only with PM_LOG=debug.
pub fn debug(args: std::fmt::Arguments<'_>) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var("PM_LOG").is_ok_and(|v| v == "debug")) {
        eprintln!("pm: debug: {args}");
    }
}
