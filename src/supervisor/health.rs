//! What the supervisor does with a health check's verdict: a readiness
//! change lets dependents start and moves rolling restarts on, a liveness
//! failure restarts the instance. Pure: the probes and their thresholds
//! live in `crate::health`.

use std::time::Instant;

use super::{Action, Event, Intent, Phase, Supervisor};

impl Supervisor {
    /// The readiness check of instance `id` changed its verdict.
    pub fn ready_changed(
        &mut self,
        id: usize,
        ready: bool,
        reason: String,
        now: Instant,
    ) -> Vec<Action> {
        let stopping = !matches!(self.phase, Phase::Release | Phase::Running);
        if stopping || !self.instances[id].state.is_live() {
            return self.take();
        }
        let inst = &mut self.instances[id];
        if inst.ready != ready {
            inst.ready = ready;
            inst.was_ready |= ready;
            let name = inst.spec.name.clone();
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
        let started = !self.type_of(id).checked || inst.was_ready;
        if matches!(self.phase, Phase::Running)
            && started
            && inst.intent.is_none()
            && inst.state.is_live()
        {
            let name = inst.spec.name.clone();
            self.say(Event::Unhealthy { name, reason });
            self.instances[id].restarts += 1;
            self.instances[id].intent = Some(Intent::Restart);
            self.stop_instance(id, now);
        }
        self.take()
    }

    /// For `pm ps`: "ready", "unready", or None for a type without a check.
    pub fn health(&self, id: usize) -> Option<&'static str> {
        let inst = &self.instances[id];
        if !self.type_of(id).checked || !inst.state.is_running() {
            return None;
        }
        Some(if inst.ready { "ready" } else { "unready" })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::*;
    use crate::model::ExitStatus;

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
}
