//! What cannot start is said as what it is: a spawn that fails is not an
//! exit with code 127, one that would fail again is not retried, and too
//! few descriptors is a one-line error, not a panic.

use std::process::Command;

use crate::harness::*;

#[test]
fn an_environment_too_large_to_exec_gives_up_at_once() {
    let app = App::with_procfile("web: echo hello\n");
    // One value above Linux's 128 KiB limit on a single exec string.
    app.file(".env", &format!("BIG={}\n", "x".repeat(200_000)));
    let out = app.run(&["start", "--no-timestamp"]);
    assert_eq!(out.code(), Some(127), "{}\n{}", out.stdout, out.stderr);
    let failures: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("could not start"))
        .collect();
    assert_eq!(
        failures,
        [
            "system | web.1 could not start: argument list too long (E2BIG: its environment \
             and command are larger than the system allows); giving up on it"
        ],
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("exited with code 127"),
        "{}",
        out.stdout
    );
}

#[test]
fn too_few_descriptors_is_a_one_line_error() {
    let app = App::with_procfile("web: sleep 1000\n");
    // Below 8 even the dynamic loader may not find a descriptor for pm.
    for limit in 8..=12 {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$PM\" start"))
            .current_dir(app.path())
            .env("PM", PM);
        let out = Finished::from(run_with_deadline(&mut cmd, SECS(30)));
        assert_eq!(out.code(), Some(1), "ulimit -n {limit}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("pm: cannot ")
                && out.stderr.ends_with(": too many open files\n")
                && out.stderr.lines().count() == 1,
            "ulimit -n {limit}: {}",
            out.stderr
        );
        assert!(!app.path().join(".pm.sock").exists(), "socket left behind");
    }
}
