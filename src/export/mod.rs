//! Writers for the engines production runs on: systemd, Docker Compose,
//! Kubernetes. `write` renders a Plan into files in memory (pure, and
//! deterministic: same Plan and options, same bytes); `save` puts them on
//! disk with the rules of the shared layout (nothing overwritten without
//! `--force`, the manifest `.pm-export.json` written last, stale files of an
//! earlier export of the same app removed with `--force`). Neither ever runs
//! a process or reads the application's files. The syntax of each engine's
//! files (quoting, escaping, YAML) is [`crate::syntax`]'s, where `pm audit`
//! reads it back: no writer here escapes by hand.

pub mod compose;
pub mod kubernetes;
pub mod systemd;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::pm_toml::{Check, Probe};
use crate::config::ports;
use crate::error::{Error, Result, io_message};
use crate::plan::{Engine, Plan, ProcessSpec};

/// The manifest every export directory gets, written last.
pub const MANIFEST: &str = ".pm-export.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Systemd,
    Compose,
    Kubernetes,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Systemd, Format::Compose, Format::Kubernetes];

    /// The format's name, as the command line and the manifest spell it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Systemd => "systemd",
            Format::Compose => "compose",
            Format::Kubernetes => "kubernetes",
        }
    }

    /// The format a manifest names.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What an export needs besides the Plan.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// The application's name as given (`--app` or the root directory's
    /// name); each engine cleans it for its own rules.
    pub app: String,
    pub image: Option<String>,
    pub user: Option<String>,
    /// The export directory, absolute (systemd units name files in it).
    pub dir: PathBuf,
    /// pm itself, absolute, as systemd units run it (`pm balance`,
    /// `pm probe`); containers find pm on the image's PATH.
    pub pm_path: PathBuf,
}

/// The one-line warnings an export has for the user (stderr), without
/// values: variables that reach another type at a loopback address written
/// by hand, which a container export cannot rewrite.
pub fn warnings(plan: &Plan, options: &Options) -> Vec<String> {
    let engine = match options.format {
        Format::Systemd => return Vec::new(),
        Format::Compose => "compose",
        Format::Kubernetes => "kubernetes",
    };
    plan.loopback_references()
        .into_iter()
        .map(|(name, t)| {
            let a = &plan.addresses[t];
            format!(
                "{name} reaches process type \"{}\" at a loopback address written by hand, \
                 which is not rewritten and reaches nothing in {engine}; \
                 use {} instead",
                a.type_name,
                a.form()
            )
        })
        .collect()
}

/// One rendered file: its name relative to the export directory, and its bytes.
pub type Rendered = (String, Vec<u8>);

/// What the engines cannot carry, one warning per process type: a `log`
/// readiness check (no engine reads a process's output), exported as no
/// readiness check at all.
pub fn not_carried(plan: &Plan) -> Vec<String> {
    plan.types
        .iter()
        .filter(|t| matches!(t.ready.as_ref().map(|c| &c.probe), Some(Probe::Log(_))))
        .map(|t| {
            format!(
                "\"{}\": a log readiness check cannot be exported (no engine reads a process's output); it is exported with no readiness check",
                t.name
            )
        })
        .collect()
}

/// The Plan as the engines can carry it (see [`not_carried`]).
fn portable(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for t in &mut plan.types {
        if matches!(t.ready.as_ref().map(|c| &c.probe), Some(Probe::Log(_))) {
            t.ready = None;
        }
    }
    plan
}

/// Renders the export in memory, files sorted by name. Pure.
pub fn write(plan: &Plan, options: &Options) -> Result<Vec<Rendered>> {
    let plan = &portable(plan);
    let mut files = match options.format {
        Format::Systemd => systemd::render(plan, options)?,
        Format::Compose => compose::render(plan, options)?,
        Format::Kubernetes => kubernetes::render(plan, options)?,
    };
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = files.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::Internal(format!("export writes {} twice", w[0].0)));
    }
    Ok(files)
}

