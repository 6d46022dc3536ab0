//! `pm.toml`: the settings a Procfile cannot hold. Pure: text in, typed
//! settings or located errors out.
//!
//! Deserialization (serde + the `toml` crate with `deny_unknown_fields`)
//! catches unknown keys and wrong types, with the line from the error span.
//! Validation then checks what types cannot: signal names, one readiness
//! probe per check, positive durations, process names the Procfile defines,
//! dependency cycles.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use crate::model::{Restart, parse_signal};

/// The file name pm looks for next to the Procfile.
pub const FILE_NAME: &str = "pm.toml";

/// Health check defaults: seconds between probes, seconds per probe, and
/// the results in a row that change the verdict.
/// Lines kept per instance when pm.toml does not say.
pub const DEFAULT_SCROLLBACK: usize = 1000;
/// The most `scrollback` may ask for (each instance is capped at 1 MiB of
/// text anyway).
pub const MAX_SCROLLBACK: usize = 1_000_000;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest probe interval or timeout, in seconds.
const MIN_PROBE_SECONDS: f64 = 0.01;
/// The longest duration of any setting, in seconds: a day.
const MAX_SECONDS: f64 = 86_400.0;
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_FAILURES: u32 = 3;
/// How long watched files must be quiet before a burst of saves restarts.
pub const DEFAULT_WATCH_DEBOUNCE: Duration = Duration::from_millis(200);
pub const DEFAULT_SUCCESSES: u32 = 1;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    process: BTreeMap<String, Spanned<RawProcess>>,
    #[serde(default)]
    audit: RawAudit,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    ignore: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    formation: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    timeout: Option<Spanned<f64>>,
    scrollback: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawRestart {
    OnFailure,
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawProxy {
    Port(i64),
    Address(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    restart: Option<RawRestart>,
    max_restarts: Option<Spanned<i64>>,
    stop_signal: Option<Spanned<String>>,
    stop_timeout: Option<Spanned<f64>>,
    pty: Option<bool>,
    depends_on: Option<Spanned<Vec<Spanned<String>>>>,
    proxy: Option<Spanned<RawProxy>>,
    ready: Option<Spanned<RawCheck>>,
    live: Option<Spanned<RawCheck>>,
    watch: Option<Vec<Spanned<String>>>,
    watch_ignore: Option<Vec<Spanned<String>>>,
    watch_debounce: Option<Spanned<f64>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    tcp: Option<bool>,
    http: Option<String>,
    exec: Option<String>,
    log: Option<Spanned<String>>,
    interval: Option<Spanned<f64>>,
    timeout: Option<Spanned<f64>>,
    failures: Option<Spanned<i64>>,
    successes: Option<Spanned<i64>>,
}

/// The validated contents of pm.toml.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub defaults: Defaults,
    /// Per process type, by name.
    pub process: BTreeMap<String, ProcessSettings>,
    pub audit: Audit,
}

/// `[audit]`: what `pm audit` expects to differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// `ignore`: process types (of any Procfile) and variables whose
    /// findings are expected differences, never drift. Not checked against
    /// the Procfile: a dev-only type lives in `Procfile.dev`.
    pub ignore: Vec<Ignored>,
}

/// One name of `[audit] ignore`, with the line it is written on (a name
/// found nowhere is worth a warning that points at it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub name: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    pub formation: Option<String>,
    pub port: Option<u16>,
    pub timeout: Option<Duration>,
    /// Lines kept per instance for `pm logs` and `pm attach`.
    pub scrollback: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSettings {
    pub restart: Option<Restart>,
    pub max_restarts: Option<u32>,
    pub stop_signal: Option<Signal>,
    pub stop_timeout: Option<Duration>,
    pub pty: Option<bool>,
    pub depends_on: Vec<String>,
    pub proxy: Option<Proxy>,
    pub ready: Option<Check>,
    pub live: Option<Check>,
    /// Restart on a change of these files (`watch`, `watch_ignore`).
    pub watch: Option<WatchGlobs>,
}

