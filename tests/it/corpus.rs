//! The corpus: Procfiles shaped like real projects' (tests/corpus/), run by
//! pm with stand-ins for their programs (tests/corpus/bin/standin).
//!
//! Real Procfiles rarely write `exec`: pm runs a simple command as its
//! program, but `cd dir && yarn ...` keeps its shell, and yarn and `bin/rails
//! tailwindcss:watch` run the program as a child of their own;
//! their servers drain for a while on SIGTERM, holding their port;
//! their watchers exit when stdin closes. Each fixture is restarted type by
//! type while a client keeps connecting to its web port, its web pid (as
//! `pm ps --json` shows it) is SIGKILLed, and pm is stopped with Ctrl-C, or
//! SIGKILLed itself. Every stand-in logs its start, each signal it receives
//! and its exit to one file, so the checks count signals per process and look
//! for survivors by pid. A scenario notes every problem and goes on, then
//! fails with all of them and its figures, so one run shows the whole picture.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// How long a stand-in server or worker drains after its stop signal.
const DRAIN: &str = "1";

struct Fixture {
    /// Directory under tests/corpus/, and the slot that picks its ports.
    dir: &'static str,
    slot: u16,
    procfile: &'static str,
    /// The type whose port the client hits and whose pid is SIGKILLed.
    web: &'static str,
    /// The port web binds whatever PORT says (Rails 7's `-p 3000`).
    fixed_port: Option<u16>,
    types: &'static [Kind],
}

struct Kind {
    name: &'static str,
    /// Stand-in processes in one run (a unicorn master and its 2 workers: 3).
    procs: usize,
    /// One simple command, or `exec`: the program is the instance's process,
    /// so its exit after a stop is the exit pm reports.
    simple: bool,
    /// Reads stdin and would exit at end-of-file.
    watcher: bool,
    /// Runs once to completion (release).
    oneshot: bool,
}

const fn kind(name: &'static str, procs: usize, simple: bool) -> Kind {
    Kind {
        name,
        procs,
        simple,
        watcher: false,
        oneshot: false,
    }
}

const fn watcher(name: &'static str, procs: usize) -> Kind {
    Kind {
        watcher: true,
        ..kind(name, procs, true)
    }
}

const MASTODON: Fixture = Fixture {
    dir: "mastodon",
    slot: 0,
    procfile: "Procfile.dev",
    web: "web",
    fixed_port: None,
    types: &[
        kind("web", 1, true),
        kind("sidekiq", 1, true),
        kind("stream", 1, true),
        watcher("webpack", 1),
    ],
};

const DISCOURSE: Fixture = Fixture {
    dir: "discourse",
    slot: 2,
    procfile: "Procfile",
    web: "web",
    fixed_port: None,
    // ember: cd && yarn (a runner) && the ember server.
    types: &[
        kind("web", 3, true),
        kind("sidekiq", 1, true),
        kind("ember", 2, false),
    ],
};

const GDK: Fixture = Fixture {
    dir: "gdk",
    slot: 4,
    procfile: "Procfile",
    web: "rails-web",
    fixed_port: None,
    types: &[
        kind("rails-web", 1, true),
        kind("rails-background-jobs", 1, true),
        kind("gitlab-workhorse", 1, true),
        kind("redis", 1, true),
        watcher("webpack", 2),
    ],
};

const FOREM: Fixture = Fixture {
    dir: "forem",
    slot: 6,
    procfile: "Procfile.dev",
    web: "web",
    fixed_port: None,
    types: &[
        kind("web", 1, true),
        kind("sidekiq", 1, true),
        watcher("esbuild", 2),
    ],
};

const COOKIECUTTER_DJANGO: Fixture = Fixture {
    dir: "cookiecutter-django",
    slot: 8,
    procfile: "Procfile",
    web: "web",
    fixed_port: None,
    types: &[
        Kind {
            oneshot: true,
            ..kind("release", 1, true)
        },
        kind("web", 3, true),
        kind("worker", 1, true),
        kind("beat", 1, true),
    ],
};