/// The app name for an engine, as that engine's files name it.
pub fn app_name(options: &Options) -> Result<String> {
    match options.format {
        Format::Systemd => systemd::app_name(&options.app),
        Format::Compose => compose::app_name(&options.app),
        Format::Kubernetes => kubernetes::app_name(&options.app),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    app: String,
    format: String,
    files: Vec<String>,
}

/// Writes the rendered files into `dir` (created if missing), then the
/// manifest. Without `force`, an existing file that would be overwritten is
/// an error naming it and nothing is written. With `force`, files that an
/// earlier export of the same app listed and this one does not are removed.
pub fn save(dir: &Path, app: &str, format: Format, files: &[Rendered], force: bool) -> Result<()> {
    let shown = |name: &str| dir.join(name).display().to_string();
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::File {
                path: dir.display().to_string(),
                message: "not a directory".into(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::File {
                path: dir.display().to_string(),
                message: io_message(&e),
            });
        }
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for name in names.iter().copied().chain([MANIFEST]) {
        let path = dir.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::File {
                    path: shown(name),
                    message: "is a directory".into(),
                });
            }
            Ok(_) if !force => {
                return Err(Error::File {
                    path: shown(name),
                    message: "already exists (use --force to overwrite)".into(),
                });
            }
            _ => {}
        }
    }
    let earlier = read_manifest(dir);
    fs::create_dir_all(dir).map_err(|e| Error::File {
        path: dir.display().to_string(),
        message: io_message(&e),
    })?;
    for (name, bytes) in files {
        replace(dir, name, bytes).map_err(|e| Error::File {
            path: shown(name),
            message: io_message(&e),
        })?;
    }
    if force
        && let Some(earlier) = earlier
        && earlier.app == app
    {
        for stale in earlier
            .files
            .iter()
            .filter(|f| !names.contains(&f.as_str()))
        {
            // Only plain names in DIR: a manifest never makes pm delete elsewhere.
            if !is_plain_name(stale) {
                continue;
            }
            match fs::remove_file(dir.join(stale)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::File {
                        path: shown(stale),
                        message: io_message(&e),
                    });
                }
            }
        }
    }
    let manifest = Manifest {
        app: app.to_string(),
        format: format.name().to_string(),
        files: names.iter().map(|n| n.to_string()).collect(),
    };
    let mut text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("manifest: {e}")))?;
    text.push('\n');
    replace(dir, MANIFEST, text.as_bytes()).map_err(|e| Error::File {
        path: shown(MANIFEST),
        message: io_message(&e),
    })?;
    Ok(())
}

/// Writes a file whole or not at all, replacing (never following) a symlink
/// that was there.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!(".{name}.pm-export-tmp"));
    fs::write(&temporary, bytes)?;
    fs::rename(&temporary, dir.join(name)).inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })
}

fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = crate::input::read(&dir.join(MANIFEST)).ok()?;
    serde_json::from_str(&text).ok()
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name != MANIFEST
        && !name.contains(['/', '\0'])
}

/// The environment every instance shares on `engine`: the env files merged
/// (later entries win, kept at the place of their first appearance) with
/// the engine's addresses in their values, then the address variables and
/// `PM_LISTEN_HOST` (which win over the env files), without PORT, which is
/// per instance.
pub fn shared_env(plan: &Plan, engine: &Engine) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut all = plan.env_files_env_on(engine);
    all.extend(plan.address_env_on(engine));
    for (name, value) in &all {
        if name == "PORT" {
            continue;
        }
        match merged.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.clone(),
            None => merged.push((name.clone(), value.clone())),
        }
    }
    merged
}

