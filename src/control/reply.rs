//! The replies of a running `pm start`, built from the supervisor's state
//! and answers: the rows of `pm ps` and the messages of `pm restart`, `pm
//! stop`, `pm scale` and `pm wait`. The wording is part of the contract (docs/control.md).
//!
//! It only reads: what a request changes is the supervisor's to decide and
//! the runtime's to carry out.

use std::time::Instant;

use super::protocol::{InstanceInfo, Reply};
use crate::supervisor::{Restarting, Scaled, State, Stop, Stopping, Supervisor};

/// `pm ps`: every instance of the formation, in Procfile order, then by
/// number, whatever order scaling added them in.
pub fn ps(sup: &Supervisor, now: Instant) -> Reply {
    let instances = sup.instances();
    let mut ids: Vec<usize> = (0..instances.len())
        .filter(|&id| !instances[id].retired)
        .collect();
    ids.sort_by_key(|&id| (instances[id].spec.type_index, instances[id].spec.number));
    let rows = ids
        .into_iter()
        .map(|id| {
            let inst = &instances[id];
            let (pid, uptime, state) = match inst.state {
                State::Running { pid, since, stop } => (
                    Some(pid),
                    Some(now.saturating_duration_since(since).as_secs_f64()),
                    if stop != Stop::No {
                        "stopping"
                    } else if sup.health(id) == Some("ready") {
                        "ready"
                    } else {
                        "running"
                    },
                ),
                State::Waiting | State::Pending => (None, None, "starting"),
                State::Backoff { .. } => (None, None, "backing-off"),
                State::Exited(_) => (None, None, "exited"),
                State::Failed(_) => (None, None, "failed"),
                State::Stopped => (None, None, "stopped"),
            };
            InstanceInfo {
                name: inst.spec.name.clone(),
                type_name: sup.type_name(inst.spec.type_index).to_string(),
                index: inst.spec.number,
                pid,
                state: state.to_string(),
                restarts: inst.restarts,
                uptime_s: uptime.map(|u| (u * 10.0).round() / 10.0),
                port: inst.spec.port,
                health: sup.health(id).map(str::to_string),
            }
        })
        .collect();
    Reply::instances(rows)
}

/// `pm restart`.
pub fn restarting(answer: Result<Restarting, String>) -> Reply {
    match answer {
        Ok(Restarting { names, rolling }) => {
            let how = if rolling {
                " (balanced instances one at a time, each once the one before is ready)"
            } else {
                ""
            };
            Reply::message(format!("restarting {}{how}", names.join(", ")))
        }
        Err(e) => Reply::error(e),
    }
}

/// `pm stop`.
pub fn stopping(answer: Result<Stopping, String>) -> Reply {
    match answer {
        Ok(Stopping { names }) => Reply::message(format!("stopping {}", names.join(", "))),
        Err(e) => Reply::error(e),
    }
}

/// `pm wait`, once the targets are ready.
pub fn ready(targets: &[String]) -> Reply {
    if targets.is_empty() {
        Reply::message("every instance is ready")
    } else {
        Reply::message(format!("ready: {}", targets.join(", ")))
    }
}

