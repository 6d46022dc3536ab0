//! Formations: how many instances of each process type run.
//!
//! It owns the formation syntax (foreman's `-m web=2,worker=3,all=1`, the
//! positional `web=2 worker` arguments, pm.toml's `defaults.formation`) and
//! the rule that turns a formation into one count per Procfile type (SPEC §1).
//! It is pure: it must never read files, the environment or the clock.
//!
//! Rules:
//! - An empty formation runs every type once.
//! - A non-empty formation runs only the types it names, with their counts;
//!   `all=N` gives N to every type it does not name; without `all` an unnamed
//!   type gets 0. `NAME=0` excludes a type.
//! - An item is `NAME=N` or a bare `NAME` (meaning 1), in both the `-m` syntax
//!   and the positional arguments; blanks around items and around `=` are
//!   ignored. A count is decimal digits, at most [`MAX_COUNT`].
//! - Naming a type twice in one formation (one `-m` value, or one list of
//!   positional arguments) is an error, because one of the two counts would
//!   be silently ignored. Across sources, [`Formation::merge`] lets the later
//!   one win, which is how positional arguments refine `-m`.
//! - `all` is always the keyword, never a type name. A Procfile type literally
//!   named `all` therefore cannot be given its own count: it is one of the
//!   "unnamed" types and follows `all=N` (or gets 0 without it).

use thiserror::Error;

/// The largest count accepted for one type; anything above is almost
/// certainly a typo, and would start that many processes before anyone
/// noticed.
pub const MAX_COUNT: u32 = 10_000;

/// The keyword that sets the count of every type a formation does not name.
pub const ALL: &str = "all";

/// A formation as given by the user, before it meets a Procfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Formation {
    /// Named types and their counts, in the order given; each name once.
    pub entries: Vec<(String, u32)>,
    /// The count from `all=N`, for every type not in `entries`.
    pub all: Option<u32>,
}

/// A problem with a formation: one line, lowercase, names in double quotes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", super::one_line(.0))]
pub struct FormationError(pub String);

impl Formation {
    /// Parses foreman's `-m` syntax: `web=2,worker=3,all=1`.
    pub fn parse_spec(spec: &str) -> Result<Formation, FormationError> {
        if spec.trim().is_empty() {
            return Err(FormationError("empty formation".to_string()));
        }
        let mut formation = Formation::default();
        formation.add_list(spec)?;
        Ok(formation)
    }

    /// Parses positional arguments: each is `web=2`, `web` (meaning 1), or a
    /// comma-separated list of those.
    pub fn parse_args(args: &[String]) -> Result<Formation, FormationError> {
        let mut formation = Formation::default();
        for arg in args {
            if arg.trim().is_empty() {
                return Err(FormationError(
                    "empty process type argument in formation".to_string(),
                ));
            }
            formation.add_list(arg)?;
        }
        Ok(formation)
    }

    /// Combines two formations: `later`'s counts override this one's for the
    /// same name, and `later`'s `all` (when it has one) replaces this one's.
    pub fn merge(mut self, later: Formation) -> Formation {
        for (name, count) in later.entries {
            match self.entries.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = count,
                None => self.entries.push((name, count)),
            }
        }
        self.all = later.all.or(self.all);
        self
    }

    /// Whether nothing was given (which means: every type once).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.all.is_none()
    }

    /// The count of each Procfile type, in the order of `names`. Fails on a
    /// name the Procfile does not define.
    pub fn resolve(&self, names: &[&str]) -> Result<Vec<u32>, FormationError> {
        if let Some((unknown, _)) = self
            .entries
            .iter()
            .find(|(name, _)| !names.contains(&name.as_str()))
        {
            let known = if names.is_empty() {
                "the Procfile defines none".to_string()
            } else {
                format!("known: {}", names.join(", "))
            };
            return Err(FormationError(format!(
                "unknown process type \"{unknown}\" in formation ({known})"
            )));
        }
        if self.is_empty() {
            return Ok(vec![1; names.len()]);
        }
        let default = self.all.unwrap_or(0);
        Ok(names
            .iter()
            .map(|name| {
                self.entries
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(default, |(_, count)| *count)
            })
            .collect())
    }

    /// Adds the items of one comma-separated list.
    fn add_list(&mut self, list: &str) -> Result<(), FormationError> {
        for item in list.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(FormationError(format!(
                    "empty item in formation {}",
                    super::procfile::echo(list)
                )));
            }
            let (name, count) = parse_item(item)?;
            if name == ALL {
                if self.all.is_some() {
                    return Err(FormationError(
                        "\"all\" given twice in formation".to_string(),
                    ));
                }
                self.all = Some(count);
            } else if self.entries.iter().any(|(n, _)| n == name) {
                return Err(FormationError(format!(
                    "process type \"{name}\" given twice in formation"
                )));
            } else {
                self.entries.push((name.to_string(), count));
            }
        }
        Ok(())
    }
}

