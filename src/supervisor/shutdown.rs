//! Shutdown: the stop signal in waves (a type stops once no type that
//! depends on it still runs), each instance's grace ending in SIGKILL, the
//! stragglers with the last wave, a second signal killing everything at
//! once, and the exit code once nothing is left.
//!
//! A single instance's stop (`pm stop`, `pm restart`, a liveness failure)
//! goes through [`Supervisor::stop_instance`] too, so it gets the same grace.
//! Pure: `now` comes in, actions go out.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Action, Event, KILL_WAIT, Phase, Roll, State, Stop, Supervisor};

impl Supervisor {
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

    /// `pm down`: the same as a first SIGTERM; while pm already stops, it
    /// changes nothing (a second SIGTERM would kill everything at once).
    pub fn down(&mut self, now: Instant) -> Vec<Action> {
        if matches!(self.phase, Phase::Release | Phase::Running) {
            self.say(Event::DownRequested);
            self.begin_stop(0, now);
        }
        self.take()
    }

    /// pm's stdout failed (a full disk, not a closed reader): everything
    /// stops, as on a first SIGTERM, and pm exits 1 however the stop ends.
    pub fn output_failed(&mut self, now: Instant) -> Vec<Action> {
        if matches!(self.phase, Phase::Release | Phase::Running) {
            self.begin_stop(1, now);
        } else if let Phase::Stopping { code, .. } | Phase::Killing { code, .. } = &mut self.phase
            && *code == 0
        {
            *code = 1;
        }
        self.take()
    }

    /// The longest stop grace of any process type: how long a shutdown may
    /// take before SIGKILL ends it.
    pub fn longest_grace(&self) -> Duration {
        self.types
            .iter()
            .map(|t| t.stop_timeout)
            .max()
            .unwrap_or_default()
    }

    pub(super) fn begin_stop(&mut self, code: i32, now: Instant) {
        if !matches!(self.phase, Phase::Release | Phase::Running) {
            return;
        }
        // Instances already stopping (a restart, pm stop) keep their grace.
        let until = self
            .instances
            .iter()
            .filter_map(|i| match i.state {
                State::Running {
                    stop: Stop::Signalled { kill_at },
                    ..
                } => Some(kill_at),
                _ => None,
            })
            .fold(now, Instant::max);
        // The signal each running type gets, for the announcement.
        let mut signals: Vec<(Signal, Vec<String>)> = Vec::new();
        for id in 0..self.instances.len() {
            match self.instances[id].state {
                State::Running { .. } => {
                    let t = self.instances[id].spec.type_index;
                    let signal = self.types[t].stop_signal;
                    let name = self.types[t].name.clone();
                    match signals.iter_mut().find(|(s, _)| *s == signal) {
                        Some((_, types)) if !types.contains(&name) => types.push(name),
                        Some(_) => {}
                        None => signals.push((signal, vec![name])),
                    }
                }
                State::Pending | State::Backoff { .. } => self.instances[id].state = State::Stopped,
                _ => {}
            }
        }
        for inst in &mut self.instances {
            if inst.state == State::Waiting {
                inst.state = State::Stopped;
            }
        }
        for roll in &mut self.rolls {
            *roll = Roll::default();
        }
        self.phase = Phase::Stopping { code, until };
        if self.instances.iter().any(|i| i.state.is_running()) {
            self.say(Event::StoppingAll { signals });
        }
        self.stop_next_wave(now);
    }

    /// While stopping: signals every running instance that no running
    /// instance depends on, so services stop in the reverse order of their
    /// start (a database outlives the workers that use it).
    pub(super) fn stop_next_wave(&mut self, now: Instant) {
        let Phase::Stopping { code, mut until } = self.phase else {
            return;
        };
        // SIGKILLed instances count as gone: only their reaping is left.
        let type_running: Vec<bool> = (0..self.types.len())
            .map(|t| {
                self.instances.iter().any(|i| {
                    i.spec.type_index == t
                        && matches!(i.state, State::Running { stop, .. } if stop != Stop::Killed)
                })
            })
            .collect();
        for id in 0..self.instances.len() {
            let rules = self.type_of(id);
            let blocked = rules.dependents.iter().any(|&d| type_running[d]);
            if self.instances[id].state.is_live() && !blocked {
                until = until.max(now + rules.stop_timeout);
                self.stop_instance(id, now);
            }
        }
        // What pm started outside the instances (background jobs of exited
        // instances, adopted orphans such as a daemon a dependency left)
        // stops with the last wave, not before the types that may use it,
        // and has the shutdown grace, as a type's processes have theirs,
        // even when no instance runs any more.
        let last_wave = !self.instances.iter().any(|i| i.state.is_live());
        if last_wave && !self.stragglers_signalled {
            self.stragglers_signalled = true;
            until = until.max(now + self.grace);
            self.actions.push(Action::SignalStragglers(Signal::SIGTERM));
        }
        self.phase = Phase::Stopping { code, until };
    }

