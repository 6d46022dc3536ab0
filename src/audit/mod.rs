//! The dev/prod parity audit: the local model against production's.
//!
//! This module owns the comparison and nothing else: it takes two [`Side`]s
//! already read (by `read`, or built by hand in tests) and returns the
//! [`Finding`]s, without I/O. `kinds` holds the service-kind and image rules,
//! `read` turns env files and `pm export` directories into a `Side`,
//! `address` words the Plan's addresses written by hand as findings,
//! `ignore` applies pm.toml's `[audit] ignore`, and `render` prints findings
//! as a table or JSON. No code here may print a secret value: what leaves
//! this module goes through [`shown_value`], or names no value at all.

pub mod address;
pub mod ignore;
pub mod kinds;
pub mod read;
pub mod render;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::secret;
use crate::model::Restart;

/// Per-instance variables: set by pm (and by every export) for each
/// instance, so they are never compared.
pub const PER_INSTANCE: [&str; 3] = ["PORT", "PS", "DYNO"];

/// One variable as a side defines it, with the file it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub value: String,
    pub file: String,
}

/// What one side says about a setting of a process type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stated<T> {
    /// The side states this value.
    Yes(T),
    /// The side could state it and does not (no probe in a Deployment).
    Absent,
    /// The side has no place for it (health checks in systemd), or says
    /// nothing about it at all (an env file).
    NotCarried,
}

/// One process type as a side defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub name: String,
    pub command: String,
    /// Where it is defined: `Procfile`, `prod/compose.yaml`.
    pub file: String,
    /// How many instances (the formation, or replicas).
    pub count: Stated<u32>,
    /// The readiness and liveness checks, described (`http /healthz`).
    pub ready: Stated<String>,
    /// False for a readiness check no engine can carry (`log`: no engine
    /// reads a process's output), which an export leaves out.
    pub ready_portable: bool,
    pub live: Stated<String>,
    /// The restart policy, and how the side spells it.
    pub restart: Stated<(Restart, String)>,
    /// `release` runs once: formation, checks and restarts do not apply.
    pub one_shot: bool,
    /// Where its formation, checks and restart policy are set, when that is
    /// not `file` (locally: pm.toml).
    pub settings_file: Option<String>,
}

/// Everything one side says: its env (later entries win) and, when it
/// describes them, its process types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    pub env: Vec<Var>,
    /// The files the env was read from, in order (named in findings about a
    /// variable this side lacks).
    pub env_files: Vec<String>,
    /// None when this side says nothing about processes (only env files).
    pub processes: Option<Vec<Process>>,
    /// The files the processes were read from.
    pub process_files: Vec<String>,
}

impl Side {
    /// The last definition of every variable, in first-appearance order.
    pub fn merged_env(&self) -> Vec<&Var> {
        let mut order: Vec<&str> = Vec::new();
        for var in &self.env {
            if !order.contains(&var.name.as_str()) {
                order.push(&var.name);
            }
        }
        order
            .into_iter()
            .filter_map(|name| self.env.iter().rev().find(|v| v.name == name))
            .collect()
    }
}

/// Which rule a finding comes from; its name is part of the JSON format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// A variable present on one side only.
    Variable,
    /// Backing services of a different kind on each side.
    Service,
    /// Different tags of the same container image.
    Image,
    /// Another type's address written by hand (a loopback host and port).
    Address,
    /// A process type on one side only, or with a different command.
    Process,
    /// A different number of instances.
    Formation,
    /// A readiness or liveness check on one side only.
    Health,
    /// A different restart policy.
    Restart,
}

impl Rule {
    /// The heading of the rule's group in the table.
    pub fn title(self) -> &'static str {
        match self {
            Rule::Variable => "variables present on one side only",
            Rule::Service => "backing services of a different kind",
            Rule::Image => "different image tags",
            Rule::Address => "addresses written by hand",
            Rule::Process => "process types",
            Rule::Formation => "formation",
            Rule::Health => "health checks",
            Rule::Restart => "restart policies",
        }
    }
}

/// Drift fails the audit; a warning is printed and fails it only with
/// `--strict`; an ignored finding (about a name of pm.toml's
/// `[audit] ignore`) is printed and never fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Drift,
    Warning,
    Ignored,
}

