//! Reading the inputs named on the command line and building the Plan.
//!
//! This is the only place that reads the Procfile and env files from disk; the
//! parsing itself is done by the pure functions in `config`. Every problem
//! found is collected, so `pm check` can report them all at once.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{AppArgs, FormationArgs};
use crate::config::formation::Formation;
use crate::config::pm_toml::{self, Settings};
use crate::config::value::Value;
use crate::config::{ConfigError, envfile, ports, procfile};
use crate::error::{Error, Result, io_message};
use crate::input::{self, ReadError};
use crate::model::Number;
use crate::plan::{LISTEN_HOST_VAR, Plan, PlanInputs, RELEASE, address_vars};

/// What a subcommand wants loaded besides the files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-m` and the positional `NAME[=N]` values.
    pub formation: FormationArgs,
    /// `-t`; None leaves it to pm.toml, else 5 s.
    pub timeout: Option<Duration>,
    pub pty: bool,
    pub no_release: bool,
    pub max_restarts: Option<u32>,
    /// A missing default Procfile is not an error (`pm run`).
    pub procfile_optional: bool,
}

/// Where the files are, with the names to use in messages.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub procfile: PathBuf,
    pub procfile_shown: String,
    /// pm.toml next to the Procfile, and its name for messages.
    pub settings: PathBuf,
    pub settings_shown: String,
    /// Env files to read: (path, shown name, named explicitly).
    pub env_files: Vec<(PathBuf, String, bool)>,
}

pub fn paths(app: &AppArgs) -> Result<Paths> {
    let (procfile, root) = match (&app.procfile, &app.root) {
        (Some(file), Some(root)) => (file.clone(), root.clone()),
        (Some(file), None) => {
            let parent = file.parent().unwrap_or(Path::new(""));
            let root = if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent.to_path_buf()
            };
            (file.clone(), root)
        }
        (None, Some(root)) => (root.join("Procfile"), root.clone()),
        (None, None) => (PathBuf::from("Procfile"), PathBuf::from(".")),
    };
    let root_abs = fs::canonicalize(&root).map_err(|e| Error::File {
        // Without -d the root is only where the Procfile is: name the file.
        path: match app.root {
            Some(_) => root.display().to_string(),
            None => procfile.display().to_string(),
        },
        message: io_message(&e),
    })?;
    if !root_abs.is_dir() {
        return Err(Error::File {
            path: root.display().to_string(),
            message: "not a directory".into(),
        });
    }
    let env_files = if app.env.is_empty() {
        let default = root.join(".env");
        let shown = if app.root.is_some() || app.procfile.is_some() {
            default.display().to_string()
        } else {
            ".env".to_string()
        };
        vec![(default, shown, false)]
    } else {
        app.env
            .iter()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| (p.clone(), p.display().to_string(), true))
            .collect()
    };
    let settings = procfile
        .parent()
        .unwrap_or(Path::new(""))
        .join(pm_toml::FILE_NAME);
    Ok(Paths {
        settings_shown: settings.display().to_string(),
        settings,
        procfile_shown: procfile.display().to_string(),
        procfile,
        root: root_abs,
        env_files,
    })
}

/// An env file that was read: its name as shown, and its text (kept, since
/// a pipe such as `-e <(sops -d .env.enc)` cannot be read twice).
#[derive(Debug, Clone)]
pub struct EnvRead {
    pub shown: String,
    pub text: String,
}

/// Reads and parses the env files in order. Returns the variables (later
/// entries win) and the files actually read. `is_address` tells the address
/// variables, which stay in the values for each runtime to expand. A
/// reference to a name defined nowhere is a warning on stderr, naming the
/// file, the line and the name, never a value.
pub fn env_files(
    paths: &Paths,
    is_address: &dyn Fn(&str) -> bool,
    errors: &mut Vec<ConfigError>,
) -> (Vec<(String, Value)>, Vec<EnvRead>) {
    let mut merged: Vec<(String, Value)> = Vec::new();
    let mut read = Vec::new();
    for (path, shown, explicit) in &paths.env_files {
        let text = match input::read(path) {
            Ok(text) => text,
            Err(e) if e.is_not_found() && !explicit => continue,
            Err(e) => {
                errors.push(ConfigError::new(shown.clone(), None, e.to_string()));
                continue;
            }
        };
        // `${VAR}` sees earlier lines of the same file, then earlier files,
        // then pm's environment; address variables win over all of them.
        let lookup = |name: &str| -> Option<Value> {
            lookup(&merged, name)
                .cloned()
                .or_else(|| std::env::var(name).ok().map(Value::literal))
        };
        let scope = envfile::Scope {
            runtime: is_address,
            lookup: &lookup,
        };
        match envfile::parse_in(&text, shown, &scope) {
            Ok(parsed) => {
                for unset in &parsed.unset {
                    eprintln!("pm: warning: {unset}");
                }
                merged.extend(parsed.vars);
            }
            Err(e) => errors.push(e),
        }
        read.push(EnvRead {
            shown: shown.clone(),
            text,
        });
    }
    (merged, read)
}

