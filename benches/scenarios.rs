//! Scenario benchmarks for `pm start`: the release binary runs on generated
//! Procfiles in temporary directories, and each figure is printed next to a
//! baseline measured in the same invocation (the same workload through `cat`
//! or a plain shell), with the ratio and the product's target.
//!
//! Run it:
//!
//! ```text
//! cargo bench --bench scenarios                         # every scenario, full counts
//! cargo bench --bench scenarios -- --quick              # smoke run: small counts
//! cargo bench --bench scenarios -- relay latency        # only these scenarios
//! PM_BENCH=fan-in PM_BENCH_QUICK=1 cargo bench --bench scenarios
//! ```
//!
//! Options (after `--`), each with an environment equivalent:
//!
//! - `NAME...` / `PM_BENCH=a,b`: scenarios to run, from `relay`, `fan-in`,
//!   `startup`, `shutdown`, `memory`, `latency`, `watch`, `follow`, `rss`
//!   (default: all of them). `watch` is pm's idle CPU with 10,000 files
//!   watched and not (in the same run), and the time from a save to the
//!   restarted instance being ready.
//! - `--quick` / `PM_BENCH_QUICK=1`: small counts, one repetition.
//! - `--reps N` / `PM_BENCH_REPS=N`: repetitions of the throughput and startup
//!   runs (default 5, quick 1); the median throughput (with its spread) and
//!   the median time count. The relay runs at three write sizes of the
//!   generator: 64 KiB, 4 KiB and one line per `write`.
//! - `--latency-lines N` / `PM_BENCH_LATENCY_LINES=N`: lines of the latency
//!   scenario (default 10000, quick 1000; about 1.1 ms each, twice).
//! - `--strict` / `PM_BENCH_STRICT=1`: exit 1 when a target is missed.
//! - `PM_BENCH_PM=PATH`: benchmark another pm binary than this package's.
//! - `PM_BENCH_ULTRAMAN=PATH`: ultraman, the startup's second baseline
//!   (default: `ultraman` on `PATH` or in `~/.cargo/bin`; skipped when absent).
//!
//! `cargo bench` passes `--bench`; without it (`cargo test --benches`) the
//! binary prints a note and exits 0, so test runs never start the benchmark.
//!
//! The same executable is the children's workload (internal modes):
//! `--generate N [--tag T] [--chunk BYTES]` writes N numbered 60-byte lines
//! as fast as it can in chunks of whole lines (tag: `--tag`, else the number
//! in `$PS`, else 1), after waiting for the file `--wait-file PATH` to
//! exist when given; `--fill N [--len BYTES]` writes N lines of BYTES bytes
//! and stays up; `--latency N [--interval-us US]` writes N lines, each
//! with its CLOCK_MONOTONIC write time, one `write` each, pausing between.
//!
//! Hygiene: the bench is a child subreaper, every process it starts gets a
//! parent-death signal and its own process group, every wait has a deadline,
//! and every process tree is killed (process groups included) when its
//! scenario ends, failed or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::env;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

mod common;

use common::{
    Row, all_stats, become_subreaper, binaries, clock_ticks_per_second, descendants,
    die_with_bench, env_on, finish_run, is_alive, kill_all, mono_ns, pidfd_open, quote, ratio,
    read_stat, reap_orphans, run_when_benched, signal_group, signal_pid, task_cpu_ns, tempdir,
    write_file,
};

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    if let Some(path) = string_of(&args, "--wait-file") {
        wait_for_file(Path::new(&path));
    }
    if let Some(n) = value_of(&args, "--generate") {
        let tag = value_of(&args, "--tag").or_else(tag_from_ps).unwrap_or(1);
        let chunk = value_of(&args, "--chunk").unwrap_or(64 * 1024);
        std::process::exit(generate(n, tag as u32, chunk as usize));
    }
    if let Some(n) = value_of(&args, "--fill") {
        let len = value_of(&args, "--len").unwrap_or(100).max(1);
        std::process::exit(fill(n, len as usize));
    }
    if let Some(n) = value_of(&args, "--latency") {
        let interval = Duration::from_micros(value_of(&args, "--interval-us").unwrap_or(1000));
        std::process::exit(latency_child(n, interval));
    }
    run_when_benched("scenarios", &args, Config::from_args, run);
}

/// The number after `flag`, if the flag is present.
fn value_of(args: &[String], flag: &str) -> Option<u64> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1)?.parse().ok()
}

/// The text after `flag`, if the flag is present.
fn string_of(args: &[String], flag: &str) -> Option<String> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

/// Waits (up to a minute) until `path` exists: the bench creates it once
/// what it measures is in place.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `gen.3` in `$PS` (set by pm for each instance) gives tag 3.
fn tag_from_ps() -> Option<u64> {
    let ps = env::var("PS").ok()?;
    ps.rsplit('.').next()?.parse().ok()
}

// ---------------------------------------------------------------------------
// Workload: the generated lines.

/// Bytes per generated line, newline included.
const LINE_LEN: usize = 60;
/// The line without its newline: `Gtt sssssssss ` then the filler.
const PAYLOAD_LEN: usize = LINE_LEN - 1;
const HEAD_LEN: usize = 14;
const FILLER_LEN: usize = PAYLOAD_LEN - HEAD_LEN;
/// The filler starts at `seq % 26` in this pattern, so a line spliced from
/// two others does not pass the check.
const PATTERN: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
/// Whole lines in at most PIPE_BUF bytes: writes this small are atomic on a
/// pipe, so several generators can share the baseline's pipe into `cat`
/// without splitting each other's lines.
const ATOMIC_CHUNK: usize = 4096 / LINE_LEN * LINE_LEN;
/// The relay scenario's write sizes, each a set of rows.
const RELAY_WRITES: [(&str, usize); 3] =
    [("64k", 64 * 1024), ("4k", ATOMIC_CHUNK), ("line", LINE_LEN)];
/// Relay and fan-in target: pm's median rate over cat's.
const MIN_RELAY_RATIO: f64 = 0.9;

fn filler(seq: u64) -> &'static [u8] {
    let at = (seq % 26) as usize;
    &PATTERN[at..at + FILLER_LEN]
}

fn push_digits(buf: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for slot in buf[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn push_line(buf: &mut Vec<u8>, tag: u32, seq: u64) {
    buf.push(b'G');
    push_digits(buf, u64::from(tag), 2);
    buf.push(b' ');
    push_digits(buf, seq, 9);
    buf.push(b' ');
    buf.extend_from_slice(filler(seq));
    buf.push(b'\n');
}

fn parse_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit()
            .then(|| acc.wrapping_mul(10) + u64::from(b - b'0'))
    })
}

/// `(tag, seq)` of an intact generated line (without its newline).
fn parse_payload(text: &[u8]) -> Option<(u32, u64)> {
    if text.len() != PAYLOAD_LEN || text[0] != b'G' || text[3] != b' ' || text[13] != b' ' {
        return None;
    }
    let tag = parse_digits(&text[1..3])?;
    let seq = parse_digits(&text[4..13])?;
    (text[HEAD_LEN..] == *filler(seq)).then_some((tag as u32, seq))
}

fn generate(lines: u64, tag: u32, chunk: usize) -> i32 {
    let per_chunk = (chunk / LINE_LEN).max(1) as u64;
    let mut buf = Vec::with_capacity(per_chunk as usize * LINE_LEN);
    let mut seq = 0;
    while seq < lines {
        buf.clear();
        let end = (seq + per_chunk).min(lines);
        while seq < end {
            push_line(&mut buf, tag, seq);
            seq += 1;
        }
        if write_all(libc::STDOUT_FILENO, &buf).is_err() {
            return 1;
        }
    }
    0
}

/// Writes `lines` lines of `len` bytes (newline included) in whole-line
/// writes of at most 4 KiB, then stays up (its lines stay in the
/// scrollback of a running instance) until it is killed.
fn fill(lines: u64, len: usize) -> i32 {
    let per_write = (4096 / len).max(1) as u64;
    let mut buf = Vec::with_capacity(per_write as usize * (len + 12));
    let mut seq = 0;
    while seq < lines {
        buf.clear();
        let end = (seq + per_write).min(lines);
        while seq < end {
            let start = buf.len();
            buf.push(b'F');
            push_digits(&mut buf, seq, 9);
            buf.resize(start + len.max(11) - 1, b'f');
            buf.push(b'\n');
            seq += 1;
        }
        if write_all(libc::STDOUT_FILENO, &buf).is_err() {
            return 1;
        }
    }
    std::thread::sleep(Duration::from_secs(1000));
    0
}

fn latency_child(lines: u64, interval: Duration) -> i32 {
    for seq in 0..lines {
        let line = format!("@ {seq} {}\n", mono_ns());
        if write_all(libc::STDOUT_FILENO, line.as_bytes()).is_err() {
            return 1;
        }
        std::thread::sleep(interval);
    }
    0
}

fn write_all(fd: i32, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of its length during the call.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Configuration.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Relay,
    FanIn,
    Startup,
    Shutdown,
    Memory,
    Latency,
    Watch,
    Follow,
    Rss,
}

