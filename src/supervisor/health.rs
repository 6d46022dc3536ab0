//! Policy for health checks: how consecutive probe results turn into
//! ready / not ready transitions and liveness failures ([`Threshold`], used
//! by each check's task), and what the supervisor does with a verdict: a
//! readiness change lets dependents start and moves rolling restarts on, a
//! liveness failure restarts the instance. Pure: the probes themselves live
//! in `crate::health`.

use std::time::{Duration, Instant};

use super::{Action, Event, Intent, Phase, Supervisor};

/// The first probe after a start comes this soon; the wait then doubles up to
/// the check's interval, so a service that is up at once is seen at once
/// without probing a slow one many times a second.
pub const FIRST_PROBE: Duration = Duration::from_millis(50);

/// What a run of probe results means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `successes` passes in a row while not ready.
    Ready,
    /// `failures` failures in a row while ready.
    Unready,
}

/// Counts consecutive results of one check of one run of an instance.
#[derive(Debug, Clone)]
pub struct Threshold {
    failures: u32,
    successes: u32,
    passed: u32,
    failed: u32,
    ready: bool,
}

impl Threshold {
    pub fn new(failures: u32, successes: u32) -> Threshold {
        Threshold {
            failures: failures.max(1),
            successes: successes.max(1),
            passed: 0,
            failed: 0,
            ready: false,
        }
    }

    /// A readiness result: a transition when one happens.
    pub fn readiness(&mut self, ok: bool) -> Option<Transition> {
        self.count(ok);
        if !self.ready && self.passed >= self.successes {
            self.ready = true;
            return Some(Transition::Ready);
        }
        if self.ready && self.failed >= self.failures {
            self.ready = false;
            return Some(Transition::Unready);
        }
        None
    }

    /// A liveness result: true each time `failures` failures in a row are
    /// reached (the count starts again after that).
    pub fn liveness(&mut self, ok: bool) -> bool {
        self.count(ok);
        if self.failed >= self.failures {
            self.failed = 0;
            return true;
        }
        false
    }

    fn count(&mut self, ok: bool) {
        if ok {
            self.passed += 1;
            self.failed = 0;
        } else {
            self.failed += 1;
            self.passed = 0;
        }
    }

    /// The wait before the next probe: quick at first, then the interval.
    pub fn next_wait(previous: Option<Duration>, interval: Duration) -> Duration {
        match previous {
            None => FIRST_PROBE.min(interval),
            Some(wait) => (wait * 2).min(interval),
        }
    }
}

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
    use super::super::testing::*;
    use super::*;
    use crate::model::ExitStatus;
    use nix::sys::signal::Signal;

    #[test]
    fn readiness_needs_successes_in_a_row_and_failures_to_drop() {
        let mut t = Threshold::new(3, 2);
        let results = [
            (true, None),
            (false, None),
            (true, None),
            (true, Some(Transition::Ready)),
            (false, None),
            (false, None),
            (true, None),
            (false, None),
            (false, None),
            (false, Some(Transition::Unready)),
            (false, None),
            (true, None),
            (true, Some(Transition::Ready)),
        ];
        for (i, (ok, expected)) in results.into_iter().enumerate() {
            assert_eq!(t.readiness(ok), expected, "result {i}");
        }
    }

    #[test]
    fn failures_before_the_first_ready_say_nothing() {
        let mut t = Threshold::new(1, 1);
        for _ in 0..10 {
            assert_eq!(t.readiness(false), None);
        }
        assert_eq!(t.readiness(true), Some(Transition::Ready));
        assert_eq!(t.readiness(false), Some(Transition::Unready));
    }

    #[test]
    fn liveness_fires_every_failures_in_a_row() {
        let mut t = Threshold::new(2, 1);
        let fired: Vec<bool> = [false, true, false, false, false, false]
            .into_iter()
            .map(|ok| t.liveness(ok))
            .collect();
        assert_eq!(fired, [false, false, false, true, false, true]);
    }

    #[test]
    fn probe_waits_start_quick_and_double_up_to_the_interval() {
        let interval = Duration::from_secs(1);
        let mut wait = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let next = Threshold::next_wait(wait, interval);
            seen.push(next.as_millis());
            wait = Some(next);
        }
        assert_eq!(seen, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            Threshold::next_wait(None, Duration::from_millis(10)),
            Duration::from_millis(10)
        );
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
}
