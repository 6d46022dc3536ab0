//! `pm logs`: what pm start printed, read back from another shell, in the
//! same order and format, filtered, and followed until pm exits.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::*;

/// The lines `pm logs ARGS` prints (run to completion).
fn logs(app: &App, args: &[&str]) -> Vec<String> {
    let mut full = vec!["logs"];
    full.extend_from_slice(args);
    let out = app.run(&full);
    out.assert_ok().lines().map(str::to_string).collect()
}

const CHATTY: &str = "\
web: for i in 1 2 3; do echo \"web $PS line $i\"; done; exec sleep 1000
worker: echo 'worker line 1'; printf 'worker line 2\\n'; exec sleep 1000
";

#[test]
fn logs_prints_what_pm_start_printed_in_its_order_and_format() {
    let app = App::with_procfile(CHATTY);
    let mut pm = app.start(&["start", "--color", "never", "web=2", "worker=1"]);
    for _ in 0..8 {
        pm.wait_for(|l| l.contains(" line "), SECS(10))
            .expect("every line");
    }
    // Everything pm printed so far, timestamps and padding included.
    let printed: Vec<String> = pm.seen.clone();
    assert_eq!(logs(&app, &[]), printed);
    assert_eq!(logs(&app, &["-n", "2"]), printed[printed.len() - 2..]);
    assert_eq!(logs(&app, &["--lines", "0"]), Vec::<String>::new());

    // `HH:MM:SS NAME...`: the name is the second word.
    let only = |names: &[&str]| -> Vec<String> {
        printed
            .iter()
            .filter(|l| names.contains(&l.split_whitespace().nth(1).unwrap_or("")))
            .cloned()
            .collect()
    };
    assert_eq!(logs(&app, &["web"]), only(&["web.1", "web.2"]));
    assert_eq!(logs(&app, &["web.2"]), only(&["web.2"]));
    assert_eq!(
        logs(&app, &["worker", "web.1"]),
        only(&["worker.1", "web.1"])
    );
    let system = logs(&app, &["system"]);
    assert_eq!(system, only(&["system"]));
    assert_eq!(system.len(), 3, "{system:?}");
    // The times are pm start's, not now's.
    assert!(
        printed[0].as_bytes()[2] == b':' && printed[0][..8] == logs(&app, &["-n", "100"])[0][..8]
    );

    let out = app.run(&["logs", "wbe"]);
    out.assert_error(
        1,
        "pm: no process type or instance \"wbe\" here (process types: web, worker; or \"system\" for pm's own lines)\n",
    );
    pm.stop_ok(SECS(10));
}

#[test]
fn logs_colors_only_when_asked_or_on_a_terminal() {
    let app = App::with_procfile("web: echo hello; exec sleep 1000\n");
    let mut pm = app.start(&["start", "--no-timestamp", "--color", "never"]);
    pm.wait_for_line("hello", SECS(10));
    // Its stdout is a pipe: no color, as for pm start.
    assert_eq!(logs(&app, &["web"]), ["web.1  | hello"]);
    assert_eq!(
        logs(&app, &["web", "--color", "always"]),
        ["\x1b[36mweb.1  |\x1b[0m hello"]
    );
    let colored = app
        .cmd(&["logs", "web", "--color", "always", "--no-color"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&colored.stdout), "web.1  | hello\n");
    pm.stop_ok(SECS(10));
}

