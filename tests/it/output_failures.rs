//! Output failures are loud, and a stdout that takes nothing never holds
//! up a shutdown: a full disk is an error (exit 1), a stalled reader gets
//! what could be written and pm exits on time, saying how many lines it
//! dropped.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::harness::*;

/// The pid a fixture wrote to `name`, once it is there.
fn pid_in(app: &App, name: &str) -> i32 {
    let path = app.path().join(name);
    wait_until(
        SECS(10),
        &format!("{name} written"),
        || {
            fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
        },
        Option::is_some,
    )
    .unwrap()
}

/// Whether some thread of `pid` is blocked writing to a pipe: pm's writer
/// thread on a stdout nobody reads.
fn blocked_writing(pid: i32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        fs::read_to_string(task.path().join("wchan")).is_ok_and(|w| w.contains("pipe_write"))
    })
}

/// Polls until pm has exited (its stdout is not read, so the harness's
/// own wait cannot be used yet), then reads what is left.
fn exited_within(pm: &mut Running, limit: std::time::Duration) -> std::process::ExitStatus {
    let exited = eventually(limit, || pm.child.try_wait().unwrap().is_some());
    pm.read_stdout();
    assert!(exited, "pm did not exit within {limit:?}: {}", pm.stderr());
    pm.wait_for_exit(SECS(10))
}

#[test]
fn a_full_disk_is_an_error_and_stops_everything() {
    let app = App::with_procfile("web: echo $$ > web.pid; exec sleep 1000\nworker: echo hello\n");
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let child = app
        .cmd(&["start"])
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = Finished::from(wait_with_deadline(child, "pm start > /dev/full", SECS(30)));
    out.assert_error(1, "pm: stdout: no space left on device\n");
    // web may have been stopped before its shell wrote the pid (an empty
    // file): then there is nothing left to outlive pm.
    if let Ok(pid) = fs::read_to_string(app.path().join("web.pid"))
        .unwrap_or_default()
        .trim()
        .parse::<i32>()
    {
        assert!(!alive(pid), "web outlived pm");
    }
}

#[test]
fn a_stalled_stdout_does_not_hold_up_shutdown() {
    let app = App::with_procfile(
        "flood: echo $$ > flood.pid; exec yes flooding\ncalm: echo $$ > calm.pid; exec sleep 1000\n",
    );
    let mut pm = Running::spawn_unread(app.cmd(&["start", "--no-timestamp"]));
    let (flood, calm) = (pid_in(&app, "flood.pid"), pid_in(&app, "calm.pid"));
    assert!(
        eventually(SECS(10), || blocked_writing(pm.pid())),
        "pm never blocked on its stdout"
    );
    let asked = Instant::now();
    pm.signal(Signal::SIGINT);
    let status = exited_within(&mut pm, SECS(10));
    assert_eq!(status.code(), Some(0), "{}", pm.stderr());
    assert!(asked.elapsed() < SECS(10));
    assert!(!alive(flood) && !alive(calm), "a process outlived pm");
    let stderr = pm.stderr();
    assert!(
        stderr.starts_with("pm: stdout did not keep up: ")
            && stderr.ends_with(" lines of output dropped\n")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn a_second_ctrl_c_kills_at_once_even_with_a_stalled_stdout() {
    // It survives SIGTERM (noting it): only the SIGKILL of the second
    // Ctrl-C ends it before its 60 s grace.
    let app = App::with_procfile(
        "stubborn: trap 'echo > term.seen' TERM; echo $$ > s.pid; while :; do echo stubborn; done\n",
    );
    let mut pm = Running::spawn_unread(app.cmd(&["start", "--no-timestamp", "-t", "60"]));
    let stubborn = pid_in(&app, "s.pid");
    assert!(
        eventually(SECS(10), || blocked_writing(pm.pid())),
        "pm never blocked on its stdout"
    );
    pm.signal(Signal::SIGINT);
    // pm has handled the first Ctrl-C (two at once would be one), which
    // leaves it its grace.
    assert!(
        eventually(SECS(10), || app.path().join("term.seen").exists()),
        "stubborn never got SIGTERM"
    );
    assert!(alive(stubborn));
    let asked = Instant::now();
    pm.signal(Signal::SIGINT);
    let status = exited_within(&mut pm, SECS(10));
    assert_eq!(status.code(), Some(130), "{}", pm.stderr());
    assert!(asked.elapsed() < SECS(10));
    assert!(!alive(stubborn), "stubborn outlived pm");
    assert!(
        pm.stderr().contains("lines of output dropped"),
        "{}",
        pm.stderr()
    );
}
