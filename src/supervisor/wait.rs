//! What a waiting client waits for: `pm wait` (every target ready at the
//! same moment), and `pm restart`, `pm stop` and `pm scale` returning once
//! what they asked for is done. A [`Goal`] is taken when the request
//! arrives; [`Supervisor::progress`] says, from the state alone, whether it
//! is reached, still pending (and when to look again), or cannot be reached
//! any more (naming the instance).
//!
//! Pure: the runtime keeps the waiting clients and asks again after each
//! batch of events and at the deadline given here; nothing polls.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Intent, Phase, SETTLE, State, Stop, Supervisor};

/// What one instance of a goal must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Aim {
    /// Ready now: its check passes, or unchecked it has run `SETTLE`, or
    /// it completed (exited 0 and will not run again).
    Ready,
    /// A run newer than `run` started, and is ready where the type has a
    /// readiness check (`pm restart`, `pm scale` up).
    Restarted { run: u32 },
    /// Running (ready where checked), whichever run it is (`pm scale` up,
    /// where an instance may already run).
    Up,
    /// No longer running (`pm stop`, `pm scale` down).
    Down,
}

/// The instances a client waits for, each with what it must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    aims: Vec<(usize, Aim)>,
}

/// Where a goal stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// `name` is not there yet; without another event, look again at `recheck`.
    Pending {
        name: String,
        recheck: Option<Instant>,
    },
    /// It cannot be reached any more; the message names the instance.
    Failed(String),
}

impl Supervisor {
    /// `pm wait TARGET...`: every target instance (every instance of the
    /// formation when none is named) ready at the same moment.
    pub fn goal_ready(&self, targets: &[String]) -> Result<Goal, String> {
        let ids = if targets.is_empty() {
            (0..self.instances.len())
                .filter(|&id| !self.instances[id].retired)
                .collect()
        } else {
            self.targets(targets)?
        };
        Ok(Goal {
            aims: ids.into_iter().map(|id| (id, Aim::Ready)).collect(),
        })
    }

    /// `pm restart`: taken before the restart, so only a newer run counts.
    pub fn goal_restarted(&self, targets: &[String]) -> Result<Goal, String> {
        let ids = self.targets(targets)?;
        Ok(Goal {
            aims: ids
                .into_iter()
                .map(|id| {
                    let run = self.instances[id].runs;
                    (id, Aim::Restarted { run })
                })
                .collect(),
        })
    }

    /// `pm stop`.
    pub fn goal_stopped(&self, targets: &[String]) -> Result<Goal, String> {
        let ids = self.targets(targets)?;
        Ok(Goal {
            aims: ids.into_iter().map(|id| (id, Aim::Down)).collect(),
        })
    }

    /// `pm scale`, taken after the scale: each instance of the changed
    /// types is up (in the formation) or down (scaled away). One left
    /// stopped by `pm stop` stays so: a scale does not restart it.
    pub fn goal_scaled(&self, changes: &[(String, u32)]) -> Goal {
        let counts: BTreeMap<&str, u32> = changes.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        let aims = (0..self.instances.len())
            .filter_map(|id| {
                let inst = &self.instances[id];
                let count = *counts.get(self.type_of(id).name.as_str())?;
                if inst.state == State::Stopped && !inst.retired {
                    return None;
                }
                Some(if inst.spec.number <= count {
                    (id, Aim::Up)
                } else {
                    (id, Aim::Down)
                })
            })
            .collect();
        Goal { aims }
    }

    /// Whether `goal` is reached now. An instance that cannot get there
    /// any more is named first, whatever else is pending.
    pub fn progress(&self, goal: &Goal, now: Instant) -> Progress {
        let shutting_down = !matches!(self.phase, Phase::Release | Phase::Running);
        let mut recheck: Option<Instant> = None;
        let mut pending: Option<String> = None;
        let mut refused = false;
        for (id, aim) in &goal.aims {
            let id = *id;
            let inst = &self.instances[id];
            let name = &inst.spec.name;
            if *aim == Aim::Down {
                if inst.state.is_running() {
                    pending.get_or_insert_with(|| name.clone());
                }
                continue;
            }
            let newer = match aim {
                Aim::Restarted { run } => inst.runs > *run,
                _ => true,
            };
            // `pm wait` asks more of an unchecked instance than having
            // started: to have run for a moment, as a dependency must.
            match self.up_now(id, *aim == Aim::Ready, now) {
                Up::Gone(why) => return Progress::Failed(format!("{name} {why}")),
                _ if shutting_down => refused = true,
                Up::Yes if newer => continue,
                Up::At(t) if newer => recheck = Some(recheck.map_or(t, |r| r.min(t))),
                _ => {}
            }
            if let Aim::Restarted { run } = aim
                && inst.runs == *run
                && inst.state.is_live()
                && inst.intent.is_none()
                && self.type_of(id).rolling
                && !self.rolls[inst.spec.type_index].holds(id)
            {
                let t = &self.types[inst.spec.type_index].name;
                return Progress::Failed(format!(
                    "{name} was not restarted: the rolling restart of {t} stopped"
                ));
            }
            pending.get_or_insert_with(|| name.clone());
        }
        if refused {
            return Progress::Failed("pm is shutting down".into());
        }
        match pending {
            None => Progress::Done,
            Some(name) => Progress::Pending { name, recheck },
        }
    }

