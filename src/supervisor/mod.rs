//! Policy: the supervisor's state machine. It owns the state of every
//! instance and decides what happens next (spawn, signal, restart, give up,
//! stop everything, exit with which code) from events and the current time.
//!
//! It never touches a process or a clock: inputs carry `now`, outputs are
//! [`Action`]s that the runtime carries out. So every rule is tested as a
//! table, without processes and without sleeping.

pub mod event;
pub mod health;
pub mod policy;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use event::Event;
use policy::{Decision, decide};

use crate::model::{ExitStatus, RestartSettings};
use crate::plan::{Plan, RELEASE};

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
        /// Set once a stop signal was sent: SIGKILL follows at this time.
        kill_at: Option<Instant>,
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

impl State {
    pub fn is_running(&self) -> bool {
        matches!(self, State::Running { .. })
    }
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub type_index: usize,
    pub port: u16,
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
    /// SIGKILL went to the current run (it is only waiting to be reaped).
    pub killed: bool,
}

#[derive(Debug, Clone)]
struct TypeRules {
    name: String,
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

/// A rolling restart of one type in progress.
#[derive(Debug, Clone, Default)]
struct Roll {
    queue: VecDeque<usize>,
    current: Option<usize>,
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
    phase: Phase,
    actions: Vec<Action>,
    /// Per type.
    rolls: Vec<Roll>,
    /// The stop signal went to what pm started besides the instances.
    stragglers_signalled: bool,
}

impl Supervisor {
    pub fn new(plan: &Plan) -> Supervisor {
        let index = |name: &String| plan.types.iter().position(|t| &t.name == name);
        let mut types: Vec<TypeRules> = plan
            .types
            .iter()
            .map(|t| TypeRules {
                name: t.name.clone(),
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
            .map(|i| Instance {
                name: i.name.clone(),
                type_index: i.type_index,
                port: i.port,
                state: State::Pending,
                restarts: 0,
                in_a_row: 0,
                intent: None,
                retired: false,
                ready: false,
                was_ready: false,
                killed: false,
            })
            .collect();
        let rolls = vec![Roll::default(); types.len()];
        Supervisor {
            instances,
            types,
            phase: Phase::Running,
            actions: Vec::new(),
            rolls,
            stragglers_signalled: false,
        }
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn say(&mut self, event: Event) {
        self.actions.push(Action::Say(event));
    }

    fn is_release(&self, id: usize) -> bool {
        self.types[self.instances[id].type_index].is_release
    }

    /// Starts what may start: the release phase first (with what release
    /// depends on), each type once the types it depends on are ready.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        if (0..self.instances.len()).any(|id| self.is_release(id)) {
            self.phase = Phase::Release;
        }
        for inst in &mut self.instances {
            inst.state = State::Waiting;
        }
        // Say who waits for whom, once per type, before anything starts.
        for t in 0..self.types.len() {
            let waits = self.instances.iter().any(|i| i.type_index == t);
            let on: Vec<String> = self.types[t]
                .deps
                .iter()
                .filter(|&&d| self.instances.iter().any(|i| i.type_index == d))
                .map(|&d| self.types[d].name.clone())
                .collect();
            if waits && !on.is_empty() {
                let name = self.types[t].name.clone();
                self.say(Event::Waiting { name, on });
            }
        }
        self.start_waiting(now);
        self.finish_if_all_done(now);
        self.take()
    }

    /// Whether an instance counts as ready for the types that depend on it.
    fn is_ready(&self, id: usize, now: Instant) -> bool {
        let inst = &self.instances[id];
        match inst.state {
            State::Running {
                since,
                kill_at: None,
                ..
            } => {
                if self.types[inst.type_index].checked {
                    inst.ready
                } else {
                    now.saturating_duration_since(since) >= SETTLE
                }
            }
            State::Exited(status) => status.success(),
            _ => false,
        }
    }

    /// Every instance of type `t` in the formation is ready (or completed).
    fn type_ready(&self, t: usize, now: Instant) -> bool {
        (0..self.instances.len())
            .filter(|&id| self.instances[id].type_index == t && !self.instances[id].retired)
            .all(|id| self.is_ready(id, now))
    }

    fn may_start(&self, t: usize, now: Instant) -> bool {
        let phase_allows = match self.phase {
            Phase::Release => self.types[t].before_release,
            Phase::Running => true,
            Phase::Stopping { .. } | Phase::Killing { .. } => false,
        };
        phase_allows && self.types[t].deps.iter().all(|&d| self.type_ready(d, now))
    }

    /// Spawns every waiting instance whose dependencies are now ready.
    fn start_waiting(&mut self, now: Instant) {
        // Decide first, then act: an instance spawned now is not ready yet,
        // so it cannot let anything else start in the same pass.
        let ready_types: Vec<bool> = (0..self.types.len())
            .map(|t| self.may_start(t, now))
            .collect();
        for id in 0..self.instances.len() {
            let inst = &self.instances[id];
            if inst.state == State::Waiting && ready_types[inst.type_index] {
                self.instances[id].state = State::Pending;
                self.actions.push(Action::Spawn(id));
            }
        }
    }

    pub fn spawned(&mut self, id: usize, pid: i32, now: Instant) -> Vec<Action> {
        let stopping = matches!(self.phase, Phase::Stopping { .. } | Phase::Killing { .. });
        self.instances[id].state = State::Running {
            pid,
            since: now,
            kill_at: None,
        };
        self.instances[id].ready = false;
        self.instances[id].was_ready = false;
        self.instances[id].killed = false;
        let inst = &self.instances[id];
        let (name, port) = (inst.name.clone(), inst.port);
        self.say(Event::Started { name, pid, port });
        if stopping {
            // A spawn raced with a shutdown: stop it right away.
            self.stop_instance(id, now);
        }
        self.take()
    }

    pub fn spawn_failed(&mut self, id: usize, error: String, now: Instant) -> Vec<Action> {
        let name = self.instances[id].name.clone();
        self.say(Event::SpawnFailed { name, error });
        self.instances[id].state = State::Running {
            pid: 0,
            since: now,
            kill_at: None,
        };
        // 127 is what a shell reports for a command that could not run.
        let mut actions = self.take();
        actions.extend(self.exited(id, ExitStatus::Code(127), now));
        actions
    }

    /// Instance `id` exited (its output is drained).
    pub fn exited(&mut self, id: usize, status: ExitStatus, now: Instant) -> Vec<Action> {
        let State::Running { since, .. } = self.instances[id].state else {
            return self.take();
        };
        let name = self.instances[id].name.clone();
        match self.phase {
            Phase::Stopping { .. } | Phase::Killing { .. } => {
                self.instances[id].state = State::Exited(status);
                self.say(Event::Exited { name, status });
                // Its dependencies may stop now that it has.
                self.stop_next_wave(now);
            }
            Phase::Release | Phase::Running if self.instances[id].intent.is_some() => {
                let inst = &mut self.instances[id];
                let intent = inst.intent.take();
                self.say(Event::Exited { name, status });
                match intent {
                    Some(Intent::Restart) => {
                        let inst = &mut self.instances[id];
                        inst.in_a_row = 0;
                        inst.state = State::Pending;
                        self.actions.push(Action::Spawn(id));
                    }
                    Some(Intent::Retire) => {
                        self.instances[id].state = State::Stopped;
                        self.instances[id].retired = true;
                        self.finish_if_all_done(now);
                    }
                    Some(Intent::Stop) | None => {
                        self.instances[id].state = State::Stopped;
                        self.finish_if_all_done(now);
                    }
                }
            }
            Phase::Release if self.is_release(id) => {
                if status.success() {
                    self.instances[id].state = State::Exited(status);
                    self.say(Event::ReleaseDone { name });
                    self.phase = Phase::Running;
                    self.finish_if_all_done(now);
                } else {
                    self.instances[id].state = State::Failed(status);
                    self.say(Event::ReleaseFailed { name, status });
                    self.begin_stop(status.shell_code(), now);
                }
            }
            Phase::Release | Phase::Running => {
                let rules = self.types[self.instances[id].type_index].restart;
                let inst = &mut self.instances[id];
                match decide(
                    rules,
                    status,
                    now.saturating_duration_since(since),
                    inst.in_a_row,
                ) {
                    Decision::Restart { delay, in_a_row } => {
                        inst.in_a_row = in_a_row;
                        inst.restarts += 1;
                        inst.state = State::Backoff { until: now + delay };
                        self.say(Event::Restarting {
                            name,
                            status,
                            delay,
                        });
                    }
                    Decision::Done => {
                        inst.state = State::Exited(status);
                        self.say(Event::Exited { name, status });
                        self.finish_if_all_done(now);
                    }
                    Decision::GiveUp => {
                        let restarts = inst.in_a_row;
                        inst.state = State::Failed(status);
                        self.say(Event::GaveUp {
                            name: name.clone(),
                            status,
                            restarts,
                        });
                        self.say(Event::FailedStopping { name });
                        self.begin_stop(status.shell_code(), now);
                    }
                }
            }
        }
        self.after_change(now);
        self.take()
    }

    /// What any change may unblock: waiting instances and rolling restarts.
    fn after_change(&mut self, now: Instant) {
        self.start_waiting(now);
        self.advance_rolls(now);
    }

    /// When every instance has ended for good, pm stops (exit 0).
    fn finish_if_all_done(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        // Instances scaled away do not count; with none left, pm waits for
        // `pm scale` rather than exiting.
        let mut active = self.instances.iter().filter(|i| !i.retired).peekable();
        let all_done = active.peek().is_some()
            && active.all(|i| matches!(i.state, State::Exited(_) | State::Failed(_)));
        if all_done {
            self.say(Event::AllDone);
            self.begin_stop(0, now);
        }
    }

    /// A shutdown signal arrived. The first stops gracefully (exit 0); one
    /// more while stopping kills everything at once (exit 128 + signal).
    pub fn shutdown(&mut self, signal: Signal, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Release | Phase::Running => {
                self.say(Event::ShutdownRequested { signal });
                self.begin_stop(0, now);
            }
            Phase::Stopping { .. } | Phase::Killing { .. } => {
                self.kill_all(128 + signal as i32, now);
            }
        }
        self.take()
    }