/// The port of a type's first instance: what `pm start` gives `TYPE.1`, and
/// what every replica gets in compose and kubernetes.
pub fn base_port(plan: &Plan, spec: &ProcessSpec) -> Result<u16> {
    let name = format!("{}.1", spec.name);
    ports::port_for(plan.base_port, plan.port_step, spec.position, 1, &name)
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// PS and DYNO for the replicas of a type in compose and kubernetes, when the
/// file alone can say it: `TYPE.1`, as `pm start` names the only instance
/// of a type with one. A replica of several cannot know its index from the
/// file (every replica gets the same env): None, and each engine sets what
/// it knows instead (compose the type's name, kubernetes the pod's name).
pub fn single_instance_name(spec: &ProcessSpec) -> Option<String> {
    (spec.count <= 1).then(|| format!("{}.1", spec.name))
}

/// Whether `spec` starts only after the release phase: every type but the
/// release and what the release itself depends on (those start first, as in
/// `pm start`; waiting for the release would make a cycle).
pub fn waits_for_release(plan: &Plan, spec: &ProcessSpec) -> bool {
    let Some(release) = plan
        .types
        .iter()
        .find(|t| t.name == crate::plan::RELEASE && t.count > 0)
    else {
        return false;
    };
    let mut before: Vec<&str> = vec![release.name.as_str()];
    let mut i = 0;
    while i < before.len() {
        if let Some(t) = plan.type_named(before[i]) {
            for dep in &t.depends_on {
                if !before.contains(&dep.as_str()) {
                    before.push(dep);
                }
            }
        }
        i += 1;
    }
    !before.contains(&spec.name.as_str())
}

/// The dependencies of a type, refused when one would never run.
pub fn dependencies<'a>(plan: &'a Plan, spec: &ProcessSpec) -> Result<Vec<&'a ProcessSpec>> {
    let mut deps = Vec::new();
    for name in &spec.depends_on {
        let Some(dep) = plan.type_named(name) else {
            return Err(Error::Invalid(format!(
                "process type \"{}\" depends on unknown type \"{name}\"",
                spec.name
            )));
        };
        if dep.count == 0 && spec.count > 0 {
            return Err(Error::Invalid(format!(
                "process type \"{}\" depends on \"{name}\", whose formation count is 0",
                spec.name
            )));
        }
        deps.push(dep);
    }
    Ok(deps)
}

/// The options of `pm probe` and `pm balance` that probe like `check`
/// (a tcp connect when there is none): `--http PATH` or `--exec CMD`, and
/// the check's interval and timeout. `exec` is left out when `with_exec` is
/// false (a balancer or a Kubernetes init container probes over the network
/// only: a tcp connect).
pub fn probe_options(check: Option<&Check>, with_exec: bool) -> Vec<String> {
    let mut args = Vec::new();
    let Some(check) = check else {
        return args;
    };
    match &check.probe {
        Probe::Tcp => {}
        Probe::Http(path) => args.extend(["--http".to_string(), path.clone()]),
        Probe::Exec(command) if with_exec => {
            args.extend(["--exec".to_string(), command.clone()]);
        }
        Probe::Exec(_) => {}
        // Never reached: `portable` drops log checks before rendering.
        Probe::Log(_) => {}
    }
    args.extend([
        "--interval".to_string(),
        secs(check.interval),
        "--timeout".to_string(),
        secs(check.timeout),
    ]);
    if check.successes != 1 {
        args.extend(["--successes".to_string(), check.successes.to_string()]);
    }
    args
}

/// Seconds as the command line takes them: `2`, `1.5`.
fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// A duration as systemd and compose write it: `5s`, `1500ms`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Whole seconds, rounded up, at least `min`: Kubernetes counts in seconds.
pub fn seconds(d: Duration, min: u64) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(min)
}

/// The app name with every character outside `keep` made `-`, runs of `-`
/// made one, and `-` trimmed from both ends; an error when nothing is left.
pub fn clean(name: &str, keep: impl Fn(char) -> bool, engine: &str) -> Result<String> {
    let mut out = String::new();
    for c in name.chars() {
        let c = if keep(c) { c } else { '-' };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    if out.is_empty() {
        return Err(Error::Invalid(format!(
            "--app {name:?}: no character valid in a {engine} name remains"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(seconds(Duration::from_millis(1500), 1), 2);
        assert_eq!(seconds(Duration::ZERO, 1), 1);
        assert_eq!(seconds(Duration::ZERO, 0), 0);
    }

    #[test]
    fn cleaning() {
        let k = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        assert_eq!(clean("my app!", k, "x").ok().as_deref(), Some("my-app"));
        assert_eq!(clean("--a__b--", k, "x").ok().as_deref(), Some("a-b"));
        assert!(clean("!!!", k, "x").is_err());
    }

    #[test]
    fn format_names() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::from_name("nomad"), None);
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("app.target"));
        assert!(!is_plain_name("../etc/passwd"));
        assert!(!is_plain_name(".."));
        assert!(!is_plain_name(MANIFEST));
    }
}
