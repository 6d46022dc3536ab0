//! What both benchmarks share: the results table and a few process helpers.
//! Each bench uses part of it.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;

/// Prints rows under a header as an aligned table, with a rule under the
/// header.
pub fn print_table(header: [&str; 6], cells: &[[String; 6]]) {
    let mut widths = header.map(str::len);
    for row in cells {
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
    for row in cells {
        line(row);
    }
}

/// The `ok?` column: met, missed, or information only.
pub fn ok_mark(ok: Option<bool>) -> String {
    match ok {
        Some(true) => "ok",
        Some(false) => "MISS",
        None => "-",
    }
    .to_string()
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
