//! Supervision: release phase, pm.toml settings, pseudo-terminals, PID 1,
//! and output under pressure.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::*;

#[test]
fn release_runs_first_and_alone() {
    let app = App::with_procfile(
        "web: echo web up\nrelease: echo migrating; sleep 0.2; echo migrated\nworker: echo worker up\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "web"]);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0), "{:?}", pm.seen);
    let at = |pattern: &str| pm.index_of(pattern);
    assert!(at("release.1 | migrated") < at("web.1 started"));
    assert!(at("release.1 completed") < at("web.1 started"));
    // The formation named only web: the worker does not run, release does.
    assert!(pm.lines_with("worker").is_empty());
    // release keeps its Procfile position (1) for its port.
    assert!(pm.seen[at("release.1 started")].ends_with("on port 5100"));
}

#[test]
fn a_failing_release_starts_nothing_and_exits_with_its_code() {
    let app = App::with_procfile("release: echo cannot migrate; exit 3\nweb: touch started\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(3));
    assert!(pm.lines_with("web.1").is_empty(), "{:?}", pm.seen);
    assert!(!app.path().join("started").exists());
    pm.assert_saw("release failed");
}

#[test]
fn no_release_and_release_0_skip_it() {
    let app = App::with_procfile("release: exit 3\nweb: echo web up\n");
    for args in [
        &["start", "--no-release"][..],
        &["start", "web", "release=0"],
    ] {
        let out = app.run(args);
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stdout);
        assert!(out.stdout.contains("web up"));
        assert!(!out.stdout.contains("release.1"));
    }
}

#[test]
fn sigterm_during_release_stops_it_and_starts_nothing() {
    let app =
        App::with_procfile("release: echo \"child=$$\"; exec sleep 1000\nweb: touch started\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("child=", SECS(10));
    let child = numbers_after(&pm.seen, "child=")[0];
    pm.stop_ok(SECS(10));
    assert!(!alive(child));
    assert!(!app.path().join("started").exists());
}

#[test]
fn sigterm_during_backoff_exits_at_once() {
    let app = App::with_procfile("flaky: exit 1\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    // Let the loop grow: 0.5 s, 1 s, then a 2 s wait to interrupt.
    pm.wait_for_line("restarting in 2s", SECS(10));
    let sent = Instant::now();
    pm.stop_ok(SECS(5));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "waited for the backoff"
    );
    assert!(pm.lines_with("flaky.1 started").len() == 3, "{:?}", pm.seen);
}

#[test]
fn pm_toml_restart_policies() {
    let app = App::with_procfile(
        "once: echo run; exit 0\nfragile: echo run; exit 4\nkeep: echo run; exit 9\n",
    );
    app.file(
        "pm.toml",
        "[process.once]\nrestart = \"always\"\nmax_restarts = 2\n\n[process.fragile]\nrestart = \"never\"\n\n[process.keep]\nrestart = \"on-failure\"\n",
    );
    // `never` gives up on the first failure: pm stops with its code.
    let mut pm = app.start(&["start", "--no-timestamp", "once", "fragile"]);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(4), "{:?}", pm.seen);
    assert_eq!(pm.lines_with("fragile.1 | run").len(), 1);

    // `always` restarts an exit 0 too, until max_restarts.
    let mut pm = app.start(&["start", "--no-timestamp", "once"]);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0), "{:?}", pm.seen);
    assert_eq!(pm.lines_with("once.1 | run").len(), 3, "{:?}", pm.seen);

    // --max-restarts wins over pm.toml.
    let mut pm = app.start(&["start", "--no-timestamp", "once", "--max-restarts", "0"]);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
    assert_eq!(pm.lines_with("once.1 | run").len(), 1, "{:?}", pm.seen);
}