#[test]
fn the_lines_before_a_crash_can_be_read_after_it() {
    let app = App::with_procfile(
        "api: n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; echo \"run $n: about to crash\"; exit 3\n\
         idle: exec sleep 1000\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("run 1: about to crash", SECS(10));
    pm.wait_for_line("api.1 exited with code 3, restarting in", SECS(10));
    pm.wait_for_line("run 2: about to crash", SECS(10));
    let lines = logs(&app, &["api"]);
    let first = lines
        .iter()
        .position(|l| l == "api.1  | run 1: about to crash")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let second = lines
        .iter()
        .position(|l| l == "api.1  | run 2: about to crash")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(first < second);
    let all = logs(&app, &[]);
    let crash = all
        .iter()
        .position(|l| l.contains("api.1 exited with code 3"))
        .unwrap();
    assert!(
        all.iter().position(|l| l.contains("run 1:")).unwrap() < crash,
        "{all:?}"
    );
    pm.stop_ok(SECS(10));
}

#[test]
fn follow_prints_new_lines_and_ends_when_pm_exits() {
    let app =
        App::with_procfile("web: echo first; read x; exec sleep 1000\nclock: exec sleep 1000\n");
    app.file("pm.toml", "[defaults]\nscrollback = 50\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("first", SECS(10));
    let mut follow = Running::spawn(app.cmd(&["logs", "-F", "-n", "1", "web"]));
    follow.wait_for_line("web.1   | first", SECS(10));
    // A new line, from a restart, reaches the follower.
    assert!(
        app.run(&["restart", "web"])
            .assert_ok()
            .contains("restarting web.1")
    );
    follow.wait_for_line("web.1   | first", SECS(10));
    let mut all = Running::spawn(app.cmd(&["logs", "--follow", "-n", "1"]));
    // Its one old line says it follows.
    all.wait_for(|_| true, SECS(10)).expect("a line");
    // The follower sees pm's last lines, then ends with 0 when pm exits.
    pm.signal(Signal::SIGTERM);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
    assert_eq!(
        follow.wait_for_exit(SECS(10)).code(),
        Some(0),
        "{}",
        follow.stderr()
    );
    assert_eq!(
        all.wait_for_exit(SECS(10)).code(),
        Some(0),
        "{}",
        all.stderr()
    );
    all.assert_saw("system  | SIGTERM received");
    all.assert_saw("system  | web.1 killed by SIGTERM");
    assert!(follow.lines_with("system").is_empty(), "{:?}", follow.seen);
}

#[test]
fn a_follower_that_stops_reading_is_dropped_and_slows_nobody() {
    // 8 000 lines of 1000 bytes, twice what a client may fall behind, at
    // a pace a reading client keeps up with; once told to go.
    let app = App::with_procfile("gen: python3 gen.py; exec sleep 1000\n");
    app.file(
        "gen.py",
        "import os, sys, time\n\
         print('ready', flush=True)\n\
         while not os.path.exists('go'):\n    time.sleep(0.01)\n\
         for i in range(8000):\n    sys.stdout.write('%0999d\\n' % i)\n    \
         if i % 100 == 99:\n        sys.stdout.flush()\n        time.sleep(0.01)\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line("gen.1  | ready", SECS(10));
    // The stalled client reads its first line, then nobody reads it.
    let mut stalled = app
        .cmd(&["logs", "-F", "-n", "1", "gen"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; "gen.1  | ready\n".len()];
    std::io::Read::read_exact(stalled.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"gen.1  | ready\n");
    let mut reading = Running::spawn(app.cmd(&["logs", "-F", "-n", "1", "gen"]));
    reading.wait_for_line("gen.1  | ready", SECS(10));
    let started = Instant::now();
    app.file("go", "");
    let last = format!("gen.1  | {:0999}", 7_999);
    pm.wait_for_line(
        "system | dropped a `pm logs --follow` client: it stopped reading and fell 4 MiB behind",
        SECS(60),
    );
    pm.wait_until_seen(&last, SECS(60));
    reading.wait_until_seen(&last, SECS(60));
    // The reading follower got every line, in order, as pm start did.
    let got: Vec<&String> = reading.lines_with("gen.1  | 0");
    assert_eq!(got.len(), 8_000);
    for (i, line) in got.iter().enumerate() {
        assert_eq!(text_of(line).parse::<usize>().ok(), Some(i));
    }
    // The generator's own pace (80 pauses of 10 ms) is most of it.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
    // The dropped client ends, saying why, once it reads again.
    let out = wait_with_deadline(stalled, "the stalled pm logs", SECS(30));
    assert_eq!(out.status.code(), Some(1));
    pm.stop_ok(SECS(10));
}
