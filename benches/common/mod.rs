//! What both benchmarks share: how `main` decides to run, the results
//! table, and the process helpers (spawning with a parent-death signal,
//! /proc, killing and reaping everything a run started). Each bench uses
//! part of it.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

/// The end of a bench's `main`. `cargo bench` passes `--bench`; without it
/// (`cargo test --benches`) this prints a note and returns, so test runs
/// never start the benchmark. Otherwise it parses the options and exits
/// with what `run` returns, or 2 for bad options.
pub fn run_when_benched<C>(
    name: &str,
    args: &[String],
    parse: impl FnOnce(&[String]) -> Result<C, String>,
    run: impl FnOnce(&C) -> i32,
) {
    if !args.iter().any(|a| a == "--bench") {
        println!("{name}: not run by `cargo bench`; skipped (pass --bench to run it)");
        return;
    }
    let config = match parse(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{name}: {message}");
            std::process::exit(2);
        }
    };
    std::process::exit(run(&config));
}

/// Whether the environment variable is set to something other than `0`.
pub fn env_on(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The pm binary to measure (`PM_BENCH_PM`, or this package's) and this
/// executable, which is also the workload of the children it starts.
pub fn binaries() -> Result<(PathBuf, PathBuf), String> {
    let pm = std::env::var_os("PM_BENCH_PM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pm")));
    if !pm.is_file() {
        return Err(format!("no pm binary at {}", pm.display()));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    Ok((pm, exe))
}

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

/// Prints the table and how many targets were missed; the exit code: 1 when
/// `strict` and a target was missed, else 0.
pub fn finish_run(rows: &[Row], columns: [&str; 2], started: Instant, strict: bool) -> i32 {
    println!();
    print_table(rows, columns);
    let missed = rows.iter().filter(|r| r.ok == Some(false)).count();
    println!(
        "\n{} target(s) missed; whole run {:.1} s",
        missed,
        started.elapsed().as_secs_f64()
    );
    if strict && missed > 0 { 1 } else { 0 }
}

/// Orphans of what the bench starts are reparented to it and reaped (where
/// the platform has a subreaper: Linux).
pub fn become_subreaper() {
    platform::become_subreaper();
}

/// Sends `signal` to `pid`, never to init or to the bench itself.
pub fn signal_pid(pid: i32, signal: i32) {
    if pid > 1 && pid as u32 != std::process::id() {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Signals a process group; never the bench's own.
pub fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: getpgrp has no preconditions.
    if pgid > 1 && pgid != unsafe { libc::getpgrp() } {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// The process `cmd` starts gets `signal` when the bench dies (where the
/// platform has a parent-death signal: Linux).
pub fn die_with_bench(cmd: &mut Command, signal: i32) {
    platform::die_with_bench(cmd, signal);
}

/// A descriptor that polls readable once `pid` has exited; None where the
/// platform has no pidfd (then exits are polled for).
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    platform::pidfd_open(pid)
}

/// SIGKILLs each process and its process group.
pub fn kill_all(pids: &[i32]) {
    for &pid in pids {
        if let Some(stat) = read_stat(pid) {
            signal_group(stat.pgrp, libc::SIGKILL);
        }
        signal_pid(pid, libc::SIGKILL);
    }
}

/// Kills and reaps whatever was reparented to the bench (it is a subreaper):
/// the remains of every tree it started.
pub fn reap_orphans(limit: Duration) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + limit;
    loop {
        let orphans: Vec<i32> = all_stats()
            .into_iter()
            .filter(|s| s.ppid == me)
            .map(|s| s.pid)
            .collect();
        if orphans.is_empty() || Instant::now() > deadline {
            return;
        }
        let mut tree = orphans.clone();
        for &pid in &orphans {
            tree.extend(descendants(pid));
        }
        kill_all(&tree);
        for &pid in &orphans {
            // SAFETY: waitpid on our own child; the status is not needed.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What /proc/PID/stat says of a process.
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: u8,
    pub ppid: i32,
    pub pgrp: i32,
    /// CPU time in clock ticks.
    pub utime: u64,
    pub stime: u64,
}

pub fn read_stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Fields from the third (state) on; utime and stime are the 14th and 15th.
    Some(Stat {
        pid,
        comm,
        state: *fields.first()?.as_bytes().first()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// Every process, from a snapshot of /proc.
pub fn all_stats() -> Vec<Stat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_stat)
        .collect()
}

/// Every process below `root`, from a snapshot of /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let stats = all_stats();
    let mut found = vec![root];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        found.extend(stats.iter().filter(|s| s.ppid == parent).map(|s| s.pid));
        at += 1;
    }
    found.remove(0);
    found
}

/// Alive: it exists and is neither a zombie nor dead, or it is a zombie
/// thread-group leader whose other threads still run (`Threads:` in
/// /proc/PID/status counts them).
pub fn is_alive(pid: i32) -> bool {
    match read_stat(pid) {
        None => false,
        Some(s) if matches!(s.state, b'Z' | b'X' | b'x') => {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Threads:"))
                        .and_then(|n| n.trim().parse::<u32>().ok())
                })
                .is_some_and(|threads| threads > 1)
        }
        Some(_) => true,
    }
}

pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// Nanoseconds on CPU, summed over the live threads (from schedstat).
pub fn task_cpu_ns(pid: i32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A temporary directory named `PREFIX...`, removed when dropped.
pub fn tempdir(prefix: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))
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