/// What one side has for the thing a finding is about. Every field is
/// optional; `value` is already masked (see [`shown_value`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// The process type an address written by hand reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaches: Option<String>,
    /// The form to write instead: `${PM_STORE_HOST}:${PM_STORE_PORT}`.
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_instead: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// The variable or process type.
    pub name: String,
    /// None: the thing is absent on that side.
    pub local: Option<Detail>,
    pub production: Option<Detail>,
    /// The files involved, local ones first.
    pub files: Vec<String>,
    pub message: String,
}

/// A value as it may be printed: a URL as `scheme://host` only (never its
/// user, password, port, path or query), a secret as nothing at all, any
/// other value as it is.
pub fn shown_value(name: &str, value: &str) -> (Option<String>, bool) {
    let is_secret = secret::is_secret(name, value);
    if let Some(scheme) = kinds::url_scheme(value) {
        return (Some(format!("{scheme}://{}", url_host(value))), is_secret);
    }
    // A URL inside a longer value (`--db=postgres://u:pw@h`) may carry a
    // password that the secret rule, which looks at whole values, misses.
    if is_secret || value.contains("://") {
        (None, true)
    } else {
        (Some(value.to_string()), false)
    }
}

/// The host of a URL, without user information or port.
fn url_host(value: &str) -> String {
    let rest = value.trim().split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or("").to_string();
    }
    host.split(':').next().unwrap_or("").to_string()
}

fn var_detail(var: &Var) -> Detail {
    let (value, secret) = shown_value(&var.name, &var.value);
    Detail {
        value,
        secret,
        kind: kinds::kind_of(&var.name, &var.value).map(|k| k.kind.to_string()),
        ..Detail::default()
    }
}

fn files(local: &[&str], production: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in local.iter().chain(production) {
        if !f.is_empty() && !out.iter().any(|o| o == f) {
            out.push((*f).to_string());
        }
    }
    out
}

/// The kind a value stands for, where an empty value means "no service"
/// for a variable whose other side names one.
fn service_kind(var: &Var) -> Option<&'static str> {
    if var.value.trim().is_empty() {
        return Some("none");
    }
    kinds::kind_of(&var.name, &var.value).map(|k| k.kind)
}

/// Compares the env of both sides: variables on one side only, services of
/// a different kind, images with different tags.
pub fn compare_env(local: &Side, production: &Side) -> Vec<Finding> {
    let mut findings = Vec::new();
    let ours = local.merged_env();
    let theirs = production.merged_env();
    let compared = |v: &&&Var| !PER_INSTANCE.contains(&v.name.as_str());
    let prod_files: Vec<&str> = production.env_files.iter().map(String::as_str).collect();
    let local_files: Vec<&str> = local.env_files.iter().map(String::as_str).collect();

    for var in ours.iter().filter(compared) {
        let Some(other) = theirs.iter().find(|o| o.name == var.name) else {
            findings.push(Finding {
                rule: Rule::Variable,
                severity: Severity::Drift,
                name: var.name.clone(),
                local: Some(var_detail(var)),
                production: None,
                files: files(&[&var.file], &prod_files),
                message: format!("{} is set locally, not in production", var.name),
            });
            continue;
        };
        let pair = files(&[&var.file], &[&other.file]);
        // Service kinds: only when at least one side names a kind.
        let (a, b) = (service_kind(var), service_kind(other));
        let known = |k: Option<&str>| k.is_some_and(|k| k != "none");
        if let (Some(a), Some(b)) = (a, b)
            && a != b
            && (known(Some(a)) || known(Some(b)))
        {
            let mut local_detail = var_detail(var);
            let mut prod_detail = var_detail(other);
            local_detail.kind = Some(a.to_string());
            prod_detail.kind = Some(b.to_string());
            findings.push(Finding {
                rule: Rule::Service,
                severity: Severity::Drift,
                name: var.name.clone(),
                local: Some(local_detail),
                production: Some(prod_detail),
                files: pair.clone(),
                message: format!("{}: {a} locally, {b} in production", var.name),
            });
        }
        // Image tags, in values that are not secret.
        if !secret::is_secret(&var.name, &var.value)
            && !secret::is_secret(&other.name, &other.value)
        {
            findings.extend(compare_images(var, other, &pair));
        }
    }
    for var in theirs.iter().filter(compared) {
        if !ours.iter().any(|o| o.name == var.name) {
            findings.push(Finding {
                rule: Rule::Variable,
                severity: Severity::Drift,
                name: var.name.clone(),
                local: None,
                production: Some(var_detail(var)),
                files: files(&local_files, &[&var.file]),
                message: format!("{} is set in production, not locally", var.name),
            });
        }
    }
    findings
}