impl Scenario {
    const ALL: [Scenario; 9] = [
        Scenario::Relay,
        Scenario::FanIn,
        Scenario::Startup,
        Scenario::Shutdown,
        Scenario::Memory,
        Scenario::Latency,
        Scenario::Watch,
        Scenario::Follow,
        Scenario::Rss,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Relay => "relay",
            Scenario::FanIn => "fan-in",
            Scenario::Startup => "startup",
            Scenario::Shutdown => "shutdown",
            Scenario::Memory => "memory",
            Scenario::Latency => "latency",
            Scenario::Watch => "watch",
            Scenario::Follow => "follow",
            Scenario::Rss => "rss",
        }
    }

    fn parse(name: &str) -> Option<Scenario> {
        let name = name.replace('_', "-");
        if name == "fanin" {
            return Some(Scenario::FanIn);
        }
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

struct Config {
    pm: PathBuf,
    exe: PathBuf,
    quick: bool,
    strict: bool,
    scenarios: Vec<Scenario>,
    reps: u32,
    relay_lines: u64,
    fanin_children: u32,
    fanin_lines: u64,
    idle_children: usize,
    idle_window: Duration,
    /// ultraman (a Rust foreman clone), the startup's second baseline when
    /// installed.
    ultraman: Option<PathBuf>,
    latency_lines: u64,
}

impl Config {
    fn from_args(args: &[String]) -> Result<Config> {
        let env_num = |name: &str| -> Result<Option<u64>> {
            match env::var(name) {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?} is not a number")),
                _ => Ok(None),
            }
        };
        let mut quick = env_on("PM_BENCH_QUICK");
        let mut strict = env_on("PM_BENCH_STRICT");
        let mut reps = env_num("PM_BENCH_REPS")?;
        let mut latency_lines = env_num("PM_BENCH_LATENCY_LINES")?;
        let mut names: Vec<String> = env::var("PM_BENCH")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let mut number = |flag: &str| -> Result<u64> {
                iter.next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{flag} needs a number"))
            };
            match arg.as_str() {
                "--quick" => quick = true,
                "--strict" => strict = true,
                "--reps" => reps = Some(number("--reps")?),
                "--latency-lines" => latency_lines = Some(number("--latency-lines")?),
                // `--bench` from cargo, and any harness flag cargo may add.
                other if other.starts_with('-') => {}
                other => names.extend(other.split(',').map(str::to_string)),
            }
        }
        let mut scenarios = Vec::new();
        for name in &names {
            if name == "all" {
                scenarios.extend(Scenario::ALL);
                continue;
            }
            let scenario = Scenario::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!("unknown scenario {name:?} (known: {})", known.join(", "))
            })?;
            scenarios.push(scenario);
        }
        if scenarios.is_empty() {
            scenarios.extend(Scenario::ALL);
        }
        let (pm, exe) = binaries()?;
        Ok(Config {
            pm,
            exe,
            quick,
            strict,
            scenarios,
            reps: reps.unwrap_or(if quick { 1 } else { 5 }).max(1) as u32,
            relay_lines: if quick { 300_000 } else { 1_000_000 },
            fanin_children: 8,
            fanin_lines: if quick { 40_000 } else { 200_000 },
            idle_children: 50,
            idle_window: Duration::from_secs(2),
            ultraman: find_ultraman(),
            latency_lines: latency_lines
                .unwrap_or(if quick { 1_000 } else { 10_000 })
                .max(1),
        })
    }

    fn wants(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
}

/// `PM_BENCH_ULTRAMAN`, else `ultraman` on `PATH` or in `~/.cargo/bin`.
fn find_ultraman() -> Option<PathBuf> {
    if let Some(path) = env::var_os("PM_BENCH_ULTRAMAN") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = env::var_os("PATH").unwrap_or_default();
    let cargo = env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin"));
    env::split_paths(&path)
        .chain(cargo)
        .map(|dir| dir.join("ultraman"))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------
// The run and its table.

fn run(config: &Config) -> i32 {
    become_subreaper();
    kill_current_group_on_interrupt();
    println!(
        "pm scenarios ({} mode): pm = {}",
        if config.quick { "quick" } else { "full" },
        config.pm.display()
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    if config.wants(Scenario::Relay) {
        // The generator's write size: what a program with a big buffer, a
        // stdio-sized one and a line-buffered one hand to the pipe.
        for (label, chunk) in RELAY_WRITES {
            rows.extend(throughput(
                config,
                &format!("relay {label}"),
                1,
                config.relay_lines,
                chunk,
            ));
        }
    }
    if config.wants(Scenario::FanIn) {
        let name = "fan-in";
        rows.extend(throughput(
            config,
            name,
            config.fanin_children,
            config.fanin_lines,
            ATOMIC_CHUNK,
        ));
    }
    if config.wants(Scenario::Startup)
        || config.wants(Scenario::Shutdown)
        || config.wants(Scenario::Memory)
    {
        rows.extend(idle(config));
    }
    if config.wants(Scenario::Latency) {
        rows.extend(latency(config));
    }
    if config.wants(Scenario::Watch) {
        rows.extend(watch(config));
    }
    if config.wants(Scenario::Follow) {
        rows.extend(follow(config));
    }
    if config.wants(Scenario::Rss) {
        rows.extend(rss(config));
    }
    finish_run(&rows, ["pm", "baseline"], started, config.strict)
}

fn rate(lines_per_s: f64) -> String {
    format!("{:.2} M lines/s", lines_per_s / 1e6)
}

fn ms(value: f64) -> String {
    format!("{value:.1} ms")
}

/// CPU time counted in clock ticks (usually 10 ms).
fn cpu_time(value_ms: f64) -> String {
    let tick = 1000.0 / clock_ticks_per_second() as f64;
    if value_ms < tick {
        format!("< {tick:.0} ms")
    } else {
        format!("{value_ms:.0} ms")
    }
}

fn us(value_ns: u64) -> String {
    format!("{} us", value_ns / 1000)
}

/// `min..max` of the repetitions' rates, in millions of lines per second.
fn spread(rates: &[f64]) -> String {
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    if rates.is_empty() {
        return "?".into();
    }
    format!("{:.2}..{:.2} M", min / 1e6, max / 1e6)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => "?".into(),
    }
}

// ---------------------------------------------------------------------------
// Scenarios 1 and 2: relay throughput and fan-in.

/// What a reader saw of generated lines, checked line by line.
struct Tally {
    prefixed: bool,
    per_tag: u64,
    /// Next expected seq, per tag (tags are 1-based).
    next: Vec<u64>,
    /// Seqs seen, one bit each, per tag.
    seen: Vec<Vec<u64>>,
    distinct: u64,
    corrupt: u64,
    out_of_order: u64,
    duplicates: u64,
    /// pm's own `system` lines.
    system: u64,
    /// `system` lines saying that a `pm logs --follow` client was dropped.
    dropped_followers: u64,
    first_ns: Option<u64>,
    last_ns: u64,
    bad_sample: Option<String>,
    /// The prefix of the last pm line, and what it said.
    last_head: Vec<u8>,
    last_tag: Option<u64>,
    last_system: bool,
}

enum Split<'a> {
    Generated(&'a [u8], Option<u64>),
    System,
    Bad,
}

impl Tally {
    /// Counts everything `proc` writes until its output ends; an error
    /// saying how far it got when `deadline` passes first.
    fn read_to_end(&mut self, proc: &mut Proc, deadline: Instant) -> Result<()> {
        loop {
            match proc.read(deadline) {
                Read::Lines(chunk, at) => self.chunk(chunk, at),
                Read::Eof => return Ok(()),
                Read::Timeout => {
                    return Err(format!(
                        "timed out after {} of {} lines{}",
                        self.distinct,
                        self.expected(),
                        proc.stderr_tail()
                    ));
                }
            }
        }
    }

    fn new(tags: u32, per_tag: u64, prefixed: bool) -> Tally {
        let words = (per_tag as usize).div_ceil(64);
        Tally {
            prefixed,
            per_tag,
            next: vec![0; tags as usize],
            seen: vec![vec![0; words]; tags as usize],
            distinct: 0,
            corrupt: 0,
            out_of_order: 0,
            duplicates: 0,
            system: 0,
            dropped_followers: 0,
            first_ns: None,
            last_ns: 0,
            bad_sample: None,
            last_head: Vec::new(),
            last_tag: None,
            last_system: false,
        }
    }

    fn chunk(&mut self, chunk: &[u8], at_ns: u64) {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            self.line(&chunk[start..end], at_ns);
            start = end + 1;
        }
    }

    fn line(&mut self, line: &[u8], at_ns: u64) {
        let (text, name_tag) = if self.prefixed {
            match self.split(line) {
                Split::Generated(text, name_tag) => (text, name_tag),
                Split::System => {
                    self.system += 1;
                    if memchr::memmem::find(line, DROPPED_FOLLOWER).is_some() {
                        self.dropped_followers += 1;
                    }
                    return;
                }
                Split::Bad => return self.bad(line),
            }
        } else {
            (line, None)
        };
        let Some((tag, seq)) = parse_payload(text) else {
            return self.bad(line);
        };
        // Under pm, the instance name must agree with the generator's tag.
        if self.prefixed && name_tag != Some(u64::from(tag)) {
            return self.bad(line);
        }
        let index = tag as usize;
        if index == 0 || index > self.next.len() || seq >= self.per_tag {
            return self.bad(line);
        }
        let index = index - 1;
        if seq != self.next[index] {
            self.out_of_order += 1;
        }
        self.next[index] = seq + 1;
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen[index][word] & bit == 0 {
            self.seen[index][word] |= bit;
            self.distinct += 1;
        } else {
            self.duplicates += 1;
        }
        self.first_ns.get_or_insert(at_ns);
        self.last_ns = at_ns;
    }

    /// Splits a pm line into its text and the number of its `gen.N` name.
    /// The reader must stay cheaper than what it measures, so the usual
    /// case (a 59-byte text after the same prefix as the line before) costs
    /// one short comparison.
    fn split<'a>(&mut self, line: &'a [u8]) -> Split<'a> {
        if let Some(head_len) = line.len().checked_sub(PAYLOAD_LEN + 2)
            && &line[head_len..head_len + 2] == b"| "
        {
            let head = &line[..head_len];
            if head != self.last_head.as_slice() {
                let Some((name, _)) = split_prefix(line) else {
                    return Split::Bad;
                };
                self.last_tag = name.strip_prefix(b"gen.").and_then(parse_digits);
                self.last_system = name == b"system";
                self.last_head.clear();
                self.last_head.extend_from_slice(head);
            }
            if self.last_system {
                return Split::System;
            }
            return Split::Generated(&line[head_len + 2..], self.last_tag);
        }
        match split_prefix(line) {
            Some((name, _)) if name == b"system" => Split::System,
            _ => Split::Bad,
        }
    }

    fn bad(&mut self, line: &[u8]) {
        self.corrupt += 1;
        if self.bad_sample.is_none() {
            let shown = &line[..line.len().min(120)];
            self.bad_sample = Some(String::from_utf8_lossy(shown).into_owned());
        }
    }

    fn expected(&self) -> u64 {
        self.per_tag * self.next.len() as u64
    }

    fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.distinct)
    }

    /// Lines per second from the first line read to the last.
    fn rate(&self) -> f64 {
        let span = self
            .last_ns
            .saturating_sub(self.first_ns.unwrap_or(self.last_ns));
        if span == 0 {
            return 0.0;
        }
        self.distinct as f64 / (span as f64 / 1e9)
    }
}

