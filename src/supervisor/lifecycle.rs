//! An instance's life: start, spawn, exit, and the backoff before a restart.
//!
//! Each exit goes through [`policy::decide`](super::policy::decide) unless a
//! user's intent (`pm restart`, `pm stop`, `pm scale` down) or a shutdown
//! says otherwise. When every instance of the formation has ended for good,
//! pm stops with 0. Pure: `now` comes in, actions go out.

use std::io;
use std::time::{Duration, Instant};

use super::event::AfterSpawnFailure;
use super::policy::{Decision, decide};
use super::{Action, Event, Intent, Phase, State, Stop, Supervisor};
use crate::error::io_message;
use crate::model::ExitStatus;

/// Spawns of one instance that may fail in a row before pm gives it up,
/// even when its restarts are unlimited: a failure that keeps coming back
/// is not worth retrying blindly.
pub const MAX_SPAWN_ATTEMPTS: u32 = 5;

/// Whether a spawn failure would happen again the same way: the command,
/// its environment or the shell cannot change between attempts.
fn lasting(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::E2BIG
                | libc::ENOENT
                | libc::EACCES
                | libc::ENOEXEC
                | libc::ENAMETOOLONG
                | libc::ENOTDIR
                | libc::ELOOP
                | libc::EISDIR
                | libc::EPERM
        )
    )
}

/// A spawn failure as a `system` line says it: the error, and for the
/// surprising ones what it means.
fn spawn_error(error: &io::Error) -> String {
    let what = io_message(error);
    match error.raw_os_error() {
        Some(libc::E2BIG) => {
            format!("{what} (E2BIG: its environment and command are larger than the system allows)")
        }
        Some(libc::EMFILE | libc::ENFILE) => format!("{what} (pm is out of file descriptors)"),
        Some(libc::ENOENT) => format!("{what} (no /bin/sh, or no such working directory)"),
        _ => what,
    }
}

