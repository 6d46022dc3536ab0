//! Health checks, dependencies and the load balancer (SPEC §4), with real
//! HTTP servers behind a real proxy and a client that counts failures.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use nix::sys::signal::Signal;

use crate::harness::*;

/// A small threaded HTTP server that answers with its instance name and,
/// on SIGTERM, stops accepting and finishes the requests it has.
const SERVER: &str = r#"
import http.server, os, signal, threading
name = os.environ["PS"].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        if self.path == "/healthz" and os.path.exists("sick-" + os.environ["PS"]):
            self.send_response(503); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *args): pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
with S(("127.0.0.1", int(os.environ["PORT"])), H) as srv:
    # shutdown() must come from another thread than serve_forever().
    signal.signal(signal.SIGTERM, lambda *args: threading.Thread(target=srv.shutdown).start())
    print("listening", flush=True)
    srv.serve_forever()
"#;

/// A base port with `count` free ports after it, and one more free port for
/// the proxy.
fn free_block(count: u16) -> (u16, u16) {
    free_ports(&(0..count).collect::<Vec<_>>())
}

/// One request through `port`: the body, or why it failed.
fn get(port: u16) -> Result<String, String> {
    let answer = http_exchange(port, "GET / HTTP/1.0\r\n\r\n")?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        _ => Err(format!("bad answer {answer:?}")),
    }
}

/// A client that requests through the proxy in a loop until stopped.
struct Hammer {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<Vec<String>>>,
}

impl Hammer {
    fn start(port: u16) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = thread::spawn(move || {
            let mut log = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match get(port) {
                    Ok(body) => {
                        o.fetch_add(1, Ordering::SeqCst);
                        if !log.contains(&body) {
                            log.push(body);
                        }
                    }
                    Err(e) => {
                        f.fetch_add(1, Ordering::SeqCst);
                        log.push(format!("FAILED: {e}"));
                    }
                }
            }
            log
        });
        Hammer {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// Stops the loop; returns the names that answered and the failures.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Hammer {
    /// A test that fails before `finish` does not leave the client running
    /// under the tests that follow.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn balanced_app(proxy: u16, extra: &str) -> App {
    let app = App::with_procfile("web: exec python3 -u server.py\n");
    app.file("server.py", SERVER);
    app.file(
        "pm.toml",
        &format!(
            "[process.web]\nproxy = {proxy}\nstop_timeout = 5\n[process.web.ready]\nhttp = \"/healthz\"\ninterval = 0.2\nfailures = 1\n{extra}"
        ),
    );
    app
}

fn ps_json(app: &App) -> Vec<serde_json::Value> {
    let out = app.run(&["ps", "--json"]);
    serde_json::from_str(out.assert_ok()).expect("json")
}

#[test]
fn rolling_restart_through_the_proxy_fails_no_request() {
    let (base, proxy) = free_block(3);
    let app = balanced_app(proxy, "");
    let port = base.to_string();
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &port, "web=3"]);
    pm.wait_for_line(&format!("balancing web on 127.0.0.1:{proxy}"), SECS(10));
    for _ in 0..3 {
        pm.wait_for_line(" is ready", SECS(20));
    }
    let list = ps_json(&app);
    assert!(
        list.iter()
            .all(|i| i["state"] == "ready" && i["health"] == "ready"),
        "{list:?}"
    );
    let before: Vec<i64> = list.iter().map(|i| i["pid"].as_i64().unwrap()).collect();

    let hammer = Hammer::start(proxy);
    wait_until(
        SECS(10),
        "10 answers through the proxy",
        || hammer.ok(),
        |&n| n >= 10,
    );
    assert_eq!(
        app.run(&["restart", "web"]).assert_ok(),
        "restarting web.1, web.2, web.3 (balanced instances one at a time, each once the one before is ready)\n"
    );
    pm.wait_for_line(
        "rolling restart of web: web.1, web.2, web.3, one at a time",
        SECS(10),
    );
    // Each instance stops only once the one before it is back and ready.
    for n in 1..=3 {
        pm.wait_for_line(&format!("web.{n} exited with code 0"), SECS(20));
        pm.wait_for_line(&format!("web.{n} is ready"), SECS(20));
    }
    let during = hammer.ok();
    wait_until(
        SECS(10),
        "10 more answers after the restart",
        || hammer.ok(),
        |&n| n >= during + 10,
    );
    let failed = hammer.failed();
    let seen = hammer.finish();
    assert_eq!(
        failed, 0,
        "failed requests during the rolling restart: {seen:?}"
    );
    for n in 1..=3 {
        assert!(
            seen.contains(&format!("web.{n}")),
            "web.{n} never answered: {seen:?}"
        );
    }
    let after: Vec<i64> = ps_json(&app)
        .iter()
        .map(|i| i["pid"].as_i64().unwrap())
        .collect();
    assert!(
        before.iter().all(|pid| !after.contains(pid)),
        "{before:?} {after:?}"
    );
    pm.stop_ok(SECS(15));
}