/// When the Procfile is missing but a development one sits where it should
/// be (Rails apps often have only `Procfile.dev`), the command to use it.
fn procfile_hint(paths: &Paths, e: &ReadError) -> String {
    if !e.is_not_found() {
        return String::new();
    }
    let dir = paths.procfile.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    for other in ["Procfile.dev", "Procfile.development", "Procfile.local"] {
        let candidate = dir.join(other);
        if candidate != paths.procfile && candidate.is_file() {
            let shown = if dir == Path::new(".") {
                PathBuf::from(other)
            } else {
                candidate
            };
            return format!(" (found {0}: pass -f {0})", shown.display());
        }
    }
    String::new()
}

/// The last value of `name` in an ordered variable list.
pub fn lookup<'a, V>(vars: &'a [(String, V)], name: &str) -> Option<&'a V> {
    vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The base port: -p, else pm.toml's, else PORT from the env files, else
/// $PORT, else 5000.
fn base_port(
    app: &AppArgs,
    settings: &Settings,
    env: &[(String, Value)],
    errors: &mut Vec<ConfigError>,
) -> u16 {
    let (value, source) = if let Some(p) = &app.port {
        (p.clone(), "--port".to_string())
    } else if let Some(p) = settings.defaults.port {
        return p;
    } else if let Some(p) = lookup(env, "PORT") {
        let Some(p) = p.as_literal() else {
            // Addresses are computed from the ports: they cannot decide them.
            errors.push(ConfigError::new(
                "",
                None,
                "PORT in the env files uses an address variable (${PM_...}); the base port must be a number",
            ));
            return 5000;
        };
        (p.to_string(), "PORT in the env files".to_string())
    } else if let Ok(p) = std::env::var("PORT") {
        (p, "$PORT".to_string())
    } else {
        return 5000;
    };
    match ports::parse_port(&value) {
        Ok(port) => port,
        Err(message) => {
            errors.push(ConfigError::new("", None, format!("{source}: {message}")));
            5000
        }
    }
}

