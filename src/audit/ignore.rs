//! pm.toml's `[audit] ignore`: expected differences. Every finding about a
//! listed process type or variable (a dev-only `webpack` type, a
//! `SENTRY_DSN` set only in production) stays in the report, marked
//! ignored, and never counts as drift. A listed name that no side has is
//! found here too, so the caller can say so: a stale list hides nothing,
//! but it misleads. Pure: no I/O, no printing.

use super::{Finding, Process, Severity, Side};
use crate::config::pm_toml::Ignored;

/// Marks the findings about a listed name as ignored: the variable or type
/// a finding names, or the type an address written by hand reaches.
pub fn apply(findings: &mut [Finding], ignore: &[Ignored]) {
    let listed = |name: &str| ignore.iter().any(|i| i.name == name);
    for f in findings {
        let reaches = f.local.as_ref().and_then(|d| d.reaches.as_deref());
        if listed(&f.name) || reaches.is_some_and(listed) {
            f.severity = Severity::Ignored;
        }
    }
}

/// The listed names that are neither a process type (of the Procfile, the
/// development Procfile or production's side) nor a variable of either
/// side, in the order listed.
pub fn unknown<'a>(
    ignore: &'a [Ignored],
    local: &Side,
    production: &Side,
    dev: Option<&[Process]>,
) -> Vec<&'a Ignored> {
    let types = [&local.processes, &production.processes]
        .into_iter()
        .flatten()
        .flatten()
        .chain(dev.into_iter().flatten());
    let mut known: Vec<&str> = types.map(|p| p.name.as_str()).collect();
    known.extend(
        local
            .env
            .iter()
            .chain(&production.env)
            .map(|v| v.name.as_str()),
    );
    ignore
        .iter()
        .filter(|i| !known.contains(&i.name.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Detail, Rule, Var, compare};

    fn ignored(names: &[&str]) -> Vec<Ignored> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Ignored {
                name: n.to_string(),
                line: i + 2,
            })
            .collect()
    }

    fn env(file: &str, names: &[&str]) -> Side {
        Side {
            env: names
                .iter()
                .map(|n| Var {
                    name: n.to_string(),
                    value: "1".into(),
                    file: file.into(),
                })
                .collect(),
            env_files: vec![file.into()],
            ..Side::default()
        }
    }

    #[test]
    fn findings_about_listed_names_are_ignored() {
        let local = env(".env", &["DEBUG", "A"]);
        let prod = env(".env.production", &["SENTRY_DSN", "A"]);
        let mut findings = compare(&local, &prod, None);
        findings.push(Finding {
            rule: Rule::Address,
            severity: Severity::Warning,
            name: "ASSETS".into(),
            local: Some(Detail {
                reaches: Some("webpack".into()),
                ..Detail::default()
            }),
            production: None,
            files: vec![".env:4".into()],
            message: String::new(),
        });
        apply(&mut findings, &ignored(&["SENTRY_DSN", "webpack"]));
        let got: Vec<(&str, Severity)> = findings
            .iter()
            .map(|f| (f.name.as_str(), f.severity))
            .collect();
        assert_eq!(
            got,
            [
                ("DEBUG", Severity::Drift),
                ("SENTRY_DSN", Severity::Ignored),
                ("ASSETS", Severity::Ignored),
            ]
        );
    }

    #[test]
    fn names_found_nowhere() {
        let mut local = env(".env", &["DEBUG"]);
        local.processes = Some(Vec::new());
        let prod = env(".env.production", &["SENTRY_DSN"]);
        let dev = [Process {
            name: "css".into(),
            command: "tailwind".into(),
            file: "Procfile.dev".into(),
            count: super::super::Stated::NotCarried,
            ready: super::super::Stated::NotCarried,
            ready_portable: true,
            live: super::super::Stated::NotCarried,
            restart: super::super::Stated::NotCarried,
            one_shot: false,
            settings_file: None,
        }];
        let list = ignored(&["css", "SENTRY_DSN", "DEBUG", "webpak"]);
        let names: Vec<&str> = unknown(&list, &local, &prod, Some(&dev))
            .into_iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(names, ["webpak"]);
        let names: Vec<&str> = unknown(&list, &local, &prod, None)
            .into_iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(names, ["css", "webpak"]);
    }
}
