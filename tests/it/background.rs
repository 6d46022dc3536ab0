//! Scripts drive pm: `pm restart`, `pm stop` and `pm scale` return once
//! done, `pm wait` until instances are ready, `pm down` until pm has exited,
//! and `pm start -D` runs it in the background.

use std::time::{Duration, Instant};

use crate::harness::*;

fn ps_json(app: &App) -> Vec<serde_json::Value> {
    let out = app.run(&["ps", "--json"]);
    serde_json::from_str(out.assert_ok()).expect("json array")
}

fn state(app: &App, name: &str) -> String {
    let list = ps_json(app);
    let inst = list
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:?}"));
    inst["state"].as_str().unwrap_or_default().to_string()
}

/// A web whose readiness check passes only 0.6 s after each start.
fn slow_to_be_ready() -> App {
    let app = App::with_procfile(
        "web: rm -f ok-$PORT; sleep 0.6; touch ok-$PORT; exec sleep 100\nworker: exec sleep 100\n",
    );
    app.file(
        "pm.toml",
        "[process.web.ready]\nexec = \"test -f ok-$PORT\"\ninterval = 0.05\n",
    );
    app
}

#[test]
fn restart_returns_once_the_new_run_is_ready() {
    let app = slow_to_be_ready();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("web.1 is ready", SECS(20));
    let old = ps_json(&app)[0]["pid"].clone();
    let t = Instant::now();
    let out = app.run(&["restart", "web"]);
    assert_eq!(out.assert_ok(), "restarting web.1\n");
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(state(&app, "web.1"), "ready");
    assert_ne!(ps_json(&app)[0]["pid"], old);

    // Too short a timeout: exit 1, naming the instance.
    let out = app.run(&["restart", "web", "--timeout", "0.2"]);
    out.assert_error(1, "pm: timed out after 0.2s waiting for web.1\n");
    pm.wait_for_line("web.1 is ready", SECS(20));
    // --no-wait returns before the new run is even ready.
    app.run(&["restart", "web", "--no-wait"]).assert_ok();
    assert_ne!(state(&app, "web.1"), "ready");
    pm.stop_ok(SECS(10));
}

