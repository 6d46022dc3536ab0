//! Balanced types: rolling restarts (`pm restart` of a type behind the
//! proxy goes one instance at a time, each once the one before is back and
//! ready) and the rotation the balancer reads.
//!
//! Pure: the runtime publishes [`Supervisor::rotation`] after every batch of
//! actions; nothing here touches a socket.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Event, Intent, Phase, State, Supervisor};

/// A rolling restart of one type in progress.
#[derive(Debug, Clone, Default)]
pub(super) struct Roll {
    queue: VecDeque<usize>,
    current: Option<usize>,
}

impl Roll {
    /// Whether instance `id` is restarting or queued to.
    pub(super) fn holds(&self, id: usize) -> bool {
        self.current == Some(id) || self.queue.contains(&id)
    }
}

impl Supervisor {
    /// Queues instance `id` (live, of a balanced type) for a rolling
    /// restart; false when it is already queued or restarting.
    pub(super) fn queue_roll(&mut self, id: usize) -> bool {
        let roll = &mut self.rolls[self.instances[id].spec.type_index];
        if roll.holds(id) {
            return false;
        }
        roll.queue.push_back(id);
        true
    }

    /// Says which instances of each type a `pm restart` queued.
    pub(super) fn say_rolls(&mut self, queued: &[usize]) {
        for t in 0..self.types.len() {
            let instances: Vec<String> = queued
                .iter()
                .filter(|&&id| self.instances[id].spec.type_index == t)
                .map(|&id| self.name(id))
                .collect();
            if !instances.is_empty() {
                let name = self.types[t].name.clone();
                self.say(Event::Rolling { name, instances });
            }
        }
    }

    /// Moves each rolling restart on: the next instance is stopped only once
    /// the one before it runs again and is ready, so at least the others
    /// serve all along.
    pub(super) fn advance_rolls(&mut self, now: Instant) {
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
                        let because = format!("{} did not come back", inst.spec.name);
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
                        || other.spec.type_index != t
                        || other.retired
                        || match other.state {
                            State::Running { .. } if other.state.is_live() => self.is_ready(j, now),
                            State::Running { .. } | State::Pending => false,
                            _ => true,
                        }
                });
                if !others_ready {
                    break;
                }
                self.rolls[t].queue.pop_front();
                if self.instances[id].state.is_live() && !self.instances[id].retired {
                    self.rolls[t].current = Some(id);
                    self.instances[id].intent = Some(Intent::Restart);
                    self.stop_instance(id, now);
                    break;
                }
            }
        }
    }

    /// Whether the proxy may send new connections to instance `id`.
    pub fn in_rotation(&self, id: usize) -> bool {
        let inst = &self.instances[id];
        matches!(self.phase, Phase::Release | Phase::Running)
            && !inst.retired
            && inst.intent.is_none()
            && inst.state.is_live()
            && (inst.ready || !self.type_of(id).checked)
    }

    /// The ports of type `t`'s instances in rotation, by instance number.
    pub fn rotation(&self, t: usize) -> Vec<u16> {
        let mut ports: Vec<(u32, u16)> = (0..self.instances.len())
            .filter(|&id| self.instances[id].spec.type_index == t && self.in_rotation(id))
            .map(|id| (self.instances[id].spec.number, self.instances[id].spec.port))
            .collect();
        ports.sort_unstable();
        ports.into_iter().map(|(_, port)| port).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::*;

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

    #[test]
    fn the_rotation_is_the_ready_live_instances_by_number() {
        let t0 = Instant::now();
        let plan = plan_deps(&[("web", 3), ("api", 1)], &[], &["web"]);
        let mut sup = Supervisor::new(&plan);
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
        }
        assert_eq!(sup.rotation(0), Vec::<u16>::new(), "nobody ready yet");
        // api has no check: it counts as in rotation while it runs.
        assert_eq!(sup.rotation(1), [5100]);
        sup.ready_changed(2, true, String::new(), t0);
        sup.ready_changed(0, true, String::new(), t0);
        assert_eq!(sup.rotation(0), [5000, 5002]);
        sup.ready_changed(1, true, String::new(), t0);
        assert_eq!(sup.rotation(0), [5000, 5001, 5002]);
        // Stopping takes it out before the signal is handled.
        sup.stop(&[1], false, t0);
        assert_eq!(sup.rotation(0), [5000, 5002]);
        sup.shutdown(Signal::SIGTERM, t0);
        assert_eq!(sup.rotation(0), Vec::<u16>::new());
    }
}
