//! Policy: the supervisor's state machine. It owns the state of every
//! instance and decides what happens next (spawn, signal, restart, give up,
//! stop everything, exit with which code) from events and the current time.
//!
//! It never touches a process or a clock: inputs carry `now`, outputs are
//! [`Action`]s that the runtime carries out. So every rule is tested as a
//! table, without processes and without sleeping.

pub mod event;
pub mod policy;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use event::Event;
use policy::{Decision, RestartSettings, decide};

use crate::plan::{Plan, RELEASE};
use crate::process::ExitStatus;

/// How long Killing waits for processes to vanish after SIGKILL before pm
/// exits anyway (a process stuck in the kernel cannot be waited for forever).
pub const KILL_WAIT: Duration = Duration::from_secs(2);

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
    /// Not started yet (waiting for the release phase).
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
}

#[derive(Debug, Clone)]
struct TypeRules {
    restart: RestartSettings,
    stop_signal: Signal,
    stop_timeout: Duration,
    is_release: bool,
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
}

impl Supervisor {
    pub fn new(plan: &Plan) -> Supervisor {
        let types = plan
            .types
            .iter()
            .map(|t| TypeRules {
                restart: t.restart,
                stop_signal: t.stop_signal,
                stop_timeout: t.stop_timeout,
                is_release: t.name == RELEASE,
            })
            .collect();
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
            })
            .collect();
        Supervisor {
            instances,
            types,
            phase: Phase::Running,
            actions: Vec::new(),
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

    /// Starts the release instance if there is one, else every instance.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let release: Vec<usize> = (0..self.instances.len())
            .filter(|&id| self.is_release(id))
            .collect();
        if release.is_empty() {
            self.start_all_pending();
            self.finish_if_all_done(now);
        } else {
            self.phase = Phase::Release;
            self.actions.extend(release.into_iter().map(Action::Spawn));
        }
        self.take()
    }

    fn start_all_pending(&mut self) {
        self.phase = Phase::Running;
        for id in 0..self.instances.len() {
            if self.instances[id].state == State::Pending {
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
                    self.start_all_pending();
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
        self.take()
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
        let mut until = now;
        let mut signal = Signal::SIGTERM;
        for id in 0..self.instances.len() {
            match self.instances[id].state {
                State::Running { .. } => {
                    let rules = &self.types[self.instances[id].type_index];
                    until = until.max(now + rules.stop_timeout);
                    signal = rules.stop_signal;
                }
                State::Pending | State::Backoff { .. } => self.instances[id].state = State::Stopped,
                _ => {}
            }
        }
        self.phase = Phase::Stopping { code, until };
        if self.instances.iter().any(|i| i.state.is_running()) {
            self.say(Event::StoppingAll { signal });
        }
        for id in 0..self.instances.len() {
            if self.instances[id].state.is_running() {
                self.stop_instance(id, now);
            }
        }
        self.actions.push(Action::SignalStragglers(Signal::SIGTERM));
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
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.phase {
            Phase::Release | Phase::Running => {
                for inst in &self.instances {
                    match inst.state {
                        State::Backoff { until } => consider(until),
                        State::Running {
                            kill_at: Some(at), ..
                        } => consider(at),
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
            }
            Phase::Stopping { code, until } => {
                if until <= now {
                    // The whole grace is over: everything goes at once.
                    self.kill_all(code, now);
                    return self.take();
                }
                self.kill_overdue(now);
            }
            Phase::Killing { .. } => {}
        }
        self.take()
    }

    /// SIGKILL for every instance whose stop grace is over.
    fn kill_overdue(&mut self, now: Instant) {
        for id in 0..self.instances.len() {
            if let State::Running { kill_at, .. } = &mut self.instances[id].state
                && kill_at.is_some_and(|at| at <= now)
            {
                // Once is enough: the group gets SIGKILL now.
                *kill_at = None;
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
            for &id in ids {
                match self.instances[id].state {
                    State::Running { kill_at: None, .. } => {
                        self.instances[id].intent = Some(Intent::Restart);
                        self.stop_instance(id, now);
                    }
                    State::Running { .. } => self.instances[id].intent = Some(Intent::Restart),
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
        }
        self.take()
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
        }
        self.take()
    }

    /// `pm scale` up: a new instance joins the formation and starts.
    pub fn add_instance(&mut self, name: String, type_index: usize, port: u16) -> Vec<Action> {
        self.instances.push(Instance {
            name,
            type_index,
            port,
            state: State::Pending,
            restarts: 0,
            in_a_row: 0,
            intent: None,
            retired: false,
        });
        if matches!(self.phase, Phase::Running) {
            self.actions.push(Action::Spawn(self.instances.len() - 1));
        }
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
            settings: Default::default(),
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
            sup.next_deadline(),
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
        assert_eq!(sup.next_deadline(), Some(t0 + s(5)));
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
        assert_eq!(spawns(&sup.add_instance("web.2".into(), 0, 5001)), vec![1]);
        // Restarting a retired instance brings it back into the formation.
        assert_eq!(spawns(&sup.restart(&[0], t0)), vec![0]);
        assert!(!sup.instances()[0].retired);
    }
}