#[test]
fn the_proxy_follows_scaling_crashes_and_readiness() {
    let (base, proxy) = free_block(3);
    let app = balanced_app(proxy, "");
    let port = base.to_string();
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &port, "web=2"]);
    for _ in 0..2 {
        pm.wait_for_line(" is ready", SECS(20));
    }
    let hammer = Hammer::start(proxy);

    // Scale up: the new instance gets traffic once ready.
    app.run(&["scale", "web=3"]).assert_ok();
    pm.wait_for_line("web.3 is ready", SECS(20));
    // Unready: web.2 leaves the rotation, and comes back.
    app.file("sick-web.2", "");
    pm.wait_for_line("web.2 is not ready: GET http://127.0.0.1:", SECS(10));
    let list = ps_json(&app);
    let web2 = list.iter().find(|i| i["name"] == "web.2").unwrap();
    assert_eq!(
        (&web2["state"], &web2["health"]),
        (&"running".into(), &"unready".into())
    );
    std::fs::remove_file(app.path().join("sick-web.2")).unwrap();
    pm.wait_for_line("web.2 is ready", SECS(10));
    // Scale down: web.2 and web.3 leave the rotation before they stop.
    app.run(&["scale", "web=1"]).assert_ok();
    pm.wait_for_line("web.3 exited with code 0", SECS(10));
    pm.wait_until_seen("web.2 exited with code 0", SECS(10));
    let graceful_failures = hammer.failed();

    // A crash of the last instance: clients wait for it to come back.
    let web1 = ps_json(&app)[0]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(web1), Signal::SIGKILL).unwrap();
    pm.wait_for_line("web.1 killed by SIGKILL, restarting in 0.5s", SECS(10));
    let at_crash = hammer.ok();
    pm.wait_for_line("web.1 is ready", SECS(20));
    wait_until(
        SECS(10),
        "10 more answers after the crash",
        || hammer.ok(),
        |&n| n >= at_crash + 10,
    );
    let failed = hammer.failed();
    let seen = hammer.finish();
    assert_eq!(graceful_failures, 0, "{seen:?}");
    // Even the request in flight at the SIGKILL is replayed to the new web.1.
    assert_eq!(failed, 0, "failed requests: {seen:?}");
    assert!(seen.contains(&"web.3".to_string()), "{seen:?}");
    pm.stop_ok(SECS(15));
}

#[test]
fn dependencies_start_first_and_stop_last() {
    let (base, _) = free_block(1);
    let app = App::with_procfile(&format!(
        "worker: trap 'echo worker got TERM; sleep 0.3; echo worker done; exit 0' TERM; python3 -u -c 'import socket; socket.create_connection((\"127.0.0.1\", {base})); print(\"connected to db\")'; while :; do sleep 0.05; done\n\
         db: sleep 1; echo db listening; exec python3 -u server.py\n"
    ));
    app.file("server.py", SERVER);
    app.file(
        "pm.toml",
        "[process.worker]\ndepends_on = [\"db\"]\n[process.db.ready]\ntcp = true\ninterval = 0.2\n",
    );
    // db is at position 1: its port is base + 100; use -p so db gets `base`.
    let db_base = base - 100;
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &db_base.to_string()]);
    pm.wait_for_line("worker waits for db to be ready", SECS(10));
    pm.wait_for_line("db.1 is ready", SECS(20));
    pm.wait_for_line("worker.1 started", SECS(10));
    pm.wait_for_line("connected to db", SECS(10));
    assert!(pm.lines_with("worker.1 started").len() == 1);
    pm.stop_ok(SECS(15));
    let order: Vec<&str> = pm
        .seen
        .iter()
        .map(|l| text_of(l))
        .filter(|t| {
            ["worker done", "worker.1 exited", "db.1 exited"]
                .iter()
                .any(|k| t.starts_with(k))
        })
        .collect();
    assert_eq!(
        order,
        [
            "worker done",
            "worker.1 exited with code 0",
            "db.1 exited with code 0"
        ],
        "db must stop after the worker that uses it: {:?}",
        pm.seen
    );
}

