//! Live control from another shell: pm ps, restart, stop, scale, and the
//! socket's own safety (permissions, stale sockets, bad requests).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use nix::sys::signal::Signal;

use crate::harness::*;

fn ps_json(app: &App) -> Vec<serde_json::Value> {
    let out = app.run(&["ps", "--json"]);
    let text = out.assert_ok();
    serde_json::from_str::<Vec<serde_json::Value>>(text).expect("json array")
}

fn find<'a>(list: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

fn started(app: &App, args: &[&str], count: usize) -> Running {
    let mut pm = app.start(args);
    for _ in 0..count {
        pm.wait_for_line(" started with pid ", SECS(10));
    }
    pm
}

#[test]
fn ps_shows_every_instance() {
    let app = App::with_procfile("web: exec sleep 1000\nworker: exec sleep 1000\n");
    let mut pm = started(&app, &["start", "--no-timestamp", "web=2", "worker=1"], 3);
    let list = ps_json(&app);
    assert_eq!(list.len(), 3, "{list:?}");
    let web2 = find(&list, "web.2");
    assert_eq!(web2["type"], "web");
    assert_eq!(web2["index"], 2);
    assert_eq!(web2["port"], 5001);
    assert_eq!(web2["state"], "running");
    assert_eq!(web2["restarts"], 0);
    assert!(web2["pid"].as_i64().is_some_and(|p| p > 0));
    assert!(web2["uptime_s"].as_f64().is_some());
    assert!(web2["health"].is_null());
    assert_eq!(find(&list, "worker.1")["port"], 5100);
    let table = app.run(&["ps"]);
    let text = table.assert_ok();
    assert!(text.starts_with("NAME "), "{text}");
    assert!(
        text.contains("web.2 ") && text.contains("running"),
        "{text}"
    );
    pm.stop_ok(SECS(10));
    assert!(!app.path().join(".pm.sock").exists(), "socket left behind");
}

#[test]
fn restart_one_instance_leaves_the_others() {
    let app = App::with_procfile("web: exec sleep 1000\n");
    let mut pm = started(&app, &["start", "--no-timestamp", "web=2"], 2);
    let before = ps_json(&app);
    let (pid1, pid2) = (
        find(&before, "web.1")["pid"].clone(),
        find(&before, "web.2")["pid"].clone(),
    );
    app.run(&["restart", "web.2"]).assert_ok();
    pm.wait_for_line("web.2 started with pid", SECS(10));
    let after = ps_json(&app);
    assert_eq!(find(&after, "web.1")["pid"], pid1);
    assert_ne!(find(&after, "web.2")["pid"], pid2);
    assert!(!alive(pid2.as_i64().unwrap() as i32));
    pm.stop_ok(SECS(10));
}

#[test]
fn stop_keeps_it_stopped_until_restart() {
    let app = App::with_procfile("web: exec sleep 1000\nother: exec sleep 1000\n");
    let mut pm = started(&app, &["start", "--no-timestamp"], 2);
    app.run(&["stop", "web"]).assert_ok();
    pm.wait_for_line("web.1 killed by SIGTERM", SECS(10));
    let list = ps_json(&app);
    assert_eq!(find(&list, "web.1")["state"], "stopped");
    assert!(find(&list, "web.1")["pid"].is_null());
    assert_eq!(find(&list, "other.1")["state"], "running");
    app.run(&["restart", "web.1"]).assert_ok();
    pm.wait_for_line("web.1 started with pid", SECS(10));
    assert_eq!(find(&ps_json(&app), "web.1")["state"], "running");
    pm.stop_ok(SECS(10));
}

#[test]
fn scale_up_and_down_with_the_right_ports() {
    let app =
        App::with_procfile("web: echo \"up on $PORT\"; exec sleep 1000\nworker: exec sleep 1000\n");
    let mut pm = started(&app, &["start", "--no-timestamp", "web=1", "worker=1"], 2);
    app.run(&["scale", "web=3", "worker=0"]).assert_ok();
    let line = pm.wait_until_seen("up on 5002", SECS(10));
    assert!(line.starts_with("web.3 "), "{line}");
    pm.wait_until_seen("worker.1 killed by SIGTERM", SECS(10));
    let list = ps_json(&app);
    let names: Vec<&str> = list.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web.1", "web.2", "web.3"], "{list:?}");
    assert_eq!(find(&list, "web.2")["port"], 5001);
    app.run(&["scale", "web=1"]).assert_ok();
    pm.wait_until_seen("web.3 killed by SIGTERM", SECS(10));
    let list = ps_json(&app);
    assert_eq!(list.len(), 1, "{list:?}");
    // Scaling back up revives the same instance on the same port.
    app.run(&["scale", "web=2"]).assert_ok();
    wait_until(
        SECS(10),
        "web.2 running again",
        || ps_json(&app),
        |list| find(list, "web.2")["state"] == "running",
    );
    assert_eq!(find(&ps_json(&app), "web.2")["port"], 5001);
    pm.stop_ok(SECS(10));
}