/// The files a type watches: globs relative to the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchGlobs {
    pub include: Vec<String>,
    /// On top of what is always ignored (`.git`, `node_modules`, ...).
    pub ignore: Vec<String>,
    /// How long its files must be quiet before a burst of changes is one
    /// restart (`watch_debounce`).
    pub debounce: Duration,
}

/// Where the load balancer of a type listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Connect to 127.0.0.1:$PORT.
    Tcp,
    /// GET this path on 127.0.0.1:$PORT; 2xx and 3xx pass.
    Http(String),
    /// Run this command; exit 0 passes.
    Exec(String),
    /// Readiness only: ready once a line the instance writes in this run
    /// matches (matched by the relay that frames its output).
    Log(LogPattern),
}

/// The regular expression of a `log` readiness check (the `regex` crate's
/// syntax), matched against each line's bytes, without its line ending.
#[derive(Debug, Clone)]
pub struct LogPattern(regex::bytes::Regex);

impl LogPattern {
    pub fn new(pattern: &str) -> Result<LogPattern, String> {
        regex::bytes::Regex::new(pattern)
            .map(LogPattern)
            .map_err(|e| one_line_regex_error(&e))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, line: &[u8]) -> bool {
        self.0.is_match(line)
    }
}

impl PartialEq for LogPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for LogPattern {}

/// The regex crate's error, whose message spans several lines (the pattern,
/// a caret, the reason), as its last line: the reason.
fn one_line_regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().trim_start_matches("error: ").to_string())
            .unwrap_or_else(|| "invalid regular expression".into()),
        other => other.to_string().replace('\n', " "),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub failures: u32,
    pub successes: u32,
}

impl Check {
    /// A `tcp` check with every setting at its default.
    pub fn tcp() -> Check {
        Check {
            probe: Probe::Tcp,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_PROBE_TIMEOUT,
            failures: DEFAULT_FAILURES,
            successes: DEFAULT_SUCCESSES,
        }
    }
}

/// A glob as `watch` and `watch_ignore` take them: relative to the root,
/// `*` within one path component, `**` across them.
pub fn glob(text: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .build()
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn err(&mut self, offset: usize, message: String) {
        self.errors.push(ConfigError::new(
            self.file,
            Some(line_of(self.text, offset)),
            message,
        ));
    }

    fn seconds(&mut self, value: &Spanned<f64>, what: &str) -> Option<Duration> {
        self.seconds_from(value, what, 0.0, "0")
    }

    /// Seconds between `min` (shown as `min_shown`) and a day.
    fn seconds_from(
        &mut self,
        value: &Spanned<f64>,
        what: &str,
        min: f64,
        min_shown: &str,
    ) -> Option<Duration> {
        let v = *value.get_ref();
        if v.is_finite() && (min..=MAX_SECONDS).contains(&v) {
            Some(Duration::from_secs_f64(v))
        } else {
            let found = self.written(value.span(), v);
            self.err(
                value.span().start,
                format!(
                    "{what} must be a number of seconds between {min_shown} and 86400, found {found}"
                ),
            );
            None
        }
    }

    /// A number as the file writes it (`1e308`, not its 309 digits), or
    /// shortened when it is long.
    fn written(&self, span: std::ops::Range<usize>, value: f64) -> String {
        match self.text.get(span) {
            Some(text) if text.len() <= 24 => text.to_string(),
            _ => format!("{value:e}"),
        }
    }

    fn count(&mut self, value: &Spanned<i64>, what: &str, min: i64) -> Option<u32> {
        let v = *value.get_ref();
        if v >= min && v <= i64::from(u32::MAX) {
            u32::try_from(v).ok()
        } else {
            self.err(
                value.span().start,
                format!("{what} must be a whole number of at least {min}, found {v}"),
            );
            None
        }
    }
}

