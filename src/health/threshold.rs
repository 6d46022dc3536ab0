//! How consecutive probe results of one check turn into ready / not ready
//! transitions and liveness failures, and how soon to probe again. Pure:
//! the task in `mod.rs` probes and counts with it; what a verdict means for
//! the instance is the supervisor's (`supervisor/health.rs`).

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