#[test]
fn liveness_failures_restart_the_instance() {
    let app = App::with_procfile("web: echo up; exec sleep 1000\n");
    app.file(
        "pm.toml",
        "[process.web.live]\nexec = \"test ! -e sick\"\ninterval = 0.1\nfailures = 2\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("| up", SECS(10));
    app.file("sick", "");
    pm.wait_for_line(
        "web.1 failed its liveness check (`test ! -e sick` exited with code 1), restarting",
        SECS(10),
    );
    std::fs::remove_file(app.path().join("sick")).unwrap();
    pm.wait_for_line("web.1 killed by SIGTERM", SECS(10));
    pm.wait_for_line("web.1 started", SECS(10));
    let list = ps_json(&app);
    assert_eq!(list[0]["restarts"], 1, "{list:?}");
    pm.stop_ok(SECS(15));
}

#[test]
fn a_dependency_scaled_to_0_is_an_error_and_one_left_out_starts_too() {
    let app =
        App::with_procfile("db: exec sleep 100\nweb: exec sleep 100\ncache: exec sleep 100\n");
    app.file(
        "pm.toml",
        "[process.web]\ndepends_on = [\"db\"]\n[process.db]\ndepends_on = [\"cache\"]\n",
    );
    let error = "pm: pm.toml: \"web\" depends on \"db\", which the formation sets to 0 (start it too: db=1)\n";
    app.run(&["check", "web=1", "db=0"]).assert_error(1, error);
    app.run(&["start", "web", "db=0"]).assert_error(1, error);
    app.run(&["check", "-m", "all=0,web=2"])
        .assert_error(1, error);
    // Left out, what web needs starts too (transitively), once.
    let out = app.run(&["check", "web=2"]);
    let text = out.assert_ok();
    assert!(text.contains("  db     x1"), "{text}");
    assert!(text.contains("  cache  x1"), "{text}");
    assert!(text.contains("  web    x2"), "{text}");
    // Leaving out the dependent is fine.
    let text = app.run(&["check", "cache=1"]);
    assert!(text.assert_ok().contains("  db     x0"));
}

#[test]
fn a_proxy_port_in_use_fails_before_anything_starts() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let app = App::with_procfile("web: echo started >> ran; exec sleep 100\n");
    app.file("pm.toml", &format!("[process.web]\nproxy = {port}\n"));
    app.run(&["start"]).assert_error_starts(
        1,
        &format!("pm: cannot listen on 127.0.0.1:{port} for the proxy of \"web\": "),
    );
    assert!(!app.path().join("ran").exists());
    drop(taken);
}