#[test]
fn pm_toml_stop_signal_and_timeout() {
    let app = App::with_procfile(
        "polite: trap 'echo got INT; exit 0' INT; trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.05; done\n",
    );
    app.file(
        "pm.toml",
        "[process.polite]\nstop_signal = \"INT\"\nstop_timeout = 3\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("ready", SECS(10));
    pm.signal(Signal::SIGTERM);
    pm.wait_for_line("got INT", SECS(5));
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
    assert!(pm.lines_with("got TERM").is_empty());
}

#[test]
fn pm_toml_defaults() {
    let app = App::with_procfile("web: echo \"port=$PORT\"\nworker: echo \"port=$PORT\"\n");
    app.file(
        "pm.toml",
        "[defaults]\nformation = \"worker=2\"\nport = 7000\n",
    );
    let out = app.run(&["start", "--no-timestamp"]);
    assert!(
        out.stdout.contains("worker.1 | port=7100"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("worker.2 | port=7101"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("web.1"), "{}", out.stdout);
    // A CLI formation replaces pm.toml's, and -p wins over its port.
    let out = app.run(&["start", "--no-timestamp", "web", "-p", "8000"]);
    assert!(
        out.stdout.contains("web.1    | port=8000") || out.stdout.contains("web.1  | port=8000"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("worker"), "{}", out.stdout);
}

#[test]
fn pm_toml_errors_are_located() {
    let app = App::with_procfile("web: touch started\n");
    app.file(
        "pm.toml",
        "[process.web]\nrestart = \"on-failure\"\nrestrat = 1\n",
    );
    app.run(&["start"])
        .assert_error_starts(1, "pm: pm.toml:3: unknown field `restrat`");
    assert!(!app.path().join("started").exists());

    app.file("pm.toml", "[process.wbe]\npty = true\n");
    let out = app.run(&["check"]);
    out.assert_error(
        1,
        "pm: pm.toml:1: process type \"wbe\" is not defined in the Procfile\n",
    );
}

#[test]
fn pty_gives_a_terminal() {
    let app =
        App::with_procfile("term: if [ -t 1 ]; then echo on a tty; else echo on a pipe; fi\n");
    let out = app.run(&["start", "--no-timestamp", "--pty"]);
    assert!(out.stdout.contains("term.1 | on a tty"), "{}", out.stdout);
    let out = app.run(&["start", "--no-timestamp"]);
    assert!(out.stdout.contains("term.1 | on a pipe"), "{}", out.stdout);
    app.file("pm.toml", "[process.term]\npty = true\n");
    let out = app.run(&["start", "--no-timestamp"]);
    assert!(out.stdout.contains("term.1 | on a tty"), "{}", out.stdout);
}

#[test]
fn pty_output_keeps_every_line() {
    let app = App::with_procfile("count: seq 1 20000\n");
    let out = app.run(&["start", "--no-timestamp", "--pty"]);
    let numbers: Vec<u32> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("count.1 | "))
        .map(|l| {
            l["count.1 | ".len()..]
                .trim_end_matches('\r')
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(numbers, (1..=20000).collect::<Vec<_>>());
}

#[test]
fn a_busy_writer_does_not_starve_the_others() {
    let app = App::with_procfile(
        "flood: seq 1 2000000\nticker: for i in 1 2 3 4 5; do echo tick $i; sleep 0.02; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    assert_eq!(pm.wait_for_exit(SECS(60)).code(), Some(0));
    let last_tick = pm.index_where("ending with the last tick", |l| l.ends_with("tick 5"));
    let last_flood = pm.index_where("ending the flood", |l| l.ends_with("| 2000000"));
    assert!(
        last_tick < last_flood,
        "the ticker waited for the flood to end"
    );
}

/// pm's resident memory in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_stalled_stdout_loses_nothing_and_keeps_memory_bounded() {
    // 3 children × 300,000 lines ≈ 20 MB of output, far more than the
    // pipes and pm's queue can hold while nobody reads.
    let app = App::with_procfile("gen: seq 1 300000\n");
    let mut pm = Running::spawn_unread(app.cmd(&["start", "--no-timestamp", "gen=3"]));
    let pid = pm.pid();
    // Nobody reads for a while: sample pm's memory meanwhile.
    let mut peak = 0;
    let stall = Instant::now();
    while stall.elapsed() < Duration::from_millis(1500) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peak > 0);
    assert!(
        peak < 30 * 1024,
        "pm grew to {peak} KiB while its stdout was stalled"
    );
    pm.read_stdout();
    let status = pm.wait_for_exit(SECS(60));
    // Every byte, in order, per instance. A line may come in two pieces:
    // on a loaded machine `seq` can be held up for more than 500 ms in the
    // middle of a line, and pm then prints the piece it has (SPEC §2).
    let mut got: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for line in &pm.seen {
        let (name, text) = line.split_once(" | ").expect("prefixed");
        if name.trim() == "system" {
            continue;
        }
        got.entry(name.trim().to_string())
            .or_default()
            .push_str(text);
    }
    assert_eq!(status.code(), Some(0), "{}", pm.stderr());
    assert_eq!(got.len(), 3);
    let want: String = (1..=300_000).map(|n| n.to_string()).collect();
    for (name, text) in &got {
        assert!(text == &want, "{name} lost or reordered output");
    }
}

/// `pm start --no-timestamp ARGS` as PID 1 of a fresh PID namespace.
fn in_pid_namespace(app: &App, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--mount-proc",
        PM,
        "start",
        "--no-timestamp",
    ])
    .args(args)
    .current_dir(app.path());
    cmd
}

#[test]
fn pid_1_reaps_orphans_and_passes_exit_codes() {
    // pm as PID 1 of a fresh PID namespace: the instance double-forks
    // short-lived grandchildren, then waits until the kernel has removed
    // them, which only happens if PID 1 reaps them.
    let app = App::with_procfile(
        "maker: for i in 1 2 3 4 5; do (sh -c 'echo $$ >> orphans; sleep 0.1' &); done; \
         sleep 0.3; for p in $(cat orphans); do \
         n=0; while [ -e /proc/$p ] && [ $n -lt 100 ]; do n=$((n+1)); sleep 0.05; done; \
         if [ -e /proc/$p ]; then echo \"zombie $p\"; fi; done; echo checked; exit 5\n",
    );
    let out = run_with_deadline(
        &mut in_pid_namespace(&app, &["--max-restarts", "0"]),
        SECS(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("maker.1 | checked"), "{stdout}\n{stderr}");
    assert!(!stdout.contains("zombie"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(app.path().join("orphans"))
            .expect("orphans")
            .lines()
            .count(),
        5
    );
    // The instance's failure is pm's exit code, through the namespace.
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
}

#[test]
fn pid_1_handles_sigterm() {
    let app = App::with_procfile("web: echo \"child=$$\"; exec sleep 1000\n");
    let mut pm = Running::spawn(in_pid_namespace(&app, &[]));
    pm.wait_for_line("child=", SECS(10));
    // pm's pid outside the namespace: the child of `unshare`.
    let inner = std::fs::read_to_string(format!("/proc/{}/task/{}/children", pm.pid(), pm.pid()))
        .expect("children of unshare");
    let pm_pid: i32 = inner
        .split_whitespace()
        .next()
        .expect("pm")
        .parse()
        .expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pm_pid), Signal::SIGTERM).expect("kill");
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0), "{:?}", pm.seen);
    pm.assert_saw("SIGTERM received");
}
