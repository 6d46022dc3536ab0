//! `pm run` and `pm check`.

use crate::harness::*;

#[test]
fn run_sees_env_files_and_base_port() {
    let app = App::with_procfile("web: echo web\n");
    app.file(".env", "GREETING=hello\n");
    let out = app.run(&["run", "echo $GREETING $PORT"]);
    assert_eq!(out.assert_ok(), "hello 5000\n");
}

#[test]
fn run_needs_no_procfile() {
    let app = App::new();
    app.file(".env", "GREETING=hi\n");
    assert_eq!(app.run(&["run", "echo $GREETING"]).assert_ok(), "hi\n");
    // A Procfile named explicitly must exist.
    let out = app.run(&["run", "-f", "Procfile.dev", "true"]);
    out.assert_error(1, "pm: Procfile.dev: not found\n");
}

#[test]
fn run_a_process_type_by_name() {
    let app = App::with_procfile("hello: echo \"hello from $PORT\"\n");
    let out = app.run(&["run", "-p", "6000", "hello"]);
    assert_eq!(out.assert_ok(), "hello from 6000\n");
}

#[test]
fn run_passes_arguments_untouched_and_exits_with_the_code() {
    let app = App::with_procfile("web: x\n");
    let out = app.run(&["run", "sh", "-c", "echo \"$1\"; exit 3", "sh", "a  b"]);
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stdout, "a  b\n");
}

#[test]
fn run_a_missing_command() {
    let app = App::with_procfile("web: x\n");
    let out = app.run(&["run", "no-such-command-pm", "arg"]);
    assert_eq!(out.code(), Some(127), "{out:?}");
    assert_eq!(
        out.stderr,
        "pm: run: cannot run \"no-such-command-pm\": not found\n"
    );
}

#[test]
fn check_prints_types_commands_and_ports() {
    let app = App::with_procfile("web: bundle exec puma\nworker: ./work --hard\n");
    app.file(".env", "A=1\nB=2\n");
    let out = app.run(&["check", "web=2"]);
    let stdout = out.assert_ok();
    assert!(
        stdout.starts_with("valid procfile detected (web, worker)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("Procfile: 2 process types"), "{stdout}");
    assert!(stdout.contains(".env (2 variables)"), "{stdout}");
    assert!(stdout.contains("ports 5000-5001"), "{stdout}");
    assert!(stdout.contains("bundle exec puma"), "{stdout}");
    assert!(stdout.contains("./work --hard"), "{stdout}");
}

#[test]
fn check_reports_env_and_procfile_errors_together() {
    let app = App::with_procfile("web: a\nweb: b\n");
    app.file(".env", "GOOD=1\nbad line here\n");
    let out = app.run(&["check"]);
    out.assert_error_contains(1, "pm: Procfile:2: duplicate");
    assert!(out.stderr.contains("pm: .env:2: "), "{}", out.stderr);
}