/// Parses and validates pm.toml against the Procfile's process type names.
pub fn parse(text: &str, file: &str, types: &[&str]) -> Result<Settings, Vec<ConfigError>> {
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().trim().replace('\n', " ");
            return Err(vec![ConfigError::new(file, line, message)]);
        }
    };
    let mut ctx = Ctx {
        text,
        file,
        errors: Vec::new(),
    };
    let mut settings = Settings::default();

    if let Some(f) = &raw.defaults.formation {
        settings.defaults.formation = Some(f.get_ref().clone());
    }
    if let Some(p) = &raw.defaults.port {
        match u16::try_from(*p.get_ref()) {
            Ok(port) if port > 0 => settings.defaults.port = Some(port),
            _ => ctx.err(
                p.span().start,
                format!("port must be between 1 and 65535, found {}", p.get_ref()),
            ),
        }
    }
    if let Some(t) = &raw.defaults.timeout {
        settings.defaults.timeout = ctx.seconds(t, "timeout");
    }
    if let Some(n) = &raw.defaults.scrollback {
        match usize::try_from(*n.get_ref()) {
            Ok(lines) if lines <= MAX_SCROLLBACK => settings.defaults.scrollback = Some(lines),
            _ => ctx.err(
                n.span().start,
                format!(
                    "scrollback must be a number of lines between 0 and {MAX_SCROLLBACK}, found {}",
                    n.get_ref()
                ),
            ),
        }
    }

    for (name, spanned) in &raw.process {
        let at = spanned.span().start;
        if !types.contains(&name.as_str()) {
            ctx.err(
                header_offset(text, name).unwrap_or(at),
                format!("process type \"{name}\" is not defined in the Procfile"),
            );
            continue;
        }
        let raw = spanned.get_ref();
        let mut out = ProcessSettings {
            restart: raw.restart.as_ref().map(|r| match r {
                RawRestart::OnFailure => Restart::OnFailure,
                RawRestart::Always => Restart::Always,
                RawRestart::Never => Restart::Never,
            }),
            pty: raw.pty,
            ..ProcessSettings::default()
        };
        if let Some(m) = &raw.max_restarts {
            out.max_restarts = ctx.count(m, "max_restarts", 0);
        }
        if let Some(s) = &raw.stop_signal {
            match parse_signal(s.get_ref()) {
                Some(sig) => out.stop_signal = Some(sig),
                None => ctx.err(
                    s.span().start,
                    format!("unknown signal \"{}\" for stop_signal", s.get_ref()),
                ),
            }
        }
        if let Some(t) = &raw.stop_timeout {
            out.stop_timeout = ctx.seconds(t, "stop_timeout");
        }
        if let Some(deps) = &raw.depends_on {
            for dep in deps.get_ref() {
                let d = dep.get_ref();
                if d == name {
                    ctx.err(
                        dep.span().start,
                        format!("process type \"{name}\" depends on itself"),
                    );
                } else if !types.contains(&d.as_str()) {
                    ctx.err(
                        dep.span().start,
                        format!("depends_on names \"{d}\", which is not defined in the Procfile"),
                    );
                } else {
                    out.depends_on.push(d.clone());
                }
            }
        }
        if let Some(p) = &raw.proxy {
            out.proxy = proxy(&mut ctx, p);
        }
        if let Some(c) = &raw.ready {
            out.ready = check(&mut ctx, c, "ready");
        }
        if let Some(c) = &raw.live {
            out.live = check(&mut ctx, c, "live");
        }
        let include = globs(&mut ctx, raw.watch.as_deref(), "watch");
        let ignore = globs(&mut ctx, raw.watch_ignore.as_deref(), "watch_ignore");
        let debounce = raw
            .watch_debounce
            .as_ref()
            .and_then(|d| ctx.seconds_from(d, "watch_debounce", MIN_PROBE_SECONDS, "0.01"));
        if !include.is_empty() {
            out.watch = Some(WatchGlobs {
                include,
                ignore,
                debounce: debounce.unwrap_or(DEFAULT_WATCH_DEBOUNCE),
            });
        } else {
            let first_ignore = raw.watch_ignore.as_ref().and_then(|w| w.first());
            let lone = [
                ("watch_ignore", first_ignore.map(|g| g.span().start)),
                (
                    "watch_debounce",
                    raw.watch_debounce.as_ref().map(|d| d.span().start),
                ),
            ];
            for (key, at) in lone {
                if let Some(at) = at {
                    ctx.err(
                        at,
                        format!(
                            "{key} without watch: add watch = [\"GLOB\", ...] to say what to watch"
                        ),
                    );
                }
            }
        }
        settings.process.insert(name.clone(), out);
    }

    for name in raw.audit.ignore.iter().flatten() {
        let text = name.get_ref();
        // A process type's characters; a variable's are a subset of them.
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid {
            settings.audit.ignore.push(Ignored {
                name: text.clone(),
                line: line_of(ctx.text, name.span().start),
            });
        } else {
            ctx.err(
                name.span().start,
                format!(
                    "[audit] ignore: \"{}\" is neither a process type nor a variable name",
                    super::one_line(text)
                ),
            );
        }
    }

    if let Some(cycle) = find_cycle(&settings) {
        let first = &cycle[0];
        let at = header_offset(text, first).unwrap_or(0);
        ctx.err(
            at,
            format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
        );
    }

    if ctx.errors.is_empty() {
        Ok(settings)
    } else {
        ctx.errors.sort_by_key(|e| e.line);
        Err(ctx.errors)
    }
}