/// `pm scale`.
pub fn scaled(answer: Result<Scaled, String>) -> Reply {
    match answer {
        Ok(Scaled { changes, pulled }) => {
            let changes: Vec<String> = changes
                .iter()
                .map(|(name, count)| format!("{name}={count}"))
                .collect();
            let also = if pulled.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} started too: what the scaled types depend on)",
                    pulled.join(", ")
                )
            };
            Reply::message(format!("scaled to {}{also}", changes.join(", ")))
        }
        Err(e) => Reply::error(e),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::*;
    use crate::model::ExitStatus;
    use crate::supervisor::testing::{plan, plan_deps, spawns};

    /// (name, type, index, pid, state, restarts, uptime, port, health)
    type Row = (
        String,
        String,
        u32,
        Option<i32>,
        String,
        u32,
        Option<f64>,
        u16,
        Option<String>,
    );

    fn rows(sup: &Supervisor, now: Instant) -> Vec<Row> {
        ps(sup, now)
            .instances
            .unwrap()
            .into_iter()
            .map(|i| {
                (
                    i.name,
                    i.type_name,
                    i.index,
                    i.pid,
                    i.state,
                    i.restarts,
                    i.uptime_s,
                    i.port,
                    i.health,
                )
            })
            .collect()
    }

    #[test]
    fn ps_rows_say_each_state() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let plan = plan_deps(
            &[("web", 2), ("db", 1), ("worker", 1), ("clock", 1)],
            &[("worker", &["db"])],
            &["web"],
        );
        let mut sup = Supervisor::new(&plan);
        let a = sup.start(t0);
        assert_eq!(spawns(&a), [0, 1, 2, 4], "worker waits for db");
        for id in [0, 1, 2, 4] {
            sup.spawned(id, 100 + id as i32, t0);
        }
        sup.ready_changed(0, true, String::new(), t0);
        sup.stop(&[1], false, t0 + ms(100));
        sup.exited(4, ExitStatus::Code(1), t0 + ms(200));
        let row = |name: &str,
                   ty: &str,
                   index,
                   pid,
                   state: &str,
                   restarts,
                   uptime,
                   port,
                   health: Option<&str>| {
            (
                name.to_string(),
                ty.to_string(),
                index,
                pid,
                state.to_string(),
                restarts,
                uptime,
                port,
                health.map(str::to_string),
            )
        };
        assert_eq!(
            rows(&sup, t0 + ms(1260)),
            [
                row(
                    "web.1",
                    "web",
                    1,
                    Some(100),
                    "ready",
                    0,
                    Some(1.3),
                    5000,
                    Some("ready")
                ),
                row(
                    "web.2",
                    "web",
                    2,
                    Some(101),
                    "stopping",
                    0,
                    Some(1.3),
                    5001,
                    Some("unready")
                ),
                row(
                    "db.1",
                    "db",
                    1,
                    Some(102),
                    "running",
                    0,
                    Some(1.3),
                    5100,
                    None
                ),
                row(
                    "worker.1", "worker", 1, None, "starting", 0, None, 5200, None
                ),
                row(
                    "clock.1",
                    "clock",
                    1,
                    None,
                    "backing-off",
                    1,
                    None,
                    5300,
                    None
                ),
            ]
        );
        sup.exited(1, ExitStatus::Signal(Signal::SIGTERM), t0 + ms(300));
        let states: Vec<String> = rows(&sup, t0).into_iter().map(|r| r.4).collect();
        assert_eq!(
            states,
            ["ready", "stopped", "running", "starting", "backing-off"]
        );
    }

    #[test]
    fn ps_leaves_out_what_was_scaled_away_and_sorts_what_was_added() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(&plan(&[("web", 1), ("worker", 2)], None));
        for id in spawns(&sup.start(t0)) {
            sup.spawned(id, 100 + id as i32, t0);
        }
        let formation = [("web".to_string(), 2), ("worker".to_string(), 1)].into();
        let (a, _) = sup.scale(&formation, t0);
        for id in spawns(&a) {
            sup.spawned(id, 200 + id as i32, t0);
        }
        sup.exited(2, ExitStatus::Signal(Signal::SIGTERM), t0);
        let names: Vec<String> = rows(&sup, t0).into_iter().map(|r| r.0).collect();
        assert_eq!(names, ["web.1", "web.2", "worker.1"]);
        let mut exited = Supervisor::new(&plan(&[("job", 1)], None));
        exited.start(t0);
        exited.spawned(0, 100, t0);
        exited.exited(0, ExitStatus::Code(0), t0);
        assert_eq!(rows(&exited, t0)[0].4, "exited");
    }

    #[test]
    fn messages() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let text = |reply: Reply| reply.message.or(reply.error).unwrap();
        let table = [
            (
                restarting(Ok(Restarting {
                    names: names(&["web.1", "worker.1"]),
                    rolling: false,
                })),
                "restarting web.1, worker.1",
            ),
            (
                restarting(Ok(Restarting {
                    names: names(&["web.1"]),
                    rolling: true,
                })),
                "restarting web.1 (balanced instances one at a time, each once the one before is ready)",
            ),
            (
                stopping(Ok(Stopping {
                    names: names(&["web.2"]),
                })),
                "stopping web.2",
            ),
            (
                scaled(Ok(Scaled {
                    changes: vec![("web".into(), 3), ("worker".into(), 0)],
                    pulled: Vec::new(),
                })),
                "scaled to web=3, worker=0",
            ),
            (
                scaled(Ok(Scaled {
                    changes: vec![("db".into(), 1), ("web".into(), 1)],
                    pulled: names(&["db"]),
                })),
                "scaled to db=1, web=1 (db started too: what the scaled types depend on)",
            ),
            (stopping(Err("nope".into())), "nope"),
        ];
        for (reply, want) in table {
            assert_eq!(text(reply), want);
        }
        assert!(!scaled(Err("x".into())).ok);
        assert!(
            restarting(Ok(Restarting {
                names: Vec::new(),
                rolling: false
            }))
            .ok
        );
    }
}
