//! Fuzzes `pm::config::pm_toml::parse` with the Procfile types
//! `web`, `worker`, `db`, `release`.
//!
//! Invariants beyond "no panic":
//! - Ok: every `[process.NAME]` is a Procfile type; every `depends_on` entry
//!   is a Procfile type other than the process itself, and the dependencies
//!   have no cycle (checked here independently); ports are 1..=65535 and
//!   proxy hosts non-empty; durations are at most 86400 s, check intervals
//!   and timeouts above 0; check failures/successes are at least 1; an http
//!   probe is a path starting with `/`, an exec probe is not blank. A file
//!   with no `[process.*]` parses the same with no Procfile types at all.
//! - Err: at least one error; each names the file, has a line inside the
//!   file (or none), errors are sorted by line, and each displays as one line
//!   starting with `FILE` (see `PM_FUZZ_LENIENT` in docs/fuzzing.md).
#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pm::config::pm_toml::{self, Check, Probe, Settings};
use pm_fuzz::{is_one_line, lenient, line_count, text};

const FILE: &str = "pm.toml";
const TYPES: [&str; 4] = ["web", "worker", "db", "release"];
const DAY: Duration = Duration::from_secs(86_400);

fn check_check(c: &Check) {
    match &c.probe {
        Probe::Tcp => {}
        Probe::Http(path) => assert!(path.starts_with('/'), "http probe {path:?}"),
        Probe::Exec(cmd) => assert!(!cmd.trim().is_empty(), "blank exec probe"),
    }
    assert!(c.interval > Duration::ZERO && c.interval <= DAY);
    assert!(c.timeout > Duration::ZERO && c.timeout <= DAY);
    assert!(c.failures >= 1 && c.successes >= 1);
}

/// Whether the depends_on graph has a cycle (colour-marking DFS).
fn has_cycle(s: &Settings) -> bool {
    fn visit<'a>(name: &'a str, s: &'a Settings, state: &mut BTreeMap<&'a str, u8>) -> bool {
        match state.get(name) {
            Some(1) => return true,
            Some(_) => return false,
            None => {}
        }
        state.insert(name, 1);
        let deps = s
            .process
            .get(name)
            .map(|p| p.depends_on.as_slice())
            .unwrap_or_default();
        if deps.iter().any(|d| visit(d, s, state)) {
            return true;
        }
        state.insert(name, 2);
        false
    }
    let mut state = BTreeMap::new();
    s.process.keys().any(|n| visit(n, s, &mut state))
}

fuzz_target!(|data: &[u8]| {
    let text = text(data);
    let lines = line_count(&text);
    match pm_toml::parse(&text, FILE, &TYPES) {
        Ok(s) => {
            if let Some(port) = s.defaults.port {
                assert!(port >= 1);
            }
            if let Some(t) = s.defaults.timeout {
                assert!(t <= DAY);
            }
            for (name, p) in &s.process {
                assert!(TYPES.contains(&name.as_str()), "process {name:?}");
                for d in &p.depends_on {
                    assert!(TYPES.contains(&d.as_str()), "dependency {d:?}");
                    assert_ne!(d, name, "self dependency");
                }
                if let Some(t) = p.stop_timeout {
                    assert!(t <= DAY);
                }
                if let Some(proxy) = &p.proxy {
                    assert!(proxy.port >= 1 && !proxy.host.is_empty(), "{proxy:?}");
                }
                p.ready.iter().chain(&p.live).for_each(check_check);
            }
            assert!(!has_cycle(&s), "cycle accepted: {s:?}");
            if s.process.is_empty() {
                assert_eq!(pm_toml::parse(&text, FILE, &[]).as_ref(), Ok(&s));
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "Err with no errors");
            assert!(
                errors.windows(2).all(|w| w[0].line <= w[1].line),
                "unsorted"
            );
            for e in &errors {
                assert_eq!(e.file, FILE);
                if let Some(line) = e.line {
                    assert!(line >= 1 && line <= lines, "error line {line} of {lines}");
                }
                assert!(!e.message.is_empty(), "empty message");
                let shown = e.to_string();
                assert!(
                    lenient() || is_one_line(&shown),
                    "multi-line error: {shown:?}"
                );
                assert!(shown.starts_with(FILE), "{shown:?}");
            }
        }
    }
});