/// The globs of `watch` or `watch_ignore`, each checked (as the watcher
/// will read it: relative to the root, `**` across directories).
fn globs(ctx: &mut Ctx<'_>, raw: Option<&[Spanned<String>]>, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for g in raw.unwrap_or_default() {
        let text = g.get_ref();
        if text.starts_with('/') {
            ctx.err(
                g.span().start,
                format!("{key} glob \"{text}\" must be relative to the root, not absolute"),
            );
            continue;
        }
        match glob(text) {
            Ok(_) => out.push(text.clone()),
            Err(e) => ctx.err(
                g.span().start,
                format!("{key} glob \"{text}\" is not valid: {}", e.kind()),
            ),
        }
    }
    out
}

fn proxy(ctx: &mut Ctx<'_>, p: &Spanned<RawProxy>) -> Option<Proxy> {
    let at = p.span().start;
    match p.get_ref() {
        RawProxy::Port(n) => match u16::try_from(*n) {
            Ok(port) if port > 0 => Some(Proxy {
                host: "127.0.0.1".into(),
                port,
            }),
            _ => {
                ctx.err(
                    at,
                    format!("proxy port must be between 1 and 65535, found {n}"),
                );
                None
            }
        },
        RawProxy::Address(s) => {
            let parsed = s.rsplit_once(':').and_then(|(host, port)| {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
                (!host.is_empty()).then(|| Proxy {
                    host: host.to_string(),
                    port,
                })
            });
            if parsed.is_none() {
                ctx.err(
                    at,
                    format!("proxy must be a port or \"HOST:PORT\", found \"{s}\""),
                );
            }
            parsed
        }
    }
}

