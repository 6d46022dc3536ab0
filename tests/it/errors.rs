//! Bad input: one clear line on stderr, a non-zero exit, nothing started.

use crate::harness::*;

#[test]
fn missing_procfile() {
    let app = App::new();
    app.run(&["start"])
        .assert_error(1, "pm: Procfile: not found\n");
}

#[test]
fn missing_procfile_named_with_f() {
    let app = App::new();
    app.run(&["start", "-f", "conf/Procfile.dev"])
        .assert_error(1, "pm: conf/Procfile.dev: not found\n");
}

#[test]
fn malformed_line_starts_nothing() {
    let app = App::with_procfile("web: touch started\nthis is not a process\n");
    let out = app.run(&["start"]);
    out.assert_error_starts(1, "pm: Procfile:2: ");
    assert_eq!(out.stderr.lines().count(), 1, "stderr: {}", out.stderr);
    assert!(
        !app.path().join("started").exists(),
        "a process was started"
    );
}

#[test]
fn duplicate_name() {
    let app = App::with_procfile("web: a\nworker: b\nweb: c\n");
    app.run(&["start"]).assert_error(
        1,
        "pm: Procfile:3: duplicate process type \"web\" (first defined on line 1)\n",
    );
}

#[test]
fn every_procfile_error_at_once() {
    let app = App::with_procfile("web: a\nbad line\nweb: c\n");
    let out = app.run(&["check"]);
    assert_eq!(out.code(), Some(1));
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "stderr: {}", out.stderr);
    assert!(lines[0].starts_with("pm: Procfile:2: "), "{lines:?}");
    assert!(
        lines[1].starts_with("pm: Procfile:3: duplicate"),
        "{lines:?}"
    );
}

#[test]
fn unknown_process_in_formation() {
    let app = App::with_procfile("web: touch started\nworker: touch started\n");
    let out = app.run(&["start", "wbe=2"]);
    out.assert_error_contains(1, "\"wbe\"");
    assert_eq!(out.stderr.lines().count(), 1, "stderr: {}", out.stderr);
    assert!(!app.path().join("started").exists());
}

#[test]
fn bad_count_in_formation() {
    let app = App::with_procfile("web: touch started\n");
    for args in [
        &["start", "web=x"][..],
        &["start", "-m", "web=-1"],
        &["start", "-m", "web=2,"],
    ] {
        let out = app.run(args);
        assert_eq!(out.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("pm: "), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
    }
    assert!(!app.path().join("started").exists());
}

#[test]
fn explicit_env_file_missing() {
    let app = App::with_procfile("web: touch started\n");
    app.run(&["start", "-e", "prod.env"])
        .assert_error(1, "pm: prod.env: not found\n");
    assert!(!app.path().join("started").exists());
}

#[test]
fn missing_default_env_is_fine() {
    let app = App::with_procfile("web: echo hi\n");
    let out = app.run(&["check"]);
    out.assert_ok();
}

#[test]
fn malformed_env_line() {
    let app = App::with_procfile("web: touch started\n");
    app.file(".env", "A=1\nB=2\nnot a line\n");
    let out = app.run(&["start"]);
    out.assert_error_starts(1, "pm: .env:3: ");
    assert_eq!(out.stderr.lines().count(), 1, "stderr: {}", out.stderr);
    assert!(!app.path().join("started").exists());
}

#[test]
fn port_above_65535() {
    let app = App::with_procfile("web: a\nworker: b\n");
    app.run(&["start", "-p", "65500"])
        .assert_error_contains(1, "65600");
}

#[test]
fn usage_error_is_2() {
    let app = App::with_procfile("web: a\n");
    let out = app.run(&["start", "--no-such-flag"]);
    assert_eq!(out.code(), Some(2), "{out:?}");
}

#[test]
fn empty_procfile() {
    let app = App::with_procfile("# nothing here\n\n");
    app.run(&["start"]).assert_error_starts(1, "pm: Procfile: ");
}