    fn begin_stop(&mut self, code: i32, now: Instant) {
        if !matches!(self.phase, Phase::Release | Phase::Running) {
            return;
        }
        // Instances already stopping (a restart, pm stop) keep their grace.
        let until = self
            .instances
            .iter()
            .filter(|i| !i.killed)
            .filter_map(|i| match i.state {
                State::Running { kill_at, .. } => kill_at,
                _ => None,
            })
            .fold(now, Instant::max);
        let mut signal = Signal::SIGTERM;
        for id in 0..self.instances.len() {
            match self.instances[id].state {
                State::Running { .. } => {
                    signal = self.types[self.instances[id].type_index].stop_signal;
                }
                State::Pending | State::Backoff { .. } => self.instances[id].state = State::Stopped,
                _ => {}
            }
        }
        for id in 0..self.instances.len() {
            if self.instances[id].state == State::Waiting {
                self.instances[id].state = State::Stopped;
            }
        }
        for roll in &mut self.rolls {
            *roll = Roll::default();
        }
        self.phase = Phase::Stopping { code, until };
        if self.instances.iter().any(|i| i.state.is_running()) {
            self.say(Event::StoppingAll { signal });
        }
        self.stop_next_wave(now);
    }

    /// While stopping: signals every running instance that no running
    /// instance depends on, so services stop in the reverse order of their
    /// start (a database outlives the workers that use it).
    fn stop_next_wave(&mut self, now: Instant) {
        let Phase::Stopping { code, mut until } = self.phase else {
            return;
        };
        // SIGKILLed instances count as gone: only their reaping is left.
        let type_running: Vec<bool> = (0..self.types.len())
            .map(|t| {
                self.instances
                    .iter()
                    .any(|i| i.type_index == t && i.state.is_running() && !i.killed)
            })
            .collect();
        for id in 0..self.instances.len() {
            let t = self.instances[id].type_index;
            let unsignalled = matches!(
                self.instances[id].state,
                State::Running { kill_at: None, .. }
            );
            if unsignalled && !self.types[t].dependents.iter().any(|&d| type_running[d]) {
                until = until.max(now + self.types[t].stop_timeout);
                self.stop_instance(id, now);
            }
        }
        self.phase = Phase::Stopping { code, until };
        // What pm started outside the instances (background jobs of exited
        // instances, adopted orphans such as a daemon a dependency left)
        // stops with the last wave, not before the types that may use it.
        let last_wave = !self
            .instances
            .iter()
            .any(|i| matches!(i.state, State::Running { kill_at: None, .. }));
        if last_wave && !self.stragglers_signalled {
            self.stragglers_signalled = true;
            self.actions.push(Action::SignalStragglers(Signal::SIGTERM));
        }
    }