/// Images named on both sides with tags, none of them shared: drift. A
/// reference pinned by digest only has no tag to compare.
fn compare_images(local: &Var, production: &Var, pair: &[String]) -> Vec<Finding> {
    let ours = kinds::images_in(&local.value);
    let theirs = kinds::images_in(&production.value);
    let names: BTreeSet<&str> = ours.iter().map(|i| i.name.as_str()).collect();
    let mut findings = Vec::new();
    for name in names {
        let tags = |images: &[kinds::Image]| -> Vec<kinds::Image> {
            images
                .iter()
                .filter(|i| i.name == name && i.tag.is_some())
                .cloned()
                .collect()
        };
        let (a, b) = (tags(&ours), tags(&theirs));
        if a.is_empty() || b.is_empty() || a.iter().any(|x| b.iter().any(|y| x.tag == y.tag)) {
            continue;
        }
        let show = |images: &[kinds::Image]| {
            images
                .iter()
                .map(kinds::Image::reference)
                .collect::<Vec<_>>()
                .join(", ")
        };
        findings.push(Finding {
            rule: Rule::Image,
            severity: Severity::Drift,
            name: local.name.clone(),
            local: Some(Detail {
                image: Some(show(&a)),
                ..Detail::default()
            }),
            production: Some(Detail {
                image: Some(show(&b)),
                ..Detail::default()
            }),
            files: pair.to_vec(),
            message: format!(
                "{}: image {name} is {} locally, {} in production",
                local.name,
                show(&a),
                show(&b)
            ),
        });
    }
    findings
}

fn command_detail(p: &Process) -> Detail {
    Detail {
        command: Some(p.command.clone()),
        ..Detail::default()
    }
}

/// Process types on one side only, or with a different command. `ours` and
/// `theirs` name the sides in messages (`locally`/`in production`, or the
/// two Procfiles).
pub fn compare_commands(
    local: &[Process],
    production: &[Process],
    production_files: &[String],
    sides: (&str, &str),
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let prod_files: Vec<&str> = production_files.iter().map(String::as_str).collect();
    for p in local {
        match production.iter().find(|o| o.name == p.name) {
            None => findings.push(Finding {
                rule: Rule::Process,
                severity: Severity::Drift,
                name: p.name.clone(),
                local: Some(command_detail(p)),
                production: None,
                files: files(&[&p.file], &prod_files),
                message: format!("process type {} is {}, not {}", p.name, sides.0, sides.1),
            }),
            Some(o) if o.command.trim() != p.command.trim() => findings.push(Finding {
                rule: Rule::Process,
                severity: Severity::Drift,
                name: p.name.clone(),
                local: Some(command_detail(p)),
                production: Some(command_detail(o)),
                files: files(&[&p.file], &[&o.file]),
                message: format!(
                    "process type {} runs a different command {} and {}",
                    p.name, sides.0, sides.1
                ),
            }),
            Some(_) => {}
        }
    }
    let local_files: Vec<&str> = local.iter().map(|p| p.file.as_str()).collect();
    for o in production {
        if !local.iter().any(|p| p.name == o.name) {
            findings.push(Finding {
                rule: Rule::Process,
                severity: Severity::Drift,
                name: o.name.clone(),
                local: None,
                production: Some(command_detail(o)),
                files: files(&local_files[..local_files.len().min(1)], &[&o.file]),
                message: format!("process type {} is {}, not {}", o.name, sides.1, sides.0),
            });
        }
    }
    findings
}