#[test]
fn bad_targets_and_formations_are_errors_and_pm_keeps_running() {
    let app = App::with_procfile("web: exec sleep 1000\n");
    let mut pm = started(&app, &["start", "--no-timestamp"], 1);
    let out = app.run(&["restart", "wbe"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        "pm: no process or instance \"wbe\" is running here (process types: web)\n"
    );
    let out = app.run(&["stop", "web.7"]);
    assert_eq!(out.code(), Some(1));
    let out = app.run(&["scale", "db=2"]);
    assert_eq!(out.stderr, "pm: unknown process type \"db\" (known: web)\n");
    let out = app.run(&["scale", "web=x"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(ps_json(&app).len(), 1);
    pm.stop_ok(SECS(10));
}

fn raw(app: &App, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(app.path().join(".pm.sock")).expect("connect");
    s.set_read_timeout(Some(SECS(15))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

#[test]
fn garbage_half_and_oversized_requests_get_errors() {
    let app = App::with_procfile("web: exec sleep 1000\n");
    let mut pm = started(&app, &["start", "--no-timestamp"], 1);
    // A client that connects and says nothing does not block anyone.
    let silent = UnixStream::connect(app.path().join(".pm.sock")).expect("connect");
    for (input, want) in [
        (&b"not json\n"[..], "malformed request"),
        (b"{\"version\":1,\"command\":\"ps\"", "malformed request"),
        (
            b"{\"version\":2,\"command\":\"ps\"}\n",
            "unsupported protocol version 2",
        ),
        (b"{\"version\":1,\"command\":\"fly\"}\n", "invalid request"),
        (b"{\"command\":\"ps\"}\n", "no \\\"version\\\""),
    ] {
        let reply = raw(&app, input);
        assert!(
            reply.contains("\"ok\":false") && reply.contains(want),
            "{input:?}: {reply}"
        );
    }
    let big = vec![b'x'; 100 * 1024];
    let reply = raw(&app, &big);
    assert!(reply.contains("longer than"), "{reply}");
    // Many clients at once.
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let path = app.path().join(".pm.sock");
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(path).expect("connect");
                s.set_read_timeout(Some(SECS(15))).unwrap();
                s.write_all(b"{\"version\":1,\"command\":\"ps\"}\n")
                    .unwrap();
                let mut r = String::new();
                s.read_to_string(&mut r).unwrap();
                r
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().contains("\"ok\":true"));
    }
    assert_eq!(ps_json(&app).len(), 1);
    drop(silent);
    pm.stop_ok(SECS(10));
}

#[test]
fn socket_is_private_single_and_replaced_when_stale() {
    let app = App::with_procfile("web: exec sleep 1000\n");
    let mut pm = started(&app, &["start", "--no-timestamp"], 1);
    let sock = app.path().join(".pm.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second pm in the same place refuses to start, naming the socket.
    app.run(&["start"])
        .assert_error_contains(1, ".pm.sock: pm is already running here");
    // Killed without a chance to clean up: the socket file stays...
    pm.signal(Signal::SIGKILL);
    pm.wait_for_exit(SECS(5));
    assert!(sock.exists());
    // ...and the next pm detects it is stale and takes its place.
    let mut pm = started(&app, &["start", "--no-timestamp"], 1);
    assert_eq!(ps_json(&app).len(), 1);
    pm.stop_ok(SECS(10));
    assert!(!sock.exists());
}

#[test]
fn no_pm_running_is_a_clear_error() {
    let app = App::with_procfile("web: x\n");
    app.run(&["ps"])
        .assert_error_contains(1, ".pm.sock: no pm is running here");
}

#[test]
fn socket_flag_and_env() {
    let app = App::with_procfile("web: exec sleep 1000\n");
    let sock = app.path().join("custom.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let mut pm = started(&app, &["start", "--no-timestamp", "--socket", &sock_s], 1);
    assert!(sock.exists());
    app.run(&["ps", "--socket", &sock_s]).assert_ok();
    let mut cmd = app.cmd(&["ps"]);
    cmd.env("PM_SOCKET", &sock_s);
    Finished::from(run_with_deadline(&mut cmd, SECS(30))).assert_ok();
    pm.stop_ok(SECS(10));
}

#[test]
fn scaling_repeatedly_while_writing_loses_nothing_and_leaves_no_orphan() {
    // Each run of an instance prints its pid, then numbered lines.
    let app = App::with_procfile(
        "web: echo \"pid=$$\"; i=0; while true; do i=$((i+1)); echo \"n=$i\"; sleep 0.005; done\n",
    );
    let mut pm = started(&app, &["start", "--no-timestamp", "web=1"], 1);
    for _ in 0..3 {
        app.run(&["scale", "web=4"]).assert_ok();
        wait_until(SECS(10), "4 instances", || ps_json(&app), |l| l.len() == 4);
        // Every new run has printed its pid before it is scaled away.
        for _ in 0..3 {
            pm.wait_for_line("| pid=", SECS(10));
        }
        app.run(&["scale", "web=1"]).assert_ok();
        wait_until(SECS(10), "1 instance", || ps_json(&app), |l| l.len() == 1);
    }
    pm.stop_ok(SECS(10));
    for pid in numbers_after(&pm.seen, "pid=") {
        assert!(!alive(pid), "{pid} outlived pm");
    }
    // Per instance, each run counts 1, 2, 3... with no gap.
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    for line in &pm.seen {
        let Some((name, text)) = line.split_once(" | ") else {
            continue;
        };
        let name = name.trim().to_string();
        if text.starts_with("pid=") {
            last.insert(name, 0);
        } else if let Some(n) = text.strip_prefix("n=") {
            let n: u64 = n.parse().expect("number");
            let prev = last.entry(name.clone()).or_insert(0);
            assert_eq!(n, *prev + 1, "{name} lost a line");
            *prev = n;
        }
    }
    assert_eq!(numbers_after(&pm.seen, "pid=").len(), 1 + 3 * 3);
}
