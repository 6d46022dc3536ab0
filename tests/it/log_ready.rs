//! `log = "REGEX"` readiness: ready once a line of this run matches; for
//! readiness only; exported as no check, with a warning.

use std::time::Instant;

use crate::harness::*;

#[test]
fn a_matching_line_makes_it_ready_and_lets_its_dependents_start() {
    let app = App::with_procfile(
        "db: echo starting; sleep 0.3; echo 'LOG:  database system is ready to accept connections'; exec sleep 100\nweb: echo web up; exec sleep 100\n",
    );
    app.file(
        "pm.toml",
        "[process.db.ready]\nlog = \"database system is ready to accept connections$\"\n[process.web]\ndepends_on = [\"db\"]\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("db.1   | starting", SECS(10));
    let list = app.run(&["ps", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(list.assert_ok()).unwrap();
    assert_eq!(list[0]["health"], "unready", "{list:?}");
    pm.wait_for_line("db.1   | LOG:  database system is ready", SECS(10));
    pm.wait_for_line("db.1 is ready", SECS(5));
    pm.wait_for_line("web.1 started", SECS(5));
    let t = Instant::now();
    app.run(&["wait"]).assert_ok();
    assert!(t.elapsed() < SECS(5));
    pm.stop_ok(SECS(10));
}

#[test]
fn only_lines_of_the_current_run_count() {
    // The first run says READY and fails; the second never says it.
    let app = App::with_procfile(
        "db: if [ -f ran ]; then echo second run; exec sleep 100; fi; touch ran; echo READY; sleep 0.3; exit 1\n",
    );
    app.file("pm.toml", "[process.db.ready]\nlog = \"^READY$\"\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("db.1 is ready", SECS(10));
    pm.wait_for_line("db.1   | second run", SECS(10));
    app.run(&["wait", "--timeout", "1"])
        .assert_error(1, "pm: timed out after 1s waiting for db.1\n");
    let list = app.run(&["ps", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(list.assert_ok()).unwrap();
    assert_eq!(
        (&list[0]["state"], &list[0]["health"]),
        (&"running".into(), &"unready".into())
    );
    pm.stop_ok(SECS(10));
}

#[test]
fn log_is_for_readiness_only() {
    let app = App::with_procfile("db: exec sleep 100\n");
    app.file("pm.toml", "[process.db.live]\nlog = \"up\"\n");
    app.run(&["check"]).assert_error(
        1,
        "pm: pm.toml:2: live.log is for readiness only (a line once written says nothing about now): use tcp, http or exec\n",
    );
    app.file("pm.toml", "[process.db.ready]\nlog = \"(up\"\n");
    app.run(&["start"]).assert_error(
        1,
        "pm: pm.toml:2: ready.log is not a valid regular expression: unclosed group\n",
    );
}

#[test]
fn export_says_it_cannot_carry_a_log_check() {
    let app = App::with_procfile("db: exec postgres\nweb: exec web-server\n");
    app.file(
        "pm.toml",
        "[process.db.ready]\nlog = \"ready to accept connections\"\n[process.web]\ndepends_on = [\"db\"]\n",
    );
    let out = app.run(&["export", "compose", "out", "--image", "app:1"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stderr,
        "pm: warning: \"db\": a log readiness check cannot be exported (no engine reads a process's output); it is exported with no readiness check\n"
    );
    let compose = std::fs::read_to_string(app.path().join("out/compose.yaml")).unwrap();
    assert!(!compose.contains("healthcheck"), "{compose}");
    assert!(!compose.contains("ready to accept"), "{compose}");
}
