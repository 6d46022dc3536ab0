//! `pm audit --against ...`: the glue between the local model and `crate::audit`.
//!
//! It loads the Plan as `pm start` would (same files, same formation), reads
//! the development Procfile and production's side, adds the addresses
//! written by hand, marks what pm.toml's `[audit] ignore` expects, and prints
//! the findings. Exit code: 1 on drift (and on any error; warnings too with
//! `--strict`, ignored findings never), 0 in parity.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::app::load::{self, LoadOptions};
use crate::audit::{self, Process, Severity, Side, Stated, Var};
use crate::cli::AuditArgs;
use crate::config::pm_toml::{Check, Probe};
use crate::config::{envfile, procfile};
use crate::error::{Error, Result};
use crate::input;
use crate::plan::{Plan, RELEASE};

pub fn audit(args: AuditArgs) -> Result<i32> {
    let paths = load::paths(&args.app)?;
    let (plan, env_read) = load::load(&args.app, &LoadOptions::default())?;

    let against: Vec<(PathBuf, String)> = if args.against.is_empty() {
        let default = sibling(&paths.procfile, ".env.production");
        if !default.exists() {
            return Err(Error::Invalid(format!(
                "nothing to compare with: {} does not exist; pass --against FILE_OR_DIR \
                 (an env file such as .env.production, or a directory written by pm export)",
                default.display()
            )));
        }
        vec![(default.clone(), default.display().to_string())]
    } else {
        args.against
            .iter()
            .map(|p| (p.clone(), p.display().to_string()))
            .collect()
    };

    let local = local_side(&plan, &paths, &env_read)?;
    let dev = dev_procfile(&args, &paths.procfile)?;
    let production = audit::read::read_against(&against)?;
    let mut findings = audit::compare(&local, &production, dev.as_deref());
    findings.extend(audit::address::findings(&plan, &|name| {
        defined_at(&local, &env_read, name)
    }));
    // Grouped by rule, in the order found within a rule.
    findings.sort_by_key(|f| f.rule);
    audit::ignore::apply(&mut findings, &plan.audit.ignore);
    for stale in audit::ignore::unknown(&plan.audit.ignore, &local, &production, dev.as_deref()) {
        eprintln!(
            "pm: warning: {}:{}: [audit] ignore lists \"{}\", which is no process type or variable on either side",
            paths.settings_shown, stale.line, stale.name
        );
    }

    let drift = findings.iter().any(|f| match f.severity {
        Severity::Drift => true,
        Severity::Warning => args.strict,
        Severity::Ignored => false,
    });
    let text = if args.json {
        audit::render::json(&findings, drift)
            .map_err(|e| Error::Internal(format!("audit report: {e}")))?
    } else {
        audit::render::table(&findings, args.strict)
    };
    // A reader that left (a closed pipe) is not an error worth reporting.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(if drift { 1 } else { 0 })
}

/// Where a local variable's value comes from: `.env:3`, the line of its
/// last definition in the last file that defines it (the file alone when
/// the line cannot be told).
fn defined_at(local: &Side, env_read: &[load::EnvRead], name: &str) -> String {
    let Some(var) = local.env.iter().rev().find(|v| v.name == name) else {
        return String::new();
    };
    let line = env_read
        .iter()
        .rev()
        .find(|f| f.shown == var.file)
        .and_then(|f| envfile::last_definition_line(&f.text, &f.shown, name));
    match line {
        Some(line) => format!("{}:{line}", var.file),
        None => var.file.clone(),
    }
}

/// A file next to the Procfile (`Procfile` → `.env.production`), keeping the
/// Procfile's directory as the user wrote it.
fn sibling(procfile: &Path, name: &str) -> PathBuf {
    match procfile.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

fn describe(check: &Check) -> String {
    match &check.probe {
        Probe::Tcp => "tcp".to_string(),
        Probe::Http(path) => format!("http {path}"),
        Probe::Exec(command) => format!("exec {command}"),
        Probe::Log(pattern) => format!("log {}", pattern.as_str()),
    }
}

/// The local side: the Plan's env (with the file each variable's value came
/// from) and its process types.
fn local_side(plan: &Plan, paths: &load::Paths, env_read: &[load::EnvRead]) -> Result<Side> {
    // Which file gave each variable its last value: the last file read that
    // defines it. The values themselves come from the Plan.
    let mut defined_in: Vec<(String, String)> = Vec::new();
    for file in env_read {
        for (name, _) in envfile::parse_with_lookup(&file.text, &file.shown, &|_| None)? {
            defined_in.push((name, file.shown.clone()));
        }
    }
    let file_of = |name: &str| {
        defined_in
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    };
    let env = plan
        .env_files_env()
        .iter()
        .map(|(name, value)| Var {
            name: name.clone(),
            value: value.clone(),
            file: file_of(name),
        })
        .collect();
    let processes = plan
        .types
        .iter()
        .map(|t| Process {
            name: t.name.clone(),
            command: t.command.clone(),
            file: plan.procfile.clone(),
            count: Stated::Yes(t.count),
            ready: t
                .ready
                .as_ref()
                .map_or(Stated::Absent, |c| Stated::Yes(describe(c))),
            ready_portable: !matches!(t.ready.as_ref().map(|c| &c.probe), Some(Probe::Log(_))),
            live: t
                .live
                .as_ref()
                .map_or(Stated::Absent, |c| Stated::Yes(describe(c))),
            restart: Stated::Yes((t.restart.policy, t.restart.policy.as_str().to_string())),
            one_shot: t.name == RELEASE,
            settings_file: paths
                .settings
                .exists()
                .then(|| paths.settings_shown.clone()),
        })
        .collect();
    Ok(Side {
        env,
        env_files: env_read.iter().map(|file| file.shown.clone()).collect(),
        processes: Some(processes),
        process_files: vec![plan.procfile.clone()],
    })
}

/// The development Procfile's types: `--dev-procfile`, else a `Procfile.dev`
/// next to the Procfile (unless that is the Procfile itself).
fn dev_procfile(args: &AuditArgs, procfile_path: &Path) -> Result<Option<Vec<Process>>> {
    let path = match &args.dev_procfile {
        Some(path) => path.clone(),
        None => {
            let default = sibling(procfile_path, "Procfile.dev");
            let same = match (fs::canonicalize(&default), fs::canonicalize(procfile_path)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if same || !default.is_file() {
                return Ok(None);
            }
            default
        }
    };
    let shown = path.display().to_string();
    let text = input::read(&path).map_err(|e| Error::File {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let parsed = procfile::parse(&text, &shown)?;
    Ok(Some(
        parsed
            .types
            .into_iter()
            .map(|t| Process {
                name: t.name.clone(),
                command: t.command,
                file: shown.clone(),
                count: Stated::NotCarried,
                ready: Stated::NotCarried,
                ready_portable: true,
                live: Stated::NotCarried,
                restart: Stated::NotCarried,
                one_shot: t.name == RELEASE,
                settings_file: None,
            })
            .collect(),
    ))
}