    fn stop_instance(&mut self, id: usize, now: Instant) {
        let rules = &self.types[self.instances[id].type_index];
        let (signal, timeout) = (rules.stop_signal, rules.stop_timeout);
        if let State::Running { kill_at, .. } = &mut self.instances[id].state {
            *kill_at = Some(now + timeout);
            self.actions.push(Action::Signal(id, signal));
        }
    }

    fn kill_all(&mut self, code: i32, now: Instant) {
        if !matches!(self.phase, Phase::Killing { .. }) {
            self.say(Event::KillingAll);
        }
        self.phase = Phase::Killing {
            code,
            until: now + KILL_WAIT,
        };
        self.actions.push(Action::KillAll);
    }

    /// The next time `tick` has something to do.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        let someone_waits = self.instances.iter().any(|i| i.state == State::Waiting);
        match self.phase {
            Phase::Release | Phase::Running => {
                for inst in &self.instances {
                    match inst.state {
                        State::Backoff { until } => consider(until),
                        State::Running {
                            kill_at: Some(at), ..
                        } if !inst.killed => consider(at),
                        // An unchecked dependency becomes ready by running
                        // for a moment: wake up then.
                        State::Running {
                            since,
                            kill_at: None,
                            ..
                        } if someone_waits
                            && !self.types[inst.type_index].checked
                            && !self.types[inst.type_index].dependents.is_empty()
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
                        kill_at: Some(at), ..
                    } = inst.state
                        && !inst.killed
                    {
                        consider(at);
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
                for id in 0..self.instances.len() {
                    if let State::Backoff { until } = self.instances[id].state
                        && until <= now
                    {
                        self.instances[id].state = State::Pending;
                        self.actions.push(Action::Spawn(id));
                    }
                }
                self.kill_overdue(now);
                self.after_change(now);
            }
            Phase::Stopping { code, until } => {
                let unsignalled: Vec<usize> = (0..self.instances.len())
                    .filter(|&id| {
                        matches!(
                            self.instances[id].state,
                            State::Running { kill_at: None, .. }
                        )
                    })
                    .collect();
                if until <= now && unsignalled.is_empty() {
                    // The whole grace is over: everything goes at once.
                    self.kill_all(code, now);
                    return self.take();
                }
                // Dependents past their grace get SIGKILL and count as gone:
                // the next wave gets its stop signal and its own grace.
                self.kill_overdue(now);
                self.stop_next_wave(now);
                if let Phase::Stopping { until, .. } = self.phase
                    && until <= now
                {
                    // Nothing could go in order (never expected): the rest
                    // gets its stop signal at once rather than waiting forever.
                    let mut until = until;
                    for id in unsignalled {
                        if matches!(
                            self.instances[id].state,
                            State::Running { kill_at: None, .. }
                        ) {
                            let t = self.instances[id].type_index;
                            until = until.max(now + self.types[t].stop_timeout);
                            self.stop_instance(id, now);
                        }
                    }
                    self.phase = Phase::Stopping { code, until };
                }
            }
            Phase::Killing { .. } => {}
        }
        self.take()
    }

    /// SIGKILL for every instance whose stop grace is over.
    fn kill_overdue(&mut self, now: Instant) {
        for id in 0..self.instances.len() {
            if let State::Running { kill_at, .. } = self.instances[id].state
                && kill_at.is_some_and(|at| at <= now)
                && !self.instances[id].killed
            {
                // Once is enough: the group gets SIGKILL now.
                self.instances[id].killed = true;
                let after = self.types[self.instances[id].type_index].stop_timeout;
                let name = self.instances[id].name.clone();
                self.say(Event::Killing { name, after });
                self.actions.push(Action::Signal(id, Signal::SIGKILL));
            }
        }
    }

    /// `pm restart`: a running instance is stopped and started again at
    /// once; one that is not running starts now.
    pub fn restart(&mut self, ids: &[usize], now: Instant) -> Vec<Action> {
        if matches!(self.phase, Phase::Running) {
            let mut rolling: Vec<String> = Vec::new();
            for &id in ids {
                let t = self.instances[id].type_index;
                let live = matches!(
                    self.instances[id].state,
                    State::Running { kill_at: None, .. }
                );
                if self.types[t].rolling && live {
                    // Balanced: restarted one at a time (see advance_rolls).
                    let roll = &mut self.rolls[t];
                    if roll.current != Some(id) && !roll.queue.contains(&id) {
                        roll.queue.push_back(id);
                        rolling.push(self.instances[id].name.clone());
                    }
                    continue;
                }
                match self.instances[id].state {
                    State::Running { kill_at: None, .. } => {
                        self.instances[id].intent = Some(Intent::Restart);
                        self.stop_instance(id, now);
                    }
                    State::Running { .. } => self.instances[id].intent = Some(Intent::Restart),
                    // Still waiting for its dependencies: it starts with them.
                    State::Waiting => {}
                    _ => {
                        let inst = &mut self.instances[id];
                        inst.in_a_row = 0;
                        inst.retired = false;
                        inst.intent = None;
                        inst.state = State::Pending;
                        self.actions.push(Action::Spawn(id));
                    }
                }
            }
            for t in 0..self.types.len() {
                let names: Vec<String> = rolling
                    .iter()
                    .filter(|n| {
                        self.instances
                            .iter()
                            .any(|i| i.type_index == t && &i.name == *n)
                    })
                    .cloned()
                    .collect();
                if !names.is_empty() {
                    let name = self.types[t].name.clone();
                    self.say(Event::Rolling {
                        name,
                        instances: names,
                    });
                }
            }
            self.advance_rolls(now);
        }
        self.take()
    }

    /// Moves each rolling restart on: the next instance is stopped only once
    /// the one before it runs again and is ready, so at least the others
    /// serve all along.
    fn advance_rolls(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        for t in 0..self.rolls.len() {
            loop {
                if let Some(id) = self.rolls[t].current {
                    let inst = &self.instances[id];
                    let back =
                        inst.state.is_running() && self.is_ready(id, now) && inst.intent.is_none();
                    let pending = matches!(
                        inst.state,
                        State::Running { .. } | State::Pending | State::Backoff { .. }
                    );
                    if back {
                        self.rolls[t].current = None;
                    } else if pending {
                        break;
                    } else {
                        // Stopped, exited or failed: going on would take
                        // down the others too.
                        let because = format!("{} did not come back", inst.name);
                        let name = self.types[t].name.clone();
                        self.rolls[t] = Roll::default();
                        self.say(Event::RollingStopped { name, because });
                        break;
                    }
                }
                let Some(&id) = self.rolls[t].queue.front() else {
                    break;
                };
                // Never take a second instance down: every other one that
                // runs (or is starting) must be ready first.
                let others_ready = (0..self.instances.len()).all(|j| {
                    let other = &self.instances[j];
                    j == id
                        || other.type_index != t
                        || other.retired
                        || match other.state {
                            State::Running { kill_at: None, .. } => self.is_ready(j, now),
                            State::Running { .. } | State::Pending => false,
                            _ => true,
                        }
                });
                if !others_ready {
                    break;
                }
                self.rolls[t].queue.pop_front();
                if matches!(
                    self.instances[id].state,
                    State::Running { kill_at: None, .. }
                ) && !self.instances[id].retired
                {
                    self.rolls[t].current = Some(id);
                    self.instances[id].intent = Some(Intent::Restart);
                    self.stop_instance(id, now);
                    break;
                }
            }
        }
    }

    /// The readiness check of instance `id` changed its verdict.
    pub fn ready_changed(
        &mut self,
        id: usize,
        ready: bool,
        reason: String,
        now: Instant,
    ) -> Vec<Action> {
        let stopping = !matches!(self.phase, Phase::Release | Phase::Running);
        if stopping
            || !matches!(
                self.instances[id].state,
                State::Running { kill_at: None, .. }
            )
        {
            return self.take();
        }
        let inst = &mut self.instances[id];
        if inst.ready != ready {
            inst.ready = ready;
            inst.was_ready |= ready;
            let name = inst.name.clone();
            self.say(if ready {
                Event::Ready { name }
            } else {
                Event::Unready { name, reason }
            });
        }
        self.after_change(now);
        self.take()
    }

    /// The liveness check of instance `id` failed `failures` times in a row:
    /// it is restarted (after its readiness check first passed, if it has one).
    pub fn live_failed(&mut self, id: usize, reason: String, now: Instant) -> Vec<Action> {
        let inst = &self.instances[id];
        let started = !self.types[inst.type_index].checked || inst.was_ready;
        if matches!(self.phase, Phase::Running)
            && started
            && inst.intent.is_none()
            && matches!(inst.state, State::Running { kill_at: None, .. })
        {
            let name = inst.name.clone();
            self.say(Event::Unhealthy { name, reason });
            self.instances[id].restarts += 1;
            self.instances[id].intent = Some(Intent::Restart);
            self.stop_instance(id, now);
        }
        self.take()
    }

    /// Whether the proxy may send new connections to instance `id`.
    pub fn in_rotation(&self, id: usize) -> bool {
        let inst = &self.instances[id];
        matches!(self.phase, Phase::Release | Phase::Running)
            && !inst.retired
            && inst.intent.is_none()
            && matches!(inst.state, State::Running { kill_at: None, .. })
            && (inst.ready || !self.types[inst.type_index].checked)
    }

    /// For `pm ps`: "ready", "unready", or None for a type without a check.
    pub fn health(&self, id: usize) -> Option<&'static str> {
        let inst = &self.instances[id];
        if !self.types[inst.type_index].checked || !inst.state.is_running() {
            return None;
        }
        Some(if inst.ready { "ready" } else { "unready" })
    }