/// `(name, text)` of a pm output line: `[HH:MM:SS ]name   | text`.
fn split_prefix(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let sep = memchr::memchr_iter(b'|', line).find(|&at| line.get(at + 1) == Some(&b' '))?;
    let head = line[..sep].trim_ascii_end();
    let name = match head.iter().rposition(|&b| b == b' ') {
        Some(space) => &head[space + 1..],
        None => head,
    };
    Some((name, &line[sep + 2..]))
}

struct ThroughputRun {
    tally: Tally,
    exit: Option<ExitStatus>,
    /// pm's user+system CPU over its whole life, read when it exited.
    cpu_ms: Option<f64>,
}

fn throughput(config: &Config, name: &str, children: u32, lines: u64, chunk: usize) -> Vec<Row> {
    println!(
        "== {name}: {children} x {lines} lines of {LINE_LEN} bytes, {} rep(s)",
        config.reps
    );
    let mut pm_runs = Vec::new();
    let mut cat_runs = Vec::new();
    for rep in 1..=config.reps {
        match throughput_pm(config, children, lines, chunk) {
            Ok(run) => {
                let t = &run.tally;
                println!(
                    "   pm  #{rep}: {} ({} lines, lost {}, corrupt {}, out of order {}, dup {}, {} system lines, {}, cpu {})",
                    rate(t.rate()),
                    t.distinct,
                    t.lost(),
                    t.corrupt,
                    t.out_of_order,
                    t.duplicates,
                    t.system,
                    run.exit.map_or("no exit".into(), describe),
                    run.cpu_ms.map_or("?".into(), cpu_time),
                );
                if let Some(sample) = &t.bad_sample {
                    println!("         first bad line: {sample:?}");
                }
                pm_runs.push(run);
            }
            Err(e) => {
                println!("   pm  #{rep}: error: {e}");
                return vec![Row::failed(name, &e)];
            }
        }
        match throughput_cat(config, children, lines, chunk) {
            Ok(tally) => {
                println!(
                    "   cat #{rep}: {} ({} lines, lost {}, corrupt {}, out of order {})",
                    rate(tally.rate()),
                    tally.distinct,
                    tally.lost(),
                    tally.corrupt,
                    tally.out_of_order,
                );
                cat_runs.push(tally);
            }
            Err(e) => println!("   cat #{rep}: error: {e}"),
        }
    }
    // Median over the alternated repetitions, with the spread beside it:
    // on a shared machine single windows vary by tens of percent.
    let summary = |mut rates: Vec<f64>| {
        let spread = spread(&rates);
        (median(&mut rates), spread)
    };
    let (pm_rate, pm_spread) = summary(pm_runs.iter().map(|r| r.tally.rate()).collect());
    let (cat_rate, cat_spread) = summary(cat_runs.iter().map(Tally::rate).collect());
    let (mut lost, mut corrupt, mut order) = (0, 0, 0);
    let mut clean_exit = true;
    for run in &pm_runs {
        lost += run.tally.lost();
        corrupt += run.tally.corrupt;
        order += run.tally.out_of_order + run.tally.duplicates;
        clean_exit &= run.exit.is_some_and(|s| s.success());
    }
    let total_lines = f64::from(children) * lines as f64;
    let mut cpu: Vec<f64> = pm_runs.iter().filter_map(|r| r.cpu_ms).collect();
    let cpu_ms = median(&mut cpu);
    let mut rows = vec![
        Row::checked(
            format!("{name} rate"),
            rate(pm_rate),
            format!("{} (cat)", rate(cat_rate)),
            ratio(pm_rate, cat_rate),
            ">= 0.9x cat",
            cat_rate > 0.0 && pm_rate >= MIN_RELAY_RATIO * cat_rate,
        ),
        Row::info(
            format!("{name} spread"),
            pm_spread,
            cat_spread,
            String::new(),
        ),
        Row::checked(
            format!("{name} lost/corrupt/order"),
            format!("{lost}/{corrupt}/{order}"),
            String::new(),
            String::new(),
            "0/0/0, exit 0",
            lost + corrupt + order == 0 && clean_exit,
        ),
    ];
    if cpu_ms.is_finite() {
        rows.push(Row::info(
            format!("{name} pm cpu"),
            format!(
                "{} ({:.3} us/line)",
                cpu_time(cpu_ms),
                cpu_ms * 1000.0 / total_lines
            ),
            String::new(),
            String::new(),
        ));
    }
    rows
}

fn throughput_pm(
    config: &Config,
    children: u32,
    lines: u64,
    chunk: usize,
) -> Result<ThroughputRun> {
    let dir = tempdir("pm-bench-")?;
    let procfile = format!(
        "gen: exec {} --generate {lines} --chunk {chunk}\n",
        quote(&config.exe)
    );
    write_file(&dir.path().join("Procfile"), &procfile)?;
    let mut cmd = Command::new(&config.pm);
    cmd.current_dir(dir.path())
        .args(["start", "--color", "never"])
        .arg(format!("gen={children}"));
    let mut pm = Proc::spawn(cmd, libc::SIGTERM, Some(dir.path()))?;
    let mut tally = Tally::new(children, lines, true);
    tally.read_to_end(&mut pm, Instant::now() + Duration::from_secs(60))?;
    let exit = pm.wait_exit(Instant::now() + Duration::from_secs(10))?;
    Ok(ThroughputRun {
        tally,
        exit: Some(exit.status),
        cpu_ms: exit.cpu_ms,
    })
}

fn throughput_cat(config: &Config, children: u32, lines: u64, chunk: usize) -> Result<Tally> {
    let generator = |tag: u32| {
        format!(
            "{} --generate {lines} --tag {tag} --chunk {chunk}",
            quote(&config.exe)
        )
    };
    let script = if children == 1 {
        format!("{} | cat", generator(1))
    } else {
        let jobs: Vec<String> = (1..=children)
            .map(|t| format!("{} &", generator(t)))
            .collect();
        format!("( {} wait ) | cat", jobs.join(" "))
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    let mut sh = Proc::spawn(cmd, libc::SIGKILL, None)?;
    let mut tally = Tally::new(children, lines, false);
    tally.read_to_end(&mut sh, Instant::now() + Duration::from_secs(60))?;
    sh.wait_exit(Instant::now() + Duration::from_secs(10))?;
    Ok(tally)
}

// ---------------------------------------------------------------------------
// Scenarios 3, 4 and 5: startup, shutdown and memory with idle children.

const IDLE_COMMAND: &str = "echo ready $$; exec sleep 1000";

/// How a run with idle children ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Kill,
}

struct IdleRun {
    startup_ms: f64,
    memory: Option<Memory>,
    /// From the signal to pm's exit.
    exit_ms: f64,
    exit: ExitStatus,
    /// From the signal until the last child was dead (None: not all were).
    children_dead_ms: Option<f64>,
    /// Children still alive 1 s after pm exited.
    alive_after: usize,
}

struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
    threads: usize,
    guardian_rss_kib: Option<u64>,
    cpu_ticks: u64,
    cpu_ns: u64,
    switches: u64,
    /// `name N` per thread.
    per_thread: String,
    window: Duration,
    unexpected_lines: u64,
}