    /// Whether instance `id` counts as up for a waiting client.
    fn up_now(&self, id: usize, settle: bool, now: Instant) -> Up {
        let inst = &self.instances[id];
        match inst.state {
            State::Running {
                since,
                stop: Stop::No,
                ..
            } if inst.intent.is_none() => {
                if self.type_of(id).checked {
                    if inst.ready { Up::Yes } else { Up::No }
                } else if !settle || now.saturating_duration_since(since) >= SETTLE {
                    Up::Yes
                } else {
                    Up::At(since + SETTLE)
                }
            }
            State::Running { .. } if inst.intent == Some(Intent::Stop) => {
                Up::Gone("was stopped (pm stop)")
            }
            State::Exited(status) if status.success() => Up::Yes,
            // Only a shutdown leaves an instance exited with a failure.
            State::Exited(_) => Up::No,
            State::Failed(_) => Up::Gone("failed and was given up on"),
            State::Stopped if inst.retired => Up::Gone("was scaled away"),
            State::Stopped => Up::Gone("was stopped (pm stop)"),
            _ => Up::No,
        }
    }
}

enum Up {
    Yes,
    No,
    /// Up at this time if nothing changes (an unchecked instance settling).
    At(Instant),
    /// Will not be up again without a new request.
    Gone(&'static str),
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::*;
    use super::*;
    use crate::model::ExitStatus;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn pending(name: &str, recheck: Option<Instant>) -> Progress {
        Progress::Pending {
            name: name.into(),
            recheck,
        }
    }

    #[test]
    fn wait_is_every_instance_ready_at_once() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let plan = plan_deps(&[("web", 1), ("job", 1), ("db", 1)], &[], &["web"]);
        let mut sup = Supervisor::new(&plan);
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
        }
        let all = sup.goal_ready(&[]).unwrap();
        assert_eq!(sup.progress(&all, t0), pending("web.1", Some(t0 + SETTLE)));
        sup.ready_changed(0, true, String::new(), t0);
        // job and db have no check: ready once they have run SETTLE.
        assert_eq!(sup.progress(&all, t0), pending("job.1", Some(t0 + SETTLE)));
        // A one-shot that completed counts as ready.
        sup.exited(1, ExitStatus::Code(0), t0 + ms(100));
        assert_eq!(sup.progress(&all, t0 + SETTLE), Progress::Done);
        // Backing off is not given up: still pending.
        sup.exited(2, ExitStatus::Code(1), t0 + SETTLE);
        assert_eq!(sup.progress(&all, t0 + SETTLE), pending("db.1", None));
        let web = sup.goal_ready(&strings(&["web"])).unwrap();
        assert_eq!(sup.progress(&web, t0 + SETTLE), Progress::Done);
        assert!(sup.goal_ready(&strings(&["nope"])).is_err());
    }

    #[test]
    fn wait_fails_on_a_given_up_or_stopped_instance() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 1), ("worker", 1)], Some(0), t0);
        let all = sup.goal_ready(&[]).unwrap();
        sup.stop(&[1], false, t0);
        assert_eq!(
            sup.progress(&all, t0 + SETTLE),
            Progress::Failed("worker.1 was stopped (pm stop)".into())
        );
        sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert_eq!(
            sup.progress(&all, t0 + SETTLE),
            Progress::Failed("worker.1 was stopped (pm stop)".into())
        );
        sup.exited(0, ExitStatus::Code(1), t0);
        let web = sup.goal_ready(&strings(&["web"])).unwrap();
        assert_eq!(
            sup.progress(&web, t0),
            Progress::Failed("web.1 failed and was given up on".into())
        );
        assert_eq!(sup.instances()[0].state, State::Failed(ExitStatus::Code(1)));
    }

    #[test]
    fn a_restart_is_done_once_the_new_run_is_ready() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let plan = plan_deps(&[("web", 2), ("worker", 1)], &[], &["web"]);
        let mut sup = all_running(&plan, t0);
        for id in [0, 1] {
            sup.ready_changed(id, true, String::new(), t0);
        }
        let goal = sup.goal_restarted(&strings(&["web", "worker"])).unwrap();
        sup.restart(&[0, 1, 2], t0);
        assert_eq!(sup.progress(&goal, t0), pending("web.1", None));
        sup.exited(0, ExitStatus::Code(0), t0);
        sup.spawned(0, 200, t0);
        sup.exited(2, ExitStatus::Code(0), t0);
        sup.spawned(2, 202, t0 + s(1));
        sup.ready_changed(0, true, String::new(), t0 + s(1));
        // web.2 has not restarted yet: its old run being ready is not enough.
        assert_eq!(sup.progress(&goal, t0 + s(1)), pending("web.2", None));
        sup.exited(1, ExitStatus::Code(0), t0 + s(1));
        sup.spawned(1, 201, t0 + s(1));
        sup.ready_changed(1, true, String::new(), t0 + s(1));
        // worker has no check: the new run started is enough.
        assert_eq!(sup.progress(&goal, t0 + s(1)), Progress::Done);
    }

    #[test]
    fn a_stopped_rolling_restart_fails_the_restart() {
        let t0 = Instant::now();
        let mut plan = plan_deps(&[("web", 2)], &[], &["web"]);
        plan.types[0].restart.policy = crate::model::Restart::Never;
        let mut sup = Supervisor::new(&plan);
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
            sup.ready_changed(id, true, String::new(), t0);
        }
        let goal = sup.goal_restarted(&strings(&["web"])).unwrap();
        sup.restart(&[0, 1], t0);
        sup.exited(0, ExitStatus::Code(0), t0);
        sup.spawned(0, 200, t0);
        sup.exited(0, ExitStatus::Code(0), t0);
        assert_eq!(
            sup.progress(&goal, t0),
            Progress::Failed("web.2 was not restarted: the rolling restart of web stopped".into())
        );
    }

    #[test]
    fn stop_and_scale_wait_for_what_they_change() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 2)], None, t0);
        let goal = sup.goal_stopped(&strings(&["web.2"])).unwrap();
        sup.stop(&[1], false, t0);
        assert_eq!(sup.progress(&goal, t0), pending("web.2", None));
        sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert_eq!(sup.progress(&goal, t0), Progress::Done);

        let mut sup = started(&[("web", 1)], None, t0);
        let formation = [("web".to_string(), 3)].into();
        let (a, answer) = sup.scale(&formation, t0);
        let goal = sup.goal_scaled(&answer.unwrap().changes);
        assert_eq!(sup.progress(&goal, t0), pending("web.2", None));
        for id in spawns(&a) {
            sup.spawned(id, 300 + id as i32, t0);
        }
        // Started is enough for an unchecked type.
        assert_eq!(sup.progress(&goal, t0), Progress::Done);
        let formation = [("web".to_string(), 1)].into();
        let (_, answer) = sup.scale(&formation, t0);
        let goal = sup.goal_scaled(&answer.unwrap().changes);
        assert_eq!(sup.progress(&goal, t0 + SETTLE), pending("web.2", None));
        sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0);
        sup.exited(2, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert_eq!(sup.progress(&goal, t0 + SETTLE), Progress::Done);
    }

    #[test]
    fn nothing_changes_while_shutting_down() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 2)], None, t0);
        sup.shutdown(Signal::SIGTERM, t0);
        let refused = Err("pm is shutting down".to_string());
        let (a, answer) = sup.restart_named(&strings(&["web"]), t0);
        assert!(a.is_empty());
        assert_eq!(answer.map(|_| ()), refused);
        let (a, answer) = sup.stop_named(&strings(&["web.1"]), t0);
        assert!(a.is_empty());
        assert_eq!(answer.map(|_| ()), refused);
        let (a, answer) = sup.scale(&[("web".to_string(), 3)].into(), t0);
        assert!(a.is_empty());
        assert_eq!(answer.map(|_| ()), refused);
    }
}
