//! An instance is its process group, not its shell: Procfile commands
//! written without `exec`, restarts that wait for the old run to be gone,
//! one stop signal per process, and a stdin that stays open.

use std::collections::HashMap;
use std::fs;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

const DRAINER: &str = include_str!("../data/drainer.py");

/// An app with the draining server, its signal log, and a free base port.
fn app(procfile: &str) -> (App, String) {
    let app = App::with_procfile(procfile);
    app.file("drainer.py", DRAINER);
    app.file(".env", "SIGNALS=signals.log\nDRAIN=1\n");
    let (base, _) = free_ports(&[0, 1, 100, 101, 200]);
    (app, base.to_string())
}

/// Signals received per pid, from the log the draining servers keep.
fn signals(app: &App) -> HashMap<i32, Vec<String>> {
    let text = fs::read_to_string(app.path().join("signals.log")).unwrap_or_default();
    let mut map: HashMap<i32, Vec<String>> = HashMap::new();
    for line in text.lines() {
        if let Some((pid, name)) = line.split_once(' ')
            && let Ok(pid) = pid.parse()
        {
            map.entry(pid).or_default().push(name.to_string());
        }
    }
    map
}

fn ps_pid(app: &App, name: &str) -> i32 {
    let out = app.run(&["ps", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(out.assert_ok()).expect("json");
    list.iter()
        .find(|i| i["name"] == name)
        .and_then(|i| i["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid for {name} in {list:?}")) as i32
}

#[test]
fn a_simple_command_runs_as_its_program() {
    let (app, base) = app("web: python3 drainer.py\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &base]);
    pm.wait_for_line("| serving pid=", SECS(10));
    let pid = ps_pid(&app, "web.1");
    assert_eq!(numbers_after(&pm.seen, "serving pid="), [pid]);
    assert!(comm(pid).starts_with("python"), "{}", comm(pid));
    pm.stop_ok(SECS(10));
    // The program itself got the stop signal, once, and exited 0.
    assert_eq!(signals(&app).get(&pid), Some(&vec!["SIGTERM".to_string()]));
    pm.assert_saw("web.1 exited with code 0");
}

#[test]
fn a_restart_waits_for_the_whole_old_run() {
    // `cd . &&` keeps the shell: SIGTERM ends it at once, while the server
    // drains for a second still holding its port.
    let (app, base) = app("web: cd . && python3 drainer.py\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &base]);
    pm.wait_for_line("| serving pid=", SECS(10));
    let old = numbers_after(&pm.seen, "serving pid=")[0];
    assert_eq!(comm(ps_pid(&app, "web.1")), "sh");
    app.run(&["restart", "web"]).assert_ok();
    pm.wait_for_line(&format!("| drained pid={old}"), SECS(10));
    pm.wait_for_line("web.1 killed by SIGTERM", SECS(10));
    pm.wait_for_line("web.1 started with pid", SECS(10));
    pm.wait_for_line("| serving pid=", SECS(10));
    assert!(
        !pm.seen.iter().any(|l| l.contains("cannot listen")),
        "the new run met the old one on its port:\n{}",
        pm.seen.join("\n")
    );
    pm.stop_ok(SECS(10));
    let got = signals(&app);
    for pid in numbers_after(&pm.seen, "serving pid=") {
        assert_eq!(got.get(&pid).map(Vec::len), Some(1), "{pid}: {got:?}");
    }
}

#[test]
fn killing_the_shell_ends_the_run_with_its_group_then_restarts() {
    let (app, base) = app("web: cd . && python3 drainer.py\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &base]);
    pm.wait_for_line("| serving pid=", SECS(10));
    let server = numbers_after(&pm.seen, "serving pid=")[0];
    let shell = ps_pid(&app, "web.1");
    assert_ne!(shell, server);
    kill(Pid::from_raw(shell), Signal::SIGKILL).expect("kill -9");
    pm.wait_for_line(
        "web.1's command killed by SIGKILL, sending SIGTERM to the processes it left in its group",
        SECS(10),
    );
    pm.wait_for_line(&format!("drained pid={server}"), SECS(10));
    pm.wait_for_line("web.1 killed by SIGKILL, restarting in", SECS(10));
    pm.wait_for_line("| serving pid=", SECS(10));
    assert!(!alive(server), "the orphaned server is still alive");
    assert!(
        !pm.seen.iter().any(|l| l.contains("cannot listen")),
        "{}",
        pm.seen.join("\n")
    );
    pm.stop_ok(SECS(10));
}

#[test]
fn stdin_is_a_pipe_that_stays_open_but_release_reads_nothing() {
    let (app, base) = app("release: cat\nwatcher: READ_STDIN=1 NO_LISTEN=1 python3 drainer.py\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &base]);
    pm.wait_for_line("release.1 completed", SECS(10));
    pm.wait_for_line("| serving pid=", SECS(10));
    let pid = ps_pid(&app, "watcher.1");
    let stdin = fs::read_link(format!("/proc/{pid}/fd/0")).expect("fd 0");
    assert!(
        stdin.to_string_lossy().starts_with("pipe:"),
        "stdin is {stdin:?}"
    );
    pm.stop_ok(SECS(10));
    assert!(
        !pm.seen.iter().any(|l| l.contains("stdin closed")),
        "the watcher saw end-of-file while pm ran:\n{}",
        pm.seen.join("\n")
    );
    assert_eq!(signals(&app).get(&pid).map(Vec::len), Some(1));
}

#[test]
fn each_process_gets_its_types_stop_signal_once() {
    // db stops with SIGINT, web with SIGTERM; web's shell leaves two
    // servers in its group that pm adopts when the shell dies.
    let (app, base) = app(
        "db: python3 drainer.py\nweb: cd . && { NO_LISTEN=1 python3 drainer.py & NO_LISTEN=1 python3 drainer.py & wait; }\n",
    );
    app.file("pm.toml", "[process.db]\nstop_signal = \"INT\"\n");
    let mut pm = app.start(&["start", "--no-timestamp", "-p", &base, "db=1", "web=2"]);
    for _ in 0..5 {
        pm.wait_for_line("| serving pid=", SECS(10));
    }
    pm.stop_ok(SECS(15));
    pm.assert_saw("sending SIGINT to db, SIGTERM to web");
    let got = signals(&app);
    let servers = numbers_after(&pm.seen, "serving pid=");
    assert_eq!(servers.len(), 5);
    for pid in servers {
        let expected = if pm
            .seen
            .iter()
            .any(|l| l.starts_with("db.1") && l.contains(&format!("serving pid={pid}")))
        {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        assert_eq!(
            got.get(&pid),
            Some(&vec![expected.to_string()]),
            "{pid}: {got:?}"
        );
    }
}

#[test]
fn what_pm_adopted_gets_the_grace_when_no_instance_runs() {
    // job leaves a draining daemon in a session of its own and is done;
    // crash is backing off when Ctrl-C comes: no instance runs, yet the
    // daemon gets its stop signal, then the grace to drain, not SIGKILL.
    // Without a cgroup (in one, the daemon would be part of job's run).
    // job waits for the daemon to serve: until setsid -f's child has its
    // own session it is still in job's group, which ends with job's shell.
    let (app, base) = app(
        "job: setsid -f env NO_LISTEN=1 python3 drainer.py > daemon.log; \
         until grep -q serving daemon.log; do sleep 0.05; done; echo left\n\
         crash: exit 1\n",
    );
    let mut cmd = app.cmd(&["start", "--no-timestamp", "-p", &base]);
    cmd.env("PM_CGROUP", "off");
    let mut pm = Running::spawn(cmd);
    pm.wait_until_seen("job.1 exited with code 0", SECS(10));
    let log = app.path().join("daemon.log");
    let daemon = wait_until(
        SECS(10),
        "the daemon's pid",
        || {
            numbers_after(
                &[fs::read_to_string(&log).unwrap_or_default()],
                "serving pid=",
            )
        },
        |pids| pids.len() == 1,
    )[0];
    pm.wait_until_seen("crash.1 exited with code 1, restarting in 2s", SECS(10));
    pm.signal(Signal::SIGINT);
    let status = pm.wait_for_exit(SECS(10));
    assert_eq!(status.code(), Some(0), "{}", pm.stderr());
    assert!(!alive(daemon), "the daemon outlived pm");
    assert_eq!(
        signals(&app).get(&daemon),
        Some(&vec!["SIGTERM".to_string()])
    );
    assert!(
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!("drained pid={daemon}")),
        "the daemon was killed before it drained:\n{}",
        pm.seen.join("\n")
    );
    assert!(
        pm.lines_with("sending SIGKILL").is_empty(),
        "{}",
        pm.seen.join("\n")
    );
}