/// Loads everything and builds the Plan, or returns every problem found.
pub fn load(app: &AppArgs, options: &LoadOptions) -> Result<(Plan, Vec<EnvRead>)> {
    let paths = paths(app)?;
    let mut errors = Vec::new();

    let types = match input::read(&paths.procfile) {
        Ok(text) => match procfile::parse(&text, &paths.procfile_shown) {
            Ok(parsed) => Some(parsed.types),
            Err(es) => {
                errors.extend(es);
                None
            }
        },
        // `pm run` works in a directory with only a .env, as foreman's does.
        Err(e) if e.is_not_found() && options.procfile_optional && app.procfile.is_none() => {
            Some(Vec::new())
        }
        Err(e) => {
            errors.push(ConfigError::new(
                paths.procfile_shown.clone(),
                None,
                format!("{e}{}", procfile_hint(&paths, &e)),
            ));
            None
        }
    };
    let address_names: HashSet<String> = types
        .iter()
        .flatten()
        .flat_map(|t| {
            let (host, port) = address_vars(&t.name);
            [host, port]
        })
        .chain([LISTEN_HOST_VAR.to_string()])
        .collect();
    let (env, env_read) = env_files(&paths, &|name| address_names.contains(name), &mut errors);
    let settings = match (&types, input::read(&paths.settings)) {
        (Some(types), Ok(text)) => {
            let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
            pm_toml::parse(&text, &paths.settings_shown, &names).unwrap_or_else(|es| {
                errors.extend(es);
                Settings::default()
            })
        }
        (_, Err(e)) if e.is_not_found() => Settings::default(),
        (_, Err(e)) => {
            errors.push(ConfigError::new(
                paths.settings_shown.clone(),
                None,
                e.to_string(),
            ));
            Settings::default()
        }
        (None, Ok(_)) => Settings::default(),
    };
    let base_port = base_port(app, &settings, &env, &mut errors);
    if app.port_step == 0 {
        errors.push(ConfigError::new("", None, "--port-step must be at least 1"));
    }

    let Some(types) = types else {
        return Err(Error::Config(errors));
    };
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    let (mut counts, explicit) =
        match formation(options, settings.defaults.formation.as_deref(), &names) {
            Ok(counts) => counts,
            Err(message) => {
                errors.push(ConfigError::new("", None, message));
                (vec![0; names.len()], vec![true; names.len()])
            }
        };
    pull_in_dependencies(&names, &mut counts, &explicit, &settings);
    // A type that runs must find what it depends on running too.
    for (name, &count) in names.iter().zip(&counts) {
        let Some(own) = settings.process.get(*name) else {
            continue;
        };
        for dep in &own.depends_on {
            let dep_count = names.iter().position(|n| n == dep).map_or(0, |i| counts[i]);
            if count > 0 && dep_count == 0 {
                errors.push(ConfigError::new(
                    paths.settings_shown.clone(),
                    None,
                    format!(
                        "\"{name}\" depends on \"{dep}\", which the formation sets to 0 (start it too: {dep}=1)"
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Config(errors));
    }
    let plan = Plan::build(PlanInputs {
        root: paths.root,
        procfile: paths.procfile_shown,
        types: types.into_iter().map(|t| (t.name, t.command)).collect(),
        counts,
        env,
        base_port,
        port_step: app.port_step,
        timeout: options
            .timeout
            .or(settings.defaults.timeout)
            .unwrap_or(DEFAULT_TIMEOUT),
        pty: options.pty,
        max_restarts: options.max_restarts,
        settings,
    })?;
    Ok((plan, env_read))
}

/// A type the formation leaves out (not named, no `all=N`) that a running
/// type depends on starts too, once, as `docker compose up web` starts what
/// web needs: `pm start web=2` runs web's database without naming it. A
/// dependency the formation sets to 0 by name stays an error.
fn pull_in_dependencies(
    names: &[&str],
    counts: &mut [u32],
    explicit: &[bool],
    settings: &Settings,
) {
    let mut stack: Vec<usize> = (0..names.len()).filter(|&i| counts[i] > 0).collect();
    while let Some(i) = stack.pop() {
        let Some(own) = settings.process.get(names[i]) else {
            continue;
        };
        for dep in &own.depends_on {
            if let Some(d) = names.iter().position(|n| n == dep)
                && counts[d] == 0
                && !explicit[d]
            {
                counts[d] = 1;
                stack.push(d);
            }
        }
    }
}

/// The shutdown grace when neither -t nor pm.toml sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts per type from `-m` and the positional arguments (later wins), or
/// else pm.toml's default formation. `release` runs once whenever the
/// Procfile has it, unless `release=0` or `--no-release` says otherwise.
/// Also says, per type, whether the formation gave its count explicitly
/// (by name or through `all=N`), rather than leaving it out.
fn formation(
    options: &LoadOptions,
    default: Option<&str>,
    names: &[&str],
) -> std::result::Result<(Vec<u32>, Vec<bool>), String> {
    let mut formation = match &options.formation.formation {
        Some(spec) => Formation::parse_spec(spec).map_err(|e| e.to_string())?,
        None => Formation::default(),
    };
    if !options.formation.processes.is_empty() {
        let positional =
            Formation::parse_args(&options.formation.processes).map_err(|e| e.to_string())?;
        formation = formation.merge(positional);
    }
    if formation.is_empty()
        && let Some(spec) = default
    {
        formation = Formation::parse_spec(spec).map_err(|e| format!("pm.toml: formation: {e}"))?;
    }
    let mut counts = formation.resolve(names).map_err(|e| e.to_string())?;
    let explicit: Vec<bool> = names
        .iter()
        .map(|name| {
            formation.is_empty()
                || formation.all.is_some()
                || formation.entries.iter().any(|(n, _)| n == name)
        })
        .collect();
    let release_named = formation.entries.iter().any(|(n, _)| n == RELEASE);
    for (name, count) in names.iter().zip(counts.iter_mut()) {
        if *name == RELEASE {
            *count = if options.no_release {
                0
            } else if release_named {
                (*count).min(1)
            } else {
                1
            };
        }
    }
    Ok((counts, explicit))
}

/// `-t` seconds as a Duration.
pub fn timeout(seconds: f64) -> Result<Duration> {
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(Error::Invalid(format!(
            "--timeout {}: expected a number of seconds between 0 and 86400",
            Number(seconds)
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}
