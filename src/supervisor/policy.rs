//! Restart policy: what to do when an instance exits. Pure functions of the
//! exit, the instance's history and the time; tested as tables.

use std::time::Duration;

use crate::model::{ExitStatus, Restart, RestartSettings};

/// The first delay of a crash loop.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay between two restarts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// An instance that stayed up this long is healthy again: its backoff resets.
pub const RESET_AFTER: Duration = Duration::from_secs(30);

/// The delay before restart number `in_a_row` (0 for the first restart of a
/// crash loop): 0.5 s, 1 s, 2 s, 4 s ... capped at 30 s.
pub fn backoff(in_a_row: u32) -> Duration {
    let factor = 1u32.checked_shl(in_a_row.min(16)).unwrap_or(u32::MAX);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// What happens to an instance after it exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `delay`; it is restart number `in_a_row` + 1 of this loop.
    Restart { delay: Duration, in_a_row: u32 },
    /// It finished its work (exit 0 where that is the end).
    Done,
    /// It failed and will not run again.
    GiveUp,
}

/// Decides the fate of an instance that exited with `status` after running
/// `uptime`, having been restarted `in_a_row` times in a row before this run.
pub fn decide(
    settings: RestartSettings,
    status: ExitStatus,
    uptime: Duration,
    in_a_row: u32,
) -> Decision {
    let wants_restart = match settings.policy {
        Restart::Always => true,
        Restart::OnFailure => !status.success(),
        Restart::Never => false,
    };
    if !wants_restart {
        return if status.success() {
            Decision::Done
        } else {
            Decision::GiveUp
        };
    }
    // A long run means the previous crashes are history.
    let in_a_row = if uptime >= RESET_AFTER { 0 } else { in_a_row };
    if settings.max_restarts.is_some_and(|max| in_a_row >= max) {
        return if status.success() {
            Decision::Done
        } else {
            Decision::GiveUp
        };
    }
    Decision::Restart {
        delay: backoff(in_a_row),
        in_a_row: in_a_row + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_doubles_and_caps() {
        let table = [
            (0, MS(500)),
            (1, S(1)),
            (2, S(2)),
            (3, S(4)),
            (4, S(8)),
            (5, S(16)),
            (6, S(30)),
            (7, S(30)),
            (40, S(30)),
            (u32::MAX, S(30)),
        ];
        for (n, want) in table {
            assert_eq!(backoff(n), want, "restart {n}");
        }
    }

    fn settings(policy: Restart, max: Option<u32>) -> RestartSettings {
        RestartSettings {
            policy,
            max_restarts: max,
        }
    }

    #[test]
    fn decisions() {
        use Decision::{Done, GiveUp};
        use Restart::{Always, Never, OnFailure};
        let ok = ExitStatus::Code(0);
        let bad = ExitStatus::Code(3);
        let killed = ExitStatus::Signal(Signal::SIGKILL);
        let r = |delay, in_a_row| Decision::Restart { delay, in_a_row };
        let table = [
            // policy, max, status, uptime, in_a_row, decision
            (OnFailure, None, ok, S(1), 0, Done),
            (OnFailure, None, bad, S(1), 0, r(MS(500), 1)),
            (OnFailure, None, killed, S(1), 0, r(MS(500), 1)),
            (OnFailure, None, bad, S(1), 3, r(S(4), 4)),
            (OnFailure, None, bad, S(29), 6, r(S(30), 7)),
            // 30 s of uptime resets the loop.
            (OnFailure, None, bad, S(30), 6, r(MS(500), 1)),
            (OnFailure, Some(2), bad, S(1), 1, r(S(1), 2)),
            (OnFailure, Some(2), bad, S(1), 2, GiveUp),
            (OnFailure, Some(2), bad, S(60), 2, r(MS(500), 1)),
            (OnFailure, Some(0), bad, S(1), 0, GiveUp),
            (Always, None, ok, S(1), 0, r(MS(500), 1)),
            (Always, None, bad, S(1), 1, r(S(1), 2)),
            (Always, Some(1), ok, S(1), 1, Done),
            (Always, Some(1), bad, S(1), 1, GiveUp),
            (Never, None, ok, S(1), 0, Done),
            (Never, None, bad, S(1), 0, GiveUp),
            (Never, None, killed, S(100), 0, GiveUp),
        ];
        for (i, (policy, max, status, uptime, in_a_row, want)) in table.into_iter().enumerate() {
            assert_eq!(
                decide(settings(policy, max), status, uptime, in_a_row),
                want,
                "row {i}"
            );
        }
    }
}