impl Supervisor {
    /// Starts what may start: the release phase first (with what release
    /// depends on), each type once the types it depends on are ready.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        if (0..self.instances.len()).any(|id| self.is_release(id)) {
            self.phase = Phase::Release;
        }
        for inst in &mut self.instances {
            inst.state = State::Waiting;
        }
        self.say_who_waits();
        self.start_waiting(now);
        self.finish_if_all_done(now);
        self.take()
    }

    pub fn spawned(&mut self, id: usize, pid: i32, now: Instant) -> Vec<Action> {
        self.instances[id].spawn_failures = 0;
        let stopping = matches!(self.phase, Phase::Stopping { .. } | Phase::Killing { .. });
        self.instances[id].state = State::Running {
            pid,
            since: now,
            stop: Stop::No,
        };
        self.instances[id].ready = false;
        self.instances[id].was_ready = false;
        self.instances[id].runs += 1;
        let spec = &self.instances[id].spec;
        let (name, port) = (spec.name.clone(), spec.port);
        self.say(Event::Started { name, pid, port });
        if stopping {
            // A spawn raced with a shutdown: stop it right away.
            self.stop_instance(id, now);
        }
        self.take()
    }

    /// Starting instance `id` failed: no process ran. A failure that would
    /// happen again the same way (an environment too large for `exec`, no
    /// shell) gives the instance up at once; one that may pass (out of
    /// descriptors or memory) is tried again after the restart backoff, at
    /// most [`MAX_SPAWN_ATTEMPTS`] times in a row. Giving up stops pm as a
    /// failed instance does, with 127 (a command that could not run).
    pub fn spawn_failed(&mut self, id: usize, error: &io::Error, now: Instant) -> Vec<Action> {
        if !matches!(self.phase, Phase::Release | Phase::Running) {
            // A shutdown came first: there is nothing to stop.
            self.instances[id].state = State::Stopped;
            self.stop_next_wave(now);
            return self.take();
        }
        let name = self.name(id);
        let status = ExitStatus::Code(127);
        let rules = self.type_of(id).restart;
        let release = self.is_release(id);
        let inst = &mut self.instances[id];
        inst.intent = None;
        inst.spawn_failures += 1;
        let attempts = inst.spawn_failures;
        let decision = if release || lasting(error) || attempts >= MAX_SPAWN_ATTEMPTS {
            Decision::GiveUp
        } else {
            decide(rules, status, Duration::ZERO, inst.in_a_row)
        };
        let error = spawn_error(error);
        match decision {
            Decision::Restart { delay, in_a_row } => {
                inst.in_a_row = in_a_row;
                inst.restarts += 1;
                inst.state = State::Backoff { until: now + delay };
                self.say(Event::SpawnFailed {
                    name,
                    error,
                    next: AfterSpawnFailure::Retry(delay),
                });
            }
            Decision::Done | Decision::GiveUp => {
                inst.state = State::Failed(status);
                self.say(Event::SpawnFailed {
                    name: name.clone(),
                    error,
                    next: AfterSpawnFailure::GiveUp { attempts },
                });
                self.say(Event::FailedStopping { name });
                self.begin_stop(status.shell_code(), now);
            }
        }
        self.after_change(now);
        self.take()
    }

    /// Instance `id`'s leader exited with `status` while other processes
    /// remain in its group. The run is not over: the rest of the group gets
    /// the type's stop signal (unless pm already sent one), SIGKILL after the
    /// grace, and [`Supervisor::exited`] comes once the group is empty, so
    /// the next run never meets the old one on its port.
    pub fn leader_exited(&mut self, id: usize, status: ExitStatus, now: Instant) -> Vec<Action> {
        let rules = self.type_of(id);
        let (signal, timeout) = (rules.stop_signal, rules.stop_timeout);
        if let State::Running { stop, .. } = &mut self.instances[id].state
            && *stop == Stop::No
        {
            *stop = Stop::Signalled {
                kill_at: now + timeout,
            };
            let name = self.instances[id].spec.name.clone();
            self.say(Event::LeftBehind {
                name,
                status,
                signal,
            });
            self.actions.push(Action::Signal(id, signal));
        }
        self.take()
    }

    /// Instance `id` exited (its output is drained).
    pub fn exited(&mut self, id: usize, status: ExitStatus, now: Instant) -> Vec<Action> {
        let State::Running { since, .. } = self.instances[id].state else {
            return self.take();
        };
        let name = self.name(id);
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
                let rules = self.type_of(id).restart;
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

    /// Spawns again every instance whose backoff is over.
    pub(super) fn restart_due(&mut self, now: Instant) {
        for id in 0..self.instances.len() {
            if let State::Backoff { until } = self.instances[id].state
                && until <= now
            {
                self.instances[id].state = State::Pending;
                self.actions.push(Action::Spawn(id));
            }
        }
    }

    /// What any change may unblock: waiting instances and rolling restarts.
    pub(super) fn after_change(&mut self, now: Instant) {
        self.start_waiting(now);
        self.advance_rolls(now);
    }

    /// When every instance has ended for good, pm stops (exit 0).
    pub(super) fn finish_if_all_done(&mut self, now: Instant) {
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
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::*;
    use super::MAX_SPAWN_ATTEMPTS;

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
        let a = sup.exited(0, ExitStatus::Code(1), t0 + Duration::from_secs(1));
        assert_eq!(said(&a), ["web.1 exited with code 1, restarting in 0.5s"]);
        assert_eq!(
            sup.next_deadline(t0),
            Some(t0 + Duration::from_secs(1) + Duration::from_millis(500))
        );
        // Nothing happens before the deadline.
        assert!(sup.tick(t0 + Duration::from_secs(1)).is_empty());
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
    fn a_leader_that_leaves_its_group_behind_ends_the_run_only_with_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sup = started(&[("web", 1)], None, t0);
        // The shell exited; the rest of the group gets the stop signal once,
        // and nothing is said about an exit yet.
        let a = sup.leader_exited(0, ExitStatus::Code(0), t0 + Duration::from_secs(1));
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
        assert_eq!(
            said(&a),
            [
                "web.1's command exited with code 0, sending SIGTERM to the processes it left in its group"
            ]
        );
        assert!(sup.instances()[0].state.is_running());
        assert!(
            sup.leader_exited(0, ExitStatus::Code(0), t0 + Duration::from_secs(1))
                .is_empty()
        );
        // Still there at the end of the grace: SIGKILL.
        let a = sup.tick(t0 + s(6));
        assert_eq!(signals(&a), [(0, Signal::SIGKILL)]);
        // The group is empty: the run ends with the leader's status.
        let a = sup.exited(0, ExitStatus::Code(0), t0 + s(6));
        assert_eq!(
            said(&a),
            ["web.1 exited with code 0", "all processes finished"]
        );
    }

    #[test]
    fn uptime_resets_the_backoff() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut sup = started(&[("web", 1)], None, t0);
        sup.exited(0, ExitStatus::Code(1), t0 + Duration::from_secs(1));
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
    fn spawn_failure_counts_as_exit_127() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 1)], Some(0)));
        sup.start(t0);
        let a = sup.spawn_failed(0, &std::io::Error::from_raw_os_error(libc::EAGAIN), t0);
        assert_eq!(
            said(&a)[0],
            "web.1 could not start: resource temporarily unavailable; giving up on it"
        );
        assert_eq!(sup.finished(|| false, t0), Some(127));
    }

    #[test]
    fn a_spawn_failure_that_would_recur_gives_up_at_once() {
        let t0 = Instant::now();
        // Unlimited restarts: still not retried.
        let mut sup = Supervisor::new(&plan(&[("web", 1), ("worker", 1)], None));
        sup.start(t0);
        sup.spawned(1, 200, t0);
        let a = sup.spawn_failed(0, &std::io::Error::from_raw_os_error(libc::E2BIG), t0);
        assert_eq!(
            said(&a),
            [
                "web.1 could not start: argument list too long (E2BIG: its environment and command are larger than the system allows); giving up on it",
                "web.1 failed, stopping all processes",
                "sending SIGTERM to all processes",
            ]
        );
        assert!(spawns(&a).is_empty());
        assert!(a.contains(&Action::Signal(1, Signal::SIGTERM)));
        sup.exited(
            1,
            ExitStatus::Signal(Signal::SIGTERM),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(
            sup.finished(|| false, t0 + Duration::from_secs(1)),
            Some(127)
        );
    }

    #[test]
    fn a_spawn_failure_that_may_pass_is_retried_a_few_times() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 1)], None));
        sup.start(t0);
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let mut now = t0;
        for attempt in 1..MAX_SPAWN_ATTEMPTS {
            let a = sup.spawn_failed(0, &emfile, now);
            let line = &said(&a)[0];
            assert!(
                line.starts_with(
                    "web.1 could not start: too many open files (pm is out of file descriptors); trying again in "
                ),
                "attempt {attempt}: {line}"
            );
            // The backoff ends, the spawn comes again.
            now += Duration::from_secs(60);
            let a = sup.tick(now);
            assert_eq!(spawns(&a), [0], "attempt {attempt}");
        }
        let a = sup.spawn_failed(0, &emfile, now);
        assert_eq!(
            said(&a)[0],
            format!(
                "web.1 could not start: too many open files (pm is out of file descriptors); gave up after {MAX_SPAWN_ATTEMPTS} attempts"
            )
        );
        assert_eq!(sup.finished(|| false, now), Some(127));
    }
}