fn idle(config: &Config) -> Vec<Row> {
    let n = config.idle_children;
    println!(
        "== startup/shutdown/memory: {n} x `{IDLE_COMMAND}`, {} rep(s)",
        config.reps
    );
    let mut rows = Vec::new();
    let mut pm_runs = Vec::new();
    let mut sh_runs = Vec::new();
    let mut ultraman_runs = Vec::new();
    let mut error = None;
    let ultraman = config
        .ultraman
        .as_deref()
        .filter(|_| config.wants(Scenario::Startup));
    if config.wants(Scenario::Startup) {
        match ultraman {
            Some(path) => println!("   ultraman: {}", path.display()),
            None if config.strict => rows.push(Row::failed("ultraman", "not installed (--strict)")),
            None => println!(
                "   ultraman: not installed (cargo install ultraman, or PM_BENCH_ULTRAMAN=PATH); its row is skipped"
            ),
        }
    }
    for rep in 1..=config.reps {
        let memory = rep == 1 && config.wants(Scenario::Memory);
        match idle_pm(config, memory, Stop::Term) {
            Ok(run) => {
                println!(
                    "   pm  #{rep}: {n} ready in {}; SIGTERM -> exit in {} ({}), children dead after {}, {} alive 1 s later",
                    ms(run.startup_ms),
                    ms(run.exit_ms),
                    describe(run.exit),
                    run.children_dead_ms.map_or("never".into(), ms),
                    run.alive_after,
                );
                pm_runs.push(run);
            }
            Err(e) => {
                println!("   pm  #{rep}: error: {e}");
                error = Some(e);
                break;
            }
        }
        match idle_sh(config) {
            Ok((startup, dead)) => {
                println!(
                    "   sh  #{rep}: {n} ready in {}; SIGTERM to the group -> all dead in {}",
                    ms(startup),
                    ms(dead)
                );
                sh_runs.push((startup, dead));
            }
            Err(e) => println!("   sh  #{rep}: error: {e}"),
        }
        if let Some(path) = ultraman {
            match idle_ultraman(config, path) {
                Ok(startup) => {
                    println!("   ultraman #{rep}: {n} ready in {}", ms(startup));
                    ultraman_runs.push(startup);
                }
                Err(e) => println!("   ultraman #{rep}: error: {e}"),
            }
        }
    }
    let kill = if config.wants(Scenario::Shutdown) && error.is_none() {
        match idle_pm(config, false, Stop::Kill) {
            Ok(run) => {
                println!(
                    "   pm SIGKILL: children dead after {}, {} alive 1 s later",
                    run.children_dead_ms.map_or("never".into(), ms),
                    run.alive_after
                );
                Some(run)
            }
            Err(e) => {
                println!("   pm SIGKILL: error: {e}");
                error = Some(e);
                None
            }
        }
    } else {
        None
    };
    if let Some(e) = &error {
        rows.push(Row::failed("startup/shutdown/memory", e));
    }
    if pm_runs.is_empty() {
        return rows;
    }
    let pm_startup = median(&mut pm_runs.iter().map(|r| r.startup_ms).collect::<Vec<_>>());
    let sh_startup = median(&mut sh_runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let sh_dead = median(&mut sh_runs.iter().map(|r| r.1).collect::<Vec<_>>());
    if config.wants(Scenario::Startup) {
        rows.push(Row::checked(
            format!("startup {n} (median)"),
            ms(pm_startup),
            format!("{} (sh &)", ms(sh_startup)),
            format!("{:+.1} ms", pm_startup - sh_startup),
            "< 100 ms, <= sh & + 10 ms",
            pm_startup < 100.0 && pm_startup <= sh_startup + 10.0,
        ));
        let spread = |runs: &[f64]| {
            let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = runs.iter().copied().fold(0.0, f64::max);
            format!("{:.1}..{:.1} ms", min, max)
        };
        let pm_times: Vec<f64> = pm_runs.iter().map(|r| r.startup_ms).collect();
        let sh_times: Vec<f64> = sh_runs.iter().map(|r| r.0).collect();
        rows.push(Row::info(
            format!("startup {n} spread"),
            spread(&pm_times),
            spread(&sh_times),
            ratio(pm_startup, sh_startup),
        ));
        if ultraman.is_some() {
            if ultraman_runs.is_empty() {
                rows.push(Row::failed("startup ultraman", "no run succeeded"));
            } else {
                let um_startup = median(&mut ultraman_runs.clone());
                rows.push(Row::checked(
                    format!("startup {n} vs ultraman (median)"),
                    ms(pm_startup),
                    format!("{} ({})", ms(um_startup), spread(&ultraman_runs)),
                    ratio(pm_startup, um_startup),
                    "<= ultraman",
                    pm_startup <= um_startup,
                ));
            }
        }
    }
    if config.wants(Scenario::Shutdown) {
        let pm_exit = median(&mut pm_runs.iter().map(|r| r.exit_ms).collect::<Vec<_>>());
        let limit = if sh_dead.is_finite() { sh_dead } else { 0.0 } + 50.0;
        rows.push(Row::checked(
            format!("shutdown {n} SIGTERM (median)"),
            format!("{} to exit", ms(pm_exit)),
            format!("{} (kill -TERM group)", ms(sh_dead)),
            ratio(pm_exit, sh_dead),
            "< baseline + 50 ms",
            pm_exit < limit,
        ));
        let alive = pm_runs.iter().map(|r| r.alive_after).max().unwrap_or(0);
        let clean = pm_runs.iter().all(|r| r.exit.success());
        rows.push(Row::checked(
            "  alive 1 s after SIGTERM",
            format!(
                "{alive} ({})",
                if clean { "pm exit 0" } else { "pm exit not 0" }
            ),
            String::new(),
            String::new(),
            "0, exit 0",
            alive == 0 && clean,
        ));
        if let Some(run) = &kill {
            rows.push(Row::checked(
                "  alive 1 s after SIGKILL",
                format!(
                    "{} (all dead after {})",
                    run.alive_after,
                    run.children_dead_ms.map_or("never".into(), ms)
                ),
                String::new(),
                String::new(),
                "0",
                run.alive_after == 0,
            ));
        }
    }
    if config.wants(Scenario::Memory) {
        match pm_runs.first().and_then(|r| r.memory.as_ref()) {
            Some(m) => rows.extend(memory_rows(n, m)),
            None => rows.push(Row::failed("memory", "not measured")),
        }
    }
    rows
}

fn memory_rows(n: usize, m: &Memory) -> Vec<Row> {
    let mib = |kib: u64| format!("{:.2} MiB", kib as f64 / 1024.0);
    let window = m.window.as_secs_f64();
    let tick_ms = 1000.0 / clock_ticks_per_second() as f64;
    vec![
        Row::checked(
            format!("memory RSS, {n} children"),
            format!("{} ({} threads)", mib(m.rss_kib), m.threads),
            String::new(),
            String::new(),
            "< 5 MiB",
            m.rss_kib < 5 * 1024,
        ),
        Row::info(
            "  peak RSS (VmHWM)",
            mib(m.hwm_kib),
            m.guardian_rss_kib
                .map_or(String::new(), |k| format!("guardian RSS {}", mib(k))),
            String::new(),
        ),
        Row::checked(
            format!("idle CPU over {window:.0} s"),
            format!(
                "{:.2}% ({} ticks = {:.0} ms; schedstat {:.0} us = {:.3}%)",
                m.cpu_ticks as f64 * tick_ms / 1000.0 / window * 100.0,
                m.cpu_ticks,
                m.cpu_ticks as f64 * tick_ms,
                m.cpu_ns as f64 / 1000.0,
                m.cpu_ns as f64 / 1e9 / window * 100.0,
            ),
            String::new(),
            String::new(),
            &format!("0% (0 ticks of {tick_ms:.0} ms)"),
            m.cpu_ticks == 0,
        ),
        Row::info(
            "  idle wakeups",
            format!(
                "{:.1}/s ({}; {} lines printed)",
                m.switches as f64 / window,
                m.per_thread,
                m.unexpected_lines
            ),
            String::new(),
            String::new(),
        ),
    ]
}

fn idle_procfile(dir: &Path) -> Result<()> {
    write_file(&dir.join("Procfile"), &format!("idle: {IDLE_COMMAND}\n"))
}

/// Reads `ready PID` lines until `n` distinct pids came; returns them.
fn read_ready(proc: &mut Proc, n: usize, prefixed: bool, deadline: Instant) -> Result<Vec<i32>> {
    let mut pids = Vec::new();
    while pids.len() < n {
        let chunk = match proc.read(deadline) {
            Read::Lines(chunk, _) => chunk,
            Read::Eof => return Err(format!("output ended after {} ready lines", pids.len())),
            Read::Timeout => {
                return Err(format!(
                    "timed out after {} of {n} ready lines{}",
                    pids.len(),
                    proc.stderr_tail()
                ));
            }
        };
        for line in chunk.split(|&b| b == b'\n') {
            let text = if prefixed {
                match split_prefix(line) {
                    Some((_, text)) => text,
                    None => continue,
                }
            } else {
                line
            };
            if let Some(pid) = text.strip_prefix(b"ready ").and_then(parse_digits) {
                let pid = pid as i32;
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    Ok(pids)
}

fn idle_pm(config: &Config, memory: bool, stop: Stop) -> Result<IdleRun> {
    let n = config.idle_children;
    let dir = tempdir("pm-bench-")?;
    idle_procfile(dir.path())?;
    let mut cmd = Command::new(&config.pm);
    cmd.current_dir(dir.path())
        .args(["start", "--color", "never", "-t", "5"])
        .arg(format!("idle={n}"));
    let started = Instant::now();
    let mut pm = Proc::spawn(cmd, libc::SIGTERM, Some(dir.path()))?;
    let pids = read_ready(&mut pm, n, true, started + Duration::from_secs(10))?;
    let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
    let memory = if memory {
        Some(measure_idle(&mut pm, config.idle_window)?)
    } else {
        None
    };
    let signal = match stop {
        Stop::Term => libc::SIGTERM,
        Stop::Kill => libc::SIGKILL,
    };
    let signaled = Instant::now();
    signal_pid(pm.pid, signal);
    let exit = pm.wait_exit(signaled + Duration::from_secs(10))?;
    let exit_ms = (exit.at - signaled).as_secs_f64() * 1000.0;
    // Watch the children for one second after pm's exit.
    let watch_end = exit.at + Duration::from_secs(1);
    let mut alive: Vec<i32> = pids;
    let mut children_dead_ms = None;
    loop {
        alive.retain(|&pid| is_alive(pid));
        if alive.is_empty() && children_dead_ms.is_none() {
            children_dead_ms = Some(signaled.elapsed().as_secs_f64() * 1000.0);
        }
        if Instant::now() >= watch_end {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(IdleRun {
        startup_ms,
        memory,
        exit_ms,
        exit: exit.status,
        children_dead_ms,
        alive_after: alive.len(),
    })
}

/// pm's memory and its CPU use over an idle window.
fn measure_idle(pm: &mut Proc, window: Duration) -> Result<Memory> {
    // Let the start-up settle (its output written, its buffers returned).
    let settle = Duration::from_millis(300);
    let mut unexpected_lines = drain_for(pm, settle)?;
    let before = read_stat(pm.pid).ok_or("pm is gone")?;
    let cpu_before = task_cpu_ns(pm.pid);
    let switches_before = thread_switches(pm.pid);
    unexpected_lines += drain_for(pm, window)?;
    let after = read_stat(pm.pid).ok_or("pm is gone")?;
    let cpu_after = task_cpu_ns(pm.pid);
    let switches_after = thread_switches(pm.pid);
    let (per_thread, switches) = switches_between(&switches_before, &switches_after);
    let status =
        fs::read_to_string(format!("/proc/{}/status", pm.pid)).map_err(|e| e.to_string())?;
    let field = |name: &str| status_kib(&status, name).ok_or(format!("no {name} in status"));
    let guardian_rss_kib = all_stats()
        .into_iter()
        // Named `pm-guardian` (a pm before that kept pm's name).
        .find(|s| s.ppid == pm.pid && (s.comm == "pm-guardian" || s.comm == after.comm))
        .and_then(|s| fs::read_to_string(format!("/proc/{}/status", s.pid)).ok())
        .and_then(|text| status_kib(&text, "VmRSS:"));
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        threads: fs::read_dir(format!("/proc/{}/task", pm.pid)).map_or(0, |d| d.count()),
        guardian_rss_kib,
        cpu_ticks: (after.utime + after.stime).saturating_sub(before.utime + before.stime),
        cpu_ns: cpu_after.saturating_sub(cpu_before),
        switches,
        per_thread,
        window,
        unexpected_lines,
    })
}

/// Reads (and counts) whatever pm prints during `span`.
fn drain_for(proc: &mut Proc, span: Duration) -> Result<u64> {
    let end = Instant::now() + span;
    let mut lines = 0;
    loop {
        match proc.read(end) {
            Read::Lines(chunk, _) => lines += memchr::memchr_iter(b'\n', chunk).count() as u64,
            Read::Eof => return Err("pm's output ended while idle".into()),
            Read::Timeout => return Ok(lines),
        }
    }
}

/// pm with `files` files under its root, watched (`watch = ["src/**"]`) or
/// not: its CPU and context switches over an idle `window`, and, watched,
/// the times from saving a file to the new run's start and to its
/// readiness (a `log` check), one sample per save.
struct WatchRun {
    cpu_percent: f64,
    switches: u64,
    per_thread: String,
    save_to_start_ms: Vec<f64>,
    save_to_ready_ms: Vec<f64>,
}

fn watch(config: &Config) -> Vec<Row> {
    let files = if config.quick { 2_000 } else { 10_000 };
    let window = if config.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let saves = if config.quick { 3 } else { 9 };
    println!("== watch: {files} files, idle {window:?}, watching off and on, {saves} saves");
    let mut runs = Vec::new();
    for on in [false, true] {
        match watch_run(config, files, window, on, saves) {
            Ok(run) => {
                println!(
                    "   {}: idle cpu {:.3}%, {} context switches ({}){}",
                    if on { "watching" } else { "not watching" },
                    run.cpu_percent,
                    run.switches,
                    run.per_thread,
                    if on {
                        format!(
                            "; save -> started {:?} ms, -> ready {:?} ms",
                            run.save_to_start_ms
                                .iter()
                                .map(|v| v.round())
                                .collect::<Vec<_>>(),
                            run.save_to_ready_ms
                                .iter()
                                .map(|v| v.round())
                                .collect::<Vec<_>>()
                        )
                    } else {
                        String::new()
                    },
                );
                runs.push(run);
            }
            Err(e) => return vec![Row::failed("watch", &e)],
        }
    }
    let off = runs[0].cpu_percent;
    let on = &mut runs[1];
    let mut rows = vec![Row::checked(
        format!("idle cpu, {files} files watched"),
        format!("{:.2}%", on.cpu_percent),
        format!("{:.2}% (not watched)", off),
        String::new(),
        "0.00%",
        on.cpu_percent < 0.005,
    )];
    if !on.save_to_ready_ms.is_empty() {
        let n = on.save_to_ready_ms.len();
        let started = median(&mut on.save_to_start_ms);
        let ready = median(&mut on.save_to_ready_ms);
        rows.push(Row::info(
            format!("save -> restarted and ready (median of {n})"),
            ms(ready),
            format!("{} (debounce)", ms(200.0)),
            format!("started {}", ms(started)),
        ));
    }
    rows
}

fn watch_run(
    config: &Config,
    files: usize,
    window: Duration,
    on: bool,
    saves: usize,
) -> Result<WatchRun> {
    let dir = tempdir("pm-bench-watch-")?;
    let per_dir = 100;
    for d in 0..files.div_ceil(per_dir) {
        let sub = dir.path().join(format!("src/d{d}"));
        fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
        for f in 0..per_dir.min(files - d * per_dir) {
            write_file(&sub.join(format!("f{f}.txt")), "x\n")?;
        }
    }
    write_file(
        &dir.path().join("Procfile"),
        "web: echo up; exec sleep 1000\n",
    )?;
    let watch = if on { "watch = [\"src/**\"]\n" } else { "" };
    write_file(
        &dir.path().join("pm.toml"),
        &format!("[process.web]\n{watch}[process.web.ready]\nlog = \"^up$\"\n"),
    )?;
    let mut cmd = Command::new(&config.pm);
    cmd.current_dir(dir.path())
        .args(["start", "--color", "never", "--no-timestamp"]);
    let mut pm = Proc::spawn(cmd, libc::SIGTERM, Some(dir.path()))?;
    wait_line(
        &mut pm,
        b"web.1 is ready",
        Instant::now() + Duration::from_secs(20),
    )?;
    let idle = measure_idle(&mut pm, window)?;
    let cpu_percent = idle.cpu_ns as f64 / window.as_nanos() as f64 * 100.0;
    let (mut save_to_start_ms, mut save_to_ready_ms) = (Vec::new(), Vec::new());
    if on {
        for i in 0..saves {
            let saved = Instant::now();
            write_file(
                &dir.path().join(format!("src/d{}/f0.txt", i % 10)),
                &format!("saved {i}\n"),
            )?;
            let deadline = saved + Duration::from_secs(20);
            let times = wait_lines(
                &mut pm,
                &[b"web.1 started with pid", b"web.1 is ready"],
                deadline,
            )?;
            save_to_start_ms.push((times[0] - saved).as_secs_f64() * 1000.0);
            save_to_ready_ms.push((times[1] - saved).as_secs_f64() * 1000.0);
        }
    }
    signal_pid(pm.pid, libc::SIGTERM);
    pm.wait_exit(Instant::now() + Duration::from_secs(10))?;
    Ok(WatchRun {
        cpu_percent,
        switches: idle.switches,
        per_thread: idle.per_thread,
        save_to_start_ms,
        save_to_ready_ms,
    })
}

/// Reads pm's output until a line contains `pattern`; returns when it came.
fn wait_line(proc: &mut Proc, pattern: &[u8], deadline: Instant) -> Result<Instant> {
    Ok(wait_lines(proc, &[pattern], deadline)?[0])
}

/// Reads pm's output until lines containing each of `patterns`, in that
/// order, came; returns when each did (several may come in one read).
fn wait_lines(proc: &mut Proc, patterns: &[&[u8]], deadline: Instant) -> Result<Vec<Instant>> {
    let mut times = Vec::new();
    loop {
        match proc.read(deadline) {
            Read::Lines(chunk, _) => {
                let now = Instant::now();
                let mut rest = chunk;
                while let Some(pattern) = patterns.get(times.len()) {
                    let Some(at) = memchr::memmem::find(rest, pattern) else {
                        break;
                    };
                    times.push(now);
                    rest = &rest[at + pattern.len()..];
                }
                if times.len() == patterns.len() {
                    return Ok(times);
                }
            }
            Read::Eof => return Err("pm's output ended".into()),
            Read::Timeout => {
                return Err(format!(
                    "no line with {:?} in time{}",
                    String::from_utf8_lossy(patterns[times.len()]),
                    proc.stderr_tail()
                ));
            }
        }
    }
}

/// ultraman starting the same children (`ultraman start -m idle=N`, whose
/// lines have pm's `TIME NAME | text` shape); ms until every child printed.
/// Dropping it kills its whole tree.
fn idle_ultraman(config: &Config, ultraman: &Path) -> Result<f64> {
    let n = config.idle_children;
    let dir = tempdir("pm-bench-ultraman-")?;
    idle_procfile(dir.path())?;
    let mut cmd = Command::new(ultraman);
    cmd.current_dir(dir.path())
        .args(["start", "-m"])
        .arg(format!("idle={n}"));
    let started = Instant::now();
    let mut run = Proc::spawn(cmd, libc::SIGKILL, Some(dir.path()))?;
    read_ready(&mut run, n, true, started + Duration::from_secs(10))?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// The baseline: a shell starting the same children in the background.
/// Returns (ms until every child printed, ms from SIGTERM to the group until
/// every child is dead).
fn idle_sh(config: &Config) -> Result<(f64, f64)> {
    let n = config.idle_children;
    let script =
        format!("i=0; while [ $i -lt {n} ]; do sh -c '{IDLE_COMMAND}' & i=$((i+1)); done; wait");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    let started = Instant::now();
    let mut sh = Proc::spawn(cmd, libc::SIGKILL, None)?;
    let pids = read_ready(&mut sh, n, false, started + Duration::from_secs(10))?;
    let startup = started.elapsed().as_secs_f64() * 1000.0;
    let signaled = Instant::now();
    signal_group(sh.pid, libc::SIGTERM);
    let deadline = signaled + Duration::from_secs(5);
    let mut alive = pids;
    while !alive.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("{} children outlived SIGTERM", alive.len()));
        }
        std::thread::sleep(Duration::from_micros(100));
        alive.retain(|&pid| is_alive(pid));
    }
    Ok((startup, signaled.elapsed().as_secs_f64() * 1000.0))
}

// ---------------------------------------------------------------------------
// Scenario 6: latency of single lines.

struct Latencies {
    /// Sorted, in nanoseconds.
    ns: Vec<u64>,
    expected: u64,
}

impl Latencies {
    fn at(&self, fraction: f64) -> u64 {
        if self.ns.is_empty() {
            return 0;
        }
        let index = ((self.ns.len() as f64 * fraction) as usize).min(self.ns.len() - 1);
        self.ns[index]
    }

    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.ns.len() as u64)
    }
}