const RAILS7_TAILWIND: Fixture = Fixture {
    dir: "rails7-tailwind",
    slot: 10,
    procfile: "Procfile.dev",
    web: "web",
    fixed_port: Some(3000),
    types: &[kind("web", 1, true), watcher("css", 2)],
};

#[test]
fn mastodon_restart_kill_and_ctrl_c() {
    restart_kill_and_ctrl_c(&MASTODON);
}

#[test]
fn mastodon_nothing_outlives_sigkill_of_pm() {
    nothing_outlives_sigkill_of_pm(&MASTODON);
}

#[test]
fn discourse_restart_kill_and_ctrl_c() {
    restart_kill_and_ctrl_c(&DISCOURSE);
}

#[test]
fn discourse_nothing_outlives_sigkill_of_pm() {
    nothing_outlives_sigkill_of_pm(&DISCOURSE);
}

#[test]
fn gdk_restart_kill_and_ctrl_c() {
    restart_kill_and_ctrl_c(&GDK);
}

#[test]
fn gdk_nothing_outlives_sigkill_of_pm() {
    nothing_outlives_sigkill_of_pm(&GDK);
}

#[test]
fn forem_restart_kill_and_ctrl_c() {
    restart_kill_and_ctrl_c(&FOREM);
}

#[test]
fn forem_nothing_outlives_sigkill_of_pm() {
    nothing_outlives_sigkill_of_pm(&FOREM);
}

#[test]
fn cookiecutter_django_restart_kill_and_ctrl_c() {
    restart_kill_and_ctrl_c(&COOKIECUTTER_DJANGO);
}

#[test]
fn cookiecutter_django_nothing_outlives_sigkill_of_pm() {
    nothing_outlives_sigkill_of_pm(&COOKIECUTTER_DJANGO);
}

#[test]
fn rails7_tailwind_restart_kill_and_ctrl_c() {
    restart_kill_and_ctrl_c(&RAILS7_TAILWIND);
}

#[test]
fn rails7_tailwind_nothing_outlives_sigkill_of_pm() {
    nothing_outlives_sigkill_of_pm(&RAILS7_TAILWIND);
}

/// `pm check`; `pm start`; `pm restart` of every type while a client
/// connects to web; `kill -9` of web's pid; Ctrl-C. Then: no "Address already
/// in use", no run of a type began before the previous one had ended, only
/// the SIGKILL counts as a restart, every process got exactly one stop signal
/// and exited on its own after it, the watchers never saw end-of-file,
/// nothing survives pm, pm exits 0.
fn restart_kill_and_ctrl_c(fx: &'static Fixture) {
    let mut s = Scenario::new(fx, 0);
    s.check();
    let mut pm = s.start();
    let mut current = s.wait_first_runs(&pm);
    let port = s.web_port();
    let web_run = current[fx.web];
    s.wait_answer(port, web_run, SECS(10))
        .unwrap_or_else(|e| panic!("{}: web never answered: {e}", fx.dir));
    let client = Client::start(port);

    for kind in fx.types.iter().filter(|k| !k.oneshot) {
        let old = current[kind.name];
        let from = s.log().len();
        let out = s.app.run(&["restart", kind.name]);
        if out.code() != Some(0) {
            s.problem(format!(
                "pm restart {} exited {:?}: {}",
                kind.name,
                out.code(),
                out.stderr
            ));
        }
        let next = s.wait_next_run(kind, old, from);
        s.phase_figures(&format!("restart {}", kind.name), kind, old, from);
        let Some(next) = next else { continue };
        current.insert(kind.name, next);
        if kind.name == fx.web
            && let Err(e) = s.wait_answer(port, next, SECS(10))
        {
            s.problem(format!("after pm restart {}: {e}", kind.name));
        }
    }

    let web = fx
        .types
        .iter()
        .find(|k| k.name == fx.web)
        .expect("web type");
    let victim = s
        .ps_pid(&format!("{}.1", fx.web))
        .unwrap_or_else(|| panic!("{}: no pid for {}.1 in pm ps", fx.dir, fx.web));
    let from = s.log().len();
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill -9 web");
    s.victim = Some(victim);
    let next = s.wait_next_run(web, victim, from);
    s.phase_figures("kill -9 web", web, victim, from);
    match next {
        Some(next) => {
            current.insert(fx.web, next);
            if let Err(e) = s.wait_answer(port, next, SECS(10)) {
                s.problem(format!("after kill -9 of {} pid {victim}: {e}", fx.web));
            }
        }
        None => {
            let holder = probe(port).map_or("nobody".into(), |p| format!("pgid {p}"));
            s.problem(format!(
                "after kill -9 of {} pid {victim}: no new run came up; port {port} is answered by {holder}",
                fx.web
            ));
        }
    }

    s.check_restart_counts();
    s.check_watchers_alive(&current);
    let (attempts, failures) = client.stop();
    s.figure(format!(
        "client: {failures} of {attempts} connections to port {port} failed"
    ));

    let shutdown_from = s.log().len();
    pm.signal(Signal::SIGINT);
    let status = pm.wait_for_exit(SECS(30));
    if status.code() != Some(0) {
        s.problem(format!("pm exited with {status:?} after Ctrl-C"));
    }
    s.figure_shutdown_signals(shutdown_from);
    let survivors = s.survivors();
    s.figure(format!("survivors after Ctrl-C: {}", survivors.len()));
    for p in survivors {
        s.problem(format!("{p} outlived pm"));
    }
    s.check_output(&pm.seen);
    s.check_signals();
    s.finish(&pm);
}

