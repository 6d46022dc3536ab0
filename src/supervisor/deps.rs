//! Dependencies between process types: an instance waits until every type
//! it depends on is ready (by its check, or by running for [`SETTLE`]), and
//! a `pm scale` brings along what the scaled types need.
//!
//! The reverse order, dependents stopping first, is the shutdown's
//! (`shutdown.rs`). Pure: `now` comes in, actions go out.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Action, Event, Phase, SETTLE, State, Stop, Supervisor};

impl Supervisor {
    /// Says who waits for whom, once per type, before anything starts.
    pub(super) fn say_who_waits(&mut self) {
        for t in 0..self.types.len() {
            let has = |t: usize| self.instances.iter().any(|i| i.spec.type_index == t);
            let on: Vec<String> = self.types[t]
                .deps
                .iter()
                .filter(|&&d| has(d))
                .map(|&d| self.types[d].name.clone())
                .collect();
            if has(t) && !on.is_empty() {
                let name = self.types[t].name.clone();
                self.say(Event::Waiting { name, on });
            }
        }
    }

    /// Whether an instance counts as ready for the types that depend on it.
    pub(super) fn is_ready(&self, id: usize, now: Instant) -> bool {
        let inst = &self.instances[id];
        match inst.state {
            State::Running {
                since,
                stop: Stop::No,
                ..
            } => {
                if self.type_of(id).checked {
                    inst.ready
                } else {
                    now.saturating_duration_since(since) >= SETTLE
                }
            }
            State::Exited(status) => status.success(),
            _ => false,
        }
    }

    /// Every instance of type `t` in the formation is ready (or completed).
    fn type_ready(&self, t: usize, now: Instant) -> bool {
        (0..self.instances.len())
            .filter(|&id| self.instances[id].spec.type_index == t && !self.instances[id].retired)
            .all(|id| self.is_ready(id, now))
    }

    fn may_start(&self, t: usize, now: Instant) -> bool {
        let phase_allows = match self.phase {
            Phase::Release => self.types[t].before_release,
            Phase::Running => true,
            Phase::Stopping { .. } | Phase::Killing { .. } => false,
        };
        phase_allows && self.types[t].deps.iter().all(|&d| self.type_ready(d, now))
    }

    /// Spawns every waiting instance whose dependencies are now ready.
    pub(super) fn start_waiting(&mut self, now: Instant) {
        // Decide first, then act: an instance spawned now is not ready yet,
        // so it cannot let anything else start in the same pass.
        let ready_types: Vec<bool> = (0..self.types.len())
            .map(|t| self.may_start(t, now))
            .collect();
        for id in 0..self.instances.len() {
            let inst = &self.instances[id];
            if inst.state == State::Waiting && ready_types[inst.spec.type_index] {
                self.instances[id].state = State::Pending;
                self.actions.push(Action::Spawn(id));
            }
        }
    }

    /// How many instances of type `t` are in the formation.
    pub(super) fn active_count(&self, t: usize) -> usize {
        self.instances
            .iter()
            .filter(|i| i.spec.type_index == t && i.active())
            .count()
    }

