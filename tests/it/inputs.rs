//! Input files are read with bounds: a device is an error, a pipe is read
//! up to a size and a time limit, a huge file is refused before it is read.

use std::fs::File;
use std::process::Command;
use std::time::Instant;

use crate::harness::*;

#[test]
fn a_device_is_an_error_for_every_input() {
    let app = App::with_procfile("web: touch started\n");
    let started = Instant::now();
    app.run(&["start", "-f", "/dev/zero"])
        .assert_error(1, "pm: /dev/zero: is a device, not a file\n");
    app.run(&["check", "-e", "/dev/zero"])
        .assert_error(1, "pm: /dev/zero: is a device, not a file\n");
    app.run(&["audit", "--against", "/dev/zero"])
        .assert_error(1, "pm: /dev/zero: is a device, not a file\n");
    // Not read to the end of memory first: refused at once.
    assert!(started.elapsed() < SECS(10), "took {:?}", started.elapsed());
    assert!(!app.path().join("started").exists());
}

#[test]
fn pm_toml_as_a_device_is_an_error() {
    let app = App::with_procfile("web: touch started\n");
    std::os::unix::fs::symlink("/dev/zero", app.path().join("pm.toml")).unwrap();
    app.run(&["check"])
        .assert_error(1, "pm: pm.toml: is a device, not a file\n");
}

#[test]
fn a_file_over_the_limit_is_refused_naming_the_limit() {
    let app = App::new();
    // Sparse: the test writes nothing of its size.
    File::create(app.path().join("Procfile"))
        .unwrap()
        .set_len(5 * 1024 * 1024)
        .unwrap();
    app.run(&["check"]).assert_error(
        1,
        "pm: Procfile: is 5242880 bytes; input files may be at most 4 MiB\n",
    );
}

/// `bash -c SCRIPT` in the app directory, with pm as $PM.
fn bash(app: &App, script: &str) -> Finished {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(app.path())
        .env("PM", PM)
        .env_remove("PORT")
        .env_remove("NO_COLOR");
    Finished::from(run_with_deadline(&mut cmd, SECS(30)))
}

#[test]
fn a_process_substitution_is_read() {
    let app = App::with_procfile("web: echo $SECRET\n");
    let out = bash(&app, r#""$PM" check -e <(printf 'SECRET=1\nOTHER=2\n')"#);
    let stdout = out.assert_ok();
    assert!(stdout.contains("(2 variables)"), "{stdout}");
    // Audit reads the env files once, too: a pipe cannot be read twice.
    app.file(".env.production", "SECRET=1\n");
    let out = bash(
        &app,
        r#""$PM" audit -e <(printf 'SECRET=1\nOTHER=2\n') --against .env.production"#,
    );
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("OTHER"), "{}", out.stdout);
    assert!(out.stdout.contains("/dev/fd/"), "{}", out.stdout);
}

#[test]
fn an_endless_pipe_stops_at_the_limit() {
    let app = App::with_procfile("web: true\n");
    let out = bash(&app, r#""$PM" check -e <(yes A=1)"#);
    out.assert_error_contains(1, "gives more than 4 MiB; input files may be at most 4 MiB");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn a_fifo_nobody_writes_to_is_an_error_within_seconds() {
    let app = App::with_procfile("web: touch started\n");
    let fifo = app.path().join("env.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let started = Instant::now();
    let out = app.run(&["start", "-e", "env.fifo"]);
    out.assert_error(
        1,
        "pm: env.fifo: a pipe that did not end within 5 s (its writer must finish sooner)\n",
    );
    assert!(started.elapsed() < SECS(15), "took {:?}", started.elapsed());
    assert!(!app.path().join("started").exists());
}