fn check(ctx: &mut Ctx<'_>, c: &Spanned<RawCheck>, what: &str) -> Option<Check> {
    let at = c.span().start;
    let raw = c.get_ref();
    let mut probes = Vec::new();
    if raw.tcp == Some(true) {
        probes.push(Probe::Tcp);
    }
    if let Some(path) = &raw.http {
        if path.starts_with('/') {
            probes.push(Probe::Http(path.clone()));
        } else {
            ctx.err(
                at,
                format!("{what}.http must be a path starting with \"/\", found \"{path}\""),
            );
            return None;
        }
    }
    if let Some(cmd) = &raw.exec {
        if cmd.trim().is_empty() {
            ctx.err(
                at,
                format!("{what}.exec must be a command, found an empty string"),
            );
            return None;
        }
        probes.push(Probe::Exec(cmd.clone()));
    }
    if let Some(pattern) = &raw.log {
        if what == "live" {
            ctx.err(
                pattern.span().start,
                "live.log is for readiness only (a line once written says nothing about now): use tcp, http or exec".into(),
            );
            return None;
        }
        match LogPattern::new(pattern.get_ref()) {
            Ok(p) => probes.push(Probe::Log(p)),
            Err(e) => {
                ctx.err(
                    pattern.span().start,
                    format!("{what}.log is not a valid regular expression: {e}"),
                );
                return None;
            }
        }
    }
    if probes.len() != 1 {
        let kinds = if what == "live" {
            "tcp = true, http = \"/path\" or exec = \"command\""
        } else {
            "tcp = true, http = \"/path\", exec = \"command\" or log = \"REGEX\""
        };
        ctx.err(
            at,
            format!(
                "[{what}] needs exactly one of {kinds}, found {}",
                probes.len()
            ),
        );
        return None;
    }
    // Below a hundredth of a second a probe would spin, not check.
    let positive = |ctx: &mut Ctx<'_>, v: &Option<Spanned<f64>>, key: &str, default: f64| match v {
        None => Some(Duration::from_secs_f64(default)),
        Some(s) => ctx.seconds_from(s, &format!("{what}.{key}"), MIN_PROBE_SECONDS, "0.01"),
    };
    let interval = positive(
        ctx,
        &raw.interval,
        "interval",
        DEFAULT_INTERVAL.as_secs_f64(),
    )?;
    let timeout = positive(
        ctx,
        &raw.timeout,
        "timeout",
        DEFAULT_PROBE_TIMEOUT.as_secs_f64(),
    )?;
    let failures = match &raw.failures {
        Some(f) => ctx.count(f, &format!("{what}.failures"), 1)?,
        None => DEFAULT_FAILURES,
    };
    let successes = match &raw.successes {
        Some(s) => ctx.count(s, &format!("{what}.successes"), 1)?,
        None => DEFAULT_SUCCESSES,
    };
    Some(Check {
        probe: probes.remove(0),
        interval,
        timeout,
        failures,
        successes,
    })
}

/// Where `[process.NAME]` (or `[process.NAME.ready]`...) is written.
fn header_offset(text: &str, name: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        let t = t.strip_prefix('[').map(str::trim_start).unwrap_or("");
        if let Some(rest) = t.strip_prefix("process.") {
            let rest = rest.trim_start();
            let unquoted = rest.trim_start_matches(['"', '\'']);
            if let Some(after) = unquoted.strip_prefix(name)
                && after
                    .trim_start_matches(['"', '\''])
                    .starts_with([']', '.', ' '])
            {
                return Some(offset);
            }
        }
        offset += line.len();
    }
    None
}

