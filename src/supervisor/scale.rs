//! `pm scale`: what bringing each named type to a count means. New
//! instances get the numbers and ports `pm start` would give them, the
//! highest-numbered go first on the way down (retired, not forgotten: a
//! scale back up revives the same instance on the same port), and what the
//! scaled types depend on comes along (`deps.rs`).
//!
//! The supervisor's instance list grows here and only here; the Plan is
//! never changed. Pure: answers are typed values; the control protocol
//! words the reply.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Action, Instance, Intent, Phase, State, Supervisor};
use crate::config::formation::MAX_COUNT;
use crate::config::ports;
use crate::plan::{InstanceSpec, RELEASE};

/// What a `pm scale` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    /// Each type brought to its count (those pulled in too), by name.
    pub changes: Vec<(String, u32)>,
    /// Types started because a scaled type depends on them.
    pub pulled: Vec<String>,
}

impl Supervisor {
    /// Brings each named type to its count.
    pub fn scale(
        &mut self,
        formation: &BTreeMap<String, u32>,
        now: Instant,
    ) -> (Vec<Action>, Result<Scaled, String>) {
        let mut actions = Vec::new();
        let result = self.scale_into(formation, now, &mut actions);
        (actions, result)
    }

    fn scale_into(
        &mut self,
        formation: &BTreeMap<String, u32>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> Result<Scaled, String> {
        self.changes_allowed()?;
        if formation.is_empty() {
            return Err("empty formation (expected NAME=COUNT...)".into());
        }
        for (name, &count) in formation {
            let Some(t) = self.types.iter().position(|t| t.name == *name) else {
                let known: Vec<&str> = self.types.iter().map(|t| t.name.as_str()).collect();
                return Err(format!(
                    "unknown process type \"{name}\" (known: {})",
                    known.join(", ")
                ));
            };
            if name == RELEASE {
                return Err("\"release\" runs once before the others; it cannot be scaled".into());
            }
            if count > MAX_COUNT {
                return Err(format!(
                    "count {count} for \"{name}\" is above the limit of {MAX_COUNT}"
                ));
            }
            self.port(t, count.max(1), name)?;
        }
        let (target, pulled) = self.with_dependencies(formation)?;
        // Every instance joins (or rejoins) the formation first, waiting, and
        // only then may any start: a dependent never starts before the
        // instances of what it depends on exist and are ready.
        let mut changes = Vec::new();
        let mut extra = Vec::new();
        for (name, &count) in &target {
            let Some(t) = self.types.iter().position(|t| t.name == *name) else {
                continue;
            };
            for number in 1..=count {
                let existing = self
                    .instances
                    .iter()
                    .position(|i| i.spec.type_index == t && i.spec.number == number);
                match existing {
                    Some(id) if self.instances[id].retired => self.rejoin(id),
                    // Still stopping from a scale down: it starts again once
                    // it has stopped.
                    Some(id) if self.instances[id].intent == Some(Intent::Retire) => {
                        actions.extend(self.restart(&[id], now));
                    }
                    Some(_) => {}
                    None => {
                        let name = format!("{name}.{number}");
                        let port = self.port(t, number, &name)?;
                        let spec = InstanceSpec {
                            type_index: t,
                            number,
                            name,
                            port,
                        };
                        self.add_instance(spec);
                    }
                }
            }
            extra.extend((0..self.instances.len()).filter(|&id| {
                let inst = &self.instances[id];
                inst.spec.type_index == t && inst.spec.number > count && !inst.retired
            }));
            changes.push((name.clone(), count));
        }
        // The highest-numbered stop; then what waits may start.
        actions.extend(self.stop(&extra, true, now));
        Ok(Scaled { changes, pulled })
    }

    /// The port of instance `number` of type `t`, as `pm start` computes it.
    fn port(&self, t: usize, number: u32, name: &str) -> Result<u16, String> {
        let position = self.types[t].position;
        ports::port_for(self.base_port, self.port_step, position, number, name)
            .map_err(|e| e.to_string())
    }

    /// `pm scale` up: a new instance joins the formation, waiting for what
    /// it depends on (see `start_waiting`).
    pub(super) fn add_instance(&mut self, spec: InstanceSpec) {
        self.instances.push(Instance::new(spec, State::Waiting));
    }

    /// An instance scaled away comes back into the formation, waiting as a
    /// new one would (nothing starts while pm stops).
    fn rejoin(&mut self, id: usize) {
        if self.phase == Phase::Running {
            let inst = &mut self.instances[id];
            inst.retired = false;
            inst.in_a_row = 0;
            inst.intent = None;
            inst.state = State::Waiting;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::*;
    use crate::model::ExitStatus;
    use crate::plan::InstanceSpec;

    fn web(number: u32, port: u16) -> InstanceSpec {
        InstanceSpec {
            type_index: 0,
            number,
            name: format!("web.{number}"),
            port,
        }
    }

    #[test]
    fn scaled_to_nothing_waits_for_a_scale_up() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 1)], None, t0);
        sup.stop(&[0], true, t0);
        sup.exited(0, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert_eq!(sup.phase(), Phase::Running);
        sup.add_instance(web(2, 5001));
        assert_eq!(spawns(&sup.tick(t0)), vec![1]);
        // Restarting a retired instance brings it back into the formation.
        assert_eq!(spawns(&sup.restart(&[0], t0)), vec![0]);
        assert!(!sup.instances()[0].retired);
    }