/// `pm start`, then SIGKILL to pm: every process of the fixture must be gone
/// soon after (the guardian's job).
fn nothing_outlives_sigkill_of_pm(fx: &'static Fixture) {
    let mut s = Scenario::new(fx, 1);
    let mut pm = s.start();
    s.wait_first_runs(&pm);
    pm.signal(Signal::SIGKILL);
    let _ = pm.child.wait();
    let killed = Instant::now();
    let at_once = s.survivors().len();
    let gone = eventually(SECS(5), || s.survivors().is_empty());
    let survivors = s.survivors();
    s.figure(format!(
        "survivors after SIGKILL of pm: {at_once} at once, {} after {:.2} s",
        survivors.len(),
        killed.elapsed().as_secs_f64()
    ));
    if !gone {
        for p in survivors {
            s.problem(format!("{p} outlived SIGKILL of pm by 5 s"));
        }
    }
    s.finish(&pm);
}

/// One run of a fixture: its copy, its stand-ins' log, what was found.
struct Scenario {
    fx: &'static Fixture,
    base: u16,
    // Dropped in this order: survivors are killed, then the port is freed
    // for whoever waits on the lock.
    _reaper: Reaper,
    app: App,
    _port_lock: Option<fs::File>,
    log_path: PathBuf,
    victim: Option<i32>,
    began: Instant,
    figures: Vec<String>,
    problems: Vec<String>,
}

