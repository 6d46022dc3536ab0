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
    let app =
        App::with_procfile("web: trap 'sleep 0.5; exit 0' TERM; while :; do sleep 0.05; done\n");
    let mut pm = app.start(&["start", "--no-timestamp", "web=2"]);
    for _ in 0..2 {
        pm.wait_for_line(" started with pid ", SECS(10));
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
    let app =
        App::with_procfile("web: trap 'sleep 3; exit 0' TERM; while :; do sleep 0.05; done\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-t", "10"]);
    pm.wait_for_line("web.1 started", SECS(10));
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
    assert_eq!(pm.wait_for_exit(SECS(20)).code(), Some(0));
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
    let app = App::with_procfile("web: exec sleep 100\nflaky: sleep 0.3; exit 3\n");
    let mut pm = app.start(&["start", "--no-timestamp", "--max-restarts", "1"]);
    pm.wait_for_line("flaky.1 started", SECS(10));
    let t = Instant::now();
    app.run(&["wait", "--timeout", "30"])
        .assert_error(1, "pm: flaky.1 failed and was given up on\n");
    assert!(t.elapsed() < SECS(10), "{:?}", t.elapsed());
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(3));
}

#[test]
fn down_returns_once_pm_has_exited() {
    let app =
        App::with_procfile("web: trap 'sleep 0.5; exit 0' TERM; while :; do sleep 0.05; done\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("web.1 started", SECS(10));
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
    let app =
        App::with_procfile("web: trap 'sleep 2; exit 0' TERM; while :; do sleep 0.05; done\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-t", "10"]);
    pm.wait_for_line("web.1 started", SECS(10));
    let pid = pm.pid();
    app.run(&["down", "--timeout", "0.2"]).assert_error(
        1,
        &format!("pm: pm (pid {pid}) has not exited in time; it goes on stopping\n"),
    );
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
}