    fn formation(entries: &[(&str, u32)]) -> BTreeMap<String, u32> {
        entries.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    /// (name, port, state is running, retired) of every instance.
    fn shown(sup: &Supervisor) -> Vec<(String, u16, bool, bool)> {
        sup.instances()
            .iter()
            .map(|i| {
                let running = i.state.is_running() || i.state == State::Pending;
                (i.spec.name.clone(), i.spec.port, running, i.retired)
            })
            .collect()
    }

    #[test]
    fn refused_formations_change_nothing() {
        let t0 = Instant::now();
        let mut plan = plan(&[("web", 1), ("release", 0), ("worker", 1)], None);
        // Only the ports of instances a scale adds come from the base.
        plan.base_port = 65000;
        let mut sup = all_running(&plan, t0);
        let before = shown(&sup);
        let table: [(&[(&str, u32)], &str); 6] = [
            (&[], "empty formation (expected NAME=COUNT...)"),
            (
                &[("nope", 1)],
                "unknown process type \"nope\" (known: web, release, worker)",
            ),
            (
                &[("release", 1)],
                "\"release\" runs once before the others; it cannot be scaled",
            ),
            (
                &[("web", 10_001)],
                "count 10001 for \"web\" is above the limit of 10000",
            ),
            // worker's block starts at 65200: 336 instances reach 65535.
            (
                &[("worker", 337)],
                "port 65536 for \"worker\" is above 65535",
            ),
            (
                &[("web", 2), ("nope", 0)],
                "unknown process type \"nope\" (known: web, release, worker)",
            ),
        ];
        for (i, (asked, error)) in table.into_iter().enumerate() {
            let (actions, answer) = sup.scale(&formation(asked), t0);
            assert_eq!(answer, Err(error.to_string()), "row {i}");
            assert!(actions.is_empty(), "row {i}: {actions:?}");
            assert_eq!(shown(&sup), before, "row {i}");
        }
        let (_, answer) = sup.scale(&formation(&[("worker", 336)]), t0);
        assert!(answer.is_ok(), "{answer:?}");
    }

    #[test]
    fn up_adds_the_next_numbers_down_retires_the_highest_back_up_revives() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 1), ("worker", 2)], None, t0);
        let (a, answer) = sup.scale(&formation(&[("web", 3), ("worker", 1)]), t0);
        assert_eq!(
            answer,
            Ok(Scaled {
                changes: vec![("web".into(), 3), ("worker".into(), 1)],
                pulled: Vec::new()
            })
        );
        assert_eq!(spawns(&a), [3, 4]);
        assert_eq!(signals(&a), [(2, Signal::SIGTERM)]);
        for id in [3, 4] {
            sup.spawned(id, 200 + id as i32, t0);
        }
        sup.exited(2, ExitStatus::Signal(Signal::SIGTERM), t0);
        let row = |name: &str, port, running, retired| (name.to_string(), port, running, retired);
        assert_eq!(
            shown(&sup),
            [
                row("web.1", 5000, true, false),
                row("worker.1", 5100, true, false),
                row("worker.2", 5101, false, true),
                row("web.2", 5001, true, false),
                row("web.3", 5002, true, false),
            ]
        );
        // Down while one is still stopping, then up again: the same
        // instances come back, and nothing new is added.
        let (a, _) = sup.scale(&formation(&[("web", 1)]), t0);
        assert_eq!(signals(&a), [(3, Signal::SIGTERM), (4, Signal::SIGTERM)]);
        sup.exited(4, ExitStatus::Signal(Signal::SIGTERM), t0);
        let (a, _) = sup.scale(&formation(&[("web", 3), ("worker", 2)]), t0);
        assert_eq!(spawns(&a), [2, 4], "worker.2 and web.3 start again");
        assert_eq!(sup.instances().len(), 5);
        assert_eq!(sup.instances()[3].intent, Some(Intent::Restart));
        let a = sup.exited(3, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert_eq!(spawns(&a), [3], "web.2 starts again once it has stopped");
        assert!(sup.instances().iter().all(|i| !i.retired));
    }

    #[test]
    fn a_scaled_type_brings_its_dependencies() {
        let t0 = Instant::now();
        let plan = plan_deps(
            &[("web", 1), ("api", 0), ("db", 0)],
            &[("api", &["db"])],
            &[],
        );
        let mut sup = all_running(&plan, t0);
        let (a, answer) = sup.scale(&formation(&[("api", 2)]), t0);
        assert_eq!(
            answer,
            Ok(Scaled {
                changes: vec![("api".into(), 2), ("db".into(), 1)],
                pulled: vec!["db".into()]
            })
        );
        assert_eq!(spawns(&a), [3], "db.1 first; api waits for it");
        assert_eq!(sup.instances()[3].spec.name, "db.1");
        assert_eq!(sup.instances()[3].spec.port, 5200);
        sup.spawned(3, 300, t0);
        assert_eq!(spawns(&sup.tick(t0 + SETTLE)), [1, 2]);
    }

    #[test]
    fn a_dependent_scaled_back_up_waits_for_its_dependency_again() {
        let t0 = Instant::now();
        let plan = plan_deps(&[("db", 1), ("web", 1)], &[("web", &["db"])], &[]);
        let mut sup = all_running(&plan, t0);
        let (_, answer) = sup.scale(&formation(&[("web", 0), ("db", 0)]), t0);
        assert!(answer.is_ok(), "{answer:?}");
        sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0);
        sup.exited(0, ExitStatus::Signal(Signal::SIGTERM), t0);
        assert!(sup.instances().iter().all(|i| i.retired));
        let (a, answer) = sup.scale(&formation(&[("web", 1)]), t0);
        assert_eq!(answer.map(|s| s.pulled), Ok(vec!["db".to_string()]));
        assert_eq!(spawns(&a), [0], "db.1 first; web waits for it");
        sup.spawned(0, 300, t0);
        assert_eq!(spawns(&sup.tick(t0 + SETTLE)), [1]);
    }
}