    /// `pm stop` (or, with `retire`, `pm scale` down): stop and leave stopped.
    pub fn stop(&mut self, ids: &[usize], retire: bool, now: Instant) -> Vec<Action> {
        if matches!(self.phase, Phase::Running) {
            let intent = if retire { Intent::Retire } else { Intent::Stop };
            for &id in ids {
                match self.instances[id].state {
                    State::Running { kill_at, .. } => {
                        self.instances[id].intent = Some(intent);
                        if kill_at.is_none() {
                            self.stop_instance(id, now);
                        }
                    }
                    _ => {
                        let inst = &mut self.instances[id];
                        inst.state = State::Stopped;
                        inst.retired |= retire;
                    }
                }
            }
            self.finish_if_all_done(now);
            self.after_change(now);
        }
        self.take()
    }

    /// `pm scale` up: a new instance joins the formation and starts.
    pub fn add_instance(
        &mut self,
        name: String,
        type_index: usize,
        port: u16,
        now: Instant,
    ) -> Vec<Action> {
        self.instances.push(Instance {
            name,
            type_index,
            port,
            state: State::Waiting,
            restarts: 0,
            in_a_row: 0,
            intent: None,
            retired: false,
            ready: false,
            was_ready: false,
            killed: false,
        });
        self.start_waiting(now);
        self.take()
    }