fn latency(config: &Config) -> Vec<Row> {
    let n = config.latency_lines;
    println!("== latency: {n} single lines, 1 ms apart");
    let pm = latency_run(config, true);
    let cat = latency_run(config, false);
    for (label, result) in [("pm ", &pm), ("cat", &cat)] {
        match result {
            Ok(l) => println!(
                "   {label}: median {}, p99 {}, max {} ({} lines, {} lost)",
                us(l.at(0.5)),
                us(l.at(0.99)),
                us(l.at(1.0)),
                l.ns.len(),
                l.lost()
            ),
            Err(e) => println!("   {label}: error: {e}"),
        }
    }
    let pm = match pm {
        Ok(pm) => pm,
        Err(e) => return vec![Row::failed("latency", &e)],
    };
    let cat = cat.ok();
    let base = |fraction: f64| {
        cat.as_ref().map_or((String::new(), String::new()), |c| {
            (
                format!("{} (cat)", us(c.at(fraction))),
                ratio(pm.at(fraction) as f64, c.at(fraction) as f64),
            )
        })
    };
    let (p50_base, p50_ratio) = base(0.5);
    let (p99_base, p99_ratio) = base(0.99);
    let (max_base, max_ratio) = base(1.0);
    vec![
        Row::checked(
            "latency p99",
            us(pm.at(0.99)),
            p99_base,
            p99_ratio,
            "< 1000 us, 0 lost",
            pm.at(0.99) < 1_000_000 && pm.lost() == 0,
        ),
        Row::info("  latency median", us(pm.at(0.5)), p50_base, p50_ratio),
        Row::info("  latency max", us(pm.at(1.0)), max_base, max_ratio),
    ]
}