/// Formation, health checks and restart policies of the types on both sides.
pub fn compare_settings(local: &[Process], production: &[Process]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for p in local.iter().filter(|p| !p.one_shot) {
        let Some(o) = production.iter().find(|o| o.name == p.name) else {
            continue;
        };
        let ours = p.settings_file.as_deref().unwrap_or(&p.file);
        let theirs = o.settings_file.as_deref().unwrap_or(&o.file);
        let pair = files(&[ours], &[theirs]);
        let finding = |rule, severity, local: Detail, prod: Detail, message: String| Finding {
            rule,
            severity,
            name: p.name.clone(),
            local: Some(local),
            production: Some(prod),
            files: pair.clone(),
            message,
        };
        if let (Stated::Yes(a), Stated::Yes(b)) = (&p.count, &o.count)
            && a != b
        {
            let count = |n: u32| Detail {
                count: Some(n),
                ..Detail::default()
            };
            findings.push(finding(
                Rule::Formation,
                Severity::Drift,
                count(*a),
                count(*b),
                format!(
                    "{}: {a} instance{} locally, {b} in production",
                    p.name,
                    if *a == 1 { "" } else { "s" }
                ),
            ));
        }
        for (which, ours, theirs) in [
            ("readiness", &p.ready, &o.ready),
            ("liveness", &p.live, &o.live),
        ] {
            let check = |c: &Stated<String>| Detail {
                check: match c {
                    Stated::Yes(text) => Some(text.clone()),
                    Stated::Absent => Some("none".into()),
                    Stated::NotCarried => Some("not carried".into()),
                },
                ..Detail::default()
            };
            let portable = which == "liveness" || p.ready_portable;
            let (severity, message) = match (ours, theirs) {
                (Stated::Yes(_), Stated::Absent | Stated::NotCarried) if !portable => (
                    Severity::Warning,
                    format!(
                        "{}: {which} check not carried by the production export (no engine reads a process's output)",
                        p.name
                    ),
                ),
                (Stated::Yes(_), Stated::Absent) => (
                    Severity::Drift,
                    format!("{}: {which} check locally, none in production", p.name),
                ),
                (Stated::Yes(_), Stated::NotCarried) => (
                    Severity::Warning,
                    format!(
                        "{}: {which} check not carried by the production export",
                        p.name
                    ),
                ),
                (Stated::Absent, Stated::Yes(_)) => (
                    Severity::Drift,
                    format!("{}: {which} check in production, none locally", p.name),
                ),
                _ => continue,
            };
            // A check no engine carries is not carried, whatever the export
            // has in its place.
            let theirs = if portable {
                theirs
            } else {
                &Stated::NotCarried
            };
            findings.push(finding(
                Rule::Health,
                severity,
                check(ours),
                check(theirs),
                message,
            ));
        }
        let restart = |r: &(Restart, String)| Detail {
            restart: Some(r.1.clone()),
            ..Detail::default()
        };
        match (&p.restart, &o.restart) {
            (Stated::Yes(a), Stated::Yes(b)) if a.0 != b.0 => {
                // Both restart a crashed process: they differ only on a
                // clean exit, which a long-running process should not do.
                let severity = if a.0 == Restart::Never || b.0 == Restart::Never {
                    Severity::Drift
                } else {
                    Severity::Warning
                };
                findings.push(finding(
                    Rule::Restart,
                    severity,
                    restart(a),
                    restart(b),
                    format!("{}: restart {} locally, {} in production", p.name, a.1, b.1),
                ));
            }
            (Stated::Yes(a), Stated::NotCarried) if a.0 == Restart::Never => {
                findings.push(finding(
                    Rule::Restart,
                    Severity::Warning,
                    restart(a),
                    Detail {
                        restart: Some("not carried".into()),
                        ..Detail::default()
                    },
                    format!(
                        "{}: restart never not carried by the production export",
                        p.name
                    ),
                ));
            }
            _ => {}
        }
    }
    findings
}

