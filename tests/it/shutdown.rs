//! Stopping: signals, grace and SIGKILL, exit codes, and proof that nothing
//! pm started outlives it.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::*;

/// A process type that prints its own pid and its background child's pid,
/// then waits.
const TREE: &str = "sleep 1000 & echo \"child=$$ grandchild=$!\"; wait";

fn pids(pm: &Running) -> Vec<i32> {
    let mut pids = numbers_after(&pm.seen, "child=");
    pids.extend(numbers_after(&pm.seen, "grandchild="));
    pids
}

fn start_tree(app: &App, instances: usize) -> (Running, Vec<i32>) {
    let mut pm = app.start(&["start", "--no-timestamp", &format!("tree={instances}")]);
    for _ in 0..instances {
        pm.wait_for_line("grandchild=", SECS(10));
    }
    let pids = pids(&pm);
    assert_eq!(pids.len(), instances * 2);
    assert!(pids.iter().all(|&p| alive(p)));
    (pm, pids)
}

#[test]
fn sigterm_stops_everything_with_exit_0() {
    let app = App::with_procfile(&format!("tree: {TREE}\n"));
    let (mut pm, pids) = start_tree(&app, 3);
    pm.signal(Signal::SIGTERM);
    let status = pm.wait_for_exit(SECS(10));
    assert_eq!(status.code(), Some(0), "{}", pm.stderr());
    for pid in pids {
        assert!(!alive(pid), "{pid} outlived pm");
    }
    pm.assert_saw("SIGTERM received");
}

#[test]
fn sigint_stops_everything_with_exit_0() {
    let app = App::with_procfile(&format!("tree: {TREE}\nother: exec sleep 1000\n"));
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_until_seen("grandchild=", SECS(10));
    pm.wait_until_seen("other.1 started", SECS(10));
    let pids = pids(&pm);
    pm.signal(Signal::SIGINT);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
    for pid in pids {
        assert!(!alive(pid), "{pid} outlived pm");
    }
}

#[test]
fn sighup_stops_everything_with_exit_0() {
    let app = App::with_procfile(&format!("tree: {TREE}\n"));
    let (mut pm, pids) = start_tree(&app, 1);
    pm.signal(Signal::SIGHUP);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
    for pid in pids {
        assert!(!alive(pid), "{pid} outlived pm");
    }
}

#[test]
fn a_child_that_traps_term_is_killed_after_the_timeout() {
    let app = App::with_procfile(
        "stubborn: trap 'echo got TERM' TERM; echo \"child=$$\"; while true; do sleep 0.05; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "-t", "1"]);
    pm.wait_for_line("child=", SECS(10));
    let child = numbers_after(&pm.seen, "child=")[0];
    let sent = std::time::Instant::now();
    pm.signal(Signal::SIGTERM);
    pm.wait_for_line("got TERM", SECS(5));
    let status = pm.wait_for_exit(SECS(10));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(!alive(child));
    assert!(took >= SECS(1), "killed before the grace ended: {took:?}");
    pm.assert_saw("SIGKILL");
}

#[test]
fn second_ctrl_c_kills_at_once_with_130() {
    let app = App::with_procfile(
        "stubborn: trap '' TERM; echo \"child=$$\"; while true; do sleep 0.05; done\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "-t", "60"]);
    pm.wait_for_line("child=", SECS(10));
    let child = numbers_after(&pm.seen, "child=")[0];
    pm.signal(Signal::SIGINT);
    pm.wait_for_line("sending SIGTERM", SECS(5));
    pm.signal(Signal::SIGINT);
    assert_eq!(pm.wait_for_exit(SECS(5)).code(), Some(130));
    assert!(!alive(child));
}

#[test]
fn a_failure_given_up_stops_everything_with_its_code() {
    let app = App::with_procfile(&format!("tree: {TREE}\nbad: sleep 0.2; exit 7\n"));
    let mut pm = app.start(&["start", "--no-timestamp", "--max-restarts", "0"]);
    pm.wait_for_line("grandchild=", SECS(10));
    let pids = pids(&pm);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(7), "{:?}", pm.seen);
    assert!(
        pm.seen
            .iter()
            .any(|l| l.ends_with("system | bad.1 exited with code 7, gave up after 0 restarts")),
        "{:?}",
        pm.seen
    );
    for pid in pids {
        assert!(!alive(pid), "{pid} outlived pm");
    }
}

#[test]
fn a_failure_is_restarted_by_default() {
    let app = App::with_procfile("flaky: echo run; exit 3\n");
    let mut pm = app.start(&["start", "--no-timestamp", "--max-restarts", "2"]);
    pm.wait_for_line("flaky.1 exited with code 3, restarting in 0.5s", SECS(10));
    pm.wait_for_line("flaky.1 exited with code 3, restarting in 1s", SECS(10));
    pm.wait_for_line(
        "flaky.1 exited with code 3, gave up after 2 restarts",
        SECS(10),
    );
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(3));
    assert_eq!(pm.lines_with("| run").len(), 3, "{:?}", pm.seen);
}