fn latency_run(config: &Config, through_pm: bool) -> Result<Latencies> {
    let n = config.latency_lines;
    let child = format!("{} --latency {n}", quote(&config.exe));
    let dir = tempdir("pm-bench-")?;
    let mut proc = if through_pm {
        write_file(
            &dir.path().join("Procfile"),
            &format!("lat: exec {child}\n"),
        )?;
        let mut cmd = Command::new(&config.pm);
        cmd.current_dir(dir.path())
            .args(["start", "--color", "never"]);
        Proc::spawn(cmd, libc::SIGTERM, Some(dir.path()))?
    } else {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(format!("{child} | cat"));
        Proc::spawn(cmd, libc::SIGKILL, None)?
    };
    let deadline = Instant::now() + Duration::from_millis(n * 3) + Duration::from_secs(10);
    let mut ns = Vec::with_capacity(n as usize);
    loop {
        match proc.read(deadline) {
            Read::Lines(chunk, at) => {
                for line in chunk.split(|&b| b == b'\n') {
                    let text = if through_pm {
                        match split_prefix(line) {
                            Some((name, text)) if name != b"system" => text,
                            _ => continue,
                        }
                    } else {
                        line
                    };
                    let mut words = text.split(|&b| b == b' ');
                    if words.next() != Some(b"@") {
                        continue;
                    }
                    if let Some(sent) = words.nth(1).and_then(parse_digits) {
                        ns.push(at.saturating_sub(sent));
                    }
                }
            }
            Read::Eof => break,
            Read::Timeout => return Err(format!("timed out after {} lines", ns.len())),
        }
    }
    proc.wait_exit(Instant::now() + Duration::from_secs(10))?;
    ns.sort_unstable();
    Ok(Latencies { ns, expected: n })
}

// ---------------------------------------------------------------------------
// Scenario 7: relay with a `pm logs --follow` client.

/// What pm says when it drops a follower that fell behind (SPEC §3).
const DROPPED_FOLLOWER: &[u8] = b"dropped a `pm logs --follow` client";

/// The follower attached to a relay run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follower {
    None,
    /// Connects, shows its first line, and is never read again.
    Stalled,
    /// Read as fast as it prints.
    Active,
}

struct FollowRun {
    tally: Tally,
    exit: ExitStatus,
    /// Lines the active follower printed, and whether it ended on its own.
    follower_lines: Option<u64>,
}

fn follow(config: &Config) -> Vec<Row> {
    let lines = config.relay_lines;
    let chunk = ATOMIC_CHUNK;
    println!(
        "== follow: 1 x {lines} lines of {LINE_LEN} bytes in {chunk}-byte writes, without a follower, with a stalled and with an active `pm logs -F`, {} rep(s)",
        config.reps
    );
    let kinds = [Follower::None, Follower::Stalled, Follower::Active];
    let mut runs: Vec<Vec<FollowRun>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for rep in 1..=config.reps {
        for (index, kind) in kinds.into_iter().enumerate() {
            match follow_run(config, kind, lines, chunk) {
                Ok(run) => {
                    let t = &run.tally;
                    println!(
                        "   {:<7} #{rep}: {} (lost {}, corrupt {}, out of order {}, dup {}, {} system lines, {} dropped-follower lines, {}{})",
                        format!("{kind:?}").to_lowercase(),
                        rate(t.rate()),
                        t.lost(),
                        t.corrupt,
                        t.out_of_order,
                        t.duplicates,
                        t.system,
                        t.dropped_followers,
                        describe(run.exit),
                        run.follower_lines
                            .map_or(String::new(), |n| format!(", follower printed {n} lines")),
                    );
                    runs[index].push(run);
                }
                Err(e) => {
                    println!("   {kind:?} #{rep}: error: {e}");
                    return vec![Row::failed("follow", &e)];
                }
            }
        }
    }
    let summary = |runs: &[FollowRun]| {
        let mut rates: Vec<f64> = runs.iter().map(|r| r.tally.rate()).collect();
        let spread = spread(&rates);
        (median(&mut rates), spread)
    };
    let (none, none_spread) = summary(&runs[0]);
    let (stalled, stalled_spread) = summary(&runs[1]);
    let (active, active_spread) = summary(&runs[2]);
    let (mut lost, mut corrupt, mut order) = (0, 0, 0);
    let mut clean_exit = true;
    for run in runs.iter().flatten() {
        lost += run.tally.lost();
        corrupt += run.tally.corrupt;
        order += run.tally.out_of_order + run.tally.duplicates;
        clean_exit &= run.exit.success();
    }
    let dropped = runs[1]
        .iter()
        .filter(|r| r.tally.dropped_followers == 1)
        .count();
    let wrongly_dropped: u64 = runs[0].iter().map(|r| r.tally.dropped_followers).sum();
    let mut printed: Vec<f64> = runs[2]
        .iter()
        .filter_map(|r| r.follower_lines.map(|n| n as f64))
        .collect();
    let printed = median(&mut printed);
    let active_dropped = runs[2]
        .iter()
        .filter(|r| r.tally.dropped_followers > 0)
        .count();
    vec![
        Row::info("follow none rate", rate(none), String::new(), String::new()),
        Row::checked(
            "follow stalled rate",
            rate(stalled),
            format!("{} (none)", rate(none)),
            ratio(stalled, none),
            ">= 0.9x none",
            none > 0.0 && stalled >= 0.9 * none,
        ),
        Row::checked(
            "  stalled follower dropped",
            format!("{dropped} of {} runs", runs[1].len()),
            String::new(),
            String::new(),
            "all, 1 system line",
            dropped == runs[1].len() && wrongly_dropped == 0,
        ),
        Row::info(
            "follow active rate",
            rate(active),
            format!("{} (none)", rate(none)),
            ratio(active, none),
        ),
        Row::info(
            "  active follower printed",
            format!(
                "{:.0} of {} lines (median; dropped in {active_dropped} of {} runs)",
                printed,
                lines + 3,
                runs[2].len()
            ),
            String::new(),
            String::new(),
        ),
        Row::info(
            "follow spread",
            format!("stalled {stalled_spread}, active {active_spread}"),
            format!("none {none_spread}"),
            String::new(),
        ),
        Row::checked(
            "follow lost/corrupt/order",
            format!("{lost}/{corrupt}/{order}"),
            String::new(),
            String::new(),
            "0/0/0, exit 0",
            lost + corrupt + order == 0 && clean_exit,
        ),
    ]
}