#[test]
fn stop_and_scale_return_once_done() {
    let app = App::with_procfile(
        "web: trap 'sleep 0.5; exit 0' TERM; echo armed; while :; do sleep 0.05; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "web=2"]);
    for _ in 0..2 {
        // The trap is set: a stop takes its 0.5 s.
        pm.wait_for_line("| armed", SECS(10));
    }
    let t = Instant::now();
    app.run(&["stop", "web.2"]).assert_ok();
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(state(&app, "web.2"), "stopped");
    app.run(&["scale", "web=3"]).assert_ok();
    assert_eq!(state(&app, "web.3"), "running");
    app.run(&["scale", "web=1"]).assert_ok();
    assert_eq!(ps_json(&app).len(), 1);
    // A stop that cannot be done in time.
    let out = app.run(&["stop", "web", "--timeout", "0.1"]);
    out.assert_error(1, "pm: timed out after 0.1s waiting for web.1\n");
    pm.stop_ok(SECS(10));
}

#[test]
fn changes_are_refused_while_pm_shuts_down() {
    let app = App::with_procfile(
        "web: trap 'sleep 60; exit 0' TERM; echo armed; while :; do sleep 0.05; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "-t", "60"]);
    pm.wait_for_line("web.1  | armed", SECS(10));
    pm.signal(nix::sys::signal::Signal::SIGTERM);
    pm.wait_for_line("sending SIGTERM to all processes", SECS(10));
    for args in [
        &["restart", "web"][..],
        &["stop", "web"],
        &["scale", "web=2"],
        &["wait"],
    ] {
        app.run(args).assert_error(1, "pm: pm is shutting down\n");
    }
    // A pm down while stopping changes nothing (a second SIGTERM would kill).
    app.run(&["down", "--timeout", "0.1"])
        .assert_error_contains(1, "has not exited in time");
    pm.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(pm.wait_for_exit(SECS(20)).code(), Some(143));
}

#[test]
fn wait_returns_once_everything_is_ready() {
    let app = slow_to_be_ready();
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("web.1 started", SECS(10));
    let out = app.run(&["wait"]);
    assert_eq!(out.assert_ok(), "every instance is ready\n");
    assert_eq!(state(&app, "web.1"), "ready");
    app.run(&["wait", "worker", "web.1"]).assert_ok();
    // An instance stopped by pm stop will not be ready: exit 1, naming it.
    app.run(&["stop", "worker"]).assert_ok();
    app.run(&["wait"])
        .assert_error(1, "pm: worker.1 was stopped (pm stop)\n");
    app.run(&["wait", "nope"])
        .assert_error_starts(1, "pm: no process or instance \"nope\"");
    // Backing off is not given up: the wait goes on until the timeout.
    app.run(&["restart", "worker"]).assert_ok();
    app.run(&["restart", "web", "--no-wait"]).assert_ok();
    app.run(&["wait", "web", "--timeout", "0.1"])
        .assert_error(1, "pm: timed out after 0.1s waiting for web.1\n");
    pm.stop_ok(SECS(10));
}

#[test]
fn wait_fails_as_soon_as_an_instance_is_given_up_on() {
    // It fails at once, so it never counts as ready (0.5 s of running),
    // and is given up on after two restarts (0.5 s and 1 s later).
    let app = App::with_procfile("web: exec sleep 100\nflaky: exit 3\n");
    let mut pm = app.start(&["start", "--no-timestamp", "--max-restarts", "2"]);
    pm.wait_for_line("flaky.1 started", SECS(10));
    let t = Instant::now();
    app.run(&["wait", "--timeout", "30"])
        .assert_error(1, "pm: flaky.1 failed and was given up on\n");
    assert!(t.elapsed() < SECS(10), "{:?}", t.elapsed());
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(3));
}

#[test]
fn down_returns_once_pm_has_exited() {
    let app = App::with_procfile(
        "web: trap 'sleep 0.5; exit 0' TERM; echo armed; while :; do sleep 0.05; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("web.1  | armed", SECS(10));
    let pid = pm.pid();
    let out = app.run(&["down"]);
    assert_eq!(out.assert_ok(), format!("pm (pid {pid}) has exited\n"));
    pm.wait_for_line("pm down requested, stopping all processes", SECS(5));
    assert_eq!(pm.wait_for_exit(SECS(5)).code(), Some(0));
    assert!(!app.path().join(".pm.sock").exists());
    // No pm left: exit 1.
    app.run(&["down"]).assert_error_starts(1, "pm: ");
}

#[test]
fn down_gives_up_after_its_timeout() {
    let app = App::with_procfile(
        "web: trap 'sleep 2; exit 0' TERM; echo armed; while :; do sleep 0.05; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "-t", "10"]);
    pm.wait_for_line("web.1  | armed", SECS(10));
    let pid = pm.pid();
    app.run(&["down", "--timeout", "0.2"]).assert_error(
        1,
        &format!("pm: pm (pid {pid}) has not exited in time; it goes on stopping\n"),
    );
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
}

/// A `pm start -D` that is brought down when the test ends, however it ends.
struct Detached<'a> {
    app: &'a App,
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        if self.app.path().join(".pm.sock").exists() {
            let _ = run_with_deadline(&mut self.app.cmd(&["down", "--timeout", "10"]), SECS(20));
        }
    }
}

/// The pid of the pm that serves the app's socket (from `pm ps`'s caller side:
/// the instances' parent).
fn pm_pid_of(app: &App, instance: &str) -> i32 {
    let list = ps_json(app);
    let pid = list
        .iter()
        .find(|i| i["name"] == instance)
        .and_then(|i| i["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid for {instance} in {list:?}")) as i32;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = stat.rsplit_once(')').expect("stat format").1;
    after
        .split_whitespace()
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("ppid number")
}

#[test]
fn detach_returns_once_up_and_the_pm_runs_on_in_a_session_of_its_own() {
    let app = App::with_procfile(
        "web: echo \"web says hi\"; exec sleep 100\nrelease: echo migrating; sleep 0.3\n",
    );
    let t = Instant::now();
    let out = app.run(&["start", "-D", "--no-timestamp", "--log", "pm.log"]);
    let _down = Detached { app: &app };
    assert_eq!(out.assert_ok(), "");
    assert_eq!(out.stderr, "");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "returned before the release ended"
    );
    // Up: the socket answers and the release has completed.
    assert_eq!(state(&app, "release.1"), "exited");
    app.run(&["wait"]).assert_ok();
    let pm = pm_pid_of(&app, "web.1");
    let stat = std::fs::read_to_string(format!("/proc/{pm}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // state ppid pgrp session tty_nr: a session of its own, no terminal.
    assert_eq!(fields[3], pm.to_string(), "session: {stat}");
    assert_eq!(fields[4], "0", "controlling terminal: {stat}");
    let stdin = std::fs::read_link(format!("/proc/{pm}/fd/0")).unwrap();
    assert_eq!(stdin, std::path::Path::new("/dev/null"));
    let log = wait_until(
        SECS(10),
        "the log has web's line",
        || std::fs::read_to_string(app.path().join("pm.log")).unwrap_or_default(),
        |log| log.contains("web.1     | web says hi"),
    );
    assert!(log.contains("release.1 | migrating"), "{log}");
    assert!(log.contains("system    | release.1 completed"), "{log}");
    let down = app.run(&["down"]);
    assert_eq!(down.assert_ok(), format!("pm (pid {pm}) has exited\n"));
    assert!(!alive(pm));
    let log = std::fs::read_to_string(app.path().join("pm.log")).unwrap();
    assert!(log.contains("pm down requested"), "{log}");
}

#[test]
fn detach_with_a_failed_release_exits_with_its_code_and_output() {
    let app = App::with_procfile(
        "web: exec sleep 100\nrelease: echo 'migration 42 failed' >&2; exit 3\n",
    );
    let out = app.run(&["start", "-D", "--no-timestamp"]);
    let _down = Detached { app: &app };
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(
        out.stderr.contains("release.1 | migration 42 failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("release.1 exited with code 3, release failed: starting nothing else"),
        "{}",
        out.stderr
    );
    assert!(!app.path().join(".pm.sock").exists(), "no pm runs on");
}

#[test]
fn detach_refuses_bad_input_as_start_does() {
    let app = App::with_procfile("web exec sleep 100\n");
    app.run(&["start", "-D"]).assert_error(
        1,
        "pm: Procfile:1: expected \"NAME: COMMAND\", found \"web exec sleep 100\"\n",
    );
    app.file("Procfile", "web: exec sleep 100\n");
    app.run(&["start", "-D"]).assert_ok();
    let _down = Detached { app: &app };
    app.run(&["start", "-D"])
        .assert_error_contains(1, "pm is already running here");
    app.run(&["start", "--log", "x.log"])
        .assert_error_contains(2, "--detach");
}

#[test]
fn a_script_starts_waits_uses_and_brings_down() {
    let (base, _) = free_ports(&[0]);
    let app = App::with_procfile(
        "web: sleep 0.3; echo served > index.html; exec python3 -m http.server $PORT --bind 127.0.0.1\n",
    );
    app.file(
        "pm.toml",
        "[process.web.ready]\nhttp = \"/index.html\"\ninterval = 0.1\n",
    );
    let bin = std::path::Path::new(PM).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "pm start -D -p {base} && pm wait && curl -fsS http://127.0.0.1:{base}/index.html && pm down"
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script])
        .current_dir(app.path())
        .env("PATH", path)
        .env_remove("PM_SOCKET");
    let _down = Detached { app: &app };
    let out = Finished::from(run_with_deadline(&mut cmd, SECS(30)));
    let stdout = out.assert_ok();
    assert!(
        stdout.starts_with("every instance is ready\nserved\npm (pid ")
            && stdout.ends_with(") has exited\n"),
        "{stdout}"
    );
    assert!(!app.path().join(".pm.sock").exists());
}

#[test]
fn a_detached_pm_without_a_log_keeps_its_output_for_pm_logs() {
    let app = App::with_procfile("web: echo \"web says hi\"; echo \"and more\"; exec sleep 100\n");
    app.run(&["start", "-D", "--no-timestamp"]).assert_ok();
    let _down = Detached { app: &app };
    app.run(&["wait"]).assert_ok();
    let logs = wait_until(
        SECS(10),
        "pm logs shows web's lines",
        || app.run(&["logs"]).stdout,
        |out| out.contains("and more"),
    );
    assert!(logs.contains("web.1  | web says hi\n"), "{logs}");
    assert!(logs.contains("web.1  | and more\n"), "{logs}");
    assert!(logs.contains("system | web.1 started with pid"), "{logs}");
    let pm = pm_pid_of(&app, "web.1");
    app.run(&["down"]).assert_ok();
    // pm down returns once pm's socket closed, which is part of its exit:
    // the process itself may take a moment more to be gone.
    assert!(eventually(SECS(5), || !alive(pm)), "pm {pm} still runs");
}