    /// The exit code once pm may exit: stopping is over, no instance runs, and
    /// nothing else pm started is left (`descendants_left` comes from the
    /// runtime), or SIGKILL was sent long enough ago.
    pub fn finished(&self, descendants_left: impl FnOnce() -> bool, now: Instant) -> Option<i32> {
        let (code, killing_until) = match self.phase {
            Phase::Stopping { code, .. } => (code, None),
            Phase::Killing { code, until } => (code, Some(until)),
            _ => return None,
        };
        if killing_until.is_some_and(|until| until <= now) {
            return Some(code);
        }
        let running = self.instances.iter().any(|i| i.state.is_running());
        (!running && !descendants_left()).then_some(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanInputs;
    use std::path::PathBuf;

    fn plan(types: &[(&str, u32)], max_restarts: Option<u32>) -> Plan {
        build(types, max_restarts, Default::default())
    }

    fn build(
        types: &[(&str, u32)],
        max_restarts: Option<u32>,
        settings: crate::config::pm_toml::Settings,
    ) -> Plan {
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

    fn spawns(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn said(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say(e) => Some(e.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Starts every instance with pids 100, 101, ...
    fn started(types: &[(&str, u32)], max: Option<u32>, t0: Instant) -> Supervisor {
        let mut sup = Supervisor::new(&plan(types, max));
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
        }
        sup
    }

    #[test]
    fn start_spawns_everything() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 2), ("worker", 1)], None));
        assert_eq!(spawns(&sup.start(t0)), vec![0, 1, 2]);
        assert_eq!(sup.phase(), Phase::Running);
    }