impl Scenario {
    /// `slot` 0 or 1: the two tests of a fixture get ports of their own.
    fn new(fx: &'static Fixture, slot: u16) -> Scenario {
        let port_lock = fx.fixed_port.map(|port| {
            // Both tests of this fixture, and any other run of this suite,
            // bind the same fixed port: one at a time.
            let path = std::env::temp_dir().join(format!("pm-corpus-port-{port}.lock"));
            let file = fs::File::create(&path).expect("port lock file");
            file.lock().expect("lock the fixed port");
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} is taken by another program ({}); {}'s {} binds it",
                listeners(port).join(", "),
                fx.dir,
                fx.procfile
            );
            file
        });
        let app = App::new();
        copy_tree(&Path::new(CORPUS).join(fx.dir), app.path());
        let log_path = app.path().join(".standin.log");
        Scenario {
            fx,
            base: free_base(fx.slot + slot, fx.types.len()),
            _reaper: Reaper {
                log: log_path.clone(),
            },
            app,
            _port_lock: port_lock,
            log_path,
            victim: None,
            began: Instant::now(),
            figures: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn log(&self) -> Vec<Entry> {
        read_log(&self.log_path)
    }

    fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    fn figure(&mut self, text: String) {
        self.figures.push(text);
    }

    fn check(&self) {
        let out = self.app.run(&["check", "-f", self.fx.procfile]);
        let text = out.assert_ok();
        for kind in self.fx.types {
            assert!(
                text.contains(kind.name),
                "{}: pm check lists no {}:\n{text}",
                self.fx.dir,
                kind.name
            );
        }
    }

    fn start(&self) -> Running {
        let path = format!("{CORPUS}/bin:{}", std::env::var("PATH").unwrap_or_default());
        let base = self.base.to_string();
        let mut cmd = self.app.cmd(&[
            "start",
            "--no-timestamp",
            "-f",
            self.fx.procfile,
            "-p",
            &base,
        ]);
        cmd.env("PATH", path)
            .env("STANDIN_LOG", &self.log_path)
            .env("STANDIN_DRAIN", DRAIN);
        Running::spawn(cmd)
    }

    /// Waits until every type's first run has all its stand-ins up (and the
    /// release, if any, has run); returns each type's run (its pgid).
    fn wait_first_runs(&self, pm: &Running) -> BTreeMap<&'static str, i32> {
        let mut runs = BTreeMap::new();
        let ok = eventually(SECS(20), || {
            let log = self.log();
            for kind in self.fx.types {
                if let Some(run) = complete_run(&log, kind, None, 0) {
                    runs.insert(kind.name, run);
                }
            }
            runs.len() == self.fx.types.len()
        });
        assert!(
            ok,
            "{}: not every type came up within 20 s; up: {runs:?}\n--- log ---\n{}\n--- pm stderr ---\n{}",
            self.fx.dir,
            fs::read_to_string(&self.log_path).unwrap_or_default(),
            pm.stderr()
        );
        runs
    }

    /// Waits for the run after `old` of `kind` (its stand-ins logged after
    /// `from`) to be up; notes a problem if the old run overlapped it.
    fn wait_next_run(&mut self, kind: &Kind, old: i32, from: usize) -> Option<i32> {
        let mut next = None;
        eventually(SECS(10), || {
            next = complete_run(&self.log(), kind, Some(old), from);
            next.is_some()
        });
        let log = self.log();
        let old_pids: Vec<i32> = starts(&log)
            .filter(|e| e.num("pgid") == Some(old))
            .map(|e| e.pid)
            .collect();
        let still: Vec<i32> = old_pids.iter().copied().filter(|&p| alive(p)).collect();
        let inst = format!("{}.1", kind.name);
        let old_end = log
            .iter()
            .filter(|e| old_pids.contains(&e.pid))
            .map(|e| e.t)
            .fold(f64::MIN, f64::max);
        let next_begin = log[from.min(log.len())..]
            .iter()
            .filter(|e| e.get("ps") == Some(&inst) && e.num("pgid") != Some(old))
            .map(|e| e.t)
            .fold(f64::MAX, f64::min);
        match next {
            None => self.problem(format!(
                "{}: no new run up within 10 s (the previous run: pgid {old})",
                kind.name
            )),
            Some(_) if !still.is_empty() => self.problem(format!(
                "{}: the new run is up while the old run's {still:?} still live",
                kind.name
            )),
            _ => {}
        }
        if next_begin < old_end {
            self.problem(format!(
                "{}: the next run began {:.2} s before the old run's last process ended",
                kind.name,
                old_end - next_begin
            ));
        }
        next
    }

    /// Figures for one restart or kill: bind failures and overlap.
    fn phase_figures(&mut self, phase: &str, kind: &Kind, old: i32, from: usize) {
        let log = self.log();
        let inst = format!("{}.1", kind.name);
        let fails = log[from.min(log.len())..]
            .iter()
            .filter(|e| e.event == "bind-failed" && e.get("ps") == Some(&inst))
            .count();
        let runs: std::collections::BTreeSet<i32> = log[from.min(log.len())..]
            .iter()
            .filter(|e| e.get("ps") == Some(&inst))
            .filter_map(|e| e.num("pgid"))
            .filter(|&g| g != old)
            .collect();
        self.figure(format!(
            "{phase}: {fails} EADDRINUSE, {} new run(s) of {inst}",
            runs.len()
        ));
    }

    fn ps(&self) -> Vec<serde_json::Value> {
        let out = self.app.run(&["ps", "--json"]);
        serde_json::from_str(out.assert_ok()).expect("pm ps --json")
    }

    fn ps_pid(&self, name: &str) -> Option<i32> {
        self.ps()
            .iter()
            .find(|i| i["name"] == name)
            .and_then(|i| i["pid"].as_i64())
            .map(|p| p as i32)
    }

    fn web_port(&self) -> u16 {
        if let Some(port) = self.fx.fixed_port {
            return port;
        }
        let name = format!("{}.1", self.fx.web);
        let list = self.ps();
        let port = list
            .iter()
            .find(|i| i["name"] == name.as_str())
            .and_then(|i| i["port"].as_u64())
            .unwrap_or_else(|| panic!("no port for {name} in {list:?}"));
        port as u16
    }

    /// Polls until web's port is answered by a process of run `run`.
    fn wait_answer(&self, port: u16, run: i32, limit: Duration) -> Result<(), String> {
        let mut last = None;
        if eventually(limit, || {
            last = probe(port);
            last == Some(run)
        }) {
            return Ok(());
        }
        Err(match last {
            Some(other) => format!("port {port} answered by run {other}, not the new run {run}"),
            None => format!("port {port} not answered by the new run {run} within {limit:?}"),
        })
    }

    /// pm restart does not count as a restart; the one SIGKILL of web does.
    fn check_restart_counts(&mut self) {
        let list = self.ps();
        let mut counts = Vec::new();
        for inst in &list {
            let name = inst["name"].as_str().unwrap_or("?");
            let restarts = inst["restarts"].as_u64().unwrap_or(u64::MAX);
            counts.push(format!("{name}={restarts}"));
            let want = u64::from(name == format!("{}.1", self.fx.web));
            if restarts != want {
                self.problem(format!(
                    "{name} has {restarts} restarts in pm ps, expected {want}"
                ));
            }
        }
        self.figure(format!("restarts before Ctrl-C: {}", counts.join(" ")));
    }

    fn check_watchers_alive(&mut self, current: &BTreeMap<&'static str, i32>) {
        let log = self.log();
        for kind in self.fx.types.iter().filter(|k| k.watcher) {
            let run = current[kind.name];
            let dead: Vec<i32> = starts(&log)
                .filter(|e| e.num("pgid") == Some(run) && !alive(e.pid))
                .map(|e| e.pid)
                .collect();
            self.figure(format!(
                "watcher {} alive before Ctrl-C: {}",
                kind.name,
                if dead.is_empty() { "yes" } else { "no" }
            ));
            if !dead.is_empty() {
                self.problem(format!(
                    "watcher {}: {dead:?} gone before Ctrl-C",
                    kind.name
                ));
            }
        }
    }

    fn figure_shutdown_signals(&mut self, from: usize) {
        let log = self.log();
        let mut per: BTreeMap<i32, usize> = BTreeMap::new();
        for e in &log[from.min(log.len())..] {
            if e.event.starts_with("SIG") {
                *per.entry(e.pid).or_default() += 1;
            }
        }
        let text: Vec<String> = per
            .iter()
            .map(|(pid, n)| format!("{}={n}", describe(&log, *pid)))
            .collect();
        self.figure(format!("stop signals at Ctrl-C: {}", text.join(" ")));
    }

    /// Every started stand-in got exactly one stop signal (none for a
    /// one-shot or the SIGKILLed pid) and exited on its own after it; no
    /// watcher saw end-of-file.
    fn check_signals(&mut self) {
        let log = self.log();
        let mut problems = Vec::new();
        for start in starts(&log) {
            let pid = start.pid;
            let mine: Vec<&Entry> = log.iter().filter(|e| e.pid == pid).collect();
            let signals: Vec<&str> = mine
                .iter()
                .filter(|e| e.event.starts_with("SIG"))
                .map(|e| e.event.as_str())
                .collect();
            let exited = mine.iter().any(|e| e.event == "exit");
            let who = describe(&log, pid);
            if mine.iter().any(|e| e.event == "eof") {
                problems.push(format!("{who} saw end-of-file on stdin and exited"));
            }
            let want =
                usize::from(start.get("role") != Some("oneshot") && Some(pid) != self.victim);
            let code = mine
                .iter()
                .find(|e| e.event == "exit")
                .and_then(|e| e.get("code"));
            if signals.is_empty() && want == 1 {
                problems.push(match code {
                    Some(code) => format!("{who} exited by itself (code {code}), never stopped"),
                    None => format!("{who} was killed without a stop signal"),
                });
            } else if signals.len() != want {
                problems.push(format!(
                    "{who} got {} stop signals {signals:?}, expected {want}",
                    signals.len()
                ));
            } else if want == 1 && !exited {
                problems.push(format!("{who} was killed before it finished draining"));
            }
        }
        self.problems.extend(problems);
    }

    /// No "Address already in use"; no "killed by SIGTERM" where the
    /// program itself is the instance and exits 0 after its drain.
    fn check_output(&mut self, seen: &[String]) {
        let in_use = seen
            .iter()
            .filter(|l| l.contains("Address already in use"))
            .count();
        self.figure(format!("\"Address already in use\" lines: {in_use}"));
        if in_use > 0 {
            self.problem(format!("{in_use} \"Address already in use\" lines"));
        }
        for kind in self.fx.types.iter().filter(|k| k.simple) {
            let said = format!("{}.1 killed by SIGTERM", kind.name);
            let n = seen
                .iter()
                .filter(|l| l.starts_with("system ") && text_of(l) == said)
                .count();
            if n > 0 {
                self.problem(format!(
                    "pm said \"{said}\" {n} times; its program exits 0 on SIGTERM"
                ));
            }
        }
        if self.fx.types.iter().any(|k| k.oneshot) {
            // The release ran once, and ended before anything else started.
            let log = self.log();
            let releases: Vec<i32> = starts(&log)
                .filter(|e| e.get("role") == Some("oneshot"))
                .map(|e| e.pid)
                .collect();
            let ended = log
                .iter()
                .position(|e| e.event == "exit" && releases.first() == Some(&e.pid));
            let others = log
                .iter()
                .position(|e| e.event == "start" && e.get("role") != Some("oneshot"));
            let in_order = matches!((ended, others), (Some(end), Some(other)) if end < other);
            if releases.len() != 1 || !in_order {
                self.problem(format!(
                    "release ran {} times, ended at log line {ended:?}, the first other start is at {others:?}",
                    releases.len()
                ));
            }
        }
    }

    /// Stand-ins of this fixture still alive.
    fn survivors(&self) -> Vec<String> {
        let log = self.log();
        let mut pids: Vec<i32> = log.iter().map(|e| e.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        pids.into_iter()
            .filter(|&p| alive(p))
            .map(|p| describe(&log, p))
            .collect()
    }

    /// Prints the figures (tests/corpus/measure.sh collects them), then
    /// fails with every problem found.
    fn finish(mut self, pm: &Running) {
        self.figure(format!("took {:.1} s", self.began.elapsed().as_secs_f64()));
        eprintln!(
            "{} figures:\n  {}\n",
            self.fx.dir,
            self.figures.join("\n  ")
        );
        if !self.problems.is_empty() {
            panic!(
                "{}: {} problems:\n  {}\n--- standin log ---\n{}\n--- pm output ---\n{}\n--- pm stderr ---\n{}",
                self.fx.dir,
                self.problems.len(),
                self.problems.join("\n  "),
                fs::read_to_string(&self.log_path).unwrap_or_default(),
                pm.seen.join("\n"),
                pm.stderr()
            );
        }
    }
}

