//! `pm logs` and `pm attach`: which sources a `pm logs` target names, and
//! which one instance a `pm attach` target names.
//!
//! Pure: answers are names; the scrollback keeps the lines, the runtime
//! attaches.

use super::Supervisor;

/// What `pm logs TARGET...` reads: instances by name, and every instance of
/// the types named. (`system`, pm's own lines, is the runtime's to add.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTargets {
    pub names: Vec<String>,
    pub types: Vec<String>,
}

impl Supervisor {
    /// `pm logs TARGET...`: a type (every instance it ever had, and any it
    /// gets later) or an instance (scaled away or not: its lines are kept).
    pub fn log_targets(&self, targets: &[String]) -> Result<LogTargets, String> {
        let mut out = LogTargets {
            names: Vec::new(),
            types: Vec::new(),
        };
        for target in targets {
            if self.types.iter().any(|t| t.name == *target) {
                out.types.push(target.clone());
            } else if self.instances.iter().any(|i| i.spec.name == *target) {
                out.names.push(target.clone());
            } else {
                return Err(format!(
                    "no process type or instance \"{}\" here (process types: {}; or \"system\" for pm's own lines)",
                    crate::config::one_line(target),
                    self.type_names().join(", ")
                ));
            }
        }
        Ok(out)
    }

    /// `pm attach TARGET`: an instance (`web.1`), or a type that has one
    /// instance (`web`). Instances scaled away are not named.
    pub fn attach_target(&self, target: &str) -> Result<usize, String> {
        let live = |id: &usize| !self.instances[*id].retired;
        if let Some(id) = (0..self.instances.len())
            .filter(live)
            .find(|&id| self.instances[id].spec.name == target)
        {
            return Ok(id);
        }
        let of_type: Vec<usize> = (0..self.instances.len())
            .filter(live)
            .filter(|&id| self.type_of(id).name == target)
            .collect();
        match of_type[..] {
            [id] => Ok(id),
            [] => Err(format!(
                "no process or instance \"{}\" is running here (process types: {})",
                crate::config::one_line(target),
                self.type_names().join(", ")
            )),
            _ => {
                let names: Vec<String> = of_type.iter().map(|&id| self.name(id)).collect();
                Err(format!(
                    "\"{target}\" has {} instances: attach to one of them ({})",
                    names.len(),
                    names.join(", ")
                ))
            }
        }
    }

    fn type_names(&self) -> Vec<&str> {
        self.types.iter().map(|t| t.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::testing::*;
    use super::*;
    use crate::model::ExitStatus;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn log_targets_are_types_instances_or_system() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 3), ("worker", 1)], None, t0);
        // Scaled away, web.3's lines are still there to read.
        sup.stop(&[2], true, t0);
        sup.exited(2, ExitStatus::Code(0), t0);
        assert_eq!(
            sup.log_targets(&strings(&["web", "worker.1", "web.3"])),
            Ok(LogTargets {
                names: strings(&["worker.1", "web.3"]),
                types: strings(&["web"]),
            })
        );
        assert_eq!(
            sup.log_targets(&strings(&["wbe"])),
            Err("no process type or instance \"wbe\" here (process types: web, worker; or \"system\" for pm's own lines)".into())
        );
        assert_eq!(
            sup.log_targets(&[]),
            Ok(LogTargets {
                names: Vec::new(),
                types: Vec::new()
            })
        );
    }

    #[test]
    fn attach_names_one_instance() {
        let t0 = Instant::now();
        let mut sup = started(&[("web", 2), ("worker", 1), ("clock", 2)], None, t0);
        sup.stop(&[4], true, t0);
        sup.exited(4, ExitStatus::Code(0), t0);
        assert_eq!(sup.attach_target("web.2"), Ok(1));
        assert_eq!(sup.attach_target("worker"), Ok(2));
        // clock.2 was scaled away: clock has one instance left.
        assert_eq!(sup.attach_target("clock"), Ok(3));
        assert_eq!(
            sup.attach_target("web"),
            Err("\"web\" has 2 instances: attach to one of them (web.1, web.2)".into())
        );
        assert!(sup.attach_target("clock.2").is_err());
        assert_eq!(
            sup.attach_target("db"),
            Err(
                "no process or instance \"db\" is running here (process types: web, worker, clock)"
                    .into()
            )
        );
    }
}