/// The whole audit: env, processes of the production side (when it has
/// any), and the development Procfile against the Procfile.
pub fn compare(local: &Side, production: &Side, dev: Option<&[Process]>) -> Vec<Finding> {
    let mut findings = compare_env(local, production);
    let ours = local.processes.as_deref().unwrap_or(&[]);
    if let Some(theirs) = &production.processes {
        findings.extend(compare_commands(
            ours,
            theirs,
            &production.process_files,
            ("defined locally", "in production"),
        ));
        findings.extend(compare_settings(ours, theirs));
    }
    if let Some(dev) = dev {
        let procfile: Vec<String> = ours.iter().take(1).map(|p| p.file.clone()).collect();
        findings.extend(compare_commands(
            dev,
            ours,
            &procfile,
            ("in the development Procfile", "in the Procfile"),
        ));
    }
    // Grouped by rule, in the order found within a rule.
    findings.sort_by_key(|f| f.rule);
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(file: &str, vars: &[(&str, &str)]) -> Side {
        Side {
            env: vars
                .iter()
                .map(|(n, v)| Var {
                    name: n.to_string(),
                    value: v.to_string(),
                    file: file.to_string(),
                })
                .collect(),
            env_files: vec![file.to_string()],
            processes: None,
            process_files: Vec::new(),
        }
    }

    fn env_findings(local: &[(&str, &str)], prod: &[(&str, &str)]) -> Vec<(Rule, String)> {
        compare(&side(".env", local), &side(".env.production", prod), None)
            .into_iter()
            .map(|f| (f.rule, f.message))
            .collect()
    }

    #[test]
    fn same_scheme_on_another_host_is_not_drift() {
        assert_eq!(
            env_findings(
                &[("DATABASE_URL", "postgres://localhost/app_dev")],
                &[("DATABASE_URL", "postgres://u:p@db.internal:6432/app")]
            ),
            []
        );
    }

    #[test]
    fn spellings_of_one_kind_are_not_drift() {
        for (a, b) in [
            ("postgres://localhost/app", "postgresql://db/app"),
            ("redis://localhost:6379/0", "rediss://cache:6380/0"),
            ("mysql://localhost/app", "mysql2://db/app"),
            ("mongodb://localhost/app", "mongodb+srv://cluster/app"),
            ("amqp://localhost", "amqps://mq"),
            ("postgresql+psycopg2://localhost/app", "postgres://db/app"),
        ] {
            assert_eq!(env_findings(&[("URL", a)], &[("URL", b)]), [], "{a} {b}");
        }
    }

    #[test]
    fn different_kinds_are_drift() {
        assert_eq!(
            env_findings(
                &[("DATABASE_URL", "sqlite:///db/dev.sqlite3")],
                &[("DATABASE_URL", "postgres://db/app")]
            ),
            [(
                Rule::Service,
                "DATABASE_URL: sqlite locally, postgres in production".to_string()
            )]
        );
        assert_eq!(
            env_findings(
                &[("CACHE_STORE", "memory")],
                &[("CACHE_STORE", "redis://c/0")]
            ),
            [(
                Rule::Service,
                "CACHE_STORE: memory locally, redis in production".to_string()
            )]
        );
        assert_eq!(
            env_findings(
                &[("STORAGE", "file:///tmp/up")],
                &[("STORAGE", "s3://bucket")]
            ),
            [(
                Rule::Service,
                "STORAGE: local disk locally, s3 in production".to_string()
            )]
        );
    }

    #[test]
    fn local_disk_spellings_agree() {
        assert_eq!(
            env_findings(&[("STORAGE", "local")], &[("STORAGE", "file:///srv/up")]),
            []
        );
    }

    #[test]
    fn empty_value_against_a_service_is_drift_and_against_plain_text_is_not() {
        assert_eq!(
            env_findings(&[("REDIS_URL", "")], &[("REDIS_URL", "redis://cache/0")]),
            [(
                Rule::Service,
                "REDIS_URL: none locally, redis in production".to_string()
            )]
        );
        assert_eq!(
            env_findings(
                &[("SENTRY_DSN", "")],
                &[("SENTRY_DSN", "https://k@sentry.io/1")]
            ),
            []
        );
        assert_eq!(env_findings(&[("A", "")], &[("A", "")]), []);
    }

    #[test]
    fn unclassified_values_are_never_guessed() {
        // Different hosts, different words: config, not drift.
        assert_eq!(
            env_findings(
                &[
                    ("DB_HOST", "localhost"),
                    ("RAILS_ENV", "development"),
                    ("URL", "db.sqlite3")
                ],
                &[
                    ("DB_HOST", "pg.internal"),
                    ("RAILS_ENV", "production"),
                    ("URL", "postgres://db/app")
                ]
            ),
            []
        );
    }

    #[test]
    fn variables_on_one_side_only() {
        assert_eq!(
            env_findings(
                &[("A", "1"), ("PORT", "3000"), ("DEBUG", "1")],
                &[("A", "2"), ("PORT", "80"), ("SENTRY_DSN", "https://x")]
            ),
            [
                (
                    Rule::Variable,
                    "DEBUG is set locally, not in production".to_string()
                ),
                (
                    Rule::Variable,
                    "SENTRY_DSN is set in production, not locally".to_string()
                ),
            ]
        );
    }

    #[test]
    fn later_definitions_win() {
        let mut local = side(".env", &[("CACHE_STORE", "memory")]);
        local.env.push(Var {
            name: "CACHE_STORE".into(),
            value: "redis://localhost/0".into(),
            file: ".env.local".into(),
        });
        let prod = side(".env.production", &[("CACHE_STORE", "redis://cache/0")]);
        assert_eq!(compare(&local, &prod, None), []);
    }

    #[test]
    fn image_tags() {
        assert_eq!(
            env_findings(
                &[("DB_IMAGE", "postgres:16")],
                &[("DB_IMAGE", "postgres:13")]
            ),
            [(
                Rule::Image,
                "DB_IMAGE: image postgres is postgres:16 locally, postgres:13 in production"
                    .to_string()
            )]
        );
        for (a, b) in [
            ("postgres:16", "postgres:16"),
            ("postgres:16", "docker.io/library/postgres:16"),
            (
                "postgres:16",
                "postgres@sha256:0123456789abcdef0123456789abcdef",
            ),
            ("postgres:16", "redis:7"),
            ("redis:6379", "redis:6380"),
            ("ghcr.io/acme/api:1", "ghcr.io/other/api:2"),
        ] {
            assert_eq!(env_findings(&[("I", a)], &[("I", b)]), [], "{a} {b}");
        }
    }

    #[test]
    fn shown_values_never_carry_secrets() {
        assert_eq!(
            shown_value(
                "DATABASE_URL",
                "postgres://app:s3cret@db.internal:5432/app?sslmode=require"
            ),
            (Some("postgres://db.internal".into()), true)
        );
        assert_eq!(shown_value("API_TOKEN", "abc"), (None, true));
        assert_eq!(
            shown_value("OPTS", "--db=postgres://u:pw@h/x"),
            (None, true)
        );
        assert_eq!(
            shown_value("X", "postgres://u:pa/ss@h/x"),
            (Some("postgres://u".into()), false)
        );
        assert_eq!(
            shown_value("RAILS_ENV", "production"),
            (Some("production".into()), false)
        );
        assert_eq!(
            shown_value("SENTRY_DSN", "https://key@o1.ingest.sentry.io/5"),
            (Some("https://o1.ingest.sentry.io".into()), false)
        );
        assert_eq!(
            shown_value("X", "redis://:pw@[::1]:6379"),
            (Some("redis://[::1]".into()), true)
        );
    }

    fn process(name: &str, command: &str, file: &str) -> Process {
        Process {
            name: name.into(),
            command: command.into(),
            file: file.into(),
            count: Stated::Yes(1),
            ready: Stated::Absent,
            ready_portable: true,
            live: Stated::Absent,
            restart: Stated::Yes((Restart::OnFailure, "on-failure".into())),
            one_shot: false,
            settings_file: None,
        }
    }

    #[test]
    fn dev_procfile_against_procfile() {
        let local = Side {
            processes: Some(vec![
                process("web", "bundle exec puma", "Procfile"),
                process("worker", "sidekiq", "Procfile"),
            ]),
            ..Side::default()
        };
        let dev = [
            process("web", "bin/rails server", "Procfile.dev"),
            process("css", "tailwind --watch", "Procfile.dev"),
            process("worker", "sidekiq ", "Procfile.dev"),
        ];
        let found: Vec<(String, Vec<String>)> = compare(&local, &Side::default(), Some(&dev))
            .into_iter()
            .map(|f| (f.message, f.files))
            .collect();
        let pf = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        assert_eq!(
            found,
            [
                (
                    "process type web runs a different command in the development Procfile and in the Procfile".to_string(),
                    pf("Procfile.dev", "Procfile")
                ),
                (
                    "process type css is in the development Procfile, not in the Procfile".to_string(),
                    pf("Procfile.dev", "Procfile")
                ),
            ]
        );
    }

    #[test]
    fn settings_against_an_export() {
        let mut web = process("web", "puma", "Procfile");
        web.count = Stated::Yes(2);
        web.ready = Stated::Yes("http /healthz".into());
        web.live = Stated::Yes("tcp".into());
        let local = Side {
            processes: Some(vec![web]),
            ..Side::default()
        };
        let mut theirs = process("web", "puma", "prod/APP-web@.service");
        theirs.count = Stated::Yes(3);
        theirs.ready = Stated::NotCarried;
        theirs.live = Stated::Absent;
        theirs.restart = Stated::Yes((Restart::Never, "no".into()));
        let prod = Side {
            processes: Some(vec![theirs]),
            ..Side::default()
        };
        let found: Vec<(Rule, Severity, String)> = compare(&local, &prod, None)
            .into_iter()
            .map(|f| (f.rule, f.severity, f.message))
            .collect();
        assert_eq!(
            found,
            [
                (
                    Rule::Formation,
                    Severity::Drift,
                    "web: 2 instances locally, 3 in production".into()
                ),
                (
                    Rule::Health,
                    Severity::Warning,
                    "web: readiness check not carried by the production export".into()
                ),
                (
                    Rule::Health,
                    Severity::Drift,
                    "web: liveness check locally, none in production".into()
                ),
                (
                    Rule::Restart,
                    Severity::Drift,
                    "web: restart on-failure locally, no in production".into()
                ),
            ]
        );
    }

    #[test]
    fn matching_settings_are_quiet() {
        let mut web = process("web", "puma", "Procfile");
        web.ready = Stated::Yes("http /healthz".into());
        let mut theirs = web.clone();
        theirs.file = "prod/compose.yaml".into();
        theirs.ready = Stated::Yes("test".into());
        let mut release = process("release", "migrate", "Procfile");
        release.one_shot = true;
        let mut their_release = release.clone();
        their_release.count = Stated::Yes(7);
        their_release.restart = Stated::Yes((Restart::Never, "no".into()));
        let local = Side {
            processes: Some(vec![web, release]),
            ..Side::default()
        };
        let prod = Side {
            processes: Some(vec![theirs, their_release]),
            ..Side::default()
        };
        assert_eq!(compare(&local, &prod, None), []);
    }

    /// No engine reads a process's output: a `log` readiness check is
    /// never carried, whatever the export has in its place.
    #[test]
    fn a_log_check_is_never_carried() {
        let mut db = process("db", "postgres", "Procfile");
        db.ready = Stated::Yes("log ready".into());
        db.ready_portable = false;
        for theirs in [Stated::Absent, Stated::NotCarried] {
            let mut other = process("db", "postgres", "prod/compose.yaml");
            other.ready = theirs;
            let found = compare_settings(std::slice::from_ref(&db), &[other]);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].severity, Severity::Warning);
            assert_eq!(
                found[0].message,
                "db: readiness check not carried by the production export (no engine reads a process's output)"
            );
            assert_eq!(
                found[0]
                    .production
                    .as_ref()
                    .and_then(|d| d.check.as_deref()),
                Some("not carried")
            );
        }
    }

    #[test]
    fn restart_on_failure_against_always_is_a_warning() {
        let web = process("web", "puma", "Procfile");
        let mut theirs = web.clone();
        theirs.restart = Stated::Yes((Restart::Always, "unless-stopped".into()));
        let found = compare_settings(&[web], &[theirs]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
    }

    proptest::proptest! {
        /// Whatever the value, a shown value never holds a URL's password.
        #[test]
        fn shown_urls_keep_no_password(
            user in "[a-z]{0,6}",
            password in "[A-Za-z0-9/#?@:%]{1,12}",
            host in "[a-z.]{1,10}",
            rest in "[a-z0-9/?=&:@]{0,12}",
        ) {
            let marker = format!("PW{password}");
            let value = format!("postgres://{user}:{marker}@{host}/{rest}");
            let (shown, _) = shown_value("DATABASE_URL", &value);
            if let Some(shown) = shown {
                proptest::prop_assert!(!shown.contains(&marker), "{} -> {}", value, shown);
            }
        }
    }
}