    #[test]
    fn crash_loop_backs_off_then_gives_up_and_stops_everything() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 1), ("worker", 1)], Some(2), t0);
        let s = Duration::from_secs;
        let a = sup.exited(0, ExitStatus::Code(1), t0 + s(1));
        assert_eq!(said(&a), ["web.1 exited with code 1, restarting in 0.5s"]);
        assert_eq!(
            sup.next_deadline(t0),
            Some(t0 + s(1) + Duration::from_millis(500))
        );
        // Nothing happens before the deadline.
        assert!(sup.tick(t0 + s(1)).is_empty());
        assert_eq!(spawns(&sup.tick(t0 + s(2))), vec![0]);
        sup.spawned(0, 200, t0 + s(2));
        let a = sup.exited(0, ExitStatus::Code(1), t0 + s(3));
        assert_eq!(said(&a), ["web.1 exited with code 1, restarting in 1s"]);
        assert_eq!(spawns(&sup.tick(t0 + s(4))), vec![0]);
        sup.spawned(0, 201, t0 + s(4));
        let a = sup.exited(0, ExitStatus::Code(1), t0 + s(5));
        assert_eq!(
            said(&a),
            [
                "web.1 exited with code 1, gave up after 2 restarts",
                "web.1 failed, stopping all processes",
                "sending SIGTERM to all processes",
            ]
        );
        assert!(a.contains(&Action::Signal(1, Signal::SIGTERM)));
        assert!(a.contains(&Action::SignalStragglers(Signal::SIGTERM)));
        assert_eq!(sup.finished(|| false, t0 + s(5)), None, "worker still runs");
        sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0 + s(6));
        assert_eq!(sup.finished(|| true, t0 + s(6)), None, "descendants left");
        assert_eq!(sup.finished(|| false, t0 + s(6)), Some(1));
    }

    #[test]
    fn uptime_resets_the_backoff() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sup = started(&[("web", 1)], None, t0);
        sup.exited(0, ExitStatus::Code(1), t0 + s(1));
        sup.tick(t0 + s(2));
        sup.spawned(0, 200, t0 + s(2));
        let a = sup.exited(0, ExitStatus::Code(1), t0 + s(2) + s(40));
        assert_eq!(said(&a), ["web.1 exited with code 1, restarting in 0.5s"]);
        assert_eq!(sup.instances()[0].restarts, 2);
    }

    #[test]
    fn exit_0_is_done_and_all_done_stops_with_0() {
        let t0 = Instant::now();
        let mut sup = started(&[("a", 1), ("b", 1)], None, t0);
        let a = sup.exited(0, ExitStatus::Code(0), t0);
        assert_eq!(said(&a), ["a.1 exited with code 0"]);
        assert_eq!(sup.phase(), Phase::Running);
        let a = sup.exited(1, ExitStatus::Code(0), t0);
        assert_eq!(
            said(&a),
            ["b.1 exited with code 0", "all processes finished"]
        );
        assert_eq!(sup.finished(|| false, t0), Some(0));
    }

    #[test]
    fn shutdown_grace_then_kill_then_second_signal() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sup = started(&[("web", 2)], None, t0);
        let a = sup.shutdown(Signal::SIGINT, t0);
        assert_eq!(
            said(&a),
            [
                "SIGINT received, stopping all processes",
                "sending SIGTERM to all processes"
            ]
        );
        assert!(a.contains(&Action::Signal(0, Signal::SIGTERM)));
        assert!(a.contains(&Action::Signal(1, Signal::SIGTERM)));
        assert_eq!(sup.next_deadline(t0), Some(t0 + s(5)));
        sup.exited(0, ExitStatus::Signal(Signal::SIGTERM), t0 + s(1));
        // An exit while stopping is never restarted.
        assert_eq!(
            sup.instances()[0].state,
            State::Exited(ExitStatus::Signal(Signal::SIGTERM))
        );
        assert!(sup.tick(t0 + s(4)).is_empty());
        let a = sup.tick(t0 + s(5));
        assert_eq!(said(&a), ["sending SIGKILL to all processes"]);
        assert!(a.contains(&Action::KillAll));
        // Killing waits a bounded time for the last reaps.
        assert_eq!(sup.finished(|| true, t0 + s(6)), None);
        assert_eq!(sup.finished(|| true, t0 + s(5) + KILL_WAIT), Some(0));
    }

    #[test]
    fn second_signal_kills_at_once_with_128_plus_signal() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 1)], None, t0);
        sup.shutdown(Signal::SIGINT, t0);
        let a = sup.shutdown(Signal::SIGINT, t0);
        assert!(a.contains(&Action::KillAll));
        sup.exited(0, ExitStatus::Signal(Signal::SIGKILL), t0);
        assert_eq!(sup.finished(|| false, t0), Some(130));
    }

    #[test]
    fn backoff_is_cancelled_by_shutdown() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 1)], None, t0);
        sup.exited(0, ExitStatus::Code(1), t0);
        sup.shutdown(Signal::SIGTERM, t0);
        assert_eq!(sup.instances()[0].state, State::Stopped);
        assert!(spawns(&sup.tick(t0 + Duration::from_secs(60))).is_empty());
        assert_eq!(sup.finished(|| false, t0), Some(0));
    }

    #[test]
    fn release_runs_first_and_alone() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 2), ("release", 1)], None));
        assert_eq!(spawns(&sup.start(t0)), vec![2]);
        assert_eq!(sup.phase(), Phase::Release);
        sup.spawned(2, 300, t0);
        let a = sup.exited(2, ExitStatus::Code(0), t0);
        assert_eq!(
            said(&a),
            ["release.1 completed, starting the other processes"]
        );
        assert_eq!(spawns(&a), vec![0, 1]);
    }

    #[test]
    fn failed_release_starts_nothing_and_exits_with_its_code() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 2), ("release", 1)], None));
        sup.start(t0);
        sup.spawned(2, 300, t0);
        let a = sup.exited(2, ExitStatus::Code(4), t0);
        assert!(spawns(&a).is_empty());
        assert_eq!(sup.finished(|| false, t0), Some(4));
    }

    #[test]
    fn shutdown_during_release_starts_nothing() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 1), ("release", 1)], None));
        sup.start(t0);
        sup.spawned(1, 300, t0);
        let a = sup.shutdown(Signal::SIGTERM, t0);
        assert!(a.contains(&Action::Signal(1, Signal::SIGTERM)));
        let a = sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert!(spawns(&a).is_empty());
        assert_eq!(sup.instances()[0].state, State::Stopped);
        assert_eq!(sup.finished(|| false, t0), Some(0));
    }

    #[test]
    fn spawn_failure_counts_as_exit_127() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 1)], Some(0)));
        sup.start(t0);
        let a = sup.spawn_failed(0, "no such file".into(), t0);
        assert_eq!(said(&a)[0], "web.1 could not start: no such file");
        assert_eq!(sup.finished(|| false, t0), Some(127));
    }

    #[test]
    fn control_stop_restart_and_scale() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 2)], None, t0);
        // Stop: signalled, then stopped for good (not restarted).
        let a = sup.stop(&[1], false, t0);
        assert!(a.contains(&Action::Signal(1, Signal::SIGTERM)));
        let a = sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert!(spawns(&a).is_empty());
        assert_eq!(sup.instances()[1].state, State::Stopped);
        // A stopped instance keeps pm alive even when the others are done.
        sup.exited(0, ExitStatus::Code(0), t0);
        assert_eq!(sup.phase(), Phase::Running);
        // Restart: a stopped one starts at once.
        assert_eq!(spawns(&sup.restart(&[1], t0)), vec![1]);
        sup.spawned(1, 300, t0);
        // Restart of a running one: stop, then spawn on exit, no backoff.
        let a = sup.restart(&[1], t0);
        assert!(a.contains(&Action::Signal(1, Signal::SIGTERM)));
        assert_eq!(
            spawns(&sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0)),
            vec![1]
        );
        sup.spawned(1, 301, t0);
        // A stop that is ignored ends in SIGKILL after the grace.
        sup.stop(&[1], true, t0);
        let a = sup.tick(t0 + Duration::from_secs(5));
        assert!(a.contains(&Action::Signal(1, Signal::SIGKILL)));
        sup.exited(1, ExitStatus::Signal(Signal::SIGKILL), t0);
        assert!(sup.instances()[1].retired);
        // web.1 is done and web.2 scaled away: nothing is left to run.
        assert!(matches!(sup.phase(), Phase::Stopping { code: 0, .. }));
    }

    #[test]
    fn scaled_to_nothing_waits_for_a_scale_up() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 1)], None, t0);
        sup.stop(&[0], true, t0);
        sup.exited(0, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert_eq!(sup.phase(), Phase::Running);
        assert_eq!(
            spawns(&sup.add_instance("web.2".into(), 0, 5001, t0)),
            vec![1]
        );
        // Restarting a retired instance brings it back into the formation.
        assert_eq!(spawns(&sup.restart(&[0], t0)), vec![0]);
        assert!(!sup.instances()[0].retired);
    }

    /// A plan whose types have these dependencies and proxies.
    fn plan_deps(types: &[(&str, u32)], deps: &[(&str, &[&str])], proxied: &[&str]) -> Plan {
        use crate::config::pm_toml::{ProcessSettings, Proxy, Settings};
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

    /// Starts every instance (pids 100 + id), each wave of dependencies
    /// SETTLE after the one it waits for.
    fn all_running(plan: &Plan, t0: Instant) -> Supervisor {
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

    fn signals(actions: &[Action]) -> Vec<(usize, Signal)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Signal(id, sig) => Some((*id, *sig)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dependents_wait_for_readiness_or_a_settled_start() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // db (no check) <- worker; web waits for worker too.
        let plan = plan_deps(
            &[("web", 1), ("db", 1), ("worker", 2)],
            &[("worker", &["db"]), ("web", &["worker", "db"])],
            &[],
        );
        let mut sup = Supervisor::new(&plan);
        let a = sup.start(t0);
        assert_eq!(spawns(&a), vec![1], "only db starts");
        assert_eq!(
            said(&a),
            [
                "web waits for worker, db to be ready",
                "worker waits for db to be ready"
            ]
        );
        sup.spawned(1, 100, t0);
        // Without a check, db is ready after running for SETTLE.
        assert_eq!(sup.next_deadline(t0), Some(t0 + SETTLE));
        assert!(spawns(&sup.tick(t0 + ms(499))).is_empty());
        assert_eq!(spawns(&sup.tick(t0 + SETTLE)), vec![2, 3]);
        sup.spawned(2, 101, t0 + SETTLE);
        sup.spawned(3, 102, t0 + SETTLE);
        assert!(
            spawns(&sup.tick(t0 + ms(900))).is_empty(),
            "worker settling"
        );
        // One worker exits 0 (done, which counts) and the other settles.
        sup.exited(2, ExitStatus::Code(0), t0 + ms(950));
        assert_eq!(spawns(&sup.tick(t0 + ms(1000))), vec![0]);
    }

    #[test]
    fn a_checked_dependency_must_pass_its_check() {
        let t0 = Instant::now();
        let mut plan = plan_deps(&[("db", 1), ("web", 1)], &[("web", &["db"])], &[]);
        plan.types[0].ready = Some(crate::config::pm_toml::Check::tcp());
        let mut sup = Supervisor::new(&plan);
        assert_eq!(spawns(&sup.start(t0)), vec![0]);
        sup.spawned(0, 100, t0);
        assert!(spawns(&sup.tick(t0 + Duration::from_secs(10))).is_empty());
        assert_eq!(sup.health(0), Some("unready"));
        let a = sup.ready_changed(0, true, String::new(), t0 + Duration::from_secs(11));
        assert_eq!(said(&a)[0], "db.1 is ready");
        assert_eq!(spawns(&a), vec![1]);
        assert_eq!(sup.health(0), Some("ready"));
        assert_eq!(sup.health(1), None, "web has no check");
    }

    #[test]
    fn release_waits_for_its_dependencies_and_the_rest_for_release() {
        let t0 = Instant::now();
        let plan = plan_deps(
            &[("release", 1), ("db", 1), ("web", 1)],
            &[("release", &["db"])],
            &[],
        );
        let mut sup = Supervisor::new(&plan);
        assert_eq!(spawns(&sup.start(t0)), vec![1], "db first");
        sup.spawned(1, 100, t0);
        assert_eq!(spawns(&sup.tick(t0 + SETTLE)), vec![0], "then release");
        sup.spawned(0, 101, t0 + SETTLE);
        assert!(spawns(&sup.tick(t0 + Duration::from_secs(2))).is_empty());
        let a = sup.exited(0, ExitStatus::Code(0), t0 + Duration::from_secs(2));
        assert_eq!(spawns(&a), vec![2], "then the others");
    }

    #[test]
    fn shutdown_stops_dependents_first() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let plan = plan_deps(&[("db", 1), ("web", 2)], &[("web", &["db"])], &[]);
        let mut sup = all_running(&plan, t0);
        let a = sup.shutdown(Signal::SIGTERM, t0 + s(1));
        assert_eq!(
            signals(&a),
            [(1, Signal::SIGTERM), (2, Signal::SIGTERM)],
            "web first"
        );
        // Orphans and leftovers (a daemon db may have left) stop last.
        assert!(!a.contains(&Action::SignalStragglers(Signal::SIGTERM)));
        let a = sup.exited(1, ExitStatus::Code(0), t0 + s(2));
        assert!(signals(&a).is_empty(), "db waits for every web");
        let a = sup.exited(2, ExitStatus::Code(0), t0 + s(2));
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
        assert!(a.contains(&Action::SignalStragglers(Signal::SIGTERM)));
        // db gets its whole grace from now.
        assert_eq!(sup.next_deadline(t0 + s(2)), Some(t0 + s(7)));
        sup.exited(0, ExitStatus::Code(0), t0 + s(3));
        assert_eq!(sup.finished(|| false, t0 + s(3)), Some(0));
    }

    #[test]
    fn a_dependent_that_ignores_its_stop_delays_the_dependency_by_its_grace_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let plan = plan_deps(&[("db", 1), ("web", 1)], &[("web", &["db"])], &[]);
        let mut sup = all_running(&plan, t0);
        sup.shutdown(Signal::SIGTERM, t0 + s(1));
        let a = sup.tick(t0 + s(6));
        assert_eq!(
            signals(&a),
            [(1, Signal::SIGKILL), (0, Signal::SIGTERM)],
            "web killed after its grace, db asked to stop"
        );
        assert_eq!(sup.next_deadline(t0 + s(6)), Some(t0 + s(11)));
    }

    #[test]
    fn rolling_restart_goes_one_ready_instance_at_a_time() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let plan = plan_deps(&[("web", 3)], &[], &["web"]);
        let mut sup = Supervisor::new(&plan);
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
            sup.ready_changed(id, true, String::new(), t0);
        }
        assert!((0..3).all(|id| sup.in_rotation(id)));
        let a = sup.restart(&[0, 1, 2], t0 + s(1));
        assert_eq!(
            said(&a),
            ["rolling restart of web: web.1, web.2, web.3, one at a time"]
        );
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
        assert!(!sup.in_rotation(0), "out of rotation before it stops");
        assert!(sup.in_rotation(1) && sup.in_rotation(2));
        let a = sup.exited(0, ExitStatus::Signal(Signal::SIGTERM), t0 + s(2));
        assert_eq!(spawns(&a), vec![0]);
        sup.spawned(0, 200, t0 + s(2));
        assert!(!sup.in_rotation(0), "not ready yet");
        assert!(signals(&sup.tick(t0 + s(3))).is_empty(), "web.2 waits");
        let a = sup.ready_changed(0, true, String::new(), t0 + s(4));
        assert_eq!(signals(&a), [(1, Signal::SIGTERM)]);
        sup.exited(1, ExitStatus::Code(0), t0 + s(5));
        sup.spawned(1, 201, t0 + s(5));
        let a = sup.ready_changed(1, true, String::new(), t0 + s(6));
        assert_eq!(signals(&a), [(2, Signal::SIGTERM)]);
        sup.exited(2, ExitStatus::Code(0), t0 + s(7));
        sup.spawned(2, 202, t0 + s(7));
        let a = sup.ready_changed(2, true, String::new(), t0 + s(8));
        assert!(signals(&a).is_empty());
        assert!((0..3).all(|id| sup.in_rotation(id)));
        assert_eq!(
            sup.instances()[0].restarts,
            0,
            "a requested restart is not a crash"
        );
    }

    #[test]
    fn rolling_restart_stops_when_an_instance_does_not_come_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut plan = plan_deps(&[("web", 2)], &[], &["web"]);
        plan.types[0].restart.policy = crate::model::Restart::Never;
        let mut sup = Supervisor::new(&plan);
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
            sup.ready_changed(id, true, String::new(), t0);
        }
        sup.restart(&[0, 1], t0);
        sup.exited(0, ExitStatus::Code(0), t0 + s(1));
        sup.spawned(0, 200, t0 + s(1));
        let a = sup.exited(0, ExitStatus::Code(0), t0 + s(2));
        assert!(
            said(&a)
                .contains(&"rolling restart of web stopped: web.1 did not come back".to_string())
        );
        assert!(signals(&a).is_empty(), "web.2 keeps serving");
        assert!(sup.in_rotation(1));
    }

    #[test]
    fn liveness_failure_restarts_once_ready_and_unready_leaves_rotation() {
        let t0 = Instant::now();
        let plan = plan_deps(&[("web", 1)], &[], &["web"]);
        let mut sup = Supervisor::new(&plan);
        sup.start(t0);
        sup.spawned(0, 100, t0);
        // Before its first ready, a liveness failure is not acted on.
        assert!(sup.live_failed(0, "x".into(), t0).is_empty());
        sup.ready_changed(0, true, String::new(), t0);
        let a = sup.ready_changed(0, false, "HTTP 503".into(), t0);
        assert_eq!(said(&a), ["web.1 is not ready: HTTP 503"]);
        assert!(!sup.in_rotation(0));
        assert_eq!(sup.health(0), Some("unready"));
        let a = sup.live_failed(0, "no answer within 1s".into(), t0);
        assert_eq!(
            said(&a),
            ["web.1 failed its liveness check (no answer within 1s), restarting"]
        );
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
        assert_eq!(spawns(&sup.exited(0, ExitStatus::Code(0), t0)), vec![0]);
        assert_eq!(sup.instances()[0].restarts, 1);
    }

    #[test]
    fn a_shutdown_keeps_the_grace_of_an_instance_already_stopping() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let plan = plan_deps(&[("db", 1), ("web", 1)], &[("web", &["db"])], &[]);
        let mut sup = all_running(&plan, t0);
        // web is restarting (stop signal sent at 1 s, grace 5 s) when the
        // shutdown comes.
        assert_eq!(
            signals(&sup.restart(&[1], t0 + s(1))),
            [(1, Signal::SIGTERM)]
        );
        let a = sup.shutdown(Signal::SIGTERM, t0 + s(2));
        assert!(signals(&a).is_empty(), "db waits for web: {a:?}");
        assert_eq!(sup.next_deadline(t0 + s(2)), Some(t0 + s(6)));
        assert!(
            sup.tick(t0 + s(3)).is_empty(),
            "no kill before web's grace ends"
        );
        let a = sup.exited(1, ExitStatus::Code(0), t0 + s(4));
        assert!(spawns(&a).is_empty(), "no restart while stopping");
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
    }

    #[test]
    fn a_chain_stops_one_wave_at_a_time_even_past_a_grace() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let plan = plan_deps(
            &[("db", 1), ("api", 1), ("web", 1)],
            &[("api", &["db"]), ("web", &["api"])],
            &[],
        );
        let mut sup = all_running(&plan, t0);
        assert_eq!(
            signals(&sup.shutdown(Signal::SIGTERM, t0 + s(2))),
            [(2, Signal::SIGTERM)]
        );
        // web ignores it: SIGKILL at the end of its grace, and only api,
        // not db, is asked to stop.
        let a = sup.tick(t0 + s(7));
        assert_eq!(signals(&a), [(2, Signal::SIGKILL), (1, Signal::SIGTERM)]);
        // No second SIGKILL or SIGTERM while web waits to be reaped.
        assert!(signals(&sup.tick(t0 + s(8))).is_empty());
        assert_eq!(sup.next_deadline(t0 + s(8)), Some(t0 + s(12)));
        sup.exited(2, ExitStatus::Signal(Signal::SIGKILL), t0 + s(8));
        let a = sup.exited(1, ExitStatus::Code(0), t0 + s(9));
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
    }

    #[test]
    fn a_rolling_restart_waits_for_every_other_instance_to_be_ready() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let plan = plan_deps(&[("web", 2)], &[], &["web"]);
        let mut sup = Supervisor::new(&plan);
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
        }
        sup.ready_changed(1, true, String::new(), t0);
        // web.1 is not ready yet: restarting web.2 would leave nobody.
        let a = sup.restart(&[1], t0 + s(1));
        assert!(signals(&a).is_empty(), "{a:?}");
        let a = sup.ready_changed(0, true, String::new(), t0 + s(2));
        assert_eq!(signals(&a), [(1, Signal::SIGTERM)]);
    }
}