/// Kills whatever stand-in of a scenario is still alive when it ends, so a
/// failing run leaves nothing behind.
struct Reaper {
    log: PathBuf,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let ours: Vec<i32> = read_log(&self.log)
            .iter()
            .map(|e| e.pid)
            .filter(|&p| {
                alive(p)
                    && fs::read(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("standin"))
            })
            .collect();
        for &pid in &ours {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        eventually(SECS(5), || ours.iter().all(|&p| !alive(p)));
    }
}

/// One line of the stand-ins' log: `PID EVENT key=value... t=T`.
#[derive(Debug, Clone)]
struct Entry {
    pid: i32,
    event: String,
    fields: Vec<(String, String)>,
    t: f64,
}

impl Entry {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn num(&self, key: &str) -> Option<i32> {
        self.get(key)?.parse().ok()
    }
}

fn read_log(path: &Path) -> Vec<Entry> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let pid = words.next()?.parse().ok()?;
            let event = words.next()?.to_string();
            let fields: Vec<(String, String)> = words
                .filter_map(|w| {
                    w.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            let t = fields.iter().find(|(k, _)| k == "t")?.1.parse().ok()?;
            Some(Entry {
                pid,
                event,
                fields,
                t,
            })
        })
        .collect()
}

fn starts(log: &[Entry]) -> impl Iterator<Item = &Entry> {
    log.iter().filter(|e| e.event == "start")
}

