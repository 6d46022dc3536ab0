//! The formation: how many instances of each process type run. Parses
//! foreman's `-m web=2,worker=3,all=1` and positional `web=2 worker`. Pure.

use std::fmt;

/// The largest count pm accepts for one type; more is surely a typo.
pub const MAX_COUNT: u32 = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Formation {
    /// Named counts, in the order given; a name given twice keeps its last count.
    pub entries: Vec<(String, u32)>,
    /// `all=N`: the count of every type not named.
    pub all: Option<u32>,
}

/// A formation that cannot be used; the message names the culprit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationError(pub String);

impl fmt::Display for FormationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormationError {}

fn err(message: String) -> FormationError {
    FormationError(message)
}

impl Formation {
    /// Parses `web=2,worker=3,all=1` (spaces around items are fine).
    pub fn parse_spec(spec: &str) -> Result<Formation, FormationError> {
        let mut formation = Formation::default();
        if spec.trim().is_empty() {
            return Err(err(
                "empty formation (expected NAME=COUNT[,NAME=COUNT...])".into()
            ));
        }
        for item in spec.split(',') {
            formation.add(item.trim(), true)?;
        }
        Ok(formation)
    }

    /// Parses positional arguments: `web=2`, `worker` (meaning 1), or a comma list.
    pub fn parse_args(args: &[String]) -> Result<Formation, FormationError> {
        let mut formation = Formation::default();
        for arg in args {
            for item in arg.split(',') {
                formation.add(item.trim(), false)?;
            }
        }
        Ok(formation)
    }

    fn add(&mut self, item: &str, count_required: bool) -> Result<(), FormationError> {
        if item.is_empty() {
            return Err(err(
                "empty item in formation (expected NAME=COUNT[,NAME=COUNT...])".into(),
            ));
        }
        let (name, count) = match item.split_once('=') {
            Some((name, count)) => (name.trim(), Some(count.trim())),
            None if count_required => {
                return Err(err(format!(
                    "invalid formation item \"{item}\" (expected NAME=COUNT)"
                )));
            }
            None => (item, None),
        };
        if name.is_empty() {
            return Err(err(format!(
                "missing process type name in formation item \"{item}\""
            )));
        }
        let count = match count {
            None => 1,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n <= MAX_COUNT => n,
                Ok(n) => {
                    return Err(err(format!(
                        "count {n} for \"{name}\" in formation is above the limit of {MAX_COUNT}"
                    )));
                }
                Err(_) => {
                    return Err(err(format!(
                        "invalid count \"{text}\" for \"{name}\" in formation (expected a whole number from 0)"
                    )));
                }
            },
        };
        if name == "all" {
            self.all = Some(count);
        } else {
            self.entries.retain(|(n, _)| n != name);
            self.entries.push((name.to_string(), count));
        }
        Ok(())
    }

    /// This formation with `later` laid over it: its names and `all` win.
    pub fn merge(mut self, later: Formation) -> Formation {
        for (name, count) in later.entries {
            self.entries.retain(|(n, _)| *n != name);
            self.entries.push((name, count));
        }
        if later.all.is_some() {
            self.all = later.all;
        }
        self
    }

    /// Nothing was given: every type runs once.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.all.is_none()
    }

    /// The count of each type in `names` (Procfile order). An empty formation
    /// runs every type once; otherwise only named types run, plus `all=N`.
    pub fn resolve(&self, names: &[&str]) -> Result<Vec<u32>, FormationError> {
        if let Some((unknown, _)) = self
            .entries
            .iter()
            .find(|(n, _)| !names.contains(&n.as_str()))
        {
            return Err(err(format!(
                "unknown process type \"{unknown}\" in formation (known: {})",
                names.join(", ")
            )));
        }
        if self.is_empty() {
            return Ok(vec![1; names.len()]);
        }
        Ok(names
            .iter()
            .map(|name| {
                self.entries
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, c)| *c)
                    .or(self.all)
                    .unwrap_or(0)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &["web", "worker", "clock"];

    fn spec(s: &str) -> Result<Vec<u32>, String> {
        Formation::parse_spec(s)
            .and_then(|f| f.resolve(NAMES))
            .map_err(|e| e.to_string())
    }

    fn args(a: &[&str]) -> Result<Vec<u32>, String> {
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        Formation::parse_args(&a)
            .and_then(|f| f.resolve(NAMES))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn resolution() {
        assert_eq!(args(&[]), Ok(vec![1, 1, 1]));
        assert_eq!(spec("web=2"), Ok(vec![2, 0, 0]));
        assert_eq!(spec("web=2, worker=3"), Ok(vec![2, 3, 0]));
        assert_eq!(spec("all=2,web=1"), Ok(vec![1, 2, 2]));
        assert_eq!(spec("web=1,all=2"), Ok(vec![1, 2, 2]));
        assert_eq!(spec("all=0"), Ok(vec![0, 0, 0]));
        assert_eq!(spec("web=0,all=1"), Ok(vec![0, 1, 1]));
        assert_eq!(spec("web=1,web=3"), Ok(vec![3, 0, 0]));
        assert_eq!(args(&["web=2", "worker"]), Ok(vec![2, 1, 0]));
        assert_eq!(args(&["web=2,clock"]), Ok(vec![2, 0, 1]));
    }

    #[test]
    fn merge_later_wins() {
        let a = Formation::parse_spec("web=2,worker=2,all=1").unwrap();
        let b = Formation::parse_args(&["worker=5".into()]).unwrap();
        assert_eq!(a.merge(b).resolve(NAMES), Ok(vec![2, 5, 1]));
    }

    #[test]
    fn errors() {
        assert_eq!(
            spec("wbe=2"),
            Err("unknown process type \"wbe\" in formation (known: web, worker, clock)".into())
        );
        assert_eq!(
            spec("web=x"),
            Err(
                "invalid count \"x\" for \"web\" in formation (expected a whole number from 0)"
                    .into()
            )
        );
        assert_eq!(
            spec("web=-1"),
            Err(
                "invalid count \"-1\" for \"web\" in formation (expected a whole number from 0)"
                    .into()
            )
        );
        assert_eq!(
            spec("web=5000"),
            Err("count 5000 for \"web\" in formation is above the limit of 1000".into())
        );
        assert_eq!(
            spec("web=2,"),
            Err("empty item in formation (expected NAME=COUNT[,NAME=COUNT...])".into())
        );
        assert_eq!(
            spec(""),
            Err("empty formation (expected NAME=COUNT[,NAME=COUNT...])".into())
        );
        assert_eq!(
            spec("web"),
            Err("invalid formation item \"web\" (expected NAME=COUNT)".into())
        );
        assert_eq!(
            spec("=2"),
            Err("missing process type name in formation item \"=2\"".into())
        );
        assert_eq!(
            args(&["web=2", "nope"]),
            Err("unknown process type \"nope\" in formation (known: web, worker, clock)".into())
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            if let Ok(f) = Formation::parse_spec(&s) {
                let _ = f.resolve(NAMES);
            }
            if let Ok(f) = Formation::parse_args(&[s]) {
                let _ = f.resolve(NAMES);
            }
        }
    }
}