#[test]
fn ready_transitions_are_system_lines_and_show_in_ps() {
    let (base, _) = free_block(1);
    let app = App::with_procfile("web: exec python3 -u server.py\n");
    app.file("server.py", SERVER);
    app.file(
        "pm.toml",
        "[process.web.ready]\nhttp = \"/healthz\"\ninterval = 0.1\nfailures = 2\nsuccesses = 2\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &base.to_string()]);
    pm.wait_for_line("web.1 is ready", SECS(20));
    app.file("sick-web.1", "");
    pm.wait_for_line(
        &format!("web.1 is not ready: GET http://127.0.0.1:{base}/healthz: HTTP 503"),
        SECS(10),
    );
    let list = ps_json(&app);
    assert_eq!(list[0]["health"], "unready");
    std::fs::remove_file(app.path().join("sick-web.1")).unwrap();
    pm.wait_for_line("web.1 is ready", SECS(10));
    assert_eq!(ps_json(&app)[0]["state"], "ready");
    pm.stop_ok(SECS(15));
}

#[test]
fn scaling_follows_dependencies() {
    let app =
        App::with_procfile("db: exec sleep 100\nweb: exec sleep 100\nworker: exec sleep 100\n");
    app.file("pm.toml", "[process.web]\ndepends_on = [\"db\"]\n");
    let mut pm = app.start(&["start", "--no-timestamp", "worker"]);
    pm.wait_for_line("worker.1 started", SECS(10));
    // web needs db, which does not run: it starts too, first.
    assert_eq!(
        app.run(&["scale", "web=1"]).assert_ok(),
        "scaled to db=1, web=1 (db started too: what the scaled types depend on)\n"
    );
    pm.wait_for_line("db.1 started", SECS(10));
    pm.wait_for_line("web.1 started", SECS(10));
    // db cannot go away under web.
    let out = app.run(&["scale", "db=0"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        "pm: \"web\" depends on \"db\", which cannot be scaled to 0 while web runs\n"
    );
    app.run(&["scale", "web=0", "db=0"]).assert_ok();
    pm.wait_until_seen("web.1 killed by SIGTERM", SECS(10));
    pm.wait_until_seen("db.1 killed by SIGTERM", SECS(10));
    pm.stop_ok(SECS(10));
}

#[test]
fn control_waits_for_the_release_phase() {
    let app = App::with_procfile("release: sleep 100\nweb: exec sleep 100\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("release.1 started", SECS(10));
    for args in [
        &["stop", "web"][..],
        &["restart", "web"],
        &["scale", "web=2"],
    ] {
        let out = app.run(args);
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert_eq!(
            out.stderr,
            "pm: the release phase is running: nothing else can change until it has completed\n"
        );
    }
    pm.stop_ok(SECS(10));
}

#[test]
fn scaling_back_up_while_an_instance_is_still_stopping_brings_it_back() {
    let app = App::with_procfile(
        "web: trap 'sleep 0.5; exit 0' TERM; echo \"pid=$$\"; while :; do sleep 0.05; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "web=2"]);
    pm.wait_until_seen("web.2  | pid=", SECS(10));
    app.run(&["scale", "web=1"]).assert_ok();
    app.run(&["scale", "web=2"]).assert_ok();
    pm.wait_for_line("web.2 exited with code 0", SECS(10));
    pm.wait_for_line("web.2 started", SECS(10));
    let out = app.run(&["ps", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(out.assert_ok()).unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[1]["pid"].as_i64().is_some(), "{list:?}");
    pm.stop_ok(SECS(10));
}

#[test]
fn saving_in_a_loop_restarts_a_balanced_type_rolling_and_fails_no_request() {
    let (base, proxy) = free_block(2);
    let app = balanced_app(proxy, "");
    app.file(
        "pm.toml",
        &format!(
            "[process.web]\nproxy = {proxy}\nstop_timeout = 5\nwatch = [\"src/**/*.py\"]\n[process.web.ready]\nhttp = \"/healthz\"\ninterval = 0.2\nfailures = 1\n"
        ),
    );
    app.file("src/app.py", "v = 0\n");
    let port = base.to_string();
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &port, "web=2"]);
    for _ in 0..2 {
        pm.wait_for_line(" is ready", SECS(20));
    }
    let hammer = Hammer::start(proxy);
    wait_until(SECS(10), "answers", || hammer.ok(), |&n| n >= 10);
    // An editor saving every 100 ms for 2 s.
    for v in 1..=20 {
        app.file("src/app.py", &format!("v = {v}\n"));
        thread::sleep(std::time::Duration::from_millis(100));
    }
    pm.wait_until_seen("src/app.py changed, restarting web", SECS(10));
    pm.wait_until_seen(
        "rolling restart of web: web.1, web.2, one at a time",
        SECS(10),
    );
    // The last save's restart is done once both are ready again after it.
    app.run(&["wait", "--timeout", "30"]).assert_ok();
    let during = hammer.ok();
    wait_until(
        SECS(10),
        "answers after",
        || hammer.ok(),
        |&n| n >= during + 10,
    );
    let failed = hammer.failed();
    let seen = hammer.finish();
    assert_eq!(failed, 0, "failed requests while saving: {seen:?}");
    pm.wait_until_seen("web.2 exited with code 0", SECS(20));
    pm.stop_ok(SECS(15));
}