    /// Sends a live instance its stop signal; SIGKILL follows after its grace.
    pub(super) fn stop_instance(&mut self, id: usize, now: Instant) {
        let rules = self.type_of(id);
        let (signal, timeout) = (rules.stop_signal, rules.stop_timeout);
        if let State::Running { stop, .. } = &mut self.instances[id].state
            && *stop == Stop::No
        {
            *stop = Stop::Signalled {
                kill_at: now + timeout,
            };
            self.actions.push(Action::Signal(id, signal));
        }
    }

    /// SIGKILL for every instance whose stop grace is over.
    pub(super) fn kill_overdue(&mut self, now: Instant) {
        for id in 0..self.instances.len() {
            if let State::Running { stop, .. } = &mut self.instances[id].state
                && matches!(*stop, Stop::Signalled { kill_at } if kill_at <= now)
            {
                // Once is enough: the group gets SIGKILL now.
                *stop = Stop::Killed;
                let after = self.type_of(id).stop_timeout;
                let name = self.name(id);
                self.say(Event::Killing { name, after });
                self.actions.push(Action::Signal(id, Signal::SIGKILL));
            }
        }
    }

    /// A deadline passed while stopping: SIGKILL for whoever is past its
    /// grace, the next wave, or everything once the whole grace is over.
    pub(super) fn tick_stopping(&mut self, code: i32, until: Instant, now: Instant) {
        let unsignalled: Vec<usize> = (0..self.instances.len())
            .filter(|&id| self.instances[id].state.is_live())
            .collect();
        if until <= now && unsignalled.is_empty() {
            // The whole grace is over: everything goes at once.
            self.kill_all(code, now);
            return;
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
                if self.instances[id].state.is_live() {
                    until = until.max(now + self.type_of(id).stop_timeout);
                    self.stop_instance(id, now);
                }
            }
            self.phase = Phase::Stopping { code, until };
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
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::*;

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
    fn stragglers_get_the_grace_when_no_instance_runs() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sup = started(&[("job", 1), ("crash", 1)], None, t0);
        // job is done (it left a daemon behind), crash is backing off.
        sup.exited(0, ExitStatus::Code(0), t0);
        sup.exited(1, ExitStatus::Code(1), t0);
        let a = sup.shutdown(Signal::SIGINT, t0 + s(1));
        assert!(a.contains(&Action::SignalStragglers(Signal::SIGTERM)));
        assert!(!a.contains(&Action::KillAll), "{a:?}");
        assert_eq!(sup.next_deadline(t0 + s(1)), Some(t0 + s(6)));
        let a = sup.tick(t0 + s(5));
        assert!(
            !a.contains(&Action::KillAll),
            "killed within the grace: {a:?}"
        );
        assert_eq!(sup.finished(|| true, t0 + s(5)), None);
        // Once the stragglers are gone pm exits; if they stay, SIGKILL.
        assert_eq!(sup.finished(|| false, t0 + s(5)), Some(0));
        let a = sup.tick(t0 + s(6));
        assert_eq!(said(&a), ["sending SIGKILL to all processes"]);
        assert!(a.contains(&Action::KillAll));
    }

    #[test]
    fn stragglers_keep_the_grace_after_a_short_last_wave() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut plan = plan(&[("web", 1)], None);
        plan.types[0].stop_timeout = s(1);
        let mut sup = all_running(&plan, t0);
        let a = sup.shutdown(Signal::SIGTERM, t0);
        assert!(a.contains(&Action::Signal(0, Signal::SIGTERM)));
        assert!(a.contains(&Action::SignalStragglers(Signal::SIGTERM)));
        sup.exited(0, ExitStatus::Code(0), t0);
        // web's grace is 1 s; what it left behind has the shutdown's 5 s.
        assert!(!sup.tick(t0 + s(1)).contains(&Action::KillAll));
        assert!(sup.tick(t0 + s(5)).contains(&Action::KillAll));
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
}