/// Parses one trimmed, non-empty item: `NAME=N` or `NAME`.
fn parse_item(item: &str) -> Result<(&str, u32), FormationError> {
    let (name, count) = match item.split_once('=') {
        Some((name, count)) => (name.trim(), Some(count.trim())),
        None => (item, None),
    };
    if name.is_empty() {
        return Err(FormationError(format!(
            "missing process type name in formation item {}",
            super::procfile::echo(item)
        )));
    }
    let Some(count) = count else {
        return Ok((name, 1));
    };
    Ok((name, parse_count(name, count)?))
}

fn parse_count(name: &str, count: &str) -> Result<u32, FormationError> {
    let shown = super::procfile::echo(count);
    if count.is_empty() {
        return Err(FormationError(format!(
            "missing count for \"{name}\" in formation"
        )));
    }
    if let Some(digits) = count.strip_prefix('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(FormationError(format!(
            "negative count {shown} for \"{name}\" in formation"
        )));
    }
    // Only plain decimal digits: `u32::from_str` would also take `+2`, which
    // no formation syntax documents.
    if !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FormationError(format!(
            "invalid count {shown} for \"{name}\" in formation"
        )));
    }
    match count.parse::<u32>() {
        Ok(n) if n <= MAX_COUNT => Ok(n),
        // All digits, so the only way to fail is to be too large for u32.
        _ => Err(FormationError(format!(
            "count {shown} for \"{name}\" in formation is too large (at most {MAX_COUNT})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(s: &str) -> Formation {
        match Formation::parse_spec(s) {
            Ok(f) => f,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn spec_err(s: &str) -> String {
        match Formation::parse_spec(s) {
            Ok(f) => panic!("{s:?}: expected an error, got {f:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn args(a: &[&str]) -> Result<Formation, String> {
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        Formation::parse_args(&a).map_err(|e| e.to_string())
    }

    fn f(entries: &[(&str, u32)], all: Option<u32>) -> Formation {
        Formation {
            entries: entries.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            all,
        }
    }

    const NAMES: &[&str] = &["web", "worker", "clock"];

    #[test]
    fn parse_spec_foreman_syntax() {
        assert_eq!(
            spec("web=2,worker=3,all=1"),
            f(&[("web", 2), ("worker", 3)], Some(1))
        );
    }

    #[test]
    fn parse_spec_tolerates_blanks_and_bare_names() {
        assert_eq!(
            spec(" web = 2 , worker ,clock=0 "),
            f(&[("web", 2), ("worker", 1), ("clock", 0)], None)
        );
    }

    #[test]
    fn parse_spec_errors() {
        assert_eq!(spec_err(""), "empty formation");
        assert_eq!(spec_err("  "), "empty formation");
        assert_eq!(
            spec_err("web=1,,worker=2"),
            r#"empty item in formation "web=1,,worker=2""#
        );
        assert_eq!(spec_err("web=1,"), r#"empty item in formation "web=1,""#);
        assert_eq!(
            spec_err("=2"),
            r#"missing process type name in formation item "=2""#
        );
        assert_eq!(
            spec_err("web=x"),
            r#"invalid count "x" for "web" in formation"#
        );
        assert_eq!(
            spec_err("web=+2"),
            r#"invalid count "+2" for "web" in formation"#
        );
        assert_eq!(
            spec_err("web=1.5"),
            r#"invalid count "1.5" for "web" in formation"#
        );
        assert_eq!(
            spec_err("web=2=3"),
            r#"invalid count "2=3" for "web" in formation"#
        );
        assert_eq!(spec_err("web="), r#"missing count for "web" in formation"#);
        assert_eq!(
            spec_err("web=-1"),
            r#"negative count "-1" for "web" in formation"#
        );
        assert_eq!(
            spec_err("web=-"),
            r#"invalid count "-" for "web" in formation"#
        );
        assert_eq!(
            spec_err("web=10001"),
            r#"count "10001" for "web" in formation is too large (at most 10000)"#
        );
        assert_eq!(
            spec_err("web=99999999999999999999"),
            r#"count "99999999999999999999" for "web" in formation is too large (at most 10000)"#
        );
        assert_eq!(
            spec_err("web=1,web=2"),
            r#"process type "web" given twice in formation"#
        );
        assert_eq!(spec_err("all=1,all=2"), r#""all" given twice in formation"#);
        assert_eq!(
            spec_err("all=x"),
            r#"invalid count "x" for "all" in formation"#
        );
    }

    #[test]
    fn max_count_is_accepted() {
        assert_eq!(spec("web=10000"), f(&[("web", 10_000)], None));
    }

    #[test]
    fn parse_args_forms() {
        assert_eq!(
            args(&["web=2", "worker"]),
            Ok(f(&[("web", 2), ("worker", 1)], None))
        );
        assert_eq!(
            args(&["web=2,worker", "all=0"]),
            Ok(f(&[("web", 2), ("worker", 1)], Some(0)))
        );
        assert_eq!(args(&[]), Ok(Formation::default()));
        assert_eq!(args(&["all"]), Ok(f(&[], Some(1))));
    }

    #[test]
    fn parse_args_errors() {
        assert_eq!(
            args(&["web", "web=2"]),
            Err(r#"process type "web" given twice in formation"#.into())
        );
        assert_eq!(
            args(&[""]),
            Err("empty process type argument in formation".into())
        );
        assert_eq!(
            args(&["web=x"]),
            Err(r#"invalid count "x" for "web" in formation"#.into())
        );
        assert_eq!(
            args(&["web,"]),
            Err(r#"empty item in formation "web,""#.into())
        );
    }

    #[test]
    fn merge_later_wins() {
        let earlier = f(&[("web", 2), ("worker", 3)], Some(1));
        let later = f(&[("web", 1), ("clock", 4)], None);
        assert_eq!(
            earlier.clone().merge(later),
            f(&[("web", 1), ("worker", 3), ("clock", 4)], Some(1))
        );
        assert_eq!(
            earlier.merge(f(&[], Some(0))),
            f(&[("web", 2), ("worker", 3)], Some(0))
        );
        assert_eq!(
            Formation::default().merge(Formation::default()),
            Formation::default()
        );
    }

    #[test]
    fn is_empty() {
        assert!(Formation::default().is_empty());
        assert!(!f(&[], Some(0)).is_empty());
        assert!(!f(&[("web", 0)], None).is_empty());
    }

    #[test]
    fn resolve_empty_runs_every_type_once() {
        assert_eq!(Formation::default().resolve(NAMES), Ok(vec![1, 1, 1]));
    }

    #[test]
    fn resolve_named_only() {
        assert_eq!(spec("worker=3").resolve(NAMES), Ok(vec![0, 3, 0]));
    }

    #[test]
    fn resolve_all_sets_the_rest() {
        assert_eq!(spec("worker=3,all=2").resolve(NAMES), Ok(vec![2, 3, 2]));
        assert_eq!(spec("all=0,web").resolve(NAMES), Ok(vec![1, 0, 0]));
    }

    #[test]
    fn resolve_zero_excludes() {
        assert_eq!(spec("web=0,all=1").resolve(NAMES), Ok(vec![0, 1, 1]));
    }

    #[test]
    fn resolve_unknown_name() {
        assert_eq!(
            spec("wbe=1")
                .resolve(&["web", "worker"])
                .map_err(|e| e.to_string()),
            Err(r#"unknown process type "wbe" in formation (known: web, worker)"#.to_string())
        );
        assert_eq!(
            spec("web=1").resolve(&[]).map_err(|e| e.to_string()),
            Err(
                r#"unknown process type "web" in formation (the Procfile defines none)"#
                    .to_string()
            )
        );
    }

    #[test]
    fn a_type_named_all_follows_the_all_keyword() {
        let names = ["web", "all"];
        assert_eq!(spec("all=3").resolve(&names), Ok(vec![3, 3]));
        assert_eq!(spec("web=2").resolve(&names), Ok(vec![2, 0]));
        assert_eq!(Formation::default().resolve(&names), Ok(vec![1, 1]));
    }

    proptest! {
        #[test]
        fn parse_spec_never_panics(s in any::<String>()) {
            let _ = Formation::parse_spec(&s);
        }

        #[test]
        fn parse_near_valid_never_panics(
            items in prop::collection::vec("[ ]?[a-z=,+-]{0,6}[ ]?[=]?[0-9-]{0,12}[ ]?", 0..5),
        ) {
            let joined = items.join(",");
            if let Ok(f) = Formation::parse_spec(&joined) {
                prop_assert!(f.entries.iter().all(|(_, c)| *c <= MAX_COUNT));
                let _ = f.resolve(NAMES);
            }
            if let Ok(f) = Formation::parse_args(&items) {
                let _ = f.resolve(NAMES);
            }
        }

        #[test]
        fn valid_spec_round_trips(
            counts in prop::collection::btree_map("[a-z_-]{1,8}", 0..=MAX_COUNT, 1..6),
            all in prop::option::of(0..=MAX_COUNT),
        ) {
            let counts: Vec<(String, u32)> = counts.into_iter().filter(|(n, _)| n != ALL).collect();
            let mut items: Vec<String> = counts.iter().map(|(n, c)| format!("{n}={c}")).collect();
            if let Some(a) = all {
                items.push(format!("all={a}"));
            }
            prop_assume!(!items.is_empty());
            let parsed = Formation::parse_spec(&items.join(","));
            prop_assert_eq!(parsed, Ok(Formation { entries: counts, all }));
        }
    }
}