/// `puma web.1 pid 123`.
fn describe(log: &[Entry], pid: i32) -> String {
    match log.iter().find(|e| e.pid == pid && e.get("name").is_some()) {
        Some(e) => format!(
            "{} {} pid {pid}",
            e.get("name").unwrap_or("?"),
            e.get("ps").unwrap_or("?")
        ),
        None => format!("pid {pid}"),
    }
}

/// A run (pgid) of `kind`, other than `old`, all of whose stand-ins logged
/// their start after line `from`. A one-shot's run must also have ended.
fn complete_run(log: &[Entry], kind: &Kind, old: Option<i32>, from: usize) -> Option<i32> {
    let inst = format!("{}.1", kind.name);
    let mut runs: BTreeMap<i32, usize> = BTreeMap::new();
    for e in starts(&log[from.min(log.len())..]) {
        if e.get("ps") == Some(&inst)
            && let Some(pgid) = e.num("pgid")
            && Some(pgid) != old
        {
            *runs.entry(pgid).or_default() += 1;
        }
    }
    runs.into_iter()
        .filter(|&(_, n)| n >= kind.procs)
        .map(|(pgid, _)| pgid)
        .find(|&pgid| {
            !kind.oneshot
                || log.iter().any(|e| {
                    e.event == "exit"
                        && starts(log).any(|s| s.pid == e.pid && s.num("pgid") == Some(pgid))
                })
        })
}