/// A dependency cycle, as the names along it (first repeated at the end).
fn find_cycle(settings: &Settings) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        name: &str,
        settings: &Settings,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(name).copied().unwrap_or(Mark::New) {
            Mark::Done => return None,
            Mark::Active => {
                let start = stack.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            Mark::New => {}
        }
        marks.insert(name.to_string(), Mark::Active);
        stack.push(name.to_string());
        if let Some(p) = settings.process.get(name) {
            for dep in &p.depends_on {
                if let Some(cycle) = visit(dep, settings, marks, stack) {
                    return Some(cycle);
                }
            }
        }
        stack.pop();
        marks.insert(name.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for name in settings.process.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(name, settings, &mut marks, &mut stack) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: &[&str] = &["web", "worker", "db", "release"];

    fn ok(text: &str) -> Settings {
        parse(text, "pm.toml", TYPES).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn errs(text: &str) -> Vec<String> {
        parse(text, "pm.toml", TYPES)
            .expect_err("should fail")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(ok(""), Settings::default());
    }

    #[test]
    fn full_schema() {
        let s = ok(r#"
[defaults]
formation = "web=2,worker=1"
port = 6000
timeout = 2.5
scrollback = 5000

[process.web]
restart = "always"
max_restarts = 10
stop_signal = "INT"
stop_timeout = 10
pty = true
depends_on = ["db"]
proxy = 8080

[process.web.ready]
http = "/healthz"
interval = 0.5
timeout = 2
failures = 2
successes = 3

[process.web.live]
tcp = true

[process.worker]
restart = "never"
proxy = "0.0.0.0:9000"

[process.db.ready]
exec = "pg_isready"
"#);
        assert_eq!(s.defaults.formation.as_deref(), Some("web=2,worker=1"));
        assert_eq!(s.defaults.port, Some(6000));
        assert_eq!(s.defaults.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.defaults.scrollback, Some(5000));
        let web = &s.process["web"];
        assert_eq!(web.restart, Some(Restart::Always));
        assert_eq!(web.max_restarts, Some(10));
        assert_eq!(web.stop_signal, Some(Signal::SIGINT));
        assert_eq!(web.stop_timeout, Some(Duration::from_secs(10)));
        assert_eq!(web.pty, Some(true));
        assert_eq!(web.depends_on, vec!["db".to_string()]);
        assert_eq!(
            web.proxy,
            Some(Proxy {
                host: "127.0.0.1".into(),
                port: 8080
            })
        );
        let ready = web.ready.as_ref().unwrap();
        assert_eq!(ready.probe, Probe::Http("/healthz".into()));
        assert_eq!(ready.interval, Duration::from_millis(500));
        assert_eq!(ready.timeout, Duration::from_secs(2));
        assert_eq!((ready.failures, ready.successes), (2, 3));
        let live = web.live.as_ref().unwrap();
        assert_eq!(live.probe, Probe::Tcp);
        assert_eq!(live.interval, Duration::from_secs(1));
        assert_eq!((live.failures, live.successes), (3, 1));
        assert_eq!(s.process["worker"].restart, Some(Restart::Never));
        assert_eq!(
            s.process["worker"].proxy,
            Some(Proxy {
                host: "0.0.0.0".into(),
                port: 9000
            })
        );
        assert_eq!(
            s.process["db"].ready.as_ref().unwrap().probe,
            Probe::Exec("pg_isready".into())
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_line() {
        let e = errs("[defaults]\nport = 5000\nportt = 1\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("pm.toml:3: unknown field `portt`"),
            "{e:?}"
        );

        let e = errs("[process.web]\nrestart = \"sometimes\"\n");
        assert!(e[0].starts_with("pm.toml:2: "), "{e:?}");
        assert!(e[0].contains("sometimes"), "{e:?}");

        let e = errs("[process.web]\npty = \"yes\"\n");
        assert!(e[0].starts_with("pm.toml:2: "), "{e:?}");

        let e = errs("[unknown]\n");
        assert!(
            e[0].starts_with("pm.toml:1: unknown field `unknown`"),
            "{e:?}"
        );

        let e = errs("this is = not toml =\n");
        assert!(e[0].starts_with("pm.toml:1: "), "{e:?}");
    }

    #[test]
    fn audit_ignore_lists_names_of_any_procfile() {
        let s = ok(
            "[process.web]\npty = true\n\n[audit]\nignore = [\n  \"webpack\",\n  \"SENTRY_DSN\",\n]\n",
        );
        assert_eq!(
            s.audit.ignore,
            [
                Ignored {
                    name: "webpack".into(),
                    line: 6
                },
                Ignored {
                    name: "SENTRY_DSN".into(),
                    line: 7
                },
            ]
        );
        assert_eq!(ok("[audit]\n").audit, Audit::default());
        let e = errs("[audit]\nignore = [\"web\", \"a b\", \"\"]\n");
        assert_eq!(
            e,
            [
                "pm.toml:2: [audit] ignore: \"a b\" is neither a process type nor a variable name",
                "pm.toml:2: [audit] ignore: \"\" is neither a process type nor a variable name",
            ]
        );
        let e = errs("[audit]\nignor = [\"web\"]\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("pm.toml:2: unknown field `ignor`, expected `ignore`"),
            "{e:?}"
        );
        let e = errs("[audit]\nignore = \"web\"\n");
        assert!(e[0].starts_with("pm.toml:2: "), "{e:?}");
    }

    #[test]
    fn process_not_in_procfile() {
        let e = errs("[process.web]\npty = true\n\n[process.wbe]\npty = true\n");
        assert_eq!(
            e,
            ["pm.toml:4: process type \"wbe\" is not defined in the Procfile"]
        );
        let e = errs("[process.wbe.ready]\ntcp = true\n");
        assert_eq!(
            e,
            ["pm.toml:1: process type \"wbe\" is not defined in the Procfile"]
        );
    }

    #[test]
    fn value_errors_are_all_reported() {
        let e = errs(
            "[defaults]\nport = 70000\ntimeout = -1\n[process.web]\nstop_signal = \"TERMINATE\"\nmax_restarts = -2\ndepends_on = [\"nope\"]\nproxy = \"nohost\"\n",
        );
        assert_eq!(
            e,
            [
                "pm.toml:2: port must be between 1 and 65535, found 70000",
                "pm.toml:3: timeout must be a number of seconds between 0 and 86400, found -1",
                "pm.toml:5: unknown signal \"TERMINATE\" for stop_signal",
                "pm.toml:6: max_restarts must be a whole number of at least 0, found -2",
                "pm.toml:7: depends_on names \"nope\", which is not defined in the Procfile",
                "pm.toml:8: proxy must be a port or \"HOST:PORT\", found \"nohost\"",
            ]
        );
    }

    #[test]
    fn scrollback_is_a_count_of_lines() {
        assert_eq!(
            ok("[defaults]\nscrollback = 0\n").defaults.scrollback,
            Some(0)
        );
        assert_eq!(
            errs("[defaults]\nscrollback = -5\n"),
            ["pm.toml:2: scrollback must be a number of lines between 0 and 1000000, found -5"]
        );
        assert_eq!(
            errs("\n[defaults]\nscrollback = 1000001\n"),
            [
                "pm.toml:3: scrollback must be a number of lines between 0 and 1000000, found 1000001"
            ]
        );
        assert!(errs("[defaults]\nscrollback = \"many\"\n")[0].starts_with("pm.toml:2:"));
    }

    #[test]
    fn checks_need_exactly_one_probe() {
        let e = errs("[process.web.ready]\ninterval = 1\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("exactly one of"), "{e:?}");
        let e = errs("[process.web.ready]\ntcp = true\nexec = \"true\"\n");
        assert!(e[0].contains("found 2"), "{e:?}");
        let e = errs("[process.web.ready]\nhttp = \"healthz\"\n");
        assert!(e[0].contains("starting with \"/\""), "{e:?}");
        let e = errs("[process.web.ready]\ntcp = true\ninterval = 0\n");
        assert_eq!(
            e,
            [
                "pm.toml:3: ready.interval must be a number of seconds between 0.01 and 86400, found 0"
            ]
        );
    }

    #[test]
    fn durations_are_bounded_and_shown_as_written() {
        let e = errs(
            "[process.web]\nstop_timeout = 1e308\n[process.web.ready]\ntcp = true\ninterval = 1e-300\n",
        );
        assert_eq!(
            e,
            [
                "pm.toml:2: stop_timeout must be a number of seconds between 0 and 86400, found 1e308",
                "pm.toml:5: ready.interval must be a number of seconds between 0.01 and 86400, found 1e-300",
            ]
        );
        assert_eq!(
            errs("[process.web.live]\ntcp = true\ntimeout = 0.001\n"),
            [
                "pm.toml:3: live.timeout must be a number of seconds between 0.01 and 86400, found 0.001"
            ]
        );
        assert!(
            parse(
                "[process.web.live]\ntcp = true\ninterval = 0.01\n",
                "pm.toml",
                TYPES
            )
            .is_ok()
        );
    }

    #[test]
    fn log_readiness_is_a_regex_for_readiness_only() {
        let s = parse(
            "[process.db.ready]\nlog = \"ready to accept connections\"\n",
            "pm.toml",
            TYPES,
        )
        .unwrap();
        let ready = s.process["db"].ready.as_ref().unwrap();
        assert_eq!(
            ready.probe,
            Probe::Log(LogPattern::new("ready to accept connections").unwrap())
        );
        let e = errs("[process.web.live]\nlog = \"up\"\n");
        assert_eq!(
            e,
            [
                "pm.toml:2: live.log is for readiness only (a line once written says nothing about now): use tcp, http or exec"
            ]
        );
        let e = errs("[process.web.ready]\nlog = \"(unclosed\"\n");
        assert_eq!(
            e,
            ["pm.toml:2: ready.log is not a valid regular expression: unclosed group"]
        );
        let e = errs("[process.web.ready]\nlog = \"x\"\ntcp = true\n");
        assert!(e[0].contains("or log = \"REGEX\", found 2"), "{e:?}");
    }

    #[test]
    fn watch_globs_are_checked_where_they_are_written() {
        let s = parse(
            "[process.web]\nwatch = [\"app/**/*.py\", \"templates/**\"]\nwatch_ignore = [\"**/*.tmp\"]\n",
            "pm.toml",
            TYPES,
        )
        .unwrap();
        assert_eq!(
            s.process["web"].watch,
            Some(WatchGlobs {
                include: vec!["app/**/*.py".into(), "templates/**".into()],
                ignore: vec!["**/*.tmp".into()],
                debounce: DEFAULT_WATCH_DEBOUNCE,
            })
        );
        let s = parse(
            "[process.web]\nwatch = [\"**\"]\nwatch_debounce = 1.5\n",
            "pm.toml",
            TYPES,
        )
        .unwrap();
        let w = s.process["web"].watch.clone().unwrap();
        assert_eq!(w.debounce, Duration::from_millis(1500));
        assert_eq!(
            errs("[process.web]\nwatch = [\"**\"]\nwatch_debounce = 0\n"),
            [
                "pm.toml:3: watch_debounce must be a number of seconds between 0.01 and 86400, found 0"
            ]
        );
        assert_eq!(
            errs("[process.web]\nwatch_debounce = 1\n"),
            [
                "pm.toml:2: watch_debounce without watch: add watch = [\"GLOB\", ...] to say what to watch"
            ]
        );
        let e = errs("[process.web]\nwatch = [\n  \"ok/**\",\n  \"a/{b\",\n  \"/abs/*\",\n]\n");
        assert_eq!(
            e,
            [
                "pm.toml:4: watch glob \"a/{b\" is not valid: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)",
                "pm.toml:5: watch glob \"/abs/*\" must be relative to the root, not absolute",
            ]
        );
        let e = errs("[process.web]\nwatch_ignore = [\"*.tmp\"]\n");
        assert_eq!(
            e,
            [
                "pm.toml:2: watch_ignore without watch: add watch = [\"GLOB\", ...] to say what to watch"
            ]
        );
        let e = errs("[process.web]\nwatch = \"app/**\"\n");
        assert_eq!(e.len(), 1, "a string is not a list: {e:?}");
    }

    #[test]
    fn dependency_cycles() {
        let e = errs(
            "[process.web]\ndepends_on = [\"worker\"]\n[process.worker]\ndepends_on = [\"db\"]\n[process.db]\ndepends_on = [\"web\"]\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("cycle: db -> web -> worker -> db"), "{e:?}");
        let e = errs("[process.web]\ndepends_on = [\"web\"]\n");
        assert_eq!(e, ["pm.toml:2: process type \"web\" depends on itself"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text, "pm.toml", TYPES);
        }

        #[test]
        fn never_panics_on_near_valid(
            key in "(restart|max_restarts|stop_signal|stop_timeout|pty|depends_on|proxy|bogus)",
            value in "(\"[a-z:0-9.]{0,8}\"|-?[0-9]{1,6}|true|\\[\"(web|db|x)\"\\]|[0-9]\\.[0-9])",
        ) {
            let text = format!("[process.web]\n{key} = {value}\n");
            let _ = parse(&text, "pm.toml", TYPES);
        }
    }
}
