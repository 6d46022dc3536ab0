//! `pm restart` and `pm stop`: which instances a target names (`web` is
//! every instance of the type, `web.2` one), and what restarting or stopping
//! them means. A balanced type restarts one instance at a time
//! (`rolling.rs`); a stopped instance stays stopped until restarted.
//!
//! Pure: answers are typed values; the control protocol words the replies.

use std::time::Instant;

use super::{Action, Event, Intent, Phase, State, Supervisor};

/// What a `pm restart` set going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarting {
    /// The instances named, in the order the targets named them.
    pub names: Vec<String>,
    /// Some are balanced: they restart one at a time.
    pub rolling: bool,
}

/// What a `pm stop` set going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopping {
    pub names: Vec<String>,
}

impl Supervisor {
    /// Refuses changes while the release phase runs or pm shuts down.
    pub(super) fn changes_allowed(&self) -> Result<(), String> {
        match self.phase {
            Phase::Release => Err(
                "the release phase is running: nothing else can change until it has completed"
                    .into(),
            ),
            Phase::Stopping { .. } | Phase::Killing { .. } => Err("pm is shutting down".into()),
            Phase::Running => Ok(()),
        }
    }

    /// Instance ids for `web` (every instance) or `web.2`, in the order
    /// named, each once. Instances scaled away are not named.
    pub fn targets(&self, targets: &[String]) -> Result<Vec<usize>, String> {
        if targets.is_empty() {
            return Err("no target given (expected a process type like \"web\" or an instance like \"web.2\")".into());
        }
        let mut ids = Vec::new();
        for target in targets {
            let found: Vec<usize> = (0..self.instances.len())
                .filter(|&id| {
                    let inst = &self.instances[id];
                    !inst.retired && (inst.spec.name == *target || self.type_of(id).name == *target)
                })
                .collect();
            if found.is_empty() {
                let known: Vec<&str> = self.types.iter().map(|t| t.name.as_str()).collect();
                return Err(format!(
                    "no process or instance \"{}\" is running here (process types: {})",
                    crate::config::one_line(target),
                    known.join(", ")
                ));
            }
            for id in found {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    /// `pm restart TARGET...`.
    pub fn restart_named(
        &mut self,
        targets: &[String],
        now: Instant,
    ) -> (Vec<Action>, Result<Restarting, String>) {
        let ids = match self.changes_allowed().and_then(|()| self.targets(targets)) {
            Ok(ids) => ids,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let actions = self.restart(&ids, now);
        let answer = Restarting {
            names: ids.iter().map(|&id| self.name(id)).collect(),
            rolling: ids.iter().any(|&id| self.type_of(id).rolling),
        };
        (actions, Ok(answer))
    }

    /// `pm stop TARGET...`.
    pub fn stop_named(
        &mut self,
        targets: &[String],
        now: Instant,
    ) -> (Vec<Action>, Result<Stopping, String>) {
        let ids = match self.changes_allowed().and_then(|()| self.targets(targets)) {
            Ok(ids) => ids,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let actions = self.stop(&ids, false, now);
        let names = ids.iter().map(|&id| self.name(id)).collect();
        (actions, Ok(Stopping { names }))
    }

    /// A file that type `t` watches changed: its instances in the formation
    /// restart (one at a time where balanced), except those `pm stop`
    /// stopped. Nothing happens while the release phase runs or pm stops.
    pub fn restart_watched(&mut self, t: usize, path: &str, now: Instant) -> Vec<Action> {
        if self.changes_allowed().is_err() {
            return self.take();
        }
        let ids: Vec<usize> = (0..self.instances.len())
            .filter(|&id| {
                let inst = &self.instances[id];
                inst.spec.type_index == t
                    && inst.active()
                    && inst.state != State::Stopped
                    && inst.intent != Some(Intent::Stop)
            })
            .collect();
        if ids.is_empty() {
            return self.take();
        }
        let name = self.types[t].name.clone();
        self.say(Event::FileChanged {
            name,
            path: path.to_string(),
        });
        let mut actions = self.take();
        actions.extend(self.restart(&ids, now));
        actions
    }

    /// `pm restart`: a running instance is stopped and started again at
    /// once; one that is not running starts now.
    pub fn restart(&mut self, ids: &[usize], now: Instant) -> Vec<Action> {
        if matches!(self.phase, Phase::Running) {
            let mut queued = Vec::new();
            for &id in ids {
                if self.type_of(id).rolling && self.instances[id].state.is_live() {
                    // Balanced: restarted one at a time (see advance_rolls).
                    if self.queue_roll(id) {
                        queued.push(id);
                    }
                    continue;
                }
                let inst = &mut self.instances[id];
                match inst.state {
                    State::Running { .. } if inst.state.is_live() => {
                        inst.intent = Some(Intent::Restart);
                        self.stop_instance(id, now);
                    }
                    State::Running { .. } => inst.intent = Some(Intent::Restart),
                    // Still waiting for its dependencies: it starts with them.
                    State::Waiting => {}
                    _ => {
                        inst.in_a_row = 0;
                        inst.retired = false;
                        inst.intent = None;
                        inst.state = State::Pending;
                        self.actions.push(Action::Spawn(id));
                    }
                }
            }
            self.say_rolls(&queued);
            self.advance_rolls(now);
        }
        self.take()
    }

    /// `pm stop` (or, with `retire`, `pm scale` down): stop and leave stopped.
    pub fn stop(&mut self, ids: &[usize], retire: bool, now: Instant) -> Vec<Action> {
        if matches!(self.phase, Phase::Running) {
            let intent = if retire { Intent::Retire } else { Intent::Stop };
            for &id in ids {
                let inst = &mut self.instances[id];
                match inst.state {
                    State::Running { .. } => {
                        inst.intent = Some(intent);
                        if inst.state.is_live() {
                            self.stop_instance(id, now);
                        }
                    }
                    _ => {
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
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::*;
    use crate::model::ExitStatus;

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

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets_name_types_and_instances_in_order_each_once() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 3), ("worker", 1), ("clock", 0)], None, t0);
        // web.3 is scaled away: no target names it any more.
        sup.stop(&[2], true, t0);
        sup.exited(2, ExitStatus::Code(0), t0);
        let unknown = |what: &str| {
            Err(format!(
                "no process or instance \"{what}\" is running here (process types: web, worker, clock)"
            ))
        };
        type Row<'a> = (&'a [&'a str], Result<Vec<usize>, String>);
        let table: [Row; 10] = [
            (&["web"], Ok(vec![0, 1])),
            (&["web.2"], Ok(vec![1])),
            (&["web.2", "web"], Ok(vec![1, 0])),
            (&["worker", "web.1", "worker.1"], Ok(vec![3, 0])),
            (&["web.3"], unknown("web.3")),
            (&["clock"], unknown("clock")),
            (&["web", "nope"], unknown("nope")),
            (&["we\nb"], unknown("we\\nb")),
            (&["WEB"], unknown("WEB")),
            (
                &[],
                Err("no target given (expected a process type like \"web\" or an instance like \"web.2\")".into()),
            ),
        ];
        for (i, (targets, want)) in table.into_iter().enumerate() {
            assert_eq!(sup.targets(&strings(targets)), want, "row {i}");
        }
    }

    #[test]
    fn named_restarts_and_stops_answer_what_they_do() {
        let t0 = Instant::now();
        let plan = plan_deps(&[("web", 2), ("worker", 1)], &[], &["web"]);
        let mut sup = all_running(&plan, t0);
        let (a, answer) = sup.restart_named(&strings(&["worker"]), t0);
        assert_eq!(signals(&a), [(2, Signal::SIGTERM)]);
        assert_eq!(
            answer,
            Ok(Restarting {
                names: strings(&["worker.1"]),
                rolling: false
            })
        );
        let (_, answer) = sup.restart_named(&strings(&["web.2", "worker"]), t0);
        assert_eq!(
            answer,
            Ok(Restarting {
                names: strings(&["web.2", "worker.1"]),
                rolling: true
            })
        );
        let (a, answer) = sup.stop_named(&strings(&["web.1"]), t0);
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
        assert_eq!(
            answer,
            Ok(Stopping {
                names: strings(&["web.1"])
            })
        );
        let (a, answer) = sup.stop_named(&strings(&["db"]), t0);
        assert!(a.is_empty());
        assert!(answer.is_err());
    }

    #[test]
    fn a_watched_change_restarts_the_type_but_not_what_pm_stop_stopped() {
        let t0 = Instant::now();
        let plan = plan_deps(&[("web", 2), ("worker", 2)], &[], &["web"]);
        let mut sup = all_running(&plan, t0);
        for id in [0, 1] {
            sup.ready_changed(id, true, String::new(), t0);
        }
        sup.stop(&[3], false, t0);
        let a = sup.restart_watched(1, "app/jobs.py", t0);
        assert_eq!(
            said(&a),
            ["app/jobs.py changed, restarting worker"],
            "{a:?}"
        );
        assert_eq!(signals(&a), [(2, Signal::SIGTERM)], "worker.2 was stopped");
        // A balanced type restarts one instance at a time.
        let a = sup.restart_watched(0, "app/views.py", t0);
        assert_eq!(
            said(&a),
            [
                "app/views.py changed, restarting web",
                "rolling restart of web: web.1, web.2, one at a time"
            ]
        );
        assert_eq!(signals(&a), [(0, Signal::SIGTERM)]);
        // A second save during the rolling restart queues nothing twice.
        let a = sup.restart_watched(0, "app/views.py", t0);
        assert!(signals(&a).is_empty(), "{a:?}");
        sup.shutdown(Signal::SIGTERM, t0);
        assert!(sup.restart_watched(0, "x", t0).is_empty());
    }

    #[test]
    fn nothing_changes_during_the_release_phase() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 1), ("release", 1)], None));
        sup.start(t0);
        sup.spawned(1, 100, t0);
        let refused =
            "the release phase is running: nothing else can change until it has completed";
        let (a, answer) = sup.restart_named(&strings(&["web"]), t0);
        assert!(a.is_empty());
        assert_eq!(answer, Err(refused.to_string()));
        let (a, answer) = sup.stop_named(&strings(&["release"]), t0);
        assert!(a.is_empty());
        assert_eq!(answer, Err(refused.to_string()));
        assert!(sup.instances()[1].state.is_live());
    }
}