#[test]
fn sigkill_of_pm_leaves_nothing_alive() {
    let app = App::with_procfile(&format!("tree: {TREE}\n"));
    let (mut pm, pids) = start_tree(&app, 3);
    pm.signal(Signal::SIGKILL);
    pm.wait_for_exit(SECS(5));
    for pid in pids {
        assert!(
            eventually(SECS(1), || !alive(pid)),
            "{pid} still alive 1 s after pm was SIGKILLed"
        );
    }
}

#[test]
fn sigkill_of_pm_group_leaves_nothing_alive() {
    // The whole process group of pm killed at once (a CI runner's cleanup).
    let app = App::with_procfile(&format!("tree: {TREE}\n"));
    let (mut pm, pids) = start_tree(&app, 2);
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pm.pid()), Signal::SIGKILL)
        .expect("killpg");
    pm.wait_for_exit(SECS(5));
    for pid in pids {
        assert!(eventually(SECS(1), || !alive(pid)), "{pid} survived");
    }
}

#[test]
fn orphans_are_reaped_not_left_as_zombies() {
    // Each instance double-forks short-lived grandchildren whose parent exits
    // first, so they are reparented to pm (a child subreaper) and must be
    // reaped. Each prints its pid, so the test can wait until every one is
    // gone: an orphan pm never reaps stays a zombie and never goes.
    let app = App::with_procfile(
        "maker: for i in 1 2 3 4 5; do (sh -c 'echo orphan=$$; sleep 0.1' &) ; done; echo made; exec sleep 1000\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp", "maker=2"]);
    pm.wait_for_line("made", SECS(10));
    pm.wait_for_line("made", SECS(10));
    let pid = pm.pid();
    let orphans = wait_until(
        SECS(10),
        "the pids of the 10 orphans",
        || {
            pm.wait_for(|l| l.contains("orphan="), Duration::from_millis(50));
            numbers_after(&pm.seen, "orphan=")
        },
        |pids| pids.len() == 10,
    );
    // The orphans end after 0.1 s; poll until pm has reaped them all.
    wait_until(
        SECS(5),
        "every orphan reaped (state of each: None when gone)",
        || {
            orphans
                .iter()
                .map(|&p| (p, proc_state(p)))
                .collect::<Vec<_>>()
        },
        |states| states.iter().all(|(_, state)| state.is_none()),
    );
    assert!(
        eventually(SECS(5), || zombie_children(pid).is_empty()),
        "zombies left under pm: {:?}",
        zombie_children(pid)
    );
    pm.stop_ok(SECS(10));
}

#[test]
fn all_done_exits_0() {
    let app = App::with_procfile("a: echo a\nb: echo b\n");
    let mut pm = app.start(&["start", "--no-timestamp"]);
    assert_eq!(pm.wait_for_exit(SECS(10)).code(), Some(0));
    pm.assert_saw("all processes finished");
}

#[test]
fn an_instance_whose_shell_exits_ends_with_the_rest_of_its_group() {
    // The shell exits at once; its background job is the rest of the run:
    // it gets the type's stop signal, and the exit line follows its end.
    let app = App::with_procfile(
        "starter: sh -c 'trap \"echo job stopping; exit 0\" TERM; touch trapped; while :; do sleep 0.1; done' & echo \"grandchild=$!\"; until [ -e trapped ]; do sleep 0.01; done\nstay: exec sleep 1000\n",
    );
    let mut pm = app.start(&["start", "--no-timestamp"]);
    pm.wait_for_line(
        "starter.1's command exited with code 0, sending SIGTERM to the processes it left in its group",
        SECS(10),
    );
    pm.wait_for_line("job stopping", SECS(10));
    pm.wait_for_line("starter.1 exited with code 0", SECS(10));
    let grandchild = numbers_after(&pm.seen, "grandchild=")[0];
    // The exit line came after the job's end: it is gone already.
    assert!(!alive(grandchild), "the rest of the group outlived the run");
    pm.stop_ok(SECS(10));
}
