//! What both benchmarks share: the results table and a few process helpers.
//! Each bench uses part of it.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;

/// One line of a results table: pm's figure next to the baseline's.
pub struct Row {
    pub scenario: String,
    pub measured: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    /// None: information only.
    pub ok: Option<bool>,
}

impl Row {
    /// A row with no target.
    pub fn info(
        scenario: impl Into<String>,
        measured: String,
        baseline: String,
        ratio: String,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            measured,
            baseline,
            ratio,
            target: String::new(),
            ok: None,
        }
    }

    /// A row judged against `target`.
    pub fn checked(
        scenario: impl Into<String>,
        measured: String,
        baseline: String,
        ratio: String,
        target: &str,
        ok: bool,
    ) -> Row {
        Row::info(scenario, measured, baseline, ratio).check(target, ok)
    }

    pub fn check(mut self, target: &str, ok: bool) -> Row {
        self.target = target.into();
        self.ok = Some(ok);
        self
    }

    /// A scenario that could not run: a miss.
    pub fn failed(scenario: &str, error: &str) -> Row {
        Row::info(
            scenario,
            format!("error: {error}"),
            String::new(),
            String::new(),
        )
        .check("", false)
    }
}

/// `0.91x`, or nothing when there is no baseline to divide by.
pub fn ratio(measured: f64, baseline: f64) -> String {
    if baseline > 0.0 && measured.is_finite() {
        format!("{:.2}x", measured / baseline)
    } else {
        String::new()
    }
}

/// Prints the rows as an aligned table; `columns` names what was measured
/// and what it is compared with.
pub fn print_table(rows: &[Row], columns: [&str; 2]) {
    let header = ["scenario", columns[0], columns[1], "ratio", "target", "ok?"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let ok = match r.ok {
                Some(true) => "ok",
                Some(false) => "MISS",
                None => "-",
            };
            [
                r.scenario.clone(),
                r.measured.clone(),
                r.baseline.clone(),
                r.ratio.clone(),
                r.target.clone(),
                ok.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut out = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            let _ = write!(out, "{cell:<width$}");
        }
        println!("{}", out.trim_end());
    };
    line(&header.map(String::from));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("{}", rule.join("-|-"));
    for row in &cells {
        line(row);
    }
}

/// Orphans of what the bench starts are reparented to it and reaped.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
}

/// Sends `signal` to `pid`, never to init or to the bench itself.
pub fn signal_pid(pid: i32, signal: i32) {
    if pid > 1 && pid as u32 != std::process::id() {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, signal) };
    }
}

pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A path quoted for a Procfile command (`sh -c`).
pub fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// CLOCK_MONOTONIC in nanoseconds, comparable across processes.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