    /// The formation of a `pm scale`, with what it needs: a type that will
    /// run starts what it depends on when none of it runs (as `pm start`
    /// does), and a dependency cannot go to 0 under a type that runs.
    /// Returns the whole formation and the types it pulled in.
    pub(super) fn with_dependencies(
        &self,
        formation: &BTreeMap<String, u32>,
    ) -> Result<(BTreeMap<String, u32>, Vec<String>), String> {
        let index = |name: &str| self.types.iter().position(|t| t.name == name);
        let mut target = formation.clone();
        let mut pulled = Vec::new();
        let mut stack: Vec<String> = target
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, _)| name.clone())
            .collect();
        while let Some(name) = stack.pop() {
            let Some(t) = index(&name) else { continue };
            for &d in &self.types[t].deps {
                let dep = &self.types[d].name;
                match target.get(dep) {
                    Some(0) => {
                        return Err(format!(
                            "\"{name}\" depends on \"{dep}\", which cannot be scaled to 0 while {name} runs"
                        ));
                    }
                    Some(_) => {}
                    None if self.active_count(d) == 0 => {
                        target.insert(dep.clone(), 1);
                        pulled.push(dep.clone());
                        stack.push(dep.clone());
                    }
                    None => {}
                }
            }
        }
        for (name, _) in target.iter().filter(|(_, n)| **n == 0) {
            let Some(gone) = index(name) else { continue };
            for (u, rules) in self.types.iter().enumerate() {
                let runs = target
                    .get(&rules.name)
                    .map_or(self.active_count(u) > 0, |&n| n > 0);
                if runs && rules.deps.contains(&gone) {
                    return Err(format!(
                        "\"{}\" depends on \"{name}\", which cannot be scaled to 0 while {} runs",
                        rules.name, rules.name
                    ));
                }
            }
        }
        Ok((target, pulled))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn dependents_wait_for_readiness_or_a_settled_start() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // db (no check) <- worker; web waits for worker too.
        let plan = plan_deps(
            &[("web", 1), ("db", 1), ("worker", 2)],
            &[("worker", &["db"]), ("web", &["worker", "db"])],
            &[],
        );
        let mut sup = Supervisor::new(&plan);
        let a = sup.start(t0);
        assert_eq!(spawns(&a), vec![1], "only db starts");
        assert_eq!(
            said(&a),
            [
                "web waits for worker, db to be ready",
                "worker waits for db to be ready"
            ]
        );
        sup.spawned(1, 100, t0);
        // Without a check, db is ready after running for SETTLE.
        assert_eq!(sup.next_deadline(t0), Some(t0 + SETTLE));
        assert!(spawns(&sup.tick(t0 + ms(499))).is_empty());
        assert_eq!(spawns(&sup.tick(t0 + SETTLE)), vec![2, 3]);
        sup.spawned(2, 101, t0 + SETTLE);
        sup.spawned(3, 102, t0 + SETTLE);
        assert!(
            spawns(&sup.tick(t0 + ms(900))).is_empty(),
            "worker settling"
        );
        // One worker exits 0 (done, which counts) and the other settles.
        sup.exited(2, ExitStatus::Code(0), t0 + ms(950));
        assert_eq!(spawns(&sup.tick(t0 + ms(1000))), vec![0]);
    }

    #[test]
    fn a_checked_dependency_must_pass_its_check() {
        let t0 = Instant::now();
        let mut plan = plan_deps(&[("db", 1), ("web", 1)], &[("web", &["db"])], &[]);
        plan.types[0].ready = Some(crate::config::pm_toml::Check::tcp());
        let mut sup = Supervisor::new(&plan);
        assert_eq!(spawns(&sup.start(t0)), vec![0]);
        sup.spawned(0, 100, t0);
        assert!(spawns(&sup.tick(t0 + Duration::from_secs(10))).is_empty());
        assert_eq!(sup.health(0), Some("unready"));
        let a = sup.ready_changed(0, true, String::new(), t0 + Duration::from_secs(11));
        assert_eq!(said(&a)[0], "db.1 is ready");
        assert_eq!(spawns(&a), vec![1]);
        assert_eq!(sup.health(0), Some("ready"));
        assert_eq!(sup.health(1), None, "web has no check");
    }

    #[test]
    fn release_waits_for_its_dependencies_and_the_rest_for_release() {
        let t0 = Instant::now();
        let plan = plan_deps(
            &[("release", 1), ("db", 1), ("web", 1)],
            &[("release", &["db"])],
            &[],
        );
        let mut sup = Supervisor::new(&plan);
        assert_eq!(spawns(&sup.start(t0)), vec![1], "db first");
        sup.spawned(1, 100, t0);
        assert_eq!(spawns(&sup.tick(t0 + SETTLE)), vec![0], "then release");
        sup.spawned(0, 101, t0 + SETTLE);
        assert!(spawns(&sup.tick(t0 + Duration::from_secs(2))).is_empty());
        let a = sup.exited(0, ExitStatus::Code(0), t0 + Duration::from_secs(2));
        assert_eq!(spawns(&a), vec![2], "then the others");
    }

    fn formation(entries: &[(&str, u32)]) -> BTreeMap<String, u32> {
        entries.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn a_scale_brings_along_what_it_needs_and_keeps_what_runs() {
        // web -> api -> db; cache stands alone. web and api are not running.
        let plan = plan_deps(
            &[("web", 0), ("api", 0), ("db", 0), ("cache", 1)],
            &[("web", &["api"]), ("api", &["db"])],
            &[],
        );
        let sup = all_running(&plan, Instant::now());
        let ok = |pulled: &[&str], target: &[(&str, u32)]| {
            Ok((
                formation(target),
                pulled.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ))
        };
        let table: [(&[(&str, u32)], _); 6] = [
            (&[("cache", 3)], ok(&[], &[("cache", 3)])),
            (&[("db", 2)], ok(&[], &[("db", 2)])),
            (&[("api", 1)], ok(&["db"], &[("api", 1), ("db", 1)])),
            (
                &[("web", 2)],
                ok(&["api", "db"], &[("web", 2), ("api", 1), ("db", 1)]),
            ),
            // What the formation names is not pulled, whatever its count.
            (
                &[("web", 1), ("api", 2)],
                ok(&["db"], &[("web", 1), ("api", 2), ("db", 1)]),
            ),
            (
                &[("api", 1), ("db", 0)],
                Err("\"api\" depends on \"db\", which cannot be scaled to 0 while api runs".into()),
            ),
        ];
        for (i, (asked, want)) in table.into_iter().enumerate() {
            assert_eq!(sup.with_dependencies(&formation(asked)), want, "row {i}");
        }
    }

    #[test]
    fn a_dependency_cannot_go_to_zero_under_a_type_that_runs() {
        let t0 = Instant::now();
        let plan = plan_deps(&[("web", 1), ("db", 1)], &[("web", &["db"])], &[]);
        let mut sup = all_running(&plan, t0);
        let refused =
            Err("\"web\" depends on \"db\", which cannot be scaled to 0 while web runs".into());
        assert_eq!(sup.with_dependencies(&formation(&[("db", 0)])), refused);
        // With web going to 0 in the same scale, db may go too.
        assert_eq!(
            sup.with_dependencies(&formation(&[("db", 0), ("web", 0)])),
            Ok((formation(&[("db", 0), ("web", 0)]), Vec::new()))
        );
        // Once web is being retired it no longer holds db up.
        sup.stop(&[0], true, t0);
        assert_eq!(
            sup.with_dependencies(&formation(&[("db", 0)])),
            Ok((formation(&[("db", 0)]), Vec::new()))
        );
        // A type with a running dependency does not pull it again.
        assert_eq!(
            sup.with_dependencies(&formation(&[("web", 2)])),
            Ok((formation(&[("web", 2)]), Vec::new()))
        );
    }
}