fn follow_run(config: &Config, kind: Follower, lines: u64, chunk: usize) -> Result<FollowRun> {
    let dir = tempdir("pm-bench-")?;
    let go = dir.path().join("go");
    let procfile = format!(
        "gen: exec {} --wait-file {} --generate {lines} --chunk {chunk}\n",
        quote(&config.exe),
        quote(&go)
    );
    write_file(&dir.path().join("Procfile"), &procfile)?;
    let mut cmd = Command::new(&config.pm);
    cmd.current_dir(dir.path())
        .args(["start", "--color", "never", "gen=1"]);
    let mut pm = Proc::spawn(cmd, libc::SIGTERM, Some(dir.path()))?;
    let mut tally = Tally::new(1, lines, true);
    let deadline = Instant::now() + Duration::from_secs(10);
    // pm is up once it said it started the generator (the socket listens
    // before the first instance starts).
    while tally.system == 0 {
        match pm.read(deadline) {
            Read::Lines(chunk, at) => tally.chunk(chunk, at),
            Read::Eof => return Err("pm's output ended before it started".into()),
            Read::Timeout => return Err(format!("pm did not start{}", pm.stderr_tail())),
        }
    }
    let mut follower = None;
    let mut counting = None;
    if kind != Follower::None {
        let mut cmd = Command::new(&config.pm);
        cmd.current_dir(dir.path()).args(["logs", "-F"]);
        let mut client = Proc::spawn(cmd, libc::SIGTERM, None)?;
        // Connected once it printed the scrollback's first line.
        let mut seen = match client.read(deadline) {
            Read::Lines(chunk, _) => memchr::memchr_iter(b'\n', chunk).count() as u64,
            _ => return Err("pm logs -F printed nothing".into()),
        };
        if kind == Follower::Active {
            let (done, result) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                let ended = loop {
                    match client.read(deadline) {
                        Read::Lines(chunk, _) => {
                            seen += memchr::memchr_iter(b'\n', chunk).count() as u64;
                        }
                        Read::Eof => break true,
                        Read::Timeout => break false,
                    }
                };
                let _ = done.send((seen, ended));
                drop(client);
            });
            counting = Some(result);
        } else {
            follower = Some(client);
        }
    }
    write_file(&go, "")?;
    tally.read_to_end(&mut pm, Instant::now() + Duration::from_secs(60))?;
    let exit = pm.wait_exit(Instant::now() + Duration::from_secs(10))?;
    drop(follower);
    let follower_lines = match counting {
        Some(result) => {
            let (seen, ended) = result
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| "the active follower did not end after pm exited")?;
            if !ended {
                return Err("the active follower's output never ended".into());
            }
            Some(seen)
        }
        None => None,
    };
    Ok(FollowRun {
        tally,
        exit: exit.status,
        follower_lines,
    })
}

// ---------------------------------------------------------------------------
// Scenario 8: resident memory, idle and with a full scrollback.

/// Lines each instance writes into the scrollback, and their length
/// (newline included): 1000 is the default scrollback.
const FILL_LINES: u64 = 1000;
const FILL_LEN: usize = 100;
/// What the scrollback keeps per line besides its text: its head
/// (sequence number, time, length).
const KEPT_HEAD: usize = 24;
/// The most the RSS may grow per byte the scrollback keeps.
const MAX_RSS_GROWTH: f64 = 1.25;

struct Rss {
    rss_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    threads: usize,
}

fn rss(config: &Config) -> Vec<Row> {
    let n = config.idle_children;
    let reps = config.reps.min(3);
    println!(
        "== rss: {n} children that write nothing, then {n} that write {FILL_LINES} lines of {FILL_LEN} bytes each, {reps} rep(s)"
    );
    let mut quiet = Vec::new();
    let mut full = Vec::new();
    for rep in 1..=reps {
        for (fill, runs) in [(false, &mut quiet), (true, &mut full)] {
            match rss_run(config, fill) {
                Ok(m) => {
                    println!(
                        "   {} #{rep}: VmRSS {} KiB (anon {}, file {}), VmHWM {} KiB, {} threads",
                        if fill { "full " } else { "quiet" },
                        m.rss_kib,
                        m.anon_kib,
                        m.file_kib,
                        m.hwm_kib,
                        m.threads
                    );
                    runs.push(m);
                }
                Err(e) => {
                    println!("   rss #{rep}: error: {e}");
                    return vec![Row::failed("rss", &e)];
                }
            }
        }
    }
    let mib = |kib: f64| format!("{:.2} MiB", kib / 1024.0);
    let med = |runs: &[Rss], field: fn(&Rss) -> u64| {
        median(&mut runs.iter().map(|m| field(m) as f64).collect::<Vec<_>>())
    };
    let quiet_rss = med(&quiet, |m| m.rss_kib);
    let full_rss = med(&full, |m| m.rss_kib);
    let kept_kib = (n as u64 * FILL_LINES * (FILL_LEN - 1 + KEPT_HEAD) as u64) as f64 / 1024.0;
    let growth = full_rss - quiet_rss;
    vec![
        Row::checked(
            format!("rss, {n} quiet children"),
            format!(
                "{} (anon {}, file {}, {} threads)",
                mib(quiet_rss),
                mib(med(&quiet, |m| m.anon_kib)),
                mib(med(&quiet, |m| m.file_kib)),
                quiet.first().map_or(0, |m| m.threads)
            ),
            String::new(),
            String::new(),
            "< 5 MiB",
            quiet_rss < 5.0 * 1024.0,
        ),
        Row::info(
            "  peak (VmHWM)",
            mib(med(&quiet, |m| m.hwm_kib)),
            String::new(),
            String::new(),
        ),
        Row::checked(
            format!("rss, {n} x {FILL_LINES} lines kept"),
            format!(
                "{} (+{}; anon {})",
                mib(full_rss),
                mib(growth),
                mib(med(&full, |m| m.anon_kib))
            ),
            format!("{} kept", mib(kept_kib)),
            ratio(growth, kept_kib),
            &format!("growth <= {MAX_RSS_GROWTH}x kept"),
            growth <= MAX_RSS_GROWTH * kept_kib,
        ),
        Row::info(
            "  peak (VmHWM)",
            mib(med(&full, |m| m.hwm_kib)),
            String::new(),
            String::new(),
        ),
    ]
}

/// pm's memory once `idle_children` instances are up and, with `fill`,
/// once each wrote [`FILL_LINES`] lines that pm printed.
fn rss_run(config: &Config, fill: bool) -> Result<Rss> {
    let n = config.idle_children;
    let dir = tempdir("pm-bench-")?;
    let (name, command) = if fill {
        (
            "fill",
            format!(
                "exec {} --fill {FILL_LINES} --len {FILL_LEN}",
                quote(&config.exe)
            ),
        )
    } else {
        ("quiet", "exec sleep 1000".to_string())
    };
    write_file(
        &dir.path().join("Procfile"),
        &format!("{name}: {command}\n"),
    )?;
    let mut cmd = Command::new(&config.pm);
    cmd.current_dir(dir.path())
        .args(["start", "--color", "never"])
        .arg(format!("{name}={n}"));
    let mut pm = Proc::spawn(cmd, libc::SIGTERM, Some(dir.path()))?;
    let want_lines = if fill { n as u64 * FILL_LINES } else { 0 };
    let (mut started, mut lines) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while started < n || lines < want_lines {
        let chunk = match pm.read(deadline) {
            Read::Lines(chunk, _) => chunk,
            Read::Eof => return Err("pm's output ended".into()),
            Read::Timeout => {
                return Err(format!(
                    "timed out: {started} of {n} started, {lines} of {want_lines} lines{}",
                    pm.stderr_tail()
                ));
            }
        };
        for line in chunk.split(|&b| b == b'\n') {
            match split_prefix(line) {
                Some((b"system", text))
                    if memchr::memmem::find(text, b" started with pid ").is_some() =>
                {
                    started += 1;
                }
                Some((b"system", _)) => {}
                Some(_) => lines += 1,
                None => {}
            }
        }
    }
    // Past the writer's idle second, after which it holds no output buffer.
    drain_for(&mut pm, Duration::from_millis(1500))?;
    let status =
        fs::read_to_string(format!("/proc/{}/status", pm.pid)).map_err(|e| e.to_string())?;
    let field = |name: &str| status_kib(&status, name).ok_or(format!("no {name} in status"));
    let rss = Rss {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:")?,
        file_kib: field("RssFile:")?,
        threads: fs::read_dir(format!("/proc/{}/task", pm.pid)).map_or(0, |d| d.count()),
    };
    signal_pid(pm.pid, libc::SIGTERM);
    pm.wait_exit(Instant::now() + Duration::from_secs(10))?;
    Ok(rss)
}

