//! Habits users bring from foreman, honcho and overmind: options before the
//! subcommand, `pm ps` from anywhere inside the app, and hints for files
//! written in another format.

use std::process::Stdio;

use nix::sys::signal::Signal;

use crate::harness::*;

#[test]
fn shared_options_before_the_subcommand() {
    let app = App::new();
    app.file("Procfile.dev", "web: echo dev\n");
    app.file("dev.env", "GREETING=hi\n");
    let out = app.run(&["-f", "Procfile.dev", "check"]);
    assert!(
        out.assert_ok()
            .starts_with("valid procfile detected (web)\n"),
        "{out:?}"
    );
    let out = app.run(&[
        "-e",
        "dev.env",
        "-p",
        "6000",
        "-f",
        "Procfile.dev",
        "run",
        "echo $GREETING $PORT",
    ]);
    assert_eq!(out.assert_ok(), "hi 6000\n");
    // The subcommand's own option wins.
    let out = app.run(&[
        "-p",
        "6000",
        "-f",
        "Procfile.dev",
        "run",
        "-p",
        "7000",
        "echo $PORT",
    ]);
    assert_eq!(out.assert_ok(), "7000\n");
}

#[test]
fn a_missing_procfile_points_at_procfile_dev() {
    let app = App::new();
    app.file("Procfile.dev", "web: bin/rails server\n");
    app.run(&["check"]).assert_error(
        1,
        "pm: Procfile: not found (found Procfile.dev: pass -f Procfile.dev)\n",
    );
    app.run(&["start"]).assert_error(
        1,
        "pm: Procfile: not found (found Procfile.dev: pass -f Procfile.dev)\n",
    );
}

#[test]
fn yaml_and_continued_lines_get_one_hint_each() {
    let app = App::with_procfile(
        "web:\n  command: bundle exec puma\n  ports:\n    - 3000\nworker: bundle exec sidekiq \\\n  -q default \\\n  -c 5\nclock: ok\n",
    );
    let out = app.run(&["check"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "pm: Procfile:1: process type \"web\" has an empty command, and the indented lines under it look like YAML (a Procfile has one \"NAME: COMMAND\" line per type)\n\
         pm: Procfile:5: the command of \"worker\" ends with \"\\\" (a Procfile has no continuation lines: write the command on one line)\n"
    );
}

#[test]
fn ps_finds_the_socket_from_a_subdirectory() {
    let app = App::with_procfile("web: exec sleep 1000\n");
    let mut pm = app.start(&["start"]);
    pm.wait_for_line("web.1 started with pid", SECS(10));
    let deep = app.path().join("app/models");
    std::fs::create_dir_all(&deep).expect("mkdir");
    let mut cmd = app.cmd(&["ps", "--json"]);
    cmd.current_dir(&deep)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_with_deadline(&mut cmd, SECS(10));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"web.1\""), "{text}");
    pm.signal(Signal::SIGTERM);
    pm.wait_for_exit(SECS(10));

    // A Procfile with no socket beside it: no pm runs for that app, even if
    // a parent directory has one.
    let inner = app.path().join("sub");
    std::fs::create_dir_all(&inner).expect("mkdir");
    std::fs::write(inner.join("Procfile"), "x: y\n").expect("write");
    let mut cmd = app.cmd(&["ps"]);
    cmd.current_dir(&inner)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_with_deadline(&mut cmd, SECS(10));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sub/.pm.sock"), "{stderr}");
}