/// Connects to the port once: the pgid of the process that answered.
/// The processes holding a socket that listens on `port` (any address), as
/// "pid N (command line)"; found through /proc/net/tcp{,6} and each
/// process's descriptors.
fn listeners(port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1).and_then(|a| a.rsplit_once(':'));
            let listening = f.get(3) == Some(&"0A");
            if listening
                && local_port.is_some_and(|(_, p)| u16::from_str_radix(p, 16) == Ok(port))
                && let Some(inode) = f.get(9)
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let holds = fs::read_dir(entry.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                fs::read_link(fd.path())
                    .is_ok_and(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
            });
        if holds {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            found.push(format!("pid {pid} ({})", cmd.trim()));
        }
    }
    if found.is_empty() {
        found.push(format!(
            "{} listening sockets, no process found",
            inodes.len()
        ));
    }
    found
}

fn probe(port: u16) -> Option<i32> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    stream.set_read_timeout(Some(SECS(1))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    let (_, pgid) = line.trim().split_once(" pgid=")?;
    pgid.parse().ok()
}

/// A client that keeps connecting to a port, as a browser tab would.
struct Client {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<(usize, usize)>,
}

impl Client {
    fn start(port: u16) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let (mut attempts, mut failures) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                attempts += 1;
                if probe(port).is_none() {
                    failures += 1;
                }
                thread::sleep(Duration::from_millis(20));
            }
            (attempts, failures)
        });
        Client { stop, thread }
    }

    /// (attempts, failures).
    fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("client thread")
    }
}

/// A base port whose type ports (base + 100 i) are all free now, below the
/// ephemeral range, distinct per slot and varying with the test process.
fn free_base(slot: u16, types: usize) -> u16 {
    let offset = (std::process::id() % 50) as u16;
    for k in 0..50 {
        let base = 20000 + slot * 1000 + ((offset + k) % 50) * 10;
        let free =
            (0..types as u16).all(|i| TcpListener::bind(("127.0.0.1", base + 100 * i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free base port for slot {slot}");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}