// ---------------------------------------------------------------------------
// Processes: spawning, reading, waiting, and killing everything.

/// Processes alive under a `Proc`; orphans are reaped only when it is zero,
/// so the reaper never takes the exit status of a child still in use.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The process group of the newest live `Proc`, for the interrupt handler.
static CURRENT_GROUP: AtomicI32 = AtomicI32::new(0);

/// On Ctrl-C (or SIGTERM, SIGHUP) the bench dies without running its
/// destructors, so the handler SIGKILLs the group of the process it was
/// measuring: a shell baseline and its jobs, or pm, whose guardian then
/// kills pm's children (which also get PR_SET_PDEATHSIG).
fn kill_current_group_on_interrupt() {
    extern "C" fn on_signal(signal: libc::c_int) {
        let group = CURRENT_GROUP.load(Ordering::SeqCst);
        // SAFETY: kill and _exit are async-signal-safe.
        unsafe {
            if group > 1 && group != libc::getpgrp() {
                libc::kill(-group, libc::SIGKILL);
            }
            libc::_exit(128 + signal);
        }
    }
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

enum Read<'a> {
    /// Complete lines, and when (CLOCK_MONOTONIC ns) the read returned them.
    Lines(&'a [u8], u64),
    Eof,
    Timeout,
}

struct Exit {
    status: ExitStatus,
    at: Instant,
    cpu_ms: Option<f64>,
}

/// A process the bench started, in its own process group, with its stdout
/// read through a pipe. Dropping it kills its whole tree.
struct Proc {
    child: Child,
    pid: i32,
    out: OwnedFd,
    buf: Vec<u8>,
    len: usize,
    consumed: usize,
    eof: bool,
    waited: bool,
    stderr: Option<PathBuf>,
}

const READ_SIZE: usize = 256 * 1024;

impl Proc {
    /// Spawns `cmd` in a new process group; it gets `death_signal` when the
    /// bench dies. With `stderr_dir`, its stderr goes to a file there.
    fn spawn(mut cmd: Command, death_signal: i32, stderr_dir: Option<&Path>) -> Result<Proc> {
        let stderr_path = stderr_dir.map(|d| d.join("stderr.log"));
        let stderr = match &stderr_path {
            Some(path) => Stdio::from(fs::File::create(path).map_err(|e| e.to_string())?),
            None => Stdio::inherit(),
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        die_with_bench(&mut cmd, death_signal);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
        LIVE.fetch_add(1, Ordering::SeqCst);
        CURRENT_GROUP.store(child.id() as i32, Ordering::SeqCst);
        let out = OwnedFd::from(child.stdout.take().ok_or("no stdout pipe")?);
        Ok(Proc {
            pid: child.id() as i32,
            child,
            out,
            buf: Vec::new(),
            len: 0,
            consumed: 0,
            eof: false,
            waited: false,
            stderr: stderr_path,
        })
    }

    /// The next complete lines of output, waiting until `deadline`.
    fn read(&mut self, deadline: Instant) -> Read<'_> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.len, 0);
            self.len -= self.consumed;
            self.consumed = 0;
        }
        loop {
            if self.eof {
                if self.len == 0 {
                    return Read::Eof;
                }
                // A last line without its newline.
                self.buf.truncate(self.len);
                self.buf.push(b'\n');
                self.len += 1;
                self.consumed = self.len;
                return Read::Lines(&self.buf[..self.len], mono_ns());
            }
            if self.buf.len() < self.len + READ_SIZE {
                self.buf.resize(self.len + READ_SIZE, 0);
            }
            if !wait_readable(&self.out, deadline) {
                return Read::Timeout;
            }
            let room = &mut self.buf[self.len..];
            // SAFETY: reads at most room.len() bytes into memory we own.
            let n =
                unsafe { libc::read(self.out.as_raw_fd(), room.as_mut_ptr().cast(), room.len()) };
            let at = mono_ns();
            if n <= 0 {
                let error = io::Error::last_os_error();
                if n < 0
                    && matches!(
                        error.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    )
                {
                    continue;
                }
                self.eof = true;
                continue;
            }
            let start = self.len;
            self.len += n as usize;
            if let Some(at_newline) = memchr::memrchr(b'\n', &self.buf[start..self.len]) {
                self.consumed = start + at_newline + 1;
                return Read::Lines(&self.buf[..self.consumed], at);
            }
        }
    }

    /// Waits for the process to exit, reading (and dropping) its output
    /// meanwhile so it never blocks on a full pipe. Its CPU time is read
    /// while it is a zombie, before it is reaped.
    fn wait_exit(&mut self, deadline: Instant) -> Result<Exit> {
        let pidfd = pidfd_open(self.pid);
        loop {
            let mut fds = Vec::with_capacity(2);
            if let Some(fd) = &pidfd {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if !self.eof {
                fds.push(libc::pollfd {
                    fd: self.out.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Without a pidfd, poll the exit every millisecond.
            let timeout = if pidfd.is_some() {
                left.as_millis().min(1000) as i32 + 1
            } else {
                1
            };
            // SAFETY: `fds` is a live array of fds.len() pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            let at = Instant::now();
            if exited(self.pid) {
                let cpu_ms = read_stat(self.pid)
                    .map(|s| (s.utime + s.stime) as f64 * 1000.0 / clock_ticks_per_second() as f64);
                let status = self.child.wait().map_err(|e| e.to_string())?;
                self.waited = true;
                return Ok(Exit { status, at, cpu_ms });
            }
            if !self.eof && fds.last().is_some_and(|p| p.revents != 0) {
                self.discard();
            }
            if at >= deadline {
                return Err(format!("pid {} did not exit in time", self.pid));
            }
        }
    }

    /// One read of output nobody needs (the fd was reported readable).
    fn discard(&mut self) {
        let mut scratch = [0u8; 16 * 1024];
        // SAFETY: reads into a local buffer of its own length.
        let n = unsafe {
            libc::read(
                self.out.as_raw_fd(),
                scratch.as_mut_ptr().cast(),
                scratch.len(),
            )
        };
        if n == 0
            || (n < 0
                && !matches!(
                    io::Error::last_os_error().kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ))
        {
            self.eof = true;
        }
    }

    /// The end of its stderr, for error messages.
    fn stderr_tail(&self) -> String {
        let Some(text) = self
            .stderr
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
        else {
            return String::new();
        };
        let text = text.trim();
        if text.is_empty() {
            return String::new();
        }
        let tail: String = text
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(" (stderr: {tail})")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.waited {
            // Its tree first (pm's children sit in groups of their own), then
            // the process and its group.
            let tree = descendants(self.pid);
            signal_group(self.pid, libc::SIGKILL);
            signal_pid(self.pid, libc::SIGKILL);
            kill_all(&tree);
            let _ = self.child.wait();
        } else {
            signal_group(self.pid, libc::SIGKILL);
        }
        let _ = CURRENT_GROUP.compare_exchange(self.pid, 0, Ordering::SeqCst, Ordering::SeqCst);
        if LIVE.fetch_sub(1, Ordering::SeqCst) == 1 {
            reap_orphans(Duration::from_secs(5));
        }
    }
}

fn wait_readable(fd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up, so a sub-millisecond wait is not a busy loop.
        let timeout = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one live pollfd.
        let ready = unsafe { libc::poll(&mut pollfd, 1, timeout) };
        if ready > 0 {
            return true;
        }
        if ready == 0 && Instant::now() >= deadline {
            return false;
        }
    }
}

/// Whether our child `pid` has exited, without reaping it.
fn exited(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data, zeroes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into `info`, which we own.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: after a successful waitid, si_pid is set (0: nothing exited).
    rc == 0 && unsafe { info.si_pid() } != 0
}

/// Context switches per thread (each one a wake-up of an idle thread):
/// (thread id, thread name, count).
fn thread_switches(pid: i32) -> Vec<(String, String, u64)> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let text = fs::read_to_string(task.path().join("status")).ok()?;
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("Name:"))
                .unwrap_or("?")
                .trim()
                .to_string();
            let count = text
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            Some((task.file_name().to_string_lossy().into_owned(), name, count))
        })
        .collect()
}

/// Switches per thread between two samples, as `name N, name N`; and the sum.
fn switches_between(
    before: &[(String, String, u64)],
    after: &[(String, String, u64)],
) -> (String, u64) {
    let mut total = 0;
    let mut parts = Vec::new();
    for (tid, name, count) in after {
        let earlier = before.iter().find(|(t, _, _)| t == tid).map_or(0, |b| b.2);
        let delta = count.saturating_sub(earlier);
        total += delta;
        parts.push(format!("{name} {delta}"));
    }
    (parts.join(", "), total)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
